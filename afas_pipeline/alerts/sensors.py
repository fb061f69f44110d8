"""The sensors that notify someone: a failed run, and a 15-minute asset that has not succeeded for 45 minutes.

- `afas_pipeline_run_failure_alert` (a run-failure sensor over every job of this code location) sends the
  job, run id, partition, failed steps with the first line of each error, and a link to the run.
- Every 15-minute asset has Dagster's `freshness_check`: it fails when the asset's last materialisation
  is more than 45 minutes old. The delta job runs the checks after its assets (so a window that succeeds
  passes them); `afas_pipeline_freshness_checks` runs them in between, as soon as one could have become
  overdue, and once more after a failed one's asset materialised again (Dagster's freshness check sensor).
- `afas_pipeline_freshness_alert` reads the checks' latest results and alerts once per failing episode,
  then once when it is over. The episodes live in the sensor's cursor with the targets already told, so
  a target that did not answer is tried again on the next tick.

All three run by default. Without a target (`alerts` resource) they log what they would have sent.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from afas_pipeline.alerts.messages import (
    Alert, FailedStep, Overdue, error_line, freshness_alert, freshness_recovered_alert, run_failure_alert,
)
from afas_pipeline.alerts.targets import AlertsResource

RUN_FAILURE_SENSOR = "afas_pipeline_run_failure_alert"
FRESHNESS_ALERT_SENSOR = "afas_pipeline_freshness_alert"
FRESHNESS_CHECKS_SENSOR = "afas_pipeline_freshness_checks"
#: A 15-minute asset with no success for this long fails its freshness check.
OVERDUE_MINUTES = 45
OVERDUE_AFTER = timedelta(minutes=OVERDUE_MINUTES)
FIFTEEN_MINUTES = "*/15 * * * *"
#: This code location's name (workspace.yaml, pyproject.toml).
CODE_LOCATION = "afas_pipeline"
#: Dagster wraps the exception an op raised in these; the alert names the op's own error.
_WRAPPERS = ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError")


def fifteen_minute_assets(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    return [a for a in assets if isinstance(a.partitions_def, dg.TimeWindowPartitionsDefinition)
            and a.partitions_def.cron_schedule == FIFTEEN_MINUTES]


def freshness_checks(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    """`freshness_check` on every 15-minute asset: failed when its last materialisation (any window) is older
    than OVERDUE_AFTER. A last-update check rather than a time-partition one: the latter expects the latest
    window as soon as a deadline tick passes, with no way to say "45 minutes"."""
    with warnings.catch_warnings():
        # Dagster marks these superseded by FreshnessPolicy, whose failures no sensor of ours could read.
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return list(dg.build_last_update_freshness_checks(
            assets=fifteen_minute_assets(assets), lower_bound_delta=OVERDUE_AFTER,
            severity=dg.AssetCheckSeverity.ERROR))


def alert_sensors(checks: Sequence[dg.AssetChecksDefinition]) -> list[dg.SensorDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        evaluate = dg.build_sensor_for_freshness_checks(
            freshness_checks=checks, name=FRESHNESS_CHECKS_SENSOR, minimum_interval_seconds=60,
            default_status=dg.DefaultSensorStatus.RUNNING)
    keys = [spec.key for c in checks for spec in c.check_specs]
    return [afas_pipeline_run_failure_alert, evaluate, freshness_alert_sensor(keys)]


# --- a failed run ---------------------------------------------------------------------------------------------


@dg.run_failure_sensor(
    name=RUN_FAILURE_SENSOR,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Dagster's default matches only runs launched from this code location; `afas-pipeline sync` runs in-process
    # and has none. `ours` narrows "all" back down to this code location.
    monitor_all_code_locations=True,
    description="Sends each failed run of this code location (job, partition, failed steps, first line of each "
                "error, a link to the run) to the alert targets: AFAS_PIPELINE_ALERT_WEBHOOK_URL and/or SMTP.",
)
def afas_pipeline_run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    run = context.dagster_run
    if not ours(run):
        return
    alert = run_failure_alert(
        job=run.job_name, run_id=run.run_id, partition=partition_of(run.tags),
        steps=[FailedStep(e.step_key or "?", step_error(e.step_failure_data.error))
               for e in context.get_step_failure_events() if e.step_failure_data],
        run_error=context.failure_event.message, run_url=alerts.link(f"runs/{run.run_id}"))
    deliver(alerts, alert, context.log)
    # None: Dagster goes on with the next failed run in the same tick.


def ours(run: dg.DagsterRun) -> bool:
    """A run of this code location: launched from it (UI, schedule, backfill, sensor) or in-process by
    `afas-pipeline sync`, which has no code location."""
    origin = run.remote_job_origin
    return origin is None or origin.location_name == CODE_LOCATION


def partition_of(tags: dict[str, str]) -> str | None:
    """The run's partition, or its range (`first...last`) for a backfill run over several."""
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return f"{start}...{end}" if start and end else None


def step_error(error) -> str:
    """`ErrorClass: first line` of the exception the op raised (not Dagster's wrapper around it)."""
    if error is None:
        return "no error recorded"
    while error.cls_name in _WRAPPERS and error.cause is not None:
        error = error.cause
    first = error_line(error.message)
    prefix, _, rest = first.partition(": ")
    return f"{error.cls_name}: {rest}" if rest and prefix.split(".")[-1] == error.cls_name else first


def deliver(alerts: AlertsResource, alert: Alert, log: logging.Logger, targets: list[str] | None = None) -> list[str]:
    """Send to the targets; with none configured, one line saying so (and what was not sent)."""
    if not alerts.targets():
        log.info(f"no alert target is set (AFAS_PIPELINE_ALERT_WEBHOOK_URL, AFAS_PIPELINE_ALERT_SMTP_HOST): "
                 f"not sent: {alert.text}")
        return []
    return alerts.send(alert, log, targets)


# --- freshness --------------------------------------------------------------------------------------------------


def freshness_alert_sensor(check_keys: Sequence[dg.AssetCheckKey]) -> dg.SensorDefinition:
    @dg.sensor(
        name=FRESHNESS_ALERT_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Alerts once when a 15-minute asset's freshness check fails (no success for "
                    f"{OVERDUE_MINUTES} minutes) and once when it passes again.",
    )
    def afas_pipeline_freshness_alert(context: dg.SensorEvaluationContext, alerts: AlertsResource) -> dg.SensorResult:
        told: dict[str, list[str]] = json.loads(context.cursor) if context.cursor else {}
        passed = latest_results(context.instance, check_keys)
        failing = sorted(name for name, ok in passed.items() if ok is False)
        recovered = sorted(name for name in told if passed.get(name) is not False)
        new = [name for name in failing if name not in told]
        for name in new:
            told[name] = []
        said = []
        if recovered:
            reached = sorted({t for name in recovered for t in told.pop(name)})
            if reached or not alerts.targets():
                # Only who heard of the episode hears of its end: once, not tried again on the next tick.
                deliver(alerts, freshness_recovered_alert(recovered, [_asset_url(alerts, n) for n in recovered]),
                        context.log, reached)
            said.append(f"{len(recovered)} up to date again")
        # Per set of targets still to tell: one alert for every asset they have not heard of.
        waiting: dict[tuple[str, ...], list[str]] = {}
        for name in failing:
            missing = tuple(t for t in alerts.targets() if t not in told[name])
            if missing:
                waiting.setdefault(missing, []).append(name)
        if new and not alerts.targets():
            deliver(alerts, _overdue_alert(context.instance, alerts, new), context.log)
        for targets, names in waiting.items():
            for target in deliver(alerts, _overdue_alert(context.instance, alerts, names), context.log, list(targets)):
                for name in names:
                    told[name].append(target)
            said.append(f"{len(names)} overdue")
        return dg.SensorResult(cursor=json.dumps(told, sort_keys=True),
                               skip_reason=", ".join(said) or f"{len(failing)} overdue, nothing new to tell")

    return afas_pipeline_freshness_alert


def latest_results(instance: dg.DagsterInstance, check_keys: Sequence[dg.AssetCheckKey]) -> dict[str, bool | None]:
    """Per asset name, whether its latest completed freshness check passed (None: never evaluated)."""
    summaries = instance.event_log_storage.get_asset_check_summary_records(list(check_keys))
    out: dict[str, bool | None] = {}
    for key in check_keys:
        record = summaries[key].last_completed_check_execution_record if key in summaries else None
        evaluation = record.event.asset_check_evaluation if record and record.event else None
        out[key.asset_key.to_user_string()] = None if evaluation is None else evaluation.passed
    return out


def _overdue_alert(instance: dg.DagsterInstance, alerts: AlertsResource, names: Sequence[str]) -> Alert:
    overdue = []
    for name in names:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(name)), limit=1).records
        last = records[0] if records else None
        overdue.append(Overdue(asset=name, last_success=last.timestamp if last else None,
                               last_partition=last.partition_key if last else None, url=_asset_url(alerts, name)))
    return freshness_alert(overdue, OVERDUE_MINUTES)


def _asset_url(alerts: AlertsResource, name: str) -> str:
    return alerts.link(f"assets/{name}")
