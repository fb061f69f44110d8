"""AFAS -> Spotler as a lineage graph: audience, plan, sync, and what Spotler refused.

Each chain exists twice, once per cadence, downstream of the AFAS reads of that cadence:
- the 6-hour full chain `spotler_audience` -> `spotler_sync_plan` -> `spotler_sync` (R2);
- the 15-minute delta chain `spotler_audience_delta` -> `spotler_sync_plan_delta` -> `spotler_sync_delta` (R1).
Both feed `spotler_rejected`, the records Spotler refused, retried on the next run.
The way back (Spotler -> AFAS: `spotler_changes` -> `afas_write_back`) lives in `spotler/feedback.py`,
the mailing history as AFAS dossier items (`mailing_history`, R17) in `spotler/mailing_history.py`.
"""

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from afas_pipeline.afas.assets import OWNERS
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.lookups import complete_by_keys, read_by_keys
from afas_pipeline.afas.partitions import DELTA_BACKFILL, FULL_BACKFILL, delta_partitions, full_partitions
from afas_pipeline.afas.sources import AfasSources, default_sources
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.privacy import hashed_sample
from afas_pipeline.mapping.drift import afas_drift, destination_drift, live_subject_type_drift
from afas_pipeline.mapping.load import default_mapping
from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.spotler.adapter import SpotlerAdapter, contact_changes
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline.sync.audience import EXCLUSION_RULES, build_audience, field_hash_column, is_valid_email
from afas_pipeline.sync.feedback import REACTIVATED, iso
from afas_pipeline.sync.plan import consent_violations, plan_sync, set_column, summarise
from afas_pipeline.sync.state import SyncState, SyncStateResource

GROUP = "spotler"
DESTINATION = "spotler"
#: How far back each read of Spotler's change feed starts before the previous read ended, so a change
#: Spotler stamps late is still seen. Seeing one twice is harmless.
FEED_OVERLAP = timedelta(minutes=15)
#: The first read of the change feed, with no watermark yet, looks back this far.
FEED_FIRST_LOOKBACK = timedelta(days=1)
#: Contacts per chunk of documents handed to the Spotler client (it batches and parallelises them).
SEND_CHUNK = 5000

CADENCES = {
    "full": {"suffix": "", "partitions": full_partitions, "backfill": FULL_BACKFILL, "afas": ""},
    "delta": {"suffix": "_delta", "partitions": delta_partitions, "backfill": DELTA_BACKFILL, "afas": "_changes"},
}


class SpotlerSyncConfig(dg.Config):
    """How `spotler_sync` carries out its plan."""

    dry_run: bool = False
    """Stop at the plan: write nothing to Spotler and change no sync state."""
    quarantine_after: int = 5
    """A record Spotler refuses this many runs in a row is quarantined: no more retries until an operator acts."""


def build_spotler_assets(
    mapping: DestinationMapping | None = None, sources: AfasSources | None = None
) -> list[dg.AssetsDefinition]:
    mapping = mapping or default_mapping(DESTINATION)
    sources = sources or default_sources()
    chains = [asset for cadence in CADENCES for asset in _chain(cadence, mapping, sources)]
    # The feedback loop Spotler -> AFAS (R12-R16); imported here because it builds on this module.
    from afas_pipeline.spotler.feedback import build_feedback_assets
    from afas_pipeline.spotler.mailing_history import build_mailing_history_asset

    # The way back runs after the 15-minute sync to Spotler of its window: AFAS -> Spotler -> AFAS is one graph.
    after = dg.AssetKey(f"spotler_sync{CADENCES['delta']['suffix']}")
    feedback = build_feedback_assets(mapping, sources, SpotlerAdapter(mapping).permission_keys, after=after)
    # Mailing history as AFAS dossier items (R17), when the mapping switches it on.
    history = build_mailing_history_asset(mapping, sources, after=after)
    return [*chains, _rejected_asset(chains), *feedback, *history]


def _chain(cadence: str, mapping: DestinationMapping, sources: AfasSources) -> list[dg.AssetsDefinition]:
    c = CADENCES[cadence]
    names = {step: f"spotler_{step}{c['suffix']}" for step in ("audience", "sync_plan", "sync")}
    adapter = SpotlerAdapter(mapping)
    keys = adapter.permission_keys
    two_way = [name for name, _ in mapping.two_way_fields()]
    common = dict(group_name=GROUP, owners=OWNERS, partitions_def=c["partitions"], backfill_policy=c["backfill"])
    window = "every 6 hours (R2)" if cadence == "full" else "every 15 minutes (R1)"

    @dg.asset(
        name=names["audience"],
        description=(
            f"Who goes to Spotler, {window}: AFAS contacts joined with their person and organisation, the "
            "rules applied (R3 e-mail, R4 person at organisation, R7 blocked, R8 filters, C2 normalised e-mail) "
            "and the mapping of mappings/spotler.yaml. One row per AFAS contact; a left-out row names its rule."
        ),
        ins={
            "contacts": dg.AssetIn(f"afas_contacts{c['afas']}"),
            "persons": dg.AssetIn(f"afas_persons{c['afas']}"),
            "organisations": dg.AssetIn(f"afas_organisations{c['afas']}"),
        },
        kinds={"pandas", "parquet"},
        check_specs=[
            dg.AssetCheckSpec("r3_every_member_has_a_valid_email", asset=names["audience"], blocking=True,
                              description="R3: no member without an e-mail address or with a malformed one."),
            dg.AssetCheckSpec("r4_only_persons_at_organisations", asset=names["audience"], blocking=True,
                              description="R4: every member is a contact of kind person at organisation."),
            dg.AssetCheckSpec("c2_one_record_per_contact", asset=names["audience"], blocking=True,
                              description="C2: one member per AFAS contact; e-mails trimmed and lower-cased."),
            dg.AssetCheckSpec("c4_every_contact_accounted_for", asset=names["audience"], blocking=True,
                              description="C4: contacts read = members + excluded, each excluded row naming its rule."),
        ],
        **common,
    )
    def audience(
        context: dg.AssetExecutionContext,
        afas: AfasClient,
        sync_state: SyncStateResource,
        contacts: pd.DataFrame,
        persons: pd.DataFrame,
        organisations: pd.DataFrame,
    ):
        lookups = 0
        if cadence == "delta":
            # A delta holds the changed contacts; their persons and organisations, and contacts waiting
            # for a retry, may have changed in another window: read those from AFAS as they are now.
            state = sync_state.open()
            retry = _pending_retries(state, exclude=contacts[sources.contacts.key].astype(str))
            extra, calls = read_by_keys(afas, sources.contacts, retry)
            contacts, lookups = pd.concat([contacts, extra], ignore_index=True) if len(extra) else contacts, calls
            persons, calls = complete_by_keys(afas, sources.persons, persons, contacts["PersonId"])
            lookups += calls
            organisations, calls = complete_by_keys(afas, sources.organisations, organisations, contacts["OrganisationId"])
            lookups += calls
        result = build_audience(contacts, persons, organisations, mapping)
        members = result.members
        excluded = result.excluded_counts()
        context.log.info(f"audience: {len(members)} of {result.input_rows} contacts; excluded {excluded}")
        yield dg.Output(
            result.rows,
            metadata={
                "dagster/row_count": len(result.rows),
                "contacts_read": result.input_rows,
                "members": len(members),
                **{f"excluded/{rule}": n for rule, n in excluded.items()},
                "afas_lookups": lookups,
            },
        )
        yield from _audience_checks(result.rows, result.input_rows, contacts, sources.contacts.key)

    @dg.asset(
        name=names["sync_plan"],
        description=(
            "What the sync will do per contact: create, update, leave unchanged or skip (R11), which "
            "permissions it switches, and which switch-ons it holds back because Spotler saw an opt-out "
            "later (C1). Keys and hashes only. A dry run stops here."
        ),
        ins={"audience": dg.AssetIn(names["audience"])},
        kinds={"pandas", "parquet"},
        check_specs=[
            dg.AssetCheckSpec("c1_no_optout_undone", asset=names["sync_plan"], blocking=True,
                              description="C1: no planned switch-on of a permission Spotler saw switched off "
                                          "after AFAS last changed the contact."),
            dg.AssetCheckSpec("mapping_matches_afas_and_spotler", asset=names["sync_plan"], blocking=True,
                              description="Schema drift stops the sync before any write: every mapped AFAS field "
                                          "and write-back target exists (metainfo), every Spotler property and "
                                          "permission bit exists (contact/properties/list)."),
        ],
        **common,
    )
    def sync_plan(context: dg.AssetExecutionContext, afas: AfasClient, spotler: SpotlerClient,
                  sync_state: SyncStateResource, audience: pd.DataFrame):
        drift = mapping_drift(afas, spotler, mapping, sources)
        state = sync_state.open()
        seen = refresh_optouts(spotler, state, keys, now=datetime.now(timezone.utc))
        members = audience[audience["excluded_by"].isna()]
        records = state.records(DESTINATION, members["external_id"])
        optouts = state.optouts(DESTINATION)
        rejected = state.rejected(DESTINATION)
        quarantined = frozenset(rejected.loc[rejected["quarantined"], "external_id"])
        plan = plan_sync(members, records, optouts, keys, quarantined=quarantined, two_way=two_way)
        summary = summarise(plan, keys)
        context.log.info(f"plan: {summary}")
        yield dg.Output(plan, metadata={"dagster/row_count": len(plan), **summary.as_metadata(),
                                        "optouts_seen": seen})
        violations = consent_violations(plan, optouts, keys)
        yield dg.AssetCheckResult(
            check_name="c1_no_optout_undone",
            passed=violations.empty,
            description=f"{len(violations)} planned switch-ons would undo an opt-out",
            metadata={"violations": len(violations), "offender_keys": hashed_sample(violations["external_id"]),
                      "held_by_consent": summary.held_by_consent},
        )
        yield dg.AssetCheckResult(
            check_name="mapping_matches_afas_and_spotler",
            passed=not drift,
            description="; ".join(drift) if drift else "mappings/spotler.yaml fits AFAS and Spotler",
            metadata={"problems": len(drift)},
        )

    @dg.asset(
        name=names["sync"],
        description=(
            "The plan carried out in Spotler, exactly: batched upserts (merge, never purge, never a delete: R10), "
            "then the sync state (keys and hashes) updated for what Spotler accepted, so a rerun of an unchanged "
            "window sends nothing (C3). Refused records go to spotler_rejected."
        ),
        ins={"audience": dg.AssetIn(names["audience"]), "plan": dg.AssetIn(names["sync_plan"])},
        kinds={"spotler", "pandas", "parquet"},
        check_specs=[
            dg.AssetCheckSpec("c4_every_contact_synced_excluded_or_rejected", asset=names["sync"],
                              description="C4: contacts read = synced + unchanged + skipped + excluded + rejected."),
        ],
        **common,
    )
    def sync(context: dg.AssetExecutionContext, config: SpotlerSyncConfig, spotler: SpotlerClient,
             sync_state: SyncStateResource, audience: pd.DataFrame, plan: pd.DataFrame):
        state = sync_state.open()
        if config.dry_run:
            results = _results(plan, {}, dry_run=True)
        else:
            writer = StateWriter(state, plan, keys, two_way, config.quarantine_after)
            members = audience[audience["excluded_by"].isna()].drop(columns=["content_hash", "email_hash"])
            rows = plan[plan["action"].isin(["create", "update"])].merge(
                members, on="external_id", how="left", suffixes=("", "_member"))
            writer.save_unsent()
            outcome = send_in_chunks(spotler, adapter, rows, writer)
            results = _results(plan, outcome, dry_run=False)
        counts = results["status"].value_counts()
        excluded = int(audience["excluded_by"].notna().sum())
        accounted = len(results) + excluded
        rejected = int(counts.get("rejected", 0))
        metadata = {
            "dagster/row_count": len(results),
            "dry_run": config.dry_run,
            "created": int(((results["status"] == "ok") & (results["action"] == "create")).sum()),
            "updated": int(((results["status"] == "ok") & (results["action"] == "update")).sum()),
            "unchanged": int(counts.get("unchanged", 0)),
            # R11: made mailable again after a hard bounce; their bounce detail in AFAS is cleared next.
            "reactivated": int(((results["status"] == "ok") & results["reactivate"].astype(bool)).sum()),
            "skipped_hard_bounce": int(counts.get("skip_hard_bounce", 0)),
            "quarantined": int(counts.get("quarantined", 0)),
            "rejected": rejected,
            "excluded": excluded,
            "completion_ratio": round(1 - rejected / accounted, 4) if accounted else 1.0,
            # Writes only: the plan's read of Spotler's change feed is not a write.
            "write_batches": spotler.stats.batches,
            "contacts_sent": spotler.stats.contacts_sent,
        }
        context.log.info(f"sync: {metadata}")
        yield dg.Output(results, metadata=metadata)
        yield dg.AssetCheckResult(
            check_name="c4_every_contact_synced_excluded_or_rejected",
            passed=accounted == len(audience),
            description=f"{accounted} of {len(audience)} contacts accounted for",
            metadata={"contacts": len(audience), "accounted": accounted, "rejected": rejected},
        )

    return [audience, sync_plan, sync]


def _rejected_asset(chains: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    syncs = [a for a in chains if a.key.to_user_string().startswith("spotler_sync") and "plan" not in a.key.to_user_string()]

    @dg.asset(
        name="spotler_rejected",
        group_name=GROUP,
        owners=OWNERS,
        kinds={"spotler", "pandas"},
        deps=syncs,
        description=(
            "Records Spotler refused (C4): external id, reason code, HTTP status, attempts. Each is retried on "
            "the next run and quarantined after `quarantine_after` refusals. Keys only, no personal data."
        ),
    )
    def spotler_rejected(sync_state: SyncStateResource) -> dg.MaterializeResult:
        rejected = sync_state.open().rejected(DESTINATION)
        return dg.MaterializeResult(
            value=rejected,
            metadata={
                "dagster/row_count": len(rejected),
                "pending_retry": int((~rejected["quarantined"]).sum()),
                "quarantined": int(rejected["quarantined"].sum()),
                "by_reason": {str(k): int(v) for k, v in rejected["reason"].value_counts().items()},
            },
        )

    return spotler_rejected


# --- helpers ------------------------------------------------------------------------------------


def send_in_chunks(spotler: SpotlerClient, adapter: SpotlerAdapter, rows: pd.DataFrame, writer: "StateWriter") -> dict:
    """Upsert the documents of `rows` and save each batch's outcome in the sync state as soon as Spotler
    answered it (a run killed later re-sends nothing that was acknowledged). Each chunk is recorded as in
    flight before it is sent (see `StateWriter`). The next chunk is built while the previous one is on its
    way. Returns Spotler's result per id; raises `SpotlerWriteIncomplete` when a batch got no answer, after
    the answered ones were saved."""
    outcome: dict = {}

    def send(chunk: pd.DataFrame, documents: list[dict]) -> None:
        entry = writer.begin(chunk)
        failpoint("spotler_sync.intent_recorded")
        spotler.upsert_contacts(documents, on_batch=writer.save_batch)
        writer.end(entry)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spotler-send") as sender:
        sending = None
        try:
            for start in range(0, len(rows), SEND_CHUNK):
                chunk = rows.iloc[start : start + SEND_CHUNK]
                documents = adapter.documents(chunk)
                if sending is not None:
                    sending.result()
                sending = sender.submit(send, chunk, documents)
            if sending is not None:
                sending.result()
        finally:
            outcome.update(writer.outcome)
    return outcome


class StateWriter:
    """Carries one sync's outcome into the sync state, batch by batch, so that a run that dies halfway
    leaves a state the next run can trust.

    Before a chunk is sent, what its success would save is recorded as writes in flight (with how far
    Spotler's change feed had been read). Each batch Spotler answers is saved in one transaction: what
    Spotler accepted (content, two-way field values, permissions), AFAS's permission fields and since when
    they are on (C1), each record's bounced address (R11), the `reactivated` events for the write-back
    (R11) and the refused records (C4). Once every batch of the chunk is saved, the chunk is no longer in
    flight. Records not sent (unchanged, skipped, quarantined) are saved first: only AFAS's side changed."""

    def __init__(self, state: SyncState, plan: pd.DataFrame, keys: list, two_way: list[str], quarantine_after: int):
        self.state, self.plan, self.keys, self.two_way = state, plan, keys, two_way
        self.quarantine_after = quarantine_after
        self.previous = {str(r["external_id"]): r
                         for r in state.records(DESTINATION, plan["external_id"]).to_dict("records")}
        self.feed_mark = state.watermark(DESTINATION, "contact_updates")
        self.outcome: dict = {}
        self._accepted: dict[str, dict] = {}
        self._refused: dict[str, dict] = {}
        self._reactivate: dict[str, str] = {}
        self._lock = threading.Lock()

    def save_unsent(self) -> None:
        unsent = self.plan[~self.plan["action"].isin(["create", "update"])]
        rows = _state_rows(unsent, self.previous, self.keys, self.two_way, accepted=False)
        self.state.save_records(DESTINATION, list(rows.values()))

    def begin(self, chunk: pd.DataFrame) -> int:
        accepted = _state_rows(chunk, self.previous, self.keys, self.two_way, accepted=True)
        refused = _state_rows(chunk, self.previous, self.keys, self.two_way, accepted=False)
        reactivate = chunk[chunk["reactivate"].astype(bool)]
        with self._lock:
            self._accepted.update(accepted)
            self._refused.update(refused)
            # Dated by AFAS's change of the address, so that a bounce Spotler reports after it is the later event.
            self._reactivate.update((str(i), _utc_text(t)) for i, t in zip(reactivate["external_id"], reactivate["afas_modified"]))
        intents = {i: {"content_hash": r["content_hash"], "permissions": r["permissions"]} for i, r in accepted.items()}
        return self.state.begin_writes(DESTINATION, intents, self.feed_mark)

    def save_batch(self, results: list) -> None:
        """Spotler's answers to one batch, saved together (called from the sending threads)."""
        failpoint("spotler_sync.batch_acknowledged")
        ok = [r.external_id for r in results if r.ok]
        refused = [r for r in results if not r.ok]
        with self._lock:
            rows = [self._accepted[i] for i in ok if i in self._accepted]
            rows += [self._refused[r.external_id] for r in refused if r.external_id in self._refused]
            events = [(i, REACTIVATED, self._reactivate[i]) for i in ok if i in self._reactivate]
            self.outcome.update((r.external_id, r) for r in results)
        with self.state.transaction():
            self.state.save_records(DESTINATION, rows)
            self.state.record_feedback(DESTINATION, events, "pending")
            self.state.record_rejections(DESTINATION, (
                {"external_id": r.external_id, "reason": refusal_reason(r), "status_code": r.status_code}
                for r in refused), self.quarantine_after)
            self.state.clear_rejections(DESTINATION, ok)
        failpoint("spotler_sync.batch_saved")

    def end(self, entry: int) -> None:
        self.state.end_writes(entry)


def refusal_reason(result) -> str:
    """What a rejected record keeps of Spotler's refusal: the code, and the property it names, so an
    operator knows which AFAS field to fix; never the value (Spotler's message may quote it)."""
    match = re.search(r"property '([^']+)'", result.message or "")
    return f"{result.code}:{match.group(1)}" if match else result.code


def mapping_drift(afas: AfasClient, spotler: SpotlerClient, mapping: DestinationMapping,
                  sources: AfasSources) -> list[str]:
    """Every way the mapping no longer fits the live AFAS connectors and Spotler account."""
    get_meta = {s.connector: afas.metainfo(s.connector) for s in (sources.contacts, sources.persons, sources.organisations)}
    update_meta = {c: afas.update_metainfo(c) for c in sorted({t.connector for t in mapping.write_backs()})}
    return [*afas_drift(mapping, get_meta, update_meta, sources=sources),
            *live_subject_type_drift(afas, mapping),
            *destination_drift(mapping, spotler.properties())]


def _pending_retries(state: SyncState, exclude: pd.Series) -> list[str]:
    """Records the delta sends again though AFAS did not change them: refused earlier (not quarantined), or
    whose last write may not have arrived (a run died before Spotler's answer was saved)."""
    rejected = state.rejected(DESTINATION)
    pending = set(rejected.loc[~rejected["quarantined"], "external_id"]) | set(state.in_doubt(DESTINATION))
    return sorted(pending - set(exclude))


def refresh_optouts(spotler: SpotlerClient, state: SyncState, keys: list[int | str], now: datetime) -> int:
    """Read Spotler's change feed since the last read and remember what happened there: permissions
    switched off (C1) and records made inactive (R11).

    A permission that is off in Spotler while we last sent it on was switched off by someone in Spotler:
    an opt-out, dated by the contact's lastChanged. It is remembered for the plan (C1) and queued for the
    write-back to AFAS (R12), so that it reaches AFAS even when this run's own write to the contact restamps
    its lastChanged, or switches the same permission off. A record whose EMAIL channel is off has bounced
    (or was inactivated): its current address is the bounced one.

    Writes a run started and never saw answered (it died, or Spotler went away) count as sent when the
    contact changed after them: an opt-out after a write we may have made is still an opt-out. Those
    records are then sent again by the next plan. All of it is saved with the new watermark in one
    transaction: the feed is never marked read past what was recorded.
    """
    since = state.watermark(DESTINATION, "contact_updates")
    start = (since - FEED_OVERLAP) if since else now - FEED_FIRST_LOOKBACK
    changed = contact_changes(spotler.updates(start, now))
    in_flight = state.writes_in_flight(DESTINATION)
    inactive = [c.external_id for c in changed if not c.mailable]
    switched_off = {c.external_id: c for c in changed if not all(c.permissions.values())}
    last_sent = {r.external_id: r.permissions for r in state.records(DESTINATION, switched_off).itertuples(index=False)}
    # The latest write in flight per record: (the feed's mark when it was planned, the permissions it sends).
    intended = {i: (entry.feed_mark, intent["permissions"]) for entry in in_flight for i, intent in entry.intents.items()}
    optouts = []
    for external_id, change in switched_off.items():
        mark, intent = intended.get(external_id, (None, {}))
        after_write = mark is None or change.changed_at > mark
        for key, enabled in change.permissions.items():
            ours = (last_sent.get(external_id, {}).get(key) or {}).get("sent")
            if key in intent and after_write:
                ours = intent[key].get("sent")  # what we may have written, and the contact changed since
            if not enabled and ours is True:
                optouts.append((external_id, key, change.changed_at))
    stamps = [c.changed_at for c in changed if c.changed_at.timestamp() > 0]
    # The watermark is the latest change Spotler stamped, in Spotler's clock: a clock of ours that runs
    # ahead of Spotler's would otherwise move the next read past changes Spotler stamps later.
    seen_until = max(stamps) if stamps else start
    with state.transaction():
        state.record_optouts(DESTINATION, optouts)
        state.record_feedback(DESTINATION, [(i, f"optout:{k}", iso(when)) for i, k, when in optouts], "pending")
        state.mark_bounced(DESTINATION, inactive)
        state.resolve_in_doubt(DESTINATION, in_flight)
        failpoint("spotler_sync_plan.feed_recorded")
        state.set_watermark(DESTINATION, "contact_updates", seen_until)
    return len(optouts)


def _results(plan: pd.DataFrame, outcome: dict, dry_run: bool) -> pd.DataFrame:
    status, code, status_code = [], [], []
    for row in plan[["external_id", "action"]].itertuples(index=False):
        if row.action not in ("create", "update"):
            status.append(row.action), code.append(None), status_code.append(None)
        elif dry_run:
            status.append("dry_run"), code.append(None), status_code.append(None)
        else:
            result = outcome.get(row.external_id)
            ok = result is not None and result.ok
            status.append("ok" if ok else "rejected")
            code.append(result.code if result else "NO_RESULT")
            status_code.append(result.status_code if result else None)
    out = plan[["external_id", "action"]].copy()
    out["status"] = status
    out["code"] = pd.Series(code, index=out.index, dtype="string")
    out["status_code"] = pd.Series(status_code, index=out.index, dtype="Int64")
    # What was sent, for the UI and a reader of the stored results: which permission values and whether the
    # properties went, and R11's reactivations (keys and hashes only, like the plan).
    for column in plan.columns:
        if column.startswith("set:") or column in ("content_hash", "send_properties", "reactivate"):
            out[column] = plan[column]
    return out


def _state_rows(frame: pd.DataFrame, previous: dict[str, dict], keys: list, two_way: list[str],
                accepted: bool) -> dict[str, dict]:
    """Per record of `frame` (plan rows), the state row to save when Spotler accepted what the plan sent
    (`accepted`), or when it was not sent or refused: then only AFAS's permission fields, since when they
    are on (C1) and the bounced address (R11) may change, and a record whose row would not change, or
    that Spotler never accepted, is left out."""
    columns = {name: frame[name].to_numpy(dtype=object, na_value=None).tolist()
               for name in ("external_id", "content_hash", "email_hash", "bounced_email_hash", "send_properties")}
    sent = {str(k): frame[set_column(k)].to_numpy(dtype=object, na_value=None).tolist() for k in keys}
    afas = {str(k): frame[f"afas:{k}"].to_numpy(dtype=object, na_value=None).tolist() for k in keys}
    since = {str(k): [None if pd.isna(t) else pd.Timestamp(t).isoformat() for t in frame[f"on_since:{k}"]] for k in keys}
    field_hashes = {name: frame[field_hash_column(name)].to_numpy(dtype=object, na_value=None).tolist()
                    for name in two_way}
    rows = {}
    for i, external_id in enumerate(columns["external_id"]):
        external_id = str(external_id)
        before = previous.get(external_id)
        before = before if before is not None and isinstance(before.get("content_hash"), str) else None
        if before is None and not accepted:
            continue  # never accepted: nothing to remember
        permissions = {k: dict(v) for k, v in (before["permissions"] if before else {}).items()}
        for k in sent:
            entry = permissions.setdefault(k, {})
            if accepted and sent[k][i] is not None:
                entry["sent"] = bool(sent[k][i])
            entry["afas"], entry["on_since"] = bool(afas[k][i]), since[k][i]
        fresh = accepted and (columns["send_properties"][i] or before is None)
        row = {
            "external_id": external_id,
            "content_hash": columns["content_hash"][i] if fresh else before["content_hash"],
            "email_hash": columns["email_hash"][i] if fresh else _text(before["email_hash"]),
            "permissions": permissions,
            "fields": ({name: hashes[i] for name, hashes in field_hashes.items()} if fresh
                       else (before["fields"] if before else {})),
            "bounced_email_hash": columns["bounced_email_hash"][i],
        }
        if accepted or row["bounced_email_hash"] != _text(before["bounced_email_hash"]) \
                or permissions != before["permissions"]:
            rows[external_id] = row
    return rows


def _utc_text(value) -> str:
    """A time as UTC ISO text (naive means UTC); now when there is none."""
    stamp = pd.Timestamp(value) if value is not None and not pd.isna(value) else pd.Timestamp.now(tz="UTC")
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).isoformat()


def _text(value) -> str | None:
    return None if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)) else str(value)


def _audience_checks(rows: pd.DataFrame, input_rows: int, contacts: pd.DataFrame, key: str) -> Iterator[dg.AssetCheckResult]:
    members = rows[rows["excluded_by"].isna()]
    valid = members["email"].fillna("").map(lambda e: bool(e) and is_valid_email(e)).astype(bool)
    bad_email = members["email"].isna().astype(bool) | ~valid
    yield dg.AssetCheckResult(
        check_name="r3_every_member_has_a_valid_email", passed=not bad_email.any(),
        metadata={"offenders": int(bad_email.sum()), "offender_keys": hashed_sample(members.loc[bad_email, "external_id"]),
                  "excluded_R3": int((rows["excluded_by"] == "R3").sum()),
                  "excluded_R3_syntax": int((rows["excluded_by"] == "R3-syntax").sum())},
    )
    kinds = contacts.drop_duplicates(key, keep="last").set_index(contacts.drop_duplicates(key, keep="last")[key].astype(str))["ContactKind"]
    not_prs = members["external_id"].map(kinds) != "PRS"
    yield dg.AssetCheckResult(
        check_name="r4_only_persons_at_organisations", passed=not not_prs.any(),
        metadata={"offenders": int(not_prs.sum()), "offender_keys": hashed_sample(members.loc[not_prs, "external_id"]),
                  "excluded_R4": int((rows["excluded_by"] == "R4").sum())},
    )
    duplicate_ids = members["external_id"].duplicated(keep=False)
    not_normalised = members["email"].notna() & (members["email"] != members["email"].str.strip().str.lower())
    shared = members["email"].duplicated(keep=False) & members["email"].notna()
    yield dg.AssetCheckResult(
        check_name="c2_one_record_per_contact", passed=not (duplicate_ids.any() or not_normalised.any()),
        metadata={"duplicate_ids": int(duplicate_ids.sum()), "not_normalised": int(not_normalised.sum()),
                  # One address on several contacts is allowed (one contact = one record) but worth knowing.
                  "members_sharing_an_address": int(shared.sum()),
                  "sharing_keys": hashed_sample(members.loc[shared, "external_id"]),
                  "offender_keys": hashed_sample(members.loc[duplicate_ids | not_normalised, "external_id"])},
    )
    unnamed = rows["excluded_by"].notna() & ~rows["excluded_by"].isin(list(EXCLUSION_RULES))
    yield dg.AssetCheckResult(
        check_name="c4_every_contact_accounted_for", passed=len(rows) == input_rows and not unnamed.any(),
        metadata={"contacts_read": input_rows, "rows": len(rows), "members": len(members),
                  "excluded": int(rows["excluded_by"].notna().sum()), "excluded_without_rule": int(unnamed.sum())},
    )
