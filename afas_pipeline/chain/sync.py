"""AFAS -> a destination as a lineage graph: audience, plan, sync, and what the destination refused.

Each chain exists twice per destination, once per cadence, downstream of the AFAS reads of that cadence:
- the 6-hour full chain `<d>_audience` -> `<d>_sync_plan` -> `<d>_sync` (R2);
- the 15-minute delta chain `<d>_audience_delta` -> `<d>_sync_plan_delta` -> `<d>_sync_delta` (R1).
Both feed `<d>_rejected`, the records the destination refused, retried on the next run. `<d>` is the
destination's name (`spotler`, `mailchimp`): keys, groups and sync state never collide between destinations.
The way back (`<d>_optout_feedback`, `<d>_bounce_feedback` -> `<d>_afas_write_back`) lives in
`chain/feedback.py`, the mailing history as AFAS dossier items (`<d>_mailing_history`, R17) in
`chain/mailing_history.py`. Nothing here names a vendor's field: the destination's adapter
(`afas_pipeline.sync.destination.Destination`) does.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.compute as pc

from afas_pipeline.afas.assets import OWNERS
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.lookups import complete_by_keys, read_by_keys
from afas_pipeline.afas.partitions import (
    DELTA_BACKFILL, DELTA_POOL, FULL_BACKFILL, FULL_POOL, delta_partitions, full_partitions,
)
from afas_pipeline.afas.sources import AfasSources
from afas_pipeline.chain.writer import StateWriter, results_frame, send_in_chunks
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.frames import latest_texts, repeated_texts, texts_in
from afas_pipeline.lib.privacy import hash_key, hashed_sample
from afas_pipeline.mapping.drift import afas_drift, destination_drift, live_subject_type_drift
from afas_pipeline.mapping.models import BACK_REFERENCES, ENTITY_SOURCE
from afas_pipeline.retries import retry_transient_failures
from afas_pipeline.sync.audience import (
    EXCLUSION_RULES, audience_columns, audience_members, build_audience, valid_emails,
)
from afas_pipeline.sync.destination import Destination
from afas_pipeline.sync.erasure import exclude_erased, marked, tombstoned_ids
from afas_pipeline.sync.events import FeedStates, epoch_us, from_epoch_us
from afas_pipeline.sync.feedback import iso
from afas_pipeline.sync.plan import (
    STATE_COLUMNS, consent_violations, hold_late_optouts, plan_again, plan_sync, planned_columns, skip_shared_addresses,
    state_columns, state_sent_column, summarise, superseded,
)
from afas_pipeline.sync.state import SyncState

#: How far back each read of the destination's change feed starts before the previous read ended, so a
#: change it stamps late is still seen. Seeing one twice is harmless.
FEED_OVERLAP = timedelta(minutes=15)
#: The first read of the change feed, with no watermark yet, looks back this far.
FEED_FIRST_LOOKBACK = timedelta(days=1)
#: Rejected records listed in `<d>_rejected`'s metadata (the counts cover them all).
REJECTED_SHOWN = 50


CADENCES = {
    "full": {"suffix": "", "partitions": full_partitions, "backfill": FULL_BACKFILL, "pool": FULL_POOL, "afas": ""},
    "delta": {"suffix": "_delta", "partitions": delta_partitions, "backfill": DELTA_BACKFILL, "pool": DELTA_POOL,
              "afas": "_changes"},
}


class SyncConfig(dg.Config):
    """How `<destination>_sync` carries out its plan."""

    dry_run: bool = False
    """Stop at the plan: write nothing to the destination and change no sync state."""
    quarantine_after: int = 5
    """A record the destination refuses this many runs in a row is quarantined: no more retries until an operator acts."""


def build_sync_assets(destination: Destination, sources: AfasSources) -> list[dg.AssetsDefinition]:
    """Both cadences' chains to the destination and its rejected records."""
    chains = [asset for cadence in CADENCES for asset in _chain(cadence, destination, sources)]
    return [*chains, _rejected_asset(destination, chains)]


def _chain(cadence: str, destination: Destination, sources: AfasSources) -> list[dg.AssetsDefinition]:
    c = CADENCES[cadence]
    d, title, mapping = destination.name, destination.title, destination.mapping
    names = {step: f"{d}_{step}{c['suffix']}" for step in ("audience", "sync_plan", "sync")}
    keys = destination.permission_keys
    two_way = [name for name, _ in mapping.two_way_fields()]
    file = mapping.file or f"mappings/{d}.yaml"
    common = dict(group_name=d, owners=OWNERS, partitions_def=c["partitions"], backfill_policy=c["backfill"],
                  pool=c["pool"])
    window = "every 6 hours (R2)" if cadence == "full" else "every 15 minutes (R1)"
    base, joined = mapping.base, mapping.joined()
    base_source = sources[ENTITY_SOURCE[base]]
    plural = ENTITY_SOURCE[base]
    # The AFAS reads this audience is made of: its base (contacts or debtors) and the entities joined to it, each
    # loaded with only the fields the step uses: the others would be held, a million rows of them, for nothing.
    reads = {ENTITY_SOURCE[entity]: dg.AssetIn(f"afas_{ENTITY_SOURCE[entity]}{c['afas']}", metadata={"columns": fields})
             for entity, fields in audience_columns(mapping, sources, delta=cadence == "delta").items()}
    what = ("AFAS contacts joined with their person and organisation, the rules applied (R3 e-mail, R4 person "
            "at organisation, R7 blocked, R8 filters, C2 normalised e-mail)" if base == "contact" else
            "AFAS debtors (customers, seed 002) joined with their preferred delivery address, the rules applied "
            "(R3 e-mail, R7 blocked, C2 normalised e-mail)")
    checks = [
        dg.AssetCheckSpec("r3_every_member_has_a_valid_email", asset=names["audience"], blocking=True,
                          description="R3: no member without an e-mail address or with a malformed one."),
        dg.AssetCheckSpec("c2_one_record_per_contact", asset=names["audience"], blocking=True,
                          description=f"C2: one member per AFAS {base}; e-mails trimmed and lower-cased."),
        dg.AssetCheckSpec("c4_every_contact_accounted_for", asset=names["audience"], blocking=True,
                          description=f"C4: {plural} read = members + excluded, each excluded row naming its rule."),
    ]
    if base == "contact":
        checks.insert(1, dg.AssetCheckSpec(
            "r4_only_persons_at_organisations", asset=names["audience"], blocking=True,
            description="R4: every member is a contact of kind person at organisation."))

    @dg.asset(
        name=names["audience"],
        description=(
            f"Who goes to {title}, {window}: {what} and the mapping of {file}. One row per AFAS {base}; a "
            "left-out row names its rule."
        ),
        ins=reads,
        kinds={"pandas", "parquet"},
        check_specs=checks,
        required_resource_keys={"afas", "sync_state"},
        **common,
    )
    @retry_transient_failures
    def audience(context: dg.AssetExecutionContext, **read: pd.DataFrame):
        afas: AfasClient = context.resources.afas
        rows = read[plural]
        related = {entity: read[ENTITY_SOURCE[entity]] for entity in joined}
        lookups = 0
        state = context.resources.sync_state.open()
        if cadence == "delta":
            rows, related, lookups = _complete_delta(afas, sources, mapping, state, d, rows, related,
                                                     _table_rows(context.instance, sources))
        result = build_audience(rows, related, mapping, modified=base_source.modified)
        # P2: a person to be (or already) erased is left alone; the erasure job, not the sync, erases (R10).
        erasing = marked(rows, base_source.erase_flag, base_source.key) if base == "contact" else set()
        result = exclude_erased(result, d, state.tombstones(), erasing)
        members = int(result.rows["excluded_by"].isna().sum())
        excluded = result.excluded_counts()
        context.log.info(f"audience: {members} of {result.input_rows} {plural}; excluded {excluded}")
        yield dg.Output(
            result.rows,
            metadata={
                "dagster/row_count": len(result.rows),
                f"{plural}_read": result.input_rows,
                "members": members,
                **{f"excluded/{rule}": n for rule, n in excluded.items()},
                "afas_lookups": lookups,
            },
        )
        yield from _audience_checks(result.rows, result.input_rows, rows, base_source.key, contact_kinds=base == "contact")

    @dg.asset(
        name=names["sync_plan"],
        description=(
            "What the sync will do per contact: create, update, leave unchanged or skip (R11), which "
            f"permissions it switches, and which switch-ons it holds back because {title} saw an opt-out "
            "later (C1). Keys and hashes only. A dry run stops here."
        ),
        ins={"audience": dg.AssetIn(names["audience"], metadata={"columns": planned_columns(keys, two_way)})},
        kinds={"pandas", "parquet"},
        check_specs=[
            dg.AssetCheckSpec("c1_no_optout_undone", asset=names["sync_plan"], blocking=True,
                              description=f"C1: no planned switch-on of a permission {title} saw switched off "
                                          "after AFAS last changed the contact."),
            dg.AssetCheckSpec(f"mapping_matches_afas_and_{d}", asset=names["sync_plan"], blocking=True,
                              description="Schema drift stops the sync before any write: every mapped AFAS field "
                                          f"and write-back target exists (metainfo), every {title} property and "
                                          "permission exists."),
        ],
        required_resource_keys={"afas", "sync_state", d},
        **common,
    )
    @retry_transient_failures
    def sync_plan(context: dg.AssetExecutionContext, audience: pd.DataFrame):
        client = getattr(context.resources, d)
        state = context.resources.sync_state.open()
        _same_identity(state, destination)
        drift = mapping_drift(context.resources.afas, destination, client, sources)
        members = audience_members(audience)
        # A delta asks the state about its own few records, after the feed. A full sync reads it whole, which is
        # cheaper there, and plans from it while the feed is read (in a thread: the destination's answers are waited
        # for meanwhile; after a full sync's writes the feed holds every record, 81 pages at 1,000,000 contacts).
        # The feed's judging takes what was last sent from that read instead of asking the state again about every
        # record the feed holds; the records it changed, and any whose opt-outs or quarantine differ after it, are
        # read and planned again (`plan_again`), so the plan is the one made after the feed.
        wanted = _members_of(cadence, members)
        now = datetime.now(timezone.utc)
        if wanted is None:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{d}-feed") as reader:
                reading = reader.submit(read_change_feed, destination, client, feed_start(state, d, now), now)
                whole = state_columns(state.records(d, None, parsed=False, columns=STATE_COLUMNS), keys, two_way)
                optouts_then, quarantined_then = state.optouts(d, None), _quarantined(state, d, None)
                plan = plan_sync(members, whole, optouts_then, keys, quarantined=quarantined_then, two_way=two_way)
                fed = reading.result()
            feed = refresh_optouts(destination, client, state, now=now, records=whole, fed=fed)
            del fed
            records = _read_again(whole, state, d, feed.changed, keys, two_way)
            optouts, quarantined = state.optouts(d, None), _quarantined(state, d, None)
            again = {*feed.changed, *_differing(optouts_then, optouts), *(quarantined ^ quarantined_then)}
            plan = plan_again(plan, again, members, records, optouts, keys, quarantined=quarantined, two_way=two_way)
        else:
            feed = refresh_optouts(destination, client, state, now=now)
            records = state.records(d, wanted, parsed=False, columns=STATE_COLUMNS)
            optouts = state.optouts(d, wanted)
            plan = plan_sync(members, records, optouts, keys, quarantined=_quarantined(state, d, wanted), two_way=two_way)
        seen, feed_read = feed.optouts, feed.read
        if destination.keyed_by_address:
            plan = skip_shared_addresses(plan, _address_holders(state, d, plan, records if wanted is None else None))
        summary = summarise(plan, keys)
        context.log.info(f"plan: {summary}")
        yield dg.Output(plan, metadata={"dagster/row_count": len(plan), **summary.as_metadata(),
                                        "optouts_seen": seen, "feed_changes_read": feed_read})
        violations = consent_violations(plan, optouts, keys)
        yield dg.AssetCheckResult(
            check_name="c1_no_optout_undone",
            passed=violations.empty,
            description=f"{len(violations)} planned switch-ons would undo an opt-out",
            metadata={"violations": len(violations), "offender_keys": hashed_sample(violations["external_id"]),
                      "held_by_consent": summary.held_by_consent},
        )
        yield dg.AssetCheckResult(
            check_name=f"mapping_matches_afas_and_{d}",
            passed=not drift,
            description="; ".join(drift) if drift else f"{file} fits AFAS and {title}",
            metadata={"problems": len(drift)},
        )

    @dg.asset(
        name=names["sync"],
        description=(
            f"The plan carried out in {title}: batched upserts (merge, never purge, never a delete: R10), then the "
            f"sync state (keys and hashes) updated for what {title} accepted, so a rerun of an unchanged window "
            f"sends nothing (C3). A plan made by another run or attempt is sent only after {title}'s opt-outs are "
            f"read again, without the switch-ons they now forbid (C1). Refused records go to {d}_rejected."
        ),
        ins={"audience": dg.AssetIn(names["audience"]), "plan": dg.AssetIn(names["sync_plan"])},
        kinds={destination.kind, "pandas", "parquet"},
        check_specs=[
            dg.AssetCheckSpec("c4_every_contact_synced_excluded_or_rejected", asset=names["sync"],
                              description="C4: contacts read = synced + unchanged + skipped + excluded + rejected."),
            dg.AssetCheckSpec("no_resubscription", asset=names["sync"],
                              description=f"MC3: no document subscribes a record {title} already has (its own "
                                          "consent, only the recipient gives it back); such documents are never sent."),
        ],
        required_resource_keys={"sync_state", d},
        **common,
    )
    @retry_transient_failures
    def sync(context: dg.AssetExecutionContext, config: SyncConfig, audience: pd.DataFrame, plan: pd.DataFrame):
        client = getattr(context.resources, d)
        state = context.resources.sync_state.open()
        resubscriptions = held = superseded_rows = 0
        reread = False
        if config.dry_run:
            results = results_frame(plan, None, dry_run=True)
        else:
            # C1: a plan made by another run or an earlier attempt (a re-execution from failure, this asset
            # materialized alone, a step retry) may be older than an opt-out: read the feed again first.
            made = _plan_record(context, dg.AssetKey(names["sync_plan"]))
            reread = not plan_made_by_this_attempt(context, made)
            if reread:
                seen = refresh_optouts(destination, client, state, now=datetime.now(timezone.utc), step="sync").optouts
                context.log.info(f"sync: the plan was made by another run or attempt; {seen} new opt-outs read")
            plan, held = hold_late_optouts(plan, state.optouts(d, _members_of(cadence, plan)), keys)
            if reread:
                plan, superseded_rows = _leave_superseded(context, state, d, plan, made, cadence, keys, two_way)
            writer = StateWriter(state, destination, plan, two_way, config.quarantine_after, fresh_plan=not reread)
            members = audience_members(audience).drop(columns=["content_hash", "email_hash"])
            sending = plan[plan["action"].isin(["create", "update"])]
            try:
                with state.bulk_writes(len(sending)), state.kept_open():
                    writer.save_unsent()
                    outcome = send_in_chunks(destination, client, sending, members, writer)
            finally:
                resubscriptions = writer.resubscriptions
            results = results_frame(plan, outcome, dry_run=False)
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
            "excluded_by_consent": int(counts.get("excluded_by_consent", 0)),
            # C1: switch-ons of the plan an opt-out seen after it was made held back.
            "held_at_send": held,
            "optouts_reread": reread,
            # A plan made earlier: its rows the state or a later plan has moved on from, neither sent nor saved.
            "superseded": superseded_rows,
            "excluded": excluded,
            "completion_ratio": round(1 - rejected / accounted, 4) if accounted else 1.0,
            # Writes only: the plan's read of the change feed is not a write.
            **destination.write_counts(client),
        }
        context.log.info(f"sync: {metadata}")
        yield dg.Output(results, metadata=metadata)
        yield dg.AssetCheckResult(
            check_name="c4_every_contact_synced_excluded_or_rejected",
            passed=accounted == len(audience),
            description=f"{accounted} of {len(audience)} contacts accounted for",
            metadata={"contacts": len(audience), "accounted": accounted, "rejected": rejected},
        )
        yield dg.AssetCheckResult(
            check_name="no_resubscription", passed=resubscriptions == 0,
            description=f"{resubscriptions} documents would have subscribed an existing record; none was sent",
            metadata={"stopped": resubscriptions},
        )

    return [audience, sync_plan, sync]


def _rejected_asset(destination: Destination, chains: list[dg.AssetsDefinition]) -> dg.AssetsDefinition:
    d, title = destination.name, destination.title
    syncs = [a for a in chains if a.key.to_user_string() in (f"{d}_sync", f"{d}_sync_delta")]

    @dg.asset(
        name=f"{d}_rejected",
        group_name=d,
        owners=OWNERS,
        kinds={destination.kind, "pandas"},
        # The latest window of each sync: the default (every window since the start) makes Dagster list some
        # 30,000 15-minute windows on every run, ~2 s of CPU that grows with time.
        deps=[dg.AssetDep(sync, partition_mapping=dg.LastPartitionMapping()) for sync in syncs],
        description=(
            f"Records {title} refused (C4): external id, reason code, HTTP status, attempts. Each is retried on "
            "the next run and quarantined after `quarantine_after` refusals; one refused for the destination's "
            "own consent reasons (`consent:...`) is kept at once and not retried. Keys only, no personal data."
        ),
        required_resource_keys={"sync_state"},
    )
    def rejected(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        rejected = context.resources.sync_state.open().rejected(d)
        return dg.MaterializeResult(
            value=rejected,
            metadata={
                "dagster/row_count": len(rejected),
                "pending_retry": int((~rejected["quarantined"]).sum()),
                "quarantined": int(rejected["quarantined"].sum()),
                "by_reason": {str(k): int(v) for k, v in rejected["reason"].value_counts().items()},
                "records": rejected_records_table(rejected),
            },
        )

    return rejected


def rejected_records_table(rejected: pd.DataFrame, limit: int = REJECTED_SHOWN) -> dg.MetadataValue:
    """The rejected records as the UI shows them, quarantined first: the hashed key (what `afas-pipeline release
    --key` takes), reason, status code, attempts, whether quarantined, last refused. Never the key itself."""
    shown = rejected.sort_values(["quarantined", "last_seen"], ascending=[False, False]).head(limit)
    lines = ["| key | reason | status | attempts | quarantined | last refused |", "|---|---|---|---|---|---|"]
    for r in shown.itertuples(index=False):
        status = "" if pd.isna(r.status_code) else int(r.status_code)
        lines.append(f"| {hash_key(r.external_id)} | {str(r.reason).replace('|', '/')} | {status} | {r.attempts} "
                     f"| {'yes' if r.quarantined else 'no'} | {r.last_seen} |")
    if len(rejected) > limit:
        lines.append(f"\n{len(rejected) - limit} more, not shown")
    return dg.MetadataValue.md("\n".join(lines))


# --- helpers ------------------------------------------------------------------------------------


def mapping_drift(afas: AfasClient, destination: Destination, client, sources: AfasSources) -> list[str]:
    """Every way the mapping no longer fits the live AFAS connectors and the destination's account."""
    mapping = destination.mapping
    read = [sources[ENTITY_SOURCE[entity]] for entity in mapping.columns()]
    get_meta = {s.connector: afas.metainfo(s.connector) for s in read}
    update_meta = {c: afas.update_metainfo(c) for c in sorted({t.connector for t in mapping.write_backs()})}
    return [*afas_drift(mapping, get_meta, update_meta, sources=sources),
            *live_subject_type_drift(afas, mapping),
            *destination_drift(mapping, destination.properties(client))]


def _table_rows(instance: dg.DagsterInstance, sources: AfasSources) -> dict[str, int]:
    """Per AFAS entity, the rows of its last full read (`afas_<entity>`'s `dagster/row_count`), where one was made:
    what a full read would cost a delta that could look its rows up by key instead (`afas.lookups.lookup_limit`)."""
    rows = {}
    for entity in sources.connectors():
        event = instance.get_latest_materialization_event(dg.AssetKey(f"afas_{entity}"))
        materialization = event.asset_materialization if event else None
        count = materialization.metadata.get("dagster/row_count") if materialization else None
        if count is not None:
            rows[entity] = int(count.value)
    return rows


def _complete_delta(afas: AfasClient, sources: AfasSources, mapping, state: SyncState, d: str, rows: pd.DataFrame,
                    related: dict[str, pd.DataFrame], table_rows: dict[str, int] | None = None,
                    ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], int]:
    """A delta's base rows completed: the records a joined row changed in this window points back to (a
    debtor's delivery address), and the records waiting for a retry, read from AFAS as they are now; then
    the joined rows they point to that the window did not hold (a contact's person, changed in another
    window). Returns the rows, the joined rows and the AFAS calls made. `table_rows` (per entity, the rows of its
    last full read) tells look-ups by key from a full read which is cheaper."""
    table_rows = table_rows or {}
    base_source = sources[ENTITY_SOURCE[mapping.base]]
    present = rows[base_source.key].astype(str) if len(rows.columns) else pd.Series(dtype=str)
    wanted = set(_pending_retries(state, d, exclude=present))
    for entity, back in BACK_REFERENCES.items():
        frame = related.get(entity)
        if frame is not None and len(frame.columns) and back in frame:
            wanted |= set(frame[back].dropna().astype(str)) - set(present)
    extra, lookups = read_by_keys(afas, base_source, wanted, table_rows=table_rows.get(ENTITY_SOURCE[mapping.base]))
    if len(extra):
        rows = pd.concat([rows, extra], ignore_index=True) if len(rows.columns) else extra
    completed = {}
    for entity, via in mapping.joined().items():
        have = related[entity]
        keys = rows[via] if via in rows else pd.Series(dtype=str)
        completed[entity], calls = complete_by_keys(afas, sources[ENTITY_SOURCE[entity]], have, keys,
                                                    table_rows=table_rows.get(ENTITY_SOURCE[entity]))
        lookups += calls
    return rows, completed, lookups


def _same_identity(state: SyncState, destination: Destination) -> None:
    """Stop before anything is read or written when the mapping keys the destination's records by another AFAS
    field than the sync state holds (its audience switched between contacts and debtors): contact 20002 and
    debtor 20002 are different people, and the state would take one for the other."""
    d, mapping = destination.name, destination.mapping
    wanted = mapping.external_id.column
    saved = state.identity(d, wanted)
    if saved != wanted:
        raise dg.Failure(
            description=f"{mapping.file or d}: external_id is {wanted}, but the sync state of {d} holds records "
                        f"keyed by {saved}; one state (and one {destination.title} audience) cannot hold both. "
                        f"Give the new audience its own: a new {destination.title} audience and a fresh sync state "
                        f"(AFAS_PIPELINE_STATE), or restore external_id: {saved}",
            allow_retries=False)


def _pending_retries(state: SyncState, d: str, exclude: pd.Series) -> list[str]:
    """Records the delta sends again though AFAS did not change them: refused earlier (not quarantined), or
    whose last write may not have arrived (a run died before the destination's answer was saved)."""
    rejected = state.rejected(d)  # the refused records only, never the whole state
    pending = set(rejected.loc[~rejected["quarantined"], "external_id"]) | set(state.in_doubt(d))
    return sorted(pending - set(exclude))


def _members_of(cadence: str, frame: pd.DataFrame) -> pd.Series | None:
    """The external ids a step asks the state about: a delta's own (an indexed look-up that costs what changed),
    none for a full sync (None: the whole state, read in one pass)."""
    return frame["external_id"].astype(str) if cadence == "delta" else None


def _quarantined(state: SyncState, d: str, external_ids: list[str] | None) -> frozenset[str]:
    rejected = state.rejected(d, external_ids)
    return frozenset(rejected.loc[rejected["quarantined"], "external_id"])


def _differing(before: pd.DataFrame, after: pd.DataFrame) -> set[str]:
    """The records whose opt-outs (`SyncState.optouts`) differ between `before` and `after`."""
    frames = [f for f in (before, after) if len(f)]
    if not frames:
        return set()
    either = pd.concat(frames, ignore_index=True)
    return set(either.loc[~either.duplicated(keep=False), "external_id"].astype(str))


def _read_again(compared: pd.DataFrame, state: SyncState, d: str, external_ids: list[str],
                keys: list[int | str], two_way: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """`compared` (the `state_columns` of the state's records, read whole) with the rows of `external_ids` as the
    state holds them now."""
    if not external_ids:
        return compared
    current = state_columns(state.records(d, external_ids, parsed=False, columns=STATE_COLUMNS), keys, two_way)
    kept = compared[~texts_in(compared["external_id"], pd.Series(external_ids, dtype="string"))]
    return pd.concat([kept, current], ignore_index=True)


def _address_holders(state: SyncState, d: str, plan: pd.DataFrame, every: pd.DataFrame | None) -> dict[str, str]:
    """Email hash -> the external id the state holds it for, of the addresses the plan sends: taken from `every`
    when it holds the `state_columns` of the state's records (a full sync's plan read them all; they are not read
    again), else looked up.
    Only those: a dictionary of every record's address took 0.17 s of a rerun at 100,000 contacts that sends
    nothing."""
    sending = plan.loc[plan["action"].isin(["create", "update"]), "email_hash"].dropna().astype(str)
    if every is not None:
        held = every.loc[texts_in(every["state_email_hash"], sending), ["state_email_hash", "external_id"]]
        return dict(zip(held["state_email_hash"].astype(str), held["external_id"].astype(str)))
    return state.holders(d, set(sending))


def plan_made_by_this_attempt(context: dg.AssetExecutionContext, made) -> bool:
    """Whether this step attempt sends a plan its own run made moments ago: not a step retry, and `made`, the latest
    materialization of the plan for this step's windows (`_plan_record`), is of this run. A plan made that way
    holds every opt-out its read of the feed saw; any other may be older than one."""
    return context.retry_number == 0 and made is not None and made.run_id == context.run.run_id


def _plan_record(context: dg.AssetExecutionContext, plan: dg.AssetKey):
    """The latest materialization of `plan` for this step's windows (a backfill's range: its first and last), the
    plan the step loads; None when there is none to be found (an unpartitioned run, a run deleted since)."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    window = context.partition_key_range
    latest = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=plan, asset_partitions=sorted({window.start, window.end})), limit=1).records
    return latest[0] if latest else None


def _leave_superseded(context: dg.AssetExecutionContext, state: SyncState, d: str, plan: pd.DataFrame, made,
                      cadence: str, keys: list, two_way: list[str]) -> tuple[pd.DataFrame, int]:
    """A plan made by another run or attempt, with the rows it must neither send nor save marked `superseded`:
    every row once a later plan of the destination exists (that run planned from AFAS as it was later, and may
    have found nothing to do for a record whose AFAS values this plan still holds from before), else the rows
    whose state row is no longer the one the plan was made against (`plan.superseded`) and those of a person
    erased since (P2). They are the next run's to plan. `made`: the plan's materialization (`_plan_record`). Returns
    the plan and how many rows were marked."""
    later = made is None or any(
        context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(f"{d}_sync_plan{CADENCES[c]['suffix']}"),
                                  after_storage_id=made.storage_id), limit=1).records
        for c in CADENCES)
    if later:
        stale = pd.Series(True, index=plan.index)
    else:
        records = state.records(d, _members_of(cadence, plan), parsed=False, columns=STATE_COLUMNS)
        stale = superseded(plan, records, keys, two_way)
        # P2: a person erased since the plan (the erasure job ran between) is neither created nor changed again;
        # one the state never held looks the same in it then and now.
        stale |= tombstoned_ids(plan["external_id"], d, state.tombstones())
    if not stale.any():
        return plan, 0
    plan = plan.copy()
    plan.loc[stale.to_numpy(), "action"] = "superseded"
    why = "a later run planned this destination since" if later else "the state moved on from them since"
    context.log.warning(f"sync: {int(stale.sum())} of {len(plan)} planned records superseded ({why}): neither sent "
                        "nor saved; the next run plans them from AFAS as it is then")
    return plan, int(stale.sum())


class FeedJudged(NamedTuple):
    """What `refresh_optouts` found: opt-outs, changes read, and the records whose state rows it changed (made
    inactive, or in doubt after a write in flight)."""

    optouts: int
    read: int
    changed: list[str]


class FeedFrame(NamedTuple):
    """A destination's change feed as read (`read_change_feed`): its rows (a `FeedStates.frame`), how many, the
    destination's clock when the read began, and where the read began."""

    frame: pd.DataFrame
    read: int
    server_time: datetime | None
    start: datetime


def feed_start(state: SyncState, d: str, now: datetime) -> datetime:
    """Where the next read of `d`'s change feed begins: FEED_OVERLAP before where the last one ended."""
    since = state.watermark(d, "contact_updates")
    return (since - FEED_OVERLAP) if since else now - FEED_FIRST_LOOKBACK


def read_change_feed(destination: Destination, client, start: datetime, now: datetime) -> FeedFrame:
    """The destination's change feed from `start` to `now`, page by page, as columns: the first read after a full
    sync reads all of its writes, which must not be held as an object per record. Touches no state (a full sync's
    plan reads it in a thread while it reads the state)."""
    pages, read, server_time = [], 0, None
    for number, page in enumerate(destination.change_pages(client, start, now)):
        server_time = page.server_time if number == 0 else server_time
        read += len(page)
        pages.append(page)
    return FeedFrame(FeedStates.frame(pages), read, server_time, start)


def refresh_optouts(destination: Destination, client, state: SyncState, now: datetime,
                    step: str = "sync_plan", records: pd.DataFrame | None = None,
                    fed: FeedFrame | None = None) -> FeedJudged:
    """Read the destination's change feed since the last read and remember what happened there: permissions
    switched off (C1) and records made inactive (R11). `records`: the `state_columns` of the state's records of the
    destination, read whole just before (a full sync's plan), to take what was last sent from; else the state is
    asked. `fed`: the feed already read from `feed_start` to `now` (`read_change_feed`); else it is read here.

    A permission that is off in the destination while we last sent it on was switched off by someone there:
    an opt-out, dated by the record's last change. It is remembered for the plan (C1) and queued for the
    write-back to AFAS (R12), so that it reaches AFAS even when this run's own write to the contact restamps
    its last change, or switches the same permission off. A record the destination made unmailable has bounced
    (or was inactivated): its current address is the bounced one.

    Writes a run started and never saw answered (it died, or the destination went away) count as sent when the
    contact changed after them: an opt-out after a write we may have made is still an opt-out. Those
    records are then sent again by the next plan. All of it is saved with the new watermark in one
    transaction: the feed is never marked read past what was recorded. `step` (the plan, or the sync reading
    again before it sends) names the fail point `<d>_<step>.feed_recorded`.
    """
    d = destination.name
    fed = read_change_feed(destination, client, feed_start(state, d, now), now) if fed is None else fed
    feed, read, server_time, start = fed
    del fed
    stamped = feed["changed_at"][feed["changed_at"] > 0]
    latest = from_epoch_us(stamped.max()) if len(stamped) else None
    keys = [column.removeprefix("off:") for column in feed.columns if column.startswith("off:")]
    # Each record in its latest version (the later row), kept when it matters here: inactive, or a permission off
    # (a few rows of the echo of a full sync's writes, which the caller may still hold whole).
    matters = ~feed["mailable"].to_numpy(dtype=bool)
    for key in keys:
        matters |= feed[f"off:{key}"].to_numpy(dtype=bool)
    feed = feed[~feed["external_id"].duplicated(keep="last").to_numpy() & matters]
    inactive = feed.loc[~feed["mailable"], "external_id"].tolist()
    in_flight = state.writes_in_flight(d)
    # The latest write in flight per record: (the feed's mark when it was planned, the permissions it sends).
    intended = {i: (entry.feed_mark, intent["permissions"]) for entry in in_flight for i, intent in entry.intents.items()}
    switched_off = feed[feed[[f"off:{key}" for key in keys]].any(axis=1)] if keys else feed.iloc[:0]
    sent_on = _sent_on(state, d, switched_off["external_id"], keys, records)
    in_flight_ids = pd.Index(list(intended), dtype="string")
    optouts = []
    for key in keys:
        candidates = switched_off[switched_off[f"off:{key}"]]
        ours = texts_in(candidates["external_id"], sent_on[key])
        for n in np.flatnonzero(texts_in(candidates["external_id"], in_flight_ids)):
            mark, intent = intended[candidates["external_id"].iat[n]]
            if key in intent and (mark is None or candidates["changed_at"].iat[n] > epoch_us(mark)):
                ours[n] = intent[key].get("sent") is True  # what we may have written, and the contact changed since
        optouts += [(external_id, key, from_epoch_us(changed)) for external_id, changed
                    in zip(candidates["external_id"][ours], candidates["changed_at"][ours])]
    # The watermark is in the destination's clock, as a clock of ours that runs ahead of its clock would move the
    # next read past changes it stamps later: the latest change it stamped, or, when later, its clock when the
    # read began, but not past the read's end (`now`). So a quiet account does not read its last changes (such
    # as a full sync's own writes) again on every run, only within FEED_OVERLAP of them.
    stamps = [t for t in (latest, server_time and min(server_time, now)) if t is not None]
    seen_until = max(stamps) if stamps else start
    with state.transaction():
        state.record_optouts(d, optouts)
        state.record_feedback(d, [(i, f"optout:{k}", iso(when)) for i, k, when in optouts], "pending")
        state.mark_bounced(d, inactive)
        state.resolve_in_doubt(d, in_flight)
        failpoint(f"{d}_{step}.feed_recorded")
        state.set_watermark(d, "contact_updates", seen_until)
    return FeedJudged(len(optouts), read, sorted(set(inactive) | set(intended)))


def _sent_on(state: SyncState, d: str, external_ids: pd.Series, keys: list[str],
             records: pd.DataFrame | None = None) -> dict[str, pd.Index]:
    """Per permission key, the records of `external_ids` we last sent that permission on: from `records` (the
    `state_columns` of the state's records, read whole) when given, else read from the state."""
    if external_ids.empty or not keys:
        return {key: pd.Index([], dtype="string") for key in keys}
    if records is None:
        sent = state_columns(state.records(d, external_ids.tolist(), parsed=False, columns=("permissions",)), keys)
    else:
        sent = records.loc[texts_in(records["external_id"], external_ids)]
    ids = sent["external_id"].astype("string")
    return {key: pd.Index(ids[sent[state_sent_column(key)].fillna(False).astype(bool)]) for key in keys}


def _audience_checks(rows: pd.DataFrame, input_rows: int, read: pd.DataFrame, key: str,
                     contact_kinds: bool) -> Iterator[dg.AssetCheckResult]:
    members = rows.loc[rows["excluded_by"].isna(), ["external_id", "email"]]  # not a copy of every column
    bad_email = ~valid_emails(members["email"])
    yield dg.AssetCheckResult(
        check_name="r3_every_member_has_a_valid_email", passed=not bad_email.any(),
        metadata={"offenders": int(bad_email.sum()), "offender_keys": hashed_sample(members.loc[bad_email, "external_id"]),
                  "excluded_R3": int((rows["excluded_by"] == "R3").sum()),
                  "excluded_R3_syntax": int((rows["excluded_by"] == "R3-syntax").sum())},
    )
    if contact_kinds:
        # The kind of each member's latest row as read; a member the read does not hold, or holds without a kind,
        # is no person at an organisation either.
        kinds = latest_texts(members["external_id"], read[key], read["ContactKind"])
        not_prs = pc.fill_null(pc.not_equal(kinds, "PRS"), True).to_numpy(zero_copy_only=False)
        yield dg.AssetCheckResult(
            check_name="r4_only_persons_at_organisations", passed=not not_prs.any(),
            metadata={"offenders": int(not_prs.sum()), "offender_keys": hashed_sample(members.loc[not_prs, "external_id"]),
                      "excluded_R4": int((rows["excluded_by"] == "R4").sum())},
        )
    duplicate_ids = repeated_texts(members["external_id"])
    not_normalised = members["email"].notna() & (members["email"] != members["email"].str.strip().str.lower())
    shared = repeated_texts(members["email"])
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
