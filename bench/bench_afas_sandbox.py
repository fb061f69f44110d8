"""AFAS sandbox benchmark: the GetConnector calls a delta makes, timed against the sandbox in its own process.

    python bench/bench_afas_sandbox.py [--contacts 1000000] [--root /work/main] [--repeats 5]

`--root` starts the sandbox of another checkout (e.g. main, to compare before and after a change). Measured,
each as the first call on a fresh data version (builds the view and the index it needs) and the median of
`--repeats` calls with other values (what a delta's next chunks see):
- an OR filter of 50 keys, as `afas_pipeline.afas.lookups.read_by_keys` sends it: Sync_Persons by PersonId,
  Sync_Contacts by ContactId and by PersonId (every contact of some persons);
- a delta window: the filter `AfasClient.read_window` sends for 15 minutes of Sync_Contacts (its three
  modified dates), read page by page;
- a full page: 5000 Sync_Contacts sorted on ContactId, at skip 0 and halfway;
- the OR filter of 50 person ids right after a write (a KnOrganisation PUT starts a new data version).
Prints wall milliseconds, the sandbox's CPU milliseconds per call (mean) and the load average. Not part
of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from measure import cpu_s  # bench/ is on the path when a benchmark runs
from sandbox_process import ROOT, sandbox_process

from afas_pipeline.afas.filters import Condition, Filter, Op
from afas_pipeline.lib.timewindows import window_filter_bounds
from afas_sandbox.afas.app import FULL_ACCESS_TOKEN, token_header

PAGE = 5000
CONTACT_DATES = ("ContactModified", "PersonModified", "OrganisationModified")


def _get(client: httpx.Client, connector: str, params: dict) -> list:
    response = client.get(f"/connectors/{connector}", params=params)
    response.raise_for_status()
    return response.json()["rows"]


def _read_all(client: httpx.Client, connector: str, params: dict) -> int:
    """Every row, page by page until a short page, as `AfasClient.read` does."""
    rows, skip = 0, 0
    while True:
        got = len(_get(client, connector, {**params, "skip": skip, "take": PAGE}))
        rows += got
        if got < PAGE:
            return rows
        skip += PAGE


def _any_of(field: str, values: list) -> dict:
    return Filter.any_of(*(Condition(field, Op.EQ, v) for v in values)).to_params()


def _window(end: datetime) -> dict:
    lo, hi = window_filter_bounds(end - timedelta(minutes=15), end, timedelta(minutes=5))
    return Filter.any_of(*(Filter.all_of(Condition(f, Op.GE, lo), Condition(f, Op.LT, hi))
                           for f in CONTACT_DATES)).to_params()


def _keys(client: httpx.Client, connector: str, field: str, count: int, total: int) -> list:
    """`count` values of `field` spread over the connector's `total` rows (a page of 1 at evenly spaced skips)."""
    step = max(1, total // count)
    return [_get(client, connector, {"orderbyfieldids": field, "skip": i * step, "take": 1})[0][field]
            for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose sandbox to start (default: this one)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n = args.repeats + 1

    with sandbox_process(args.contacts, root=args.root.resolve()) as sandbox:
        print(f"sandbox of {args.root.resolve()} at {args.contacts:,} contacts: ready in {sandbox.ready_s:.1f} s, "
              f"{sandbox.rss_mb():.0f} MB")
        headers = {"Authorization": token_header(FULL_ACCESS_TOKEN)}
        admin = httpx.get(f"{sandbox.url}/afas/_admin/state", timeout=60).json()["counts"]
        headers = {"Authorization": token_header(FULL_ACCESS_TOKEN)}
        with httpx.Client(base_url=f"{sandbox.url}/afas/ProfitRestServices", headers=headers, timeout=600) as client:

            def write(i: int) -> None:
                """A KnOrganisation PUT: a new data version, so the next call rebuilds its view and index."""
                body = {"KnOrganisation": {"Element": {"Fields": {"BcCo": "100005", "Nm": f"Bench {i}"}}}}
                client.put("/connectors/KnOrganisation", json=body).raise_for_status()

            def lookup(connector: str, field: str, total: int) -> Callable[[int], int]:
                keys = _keys(client, connector, field, 50 * n, total)
                chunks = [keys[i::n][:50] for i in range(n)]
                return lambda i: len(_get(client, connector, {**_any_of(field, chunks[i]), "orderbyfieldids": field,
                                                              "skip": 0, "take": PAGE}))

            persons = lookup("Sync_Persons", "PersonId", admin["persons"])
            ends = [datetime(2026, 10, 1, tzinfo=UTC) - timedelta(days=3 * i) for i in range(n)]
            cases: dict[str, Callable[[int], int]] = {
                "OR of 50 PersonId on Sync_Persons": persons,
                "OR of 50 ContactId on Sync_Contacts": lookup("Sync_Contacts", "ContactId", admin["contacts"]),
                "OR of 50 PersonId on Sync_Contacts": lookup("Sync_Contacts", "PersonId", admin["contacts"]),
                "delta window, 15 min, Sync_Contacts": lambda i: _read_all(
                    client, "Sync_Contacts", {**_window(ends[i]), "orderbyfieldids": "ContactId"}),
                "full page, skip 0, Sync_Contacts": lambda i: len(_get(
                    client, "Sync_Contacts", {"orderbyfieldids": "ContactId", "skip": i % 2, "take": PAGE})),
                "full page, halfway, Sync_Contacts": lambda i: len(_get(
                    client, "Sync_Contacts", {"orderbyfieldids": "ContactId", "skip": admin["contacts"] // 2 + i,
                                              "take": PAGE})),
                "write, then OR of 50 PersonId on Sync_Persons": lambda i: (write(i), persons(i))[1],
            }
            print(f"{'call':48} {'first ms':>9} {'median ms':>10} {'sandbox CPU ms':>15} {'rows':>6}")
            for name, call in cases.items():
                write(n)
                timings, cpu = [], 1000 * cpu_s(sandbox.pid)
                for i in range(n):
                    started = time.perf_counter()
                    rows = call(i)
                    timings.append((time.perf_counter() - started) * 1000)
                cpu = (1000 * cpu_s(sandbox.pid) - cpu) / n
                print(f"{name:48} {timings[0]:9.1f} {statistics.median(timings[1:]):10.1f} {cpu:15.1f} {rows:6}",
                      flush=True)
        print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
