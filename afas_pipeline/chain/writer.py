"""Carrying out a plan: documents sent chunk by chunk, and each batch's answers saved in the sync state as soon as
they come back, so a run that dies halfway leaves a state the next run can trust (C3, C4)."""

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from typing import Any

import numpy as np
import pandas as pd

from afas_pipeline.lib.bulk import collect_young, collector_paused
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.frames import object_values, texts_in
from afas_pipeline.sync.audience import field_hash_column
from afas_pipeline.sync.destination import Destination, WriteResult
from afas_pipeline.sync.feedback import REACTIVATED
from afas_pipeline.sync.plan import set_column
from afas_pipeline.sync.state import SyncState

#: The reason a record refused for the destination's own consent reasons is kept with (then its code).
CONSENT_REASON = "consent:"
#: Records per chunk of documents handed to the destination's client (it batches and parallelises them).
SEND_CHUNK = 5000
#: Chunks on their way to the destination at once (`send_in_chunks`).
CHUNKS_IN_FLIGHT = 2
#: Chunks after which the cycles their frames made are freed (`collect_young`): a pass looks at every young object
#: still alive, the documents and rows of the chunks in flight among them, so a pass per chunk would look at each
#: of them several times.
COLLECT_EVERY = 8
#: Records per part of the plan not sent (unchanged, skipped) whose state rows are brought up to date at once.
UNSENT_CHUNK = 20000


def send_in_chunks(destination: Destination, client: Any, rows: pd.DataFrame, members: pd.DataFrame,
                   writer: "StateWriter") -> dict:
    """Send the documents of `rows` (plan rows to send), each joined with its member of `members` (the audience's,
    by external id) chunk by chunk, so the joined rows take the memory of a chunk, not of the audience. Save each
    batch's outcome in the sync state as soon as the destination answered it (a run killed later re-sends
    nothing that was acknowledged). Each chunk is recorded as in flight before it is sent (see `StateWriter`); up to
    `CHUNKS_IN_FLIGHT` are on their way, and the next one is built and recorded meanwhile. A document that would
    re-subscribe a record the destination already has is never sent (MC3): it is counted in `writer.resubscriptions`.
    Returns the destination's answers (`Outcomes`); raises the destination's write-incomplete error when a batch
    got no answer, after the answered ones (of every chunk on its way) were saved."""

    def send(entry: int, documents: list) -> None:
        destination.write(client, documents, writer.save_batch)
        writer.end(entry)

    member_at = pd.Index(members["external_id"])
    # The member's columns the plan row lacks (where both have one, the plan's is the one sent).
    member_columns = members[[c for c in members.columns if c not in rows.columns]]

    # Documents, state rows and answers: many small objects a chunk at a time (lib/bulk.py).
    try:
        # Two chunks on their way at a time: the next one's batches wait for the client's slots (its concurrency per
        # base URL, handed to waiting calls in the order they came), so the slots the last batches of a chunk leave
        # free are used at once instead of when the whole chunk is answered.
        with collector_paused(), ThreadPoolExecutor(max_workers=CHUNKS_IN_FLIGHT,
                                                    thread_name_prefix=f"{destination.name}-send") as sender:
            sending: set[Future] = set()
            for start in range(0, len(rows), SEND_CHUNK):
                chunk = rows.iloc[start : start + SEND_CHUNK]
                found = member_at.get_indexer(chunk["external_id"])
                if (found >= 0).all():  # side by side, by position: every plan row is a member's
                    chunk = pd.concat([chunk.reset_index(drop=True), _rows_at(member_columns, found)], axis=1)
                else:
                    chunk = chunk.merge(members.iloc[found[found >= 0]], on="external_id", how="left",
                                        suffixes=("", "_member"))
                documents = destination.documents(chunk, writer.destination_keys(chunk))
                stopped = destination.resubscriptions(documents, chunk["action"].tolist())
                if stopped:
                    writer.resubscriptions += len(stopped)
                    keep = [i for i in range(len(documents)) if i not in set(stopped)]
                    chunk, documents = chunk.iloc[keep], [documents[i] for i in keep]
                # Recorded as in flight while the previous chunk is still on its way, so the senders never wait
                # for it; a chunk recorded and then not sent (the run died) is sent again by the next run.
                entry = writer.begin(chunk)
                failpoint(f"{destination.name}_sync.intent_recorded")
                if len(sending) == CHUNKS_IN_FLIGHT:  # wait for a place: the first chunk answered (or failed)
                    done, sending = wait(sending, return_when=FIRST_COMPLETED)
                    for finished in done:
                        finished.result()
                sending.add(sender.submit(send, entry, documents))
                if start // SEND_CHUNK % COLLECT_EVERY == COLLECT_EVERY - 1:
                    collect_young()
            for finished in as_completed(sending):
                finished.result()
    except BaseException:
        writer.flush(quietly=True)  # what was answered is saved before the error goes up
        raise
    writer.flush()
    return writer.outcome


def _rows_at(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The rows of `frame` at `positions`, numbered from 0. Taken from the slice the positions span: Arrow takes
    from a column of many chunks by joining the chunks first, so a take from the whole column per chunk of a sync
    would copy the whole column again and again (the plan's rows come in the audience's order, so the slices of
    successive chunks do not overlap)."""
    low = int(positions.min())
    return frame.iloc[low : int(positions.max()) + 1].iloc[positions - low].reset_index(drop=True)


class Outcomes:
    """The destination's answers of one sync: of the records it accepted (nearly all) only the ids, by the HTTP
    status of the answer, and every other answer whole. A result object kept per accepted record took some 300
    bytes: 0.24 GB for the 790,551 members of Mailchimp's full sync at 1,000,000 contacts, held to its end."""

    def __init__(self) -> None:
        self.accepted: dict[int | None, list[str]] = {}
        self.others: dict[str, WriteResult] = {}

    def add(self, results: list[WriteResult]) -> None:
        for result in results:
            if result.ok:
                self.accepted.setdefault(result.status_code, []).append(result.external_id)
            else:
                self.others[result.external_id] = result


class StateWriter:
    """Carries one sync's outcome into the sync state, batch by batch, so that a run that dies halfway
    leaves a state the next run can trust.

    Before a chunk is sent, what its success would save is recorded as writes in flight (with how far
    the destination's change feed had been read). Each batch the destination answers is handed to the `Saver`,
    which saves it in one transaction (with the batches answered while it saved the last ones): what it accepted
    (content, two-way field values, permissions), AFAS's permission fields and since when they are on (C1), each
    record's bounced address (R11), the `reactivated` events for the write-back (R11) and the refused records (C4). Once every batch of the chunk is saved, the chunk is no longer in
    flight. Records not sent (unchanged, skipped, quarantined) are saved first: only AFAS's side changed."""

    def __init__(self, state: SyncState, destination: Destination, plan: pd.DataFrame, two_way: list[str],
                 quarantine_after: int, fresh_plan: bool = False):
        self.state, self.destination, self.plan, self.two_way = state, destination, plan, two_way
        self.name, self.keys = destination.name, destination.permission_keys
        self.quarantine_after = quarantine_after
        # A plan this run made moments ago (the run lock kept the state as it read it): its `in_state` and
        # `state_changed` say which state rows to read and which unsent records to save. Any other plan may be
        # older than the state; then every row is read and judged again.
        self.fresh_plan = fresh_plan and {"in_state", "state_changed"} <= set(plan.columns)
        self._previous: dict[str, dict] = {}  # the state rows of the chunk at hand (`_previous_of`)
        self._asked: set[str] = set()  # the records those rows were asked for (a record new to the state has none)
        self.feed_mark = state.watermark(self.name, "contact_updates")
        self.outcome = Outcomes()
        self.resubscriptions = 0
        self._accepted: dict[str, dict] = {}
        # Per chunk in flight, by its entry: what a refusal saves is built only for the records refused.
        self._sent: dict[int, tuple[dict[str, Any], dict[str, dict], dict[str, int]]] = {}
        self._entry_of: dict[str, int] = {}
        self._reactivate: dict[str, str] = {}
        # The records with a refusal on file (few): an accepted record's refusal is cleared only where there is one.
        self._refused = set(state.rejected(self.name)["external_id"].astype(str))
        self._lock = threading.Lock()
        self._saver = Saver(state, self.name)

    def _previous_of(self, rows: pd.DataFrame) -> dict[str, dict]:
        """The state rows of these plan rows' records as saved before this sync wrote them: read per chunk, not
        for the whole plan at once, so the memory they take follows the chunk, not the audience. The chunks of a
        plan hold different records (C2), and the run lock keeps other runs out, so reading them late changes
        nothing. Of a fresh plan only the records it found in the state are asked for."""
        asked = rows.loc[rows["in_state"].astype(bool), "external_id"] if self.fresh_plan else rows["external_id"]
        ids = [str(i) for i in object_values(asked)]
        if not ids or not set(ids) <= self._asked:
            self._asked = set(ids)
            self._previous = ({str(r["external_id"]): r for r in self.state.records(self.name, ids).to_dict("records")}
                              if ids else {})
        return self._previous

    def destination_keys(self, rows: pd.DataFrame) -> dict[str, str | None]:
        """The destination's own key of each plan row's record as last saved (None: not known, or not used)."""
        previous, ids = self._previous_of(rows), [str(i) for i in rows["external_id"].tolist()]
        if not previous:  # all new to the state (a first full sync)
            return dict.fromkeys(ids)
        keys = {}
        for i in ids:
            key = (previous.get(i) or {}).get("destination_key")
            keys[i] = None if key is None or pd.isna(key) else str(key)
        return keys

    def save_unsent(self) -> None:
        # A row superseded (`chain.sync._leave_superseded`) is the next run's: what the plan knew is not saved either.
        unsent = self.plan[~self.plan["action"].isin(["create", "update", "superseded"])]
        if self.fresh_plan:
            unsent = unsent[unsent["state_changed"].astype(bool)]
        for start in range(0, len(unsent), UNSENT_CHUNK):
            part = unsent.iloc[start:start + UNSENT_CHUNK]
            previous = self._previous_of(part)
            rows = _state_rows(_state_columns(part, self.keys, self.two_way), previous, accepted=False)
            self.state.save_records(self.name, list(rows.values()))

    def begin(self, chunk: pd.DataFrame) -> int:
        columns = _state_columns(chunk, self.keys, self.two_way)
        previous = self._previous_of(chunk)
        accepted = _state_rows(columns, previous, accepted=True)
        reactivate = chunk[chunk["reactivate"].astype(bool)]
        intents = {i: {"content_hash": r["content_hash"], "permissions": r["permissions"]} for i, r in accepted.items()}
        # Through the saver, the state's one writer during the sends; committed before the chunk is sent.
        entry = self._saver.submit(lambda: self.state.begin_writes(self.name, intents, self.feed_mark)).result()
        with self._lock:
            self._accepted.update(accepted)
            self._sent[entry] = (columns, previous, {str(i): n for n, i in enumerate(columns["external_id"])})
            self._entry_of.update((str(i), entry) for i in columns["external_id"])
            # Dated by AFAS's change of the address, so that a bounce the destination reports after it is the later event.
            self._reactivate.update((str(i), _utc_text(t)) for i, t in zip(reactivate["external_id"], reactivate["afas_modified"]))
        return entry

    def _refused_rows(self, external_ids: list[str]) -> list[dict]:
        """What these refused records save (`_state_rows` of a record not accepted), from their chunk's columns."""
        rows = []
        for external_id in external_ids:
            entry = self._entry_of.get(external_id)
            if entry is None:
                continue
            columns, previous, position = self._sent[entry]
            rows += _state_rows(columns, previous, accepted=False, only=[position[external_id]]).values()
        return rows

    def save_batch(self, results: list[WriteResult]) -> None:
        """The destination's answers to one batch (called from the sending threads), handed to the saver to be
        saved together. A refusal for the destination's own consent reasons is an outcome: saved like an accepted
        record (so it is not sent again until AFAS changes it) and kept, quarantined at once, with its reason."""
        failpoint(f"{self.name}_sync.batch_acknowledged")
        settled = [r for r in results if not r.ok and r.consent_refusal]
        ok = [r.external_id for r in results if r.ok]
        refused = [r for r in results if not r.ok and not r.consent_refusal]
        with self._lock:
            rows = [{**self._accepted[r.external_id], "destination_key": getattr(r, "destination_key", None)}
                    for r in [*results] if (r.ok or r in settled) and r.external_id in self._accepted]
            rows += self._refused_rows([r.external_id for r in refused])
            events = [(i, REACTIVATED, self._reactivate[i]) for i in ok if i in self._reactivate]
            self.outcome.add(results)
            cleared = [i for i in ok if i in self._refused]
            self._refused.update(r.external_id for r in [*refused, *settled])
        refusals = [{"external_id": r.external_id, "reason": self.destination.refusal_reason(r),
                     "status_code": r.status_code} for r in refused]
        consent = [{"external_id": r.external_id, "reason": f"{CONSENT_REASON}{r.code}", "status_code": r.status_code}
                   for r in settled]

        def save() -> None:
            self.state.save_records(self.name, rows)
            self.state.record_feedback(self.name, events, "pending")
            self.state.record_rejections(self.name, refusals, self.quarantine_after)
            self.state.record_rejections(self.name, consent, 1)
            self.state.clear_rejections(self.name, cleared)

        self._saver.submit(save, after=lambda _: failpoint(f"{self.name}_sync.batch_saved"))

    def end(self, entry: int) -> None:
        """Every batch of the chunk `entry` was answered: once their saves are in, it is no longer in flight (in
        the same transaction as the last of them, or a later one). Its rows are let go first: once its entry is
        deleted, the state may hand the same id to the next chunk (SQLite reuses the highest), whose rows this must
        not take with it."""
        with self._lock:
            _, _, position = self._sent.pop(entry, (None, None, {}))
            for external_id in position:
                self._accepted.pop(external_id, None)
                self._entry_of.pop(external_id, None)
                self._reactivate.pop(external_id, None)
        self._saver.submit(lambda: self.state.end_writes(entry))

    def flush(self, quietly: bool = False) -> None:
        """Wait until everything handed to the saver is saved (`Saver.flush`)."""
        self._saver.flush(quietly)


class Saver:
    """One thread that carries work into the sync state in the order it was handed over, what piled up while it
    saved the last time in one transaction (group commit). The threads sending to a destination hand each batch's
    answers over and go on sending, instead of taking turns at the state's one writer and its commit. Work is
    saved in order, so a chunk's end is saved after its batches. After a failed save every later one fails with
    the same error (`submit`, `flush`), so a sync stops at its next batch."""

    def __init__(self, state: SyncState, name: str):
        self.state, self.name = state, name
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[[], Any], Future, Callable[[Any], None] | None]] = []
        self._draining: Future | None = None
        self._failure: BaseException | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-state")

    def submit(self, work: Callable[[], Any], after: Callable[[Any], None] | None = None) -> Future:
        """Hand `work` over (it runs in a transaction with others); `after` runs with its result once it is
        committed. The future is done then."""
        done: Future = Future()
        with self._lock:
            if self._failure is not None:
                raise self._failure
            self._pending.append((work, done, after))
            if self._draining is None:
                self._draining = self._thread.submit(self._drain)
        return done

    def flush(self, quietly: bool = False) -> None:
        """Wait until everything handed over is saved, and stop the thread. Raises what made a save fail, unless
        `quietly` (another error is already on its way up)."""
        with self._lock:
            draining = self._draining
        if draining is not None:
            draining.result()
        self._thread.shutdown()
        if self._failure is not None and not quietly:
            raise self._failure

    def _drain(self) -> None:
        while True:
            with self._lock:
                group, self._pending = self._pending, []
                if not group:
                    self._draining = None
                    return
            try:
                with self.state.transaction():
                    values = [work() for work, _, _ in group]
                for (_, done, after), value in zip(group, values):
                    if after is not None:
                        after(value)
                    done.set_result(value)
            except BaseException as exc:  # a crash fail point too: every later save fails the same way
                with self._lock:
                    self._failure = exc
                    group += self._pending
                    self._pending, self._draining = [], None
                for _, done, _ in group:
                    if not done.done():
                        done.set_exception(exc)
                return


def results_frame(plan: pd.DataFrame, outcome: Outcomes | None, dry_run: bool) -> pd.DataFrame:
    """Per plan row what became of it: ok, rejected, excluded_by_consent, dry_run, or the plan's own action. A
    record sent without an answer (`outcome`) is rejected, with code NO_RESULT."""
    sent = plan["action"].isin(["create", "update"]).to_numpy(dtype=bool)
    status = plan["action"].to_numpy(dtype=object).copy()
    code = np.full(len(plan), None, dtype=object)
    status_code = np.full(len(plan), None, dtype=object)
    if dry_run:
        status[sent] = "dry_run"
    elif sent.any():
        outcome = outcome or Outcomes()
        ids = plan["external_id"][sent]
        at = np.flatnonzero(sent)
        status[at], code[at] = "rejected", "NO_RESULT"
        for answered, accepted in outcome.accepted.items():
            found = at[texts_in(ids, pd.Index(accepted, dtype="string"))]
            status[found], code[found], status_code[found] = "ok", "OK", answered
        if outcome.others:
            for n in at[texts_in(ids, pd.Index(list(outcome.others), dtype="string"))]:
                r = outcome.others[str(plan["external_id"].iat[n])]
                status[n] = "excluded_by_consent" if r.consent_refusal else "rejected"
                code[n], status_code[n] = r.code, r.status_code
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


def _state_columns(frame: pd.DataFrame, keys: list, two_way: list[str]) -> dict[str, Any]:
    """The columns of `frame` (plan rows) that `_state_rows` reads, as plain Python lists."""
    columns = {name: object_values(frame[name])
               for name in ("external_id", "content_hash", "email_hash", "bounced_email_hash", "send_properties")}
    columns["sent"] = {str(k): object_values(frame[set_column(k)]) for k in keys}
    columns["afas"] = {str(k): object_values(frame[f"afas:{k}"]) for k in keys}
    columns["since"] = {str(k): _iso_times(frame[f"on_since:{k}"]) for k in keys}
    columns["field_hashes"] = {name: object_values(frame[field_hash_column(name)])
                               for name in two_way}
    return columns


def _iso_times(times: pd.Series) -> list[str | None]:
    """Each time as `pd.Timestamp.isoformat` writes it, None where there is none. A UTC or naive time column (the
    plan's) is formatted by numpy, column-wise; anything else one value at a time."""
    tz = getattr(times.dtype, "tz", None)
    if not pd.api.types.is_datetime64_any_dtype(times.dtype) or (tz is not None and str(tz) != "UTC"):
        return [None if pd.isna(t) else pd.Timestamp(t).isoformat() for t in times]
    stamps = times.dt.tz_localize(None) if tz is not None else times
    ns = stamps.to_numpy(dtype="datetime64[ns]")
    seconds = np.datetime_as_string(ns.astype("datetime64[s]"), unit="s").astype(object)
    fraction = (ns - ns.astype("datetime64[s]")).astype("int64")
    offset = "+00:00" if tz is not None else ""
    # isoformat: nanoseconds when there are any, else microseconds when there are any, else whole seconds.
    return [None if missing else f"{second}.{part:09d}{offset}" if part % 1000 else
            f"{second}.{part // 1000:06d}{offset}" if part else f"{second}{offset}"
            for second, part, missing in zip(seconds.tolist(), fraction.tolist(), np.isnat(ns).tolist())]


def _state_rows(columns: dict[str, Any], previous: dict[str, dict], accepted: bool,
                only: list[int] | None = None) -> dict[str, dict]:
    """Per record of the plan rows in `columns` (`_state_columns`), the state row to save when the destination
    accepted what the plan sent (`accepted`), or when it was not sent or refused: then only AFAS's permission
    fields, since when they are on (C1) and the bounced address (R11) may change, and a record whose row would
    not change, or that the destination never accepted, is left out. `only`: these positions, not every record."""
    sent, afas, since, field_hashes = columns["sent"], columns["afas"], columns["since"], columns["field_hashes"]
    ids, contents, emails, bounced = (columns[c] for c in ("external_id", "content_hash", "email_hash", "bounced_email_hash"))
    per_key = [(k, sent[k], afas[k], since[k]) for k in sent]
    fields = list(field_hashes.items())
    rows = {}
    for i in range(len(ids)) if only is None else only:
        external_id = str(ids[i])
        before = previous.get(external_id) if previous else None
        before = before if before is not None and isinstance(before.get("content_hash"), str) else None
        if before is None:
            if not accepted:
                continue  # never accepted: nothing to remember
            # New to the state (every record of a first full sync): its row is what was sent.
            rows[external_id] = {
                "external_id": external_id, "content_hash": contents[i], "email_hash": emails[i],
                "permissions": {k: {"afas": bool(a[i]), "on_since": t[i]} if s[i] is None else
                                {"sent": bool(s[i]), "afas": bool(a[i]), "on_since": t[i]} for k, s, a, t in per_key},
                "fields": {name: hashes[i] for name, hashes in fields}, "bounced_email_hash": bounced[i],
            }
            continue
        permissions = {k: dict(v) for k, v in before["permissions"].items()}
        for k in sent:
            entry = permissions.setdefault(k, {})
            if accepted and sent[k][i] is not None:
                entry["sent"] = bool(sent[k][i])
            entry["afas"], entry["on_since"] = bool(afas[k][i]), since[k][i]
        fresh = accepted and columns["send_properties"][i]
        row = {
            "external_id": external_id,
            "content_hash": contents[i] if fresh else before["content_hash"],
            "email_hash": emails[i] if fresh else _text(before["email_hash"]),
            "permissions": permissions,
            "fields": {name: hashes[i] for name, hashes in fields} if fresh else before["fields"],
            "bounced_email_hash": bounced[i],
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


