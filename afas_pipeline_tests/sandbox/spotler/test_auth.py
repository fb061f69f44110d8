"""OAuth 1.0a one-legged verification: every request signed by authlib, every failure a 401 with errorType."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from authlib.oauth1.rfc5849 import client_auth

from afas_sandbox.server import SANDBOX_SPOTLER_KEY, SANDBOX_SPOTLER_SECRET, Sandbox
from afas_pipeline_tests.sandbox.spotler.conftest import SpotlerAuth, spotler_client


def signed(sb: Sandbox, method: str, path: str, *, secret: str | None = None, **kwargs) -> httpx.Request:
    """The request as authlib signs it, not yet sent (so a test can tamper with or replay it)."""
    request = httpx.Request(method, sb.spotler_base_url + "/" + path, **kwargs)
    auth = SpotlerAuth(sb.spotler_consumer_key, secret or sb.spotler_consumer_secret)
    return next(auth.auth_flow(request))


def test_sandbox_constants_are_the_documented_credentials(spotler_sandbox_clean: Sandbox):
    sb = spotler_sandbox_clean
    assert (sb.spotler_consumer_key, sb.spotler_consumer_secret) == (SANDBOX_SPOTLER_KEY, SANDBOX_SPOTLER_SECRET)
    assert sb.spotler_base_url == sb.url + "/spotler/integrationservice-1.1.0"
    assert sb.spotler_admin_url == sb.url + "/spotler/_admin"
    assert SANDBOX_SPOTLER_SECRET not in repr(sb)


def test_a_correctly_signed_request_is_served(spotler: httpx.Client):
    response = spotler.get("contact/properties/list")
    assert response.status_code == 200
    assert response.json()[0]["name"] == "email"


def test_signed_query_parameters_with_unicode_and_reserved_characters_verify(spotler: httpx.Client):
    response = spotler.get("contact/updates/list", params={"fromDate": "2026-10-25T02:30:00+01:00",
                                                           "toDate": "2026-10-26T00:00:00", "pageSize": "10"})
    assert response.status_code == 200, response.text
    external_id = "Zoë ’s-Hertogenbosch/1;2,3&4"
    spotler.post("contact", json={"update": True, "contact": {"externalId": external_id}}).raise_for_status()
    response = spotler.get("contact/" + quote(external_id, safe=""))
    assert response.status_code == 200, response.text
    assert response.json()["externalId"] == external_id


def test_unknown_consumer_key_is_auth_not_found(spotler_sandbox_clean: Sandbox):
    with spotler_client(spotler_sandbox_clean, key="someone-else") as client:
        response = client.get("contact/properties/list")
    assert response.status_code == 401
    assert response.json()["errorType"] == "AUTH_NOT_FOUND"


def test_wrong_secret_is_not_authorized(spotler_sandbox_clean: Sandbox):
    with spotler_client(spotler_sandbox_clean, secret="not-the-secret") as client:
        response = client.get("contact/properties/list")
    assert response.status_code == 401
    assert response.json() == {"errorType": "NOT_AUTHORIZED", "message": "Invalid OAuth signature"}


def test_missing_authorization_is_not_authorized(spotler_sandbox_clean: Sandbox):
    response = httpx.get(spotler_sandbox_clean.spotler_base_url + "/contact/properties/list")
    assert response.status_code == 401
    assert response.json()["errorType"] == "NOT_AUTHORIZED"


def test_tampered_query_fails_the_signature(spotler_sandbox_clean: Sandbox):
    request = signed(spotler_sandbox_clean, "GET", "contact/updates/list",
                     params={"fromDate": "2026-01-01T00:00:00Z"})
    request.url = request.url.copy_set_param("fromDate", "2020-01-01T00:00:00Z")
    response = httpx.Client().send(request)
    assert response.status_code == 401
    assert response.json()["errorType"] == "NOT_AUTHORIZED"


def test_tampered_path_or_method_fails_the_signature(spotler_sandbox_clean: Sandbox):
    sb = spotler_sandbox_clean
    request = signed(sb, "GET", "contact/A")
    request.url = request.url.copy_with(path=request.url.path[:-1] + "B")
    assert httpx.Client().send(request).status_code == 401
    request = signed(sb, "GET", "contact/A")
    assert httpx.Client().request("DELETE", request.url, headers=request.headers).status_code == 401


def test_body_is_not_signed(spotler_sandbox_clean: Sandbox):
    """Spotler signs only method, URL and query: a body changed after signing is accepted."""
    request = signed(spotler_sandbox_clean, "POST", "contact",
                     json={"update": True, "contact": {"externalId": "A"}})
    body = b'{"update":true,"contact":{"externalId":"B"}}'
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    response = httpx.post(str(request.url), content=body, headers=headers)
    assert response.status_code == 204
    assert spotler_sandbox_clean.spotler.account.get("B") is not None


def test_replayed_nonce_is_refused(spotler_sandbox_clean: Sandbox):
    request = signed(spotler_sandbox_clean, "GET", "contact/properties/list")
    with httpx.Client() as client:
        assert client.send(request).status_code == 200
        replay = client.send(request)
    assert replay.status_code == 401
    assert replay.json() == {"errorType": "NOT_AUTHORIZED", "message": "oauth_nonce was already used"}


@pytest.mark.parametrize("offset_s, status", [(-301, 401), (301, 401), (-290, 200), (290, 200)])
def test_timestamp_outside_300_seconds_is_refused(spotler_sandbox_clean: Sandbox, monkeypatch, offset_s, status):
    real = client_auth.generate_timestamp
    monkeypatch.setattr(client_auth, "generate_timestamp", lambda: str(int(real()) + offset_s))
    with spotler_client(spotler_sandbox_clean) as client:
        response = client.get("contact/properties/list")
    assert response.status_code == status
    if status == 401:
        assert response.json()["errorType"] == "NOT_AUTHORIZED"
        assert "timestamp" in response.json()["message"]


def test_oauth_parameters_in_the_query_string_are_accepted(spotler_sandbox_clean: Sandbox):
    sb = spotler_sandbox_clean
    auth = SpotlerAuth(sb.spotler_consumer_key, sb.spotler_consumer_secret, signature_type="QUERY")
    with httpx.Client(auth=auth) as client:
        response = client.get(sb.spotler_base_url + "/contact/properties/list")
    assert "oauth_signature=" in str(response.request.url)
    assert response.status_code == 200


def test_plaintext_signatures_are_refused(spotler_sandbox_clean: Sandbox):
    sb = spotler_sandbox_clean
    auth = SpotlerAuth(sb.spotler_consumer_key, sb.spotler_consumer_secret, signature_method="PLAINTEXT")
    with httpx.Client(auth=auth) as client:
        response = client.get(sb.spotler_base_url + "/contact/properties/list")
    assert response.status_code == 401
    assert response.json()["errorType"] == "NOT_AUTHORIZED"


def test_admin_needs_no_auth_and_unknown_paths_are_404(spotler_sandbox_clean: Sandbox, spotler: httpx.Client):
    assert httpx.get(spotler_sandbox_clean.spotler_admin_url + "/state").status_code == 200
    response = spotler.get("no/such/thing")
    assert response.status_code == 404
    assert response.json()["errorType"] == "RESOURCE_NOT_FOUND"
