"""Fail points: named places in the write paths where a test makes the run die, or stand still, on purpose.

The promises of the product (no opt-out undone, nothing lost, nothing doubled) must hold when a run is
killed at any moment, not only on the happy path. Each write path calls `failpoint("<step>.<moment>")` at
the moments that matter (after a write batch was acknowledged, before the sync state is saved, ...); the
tests arm one of them and check that the next run ends where a run without the crash would have. The idea
is FreeBSD's fail points and TiKV's fail-rs, kept to what this project needs.

Nothing happens unless a point is armed, in-process with `arm()` or, for a whole process (the CLI in a
subprocess), with the environment variable `AFAS_PIPELINE_FAILPOINTS`, e.g.
`spotler_sync.batch_saved=kill@16` (SIGKILL this process the 16th time that point is reached). Actions:

- `kill`: SIGKILL the process: no `finally`, no flush, exactly what an OOM kill or a lost host does;
- `crash`: raise `SimulatedCrash`, a BaseException no `except Exception` catches, for in-process tests
  (Dagster's run is abandoned halfway; the sync state keeps what was committed, as after a kill). From then
  on every fail point raises it too, in every thread, until `disarm()`: the other threads of the dead run
  stop at their next point instead of carrying on;
- `pause`: block until the test calls `release()`, to make two runs meet at a chosen moment.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field

ENV = "AFAS_PIPELINE_FAILPOINTS"
ACTIONS = ("kill", "crash", "pause")

__all__ = ["ENV", "SimulatedCrash", "arm", "disarm", "failpoint", "hits", "release", "wait_until_paused"]


class SimulatedCrash(BaseException):
    """The run dies here (an armed fail point with the `crash` action)."""


@dataclass
class _Armed:
    action: str
    at: int  # the n-th time the point is reached
    paused: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_armed: dict[str, _Armed] = {}
_hits: Counter[str] = Counter()
_env_loaded = False
_dead = False


def _parse(spec: str) -> dict[str, _Armed]:
    """`name=action[@n]`, several separated by commas."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, rest = part.partition("=")
        action, _, n = rest.partition("@")
        if not name or action not in ACTIONS or (n and not n.isdigit()):
            raise ValueError(f"{ENV}: {part!r} is not name=action[@n] with action one of {', '.join(ACTIONS)}")
        out[name.strip()] = _Armed(action, int(n) if n else 1)
    return out


def _load_env() -> None:
    global _env_loaded
    if not _env_loaded:
        _env_loaded = True
        _armed.update(_parse(os.environ.get(ENV, "")))


def arm(name: str, action: str = "crash", at: int = 1) -> None:
    """Make the `at`-th arrival at `name` (counted from now) kill, crash or pause."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    with _lock:
        _load_env()
        _hits[name] = 0
        _armed[name] = _Armed(action, at)


def disarm() -> None:
    """Every point back to doing nothing (paused threads are let go); counts back to zero."""
    global _dead
    with _lock:
        _dead = False
        for armed in _armed.values():
            armed.go.set()
        _armed.clear()
        _hits.clear()


def hits(name: str) -> int:
    """How often `name` was reached since it was armed (or since the last `disarm`)."""
    with _lock:
        return _hits[name]


def wait_until_paused(name: str, timeout_s: float = 60.0) -> bool:
    with _lock:
        armed = _armed.get(name)
    return armed is not None and armed.paused.wait(timeout_s)


def release(name: str) -> None:
    with _lock:
        armed = _armed.get(name)
    if armed is not None:
        armed.go.set()


def failpoint(name: str) -> None:
    """A moment a test may choose to die at. Costs a dictionary look-up when nothing is armed."""
    if not _env_loaded:
        with _lock:
            _load_env()
    global _dead
    if not _armed:
        return
    with _lock:
        if _dead:
            raise SimulatedCrash(f"{name} (after an earlier crash)")
        _hits[name] += 1
        armed = _armed.get(name)
        if armed is None or _hits[name] != armed.at:
            return
        if armed.action == "crash":
            _dead = True
            raise SimulatedCrash(name)
    if armed.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    armed.paused.set()
    armed.go.wait()
