"""Retention (P1, P3): which assets hold personal data, and that after the retention job with retention 0 no seeded
e-mail address or name is left anywhere under DAGSTER_HOME (databases, storage, compute logs, the sync state)."""

import os
import sqlite3
import time
from datetime import timedelta

import dagster as dg
import httpx
import pandas as pd
import pytest

from afas_pipeline import definitions
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_pipeline.lib.settings import SettingError
from afas_pipeline.lib.storage import open_storage
from afas_pipeline.resources import ConfigurationError, build_resources, check_settings
from afas_pipeline.retention import delete_older, personal_data_kinds, retention_days
from afas_pipeline.sync.state import SyncState
from afas_pipeline_tests.world import SyncWorld
from afas_sandbox.server import start_sandbox

FULL, DELTA = "2026-11-22-06:00", "2026-11-22-06:15"

#: The classification, pinned: a change here is a decision about personal data, not a refactoring.
PERSONAL = {"afas_contacts", "afas_contacts_changes", "afas_persons", "afas_persons_changes", "afas_organisations",
            "afas_organisations_changes", "spotler_audience", "spotler_audience_delta", "mailchimp_audience",
            "mailchimp_audience_delta", "spotler_optout_feedback", "spotler_bounce_feedback",
            "mailchimp_optout_feedback", "mailchimp_bounce_feedback"}


def _asset_names() -> set[str]:
    return {key.to_user_string() for key in definitions.defs.resolve_asset_graph().get_all_asset_keys()}


def test_every_asset_says_whether_it_holds_personal_data_as_pinned():
    graph = definitions.defs.resolve_asset_graph()
    marked = {key.to_user_string(): graph.get(key).metadata["personal_data"] for key in graph.get_all_asset_keys()}
    assert {name for name, personal in marked.items() if personal} == PERSONAL
    assert all(graph.get(dg.AssetKey(name)).metadata["personal_data_kinds"] for name in PERSONAL)
    with pytest.raises(ValueError, match="asset hubspot_audience_v2x is not classified"):
        personal_data_kinds("hubspot_audience_v2x")


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """A small sandbox synced into a fresh DAGSTER_HOME: a full run, opt-outs in both destinations, a delta run
    that reads them back and writes them to AFAS. Yields (home, seeded e-mail addresses and names, definitions)."""
    home = tmp_path_factory.mktemp("home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"DAGSTER_HOME": str(home), "AFAS_PIPELINE_STATE": str(home / "state" / "sync_state.sqlite")}
    with start_sandbox(contacts=200, seed=11) as sb, pytest.MonkeyPatch.context() as mp:
        for name, value in {**env, "AFAS_PIPELINE_SANDBOX_URL": sb.url}.items():
            mp.setenv(name, value)
        mp.delenv("AFAS_PIPELINE_STORAGE", raising=False)
        defs = dg.Definitions(assets=definitions.defs.assets, jobs=definitions.defs.jobs,
                              resources=build_resources(os.environ), executor=dg.in_process_executor)
        instance = dg.DagsterInstance.get()
        assert defs.resolve_job_def("afas_full_job").execute_in_process(partition_key=FULL,
                                                                        instance=instance).success
        seeded = _seeded(sb.afas_admin_url)
        state = SyncState(env["AFAS_PIPELINE_STATE"])
        ids = list(state.records("spotler")["external_id"])[:4]
        for external_id in ids[:3]:  # inside the delta window, which reads them back
            httpx.post(f"{sb.spotler_admin_url}/recipients/{external_id}/unsubscribe",
                       json={"bit": 1, "at": "2026-11-22T06:20:00Z"}, timeout=30).raise_for_status()
        httpx.post(f"{sb.spotler_admin_url}/recipients/{ids[3]}/bounce",
                   json={"type": "hard", "at": "2026-11-22T06:21:00Z"}, timeout=30).raise_for_status()
        assert defs.resolve_job_def("afas_delta_job").execute_in_process(partition_key=DELTA,
                                                                         instance=instance).success
        assert len(state.feedback_events("spotler", status="delivered")) >= 1
        yield home, seeded, defs, instance


def _seeded(admin_url: str) -> set[str]:
    """Every e-mail address (as given and as the pipeline normalises it) and every name of five characters or more
    in the seeded dataset (shorter ones would match by chance)."""
    needles = set()
    for table, fields in (("persons", ("FirstName", "LastName", "MailWork", "MailPrivate")),
                          ("organisations", ("Name", "MailWork")), ("contacts", ("MailWork", "MailPrivate"))):
        for row in httpx.get(f"{admin_url}/records/{table}", timeout=30).json():
            for field in fields:
                value = (row.get(field) or "").strip()
                if len(value) >= 5:
                    needles |= {value, value.lower()} if "@" in value else {value}
    return needles


def _hits(data: str | bytes, needles: set[str]) -> set[str]:
    if isinstance(data, bytes):
        return {n for n in needles if n.encode() in data}
    return {n for n in needles if n in data}


def test_assets_marked_free_of_personal_data_hold_none_and_the_others_do(synced):
    home, seeded, _, _ = synced
    storage = home / "storage"
    checked = 0
    for name in _asset_names():
        files = [p for p in [storage / f"{name}.parquet", *(storage / name).glob("*.parquet")] if p.exists()]
        text = "\n".join(pd.read_parquet(p).astype(str).to_csv() for p in files)
        if name in PERSONAL:
            # the full reads and audiences hold what the classification says
            if name in ("afas_persons", "spotler_audience", "mailchimp_audience"):
                assert _hits(text, seeded), name
        else:
            assert _hits(text, seeded) == set(), name
            checked += bool(files)
    assert checked >= 15


def test_retention_zero_leaves_no_seeded_email_or_name_anywhere_under_dagster_home(synced, monkeypatch):
    home, seeded, defs, instance = synced
    state = SyncState(home / "state" / "sync_state.sqlite")
    monkeypatch.setenv("AFAS_PIPELINE_RETENTION_DAYS", "0")
    result = defs.resolve_job_def("personal_data_retention_job").execute_in_process(instance=instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("personal_data_retention")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["deleted_files"] >= 10 and metadata["deleted_bytes"] > 0
    assert metadata["deleted:spotler_audience"]["partitions"] == 1
    assert metadata["deleted_runs"] == 0  # the runs' event logs are kept (30 days) and must hold no personal data
    assert not list((home / "storage" / "afas_persons").glob("*"))
    # the sync state still works (keys and hashes stay)
    assert len(state.records("spotler")) > 100

    found = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        hits = _hits(path.read_bytes(), seeded)
        if hits:
            found[str(path.relative_to(home))] = sorted(hits)[:3]
    assert found == {}
    # and the sqlite databases' rows, read through sqlite (a page may be compressed or split)
    for db_path in home.rglob("*.db"):
        with sqlite3.connect(db_path) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                rows = str(db.execute(f"SELECT * FROM [{table}]").fetchall())
                assert _hits(rows, seeded) == set(), (db_path.name, table)

    # Runs past AFAS_PIPELINE_RUN_RETENTION_DAYS go with their event logs and compute logs; the retention's own stays.
    before = {r.run_id for r in instance.get_runs()}
    assert any((home / "storage" / run_id / "compute_logs").exists() for run_id in before)
    monkeypatch.setenv("AFAS_PIPELINE_RUN_RETENTION_DAYS", "0")
    again = defs.resolve_job_def("personal_data_retention_job").execute_in_process(instance=instance)
    assert again.asset_materializations_for_node("personal_data_retention")[0].metadata["deleted_runs"].value == 3
    assert {r.run_id for r in instance.get_runs()} == {again.run_id}
    assert not any((home / "storage" / run_id).exists() for run_id in before)


def test_pruning_keeps_pending_events_and_recent_delivered_ones(tmp_path):
    state = SyncState(tmp_path / "state.sqlite")
    state.record_feedback("spotler", [("1", "optout:1", "2026-11-01T00:00:00+00:00")], "delivered")
    state.record_feedback("spotler", [("2", "optout:1", "2026-11-01T00:00:00+00:00")], "pending")
    state.record_mailing_reactions("spotler", [("m1", "1", "opened", "2026-11-01T00:00:00+00:00")], "delivered")
    assert state.prune_delivered(timedelta(days=1)) == {"feedback_events": 0, "mailing_reactions": 0}
    assert state.prune_delivered(timedelta(0)) == {"feedback_events": 1, "mailing_reactions": 1}
    assert list(state.feedback_events("spotler")["external_id"]) == ["2"]
    assert state.mailing_reactions("spotler").empty


def test_an_unknown_personal_data_setting_is_one_line_naming_it():
    with pytest.raises(ConfigurationError) as raised:
        check_settings({"AFAS_PIPELINE_PERSONAL_DATA": "ram"})
    assert raised.value.problems == ["AFAS_PIPELINE_PERSONAL_DATA is 'ram': set it to disk (personal data stored until "
                                     "its retention, the default) or memory (held for the run only, never stored)"]


def test_a_retention_setting_that_cannot_work_is_one_line_naming_it():
    with pytest.raises(SettingError, match="^AFAS_PIPELINE_RETENTION_DAYS='a week' is not a whole number"):
        retention_days({"AFAS_PIPELINE_RETENTION_DAYS": "a week"})
    assert retention_days({}) == {"personal_data": 7, "ledger": 90, "runs": 30}
    # A delivered event must outlive every window that can be read again, or it would be delivered twice.
    assert retention_days({"AFAS_PIPELINE_DELTA_HORIZON_DAYS": "103"})["ledger"] == 105
    with pytest.raises(SettingError, match="^AFAS_PIPELINE_LEDGER_RETENTION_DAYS=10 is out of range: use 16 to "):
        retention_days({"AFAS_PIPELINE_LEDGER_RETENTION_DAYS": "10", "AFAS_PIPELINE_DELTA_HORIZON_DAYS": "14"})


def test_with_personal_data_in_memory_nothing_personal_is_stored_and_a_step_alone_says_why_it_cannot_run(
        sandbox, afas_sandbox_clean, spotler_sandbox_clean, mailchimp_sandbox_clean, tmp_path):
    httpx.post(f"{sandbox.afas_admin_url}/dataset/generate", json={"contacts": 200, "seed": 11},
               timeout=60).raise_for_status()
    world = SyncWorld(sandbox, tmp_path)
    resources = world.resources()
    resources["io_manager"] = ParquetIOManager(base_dir=str(world.storage), personal_data="memory")
    world.resources = lambda: resources
    assert world.sync(FULL).success
    stored = {p.parent.name if p.parent != world.storage else p.stem for p in world.storage.rglob("*.parquet")}
    assert "spotler_sync" in stored and "spotler_sync_plan" in stored
    assert stored & PERSONAL == set()
    assert len(SyncState(world.state_path).records("spotler")) > 100

    alone = world.send(FULL, raise_on_error=False)
    assert not alone.success
    [failure] = [e for e in alone.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.cause.message if failure.step_failure_data.error.cause else \
        failure.step_failure_data.error.message
    assert ("spotler_audience holds personal data, which AFAS_PIPELINE_PERSONAL_DATA=memory keeps in memory for the "
            "run that made it only: materialise spotler_audience in the same run") in message


def test_only_files_older_than_the_retention_go_and_a_linked_snapshot_counts_its_bytes_once(tmp_path):
    folder = tmp_path / "spotler_audience"
    folder.mkdir()
    old, linked, new = folder / "2026-11-01-00:00.parquet", folder / "2026-11-01-06:00.parquet", folder / "2026-11-30-00:00.parquet"
    old.write_bytes(b"x" * 100)
    os.link(old, linked)
    new.write_bytes(b"y" * 10)
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    assert delete_older(open_storage(str(tmp_path)), dg.AssetKey("spotler_audience"), 7 * 86400) == {
        "files": 2, "partitions": 2, "bytes": 100}
    assert [p.name for p in folder.iterdir()] == [new.name]
