"""OAuth 1.0a one-legged request verification, as Spotler Mail+ does it, with oauthlib's signature module.

The client signs method, base URI and the ``oauth_*`` plus query parameters with HMAC-SHA1 and the key
``enc(consumer_secret) + "&"`` (no token); the JSON body is not signed. The ``oauth_*`` parameters may come
in the ``Authorization: OAuth ...`` header or in the query string.

Checks, in order, each failing with 401 ``{"errorType", "message"}``:
missing or malformed OAuth parameters, another signature method or version (NOT_AUTHORIZED); an unknown
consumer key (AUTH_NOT_FOUND); a timestamp more than ``MAX_SKEW_S`` seconds off the server clock
(NOT_AUTHORIZED); a wrong signature, i.e. a wrong secret or a tampered request (NOT_AUTHORIZED); a nonce
seen before with the same key and timestamp (NOT_AUTHORIZED). Nonces are only remembered for signed
requests, and forgotten once their timestamp is out of the window.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from oauthlib.oauth1.rfc5849 import signature

MAX_SKEW_S = 300
REQUIRED = ("oauth_consumer_key", "oauth_signature_method", "oauth_signature", "oauth_timestamp", "oauth_nonce")


class OAuthFailure(Exception):
    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type, self.message = error_type, message


@dataclass
class _SignedRequest:
    """The attributes oauthlib's ``verify_hmac_sha1`` reads."""

    http_method: str
    uri: str
    params: list[tuple[str, str]]
    signature: str


class Verifier:
    def __init__(self, consumers: dict[str, str]):
        self.consumers = consumers
        self.lock = threading.Lock()
        self.nonces: dict[tuple[str, str, str], int] = {}
        self._prune_at = 10000

    def reset(self) -> None:
        with self.lock:
            self.nonces.clear()

    def verify(self, method: str, uri: str, query: str, authorization: str | None) -> str:
        """Check one request (``uri`` absolute, as the client addressed it); returns the consumer key."""
        try:
            params = signature.collect_parameters(uri_query=query, headers={"Authorization": authorization}
                                                  if authorization else None, exclude_oauth_signature=False)
        except ValueError:
            raise OAuthFailure("NOT_AUTHORIZED", "Malformed OAuth Authorization header") from None
        oauth = dict(p for p in params if p[0].startswith("oauth_"))
        missing = [name for name in REQUIRED if not oauth.get(name)]
        if missing:
            raise OAuthFailure("NOT_AUTHORIZED", f"Missing OAuth parameter(s): {', '.join(missing)}")
        if oauth["oauth_signature_method"] != "HMAC-SHA1" or oauth.get("oauth_version", "1.0") != "1.0":
            raise OAuthFailure("NOT_AUTHORIZED", "Only OAuth 1.0 with HMAC-SHA1 is supported")
        key = oauth["oauth_consumer_key"]
        secret = self.consumers.get(key)
        if secret is None:
            raise OAuthFailure("AUTH_NOT_FOUND", "No authentication found for this consumer key")
        try:
            timestamp = int(oauth["oauth_timestamp"])
        except ValueError:
            raise OAuthFailure("NOT_AUTHORIZED", "Invalid oauth_timestamp") from None
        now = int(time.time())
        if abs(now - timestamp) > MAX_SKEW_S:
            raise OAuthFailure("NOT_AUTHORIZED", "oauth_timestamp is too far from the server time")
        request = _SignedRequest(method.upper(), uri, [p for p in params if p[0] != "oauth_signature"],
                                 oauth["oauth_signature"])
        try:
            valid = signature.verify_hmac_sha1(request, secret, "")
        except ValueError:
            valid = False
        if not valid:
            raise OAuthFailure("NOT_AUTHORIZED", "Invalid OAuth signature")
        nonce_key = (key, oauth["oauth_timestamp"], oauth["oauth_nonce"])
        with self.lock:
            if nonce_key in self.nonces:
                raise OAuthFailure("NOT_AUTHORIZED", "oauth_nonce was already used")
            self.nonces[nonce_key] = timestamp
            if len(self.nonces) > self._prune_at:
                self.nonces = {k: t for k, t in self.nonces.items() if abs(now - t) <= MAX_SKEW_S}
                self._prune_at = max(10000, 2 * len(self.nonces))
        return key
