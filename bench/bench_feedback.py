"""Feedback benchmark: Spotler (or Mailchimp) -> AFAS through Dagster versus a bare script making the same AFAS calls.

    python bench/bench_feedback.py [--contacts 100000] [--events 10000] [--repeats 2] [--parts feedback mailing_history]
    python bench/bench_feedback.py --destination mailchimp [--contacts 100000] [--events 10000]

With `--destination mailchimp` the same is measured for Mailchimp's way back (the feedback part only): the jobs are
built over the afas_* and mailchimp_* assets; the events are members unsubscribing (70 %) and cleaned after a hard
bounce (30 %, Mailchimp's only bounce that changes a member), through the Mailchimp admin API; the pipeline runs
`mailchimp_optout_feedback`, `mailchimp_bounce_feedback` and `mailchimp_afas_write_back`; the bare script reads the
members changed in the window and the cleaned ones of the 24 hours before it (`GET lists/{id}/members`, only the
fields it needs, 1,000 a page), looks the contacts up and makes as many KnContact PUTs. The full sync before it
runs with Mailchimp's clock set back (as bench_mailchimp.py does), so its writes lie before those windows.

It starts the sandbox (`afas-pipeline sandbox --contacts N`) in its own process, so the server has its own
core, and brings Spotler in sync first: `afas_full_job` in a fresh worker process with fresh sync state and
storage (the feedback only judges contacts the sync sent). Spotler only: the jobs are built over the afas_*
and spotler_* assets, as in bench_sync.py (the code location's jobs also run Mailchimp). Then, each pipeline
run in a fresh worker process (in-process executor, ephemeral instance) that first materialises the same
assets on an empty window with throwaway state (Dagster's machinery and the code loaded, as in a code server
that has run before; printed as the warm-up run), it measures:
- feedback: through the Spotler admin API, --events recipient events on distinct synced contacts inside the
  15-minute window FEEDBACK_WINDOW: 70 % unsubscribes (bit 1 or 2), 30 % bounces (half hard, half soft);
  then `spotler_optout_feedback`, `spotler_bounce_feedback` and `spotler_afas_write_back` for that window;
- mailing history: one mailing (admin `POST /mailings`) to every contact Spotler holds (the members of the N
  AFAS contacts; those made inactive by a hard bounce are skipped by Spotler and counted), sent at
  MAILING_AT, after `mailing_history.enabled_from`; then `spotler_mailing_history` for the window that holds it
  (goal: one KnSubject POST per mail sent).
For each: wall time, AFAS requests per UpdateConnector entity and verb (KnContact, KnPerson, KnOrganisation,
KnSubject), GetConnector reads and metainfo calls (the sandbox's /stats), Spotler requests, peak memory
growth of the run (VmHWM reset before it), CPU seconds of the worker and of the sandbox, step times and the outcomes from the assets' metadata.
And per part a bare script, in a fresh process: httpx reading what it minimally needs (the Spotler
feeds of the window, signed with OAuth1 as the client does; the contacts' person and organisation ids from
Sync_Contacts, read whole past LOOKUP_FULL_READ ids like the pipeline, else by OR-filtered lookups) and
making the same number of UpdateConnector calls as the pipeline sent, bodies of the same shape (KnContact
PUT with the mapped write-back fields; KnSubject POST with its KnSubjectLink), with the AFAS token header
as the client sends it and at most the AFAS client's default concurrency in flight. Best of --repeats runs,
the first before the pipeline's run, the others after it.
Ratio pipeline/bare (no goal is set; the figures are printed).
Before every measured run, pipeline or bare, AFAS is reset to its generated data (POST /afas/_admin/reset:
one run's writes never turn the next one's into no-ops, and both sides start from the same store) and one
unmeasured sorted read rebuilds the server's index.
One JSON line per measurement, then a human summary. Not part of the test suite.
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from bench_sync import FULL_PARTITION, _defs, _reset_stats, _run, _slim, _stats  # bench/ is on the path
from measure import cpu_now, cpu_since, reset_peak, status_mb
from sandbox_process import sandbox_process

ROOT = Path(__file__).resolve().parents[1]
#: The 15-minute window of the recipients' events (the generated AFAS data ends on 2026-11-01).
FEEDBACK_WINDOW = "2026-11-16-10:00"
#: The mailing's send time, after `mailing_history.enabled_from`, and the window that holds it.
MAILING_AT = "2026-11-16T11:01:00.000Z"
MAILING_WINDOW = "2026-11-16-11:00"
#: An empty window for the warm-up runs (nothing happened in it, nor in the 24 hours before).
WARMUP_WINDOW = "2026-11-16-09:00"
#: The measured parts: the assets materialised (job `bench_<part>`), their window, and the metadata value
#: that counts the UpdateConnector calls the pipeline sent (the bare script makes as many).
PARTS = {
    "feedback": {"assets": ["spotler_optout_feedback", "spotler_bounce_feedback", "spotler_afas_write_back"],
                 "window": FEEDBACK_WINDOW, "calls": ("spotler_afas_write_back", "calls_sent")},
    "mailing_history": {"assets": ["spotler_mailing_history"], "window": MAILING_WINDOW,
                        "calls": ("spotler_mailing_history", "posts_sent")},
}
#: Mailchimp's parts: its way back of opt-outs and bounces (its campaigns' history is not measured here).
MAILCHIMP_PARTS = {
    "feedback": {"assets": ["mailchimp_optout_feedback", "mailchimp_bounce_feedback", "mailchimp_afas_write_back"],
                 "window": FEEDBACK_WINDOW, "calls": ("mailchimp_afas_write_back", "calls_sent")},
}
DESTINATIONS = ("spotler", "mailchimp")
MAILCHIMP_PAGE = 1000  # members per page of Mailchimp's collection, as the client's default


def parts_of(destination: str) -> dict:
    return MAILCHIMP_PARTS if destination == "mailchimp" else PARTS
UPDATE_CONNECTORS = ("KnContact", "KnPerson", "KnOrganisation", "KnSubject")
PAGE = 5000  # rows per AFAS GetConnector page, as the client's default
SPOTLER_PAGE = 10000  # rows per Spotler feed page, as the client's default


def _utc(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=timezone.utc)


def _iso_ms(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _afas_by_entity(by_route: dict[str, int]) -> dict[str, dict[str, int]]:
    """The sandbox's AFAS requests per route grouped: per UpdateConnector its verbs, GetConnector reads, metainfo."""
    out: dict[str, dict[str, int]] = {}
    for route, n in by_route.items():
        verb, _, path = route.partition(" ")
        name = path.split("/")[-1]
        if path.startswith("connectors/") and name in UPDATE_CONNECTORS:
            group, key = name, verb
        elif path.startswith("connectors/"):
            group, key = "GetConnector", name
        else:
            group, key = "other", path
        out.setdefault(group, {})[key] = out.get(group, {}).get(key, 0) + n
    return out


# --- worker: the pipeline -----------------------------------------------------------------------


def _bench_defs(url: str, folder: Path, destination: str = "spotler"):
    """The code location as bench_sync builds it (AFAS and the destination's chain), plus one job per measured part."""
    import dagster as dg

    defs = _defs(url, str(folder / "state.sqlite"), str(folder / "storage"), ("afas_", f"{destination}_"))
    extra = dg.Definitions(jobs=[dg.define_asset_job(f"bench_{name}", selection=part["assets"])
                                 for name, part in parts_of(destination).items()])
    return dg.Definitions.merge(defs, extra)


def _run_on(destination: str, defs, job: str, partition: str, url: str) -> dict:
    """bench_sync's `_run`; for Mailchimp with the Mailchimp sandbox's request counts (bench_mailchimp's `_run_mc`)."""
    if destination == "mailchimp":
        from bench_mailchimp import _run_mc

        return _run_mc(defs, job, partition, url)
    return _run(defs, job, partition, url)


def worker_pipeline(url: str, folder: str, job: str, partition: str, destination: str = "spotler") -> dict:
    import logging
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    folder = Path(folder)
    if job == "afas_full_job" and destination == "mailchimp":  # fresh audience; its writes dated before the windows
        from bench_mailchimp import FULL_CLOCK, _mc_clock, _mc_reset

        _mc_reset(url)
        _mc_clock(url, FULL_CLOCK)
        try:
            return {"run": _run_on(destination, _bench_defs(url, folder, destination), job, partition, url)}
        finally:
            _mc_clock(url, None)
    if job == "afas_full_job":  # bringing Spotler in sync: fresh state, no warm-up
        httpx.post(f"{url}/spotler/_admin/reset", timeout=60).raise_for_status()
        return {"run": _run(_bench_defs(url, folder), job, partition, url)}
    warm_folder = Path(tempfile.mkdtemp(prefix="bench-feedback-warm-"))
    warm = _run_on(destination, _bench_defs(url, warm_folder, destination), job, WARMUP_WINDOW, url)
    run = _run_on(destination, _bench_defs(url, folder, destination), job, partition, url)
    return {"warmup": {"wall_s": warm["wall_s"], "success": warm["success"], "errors": warm["errors"]}, "run": run}


# --- worker: the bare scripts ---------------------------------------------------------------------


class _Bare:
    """httpx clients as a bare script would hold them: AFAS with its token header, Spotler signed with OAuth1."""

    def __init__(self, url: str, concurrency: int):
        import warnings

        import authlib.deprecate

        from afas_sandbox.server import SANDBOX_AFAS_TOKEN, SANDBOX_SPOTLER_KEY, SANDBOX_SPOTLER_SECRET

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
            from afas_pipeline.spotler.client import _OneLeggedOAuth1

        token = base64.b64encode(f"<token><version>1</version><data>{SANDBOX_AFAS_TOKEN}</data></token>".encode()).decode()
        limits = httpx.Limits(max_connections=max(concurrency, 8), max_keepalive_connections=max(concurrency, 8))
        self.concurrency, self.url = concurrency, url
        self.afas = httpx.Client(base_url=f"{url}/afas/ProfitRestServices/", limits=limits, timeout=120,
                                 headers={"Authorization": f"AfasToken {token}", "Accept": "application/json"})
        self.spotler = httpx.Client(base_url=f"{url}/spotler/integrationservice-1.1.0/", timeout=120,
                                    auth=_OneLeggedOAuth1(SANDBOX_SPOTLER_KEY, SANDBOX_SPOTLER_SECRET),
                                    headers={"Accept": "application/json"})

    def mailchimp_members(self, params: dict) -> list[dict]:
        """Mailchimp's members matching `params`, all pages of MAILCHIMP_PAGE (HTTP Basic with the sandbox's key)."""
        import orjson

        from afas_pipeline.resources import SANDBOX_MAILCHIMP_KEY, SANDBOX_MAILCHIMP_LIST

        rows: list[dict] = []
        with httpx.Client(base_url=f"{self.url}/mailchimp/3.0/lists/{SANDBOX_MAILCHIMP_LIST}/", timeout=120,
                          auth=httpx.BasicAuth("bench", SANDBOX_MAILCHIMP_KEY)) as mailchimp:
            while True:
                payload = orjson.loads(mailchimp.get("members", params={**params, "count": MAILCHIMP_PAGE,
                                                                         "offset": len(rows)}).raise_for_status().content)
                rows.extend(payload["members"])
                if not payload["members"] or len(rows) >= payload["total_items"]:
                    return rows

    def spotler_pages(self, path: str, params: dict) -> list[dict]:
        """A Spotler feed, all pages: a bare array (short page ends it) or an interactions envelope."""
        import orjson

        rows: list[dict] = []
        while True:
            payload = orjson.loads(self.spotler.get(path, params={**params, "after": len(rows), "pageSize": SPOTLER_PAGE})
                                   .raise_for_status().content)
            page = payload if isinstance(payload, list) else payload["interactions"]
            rows.extend(page)
            more = len(page) == SPOTLER_PAGE if isinstance(payload, list) else (payload.get("paging") or {}).get("next")
            if not page or not more:
                return rows

    def contacts(self, ids: set[str]) -> dict[str, dict]:
        """Sync_Contacts rows of `ids`: one full sorted read past LOOKUP_FULL_READ ids, else OR-filtered lookups."""
        import orjson

        from afas_pipeline.afas.lookups import LOOKUP_CHUNK, LOOKUP_FULL_READ

        def get(params: dict) -> list[dict]:
            return orjson.loads(self.afas.get("connectors/Sync_Contacts", params=params).raise_for_status().content)["rows"]

        rows: list[dict] = []
        if len(ids) > LOOKUP_FULL_READ:
            while True:
                page = get({"skip": len(rows), "take": PAGE, "orderbyfieldids": "ContactId"})
                rows.extend(page)
                if len(page) < PAGE:
                    break
        else:
            keys = sorted(ids, key=int)
            chunks = [keys[i : i + LOOKUP_CHUNK] for i in range(0, len(keys), LOOKUP_CHUNK)]
            with ThreadPoolExecutor(self.concurrency) as pool:
                for page in pool.map(lambda c: get({"filterfieldids": ";".join("ContactId" for _ in c),
                                                    "filtervalues": ";".join(c),
                                                    "operatortypes": ";".join("1" for _ in c),
                                                    "skip": 0, "take": PAGE}), chunks):
                    rows.extend(page)
        return {str(r["ContactId"]): r for r in rows if str(r["ContactId"]) in ids}

    def send(self, verb: str, connector: str, bodies: list[dict]) -> int:
        """The UpdateConnector calls, at most `concurrency` in flight; returns how many AFAS accepted."""
        import orjson

        def call(body: dict) -> bool:
            answer = self.afas.request(verb, f"connectors/{connector}", content=orjson.dumps(body),
                                       headers={"Content-Type": "application/json;charset=utf-8"})
            return answer.status_code < 300

        with ThreadPoolExecutor(self.concurrency) as pool:
            return sum(pool.map(call, bodies))


def _measured(url: str, concurrency: int, work, destination: str = "spotler") -> dict:
    """`work(bare, started)` timed, with the sandboxes' request counts, this process's peak memory growth and the
    CPU seconds of this process and of the sandbox."""
    bare = _Bare(url, concurrency)
    _reset_stats(url)
    if destination == "mailchimp":
        from bench_mailchimp import _mc

        httpx.post(f"{_mc(url)}/stats/reset", timeout=30).raise_for_status()
    reset_peak()
    before = status_mb("VmRSS")
    cpu = cpu_now()
    started = time.perf_counter()
    out = work(bare, started)
    wall = time.perf_counter() - started
    spent = cpu_since(cpu)
    stats = _stats(url)
    peak = status_mb("VmHWM")
    if destination == "mailchimp":
        from bench_mailchimp import _mc_stats

        out = {**out, **_mc_stats(url)}
    return {"wall_s": wall, "peak_rss_mb": peak, "peak_growth_mb": peak - before, **spent, **out,
            "afas_requests": stats["afas"]["total"], "afas_by_entity": _afas_by_entity(stats["afas"]["requests"]),
            "spotler_requests": stats["spotler"]["total"], "spotler_by_route": stats["spotler"]["requests"],
            "afas_peak_concurrency": stats["afas"]["peak_concurrency"]}


def _write_back(bare: _Bare, started: float, fields: dict[str, dict], calls: int) -> dict:
    """The feeds are read (the time since `started`): look the contacts of `fields` (external id -> KnContact
    fields) up and PUT at most `calls` of them, in ContactId order; the three parts' times and the counts."""
    read_s = time.perf_counter() - started
    rows = bare.contacts(set(fields))
    bodies = [{"KnContact": {"Element": {"Fields": {"BcCoOga": str(rows[i]["OrganisationId"]),
                                                    "BcCoPer": str(rows[i]["PersonId"]), **fields[i]}}}}
              for i in sorted(fields, key=int) if i in rows][:calls]
    lookup_s = time.perf_counter() - started - read_s
    ok = bare.send("PUT", "KnContact", bodies)
    return {"read_s": read_s, "lookup_s": lookup_s, "write_s": time.perf_counter() - started - read_s - lookup_s,
            "candidates": len(fields), "calls": len(bodies), "accepted": ok}


def worker_bare_feedback(url: str, calls: int, concurrency: int) -> dict:
    """Read the window's updates and bounces, look the contacts up, PUT `calls` KnContact bodies."""
    from afas_pipeline.mapping.load import default_mapping

    targets = {f"{t.origin}:{t.source}": t for t in default_mapping("spotler").write_backs()}
    start, end = _utc(FEEDBACK_WINDOW), _utc(FEEDBACK_WINDOW) + timedelta(minutes=15)
    window = lambda lo: {"fromDate": lo.isoformat(), "toDate": end.isoformat()}  # noqa: E731

    def work(bare: _Bare, started: float) -> dict:
        updates = bare.spotler_pages("contact/updates/list", window(start - timedelta(minutes=15)))
        bounces = bare.spotler_pages("contact/bounces/list", window(start - timedelta(hours=24)))
        fields: dict[str, dict] = {}  # external id -> {connector: {field: value}}
        for contact in updates:
            for p in contact["properties"]["permissions"]:
                target = targets.get(f"permission:{p['bit']}")
                if target is not None and not p["enabled"]:
                    fields.setdefault(str(contact["externalId"]), {})[target.field] = False
        for b in bounces:
            hard = b["type"].startswith("HARD")
            day = datetime.fromtimestamp(b["date"] / 1000, ZoneInfo("Europe/Amsterdam")).date().isoformat()
            values = {"date": day, "type": "hard" if hard else "soft", "hard": True if hard else None}
            for part, value in values.items():
                if value is not None and f"bounce:{part}" in targets:
                    fields.setdefault(str(b["contact"]["externalId"]), {})[targets[f"bounce:{part}"].field] = value
        return {**_write_back(bare, started, fields, calls), "updates_read": len(updates),
                "bounces_read": len(bounces)}

    return _measured(url, concurrency, work)


def worker_bare_mailchimp_feedback(url: str, calls: int, concurrency: int) -> dict:
    """Read the members unsubscribed in the window and cleaned in the 24 hours before its end, look the contacts
    up, PUT `calls` KnContact bodies."""
    from afas_pipeline.mapping.load import default_mapping

    targets = {f"{t.origin}:{t.source}": t for t in default_mapping("mailchimp").write_backs()}
    start, end = _utc(FEEDBACK_WINDOW), _utc(FEEDBACK_WINDOW) + timedelta(minutes=15)
    fields = "members.merge_fields.AFASID,members.status,members.last_changed,total_items"

    def changed(bare: _Bare, since: datetime, **params) -> list[dict]:
        members = bare.mailchimp_members({"since_last_changed": since.isoformat(), "fields": fields, **params})
        return [m for m in members if datetime.fromisoformat(m["last_changed"]) <= end]

    def work(bare: _Bare, started: float) -> dict:
        updates = changed(bare, start - timedelta(minutes=15))
        cleaned = changed(bare, end - timedelta(hours=24), status="cleaned")
        wanted: dict[str, dict] = {}  # external id -> {field: value}
        optout = targets.get("permission:status")
        for member in updates:
            external_id = str(member["merge_fields"].get("AFASID") or "")
            if optout is not None and external_id and member["status"] == "unsubscribed":
                wanted.setdefault(external_id, {})[optout.field] = False
        for member in cleaned:
            external_id = str(member["merge_fields"].get("AFASID") or "")
            day = datetime.fromisoformat(member["last_changed"]).astimezone(ZoneInfo("Europe/Amsterdam")).date()
            for part, value in {"date": day.isoformat(), "type": "hard", "hard": True}.items():
                if external_id and f"bounce:{part}" in targets:
                    wanted.setdefault(external_id, {})[targets[f"bounce:{part}"].field] = value
        return {**_write_back(bare, started, wanted, calls), "updates_read": len(updates),
                "bounces_read": len(cleaned)}

    return _measured(url, concurrency, work, "mailchimp")


def worker_bare_mailing_history(url: str, calls: int, concurrency: int) -> dict:
    """Read the window's sent feed, look the contacts up, POST `calls` KnSubject items with their link."""
    from afas_pipeline.mapping.load import default_mapping

    config = default_mapping("spotler").mailing_history
    start, end = _utc(MAILING_WINDOW), _utc(MAILING_WINDOW) + timedelta(minutes=15)
    amsterdam = ZoneInfo("Europe/Amsterdam")

    def work(bare: _Bare, started: float) -> dict:
        sent = bare.spotler_pages("mailing-interaction/sent", {"fromChangeDate": (start - timedelta(minutes=15)).isoformat(),
                                                               "toChangeDate": end.isoformat()})
        sent = [s for s in sent if s["date"] >= config.enabled_from.timestamp() * 1000]
        read_s = time.perf_counter() - started
        rows = bare.contacts({str(s["externalContactId"]) for s in sent})
        bodies = []
        for s in sent:
            contact = rows.get(str(s["externalContactId"]))
            if contact is None:
                continue
            wall = datetime.fromtimestamp(s["date"] / 1000, amsterdam)
            text = (f"Mailing: {s['name']}\nSubject: {s['subject']}\nSent: {wall:%Y-%m-%d %H:%M} (Amsterdam time)\n"
                    f"Online version: {s['onlineVersionLink']}\nSpotler mailing id: {s['encryptedMailingId']}\nReactions:")
            link = {"DoCRM": True, "ToBC": True, "CdId": int(contact["ContactId"]), "BcId": str(contact["OrganisationId"])}
            bodies.append({"KnSubject": {"Element": {
                "Fields": {"StId": config.subject_type, "Ds": f"Mailing: {s['name']}", "SbTx": text, "Da": f"{wall:%Y-%m-%dT%H:%M:%S}"},
                "Objects": [{"KnSubjectLink": {"Element": {"Fields": link}}}]}}})
        bodies = bodies[:calls]
        lookup_s = time.perf_counter() - started - read_s
        ok = bare.send("POST", "KnSubject", bodies)
        return {"read_s": read_s, "lookup_s": lookup_s, "write_s": time.perf_counter() - started - read_s - lookup_s,
                "sent_read": len(sent), "calls": len(bodies), "accepted": ok}

    return _measured(url, concurrency, work)


# --- the recipients' side (through the Spotler admin API) ----------------------------------------------


def _spotler_contacts(url: str) -> list[dict]:
    return httpx.get(f"{url}/spotler/_admin/contacts", timeout=300).raise_for_status().json()


def make_events(url: str, count: int) -> dict:
    """`count` events on distinct active contacts spread over the account, inside FEEDBACK_WINDOW: 70 %
    unsubscribes of a bit the contact has on (alternating 1 and 2 where both are), 30 % bounces, half hard."""
    eligible = []
    for c in _spotler_contacts(url):
        bits = [p["bit"] for p in c["properties"]["permissions"] if p["enabled"] and p["bit"] in (1, 2)]
        if bits and all(ch["value"] for ch in c["channels"] if ch["name"] == "EMAIL"):
            eligible.append((int(c["externalId"]), bits))
    if len(eligible) < count:
        raise SystemExit(f"only {len(eligible)} active contacts with a permission on; --events {count} is too many")
    eligible.sort()
    step = len(eligible) / count
    chosen = [eligible[int(i * step)] for i in range(count)]
    unsubscribes = round(count * 0.7)
    start = _utc(FEEDBACK_WINDOW) + timedelta(minutes=1)
    spacing = timedelta(minutes=12) / count  # all inside the window, in order
    kinds: Counter = Counter()
    started = time.perf_counter()
    with httpx.Client(base_url=f"{url}/spotler/_admin", timeout=30) as admin:
        for i, (external_id, bits) in enumerate(chosen):
            at = _iso_ms(start + spacing * i)
            if i < unsubscribes:
                bit = bits[i % len(bits)]
                admin.post(f"/recipients/{external_id}/unsubscribe", json={"bit": bit, "at": at}).raise_for_status()
                kinds[f"unsubscribe_bit{bit}"] += 1
            else:
                kind = "hard" if (i - unsubscribes) % 2 == 0 else "soft"
                admin.post(f"/recipients/{external_id}/bounce", json={"type": kind, "at": at}).raise_for_status()
                kinds[f"bounce_{kind}"] += 1
    return {"events": count, "eligible_contacts": len(eligible), **dict(sorted(kinds.items())),
            "admin_calls_s": round(time.perf_counter() - started, 2)}


def make_mailchimp_events(url: str, count: int) -> dict:
    """`count` events on distinct subscribed members spread over the audience, inside FEEDBACK_WINDOW: 70 %
    unsubscribes, 30 % cleaned after a hard bounce."""
    from bench_mailchimp import _mc

    members = httpx.get(f"{_mc(url)}/members", timeout=300).raise_for_status().json()
    eligible = sorted((int(m["merge_fields"]["AFASID"]), m["id"]) for m in members
                      if m["status"] == "subscribed" and str(m["merge_fields"].get("AFASID") or "").isdigit())
    if len(eligible) < count:
        raise SystemExit(f"only {len(eligible)} subscribed members; --events {count} is too many")
    step = len(eligible) / count
    chosen = [eligible[int(i * step)] for i in range(count)]
    unsubscribes = round(count * 0.7)
    start = _utc(FEEDBACK_WINDOW) + timedelta(minutes=1)
    spacing = timedelta(minutes=12) / count
    kinds: Counter = Counter()
    started = time.perf_counter()
    with httpx.Client(base_url=_mc(url), timeout=30) as admin:
        for i, (_, member) in enumerate(chosen):
            action = "unsubscribe" if i < unsubscribes else "clean"
            admin.post(f"/members/{member}/{action}", json={"at": _iso_ms(start + spacing * i)}).raise_for_status()
            kinds["unsubscribe" if action == "unsubscribe" else "bounce_hard"] += 1
    return {"events": count, "eligible_contacts": len(eligible), **dict(sorted(kinds.items())),
            "admin_calls_s": round(time.perf_counter() - started, 2)}


def send_mailing(url: str) -> dict:
    """One mailing to every contact Spotler holds; Spotler skips those without an active EMAIL channel."""
    recipients = [str(c["externalId"]) for c in _spotler_contacts(url)]
    started = time.perf_counter()
    answer = httpx.post(f"{url}/spotler/_admin/mailings", timeout=600, json={
        "name": "Bench nieuwsbrief", "subject": "Nieuws van deze maand", "recipients": recipients, "bit": 1,
        "at": MAILING_AT}).raise_for_status().json()
    return {"recipients": len(recipients), "sent": len(answer["sent"]), "skipped": len(answer["skipped"]),
            "admin_call_s": round(time.perf_counter() - started, 2)}


# --- orchestration --------------------------------------------------------------------------------


def _fresh_afas(url: str) -> None:
    """AFAS back to its generated data before every measured run, pipeline or bare, so a run's writes are
    never no-ops and each side starts from the same store; one sorted read rebuilds the server's index
    (the pipeline's earlier runs would otherwise have built it for one side only)."""
    httpx.post(f"{url}/afas/_admin/reset", timeout=300).raise_for_status()
    with _Bare(url, 1).afas as afas:
        afas.get("connectors/Sync_Contacts", params={"skip": 0, "take": 1, "orderbyfieldids": "ContactId"}).raise_for_status()


def _bare(part: str, url: str, calls: int, concurrency: str, destination: str) -> dict:
    _fresh_afas(url)
    return _run_worker(f"bare_{part}", "--url", url, "--calls", str(calls), "--concurrency", concurrency,
                       "--destination", destination)


def _calls(part: str, result: dict, destination: str = "spotler") -> int:
    asset, key = parts_of(destination)[part]["calls"]
    return result["run"]["metadata"].get(asset, {}).get(key, 0)


def _measure_part(part: str, url: str, folder: str, concurrency: str, repeats: int, upper: int,
                  destination: str = "spotler") -> tuple[dict, dict]:
    """The pipeline run and the best of `repeats` bare runs: the first bare run before the pipeline's (at most
    `upper` calls), the others after it (as many calls as the pipeline sent), so the server's drift over the
    benchmark (each AFAS reset leaves it a little larger and slower) favours neither side."""
    runs = [_bare(part, url, upper, concurrency, destination)]
    _fresh_afas(url)
    result = _run_worker("pipeline", "--url", url, "--dir", folder, "--job", f"bench_{part}", "--partition",
                         parts_of(destination)[part]["window"], "--destination", destination)
    runs += [_bare(part, url, _calls(part, result, destination), concurrency, destination) for _ in range(repeats - 1)]
    best = min(runs, key=lambda r: r["wall_s"])
    return result, {**best, "runs_s": [round(r["wall_s"], 2) for r in runs]}


def _run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"worker {args[0]} failed:\n{out.stderr[-5000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pipeline_line(name: str, common: dict, result: dict, asset_keys: list[str]) -> dict:
    run = result["run"]
    outcomes = {key: run["metadata"].get(key, {}) for key in asset_keys}
    return {"measurement": name, **common, "warmup_run_s": round(result["warmup"]["wall_s"], 2), **_slim(run),
            "afas_by_entity": _afas_by_entity(run["afas_by_route"]), "outcomes": outcomes}


def _ratio(name: str, pipeline: dict, bare: dict, calls: int) -> dict:
    return {"measurement": f"{name}_ratio", "pipeline_s": pipeline["wall_s"], "bare_s": round(bare["wall_s"], 2),
            "ratio_pipeline_to_bare": round(pipeline["wall_s"] / bare["wall_s"], 2),
            "same_calls": bare["calls"] == calls, "calls": calls}


def bench(contacts: int, events: int, repeats: int, parts: tuple[str, ...] = tuple(PARTS),
          destination: str = "spotler") -> list[dict]:
    from afas_pipeline.afas.client import AfasClient

    concurrency = str(AfasClient.model_fields["max_concurrency"].default)
    folder = tempfile.mkdtemp(prefix="bench-feedback-")
    if unknown := set(parts) - set(parts_of(destination)):
        raise SystemExit(f"no part {', '.join(sorted(unknown))} for {destination}")
    with sandbox_process(contacts) as sandbox:
        url = sandbox.url
        sync = _run_worker("pipeline", "--url", url, "--dir", folder, "--job", "afas_full_job", "--partition",
                           FULL_PARTITION, "--destination", destination)
        measured = {}
        if "feedback" in parts:
            made = make_mailchimp_events(url, events) if destination == "mailchimp" else make_events(url, events)
            setup = {"measurement": "feedback_events", **made}
            measured["feedback"] = (setup, *_measure_part("feedback", url, folder, concurrency, repeats, events,
                                                          destination))
        if "mailing_history" in parts:
            setup = {"measurement": "mailing", **send_mailing(url)}
            measured["mailing_history"] = (setup, *_measure_part("mailing_history", url, folder, concurrency, repeats,
                                                                 setup["sent"]))
        server_rss = sandbox.rss_mb()

    common = {"contacts": contacts, "sandbox_ready_s": round(sandbox.ready_s, 1), "sandbox_rss_mb": round(server_rss)}
    full = sync["run"]
    slim = lambda bare: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in bare.items()}  # noqa: E731
    sent = full["metadata"].get(f"{destination}_sync", {})
    lines = [{"measurement": "sync_first", **common, "destination": destination, "success": full["success"],
              "wall_s": round(full["wall_s"], 2),
              "members": full["metadata"].get(f"{destination}_audience", {}).get("members"),
              "contacts_sent": sent.get("contacts_sent", sent.get("members_sent")), "errors": full["errors"]}]
    for name, (setup, result, bare) in measured.items():
        line = _pipeline_line(name, common, result, parts_of(destination)[name]["assets"])
        lines += [setup, line, {"measurement": f"{name}_bare", "concurrency": int(concurrency), **slim(bare)},
                  _ratio(name, line, bare, _calls(name, result, destination))]
    return lines


def _entities(by_entity: dict) -> str:
    return "; ".join(f"{group} " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
                     for group, calls in sorted(by_entity.items()))


def summary(lines: list[dict]) -> list[str]:
    by = {line["measurement"]: line for line in lines}
    sync, ev, mailing = by["sync_first"], by.get("feedback_events"), by.get("mailing")
    destination = sync.get("destination", "spotler")
    title = destination.capitalize()
    out = [f"first sync of {sync['contacts']} contacts: {sync['members']} members, {sync['contacts_sent']} sent to "
           f"{title} in {sync['wall_s']}s, success={sync['success']}"]
    if ev:
        out.append(f"events in {FEEDBACK_WINDOW}: {ev['events']} on distinct contacts ("
                   + ", ".join(f"{k} {v}" for k, v in ev.items() if k.startswith(("unsubscribe", "bounce"))) + ")")
    if mailing:
        out.append(f"mailing at {MAILING_AT} to {mailing['recipients']} Spotler contacts: sent {mailing['sent']}, "
                   f"skipped {mailing['skipped']} (EMAIL channel off after a hard bounce, or no address)")
    measured = [name for name in parts_of(destination) if name in by]
    for name in measured:
        part = parts_of(destination)[name]
        run, bare, ratio = by[name], by[f"{name}_bare"], by[f"{name}_ratio"]
        metadata = {k: v for key in part["assets"] for k, v in run["outcomes"][key].items()
                    if not isinstance(v, (str, bool)) and k != "dagster/row_count"}
        out += [
            f"{name}: {run['wall_s']}s (warm-up run {run['warmup_run_s']}s), success={run['success']}, failed checks "
            f"{run['failed_checks'] or 'none'}, warnings {run.get('warned_checks') or 'none'}; peak memory growth "
            f"{run['peak_growth_mb']} MB",
            f"  AFAS {run['afas_requests']} requests: {_entities(run['afas_by_entity'])}",
            f"  {title} {run[f'{destination}_requests']} requests: "
            + ", ".join(f"{k} {v}" for k, v in run[f"{destination}_by_route"].items()),
            "  steps: " + ", ".join(f"{k} {v}s" for k, v in run["steps_s"].items()),
            f"  outcomes ({', '.join(part['assets'])}): " + ", ".join(f"{k} {v}" for k, v in metadata.items()),
            f"  bare (best of {bare['runs_s']}): {bare['wall_s']}s (read {bare['read_s']}s, lookup {bare['lookup_s']}s, write "
            f"{bare['write_s']}s); {bare['calls']} calls, {bare['accepted']} accepted; AFAS {bare['afas_requests']} requests: "
            f"{_entities(bare['afas_by_entity'])}; {title} {bare[f'{destination}_requests']}; peak memory growth "
            f"{bare['peak_growth_mb']} MB",
            f"  ratio pipeline/bare {ratio['ratio_pipeline_to_bare']}; same number of calls: {ratio['same_calls']}",
        ]
    if any(by[name]["errors"] for name in measured):
        out.append("errors: " + json.dumps({name: by[name]["errors"] for name in measured}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000, help="recipient events in the feedback window")
    parser.add_argument("--repeats", type=int, default=2, help="bare scripts: best of N (the machine is shared)")
    parser.add_argument("--parts", nargs="+", choices=tuple(PARTS),
                        help="the parts measured (default: every part of the destination)")
    parser.add_argument("--destination", choices=DESTINATIONS, default="spotler")
    parser.add_argument("--worker", choices=("pipeline", *(f"bare_{part}" for part in PARTS)), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--partition", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "pipeline":
        print(json.dumps(worker_pipeline(args.url, args.dir, args.job, args.partition, args.destination)))
        return
    if args.worker in ("bare_feedback", "bare_mailing_history"):
        worker = {"bare_feedback": worker_bare_feedback, "bare_mailing_history": worker_bare_mailing_history}[args.worker]
        if args.destination == "mailchimp":
            worker = worker_bare_mailchimp_feedback
        print(json.dumps(worker(args.url, args.calls, args.concurrency)))
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print(f"machine: {os.cpu_count()} cores; load average {Path('/proc/loadavg').read_text().split()[:3]}; "
          f"{args.contacts} contacts; {args.events} events", flush=True)
    lines = bench(args.contacts, args.events, args.repeats, tuple(args.parts or parts_of(args.destination)),
                  args.destination)
    for line in lines:
        print(json.dumps(line))
    for text in summary(lines):
        print(text)
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
