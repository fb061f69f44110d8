"""The Xelion admin API (address book, state, dataset, reset), faults with Xelion's error bodies, and the
per-session cap of requests in flight (429/10400)."""

from __future__ import annotations

import threading

import httpx
import pytest

from afas_sandbox.server import Sandbox
from afas_pipeline_tests.sandbox.xelion.conftest import create, place_call, refused, xelion_client
from afas_pipeline_tests.waiting import wait_until
from afas_pipeline_tests.sandbox.conftest import set_faults


def test_faults_default_off_with_a_session_cap_of_4(xelion_admin: httpx.Client):
    assert xelion_admin.get("faults").json() == {
        "latency_ms": 0, "jitter_ms": 0, "error_503_rate": 0.0, "retry_after": 1, "error_500_rate": 0.0,
        "drop_rate": 0.0, "slow_page_ms": 0, "max_concurrency": 64, "methods": [], "seed": 0,
        "max_session_concurrency": 4, "error_429_rate": 0.0}
    assert xelion_admin.put("faults", json={"max_session_concurrency": 0}).status_code == 400


@pytest.mark.parametrize("fault, status, code", [("error_503_rate", 503, 11000), ("error_500_rate", 500, 11000),
                                                 ("error_429_rate", 429, 10400)])
def test_injected_faults_answer_with_xelions_error_body(xelion: httpx.Client, xelion_admin: httpx.Client, fault,
                                                        status, code):
    set_faults(xelion_admin, **{fault: 1.0})
    response = xelion.get("addressables")
    refused(response, status, code)
    assert (response.headers.get("Retry-After") == "1") is (status != 500)
    assert xelion_admin.get("state").status_code == 200, "the admin API is never faulted"
    assert xelion_admin.get("stats").json()["faults"][str(status)] == 1


def test_a_dropped_write_breaks_the_connection_after_it_was_applied(xelion: httpx.Client,
                                                                    xelion_admin: httpx.Client):
    set_faults(xelion_admin, drop_rate=1.0, methods=["POST"])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        xelion.post("addressables", json={"objectType": "Organisation", "name": "Gevallen BV"})
    assert [a["commonName"] for a in xelion_admin.get("addressables").json()] == ["Gevallen BV"]


def test_one_session_gets_10400_beyond_its_requests_in_flight_and_another_session_does_not(
        xelion_sandbox_clean: Sandbox, xelion_admin: httpx.Client):
    sb = xelion_sandbox_clean
    with xelion_client(sb) as busy, xelion_client(sb) as other:
        set_faults(xelion_admin, latency_ms=1500, max_session_concurrency=2)
        answers: list[httpx.Response] = []

        def call() -> None:  # each on a connection of its own, with the session's token
            with httpx.Client(base_url=str(busy.base_url), headers=busy.headers, timeout=30) as client:
                answers.append(client.get("addressables"))

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_until(lambda: sb.xelion.faults.in_flight >= 2, what="2 requests of one session in flight")
        refusal = busy.get("addressables")
        set_faults(xelion_admin, max_session_concurrency=2)  # no latency for the other session's call
        assert other.get("addressables").status_code == 200
        for thread in threads:
            thread.join()
    refused(refusal, 429, 10400)
    assert [a.status_code for a in answers] == [200, 200]
    stats = xelion_admin.get("stats").json()
    assert (stats["rejected_session"], stats["rejected_concurrency"], stats["peak_concurrency"]) == (1, 0, 3)


def test_stats_count_requests_per_route(xelion: httpx.Client, xelion_admin: httpx.Client):
    xelion_admin.post("stats/reset").raise_for_status()
    org = create(xelion, objectType="Organisation", name="Tel BV")
    xelion.get(f"addressables/{org['oid']}")
    xelion.get("addressables/999999")
    xelion.get("communications")
    assert xelion_admin.get("stats").json()["requests"] == {
        "POST addressables": 1, "GET addressables/{oid}": 2, "GET communications": 1}


def test_dataset_round_trip_and_reset(xelion_sandbox_clean: Sandbox, xelion: httpx.Client,
                                      xelion_admin: httpx.Client):
    org = create(xelion, objectType="Organisation", name="Bewaard BV",
                 telecomAddresses=[{"addressType": "Telephone", "address": "0101234567"}])
    call = place_call(xelion_admin, number="0101234567", note="Notitie", recording=True)
    book, calls = xelion_admin.get("addressables").json(), xelion_admin.get("calls").json()
    dataset = xelion_admin.get("dataset").json()
    assert xelion_admin.get("state").json() == {"addressables": 1, "Person": 0, "Organisation": 1,
                                                "UnknownAddressable": 0, "communications": 1, "recordings": 1,
                                                "sessions": 1}

    xelion_admin.put("clock", json={"offset_s": 600}).raise_for_status()
    set_faults(xelion_admin, error_503_rate=1.0)
    counts = xelion_admin.post("reset").json()
    assert (counts["addressables"], counts["communications"], counts["sessions"]) == (0, 0, 0)
    assert xelion_admin.get("faults").json()["error_503_rate"] == 0.0
    assert xelion_admin.get("clock").json()["offset_s"] == 0
    refused(xelion.get(f"addressables/{org['oid']}"), 401, 10000)  # reset ended every session

    assert xelion_admin.post("dataset", json=dataset).json()["communications"] == 1
    assert xelion_admin.get("dataset").json() == dataset
    assert (xelion_admin.get("addressables").json(), xelion_admin.get("calls").json()) == (book, calls)
    with xelion_client(xelion_sandbox_clean) as client:
        assert client.get(f"communications/{call['oid']}/audio").status_code == 200
        assert int(create(client, objectType="Organisation", name="Nieuw")["oid"]) > int(call["oid"])
    assert xelion_admin.post("dataset", json={"nothing": []}).status_code == 400
    assert xelion_admin.get("addressables/424242").status_code == 404
