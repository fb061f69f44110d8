"""C4 and R2 through outages: a destination or AFAS that does not answer is not a destination that refuses.

A run that meets an outage after its retries fails (the on-call engineer sees a red run, a rerun continues),
counts no record as refused, and quarantines nothing; once the system answers again, the next run, at the
latest the 6-hour full sync (R2), repairs everything the outage left behind. A sync step retried after an outage
reads the opt-outs made meanwhile before it sends its plan again (C1).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from afas_pipeline.afas.assets import build_afas_assets
from afas_pipeline.chain.feedback import AFAS
from afas_pipeline.lib import failpoints
from afas_pipeline.sync.state import IN_DOUBT
from afas_pipeline_tests.properties.test_sync_model import seen_in_spotler
from afas_pipeline_tests.spotler.conftest import permissions, spotler_assets

FULL_RUNS = ("2026-11-21-00:00", "2026-11-21-06:00", "2026-11-21-12:00", "2026-11-21-18:00", "2026-11-22-00:00",
             "2026-11-22-06:00")
WRITES_DOWN = {"error_503_rate": 1.0, "retry_after": 0, "methods": ["POST", "PUT"]}


def _failure(result) -> str:
    """The failed step and the error that failed it (under Dagster's wrapper)."""
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return f"{failure.step_key}: {error.message}"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_c4_r2_spotler_down_for_writes_fails_six_runs_quarantines_nothing_and_the_full_sync_repairs(world, backend,
                                                                                                   request):
    if backend == "postgres":  # the sync state in a fresh Postgres database instead of its SQLite file
        world.state_url = request.getfixturevalue("postgres_state")
    world.spotler_options = {"max_attempts": 2}
    world.spotler("PUT", "/faults", json=WRITES_DOWN)

    failures = [world.sync(partition, raise_on_error=False) for partition in FULL_RUNS]

    assert [r.success for r in failures] == [False] * len(FULL_RUNS)
    assert all("spotler_sync: " in _failure(r) and "contact/list: " in _failure(r) and "got no answer" in _failure(r)
               for r in failures), _failure(failures[-1])
    assert world.state().rejected("spotler").empty  # nothing refused, nothing quarantined
    assert world.spotler_contacts() == {}

    world.spotler("PUT", "/faults", json={})
    repaired = world.sync("2026-11-22-12:00")

    members = world.stored("spotler_audience", "2026-11-22-12:00")
    members = members[members["excluded_by"].isna()]
    assert set(world.spotler_contacts()) == set(members["external_id"])
    assert world.metadata(repaired, "spotler_sync")["rejected"] == 0
    world.spotler("POST", "/stats/reset")
    world.sync("2026-11-22-18:00")
    assert world.spotler_writes() == 0


def test_c4_a_spotler_outage_in_the_middle_of_a_sync_keeps_what_was_answered(world):
    world.spotler_options = {"max_attempts": 2, "max_concurrency": 1, "batch_size": 20}
    world.sync()
    world.afas("POST", "/dataset/generate", json={"contacts": 400, "seed": 7})  # 100 more contacts to create
    world.spotler("POST", "/stats/reset")
    world.spotler("PUT", "/faults", json={**WRITES_DOWN, "error_503_rate": 0.5, "seed": 4})

    def hashes() -> set[tuple[str, str]]:
        saved = world.state().records("spotler", parsed=False, columns=("content_hash",))
        return set(zip(saved["external_id"], saved["content_hash"]))

    before = hashes()
    failed = world.sync("2026-11-22-12:00", raise_on_error=False)

    assert not failed.success
    have = set(world.spotler_contacts())
    answered = {i for i, h in hashes() - before if h != IN_DOUBT}  # what the failed run saved as accepted
    assert answered
    world.spotler("PUT", "/faults", json={})
    world.spotler("POST", "/stats/reset")
    repair = world.sync("2026-11-22-18:00")
    sent_again = world.spotler_stats()["requests"].get("POST contact/list", 0)
    members = world.stored("spotler_audience", "2026-11-22-18:00")
    assert set(members.loc[members["excluded_by"].isna(), "external_id"]) <= set(world.spotler_contacts())
    results = world.stored("spotler_sync", "2026-11-22-18:00")
    assert not set(results.loc[results["status"] == "ok", "external_id"]) & answered  # answered: not sent again
    assert len(have) > 300 and sent_again < 100 / 20 + 1  # every batch was tried; the answered ones not sent again
    assert repair.success and world.state().rejected("spotler").empty


def _with_a_step_retry(world, monkeypatch) -> None:
    """The assets built with one step retry at once (afas_pipeline/retries.py); Spotler's client sending one contact
    per batch, one batch at a time, without retrying a call itself."""
    monkeypatch.setenv("AFAS_PIPELINE_STEP_RETRIES", "1")
    monkeypatch.setenv("AFAS_PIPELINE_STEP_RETRY_DELAY_S", "0")
    world.assets = [*build_afas_assets(), *spotler_assets()]
    world.spotler_options = {"max_attempts": 1, "max_concurrency": 1, "batch_size": 1}


def _pause_the_second_batch_and_the_retry() -> None:
    failpoints.arm("spotler.contact_list", "pause", 2)  # the first batch answered and saved, the second not sent
    failpoints.arm("spotler_sync.intent_recorded", "pause", 2)  # the retry, about to send


def test_c1_a_sync_step_retried_after_an_outage_reads_the_optouts_made_meanwhile_first(world, monkeypatch):
    """Spotler goes down halfway through a sync: the step retries (afas_pipeline/retries.py), sending the same
    plan. A recipient who opted out in between, after the first batch switched them on, stays opted out."""
    _with_a_step_retry(world, monkeypatch)
    world.sync()
    ids = [str(c["ContactId"]) for c in world.pick(2, ContactKind="PRS", Blocked=False, HardBounce=False,
                                                   PermissionNewsletter=False)]
    for external_id in ids:
        world.afas_edit("contacts", external_id, at="2026-11-16T10:05:00Z", PermissionNewsletter=True)
    _pause_the_second_batch_and_the_retry()

    with ThreadPoolExecutor(max_workers=1) as runner:
        running = runner.submit(world.delta, "2026-11-16-10:00")
        try:
            assert failpoints.wait_until_paused("spotler.contact_list")
            (switched_on,) = [i for i in ids if permissions(world.spotler_contact(i)).get(1)]
            world.spotler("POST", f"/recipients/{switched_on}/unsubscribe", json={"bit": 1})
            world.spotler("PUT", "/faults", json=WRITES_DOWN)
            failpoints.release("spotler.contact_list")
            assert failpoints.wait_until_paused("spotler_sync.intent_recorded")
            world.spotler("PUT", "/faults", json={})
        finally:
            failpoints.disarm()  # lets the run go on, also when an assertion above failed
        result = running.result(timeout=120)

    (retry,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert retry.step_key == "spotler_sync_delta"
    (other,) = set(ids) - {switched_on}
    assert permissions(world.spotler_contact(switched_on))[1] is False, "C1: the retry undid the opt-out"
    assert permissions(world.spotler_contact(other))[1] is True
    sync = world.metadata(result, "spotler_sync_delta")
    assert (sync["held_at_send"], sync["optouts_reread"]) == (1, True)


def test_c3_a_sync_step_retried_after_an_outage_sends_only_what_the_failed_attempt_did_not_settle(world, monkeypatch):
    """Spotler goes down halfway through a sync; the step retry sends the rest of the same plan. A record whose
    batch the first attempt got answered and saved is not sent again (it was: every planned record went again,
    and at a million contacts a retry near the end sent the whole plan once more)."""
    _with_a_step_retry(world, monkeypatch)
    world.sync()
    ids = [str(c["ContactId"]) for c in world.pick(3, ContactKind="PRS", Blocked=False, HardBounce=False)]
    for n, external_id in enumerate(ids):
        world.afas_edit("contacts", external_id, at="2026-11-16T10:05:00Z", Function=f"Na de storing {n}")
    _pause_the_second_batch_and_the_retry()

    with ThreadPoolExecutor(max_workers=1) as runner:
        running = runner.submit(world.delta, "2026-11-16-10:00")
        try:
            assert failpoints.wait_until_paused("spotler.contact_list")
            world.spotler("PUT", "/faults", json=WRITES_DOWN)
            failpoints.release("spotler.contact_list")
            assert failpoints.wait_until_paused("spotler_sync.intent_recorded")
            world.spotler("PUT", "/faults", json={})
            world.spotler("POST", "/stats/reset")  # what the retry sends from here
        finally:
            failpoints.disarm()
        result = running.result(timeout=120)

    assert result.success and any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)
    assert all(world.spotler_contact(i)["properties"]["function"] == f"Na de storing {n}" for n, i in enumerate(ids))
    assert world.spotler_writes() == 2  # the two not answered yet, not the one saved
    assert world.metadata(result, "spotler_sync_delta")["superseded"] == 1


def _afas_down_for_five_windows(world, run) -> None:
    """75 minutes of AFAS refusing every write: five runs of `run`, each red, none counting a record refused."""
    world.afas_options = {"max_attempts": 2}
    world.afas("PUT", "/faults", json=WRITES_DOWN)
    failures = [run(window, raise_on_error=False) for window in
                ("2026-11-16-10:00", "2026-11-16-10:15", "2026-11-16-10:30", "2026-11-16-10:45", "2026-11-16-11:00")]
    assert [r.success for r in failures] == [False] * 5
    assert "got no answer from AFAS" in _failure(failures[0])
    assert world.state().rejected(AFAS).empty
    world.afas("PUT", "/faults", json={})


def test_c4_afas_down_for_the_write_back_fails_the_run_and_a_later_run_delivers(world):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", PermissionNewsletter=True, Blocked=False, HardBounce=False)
    external_id = str(contact["ContactId"])
    world.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:05:00Z"})
    _afas_down_for_five_windows(world, world.feedback)
    world.feedback("2026-11-16-11:15")
    afas = world.afas_contacts()
    assert not bool(afas.loc[afas["ContactId"].astype(str) == external_id, "PermissionNewsletter"].iloc[0])
    assert seen_in_spotler(world.spotler_contact(external_id))["permissions"][1] is False


def test_c4_r17_afas_down_for_the_dossier_items_fails_the_run_quarantines_nothing_and_makes_each_item_once(world):
    world.sync()
    contacts = world.pick(5, ContactKind="PRS", PermissionNewsletter=True, Blocked=False, HardBounce=False)
    world.spotler("POST", "/mailings", json={"name": "Nieuwsbrief", "subject": "Nieuws", "at": "2026-11-16T10:05:00Z",
                                             "recipients": [str(c["ContactId"]) for c in contacts]})
    _afas_down_for_five_windows(world, world.history)
    world.history("2026-11-16-11:15")
    frame, _ = world.resources()["afas"].read("ProfitSubjects", order_by=["SubjectId"])
    per_contact = frame["ContactId"].astype(str).value_counts()
    assert {str(c["ContactId"]): 1 for c in contacts} == {k: int(per_contact.get(k, 0)) for k in map(str, (
        c["ContactId"] for c in contacts))}
