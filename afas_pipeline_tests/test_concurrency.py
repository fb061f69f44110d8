"""One run per cadence, however it was launched: every 15-minute asset is in pool `afas_delta`, every 6-hour asset
in `afas_full`, and the project's dagster.yaml (`concurrency: pools: granularity: run, default_limit: 1`) makes
Dagster's run queue hold a backfill or a UI launch while the scheduled run of its cadence is in flight.

The queue is driven as the daemon drives it, on an instance made from the project's dagster.yaml in a temporary
DAGSTER_HOME: the scheduler's tick, the backfill daemon and one iteration of the run queue at a time, with the code
location loaded in this process. Only the run launcher is Dagster's test launcher, which records a launch
instead of starting a run worker."""

import logging
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._scheduler.scheduler import launch_scheduled_runs
from dagster_graphql.test.utils import execute_dagster_graphql

from afas_pipeline.afas.partitions import DELTA_POOL, FULL_POOL, delta_partitions, full_partitions
from afas_pipeline.definitions import defs
from afas_pipeline.schedules import CADENCE_TAG

PROJECT = Path(__file__).resolve().parents[1]
LOCATION = "afas_pipeline"
#: The scheduler ticks at 10:02 for the delta window 09:45-10:00.
TICK = datetime(2026, 11, 22, 10, 2, tzinfo=timezone.utc)
DELTA_READS = ["afas_contacts_changes", "afas_persons_changes", "afas_organisations_changes"]
LOG = logging.getLogger("afas_pipeline_tests.concurrency")

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""


# --- the pools on the assets --------------------------------------------------------------------------------


def test_every_asset_of_a_cadence_is_in_its_pool_and_the_summaries_in_none():
    graph = defs.resolve_asset_graph()
    pools = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        cadence = ("delta" if node.partitions_def == delta_partitions else
                   "full" if node.partitions_def == full_partitions else None)
        assert node.partitions_def is None or cadence, f"{key.to_user_string()}: a partitioning of no cadence"
        pools.setdefault((cadence, frozenset(node.pools)), []).append(key.to_user_string())
    assert set(pools) == {("delta", frozenset({DELTA_POOL})), ("full", frozenset({FULL_POOL})), (None, frozenset())}
    # The daily retention and the erasures are in no pool either: the sync state's lock keeps them apart from a
    # writing run.
    assert sorted(pools[(None, frozenset())]) == ["erasure_audit", "erasure_requests", "mailchimp_rejected",
                                                  "personal_data_retention", "spotler_rejected", "xelion_phone_index"]
    assert {"afas_contacts_changes", "spotler_sync_delta", "mailchimp_afas_write_back", "xelion_call_reports"} <= set(
        pools[("delta", frozenset({DELTA_POOL}))])
    assert {"afas_contacts", "spotler_sync", "xelion_address_book"} <= set(pools[("full", frozenset({FULL_POOL}))])


def test_the_instance_config_holds_one_run_per_pool_and_retries_a_dead_run_once(tmp_path):
    instance = _instance(tmp_path, test_launcher=False)
    config = instance.get_concurrency_config()
    assert config.pool_config.pool_granularity.value == "run"
    assert config.pool_config.default_pool_limit == 1
    assert config.run_queue_config.max_concurrent_runs == 2
    assert config.run_queue_config.should_block_op_concurrency_limited_runs
    assert config.run_queue_config.tag_concurrency_limits == []  # the pools cover the runs the tags covered
    assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 1)
    assert instance.run_retries_retry_on_asset_or_op_failure is False  # steps retry their own outages
    assert instance.managed_python_loggers == ["afas_pipeline"] and instance.python_log_level == "INFO"
    assert instance.event_log_storage.supports_global_concurrency_limits  # SQLite storage keeps pool slots


# --- the run queue --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The code location loaded in this process against an instance made from the project's dagster.yaml."""
    instance = _instance(tmp_path_factory.mktemp("dagster_home"), test_launcher=True)
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="afas_pipeline.definitions",
                             working_directory=str(PROJECT)),
        location_name=LOCATION)
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
        yield context


def test_a_backfill_and_a_ui_launch_wait_for_the_scheduled_delta_run_and_a_full_run_does_not(workspace):
    instance = workspace.instance
    scheduled = _scheduled_delta_run(workspace)
    _dequeue(workspace)
    _start(instance, scheduled)  # the 10:02 run is in flight
    assert instance.get_run_by_id(scheduled).status == dg.DagsterRunStatus.STARTED

    backfill = _backfill(workspace, DELTA_READS, ["2026-11-22-09:15", "2026-11-22-09:30"])
    ui_delta = _ui_launch(workspace, ["afas_contacts_changes"], "2026-11-22-09:00")
    ui_full = _ui_launch(workspace, ["afas_contacts"], "2026-11-22-06:00")
    for run_id in (backfill, ui_delta, ui_full):
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.QUEUED and CADENCE_TAG not in run.tags
    assert instance.get_run_by_id(backfill).tags["dagster/backfill"]
    assert instance.get_run_by_id(backfill).run_op_concurrency.all_pools == {DELTA_POOL}
    assert instance.get_run_by_id(ui_full).run_op_concurrency.all_pools == {FULL_POOL}

    _dequeue(workspace)
    # Two runs may run at once (max_concurrent_runs): the full one starts, the deltas wait for the pool.
    assert _status(instance, backfill, ui_delta, ui_full) == ["QUEUED", "QUEUED", "STARTING"]

    _finish(instance, scheduled)
    _finish(instance, ui_full)
    _dequeue(workspace)
    # The pool is free: the backfill (queued first) starts; the UI launch waits for it though a run slot is free.
    assert _status(instance, backfill, ui_delta) == ["STARTING", "QUEUED"]

    _finish(instance, backfill)
    _dequeue(workspace)
    assert _status(instance, ui_delta) == ["STARTING"]
    _finish(instance, ui_delta)


# --- helpers --------------------------------------------------------------------------------------------------


def _instance(home: Path, *, test_launcher: bool) -> dg.DagsterInstance:
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    if test_launcher:
        config = yaml.safe_load((home / "dagster.yaml").read_text())
        config["run_launcher"] = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return dg.DagsterInstance.from_config(str(home))


def _scheduled_delta_run(workspace) -> str:
    """The run the scheduler makes at `TICK`, through the scheduler daemon's own code."""
    instance = workspace.instance
    location = workspace.create_request_context().get_code_location(LOCATION)
    schedule = location.get_repository("__repository__").get_schedule("afas_delta_job_schedule")
    with freeze_time(TICK - timedelta(minutes=5)):
        instance.start_schedule(schedule)
    list(launch_scheduled_runs(workspace, LOG, end_datetime_utc=TICK, iteration_times={}))
    (run,) = instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": "afas_delta_job_schedule"}))
    assert run.tags["dagster/partition"] == "2026-11-22-09:45" and run.tags[CADENCE_TAG] == "delta"
    assert run.run_op_concurrency.all_pools == {DELTA_POOL}
    return run.run_id


def _backfill(workspace, assets: list[str], partitions: list[str]) -> str:
    """A backfill as the UI launches it (GraphQL), turned into its run by the backfill daemon."""
    result = _graphql(workspace, LAUNCH_BACKFILL, {"params": {
        "assetSelection": [{"path": [name]} for name in assets], "partitionNames": partitions}})
    backfill_id = result["launchPartitionBackfill"]["backfillId"]
    list(execute_backfill_iteration(workspace, LOG))
    (run,) = workspace.instance.get_runs(dg.RunsFilter.for_backfill(backfill_id))
    return run.run_id


def _ui_launch(workspace, assets: list[str], partition: str) -> str:
    """"Materialize" of one partition in the UI (GraphQL)."""
    result = _graphql(workspace, LAUNCH_RUN, {"params": {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                     "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": [name]} for name in assets]},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }})
    return result["launchPipelineExecution"]["run"]["runId"]


def _graphql(workspace, query: str, variables: dict) -> dict:
    result = execute_dagster_graphql(workspace.create_request_context(), query, variables)
    assert not result.errors, result.errors
    assert "message" not in next(iter(result.data.values())), result.data
    return result.data


def _dequeue(workspace) -> None:
    """One iteration of the run queue daemon (QueuedRunCoordinator), as `dagster-daemon` runs it."""
    list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace))


def _status(instance: dg.DagsterInstance, *run_ids: str) -> list[str]:
    return [instance.get_run_by_id(run_id).status.value for run_id in run_ids]


def _report(instance: dg.DagsterInstance, run_id: str, event_type: DagsterEventType) -> None:
    run = instance.get_run_by_id(run_id)
    instance.report_dagster_event(DagsterEvent(event_type_value=event_type.value, job_name=run.job_name),
                                  run_id=run_id)


def _start(instance: dg.DagsterInstance, run_id: str) -> None:
    """What the run worker reports when it starts."""
    _report(instance, run_id, DagsterEventType.RUN_START)


def _finish(instance: dg.DagsterInstance, run_id: str) -> None:
    _report(instance, run_id, DagsterEventType.RUN_SUCCESS)
