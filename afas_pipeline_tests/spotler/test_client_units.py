"""Spotler client rules that need no Spotler: signing, secrets, date windows, Retry-After, results, and
what happens when nothing answers at all (a closed localhost port)."""

from __future__ import annotations

import logging
import pickle
import socket
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from types import SimpleNamespace

import httpx
import pydantic
import pytest
from oauthlib.oauth1.rfc5849 import signature as oauth_signature

from afas_pipeline.spotler import (
    ContactResult,
    SpotlerAuthError,
    SpotlerClient,
    SpotlerConfigError,
    SpotlerError,
    SpotlerUnavailable,
    SpotlerWriteIncomplete,
)
from afas_pipeline.spotler.client import _OneLeggedOAuth1, _retry_after, _window

KEY, SECRET = "unit-key", "unit-secret-do-not-leak"


def _signed(request: httpx.Request, secret: str = SECRET) -> tuple[httpx.Request, dict[str, str]]:
    """Send ``request`` through the signer into a transport that records what would go on the wire."""
    seen: list[httpx.Request] = []

    def record(req: httpx.Request) -> httpx.Response:
        req.read()
        seen.append(req)
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(record), auth=_OneLeggedOAuth1(KEY, secret)) as http:
        http.send(request)
    wire = seen[0]
    header = wire.headers["Authorization"]
    assert header.startswith("OAuth ")
    params = dict(oauth_signature.collect_parameters(headers={"Authorization": header}, exclude_oauth_signature=False))
    return wire, params


def _verifies(wire: httpx.Request, params: dict[str, str], secret: str) -> bool:
    """Check the signature the way a server does, with oauthlib: method, URL and query + oauth_* params."""
    collected = oauth_signature.collect_parameters(
        uri_query=wire.url.query.decode(), headers={"Authorization": wire.headers["Authorization"]}
    )
    base = oauth_signature.signature_base_string(
        wire.method, oauth_signature.base_string_uri(str(wire.url)), oauth_signature.normalize_parameters(collected)
    )
    one_leg = SimpleNamespace(client_secret=secret, resource_owner_secret=None)
    return oauth_signature.safe_string_equals(
        oauth_signature.sign_hmac_sha1_with_client(base, one_leg), params["oauth_signature"]
    )


# --- signing -------------------------------------------------------------------------------------


def test_a_json_body_is_sent_but_not_signed():
    body = b'{"update":true,"purge":false,"contacts":[{"externalId":"1"}]}'
    request = httpx.Request(
        "POST", "http://127.0.0.1:9/svc/contact/list", content=body, headers={"Content-Type": "application/json"}
    )
    wire, params = _signed(request)
    assert wire.content == body  # authlib's httpx adapter alone would send an empty body
    assert wire.headers["Content-Length"] == str(len(body))
    assert params["oauth_consumer_key"] == KEY
    assert params["oauth_signature_method"] == "HMAC-SHA1"
    assert params["oauth_version"] == "1.0"
    assert "oauth_token" not in params  # one leg: no token
    assert "oauth_body_hash" not in params  # Spotler does not sign the body
    assert _verifies(wire, params, SECRET)
    assert not _verifies(wire, params, "another-secret")


def test_query_parameters_are_signed():
    request = httpx.Request(
        "GET", "http://127.0.0.1:9/svc/contact/updates/list",
        params={"fromDate": "2026-10-25T00:00:00+00:00", "toDate": "2026-10-25T01:00:00+00:00", "after": "0"},
    )
    wire, params = _signed(request)
    assert _verifies(wire, params, SECRET)
    tampered = httpx.Request("GET", wire.url.copy_set_param("after", "1000"), headers=wire.headers)
    assert not _verifies(tampered, params, SECRET)


def test_each_request_gets_a_fresh_nonce():
    _, first = _signed(httpx.Request("GET", "http://127.0.0.1:9/svc/contact/properties/list"))
    _, second = _signed(httpx.Request("GET", "http://127.0.0.1:9/svc/contact/properties/list"))
    assert first["oauth_nonce"] != second["oauth_nonce"]
    assert abs(int(first["oauth_timestamp"]) - datetime.now(timezone.utc).timestamp()) < 60


# --- secrets -------------------------------------------------------------------------------------


def test_the_secret_is_not_in_repr_or_str():
    client = SpotlerClient(consumer_key=KEY, consumer_secret=SECRET)
    for text in (repr(client), str(client), f"{client}"):
        assert SECRET not in text
        assert "redacted" in text


def test_errors_scrub_a_secret_echoed_by_the_server():
    client = SpotlerClient(consumer_key=KEY, consumer_secret=SECRET)
    response = httpx.Response(
        401, json={"errorType": "NOT_AUTHORIZED", "message": f"bad signature for secret {SECRET}"},
        request=httpx.Request("GET", "http://127.0.0.1:9/svc/contact/x"),
    )
    error = client._error_from(response, "GET", "contact/x")
    assert isinstance(error, SpotlerAuthError)
    assert SECRET not in str(error) and SECRET not in repr(error.__dict__)
    assert "secret" in str(error) and "NOT_AUTHORIZED" in str(error)


def test_unknown_key_is_named_as_such():
    client = SpotlerClient(consumer_key=KEY, consumer_secret=SECRET)
    response = httpx.Response(
        401, json={"errorType": "AUTH_NOT_FOUND", "message": "unknown key"},
        request=httpx.Request("GET", "http://127.0.0.1:9/svc/contact/x"),
    )
    error = client._error_from(response, "GET", "contact/x")
    assert isinstance(error, SpotlerAuthError)
    assert "does not know this consumer key" in str(error)


def test_errors_survive_pickling_with_their_fields():
    error = SpotlerAuthError("refused", endpoint="contact/list", status_code=401, error_type="NOT_AUTHORIZED")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is SpotlerAuthError
    assert (copy.endpoint, copy.status_code, copy.error_type) == ("contact/list", 401, "NOT_AUTHORIZED")
    assert str(copy) == str(error)


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [0, 1001])
def test_batch_size_must_fit_spotlers_limit(batch_size):
    with pytest.raises(pydantic.ValidationError):
        SpotlerClient(consumer_key=KEY, consumer_secret=SECRET, batch_size=batch_size)


def test_a_contact_without_external_id_is_refused_before_anything_is_sent():
    client = SpotlerClient(base_url="http://127.0.0.1:9/svc", consumer_key=KEY, consumer_secret=SECRET)
    with pytest.raises(ValueError, match="contact 1 has no externalId"):
        client.upsert_contacts([{"externalId": "1"}, {"properties": {"email": "a@b.nl"}}])
    assert client.stats.requests == 0


def test_update_contact_refuses_a_conflicting_external_id():
    client = SpotlerClient(base_url="http://127.0.0.1:9/svc", consumer_key=KEY, consumer_secret=SECRET)
    with pytest.raises(ValueError, match="differs"):
        client.update_contact("1", {"externalId": "2"})
    assert client.stats.requests == 0


def test_an_unknown_interaction_kind_is_refused():
    client = SpotlerClient(base_url="http://127.0.0.1:9/svc", consumer_key=KEY, consumer_secret=SECRET)
    with pytest.raises(ValueError, match="kind must be one of"):
        client.interactions("unsubscribed")  # type: ignore[arg-type]


def test_no_contacts_means_no_request():
    client = SpotlerClient(base_url="http://127.0.0.1:9/svc", consumer_key=KEY, consumer_secret=SECRET)
    assert client.upsert_contacts([]) == []
    assert client.stats.requests == 0


# --- date windows --------------------------------------------------------------------------------


def test_windows_are_sent_with_an_explicit_utc_offset():
    amsterdam_summer = timezone(timedelta(hours=2))
    start = datetime(2026, 10, 25, 2, 30, tzinfo=amsterdam_summer)  # 00:30 UTC
    assert _window(start, start + timedelta(hours=1)) == {
        "fromDate": "2026-10-25T00:30:00+00:00",
        "toDate": "2026-10-25T01:30:00+00:00",
    }


def test_a_window_with_sub_second_bounds_is_widened_not_narrowed():
    start = datetime(2026, 3, 29, 0, 59, 59, 900_000, tzinfo=timezone.utc)
    end = datetime(2026, 3, 29, 1, 0, 0, 100_000, tzinfo=timezone.utc)
    assert _window(start, end) == {"fromDate": "2026-03-29T00:59:59+00:00", "toDate": "2026-03-29T01:00:01+00:00"}


def test_naive_and_reversed_windows_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        _window(datetime(2026, 1, 1), datetime(2026, 1, 2, tzinfo=timezone.utc))
    with pytest.raises(ValueError, match="before start"):
        _window(datetime(2026, 1, 2, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc))


# --- Retry-After ---------------------------------------------------------------------------------


def _response(status: int, *, headers: dict | None = None, json: object = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json=json, request=httpx.Request("GET", "http://127.0.0.1:9/"))


def test_retry_after_in_seconds_as_an_http_date_or_in_the_body():
    assert _retry_after(_response(429, headers={"Retry-After": "7"})) == 7.0
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    assert 100 < _retry_after(_response(503, headers={"Retry-After": format_datetime(later, usegmt=True)})) <= 120
    assert _retry_after(_response(503, json={"errorType": "BACKEND_EXCEPTION", "retry_after": 3})) == 3.0
    assert _retry_after(_response(503, json={"errorType": "BACKEND_EXCEPTION"})) is None


# --- results -------------------------------------------------------------------------------------


def test_contact_result_ok_only_for_code_ok():
    assert ContactResult("1", "OK", None, 200).ok
    assert not ContactResult("1", "PROPERTY_INVALID", "bad e-mail", 200).ok
    assert not ContactResult("1", "ok").ok  # Spotler's codes are upper case; anything else is suspect


# --- nothing answers -----------------------------------------------------------------------------


@pytest.fixture
def closed_port_url() -> str:
    """A localhost URL on which nothing listens (connection refused, immediately)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/integrationservice-1.1.0"


def test_network_failures_are_retried_then_reported_as_an_outage(closed_port_url, caplog):
    client = SpotlerClient(
        base_url=closed_port_url, consumer_key=KEY, consumer_secret=SECRET, max_attempts=3, backoff_initial_s=0.001,
        backoff_max_s=0.01, batch_size=2,
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(SpotlerWriteIncomplete, match="2 of 2 batches") as raised:
        client.upsert_contacts([{"externalId": str(i), "properties": {"email": f"x{i}@example.nl"}} for i in range(3)])
    assert isinstance(raised.value.cause, SpotlerUnavailable) and raised.value.status_code is None
    stats = client.stats
    assert (stats.batches, stats.requests, stats.retries, stats.contacts_sent, stats.contacts_failed) == (2, 6, 4, 3, 0)
    assert "example.nl" not in caplog.text and SECRET not in caplog.text


def test_a_read_that_never_gets_an_answer_raises_unavailable(closed_port_url):
    client = SpotlerClient(
        base_url=closed_port_url, consumer_key=KEY, consumer_secret=SECRET, max_attempts=2, backoff_initial_s=0.001,
    )
    with pytest.raises(SpotlerUnavailable, match="after 2 attempt") as raised:
        client.properties()
    assert isinstance(raised.value, SpotlerError)
    assert client.stats.requests == 2


@pytest.mark.parametrize("url", ["ftp://example.invalid/svc", "http://restapi.example.invalid/svc"])
def test_a_base_url_that_cannot_carry_oauth1_is_a_configuration_error(url):
    client = SpotlerClient(base_url=url, consumer_key=KEY, consumer_secret=SECRET)
    with pytest.raises(SpotlerConfigError, match="https"):
        client.properties()
    assert client.stats.requests == 0
