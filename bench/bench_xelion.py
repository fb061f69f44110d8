"""Xelion benchmark: AFAS -> Xelion's address book through Dagster versus a bare script making the same POSTs; then
a delta, and Xelion's calls -> AFAS dossier items with their recordings.

    python bench/bench_xelion.py [--contacts 107000] [--deltas 100 1000] [--calls 1000] [--repeats 1]
    python bench/bench_xelion.py --contacts 3000 --calls 50        # a quick smoke run (about 30 s)

Xelion only: the jobs are built over the afas_* assets and xelion_address_book(_delta) + xelion_phone_index (the
code location's jobs also run Spotler and Mailchimp; bench_sync.py and bench_mailchimp.py measure those). The
default of 107,000 contacts gives about 100,000 AFAS persons (and about 21,000 organisations).

It starts the sandbox (`afas-pipeline sandbox --contacts N`) in its own process, so the server has its own core,
and measures in fresh worker processes:
- full: `afas_full_job` (afas_snapshots: the three AFAS reads in one step, xelion_address_book, xelion_phone_index)
  executed in-process with fresh sync state and storage against a reset Xelion tenant: wall time, AFAS requests
  and Xelion requests per route (the sandboxes' admin /stats), addressables created (the asset's metadata and
  the tenant's admin /state), peak memory growth of the run, CPU seconds of the worker and of the sandbox (less
  sensitive than wall time to what else the shared machine runs). As in bench_sync, the worker first runs the
  delta job on an empty window with throwaway state and storage (printed as the warm-up run). With --repeats N
  the full job runs N times, each with fresh state and storage against a reset tenant: best of N;
- rerun: the same full partition again on the same state: goal zero Xelion writes (POST or PUT);
- deltas: for each size D in --deltas (default 100), D AFAS persons (spread over the persons) get a new FirstName
  through the AFAS admin `/edit` inside one 15-minute window (bench_sync's DELTA_WINDOWS), then `afas_delta_job` (afas_*_changes, xelion_address_book_delta,
  xelion_phone_index) for that window: Xelion requests per route (goal: in proportion to the edits, not to the
  address book: at most 2 per edit, a GET and a PUT, plus the session's login and logout);
- call reports: --calls answered calls placed through the Xelion admin `POST /calls`, each with a note and a
  recording of 60-300 s, from distinct numbers the AFAS organisations, persons and contacts (person at
  organisation) hold (as AFAS has them typed; the admin API normalises), then `xelion_call_reports` materialised for one window
  (CALLS_WINDOW): wall time, reports per second, AFAS requests (KnSubject POSTs), Xelion requests (the
  communications feed and one audio GET per call), and the MP3 bytes attached: the decoded FileStream of every
  attachment AFAS then holds (read back through the AFAS admin API after the run, not timed), next to the
  bytes of the recordings Xelion served. Then the same window again: goal zero new dossier items (--calls 0
  leaves the call reports out);
- bare: in a fresh process against a reset Xelion tenant, an httpx script: Xelion login (a userSpace of its own),
  Sync_Organisations, Sync_Persons and Sync_Contacts paged from AFAS (bench_sync's `bare_afas_read`), the same
  documents built minimally (numbers in E.164 with `phonenumbers`, so the server does the same work), the
  organisations POSTed first, then the persons with their employments at the organisations' new oids, at most
  the client's `max_concurrency` (4) in flight (a 429 is waited out and repeated), logout; best of --repeats
  runs. Ratio pipeline/bare (goal <= 1.3). Both sides are client-bound here (the client process uses about a
  core, the sandbox about half of one), so the ratio follows the CPU the pipeline spends per addressable; it
  moves by 10-20 % between runs on a busy machine: compare the CPU seconds as well, or use --repeats.
One JSON line per measurement, then a human summary with the goals. Not part of the test suite. The default run
takes about 7 minutes on the 2-core machine (most of it the full job and the bare script, about 3 minutes each).
Timings on a shared 2-core machine are noisy: compare runs made at the same load.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_mailchimp import _warm_afas  # bench/ is on the path when a benchmark runs
from bench_sync import (
    DELTA_WINDOWS,
    FULL_PARTITION,
    WARMUP_PARTITION,
    _defs,
    _run,
    _slim,
    bare_afas_read,
    best_of,
    edit_at,
)
from measure import cpu_now, cpu_since, load_1m, reset_peak, status_mb
from sandbox_process import sandbox_process

ROOT = Path(__file__).resolve().parents[1]
#: The assets a Xelion benchmark's jobs are built over: AFAS's reads and Xelion's address book and phone index.
#: Part of every edit's value, so that a run against a sandbox an earlier run edited still changes each record.
RUN = f"{os.getpid():x}"
XELION_ASSETS = ("afas_", "xelion_address_book", "xelion_phone_index")
CALL_REPORTS = "xelion_call_reports"
CALLS_JOB = "xelion_call_reports_job"
#: The window the call reports are materialised for: after the full sync and the delta (the asset reads Xelion's
#: communications feed by cursor; the window only names the run).
CALLS_WINDOW = "2026-11-22-06:15"
BARE_USER_SPACE = "bench-bare"
SEED = 20261122


def _xl(url: str) -> str:
    return f"{url}/xelion/_admin"


def _xl_reset(url: str) -> None:
    httpx.post(f"{_xl(url)}/reset", timeout=300).raise_for_status()


def _xl_state(url: str) -> dict:
    return httpx.get(f"{_xl(url)}/state", timeout=60).raise_for_status().json()


def _xl_stats(url: str) -> dict:
    stats = httpx.get(f"{_xl(url)}/stats", timeout=30).raise_for_status().json()
    routes = stats["requests"]
    writes = sum(n for route, n in routes.items() if route.startswith(("POST addressables", "PUT addressables")))
    return {"xelion_requests": stats["total"], "xelion_writes": writes, "xelion_by_route": routes,
            "xelion_peak_concurrency": stats["peak_concurrency"],
            "xelion_rejected_session": stats.get("rejected_session", 0),
            "xelion_faults": {k: v for k, v in stats.get("faults", {}).items() if v}}


def _run_xl(defs, job: str, partition: str, url: str, instance=None) -> dict:
    """bench_sync's `_run` (AFAS stats, metadata, steps, memory) plus the Xelion sandbox's stats and state."""
    httpx.post(f"{_xl(url)}/stats/reset", timeout=30).raise_for_status()
    run = _run(defs, job, partition, url, instance=instance)
    run.update(_xl_stats(url))
    state = _xl_state(url)
    run["xelion_state"] = {k: state[k] for k in ("Person", "Organisation", "UnknownAddressable", "communications")}
    run["load_avg_1m_after"] = load_1m()
    for key in ("spotler_requests", "spotler_write_requests", "spotler_read_requests", "spotler_by_route",
                "spotler_peak_concurrency"):
        run.pop(key, None)
    return run


def _book(run: dict, suffix: str) -> dict:
    meta = run["metadata"].get(f"xelion_address_book{suffix}", {})
    index = run["metadata"].get("xelion_phone_index", {})
    return {k: meta.get(k) for k in ("organisations", "persons", "created", "updated", "unchanged", "rejected",
                                     "numbers_sent", "afas_lookups")} | {
        "numbers_left_out": {k.split("/", 1)[1]: v for k, v in meta.items() if k.startswith("numbers_left_out/")},
        "client_retries": meta.get("xelion/retries"), "index_made": bool(index), "index_numbers": index.get("numbers"),
        "index_ambiguous_numbers": index.get("ambiguous_numbers")}


# --- worker: the pipeline -----------------------------------------------------------------------


def _calls_defs(url: str, state: str, storage: str):
    """`xelion_call_reports` alone, in a job of its own, on the same sync state and storage as the address book."""
    import dagster as dg

    from afas_pipeline.definitions import assets
    from afas_pipeline.resources import build_resources

    chosen = [a for a in assets if CALL_REPORTS in {k.to_user_string() for k in a.keys}]
    job = dg.define_asset_job(CALLS_JOB, selection=[CALL_REPORTS])
    env = {"AFAS_PIPELINE_SANDBOX_URL": url, "AFAS_PIPELINE_STATE": state, "AFAS_PIPELINE_STORAGE": storage}
    return dg.Definitions(assets=chosen, jobs=[job], resources=build_resources(env), executor=dg.in_process_executor)


def _edit_persons(url: str, storage: str, count: int, window: str) -> list[str]:
    """Give `count` AFAS persons, spread over all of them, a new FirstName inside the 15-minute `window` (as
    bench_sync's `_edit_members` edits contacts)."""
    import pandas as pd

    persons = pd.read_parquet(Path(storage) / "afas_persons" / f"{FULL_PARTITION}.parquet", columns=["PersonId"])
    ids = sorted(persons["PersonId"].astype(str), key=int)
    chosen = ids[:: max(len(ids) // count, 1)][:count]
    with httpx.Client(base_url=f"{url}/afas/_admin", timeout=30) as admin:
        for i, person in enumerate(chosen):
            admin.post("/edit", json={"table": "persons", "key": person, "fields": {"FirstName": f"Bench{i} {RUN}"},
                                      "at": edit_at(window, i, len(chosen))}).raise_for_status()
    return chosen


def _call_numbers(storage: str) -> list[str]:
    """Distinct numbers (as typed in AFAS) of the organisations, persons and contacts that the pipeline reads as
    valid and that Xelion's admin API takes; in a fixed random order."""
    import pandas as pd

    from afas_pipeline.lib.phones import parse
    from afas_sandbox.xelion.store import e164

    columns = {"afas_organisations": ["Phone"], "afas_persons": ["Phone", "PhoneMobile"],
               "afas_contacts": ["Phone", "Mobile", "ContactKind"]}
    typed: dict[str, str] = {}  # E.164 -> one way AFAS has it typed
    for asset, names in columns.items():
        frame = pd.read_parquet(Path(storage) / asset / f"{FULL_PARTITION}.parquet", columns=names)
        if "ContactKind" in frame:  # the address book holds a contact's numbers only as a person's employment
            frame = frame[frame.pop("ContactKind") == "PRS"]
        for name in frame.columns:
            for raw in frame[name].dropna().astype(str):
                number = parse(raw, "NL")[0]
                if number is not None and e164(raw) == number:
                    typed.setdefault(number, raw)
    numbers = sorted(typed.values())
    random.Random(SEED).shuffle(numbers)
    return numbers


def _place_calls(url: str, storage: str, count: int) -> dict:
    """`count` answered calls with a note and a recording of 60-300 s, each from another AFAS number."""
    from afas_sandbox.xelion.mp3 import silent_mp3

    numbers = _call_numbers(storage)
    if len(numbers) < count:
        raise SystemExit(f"only {len(numbers)} distinct valid AFAS numbers for {count} calls")
    rng = random.Random(SEED)
    recorded = 0
    started = time.perf_counter()
    with httpx.Client(base_url=_xl(url), timeout=60) as admin:
        for i, number in enumerate(numbers[:count]):
            duration = rng.randint(60, 300)
            call = admin.post("/calls", json={
                "number": number, "direction": rng.choice(["incoming", "outgoing"]), "answered": True,
                "duration_s": duration, "note": f"Bench call {i}: klant belt over de offerte, terugbellen vrijdag.",
                "subject": f"Bench gesprek {i}" if i % 2 else None, "recording": True}).raise_for_status().json()
            recorded += len(silent_mp3(call["durationSec"]))
    return {"calls_placed": count, "place_s": round(time.perf_counter() - started, 2),
            "recording_bytes_placed": recorded}


def _attached_bytes(url: str) -> dict:
    """The KnSubjects and attachments AFAS holds, and the decoded size of every attachment's FileStream (the
    attachments listed by the GetConnector Profit_Subject_Attachments, each read through the admin API)."""
    from afas_pipeline.resources import SANDBOX_AFAS_TOKEN

    header = base64.b64encode(f"<token><version>1</version><data>{SANDBOX_AFAS_TOKEN}</data></token>".encode()).decode()
    started = time.perf_counter()
    with httpx.Client(base_url=f"{url}/afas/ProfitRestServices", headers={"Authorization": f"AfasToken {header}"},
                      timeout=120) as afas:
        files = afas.get("/connectors/Profit_Subject_Attachments",
                         params={"skip": 0, "take": 100_000}).raise_for_status().json()["rows"]
    subjects = httpx.get(f"{url}/afas/_admin/state", timeout=30).raise_for_status().json()["counts"]["subjects"]
    total = 0
    with httpx.Client(base_url=f"{url}/afas/_admin", timeout=120) as admin:
        for f in files:
            record = admin.get("/records/attachments", params={"key": f["file_id"]}).raise_for_status().json()[0]
            total += len(base64.b64decode(record["FileData"]))
    return {"afas_subjects": subjects, "afas_attachments": len(files), "mp3_bytes_attached": total,
            "attached_read_s": round(time.perf_counter() - started, 2)}


def _reports(run: dict) -> dict:
    meta = run["metadata"].get(CALL_REPORTS, {})
    outcomes = {k.split("/", 1)[1]: v for k, v in meta.items() if k.startswith("calls/")}
    made = outcomes.get("reported", 0) + outcomes.get("reported_with_recording", 0)
    by_route = run["afas_by_route"]
    return {"calls_read": meta.get("calls_read"), "outcomes": outcomes, "reports_made": made,
            "knsubject_posts": sum(n for route, n in by_route.items() if route.startswith("POST connectors/KnSubject")),
            "reports_per_s": round(made / run["wall_s"], 1) if run["wall_s"] else None,
            "audio_requests": run["xelion_by_route"].get("GET communications/{oid}/audio", 0)}


def worker_pipeline(url: str, deltas: list[int], calls: int, repeats: int) -> dict:
    import logging
    import shutil
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-xelion-"))
    out: dict = {}

    _xl_reset(url)
    warm_defs = _defs(url, str(tmp / "warm" / "state.sqlite"), str(tmp / "warm" / "storage"), XELION_ASSETS)
    warm = _run_xl(warm_defs, "afas_delta_job", WARMUP_PARTITION, url)
    out["warmup"] = {"wall_s": warm["wall_s"], "success": warm["success"], "errors": warm["errors"]}

    fulls = []
    for i in range(repeats):  # each with fresh state and storage against a reset tenant; the last one's are kept
        state, storage = str(tmp / f"run{i}" / "state.sqlite"), str(tmp / f"run{i}" / "storage")
        defs = _defs(url, state, storage, XELION_ASSETS)
        _xl_reset(url)
        # One Dagster instance for the runs on this state, as they would share $DAGSTER_HOME: the delta's
        # xelion_phone_index compares the state's numbers with those it was last made from.
        instance = dg.DagsterInstance.ephemeral()
        fulls.append(_run_xl(defs, "afas_full_job", FULL_PARTITION, url, instance))
        if i < repeats - 1:
            shutil.rmtree(tmp / f"run{i}", ignore_errors=True)
    out["full"] = best_of(fulls)
    out["rerun"] = _run_xl(defs, "afas_full_job", FULL_PARTITION, url, instance)

    out["deltas"] = []
    for size, window in zip(deltas, DELTA_WINDOWS):
        started = time.perf_counter()
        _edit_persons(url, storage, size, window)
        edit_s = time.perf_counter() - started
        run = _run_xl(defs, "afas_delta_job", window, url, instance)
        run["edits"], run["edit_s"] = size, edit_s
        updated = run["metadata"].get("xelion_address_book_delta", {}).get("updated")
        if updated != size:  # the edits did not reach the delta: its figures would measure nothing
            run["errors"] = [*run["errors"], f"{size} edits, {updated} addressables updated"]
        out["deltas"].append(run)
    if not calls:
        shutil.rmtree(tmp, ignore_errors=True)
        return out

    placed = _place_calls(url, storage, calls)
    calls_defs = _calls_defs(url, state, storage)
    run = _run_xl(calls_defs, CALLS_JOB, CALLS_WINDOW, url)
    run.update(placed)
    out["calls"] = run
    out["calls_rerun"] = _run_xl(calls_defs, CALLS_JOB, CALLS_WINDOW, url)
    out["calls"].update(_attached_bytes(url))
    shutil.rmtree(tmp, ignore_errors=True)
    return out


# --- worker: the bare script ----------------------------------------------------------------------


def bare_documents(rows: dict[str, list[dict]]) -> tuple[list[tuple[str, dict]], list[tuple[dict, list]]]:
    """The bare script's documents from the AFAS rows: (OrganisationId, document) per organisation, and
    (document, [(OrganisationId, jobTitle)]) per person; the same documents the pipeline sends, built minimally."""
    import re
    from functools import cache

    import phonenumbers

    extension = re.compile(r"\s*[,;]?\s*(?:toestel|toest\.?|tst\.?|ext\.?|extension|x)\s*\d{1,6}\s*$", re.IGNORECASE)

    @cache
    def e164(raw: str) -> str | None:
        try:
            number = phonenumbers.parse(extension.sub("", raw.strip()), "NL")
        except phonenumbers.NumberParseException:
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) \
            if phonenumbers.is_valid_number(number) else None

    def text(value) -> str | None:
        if value is None:
            return None
        value = str(value).strip()
        return value or None

    def telecoms(phones: list[tuple[object, str, str]], email) -> list[dict]:
        items, seen = [], set()
        for raw, kind, label in phones:
            number = e164(str(raw)) if text(raw) else None
            if number and number not in seen:
                seen.add(number)
                items.append({"addressType": kind, "address": number, "label": label, "orderNumber": len(items)})
        email = text(email)
        if email and " " not in email and "@" in email:
            items.append({"addressType": "Email", "address": email, "label": "Werk", "orderNumber": len(items)})
        return items

    organisations = []
    for o in rows["Sync_Organisations"]:
        number = " ".join(p for p in (text(o.get("HouseNumber")), text(o.get("HouseNumberAddition"))) if p) or None
        address = {"street": text(o.get("Street")), "streetNumber": number, "zipCode": text(o.get("PostalCode")),
                   "city": text(o.get("City")), "country": text(o.get("Country")), "addressType": "Visit"}
        organisations.append((str(o["OrganisationId"]), {
            "objectType": "Organisation", "name": text(o.get("Name")) or str(o["OrganisationId"]),
            "kvkNumber": text(o.get("ChamberOfCommerce")), "comment": f"AFAS organisatie {o['OrganisationId']}",
            "telecomAddresses": telecoms([(o.get("Phone"), "Telephone", "Werk")], o.get("MailWork")),
            "addresses": [address] if any(v for k, v in address.items() if k != "addressType") else []}))
    employments: dict[str, list[dict]] = {}
    for c in sorted(rows["Sync_Contacts"], key=lambda c: str(c["ContactId"])):
        if c.get("ContactKind") == "PRS" and c.get("PersonId") is not None and c.get("OrganisationId") is not None:
            employments.setdefault(str(c["PersonId"]), []).append(c)
    persons = []
    for p in rows["Sync_Persons"]:
        contacts = employments.get(str(p["PersonId"]), [])
        phones = [(p.get("Phone"), "Telephone", "Werk"), (p.get("PhoneMobile"), "Mobile", "Mobiel")]
        for c in contacts:
            phones += [(c.get("Phone"), "Telephone", "Werk"), (c.get("Mobile"), "Mobile", "Mobiel")]
        given, family = text(p.get("FirstName")), text(p.get("LastName"))
        persons.append(({"objectType": "Person", "givenName": given, "namePrefix": text(p.get("Prefix")),
                         "familyName": family or (None if given else str(p["PersonId"])),
                         "initials": text(p.get("Initials")), "comment": f"AFAS persoon {p['PersonId']}",
                         "telecomAddresses": telecoms(phones, p.get("MailWork"))},
                        [(str(c["OrganisationId"]), text(c.get("Function"))) for c in contacts]))
    return organisations, persons


def worker_bare(url: str, concurrency: int) -> dict:
    """Log in, page the three GetConnectors, build the documents, POST organisations then persons, log out."""
    import importlib
    from concurrent.futures import ThreadPoolExecutor

    import orjson

    from afas_sandbox.xelion.store import PASSWORD, USER_NAME

    # What the script imports (bare_afas_read imports the AFAS token's module) is loaded before the clock starts,
    # as the pipeline's worker has its code loaded by the warm-up run.
    for module in ("afas_pipeline.resources", "phonenumbers"):
        importlib.import_module(module)
    _xl_reset(url)
    httpx.post(f"{_xl(url)}/stats/reset", timeout=30).raise_for_status()
    httpx.post(f"{url}/afas/_admin/stats/reset", timeout=30).raise_for_status()
    reset_peak()
    before = status_mb("VmRSS")
    cpu = cpu_now()
    started = time.perf_counter()

    rows = bare_afas_read(url)
    read_s = time.perf_counter() - started
    organisations, persons = bare_documents(rows)
    join_s = time.perf_counter() - started - read_s

    retries = 0
    with httpx.Client(base_url=f"{url}/xelion/api/v1/master/", timeout=120,
                      limits=httpx.Limits(max_connections=concurrency)) as xelion:
        login = xelion.post("me/login", json={"userName": USER_NAME, "password": PASSWORD,
                                              "userSpace": BARE_USER_SPACE}).raise_for_status().json()
        headers = {"Authorization": f"xelion {login['authentication']}", "Content-Type": "application/json"}

        def post(document: dict) -> str | None:
            nonlocal retries
            body = orjson.dumps(document)
            while True:
                answer = xelion.post("addressables", content=body, headers=headers)
                if answer.status_code != 429:
                    break
                retries += 1
                time.sleep(0.05)
            return orjson.loads(answer.content)["object"]["oid"] if answer.status_code == 200 else None

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            oids = dict(zip((key for key, _ in organisations), pool.map(post, (d for _, d in organisations))))
            made_persons = list(pool.map(post, (
                {**document, "employments": [{"organisation": {"oid": oids[org]}, "jobTitle": title}
                                             for org, title in jobs if oids.get(org)]}
                for document, jobs in persons)))
        xelion.post("me/logout", headers=headers)
    wall = time.perf_counter() - started
    spent = cpu_since(cpu)
    peak = status_mb("VmHWM")
    ok = sum(1 for oid in oids.values() if oid) + sum(1 for oid in made_persons if oid)
    afas_total = httpx.get(f"{url}/afas/_admin/stats", timeout=30).json()["total"]
    state = _xl_state(url)
    numbers = sum(sum(t["addressType"] != "Email" for t in d["telecomAddresses"])
                  for d in [*(d for _, d in organisations), *(d for d, _ in persons)])
    return {"wall_s": wall, "read_s": read_s, "join_s": join_s, "write_s": wall - read_s - join_s,
            "organisations": len(organisations), "persons": len(persons), "created": ok, "retries_429": retries,
            "numbers_sent": numbers, "peak_rss_mb": peak, "peak_growth_mb": peak - before, **spent,
            "load_avg_1m_after": load_1m(), "afas_requests": afas_total, **_xl_stats(url),
            "xelion_state": {k: state[k] for k in ("Person", "Organisation")}}


# --- orchestration --------------------------------------------------------------------------------


def _run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker {args[0]} failed:\n{out.stderr[-5000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _steps(run: dict, top: int = 6) -> str:
    return ", ".join(f"{k} {v}s" for k, v in sorted(run["steps_s"].items(), key=lambda kv: -kv[1])[:top])


def bench(contacts: int, deltas: list[int], calls: int, repeats: int) -> list[dict]:
    from afas_pipeline.xelion.client import XelionClient

    concurrency = XelionClient.model_fields["max_concurrency"].default
    with sandbox_process(contacts) as sandbox:
        url = sandbox.url
        _warm_afas(url)
        pipeline = _run_worker("pipeline", "--url", url, "--deltas", *map(str, deltas), "--calls", str(calls),
                               "--repeats", str(repeats))
        bares = [_run_worker("bare", "--url", url, "--concurrency", str(concurrency)) for _ in range(repeats)]
        bare = best_of(bares)
        server_rss = sandbox.rss_mb()

    common = {"contacts": contacts, "sandbox_ready_s": round(sandbox.ready_s, 1), "sandbox_rss_mb": round(server_rss)}
    full, rerun = pipeline["full"], pipeline["rerun"]
    posts = "POST addressables"
    lines = [
        {"measurement": "full", **common, "warmup_run_s": round(pipeline["warmup"]["wall_s"], 2), **_slim(full),
         **_book(full, "")},
        {"measurement": "bare", **common, "concurrency": concurrency, **_slim(bare)},
        {"measurement": "ratio", "pipeline_s": round(full["wall_s"], 2), "bare_s": round(bare["wall_s"], 2),
         "ratio_pipeline_to_bare": round(full["wall_s"] / bare["wall_s"], 2),
         "cpu_worker_ratio": round(full["cpu_worker_s"] / bare["cpu_worker_s"], 2) if bare["cpu_worker_s"] else None,
         "pipeline_posts": full["xelion_by_route"].get(posts), "bare_posts": bare["xelion_by_route"].get(posts),
         "same_addressables": full["xelion_state"]["Person"] == bare["xelion_state"]["Person"]
         and full["xelion_state"]["Organisation"] == bare["xelion_state"]["Organisation"]},
        {"measurement": "rerun", **_slim(rerun), **_book(rerun, "")},
    ] + [{"measurement": f"delta_{run['edits']}", **_slim(run), **_book(run, "_delta")} for run in pipeline["deltas"]]
    if calls:
        lines += [{"measurement": f"calls_{calls}", **_slim(pipeline["calls"]), **_reports(pipeline["calls"])},
                  {"measurement": "calls_rerun", **_slim(pipeline["calls_rerun"]), **_reports(pipeline["calls_rerun"])}]
    return lines


def summary(lines: list[dict]) -> list[str]:
    by = {line["measurement"]: line for line in lines}
    full, bare, ratio, rerun = by["full"], by["bare"], by["ratio"], by["rerun"]
    deltas = [line for name, line in by.items() if name.startswith("delta_")]
    calls = next((line for name, line in by.items() if name.startswith("calls_") and name != "calls_rerun"), None)
    again = by.get("calls_rerun")
    ok = lambda cond: "OK" if cond else "MISSED"
    routes = lambda line: ", ".join(f"{k} {v}" for k, v in sorted(line["xelion_by_route"].items()))
    mb = lambda n: f"{n / 1e6:.1f} MB"
    out = [
        (f"full sync of {full['contacts']} contacts: {full['persons']} persons and {full['organisations']} "
         f"organisations to Xelion: {full['wall_s']}s (runs {full['runs_wall_s']}; after a warm-up run on an empty "
         f"delta window, {full['warmup_run_s']}s), success={full['success']}; created {full['created']} (tenant: "
         f"{full['xelion_state']['Person']} Person, {full['xelion_state']['Organisation']} Organisation), rejected "
         f"{full['rejected']}; {full['numbers_sent']} numbers sent, left out {full['numbers_left_out']}; AFAS "
         f"{full['afas_requests']} requests; Xelion {full['xelion_requests']} requests ({routes(full)}), peak "
         f"concurrency {full['xelion_peak_concurrency']}, client retries {full['client_retries']}; peak memory "
         f"growth {full['peak_growth_mb']} MB; CPU {full['cpu_worker_s']}s in the worker, {full['cpu_sandbox_s']}s in the "
         f"sandbox; load average after it {full['load_avg_1m_after']}"),
        f"  steps: {_steps(full)}",
        (f"bare script: {bare['wall_s']}s (runs {bare['runs_wall_s']}; read {bare['read_s']}s, build "
         f"{bare['join_s']}s, write {bare['write_s']}s); {bare['organisations']} organisations + {bare['persons']} persons, "
         f"{bare['created']} created, {bare['numbers_sent']} numbers; {bare['concurrency']} in flight at most, "
         f"{bare['retries_429']} 429s repeated; Xelion {bare['xelion_requests']} requests ({routes(bare)}); peak "
         f"memory growth {bare['peak_growth_mb']} MB; CPU {bare['cpu_worker_s']}s in the script, {bare['cpu_sandbox_s']}s "
         f"in the sandbox; load average after it {bare['load_avg_1m_after']}"),
        (f"ratio pipeline/bare {ratio['ratio_pipeline_to_bare']} (goal <= 1.3: "
         f"{ok(ratio['ratio_pipeline_to_bare'] <= 1.3)}); POSTs {ratio['pipeline_posts']} vs {ratio['bare_posts']}; "
         f"same addressables in the tenant: {ratio['same_addressables']}; CPU of the client side pipeline/bare "
         f"{ratio['cpu_worker_ratio']}"),
        (f"rerun of {FULL_PARTITION}: {rerun['wall_s']}s; unchanged {rerun['unchanged']}; Xelion {rerun['xelion_writes']} "
         f"writes, {rerun['xelion_requests']} requests (goal zero writes: {ok(rerun['xelion_writes'] == 0)}); "
         f"steps: {_steps(rerun, 4)}"),
    ] + [
        (f"delta of {delta['edits']} AFAS person edits in {delta['partition']}: {delta['wall_s']}s, success="
         f"{delta['success']}; updated {delta['updated']}, unchanged {delta['unchanged']}; AFAS {delta['afas_requests']} "
         f"requests ({delta['afas_lookups']} lookups); Xelion {delta['xelion_requests']} requests ({routes(delta)}) "
         f"(goal: in proportion to {delta['edits']} edits, not to the book: "
         f"{ok(delta['xelion_requests'] <= 2 * delta['edits'] + 10)}); steps: {_steps(delta, 4)}")
        for delta in deltas
    ]
    if calls and again:
        out += [
            (f"call reports: {calls['calls_placed']} calls placed (recordings 60-300 s, {mb(calls['recording_bytes_placed'])} "
             f"of MP3) in {calls['place_s']}s, not timed; xelion_call_reports for {calls['partition']}: {calls['wall_s']}s, "
             f"success={calls['success']}; {calls['reports_made']} reports ({calls['reports_per_s']}/s), outcomes "
             f"{calls['outcomes']}; AFAS {calls['knsubject_posts']} KnSubject POSTs of {calls['afas_requests']} "
             f"requests; Xelion {calls['xelion_requests']} requests ({routes(calls)}); AFAS holds {calls['afas_subjects']} "
             f"dossier items with {calls['afas_attachments']} attachments, {mb(calls['mp3_bytes_attached'])} of MP3 "
             f"(FileStream decoded; the same as Xelion's recordings: "
             f"{calls['mp3_bytes_attached'] == calls['recording_bytes_placed']}); peak memory growth "
             f"{calls['peak_growth_mb']} MB"),
            (f"rerun of the call reports: {again['wall_s']}s; {again['reports_made']} new items, {again['knsubject_posts']} "
             f"KnSubject POSTs, outcomes {again['outcomes']} (goal zero new items: "
             f"{ok(again['reports_made'] == 0 and again['knsubject_posts'] == 0)})"),
        ]
    errors = {name: line["errors"] for name, line in by.items() if line.get("errors")}
    failed = {name: line["failed_checks"] for name, line in by.items() if line.get("failed_checks")}
    return out + ([f"errors: {json.dumps(errors)}"] if errors else []) + (
        [f"failed checks: {json.dumps(failed)}"] if failed else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=107_000, help="AFAS contacts (107000: ~100,000 persons)")
    parser.add_argument("--deltas", type=int, nargs="+", default=[100],
                        help=f"AFAS person edits per delta run (at most {len(DELTA_WINDOWS)})")
    parser.add_argument("--calls", type=int, default=1000, help="Xelion calls to report to AFAS (0: none)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="full job and bare script: best of N each (the machine is shared)")
    parser.add_argument("--worker", choices=("pipeline", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "pipeline":
        print(json.dumps(worker_pipeline(args.url, args.deltas, args.calls, args.repeats)))
        return
    if args.worker == "bare":
        print(json.dumps(worker_bare(args.url, args.concurrency)))
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if len(args.deltas) > len(DELTA_WINDOWS):
        parser.error(f"at most {len(DELTA_WINDOWS)} delta sizes")
    print(f"machine: {os.cpu_count()} cores; load average {Path('/proc/loadavg').read_text().split()[:3]}; "
          f"{args.contacts} contacts; deltas {args.deltas}; calls {args.calls}", flush=True)
    lines = bench(args.contacts, args.deltas, args.calls, args.repeats)
    for line in lines:
        print(json.dumps(line))
    for text in summary(lines):
        print(text)


if __name__ == "__main__":
    main()
