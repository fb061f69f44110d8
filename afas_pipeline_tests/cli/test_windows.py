"""A range of windows from the command line (`sync --from A --to B`): every window in order, one run each, stopping
at the first that fails with its key named; a window outside the partitions is one line naming the first valid
one."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import dagster as dg
import httpx
import pytest

from afas_pipeline.cli import cadence_partitions, main
from afas_pipeline.schedules import last_closed_window


@pytest.mark.parametrize("argv,says", [
    (["--partition", "2026-11-22-06:00", "--from", "2026-11-22-06:00"],
     "give one window (--partition) or a range (--from, --to), not both"),
    (["--to", "2026-11-22-06:00"], "--to 2026-11-22-06:00 needs --from: the first window of the range"),
    (["--from", "2026-11-22-07:00", "--to", "2026-11-22-06:00"],
     "--from 2026-11-22-07:00 is after --to 2026-11-22-06:00: give the earlier window first"),
    (["--from", "2026-11-22-06:00", "--to", "2099-01-01-00:00"], "--to 2099-01-01-00:00 has not closed yet"),
    (["--from", "2026-11-22-06:07"], "--from 2026-11-22-06:07 is not the start of a delta window"),
    (["--dry-run", "--from", "2026-11-22-06:00", "--to", "2026-11-22-06:15"], "--dry-run plans one window"),
])
def test_a_bad_range_is_one_line_naming_the_argument(argv, says, capsys):
    assert main(["sync", "--cadence", "delta", *argv]) == 2
    err = capsys.readouterr().err
    error = [line for line in err.splitlines() if "error:" in line]
    assert error == err.splitlines()[-1:] and says in error[0], err


def test_a_window_before_the_first_names_the_first(capsys):
    # Whatever decides where the delta starts (a fixed start, or a horizon that moves with the clock), the message
    # names the first key the partitions have.
    delta = cadence_partitions("delta")
    first = datetime.strptime(delta.get_first_partition_key(), delta.fmt)
    before = (first - timedelta(minutes=15)).strftime(delta.fmt)
    assert main(["sync", "--cadence", "delta", "--from", before]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"afas-pipeline sync: error: --from {before} lies before the first delta window, "
        f"{delta.get_first_partition_key()}")


def test_a_range_runs_each_window_in_order_and_stops_at_the_first_that_fails(cli_env, afas_sandbox_clean,
                                                                              spotler_sandbox_clean, capsys):
    sb = afas_sandbox_clean
    httpx.post(f"{sb.afas_admin_url}/dataset/generate", json={"contacts": 100, "seed": 7},
               timeout=60).raise_for_status()
    # Three windows that closed an hour ago, whatever the date (the delta keeps a moving horizon).
    delta = cadence_partitions("delta")
    last = datetime.strptime(last_closed_window(delta, datetime.now(timezone.utc) - timedelta(hours=1)), delta.fmt)
    windows = [(last + timedelta(minutes=15 * n)).strftime(delta.fmt) for n in (-2, -1, 0)]
    # In the second window, a person-at-organisation contact loses its person: the read's blocking check
    # (required ids, R9) fails that window.
    contact = next(c for c in httpx.get(f"{sb.afas_admin_url}/records/contacts", timeout=30).json()
                   if c["ContactKind"] == "PRS")
    at = (last - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    httpx.post(f"{sb.afas_admin_url}/edit", json={"table": "contacts", "key": str(contact["ContactId"]),
                                                  "fields": {"PersonId": None}, "at": at},
               timeout=30).raise_for_status()

    assert main(["sync", "--cadence", "delta", "--destination", "spotler",
                 "--from", windows[0], "--to", windows[2]]) == 1

    out, err = capsys.readouterr()
    runs = [line.split(": ")[0:2] for line in out.splitlines() if line.startswith("afas_delta_job partition ")]
    assert runs == [[f"afas_delta_job partition {windows[0]}", runs[0][1]],
                    [f"afas_delta_job partition {windows[1]}", runs[1][1]]], out
    assert runs[0][1].startswith("success") and runs[1][1].startswith("FAILED")
    assert "check afas_contacts_changes:required_ids_present FAILED" in out
    assert err.splitlines()[-1] == (f"error: window {windows[1]} failed (window 2 of 3); the windows before it "
                                    f"succeeded: once fixed, go on with --from {windows[1]} --to {windows[2]}")
    assert "Traceback" not in err


def test_dagster_asset_materialize_backfills_a_range_of_the_6_hour_chain(cli_env, tmp_path, afas_sandbox_clean,
                                                                         spotler_sandbox_clean):
    # The command the README gives for backfilling the 6-hour chain: one run over the range (the full assets have
    # a single-run backfill policy). The 15-minute assets are refused by this command; the README says why.
    httpx.post(f"{afas_sandbox_clean.afas_admin_url}/dataset/generate", json={"contacts": 100, "seed": 7},
               timeout=60).raise_for_status()
    done = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "afas_pipeline.definitions",
                           "--select", "*spotler_sync", "--partition-range", "2026-11-22-00:00...2026-11-22-06:00"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        for asset in ("afas_contacts", "spotler_audience", "spotler_sync_plan", "spotler_sync"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {"2026-11-22-00:00", "2026-11-22-06:00"}
