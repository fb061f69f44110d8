"""Feedback lag: the time from an opt-out in a destination until it is in AFAS, measured by each destination's
`<d>_afas_write_back` per window (metadata `feedback_lag_*`) and checked by `feedback_lag_p95_within_30_min`
(a warning, never blocking). Event times are set relative to the real clock, which the write-back measures
against: recent windows, no sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from afas_pipeline.chain.feedback import FEEDBACK_LAG_CHECK

WINDOW = timedelta(minutes=15)


def _closed_windows(n: int) -> list[datetime]:
    """The starts of the last `n` windows that have closed, oldest first. Taken before the test's full sync, so
    that what the sync does in a destination falls after these windows, even when it crosses a quarter hour."""
    now = datetime.now(timezone.utc)
    end = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return [end - WINDOW * i for i in range(n, 0, -1)]


def _key(start: datetime) -> str:
    return start.strftime("%Y-%m-%d-%H:%M")


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _subscriber(world, probe) -> str:
    world.sync()
    present = probe.records()
    contacts = world.afas_contacts()
    contacts = contacts[(contacts["ContactKind"] == "PRS") & (contacts["PermissionNewsletter"] == True)  # noqa: E712
                        & (contacts["Blocked"] == False) & (contacts["HardBounce"] == False)  # noqa: E712
                        & contacts["ContactId"].astype(str).isin(present)]
    return str(contacts.iloc[0]["ContactId"])


def _lag_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == FEEDBACK_LAG_CHECK]
    return evaluation


def test_an_opt_out_written_in_its_own_window_has_a_lag_within_30_minutes(destination):
    world, probe = destination
    (start,) = _closed_windows(1)
    external_id = _subscriber(world, probe)
    # A minute before the window closes: the lag is the wait for the window's run, minutes at most.
    probe.opt_out(external_id, at=_iso(start + WINDOW - timedelta(minutes=1)))

    result = world.feedback(_key(start))

    meta = world.metadata(result, f"{world.destination}_afas_write_back")
    assert meta["calls_sent"] == 1
    # The run's own event is in the ledger as pending before the write-back, yet it is not from an earlier run.
    assert meta["events"] == 1 and meta["events_pending_from_earlier_runs"] == 0
    assert meta["feedback_lag_events"] == 1
    assert 0 < meta["feedback_lag_p95_minutes"] == meta["feedback_lag_max_minutes"] < 30
    check = _lag_check(result)
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN

    # A rerun writes nothing: no events, no lag, the check passes.
    rerun = world.feedback(_key(start))
    meta = world.metadata(rerun, f"{world.destination}_afas_write_back")
    assert meta["feedback_lag_events"] == 0 and meta["feedback_lag_p95_minutes"] is None
    assert _lag_check(rerun).passed


def test_an_opt_out_that_waited_for_afas_for_two_windows_warns(destination):
    world, probe = destination
    first, second, third = _closed_windows(3)
    external_id = _subscriber(world, probe)
    probe.opt_out(external_id, at=_iso(first + timedelta(minutes=5)))

    world.afas("PUT", "/faults", json={"error_503_rate": 1.0})
    for start in (first, second):
        down = world.feedback(_key(start), raise_on_error=False)
        assert not down.success
    world.afas("PUT", "/faults", json={})
    result = world.feedback(_key(third))

    meta = world.metadata(result, f"{world.destination}_afas_write_back")
    assert meta["events_pending_from_earlier_runs"] == 1 and meta["calls_sent"] == 1
    # Written at least 40 minutes after the opt-out: the window it happened in and the two after it.
    assert meta["feedback_lag_events"] == 1 and meta["feedback_lag_p95_minutes"] >= 40
    check = _lag_check(result)
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert result.success  # a warning, not a failed run
    afas = world.afas_contacts().set_index(world.afas_contacts()["ContactId"].astype(str))
    assert not bool(afas.loc[external_id, "PermissionNewsletter"])
