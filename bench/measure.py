"""What the benchmarks read from /proc (Linux): memory and CPU seconds of a process, of this one or the sandbox's.

`sandbox_process` puts the sandbox's pid in the environment (SANDBOX_PID_ENV) while it runs, so every worker a
benchmark starts can read the sandbox's CPU time around its own measured runs without being handed the pid.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

SANDBOX_PID_ENV = "BENCH_SANDBOX_PID"


def status_mb(field: str, pid: int | str = "self") -> float:
    """A memory line of /proc/<pid>/status (VmRSS, VmHWM: the peak) in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_peak() -> None:
    """Reset this process's peak RSS (VmHWM), so that the next reading is the peak of what runs in between. Memory
    the process holds free (Python's garbage, Arrow's pool, the C allocator's free lists) is given back first: a
    run that happens to reuse what an earlier run left free would otherwise look smaller than it is, and by
    chance (the growth of one run of the same code measured 21 to 60 MB)."""
    import ctypes
    import gc

    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    Path("/proc/self/clear_refs").write_text("5")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far: utime + stime of /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_now() -> tuple[float, float]:
    """CPU seconds so far of this process (all its threads) and of the sandbox (0 when no sandbox is known).
    CPU time is less sensitive than wall time to what else the shared machine runs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    pid = os.environ.get(SANDBOX_PID_ENV)
    return usage.ru_utime + usage.ru_stime, cpu_s(int(pid)) if pid else 0.0


def cpu_since(before: tuple[float, float]) -> dict:
    """The CPU seconds this process and the sandbox spent since `before` (a `cpu_now()`)."""
    after = cpu_now()
    return {"cpu_worker_s": round(after[0] - before[0], 2), "cpu_sandbox_s": round(after[1] - before[1], 2)}


def load_1m() -> float:
    """The 1-minute load average: above ~2 (the sandbox and the measured process) something else ran too."""
    return round(os.getloadavg()[0], 2)
