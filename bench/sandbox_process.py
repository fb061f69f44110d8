"""The sandbox in a process of its own, for benchmarks: the server then has a core to itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from measure import SANDBOX_PID_ENV, status_mb

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SandboxProcess:
    url: str
    pid: int
    ready_s: float

    def rss_mb(self) -> float:
        return status_mb("VmRSS", self.pid)


@contextmanager
def sandbox_process(contacts: int, root: Path = ROOT) -> Iterator[SandboxProcess]:
    """Start `afas-pipeline sandbox` (of the checkout at `root`) on a free port; yield once it answers; stop it
    afterwards. While it runs, its pid is in the environment (measure.SANDBOX_PID_ENV) of the processes started
    from here: the workers read its CPU time from it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "afas_pipeline.cli", "sandbox", "--port", str(port), "--contacts", str(contacts)],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/afas/_admin/state", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"sandbox exited with {process.returncode}")
            time.sleep(0.5)
        os.environ[SANDBOX_PID_ENV] = str(process.pid)
        yield SandboxProcess(url=url, pid=process.pid, ready_s=time.perf_counter() - started)
    finally:
        os.environ.pop(SANDBOX_PID_ENV, None)
        process.terminate()
        process.wait(timeout=30)
