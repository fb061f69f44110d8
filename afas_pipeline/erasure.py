"""Erasure (GDPR article 17, rule P2): an explicit path through every destination, audited; never a sync's side effect.

A request is queued in the sync state (`erasure_requests`) by `afas-pipeline erase`, by an AFAS contact marked for
erasure (`erase_flag` of the contacts in mappings/afas_sources.yaml) or, only when `AFAS_PIPELINE_ERASE_REMOVED` is
on, by a contact or person removed from AFAS (R10: by default a record that disappears stays as it is). The
`erasure_job` (every 15 minutes) runs two assets:
- `erasure_requests` queues what AFAS asks for and lists every request by its salted hash; its check
  `erasure_within_deadline` fails when a request is still pending after `AFAS_PIPELINE_ERASURE_DEADLINE_HOURS`;
- `erasure_audit` carries out the pending requests in each destination (`Erasable.erase`), purges the sync state of
  those records, and lists per request the hash, the times, and the outcome per destination.
A destination that fails leaves the request pending (the audit says which and why); a rerun repeats only what is
not done, and erasing twice is harmless. The run holds the sync state's lock, so no sync runs meanwhile.
"""

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from afas_pipeline.afas.assets import OWNERS
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.errors import AfasError
from afas_pipeline.afas.filters import Condition, Op
from afas_pipeline.afas.sources import AfasSources, default_sources
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.lib.settings import whole_number, yes_no
from afas_pipeline.sync.destination import ABSENT, ERASED, Erasable
from afas_pipeline.sync.erasure import ERASED as ERASED_STATUS
from afas_pipeline.sync.erasure import PENDING, overdue, request_keys, tombstones
from afas_pipeline.sync.state import SyncState

logger = logging.getLogger("afas_pipeline.erasure")

DEADLINE_SETTING = "AFAS_PIPELINE_ERASURE_DEADLINE_HOURS"
REMOVED_SETTING = "AFAS_PIPELINE_ERASE_REMOVED"
SETTINGS = (DEADLINE_SETTING, REMOVED_SETTING)
#: Requests listed in the audit's metadata table (the stored asset holds them all).
SHOWN = 50
DONE = (ERASED, ABSENT)


def deadline(env: Mapping[str, str] = os.environ) -> timedelta:
    """How long a request may stay pending before `erasure_within_deadline` fails (GDPR: without undue delay)."""
    return timedelta(hours=whole_number(env, DEADLINE_SETTING, 24, minimum=1, maximum=24 * 30, unit=" hours"))


def erase_removed(env: Mapping[str, str] = os.environ) -> bool:
    """Whether a contact or person removed from AFAS becomes an erasure request (default off: R10)."""
    return yes_no(env, REMOVED_SETTING, False)


def erasable_destinations() -> list[Erasable]:
    """Every destination declared under afas_pipeline/defs/: the e-mail destinations' adapters and Xelion's book."""
    from afas_pipeline.chain.component import declared_destinations
    from afas_pipeline.defs import DESTINATIONS
    from afas_pipeline.xelion.sync import XelionAddressBook

    return [*(c.destination() for c in declared_destinations()),
            *([XelionAddressBook()] if XelionAddressBook.name in DESTINATIONS else [])]


# --- requests ----------------------------------------------------------------------------------------------


def queue(state: SyncState, destinations: Iterable[Erasable], keys: dict[str, list[str]], subject: str, source: str,
          requested_at: datetime | None = None) -> bool:
    """Queue one request (`subject`: the salted hash it is known by); False when the subject has one already."""
    return state.queue_erasure(subject, keys, tombstones(keys, destinations), source, requested_at=requested_at)


def marked_in_afas(afas: AfasClient, sources: AfasSources) -> pd.DataFrame:
    """The AFAS contacts marked for erasure (ContactId, PersonId); none when no `erase_flag` is configured."""
    contacts = sources.contacts
    if not contacts.erase_flag:
        return pd.DataFrame(columns=["ContactId", "PersonId"])
    rows, _ = afas.read(contacts.connector, filters=Condition(contacts.erase_flag, Op.EQ, True),
                        order_by=list(contacts.order_by))
    return rows.reindex(columns=["ContactId", "PersonId"])


def queue_marked(state: SyncState, destinations: list[Erasable], marked: pd.DataFrame) -> int:
    """A request per marked contact (its person too); those already requested are left as they are."""
    queued = 0
    for contact, person in marked[["ContactId", "PersonId"]].itertuples(index=False):
        keys = request_keys([contact], [person])
        queued += queue(state, destinations, keys, hash_key(keys["contacts"][0]), "afas_marked")
    return queued


def queue_removed(state: SyncState, destinations: list[Erasable], afas: AfasClient, sources: AfasSources) -> int:
    """Opt-in (`AFAS_PIPELINE_ERASE_REMOVED`): a request per record key a destination holds whose AFAS contact or
    person is gone. Reads every contact and person key of AFAS, so it costs two full reads per run."""
    present = {}
    for entity, key in (("contacts", "ContactId"), ("persons", "PersonId")):
        rows, _ = afas.read(sources[entity].connector, order_by=list(sources[entity].order_by))
        present[entity] = set(rows[key].dropna().astype(str)) if key in rows else set()
    queued = 0
    for d in destinations:
        held = set(state.records(d.name, parsed=False, columns=("external_id",))["external_id"].astype(str))
        for entity in ("contacts", "persons"):
            for afas_id in sorted(present_in_destination(d, entity, held) - present[entity]):
                keys = request_keys(**{entity: [afas_id]})
                subject = hash_key(afas_id) if entity == "contacts" else hash_key(d.erasure_ids(keys)[0])
                queued += queue(state, destinations, keys, subject, "afas_removed")
    return queued


def present_in_destination(destination: Erasable, entity: str, held: set[str]) -> set[str]:
    """The AFAS ids of `entity` whose record key the destination holds (`held`): keys mapped back one by one."""
    out = set()
    for record in held:
        # A record key is the AFAS id itself (contacts) or a form of it (Xelion's `person:<id>`).
        afas_id = record.split(":", 1)[1] if ":" in record else record
        if destination.erasure_ids({entity: [afas_id]}) == [record]:
            out.add(afas_id)
    return out


# --- carrying out ------------------------------------------------------------------------------------------


def carry_out(state: SyncState, targets: list[tuple[Erasable, object]]) -> dict[str, int]:
    """Every pending request, destination by destination: erase each record, then purge its state rows and record the
    outcome together. A destination that fails keeps the request pending, with `failed: <why>` for the audit; the
    others go on. Counts of requests erased and still pending."""
    counts = {"erased_now": 0, "still_pending": 0}
    for request in state.erasure_requests(PENDING).itertuples(index=False):
        outcome = dict(request.outcome)
        for destination, client in targets:
            if outcome.get(destination.name) in DONE:
                continue
            outcome[destination.name] = _erase_in(state, destination, client, request.subject_hash, request.keys)
        done = all(outcome.get(d.name) in DONE for d, _ in targets)
        state.finish_erasure(request.subject_hash, done)
        counts["erased_now" if done else "still_pending"] += 1
    return counts


def _erase_in(state: SyncState, destination: Erasable, client, subject: str, keys: Mapping[str, list[str]]) -> str:
    d = destination.name
    ids = destination.erasure_ids(keys)
    saved = state.records(d, ids)
    own_keys = {str(i): (None if pd.isna(k) else str(k)) for i, k in zip(saved["external_id"], saved["destination_key"])}
    results = []
    for external_id in ids:
        try:
            results.append(destination.erase(client, external_id, own_keys.get(external_id)))
        except Exception as exc:  # an outage or a refusal: the request stays pending, the audit says why
            status = getattr(exc, "status_code", None)
            why = f"failed: {type(exc).__name__}" + (f" ({status})" if status else "")
            logger.warning("erasure %s in %s: %s; it stays pending", subject, d, why)
            state.record_erasure(subject, d, why)
            return why
    failpoint("erasure.destination_erased")
    outcome = ERASED if ERASED in results else ABSENT
    state.record_erasure(subject, d, outcome, purge=ids)
    return outcome


def audit_frame(requests: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One row per request: its hash, source, times, status, attempts and the outcome per destination; hashes only."""
    frame = requests[["subject_hash", "source", "requested_at", "finished_at", "status", "attempts"]].copy()
    for name in names:
        frame[f"outcome/{name}"] = requests["outcome"].map(lambda o, n=name: o.get(n))
    return frame.astype({c: "string" for c in frame.columns if c != "attempts"})


def _table(frame: pd.DataFrame, names: list[str]) -> dg.MetadataValue:
    shown = frame.sort_values("requested_at", ascending=False).head(SHOWN)
    lines = ["| request | source | requested | finished | status | " + " | ".join(names) + " |",
             "|---" * (5 + len(names)) + "|"]
    for r in shown.to_dict("records"):
        cells = [r["subject_hash"], r["source"], r["requested_at"], r["finished_at"] or "", r["status"],
                 *(str(r[f"outcome/{n}"] or "") for n in names)]
        lines.append("| " + " | ".join("" if pd.isna(c) else str(c) for c in cells) + " |")
    return dg.MetadataValue.md("\n".join(lines))


# --- the assets --------------------------------------------------------------------------------------------


def build_erasure(destinations: list[Erasable], sources: AfasSources | None = None):
    """The assets `erasure_requests` and `erasure_audit`, their job and their schedule (every 15 minutes). A setting
    that cannot work stops the code location loading."""
    deadline(), erase_removed()
    sources = sources or default_sources()
    names = [d.name for d in destinations]

    @dg.asset(
        group_name="erasure", owners=OWNERS, kinds={"pandas"},
        description="Erasure requests (P2): those AFAS asks for (a contact marked for erasure; a removed contact or "
                    f"person when {REMOVED_SETTING} is on) are queued, then every request is listed by its salted "
                    "hash with source, time and status. Hashes only.",
        check_specs=[dg.AssetCheckSpec(
            "erasure_within_deadline", asset="erasure_requests",
            description=f"No erasure request is still pending after {DEADLINE_SETTING} hours (default 24).")],
        required_resource_keys={"afas", "sync_state"},
    )
    def erasure_requests(context: dg.AssetExecutionContext):
        state: SyncState = context.resources.sync_state.open()
        afas: AfasClient = context.resources.afas
        afas_read = "ok"
        try:
            queued = queue_marked(state, destinations, marked_in_afas(afas, sources))
            if erase_removed():
                queued += queue_removed(state, destinations, afas, sources)
        except AfasError as exc:
            # The requests already queued are still carried out (erasure_audit runs after this asset); AFAS's own
            # requests are read again by the next run.
            queued, afas_read = 0, f"failed: {type(exc).__name__}"
            context.log.warning(f"erasure requests: AFAS not read ({afas_read}); the queued requests go on")
        requests = state.erasure_requests()
        now, limit = datetime.now(timezone.utc), deadline()
        late = overdue(requests, now, limit)
        pending = requests[requests["status"] == PENDING]
        oldest = pd.to_datetime(pending["requested_at"], utc=True, format="ISO8601").min()
        context.log.info(f"erasure requests: {queued} queued now, {len(pending)} pending, {len(late)} overdue")
        yield dg.Output(audit_frame(requests, names)[["subject_hash", "source", "requested_at", "status", "attempts"]],
                        metadata={"dagster/row_count": len(requests), "afas_read": afas_read, "queued_now": queued,
                                  "pending": len(pending),
                                  "erased": int((requests["status"] == ERASED_STATUS).sum()),
                                  "by_source": {str(k): int(v) for k, v in requests["source"].value_counts().items()},
                                  "oldest_pending_hours": 0.0 if pd.isna(oldest) else
                                  round((now - oldest).total_seconds() / 3600, 2)})
        yield dg.AssetCheckResult(
            check_name="erasure_within_deadline", passed=late.empty, severity=dg.AssetCheckSeverity.ERROR,
            description=f"{len(late)} erasure requests pending for more than {limit.total_seconds() / 3600:g} hours",
            metadata={"overdue": len(late), "overdue_requests": list(late["subject_hash"].head(10)),
                      "deadline_hours": limit.total_seconds() / 3600})

    @dg.asset(
        group_name="erasure", owners=OWNERS, kinds={"pandas"}, deps=[erasure_requests],
        description="Carries out the pending erasure requests in every destination (Spotler: anonymize; Mailchimp: "
                    "delete-permanent; Xelion: the addressable removed), purges the sync state of those records, and "
                    "keeps per request the salted hash, the times and the outcome per destination (P2). A destination "
                    "that fails leaves the request pending for the next run. Hashes only.",
        required_resource_keys={"sync_state", *names},
    )
    def erasure_audit(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        state: SyncState = context.resources.sync_state.open()
        counts = carry_out(state, [(d, getattr(context.resources, d.name)) for d in destinations])
        frame = audit_frame(state.erasure_requests(), names)
        failed = {n: int(frame[f"outcome/{n}"].fillna("").str.startswith("failed").sum()) for n in names}
        context.log.info(f"erasures: {counts}; failed per destination {failed}")
        return dg.MaterializeResult(value=frame, metadata={
            "dagster/row_count": len(frame), **counts, **{f"failed/{n}": v for n, v in failed.items()},
            "requests": _table(frame, names)})

    job = dg.define_asset_job("erasure_job", selection=[erasure_requests, erasure_audit],
                              description="Queues and carries out erasure requests (P2, afas_pipeline/erasure.py).")
    schedule = dg.ScheduleDefinition(job=job, cron_schedule="*/15 * * * *", execution_timezone="UTC",
                                     default_status=dg.DefaultScheduleStatus.RUNNING)
    return [erasure_requests, erasure_audit], job, schedule
