"""What a delta asks the sync state, whole loads against look-ups by key, on a state of N records.

    python bench/bench_state_lookups.py [--records 1000000] [--changed 100] [--state PATH_OR_URL]

Fills a fresh state (SQLite in a temporary folder unless --state names a Postgres URL) with N records, N/10
opt-outs, 1,000 refused records and 10 records in doubt, then times each question a delta's plan asks, as
the whole load it was and as the look-up by its `--changed` keys it is now. One JSON line per question.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from afas_pipeline.sync.state import IN_DOUBT, IN_DOUBT_QUERY, SyncState

D = "spotler"


def _fill(state: SyncState, records: int) -> None:
    at = datetime(2026, 11, 1, tzinfo=timezone.utc)
    state.save_records(D, ({"external_id": str(i), "content_hash": IN_DOUBT if i % (records // 10) == 0 else f"c{i}",
                            "email_hash": f"e{i}", "permissions": {"1": {"sent": True}}} for i in range(records)))
    state.record_optouts(D, ((str(i), "1", at) for i in range(0, records, 10)))
    state.record_rejections(D, [{"external_id": str(i), "reason": "E", "status_code": 400}
                                for i in range(0, records, max(records // 1000, 1))], quarantine_after=5)


def _timed(name: str, how: str, call) -> None:
    started = time.perf_counter()
    result = call()
    print(json.dumps({"question": name, "how": how, "seconds": round(time.perf_counter() - started, 4),
                      "rows": len(result)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--state", help="a postgresql:// URL of an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    state = SyncState(args.state or Path(tempfile.mkdtemp(prefix="bench-state-")) / "state.sqlite")
    started = time.perf_counter()
    _fill(state, args.records)
    print(json.dumps({"filled": args.records, "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    step = max(args.records // args.changed, 1)
    ids = [str(i) for i in range(0, args.records, step)][:args.changed]
    hashes = [f"e{i}" for i in ids]
    _timed("optouts", "whole", lambda: state.optouts(D))
    _timed("optouts", "by key", lambda: state.optouts(D, ids))
    _timed("rejected", "whole", lambda: state.rejected(D))
    _timed("rejected", "by key", lambda: state.rejected(D, ids))
    _timed("address holders", "whole", lambda: state.records(D))
    _timed("address holders", "by key", lambda: state.holders(D, hashes))
    if state.url is None:  # the scan the records in doubt took before their partial index (SQLite can be told so)
        def scan():
            with state._connect() as db:
                return db.execute(IN_DOUBT_QUERY.replace("FROM records", "FROM records NOT INDEXED"), (D,)).fetchall()
        _timed("in doubt", "scan", scan)
    _timed("in doubt", "indexed", lambda: state.in_doubt(D))
    _timed("feed: permissions of the records seen", "whole rows", lambda: state.records(D, ids))
    _timed("feed: permissions of the records seen", "permissions only", lambda: state.permissions(D, ids))


if __name__ == "__main__":
    main()
