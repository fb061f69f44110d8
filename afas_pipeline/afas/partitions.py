"""The two cadences of the AFAS read (R1, R2): their partitions, backfill policies and run pools.

Partitions are UTC windows on purpose. AFAS itself speaks Amsterdam local time, where the autumn
DST change repeats the hour 02:00-03:00: Amsterdam-local partition keys would be ambiguous there.
The conversion to Amsterdam local time happens once, in the AFAS client's window filter.

The partitions cover a horizon that moves with time: they start at midnight UTC a number of days before the
code location loaded (`AFAS_PIPELINE_DELTA_HORIZON_DAYS`, `AFAS_PIPELINE_FULL_HORIZON_DAYS`), never before
`AFAS_PIPELINE_START`. A fixed start made the UI list every 15-minute window since the pipeline first ran (35,040
a year) and "Materialize all" backfill all of them; older windows are the full sync's job. Each horizon is
refused when it could hold more than `PARTITION_BUDGET` partitions. The count grows by a day's windows per day
until the code location loads again (a deploy or a reload in the UI); the schedules always ask for the current
window either way. Each run loads the code afresh: a window that a code location loaded days ago still lists,
but that lies before the run's own horizon, fails its run (Dagster: "... is before the partitions definition
start time").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import dagster as dg

from afas_pipeline.lib.settings import SettingError, given
from afas_pipeline.lib.text import printable

FMT = "%Y-%m-%d-%H:%M"
#: At most this many partitions per asset, however long the pipeline has run (Dagster's UI is comfortable far
#: below its documented 100,000; this leaves room for a code location that is not reloaded for months).
PARTITION_BUDGET = 10_000

START_SETTING = "AFAS_PIPELINE_START"
DEFAULT_START = date(2026, 1, 1)
#: For tests and for reproducing what a deployment showed: the moment the horizons count back from, instead of
#: the moment the code location loads. Leave it unset in production.
AS_OF_SETTING = "AFAS_PIPELINE_PARTITIONS_AS_OF"


@dataclass(frozen=True)
class Cadence:
    name: str
    cron_schedule: str
    windows_per_day: int
    horizon_setting: str
    default_horizon_days: int
    #: Dagster concurrency pool of every asset of this cadence: with `granularity: run` and `default_limit: 1`
    #: in dagster.yaml, one run per cadence at a time, however it was launched (schedule, backfill, UI).
    pool: str

    @property
    def max_horizon_days(self) -> int:
        """The longest horizon within the budget: it holds the horizon's days plus the part of today passed."""
        return PARTITION_BUDGET // self.windows_per_day - 1


#: R1: new and changed contacts every 15 minutes.
DELTA = Cadence("delta", "*/15 * * * *", 96, "AFAS_PIPELINE_DELTA_HORIZON_DAYS", 14, "afas_delta")
#: R2: a full read every 6 hours repairs whatever the deltas missed.
FULL = Cadence("full", "0 */6 * * *", 4, "AFAS_PIPELINE_FULL_HORIZON_DAYS", 90, "afas_full")


def first_window(cadence: Cadence, now: datetime, env: Mapping[str, str] = os.environ) -> datetime:
    """The start of the first partition: midnight UTC `horizon` days before `now`, or the configured start
    when that is later."""
    start = _start(env)
    horizon = horizon_days(cadence, env)
    moved = datetime.combine((now.astimezone(timezone.utc) - timedelta(days=horizon)).date(), time(),
                             tzinfo=timezone.utc)
    return max(start, moved)


def cadence_partitions(cadence: Cadence, now: datetime,
                       env: Mapping[str, str] = os.environ) -> dg.TimeWindowPartitionsDefinition:
    """The partitions of `cadence` as a code location loaded at `now` has them."""
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cadence.cron_schedule,
        start=first_window(cadence, now, env).strftime(FMT),
        fmt=FMT,
        timezone="UTC",
    )


def load_time(env: Mapping[str, str] = os.environ) -> datetime:
    """Now, or the moment `AFAS_PIPELINE_PARTITIONS_AS_OF` names."""
    value = given(env, AS_OF_SETTING)
    if value is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise SettingError(
            f"{AS_OF_SETTING}='{printable(value)}' is not a moment in time: use ISO 8601 with its offset, e.g. "
            "2026-11-15T00:00:00Z, or leave it unset")
    return moment


def _start(env: Mapping[str, str]) -> datetime:
    value = given(env, START_SETTING)
    try:
        day = date.fromisoformat(value) if value else DEFAULT_START
    except ValueError:
        raise SettingError(
            f"{START_SETTING}='{printable(value)}' is not a date: use YYYY-MM-DD (a day in UTC), e.g. "
            f"{DEFAULT_START.isoformat()}") from None
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def horizon_days(cadence: Cadence, env: Mapping[str, str] = os.environ) -> int:
    """How many days back the cadence's windows reach (its setting, checked)."""
    value = given(env, cadence.horizon_setting)
    if value is None:
        return cadence.default_horizon_days
    name, largest = cadence.horizon_setting, cadence.max_horizon_days
    try:
        days = int(value)
    except ValueError:
        raise SettingError(
            f"{name}='{printable(value)}' is not a whole number of days: use 1 to {largest}, e.g. "
            f"{cadence.default_horizon_days}") from None
    if days < 1:
        raise SettingError(f"{name}={days} is less than a day: use 1 to {largest}")
    if days > largest:
        raise SettingError(
            f"{name}={days} can hold {(days + 1) * cadence.windows_per_day:,} {cadence.name} partitions, over the "
            f"budget of {PARTITION_BUDGET:,}: the largest allowed is {largest}")
    return days


_loaded_at = load_time()
delta_partitions = cadence_partitions(DELTA, _loaded_at)
full_partitions = cadence_partitions(FULL, _loaded_at)
DELTA_POOL = DELTA.pool
FULL_POOL = FULL.pool

#: A day of deltas per run: backfilling a week costs 7 runs, not 672.
DELTA_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=96)
#: A full read is a snapshot of AFAS as it is now; a backfill over many 6-hour partitions reads
#: AFAS once and records that one snapshot for each of them.
FULL_BACKFILL = dg.BackfillPolicy.single_run()
