"""The Mailchimp client against the Mailchimp emulator over real HTTP: upserts, merges, renames, consent
refusals as results, retries under injected faults, unanswered writes, paging and the API key kept out of
every text."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Iterator

import httpx
import pytest

from afas_pipeline.mailchimp import (
    MailchimpAuthError,
    MailchimpClient,
    MailchimpUnavailable,
    MailchimpWriteIncomplete,
    MemberResult,
    MemberWrite,
    subscriber_hash,
)
from afas_pipeline.mailchimp.client import PAGES_AHEAD
from afas_pipeline_tests.waiting import wait_until

FAST = {"backoff_initial_s": 0.001, "backoff_max_s": 0.01}
MEMBER_PUT = "PUT lists/{list_id}/members/{subscriber_hash}"
MEMBERS_GET = "GET lists/{list_id}/members"
BATCH_POST = "POST lists/{list_id}"


def make_client(sb, **overrides) -> MailchimpClient:
    config = {"api_key": sb.mailchimp_api_key, "base_url": sb.mailchimp_base_url, "list_id": sb.mailchimp_list_id,
              **FAST, **overrides}
    return MailchimpClient(**config)


@pytest.fixture
def sb(mailchimp_sandbox_clean):
    return mailchimp_sandbox_clean


@pytest.fixture
def admin(sb) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.mailchimp_admin_url + "/", timeout=30) as client:
        yield client


@pytest.fixture
def rest(sb) -> Iterator[httpx.Client]:
    """Mailchimp's REST API used directly, for what the client does not do (delete-permanent)."""
    with httpx.Client(base_url=sb.mailchimp_base_url + "/", auth=("x", sb.mailchimp_api_key), timeout=30) as client:
        yield client


@pytest.fixture
def client(sb) -> Iterator[MailchimpClient]:
    with make_client(sb) as mailchimp:
        yield mailchimp


def address(i: int | str) -> str:
    return f"lid{i}@voorbeeld.example"


def write(i: int | str, email: str | None = None, *, old: str | None = None, new: bool = False,
          **body) -> MemberWrite:
    """A PUT of member `i`: new members subscribed; `old` names the address to rename from; `new`: a member the
    sync has no record of (batch subscribe may create it)."""
    email = email or address(i)
    doc = {"email_address": email, "status_if_new": "subscribed", **body}
    return MemberWrite(str(i), subscriber_hash(old or email), doc, new=new)


def stored(admin: httpx.Client, key: str) -> dict | None:
    response = admin.get(f"members/{key}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def set_faults(admin: httpx.Client, **faults) -> None:
    admin.put("faults", json=faults).raise_for_status()


def server_requests(admin: httpx.Client, key: str) -> int:
    return admin.get("stats").json()["requests"].get(key, 0)


def set_clock(admin: httpx.Client, offset_s: int) -> dt.datetime:
    response = admin.put("clock", json={"offset_s": offset_s})
    response.raise_for_status()
    return dt.datetime.fromisoformat(response.json()["now"])


# --- writes ----------------------------------------------------------------------------------------


def test_a_new_member_is_created_with_status_if_new(admin, client):
    (result,) = client.put_members([write(1, merge_fields={"FNAME": "Anna", "LNAME": "de Vries"})])
    assert result == MemberResult("1", "OK", None, 200, subscriber_hash(address(1)))
    member = stored(admin, address(1))
    assert member["status"] == "subscribed"
    assert (member["merge_fields"]["FNAME"], member["merge_fields"]["LNAME"]) == ("Anna", "de Vries")
    assert client.get_member(result.subscriber_hash)["email_address"] == address(1)
    assert client.stats.members_sent == 1 and client.stats.members_failed == 0


def test_an_update_merges_and_keeps_the_status_when_none_is_sent(admin, client):
    client.put_members([write(1, merge_fields={"FNAME": "Anna", "LNAME": "de Vries"})])
    admin.post(f"members/{address(1)}/unsubscribe", json={}).raise_for_status()
    (result,) = client.put_members([write(1, merge_fields={"FNAME": "Annie"})])
    assert result.ok
    member = stored(admin, address(1))
    assert member["merge_fields"]["FNAME"] == "Annie"
    assert member["merge_fields"]["LNAME"] == "de Vries", "a field left out is kept"
    assert member["status"] == "unsubscribed", "status_if_new does not touch an existing member"


def test_a_rename_addresses_the_old_hash_and_gives_the_new_one(admin, client):
    client.put_members([write(1, "oud@voorbeeld.example")])
    (result,) = client.put_members([write(1, "Nieuw@Voorbeeld.example", old="oud@voorbeeld.example")])
    assert result.ok and result.subscriber_hash == subscriber_hash("nieuw@voorbeeld.example")
    assert client.get_member(subscriber_hash("oud@voorbeeld.example")) is None
    assert client.get_member(result.subscriber_hash)["email_address"] == "Nieuw@Voorbeeld.example"
    assert len(admin.get("members").json()) == 1


def test_a_rename_onto_another_members_address_is_member_exists(client):
    client.put_members([write(1), write(2)])
    (result,) = client.put_members([write(1, address(2), old=address(1))])
    assert (result.code, result.status_code, result.subscriber_hash) == ("Member Exists", 400, None)
    assert not result.ok and not result.consent_refusal
    assert client.get_member(subscriber_hash(address(1))) is not None


def test_resubscribing_an_unsubscribed_member_is_a_consent_refusal(admin, client):
    client.put_members([write(1)])
    admin.post(f"members/{address(1)}/unsubscribe", json={}).raise_for_status()
    (result,) = client.put_members([write(1, status="subscribed")])
    assert result.code == "Member In Compliance State" and result.status_code == 400
    assert result.consent_refusal and not result.ok
    assert "compliance state" in result.message
    assert stored(admin, address(1))["status"] == "unsubscribed"
    assert client.stats.members_failed == 0, "a consent refusal is an outcome, not a failure"


def test_a_permanently_deleted_address_is_forgotten(rest, sb, client):
    client.put_members([write(1)])
    rest.post(f"lists/{sb.mailchimp_list_id}/members/{subscriber_hash(address(1))}/actions/delete-permanent"
              ).raise_for_status()
    (result,) = client.put_members([write(1, status_if_new="pending")])
    assert result.code == "Forgotten Email Not Subscribed" and result.consent_refusal
    assert client.get_member(subscriber_hash(address(1))) is None


def test_an_invalid_merge_field_is_a_result_and_the_others_are_written(admin, client):
    results = client.put_members([
        write(1, merge_fields={"ADDRESS": {"addr1": "Dorpsstraat 1", "city": "Utrecht"}}),
        write(2, merge_fields={"FNAME": "Bram"}),
    ])
    assert [r.code for r in results] == ["Invalid Resource", "OK"]
    assert results[0].status_code == 400 and "ADDRESS: Please enter a complete address" in results[0].message
    assert stored(admin, address(1)) is None and stored(admin, address(2)) is not None
    assert client.stats.members_failed == 1


def test_results_come_in_input_order_with_parallel_writes(admin, sb):
    with make_client(sb, max_concurrency=8) as client:
        results = client.put_members([write(i) for i in range(40)])
    assert [r.external_id for r in results] == [str(i) for i in range(40)]
    assert [r.subscriber_hash for r in results] == [subscriber_hash(address(i)) for i in range(40)]
    assert admin.get("stats").json()["peak_concurrency"] > 1
    assert len(admin.get("members").json()) == 40


def test_on_batch_receives_every_result_once_in_groups(sb):
    calls: list[list[MemberResult]] = []
    threads: set[str] = set()

    def on_batch(results: list[MemberResult]) -> None:
        calls.append(results)
        threads.add(threading.current_thread().name)

    with make_client(sb, batch_size=5, max_concurrency=4) as client:
        results = client.put_members([write(i) for i in range(23)], on_batch=on_batch)
        assert client.stats.batches == 5
    assert sorted(len(c) for c in calls) == [3, 5, 5, 5, 5]
    handed = [r for call in calls for r in call]
    assert sorted(handed, key=lambda r: int(r.external_id)) == results
    for call in calls:  # a group is 5 consecutive writes, in order
        ids = [int(r.external_id) for r in call]
        assert ids == list(range(ids[0], ids[0] + len(ids))) and ids[0] % 5 == 0
    assert all(name.startswith("mailchimp-put") for name in threads)


def test_writes_touching_one_member_go_one_at_a_time_and_the_last_wins(admin, sb):
    writes = [write("a", merge_fields={"FNAME": f"Versie {n}"}) for n in range(6)]
    with make_client(sb, max_concurrency=8) as client:
        assert all(r.ok for r in client.put_members(writes))
    assert stored(admin, address("a"))["merge_fields"]["FNAME"] == "Versie 5"
    assert admin.get("stats").json()["peak_concurrency"] == 1


# --- new members: batch subscribe ------------------------------------------------------------------


STATUSES = ("subscribed", "transactional", "cleaned")


def test_new_members_are_created_by_batch_subscribe_500_a_call_with_their_status(admin, sb):
    writes = [write(i, new=True, status_if_new=STATUSES[i % 3], merge_fields={"FNAME": f"Lid {i}"})
              for i in range(1_000)]
    calls: list[list[MemberResult]] = []
    with make_client(sb) as client:
        results = client.put_members(writes, on_batch=calls.append)
        stats = client.stats
    assert results == [MemberResult(str(i), "OK", None, 200, subscriber_hash(address(i))) for i in range(1_000)]
    assert server_requests(admin, BATCH_POST) == 2 and server_requests(admin, MEMBER_PUT) == 0
    assert (stats.requests, stats.members_sent, stats.members_created_in_bulk) == (2, 1_000, 1_000)
    assert sorted(len(c) for c in calls) == [500, 500]
    members = {m["email_address"]: m for m in admin.get("members").json()}
    assert len(members) == 1_000
    assert all(members[address(i)]["status"] == STATUSES[i % 3] for i in range(1_000))
    assert members[address(7)]["merge_fields"]["FNAME"] == "Lid 7"


def test_one_call_at_a_time_still_creates_new_members_by_batch_subscribe(admin, sb):
    with make_client(sb, max_concurrency=1, batch_size=3) as client:
        results = client.put_members([write(i, new=True) for i in range(7)] + [write(9)])
    assert [r.code for r in results] == ["OK"] * 8
    assert server_requests(admin, BATCH_POST) == 2, "groups of 3: two batches, the 7th member alone"
    assert server_requests(admin, MEMBER_PUT) == 2 and admin.get("stats").json()["peak_concurrency"] == 1


def test_a_new_member_mailchimp_already_has_gets_its_put_and_keeps_its_status(admin, client):
    client.put_members([write(1, merge_fields={"FNAME": "Anna"})])
    admin.post(f"members/{address(1)}/unsubscribe", json={}).raise_for_status()
    results = client.put_members([write(i, new=True, merge_fields={"FNAME": f"Nieuw {i}"}) for i in range(4)])
    assert [r.code for r in results] == ["OK"] * 4
    assert server_requests(admin, BATCH_POST) == 1
    assert server_requests(admin, MEMBER_PUT) == 2, "the first member's creation, then its PUT after the batch"
    member = stored(admin, address(1))
    assert member["status"] == "unsubscribed", "batch subscribe never updates: the opt-out stands"
    assert member["merge_fields"]["FNAME"] == "Nieuw 1"
    assert client.stats.members_created_in_bulk == 3


def test_a_forgotten_address_and_an_invalid_field_among_new_members_are_refused_by_their_put(rest, sb, admin, client):
    client.put_members([write(1)])
    rest.post(f"lists/{sb.mailchimp_list_id}/members/{subscriber_hash(address(1))}/actions/delete-permanent"
              ).raise_for_status()
    results = client.put_members([
        write(0, new=True), write(1, new=True),
        write(2, new=True, merge_fields={"ADDRESS": {"addr1": "Dorpsstraat 1", "city": "Utrecht"}}),
    ])
    assert [r.code for r in results] == ["OK", "Forgotten Email Not Subscribed", "Invalid Resource"]
    assert results[1].consent_refusal and results[2].fields == ("ADDRESS",)
    assert server_requests(admin, MEMBER_PUT) == 1 + 2
    assert client.stats.members_failed == 1
    assert stored(admin, address(2)) is None


def test_a_batch_whose_answer_was_lost_is_settled_by_the_puts_of_its_members(sb, admin, client):
    """The first attempt creates the members and its answer is lost; the retry finds them all there: each gets its
    PUT, and nobody is created twice or changed in status."""
    seed = next(s for s in range(1000) if _draws(s, 2) == [True, False])
    set_faults(admin, drop_rate=0.5, methods=["POST"], seed=seed)
    writes = [write(i, new=True, status_if_new=STATUSES[i % 3]) for i in range(6)]
    results = client.put_members(writes)
    assert [r.code for r in results] == ["OK"] * 6
    assert admin.get("stats").json()["faults"]["drop"] == 1
    assert server_requests(admin, BATCH_POST) == 2 and server_requests(admin, MEMBER_PUT) == 6
    members = {m["email_address"]: m["status"] for m in admin.get("members").json()}
    assert members == {address(i): STATUSES[i % 3] for i in range(6)}
    assert client.stats.members_created_in_bulk == 0


def test_a_batch_mailchimp_never_answers_leaves_its_members_unanswered_without_a_put_each(sb, admin):
    set_faults(admin, error_503_rate=1.0, methods=["POST"])
    with make_client(sb, max_attempts=3) as client:
        with pytest.raises(MailchimpWriteIncomplete) as raised:
            client.put_members([write(i, new=True) for i in range(5)] + [write(9)])
    assert raised.value.unanswered == ["0", "1", "2", "3", "4"]
    assert [r.external_id for r in raised.value.results] == ["9"]
    assert server_requests(admin, BATCH_POST) == 3 and server_requests(admin, MEMBER_PUT) == 1


# --- keys and authentication -----------------------------------------------------------------------


def test_a_wrong_key_raises_auth_error_at_once_and_never_shows_a_key(sb, admin, caplog):
    wrong = "0123456789abcdef0123456789abcdef-us21"
    with make_client(sb, api_key=wrong) as client, caplog.at_level(logging.DEBUG):
        with pytest.raises(MailchimpAuthError, match="check the API key") as raised:
            client.put_members([write(i) for i in range(20)])
        assert client.stats.requests <= client.max_concurrency, "no request starts after the refusal"
        with pytest.raises(MailchimpAuthError) as pinged:
            client.ping()
        texts = [str(raised.value), repr(raised.value), str(pinged.value), repr(client), str(client), caplog.text]
    assert raised.value.status_code == 401 and raised.value.title == "API Key Invalid"
    for text in texts:
        assert wrong not in text and "0123456789abcdef" not in text and sb.mailchimp_api_key not in text
    assert admin.get("members").json() == []


def test_the_right_key_never_appears_in_reprs_errors_or_logs(sb, admin, caplog):
    set_faults(admin, error_503_rate=1.0)
    with make_client(sb, max_attempts=2) as client, caplog.at_level(logging.DEBUG):
        with pytest.raises(MailchimpWriteIncomplete) as raised:
            client.put_members([write(1)])
        with pytest.raises(MailchimpUnavailable) as read:
            client.merge_fields()
        texts = [repr(client), str(client), str(raised.value), repr(raised.value), str(read.value), caplog.text]
    secret = sb.mailchimp_api_key.split("-")[0]
    assert caplog.text, "the retries were logged"
    for text in texts:
        assert secret not in text
    assert address(1) not in caplog.text


def test_ping_and_merge_fields_over_several_pages(sb, admin):
    with make_client(sb, page_size=2) as client:
        assert client.ping() == {"health_status": "Everything's Chimpy!"}
        fields = client.merge_fields()
    assert [f["tag"] for f in fields] == ["FNAME", "LNAME", "ADDRESS", "PHONE", "COMPANY", "AFASID", "JOBTITLE"]
    assert server_requests(admin, "GET lists/{list_id}/merge-fields") == 4


# --- faults --------------------------------------------------------------------------------------


def test_5xx_on_a_share_of_requests_still_delivers_every_member(sb, admin):
    set_faults(admin, error_503_rate=0.2, error_500_rate=0.1, error_429_rate=0.1, seed=3)
    # Six in flight draw the faults in no fixed order, so the seed does not fix which write meets them: 20
    # attempts make a write that faults every time unlikely (0.4 ** 20 each); 6 failed 1 run in 5 in CI.
    with make_client(sb, max_concurrency=6, max_attempts=20) as client:
        results = client.put_members([write(i) for i in range(60)])
        stats = client.stats
    assert len(results) == 60 and all(r.ok for r in results)
    assert stats.retries > 0 and stats.requests == 60 + stats.retries
    faults = admin.get("stats").json()["faults"]
    assert faults["503"] + faults["500"] + faults["429"] == stats.retries
    set_faults(admin)
    assert len(admin.get("members").json()) == 60


def test_the_connection_limit_answers_are_retried(sb, admin):
    """Over the server's limit, Mailchimp answers 429 or a bare 403 without body: both are retried."""
    set_faults(admin, max_concurrency=2, bare_403_rate=0.5, latency_ms=30, seed=1)
    with make_client(sb, max_concurrency=3, max_attempts=30, backoff_initial_s=0.02, backoff_max_s=0.1) as client:
        results = client.put_members([write(i) for i in range(9)])
        stats = client.stats
    assert all(r.ok for r in results)
    rejected = admin.get("stats").json()["rejected_concurrency"]
    assert rejected > 0 and stats.retries == rejected


def test_a_total_outage_raises_write_incomplete_after_the_answered_results(sb, admin):
    handed: list[list[MemberResult]] = []

    def on_batch(results: list[MemberResult]) -> None:
        handed.append(results)
        set_faults(admin, error_503_rate=1.0)  # Mailchimp goes down after the first group

    with make_client(sb, batch_size=2, max_concurrency=1, max_attempts=3) as client:
        with pytest.raises(MailchimpWriteIncomplete) as raised:
            client.put_members([write(i) for i in range(5)], on_batch=on_batch)
        stats = client.stats
    error = raised.value
    assert isinstance(error, MailchimpUnavailable)
    assert [r.external_id for r in error.results] == ["0", "1"] and all(r.ok for r in error.results)
    assert handed == [error.results]
    assert error.unanswered == ["2", "3", "4"]
    assert (error.status_code, error.title) == (503, "Service Unavailable")
    assert "3 of 5 member writes got no answer" in str(error)
    assert stats.requests == 2 + 3 * 3 and stats.members_failed == 0


def test_a_rename_whose_answer_was_lost_is_not_member_exists(sb, admin, client):
    client.put_members([write(1, "oud@voorbeeld.example", merge_fields={"FNAME": "Anna"})])
    # The rename's first PUT is applied and its connection dropped; the retry finds the new address taken.
    seed = next(s for s in range(1000) if _draws(s, 2) == [True, False])
    set_faults(admin, drop_rate=0.5, methods=["PUT"], seed=seed)
    rename = write(1, "nieuw@voorbeeld.example", old="oud@voorbeeld.example", merge_fields={"FNAME": "Anna"})
    (result,) = client.put_members([rename])
    assert admin.get("stats").json()["faults"]["drop"] == 1
    assert server_requests(admin, MEMBER_PUT) == 3  # the creation, the dropped rename, its retry
    assert result.ok and result.subscriber_hash == subscriber_hash("nieuw@voorbeeld.example")
    assert client.stats.retries == 1


def test_a_rename_a_dead_run_applied_is_settled_by_the_next_run(admin, client):
    client.put_members([write(1, "oud@voorbeeld.example", merge_fields={"FNAME": "Anna"})])
    rename = write(1, "nieuw@voorbeeld.example", old="oud@voorbeeld.example", merge_fields={"FNAME": "Anna"})
    client.put_members([rename])  # applied; the run died before it saved the new hash
    (result,) = client.put_members([rename])  # the next run sends it again, to the old hash
    assert result.ok and result.subscriber_hash == subscriber_hash("nieuw@voorbeeld.example")
    assert len(admin.get("members").json()) == 1


def test_a_lost_answer_does_not_turn_a_real_member_exists_into_ok(sb, admin, client):
    client.put_members([write(1), write(2, merge_fields={"FNAME": "Bram"})])
    seed = next(s for s in range(1000) if _draws(s, 2) == [True, False])
    set_faults(admin, error_503_rate=0.5, methods=["PUT"], seed=seed)
    (result,) = client.put_members([write(1, address(2), old=address(1), merge_fields={"FNAME": "Bram"})])
    assert result.code == "Member Exists", "the old member is still there: the rename was not applied"


def _draws(seed: int, n: int, rate: float = 0.5) -> list[bool]:
    """Whether each of the first `n` requests draws a fault of `rate` (the injector draws twice per request)."""
    rng = random.Random(seed)
    draws = [(rng.random(), rng.random()) for _ in range(n)]  # (the fault draw, the jitter draw)
    return [fault < rate for fault, _ in draws]


# --- reads ---------------------------------------------------------------------------------------


def test_members_changed_since_a_time_every_status_all_pages(sb, admin):
    set_clock(admin, -3600)
    with make_client(sb, page_size=3) as client:
        client.put_members([write(f"oud{i}") for i in range(3)])
        set_clock(admin, 0)
        client.put_members([write(i) for i in range(7)])
        admin.post(f"members/{address(0)}/unsubscribe", json={}).raise_for_status()
        admin.post("stats/reset").raise_for_status()
        now = dt.datetime.now(dt.timezone.utc)
        changed = client.members_changed(now - dt.timedelta(minutes=10))
        older = client.members_changed(now - dt.timedelta(hours=2), until=now - dt.timedelta(minutes=30))
    assert sorted(m["email_address"] for m in changed) == sorted(address(i) for i in range(7))
    assert {m["email_address"]: m["status"] for m in changed}[address(0)] == "unsubscribed"
    assert server_requests(admin, MEMBERS_GET) == 3 + 4  # 7 rows in pages of 3; 10 rows in pages of 3
    assert sorted(m["email_address"] for m in older) == sorted(address(f"oud{i}") for i in range(3))


@pytest.mark.parametrize("members, concurrency", [(7, 8), (9, 8), (16, 8), (16, 1)])
def test_members_changed_pages_ask_for_the_next_pages_ahead_with_the_requests_of_a_read_page_after_page(
        sb, admin, members, concurrency):
    """While a page is used the next ones, which `total_items` says are there, are on their way (`PAGES_AHEAD`, one
    with one call at a time); no page is asked for beyond the last (9: three full pages, and no empty fourth)."""
    pages, ahead = -(-members // 3), min(PAGES_AHEAD, concurrency)
    with make_client(sb, page_size=3, max_concurrency=concurrency) as client:
        client.put_members([write(i) for i in range(members)])
        admin.post("stats/reset").raise_for_status()
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
        read: list[str] = []
        for page in client.members_changed_pages(since):
            read += [m["email_address"] for m in page]
            if len(read) < members:  # the next pages are asked for before this one is done with
                wait_until(lambda: server_requests(admin, MEMBERS_GET) == min(pages, len(read) // 3 + ahead))
    assert sorted(read) == sorted(address(i) for i in range(members))
    assert server_requests(admin, MEMBERS_GET) == pages


def test_members_changed_pages_of_some_fields_hold_those_and_the_time_of_the_change_all_pages_read_ahead(sb, admin):
    """`fields`: each member holds only those (nested ones in dot notation) and `last_changed`, which `until`
    judges; `total_items` is still asked for, so the pages are read ahead and end where a full read ends."""
    set_clock(admin, -3600)
    with make_client(sb, page_size=3) as client:
        client.put_members([write("oud", merge_fields={"AFASID": "C-oud"})])
        set_clock(admin, 0)
        client.put_members([write(i, merge_fields={"AFASID": f"C-{i}"}) for i in range(7)])
        admin.post(f"members/{address(0)}/unsubscribe", json={}).raise_for_status()
        admin.post("stats/reset").raise_for_status()
        now = dt.datetime.now(dt.timezone.utc)
        pages = list(client.members_changed_pages(now - dt.timedelta(minutes=10), now,
                                                  fields=("merge_fields.AFASID", "status")))
        older = [m for page in client.members_changed_pages(now - dt.timedelta(hours=2), now - dt.timedelta(minutes=30),
                                                            fields=("status",)) for m in page]
        requests = server_requests(admin, MEMBERS_GET)
        client.put_members([write(3, merge_fields={"AFASID": "C-3b"})])  # changed again: read as it is now
        latest = client.members_changed(now - dt.timedelta(minutes=10), fields=("merge_fields.AFASID",))
    members = [m for page in pages for m in page]
    assert {frozenset(m) for m in members} == {frozenset({"merge_fields", "status", "last_changed"})}
    assert {m["merge_fields"]["AFASID"]: m["status"] for m in members} == {
        f"C-{i}": "unsubscribed" if i == 0 else "subscribed" for i in range(7)}
    assert older == [{"status": "subscribed", "last_changed": older[0]["last_changed"]}]
    assert pages[0].server_time is not None and len(pages) == 3
    assert requests == 3 + 3  # 7 rows in pages of 3; 8 rows in pages of 3
    # members_changed: one row per member (by contact_id, so with it and the id), the latest read.
    assert {frozenset(m) for m in latest} == {frozenset({"merge_fields", "last_changed", "contact_id", "id"})}
    assert sorted(m["merge_fields"]["AFASID"] for m in latest) == sorted(f"C-{i}" for i in (0, 1, 2, "3b", 4, 5, 6))


def test_members_changed_of_one_status(sb, admin, client):
    client.put_members([write(i) for i in range(3)])
    admin.post(f"members/{address(1)}/clean", json={}).raise_for_status()
    cleaned = client.members_changed(dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10), status="cleaned")
    assert [m["email_address"] for m in cleaned] == [address(1)]


def test_get_member_of_an_unknown_hash_is_none(client):
    assert client.get_member(subscriber_hash("niemand@voorbeeld.example")) is None


def test_members_changed_carries_mailchimps_clock_at_the_read(sb, admin, client):
    admin.put("clock", json={"offset_s": -3600}).raise_for_status()
    before = dt.datetime.now(dt.timezone.utc)
    changed = client.members_changed(before - dt.timedelta(hours=2))
    hour = dt.timedelta(hours=1)
    assert changed == [] and (before - hour).replace(microsecond=0) <= changed.server_time <= dt.datetime.now(dt.timezone.utc) - hour
