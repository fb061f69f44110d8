"""`afas-pipeline sync --dry-run`: the reads and the plans of one window, printed per destination, and nothing
written: no write reaches a destination or AFAS, and the sync state, the asset storage and the run history stay
as they were. The next real run does what the dry run showed."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import httpx
import psycopg2.errors
import pytest

from afas_pipeline.cli import copy_state, main
from afas_pipeline.resources import sync_state
from afas_pipeline.sync.state import TABLES, SyncState
from afas_pipeline_tests.world import FULL_PARTITION, WORLD_CONTACTS

#: A session the Xelion client opens and closes is not a write to the address book.
SESSION_CALLS = {"POST me/login", "POST me/renew", "POST me/logout"}


def files(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def writes(admin_url: str) -> dict[str, int]:
    """The requests an emulator was sent since its stats were reset that could change something."""
    requests = httpx.get(f"{admin_url}/stats", timeout=30).json()["requests"]
    return {route: n for route, n in requests.items()
            if route.split()[0] in ("POST", "PUT", "PATCH", "DELETE") and route not in SESSION_CALLS}


def plan_table(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("plan "))
    assert lines[start].split() == ["plan", "create", "update", "unchanged", "skip", "quarantined", "held", "by", "C1"]
    return {line.split()[0]: line.split()[1:] for line in lines[start + 1:start + 4]}


def test_a_dry_run_prints_the_plan_and_writes_nothing(cli_env, tmp_path, afas_sandbox_clean, spotler_sandbox_clean,
                                                      mailchimp_sandbox_clean, xelion_sandbox_clean, capsys):
    sb = afas_sandbox_clean
    httpx.post(f"{sb.afas_admin_url}/dataset/generate", json={"contacts": WORLD_CONTACTS, "seed": 7},
               timeout=60).raise_for_status()
    assert main(["sync", "--partition", FULL_PARTITION]) == 0
    # Since then, a function edited in AFAS (an update in every destination: Xelion has it on the person's
    # employment) and an unsubscribe in Spotler,
    # which the plan reads from Spotler's change feed and would record in the sync state.
    synced = [c["externalId"] for c in httpx.get(f"{sb.spotler_admin_url}/contacts", timeout=30).json()]
    httpx.post(f"{sb.afas_admin_url}/edit", json={"table": "contacts", "key": synced[0],
                                                   "fields": {"Function": "Inkoper (dry run)"}},
               timeout=30).raise_for_status()
    httpx.post(f"{sb.spotler_admin_url}/recipients/{synced[1]}/unsubscribe", json={"bit": 1},
               timeout=30).raise_for_status()
    capsys.readouterr()
    for admin in (sb.afas_admin_url, sb.spotler_admin_url, sb.mailchimp_admin_url, sb.xelion_admin_url):
        httpx.post(f"{admin}/stats/reset", timeout=30).raise_for_status()
    state, storage = files(tmp_path / "state"), files(tmp_path / "storage")
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs_count()

    assert main(["sync", "--dry-run", "--partition", FULL_PARTITION]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"dry run of afas_full_job partition {FULL_PARTITION} (nothing written): success")
    plan = plan_table(out)
    assert set(plan) == {"mailchimp", "spotler", "xelion"}
    for destination in ("mailchimp", "spotler"):
        create, update, unchanged, skip, quarantined, held = (int(n) for n in plan[destination])
        assert (create, update, quarantined, held) == (0, 1, 0, 0) and unchanged > 200, plan
    create, update, unchanged, skip, quarantined, held = plan["xelion"]
    assert (create, update, skip, held) == ("0", "1", "-", "-") and int(unchanged) > 300, plan
    # No write reached a destination or AFAS; every one of them was read.
    for admin in (sb.afas_admin_url, sb.spotler_admin_url, sb.mailchimp_admin_url, sb.xelion_admin_url):
        assert writes(admin) == {}, admin
        assert httpx.get(f"{admin}/stats", timeout=30).json()["total"] > 0, admin
    assert files(tmp_path / "state") == state and files(tmp_path / "storage") == storage
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs_count() == runs

    # The real run plans what the dry run showed.
    assert main(["sync", "--partition", FULL_PARTITION]) == 0
    with dg.DagsterInstance.get() as instance:
        for destination in ("mailchimp", "spotler"):
            event = instance.get_latest_materialization_event(dg.AssetKey(f"{destination}_sync_plan"))
            metadata = event.asset_materialization.metadata
            assert [metadata[f"plan/{k}"].value for k in ("create", "update", "unchanged", "quarantined")] == \
                [int(n) for n in plan[destination][:3]] + [int(plan[destination][4])]


def _rows(state) -> dict[str, list[tuple]]:
    """Every row of every table of a sync state, in a stable order (who holds its lock aside)."""
    with state._connect() as db:
        return {table: sorted(tuple(row) for row in db.execute(f"SELECT * FROM {table}").fetchall())
                for table in TABLES if table != "state_holder"}


def test_a_dry_run_reads_a_postgres_state_into_a_scratch_file_and_writes_nothing_to_it(postgres_state, tmp_path,
                                                                                       monkeypatch):
    state = SyncState(postgres_state, run_id="run-1")
    on = {"1": {"sent": True, "afas": True, "on_since": "2026-11-16T10:00:00+00:00"}}
    state.save_records("spotler", [{"external_id": str(i), "content_hash": f"c{i}", "email_hash": f"e{i}",
                                    "permissions": on, "bounced_email_hash": None} for i in range(3)])
    state.record_feedback("spotler", [("1", "optout:1", "2026-11-16T10:05:00+00:00")], "delivered")
    state.record_rejections("spotler", [{"external_id": "2", "reason": "X", "status_code": 200}], 5)
    state.set_watermark("spotler", "contact_updates", datetime(2026, 11, 16, 10, 15, tzinfo=timezone.utc))
    state.begin_writes("spotler", {"1": {"content_hash": "c9", "permissions": on}}, None)
    before = _rows(state)
    monkeypatch.setenv("AFAS_PIPELINE_STATE", postgres_state)

    copy = copy_state(sync_state().location(), tmp_path / "scratch.sqlite")  # as the dry run takes it

    assert _rows(SyncState(copy)) == before and _rows(state) == before
    assert sum(len(rows) for rows in before.values()) == 7
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):  # the copy's reading side cannot write
        SyncState(postgres_state, read_only=True).record_feedback("spotler", [("1", "optout:2", "x")], "pending")
