"""Destination -> AFAS: mailing history as dossier items (R17).

`<d>_mailing_history`, per 15-minute window: the mails the destination sent (its mailing feed, by change date,
read from 15 minutes before the window) become one AFAS dossier item (KnSubject POST, linked to the contact
person) per mailing per contact, with name, subject, send date and the link to the personal online version;
the interactions the mapping chooses (opened, clicked, bounced) are appended to that item as dated reactions
(KnSubject PUT with @SbId). Before any POST the mapping's dossier item type is looked up in AFAS
(`Profit_SubjectTypes`); when AFAS does not have it, nothing is POSTed, the items wait in the sync state
and the blocking check `subject_type_exists` fails the run. The sync state keeps (mailing id, external
id) -> SbId and the reactions added, so a rerun or backfill never makes a second item. A refused POST or
PUT becomes a rejected record (destination "afas") and is retried next run; a POST whose answer was lost
is looked up in AFAS (by the item's marker line) before it is sent again. An item AFAS keeps refusing (its
POST, or the read of its dossier items) is retried on its own and holds back no other item or reaction.
Each POST is claimed in the sync state first, so two runs that meet never make the same item twice. Keys,
counts and hashes only in logs and metadata.
"""


from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dagster as dg
import pandas as pd

from afas_pipeline.afas.assets import OWNERS
from afas_pipeline.afas.client import AfasClient, Condition, Filter, Op
from afas_pipeline.afas.errors import AfasError, AfasOutcomeUnknown, AfasServerError, AfasUnavailable, is_refusal
from afas_pipeline.afas.partitions import DELTA_BACKFILL, DELTA_POOL, delta_partitions
from afas_pipeline.afas.sources import AfasSources
from afas_pipeline.lib.privacy import hashed_sample
from afas_pipeline.mapping.drift import SUBJECT_TYPES_CONNECTOR, live_subject_type_drift
from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.retries import retry_transient_failures
from afas_pipeline.afas.dossier import find_item, reaction_body, subject_body, with_reactions
from afas_pipeline.afas.lookups import read_by_keys
from afas_pipeline.sync.destination import Destination, MailingFeed
from afas_pipeline.sync.events import MailingSent
from afas_pipeline.sync.mailing_history import ITEM_COLUMNS, reactions, sent_items
from afas_pipeline.sync.state import SyncState

#: How far before its window the feeds are read: destinations stamp changes a moment late. Reading an
#: interaction twice is harmless: the sync state adds it once.
HISTORY_OVERLAP = timedelta(minutes=15)
#: Where refused dossier-item calls are kept in the sync state (like the write-back's).
AFAS = "afas"
QUARANTINE_AFTER = 5
SUBJECTS = "ProfitSubjects"
LOOKUP_CHUNK = 50
#: A claim younger than this belongs to a run that may still be POSTing the item (longer than one POST with
#: all of the client's retries); an older one was left by a run that died and is taken over, after the
#: item was looked up in AFAS and not found.
CLAIM_LEASE = timedelta(hours=1)


def rejection_key(mailing_id: str, external_id: str) -> str:
    return f"mailing_history:{mailing_id}:{external_id}"


@dataclass(frozen=True)
class Mailings:
    """One destination's mailing feed with its client: where a run reads the mails sent and the interactions."""

    name: str  # the destination: its key in the sync state
    feed: MailingFeed
    client: Any
    marker: str  # the marker line of its dossier items

    def sent(self, start, end, *, by_change: bool = True) -> list[MailingSent]:
        if by_change:
            return self.feed.sent(self.client, change_start=start, change_end=end)
        return self.feed.sent_at(self.client, start, end)

    def interactions(self, kind: str, start, end) -> list:
        return self.feed.interactions(self.client, kind, change_start=start, change_end=end)

    def campaign_ids(self, sent: list[MailingSent]) -> set[str]:
        return self.feed.campaign_ids(self.client, sent)


def build_mailing_history_asset(destination: Destination, sources: AfasSources,
                                after: dg.AssetKey) -> list[dg.AssetsDefinition]:
    """The mailing history, run after `after` (the 15-minute AFAS -> destination sync) of the same window."""
    d, title, mapping = destination.name, destination.title, destination.mapping
    config = mapping.mailing_history
    if config is None or destination.mailings is None:
        return []
    name = f"{d}_mailing_history"

    @dg.asset(
        name=name,
        description=(
            f"R17: {title}'s mailings as AFAS dossier items, one per mailing per contact (KnSubject linked to "
            "the contact person) with mailing name, subject, send date and the link to the personal online "
            f"version; {', '.join(config.interactions) or 'no'} interactions appended as dated reactions. "
            f"Mailings: {config.mailings} (campaign mails always); only those sent at or after "
            f"{config.enabled_from.isoformat()}. Idempotent by (mailing id, external id) -> SbId in the sync "
            "state; refused calls are kept as rejected records and retried. Keys and counts only."
        ),
        group_name=d,
        owners=OWNERS,
        partitions_def=delta_partitions,
        backfill_policy=DELTA_BACKFILL,
        pool=DELTA_POOL,
        deps=[after],
        kinds={"afas", destination.kind, "pandas", "parquet"},
        required_resource_keys={"afas", "sync_state", d},
        check_specs=[dg.AssetCheckSpec(
            "subject_type_exists", asset=name, blocking=True,
            description=f"R17: mailing_history.subject_type ({config.subject_type}) is a dossier item type AFAS has "
                        f"(GetConnector {SUBJECT_TYPES_CONNECTOR}); otherwise no dossier item is POSTed and the items "
                        "wait in the sync state for the next run.")],
    )
    @retry_transient_failures
    def mailing_history(context: dg.AssetExecutionContext):
        window = context.partition_time_window
        start, end = window.start - HISTORY_OVERLAP, window.end
        afas: AfasClient = context.resources.afas
        state = context.resources.sync_state.open()
        mailings = Mailings(d, destination.mailings, getattr(context.resources, d), destination.dossier_marker)

        sent = mailings.sent(start, end)
        campaign_ids = mailings.campaign_ids(sent) if config.mailings == "trend_reports" else set()
        items, skipped = sent_items(sent, config, campaign_ids)
        todo = _items_to_create(state, mailings, config, items)
        made = _create_items(afas, state, mailings, mapping, sources, todo, context.run.run_id)
        outcome = {**{k: "exists" if k in todo.made else "quarantined" for k in _keys(items)}, **made.outcome}
        added = _add_reactions(afas, state, mailings, config, start, end)

        rejected = {**made.rejected, **added.rejected}  # one record per item and run: quarantine counts runs
        state.clear_rejections(AFAS, [rejection_key(*key) for key in added.done])
        state.clear_rejections(AFAS, [rejection_key(*k) for k, o in outcome.items() if o in ("created", "found_in_afas")])
        state.record_rejections(AFAS, [{
            "external_id": rejection_key(*key),
            "reason": error.rejection_reason() if error is not None else "no SbId in AFAS's answer",
            "status_code": None if error is None else error.status_code,
        } for key, error in rejected.items()], QUARANTINE_AFTER)

        counts = pd.Series(list(outcome.values()), dtype="string").value_counts()
        metadata = {
            "dagster/row_count": len(outcome),
            "sent_read": len(sent),
            **{f"skipped/{k}": v for k, v in skipped.items()},
            "retried_from_earlier_runs": todo.waiting,
            **{f"items/{k}": int(v) for k, v in counts.items()},
            "posts_sent": made.posts,
            "interactions_read": added.read,
            "interactions_for_held_items": added.held,
            "reactions_added": added.added,
            "reactions_not_fitting_in_text": added.dropped,
            "reactions_pending": int(len(state.mailing_reactions(d, status="pending"))),
            "puts_sent": added.puts,
            "rejected": len(rejected),
            "rejected_keys": hashed_sample(rejection_key(*k) for k in rejected),
            "stopped/subject_type_exists": made.stopped,
        }
        context.log.info(f"{name}: {metadata}")
        unanswered = made.unanswered + added.unanswered
        if unanswered:
            raise AfasUnavailable(
                f"{len(unanswered)} dossier-item call(s) got no answer from AFAS ({unanswered[0]}); the items and "
                "reactions wait in the sync state and the next run sends them", connector="KnSubject",
                status_code=unanswered[0].status_code)
        sbids = {**todo.made, **made.sbid}
        out = pd.DataFrame(
            [(m, e, o, sbids.get((m, e))) for (m, e), o in sorted(outcome.items())],
            columns=["mailing_id", "external_id", "outcome", "sbid"],
        ).astype("string")
        yield dg.Output(out, metadata=metadata)
        drift = made.drift
        yield dg.AssetCheckResult(
            check_name="subject_type_exists",
            passed=not drift,
            description="; ".join(drift) if drift else (
                f"dossier item type {config.subject_type} exists in AFAS" if drift is not None
                else "no dossier item to create in this window, so the type was not looked up"),
            metadata={"stopped": made.stopped, "problems": len(drift or [])},
        )

    return [mailing_history]


REACTION_KEYS = ["mailing_id", "external_id", "kind", "event_at"]
Key = tuple[str, str]  # (mailing id, external id): one dossier item


@dataclass
class ItemsToCreate:
    """What this run makes dossier items for: the window's sends without one, and those whose POST waits from
    earlier runs (not quarantined), read again from the destination."""

    items: pd.DataFrame  # ITEM_COLUMNS
    retried: set[Key]  # the state holds these without an SbId: looked up in AFAS before any POST
    seen: dict[Key, str]  # the state's version of each retried item, so its claim fails if it changed since
    made: dict[Key, str]  # sends of the window that already have their dossier item: the SbId
    waiting: int


@dataclass
class CreatedItems:
    outcome: dict[Key, str] = field(default_factory=dict)
    sbid: dict[Key, str] = field(default_factory=dict)
    rejected: dict[Key, AfasError | None] = field(default_factory=dict)
    unanswered: list[AfasError] = field(default_factory=list)  # an outage, not a refusal: nothing counts
    posts: int = 0
    stopped: int = 0
    drift: list[str] | None = None  # None: nothing to create, the type was not looked up


@dataclass
class AddedReactions:
    read: int = 0
    held: int = 0
    added: int = 0
    dropped: int = 0
    puts: int = 0
    done: set[Key] = field(default_factory=set)
    rejected: dict[Key, AfasError | None] = field(default_factory=dict)
    unanswered: list[AfasError] = field(default_factory=list)


def _keys(frame: pd.DataFrame) -> list[Key]:
    return [(str(m), str(e)) for m, e in zip(frame["mailing_id"], frame["external_id"])]


def _sbids(frame: pd.DataFrame) -> dict[Key, str]:
    """The SbId of each item of a state frame that has one. A waiting item's SbId is missing, which pandas
    shows as None, NaN or pd.NA depending on its version: tested with pd.isna, never `is not None`."""
    return {key: str(sbid) for key, sbid in zip(_keys(frame), frame["sbid"]) if not pd.isna(sbid)}


def _items_to_create(state: SyncState, mailings: Mailings, config, items: pd.DataFrame) -> ItemsToCreate:
    known = state.mailing_items(mailings.name, _keys(items))
    made = _sbids(known)
    rejected_now = state.rejected(AFAS)
    quarantined = set(rejected_now.loc[rejected_now["quarantined"], "external_id"])
    waiting = state.mailing_items(mailings.name, pending_only=True)
    waiting = _keep(waiting, [rejection_key(*k) not in quarantined for k in _keys(waiting)])
    new = _keep(items, [k not in made and rejection_key(*k) not in quarantined for k in _keys(items)])
    waiting_keys = set(_keys(waiting))
    retries = _reread(mailings, config, waiting, waiting_keys - set(_keys(new)))
    todo = pd.concat([new, retries], ignore_index=True) if len(retries) else new
    return ItemsToCreate(items=todo, retried=waiting_keys & set(_keys(todo)),
                         seen=dict(zip(_keys(waiting), waiting["updated_at"])), made=made, waiting=len(waiting_keys))


def _create_items(afas: AfasClient, state: SyncState, mailings: Mailings, mapping: DestinationMapping,
                  sources: AfasSources,
                  todo: ItemsToCreate, run_id: str) -> CreatedItems:
    """The dossier items: found again in AFAS (a retried POST whose answer was lost) or POSTed, each by at most
    one run (its claim in the sync state)."""
    result = CreatedItems()
    if not len(todo.items):
        return result
    config = mapping.mailing_history
    records = todo.items.to_dict("records")
    try:
        result.drift = live_subject_type_drift(afas, mapping)
        contacts, _ = read_by_keys(afas, sources.contacts, todo.items["external_id"])
        retried = _keep(todo.items, [k in todo.retried for k in _keys(todo.items)])
        found, unreadable = _find_existing(afas, retried, config.subject_type, mailings.marker)
    except AfasError as exc:  # AFAS could not be read: no verdict on any item; each waits for the next run (C4)
        for item in records:
            result.outcome[(item["mailing_id"], item["external_id"])] = "waiting"
        state.save_mailing_items(mailings.name, [(item["mailing_id"], item["external_id"], item["sent_at"], None)
                                               for item in records])
        result.unanswered.append(exc)
        return result
    by_id = {str(r["ContactId"]): r for r in contacts.to_dict("records")} if len(contacts) else {}
    to_post, to_save = [], []
    for item in records:
        key = (item["mailing_id"], item["external_id"])
        if item["external_id"] not in by_id:
            result.outcome[key] = "not_in_afas"
        elif key in found:
            result.outcome[key], result.sbid[key] = "found_in_afas", found[key]
            to_save.append((*key, item["sent_at"], found[key]))
        elif key in unreadable:  # whether AFAS holds it is unknown: not POSTed, retried on its own next run
            result.outcome[key], result.rejected[key] = "rejected", unreadable[key]
            to_save.append((*key, item["sent_at"], None))
        elif result.drift:  # AFAS would refuse the type: not sent, kept waiting for the next run
            result.outcome[key] = "stopped"
            to_save.append((*key, item["sent_at"], None))
            result.stopped += 1
        else:
            to_post.append((item, subject_body(item, by_id[item["external_id"]], config.subject_type, mailings.marker)))
    state.save_mailing_items(mailings.name, to_save)
    gone = [k for k, o in result.outcome.items() if o == "not_in_afas"]
    state.drop_waiting_mailing_items(mailings.name, gone, lease=CLAIM_LEASE)
    state.clear_rejections(AFAS, [rejection_key(*k) for k in gone])

    def create(post: tuple[dict, dict]) -> tuple[str, str | None, AfasError | None]:
        item, body = post
        return _create_one(afas, state, mailings.name, item, body, todo.seen.get((item["mailing_id"], item["external_id"])), run_id)

    for (item, _), (answer, _) in zip(to_post, afas.each(create, to_post)):
        key = (item["mailing_id"], item["external_id"])
        outcome, sbid, error = answer
        result.outcome[key] = outcome
        if outcome == "created":
            result.sbid[key] = sbid
        elif outcome == "rejected" and (error is None or is_refusal(error)):
            result.rejected[key] = error
        elif outcome == "rejected":  # AFAS unavailable: the item waits, looked up in AFAS before its next POST
            result.outcome[key] = "waiting"
            result.unanswered.append(error)
        result.posts += outcome != "claimed_elsewhere"
    return result


def _create_one(afas: AfasClient, state: SyncState, d: str, item: dict, body: dict, seen: str | None,
                run_id: str) -> tuple[str, str | None, AfasError | None]:
    """Claim the item, POST it, save its SbId: (outcome, SbId, error). A claim another run holds means that
    run POSTs it (or did, and the next run finds it in AFAS): this run leaves it alone."""
    key = (item["mailing_id"], item["external_id"])
    if not state.claim_mailing_item(d, key, item["sent_at"], run_id, seen=seen, lease=CLAIM_LEASE):
        return "claimed_elsewhere", None, None
    try:
        sbid = _answered_sbid(afas.insert("KnSubject", body))
    except AfasOutcomeUnknown as exc:
        # AFAS may still be saving it: a look-up right away could miss it and a second POST make a second item. The
        # claim stays until its lease runs out; every run meanwhile looks the item up first (and finds it, once
        # AFAS has it), and none POSTs it again.
        return "rejected", None, exc
    except AfasError as exc:
        state.release_mailing_claim(d, key, run_id)  # retried next run, after a look-up in AFAS
        return "rejected", None, exc
    if sbid is None:
        state.release_mailing_claim(d, key, run_id)
        return "rejected", None, None
    state.save_mailing_items(d, [(*key, item["sent_at"], sbid)])
    return "created", sbid, None


def _add_reactions(afas: AfasClient, state: SyncState, mailings: Mailings, config, start, end) -> AddedReactions:
    """The chosen interactions of the window, for items we hold, added to their text; those of items still
    without an SbId wait in the state."""
    result = AddedReactions()
    read = []
    for kind in config.interactions:
        read += reactions(mailings.interactions(kind, start, end))
    held = set(_keys(state.mailing_items(mailings.name, {(r[0], r[1]) for r in read})))
    fresh = [r for r in read if (r[0], r[1]) in held]
    result.read, result.held = len(read), len(fresh)
    state.record_mailing_reactions(mailings.name, fresh, "pending")
    pending = state.mailing_reactions(mailings.name, status="pending")
    sbid_of = _sbids(state.mailing_items(mailings.name, set(_keys(pending))))
    ready = _keep(pending, [k in sbid_of for k in _keys(pending)])
    if not len(ready):
        return result
    groups = {(str(m), str(e)): list(zip(g["kind"], g["event_at"]))
              for (m, e), g in ready.groupby(["mailing_id", "external_id"])}
    try:
        texts, unreadable = _texts(afas, {sbid_of[k] for k in groups})
    except AfasError as exc:  # AFAS could not be read: the reactions stay pending for the next run
        result.unanswered.append(exc)
        return result
    bodies, keys = [], []
    for key, new_reactions in groups.items():
        if sbid_of[key] in unreadable:  # only this item's reactions wait
            result.rejected[key] = unreadable[sbid_of[key]]
            continue
        text, n_added, n_dropped = with_reactions(texts.get(sbid_of[key]), new_reactions)
        result.dropped += n_dropped
        if n_added:
            bodies.append(reaction_body(sbid_of[key], text))
            keys.append((key, n_added))
        else:
            result.done.add(key)
    result.puts = len(bodies)
    for (key, n_added), (_, error) in zip(keys, afas.each(lambda body: afas.update("KnSubject", body), bodies)):
        if error is None:
            result.done.add(key)
            result.added += n_added
        elif is_refusal(error):
            result.rejected[key] = error
        else:
            result.unanswered.append(error)
    state.record_mailing_reactions(
        mailings.name, [(m, e, k, t) for m, e, k, t in ready[REACTION_KEYS].itertuples(index=False)
                      if (str(m), str(e)) in result.done], "delivered")
    return result


def _keep(frame: pd.DataFrame, mask: list[bool]) -> pd.DataFrame:
    """The rows of `frame` where `mask` holds (an empty frame keeps its columns)."""
    return frame[pd.Series(mask, index=frame.index, dtype=bool)]


def _reread(mailings: Mailings, config, waiting: pd.DataFrame, keys: set[Key]) -> pd.DataFrame:
    """The sent interactions of items whose POST waits for a retry, read again by their send time."""
    if not keys:
        return pd.DataFrame(columns=ITEM_COLUMNS).astype("string")
    frames = []
    rows = _keep(waiting, [k in keys for k in _keys(waiting)])
    for sent_at in sorted(set(rows["sent_at"])):
        at = pd.Timestamp(sent_at).to_pydatetime()
        sent = mailings.sent(at, at + timedelta(seconds=1), by_change=False)
        campaign_ids = mailings.campaign_ids(sent) if config.mailings == "trend_reports" else set()
        items, _ = sent_items(sent, config, campaign_ids)
        frames.append(_keep(items, [k in keys for k in _keys(items)]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ITEM_COLUMNS).astype("string")


def _read_subjects(afas: AfasClient, field: str, values: list[str]) -> tuple[pd.DataFrame, dict[str, AfasServerError]]:
    """The dossier items whose `field` is one of `values`, LOOKUP_CHUNK values a read, and the values AFAS
    could not be read for. AFAS refuses a whole filter (a 500, after the client's retries) for one value it
    cannot read, so a refused chunk is split in halves until that value is alone: one item's trouble never
    holds back the others. Any other error (AFAS unavailable) is raised."""
    values = sorted({str(v) for v in values})
    chunks = [values[i : i + LOOKUP_CHUNK] for i in range(0, len(values), LOOKUP_CHUNK)]
    frames, refused = [], {}
    while chunks:
        chunk = chunks.pop()
        try:
            frame, _ = afas.read(SUBJECTS, filters=Filter.any_of(*(Condition(field, Op.EQ, v) for v in chunk)),
                                 order_by=["SubjectId"])
        except AfasServerError as exc:
            if len(chunk) == 1:
                refused[chunk[0]] = exc
            else:
                chunks += [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
            continue
        frames.append(frame)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), refused


def _find_existing(afas: AfasClient, retries: pd.DataFrame,
                   subject_type: int, marker: str) -> tuple[dict[Key, str], dict[Key, AfasServerError]]:
    """Items AFAS already made for a retried POST (its answer may have been lost), found by marker line; and
    the items whose contact's dossier items AFAS would not read."""
    if not len(retries):
        return {}, {}
    subjects, refused = _read_subjects(afas, "ContactId", list(retries["external_id"]))
    found, unreadable = {}, {}
    for key in _keys(retries):
        if key[1] in refused:
            unreadable[key] = refused[key[1]]
            continue
        sbid = find_item(subjects, key[0], key[1], subject_type, marker)
        if sbid is not None:
            found[key] = sbid
    return found, unreadable


def _texts(afas: AfasClient, sbids: set[str]) -> tuple[dict[str, str | None], dict[str, AfasServerError]]:
    """The text AFAS holds now per item, so reactions are appended to it (and never twice); and the items
    AFAS would not read."""
    subjects, refused = _read_subjects(afas, "SubjectId", list(sbids))
    if subjects.empty:
        return {}, refused
    return {str(r.SubjectId): (None if pd.isna(r.Text) else str(r.Text))
            for r in subjects.itertuples(index=False)}, refused


def _answered_sbid(answer) -> str | None:
    """The SbId in AFAS's answer to a KnSubject POST, if any."""
    results = answer.get("results", answer) if isinstance(answer, dict) else {}
    found = (results.get("KnSubject") or {}).get("SbId") if isinstance(results, dict) else None
    return None if found is None else str(found)
