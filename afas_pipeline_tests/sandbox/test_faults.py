"""Fault injection, the concurrency cap and request statistics (REST API only, never the admin API)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from afas_pipeline_tests.sandbox.conftest import set_faults


def test_faults_default_off_and_put_replaces_with_defaults(admin):
    defaults = admin.get("/faults").json()
    assert defaults == {"latency_ms": 0, "jitter_ms": 0, "error_503_rate": 0.0, "retry_after": 1, "error_500_rate": 0.0,
                        "drop_rate": 0.0, "slow_page_ms": 0, "max_concurrency": 8, "methods": [], "seed": 0,
                        "refuse": []}
    assert set_faults(admin, error_503_rate=0.5)["error_503_rate"] == 0.5
    assert set_faults(admin, seed=1)["error_503_rate"] == 0.0


@pytest.mark.parametrize("faults", [{"error_503_rate": 2}, {"max_concurrency": 0}, {"no_such_fault": 1},
                                    {"refuse": [{"pattern": "("}]}, {"refuse": [{"times": 0}]}])
def test_invalid_faults_are_400(admin, faults):
    assert admin.put("/faults", json=faults).status_code == 400


def test_503_carries_retry_after_in_body_and_header(afas, admin):
    set_faults(admin, error_503_rate=1.0, retry_after=7)
    response = afas.get("/connectors/Sync_Contacts")
    assert response.status_code == 503
    assert response.json()["retry_after"] == 7 and response.json()["error"]["code"] == "503"
    assert response.headers["Retry-After"] == "7"
    assert admin.get("/state").status_code == 200, "the admin API is never faulted"
    assert admin.get("/stats").json()["faults"]["503"] == 1


def test_faults_limited_to_some_methods_leave_the_others_alone(afas, admin):
    set_faults(admin, error_503_rate=1.0, retry_after=0, methods=["PUT"])  # the writes are down, reads work
    assert afas.get("/ProfitVersion").status_code == 200
    assert afas.put("/connectors/KnContact", json={}).status_code == 503
    assert admin.get("/stats").json()["faults"]["503"] == 1


def test_500_fault_has_the_afas_error_body(afas, admin):
    set_faults(admin, error_500_rate=1.0)
    response = afas.get("/ProfitVersion")
    assert response.status_code == 500
    assert response.json()["externalMessage"] == "An unexpected error has occurred."
    assert response.headers["X-Profit-Error"]


def test_a_refusal_answers_500_to_exactly_the_requests_it_names(afas, admin):
    subject = {"KnSubject": {"Element": {"Fields": {"StId": 7, "Ds": "x"},
                                         "Objects": [{"KnSubjectLink": {"Element": {"Fields": {"CdId": 10002}}}}]}}}
    set_faults(admin, refuse=[{"request": "POST connectors/KnSubject", "pattern": '"CdId":10002\\b', "times": 2},
                              {"request": "GET connectors/Sync_Contacts", "pattern": r"filtervalues=([^&]*[;,])?10003\b"}])

    posts = [afas.post("/connectors/KnSubject", json=subject).status_code for _ in range(3)]
    other = afas.post("/connectors/KnSubject", json={**subject, "KnSubject": {"Element": {
        **subject["KnSubject"]["Element"], "Objects": [{"KnSubjectLink": {"Element": {"Fields": {"CdId": 10004}}}}]}}})
    reads = [afas.get("/connectors/Sync_Contacts", params={"filterfieldids": "ContactId;ContactId",
                                                            "filtervalues": values, "operatortypes": "1;1"}).status_code
             for values in ("10001;10003", "10001;10030", "10003;10004")]

    assert posts == [500, 500, 201] and other.status_code == 201  # the first two for that contact only
    assert reads == [500, 200, 500]  # every read that asks for 10003, never one that does not
    assert afas.get("/ProfitVersion").status_code == 200
    response = afas.get("/connectors/Sync_Contacts", params={"filterfieldids": "ContactId", "filtervalues": "10003",
                                                              "operatortypes": "1"})
    assert response.json()["externalMessage"] == "An unexpected error has occurred."
    assert admin.get("/stats").json()["faults"]["500"] == 5


def test_drop_breaks_the_connection_mid_body(afas, admin):
    set_faults(admin, drop_rate=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        afas.get("/connectors/Sync_Contacts", params={"take": 50})
    set_faults(admin)
    assert afas.get("/connectors/Sync_Contacts", params={"take": 1}).status_code == 200, "the client recovers"
    assert admin.get("/stats").json()["faults"]["drop"] == 1


def test_the_same_seed_repeats_the_same_faults(afas, admin):
    def run() -> list[int]:
        set_faults(admin, error_503_rate=0.3, error_500_rate=0.3, seed=42)
        return [afas.get("/ProfitVersion").status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert {200, 500, 503} == set(first)


def test_latency_delays_every_call(afas, admin):
    set_faults(admin, latency_ms=150, slow_page_ms=100)
    started = time.perf_counter()
    assert afas.get("/connectors/Sync_Persons", params={"take": 1}).status_code == 200
    assert time.perf_counter() - started >= 0.25  # a lower bound: the injected delay happened
    admin.post("/stats/reset")
    admin.get("/state")
    # The admin API is outside the injector: not counted, so not delayed either.
    assert admin.get("/stats").json()["requests"] == {}


def test_requests_beyond_max_concurrency_get_503(afas_sandbox_clean, admin):
    set_faults(admin, max_concurrency=2, latency_ms=600)
    sb = afas_sandbox_clean
    statuses: list[httpx.Response] = []
    barrier = threading.Barrier(6)

    def call() -> None:
        from afas_pipeline_tests.sandbox.conftest import afas_client

        with afas_client(sb) as client:
            barrier.wait()
            statuses.append(client.get("/ProfitVersion"))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rejected = [r for r in statuses if r.status_code == 503]
    assert len(statuses) == 6 and 1 <= len(rejected) <= 4
    assert all(r.json()["retry_after"] == 1 and r.headers["Retry-After"] == "1" for r in rejected)
    stats = admin.get("/stats").json()
    assert stats["peak_concurrency"] == 2
    assert stats["rejected_concurrency"] == len(rejected)


def test_stats_count_requests_per_route_and_reset(afas, admin):
    afas.get("/connectors/Sync_Contacts", params={"take": 1})
    afas.get("/connectors/Sync_Contacts", params={"take": 1})
    afas.put("/connectors/KnContact", json={"KnContact": {"Element": {"Fields": {"CdId": 10001, "Bl": True}}}})
    afas.delete("/connectors/KnSubject/KnSubject/@SbId/12345")
    stats = admin.get("/stats").json()
    assert stats["requests"] == {"GET connectors/Sync_Contacts": 2, "PUT connectors/KnContact": 1,
                                 "DELETE connectors/KnSubject/KnSubject": 1}
    assert stats["total"] == 4 and stats["peak_concurrency"] == 1
    reset = admin.post("/stats/reset").json()
    assert reset["total"] == 0 and reset["requests"] == {}
