"""The Spotler admin API, fault injection with Spotler's own error answers, stats, dataset and reset."""

from __future__ import annotations

import threading

import httpx
import pytest

from afas_sandbox.server import Sandbox
from afas_pipeline_tests.waiting import wait_until
from afas_pipeline_tests.sandbox.spotler.conftest import contact, spotler_client, upsert
from afas_pipeline_tests.sandbox.conftest import set_faults


def test_faults_default_off_and_include_a_429_rate(spotler_admin: httpx.Client):
    assert spotler_admin.get("faults").json() == {
        "latency_ms": 0, "jitter_ms": 0, "error_503_rate": 0.0, "retry_after": 1, "error_500_rate": 0.0,
        "drop_rate": 0.0, "slow_page_ms": 0, "max_concurrency": 8, "methods": [], "seed": 0, "error_429_rate": 0.0}
    assert spotler_admin.put("faults", json={"error_429_rate": 2}).status_code == 400


@pytest.mark.parametrize("fault, status", [("error_503_rate", 503), ("error_429_rate", 429),
                                           ("error_500_rate", 500)])
def test_injected_faults_answer_like_spotler(spotler: httpx.Client, spotler_admin: httpx.Client, fault, status):
    set_faults(spotler_admin, **{fault: 1.0}, retry_after=7)
    response = spotler.get("contact/properties/list")
    assert response.status_code == status
    assert response.json()["errorType"] == "BACKEND_EXCEPTION" and response.json()["message"]
    if status != 500:
        assert response.headers["Retry-After"] == "7"
    assert spotler_admin.get("state").status_code == 200, "the admin API is never faulted"
    assert spotler_admin.get("stats").json()["faults"][str(status)] == 1


def test_a_dropped_write_breaks_the_connection_after_it_was_applied(spotler: httpx.Client,
                                                                    spotler_admin: httpx.Client):
    set_faults(spotler_admin, drop_rate=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        spotler.post("contact", json={"update": True, "contact": {"externalId": "dropped"}})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        spotler.post("contact/list", json={"update": True, "contacts": [{"externalId": "dropped-too"}]})
    set_faults(spotler_admin)
    assert contact(spotler, "dropped")["externalId"] == "dropped"
    assert contact(spotler, "dropped-too")["externalId"] == "dropped-too"


def test_requests_beyond_max_concurrency_get_429(spotler_sandbox_clean: Sandbox, spotler_admin: httpx.Client):
    set_faults(spotler_admin, max_concurrency=1, latency_ms=500)
    sb = spotler_sandbox_clean
    first: list[httpx.Response] = []

    def slow_call() -> None:
        with spotler_client(sb) as client:
            first.append(client.get("contact/properties/list"))

    thread = threading.Thread(target=slow_call)
    thread.start()
    wait_until(lambda: sb.spotler.faults.in_flight >= 1, what="the first call holding the only slot")
    with spotler_client(sb) as client:
        refused = client.get("contact/properties/list")
    thread.join()
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json()["errorType"] == "BACKEND_EXCEPTION"
    assert first[0].status_code == 200
    stats = spotler_admin.get("stats").json()
    assert (stats["peak_concurrency"], stats["rejected_concurrency"]) == (1, 1)


def test_stats_count_requests_per_route(spotler: httpx.Client, spotler_admin: httpx.Client):
    upsert(spotler, {"externalId": "A"})
    spotler.get("contact/A")
    spotler.get("contact/B")
    spotler.put("contact/A", json={"contact": {}})
    spotler.put("contact/inactivate/A")
    spotler.get("contact/updates/list", params={"fromDate": "2026-01-01"})
    spotler.get("mailing-interaction/sent")
    stats = spotler_admin.get("stats").json()
    assert stats["requests"] == {"POST contact/list": 1, "GET contact/{externalId}": 2,
                                 "PUT contact/{externalId}": 1, "PUT contact/inactivate/{externalId}": 1,
                                 "GET contact/updates/list": 1, "GET mailing-interaction/sent": 1}
    assert stats["total"] == 7
    assert spotler_admin.post("stats/reset").json()["total"] == 0


def test_admin_contacts_dataset_round_trip_and_reset(spotler: httpx.Client, spotler_admin: httpx.Client):
    upsert(spotler, *({"externalId": f"C{i}", "properties": {"email": f"c{i}@example.nl",
                                                            "permissions": [{"bit": 1, "enabled": True}]}}
                      for i in range(3)))
    spotler_admin.post("recipients/C1/bounce", json={"type": "hard"}).raise_for_status()
    mailing = spotler_admin.post("mailings", json={"name": "N", "subject": "S", "recipients": None}).json()
    assert len(mailing["sent"]) == 2 and mailing["skipped"] == ["C1"]  # hard-bounced: EMAIL channel off
    contacts = spotler_admin.get("contacts").json()
    assert [c["externalId"] for c in contacts] == ["C0", "C1", "C2"]
    assert spotler_admin.get("contacts/C1").json() == contact(spotler, "C1")
    assert spotler_admin.get("contacts/nobody").status_code == 404
    dataset = spotler_admin.get("dataset").json()

    counts = spotler_admin.post("reset").json()
    assert counts["contacts"] == 0 and counts["mailings"] == 0
    assert spotler.get("contact/C1").status_code == 404

    assert spotler_admin.post("dataset", json=dataset).json()["contacts"] == 3
    assert spotler_admin.get("dataset").json() == dataset
    assert spotler_admin.get("contacts").json() == contacts
    sent = spotler.get("mailing-interaction/sent").json()["interactions"]
    assert [s["encryptedMailingId"] for s in sent] == [mailing["encryptedId"]] * 2


def test_reset_turns_faults_off_and_afas_reset_leaves_spotler_alone(spotler_sandbox_clean: Sandbox,
                                                                    spotler: httpx.Client,
                                                                    spotler_admin: httpx.Client):
    upsert(spotler, {"externalId": "keep"})
    httpx.post(spotler_sandbox_clean.afas_admin_url + "/reset", timeout=60).raise_for_status()
    assert contact(spotler, "keep")["externalId"] == "keep"
    set_faults(spotler_admin, error_503_rate=1.0)
    spotler_admin.post("reset").raise_for_status()
    assert spotler_admin.get("faults").json()["error_503_rate"] == 0.0
    assert spotler_admin.get("stats").json()["total"] == 0
    assert spotler.get("contact/properties/list").status_code == 200


@pytest.mark.parametrize("path, body, status", [
    ("recipients/nobody/unsubscribe", {"bit": 1}, 404),
    ("recipients/A/unsubscribe", {"bit": 9}, 400),
    ("recipients/A/bounce", {"type": "medium"}, 400),
    ("recipients/A/open", {"mailing": "nope"}, 404),
    ("recipients/A/open", {}, 400),
    ("recipients/A/wave", {}, 404),
    ("recipients/A/subscribe", {"at": "tomorrow"}, 400),
    ("mailings", {"name": "N", "subject": "S", "recipients": ["nobody"]}, 404),
    ("mailings", {"subject": "S"}, 400),
    ("dataset", {"nothing": []}, 400),
])
def test_invalid_admin_requests_say_what_is_wrong(spotler: httpx.Client, spotler_admin: httpx.Client,
                                                  path, body, status):
    upsert(spotler, {"externalId": "A"})
    response = spotler_admin.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_subscribe_turns_a_bit_on_as_the_recipient(spotler: httpx.Client, spotler_admin: httpx.Client):
    upsert(spotler, {"externalId": "A"})
    doc = spotler_admin.post("recipients/A/subscribe", json={"bit": 2, "at": "2026-06-01T12:00:00Z"}).json()
    assert doc["properties"]["permissions"][1] == {"bit": 2, "enabled": True, "description": "Evenementen"}
    assert doc["lastChanged"] == 1780315200000
