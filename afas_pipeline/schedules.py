"""The two cadences as jobs and schedules: a delta every 15 minutes (R1), a full read every 6 hours (R2)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import dagster as dg

from afas_pipeline.afas.partitions import delta_partitions, full_partitions

CADENCE_TAG = "afas_pipeline/cadence"

#: How long after a window closes its run starts: AFAS commits an edit a moment after stamping
#: its modified date, and the client's filter margin only looks back, not forward.
SCHEDULE_LAG = timedelta(minutes=2)


def cadence_job(
    name: str, cadence: str, assets: list[dg.AssetsDefinition], partitions_def: dg.PartitionsDefinition
) -> dg.UnresolvedAssetJobDefinition:
    """A job over every asset partitioned like `partitions_def`, and the unpartitioned ones that only
    summarise them (such as `spotler_rejected`)."""
    partitioned = [key for a in assets if a.partitions_def == partitions_def for key in a.keys]
    summaries = [key for a in assets if a.partitions_def is None for key in a.keys]
    return dg.define_asset_job(
        name,
        selection=partitioned + summaries,
        description=f"Materialise every {cadence} asset for one window.",
        # For finding a cadence's runs in the UI. One run per cadence at a time is the assets' pools'
        # job (`afas_delta`, `afas_full`; dagster.yaml), which holds for backfills too: they lack this tag.
        tags={CADENCE_TAG: cadence},
    )


def window_schedule(
    job: dg.UnresolvedAssetJobDefinition,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    cron_schedule: str,
) -> dg.ScheduleDefinition:
    """Requests the window that closed `SCHEDULE_LAG` ago; the partition key is the run key, so a
    window is requested once however often the daemon retries the tick."""

    @dg.schedule(
        name=f"{job.name}_schedule",
        cron_schedule=cron_schedule,
        execution_timezone="UTC",
        job=job,
        description=f"Runs {job.name} for each window {SCHEDULE_LAG} after it closes.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        key = last_closed_window(partitions_def, context.scheduled_execution_time)
        return dg.RunRequest(run_key=key, partition_key=key)

    return _schedule


def last_closed_window(partitions_def: dg.TimeWindowPartitionsDefinition, now: datetime) -> str:
    """The key of the last window that closed at least `SCHEDULE_LAG` before `now`, by the cron alone: the
    partitions' moving start (afas/partitions.py) is no bound here."""
    current = partitions_def.get_partition_key_for_timestamp((now - SCHEDULE_LAG).timestamp())
    previous = partitions_def.get_prev_partition_window(partitions_def.time_window_for_partition_key(current).start,
                                                        respect_bounds=False)
    return partitions_def.get_partition_key_for_timestamp(previous.start.timestamp())


#: Each cadence's schedule: `SCHEDULE_LAG` after each of its windows closes.
SCHEDULE_CRONS = {"delta": "2-59/15 * * * *", "full": "2 */6 * * *"}


def build_jobs_and_schedules(
    assets: list[dg.AssetsDefinition],
    partitions: Mapping[str, dg.TimeWindowPartitionsDefinition] | None = None,
) -> tuple[list[dg.UnresolvedAssetJobDefinition], list[dg.ScheduleDefinition]]:
    """`afas_<cadence>_job` and its schedule per cadence; `partitions`: each cadence's partitions (default: as
    this code location loaded them)."""
    partitions = partitions or {"delta": delta_partitions, "full": full_partitions}
    jobs, schedules = [], []
    for cadence in ("delta", "full"):
        job = cadence_job(f"afas_{cadence}_job", cadence, assets, partitions[cadence])
        jobs.append(job)
        schedules.append(window_schedule(job, partitions[cadence], SCHEDULE_CRONS[cadence]))
    return jobs, schedules
