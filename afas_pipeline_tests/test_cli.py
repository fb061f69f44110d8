"""The command line: `sync` as a cron user runs it, `validate-mappings` as CI would."""

import os
import subprocess
import sys

from afas_pipeline.cli import main


def _cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "afas_pipeline.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_sync_materialises_the_full_graph_and_prints_counts_per_asset(sandbox, afas_sandbox_clean,
                                                                     spotler_sandbox_clean, tmp_path):
    env = {"AFAS_PIPELINE_SANDBOX_URL": sandbox.url, "DAGSTER_HOME": str(tmp_path),
           "AFAS_PIPELINE_STATE": str(tmp_path / "state.sqlite")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    first = _cli("sync", "--partition", "2026-11-22-06:00", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    lines = {line.split()[0]: line.split()[1] for line in first.stdout.splitlines() if line.startswith(("afas_", "spotler_"))}
    assert lines["afas_contacts"] == "3000"
    assert int(lines["spotler_sync"]) > 2000
    assert "FAILED" not in first.stdout

    # The instance in DAGSTER_HOME keeps the run, as the UI would show it.
    assert (tmp_path / "history" / "runs.db").exists() or any(tmp_path.glob("**/runs.db"))


def test_sync_with_a_wrong_production_token_fails_with_exit_code_1_naming_the_problem(sandbox, tmp_path):
    wrong_token = "0" * 64
    env = {"AFAS_BASE_URL": sandbox.afas_base_url, "AFAS_TOKEN": wrong_token, "DAGSTER_HOME": str(tmp_path),
           "AFAS_PIPELINE_SANDBOX_URL": sandbox.url}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = _cli("sync", "--partition", "2026-11-22-06:00", env=env)
    assert result.returncode == 1
    assert "FAILED" in result.stdout
    assert "error in afas_" in result.stderr and "401" in result.stderr
    assert wrong_token not in result.stdout + result.stderr


def test_validate_mappings_accepts_the_shipped_files(capsys):
    assert main(["validate-mappings"]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and "spotler.yaml" in out
