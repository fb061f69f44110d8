"""Partitions a person can read: each cadence covers a horizon that moves with time, within a budget of 10,000
partitions per asset however long the pipeline has run, and a setting that cannot work is one line naming it."""

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from afas_pipeline.afas.partitions import (
    DELTA, FULL, PARTITION_BUDGET, Cadence, cadence_partitions, delta_partitions, first_window, full_partitions,
)
from afas_pipeline.lib.settings import SettingError

UTC = timezone.utc
MOMENTS = [
    datetime(2026, 1, 1, 0, 0, tzinfo=UTC),  # the default start itself
    datetime(2026, 1, 1, 6, 7, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # spring forward in Amsterdam
    datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # fall back: 02:00-03:00 local twice
    datetime(2026, 11, 22, 18, 39, tzinfo=UTC),
    datetime(2027, 1, 1, 0, 0, tzinfo=UTC),  # a year on
    datetime(2027, 12, 31, 23, 59, tzinfo=UTC),  # the most of a day past the horizon's midnight
    datetime(2029, 1, 1, 12, 0, tzinfo=UTC),  # three years on
    datetime(2029, 6, 30, 23, 45, 30, tzinfo=UTC),
]


def _last_closed(cadence: Cadence, now: datetime) -> str:
    """The key of the window that ended last at `now`, by clock arithmetic."""
    minutes = 24 * 60 // cadence.windows_per_day
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    ended = midnight + timedelta(minutes=(now - midnight) // timedelta(minutes=minutes) * minutes)
    return (ended - timedelta(minutes=minutes)).strftime("%Y-%m-%d-%H:%M")


def _seen_at(partitions: dg.TimeWindowPartitionsDefinition, now: datetime) -> tuple[int, str | None, str | None]:
    with dg.partition_loading_context(effective_dt=now):
        return (partitions.get_num_partitions(), partitions.get_first_partition_key(),
                partitions.get_last_partition_key())


@pytest.mark.parametrize("cadence", [DELTA, FULL], ids=lambda c: c.name)
@pytest.mark.parametrize("horizon", ["default", "largest"])
@pytest.mark.parametrize("now", MOMENTS, ids=lambda m: m.strftime("%Y-%m-%dT%H:%M"))
def test_the_partitions_stay_within_the_budget_and_end_at_the_current_window(cadence, horizon, now):
    env = {cadence.horizon_setting: str(cadence.max_horizon_days)} if horizon == "largest" else {}
    days = cadence.max_horizon_days if horizon == "largest" else cadence.default_horizon_days
    count, first, last = _seen_at(cadence_partitions(cadence, now, env), now)
    assert count <= PARTITION_BUDGET
    if now == datetime(2026, 1, 1, 0, 0, tzinfo=UTC):  # nothing has closed yet
        assert (count, last) == (0, None)
        return
    assert last == _last_closed(cadence, now)
    # The whole horizon is there, unless AFAS_PIPELINE_START (2026-01-01) is later.
    expected_first = max(datetime(2026, 1, 1, tzinfo=UTC),
                         (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0))
    assert first == expected_first.strftime("%Y-%m-%d-%H:%M")


def test_the_largest_horizon_fills_the_budget_at_the_end_of_a_day():
    now = datetime(2028, 5, 17, 23, 59, tzinfo=UTC)
    count, _, _ = _seen_at(cadence_partitions(DELTA, now, {DELTA.horizon_setting: "103"}), now)
    assert count == 104 * 96 - 1 == 9983  # 103 days and all of today but its open window


def test_the_defaults_keep_14_days_of_deltas_and_90_days_of_full_reads():
    now = datetime(2027, 3, 10, 13, 5, tzinfo=UTC)
    assert _seen_at(cadence_partitions(DELTA, now, {}), now) == (14 * 96 + 13 * 4 + 0, "2027-02-24-00:00",
                                                                "2027-03-10-12:45")
    assert _seen_at(cadence_partitions(FULL, now, {}), now) == (90 * 4 + 2, "2026-12-10-00:00", "2027-03-10-06:00")


def test_a_start_later_than_the_horizon_wins():
    now = datetime(2026, 11, 22, 18, 39, tzinfo=UTC)
    env = {"AFAS_PIPELINE_START": "2026-11-20"}
    assert first_window(DELTA, now, env) == first_window(FULL, now, env) == datetime(2026, 11, 20, tzinfo=UTC)
    assert _seen_at(cadence_partitions(DELTA, now, env), now)[:2] == (2 * 96 + 18 * 4 + 2, "2026-11-20-00:00")
    # A start in the future: no partition yet, and none to backfill.
    assert _seen_at(cadence_partitions(FULL, now, {"AFAS_PIPELINE_START": "2027-01-01"}), now) == (0, None, None)


def test_the_code_location_has_the_partitions_of_its_load_time():
    # The suite loads it as of AFAS_PIPELINE_PARTITIONS_AS_OF=2026-07-01T00:00:00Z (conftest.py).
    assert delta_partitions.start == datetime(2026, 3, 20, tzinfo=UTC)  # 103 days back
    assert full_partitions.start == datetime(2026, 1, 1, tzinfo=UTC)  # 400 days back, but not before the start
    assert delta_partitions.cron_schedule == DELTA.cron_schedule and full_partitions.cron_schedule == FULL.cron_schedule


BAD_SETTINGS = [
    ({"AFAS_PIPELINE_START": "2026-13-01"},
     "AFAS_PIPELINE_START='2026-13-01' is not a date: use YYYY-MM-DD (a day in UTC), e.g. 2026-01-01"),
    ({"AFAS_PIPELINE_START": "1 januari\x1b[2J"}, "AFAS_PIPELINE_START='1 januari\\x1b[2J' is not a date"),
    ({"AFAS_PIPELINE_DELTA_HORIZON_DAYS": "two weeks"},
     "AFAS_PIPELINE_DELTA_HORIZON_DAYS='two weeks' is not a whole number of days: use 1 to 103, e.g. 14"),
    ({"AFAS_PIPELINE_DELTA_HORIZON_DAYS": "1.5"}, "AFAS_PIPELINE_DELTA_HORIZON_DAYS='1.5' is not a whole number"),
    ({"AFAS_PIPELINE_DELTA_HORIZON_DAYS": "0"}, "AFAS_PIPELINE_DELTA_HORIZON_DAYS=0 is less than a day: use 1 to 103"),
    ({"AFAS_PIPELINE_DELTA_HORIZON_DAYS": "365"},
     "AFAS_PIPELINE_DELTA_HORIZON_DAYS=365 can hold 35,136 delta partitions, over the budget of 10,000: the largest "
     "allowed is 103"),
    ({"AFAS_PIPELINE_DELTA_HORIZON_DAYS": "104"},
     "AFAS_PIPELINE_DELTA_HORIZON_DAYS=104 can hold 10,080 delta partitions, over the budget of 10,000: the largest "
     "allowed is 103"),
    ({"AFAS_PIPELINE_FULL_HORIZON_DAYS": "2500"},
     "AFAS_PIPELINE_FULL_HORIZON_DAYS=2500 can hold 10,004 full partitions, over the budget of 10,000: the largest "
     "allowed is 2499"),
    ({"AFAS_PIPELINE_FULL_HORIZON_DAYS": "-5"}, "AFAS_PIPELINE_FULL_HORIZON_DAYS=-5 is less than a day"),
]


@pytest.mark.parametrize("env,says", BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it(env, says):
    cadence = FULL if "AFAS_PIPELINE_FULL_HORIZON_DAYS" in env else DELTA
    with pytest.raises(SettingError) as raised:
        cadence_partitions(cadence, datetime(2026, 11, 22, tzinfo=UTC), env)
    message = str(raised.value)
    assert message.startswith(says) and "\n" not in message and "\x1b" not in message


def test_the_largest_horizons_are_allowed():
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert first_window(DELTA, now, {"AFAS_PIPELINE_DELTA_HORIZON_DAYS": " 103 "}) == datetime(2026, 8, 11, tzinfo=UTC)
    assert first_window(FULL, now, {"AFAS_PIPELINE_FULL_HORIZON_DAYS": "2499"}) == datetime(2026, 1, 1, tzinfo=UTC)


def test_the_code_location_does_not_load_with_a_bad_setting():
    env = {"AFAS_PIPELINE_PARTITIONS_AS_OF": "last tuesday", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", "import afas_pipeline.afas.partitions"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=str(_root()))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "afas_pipeline.lib.settings.SettingError: AFAS_PIPELINE_PARTITIONS_AS_OF='last tuesday' is not a moment in "
        "time: use ISO 8601 with its offset, e.g. 2026-11-15T00:00:00Z, or leave it unset")


def test_sync_refuses_a_window_older_than_the_horizon(capsys):
    from afas_pipeline.cli import main

    assert main(["sync", "--cadence", "delta", "--partition", "2026-03-19-23:45"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert "--partition 2026-03-19-23:45" in line and "2026-03-20-00:00" in line  # names the first delta window


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
