"""Where a Spotler rerun's time goes: the pipeline's own code, the parquet IO manager, and Dagster's bookkeeping.

    python bench/rerun_split.py [--contacts 100000] [--reruns 4] [--repeats 3]

In one process against the sandbox in a process of its own (as bench_sync.py runs): the bare script's read and join
(best of --repeats), a full sync of Spotler, then --reruns reruns of the same partition (the first reads the full
sync's echo from the change feed; the ones after it do not). Each rerun's wall time is split three ways:
- code: the assets' own code, timed around each step of its generator (the time Dagster spends between yields is
  left out), through the same wrapper every asset already runs in (`afas_pipeline.retries`);
- io: the parquet IO manager's `handle_output` and `load_input` (writing the seven outputs, reading the six inputs);
- dagster: the rest: the run's creation, its events and check evaluations, step starts and ends.
One JSON line per run, then a summary. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sync  # noqa: E402  (bench/ on the path first)
from sandbox_process import sandbox_process  # noqa: E402

import afas_pipeline.lib.parquet_io as parquet_io  # noqa: E402
import afas_pipeline.retries as retries  # noqa: E402

SPENT = {"code": 0.0, "io": 0.0}


def _timed_generator(policy, compute, context, args, kwargs):
    """`retries._generator`, with the time inside the asset's generator added to SPENT["code"]."""
    with retries._retrying(policy, context):
        steps = compute(context, *args, **kwargs)
        while True:
            started = time.perf_counter()
            try:
                item = next(steps)
            except StopIteration:
                return
            finally:
                SPENT["code"] += time.perf_counter() - started
            yield item


def _timed_function(policy, compute, context, args, kwargs):
    started = time.perf_counter()
    try:
        with retries._retrying(policy, context):
            return compute(context, *args, **kwargs)
    finally:
        SPENT["code"] += time.perf_counter() - started


def _timed_io(method):
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            SPENT["io"] += time.perf_counter() - started
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--reruns", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the bare read and join; the best counts")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    import dagster as dg

    retries._generator, retries._function = _timed_generator, _timed_function
    store = parquet_io._ParquetStore
    store.handle_output, store.load_input = _timed_io(store.handle_output), _timed_io(store.load_input)

    with sandbox_process(args.contacts) as sandbox:
        url = sandbox.url
        # In processes of their own, as bench_sync.py runs them (and this one's heap stays the pipeline's).
        bare = min((bench_sync._run_worker("bare", "--url", url, "--n", str(args.contacts), "--batch-size", "500",
                                           "--concurrency", "4") for _ in range(args.repeats)),
                   key=lambda run: run["read_s"] + run["join_s"])
        floor = bare["read_s"] + bare["join_s"]
        print(json.dumps({"measure": "bare read + join", "read_s": round(bare["read_s"], 2),
                          "join_s": round(bare["join_s"], 2)}), flush=True)
        folder = Path(tempfile.mkdtemp(prefix="rerun-split-"))
        defs = bench_sync._defs(url, str(folder / "state.sqlite"), str(folder / "storage"))
        instance = dg.DagsterInstance.ephemeral()
        httpx.post(f"{url}/spotler/_admin/reset", timeout=60).raise_for_status()
        bench_sync._spotler_clock(url, -bench_sync.FULL_CLOCK_BACK_S)
        bench_sync._run(defs, "afas_full_job", bench_sync.FULL_PARTITION, url, instance=instance)
        bench_sync._spotler_clock(url, 0)
        runs = []
        for i in range(args.reruns):
            SPENT.update(code=0.0, io=0.0)
            run = bench_sync._run(defs, "afas_full_job", bench_sync.FULL_PARTITION, url, instance=instance)
            if not run["success"]:
                raise SystemExit(f"rerun {i + 1} failed: {run['errors']}")
            wall = run["wall_s"]
            line = {"measure": "rerun" if i == 0 else "rerun again", "wall_s": round(wall, 2),
                    "code_s": round(SPENT["code"], 2), "io_s": round(SPENT["io"], 2),
                    "dagster_s": round(wall - SPENT["code"] - SPENT["io"], 2), "spotler_writes": run["spotler_write_requests"]}
            runs.append(line)
            print(json.dumps(line), flush=True)
    print(f"\n{args.contacts:,} contacts; the bare read + join: {floor:.2f} s "
          f"(read {bare['read_s']:.2f} + join {bare['join_s']:.2f})")
    for line in runs:
        print(f"{line['measure']:12s} {line['wall_s']:.2f} s = code {line['code_s']:.2f} ({line['code_s'] / floor:.2f}x "
              f"the floor) + parquet IO {line['io_s']:.2f} + Dagster {line['dagster_s']:.2f} "
              f"-> {line['wall_s'] / floor:.2f}x")


if __name__ == "__main__":
    main()
