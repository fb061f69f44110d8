"""A job run by `lib/runs.execute` (as the CLI runs one) does what `execute_in_process` does, without holding the
steps' outputs: an output the IO manager stored is freed once its step is done, not kept until the run ends."""

import gc
import weakref

import dagster as dg
import pandas as pd

from afas_pipeline.lib.runs import execute

PARTITIONS = dg.StaticPartitionsDefinition(["a", "b"])
_made: dict[str, weakref.ref] = {}
_seen: dict[str, bool] = {}


@dg.asset(partitions_def=PARTITIONS)
def first(context: dg.AssetExecutionContext) -> pd.DataFrame:
    frame = pd.DataFrame({"key": [context.partition_key] * 3})
    _made["first"] = weakref.ref(frame)
    return frame


@dg.asset(partitions_def=PARTITIONS)
def second(context: dg.AssetExecutionContext, first: pd.DataFrame) -> pd.DataFrame:
    gc.collect()
    _seen["first_alive"] = _made["first"]() is not None  # the stored copy was loaded; is the original still held?
    return first.assign(step="second")


def _run(tmp_path, runner):
    _made.clear(), _seen.clear()
    job = dg.Definitions(assets=[first, second], resources={"io_manager": dg.FilesystemIOManager(
        base_dir=str(tmp_path))}, jobs=[dg.define_asset_job("both")]).resolve_job_def("both")
    with dg.DagsterInstance.ephemeral() as instance:
        return runner(job, instance)


def test_an_output_is_not_held_once_its_step_is_done(tmp_path):
    result = _run(tmp_path, lambda job, instance: execute(job, instance=instance, partition_key="b"))
    assert result.success
    assert _seen == {"first_alive": False}
    assert {e.asset_key.to_user_string(): e.partition for e in result.get_asset_materialization_events()} == {
        "first": "b", "second": "b"}


def test_execute_in_process_holds_it_which_is_what_execute_avoids(tmp_path):
    result = _run(tmp_path, lambda job, instance: job.execute_in_process(instance=instance, partition_key="b"))
    assert result.success and _seen == {"first_alive": True}


@dg.asset
def broken() -> pd.DataFrame:
    raise RuntimeError("a step that fails")


def test_a_failed_step_is_reported_in_the_result_not_raised(tmp_path):
    job = dg.Definitions(assets=[broken], jobs=[dg.define_asset_job("one")]).resolve_job_def("one")
    with dg.DagsterInstance.ephemeral() as instance:
        result = execute(job, instance=instance)
    assert not result.success
    assert [e.step_key for e in result.all_events if e.is_step_failure] == ["broken"]
