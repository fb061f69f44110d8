"""Two runs that meet in a Postgres sync state without the run's lock (two workers, a lock lost): the claims and the
ledger still hold, through unique keys and single-statement upserts. Each test holds the first run's transaction
open until the second run's statement is seen waiting on it in Postgres (pg_stat_activity), then commits it: the two
meet every time, not by luck of timing."""

from __future__ import annotations

import threading
from datetime import timedelta

from afas_pipeline.sync.state import SyncState
from afas_pipeline_tests.waiting import wait_until

SENT = "2026-11-16T10:05:00+00:00"
LEASE = timedelta(hours=1)
KEY = ("m1", "10001")
EVENTS = [("10001", "optout:1", "2026-11-16T10:05:00+00:00"), ("10002", "bounce:hard", "2026-11-16T10:06:00+00:00")]


def _meet(url: str, first, second):
    """`first()` in an open transaction of the first run's state, then `second()` in another thread, which must
    wait for that transaction; once it is seen waiting, the first commits. (first's result, second's result)."""
    results = {}
    state = SyncState(url, run_id="run-a")
    watcher = SyncState(url, read_only=True).connect_raw()
    watcher.autocommit = True
    try:
        with state.transaction():
            results["first"] = first(state)
            thread = threading.Thread(target=lambda: results.setdefault("second", second(SyncState(url))))
            thread.start()
            wait_until(lambda: _waiting_on_a_lock(watcher) == 1, timeout_s=30, what="the second run waiting")
        thread.join(30)
    finally:
        watcher.close()
    return results["first"], results["second"]


def _waiting_on_a_lock(watcher) -> int:
    with watcher.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
        return cur.fetchone()[0]


def test_c3_two_runs_adding_the_same_dossier_item_at_once_one_may_post_it(postgres_state):
    first, second = _meet(postgres_state,
                          lambda s: s.claim_mailing_item("spotler", KEY, SENT, "run-a", seen=None, lease=LEASE),
                          lambda s: s.claim_mailing_item("spotler", KEY, SENT, "run-b", seen=None, lease=LEASE))
    assert (first, second) == (True, False)
    assert SyncState(postgres_state).mailing_items("spotler")["claimed_by"].tolist() == ["run-a"]


def test_c3_two_runs_taking_over_the_same_waiting_item_at_once_one_may_post_it(postgres_state):
    state = SyncState(postgres_state)
    state.save_mailing_items("spotler", [(*KEY, SENT, None)])  # waits for a retry; both runs read it so
    seen = state.mailing_items("spotler")["updated_at"].iloc[0]
    first, second = _meet(postgres_state,
                          lambda s: s.claim_mailing_item("spotler", KEY, SENT, "run-a", seen=seen, lease=LEASE),
                          lambda s: s.claim_mailing_item("spotler", KEY, SENT, "run-b", seen=seen, lease=LEASE))
    assert (first, second) == (True, False)
    assert state.mailing_items("spotler")["claimed_by"].tolist() == ["run-a"]


def test_an_event_recorded_by_two_runs_at_once_is_one_row_and_delivered_stays_delivered(postgres_state):
    _meet(postgres_state, lambda s: s.record_feedback("spotler", EVENTS, "delivered"),
          lambda s: s.record_feedback("spotler", EVENTS, "pending"))
    ledger = SyncState(postgres_state).feedback_events("spotler")
    assert ledger[["external_id", "status"]].values.tolist() == [["10001", "delivered"], ["10002", "delivered"]]
