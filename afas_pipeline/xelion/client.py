"""The Xelion REST API client: a Dagster resource that reads and writes the address book (addressables) and reads
the call log (communications) and its recordings.

What it takes care of, so callers do not have to (reference §C):
- the session: it logs in on the first call (``POST me/login`` with the user name, the password, a ``userSpace``
  and an optional ``appKey``), sends ``Authorization: xelion <token>``, renews the token (``POST me/renew`` with the
  renewal token) shortly before its ``validUntil``, and after a 401 renews or logs in again once and repeats the
  call. Threads share one session; one of them renews while the others wait for the new token. ``close()`` (also
  after each Dagster run) logs out, which frees the ``userSpace`` for the next run: Xelion refuses a second login
  with the same user and ``userSpace`` while a token is valid (10005), and that refusal raises
  ``XelionSessionInUse`` with what to do;
- retries with exponential backoff and jitter after 429 (10400 too many requests of the session in flight,
  10402), 5xx and broken connections, honouring ``Retry-After``; at most ``max_concurrency`` calls in flight per
  tenant in this process. 400, 403 and 404 are answers, not retried. A create whose answer was lost is not sent
  again (a duplicate contact is worse than a retry later: ``XelionWriteUnknown``); an update whose answer was lost
  is repeated as read -> edit -> PUT, so what was already applied is not applied twice;
- cursor paging (``limit`` + ``after=<meta.paging.nextId>``), oldest first;
- the PUT body of an edit (`edited`): the object as read, with ``changeType`` on the object and on every sub-object;
- counts only in logs and stats, never a name, a number, an e-mail address, a token or the password; errors carry
  the route, the status and Xelion's ``errorCode`` with a text of ours (`afas_pipeline.xelion.errors`).
"""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import orjson
from pydantic import Field, PrivateAttr

from afas_pipeline.lib.http import (
    retry_after_header,
    RetryingHttpResource,
    json_request,
    redact_httpx_queries,
    send_in_slot,
    tls_context,
)
from afas_pipeline.lib.phones import e164
from afas_pipeline.lib.urls import base_url_problem, shown_url
from afas_pipeline.xelion.errors import (
    XelionAuthError,
    XelionConfigError,
    XelionError,
    XelionRequestError,
    XelionSessionInUse,
    XelionUnavailable,
    XelionWriteUnknown,
)

__all__ = ["API_URL_EXAMPLE", "DEFAULT_USER_SPACE", "XelionClient", "XelionStats", "edited", "xelion_instant"]

logger = logging.getLogger("afas_pipeline.xelion")

MAX_PAGE_SIZE = 1000  # Xelion's largest ``limit``
DEFAULT_USER_SPACE = "afas-pipeline"
API_URL_EXAMPLE = "https://xelion.example.nl/api/v1/master"
BASE_URL_SETTING = "XELION_BASE_URL"
PASSWORD_SETTING = "XELION_PASSWORD"
USER_SPACE_SETTING = "XELION_USER_SPACE"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
JSON = "application/json"
AUDIO = "audio/x-mp3, audio/mpeg;q=0.9, */*;q=0.1"

_LOGIN = "POST me/login"
_RENEW = "POST me/renew"
_LOGOUT = "POST me/logout"
_ADDRESSABLES = "addressables"
_ADDRESSABLE = "addressables/{oid}"
_COMMUNICATIONS = "communications"
_COMMUNICATION = "communications/{oid}"
_AUDIO = "communications/{oid}/audio"

NOT_AUTHENTICATED = 10000
ALREADY_LOGGED_IN = 10005
NOT_FOUND = 10100
#: Our text per Xelion errorCode (reference §C1). Xelion's own message is never shown: it may echo what was sent.
CODE_TEXT = {
    10000: "not authenticated (the token expired or is unknown)", 10002: "no user name given",
    10003: "no password given", 10004: "wrong user name or password", 10005: "already logged in with this userSpace",
    10006: "the user is disabled", 10007: "the password has expired",
    10013: "multi-factor authentication is required", 10100: "not found", 10101: "no permission or licence",
    10200: "empty payload", 10202: "malformed request", 10203: "an invalid id or objectType",
    10400: "too many concurrent requests for this session", 10402: "timed out waiting", 11000: "internal server error",
}

#: The sub-collections of an addressable, and the objectType of their members.
SUB_COLLECTIONS = {"telecomAddresses": "TelecomAddress", "addresses": "DeliveryAddress", "employments": "Employment"}
#: Fields Xelion sets itself: never compared nor sent as an edit.
READ_ONLY = frozenset({"oid", "objectType", "commonName", "changeType", "lastModified", "lastUsedOn"})
PHONE_TYPES = frozenset({"Telephone", "Mobile", "Telephone_and_SMS", "Fax"})
ADDRESS_FIELDS = ("street", "streetNumber", "zipCode", "city", "state", "country", "addressType")
#: A field path in a 400 message (``telecomAddresses[0].address``): names the field, never its value.
_FIELD_PATH = re.compile(r"(?<![\w@.])(?:telecomAddresses|addresses|employments)(?:\[\d+\])?(?:\.[a-z][A-Za-z]*)?(?![\w@])")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

redact_httpx_queries()


# --- pure helpers -------------------------------------------------------------------------------------------


def xelion_instant(text: str) -> dt.datetime:
    """A Xelion time (``"2026-10-25 02:05:00"``, Amsterdam local time without a zone) as an aware UTC datetime.
    A wall-clock time that occurs twice (the night summer time ends) or not at all (the night it starts) is read
    as the earlier instant it may mean: for ``validUntil`` that renews early rather than late. ValueError when it
    is not such a time."""
    value = dt.datetime.fromisoformat(str(text).strip())
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    return min(value.replace(tzinfo=AMSTERDAM, fold=fold).astimezone(dt.UTC) for fold in (0, 1))


def edited(current: dict, desired: dict) -> dict | None:
    """The body of ``PUT addressables/<oid>`` that turns ``current`` (the object as read) into ``desired``, or None
    when nothing would change (then send no PUT).

    - Top-level fields ``desired`` names (read-only ones aside: oid, objectType, commonName, ...) replace the
      current ones; the object says ``changeType: Modified`` when any differs, else ``Unmodified`` (None and ""
      are the same, surrounding spaces do not count).
    - Each sub-collection ``desired`` names is made to hold exactly its items: ``telecomAddresses`` matched on
      (addressType, address), phone numbers compared in E.164 (read in the NL region, as Xelion stores them) and
      e-mail addresses without regard to case; ``addresses`` on all their fields; ``employments`` on the
      organisation's oid (``{"oid": ...}`` or the oid itself). A current item without a match is ``Removed``, a
      desired one without a match ``Created`` with ``oid: ""``, a matched one ``Unmodified``, or ``Modified`` when
      a field the desired item names besides the match key differs (a label, an orderNumber, a jobTitle). A
      sub-collection ``desired`` leaves out is left as it is (``Unmodified``).
    """
    kind = desired.get("objectType")
    if kind is not None and kind != current.get("objectType"):
        raise ValueError(f"desired is a {kind}, the current object a {current.get('objectType')}")
    body = copy.deepcopy(current)
    fields = {k: v for k, v in desired.items() if k not in READ_ONLY and k not in SUB_COLLECTIONS}
    modified = any(not _same(current.get(name), value) for name, value in fields.items())
    if modified:
        body.update(copy.deepcopy(fields))
    body["changeType"] = "Modified" if modified else "Unmodified"
    changed = modified
    for name, sub_type in SUB_COLLECTIONS.items():
        if name not in body and name not in desired:
            continue
        items = [{**item, "changeType": "Unmodified"} for item in body.get(name) or []]
        if name in desired:
            items, sub_changed = _edited_items(name, sub_type, items, desired[name] or [])
            changed = changed or sub_changed
        body[name] = items
    return body if changed else None


def _edited_items(name: str, sub_type: str, current: list[dict], desired: list[dict]) -> tuple[list[dict], bool]:
    out = [dict(item) for item in current]
    unmatched = list(range(len(out)))
    created: list[dict] = []
    seen: set = set()
    for wanted in desired:
        key = _item_key(name, wanted)
        if key in seen:
            continue  # the same item twice is one item
        seen.add(key)
        match = next((i for i in unmatched if _item_key(name, out[i]) == key), None)
        if match is None:
            fields = {k: copy.deepcopy(v) for k, v in wanted.items() if k not in READ_ONLY}
            if name == "employments":
                fields["organisation"] = {"oid": _organisation_oid(wanted)}
            created.append({"oid": "", "objectType": sub_type, **fields, "changeType": "Created"})
            continue
        unmatched.remove(match)
        extra = {k: v for k, v in wanted.items() if k not in READ_ONLY and k not in _KEY_FIELDS[name]}
        if any(not _same(out[match].get(k), v) for k, v in extra.items()):
            out[match].update(copy.deepcopy(extra))
            out[match]["changeType"] = "Modified"
    for i in unmatched:
        out[i]["changeType"] = "Removed"
    return out + created, bool(unmatched or created or any(i["changeType"] == "Modified" for i in out))


_KEY_FIELDS = {"telecomAddresses": ("addressType", "address"), "addresses": ADDRESS_FIELDS,
               "employments": ("organisation",)}


def _item_key(name: str, item: dict) -> tuple:
    if name == "telecomAddresses":
        kind = str(item.get("addressType") or "")
        return kind, _address_key(kind, str(item.get("address") or ""))
    if name == "addresses":
        return tuple(_plain(item.get(f)) for f in ADDRESS_FIELDS)
    return (_organisation_oid(item),)


def _organisation_oid(item: dict) -> str:
    organisation = item.get("organisation")
    return str((organisation.get("oid") if isinstance(organisation, dict) else organisation) or "")


def _address_key(kind: str, address: str) -> str:
    text = address.strip()
    if kind in PHONE_TYPES:
        return e164(text) or text
    return text.lower() if kind == "Email" else text


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def _same(a: Any, b: Any) -> bool:
    return _plain(a) == _plain(b)


def _still_to_do(current: dict, sent: dict) -> dict | None:
    """After a PUT whose answer was lost: the PUT body that does what ``sent`` asked for and ``current`` (read
    again) does not show yet, or None when all of it was applied."""
    desired = {} if sent.get("changeType") == "Unmodified" else {
        k: v for k, v in sent.items() if k not in READ_ONLY and k not in SUB_COLLECTIONS}
    for name in SUB_COLLECTIONS:
        if name not in sent:
            continue
        held = {str(item.get("oid")): item for item in current.get(name) or []}
        mentioned = {str(item.get("oid")) for item in sent[name] if item.get("oid")}
        wanted = [held.get(str(item.get("oid")), item) if item.get("changeType") == "Unmodified" else item
                  for item in sent[name] if item.get("changeType") != "Removed"]
        untouched = [item for oid, item in held.items() if oid not in mentioned]  # not sent: Xelion keeps them
        desired[name] = [{k: v for k, v in item.items() if k not in READ_ONLY} for item in wanted + untouched]
    return edited(current, desired)


# --- counts -------------------------------------------------------------------------------------------------


@dataclass
class XelionStats:
    """Counts over the client's lifetime (numbers only, fit for Dagster metadata)."""

    requests: int = 0  # HTTP attempts: logins, renewals, retries and reads included
    retries: int = 0
    logins: int = 0
    renewals: int = 0
    creates: int = 0
    updates: int = 0  # PUTs answered, and updates found applied after a lost answer
    reads: int = 0  # GETs answered: pages, objects, recordings

    def as_metadata(self) -> dict[str, int]:
        return asdict(self)


# --- retry plumbing -----------------------------------------------------------------------------------------


class _Transient(Exception):
    """An attempt that may succeed when repeated (429, 5xx, a broken connection)."""

    def __init__(self, reason: str, *, retry_after: float | None = None, status: int | None = None,
                 error_code: int | None = None, sent: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.retry_after, self.status, self.error_code = reason, retry_after, status, error_code
        self.sent = sent  # no answer to a request that went out: it may have been carried out


class _Unauthenticated(Exception):
    """A 401 on a call in the session: renew or log in again (once), then repeat."""

    def __init__(self, token: str, error_code: int | None) -> None:
        super().__init__("401")
        self.token, self.error_code = token, error_code


@dataclass
class _Session:
    token: str
    renewal: str | None
    renew_at: float  # on the client's monotonic clock; inf: only after a 401


# --- the resource -------------------------------------------------------------------------------------------


class XelionClient(RetryingHttpResource):
    """Xelion REST API client for one tenant, logged in as one user with its own ``userSpace``."""

    base_url: str = Field(description="The tenant root, like https://xelion.example.nl/api/v1/master.")
    user_name: str = Field(description="The Xelion user the pipeline logs in as.")
    password: str = Field(repr=False, description="The user's password; from dg.EnvVar. Never logged.")
    user_space: str = Field(default=DEFAULT_USER_SPACE, min_length=1,
                            description="Xelion's userSpace: a stable name of its own per deployment (a second "
                                        "login with the same one is refused while the first is valid).")
    app_key: str | None = Field(default=None, repr=False, description="The appKey Xelion gave the integration, if any.")
    max_concurrency: int = Field(default=4, gt=0, description="Calls in flight per tenant in this process; Xelion "
                                 "refuses more per session (429/10400) than it allows (the sandbox: 4).")
    timeout_s: float = Field(default=60.0, gt=0, description="Read, write and pool timeout of one request.")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    renew_before_s: float = Field(default=120.0, ge=0, description="Renew the token this long before validUntil "
                                  "(at most half its lifetime).")

    stats_type = XelionStats

    _session: Any = PrivateAttr(default=None)
    _session_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _space: str | None = PrivateAttr(default=None)  # this client's own userSpace, once the configured one was in use
    _lost_login: bool = PrivateAttr(default=False)  # a login or renewal got no answer: Xelion may hold that session
    _now: Any = PrivateAttr(default_factory=lambda: time.monotonic)

    def __repr__(self) -> str:
        return f"XelionClient(url={shown_url(str(self.base_url))!r}, user_space={self.user_space!r}, password=<redacted>)"

    # -- public API: the address book --

    def addressables(self, where: dict[str, str] | None = None, include: list[str] | None = None,
                     limit: int = MAX_PAGE_SIZE) -> Iterator[dict]:
        """Every addressable matching ``where`` (``{"obj_type": "Person", "phone": "+31152511411"}``; ``*`` is a
        wildcard), oldest first, read ``limit`` at a time as the caller iterates. An item holds ``oid``,
        ``objectType``, ``commonName`` and the fields ``include`` names (``["telecomAddresses"]``); the full object
        is `addressable`."""
        params = [("where", f"{name}={value}") for name, value in (where or {}).items()]
        if include:
            params.append(("include", ",".join(include)))
        for page in self._pages("addressables", _ADDRESSABLES, params, limit, after=None):
            yield from page

    def addressable(self, oid: str) -> dict | None:
        """The addressable with this oid, in full; None when Xelion does not know it (404/10100)."""
        try:
            response = self._send("GET", f"addressables/{_segment(oid)}", route=_ADDRESSABLE)
        except XelionRequestError as exc:
            if exc.status_code == 404 and exc.error_code in (NOT_FOUND, None):
                return None
            raise
        self._count(reads=1)
        return self._object(response, f"GET {_ADDRESSABLE}")

    def create_addressable(self, doc: dict) -> dict:
        """``POST addressables`` (a Person or Organisation, its sub-objects new): the object created, with its oid.
        Raises ``XelionWriteUnknown`` when the answer was lost, without sending it again."""
        response = self._send("POST", "addressables", route=_ADDRESSABLES, body=doc, resend_unanswered=False)
        self._count(creates=1)
        return self._object(response, f"POST {_ADDRESSABLES}")

    def update_addressable(self, oid: str, doc: dict) -> dict:
        """``PUT addressables/<oid>`` with ``doc``, the full object as read and edited with change types (`edited`);
        the object as Xelion then holds it. When an answer is lost the object is read again and only what it
        does not show yet is sent, so a sub-object is never created or removed twice."""
        path, body = f"addressables/{_segment(oid)}", doc
        for _ in range(self.max_attempts):
            try:
                response = self._send("PUT", path, route=_ADDRESSABLE, body=body, resend_unanswered=False)
            except XelionWriteUnknown:
                self._count(retries=1)
                logger.warning("Xelion PUT %s: the answer was lost; reading the object again", _ADDRESSABLE)
                current = self.addressable(oid)
                if current is None:
                    raise XelionRequestError(f"PUT {_ADDRESSABLE}: the object is gone after an answer was lost",
                                             endpoint=f"PUT {_ADDRESSABLE}", status_code=404,
                                             error_code=NOT_FOUND) from None
                body = _still_to_do(current, body)
                if body is None:
                    self._count(updates=1)
                    return current
                continue
            self._count(updates=1)
            return self._object(response, f"PUT {_ADDRESSABLE}")
        raise XelionUnavailable(f"PUT {_ADDRESSABLE}: no answer to {self.max_attempts} attempts",
                                endpoint=f"PUT {_ADDRESSABLE}")

    def remove_addressable(self, oid: str) -> bool:
        """``DELETE addressables/<oid>`` (an erasure, P2; [I]: the reference documents no delete, see the sandbox).
        False when Xelion does not know the oid (already gone); no answer raises ``XelionUnavailable``."""
        try:
            self._send("DELETE", f"addressables/{_segment(oid)}", route=_ADDRESSABLE)
        except XelionRequestError as exc:
            if exc.status_code == 404 and exc.error_code in (NOT_FOUND, None):
                return False
            raise
        return True

    # -- public API: the call log --

    def communications_after(self, after_oid: str | None, limit: int = MAX_PAGE_SIZE) -> list[dict]:
        """Every communication after the one with oid ``after_oid`` (None: from the first), oldest first, all
        pages: what polling for new calls reads."""
        return [item for page in self._pages("communications", _COMMUNICATIONS, [("order", "ascending")], limit,
                                             after=None if after_oid is None else str(after_oid))
                for item in page]

    def communication(self, oid_or_call_id: str) -> dict:
        """One communication by oid or callId (``caller_<callId>`` for a call this user started)."""
        response = self._send("GET", f"communications/{_segment(oid_or_call_id)}", route=_COMMUNICATION)
        self._count(reads=1)
        return self._object(response, f"GET {_COMMUNICATION}")

    def audio(self, oid: str) -> bytes | None:
        """The call's recording (MP3); None when it has none (404/10100)."""
        route = _AUDIO
        try:
            response = self._send("GET", f"communications/{_segment(oid)}/audio", route=route, accept=AUDIO)
        except XelionRequestError as exc:
            if exc.status_code == 404 and exc.error_code in (NOT_FOUND, None):
                return None
            raise
        self._count(reads=1)
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind.startswith(("application/json", "text/")):
            raise XelionError(f"Xelion answered GET {route} with {kind}, not audio", endpoint=f"GET {route}",
                              status_code=response.status_code)
        return response.content

    # -- the session --

    def close(self) -> None:
        """Log out (frees the userSpace for the next run), then close the connections."""
        with self._session_lock:
            session, self._session = self._session, None
        http = self._http
        if session is not None and http is not None:
            self._count(requests=1)
            try:
                response = http.post("me/logout", headers={"Authorization": f"xelion {session.token}"})
                if response.status_code >= 400 and response.status_code != 401:
                    logger.warning("Xelion %s: status %d; the session ends when its token expires", _LOGOUT,
                                   response.status_code)
            except httpx.HTTPError as exc:
                logger.warning("Xelion %s: %s; the session ends when its token expires", _LOGOUT, type(exc).__name__)
        super().close()

    def _token(self) -> str:
        """The session's token: logs in first, or renews when validUntil is near (one thread; the others wait)."""
        with self._session_lock:
            session = self._session
            if session is None:
                session = self._login()
            elif self._now() >= session.renew_at:
                session = self._renew_or_login(session)
            return session.token

    def _refresh(self, stale: str) -> None:
        """After a 401 with token ``stale``: renew, or log in again; nothing if another thread already did."""
        with self._session_lock:
            if self._session is not None and self._session.token != stale:
                return
            if self._session is None:
                self._login()
            else:
                self._renew_or_login(self._session)

    def _renew_or_login(self, session: _Session) -> _Session:
        if session.renewal:
            try:
                return self._renew(session)
            except (XelionAuthError, XelionRequestError) as exc:
                logger.info("Xelion %s refused (status %s, errorCode %s); logging in again", _RENEW,
                            exc.status_code, exc.error_code)
        self._session = None
        return self._login()

    def _login(self) -> _Session:
        """Log in with the configured userSpace. When Xelion says it is in use (a run at the same time, or one
        that died or could not log out holds it until its token expires), log in once more with a userSpace of
        this client's own (`<user_space>-<6 hex>`), so that runs do not block each other."""
        try:
            return self._login_as(self._space or self.user_space)
        except XelionSessionInUse:
            if self._space is not None:
                raise
            self._space = f"{self.user_space}-{secrets.token_hex(3)}"
            logger.warning("Xelion: userSpace %s is in use by another session; this run logs in with one of its "
                           "own", self.user_space)
            return self._login_as(self._space)

    def _login_as(self, space: str) -> _Session:
        body = {"userName": self.user_name, "password": _secret(self.password, "password"), "userSpace": space}
        if self.app_key:
            body["appKey"] = _secret(self.app_key, "appKey")
        answer, response = self._public("me/login", _LOGIN, body)
        self._count(logins=1)
        return self._adopt(answer, response, "logged in")

    def _renew(self, session: _Session) -> _Session:
        answer, response = self._public("me/renew", _RENEW, session.renewal)
        self._count(renewals=1)
        return self._adopt(answer, response, "renewed the session")

    def _adopt(self, answer: Any, response: httpx.Response, done: str) -> _Session:
        token = answer.get("authentication") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise XelionError("Xelion's login answer has no authentication token", endpoint=_LOGIN,
                              status_code=response.status_code)
        lifetime = _lifetime_s(answer.get("validUntil"), response.headers.get("Date"))
        if lifetime is None:
            renew_at = math.inf  # validUntil unreadable: renew after a 401 only
        else:
            renew_at = self._now() + lifetime - min(self.renew_before_s, lifetime / 2)
        renewal = answer.get("renewalToken")
        self._session = _Session(token, renewal if isinstance(renewal, str) and renewal else None, renew_at)
        self._lost_login = False
        logger.info("Xelion: %s (token valid for %ss)", done, "?" if lifetime is None else f"{lifetime:.0f}")
        return self._session

    def _public(self, path: str, route: str, body: Any) -> tuple[Any, httpx.Response]:
        """Login or renew: a call without a session, with retries; a 401 raises (no renewal for these)."""
        http = self._client()
        url, content, headers = json_request(http, path, None, body)

        def attempt() -> httpx.Response:
            try:
                response = self._once(http, "POST", url, content, {**(headers or {}), "Accept": JSON}, route)
            except _Transient as exc:
                if exc.sent:
                    self._lost_login = True  # it may have been carried out: the retry can meet 10005
                raise
            if response.status_code >= 500 and response.status_code != 503 and _error_code(response) is None:
                self._lost_login = True  # a proxy's 502/504: Xelion may have opened the session all the same
            return self._checked(response, route, resend_unanswered=True)

        try:
            response = self._retrying(attempt, what=f"Xelion {route}", transient=_Transient, logger=logger)
        except _Transient as exc:
            raise self._unavailable(exc, route) from None
        except (XelionAuthError, XelionRequestError) as exc:
            raise self._login_refusal(exc, route) from None
        return self._json(response, route), response

    def _login_refusal(self, exc: XelionError, route: str) -> XelionError:
        code, status = exc.error_code, exc.status_code
        if route == _RENEW:
            return exc
        if code == ALREADY_LOGGED_IN:
            lost = (" This client's own earlier login or renewal got no answer, so Xelion may hold that session."
                    if self._lost_login else "")
            return XelionSessionInUse(
                f"Xelion refused the login: this user is already logged in with the same userSpace. Another "
                f"process uses it (another deployment, or a run at the same time): give each its own userSpace "
                f"(setting user_space, {USER_SPACE_SETTING}). Or an earlier run died without logging out: its "
                f"session ends when its token expires.{lost}", endpoint=route, status_code=status, error_code=code)
        if status == 404:
            return XelionConfigError(
                f"Xelion has no me/login at the base URL: set {BASE_URL_SETTING} to the tenant root, like "
                f"{API_URL_EXAMPLE}", endpoint=route, status_code=status, error_code=code)
        if status == 401:
            return XelionAuthError(
                f"Xelion refused the login ({CODE_TEXT.get(code or 0, 'not authorised')}): check the user name "
                f"(setting user_name) and the password ({PASSWORD_SETTING}) in Xelion", endpoint=route,
                status_code=status, error_code=code)
        return exc

    # -- internals: HTTP --

    def _client(self) -> httpx.Client:
        return self._keep_alive(self._new_client)

    def _new_client(self) -> httpx.Client:
        root = str(self.base_url).rstrip("/")
        problem = base_url_problem(BASE_URL_SETTING, root, sends="the Xelion password", example=API_URL_EXAMPLE)
        if problem:
            raise XelionConfigError(problem)
        return httpx.Client(
            verify=tls_context(),
            base_url=root + "/",
            timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
            headers={"Accept": JSON},
            limits=httpx.Limits(max_connections=self.max_concurrency),
        )

    def _send(self, method: str, path: str, *, route: str, params: list[tuple[str, str]] | None = None,
              body: Any = None, accept: str = JSON, resend_unanswered: bool = True) -> httpx.Response:
        """One call in the session, with retries; after a 401 the session is renewed (or logged in again) once and
        the call repeated. ``route`` names the call in logs and errors, without oid or query. A write that must
        not be sent twice (``resend_unanswered=False``) raises ``XelionWriteUnknown`` when its answer is lost."""
        http = self._client()
        url, content, headers = json_request(http, path, params, body)  # type: ignore[arg-type]
        what = f"{method} {route}"

        def attempt() -> httpx.Response:
            token = self._token()
            sent = {**(headers or {}), "Accept": accept, "Authorization": f"xelion {token}"}
            response = self._once(http, method, url, content, sent, what, resend_unanswered=resend_unanswered)
            if response.status_code == 401:
                raise _Unauthenticated(token, _error_code(response))
            return self._checked(response, what, resend_unanswered=resend_unanswered)

        for repeat in (False, True):
            try:
                return self._retrying(attempt, what=f"Xelion {what}", transient=_Transient, logger=logger)
            except _Transient as exc:
                raise self._unavailable(exc, what) from None
            except _Unauthenticated as exc:
                if repeat:
                    raise XelionAuthError(
                        f"Xelion refused {what} (401, {CODE_TEXT.get(exc.error_code or 0, 'not authenticated')}) "
                        f"right after the session was renewed", endpoint=what, status_code=401,
                        error_code=exc.error_code) from None
                logger.info("Xelion %s: 401 (errorCode %s); renewing the session", what, exc.error_code)
                self._refresh(exc.token)
        raise AssertionError("unreachable")

    def _once(self, http: httpx.Client, method: str, url: httpx.URL | str, content: bytes | None,
              headers: dict[str, str], what: str, *, resend_unanswered: bool = True) -> httpx.Response:
        """One attempt within the concurrency cap. No answer: transient, unless a write that must not be sent
        twice may have been carried out."""

        def unanswered(exc: Exception) -> Exception:
            reason = f"{type(exc).__name__} on {what}"
            sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
            if resend_unanswered or not sent:
                return _Transient(reason, sent=sent)
            return self._write_unknown(reason, what)

        self._count(requests=1)
        return send_in_slot(
            http, method, url, content=content, headers=headers, limit=self.max_concurrency,
            bad_url=lambda exc: XelionConfigError(f"bad Xelion base URL ({BASE_URL_SETTING}): {exc}", endpoint=what),
            unanswered=unanswered)

    def _checked(self, response: httpx.Response, what: str, *, resend_unanswered: bool) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        code = _error_code(response)
        if status == 429 or status >= 500:
            text = "service unavailable" if status == 503 else CODE_TEXT.get(code or 0, "")
            reason = f"{status} {text}".strip() + f" on {what}"
            if status >= 500 and code is None and status != 503 and not resend_unanswered:
                raise self._write_unknown(reason, what)  # a proxy's 502/504: Xelion may have carried it out
            retry_after = retry_after_header(response)
            refusal = self._too_long_to_wait(retry_after, "Xelion", what, status)
            if refusal:
                raise XelionUnavailable(refusal, endpoint=what, status_code=status, error_code=code)
            raise _Transient(reason, retry_after=retry_after, status=status, error_code=code)
        raise self._refusal(response, what, code)

    def _refusal(self, response: httpx.Response, what: str, code: int | None) -> XelionError:
        status = response.status_code
        # "Not found" answers a question (a call without a recording, an addressable Xelion lost): the callers
        # handle it, so it is no warning for the run's log.
        level = logging.DEBUG if status == 404 and code in (NOT_FOUND, None) else logging.WARNING
        logger.log(level, "Xelion %s refused: status %d, errorCode %s", what, status, code)
        text = CODE_TEXT.get(code or 0) or ("invalid authentication" if code and 10020 <= code <= 10029 else None)
        if status == 401:
            return XelionAuthError(f"Xelion refused {what} (401, {text or 'not authorised'})", endpoint=what,
                                   status_code=status, error_code=code)
        fields = _field_paths(response) if status == 400 else ()
        hint = {403: "no permission or licence: check the user's rights in Xelion"}.get(status, text or "refused")
        about = f" about {', '.join(fields)}" if fields else ""
        error = XelionRequestError(f"Xelion refused {what} ({status}, {hint}){about}", endpoint=what,
                                   status_code=status, error_code=code)
        error.fields = fields
        return error

    def _write_unknown(self, reason: str, what: str) -> XelionWriteUnknown:
        return XelionWriteUnknown(
            f"{what}: the answer was lost ({reason}); Xelion may have carried it out, so it is not sent again: "
            f"look the object up before writing it again", endpoint=what)

    def _unavailable(self, exc: _Transient, what: str) -> XelionUnavailable:
        return XelionUnavailable(f"{what}: Xelion stayed unavailable ({exc.reason}) after {self.max_attempts} "
                                 f"attempt(s)", endpoint=what, status_code=exc.status, error_code=exc.error_code)

    def _pages(self, path: str, route: str, params: list[tuple[str, str]], limit: int,
               after: str | None) -> Iterator[list[dict]]:
        """The objects page by page: ``after=<meta.paging.nextId>`` until an empty page, or a short page without
        a ``next`` link (a full page without one is followed anyway: a lost page is worse than an empty one)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit is a whole number from 1 to {MAX_PAGE_SIZE}")
        what = f"GET {route}"
        while True:
            query = [*params, ("limit", str(limit)), *([("after", after)] if after is not None else [])]
            payload = self._json(self._send("GET", path, route=route, params=query), what)
            self._count(reads=1)
            data = payload.get("data") if isinstance(payload, dict) else None
            if not isinstance(data, list) or not all(isinstance(i, dict) and isinstance(i.get("object"), dict)
                                                     for i in data):
                raise XelionError("Xelion returned a page without a 'data' list of objects", endpoint=what)
            objects = [item["object"] for item in data]
            if not objects:
                return
            yield objects
            meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
            paging = meta.get("paging") if isinstance(meta.get("paging"), dict) else {}
            links = meta.get("links") if isinstance(meta.get("links"), list) else []
            more = any(isinstance(link, dict) and link.get("rel") == "next" for link in links)
            if not more and len(objects) < limit:
                return
            cursor = str(paging.get("nextId") or objects[-1].get("oid") or "")
            if not cursor or cursor == after:
                raise XelionError("Xelion's paging cursor (meta.paging.nextId) did not move on", endpoint=what)
            after = cursor

    def _object(self, response: httpx.Response, what: str) -> dict:
        payload = self._json(response, what)
        obj = payload.get("object") if isinstance(payload, dict) else None
        if not isinstance(obj, dict):
            raise XelionError("Xelion returned no 'object'", endpoint=what, status_code=response.status_code)
        return obj

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise XelionError("Xelion returned a body that is not JSON", endpoint=what,
                              status_code=response.status_code) from None


# --- helpers ------------------------------------------------------------------------------------------------


def _secret(value: str, what: str) -> str:
    """A setting's value; a `dg.EnvVar` outside a Dagster run is read from the environment."""
    if isinstance(value, dg.EnvVar):
        resolved = value.get_value()
        if not resolved:
            raise XelionConfigError(f"{value.env_var_name} is not set: set it to the Xelion {what}")
        return resolved
    return value


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _error_code(response: httpx.Response) -> int | None:
    try:
        body = orjson.loads(response.content) if response.content.strip() else None
    except orjson.JSONDecodeError:
        return None
    code = body.get("errorCode") if isinstance(body, dict) else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    return int(code) if isinstance(code, str) and code.isdigit() else None


def _field_paths(response: httpx.Response) -> tuple[str, ...]:
    """The sub-object field paths a 400 message names (``telecomAddresses[0].address``): quoted text taken out
    first, so a value never comes along."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ()
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return ()
    return tuple(dict.fromkeys(_FIELD_PATH.findall(_QUOTED.sub(" ", message))))


def _lifetime_s(valid_until: Any, date_header: str | None) -> float | None:
    """How long a token is valid from now: ``validUntil`` less the server's Date (our clock when it sent none), so
    a clock of ours that is off does not count; None when validUntil is unreadable."""
    try:
        until = xelion_instant(valid_until)
    except (TypeError, ValueError):
        return None
    issued = None
    if date_header:
        try:
            issued = email.utils.parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            issued = None
    if issued is None or issued.tzinfo is None:
        issued = dt.datetime.now(dt.UTC)
    return max(0.0, (until - issued).total_seconds())
