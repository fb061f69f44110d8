"""The saver of a sync (`chain/writer.py`): the sending threads hand each batch's answers over and go on sending; one
thread saves them in the order handed over, what piled up meanwhile in one transaction. What it promises: nothing is
reported saved before it is committed (the `batch_saved` fail point and a chunk's end come after their saves), and
a save that fails stops the sync instead of being skipped."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from afas_pipeline.chain.writer import Outcomes, Saver, StateWriter, _rows_at, results_frame
from afas_pipeline.mailchimp import MemberResult
from afas_pipeline.spotler.client import ContactResult
from afas_pipeline.sync.state import SyncState


class CountingState(SyncState):
    """A SQLite state that counts the transactions opened through `transaction()`."""

    transactions = 0

    def transaction(self):
        CountingState.transactions += 1
        return super().transaction()


def _row(external_id: str) -> dict:
    return {"external_id": external_id, "content_hash": f"h{external_id}", "email_hash": "e", "permissions": {},
            "bounced_email_hash": None, "fields": {}}


@pytest.fixture
def state(tmp_path) -> CountingState:
    CountingState.transactions = 0
    return CountingState(tmp_path / "state.sqlite")


def _held(saver: Saver, value=None) -> tuple[threading.Event, Future]:
    """The saver inside a first transaction (its work returns `value`) until the event returned is set."""
    inside, go = threading.Event(), threading.Event()

    def first():
        inside.set()
        assert go.wait(10)
        return value

    held = saver.submit(first)
    assert inside.wait(10)
    return go, held


def test_what_piles_up_while_the_saver_saves_is_saved_in_order_in_one_transaction(state):
    saver = Saver(state, "spotler")
    order: list[str] = []

    def save(external_id: str) -> str:
        state.save_records("spotler", [_row(external_id)])
        order.append(external_id)
        return external_id

    go, held = _held(saver, "first")
    futures = [held] + [saver.submit(lambda n=n: save(str(n))) for n in range(5)]
    go.set()
    saver.flush()

    assert [f.result() for f in futures] == ["first", "0", "1", "2", "3", "4"]
    assert order == ["0", "1", "2", "3", "4"]
    assert CountingState.transactions == 2  # the first, then the five that waited for it
    assert sorted(state.records("spotler")["external_id"]) == ["0", "1", "2", "3", "4"]


def test_after_runs_once_the_work_is_committed(state):
    saver = Saver(state, "spotler")
    seen: list[list[str]] = []
    # `after` reads the state on a connection of its own: it sees the record only once the transaction committed.
    saver.submit(lambda: state.save_records("spotler", [_row("7")]),
                 after=lambda _: seen.append(list(SyncState(state.path).records("spotler")["external_id"])))
    saver.flush()
    assert seen == [["7"]]


def test_a_failed_save_fails_what_waits_and_every_later_hand_over(state):
    saver = Saver(state, "spotler")

    def broken():
        raise OSError("disk full")

    go, _ = _held(saver)
    failing = saver.submit(broken)
    waiting = saver.submit(lambda: state.save_records("spotler", [_row("1")]))
    go.set()
    with pytest.raises(OSError, match="disk full"):
        failing.result(10)
    with pytest.raises(OSError, match="disk full"):
        waiting.result(10)  # in the same transaction: rolled back with it
    with pytest.raises(OSError, match="disk full"):
        saver.submit(lambda: None)
    with pytest.raises(OSError, match="disk full"):
        saver.flush()
    assert state.records("spotler").empty


def test_a_failure_handed_over_after_the_failed_group_is_failed_too(state):
    """Work handed over while the failing group runs is not left waiting for ever (a chunk's begin waits on it)."""
    saver = Saver(state, "spotler")
    inside, go = threading.Event(), threading.Event()

    def broken_once_others_wait():
        inside.set()
        assert go.wait(10)
        raise OSError("locked")

    saver.submit(broken_once_others_wait)
    assert inside.wait(10)
    later = saver.submit(lambda: "never")
    go.set()
    with pytest.raises(OSError, match="locked"):
        later.result(10)
    saver.flush(quietly=True)


@pytest.mark.parametrize("order", ["increasing", "shuffled"])
def test_rows_at_takes_the_rows_at_the_positions_from_a_column_of_many_chunks(order):
    n = 1000
    rng = np.random.default_rng(3)
    texts = pa.chunked_array([pa.array([f"v{i}" for i in range(start, start + 100)]) for start in range(0, n, 100)])
    frame = pd.DataFrame({"text": pd.arrays.ArrowExtensionArray(texts), "number": np.arange(n)},
                         index=np.arange(n) * 3)
    positions = np.sort(rng.choice(n, 120, replace=False)) if order == "increasing" else rng.permutation(n)[:120]
    got = _rows_at(frame, positions)
    want = frame.iloc[positions].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert got["text"].tolist() == [f"v{p}" for p in positions]


class _HeldDestination:
    """A destination whose `write` of each chunk waits until the test lets that chunk through."""

    name = "held"

    def __init__(self):
        self.started: list[list[str]] = []
        self.through: dict[int, threading.Event] = {}

    def documents(self, chunk: pd.DataFrame, keys) -> list[dict]:
        return [{"externalId": i} for i in chunk["external_id"]]

    def resubscriptions(self, documents, actions) -> list[int]:
        return []

    def write(self, client, documents: list[dict], on_batch) -> None:
        number = len(self.started)
        self.through[number] = threading.Event()
        self.started.append([d["externalId"] for d in documents])
        assert self.through[number].wait(10)
        on_batch([])


class _Writer:
    """What `send_in_chunks` asks of a `StateWriter`, noting the order of the chunks' begin and end."""

    resubscriptions = 0
    outcome: dict = {}

    def __init__(self):
        self.events: list[str] = []

    def destination_keys(self, chunk):
        return {}

    def begin(self, chunk) -> int:
        self.events.append(f"begin {chunk['external_id'].iloc[0]}")
        return len(self.events)

    def save_batch(self, results) -> None:
        pass

    def end(self, entry: int) -> None:
        self.events.append(f"end {entry}")

    def flush(self, quietly: bool = False) -> None:
        self.events.append("flush")


def test_two_chunks_are_on_their_way_at_once_each_recorded_before_it_is_sent(monkeypatch):
    """The next chunk's batches queue for the client's slots while the last ones of a chunk are answered; a third
    is built and recorded meanwhile, and sent once one of the two is done."""
    from afas_pipeline.chain import writer as writer_module
    from afas_pipeline_tests.waiting import wait_until

    monkeypatch.setattr(writer_module, "SEND_CHUNK", 2)
    rows = pd.DataFrame({"external_id": [str(i) for i in range(6)], "action": "create"})
    members = pd.DataFrame({"external_id": [str(i) for i in range(6)], "email": "x@example.nl"})
    destination, writer = _HeldDestination(), _Writer()
    sending = threading.Thread(target=writer_module.send_in_chunks, args=(destination, None, rows, members, writer))
    sending.start()
    wait_until(lambda: len(destination.started) == 2 and "begin 4" in writer.events)
    assert destination.started == [["0", "1"], ["2", "3"]]  # the first not answered yet, the second sent
    assert writer.events == ["begin 0", "begin 2", "begin 4"]  # the third recorded, waiting for a free place
    destination.through[1].set()  # the second is answered first
    wait_until(lambda: len(destination.started) == 3)
    assert destination.started[2] == ["4", "5"] and writer.events[-1] == "end 2"
    destination.through[0].set()
    destination.through[2].set()
    sending.join(10)
    assert writer.events[-1] == "flush" and sorted(writer.events[3:6]) == ["end 1", "end 2", "end 3"]


def test_the_results_of_a_sync_name_per_record_sent_its_answer_kept_as_ids_for_the_accepted_and_whole_for_the_rest():
    """`Outcomes` keeps an accepted record's id (by the answer's HTTP status), any other answer whole; the results
    frame gives each plan row what became of it, as a result object per record did."""
    plan = pd.DataFrame({"external_id": pd.array(["1", "2", "3", "4", "5", "6", "7"], dtype="string"),
                         "action": ["create", "update", "unchanged", "create", "update", "create", "skip_hard_bounce"]})
    outcome = Outcomes()
    outcome.add([ContactResult("1", "OK", None, 200), ContactResult("4", "PROPERTY_INVALID", "no", 200)])
    outcome.add([ContactResult("2", "OK", None, 204)])
    outcome.add([MemberResult("5", "Member In Compliance State", "compliance", 400)])
    results = results_frame(plan, outcome, dry_run=False)
    assert outcome.accepted == {200: ["1"], 204: ["2"]} and sorted(outcome.others) == ["4", "5"]
    assert results["status"].tolist() == ["ok", "ok", "unchanged", "rejected", "excluded_by_consent", "rejected",
                                          "skip_hard_bounce"]
    assert results["code"].tolist() == ["OK", "OK", pd.NA, "PROPERTY_INVALID", "Member In Compliance State",
                                        "NO_RESULT", pd.NA]
    assert results["status_code"].tolist() == [200, 204, pd.NA, 200, 400, pd.NA, pd.NA]
    assert results_frame(plan, None, dry_run=True)["status"].tolist() == [
        "dry_run", "dry_run", "unchanged", "dry_run", "dry_run", "dry_run", "skip_hard_bounce"]
    assert set(results_frame(plan, None, dry_run=False)["code"].dropna()) == {"NO_RESULT"}


class _Spotler:
    """What `StateWriter` asks of a destination: its name and permission keys."""

    name, permission_keys = "spotler", [1]


def _plan(external_ids: list[str]) -> pd.DataFrame:
    """Plan rows creating these records (`plan_sync`'s columns that `StateWriter` reads)."""
    n = len(external_ids)
    return pd.DataFrame({
        "external_id": pd.array(external_ids, dtype="string"), "action": "create", "send_properties": True,
        "reactivate": False, "in_state": False, "state_changed": False,
        "content_hash": [f"c{i}" for i in external_ids], "email_hash": [f"e{i}" for i in external_ids],
        "bounced_email_hash": pd.array([None] * n, dtype="string"),
        "afas_modified": pd.Timestamp("2026-11-16T10:00:00Z"),
        "set:1": pd.array([True] * n, dtype="boolean"), "afas:1": True,
        "on_since:1": pd.Timestamp("2026-11-16T10:00:00Z")})


def test_a_chunk_lets_go_of_its_rows_before_its_in_flight_entry_can_be_handed_to_the_next(tmp_path):
    """SQLite hands a new in-flight entry the highest id + 1, so once the newest chunk's entry is deleted the next
    chunk gets its id. A chunk's end let go of its rows after handing the delete to the saver: when the next chunk
    was recorded in between, under the same id, the end took that chunk's rows with it, and its accepted records
    were never saved (sent, and the state kept what it had before)."""
    state = SyncState(tmp_path / "state.sqlite")
    plan = _plan(["1", "2"])
    writer = StateWriter(state, _Spotler(), plan, [], quarantine_after=5)
    first = writer.begin(plan.iloc[:1])
    writer.save_batch([ContactResult("1", "OK", None, 200)])
    hand_over, second = writer._saver.submit, []

    def submit(work):
        future = hand_over(work)
        if not second:  # the end's delete is saved, and the next chunk recorded, before `end` goes on
            future.result()
            second.append(None)
            second[0] = writer.begin(plan.iloc[1:])
        return future

    writer._saver.submit = submit
    writer.end(first)
    writer._saver.submit = hand_over
    assert second == [first]  # the id handed out again
    writer.save_batch([ContactResult("2", "OK", None, 200)])
    writer.end(second[0])
    writer.flush()
    saved = state.records("spotler", ["1", "2"]).set_index("external_id")
    assert saved["content_hash"].to_dict() == {"1": "c1", "2": "c2"}
    assert state.writes_in_flight("spotler") == []
