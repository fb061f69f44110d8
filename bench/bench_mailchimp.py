"""Mailchimp benchmark: AFAS -> Mailchimp through Dagster versus a bare script making the same write calls.

    python bench/bench_mailchimp.py [--contacts 100000] [--deltas 100 1000] [--repeats 1]

Mailchimp only: the jobs `afas_full_job` and `afas_delta_job` are built over the afas_* and mailchimp_* assets
(the code location's jobs also run Spotler; bench_sync.py measures Spotler).

It starts the sandbox (`afas-pipeline sandbox --contacts N`) in its own process, so the server has its own
core, and measures in fresh worker processes:
- full: `afas_full_job` executed in-process (in-process executor, ephemeral instance) with fresh sync state
  and storage against a reset Mailchimp audience: wall time, AFAS and Mailchimp requests (the sandboxes'
  /stats), members sent, peak memory growth of the run, CPU seconds of the worker and of the sandbox. The worker first runs the delta job on an empty
  window with throwaway state and storage (Dagster's machinery and the code loaded, as in a code server that
  has run before; printed as the warm-up run). The Mailchimp account's clock is set back to FULL_CLOCK
  (admin `PUT /clock`) for the full sync, so that its writes lie before the delta window and its 24-hour
  bounce look-back, as a full sync days before a delta would in production; it is back at real time for
  the rerun and the deltas;
- rerun: the same full partition again on the same state, the clock back at real time (goal zero Mailchimp
  writes; it is the first run to read the change feed after the full sync, so it reads its writes once: the echo;
  the runs after it do not); then the rerun again: what a rerun costs once the echo is read;
- deltas: for each size D in --deltas, D audience members edited through the AFAS admin `/edit` inside one
  15-minute window (bench_sync's DELTA_WINDOWS), then `afas_delta_job` for that window (the Mailchimp chain's sync, opt-out and bounce feedback
  and write-back): the Mailchimp requests, per route, from the Mailchimp sandbox's admin /stats (goal: in
  proportion to the edits, not to the audience);
- bare: in a fresh process against a reset Mailchimp audience, an httpx loop paging Sync_Contacts,
  Sync_Persons and Sync_Organisations, a minimal join (persons at organisations with an address, one member
  per address), and as many members as the pipeline sent created by batch subscribe (`POST lists/{id}`, 500 a
  call, as the client creates members new to the sync), with the merge fields the mapping sends (AFASID, FNAME,
  LNAME, COMPANY, JOBTITLE; PHONE in E.164 via `phonenumbers`, ADDRESS when complete; the status from the
  newsletter opt-in), so the server does the same work for both; HTTP Basic auth, at most the client's
  `max_concurrency` (8) calls in flight. With --repeats N there are N pipeline workers (each with fresh state and
  storage against a reset audience, each with its rerun and rerun again; the deltas are the last one's), each
  followed by a bare run: best of N on each side, the reruns' best of N too. Ratio pipeline/bare (goal <= 1.3).
One JSON line per measurement, then a human summary with the goals. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from bench_sync import (  # bench/ is on the path when a benchmark runs
    CONNECTORS,
    DELTA_WINDOWS,
    FULL_PARTITION,
    WARMUP_PARTITION,
    _defs,
    _edit_members,
    _run,
    _slim,
    alternate,
    best_reruns,
    bare_afas_read,
)
from measure import cpu_now, cpu_since, reset_peak, status_mb
from sandbox_process import sandbox_process

ROOT = Path(__file__).resolve().parents[1]
MAILCHIMP_ASSETS = ("afas_", "mailchimp_")
#: The routes of the sync's writes: a member's upsert, and batch subscribe for members new to the sync.
MEMBER_PUT = "PUT lists/{list_id}/members/{subscriber_hash}"
BATCH_POST = "POST lists/{list_id}"
#: The Mailchimp account's clock during the full sync: before the delta window and its look-backs.
FULL_CLOCK = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _mc(url: str) -> str:
    return f"{url}/mailchimp/_admin"


def _mc_reset(url: str) -> None:
    httpx.post(f"{_mc(url)}/reset", timeout=120).raise_for_status()


def _mc_stats(url: str) -> dict:
    stats = httpx.get(f"{_mc(url)}/stats", timeout=30).raise_for_status().json()
    writes = sum(n for route, n in stats["requests"].items() if route.startswith(("POST", "PUT", "PATCH", "DELETE")))
    return {"mailchimp_requests": stats["total"], "mailchimp_write_requests": writes,
            "mailchimp_read_requests": stats["total"] - writes, "mailchimp_by_route": stats["requests"],
            "mailchimp_peak_concurrency": stats["peak_concurrency"],
            "mailchimp_rejected_concurrency": stats["rejected_concurrency"]}


def _mc_clock(url: str, at: datetime | None) -> None:
    offset = 0 if at is None else round(at.timestamp() - time.time())
    httpx.put(f"{_mc(url)}/clock", json={"offset_s": offset}, timeout=30).raise_for_status()


def _run_mc(defs, job: str, partition: str, url: str) -> dict:
    """bench_sync's `_run` (AFAS and Spotler stats, metadata, steps) plus the Mailchimp sandbox's stats."""
    httpx.post(f"{_mc(url)}/stats/reset", timeout=30).raise_for_status()
    run = _run(defs, job, partition, url)
    run.update(_mc_stats(url))
    return run


def _figures(run: dict, suffix: str) -> dict:
    sync = run["metadata"].get(f"mailchimp_sync{suffix}", {})
    audience = run["metadata"].get(f"mailchimp_audience{suffix}", {})
    return {k: sync.get(k) for k in ("members_sent", "write_requests", "created", "updated", "unchanged",
                                     "rejected", "excluded", "phones_left_out_unparseable")} | {
        "members": audience.get("members"), "contacts_read": audience.get("contacts_read"),
        "afas_lookups": audience.get("afas_lookups")}


# --- worker: the pipeline -----------------------------------------------------------------------


def worker_pipeline(url: str, deltas: list[int]) -> dict:
    import logging
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mailchimp-"))
    out: dict = {}

    _mc_reset(url)
    warm_defs = _defs(url, str(tmp / "warm" / "state.sqlite"), str(tmp / "warm" / "storage"), MAILCHIMP_ASSETS)
    warm = _run_mc(warm_defs, "afas_delta_job", WARMUP_PARTITION, url)
    out["warmup"] = {"wall_s": warm["wall_s"], "success": warm["success"], "errors": warm["errors"]}

    storage = str(tmp / "run" / "storage")
    defs = _defs(url, str(tmp / "run" / "state.sqlite"), storage, MAILCHIMP_ASSETS)
    _mc_reset(url)
    _mc_clock(url, FULL_CLOCK)
    out["full"] = _run_mc(defs, "afas_full_job", FULL_PARTITION, url)
    # Back at real time, weeks after the full sync's writes: the rerun reads them once (the echo), as the first
    # read after them must, and its watermark (Mailchimp's clock at that read) leaves them behind for the deltas.
    _mc_clock(url, None)
    out["rerun"] = _run_mc(defs, "afas_full_job", FULL_PARTITION, url)
    out["rerun_again"] = _run_mc(defs, "afas_full_job", FULL_PARTITION, url)
    out["deltas"] = []
    for size, window in zip(deltas, DELTA_WINDOWS):
        started = time.perf_counter()
        _edit_members(url, storage, size, window, f"mc{size}", audience_asset="mailchimp_audience")
        edit_s = time.perf_counter() - started
        run = _run_mc(defs, "afas_delta_job", window, url)
        run["edits"], run["edit_s"] = size, edit_s
        out["deltas"].append(run)
    return out


# --- worker: the bare script ----------------------------------------------------------------------


def worker_bare(url: str, members: int, concurrency: int) -> dict:
    """Page the three GetConnectors, join minimally, create `members` members by batch subscribe, 500 a call,
    `concurrency` calls in flight."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    import orjson
    import phonenumbers

    from afas_pipeline.resources import SANDBOX_MAILCHIMP_KEY, SANDBOX_MAILCHIMP_LIST

    def phone(text) -> str:
        try:
            number = phonenumbers.parse(str(text or ""), "NL")
        except phonenumbers.NumberParseException:
            return ""
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) \
            if phonenumbers.is_valid_number(number) else ""

    def address(o: dict):
        street, number, city, zip_code = o.get("Street"), o.get("HouseNumber"), o.get("City"), o.get("PostalCode")
        country = o.get("Country") or "NL"
        if not (street and number is not None and city and zip_code and len(country) == 2):
            return ""
        addition = f" {o['HouseNumberAddition']}" if o.get("HouseNumberAddition") else ""
        return {"addr1": f"{street} {number}{addition}", "addr2": "", "city": city, "state": city, "zip": zip_code,
                "country": country}

    _mc_reset(url)
    httpx.post(f"{_mc(url)}/stats/reset", timeout=30).raise_for_status()
    reset_peak()
    before = status_mb("VmRSS")
    cpu = cpu_now()
    started = time.perf_counter()

    rows = bare_afas_read(url)
    read_s = time.perf_counter() - started

    persons = {p["PersonId"]: p for p in rows["Sync_Persons"]}
    organisations = {o["OrganisationId"]: o for o in rows["Sync_Organisations"]}
    puts: dict[str, dict] = {}  # subscriber hash -> body: one member per address
    for c in rows["Sync_Contacts"]:
        email = (c.get("MailWork") or "").strip().lower()
        if c.get("ContactKind") != "PRS" or not email or "@" not in email:
            continue
        member = hashlib.md5(email.encode()).hexdigest()
        if member in puts:
            continue
        p, o = persons.get(c["PersonId"], {}), organisations.get(c["OrganisationId"], {})
        subscribed = bool(c.get("PermissionNewsletter")) and not c.get("Blocked")
        status = "cleaned" if c.get("HardBounce") else "subscribed" if subscribed else "transactional"  # R11, as sent
        puts[member] = {"email_address": email, "status_if_new": status,
                        "merge_fields": {"AFASID": str(c["ContactId"]), "FNAME": p.get("FirstName") or "",
                                         "LNAME": p.get("LastName") or "", "COMPANY": o.get("Name") or "",
                                         "PHONE": phone(p.get("PhoneMobile")), "ADDRESS": address(o),
                                         "JOBTITLE": c.get("Function") or ""}}
    candidates = len(puts)
    writes = list(puts.items())[:members]
    join_s = time.perf_counter() - started - read_s

    auth = httpx.BasicAuth("bench", SANDBOX_MAILCHIMP_KEY)
    from afas_pipeline.mailchimp.client import MAX_GROUP  # members per batch subscribe, as the client sends them

    batches = [writes[n:n + MAX_GROUP] for n in range(0, len(writes), MAX_GROUP)]
    with httpx.Client(base_url=f"{url}/mailchimp/3.0/lists/{SANDBOX_MAILCHIMP_LIST}", auth=auth, timeout=120,
                      headers={"Accept": "application/json"}, limits=httpx.Limits(max_connections=concurrency)) as mc:

        def post(batch: list[tuple[str, dict]]) -> int:
            members = [{"email_address": b["email_address"], "status": b["status_if_new"],
                        "merge_fields": b["merge_fields"]} for _, b in batch]
            answer = mc.post("", content=orjson.dumps({"members": members, "update_existing": False}),
                             headers={"Content-Type": "application/json"})
            return answer.json()["total_created"] if answer.status_code == 200 else 0

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            ok = sum(pool.map(post, batches))
    wall = time.perf_counter() - started
    spent = cpu_since(cpu)
    peak = status_mb("VmHWM")
    afas_total = httpx.get(f"{url}/afas/_admin/stats", timeout=30).json()["total"]
    return {"wall_s": wall, "read_s": read_s, "join_s": join_s, "write_s": wall - read_s - join_s,
            "candidates": candidates, "members_sent": len(writes), "ok": ok, "write_calls": len(batches), "peak_rss_mb": peak,
            "peak_growth_mb": peak - before, **spent, "afas_requests": afas_total, **_mc_stats(url)}


# --- orchestration --------------------------------------------------------------------------------


def _run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"worker {args[0]} failed:\n{out.stderr[-5000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _warm_afas(url: str) -> None:
    """One sorted read per connector: the server's indexes built before either side is measured."""
    from afas_pipeline.resources import SANDBOX_AFAS_TOKEN

    header = base64.b64encode(f"<token><version>1</version><data>{SANDBOX_AFAS_TOKEN}</data></token>".encode()).decode()
    with httpx.Client(base_url=f"{url}/afas/ProfitRestServices", headers={"Authorization": f"AfasToken {header}"},
                      timeout=300) as afas:
        for connector, key in CONNECTORS.items():
            afas.get(f"/connectors/{connector}", params={"skip": 0, "take": 1, "orderbyfieldids": key}).raise_for_status()


def bench(contacts: int, deltas: list[int], repeats: int) -> list[dict]:
    from afas_pipeline.mailchimp.client import MailchimpClient

    concurrency = MailchimpClient.model_fields["max_concurrency"].default
    with sandbox_process(contacts) as sandbox:
        url = sandbox.url
        _warm_afas(url)
        outputs, full, bare = alternate(
            repeats,
            lambda last: _run_worker("pipeline", "--url", url, "--deltas", *map(str, deltas),
                                     *([] if last else ["--no-deltas"])),
            lambda full: _run_worker("bare", "--url", url, "--n", str(_figures(full, "")["members_sent"] or 0),
                                     "--concurrency", str(concurrency)))
        server_rss = sandbox.rss_mb()

    common = {"contacts": contacts, "sandbox_ready_s": round(sandbox.ready_s, 1), "sandbox_rss_mb": round(server_rss)}
    rerun, again = best_reruns(outputs)
    return [
        {"measurement": "full", **common, "warmup_run_s": round(outputs[-1]["warmup"]["wall_s"], 2), **_slim(full),
         **_figures(full, "")},
        {"measurement": "bare", **common, "concurrency": concurrency, **_slim(bare)},
        {"measurement": "ratio", "pipeline_s": round(full["wall_s"], 2), "bare_s": round(bare["wall_s"], 2),
         "ratio_pipeline_to_bare": round(full["wall_s"] / bare["wall_s"], 2),
         "same_writes": all(full["mailchimp_by_route"].get(r) == bare["mailchimp_by_route"].get(r)
                            for r in (MEMBER_PUT, BATCH_POST)),
         "pipeline_cpu_s": full["cpu_worker_s"], "bare_cpu_s": bare["cpu_worker_s"],
         "cpu_ratio": round(full["cpu_worker_s"] / bare["cpu_worker_s"], 2)},
        {"measurement": "rerun", **_slim(rerun), **_figures(rerun, "")},
        {"measurement": "rerun_again", **_slim(again), **_figures(again, "")},
    ] + [{"measurement": f"delta_{run['edits']}", **_slim(run), **_figures(run, "_delta")}
         for run in outputs[-1]["deltas"]]


def summary(lines: list[dict]) -> list[str]:
    by = {line["measurement"]: line for line in lines}
    full, bare, ratio, rerun = by["full"], by["bare"], by["ratio"], by["rerun"]
    deltas = [line for name, line in by.items() if name.startswith("delta_")]
    ok = lambda cond: "OK" if cond else "MISSED"  # noqa: E731
    routes = lambda line: ", ".join(f"{k} {v}" for k, v in sorted(line["mailchimp_by_route"].items()))  # noqa: E731
    steps = lambda line: ", ".join(f"{k} {v}s" for k, v in sorted(line["steps_s"].items(), key=lambda kv: -kv[1])[:5])  # noqa: E731
    out = [
        f"full sync of {full['contacts']} contacts ({full['members']} members) to Mailchimp: {full['wall_s']}s "
        f"(runs {full['runs_wall_s']}; after a warm-up run on an empty delta window, {full['warmup_run_s']}s), success={full['success']}; "
        f"{full['members_sent']} members sent (created {full['created']}, rejected {full['rejected']}); AFAS "
        f"{full['afas_requests']} requests; Mailchimp {full['mailchimp_requests']} requests ({routes(full)}), peak "
        f"concurrency {full['mailchimp_peak_concurrency']}; peak memory growth {full['peak_growth_mb']} MB",
        f"  steps: {', '.join(f'{k} {v}s' for k, v in sorted(full['steps_s'].items(), key=lambda kv: -kv[1]))}",
        f"bare script: {bare['wall_s']}s (runs {bare['runs_wall_s']}; read {bare['read_s']}s, join {bare['join_s']}s, "
        f"write {bare['write_s']}s); {bare['members_sent']} members in {bare['write_calls']} batch subscribes, "
        f"{bare['ok']} created, {bare['concurrency']} in flight at most; Mailchimp {bare['mailchimp_requests']} requests, peak concurrency "
        f"{bare['mailchimp_peak_concurrency']}; peak memory growth {bare['peak_growth_mb']} MB",
        f"ratio pipeline/bare {ratio['ratio_pipeline_to_bare']} (goal <= 1.3: "
        f"{ok(ratio['ratio_pipeline_to_bare'] <= 1.3)}); same write calls: {ratio['same_writes']}; CPU pipeline "
        f"{ratio['pipeline_cpu_s']}s, bare {ratio['bare_cpu_s']}s",
        f"rerun of {FULL_PARTITION}: {rerun['wall_s']}s; Mailchimp {rerun['mailchimp_write_requests']} writes, "
        f"{rerun['mailchimp_read_requests']} reads (goal zero writes: {ok(rerun['mailchimp_write_requests'] == 0)})",
    ]
    for delta in deltas:
        out.append(
            f"delta of {delta['edits']} AFAS edits in {delta['partition']}: {delta['wall_s']}s, success="
            f"{delta['success']}; AFAS {delta['afas_requests']} requests ({delta['afas_lookups']} lookups); "
            f"{delta['members_sent']} members sent; Mailchimp {delta['mailchimp_requests']} requests ({routes(delta)}) "
            f"(goal: in proportion to {delta['edits']}: {ok(delta['mailchimp_requests'] <= 2 * delta['edits'] + 20)}); "
            f"failed checks {delta['failed_checks'] or 'none'}; steps: {steps(delta)}")
    errors = {name: line["errors"] for name, line in by.items() if line.get("errors")}
    return out + ([f"errors: {json.dumps(errors)}"] if errors else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--deltas", type=int, nargs="+", default=[100],
                        help=f"AFAS edits per delta run (at most {len(DELTA_WINDOWS)})")
    parser.add_argument("--repeats", type=int, default=1,
                        help="full sync and bare script: best of N each (the machine is shared)")
    parser.add_argument("--worker", choices=("pipeline", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-deltas", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "pipeline":
        print(json.dumps(worker_pipeline(args.url, [] if args.no_deltas else args.deltas)))
        return
    if args.worker == "bare":
        print(json.dumps(worker_bare(args.url, args.n, args.concurrency)))
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if len(args.deltas) > len(DELTA_WINDOWS):
        parser.error(f"at most {len(DELTA_WINDOWS)} delta sizes")
    print(f"machine: {os.cpu_count()} cores; load average {Path('/proc/loadavg').read_text().split()[:3]}; "
          f"{args.contacts} contacts; deltas {args.deltas}", flush=True)
    lines = bench(args.contacts, args.deltas, args.repeats)
    for line in lines:
        print(json.dumps(line))
    for text in summary(lines):
        print(text)


if __name__ == "__main__":
    main()
