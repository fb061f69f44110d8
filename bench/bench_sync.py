"""Sync benchmark: AFAS -> Spotler through Dagster versus a bare script doing the same work.

    python bench/bench_sync.py [--contacts 100000] [--deltas 100 1000] [--profile]

Spotler only: the jobs `afas_full_job` and `afas_delta_job` are built over the afas_* and spotler_* assets
(the code location's jobs also run every other destination; bench_mailchimp.py measures Mailchimp).

It starts the sandbox (`afas-pipeline sandbox --contacts N --port P`) in its own process, so the
server has its own core, and measures in fresh worker processes:
- full: the job `afas_full_job` executed in-process (in-process executor, an ephemeral instance that the runs
  after it share, as runs share $DAGSTER_HOME) with
  fresh sync state and storage against a reset Spotler account: wall time, AFAS and Spotler requests
  (the sandboxes' /stats), Spotler write batches and contacts sent, peak memory growth of the run
  (VmHWM reset before it), CPU seconds of the worker and of the sandbox (measure.py). The worker first runs the delta job on an empty window with throwaway
  state and storage: that loads Dagster's execution machinery and the code, as a code server that has
  run before would have; its time is printed as the warm-up run;
  Spotler's clock is set back FULL_CLOCK_BACK_S for it, so its writes lie before the runs that follow, as a
  full sync's do before the next windows. With --repeats N there are N workers, each with fresh state and
  storage against a reset account, each followed by a bare run (full, bare, full, bare, ...): the best of N on
  each side (a single run of one side against the best of several of the other, or all of one side before the
  other, would measure the machine's noise as much as the code); each worker also runs the two reruns below, the
  best of each counts; the deltas are the last worker's;
- rerun: the same full partition again (C3: goal zero Spotler writes); it is the first run to read the change
  feed after the full sync's writes, so it reads them once (the echo); the runs after it do not;
- rerun again: the same once more, the echo read: what a rerun costs on its own (reading AFAS, the join, the plan);
- deltas: for each size D, D audience members edited through the AFAS admin `/edit` with `at` inside
  one 15-minute window after 2026-11-01, then `afas_delta_job` for that window (goal: a few requests,
  in proportion to D, not to the audience);
- bare: in a fresh process against a reset Spotler account, an httpx loop paging Sync_Contacts,
  Sync_Persons and Sync_Organisations, a minimal join into the documents the pipeline sends (`bare_document`),
  and the same number of `POST contact/list`
  batches of the same size (same contacts count, same concurrency cap), signed with authlib OAuth1 as
  the client does; best of --repeats runs. Ratio pipeline/bare (goal <= 1.3).
One JSON line per measurement, then a human summary with the goals. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from measure import cpu_now, cpu_since, reset_peak, status_mb  # bench/ is on the path when a benchmark runs
from sandbox_process import sandbox_process

ROOT = Path(__file__).resolve().parents[1]
FULL_PARTITION = "2026-11-22-06:00"
#: Empty delta window used to warm the worker up (the generated data ends on 2026-11-01).
WARMUP_PARTITION = "2026-11-16-09:00"
#: The delta windows, one per delta size, in order.
DELTA_WINDOWS = ["2026-11-16-10:00", "2026-11-16-10:15", "2026-11-16-10:30", "2026-11-16-10:45"]
#: The windows above are fixed dates: the partitions are listed as a code location loaded just after them has them
#: (the delta horizon moves with the clock and would leave them behind).
os.environ.setdefault("AFAS_PIPELINE_PARTITIONS_AS_OF", "2026-11-23T00:00:00Z")
#: How far Spotler's clock is set back during the full sync: more than the change feed's 15 minutes of overlap.
FULL_CLOCK_BACK_S = 30 * 60
CONNECTORS = {"Sync_Contacts": "ContactId", "Sync_Persons": "PersonId", "Sync_Organisations": "OrganisationId"}


def bare_afas_read(url: str) -> dict[str, list[dict]]:
    """The three GetConnectors read page by page with httpx alone, as a bare script would: rows per connector."""
    import orjson

    from afas_pipeline.resources import SANDBOX_AFAS_TOKEN

    header = base64.b64encode(f"<token><version>1</version><data>{SANDBOX_AFAS_TOKEN}</data></token>".encode()).decode()
    rows: dict[str, list[dict]] = {}
    with httpx.Client(base_url=f"{url}/afas/ProfitRestServices", headers={"Authorization": f"AfasToken {header}"},
                      timeout=120) as afas:
        for connector, key in CONNECTORS.items():
            got: list[dict] = []
            while True:
                params = {"skip": len(got), "take": 5000, "orderbyfieldids": key}
                page = orjson.loads(afas.get(f"/connectors/{connector}", params=params).raise_for_status().content)["rows"]
                got.extend(page)
                if len(page) < 5000:
                    break
            rows[connector] = got
    return rows


# --- sandbox stats ------------------------------------------------------------------------------


def _stats(url: str) -> dict:
    afas = httpx.get(f"{url}/afas/_admin/stats", timeout=30).json()
    spotler = httpx.get(f"{url}/spotler/_admin/stats", timeout=30).json()
    return {"afas": afas, "spotler": spotler}


def _reset_stats(url: str) -> None:
    httpx.post(f"{url}/afas/_admin/stats/reset", timeout=30).raise_for_status()
    httpx.post(f"{url}/spotler/_admin/stats/reset", timeout=30).raise_for_status()


def _request_counts(stats: dict) -> dict:
    spotler = stats["spotler"]["requests"]
    writes = sum(n for route, n in spotler.items() if route.startswith(("POST", "PUT")))
    return {
        "afas_requests": stats["afas"]["total"],
        "spotler_requests": stats["spotler"]["total"],
        "spotler_write_requests": writes,
        "spotler_read_requests": stats["spotler"]["total"] - writes,
        "afas_by_route": stats["afas"]["requests"],
        "spotler_by_route": spotler,
        "spotler_peak_concurrency": stats["spotler"]["peak_concurrency"],
    }


# --- worker: the pipeline -----------------------------------------------------------------------


#: The assets a Spotler benchmark measures: AFAS's and Spotler's chain (the jobs of the code location also run
#: every other destination, such as Mailchimp).
SPOTLER_ASSETS = ("afas_", "spotler_")


def _defs(url: str, state: str, storage: str, prefixes: tuple[str, ...] = SPOTLER_ASSETS):
    """The code location's assets whose keys start with one of `prefixes` (AFAS and Spotler by default), with
    its jobs `afas_full_job` and `afas_delta_job` built over those alone, the resources pointed at this run's
    sandbox, sync state and storage."""
    import dagster as dg

    from afas_pipeline.definitions import assets
    from afas_pipeline.resources import build_resources
    from afas_pipeline.schedules import build_jobs_and_schedules

    chosen = [a for a in assets if all(k.to_user_string().startswith(prefixes) for k in a.keys)]
    jobs, _ = build_jobs_and_schedules(chosen)
    env = {"AFAS_PIPELINE_SANDBOX_URL": url, "AFAS_PIPELINE_STATE": state, "AFAS_PIPELINE_STORAGE": storage}
    return dg.Definitions(assets=chosen, jobs=jobs, resources=build_resources(env), executor=dg.in_process_executor)


def _step_seconds(result) -> dict[str, float]:
    import dagster as dg

    return {e.step_key: round(e.event_specific_data.duration_ms / 1000, 2) for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_SUCCESS}


def _error_text(error) -> str:
    """A step's error with its causes (Dagster wraps the exception the step raised in one of its own)."""
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause
    return " <- ".join(parts)[:1000]


def _run(defs, job_name: str, partition: str, url: str, profile: str | None = None, instance=None) -> dict:
    """One run of `job_name`; in `instance` (a fresh ephemeral one when None)."""
    import dagster as dg

    from afas_pipeline.lib.runs import execute  # as `afas-pipeline sync` runs a job

    job = defs.resolve_job_def(job_name)
    instance = instance or dg.DagsterInstance.ephemeral()
    _reset_stats(url)
    reset_peak()
    before = status_mb("VmRSS")
    cpu_before = cpu_now()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    # Console logging at INFO, as `afas-pipeline sync` runs a job.
    result = execute(job, partition_key=partition, instance=instance,
                     run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}})
    wall = time.perf_counter() - started
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    cpu = cpu_since(cpu_before)
    peak = status_mb("VmHWM")
    stats = _stats(url)
    metadata = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        metadata[mat.asset_key.to_user_string()] = {
            k: v.value for k, v in mat.metadata.items() if isinstance(v.value, (int, float, str, bool))
        }
    # A failed check of warning severity (the feedback lag) warns; any other makes the run not clean.
    failed_checks, warned_checks = [], []
    for c in result.get_asset_check_evaluations():
        if not c.passed:
            (warned_checks if c.severity == dg.AssetCheckSeverity.WARN else failed_checks).append(
                f"{c.asset_key.to_user_string()}:{c.check_name}")
    errors = [_error_text(e.step_failure_data.error) for e in result.all_events
              if e.is_step_failure and e.step_failure_data]
    return {"job": job_name, "partition": partition, "success": result.success, "wall_s": wall,
            **cpu, "peak_rss_mb": peak, "peak_growth_mb": peak - before, "steps_s": _step_seconds(result), "metadata": metadata,
            "failed_checks": failed_checks, "warned_checks": warned_checks, "errors": errors, **_request_counts(stats)}


def _sync_figures(run: dict, suffix: str) -> dict:
    sync = run["metadata"].get(f"spotler_sync{suffix}", {})
    audience = run["metadata"].get(f"spotler_audience{suffix}", {})
    plan = run["metadata"].get(f"spotler_sync_plan{suffix}", {})
    return {
        "write_batches": sync.get("write_batches"),
        "contacts_sent": sync.get("contacts_sent"),
        "created": sync.get("created"),
        "updated": sync.get("updated"),
        "unchanged": sync.get("unchanged"),
        "skipped_hard_bounce": sync.get("skipped_hard_bounce"),
        "quarantined": sync.get("quarantined"),
        "rejected": sync.get("rejected"),
        "excluded": sync.get("excluded"),
        "members": audience.get("members"),
        "contacts_read": audience.get("contacts_read"),
        "afas_lookups": audience.get("afas_lookups"),
        "optouts_seen": plan.get("optouts_seen"),
    }


def _edit_members(url: str, storage: str, count: int, window: str, label: str,
                  audience_asset: str = "spotler_audience") -> list[str]:
    """Edit `count` audience members, spread over the audience, inside the 15-minute `window`."""
    import pandas as pd

    audience = pd.read_parquet(Path(storage) / audience_asset / f"{FULL_PARTITION}.parquet",
                               columns=["external_id", "excluded_by"])
    members = sorted(audience.loc[audience["excluded_by"].isna(), "external_id"].astype(str), key=int)
    step = max(len(members) // count, 1)
    chosen = members[::step][:count]
    with httpx.Client(base_url=f"{url}/afas/_admin", timeout=30) as admin:
        for i, external_id in enumerate(chosen):
            admin.post("/edit", json={"table": "contacts", "key": int(external_id),
                                      "fields": {"Function": f"Bench {label} {i} {os.getpid():x}"},
                                      "at": edit_at(window, i, len(chosen))}).raise_for_status()
    return chosen


def edit_at(window: str, i: int, count: int) -> str:
    """When the i-th of `count` edits happens: from a minute into the 15-minute `window`, 0.5 s apart, closer
    together when that would not fit in 13 minutes (more than 1,560 edits)."""
    start = dt.datetime.strptime(window, "%Y-%m-%d-%H:%M").replace(tzinfo=dt.timezone.utc)
    at = start + dt.timedelta(minutes=1) + min(dt.timedelta(milliseconds=500), dt.timedelta(minutes=13) / count) * i
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _spotler_clock(url: str, offset_s: int) -> None:
    httpx.put(f"{url}/spotler/_admin/clock", json={"offset_s": offset_s}, timeout=30).raise_for_status()


def worker_pipeline(url: str, deltas: list[int], profile_dir: str | None, full_only: bool = False) -> dict:
    import logging
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)

    logging.getLogger("dagster").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    out: dict = {}

    # Warm-up with throwaway state and storage: an empty delta window.
    warm_defs = _defs(url, str(tmp / "warm" / "state.sqlite"), str(tmp / "warm" / "storage"))
    httpx.post(f"{url}/spotler/_admin/reset", timeout=60).raise_for_status()
    warm = _run(warm_defs, "afas_delta_job", WARMUP_PARTITION, url)
    out["warmup"] = {"wall_s": warm["wall_s"], "success": warm["success"], "errors": warm["errors"]}

    prof = (lambda name: str(Path(profile_dir) / f"{name}.prof")) if profile_dir else (lambda name: None)
    storage = str(tmp / "run" / "storage")
    defs = _defs(url, str(tmp / "run" / "state.sqlite"), storage)
    httpx.post(f"{url}/spotler/_admin/reset", timeout=60).raise_for_status()
    # The full sync's writes stamped FULL_CLOCK_BACK ago in Spotler's clock, as a full sync before the windows that
    # follow it would be: the first read after them reads them once (the echo), later ones do not.
    _spotler_clock(url, -FULL_CLOCK_BACK_S)
    # One Dagster instance for the runs that follow each other, as they would share $DAGSTER_HOME: a delta reads the
    # full sync's row counts from it (whether AFAS look-ups by key beat a full read).
    instance = dg.DagsterInstance.ephemeral()
    out["full"] = _run(defs, "afas_full_job", FULL_PARTITION, url, prof("full"), instance)
    _spotler_clock(url, 0)
    if full_only:
        return out
    out["rerun"] = _run(defs, "afas_full_job", FULL_PARTITION, url, prof("rerun"), instance)
    out["rerun_again"] = _run(defs, "afas_full_job", FULL_PARTITION, url, prof("rerun_again"), instance)
    out["deltas"] = []
    for size, window in zip(deltas, DELTA_WINDOWS):
        started = time.perf_counter()
        _edit_members(url, storage, size, window, f"d{size}")
        edit_s = time.perf_counter() - started
        run = _run(defs, "afas_delta_job", window, url, prof(f"delta{size}"), instance)
        run["edits"], run["edit_s"] = size, edit_s
        out["deltas"].append(run)
    return out


# --- worker: the bare script ----------------------------------------------------------------------


def bare_document(c: dict, p: dict, o: dict, email: str) -> dict:
    """The document the pipeline sends for contact `c` (its address `email`) of person `p` at organisation `o`
    (mappings/spotler.yaml): the same properties, and a contact AFAS already flags as hard-bounced created with its
    EMAIL channel off (R11), so that the server does the same work for both. At 3,000 contacts the 2,395 documents
    the pipeline sent were these, byte for byte; before, the bare script left out `country` and `debtor` (8% of the
    bytes) and the channel."""
    blocked = bool(c.get("Blocked"))
    document = {"externalId": str(c["ContactId"]), "properties": {
        "email": email, "firstName": p.get("FirstName"), "infix": p.get("Prefix"),
        "lastName": p.get("LastName"), "initials": p.get("Initials"), "gender": {"M": "M", "V": "F"}.get(p.get("Gender")),
        "organisation": o.get("Name"), "city": o.get("City"), "country": o.get("Country"),
        "function": c.get("Function"), "afasPersonId": c.get("PersonId"),
        "afasOrganisationId": c.get("OrganisationId"), "debtor": {True: "yes", False: "no"}.get(c.get("IsDebtor")),
        "permissions": [{"bit": 1, "enabled": bool(c.get("PermissionNewsletter")) and not blocked},
                        {"bit": 2, "enabled": bool(c.get("PermissionEvents")) and not blocked}]}}
    if c.get("HardBounce"):
        document["channels"] = [{"name": "EMAIL", "value": False}]
    return document


def worker_bare(url: str, contacts: int, batch_size: int, concurrency: int) -> dict:
    """Page the three GetConnectors, join minimally, POST `contacts` contacts in batches of `batch_size`."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import authlib.deprecate
    import orjson

    from afas_sandbox.server import SANDBOX_SPOTLER_KEY, SANDBOX_SPOTLER_SECRET
    from afas_pipeline.spotler.client import _OneLeggedOAuth1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import OAuth1Auth  # noqa: F401  (what _OneLeggedOAuth1 extends)

    httpx.post(f"{url}/spotler/_admin/reset", timeout=60).raise_for_status()
    _reset_stats(url)
    reset_peak()
    before = status_mb("VmRSS")
    cpu_before = cpu_now()
    started = time.perf_counter()

    rows = bare_afas_read(url)
    read_s = time.perf_counter() - started

    persons = {p["PersonId"]: p for p in rows["Sync_Persons"]}
    organisations = {o["OrganisationId"]: o for o in rows["Sync_Organisations"]}
    documents = []
    for c in rows["Sync_Contacts"]:
        email = (c.get("MailWork") or "").strip().lower()
        if c.get("ContactKind") != "PRS" or not email or "@" not in email:
            continue
        p, o = persons.get(c["PersonId"], {}), organisations.get(c["OrganisationId"], {})
        documents.append(bare_document(c, p, o, email))
    members = len(documents)
    documents = documents[:contacts]
    join_s = time.perf_counter() - started - read_s

    batches = [documents[i : i + batch_size] for i in range(0, len(documents), batch_size)]
    base = f"{url}/spotler/integrationservice-1.1.0/"
    with httpx.Client(base_url=base, auth=_OneLeggedOAuth1(SANDBOX_SPOTLER_KEY, SANDBOX_SPOTLER_SECRET), timeout=120,
                      headers={"Accept": "application/json"}, limits=httpx.Limits(max_connections=concurrency * 2)) as spotler:

        def post(batch: list[dict]) -> int:
            body = orjson.dumps({"update": True, "purge": False, "contacts": batch})
            answer = spotler.post("contact/list", content=body, headers={"Content-Type": "application/json"})
            return sum(r.get("code") == "OK" for r in orjson.loads(answer.raise_for_status().content))

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            ok = sum(pool.map(post, batches))
    wall = time.perf_counter() - started
    cpu = cpu_since(cpu_before)
    peak = status_mb("VmHWM")
    return {"wall_s": wall, **cpu, "peak_rss_mb": peak, "peak_growth_mb": peak - before, "read_s": read_s, "join_s": join_s, "write_s": wall - read_s - join_s,
            "members": members, "contacts_sent": len(documents), "ok": ok, "write_batches": len(batches),
            **_request_counts(_stats(url))}


# --- orchestration --------------------------------------------------------------------------------


def _run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"worker {args[0]} failed:\n{out.stderr[-5000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(runs: list[dict]) -> dict:
    """The fastest of `runs`, with every run's wall time (`runs_wall_s`)."""
    return {**min(runs, key=lambda r: r["wall_s"]), "runs_wall_s": [round(r["wall_s"], 2) for r in runs]}


def alternate(repeats: int, pipeline: Callable[[bool], dict], bare: Callable[[dict], dict]) -> tuple[list[dict], dict, dict]:
    """`repeats` pipeline workers, each followed by a bare run (full, bare, full, bare, ...), so that slower and faster
    moments of the shared machine fall on both sides: `pipeline(last)` runs a worker (its full sync and the reruns
    after it; the last one also the deltas), `bare(full)` the bare script after that worker's full sync. Returns
    every worker's output and the best full sync and bare run (`best_of`)."""
    outputs, bares = [], []
    for i in range(repeats):
        outputs.append(pipeline(i == repeats - 1))
        bares.append(bare(outputs[-1]["full"]))
    return outputs, best_of([o["full"] for o in outputs]), best_of(bares)


def best_reruns(outputs: list[dict]) -> tuple[dict, dict]:
    """The best rerun and rerun again of the workers that ran them (`best_of`): each worker's rerun reads the echo
    of its own full sync, the rerun again follows it."""
    ran = [o for o in outputs if "rerun" in o]
    return best_of([o["rerun"] for o in ran]), best_of([o["rerun_again"] for o in ran])


def _slim(run: dict) -> dict:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in run.items() if k != "metadata"}


def bench(contacts: int, deltas: list[int], profile_dir: str | None, repeats: int, full_only: bool = False) -> list[dict]:
    lines = []
    with sandbox_process(contacts) as sandbox:
        url, ready_s = sandbox.url, sandbox.ready_s
        # Warm the server (sorted indexes, JSON paths) so neither side pays for it: one bare run, not reported.
        _run_worker("bare", "--url", url, "--n", str(contacts), "--batch-size", "500", "--concurrency", "4")
        from afas_pipeline.spotler.client import SpotlerClient

        client_defaults = SpotlerClient.model_fields
        batch_size, concurrency = client_defaults["batch_size"].default, client_defaults["max_concurrency"].default
        outputs, full, bare = alternate(
            repeats,
            lambda last: _run_worker("pipeline", "--url", url, "--deltas", *map(str, deltas),
                                     *(["--profile-dir", profile_dir] if profile_dir and last else []),
                                     *(["--full-only"] if full_only else [] if last else ["--no-deltas"])),
            lambda full: _run_worker("bare", "--url", url, "--n", str(_sync_figures(full, "")["contacts_sent"] or 0),
                                     "--batch-size", str(batch_size), "--concurrency", str(concurrency)))
        server_rss = sandbox.rss_mb()

    common = {"contacts": contacts, "sandbox_ready_s": round(ready_s, 1), "sandbox_rss_mb": round(server_rss)}
    lines.append({"measurement": "full", **common, "warmup_run_s": round(outputs[-1]["warmup"]["wall_s"], 2),
                  **_slim(full), **_sync_figures(full, "")})
    lines.append({"measurement": "bare", **common, **_slim(bare)})
    lines.append({"measurement": "ratio", "pipeline_s": round(full["wall_s"], 2), "bare_s": round(bare["wall_s"], 2),
                  "ratio_pipeline_to_bare": round(full["wall_s"] / bare["wall_s"], 2),
                  "same_batches": _sync_figures(full, "")["write_batches"] == bare["write_batches"],
                  "pipeline_cpu_s": full["cpu_worker_s"], "bare_cpu_s": bare["cpu_worker_s"],
                  "cpu_ratio": round(full["cpu_worker_s"] / bare["cpu_worker_s"], 2)})
    if full_only:
        return lines
    rerun, again = best_reruns(outputs)
    lines.append({"measurement": "rerun", **_slim(rerun), **_sync_figures(rerun, "")})
    lines.append({"measurement": "rerun_again", **_slim(again), **_sync_figures(again, "")})
    for run in outputs[-1]["deltas"]:
        lines.append({"measurement": f"delta_{run['edits']}", **_slim(run), **_sync_figures(run, "_delta")})
    return lines


def summary(lines: list[dict]) -> list[str]:
    by = {line["measurement"]: line for line in lines}
    full, bare, ratio, rerun = by["full"], by["bare"], by["ratio"], by.get("rerun")
    ok = lambda cond: "OK" if cond else "MISSED"  # noqa: E731
    out = [
        f"full sync of {full['contacts']} contacts ({full['members']} members): {full['wall_s']}s "
        f"(runs {full['runs_wall_s']}; after a warm-up run on an empty delta window, {full['warmup_run_s']}s), success={full['success']}; "
        f"AFAS {full['afas_requests']} requests, Spotler {full['spotler_requests']} requests "
        f"({full['spotler_write_requests']} writes = {full['write_batches']} batches of {full['contacts_sent']} contacts, "
        f"{full['spotler_read_requests']} reads); peak memory growth {full['peak_growth_mb']} MB; CPU of the sandbox "
        f"{full['cpu_sandbox_s']}s",
        f"  steps: {', '.join(f'{k} {v}s' for k, v in sorted(full['steps_s'].items(), key=lambda kv: -kv[1]))}",
        f"bare script: {bare['wall_s']}s (runs {bare['runs_wall_s']}; read {bare['read_s']}s, join {bare['join_s']}s, write {bare['write_s']}s); "
        f"AFAS {bare['afas_requests']} requests, Spotler {bare['spotler_requests']} requests "
        f"({bare['write_batches']} batches of {bare['contacts_sent']} contacts); peak memory growth {bare['peak_growth_mb']} MB",
        f"ratio pipeline/bare {ratio['ratio_pipeline_to_bare']} (goal <= 1.3: {ok(ratio['ratio_pipeline_to_bare'] <= 1.3)}); "
        f"same number of batches: {ratio['same_batches']}; CPU pipeline {ratio['pipeline_cpu_s']}s, bare "
        f"{ratio['bare_cpu_s']}s (ratio {ratio['cpu_ratio']}); peak RSS pipeline {full['peak_rss_mb']} MB, bare "
        f"{bare['peak_rss_mb']} MB",
    ]
    if rerun is None:
        return out
    out += [
        f"rerun of {FULL_PARTITION} (C3): {rerun['wall_s']}s; AFAS {rerun['afas_requests']} requests, Spotler "
        f"{rerun['spotler_requests']} requests ({rerun['spotler_write_requests']} writes, {rerun['spotler_read_requests']} "
        f"reads of the change feed); unchanged {rerun['unchanged']} (goal zero Spotler writes: "
        f"{ok(rerun['spotler_write_requests'] == 0)})",
    ]
    for name, line in by.items():
        if not name.startswith("delta_"):
            continue
        out.append(
            f"delta of {line['edits']} edits in {line['partition']}: {line['wall_s']}s, success={line['success']}; AFAS "
            f"{line['afas_requests']} requests ({line['afas_lookups']} lookups), Spotler {line['write_batches']} write "
            f"batches of {line['contacts_sent']} contacts, {line['spotler_read_requests']} Spotler reads; "
            f"peak memory growth {line['peak_growth_mb']} MB; steps: "
            + ", ".join(f"{k} {v}s" for k, v in sorted(line["steps_s"].items(), key=lambda kv: -kv[1])[:4])
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--deltas", type=int, nargs="+", default=[100, 1000], help="edits per delta run (at most 4)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="full sync and bare script: best of N each (the machine is shared)")
    parser.add_argument("--profile", action="store_true", help="cProfile each pipeline run into a temporary directory")
    parser.add_argument("--full-only", action="store_true", help="only the full sync and the bare script (no rerun, no deltas)")
    parser.add_argument("--worker", choices=("pipeline", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile-dir", help=argparse.SUPPRESS)
    parser.add_argument("--no-deltas", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "pipeline":
        deltas = [] if args.no_deltas else args.deltas
        print(json.dumps(worker_pipeline(args.url, deltas, args.profile_dir, args.full_only)))
        return
    if args.worker == "bare":
        print(json.dumps(worker_bare(args.url, args.n, args.batch_size, args.concurrency)))
        return
    if len(args.deltas) > len(DELTA_WINDOWS):
        parser.error(f"at most {len(DELTA_WINDOWS)} delta sizes")
    profile_dir = tempfile.mkdtemp(prefix="bench-sync-profile-") if args.profile else None
    print(f"machine: {os.cpu_count()} cores; {args.contacts} contacts; deltas {args.deltas}", flush=True)
    lines = bench(args.contacts, args.deltas, profile_dir, args.repeats, args.full_only)
    for line in lines:
        print(json.dumps(line))
    for text in summary(lines):
        print(text)
    if profile_dir:
        print(f"cProfile of each pipeline run (main thread; inflates pandas-heavy code): {profile_dir}/"
              "{full,rerun,rerun_again,delta<N>}.prof")


if __name__ == "__main__":
    main()
