"""Waiting on a condition in another thread or server, never on the clock alone."""

import threading
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Return as soon as `condition()` holds; fail the test if it does not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s}s"
        tick.wait(0.002)
