"""Sync state benchmark: `save_records` and `records()` (all, and for a list of ids) for N rows.

    python bench/bench_state.py [--rows 100000] [--state PATH_OR_URL]

Default state: a fresh SQLite file in a temporary folder. With a Postgres URL (postgresql://user:pw@host:port/db)
the tables there are emptied first. Best of --repeats for each; one JSON line per measurement.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from afas_pipeline.sync.state import SyncState


def rows(n: int, version: str) -> list[dict]:
    on = {"1": {"sent": True, "afas": True, "on_since": "2026-11-16T10:00:00+00:00"}}
    return [{"external_id": str(10_000_000 + i), "content_hash": f"{version}{i:032x}", "email_hash": f"e{i:031x}",
             "permissions": on, "bounced_email_hash": None, "fields": {"phone": f"h{i:015x}"}} for i in range(n)]


def timed(what: str, repeats: int, call) -> None:
    best = min(_once(call) for _ in range(repeats))
    print(json.dumps({"measure": what, "seconds": round(best, 3)}), flush=True)


def _once(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--state", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        state = SyncState(args.state or Path(scratch) / "state.sqlite")
        with state._connect() as db:
            db.execute("DELETE FROM records")
        fresh, changed = rows(args.rows, "a"), rows(args.rows, "b")
        ids = [r["external_id"] for r in fresh[::2]]
        timed(f"save_records {args.rows} new", 1, lambda: state.save_records("spotler", fresh))
        timed(f"save_records {args.rows} updates", args.repeats, lambda: state.save_records("spotler", changed))
        timed(f"records() all {args.rows}", args.repeats, lambda: state.records("spotler"))
        timed(f"records(ids) {len(ids)} of {args.rows}", args.repeats, lambda: state.records("spotler", ids))


if __name__ == "__main__":
    main()
