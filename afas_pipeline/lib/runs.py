"""A job run in this process (the CLI's `sync` and `erase`, the benchmarks) that does not hold its outputs.

`JobDefinition.execute_in_process` keeps every step's output in memory until the run ends, for its result's
`output_for_node`. A full sync's outputs are DataFrames of the whole audience: at 1,000,000 contacts, holding the
AFAS snapshots, the audience and the plan that way made the run's peak 2.46 GB instead of 1.75 GB. Nothing here reads an
output from the result (the IO manager stores them; the CLI reads events), so `execute` runs the job as
`execute_in_process` does, step for step, without that capture. It uses Dagster's own in-process machinery, which
is not public API: dagster is pinned to one release in pyproject.toml, and the CLI and benchmark tests run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg


def execute(job: dg.JobDefinition, *, instance: dg.DagsterInstance, partition_key: str | None = None,
            asset_selection: Sequence[dg.AssetKey] | None = None, run_config: Mapping[str, Any] | None = None,
            run_id: str | None = None, raise_on_error: bool = False) -> dg.ExecuteInProcessResult:
    """`job.execute_in_process(...)` with these arguments, without holding the steps' outputs."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.definitions.partitions.context import partition_loading_context
    from dagster._core.execution.execute_in_process import (
        core_execute_in_process,
        merge_run_tags,
        type_check_and_normalize_args,
    )

    run_config, op_selection, asset_selection, resource_defs, partition_key, input_values = (
        type_check_and_normalize_args(run_config=run_config, partition_key=partition_key, op_selection=None,
                                      asset_selection=asset_selection, input_values=None, resources=None))
    ephemeral = job.as_ephemeral_job(resource_defs=resource_defs, input_values=input_values,
                                     op_selection=op_selection, asset_selection=asset_selection)
    if partition_key and ephemeral.partitions_def:
        with partition_loading_context(dynamic_partitions_store=instance) as context:
            ephemeral.validate_partition_key(partition_key=partition_key, selected_asset_keys=set(asset_selection),
                                             context=context)
    if not run_config and ephemeral.partitioned_config and partition_key:
        run_config = ephemeral.partitioned_config.get_run_config_for_partition_key(partition_key)
    return core_execute_in_process(
        job=InMemoryJob(job_def=ephemeral), run_config=run_config, instance=instance,
        output_capturing_enabled=False, raise_on_error=raise_on_error,
        run_tags=merge_run_tags(job_def=job, partition_key=partition_key, tags=None, asset_selection=asset_selection,
                                instance=instance, run_config=run_config),
        run_id=run_id, asset_selection=frozenset(asset_selection))
