"""The command line: `sync` as a cron user runs it, `validate-mappings` as CI would."""

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import httpx
import pytest

from afas_pipeline.cli import INSTANCE_LOCK, failure_lines, main
from afas_pipeline.resources import SETTINGS
from afas_pipeline_tests.suite_settings import SUITE_ENV
from afas_pipeline_tests.world import WORLD_CONTACTS
from afas_sandbox.server import start_sandbox

PARTITION = "2026-11-22-06:00"


def _cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "afas_pipeline.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_sync_materialises_the_full_graph_and_prints_counts_per_asset(sandbox, afas_sandbox_clean,
                                                                     spotler_sandbox_clean, mailchimp_sandbox_clean,
                                                                     tmp_path):
    env = {"AFAS_PIPELINE_SANDBOX_URL": sandbox.url, "DAGSTER_HOME": str(tmp_path),
           "AFAS_PIPELINE_STATE": str(tmp_path / "state.sqlite")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # The world of the rule tests (afas_sandbox_clean puts the session's 3000 contacts back afterwards): the same
    # assets run, on a tenth of the rows.
    httpx.post(f"{sandbox.afas_admin_url}/dataset/generate", json={"contacts": WORLD_CONTACTS, "seed": 7},
               timeout=60).raise_for_status()

    first = _cli("sync", "--partition", "2026-11-22-06:00", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    lines = {line.split()[0]: line.split()[1] for line in first.stdout.splitlines()
             if line.startswith(("afas_", "spotler_", "mailchimp_"))}
    assert lines["afas_contacts"] == str(WORLD_CONTACTS)
    # every destination gets most of them
    assert int(lines["spotler_sync"]) > WORLD_CONTACTS * 2 // 3 and int(lines["mailchimp_sync"]) > WORLD_CONTACTS * 2 // 3
    assert "FAILED" not in first.stdout
    # Not a terminal (as under cron or in CI): plain lines, no progress display, no escape sequences.
    assert "\x1b" not in first.stdout + first.stderr and "━" not in first.stderr
    assert first.stdout.splitlines()[:2] == [first.stdout.splitlines()[0], f"{'asset':<32} {'rows':>9}"]

    one = _cli("sync", "--cadence", "delta", "--partition", "2026-11-22-06:00", "--destination", "mailchimp", env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    assets = [line.split()[0] for line in one.stdout.splitlines() if line.startswith(("afas_", "spotler_", "mailchimp_"))]
    assert "mailchimp_sync_delta" in assets and not any(name.startswith("spotler_") for name in assets)

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
    # It ends with one line per failed step, naming the step, the cause and the AFAS the token was refused by,
    # not with a traceback of the CLI itself.
    assert "Traceback (most recent call last)" not in result.stderr and "CheckError" not in result.stderr
    # The three reads are one step (`afas_snapshots`): the first refusal is its error, the others are in its log.
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error in ")]
    assert line.startswith("error in afas_snapshots: ") and line == result.stderr.splitlines()[-1]
    refused = [c for c in ("Sync_Contacts", "Sync_Organisations", "Sync_Persons")
               if f"AFAS at {sandbox.afas_base_url} refused GetConnector '{c}' (401)" in line]
    assert len(refused) == 1
    others = [row for row in result.stderr.splitlines() if "another AFAS read failed too: " in row]
    assert len(others) == 2 and not any(f"'{refused[0]}'" in row for row in others)


def test_validate_mappings_accepts_the_shipped_files(capsys):
    assert main(["validate-mappings"]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and "spotler.yaml" in out


def test_validate_mappings_fails_when_the_mapping_of_a_destination_is_missing(tmp_path):
    folder = tmp_path / "mappings"
    folder.mkdir()
    for name in ("afas_sources.yaml", "mailchimp.yaml", "xelion.yaml"):
        (folder / name).write_text((Path(__file__).resolve().parents[1] / "mappings" / name).read_text())
    result = _cli("validate-mappings", env={"AFAS_PIPELINE_MAPPINGS": str(folder)})
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"invalid: {folder / 'spotler.yaml'}: file not found") and "AFAS_PIPELINE_MAPPINGS" in line


def test_validate_mappings_fails_when_the_mappings_folder_does_not_exist(tmp_path):
    result = _cli("validate-mappings", env={"AFAS_PIPELINE_MAPPINGS": str(tmp_path / "nope")})
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert f"'{tmp_path / 'nope'}' (AFAS_PIPELINE_MAPPINGS) does not exist" in line


@pytest.mark.parametrize("cadence,partition,says", [
    ("full", "2026-11-22T06", "is not a partition key: use YYYY-MM-DD-HH:MM in UTC"),
    ("full", "22-11-2026-06:00", "is not a partition key"),
    ("full", "2026-11-22-06:05", "is not the start of a full window (0 */6 * * * UTC): the window holding it is "
                                 "2026-11-22-06:00"),
    ("delta", "2026-11-22-06:05", "the window holding it is 2026-11-22-06:00"),
    ("full", "2025-12-31-18:00", "lies before the first full window, 2026-01-01-00:00"),
    ("delta", "2099-01-01-00:00", "has not closed yet: the last closed delta window is"),
    ("full", "2026-11-22-06:00\x1b[2J", "is not a partition key"),
])
def test_a_bad_partition_is_one_line_naming_the_argument(cadence, partition, says, capsys):
    assert main(["sync", "--cadence", cadence, "--partition", partition]) == 2
    err = capsys.readouterr().err
    # As argparse refuses an argument: the usage, then one line naming it.
    error = [line for line in err.splitlines() if "error:" in line]
    assert error == err.splitlines()[-1:], err
    assert error[0].startswith("afas-pipeline sync: error: --partition ") and says in error[0]
    assert "\x1b" not in err and "Traceback" not in err


@pytest.mark.parametrize("argv,says", [
    (["--port", "70000"], "argument --port: 70000 is out of range: use a number from 0 to 65535"),
    (["--port", "-1"], "argument --port: -1 is out of range"),
    (["--contacts", "0"], "argument --contacts: 0 is out of range: use a number from 1 to 5000000"),
    (["--contacts", "many"], "argument --contacts: 'many' is not a whole number"),
    (["--seed", "-1"], "argument --seed: -1 is out of range: use a number 0 or more"),
])
def test_a_bad_sandbox_argument_is_refused_before_the_sandbox_starts(argv, says, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["sandbox", *argv])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_a_port_in_use_or_an_unknown_host_is_one_line(sandbox, capsys):
    port = sandbox.url.rsplit(":", 1)[1]
    assert main(["sandbox", "--port", port, "--contacts", "100"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: the sandbox cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port "
        f"(or --host)"]
    assert main(["sandbox", "--host", "no-such-host.invalid", "--port", "0", "--contacts", "100"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the sandbox cannot listen on no-such-host.invalid:0: ")


@pytest.fixture
def no_settings(monkeypatch):
    for name in set(SETTINGS) - set(SUITE_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_sync_against_a_sandbox_that_is_not_running_says_how_to_start_it(no_settings, capsys):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = probe.getsockname()[1]  # free now, and nothing listens on it once closed
    no_settings.setenv("AFAS_PIPELINE_SANDBOX_URL", f"http://127.0.0.1:{closed}")
    assert main(["sync", "--partition", PARTITION]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: the sandbox at http://127.0.0.1:{closed} (AFAS_PIPELINE_SANDBOX_URL) does not "
                           f"answer")
    assert "start it with `afas-pipeline sandbox`" in line


def test_a_failed_step_is_one_line_naming_the_step_and_its_cause_escaped():
    @dg.op
    def read_afas():
        raise RuntimeError("AFAS said\r\n2026-01-01 INFO forged line\x1b[2J\x00")

    @dg.op
    def after(value):
        return value

    @dg.job
    def one_failure():
        after(read_afas())

    result = one_failure.execute_in_process(raise_on_error=False)
    assert failure_lines(result) == ["error in read_afas: AFAS said | 2026-01-01 INFO forged line\\x1b[2J\\x00"]


def test_two_syncs_starting_together_on_a_fresh_dagster_home_both_succeed(tmp_path):
    # Issue 8, item 4: the full and the delta sync of one window, started together on a fresh DAGSTER_HOME,
    # made to meet where Dagster creates its run database (afas_pipeline_tests/racing_cli.py).
    home, meeting = tmp_path / "home", tmp_path / "meeting"
    home.mkdir()
    meeting.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS or key in SUITE_ENV}
    with start_sandbox(contacts=100, seed=11) as sb:
        runs = []
        for name, other, cadence in (("full", "delta", "full"), ("delta", "full", "delta")):
            own = {"AFAS_PIPELINE_SANDBOX_URL": sb.url, "DAGSTER_HOME": str(home),
                   "AFAS_PIPELINE_STATE": str(tmp_path / f"{name}.sqlite"),
                   "AFAS_PIPELINE_STORAGE": str(tmp_path / f"{name}-storage")}
            runs.append(subprocess.Popen(
                [sys.executable, "-m", "afas_pipeline_tests.racing_cli", name, other, str(meeting),
                 "sync", "--cadence", cadence, "--partition", PARTITION],
                env={**env, **own}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outcomes = [run.communicate(timeout=280) for run in runs]
    for run, (out, err) in zip(runs, outcomes):
        assert run.returncode == 0, err[-3000:]
        assert "success" in out
    # One migration head, the one this Dagster expects, and an instance that opens and holds both runs.
    with sqlite3.connect(home / "history" / "runs.db") as db:
        heads = [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config
    from alembic.script import ScriptDirectory

    expected = ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).get_current_head()
    assert heads == [expected]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        statuses = sorted(run.status.value for run in instance.get_runs())
    assert statuses == ["SUCCESS", "SUCCESS"]
    assert (home / INSTANCE_LOCK).exists()  # the two met at the lock


def test_sync_names_the_destinations_it_can_reach_and_refuses_another():
    assert "--destination {mailchimp,spotler,xelion}" in _cli("sync", "--help").stdout
    refused = _cli("sync", "--destination", "nope")
    assert refused.returncode == 2 and "invalid choice: 'nope'" in refused.stderr


def test_version_names_the_package_and_dagster():
    import importlib.metadata

    from dagster.version import __version__ as dagster_version

    shown = _cli("--version")
    assert shown.returncode == 0
    assert shown.stdout.startswith(f"afas-pipeline {importlib.metadata.version('afas-pipeline')} "
                                   f"(dagster {dagster_version}, Python ")
