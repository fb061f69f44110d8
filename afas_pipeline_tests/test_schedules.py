"""Schedules request the window that closed, in UTC keys, across both 2026 DST changes, and that window is a
partition of the code location as it loaded that day, however far its horizon has moved."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from afas_pipeline.afas.partitions import DELTA, FULL, cadence_partitions
from afas_pipeline.definitions import defs
from afas_pipeline.schedules import build_jobs_and_schedules


def _tick(schedule_name: str, when: datetime, definitions: dg.Definitions = defs) -> dg.RunRequest:
    schedule = definitions.resolve_schedule_def(schedule_name)
    context = dg.build_schedule_context(scheduled_execution_time=when,
                                        repository_def=definitions.get_repository_def())
    # evaluate_tick also checks that the requested key is one of the job's partitions.
    result = schedule.evaluate_tick(context)
    (request,) = result.run_requests
    return request


def _loaded_at(moment: datetime) -> dg.Definitions:
    """The jobs and schedules of a code location that loaded at `moment` with the default horizons, over one
    stand-in asset per cadence."""
    partitions = {c.name: cadence_partitions(c, moment, env={}) for c in (DELTA, FULL)}

    def stand_in(cadence: str) -> dg.AssetsDefinition:
        @dg.asset(name=f"{cadence}_window", partitions_def=partitions[cadence])
        def window() -> None:
            return None

        return window

    assets = [stand_in("delta"), stand_in("full")]
    jobs, schedules = build_jobs_and_schedules(assets, partitions)
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules)


@pytest.mark.parametrize(
    ("tick", "expected"),
    [
        (datetime(2026, 11, 22, 10, 2, tzinfo=timezone.utc), "2026-11-22-09:45"),
        (datetime(2026, 11, 22, 0, 2, tzinfo=timezone.utc), "2026-11-21-23:45"),
    ],
)
def test_r1_delta_schedule_requests_the_window_that_closed(tick, expected):
    request = _tick("afas_delta_job_schedule", tick)
    assert request.partition_key == expected
    assert request.run_key == expected


@pytest.mark.parametrize(
    ("tick", "expected"),
    [
        # Spring forward: 01:00 UTC is 02:00 CET -> 03:00 CEST. UTC keys carry on untouched.
        (datetime(2026, 3, 29, 1, 2, tzinfo=timezone.utc), "2026-03-29-00:45"),
        (datetime(2026, 3, 29, 1, 17, tzinfo=timezone.utc), "2026-03-29-01:00"),
        # Fall back: local 02:00-03:00 happens twice; both passes have their own UTC keys.
        (datetime(2026, 10, 25, 0, 17, tzinfo=timezone.utc), "2026-10-25-00:00"),
        (datetime(2026, 10, 25, 1, 17, tzinfo=timezone.utc), "2026-10-25-01:00"),
        # A code location loaded just after midnight UTC: its horizon has just moved a day.
        (datetime(2026, 11, 22, 0, 2, tzinfo=timezone.utc), "2026-11-21-23:45"),
    ],
)
def test_r1_delta_schedule_of_a_code_location_loaded_that_day_requests_the_window_that_closed(tick, expected):
    request = _tick("afas_delta_job_schedule", tick, _loaded_at(tick - timedelta(minutes=1)))
    assert request.partition_key == request.run_key == expected


def test_r1_delta_schedule_ticks_every_15_minutes_after_a_2_minute_lag():
    schedule = defs.resolve_schedule_def("afas_delta_job_schedule")
    assert schedule.cron_schedule == "2-59/15 * * * *"
    assert schedule.execution_timezone == "UTC"


def test_r2_full_schedule_requests_the_6_hour_window_that_closed():
    schedule = defs.resolve_schedule_def("afas_full_job_schedule")
    assert schedule.cron_schedule == "2 */6 * * *"
    assert _tick("afas_full_job_schedule", datetime(2026, 11, 22, 12, 2, tzinfo=timezone.utc)).partition_key == (
        "2026-11-22-06:00"
    )
    loaded = _loaded_at(datetime(2027, 6, 1, 0, 1, tzinfo=timezone.utc))
    assert _tick("afas_full_job_schedule", datetime(2027, 6, 1, 0, 2, tzinfo=timezone.utc), loaded).partition_key == (
        "2027-05-31-18:00"
    )


def test_consecutive_delta_ticks_cover_a_dst_day_without_gaps_or_repeats():
    loaded = _loaded_at(datetime(2026, 10, 25, 0, 0, tzinfo=timezone.utc))
    keys = [
        _tick("afas_delta_job_schedule", datetime(2026, 10, 25, h, m, tzinfo=timezone.utc), loaded).partition_key
        for h in range(0, 4)
        for m in (2, 17, 32, 47)
    ]
    assert len(keys) == len(set(keys)) == 16
    windows = [datetime.strptime(k, "%Y-%m-%d-%H:%M") for k in keys]
    assert all((b - a).total_seconds() == 900 for a, b in zip(windows, windows[1:]))


def test_sync_command_picks_the_last_closed_window_mid_window():
    from afas_pipeline.afas.partitions import delta_partitions, full_partitions
    from afas_pipeline.schedules import last_closed_window

    now = datetime(2026, 11, 22, 18, 39, tzinfo=timezone.utc)
    assert last_closed_window(full_partitions, now) == "2026-11-22-12:00"
    assert last_closed_window(delta_partitions, now) == "2026-11-22-18:15"
    # Within the lag after a window closes, that window is not yet taken.
    assert last_closed_window(delta_partitions, datetime(2026, 11, 22, 18, 31, tzinfo=timezone.utc)) == "2026-11-22-18:00"


def test_the_last_closed_window_is_found_by_the_cron_also_before_the_first_partition():
    # AFAS_PIPELINE_START in the future: no partition yet. The CLI still learns which window closed last (and
    # then says that it lies before the first one) instead of failing on Dagster's "no previous window".
    from afas_pipeline.schedules import last_closed_window

    now = datetime(2026, 11, 22, 18, 39, tzinfo=timezone.utc)
    later = cadence_partitions(DELTA, now, env={"AFAS_PIPELINE_START": "2027-01-01"})
    assert later.get_last_partition_key() is None
    assert last_closed_window(later, now) == "2026-11-22-18:15"
