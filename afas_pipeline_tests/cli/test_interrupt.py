"""Ctrl-C: the servers stop quietly (it is how they are stopped), and a sync stops with one line and exit code 130,
as a person pressing it on a terminal sees it."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading

import httpx

from afas_pipeline_tests.waiting import wait_until
from afas_sandbox.server import start_sandbox

CLI = [sys.executable, "-m", "afas_pipeline.cli"]


def test_ctrl_c_stops_the_sandbox_quietly():
    with subprocess.Popen([*CLI, "sandbox", "--port", "0", "--contacts", "50"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            banner = []
            for line in process.stdout:
                banner.append(line)
                if line.strip().startswith("password:"):  # the banner's last line: it serves now
                    break
            url = next(line.split()[-1] for line in banner if "admin URL" in line)
            assert httpx.get(f"{url}/state", timeout=30).status_code == 200
        finally:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert len(err.splitlines()) <= 1, err


def test_ctrl_c_during_a_sync_on_a_terminal_is_one_line_and_exit_code_130(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with start_sandbox(contacts=100, seed=5) as sb:
        # Every AFAS answer takes 3 s: the sync is reading AFAS when Ctrl-C comes.
        httpx.put(f"{sb.afas_admin_url}/faults", json={"latency_ms": 3000}, timeout=10).raise_for_status()
        env = {**os.environ, "AFAS_PIPELINE_SANDBOX_URL": sb.url, "DAGSTER_HOME": str(home),
               "AFAS_PIPELINE_STATE": str(tmp_path / "state.sqlite"), "COLUMNS": "120"}
        terminal, own_end = pty.openpty()
        process = subprocess.Popen([*CLI, "sync", "--partition", "2026-11-22-06:00", "--destination", "spotler"],
                                   stdin=own_end, stdout=own_end, stderr=own_end, env=env)
        os.close(own_end)
        screen = bytearray()
        reader = threading.Thread(target=_read_all, args=(terminal, screen), daemon=True)
        reader.start()
        try:
            wait_until(lambda: httpx.get(f"{sb.afas_admin_url}/stats", timeout=10).json()["total"] > 0,
                       timeout_s=60, what="the sync reads AFAS")
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
            reader.join(timeout=10)
            os.close(terminal)
    text = screen.decode("utf-8", errors="replace")
    assert process.returncode == 130, text[-2000:]
    # The progress display was on (a terminal), and Dagster's log with its stack trace was not.
    assert "afas_contacts" in text and "\x1b[" in text
    assert 'File "' not in text and "Traceback" not in text and "DagsterExecutionInterruptedError" not in text
    assert text.rstrip().splitlines()[-1] == "interrupted: window 2026-11-22-06:00 stopped where it was (Ctrl-C)"


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end closed: the process exited
            return
        if not chunk:
            return
        into.extend(chunk)
