"""Issue 13's whole table: every figure beside its floor and its goal, one markdown table per destination.

    python bench/report.py [--contacts 100000] [--deltas 100 1000] [--destinations spotler mailchimp xelion]
                           [--events N] [--repeats 1] [--no-extract] [--json FILE]

It runs the benchmarks of bench/ one after another through their `bench()` functions: each starts its own sandbox
in a process of its own and runs every pipeline run and every bare script in a fresh worker process. In order:
bench_extract (the AFAS extraction, shared by every destination), then per destination bench_sync (Spotler) or
bench_mailchimp, each followed by bench_feedback's opt-outs and bounces for it, and bench_xelion (no call reports). The workers and the
sandbox run this checkout (PYTHONPATH), the commit in the header. docs/benchmarks.md says what each figure means
and how its floor is built. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The workers and the sandbox import the pipeline of this checkout (not whatever the venv has installed).
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
sys.path.insert(1, str(ROOT))

import bench_extract  # noqa: E402  (bench/ is on the path when a benchmark runs)
import bench_feedback  # noqa: E402
import bench_mailchimp  # noqa: E402
import bench_sync  # noqa: E402
import bench_xelion  # noqa: E402

DESTINATIONS = ("spotler", "mailchimp", "xelion")
#: Seconds each part takes per 100,000 contacts on the 2-core machine, beyond about PART_SETUP_S each (the
#: sandbox's start, the warm-up runs): Spotler, Mailchimp and the feedback paths from `report.py --contacts 1000000
#: --destinations spotler mailchimp --no-extract` on 2026-12-05 at bead086 (342, 372, 232 and 336 s; 21 minutes in
#: all, where these had estimated 42); the extraction and Xelion from `make bench` on 2026-12-03 (load average 4.4
#: to 5.2): the estimate printed at the start.
SECONDS_PER_100K = {"extract": 11, "spotler": 33, "feedback": 28, "mailchimp": 36, "xelion": 520}
#: What each repeat beyond the first adds (`--repeats`), per 100,000 contacts: `make bench` on 2026-12-05 at bead086
#: with 3 repeats (Spotler 102 s, Mailchimp 134 s, their feedback paths 42 and 51 s) against the single runs above;
#: the extraction and Xelion (2 repeats, at 40,000) at 9cd3ae7.
SECONDS_PER_REPEAT_100K = {"extract": 7, "spotler": 30, "feedback": 5, "mailchimp": 44, "xelion": 360}
PART_SETUP_S = 10
#: The goals of issue 13.
FULL_RATIO, EXTRACT_RATIO, EXTRACT_MEMORY, DELTA_S, PEAK_MB_AT_1M = 1.3, 1.2, 2.0, 10.0, 2048
#: A run reads a change feed up to three times (the sync plan, the opt-out and the bounce feedback), a page each
#: when nothing is new: an echo of fewer pages than this cannot be told from those reads.
ECHO_MIN_PAGES = 5
#: The sandbox is single-threaded: busy for more than this share of a run's wall time, it sets the pace.
SANDBOX_BUSY = 0.8
#: Per destination: its name, and the request counts (all, writes) its benchmark's lines carry.
REQUESTS = {"spotler": ("Spotler", "spotler_requests", "spotler_write_requests"),
            "mailchimp": ("Mailchimp", "mailchimp_requests", "mailchimp_write_requests"),
            "xelion": ("Xelion", "xelion_requests", "xelion_writes")}
#: Per destination with a change feed (Xelion has none): the route that reads it, the requests per route in its
#: benchmark's lines, and the full sync's figure of the contacts it wrote (the feed's echo of them).
CHANGE_FEED = {"spotler": ("GET contact/updates/list", "spotler_by_route", "contacts_sent"),
               "mailchimp": ("GET lists/{list_id}/members", "mailchimp_by_route", "members_sent")}


def _ok(passed: bool) -> str:
    return "OK" if passed else "MISSED"


def _s(value: float) -> str:
    return f"{value:,.1f} s"


def _mb(value: float) -> str:
    return f"{value:,.0f} MB"


def _busy(run: dict) -> float:
    """How busy the sandbox was during a run: its CPU seconds over the run's wall time (1.0 = a whole core)."""
    return run["cpu_sandbox_s"] / run["wall_s"]


def _cpu(run: dict) -> str:
    """The sandbox's CPU seconds against the worker's, and how busy the sandbox was."""
    return f"{run['cpu_sandbox_s']:.1f} / {run['cpu_worker_s']:.1f} s ({_busy(run):.0%} busy)"


class Table:
    """A markdown table with footnotes: rows of figure, pipeline, floor, goal, result, sandbox CPU / worker CPU."""

    HEAD = ("figure", "pipeline", "floor", "goal", "result", "sandbox CPU / worker CPU")

    def __init__(self, title: str):
        self.title, self.rows, self.notes = title, [], []
        self.busiest: list[tuple[float, str]] = []  # (sandbox CPU / wall, run) of every measured run

    def note(self, text: str) -> str:
        self.notes.append(text)
        return f"[{len(self.notes)}]"

    def row(self, figure: str, pipeline: str, floor: str = "", goal: str = "", result: str = "", cpu: str = "") -> None:
        self.rows.append((figure, pipeline, floor, goal, result, cpu))

    def na(self, figure: str, reason: str) -> None:
        self.row(figure, f"n/a {self.note(reason)}")

    def runs(self, **runs: dict) -> None:
        """Remember how busy the sandbox was in these runs (for the row that says whether it set the pace)."""
        self.busiest += [(_busy(run), name) for name, run in runs.items()]

    def sandbox_row(self) -> None:
        share, name = max(self.busiest)
        self.row("sandbox not the bottleneck", f"busiest: {share:.0%} of a core ({name})", "",
                 f"< {SANDBOX_BUSY:.0%} of a core in every run", _ok(share < SANDBOX_BUSY))

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.HEAD) + " |", "|" + "---|" * len(self.HEAD)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [""] + [f"[{i}] {text}" for i, text in enumerate(self.notes, 1)]
        return "\n".join(lines).rstrip() + "\n"


def _memory_goal(contacts: int, peak_mb: float) -> tuple[str, str]:
    """The 2 GB goal holds at 1,000,000 contacts; below that the figure is printed, the verdict waits for 1M."""
    if contacts >= 1_000_000:
        return f"< {PEAK_MB_AT_1M:,} MB at 1M", _ok(peak_mb < PEAK_MB_AT_1M)
    return f"< {PEAK_MB_AT_1M:,} MB at 1M", "(judged at 1M)"


def _failed(table: Table, lines: dict[str, dict]) -> None:
    """A row with a footnote for every run that failed or whose asset checks failed, and one for every run whose
    checks of warning severity failed (the feedback runs' lag check: their events are dated weeks back)."""
    for name, line in lines.items():
        if line.get("success") is False or line.get("errors") or line.get("failed_checks"):
            why = f"{name}: success={line.get('success')}, errors {line.get('errors')}, failed checks " \
                  f"{line.get('failed_checks')}"
            table.row(f"{name}: not clean", table.note(why))
        if line.get("warned_checks"):
            table.row(f"{name}: warnings", table.note(f"{name}: checks of warning severity failed: "
                                                      f"{line['warned_checks']}"))


# --- the tables -------------------------------------------------------------------------------------------


def extract_table(line: dict) -> Table:
    table = Table(f"AFAS extraction (`afas_contacts` against a bare pager, {line['rows']:,} rows)")
    ratio = line["ratio_asset_to_bare"]
    table.row("time", _s(line["asset_s"]), f"{_s(line['bare_s'])} (bare pager)", f"<= {EXTRACT_RATIO}x floor",
              f"{ratio}x {_ok(ratio <= EXTRACT_RATIO)}",
              f"{line['asset_cpu_sandbox_s']:.1f} / {line['asset_cpu_worker_s']:.1f} s")
    growth = line["peak_growth_to_df"]
    table.row("peak memory growth", _mb(line["asset_peak_growth_mb"]), f"{line['df_mb']:.0f} MB (the DataFrame)",
              f"< {EXTRACT_MEMORY}x the DataFrame", f"{growth}x {_ok(growth < EXTRACT_MEMORY)}")
    table.runs(asset={"wall_s": line["asset_s"], "cpu_sandbox_s": line["asset_cpu_sandbox_s"]},
               pager={"wall_s": line["bare_s"], "cpu_sandbox_s": line["bare_cpu_sandbox_s"]})
    table.sandbox_row()
    return table


def _runs(line: dict) -> str:
    """The wall times of every run a best-of-N figure was taken from (nothing for one run)."""
    runs = line.get("runs_wall_s") or []
    return f"; best of {', '.join(f'{r:.1f}' for r in runs)} s" if len(runs) > 1 else ""


def _requests(line: dict, destination: str) -> str:
    name, total, writes = REQUESTS[destination]
    return (f"AFAS {line['afas_requests']}, {name} {line[total]} ({line[writes]} writes, "
            f"{line[total] - line[writes]} reads)")


def _client_default(destination: str, field: str) -> int:
    """A default of the destination's client (Spotler or Mailchimp): its batch size, its page size."""
    if destination == "spotler":
        from afas_pipeline.spotler.client import SpotlerClient as client
    else:
        from afas_pipeline.mailchimp.client import MailchimpClient as client
    return client.model_fields[field].default


def _delta_write_floor(destination: str, edits: int) -> int:
    """The fewest writes the edits need: Spotler sends them in batches, Mailchimp and Xelion one per member."""
    return math.ceil(edits / _client_default("spotler", "batch_size")) if destination == "spotler" else edits


def destination_table(destination: str, lines: dict[str, dict], contacts: int, feedback: dict[str, dict] | None,
                      feedback_why: str) -> Table:
    name, total, writes = REQUESTS[destination]
    table = Table(f"{name} ({contacts:,} contacts)")
    full, bare, rerun = lines["full"], lines["bare"], lines["rerun"]
    deltas = sorted((line for key, line in lines.items() if key.startswith("delta_")), key=lambda line: line["edits"])

    ratio = full["wall_s"] / bare["wall_s"]
    table.row("full sync: time", _s(full["wall_s"]) + _runs(full),
              f"{_s(bare['wall_s'])} (read {bare['read_s']:.1f} + join {bare['join_s']:.1f} + write "
              f"{bare['write_s']:.1f}){_runs(bare)}", f"<= {FULL_RATIO}x floor",
              f"{ratio:.2f}x {_ok(ratio <= FULL_RATIO)}", f"{_cpu(full)}; floor {_cpu(bare)}")
    goal, verdict = _memory_goal(contacts, full["peak_rss_mb"])
    table.row("full sync: peak RSS", _mb(full["peak_rss_mb"]), _mb(bare["peak_rss_mb"]), goal, verdict)
    table.row("full sync: CPU seconds", _s(full["cpu_worker_s"]), _s(bare["cpu_worker_s"]), "",
              f"{full['cpu_worker_s'] / bare['cpu_worker_s']:.2f}x")

    table.row("rerun, unchanged: writes", str(rerun[writes]), "0", "0", _ok(rerun[writes] == 0))
    read_join = bare["read_s"] + bare["join_s"]
    table.row("rerun, unchanged: time", _s(rerun["wall_s"]) + _runs(rerun), f"{_s(read_join)} (read + join)", "<= floor",
              f"{rerun['wall_s'] / read_join:.2f}x {_ok(rerun['wall_s'] <= read_join)}", _cpu(rerun))
    goal, verdict = _memory_goal(contacts, rerun["peak_rss_mb"])
    table.row("rerun, unchanged: peak RSS", _mb(rerun["peak_rss_mb"]), _mb(bare["peak_rss_mb"]), goal, verdict)
    again = lines.get("rerun_again")  # the echo read by the rerun before it (Spotler's and Mailchimp's benchmarks)
    if again:
        table.row("rerun again, the echo read: time", _s(again["wall_s"]) + _runs(again), f"{_s(read_join)} (read + join)",
                  "<= floor", f"{again['wall_s'] / read_join:.2f}x {_ok(again['wall_s'] <= read_join)}", _cpu(again))

    for delta in deltas:
        edits = delta["edits"]
        time_goal = (f"< {DELTA_S:.0f} s", _ok(delta["wall_s"] < DELTA_S)) if edits == 100 else ("", "")
        table.row(f"delta of {edits:,} edits: time", _s(delta["wall_s"]), "", *time_goal, _cpu(delta))
        floor = _delta_write_floor(destination, edits)
        table.row(f"delta of {edits:,} edits: requests", _requests(delta, destination), f"{floor:,} writes",
                  "writes <= floor", _ok(delta[writes] <= floor))
        table.row(f"delta of {edits:,} edits: peak RSS / growth",
                  f"{_mb(delta['peak_rss_mb'])} / {_mb(delta['peak_growth_mb'])}",
                  f"full sync: {_mb(full['peak_rss_mb'])} / {_mb(full['peak_growth_mb'])}",
                  "independent of the total")

    if destination not in CHANGE_FEED:
        table.na("change-feed echo", f"{name}'s sync reads no change feed back: nothing echoes its own writes.")
    elif deltas or again:
        route, by_route, written = CHANGE_FEED[destination]
        first, second = rerun[by_route].get(route, 0), (again or deltas[0])[by_route].get(route, 0)
        echo = math.ceil((full[written] or 0) / _client_default(destination, "page_size"))
        # The first read after the writes must read them (a recipient's opt-out may be among them); a run more
        # than the feed's overlap after them must not.
        verdict = _ok(second < echo) if echo >= ECHO_MIN_PAGES else "(echo too short to tell)"
        table.row("change-feed echo: pages read by the 1st / 2nd run after the full sync", f"{first} / {second}",
                  f"echo: {echo} pages ({full[written]:,} writes)", "2nd run < the echo's pages", verdict)

    if feedback:
        run, floor, ratio = feedback["feedback"], feedback["feedback_bare"], feedback["feedback_ratio"]
        events = feedback["feedback_events"]["events"]
        table.row(f"feedback, {events:,} opt-outs and bounces: time", _s(run["wall_s"]), _s(floor["wall_s"]), "",
                  f"{ratio['ratio_pipeline_to_bare']}x", f"{_cpu(run)}; floor {_cpu(floor)}")
        table.row(f"feedback, {events:,} opt-outs and bounces: requests",
                  f"AFAS {run['afas_requests']}, {name} {run[total]}",
                  f"AFAS {floor['afas_requests']}, {name} {floor[total]}",
                  "the same UpdateConnector calls", _ok(ratio["same_calls"]))
        table.runs(feedback=run, feedback_floor=floor)
        _failed(table, {"feedback": run})
    else:
        table.na("feedback: opt-outs and bounces", feedback_why)

    runs = {"full": full, "rerun": rerun, **({"rerun again": again} if again else {}),
            **{f"delta {d['edits']}": d for d in deltas}}
    table.runs(floor=bare, **runs)
    table.sandbox_row()
    _failed(table, runs)
    return table


# --- running ------------------------------------------------------------------------------------------------


def _by_measurement(lines: list[dict]) -> dict[str, dict]:
    return {line["measurement"]: line for line in lines}


def _header(args: argparse.Namespace, load_start: tuple, started: datetime) -> str:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    ram_kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    load = lambda values: " ".join(f"{v:.2f}" for v in values)  # noqa: E731
    return (f"## Issue 13 benchmark: {args.contacts:,} contacts\n\n"
            f"- date: {started:%Y-%m-%d %H:%M} UTC, {(datetime.now(timezone.utc) - started).total_seconds() / 60:.0f} "
            f"minutes\n- machine: {os.cpu_count()} cores, {ram_kb / 2**20:.1f} GB RAM\n"
            f"- load average (1, 5, 15 min) at start {load(load_start)}, at end {load(os.getloadavg())}\n"
            f"- commit {commit}{' with uncommitted changes' if dirty else ''}\n"
            f"- contacts {args.contacts:,}; deltas {', '.join(f'{d:,}' for d in args.deltas)}; feedback events "
            f"{args.events:,}; full syncs, bare scripts and reruns best of {args.repeats} each (the deltas follow "
            "the last full sync)\n")


def _part(name: str, run: Callable[[], list[dict]], raw: list[dict]) -> list[dict] | str:
    """One benchmark's lines (also kept in `raw`), or why it failed: one failing benchmark leaves the others."""
    started = time.perf_counter()
    print(f"{name}: running", file=sys.stderr, flush=True)
    try:
        lines = run()
    except (Exception, SystemExit) as exc:  # a worker's failure is a SystemExit with its stderr
        print(traceback.format_exc(), file=sys.stderr, flush=True)
        return f"{name} failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
    raw += [{"bench": name, **line} for line in lines]
    print(f"{name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return lines


def report(args: argparse.Namespace) -> tuple[list[Table | str], list[dict]]:
    raw: list[dict] = []
    tables: list[Table | str] = []
    if args.extract:
        extract = _part("extract", lambda: [{"measurement": "extract",
                                             **bench_extract.bench_size(args.contacts, 5000, args.repeats)}], raw)
        tables.append(extract if isinstance(extract, str) else extract_table(extract[0]))
    runs = {
        "spotler": lambda: bench_sync.bench(args.contacts, args.deltas, None, args.repeats),
        "mailchimp": lambda: bench_mailchimp.bench(args.contacts, args.deltas, args.repeats),
        "xelion": lambda: bench_xelion.bench(args.contacts, args.deltas, 0, args.repeats),
    }
    no_feedback = {
        "xelion": "Xelion sends no opt-outs or bounces back; its way back is call reports "
                  "(bench_xelion.py --calls).",
    }
    for destination in args.destinations:
        lines = _part(destination, runs[destination], raw)
        if isinstance(lines, str):
            tables.append(lines)
            continue
        feedback, why = None, no_feedback.get(destination, "")
        if destination in bench_feedback.DESTINATIONS:
            got = _part(f"{destination} feedback", lambda: bench_feedback.bench(
                args.contacts, args.events, args.repeats, ("feedback",), destination), raw)
            feedback, why = (None, got) if isinstance(got, str) else (_by_measurement(got), "")
        tables.append(destination_table(destination, _by_measurement(lines), args.contacts, feedback, why))
    return tables, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--deltas", type=int, nargs="+", default=[100, 1000],
                        help=f"edits per delta run (at most {len(bench_sync.DELTA_WINDOWS)})")
    parser.add_argument("--destinations", nargs="+", choices=DESTINATIONS, default=list(DESTINATIONS))
    parser.add_argument("--events", type=int,
                        help="opt-outs and bounces in the feedback window (default: 1 per 100 contacts, "
                             "10,000 at 1,000,000)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="full syncs and bare scripts: best of N each (the extraction's and the feedback's "
                             "bare scripts too)")
    parser.add_argument("--extract", action=argparse.BooleanOptionalAction, default=True,
                        help="the AFAS extraction's table (bench_extract)")
    parser.add_argument("--json", type=Path, help="also write every raw JSON line to this file")
    args = parser.parse_args()
    if len(args.deltas) > len(bench_sync.DELTA_WINDOWS):
        parser.error(f"at most {len(bench_sync.DELTA_WINDOWS)} delta sizes")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.events = args.events or max(args.contacts // 100, 10)
    parts = [*(["extract"] if args.extract else []), *args.destinations,
             *("feedback" for d in args.destinations if d in bench_feedback.DESTINATIONS)]
    estimate = sum(PART_SETUP_S + (SECONDS_PER_100K[part] + SECONDS_PER_REPEAT_100K[part] * (args.repeats - 1))
                   * args.contacts / 100_000 for part in parts)
    print(f"estimated duration: about {estimate / 60:.0f} minutes ({', '.join(parts)}; scaled from `make bench` at "
          f"100,000 contacts on 2 cores)", file=sys.stderr, flush=True)

    started, load_start = datetime.now(timezone.utc), os.getloadavg()
    tables, raw = report(args)
    print(_header(args, load_start, started))
    for table in tables:
        print(table if isinstance(table, str) else table.markdown())
    if args.json:
        args.json.write_text("".join(json.dumps(line) + "\n" for line in raw))


if __name__ == "__main__":
    main()
