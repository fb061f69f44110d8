"""Spotler -> AFAS: mailing history as dossier items (R17).

`mailing_history`, per 15-minute window: the mails Spotler sent (`mailing-interaction/sent`, by change date,
read from 15 minutes before the window) become one AFAS dossier item (KnSubject POST, linked to the contact
person) per mailing per contact, with name, subject, send date and the link to the personal online version;
the interactions the mapping chooses (opened, clicked, bounced) are appended to that item as dated reactions
(KnSubject PUT with @SbId). Before any POST the mapping's dossier item type is looked up in AFAS
(`Profit_SubjectTypes`); when AFAS does not have it, nothing is POSTed, the items wait in the sync state
and the blocking check `subject_type_exists` fails the run. The sync state keeps (mailing id, external
id) -> SbId and the reactions added, so a rerun or backfill never makes a second item. A refused POST or
PUT becomes a rejected record (destination "afas") and is retried next run; a POST whose answer was lost
is looked up in AFAS (by the item's marker line) before it is sent again. Keys, counts and hashes only in logs and metadata.
"""


from datetime import timedelta

import dagster as dg
import pandas as pd

from afas_pipeline.afas.assets import OWNERS
from afas_pipeline.afas.client import AfasClient, Condition, Filter, Op
from afas_pipeline.afas.errors import AfasError
from afas_pipeline.afas.partitions import DELTA_BACKFILL, delta_partitions
from afas_pipeline.afas.sources import AfasSources
from afas_pipeline.lib.privacy import hashed_sample
from afas_pipeline.mapping.drift import SUBJECT_TYPES_CONNECTOR, live_subject_type_drift
from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.spotler.assets import DESTINATION, GROUP, read_by_keys
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline.sync.mailing_history import (
    ITEM_COLUMNS, find_item, ms_to_utc, reaction_body, reactions, sent_items, subject_body, with_reactions,
)
from afas_pipeline.sync.state import SyncStateResource

#: How far before its window the feeds are read: Spotler stamps changes a moment late. Reading an
#: interaction twice is harmless: the sync state adds it once.
HISTORY_OVERLAP = timedelta(minutes=15)
#: Where refused dossier-item calls are kept in the sync state (like the write-back's).
AFAS = "afas"
QUARANTINE_AFTER = 5
SUBJECTS = "ProfitSubjects"
LOOKUP_CHUNK = 50


def rejection_key(mailing_id: str, external_id: str) -> str:
    return f"mailing_history:{mailing_id}:{external_id}"


def build_mailing_history_asset(mapping: DestinationMapping, sources: AfasSources,
                                after: dg.AssetKey) -> list[dg.AssetsDefinition]:
    """The mailing history, run after `after` (the 15-minute AFAS -> Spotler sync) of the same window."""
    config = mapping.mailing_history
    if config is None:
        return []

    @dg.asset(
        name="mailing_history",
        description=(
            "R17: Spotler's mailings as AFAS dossier items, one per mailing per contact (KnSubject linked to "
            "the contact person) with mailing name, subject, send date and the link to the personal online "
            f"version; {', '.join(config.interactions) or 'no'} interactions appended as dated reactions. "
            f"Mailings: {config.mailings} (campaign mails always); only those sent at or after "
            f"{config.enabled_from.isoformat()}. Idempotent by (mailing id, external id) -> SbId in the sync "
            "state; refused calls are kept as rejected records and retried. Keys and counts only."
        ),
        group_name=GROUP,
        owners=OWNERS,
        partitions_def=delta_partitions,
        backfill_policy=DELTA_BACKFILL,
        deps=[after],
        kinds={"afas", "spotler", "pandas", "parquet"},
        check_specs=[dg.AssetCheckSpec(
            "subject_type_exists", asset="mailing_history", blocking=True,
            description=f"R17: mailing_history.subject_type ({config.subject_type}) is a dossier item type AFAS has "
                        f"(GetConnector {SUBJECT_TYPES_CONNECTOR}); otherwise no dossier item is POSTed and the items "
                        "wait in the sync state for the next run.")],
    )
    def mailing_history(context: dg.AssetExecutionContext, afas: AfasClient, spotler: SpotlerClient,
                        sync_state: SyncStateResource):
        window = context.partition_time_window
        start, end = window.start - HISTORY_OVERLAP, window.end
        state = sync_state.open()

        # 1. What was sent in the window, and what still waits for its POST from earlier runs (unless an
        #    operator has to look at it first: quarantined after QUARANTINE_AFTER refusals).
        sent = spotler.interactions("sent", change_start=start, change_end=end)
        campaign_ids = _campaign_ids(spotler, sent) if config.mailings == "trend_reports" else set()
        items, skipped = sent_items(sent, config, campaign_ids)
        item_keys = list(zip(items["mailing_id"], items["external_id"]))
        known = state.mailing_items(DESTINATION, item_keys)
        made = {(m, e) for m, e, s in zip(known["mailing_id"], known["external_id"], known["sbid"]) if s is not None}
        new = _keep(items, [k not in made for k in item_keys])
        rejected_now = state.rejected(AFAS)
        quarantined = set(rejected_now.loc[rejected_now["quarantined"], "external_id"])
        waiting = state.mailing_items(DESTINATION, pending_only=True)
        waiting = _keep(waiting, [rejection_key(m, e) not in quarantined
                                  for m, e in zip(waiting["mailing_id"], waiting["external_id"])])
        new = _keep(new, [rejection_key(m, e) not in quarantined for m, e in zip(new["mailing_id"], new["external_id"])])
        waiting_keys = set(zip(waiting["mailing_id"], waiting["external_id"]))
        retry_keys = waiting_keys - set(zip(new["mailing_id"], new["external_id"]))
        retries = _reread(spotler, config, waiting, retry_keys)
        todo = pd.concat([new, retries], ignore_index=True) if len(retries) else new

        # 2. The dossier items: found again in AFAS (a retried POST whose answer was lost) or POSTed.
        outcome: dict[tuple[str, str], str] = {}
        created: list[tuple[str, str, str, str | None]] = []
        rejected: list[tuple[tuple[str, str], AfasError | None]] = []
        posts = stopped = 0
        drift: list[str] | None = None  # None: nothing to create, the type was not looked up
        if len(todo):
            try:
                drift = live_subject_type_drift(afas, mapping)
                contacts, _ = read_by_keys(afas, sources.contacts, todo["external_id"])
                retried = _keep(todo, [k in waiting_keys for k in zip(todo["mailing_id"], todo["external_id"])])
                found = _find_existing(afas, retried, config.subject_type)
            except AfasError as exc:  # AFAS could not be read: every item waits for the next run (C4)
                contacts, found = None, {}
                for item in todo.to_dict("records"):
                    key = (item["mailing_id"], item["external_id"])
                    outcome[key] = "rejected"
                    created.append((*key, item["sent_at"], None))
                    rejected.append((key, exc))
            if contacts is not None:
                by_id = {str(r["ContactId"]): r for r in contacts.to_dict("records")} if len(contacts) else {}
                to_post = []
                for item in todo.to_dict("records"):
                    key = (item["mailing_id"], item["external_id"])
                    if item["external_id"] not in by_id:
                        outcome[key] = "not_in_afas"
                    elif key in found:
                        outcome[key] = "found_in_afas"
                        created.append((*key, item["sent_at"], found[key]))
                    elif drift:  # AFAS would refuse the type: not sent, kept waiting for the next run
                        outcome[key] = "stopped"
                        created.append((*key, item["sent_at"], None))
                        stopped += 1
                    else:
                        to_post.append((item, subject_body(item, by_id[item["external_id"]], config.subject_type)))
                posts = len(to_post)
                for (item, _), (sbid, error) in zip(to_post, _parallel(afas, [b for _, b in to_post], afas.insert)):
                    key = (item["mailing_id"], item["external_id"])
                    if error is None and sbid:
                        outcome[key] = "created"
                        created.append((*key, item["sent_at"], sbid))
                    else:
                        outcome[key] = "rejected"
                        created.append((*key, item["sent_at"], None))  # remembered: retried next run
                        rejected.append((key, error))
        state.save_mailing_items(DESTINATION, created)
        gone = [k for k, o in outcome.items() if o == "not_in_afas"]
        state.drop_waiting_mailing_items(DESTINATION, gone)
        state.clear_rejections(AFAS, [rejection_key(*k) for k in gone])
        for key in set(zip(items["mailing_id"], items["external_id"])) - set(outcome):
            outcome[key] = "exists"
        item_sbid = {**{(m, e): s for m, e, s in zip(known["mailing_id"], known["external_id"], known["sbid"])},
                     **{(m, e): s for m, e, _, s in created}}

        # 3. Reactions: the chosen interactions of the window, for items we hold, added to their text.
        read = []
        for kind in config.interactions:
            read += reactions(kind, spotler.interactions(kind, change_start=start, change_end=end))
        held_now = state.mailing_items(DESTINATION, {(r[0], r[1]) for r in read})
        held = set(zip(held_now["mailing_id"], held_now["external_id"]))
        fresh = [r for r in read if (r[0], r[1]) in held]
        state.record_mailing_reactions(DESTINATION, fresh, "pending")
        pending = state.mailing_reactions(DESTINATION, status="pending")
        items_now = state.mailing_items(DESTINATION, set(zip(pending["mailing_id"], pending["external_id"])))
        sbid_of = {(r.mailing_id, r.external_id): r.sbid for r in items_now.itertuples(index=False)}
        ready = _keep(pending, [sbid_of.get((m, e)) is not None for m, e in zip(pending["mailing_id"], pending["external_id"])])
        added = dropped = puts = 0
        if len(ready):
            groups = {key: list(zip(g["kind"], g["event_at"])) for key, g in ready.groupby(["mailing_id", "external_id"])}
            try:
                texts = _texts(afas, {sbid_of[k] for k in groups})
            except AfasError as exc:  # the reactions stay pending for the next run
                texts, groups = {}, {}
                rejected += [(key, exc) for key in set(zip(ready["mailing_id"], ready["external_id"]))]
            bodies, keys, unchanged = [], [], []
            for key, new_reactions in groups.items():
                text, n_added, n_dropped = with_reactions(texts.get(str(sbid_of[key])), new_reactions)
                dropped += n_dropped
                if n_added:
                    bodies.append(reaction_body(sbid_of[key], text))
                    keys.append((key, n_added))
                else:
                    unchanged.append(key)
            puts = len(bodies)
            done = set(unchanged)
            for (key, n_added), (_, error) in zip(keys, _parallel(afas, bodies, afas.update)):
                if error is None:
                    done.add(key)
                    added += n_added
                else:
                    rejected.append((key, error))
            state.record_mailing_reactions(
                DESTINATION, [(m, e, k, t) for m, e, k, t in ready[REACTION_KEYS].itertuples(index=False) if (m, e) in done],
                "delivered")
            state.clear_rejections(AFAS, [rejection_key(*key) for key in done])
        state.clear_rejections(AFAS, [rejection_key(*k) for k, o in outcome.items() if o in ("created", "found_in_afas")])
        state.record_rejections(AFAS, [{
            "external_id": rejection_key(*key),
            "reason": error.rejection_reason() if error is not None else "no SbId in AFAS's answer",
            "status_code": None if error is None else error.status_code,
        } for key, error in rejected], QUARANTINE_AFTER)

        counts = pd.Series(list(outcome.values()), dtype="string").value_counts()
        metadata = {
            "dagster/row_count": len(outcome),
            "sent_read": len(sent),
            **{f"skipped/{k}": v for k, v in skipped.items()},
            "retried_from_earlier_runs": len(waiting_keys),
            **{f"items/{k}": int(v) for k, v in counts.items()},
            "posts_sent": posts,
            "interactions_read": len(read),
            "interactions_for_held_items": len(fresh),
            "reactions_added": added,
            "reactions_not_fitting_in_text": dropped,
            "reactions_pending": int(len(state.mailing_reactions(DESTINATION, status="pending"))),
            "puts_sent": puts,
            "rejected": len(rejected),
            "rejected_keys": hashed_sample(rejection_key(*k) for k, _ in rejected),
            "stopped/subject_type_exists": stopped,
        }
        context.log.info(f"mailing_history: {metadata}")
        out = pd.DataFrame(
            [(m, e, o, item_sbid.get((m, e))) for (m, e), o in sorted(outcome.items())],
            columns=["mailing_id", "external_id", "outcome", "sbid"],
        ).astype("string")
        yield dg.Output(out, metadata=metadata)
        yield dg.AssetCheckResult(
            check_name="subject_type_exists",
            passed=not drift,
            description="; ".join(drift) if drift else (
                f"dossier item type {config.subject_type} exists in AFAS" if drift is not None
                else "no dossier item to create in this window, so the type was not looked up"),
            metadata={"stopped": stopped, "problems": len(drift or [])},
        )

    return [mailing_history]


REACTION_KEYS = ["mailing_id", "external_id", "kind", "event_at"]


def _keep(frame: pd.DataFrame, mask: list[bool]) -> pd.DataFrame:
    """The rows of `frame` where `mask` holds (an empty frame keeps its columns)."""
    return frame[pd.Series(mask, index=frame.index, dtype=bool)]


def _campaign_ids(spotler: SpotlerClient, sent: list[dict]) -> set[str]:
    """The mailings of `sent` that are campaign mails: Spotler's `GET mailing` lists every other mailing."""
    untied = {str(s.get("encryptedMailingId")) for s in sent if s.get("trendReportId") is None}
    if not untied:
        return set()
    dates = [int(s["date"]) for s in sent if s.get("date") is not None]
    listed = spotler.mailings(ms_to_utc(min(dates)) - timedelta(days=1), ms_to_utc(max(dates)) + timedelta(days=1))
    return untied - {str(m.get("encryptedId")) for m in listed}


def _reread(spotler: SpotlerClient, config, waiting: pd.DataFrame, keys: set[tuple[str, str]]) -> pd.DataFrame:
    """The sent interactions of items whose POST waits for a retry, read again by their send time."""
    if not keys:
        return pd.DataFrame(columns=ITEM_COLUMNS).astype("string")
    frames = []
    rows = _keep(waiting, [k in keys for k in zip(waiting["mailing_id"], waiting["external_id"])])
    for sent_at in sorted(set(rows["sent_at"])):
        at = pd.Timestamp(sent_at).to_pydatetime()
        sent = spotler.interactions("sent", start=at, end=at + timedelta(seconds=1))
        campaign_ids = _campaign_ids(spotler, sent) if config.mailings == "trend_reports" else set()
        items, _ = sent_items(sent, config, campaign_ids)
        frames.append(_keep(items, [k in keys for k in zip(items["mailing_id"], items["external_id"])]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ITEM_COLUMNS).astype("string")


def _read_subjects(afas: AfasClient, field: str, values: list[str]) -> pd.DataFrame:
    values = sorted({str(v) for v in values})
    frames = []
    for i in range(0, len(values), LOOKUP_CHUNK):
        chunk = values[i : i + LOOKUP_CHUNK]
        frame, _ = afas.read(SUBJECTS, filters=Filter.any_of(*(Condition(field, Op.EQ, v) for v in chunk)),
                             order_by=["SubjectId"])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _find_existing(afas: AfasClient, retries: pd.DataFrame, subject_type: int) -> dict[tuple[str, str], str]:
    """Items AFAS already made for a retried POST (its answer may have been lost): found by marker line."""
    if not len(retries):
        return {}
    subjects = _read_subjects(afas, "ContactId", list(retries["external_id"]))
    found = {}
    for r in retries.itertuples(index=False):
        sbid = find_item(subjects, r.mailing_id, r.external_id, subject_type)
        if sbid is not None:
            found[(r.mailing_id, r.external_id)] = sbid
    return found


def _texts(afas: AfasClient, sbids: set) -> dict[str, str | None]:
    """The text AFAS holds now per item, so reactions are appended to it (and never twice)."""
    subjects = _read_subjects(afas, "SubjectId", [str(s) for s in sbids])
    if subjects.empty:
        return {}
    return {str(r.SubjectId): (None if pd.isna(r.Text) else str(r.Text)) for r in subjects.itertuples(index=False)}


def _parallel(afas: AfasClient, bodies: list[dict], call) -> list[tuple[str | None, AfasError | None]]:
    """KnSubject calls side by side (`AfasClient.each`): per body the SbId AFAS answered, or the error. A POST
    is sent once: the client repeats it only when AFAS certainly did not process it."""

    def sbid(answer) -> str | None:
        results = answer.get("results", answer) if isinstance(answer, dict) else {}
        found = (results.get("KnSubject") or {}).get("SbId") if isinstance(results, dict) else None
        return None if found is None else str(found)

    return [(None if error else sbid(answer or {}), error)
            for answer, error in afas.each(lambda body: call("KnSubject", body), bodies)]