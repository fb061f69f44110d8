"""The Xelion link's writes, with the sync state: the address book (X1) and the call reports (X3, X4).

Address book: per AFAS organisation or person the sync state keeps the Xelion oid and the hash of what was
sent (`records`, destination `xelion`; keys and hashes only), so
- an unchanged record sends nothing (C3), an edited one updates the addressable it made (read, edit with change
  types, PUT; never a second one), a new one is created; nothing is ever deleted (X1, R10's rule);
- a create is marked in the state before it is sent; a run killed before its answer was saved leaves the mark,
  and the next run finds the addressable by its AFAS marker (`comment`) before creating anything;
- the answers of each chunk are saved as they come in; a refusal (400) becomes a rejected record, retried next
  run; no answer at all (an outage) fails the step once the answered ones are saved.

Call reports: per Xelion callId the state keeps the AFAS SbId (`call_reports`), so a rerun or backfill makes
no second item; a POST is marked `posting` first, and a marked call is looked up in AFAS by its marker line
before it is posted again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.filters import Condition, Filter, Op
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.frames import object_values
from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.sync.destination import ABSENT, ERASED
from afas_pipeline.sync.state import IN_DOUBT, SyncState
from afas_pipeline.xelion.addressbook import (
    ORGANISATION, PERSON, AddressBook, Entry, common_name, content_hash, resolve_employments,
)
from afas_pipeline.xelion.addressbook import external_id as record_key
from afas_pipeline.xelion.calls import MARKER
from afas_pipeline.xelion.client import XelionClient, edited
from afas_pipeline.xelion.errors import XelionRequestError, XelionUnavailable, XelionWriteUnknown

logger = logging.getLogger("afas_pipeline.xelion")

DESTINATION = "xelion"
#: Records made into documents and planned at a time (their sync state read together).
PLAN_CHUNK = 5000
#: Writes per chunk: the answers of a chunk are saved together, so a crash repeats at most one chunk.
CHUNK = 200
SUBJECTS = "ProfitSubjects"


OUTCOME_COLUMNS = ["external_id", "kind", "action", "status", "reason"]


@dataclass
class AddressBookResult:
    """Per record its outcome (external id, hashed; kind; action: create | update | unchanged | skip; status: ok |
    unchanged | rejected | unanswered | quarantined | planned; reason), kept as typed columns a plan chunk at a time
    (at 1,000,000 contacts as Python objects: some 300 MB); and counts. Also, for `SyncState.save_input_hashes`, the
    records made whose content Xelion now has (sent, or unchanged), with what they were made from (`settled`), and
    the numbers left out of the records not made again (`left_out`, as saved with them)."""

    columns: dict[str, list] = field(default_factory=lambda: {c: [] for c in OUTCOME_COLUMNS})
    sealed: list[pd.DataFrame] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    settling: dict[str, list] = field(default_factory=lambda: {c: [] for c in SETTLED_COLUMNS})
    settled: list[pa.Table] = field(default_factory=list)
    left_out: Counter = field(default_factory=Counter)
    not_made: int = 0  # records found unchanged by their input, without making them

    def add(self, key: str, kind: str, action: str, status: str, reason: str | None = None) -> None:
        for column, value in zip(OUTCOME_COLUMNS, (hash_key(key), kind, action, status, reason)):
            self.columns[column].append(value)
        self.counts[f"{action}/{status}"] += 1

    def add_many(self, keys: list[str], kind: str, action: str, status: str) -> None:
        """`add` for many records of one outcome."""
        if not keys:
            return
        self.columns["external_id"] += [hash_key(key) for key in keys]
        for column, value in zip(OUTCOME_COLUMNS[1:], (kind, action, status, None)):
            self.columns[column] += [value] * len(keys)
        self.counts[f"{action}/{status}"] += len(keys)

    def settle(self, entry: Entry, digest: str, fingerprint: str | None) -> None:
        if fingerprint is not None:
            left_out = orjson.dumps(dict(entry.left_out), option=orjson.OPT_SORT_KEYS).decode() if entry.left_out else None
            for column, value in zip(SETTLED_COLUMNS, (entry.external_id, digest, fingerprint, left_out)):
                self.settling[column].append(value)

    def seal(self) -> None:
        """The outcomes added so far into typed columns."""
        if self.columns["external_id"]:
            self.sealed.append(pd.DataFrame(self.columns, columns=OUTCOME_COLUMNS).astype(OUTCOME_TYPE))
            self.columns = {c: [] for c in OUTCOME_COLUMNS}
        if self.settling["external_id"]:
            self.settled.append(pa.table({c: pa.array(v, pa.string()) for c, v in self.settling.items()}))
            self.settling = {c: [] for c in SETTLED_COLUMNS}

    def frame(self) -> pd.DataFrame:
        self.seal()
        if not self.sealed:
            return pd.DataFrame(columns=OUTCOME_COLUMNS).astype(OUTCOME_TYPE)
        return pd.concat(self.sealed, ignore_index=True)

    def input_hashes(self) -> Iterator[tuple[str, str, str, dict]]:
        """(external_id, content_hash, input_hash, fields) of the settled records, for `SyncState.save_input_hashes`."""
        self.seal()
        for table in self.settled:
            for key, digest, fingerprint, left_out in zip(*(table[c].to_pylist() for c in SETTLED_COLUMNS)):
                yield key, digest, fingerprint, {"left_out": orjson.loads(left_out)} if left_out else {}


SETTLED_COLUMNS = ["external_id", "content_hash", "input_hash", "left_out"]
OUTCOME_TYPE = pd.StringDtype("pyarrow")


class _Saved:
    """What the sync state holds of some records, column by column: which are unchanged by their input is told from
    two columns (a dict per record, its JSON parsed, took 2.7 s of a 13.6 s rerun of 121,429 records); the whole
    row of a record (`get`) is made only for the records made again. An oid in `gone` (R2) is as none: made again."""

    def __init__(self, state: SyncState, ids: Iterable[str], gone: set[str]):
        frame = state.records(DESTINATION, ids, columns=("content_hash", "fields", "destination_key", "input_hash"),
                              parsed=False)
        self._values = {c: object_values(frame[c]) for c in frame.columns}
        self._at = {key: i for i, key in enumerate(self._values["external_id"])}
        self._gone = gone

    def unchanged(self, fingerprints: dict[str, str], quarantined: set[str]) -> set[str]:
        """The records sent from the input they have now (`fingerprints`), with an oid, not waiting for an operator."""
        oids, inputs = self._values["destination_key"], self._values["input_hash"]
        return {key for key, i in self._at.items() if inputs[i] is not None and inputs[i] == fingerprints.get(key)
                and oids[i] and oids[i] not in self._gone and key not in quarantined}

    def left_out(self, key: str) -> dict:
        text = self._values["fields"][self._at[key]]
        return (orjson.loads(text).get("left_out") or {}) if text and text != "{}" else {}

    def get(self, key: str) -> dict:
        """The saved content hash, oid and create mark of a record ({} when the state has none)."""
        i = self._at.get(key)
        if i is None:
            return {}
        text, oid = self._values["fields"][i], self._values["destination_key"][i]
        fields = orjson.loads(text) if text and text != "{}" else {}
        if oid in self._gone:  # made again: a create, not an update of an oid Xelion no longer has
            return {"hash": self._values["content_hash"][i], "oid": None, "creating": False}
        return {"hash": self._values["content_hash"][i], "oid": oid, "creating": bool(fields.get("creating"))}


def saved_oids(state: SyncState, keys: Iterable[str] | None = None) -> pd.DataFrame:
    """The Xelion oid saved per record key (`external_id`, `destination_key`), of every record or of these: the two
    columns it uses (at 1,000,000 contacts the destination's 1,133,557 rows with every column, JSON parsed: 3.7-4.1
    s), read once for both R2's check and the organisations' oids."""
    return state.records(DESTINATION, keys, columns=("destination_key",), parsed=False)


def organisation_oids(saved: pd.DataFrame) -> dict[str, str]:
    """AFAS key -> Xelion oid of the organisations among these saved rows (`saved_oids`)."""
    saved = saved[saved["external_id"].str.startswith(f"{ORGANISATION}:") & saved["destination_key"].notna()]
    return dict(zip(saved["external_id"].astype(str), saved["destination_key"].astype(str)))


def _gone(client: XelionClient, saved: pd.DataFrame) -> set[str]:
    """The oids in the sync state (`saved_oids`) that Xelion does not list (removed by a user, or a tenant reset):
    R2's check. The listing is kept as Arrow text (at 1,000,000 contacts a Python set of it held some 130 MB)."""
    pages, page = [], []
    for addressable in client.addressables():
        page.append(str(addressable["oid"]))
        if len(page) == 50_000:
            pages.append(pa.array(page, pa.string()))
            page = []
    listed = pa.chunked_array([*pages, pa.array(page, pa.string())], pa.string()).combine_chunks()
    oids = pa.array(saved["destination_key"].dropna().astype(str).to_numpy(), pa.string())
    return set(oids.filter(pc.invert(pc.is_in(oids, value_set=listed))).to_pylist())


def sync_address_book(client: XelionClient, state: SyncState, book: AddressBook, *, quarantine_after: int = 5,
                      dry_run: bool = False, verify: bool = False) -> AddressBookResult:
    """Organisations first (persons' employments name them by oid), then persons, `PLAN_CHUNK` records made and
    planned at a time. `verify` (the full sync, R2): list which oids Xelion has first, so an addressable removed in
    Xelion (or a tenant reset) is made again instead of being taken as unchanged."""
    result = AddressBookResult()
    # The full sync reads every organisation's oid (every person comes); a delta those its persons name, as they come.
    saved_keys = saved_oids(state) if verify else None
    oids = organisation_oids(saved_keys) if verify else {}
    looked_up: set[str] = set()
    gone = _gone(client, saved_keys) if verify else set()  # the oids saved that Xelion no longer lists
    del saved_keys
    if gone:
        missing = {key for key, oid in oids.items() if oid in gone}
        result.counts["missing_in_xelion"] += len(missing)
        oids = {key: oid for key, oid in oids.items() if key not in missing}
    unanswered: list[Exception] = []  # the first write that got no answer, for the message
    rejected = state.rejected(DESTINATION)
    quarantined = set(rejected.loc[rejected["quarantined"].astype(bool), "external_id"].astype(str))
    for kind in (ORGANISATION, PERSON):
        for part in book.parts(kind, PLAN_CHUNK):
            if not verify and (wanted := part.named_organisations() - oids.keys() - looked_up):
                oids.update(organisation_oids(saved_oids(state, wanted)))
                looked_up |= wanted
            saved = _Saved(state, part.keys, gone)
            # A record sent from the same input as now (and not waiting for an operator) is not made again.
            fingerprints = dict(zip(part.keys, part.fingerprints(oids)))
            same = saved.unchanged(fingerprints, quarantined)
            result.add_many([key for key in part.keys if key in same], kind, "unchanged", "unchanged")
            for key in same:
                result.left_out.update(saved.left_out(key))
            result.not_made += len(same)
            planned: list[tuple[Entry, dict, str, str]] = []  # entry, document, hash, action
            for entry in part.entries(skip=same):
                document, waiting = resolve_employments(entry.document, oids)
                result.counts["employments_waiting_for_organisation"] += waiting
                digest = content_hash(document)
                row = saved.get(entry.external_id)
                if entry.external_id in quarantined:  # refused run after run: waits for an operator (C4)
                    result.add(entry.external_id, kind, "skip", "quarantined")
                elif row.get("oid") and row.get("hash") == digest:
                    result.add(entry.external_id, kind, "unchanged", "unchanged")
                    result.settle(entry, digest, fingerprints[entry.external_id])
                else:
                    action = "update" if row.get("oid") else ("recover" if row.get("creating") else "create")
                    planned.append((entry, document, digest, action))
            if dry_run:
                for entry, _, _, action in planned:
                    result.add(entry.external_id, kind, "create" if action == "recover" else action, "planned")
            else:
                for start in range(0, len(planned), CHUNK):
                    _write(client, state, planned[start:start + CHUNK], saved, oids, result, unanswered,
                           quarantine_after, fingerprints)
            result.seal()
    if unanswered:
        missing = sum(n for key, n in result.counts.items() if key.endswith("/unanswered"))
        raise XelionUnavailable(f"{missing} address book writes got no answer from Xelion "
                                f"({unanswered[0]}); the answered ones are saved and the next run sends the rest")
    return result


def _write(client: XelionClient, state: SyncState, chunk: list[tuple[Entry, dict, str, str]], saved: _Saved,
           oids: dict[str, str], result: AddressBookResult, unanswered: list[Exception], quarantine_after: int,
           fingerprints: dict[str, str]) -> None:
    """Send one chunk of planned writes and save its answers together."""
    creates = [(e, h) for e, _, h, a in chunk if a == "create"]
    if creates:  # marked before they are sent: a lost answer is found again, never created twice
        state.save_records(DESTINATION, [{"external_id": e.external_id, "content_hash": IN_DOUBT,
                                          "email_hash": None, "permissions": {}, "fields": {"creating": True}}
                                         for e, _ in creates])
    outcomes = _send(client, [(e, d, saved.get(e.external_id).get("oid"), a) for e, d, _, a in chunk])
    failpoint("xelion_address_book.chunk_answered")
    done, refused = [], []
    for (entry, _, digest, action), (oid, error) in zip(chunk, outcomes):
        shown = "create" if action == "recover" else action
        if error is None:
            done.append({"external_id": entry.external_id, "content_hash": digest, "email_hash": None,
                         "permissions": {}, "fields": {}, "destination_key": oid})
            result.add(entry.external_id, entry.kind, shown, "ok")
            result.settle(entry, digest, fingerprints.get(entry.external_id))
            if entry.kind == ORGANISATION:
                oids[entry.external_id] = oid
        elif isinstance(error, XelionRequestError):
            reason = f"{error.status_code}/{error.error_code}: {', '.join(error.fields) or 'the record'}"
            refused.append({"external_id": entry.external_id, "reason": reason, "status_code": error.status_code})
            result.add(entry.external_id, entry.kind, shown, "rejected", reason)
        else:
            unanswered[:] = unanswered or [error]
            result.add(entry.external_id, entry.kind, shown, "unanswered", type(error).__name__)
    with state.transaction():
        state.save_records(DESTINATION, done)
        state.clear_rejections(DESTINATION, [d["external_id"] for d in done])
        if refused:
            state.record_rejections(DESTINATION, refused, quarantine_after)


def _send(client: XelionClient, work: list[tuple[Entry, dict, str | None, str]]) -> list[tuple[str | None, Exception | None]]:
    """Each write side by side, at most the client's concurrency cap in flight; per item (oid, error)."""

    def one(item: tuple[Entry, dict, str | None, str]) -> tuple[str | None, Exception | None]:
        entry, document, oid, action = item
        try:
            if action == "recover":
                oid = _find_made(client, document)
            current = client.addressable(oid) if oid else None
            if current is None:  # new, or removed in Xelion by a user: made (again)
                return str(client.create_addressable(document)["oid"]), None
            body = edited(current, document)
            if body is not None:
                client.update_addressable(oid, body)
            return oid, None
        except (XelionRequestError, XelionUnavailable, XelionWriteUnknown) as exc:
            return None, exc

    with ThreadPoolExecutor(max_workers=max(1, client.max_concurrency)) as pool:
        return list(pool.map(one, work))


def _find_made(client: XelionClient, document: dict) -> str | None:
    """The addressable an earlier run made for this AFAS record (its create's answer lost), by its marker."""
    for found in client.addressables(where={"name": common_name(document)}, include=["comment"]):
        if found.get("comment") == document["comment"]:
            return str(found["oid"])
    return None


class XelionAddressBook:
    """Xelion's address book as an erasable destination (P2, `afas_pipeline.sync.destination.Erasable`)."""

    name = DESTINATION
    title = "Xelion"

    def erasure_ids(self, keys: Mapping[str, list[str]]) -> list[str]:
        return [record_key(PERSON, p) for p in keys.get("persons", [])]

    def erase(self, client: XelionClient, external_id: str, destination_key: str | None) -> str:
        """Remove the addressable the sync made for this AFAS person (its oid in the sync state); none saved: the
        sync never made one."""
        if not destination_key:
            return ABSENT
        return ERASED if client.remove_addressable(destination_key) else ABSENT


# --- call reports ------------------------------------------------------------------------------------------


def find_report(afas: AfasClient, subject_type: int, call_id: str) -> str | None:
    """The SbId of the dossier item AFAS already holds for this call (found by its marker line), or None."""
    rows, _ = afas.read(SUBJECTS, filters=Filter.all_of(
        Condition("SubjectTypeId", Op.EQ, str(subject_type)), Condition("Text", Op.CONTAINS, f"{MARKER}{call_id}")),
        order_by=["SubjectId"])
    return None if rows.empty else str(rows["SubjectId"].iloc[0])


def post_report(afas: AfasClient, body: dict) -> str:
    """POST one KnSubject (never anything else: R14's guard, here too) and return its SbId."""
    if set(body) != {"KnSubject"}:
        raise ValueError("a call report is a KnSubject and nothing else")
    answer = afas.insert("KnSubject", body)
    failpoint("xelion_call_reports.post_answered")
    return str((answer.get("results") or answer).get("KnSubject", {}).get("SbId"))


def each(work: Callable, items: list, workers: int) -> list:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(work, items))
