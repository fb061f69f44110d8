"""The Spotler client against the Spotler Mail+ sandbox over real HTTP: signing, batching, per-contact
failures as data, merge vs purge, retries under injected faults, the concurrency cap and feed paging."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import dagster as dg
import httpx
import pytest

from afas_pipeline.spotler import (
    ContactResult,
    SpotlerAuthError,
    SpotlerClient,
    SpotlerRequestError,
    SpotlerUnavailable,
    SpotlerWriteIncomplete,
)
from afas_pipeline_tests.waiting import wait_until

FAST = {"backoff_initial_s": 0.001, "backoff_max_s": 0.01}


def make_client(sb, **overrides) -> SpotlerClient:
    config = {
        "base_url": sb.spotler_base_url,
        "consumer_key": sb.spotler_consumer_key,
        "consumer_secret": sb.spotler_consumer_secret,
        **FAST,
        **overrides,
    }
    return SpotlerClient(**config)


@pytest.fixture
def sb(spotler_sandbox_clean):
    return spotler_sandbox_clean


@pytest.fixture
def admin(sb) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.spotler_admin_url, timeout=30) as client:
        yield client


@pytest.fixture
def client(sb) -> Iterator[SpotlerClient]:
    with make_client(sb) as spotler:
        yield spotler


def contact(i: int | str, **properties) -> dict:
    props = {"email": f"contact{i}@example.nl", **properties}
    return {"externalId": str(i), "properties": props}


def stored(admin: httpx.Client, external_id: str) -> dict:
    response = admin.get(f"/contacts/{external_id}")
    response.raise_for_status()
    return response.json()


def permissions(doc: dict) -> dict[int, bool]:
    return {p["bit"]: p["enabled"] for p in doc["properties"]["permissions"]}


def server_requests(admin: httpx.Client, key: str) -> int:
    return admin.get("/stats").json()["requests"].get(key, 0)


def set_faults(admin: httpx.Client, **faults) -> None:
    admin.put("/faults", json=faults).raise_for_status()


def iso_utc(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)


# --- authentication --------------------------------------------------------------------------------


def test_a_wrong_key_raises_auth_error_without_retrying(sb, admin):
    with make_client(sb, consumer_key="no-such-key") as spotler:
        with pytest.raises(SpotlerAuthError, match="does not know this consumer key") as raised:
            spotler.properties()
        assert raised.value.error_type == "AUTH_NOT_FOUND" and raised.value.status_code == 401
        assert spotler.stats.requests == 1


def test_a_wrong_secret_raises_auth_error_that_never_shows_a_secret(sb, admin, caplog):
    wrong = "wrong-secret-0123456789"
    with make_client(sb, consumer_secret=wrong) as spotler, caplog.at_level(logging.DEBUG):
        with pytest.raises(SpotlerAuthError, match="secret or the signature is wrong") as raised:
            spotler.upsert_contacts([contact(1)])  # a configuration error raises, even in a write
        assert raised.value.error_type == "NOT_AUTHORIZED"
        assert spotler.stats.requests == 1
    for text in (str(raised.value), repr(raised.value), caplog.text):
        assert wrong not in text and sb.spotler_consumer_secret not in text
    assert admin.get("/contacts").json() == []


def test_signed_requests_are_accepted_with_query_parameters(client):
    names = {p["name"] for p in client.properties()}
    assert {"email", "firstName", "permissions"} <= names
    now = datetime.now(timezone.utc)
    assert client.updates(now - timedelta(hours=1), now) == []  # a signed GET with a query string


# --- writes ----------------------------------------------------------------------------------------


def test_1200_contacts_go_in_3_batches_of_at_most_500(sb, admin, client):
    results = client.upsert_contacts([contact(i, lastName=f"Achternaam {i}") for i in range(1200)])
    assert len(results) == 1200 and all(r.ok for r in results)
    assert [r.external_id for r in results] == [str(i) for i in range(1200)]
    assert server_requests(admin, "POST contact/list") == 3
    stats = client.stats
    assert (stats.batches, stats.requests, stats.retries, stats.contacts_sent, stats.contacts_failed) == (3, 3, 0, 1200, 0)
    assert len(admin.get("/contacts").json()) == 1200
    assert stored(admin, "1199")["properties"]["lastName"] == "Achternaam 1199"


def test_refused_contacts_come_back_as_data_in_input_order(admin, client):
    results = client.upsert_contacts([
        contact("good-1"),
        {"externalId": "bad-email", "properties": {"email": "not an address"}},
        {"externalId": "bad-property", "properties": {"email": "x@example.nl", "shoeSize": "44"}},
        contact("good-2"),
    ])
    assert [(r.external_id, r.code, r.ok) for r in results] == [
        ("good-1", "OK", True), ("bad-email", "PROPERTY_INVALID", False),
        ("bad-property", "PROPERTY_INVALID", False), ("good-2", "OK", True),
    ]
    assert all(r.status_code == 200 for r in results)
    assert "shoeSize" in results[2].message
    assert client.stats.contacts_failed == 2
    assert sorted(c["externalId"] for c in admin.get("/contacts").json()) == ["good-1", "good-2"]


def test_merge_keeps_what_is_left_out_and_purge_replaces(admin, client):
    first = contact(7, firstName="Zoë", lastName="Çelik", permissions=[{"bit": 1, "enabled": True}])
    assert client.upsert_contacts([first])[0].ok

    assert client.upsert_contacts([contact(7, lastName="Ødegaard", permissions=[{"bit": 2, "enabled": True}])])[0].ok
    merged = stored(admin, "7")
    assert merged["properties"]["firstName"] == "Zoë"  # omitted: kept
    assert merged["properties"]["lastName"] == "Ødegaard"
    assert permissions(merged) == {1: True, 2: True}  # merged per bit

    assert client.upsert_contacts([contact(7, lastName="Ñúñez")], purge=True)[0].ok
    purged = stored(admin, "7")
    assert "firstName" not in purged["properties"]
    assert purged["properties"]["lastName"] == "Ñúñez"
    assert permissions(purged) == {1: False, 2: False}


def test_update_contact_changes_a_known_contact_and_reports_an_unknown_one(admin, client):
    client.upsert_contacts([contact(1, function="Inkoper")])
    ok = client.update_contact("1", {"properties": {"function": "Directeur"}})
    assert ok == ContactResult("1", "OK", None, 204)
    assert stored(admin, "1")["properties"]["function"] == "Directeur"
    assert stored(admin, "1")["properties"]["email"] == "contact1@example.nl"  # merged, not purged

    missing = client.update_contact("404", {"properties": {"function": "X"}})
    assert (missing.code, missing.status_code, missing.ok) == ("CONTACT_NOT_FOUND", 404, False)
    assert server_requests(admin, "PUT contact/{externalId}") == 2  # 404 is not retried


def test_a_400_is_not_retried(admin, client):
    client.upsert_contacts([contact(1)])
    refused = client.update_contact("1", {"properties": {"email": "not an address"}})
    assert refused.status_code == 400 and not refused.ok
    assert server_requests(admin, "PUT contact/{externalId}") == 1
    assert client.stats.retries == 0
    with pytest.raises(SpotlerRequestError) as raised:
        client.interactions("sent", trend_report_ids=["not-a-number"])
    assert raised.value.status_code == 400
    assert server_requests(admin, "GET mailing-interaction/sent") == 1


def test_get_contact_returns_the_contact_or_none(client):
    client.upsert_contacts([contact("C-1", firstName="Jan")])
    found = client.get_contact("C-1")
    assert found["externalId"] == "C-1" and found["properties"]["firstName"] == "Jan"
    assert {"encryptedId", "created", "lastChanged", "channels"} <= set(found)
    assert client.get_contact("C-2") is None


def test_a_wrong_base_url_is_not_mistaken_for_an_absent_contact(sb, admin):
    with make_client(sb, base_url=sb.spotler_base_url.replace("1.1.0", "9.9.9")) as spotler:
        with pytest.raises(SpotlerRequestError) as raised:
            spotler.get_contact("1")
        assert (raised.value.status_code, raised.value.error_type) == (404, "RESOURCE_NOT_FOUND")
        result = spotler.update_contact("1", {"properties": {"lastName": "X"}})
        assert (result.code, result.status_code) == ("RESOURCE_NOT_FOUND", 404)
        assert spotler.stats.retries == 0


def test_external_ids_with_reserved_characters_survive_the_path(admin, client):
    odd = "ACME/42 #1?x=y&z%"
    assert client.upsert_contacts([{"externalId": odd, "properties": {"email": "acme@example.nl"}}])[0].ok
    assert client.update_contact(odd, {"properties": {"lastName": "Jansen"}}).ok
    assert client.get_contact(odd)["properties"]["lastName"] == "Jansen"


def test_a_repeated_external_id_ends_with_its_last_version(sb, admin):
    set_faults(admin, latency_ms=30)
    with make_client(sb, batch_size=1, max_concurrency=4) as spotler:
        results = spotler.upsert_contacts([contact(1, lastName="Eerste"), contact(2), contact(1, lastName="Laatste")])
    assert [r.code for r in results] == ["OK", "OK", "OK"]
    assert stored(admin, "1")["properties"]["lastName"] == "Laatste"
    assert admin.get("/stats").json()["peak_concurrency"] == 1  # in order, not a race between batches


def test_the_resource_runs_in_dagster_with_credentials_from_the_environment(sb, admin, monkeypatch):
    monkeypatch.setenv("TEST_SPOTLER_KEY", sb.spotler_consumer_key)
    monkeypatch.setenv("TEST_SPOTLER_SECRET", sb.spotler_consumer_secret)

    @dg.asset
    def spotler_pushed(spotler: SpotlerClient) -> dg.MaterializeResult:
        results = spotler.upsert_contacts([contact(1), {"externalId": "2", "properties": {"email": "nope"}}])
        return dg.MaterializeResult(metadata={**spotler.stats.as_metadata(), "ok": sum(r.ok for r in results)})

    resource = SpotlerClient(
        base_url=sb.spotler_base_url,
        consumer_key=dg.EnvVar("TEST_SPOTLER_KEY"),
        consumer_secret=dg.EnvVar("TEST_SPOTLER_SECRET"),
    )
    result = dg.materialize([spotler_pushed], resources={"spotler": resource})
    assert result.success
    metadata = result.asset_materializations_for_node("spotler_pushed")[0].metadata
    assert (metadata["ok"].value, metadata["contacts_sent"].value, metadata["contacts_failed"].value) == (1, 2, 1)
    assert stored(admin, "1")["properties"]["email"] == "contact1@example.nl"


# --- retries and the concurrency cap ------------------------------------------------------------


def test_injected_503_429_and_drops_converge_to_exactly_the_expected_state(sb, admin, caplog):
    set_faults(admin, error_503_rate=0.2, error_429_rate=0.15, drop_rate=0.15, retry_after=0, seed=11)
    wanted = [contact(i, lastName=f"Naam {i}", permissions=[{"bit": 1, "enabled": i % 2 == 0}]) for i in range(600)]
    # Batches in flight draw faults in no fixed order: 24 attempts (0.5 ** 24 per batch) keep bad luck out.
    with make_client(sb, batch_size=50, max_attempts=24) as spotler, caplog.at_level(logging.INFO):
        results = spotler.upsert_contacts(wanted)
        stats = spotler.stats
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    faults = admin.get("/stats").json()["faults"]
    assert faults["503"] > 0 and faults["drop"] > 0 and faults.get("429", 0) > 0
    assert stats.retries > 0 and stats.requests == 12 + stats.retries  # 12 batches of 50
    set_faults(admin)
    state = {c["externalId"]: c for c in admin.get("/contacts").json()}
    assert set(state) == {str(i) for i in range(600)}
    for i in (0, 1, 299, 599):
        assert state[str(i)]["properties"]["lastName"] == f"Naam {i}"
        assert permissions(state[str(i)])[1] is (i % 2 == 0)
    assert "example.nl" not in caplog.text and "Naam" not in caplog.text


def test_c4_a_batch_that_keeps_failing_is_an_outage_not_a_refusal(sb, admin):
    set_faults(admin, error_503_rate=1.0, retry_after=0)
    delivered = []
    with make_client(sb, max_attempts=3, batch_size=2) as spotler:
        with pytest.raises(SpotlerWriteIncomplete, match="2 of 2 batches \\(3 contacts\\) got no answer") as raised:
            spotler.upsert_contacts([contact(1), contact(2), contact(3)], on_batch=delivered.append)
        assert raised.value.results == [] and delivered == []
        assert isinstance(raised.value.cause, SpotlerUnavailable) and raised.value.status_code == 503
        # No contact was refused: nothing for the quarantine to count.
        assert (spotler.stats.requests, spotler.stats.retries, spotler.stats.contacts_failed) == (6, 4, 0)
    assert server_requests(admin, "POST contact/list") == 6


def test_c4_the_batches_that_got_through_are_reported_before_the_outage_is_raised(sb, admin):
    with make_client(sb, max_attempts=2, batch_size=2, max_concurrency=1) as spotler:
        spotler.upsert_contacts([contact(1)])
        delivered: list = []

        def outage_after_the_first(results):
            delivered.append(results)
            set_faults(admin, error_503_rate=1.0, retry_after=0)

        with pytest.raises(SpotlerWriteIncomplete, match="1 of 2 batches") as raised:
            spotler.upsert_contacts([contact(2), contact(3), contact(4)], on_batch=outage_after_the_first)
        assert [[r.external_id for r in batch] for batch in delivered] == [["2", "3"]]
        assert [r.external_id for r in raised.value.results] == ["2", "3"]


def test_a_retry_after_beyond_the_limit_fails_fast(sb, admin):
    set_faults(admin, error_503_rate=1.0, retry_after=600)
    with make_client(sb, max_retry_after_s=30) as spotler:
        with pytest.raises(SpotlerUnavailable, match="retry after 600s") as raised:
            spotler.properties()
        assert raised.value.status_code == 503
        with pytest.raises(SpotlerWriteIncomplete, match="600s"):
            spotler.upsert_contacts([contact(1)])
        assert spotler.stats.requests == 2


def test_reads_retry_through_faults(sb, admin):
    with make_client(sb) as spotler:
        spotler.upsert_contacts([contact(i) for i in range(30)])
    set_faults(admin, error_503_rate=0.3, error_429_rate=0.2, drop_rate=0.2, retry_after=0, seed=3)
    now = datetime.now(timezone.utc)
    with make_client(sb, page_size=4, max_attempts=15) as spotler:
        rows = spotler.updates(now - timedelta(minutes=5), now + timedelta(minutes=5))
        assert spotler.stats.retries > 0
    assert sorted(int(r["externalId"]) for r in rows) == list(range(30))


def test_the_concurrency_cap_is_never_exceeded(sb, admin):
    set_faults(admin, latency_ms=40, max_concurrency=8)
    with make_client(sb, max_concurrency=2, batch_size=25) as spotler:
        results = spotler.upsert_contacts([contact(i) for i in range(200)])  # 8 batches
    assert all(r.ok for r in results)
    stats = admin.get("/stats").json()
    assert stats["peak_concurrency"] == 2  # batches did go in parallel, never beyond the cap
    assert stats["rejected_concurrency"] == 0


def test_clients_sharing_a_base_url_share_the_cap(sb, admin):
    set_faults(admin, latency_ms=40)
    clients = [make_client(sb, max_concurrency=2, batch_size=10) for _ in range(3)]
    threads = [
        threading.Thread(target=c.upsert_contacts, args=([contact(f"{n}-{i}") for i in range(60)],))
        for n, c in enumerate(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    assert admin.get("/stats").json()["peak_concurrency"] == 2  # not 2 per client
    assert len(admin.get("/contacts").json()) == 180


# --- feeds and paging -------------------------------------------------------------------------------


def test_updates_pages_through_every_changed_contact(sb, admin):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    with make_client(sb, page_size=100) as spotler:
        spotler.upsert_contacts([contact(i) for i in range(250)])
        after = datetime.now(timezone.utc) + timedelta(seconds=1)
        rows = spotler.updates(before, after)
    assert sorted(int(r["externalId"]) for r in rows) == list(range(250))
    assert server_requests(admin, "GET contact/updates/list") == 3
    assert spotler.updates(after, after + timedelta(minutes=1)) == []


@pytest.mark.parametrize("contacts, quoted", [(250, False), (300, False), (250, True)])
def test_update_pages_ask_for_a_full_pages_successor_ahead_with_the_requests_of_a_read_page_after_page(
        sb, admin, contacts, quoted):
    """While a full page is parsed and used the next one is on its way; the requests stay those of a read page after
    page (300: three full pages and an empty one), and values quoting the key the pages are counted by cost at most
    one more, whose page is dropped (the last page of 50 then looks full)."""
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    with make_client(sb, page_size=100) as spotler:
        # A name ending in "externalId is written as "Jansen \"externalId" in the page: the key, quoted, once more.
        spotler.upsert_contacts([contact(i, lastName='Jansen "externalId' if quoted else "Jansen")
                                 for i in range(contacts)])
        after = datetime.now(timezone.utc) + timedelta(seconds=1)
        admin.post("/stats/reset").raise_for_status()
        read: list[int] = []
        for page in spotler.update_pages(before, after):
            read += [int(row["externalId"]) for row in page]
            if len(page) == 100:  # the next page is asked for before this one is done with
                wait_until(lambda: server_requests(admin, "GET contact/updates/list") == len(read) // 100 + 1)
    assert sorted(read) == list(range(contacts))
    pages = contacts // 100 + 1
    # The page asked for after a short page that looked full is dropped, or cancelled before it was sent.
    assert pages <= server_requests(admin, "GET contact/updates/list") <= pages + (1 if quoted else 0)


def test_a_contact_changed_while_the_feed_is_paged_is_returned_once_in_its_latest_version(sb, admin):
    with make_client(sb, page_size=1) as spotler:
        spotler.upsert_contacts([contact(i, lastName="Oud") for i in range(3)])
    start, end = datetime.now(timezone.utc) - timedelta(minutes=1), datetime.now(timezone.utc) + timedelta(minutes=1)
    set_faults(admin, slow_page_ms=300)  # each page is computed 300 ms after its request arrives
    rows: list[dict] = []
    with make_client(sb, page_size=1) as reader:
        thread = threading.Thread(target=lambda: rows.extend(reader.updates(start, end)))
        thread.start()
        # Page 1 (contact 0) is done once page 2 has arrived; changing contact 0 now moves it to the end of
        # the window, so the later pages meet it again.
        wait_until(lambda: server_requests(admin, "GET contact/updates/list") >= 2)
        with make_client(sb) as writer:
            assert writer.update_contact("0", {"properties": {"lastName": "Nieuw"}}).ok
        thread.join()
    ids = [r["externalId"] for r in rows]
    assert len(ids) == len(set(ids)) and "0" in ids
    assert next(r for r in rows if r["externalId"] == "0")["properties"]["lastName"] == "Nieuw"
    assert server_requests(admin, "GET contact/updates/list") == 4  # the feed did serve contact 0 twice


def test_updates_include_a_recipients_unsubscribe(sb, admin, client):
    client.upsert_contacts([contact(i, permissions=[{"bit": 1, "enabled": True}]) for i in range(3)])
    at = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)  # after the writes, so only the opt-out is in the window
    admin.post("/recipients/1/unsubscribe", json={"bit": 1, "at": at.isoformat()}).raise_for_status()
    rows = client.updates(at, at + timedelta(seconds=1))
    assert [r["externalId"] for r in rows] == ["1"]
    assert permissions(rows[0])[1] is False
    assert client.updates(at - timedelta(minutes=1), at) == []  # half-open: the end is excluded


def test_bounces_page_and_filter_on_the_bounce_date(sb, admin):
    with make_client(sb, page_size=2) as spotler:
        spotler.upsert_contacts([contact(i) for i in range(6)])
        day = datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)  # around the autumn DST change
        for i in range(5):
            kind = "hard" if i % 2 else "soft"
            admin.post(f"/recipients/{i}/bounce", json={"type": kind, "at": (day + timedelta(minutes=20 * i)).isoformat()}).raise_for_status()
        rows = spotler.bounces(day, day + timedelta(minutes=80))  # the bounce at +80 min is outside
    assert [(r["contact"]["externalId"], r["type"]) for r in rows] == [
        ("0", "SOFTBOUNCE"), ("1", "HARDBOUNCE"), ("2", "SOFTBOUNCE"), ("3", "HARDBOUNCE")
    ]
    assert [iso_utc(r["date"]) for r in rows] == [day + timedelta(minutes=20 * i) for i in range(4)]
    assert server_requests(admin, "GET contact/bounces/list") == 3  # pages of 2: 2 full + 1 empty
    hard = stored(admin, "1")
    assert {c["name"]: c["value"] for c in hard["channels"]}["EMAIL"] is False


def test_mailings_and_interactions_page_by_kind(sb, admin):
    with make_client(sb, page_size=3) as spotler:
        spotler.upsert_contacts([contact(i, permissions=[{"bit": 1, "enabled": True}]) for i in range(7)])
        at = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
        sent = admin.post("/mailings", json={
            "name": "Nieuwsbrief november", "subject": "Nieuws", "recipients": None, "bit": 1, "trend_report_id": 42,
            "at": at.isoformat(),
        })
        sent.raise_for_status()
        mailing_id = sent.json()["encryptedId"]
        for i in (2, 5):
            admin.post(f"/recipients/{i}/open", json={"mailing": mailing_id, "at": (at + timedelta(hours=1)).isoformat()}).raise_for_status()

        mailings = spotler.mailings(at - timedelta(minutes=1), at + timedelta(minutes=1))
        assert [(m["encryptedId"], m["name"], m["sentCount"]) for m in mailings] == [(mailing_id, "Nieuwsbrief november", 7)]

        spotler.reset_stats()
        sent_rows = spotler.interactions("sent", start=at, end=at + timedelta(days=1))
        assert sorted(r["externalContactId"] for r in sent_rows) == [str(i) for i in range(7)]
        assert len({r["id"] for r in sent_rows}) == 7
        assert all(r["encryptedMailingId"] == mailing_id and r["subject"] == "Nieuws" for r in sent_rows)
        assert spotler.stats.requests == 3  # 3 + 3 + 1

        opened = spotler.interactions("opened", change_start=at + timedelta(minutes=30), trend_report_ids=[42])
        assert sorted(r["externalContactId"] for r in opened) == ["2", "5"]
        assert spotler.interactions("opened", trend_report_ids=[41]) == []
        assert spotler.interactions("clicked") == []


def test_updates_carry_spotlers_clock_at_the_first_page(sb, admin):
    with make_client(sb) as spotler:
        spotler.upsert_contacts([contact(i) for i in range(5)])
    admin.put("clock", json={"offset_s": -3600}).raise_for_status()
    before = datetime.now(timezone.utc)
    with make_client(sb, page_size=2) as spotler:
        rows = spotler.updates(before - timedelta(hours=2), before + timedelta(minutes=5))
    hour = timedelta(hours=1)
    assert len(rows) == 5
    assert (before - hour).replace(microsecond=0) <= rows.server_time <= datetime.now(timezone.utc) - hour
