"""Extraction benchmark: the `afas_contacts` asset versus a bare httpx loop over the same connector.

    python bench/bench_extract.py [--sizes 100000 1000000] [--page-size 5000] [--repeats 1]

For each size it starts the sandbox in its own process (so the server has its own core), then in
one run measures, each in a fresh worker process:
- bare: an httpx loop paging `Sync_Contacts` sorted on ContactId until a short page, JSON parsed;
- asset: `afas_contacts` materialised alone (its connector only) through the AFAS client and the parquet IO manager.
It prints rows/s, the time ratio asset/bare (goal <= 1.2) and the asset run's peak memory growth
over the size of the resulting DataFrame (goal < 2x); the JSON line also has each side's CPU seconds and
the sandbox's. The asset runs twice in its worker: the first run also loads Dagster's execution machinery,
the second is a code server's steady state; the ratio and memory goal use the second, and the first is
printed beside it. With --repeats N each side runs N times (the asset in N workers), the best counts. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from measure import cpu_now, cpu_since, reset_peak, status_mb  # bench/ is on the path when a benchmark runs
from sandbox_process import sandbox_process

ROOT = Path(__file__).resolve().parents[1]
CONNECTOR = "Sync_Contacts"


def worker_bare(base_url: str, token: str, page_size: int) -> dict:
    import base64

    header = base64.b64encode(f"<token><version>1</version><data>{token}</data></token>".encode()).decode()
    reset_peak()
    before = status_mb("VmRSS")
    cpu = cpu_now()
    started = time.perf_counter()
    rows = pages = 0
    with httpx.Client(base_url=base_url, headers={"Authorization": f"AfasToken {header}"}, timeout=120) as client:
        while True:
            params = {"skip": rows, "take": page_size, "orderbyfieldids": "ContactId"}
            page = client.get(f"/connectors/{CONNECTOR}", params=params).raise_for_status().json()["rows"]
            rows += len(page)
            pages += 1
            if len(page) < page_size:
                break
    return {"rows": rows, "pages": pages, "wall_s": time.perf_counter() - started,
            "growth_mb": status_mb("VmHWM") - before, **cpu_since(cpu)}


def worker_asset(base_url: str, token: str, page_size: int) -> dict:
    import dagster as dg
    import pandas as pd

    from afas_pipeline.afas.assets import build_afas_assets
    from afas_pipeline.afas.client import AfasClient
    from afas_pipeline.lib.parquet_io import ParquetIOManager

    # The full reads are one step (`afas_snapshots`); materialised alone, `afas_contacts` reads only its connector.
    asset = next(a for a in build_afas_assets() if dg.AssetKey("afas_contacts") in a.keys)
    storage = tempfile.mkdtemp(prefix="bench-storage-")
    resources = {"afas": AfasClient(base_url=base_url, token=token, page_size=page_size),
                 "io_manager": ParquetIOManager(base_dir=storage)}
    instance = dg.DagsterInstance.ephemeral()
    runs = []
    # The first run also loads Dagster's execution machinery; the second is the steady state of a
    # code server that has run before. Both are reported.
    for _ in range(2):
        reset_peak()
        before = status_mb("VmRSS")
        cpu = cpu_now()
        started = time.perf_counter()
        result = dg.materialize([asset], selection=["afas_contacts"], partition_key="2026-11-22-06:00",
                                resources=resources, instance=instance)
        runs.append({"wall_s": time.perf_counter() - started, "growth_mb": status_mb("VmHWM") - before,
                     **cpu_since(cpu), "success": result.success})
    df = pd.read_parquet(Path(storage) / "afas_contacts" / "2026-11-22-06:00.parquet")
    return {"rows": len(df), "first": runs[0], "warm": runs[1], "df_mb": df.memory_usage(deep=True).sum() / 2**20}


def _run_worker(kind: str, base_url: str, token: str, page_size: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--base-url", base_url, "--token", token,
         "--page-size", str(page_size)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_size(size: int, page_size: int, repeats: int) -> dict:
    from afas_sandbox.server import SANDBOX_AFAS_TOKEN

    with sandbox_process(size) as sandbox:
        ready_s = sandbox.ready_s
        base_url = f"{sandbox.url}/afas/ProfitRestServices"
        # Warm the server's sorted index so neither side pays for building it.
        _run_worker("bare", base_url, SANDBOX_AFAS_TOKEN, page_size)
        bare = min((_run_worker("bare", base_url, SANDBOX_AFAS_TOKEN, page_size) for _ in range(repeats)),
                   key=lambda r: r["wall_s"])
        # Best of N as the bare pager's, by the steady-state run the goals are judged on.
        asset = min((_run_worker("asset", base_url, SANDBOX_AFAS_TOKEN, page_size) for _ in range(repeats)),
                    key=lambda r: r["warm"]["wall_s"])
        server_rss = sandbox.rss_mb()
    assert bare["rows"] == asset["rows"], (bare, asset)
    warm, first = asset["warm"], asset["first"]
    return {
        "contacts": size,
        "rows": asset["rows"],
        "sandbox_ready_s": round(ready_s, 1),
        "sandbox_rss_mb": round(server_rss),
        "bare_s": round(bare["wall_s"], 2),
        "bare_rows_per_s": round(bare["rows"] / bare["wall_s"]),
        "asset_s": round(warm["wall_s"], 2),
        "asset_first_run_s": round(first["wall_s"], 2),
        "asset_rows_per_s": round(asset["rows"] / warm["wall_s"]),
        "ratio_asset_to_bare": round(warm["wall_s"] / bare["wall_s"], 2),
        "df_mb": round(asset["df_mb"], 1),
        "bare_peak_growth_mb": round(bare["growth_mb"], 1),
        "asset_peak_growth_mb": round(warm["growth_mb"], 1),
        "asset_first_run_peak_growth_mb": round(first["growth_mb"], 1),
        "peak_growth_to_df": round(warm["growth_mb"] / asset["df_mb"], 2),
        "bare_cpu_worker_s": bare["cpu_worker_s"],
        "bare_cpu_sandbox_s": bare["cpu_sandbox_s"],
        "asset_cpu_worker_s": warm["cpu_worker_s"],
        "asset_cpu_sandbox_s": warm["cpu_sandbox_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=1, help="best of N per side")
    parser.add_argument("--worker", choices=("bare", "asset"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        fn = worker_bare if args.worker == "bare" else worker_asset
        print(json.dumps(fn(args.base_url, args.token, args.page_size)))
        return
    print(f"machine: {os.cpu_count()} cores; page size {args.page_size}")
    for size in args.sizes:
        result = bench_size(size, args.page_size, args.repeats)
        print(json.dumps(result))
        print(
            f"{size:>9} contacts: bare {result['bare_s']}s ({result['bare_rows_per_s']} rows/s), "
            f"asset {result['asset_s']}s ({result['asset_rows_per_s']} rows/s; first run {result['asset_first_run_s']}s), "
            f"ratio {result['ratio_asset_to_bare']} (goal <= 1.2); peak memory growth "
            f"{result['asset_peak_growth_mb']} MB = {result['peak_growth_to_df']}x the {result['df_mb']} MB DataFrame "
            f"(goal < 2; first run {result['asset_first_run_peak_growth_mb']} MB, bare loop {result['bare_peak_growth_mb']} MB)",
            flush=True,
        )


if __name__ == "__main__":
    main()
