"""`afas-pipeline up` without starting it whole: the instance it writes logs runs at INFO, `dagster dev` logs at
INFO, and what it shows of Dagster's output leaves out the BetaWarning, PreviewWarning and SupersessionWarning
blocks."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from afas_pipeline.cli import (PROJECT_ROOT, OutputRelay, WarningFilter, _spawn, dagster_dev_command, free_port,
                              instance_yaml)

#: As Dagster's code server logs a warning it caught (colours and all), then one Python prints itself.
DAGSTER_OUTPUT = """\
\x1b[32m2026-12-03 04:17:05 +0000\x1b[0m - dagster - \x1b[34mWARNING\x1b[0m - /venv/lib/python3.11/site-packages/dagster/_core/definitions/metadata/source_code.py:94: BetaWarning: Class `LocalFileCodeReference` is currently in beta, and may have breaking changes in minor version releases.
  return LocalFileCodeReference(file_path=origin_file, line_number=origin_line)

\x1b[32m2026-12-03 04:17:08 +0000\x1b[0m - dagster.daemon - \x1b[34mINFO\x1b[0m - Instance is configured with the following daemons: ['SchedulerDaemon']
/venv/lib/python3.11/site-packages/dagster/_core/decorator_utils.py:232: BetaWarning: Parameter `backfill_policy` of function `asset` is currently in beta.
  return fn(*args, **kwargs)
/work/afas_pipeline/afas/assets.py:40: PreviewWarning: Parameter `partitions_def` on AssetCheckSpec is in preview.
  dg.AssetCheckSpec(
/venv/lib/python3.11/site-packages/click/core.py:911: SupersessionWarning: Function `dev_command` is superseded and its usage is discouraged. Use 'dg dev' instead.
  return callback(*args, **kwargs)
2026-12-03 04:17:09 +0000 - dagster-webserver - INFO - Serving dagster-webserver on http://127.0.0.1:3000 in process 27701
/work/afas_pipeline/cli.py:12: UserWarning: something else
  warnings.warn("something else")
2026-12-03 05:07:50 +0000 - dagster - INFO - __repository__ - afas_pipeline_freshness_checks - Freshness check spotler_sync_delta:freshness_check previously passed, but cannot be overdue again until 43 minutes, 42 seconds from now. Skipping...
\x1b[32m2026-12-03 05:07:50 +0000\x1b[0m - dagster.daemon.SensorDaemon - \x1b[34mINFO\x1b[0m - Checking for new runs for sensor: afas_pipeline_run_failure_alert
\x1b[32m2026-12-03 05:07:50 +0000\x1b[0m - dagster.daemon.SensorDaemon - \x1b[34mINFO\x1b[0m - Sensor afas_pipeline_run_failure_alert skipped: Sensor function returned an empty result
2026-12-03 05:08:50 +0000 - dagster - WARNING - __repository__ - afas_pipeline_freshness_alert - alert not sent: no target configured
"""


def test_the_warning_blocks_are_left_out_and_everything_else_is_kept():
    keep = WarningFilter().keep
    shown = [line for line in DAGSTER_OUTPUT.splitlines(keepends=True) if keep(line)]
    assert [line.split(" - ")[-1].strip() if " - " in line else line.strip() for line in shown] == [
        "Instance is configured with the following daemons: ['SchedulerDaemon']",
        "Serving dagster-webserver on http://127.0.0.1:3000 in process 27701",
        "/work/afas_pipeline/cli.py:12: UserWarning: something else",
        'warnings.warn("something else")',
        "alert not sent: no target configured",
    ]


def test_a_child_s_real_warnings_do_not_reach_the_screen(tmp_path):
    program = tmp_path / "child.py"
    program.write_text("import warnings, dagster\n"
                       "warnings.warn('a beta API', dagster.BetaWarning)\n"
                       "print('Serving dagster-webserver', flush=True)\n"
                       "warnings.warn('a preview API', dagster.PreviewWarning)\n"
                       "print('done', flush=True)\n")
    child = _spawn([sys.executable, str(program)], env={}, cwd=PROJECT_ROOT, relay=True)
    screen = io.BytesIO()
    relay = OutputRelay(child.stdout, screen)
    assert child.wait(timeout=60) == 0
    relay.join(timeout_s=10)
    assert screen.getvalue().decode() == "Serving dagster-webserver\ndone\n"


def test_the_instance_logs_runs_at_info_and_keeps_the_project_s_settings(tmp_path):
    project = (PROJECT_ROOT / "dagster.yaml").read_text()
    written = instance_yaml(project)
    config = yaml.safe_load(written)
    assert config["python_logs"]["python_log_level"] == "INFO"
    assert {k: v for k, v in config.items() if k != "python_logs"} == \
        {k: v for k, v in (yaml.safe_load(project) or {}).items() if k != "python_logs"}
    # Dagster reads it as the level of every run's console log (its default is DEBUG).
    (tmp_path / "dagster.yaml").write_text(written)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.python_log_level == "INFO"


def test_a_level_the_project_chose_itself_is_left_alone():
    own = "python_logs:\n  python_log_level: WARNING\n  managed_python_loggers: [afas_pipeline]\n"
    assert instance_yaml(own) == own
    merged = yaml.safe_load(instance_yaml("python_logs:\n  managed_python_loggers: [afas_pipeline]\n"))
    assert merged == {"python_logs": {"managed_python_loggers": ["afas_pipeline"], "python_log_level": "INFO"}}


def test_dagster_dev_serves_this_machine_and_logs_at_info():
    command = dagster_dev_command(Path("/project/workspace.yaml"), 3000)
    assert command[1:] == ["-m", "dagster", "dev", "-w", "/project/workspace.yaml", "-h", "127.0.0.1", "-p", "3000",
                           "--log-level", "info", "--code-server-log-level", "warning"]
    assert subprocess.run([*command[:4], "--help"], capture_output=True, text=True, timeout=60).returncode == 0


def test_up_with_port_0_gets_a_real_port_for_the_sandbox_url():
    # `up --port 0` used to hand http://127.0.0.1:0 to the syncs and wait 60 s for a sandbox there.
    port = free_port("127.0.0.1")
    assert port > 0
    with socket.create_server(("127.0.0.1", port)):
        pass  # nothing held it: the sandbox can listen there
