"""A snapshot of the definitions graph: every asset, job and schedule as one JSON-able dict, compared with the
committed snapshot in
afas_pipeline_tests/__snapshots__/test_defs_snapshot/test_definitions_graph_matches_snapshot.json (syrupy's JSON
extension).

A change to the graph (an asset renamed, a dependency, a group, kind, partitioning, check, owner, the step that
materialises it, a job's selection or tags, a schedule's cron) fails this test until the snapshot is rewritten on purpose:

    .venv/bin/python -m pytest afas_pipeline_tests/test_defs_snapshot.py --snapshot-update

then review the snapshot's diff and commit it with the change.
"""

from __future__ import annotations

import dagster as dg
import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from afas_pipeline.definitions import defs


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> dict | None:
    if partitions_def is None:
        return None
    out: dict = {"kind": type(partitions_def).__name__}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        out["cron"] = partitions_def.cron_schedule
        out["timezone"] = partitions_def.timezone
    return out


def graph_snapshot() -> dict:
    """Asset keys -> group, kinds, partitions, deps, checks (blocking flag), owners, step; jobs -> selected keys and
    tags; schedules -> cron and job; sensors -> default status and interval. Sorted throughout, so the dict is
    stable across runs."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        checks = {}
        for check_key in node.check_keys:
            spec = graph.get_check_spec(check_key)
            checks[check_key.name] = {"blocking": spec.blocking}
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "partitions": _partitions(node.partitions_def),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": dict(sorted(checks.items())),
            "owners": sorted(node.owners),
            # The step (op) that materialises it: run logs, alerts, `afas-pipeline sync` and bench/ name steps.
            "step": node.assets_def.node_def.name,
        }
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        selected = job.asset_layer.selected_asset_keys
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in selected),
            "tags": dict(sorted((k, v) for k, v in job.tags.items() if not k.startswith("dagster/"))),
        }
    schedules = {
        s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name}
        for s in sorted(defs.schedules or [], key=lambda s: s.name)
    }
    sensors = {
        s.name: {"default_status": s.default_status.value, "minimum_interval_seconds": s.minimum_interval_seconds}
        for s in sorted(defs.sensors or [], key=lambda s: s.name)
    }
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_definitions_graph_matches_snapshot(snapshot_json):
    assert graph_snapshot() == snapshot_json
