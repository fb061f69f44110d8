"""Mailchimp client rules that need no Mailchimp: subscriber hashes, the API root from the key, malformed
keys, results, pickled errors, and how answers are classified (through an httpx mock transport)."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
import orjson
import pandas as pd
import pydantic
import pytest

from afas_pipeline.mailchimp import (
    MailchimpAuthError,
    MailchimpClient,
    MailchimpConfigError,
    MailchimpRequestError,
    MailchimpUnavailable,
    MailchimpWriteIncomplete,
    MemberResult,
    MemberWrite,
    WriteStats,
    api_root_for_key,
    subscriber_hash,
)
from afas_pipeline.mailchimp.adapter import mailchimp_time

KEY = "0123456789abcdef0123456789abcdef-us21"
ROOT = "https://us21.api.mailchimp.com/3.0"
FAST = {"backoff_initial_s": 0.0, "backoff_max_s": 0.0}


def problem(status: int, title: str, detail: str = "", **extra) -> httpx.Response:
    body = {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title, "status": status,
            "detail": detail, "instance": "00000000-0000-0000-0000-000000000000", **extra}
    return httpx.Response(status, content=orjson.dumps(body), headers={"Content-Type": "application/problem+json"})


def mocked(answers: list[httpx.Response] | Callable[[httpx.Request], httpx.Response], **config) -> MailchimpClient:
    """A client whose HTTP goes to a mock transport answering from `answers` in turn (or a function)."""
    queue = list(answers) if isinstance(answers, list) else None

    def answer(request: httpx.Request) -> httpx.Response:
        return queue.pop(0) if queue is not None else answers(request)

    client = MailchimpClient(api_key=KEY, list_id="abc123", **{**FAST, **config})
    client._http = httpx.Client(base_url=ROOT + "/", transport=httpx.MockTransport(answer),
                                auth=httpx.BasicAuth("x", KEY))
    return client


def member_answer(email: str) -> httpx.Response:
    return httpx.Response(200, json={"id": subscriber_hash(email), "email_address": email, "status": "subscribed"})


def a_write(email: str = "a@voorbeeld.example") -> MemberWrite:
    return MemberWrite("1", subscriber_hash(email), {"email_address": email, "status_if_new": "subscribed"})


# --- hashes, keys, settings ------------------------------------------------------------------------


def test_subscriber_hash_is_md5_of_the_trimmed_lower_cased_address():
    assert subscriber_hash("  Anna.de.Vries@Voorbeeld.EXAMPLE \n") == hashlib.md5(
        b"anna.de.vries@voorbeeld.example").hexdigest()
    assert subscriber_hash("a@b.nl") == "ad66bdd4c74d50c1f4203b5e5321e085"
    assert subscriber_hash("A@B.NL") == subscriber_hash("a@b.nl")


def test_the_api_root_comes_from_the_keys_data_centre_unless_given():
    assert api_root_for_key(KEY) == ROOT
    assert api_root_for_key("ffffffffffffffffffffffffffffffff-us6") == "https://us6.api.mailchimp.com/3.0"
    assert MailchimpClient(api_key=KEY, list_id="x").api_root() == ROOT
    given = MailchimpClient(api_key=KEY, list_id="x", base_url="http://127.0.0.1:9/mailchimp/3.0/")
    assert given.api_root() == "http://127.0.0.1:9/mailchimp/3.0"


@pytest.mark.parametrize("bad", [
    "not-a-key",
    "0123456789abcdef0123456789abcdef",  # no data centre
    "0123456789abcdef0123456789abcdef-",
    "0123456789ABCDEF0123456789ABCDEF-us21",
    "0123456789abcdef0123456789abcde-us21",  # 31 hex
    "0123456789abcdef0123456789abcdef-us21\nX-Injected: 1",
    "",
])
def test_a_malformed_key_is_one_clear_line_naming_the_setting_never_the_key(bad):
    client = MailchimpClient(api_key=bad, list_id="x")
    with pytest.raises(MailchimpConfigError) as raised:
        client.api_root()
    with pytest.raises(ValueError):  # a config error is also a ValueError
        client.ping()
    text = str(raised.value)
    assert "api_key" in text and "MAILCHIMP_API_KEY" in text and "\n" not in text
    if bad:
        assert bad not in text and bad[:16] not in text and bad[:16] not in repr(client)
    assert "<invalid api_key>" in repr(client)


def test_repr_and_str_redact_the_key():
    client = MailchimpClient(api_key=KEY, list_id="x")
    for text in (repr(client), str(client)):
        assert KEY not in text and "0123456789abcdef" not in text and "api_key=<redacted>" in text
        assert ROOT in text


def test_plain_http_elsewhere_than_this_machine_is_refused_before_sending_the_key():
    client = MailchimpClient(api_key=KEY, list_id="x", base_url="http://mailchimp.example.com/3.0")
    with pytest.raises(MailchimpConfigError, match="unencrypted"):
        client.ping()
    assert client.stats.requests == 0


@pytest.mark.parametrize("field, value", [("max_concurrency", 11), ("batch_size", 501), ("page_size", 1001)])
def test_limits_of_mailchimp_are_enforced_in_the_settings(field, value):
    with pytest.raises(pydantic.ValidationError) as raised:
        MailchimpClient(api_key=KEY, list_id="x", **{field: value})
    assert KEY not in str(raised.value)


# --- results, stats, errors ------------------------------------------------------------------------


@pytest.mark.parametrize("code, ok, consent", [
    ("OK", True, False),
    ("Member In Compliance State", False, True),
    ("Forgotten Email Not Subscribed", False, True),
    ("Invalid Resource", False, False),
    ("Member Exists", False, False),
    ("Resource Not Found", False, False),
])
def test_result_ok_and_consent_refusal(code, ok, consent):
    result = MemberResult("7", code)
    assert (result.ok, result.consent_refusal) == (ok, consent)


def test_write_stats_as_metadata():
    assert WriteStats(1, 2, 3, 4, 5, 6).as_metadata() == {"requests": 1, "retries": 2, "members_sent": 3,
                                                          "members_failed": 4, "batches": 5,
                                                          "members_created_in_bulk": 6}


def test_errors_survive_pickling_with_their_fields():
    error = MailchimpWriteIncomplete("2 of 3 member writes got no answer", endpoint="PUT x", status_code=503,
                                     title="Service Unavailable", detail="down\nfor a while")
    error.results, error.unanswered = [MemberResult("1", "OK", None, 200, "h")], ["2", "3"]
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MailchimpWriteIncomplete and isinstance(copy, MailchimpUnavailable)
    assert (copy.status_code, copy.title, copy.detail) == (503, "Service Unavailable", "down\\nfor a while")
    assert copy.results == error.results and copy.unanswered == ["2", "3"] and str(copy) == str(error)


@pytest.mark.parametrize("write, message", [
    (MemberWrite("", "0" * 32, {"email_address": "a@b.nl"}), "no external_id"),
    (MemberWrite("1", "a@b.nl", {"email_address": "a@b.nl"}), "subscriber_hash"),
    (MemberWrite("1", "0" * 32, {"status": "subscribed"}), "email_address"),
])
def test_malformed_writes_are_refused_before_anything_is_sent(write, message):
    client = mocked([])
    with pytest.raises(ValueError, match=message) as raised:
        client.put_members([a_write(), write])
    assert "a@b.nl" not in str(raised.value)
    assert client.stats.requests == 0


def test_members_changed_wants_aware_times():
    with pytest.raises(ValueError, match="timezone-aware"):
        mocked([]).members_changed(datetime(2026, 1, 1))


# --- answers, through a mock transport -------------------------------------------------------------


def test_a_bare_403_and_a_429_are_retried():
    client = mocked([httpx.Response(403), problem(429, "Too Many Requests"), member_answer("a@voorbeeld.example")])
    (result,) = client.put_members([a_write()])
    assert result.ok and client.stats.retries == 2 and client.stats.requests == 3


def test_a_403_with_a_body_is_an_auth_error_at_once():
    client = mocked([problem(403, "Forbidden", "You don't have permission to access this resource")])
    with pytest.raises(MailchimpAuthError, match="check the API key") as raised:
        client.put_members([a_write()])
    assert raised.value.status_code == 403 and client.stats.requests == 1


def test_a_refusal_carries_title_detail_and_field_errors():
    answer = problem(400, "Invalid Resource", "Your merge fields were invalid.",
                     errors=[{"field": "ADDRESS", "message": "Please enter a complete address"}])
    (result,) = mocked([answer]).put_members([a_write()])
    assert result == MemberResult("1", "Invalid Resource",
                                  "Your merge fields were invalid. (ADDRESS: Please enter a complete address)", 400, None,
                                  ("ADDRESS",))


def test_a_refusal_without_problem_body_is_http_status():
    (result,) = mocked([httpx.Response(413, text="too large")]).put_members([a_write()])
    assert (result.code, result.status_code) == ("HTTP_413", 413)


def test_a_retry_after_beyond_the_limit_is_not_waited_for():
    client = mocked([httpx.Response(503, headers={"Retry-After": "3600"})], max_retry_after_s=60)
    with pytest.raises(MailchimpWriteIncomplete, match="got no answer"):
        client.put_members([a_write()])
    assert client.stats.requests == 1


def test_a_read_refusal_raises_request_error_and_a_404_member_is_none():
    client = mocked([problem(404, "Resource Not Found"), problem(400, "Invalid Resource", "bad count")])
    assert client.get_member("0" * 32) is None
    with pytest.raises(MailchimpRequestError) as raised:
        client.merge_fields()
    assert (raised.value.status_code, raised.value.title, raised.value.detail) == (400, "Invalid Resource", "bad count")


def test_the_key_is_scrubbed_from_what_mailchimp_echoes():
    client = mocked([problem(400, "Invalid Resource", f"key {KEY} echoed")])
    with pytest.raises(MailchimpRequestError) as raised:
        client.ping()
    assert KEY not in str(raised.value) and "<redacted>" in raised.value.detail


def test_members_changed_pages_until_total_items_and_drops_later_changes():
    since = datetime(2026, 10, 25, 0, 0, 0, 700000, tzinfo=timezone.utc)
    until = datetime(2026, 10, 25, 1, 0, tzinfo=timezone.utc)
    rows = [{"contact_id": f"c{i}", "email_address": f"m{i}@v.example", "last_changed": f"2026-10-25T0{i % 3}:00:00+00:00"}
            for i in range(5)]
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        offset, count = int(request.url.params["offset"]), int(request.url.params["count"])
        return httpx.Response(200, json={"members": rows[offset: offset + count], "total_items": len(rows)})

    changed = mocked(answer, page_size=2).members_changed(since, until)
    assert [m["contact_id"] for m in changed] == ["c0", "c1", "c3", "c4"]  # c2 changed at 02:00, after until
    assert sorted(r.url.params["offset"] for r in seen) == ["0", "2", "4"]  # pages after the first: side by side
    assert {r.url.params["since_last_changed"] for r in seen} == {"2026-10-25T00:00:00+00:00"}
    assert all("status" not in r.url.params for r in seen), "every status"


def test_a_page_shorter_than_asked_before_the_end_is_followed_by_the_offset_after_it():
    """The pages read ahead are asked for at the offsets of full pages; when one comes back short, the read goes on
    where a read page after page would, so no member between is missed (the pages asked for beyond are dropped)."""
    rows = [{"contact_id": f"c{i}", "email_address": f"m{i}@v.example", "last_changed": "2026-10-25T00:00:00+00:00"}
            for i in range(10)]
    seen: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        offset, count = int(request.url.params["offset"]), int(request.url.params["count"])
        seen.append(offset)
        count = 2 if offset == 3 else count  # Mailchimp sends 2 of the 3 asked for
        return httpx.Response(200, json={"members": rows[offset: offset + count], "total_items": len(rows)})

    pages = list(mocked(answer, page_size=3).members_changed_pages(datetime(2026, 10, 25, tzinfo=timezone.utc)))
    assert [[m["contact_id"] for m in page] for page in pages] == [["c0", "c1", "c2"], ["c3", "c4"],
                                                                    ["c5", "c6", "c7"], ["c8", "c9"]]
    assert {5, 8} <= set(seen) and len(seen) == len(set(seen))


def test_the_key_may_come_from_the_environment_at_run_time(monkeypatch):
    import dagster as dg

    monkeypatch.setenv("UNIT_MAILCHIMP_KEY", KEY)
    client = MailchimpClient(api_key=dg.EnvVar("UNIT_MAILCHIMP_KEY"), list_id="x")
    assert "read at run time" in repr(client)
    seen: list[str] = []

    @dg.asset
    def probe(mailchimp: MailchimpClient) -> None:
        seen.append(mailchimp.api_root())
        seen.append(repr(mailchimp))

    assert dg.materialize([probe], resources={"mailchimp": client}).success
    assert seen[0] == ROOT and KEY not in seen[1] and ROOT in seen[1]


@pytest.mark.parametrize("text", [
    "2026-11-16T10:05:00+00:00", "2026-11-16T10:05:00Z", "2026-11-16T11:05:00+01:00", "2026-11-16T10:05:00",
    "2026-11-16T10:05:00.123456+00:00", "2026-03-29T01:30:00-02:30", "16 Nov 2026 10:05:00 +0100",
])
def test_a_mailchimp_time_is_the_instant_pandas_reads_in_utc(text):
    stamp = pd.Timestamp(text)
    expected = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()
    when = mailchimp_time(text)
    assert when == expected and when.utcoffset() == timedelta(0)
    assert mailchimp_time(None) == mailchimp_time("") == datetime(1970, 1, 1, tzinfo=timezone.utc)


def test_which_writes_batch_subscribe_may_create_and_their_units():
    from afas_pipeline.mailchimp.client import _units

    def new(i: int, **body) -> MemberWrite:
        email = f"lid{i}@voorbeeld.example"
        return MemberWrite(str(i), subscriber_hash(email), {"email_address": email, "status_if_new": "subscribed",
                                                             **body}, new=True)

    renamed = MemberWrite("r", subscriber_hash("oud@voorbeeld.example"),
                          {"email_address": "nieuw@voorbeeld.example", "status_if_new": "subscribed"}, new=True)
    assert new(1).bulk and new(1, merge_fields={"FNAME": "A"}).bulk
    assert not new(1, status="pending").bulk, "a status is for a member Mailchimp has"
    assert not new(1, tags=["x"]).bulk and not renamed.bulk
    assert not MemberWrite("1", new(1).subscriber_hash, new(1).body).bulk, "not new to the sync"
    writes = [new(0), new(1), new(2, status="pending"), new(3), new(4), new(5), renamed, new(7)]
    assert _units(writes, 500) == [[0, 1], [2], [3, 4, 5], [6], [7]]
    assert _units(writes, 4) == [[0, 1], [2], [3], [4, 5], [6], [7]], "a unit stays inside its group"
    assert _units([new(i) for i in range(1_001)], 2_000) == [list(range(500)), list(range(500, 1_000)), [1_000]]
