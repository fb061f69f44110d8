"""The Xelion client against the Xelion emulator over real HTTP: the session (lazy login, renewal after expiry,
a lost session, one login per userSpace, logout), the address book (create, read, edit with change types, paging
past 1000), the call log (ascending cursor paging, recordings), retries under injected faults and the per-session
cap, writes whose answer was lost, and logs and errors without names, numbers or e-mail addresses."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from afas_pipeline.xelion.client import XelionClient, edited
from afas_pipeline.xelion.errors import (
    XelionRequestError,
    XelionSessionInUse,
    XelionWriteUnknown,
)
from afas_pipeline_tests.sandbox.xelion.conftest import place_call

FAST = {"backoff_initial_s": 0.001, "backoff_max_s": 0.01}
NAME, MOBILE, EMAIL = "Annelies de Wit-Verbeek", "+31612345678", "annelies.dewit@voorbeeld.example"


def make_client(sb, **overrides) -> XelionClient:
    config = {"base_url": sb.xelion_base_url, "user_name": sb.xelion_user, "password": sb.xelion_password,
              "user_space": "afas-pipeline-tests", **FAST, **overrides}
    return XelionClient(**config)


@pytest.fixture
def sb(xelion_sandbox_clean):
    return xelion_sandbox_clean


@pytest.fixture
def admin(xelion_admin) -> httpx.Client:
    return xelion_admin


@pytest.fixture
def client(sb) -> Iterator[XelionClient]:
    with make_client(sb) as xelion:
        yield xelion


def set_faults(admin: httpx.Client, **faults) -> None:
    admin.put("faults", json=faults).raise_for_status()


def server_stats(admin: httpx.Client) -> dict:
    return admin.get("stats").json()


def organisation(client: XelionClient, name: str) -> dict:
    return client.create_addressable({"objectType": "Organisation", "name": name})


# --- the address book ----------------------------------------------------------------------------------------


def test_create_read_and_an_edit_sent_with_change_types(client, admin):
    assert client.stats.logins == 0, "no login before the first call"
    old_employer, new_employer = organisation(client, "Oude Werkgever BV"), organisation(client, "Nieuwe Werkgever BV")
    person = client.create_addressable({
        "objectType": "Person", "familyName": NAME,
        "telecomAddresses": [{"addressType": "Mobile", "address": "06-12345678"},
                             {"addressType": "Email", "address": EMAIL}],
        "addresses": [{"street": "Dorpsstraat", "streetNumber": "1", "zipCode": "1234 AB", "city": "Ergens",
                       "country": "NL", "addressType": "Home"}],
        "employments": [{"organisation": {"oid": old_employer["oid"]}, "jobTitle": "Inkoper"}],
    })
    assert person["oid"] and person["givenName"] == "Annelies" and person["familyName"] == "Wit-Verbeek"
    assert client.stats.logins == 1 and client.stats.creates == 3

    current = client.addressable(person["oid"])
    assert current["telecomAddresses"][0]["address"] == MOBILE, "Xelion stores numbers in E.164"
    desired = {
        "familyName": "Wit", "comment": "via AFAS",
        "telecomAddresses": [{"addressType": "Mobile", "address": "06 1234 5678"},  # the same number, typed otherwise
                             {"addressType": "Telephone", "address": "+31101234567"}],
        "addresses": [{"street": "Dorpsstraat", "streetNumber": "2", "zipCode": "1234 AB", "city": "Ergens",
                       "country": "NL", "addressType": "Home"}],
        "employments": [{"organisation": {"oid": new_employer["oid"]}, "jobTitle": "Inkoper"}],
    }
    body = edited(current, desired)
    assert body["changeType"] == "Modified"
    assert [(t["address"], t["changeType"], t["oid"] != "") for t in body["telecomAddresses"]] == [
        (MOBILE, "Unmodified", True), (EMAIL, "Removed", True), ("+31101234567", "Created", False)]
    assert [(a["streetNumber"], a["changeType"]) for a in body["addresses"]] == [("1", "Removed"), ("2", "Created")]
    assert [(e["organisation"]["oid"], e["changeType"]) for e in body["employments"]] == [
        (old_employer["oid"], "Removed"), (new_employer["oid"], "Created")]

    after = client.update_addressable(person["oid"], body)
    assert (after["familyName"], after["comment"]) == ("Wit", "via AFAS")
    assert sorted(t["address"] for t in after["telecomAddresses"]) == ["+31101234567", MOBILE]
    assert [a["streetNumber"] for a in after["addresses"]] == ["2"]
    assert [e["organisation"]["oid"] for e in after["employments"]] == [new_employer["oid"]]
    assert admin.get(f"addressables/{person['oid']}").json() == {**after, "lastModified": after["lastModified"]}
    assert edited(after, desired) is None, "what is already so needs no PUT"
    assert (client.stats.updates, client.stats.logins, client.stats.retries) == (1, 1, 0)


def test_an_unknown_oid_reads_as_none_and_a_refused_write_says_where_without_the_value(client):
    assert client.addressable("987654") is None
    org = organisation(client, "Fout BV")
    bad = edited(org, {"telecomAddresses": [{"addressType": "Telephone", "address": "0612"}]})
    with pytest.raises(XelionRequestError) as caught:
        client.update_addressable(org["oid"], bad)
    error = caught.value
    assert (error.status_code, error.error_code, error.fields) == (400, 10202, ("telecomAddresses[0].address",))
    assert error.endpoint == "PUT addressables/{oid}"
    assert "0612" not in str(error) and org["oid"] not in str(error) and "Fout" not in str(error)


def test_a_where_clause_with_a_plus_finds_the_number(client):
    client.create_addressable({"objectType": "Person", "familyName": NAME,
                               "telecomAddresses": [{"addressType": "Mobile", "address": MOBILE}]})
    organisation(client, "Zonder Nummer BV")
    found = list(client.addressables(where={"phone": MOBILE}, include=["telecomAddresses"]))
    assert [(a["commonName"], a["telecomAddresses"][0]["address"]) for a in found] == [("Annelies de Wit-Verbeek", MOBILE)]
    assert [a["commonName"] for a in client.addressables(where={"obj_type": "Organisation"})] == ["Zonder Nummer BV"]


def test_more_than_1000_addressables_are_read_page_by_page_oldest_first(sb, admin):
    book = [{"oid": 5000 + i, "objectType": "Organisation", "name": f"Bedrijf {i:04d}", "telecomAddresses": [],
             "addresses": [], "lastModified": 1_790_000_000.0} for i in range(1205)]
    admin.post("dataset", json={"addressables": book, "communications": []}).raise_for_status()
    admin.post("stats/reset").raise_for_status()
    with make_client(sb) as client:
        read = list(client.addressables(where={"obj_type": "Organisation"}, include=["telecomAddresses"]))
        assert [int(a["oid"]) for a in read] == list(range(5000, 6205))
        assert all(a["telecomAddresses"] == [] for a in read)
        assert client.stats.reads == 2
        small = list(client.addressables(limit=500))
        assert [a["oid"] for a in small] == [a["oid"] for a in read]
    assert server_stats(admin)["requests"]["GET addressables"] == 2 + 3


# --- the session ---------------------------------------------------------------------------------------------


def test_an_expired_token_is_renewed_and_the_call_repeated(client, admin):
    admin.put("settings", json={"token_lifetime_s": 60}).raise_for_status()
    org = organisation(client, "Tijd BV")
    admin.put("clock", json={"offset_s": 61}).raise_for_status()
    assert client.addressable(org["oid"])["name"] == "Tijd BV"
    admin.put("clock", json={"offset_s": 200}).raise_for_status()
    assert [a["oid"] for a in client.addressables()] == [org["oid"]]
    assert (client.stats.logins, client.stats.renewals) == (1, 2)
    sessions = admin.get("sessions").json()
    assert [(s["userSpace"], s["expired"]) for s in sessions] == [("afas-pipeline-tests", False)]
    requests = server_stats(admin)["requests"]
    assert (requests["POST me/login"], requests["POST me/renew"]) == (1, 2)


def test_a_session_xelion_lost_is_replaced_by_a_new_login(client, admin):
    org = organisation(client, "Blijft BV")
    dataset = admin.get("dataset").json()
    admin.post("dataset", json=dataset).raise_for_status()  # loading a dataset ends every session
    assert client.addressable(org["oid"])["name"] == "Blijft BV"
    assert (client.stats.logins, client.stats.renewals) == (2, 0), "the renewal token died with the session"
    assert server_stats(admin)["requests"]["POST me/renew"] == 1


def test_a_second_process_with_the_same_user_space_logs_in_with_one_of_its_own(sb, admin):
    """Two runs at once (the delta and the full sync), or a run after one that could not log out: the second is
    refused with 10005 on the configured userSpace and logs in once more with `<user_space>-<6 hex>`."""
    first, second = make_client(sb), make_client(sb)
    list(first.addressables())
    assert list(second.addressables()) == []
    spaces = sorted(s["userSpace"] for s in admin.get("sessions").json())
    assert len(spaces) == 2 and spaces[0] == first.user_space and spaces[1].startswith(f"{first.user_space}-")
    assert server_stats(admin)["requests"]["POST me/login"] == 3, "one refused login, then one with its own space"
    first.close()
    second.close()
    assert admin.get("sessions").json() == [], "close() logs out"


def test_a_login_refused_on_its_own_user_space_too_is_told_what_to_do(sb, admin, monkeypatch):
    monkeypatch.setattr("afas_pipeline.xelion.client.secrets.token_hex", lambda n: "abcdef")
    holders = [make_client(sb), make_client(sb)]
    for holder in holders:  # the configured space, then the one the second takes
        list(holder.addressables())
    third = make_client(sb)
    with pytest.raises(XelionSessionInUse) as caught:
        list(third.addressables())
    error = caught.value
    assert (error.status_code, error.error_code) == (401, 10005)
    assert "XELION_USER_SPACE" in str(error) and "its own userSpace" in str(error)
    assert sb.xelion_user not in str(error)
    for holder in holders:
        holder.close()


# --- retries ---------------------------------------------------------------------------------------------------


def test_a_batch_of_creates_completes_under_20_percent_faults_with_every_retry_counted(sb, admin):
    set_faults(admin, error_503_rate=0.07, error_500_rate=0.07, error_429_rate=0.06, retry_after=0, seed=11)
    # 10 attempts: a create fails only after 10 faults in a row (0.2 ** 10 per create)
    with make_client(sb, max_attempts=10) as client, ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(lambda i: organisation(client, f"Storing {i:02d} BV"), range(60)))
        stats = server_stats(admin)
        assert sum(stats["faults"].values()) > 0
        assert client.stats.retries == sum(stats["faults"].values()) + stats["rejected_session"]
        assert (client.stats.creates, client.stats.logins) == (60, 1)
    assert sorted(c["name"] for c in created) == [f"Storing {i:02d} BV" for i in range(60)]
    assert len(admin.get("addressables").json()) == 60, "no create was applied twice"


def test_dropped_connections_of_reads_are_retried(client, admin):
    orgs = [organisation(client, f"Lezen {i} BV") for i in range(20)]
    set_faults(admin, drop_rate=0.3, methods=["GET"], seed=3)
    assert [client.addressable(o["oid"])["oid"] for o in orgs] == [o["oid"] for o in orgs]
    stats = server_stats(admin)
    assert stats["faults"]["drop"] > 0 and client.stats.retries == stats["faults"]["drop"] + stats["rejected_session"]


def test_more_than_4_requests_of_the_session_in_flight_get_10400_and_are_retried(sb, admin):
    set_faults(admin, latency_ms=100)
    with make_client(sb, max_concurrency=8, backoff_initial_s=0.05, backoff_max_s=0.4, max_attempts=12) as eager:
        with ThreadPoolExecutor(max_workers=8) as pool:
            pages = list(pool.map(lambda _: list(eager.addressables()), range(16)))
        assert pages == [[]] * 16
        rejected = server_stats(admin)["rejected_session"]
        assert rejected > 0 and eager.stats.retries == rejected
    admin.post("stats/reset").raise_for_status()
    with make_client(sb) as capped, ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda _: list(capped.addressables()), range(16))) == [[]] * 16
        assert (server_stats(admin)["rejected_session"], capped.stats.retries) == (0, 0), "4 in flight at most"


def test_a_create_whose_answer_was_lost_is_not_sent_again(client, admin):
    list(client.addressables())  # logged in before the faults
    set_faults(admin, drop_rate=1.0, methods=["POST"])
    with pytest.raises(XelionWriteUnknown) as caught:
        organisation(client, "Eenmalig BV")
    assert caught.value.endpoint == "POST addressables" and "Eenmalig" not in str(caught.value)
    assert [a["name"] for a in admin.get("addressables").json()] == ["Eenmalig BV"]
    assert server_stats(admin)["requests"]["POST addressables"] == 1
    assert client.stats.creates == 0


def test_an_update_whose_answer_was_lost_is_read_back_and_not_applied_twice(client, admin):
    person = client.create_addressable({"objectType": "Person", "familyName": NAME,
                                        "telecomAddresses": [{"addressType": "Email", "address": EMAIL}]})
    set_faults(admin, drop_rate=1.0, methods=["PUT"])
    body = edited(person, {"telecomAddresses": [{"addressType": "Mobile", "address": MOBILE}]})
    after = client.update_addressable(person["oid"], body)
    assert [(t["addressType"], t["address"]) for t in after["telecomAddresses"]] == [("Mobile", MOBILE)]
    stored = admin.get(f"addressables/{person['oid']}").json()
    assert [t["address"] for t in stored["telecomAddresses"]] == [MOBILE], "created once, removed once"
    assert server_stats(admin)["requests"]["PUT addressables/{oid}"] == 1, "found applied: no second PUT"
    assert (client.stats.updates, client.stats.retries) == (1, 1)


# --- the call log ---------------------------------------------------------------------------------------------


def test_communications_after_reads_oldest_first_and_resumes_after_an_oid(client, admin):
    calls = [place_call(admin, number=f"010123456{i}", duration_s=10 + i) for i in range(5)]
    oids = [c["oid"] for c in calls]
    admin.post("stats/reset").raise_for_status()
    assert [c["oid"] for c in client.communications_after(None, limit=2)] == oids
    assert server_stats(admin)["requests"]["GET communications"] == 3
    assert [c["oid"] for c in client.communications_after(oids[2], limit=2)] == oids[3:]
    assert client.communications_after(oids[-1]) == []
    one = client.communication(oids[1])
    assert (one["oid"], one["durationSec"]) == (oids[1], 11)
    assert client.communication(calls[1]["callId"])["oid"] == oids[1]


def test_a_recording_is_mp3_and_a_call_without_one_has_none(client, admin, caplog):
    recorded = place_call(admin, number="0101234567", recording=True, duration_s=3)
    plain = place_call(admin, number="0101234568")
    audio = client.audio(recorded["oid"])
    assert audio[:2] == b"\xff\xfb" or audio[:3] == b"ID3"
    assert len(audio) > 1000
    with caplog.at_level(logging.INFO, logger="afas_pipeline"):
        assert client.audio(plain["oid"]) is None
        assert client.audio("99999999") is None
    assert client.stats.reads == 1
    # A call without a recording is an answer, not a refusal: no warning in the run's log (there were 3 per demo run).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- what logs and errors never hold ------------------------------------------------------------------------


def test_logs_hold_counts_but_no_name_number_email_or_password(sb, admin, caplog):
    caplog.set_level(logging.DEBUG)
    set_faults(admin, error_503_rate=0.3, retry_after=0, seed=5)
    with make_client(sb) as client:
        person = client.create_addressable({"objectType": "Person", "familyName": NAME, "telecomAddresses": [
            {"addressType": "Mobile", "address": MOBILE}, {"addressType": "Email", "address": EMAIL}]})
        assert [a["oid"] for a in client.addressables(where={"phone": MOBILE})] == [person["oid"]]
        assert [a["oid"] for a in client.addressables(where={"email": EMAIL})] == [person["oid"]]
        assert client.stats.retries > 0
    text = caplog.text
    assert "retry" in text and "logged in" in text
    for secret in ("Annelies", "Verbeek", "612345678", "annelies", sb.xelion_password, "%2B316"):
        assert secret not in text, secret
