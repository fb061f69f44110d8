"""Call lookup benchmark: Xelion's incoming-call trigger against a phone index of 1,000,000 numbers.

    python bench/bench_lookup.py [--numbers 1000000] [--calls 20000] [--clients 4] [--unknown 0.2]

It builds the phone index as the `xelion_phone_index` asset does (`phone_index()` over the index rows of
organisations and persons with two numbers each, every 50th record also holding its neighbour's first number,
so that some numbers are shared), from synthetic valid Dutch numbers (mobiles 06-1 to 06-5 and landlines of
five area codes), and writes it as parquet as the ParquetIOManager does. Then:
- load: `read_index()` of that file in this process: wall time, memory growth (VmRSS) and the peak (VmHWM);
- serve: `afas-pipeline call-lookup --index <file>` in its own process, so the server has a core to itself;
  ready once /healthz answers: the time to get there and the server's own load time (healthz `load_s`), and
  its memory (VmRSS);
- calls: --clients threads, each with its own keep-alive httpx client, make --calls calls in all (after a warm-up
  of 500): numbers of the index and, --unknown of them, valid numbers that are not in it, each in one of six
  notations (+31..., 0..., 0031..., "+31 (0)..", 010-1234567, 010 123 45 67). Every answer is checked: a 302 to
  the card of the number's BcId, a 404 for an unknown number. Lookups per second over the run, latency p50 and
  p99 per call as the client sees it, and the server's CPU time over the run (below 100 % of a core the server
  was waiting for the clients, which then set the figure);
- reload: the file touched while one client keeps calling: the time until the new copy answers, the server's
  load time for it, and the latency of the calls made meanwhile (the reload runs in a thread beside the server).
One JSON line per measurement, then a human summary. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
from measure import cpu_s, reset_peak, status_mb  # bench/ is on the path when a benchmark runs

from afas_pipeline.lib.phones import parse
from afas_pipeline.lib.privacy import number_key
from afas_pipeline.xelion.addressbook import ORGANISATION, PERSON, phone_index
from afas_pipeline.xelion.config import default_settings
from afas_pipeline.xelion.lookup import INDEX_FILE, read_index

ROOT = Path(__file__).resolve().parents[1]

#: National significant numbers are made of a prefix and a serial: five mobile ranges, five landline area codes.
PREFIXES = [("61", 7), ("62", 7), ("63", 7), ("64", 7), ("65", 7), ("10", 7), ("20", 7), ("30", 7), ("40", 7),
            ("70", 7)]
SERIAL_START = 2_000_000  # landline subscriber numbers do not start with 0 or 1
WARMUP_CALLS = 500
NOTATIONS = {
    "e164": lambda area, rest: f"+31{area}{rest}",
    "national": lambda area, rest: f"0{area}{rest}",
    "0031": lambda area, rest: f"0031{area}{rest}",
    "+31 (0)": lambda area, rest: f"+31 (0){area} {rest[:3]} {rest[3:]}",
    "dashed": lambda area, rest: f"0{area}-{rest}",
    "spaced": lambda area, rest: f"0{area} {rest[:3]} {rest[3:5]} {rest[5:]}",
}


def synthetic_number(serial: int) -> tuple[str, str]:
    """The serial-th synthetic number as (area, rest): distinct for distinct serials. Even serials go into the
    index, odd ones are the unknown callers."""
    prefix, digits = PREFIXES[serial % len(PREFIXES)]
    area, first = ("6", prefix[1]) if prefix.startswith("6") else (prefix, "")
    rest = f"{first}{SERIAL_START + serial // len(PREFIXES):0{digits}d}"
    return area, rest


def e164(serial: int) -> str:
    area, rest = synthetic_number(serial)
    return f"+31{area}{rest}"


def build_index(numbers: int) -> pd.DataFrame:
    """The phone index of `numbers` numbers: records of two numbers each, a third of them organisations."""
    rows = []
    for i in range(numbers):
        record = i // 2
        kind = ORGANISATION if record % 3 == 0 else PERSON
        rows.append((f"{kind}:{record}", number_key(e164(2 * i)), str(100_000 + record), str(record), kind))
    # Every 50th record also holds the first number of the record after it (a switchboard number, say).
    for record in range(0, numbers // 2 - 1, 50):
        kind = ORGANISATION if record % 3 == 0 else PERSON
        rows.append((f"{kind}:{record}", number_key(e164(4 * (record + 1))), str(100_000 + record), str(record),
                     kind))
    entries = pd.DataFrame(rows, columns=["external_id", "number_key", "bcid", "afas_id", "kind"])
    table, counts = phone_index(entries)
    assert counts["numbers"] == numbers, counts
    return table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _calls(count: int, numbers: int, unknown: float, rng: random.Random) -> list[tuple[str, int]]:
    """(typed number, serial) pairs: an even serial is in the index, an odd one is not."""
    calls = []
    notations = list(NOTATIONS.values())
    for _ in range(count):
        serial = 2 * rng.randrange(numbers) + (1 if rng.random() < unknown else 0)
        calls.append((rng.choice(notations)(*synthetic_number(serial)), serial))
    return calls


def _run_clients(url: str, calls: list[tuple[str, int]], clients: int, expected: dict[int, str]) -> dict:
    """The calls split over `clients` threads; latencies, statuses and wrong answers."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[dict[int, int]] = [{} for _ in range(clients)]
    wrong: list[int] = [0] * clients

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for typed, serial in calls[n::clients]:
                started = time.perf_counter()
                answer = http.get("/xelion/incoming-call", params={"number": typed})
                latencies[n].append(time.perf_counter() - started)
                statuses[n][answer.status_code] = statuses[n].get(answer.status_code, 0) + 1
                want = (302, expected[serial]) if serial % 2 == 0 else (404, None)
                if (answer.status_code, answer.headers.get("location")) != want:
                    wrong[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    merged: dict[str, int] = {}
    for per in statuses:
        for status, count in per.items():
            merged[str(status)] = merged.get(str(status), 0) + count
    flat = [x for per in latencies for x in per]
    return {"calls": len(flat), "wall_s": round(wall, 2), "lookups_per_s": round(len(flat) / wall),
            "p50_ms": round(_percentile(flat, 50) * 1000, 2), "p99_ms": round(_percentile(flat, 99) * 1000, 2),
            "max_ms": round(max(flat) * 1000, 1), "statuses": merged, "wrong_answers": sum(wrong)}


def bench(numbers: int, count: int, clients: int, unknown: float) -> list[dict]:
    settings = default_settings()
    rng = random.Random(7)
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench_lookup_") as tmp:
        path = Path(tmp) / INDEX_FILE
        started = time.perf_counter()
        table = build_index(numbers)
        table.to_parquet(path, index=False)
        samples = [e164(2 * rng.randrange(numbers)) for _ in range(1000)] + [e164(2 * rng.randrange(numbers) + 1)
                                                                             for _ in range(1000)]
        assert all(parse(number)[0] == number for number in samples), "a synthetic number is not valid"
        lines.append({"measurement": "index", "numbers": numbers, "rows": len(table),
                      "shared_numbers": int((table["candidates"] > 1).sum()),
                      "file_mb": round(path.stat().st_size / 2**20, 1), "build_s": round(time.perf_counter() - started, 1)})

        reset_peak()
        before = status_mb("VmRSS")
        started = time.perf_counter()
        index = read_index(path)
        load_s = time.perf_counter() - started
        lines.append({"measurement": "load", "numbers": index.numbers, "load_s": round(load_s, 2),
                      "rss_growth_mb": round(status_mb("VmRSS") - before, 1),
                      "peak_growth_mb": round(status_mb("VmHWM") - before, 1),
                      "arrays_mb": round((index.keys.nbytes + index.bcids.nbytes) / 2**20, 1)})
        by_key = dict(zip(table["number_key"], table["bcid"]))
        calls = _calls(WARMUP_CALLS + count, numbers, unknown, rng)
        expected = {serial: settings.insite_card(by_key[number_key(e164(serial))])
                    for _, serial in calls if serial % 2 == 0}
        del index, table, by_key

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "afas_pipeline.cli", "call-lookup", "--port", str(port),
                                   "--index", str(path)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    health = httpx.get(f"{url}/healthz", timeout=5).json()
                    break
                except httpx.TransportError:
                    if server.poll() is not None:
                        raise SystemExit(f"afas-pipeline call-lookup exited with {server.returncode}")
                    time.sleep(0.05)
            lines.append({"measurement": "serve", "ready_s": round(time.perf_counter() - started, 2),
                          "server_load_s": health["load_s"], "numbers": health["numbers"],
                          "server_rss_mb": round(status_mb("VmRSS", server.pid), 1)})

            _run_clients(url, calls[:WARMUP_CALLS], clients, expected)
            cpu = cpu_s(server.pid)
            run = _run_clients(url, calls[WARMUP_CALLS:], clients, expected)
            busy = cpu_s(server.pid) - cpu
            run["server_cpu_pct"] = round(100 * busy / run["wall_s"])
            run["server_cpu_ms_per_call"] = round(1000 * busy / run["calls"], 3)
            lines.append({"measurement": "calls", "clients": clients, "unknown_share": unknown, **run})

            lines.append({"measurement": "reload", **_reload(url, path, calls[WARMUP_CALLS:], expected)})
        finally:
            server.terminate()
            server.wait(timeout=30)
    return lines


def _reload(url: str, path: Path, calls: list[tuple[str, int]], expected: dict[int, str]) -> dict:
    """Touch the index file while a client keeps calling; wait until the server has read it again."""
    stop = threading.Event()
    result: dict = {}

    def keep_calling() -> None:
        result.update(_run_clients_until(url, calls, expected, stop))

    caller = threading.Thread(target=keep_calling)
    caller.start()
    touched = time.perf_counter()
    os.utime(path)
    with httpx.Client(base_url=url, timeout=30) as http:
        while (health := http.get("/healthz").json())["loads"] < 2:
            time.sleep(0.02)
    reloaded_s = time.perf_counter() - touched
    stop.set()
    caller.join()
    return {"reloaded_after_s": round(reloaded_s, 2), "server_load_s": health["load_s"],
            "failed_loads": health["failed_loads"], **result}


def _run_clients_until(url: str, calls: list[tuple[str, int]], expected: dict[int, str],
                       stop: threading.Event) -> dict:
    latencies, wrong = [], 0
    with httpx.Client(base_url=url, timeout=30) as http:
        for typed, serial in calls:
            if stop.is_set():
                break
            started = time.perf_counter()
            answer = http.get("/xelion/incoming-call", params={"number": typed})
            latencies.append(time.perf_counter() - started)
            want = (302, expected[serial]) if serial % 2 == 0 else (404, None)
            wrong += (answer.status_code, answer.headers.get("location")) != want
    return {"calls_meanwhile": len(latencies), "p99_ms_meanwhile": round(_percentile(latencies, 99) * 1000, 2),
            "max_ms_meanwhile": round(max(latencies) * 1000, 1), "wrong_answers_meanwhile": wrong}


def summary(lines: list[dict]) -> list[str]:
    by = {line["measurement"]: line for line in lines}
    index, load, serve, calls, reload = by["index"], by["load"], by["serve"], by["calls"], by["reload"]
    return [
        f"phone index of {index['numbers']:,} numbers ({index['shared_numbers']:,} shared by two records): "
        f"{index['file_mb']} MB of parquet, built in {index['build_s']}s",
        f"load (read_index, in this process): {load['load_s']}s; memory +{load['rss_growth_mb']} MB "
        f"(peak +{load['peak_growth_mb']} MB; the arrays {load['arrays_mb']} MB)",
        f"afas-pipeline call-lookup ready in {serve['ready_s']}s (its load {serve['server_load_s']}s), "
        f"{serve['server_rss_mb']} MB resident",
        f"{calls['calls']:,} calls from {calls['clients']} clients ({round(calls['unknown_share'] * 100)} % unknown "
        f"numbers, six notations): {calls['lookups_per_s']:,} lookups/s, p50 {calls['p50_ms']} ms, p99 "
        f"{calls['p99_ms']} ms, max {calls['max_ms']} ms; answers {calls['statuses']}, wrong {calls['wrong_answers']}",
        f"  server CPU {calls['server_cpu_pct']} % of a core, {calls['server_cpu_ms_per_call']} ms per call (one core "
        f"would answer ~{round(1000 / calls['server_cpu_ms_per_call']):,} calls/s; below 100 % the clients set the "
        f"pace)",
        f"reload after the file changed: the new copy answered after {reload['reloaded_after_s']}s (its load "
        f"{reload['server_load_s']}s); meanwhile {reload['calls_meanwhile']} calls, p99 {reload['p99_ms_meanwhile']} "
        f"ms, max {reload['max_ms_meanwhile']} ms, wrong {reload['wrong_answers_meanwhile']}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, default=1_000_000, help="numbers in the phone index")
    parser.add_argument("--calls", type=int, default=20_000, help="calls measured (after a warm-up of 500)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients, each a keep-alive connection")
    parser.add_argument("--unknown", type=float, default=0.2, help="share of calls from numbers not in the index")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average {Path('/proc/loadavg').read_text().split()[:3]}; "
          f"{args.numbers} numbers; {args.calls} calls; {args.clients} clients", flush=True)
    lines = bench(args.numbers, args.calls, args.clients, args.unknown)
    for line in lines:
        print(json.dumps(line))
    for text in summary(lines):
        print(text)


if __name__ == "__main__":
    main()
