"""Destination -> AFAS: opt-outs, opt-ins, bounces and two-way fields flow back every 15 minutes (R11-R16, C1).

Per 15-minute window, after that window's AFAS -> destination delta (`<d>_sync_delta`, so our own writes of
the window are known and not taken for changes):
- `<d>_optout_feedback`: the recipients' permission changes (opt-outs, opt-ins) and edits of two-way fields
  (`direction: both`) in the destination's change feed, read from 15 minutes before the window. Echoes of our
  own writes are not events.
- `<d>_bounce_feedback`: the bounces the destination reports, read from 24 hours before the window, so a
  bounce reported late still arrives.
Both leave out the events the ledger in the sync state already holds as delivered, and put theirs into the
ledger (pending) before anything is written to AFAS, so a write-back that dies or fails is finished by a
later run.
- `<d>_afas_write_back`: those events, the ones still pending from earlier runs and the reactivations the
  sync queued (R11: clear the bounce detail), written to AFAS with UpdateConnector PUTs: only mapped
  write-back fields, only changed entities, never a create. A refused call becomes a rejected record
  (destination "afas", with AFAS's profitLogReference), retried next run.
"""


from datetime import datetime, timedelta, timezone
from time import perf_counter

import dagster as dg
import pandas as pd

from afas_pipeline.afas.assets import OWNERS
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.errors import AfasError, AfasUnavailable, is_refusal
from afas_pipeline.afas.lookups import read_by_keys
from afas_pipeline.afas.partitions import DELTA_BACKFILL, DELTA_POOL, delta_partitions
from afas_pipeline.afas.sources import AfasSources
from afas_pipeline.afas.updates import GUARDS, Write, guard, write_backs
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.privacy import hashed_sample
from afas_pipeline.mapping.models import ENTITY_SOURCE
from afas_pipeline.retries import retry_transient_failures
from afas_pipeline.sync.audience import field_value
from afas_pipeline.sync.destination import Destination
from afas_pipeline.sync.feedback import (
    EVENT_COLUMNS, bounce_events, desired_values, destination_events, feedback_lag_minutes, not_delivered, value_text,
)
from afas_pipeline.sync.state import SyncState

#: How far before its window each read starts: destinations stamp changes a moment late, and report bounces
#: up to a day late. Reading an event twice is harmless: the ledger delivers it once.
UPDATES_OVERLAP = timedelta(minutes=15)
BOUNCES_OVERLAP = timedelta(hours=24)
#: Where rejected write-backs are kept in the sync state.
AFAS = "afas"
QUARANTINE_AFTER = 5
#: Feedback lag (an unsubscribe or bounce in the destination until it is in AFAS): a warning past this at p95.
FEEDBACK_LAG_CHECK = "feedback_lag_p95_within_30_min"
FEEDBACK_LAG_WARN_MINUTES = 30


class WriteBackConfig(dg.Config):
    dry_run: bool = False
    """Compute and check the calls, write nothing, change no state."""


def build_feedback_assets(destination: Destination, sources: AfasSources,
                          after: dg.AssetKey) -> list[dg.AssetsDefinition]:
    """The way back, run after `after` (the 15-minute AFAS -> destination sync) of the same window."""
    d, title, mapping = destination.name, destination.title, destination.mapping
    base = sources[ENTITY_SOURCE[mapping.base]]  # whose fields the write-back reads and writes
    common = dict(group_name=d, owners=OWNERS, partitions_def=delta_partitions, backfill_policy=DELTA_BACKFILL,
                  pool=DELTA_POOL)
    two_way = mapping.two_way_fields()
    write_back_name = f"{d}_afas_write_back"
    # Both feeds run after the window's sync to the destination, read it and keep their events in the ledger.
    feed = dict(deps=[after], kinds={destination.kind, "pandas", "parquet"}, required_resource_keys={"sync_state", d},
                **common)

    @dg.asset(
        name=f"{d}_optout_feedback",
        description=(
            f"Opt-outs, opt-ins and profile edits in {title} per 15-minute window (R12), read after that window's "
            f"sync to {title}: permissions that differ from what the sync last sent (echoes of our own writes are "
            "not events) and edits of two-way fields (a value whose hash differs from the one last agreed), read "
            "15 minutes back and de-duplicated against the delivered-event ledger. Keys, kinds, times and hashes; "
            "the new value only for a two-way field."
        ),
        **feed,
    )
    @retry_transient_failures
    def optout_feedback(context: dg.AssetExecutionContext) -> dg.Output:
        window = context.partition_time_window
        state = context.resources.sync_state.open()
        changed = destination.changes(getattr(context.resources, d), window.start - UPDATES_OVERLAP, window.end)
        records = {r.external_id: {"permissions": r.permissions, "fields": r.fields} for r in
                   state.records(d, [c.external_id for c in changed]).itertuples(index=False)}
        events, counts = destination_events(changed, records, destination.permission_keys, two_way)
        return _fresh_events(context, state, d, events[EVENT_COLUMNS], contacts_changed=counts["contacts"],
                             echoes_or_known=counts["echoes"], never_synced=counts["unknown"], events_read=len(events))

    @dg.asset(
        name=f"{d}_bounce_feedback",
        description=(
            f"Bounces {title} reports per 15-minute window (R11, R16): hard and soft, with the hash of the address "
            "that bounced, read 24 hours back (bounces are reported late) and de-duplicated against the "
            "delivered-event ledger. Keys, kinds, times and hashes only."
        ),
        **feed,
    )
    @retry_transient_failures
    def bounce_feedback(context: dg.AssetExecutionContext) -> dg.Output:
        window = context.partition_time_window
        state = context.resources.sync_state.open()
        bounces = destination.bounces(getattr(context.resources, d), window.start - BOUNCES_OVERLAP, window.end)
        return _fresh_events(context, state, d, bounce_events(bounces)[EVENT_COLUMNS], bounces_read=len(bounces))

    @dg.asset(
        name=write_back_name,
        description=(
            f"{title}'s events written back to AFAS (R11-R16): permission values, two-way fields and bounce "
            "detail (date, soft/hard, hard-bounce flag; cleared when the sync reactivates a contact after a new "
            f"address, R11) through the write-backs of {mapping.file or f'mappings/{d}.yaml'}, one PUT per entity whose mapped "
            "fields changed (R15), never a create (R14). C1: an opt-out wins a tie "
            "and a stale switch-on is never written. Refused calls are kept with AFAS's profitLogReference "
            "and retried next run; the sync state learns what AFAS now holds so nothing echoes back."
        ),
        ins={"optouts": dg.AssetIn(f"{d}_optout_feedback"), "bounces": dg.AssetIn(f"{d}_bounce_feedback")},
        kinds={"afas", "pandas", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(name, asset=write_back_name, blocking=True, description=description)
            for name, description in (
                ("no_protected_field", "R13: no company name, street, house number, postal code or city in any "
                                       "payload; a payload with one is stopped before it is sent."),
                ("no_create", "R14: every call is a PUT that identifies an existing contact; anything else is stopped."),
                ("only_mapped_fields", "R13: every field written is a write-back of the mapping (text, yes/no, "
                                       "or a bounce date); anything else is stopped."),
            )
        ] + [dg.AssetCheckSpec(FEEDBACK_LAG_CHECK, asset=write_back_name, blocking=False, description=(
            f"Warns when the 95th percentile of the feedback lag (an event in {title} until its write reached "
            f"AFAS, over the events written in the run) exceeds {FEEDBACK_LAG_WARN_MINUTES} minutes."))],
        required_resource_keys={"afas", "sync_state", d},
        **common,
    )
    @retry_transient_failures
    def afas_write_back(context: dg.AssetExecutionContext, config: WriteBackConfig, optouts: pd.DataFrame,
                        bounces: pd.DataFrame):
        started = perf_counter()
        seconds: dict[str, float] = {}  # where the run's time went, for the UI's plots
        afas: AfasClient = context.resources.afas
        state = context.resources.sync_state.open()
        changes = pd.concat([optouts.reindex(columns=EVENT_COLUMNS), bounces.reindex(columns=EVENT_COLUMNS)],
                            ignore_index=True)
        # The ledger's pending events: the ones this run's feeds just put there, and those left by earlier runs.
        pending = state.feedback_events(d, status="pending")
        earlier = ~pd.MultiIndex.from_frame(pending[["external_id", "kind", "event_at"]].astype(str)).isin(
            pd.MultiIndex.from_frame(changes[["external_id", "kind", "event_at"]].astype(str)))
        events = pd.concat([changes.reindex(columns=EVENT_COLUMNS).astype("string"),
                            pending.reindex(columns=EVENT_COLUMNS).astype("string")],
                           ignore_index=True).drop_duplicates(["external_id", "kind", "event_at"], keep="first")
        events = not_delivered(events, state.feedback_events(d, keys=_keys(events)))
        events, refetched = _field_values(destination, getattr(context.resources, d), state, events, dict(two_way))
        optouts = {(str(r.external_id), str(r.permission)): r.opted_out_at
                   for r in state.optouts(d, set(events["external_id"].astype(str))).itertuples(index=False)}
        # The optouts table keeps the latest opt-out; the events of this run count too.
        for r in events[events["kind"].str.startswith("optout")].itertuples(index=False):
            key, when = (str(r.external_id), r.kind.split(":", 1)[1]), pd.Timestamp(r.event_at)
            optouts[key] = max(optouts.get(key, when), when)
        desired = desired_values(events, mapping, optouts, _afas_on_since(state, d, events))
        stopped = {name: 0 for name in GUARDS}
        outcome: dict[str, str] = {}  # external id -> delivered | unchanged | not_in_afas | rejected | stopped
        references: dict[str, str | None] = {}
        writes: list[Write] = []
        calls_sent = 0
        unanswered: list[AfasError] = []
        seconds["prepare"] = perf_counter() - started
        # AFAS that cannot be read is no verdict on any record: the step fails, the events stay pending.
        rows, _ = read_by_keys(afas, base, desired)
        seconds["read_afas"] = perf_counter() - started - seconds["prepare"]
        writes, no_write = write_backs(desired, rows, mapping, base.key)
        outcome.update(no_write)
        allowed = []
        for write in writes:
            failed = guard(write, mapping)
            for name in failed:
                stopped[name] += 1
            if failed:
                outcome[write.external_id] = "stopped"
                if not config.dry_run:  # C4: kept where an operator sees it, retried next run
                    state.record_rejections(AFAS, [{"external_id": write.external_id, "status_code": None,
                                                    "reason": "stopped by " + ", ".join(failed)}], QUARANTINE_AFTER)
            else:
                allowed.append(write)
        if not config.dry_run:
            calls_sent = len(allowed)
            sending = perf_counter()
            results = _send(afas, allowed)
            seconds["send"] = perf_counter() - sending
            for write, error in results:
                if error is None:
                    outcome.setdefault(write.external_id, "delivered")
                elif is_refusal(error):
                    outcome[write.external_id], references[write.external_id] = "rejected", error.profit_log_reference
                    _reject(state, write.external_id, error, False)
                else:  # an outage: not the record's fault, so not counted towards quarantine
                    outcome[write.external_id] = "unanswered"
                    unanswered.append(error)
        lags = feedback_lag_minutes(events, {i for i, o in outcome.items() if o == "delivered"},
                                    datetime.now(timezone.utc))
        if not config.dry_run:
            failpoint("afas_write_back.before_ledger")
            remembering = perf_counter()
            _remember(state, d, events, desired, outcome)
            seconds["state"] = perf_counter() - remembering
        if unanswered:
            raise AfasUnavailable(
                f"{len(unanswered)} of {calls_sent} write-back calls got no answer from AFAS ({unanswered[0]}); "
                "their events stay pending and the next run delivers them", connector=unanswered[0].connector,
                status_code=unanswered[0].status_code)
        counts = pd.Series(list(outcome.values()), dtype="string").value_counts()
        metadata = {
            "dagster/row_count": len(events),
            "events": len(events),
            "events_pending_from_earlier_runs": int(earlier.sum()),
            **{f"events/{k}": int(v) for k, v in events["kind"].value_counts().items()},
            "field_values_reread": refetched,
            "contacts": len(desired),
            "calls_planned": len(writes),
            "calls_sent": calls_sent,
            **{f"contacts/{k}": int(v) for k, v in counts.items()},
            "held_by_consent": sum(d.held for d in desired.values()),
            **{f"stopped/{k}": v for k, v in stopped.items()},
            "dry_run": config.dry_run,
            **{f"seconds/{k}": round(v, 3) for k, v in seconds.items()},
            **_lag_metadata(lags),
        }
        context.log.info(f"{write_back_name}: {metadata}")
        out = events.assign(outcome=events["external_id"].map(outcome).astype("string"),
                            profit_log_reference=events["external_id"].map(references).astype("string"))
        yield dg.Output(out.drop(columns=["email_hash", "value"]), metadata=metadata)
        offenders = [w.external_id for w in writes if guard(w, mapping)]
        for name in GUARDS:
            yield dg.AssetCheckResult(check_name=name, passed=stopped[name] == 0,
                                      metadata={"stopped": stopped[name], "offender_keys": hashed_sample(offenders)})
        yield _lag_check(lags)

    return [optout_feedback, bounce_feedback, afas_write_back]


def _lag_metadata(lags: pd.Series) -> dict:
    """Events counted, p95 and max in minutes; p95 and max empty, not 0, in a run that wrote no event (the UI's
    plot then shows a gap, not a perfect lag)."""
    def minutes(value: float) -> dg.MetadataValue:
        return dg.MetadataValue.float(round(float(value), 1)) if len(lags) else dg.MetadataValue.null()

    return {"feedback_lag_events": len(lags), "feedback_lag_p95_minutes": minutes(lags.quantile(0.95)),
            "feedback_lag_max_minutes": minutes(lags.max())}


def _lag_check(lags: pd.Series) -> dg.AssetCheckResult:
    """Passes with no events; a warning, never blocking, when p95 exceeds the bound."""
    p95 = float(lags.quantile(0.95)) if len(lags) else 0.0
    return dg.AssetCheckResult(
        check_name=FEEDBACK_LAG_CHECK, passed=p95 <= FEEDBACK_LAG_WARN_MINUTES, severity=dg.AssetCheckSeverity.WARN,
        description=(f"p95 feedback lag {p95:.1f} min over {len(lags)} events written to AFAS (bound "
                     f"{FEEDBACK_LAG_WARN_MINUTES} min)" if len(lags) else "no events written to AFAS in this run"),
        metadata=_lag_metadata(lags))


def _fresh_events(context: dg.AssetExecutionContext, state: SyncState, d: str, events: pd.DataFrame,
                  **counts: int) -> dg.Output:
    """The events the ledger does not hold as delivered, put into it as pending before anything is written
    to AFAS: should the write-back die or fail, a later run delivers them, however far its own window lies
    from theirs (C4). Counted in the metadata with what the feed read (`counts`)."""
    fresh = not_delivered(events, state.feedback_events(d, keys=_keys(events)))
    state.record_feedback(d, _keys(fresh), "pending")
    metadata = {"dagster/row_count": len(fresh), **counts, "already_delivered": len(events) - len(fresh),
                **{f"events/{k}": int(v) for k, v in fresh["kind"].value_counts().items()}}
    context.log.info(f"{context.asset_key.to_user_string()}: {metadata}")
    return dg.Output(fresh.astype("string"), metadata=metadata)


def _afas_on_since(state: SyncState, d: str, events: pd.DataFrame) -> dict[tuple[str, str], pd.Timestamp]:
    """Per (external id, permission key) of the events' contacts, since when the syncs have seen AFAS's own
    permission field on."""
    records = state.records(d, set(events["external_id"]))
    return {(str(r.external_id), str(key)): pd.Timestamp(entry["on_since"])
            for r in records.itertuples(index=False) for key, entry in r.permissions.items()
            if isinstance(entry, dict) and entry.get("afas") is True and entry.get("on_since")}


def _keys(events: pd.DataFrame) -> list[tuple[str, str, str]]:
    return list(zip(events["external_id"], events["kind"], events["event_at"]))


def _field_values(destination: Destination, client, state: SyncState, events: pd.DataFrame,
                  kinds: dict[str, str]) -> tuple[pd.DataFrame, int]:
    """Two-way field events without their value (pending from an earlier run: the ledger keeps no values;
    or a value emptied in the destination) get the value the destination holds now. One whose record the
    destination no longer has is left out of this run (it stays pending in the ledger). Returns the events
    and how many records were read."""
    kind = events["kind"].fillna("")
    missing = kind.str.startswith("field:") & events["value"].isna()
    if not missing.any():
        return events, 0
    ids = sorted(set(events.loc[missing, "external_id"]))
    saved = state.records(destination.name, ids)
    keys = dict.fromkeys(ids)
    keys.update({str(r.external_id): None if pd.isna(r.destination_key) else str(r.destination_key)
                 for r in saved.itertuples(index=False)})
    current = destination.current_fields(client, keys)
    events = events.copy()
    unresolved = []
    for i in events.index[missing]:
        name = str(events.at[i, "kind"]).split(":", 1)[1]
        fields = current.get(events.at[i, "external_id"])
        if fields is None or name not in kinds:
            unresolved.append(i)
            continue
        # An empty property is not listed: its value is none.
        events.at[i, "value"] = value_text(field_value(fields.get(name), kinds[name]))
    return events.drop(index=unresolved).reset_index(drop=True), len(ids)


def _send(afas: AfasClient, writes: list[Write]) -> list[tuple[Write, AfasError | None]]:
    """The PUTs side by side, at most the client's concurrency cap in flight."""
    def put(write: Write):
        answer = afas.update(write.connector, write.body())
        failpoint("afas_write_back.put_answered")
        return answer

    results = afas.each(put, writes)
    return [(write, error) for write, (_, error) in zip(writes, results)]


def _reject(state: SyncState, external_id: str, error: AfasError, dry_run: bool) -> None:
    if dry_run:
        return
    state.record_rejections(AFAS, [{
        "external_id": external_id,
        "reason": error.rejection_reason(),
        "status_code": error.status_code,
    }], QUARANTINE_AFTER)


def _remember(state: SyncState, d: str, events: pd.DataFrame, desired: dict, outcome: dict[str, str]) -> None:
    """The ledger, the rejected records and the sync state after a run."""
    done = {i for i, o in outcome.items() if o in ("delivered", "unchanged")}
    keys = _keys(events)
    state.record_feedback(d, [k for k in keys if k[0] in done], "delivered")
    state.record_feedback(d, [k for k in keys if outcome.get(k[0]) == "not_in_afas"], "skipped")
    state.record_feedback(d, [k for k in keys if outcome.get(k[0]) in ("rejected", "stopped", "unanswered")],
                          "pending")
    state.clear_rejections(AFAS, done)
    state.update_after_write_back(
        d,
        permissions={i: desired[i].permissions for i in done if desired[i].permissions},
        switched_at={i: desired[i].switched_at for i in done if desired[i].switched_at},
        bounced={i: desired[i].bounced_email_hash for i in done if desired[i].bounced_email_hash},
        fields={i: desired[i].fields for i in done if desired[i].fields},
    )
    state.record_optouts(d, [
        (str(r.external_id), r.kind.split(":", 1)[1], pd.Timestamp(r.event_at).to_pydatetime())
        for r in events.itertuples(index=False) if r.external_id in done and str(r.kind).startswith("optout")
    ])
