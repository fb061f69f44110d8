"""`afas-pipeline` with two processes made to meet where creating a fresh Dagster instance is unsafe.

    python -m afas_pipeline_tests.racing_cli <name> <other name> <meeting folder> <cli arguments...>

Dagster stamps the alembic revision of a new run database right after creating its tables. Two processes
that both find no revision stamp it twice (the second, having seen the first one's tables, an older
revision): two migration heads, or an older revision than the code expects. Waiting on the clock makes
that a 1-in-3 event; here each process, on reaching the stamp, waits until the other one has reached it
too, or is waiting for the instance lock in DAGSTER_HOME (a fix makes it wait there). Of two that meet at
the stamp, the one stamping the older revision goes second, after the other's stamp. Markers are files in
the meeting folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from afas_pipeline_tests.waiting import wait_until

MEETING_TIMEOUT_S = 240.0


def main() -> int:
    name, other, meeting, *argv = sys.argv[1:]
    folder = Path(meeting)

    def mark(what: str) -> None:
        (folder / f"{what}-{name}").touch()

    def seen(what: str) -> bool:
        return (folder / f"{what}-{other}").exists()

    import dagster._core.storage.runs.sqlite.sqlite_run_storage as run_storage

    stamp = run_storage.stamp_alembic_rev

    def meeting_stamp(config, connection, rev: str = "head") -> None:
        mark("stamping")
        wait_until(lambda: seen("stamping") or seen("locking"), MEETING_TIMEOUT_S, f"{other} at the stamp or the lock")
        if rev != "head" and seen("stamping"):
            wait_until(lambda: seen("stamped"), MEETING_TIMEOUT_S, f"{other}'s stamp")
        stamp(config, connection, rev=rev)
        mark("stamped")

    run_storage.stamp_alembic_rev = meeting_stamp

    import filelock

    acquire = filelock.BaseFileLock.acquire
    home = Path(os.environ["DAGSTER_HOME"]).resolve()

    def marked_acquire(self, *args, **kwargs):
        if Path(self.lock_file).resolve().parent == home:
            mark("locking")
        return acquire(self, *args, **kwargs)

    filelock.BaseFileLock.acquire = marked_acquire

    from afas_pipeline.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    raise SystemExit(main())
