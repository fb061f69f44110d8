"""The sync state (the feedback ledger, mailing-history items, rejected records, writes in flight, transactions):
each test on a fresh SQLite file and on a fresh Postgres database (`state_location`), no HTTP."""

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pytest

from afas_pipeline.sync.state import BY_KEY, IN_DOUBT_QUERY, TABLES, StateError, SyncState, _Db, copy_rows

EVENTS = [("10001", "optout:1", "2026-11-16T10:05:00+00:00"), ("10002", "bounce:hard", "2026-11-16T10:06:00+00:00"),
          ("10003", "optout:2", "2026-11-16T10:07:00+00:00")]


def test_the_ledger_is_read_for_the_keys_a_run_holds_and_a_delivered_event_stays_delivered(state_location):
    state = SyncState(state_location)
    state.record_feedback("spotler", EVENTS[:2], "delivered")
    state.record_feedback("spotler", EVENTS[2:], "pending")
    state.record_feedback("spotler", EVENTS[:1], "pending")  # read again later: stays delivered

    wanted = [EVENTS[0], EVENTS[2], ("10004", "optout:1", "2026-11-16T10:08:00+00:00")]
    rows = state.feedback_events("spotler", keys=wanted)

    assert list(zip(rows["external_id"], rows["status"])) == [("10001", "delivered"), ("10003", "pending")]
    assert list(state.feedback_events("spotler", status="pending", keys=wanted)["external_id"]) == ["10003"]
    assert len(state.feedback_events("spotler")) == 3
    assert state.feedback_events("mailchimp", keys=wanted).empty


# -- the mailing history's dossier items (R17) --

SENT = "2026-11-16T10:05:00+00:00"
LEASE = timedelta(hours=1)
OLD_MAILING_HISTORY = """CREATE TABLE mailing_history (
    destination TEXT NOT NULL, mailing_id TEXT NOT NULL, external_id TEXT NOT NULL, sent_at TEXT NOT NULL,
    sbid TEXT, updated_at TEXT NOT NULL,
    PRIMARY KEY (destination, mailing_id, external_id))"""


def _execute(location: str, sql: str, rows=((),)) -> None:
    """Plain SQL on the state's database, outside the state's API (its tables need not be there)."""
    raw = SyncState(location, read_only=True).connect_raw()
    try:
        _Db(raw, postgres=location.startswith("postgresql")).executemany(sql, rows)
        raw.commit()
    finally:
        raw.close()


def _age_claims(state: SyncState, by: timedelta) -> None:
    """As if the claims were taken `by` ago (by a run that died then)."""
    with state._connect() as db:
        db.execute("UPDATE mailing_history SET claimed_at = ? WHERE claimed_at IS NOT NULL",
                   ((datetime.now(timezone.utc) - by).isoformat(),))


def test_an_older_state_file_gains_the_claim_columns_and_a_waiting_item_reads_as_missing(state_location):
    _execute(state_location, "DROP TABLE IF EXISTS mailing_history")
    _execute(state_location, OLD_MAILING_HISTORY)
    _execute(state_location, "INSERT INTO mailing_history VALUES (?,?,?,?,?,?)",
             [("spotler", "m1", "10001", SENT, "77", SENT), ("spotler", "m1", "10002", SENT, None, SENT)])

    state = SyncState(state_location)
    items = state.mailing_items("spotler")

    assert items["sbid"].isna().tolist() == [False, True]  # pd.NA with every pandas version, never "nan"
    assert items["sbid"].iloc[0] == "77" and items["claimed_by"].isna().all()
    assert state.claim_mailing_item("spotler", ("m1", "10002"), SENT, "run-a", seen=items["updated_at"].iloc[1],
                                    lease=LEASE)
    assert list(state.mailing_items("spotler", pending_only=True)["claimed_by"]) == ["run-a"]


def test_a_dossier_item_is_claimed_by_one_run_at_a_time(state_location):
    state, key = SyncState(state_location), ("m1", "10001")

    # Two runs that both read the item as new: the first adds it with its claim, the second may not POST it.
    assert state.claim_mailing_item("spotler", key, SENT, "run-a", seen=None, lease=LEASE)
    assert not state.claim_mailing_item("spotler", key, SENT, "run-b", seen=None, lease=LEASE)
    seen = state.mailing_items("spotler")["updated_at"].iloc[0]
    # A later run that looked it up in AFAS and did not find it: run-a may still be POSTing it.
    assert not state.claim_mailing_item("spotler", key, SENT, "run-b", seen=seen, lease=LEASE)
    state.drop_waiting_mailing_items("spotler", [key], lease=LEASE)  # nor is a claimed item dropped
    assert len(state.mailing_items("spotler")) == 1

    # run-a died: once its claim is older than the lease, a run that looked the item up takes it over.
    _age_claims(state, LEASE + timedelta(minutes=1))
    assert state.claim_mailing_item("spotler", key, SENT, "run-b", seen=seen, lease=LEASE)
    state.release_mailing_claim("spotler", key, "run-a")  # not run-a's any more
    assert list(state.mailing_items("spotler")["claimed_by"]) == ["run-b"]

    # AFAS refused run-b's POST: free again, for a run that read the item after that (not on an older read).
    stale = state.mailing_items("spotler")["updated_at"].iloc[0]
    state.release_mailing_claim("spotler", key, "run-b")
    assert not state.claim_mailing_item("spotler", key, SENT, "run-c", seen=stale, lease=LEASE)
    current = state.mailing_items("spotler")["updated_at"].iloc[0]
    assert state.claim_mailing_item("spotler", key, SENT, "run-c", seen=current, lease=LEASE)

    # Its SbId saved: the claim ends and nobody claims the item again.
    state.save_mailing_items("spotler", [(*key, SENT, "77")])
    (item,) = state.mailing_items("spotler").to_dict("records")
    assert item["sbid"] == "77" and pd.isna(item["claimed_by"])
    _age_claims(state, LEASE * 2)
    assert not state.claim_mailing_item("spotler", key, SENT, "run-d", seen=item["updated_at"], lease=LEASE)


def test_a_state_path_that_is_a_folder_is_refused_naming_it(tmp_path):
    with pytest.raises(StateError, match=f"the sync state path {tmp_path} is a directory; set AFAS_PIPELINE_STATE"):
        SyncState(tmp_path)


def test_quarantine_counts_distinct_runs_not_calls(state_location):
    refused = {"external_id": "10001", "reason": "PROPERTY_INVALID:organisation", "status_code": 200}
    for run in ("run-1", "run-2"):
        state = SyncState(state_location, run_id=run)
        # Refused twice in one run (and listed twice in one call): one attempt.
        state.record_rejections("spotler", [refused, refused], quarantine_after=3)
        state.record_rejections("spotler", [refused], quarantine_after=3)
    rejected = state.rejected("spotler")
    assert rejected[["attempts", "quarantined"]].values.tolist() == [[2, False]]
    SyncState(state_location, run_id="run-3").record_rejections("spotler", [refused], quarantine_after=3)
    assert SyncState(state_location).rejected("spotler")[["attempts", "quarantined"]].values.tolist() == [[3, True]]


def test_a_transaction_commits_every_call_in_it_or_none(state_location):
    state = SyncState(state_location)
    with pytest.raises(RuntimeError):
        with state.transaction():
            state.record_feedback("spotler", EVENTS[:1], "pending")
            state.set_watermark("spotler", "contact_updates", datetime.now(timezone.utc))
            raise RuntimeError("the run dies here")
    assert state.feedback_events("spotler").empty and state.watermark("spotler", "contact_updates") is None


def test_writes_in_flight_left_behind_make_their_unanswered_records_in_doubt(state_location):
    state = SyncState(state_location)
    on = {"1": {"sent": True, "afas": True, "on_since": "2026-11-16T10:00:00+00:00"}}
    state.save_records("spotler", [{"external_id": "A", "content_hash": "a1", "email_hash": "e", "permissions": on,
                                    "bounced_email_hash": None}])
    intents = {"A": {"content_hash": "a2", "permissions": on},      # an update whose answer was never saved
               "B": {"content_hash": "b1", "permissions": on},      # a create whose answer was never saved
               "C": {"content_hash": "c1", "permissions": on}}      # a create whose answer was saved
    entry = state.begin_writes("spotler", intents, None)
    state.save_records("spotler", [{"external_id": "C", "content_hash": "c1", "email_hash": "e", "permissions": on,
                                    "bounced_email_hash": None}])

    assert state.in_doubt("spotler") == ["A", "B", "C"]  # still in flight: all of them
    assert state.resolve_in_doubt("spotler", state.writes_in_flight("spotler")) == 2

    records = state.records("spotler").set_index("external_id")
    assert records.loc["A", "content_hash"] == "in-doubt" and records.loc["A", "permissions"]["1"]["sent"] is None
    assert pd.isna(records.loc["B", "content_hash"])  # still a create, with AFAS's side of consent kept (C1)
    assert records.loc["B", "permissions"]["1"] == {"sent": None, "afas": True, "on_since": "2026-11-16T10:00:00+00:00"}
    assert records.loc["C", "content_hash"] == "c1"
    assert state.writes_in_flight("spotler") == [] and state.in_doubt("spotler") == ["A", "B"]
    state.end_writes(entry)  # harmless once resolved


def test_c4_a_released_record_is_tried_again_and_counts_towards_quarantine_from_one(state_location):
    refused = {"external_id": "10001", "reason": "PROPERTY_INVALID:organisation", "status_code": 200}
    for run in range(1, 6):
        SyncState(state_location, run_id=f"run-{run}").record_rejections("spotler", [refused], 5)
    state = SyncState(state_location)
    assert state.rejected("spotler")[["attempts", "quarantined"]].values.tolist() == [[5, True]]

    assert state.release("spotler", "10001")
    # Still a rejected record (until the destination accepts it), no longer quarantined: the next run sends it.
    assert state.rejected("spotler")[["external_id", "attempts", "quarantined"]].values.tolist() == [["10001", 0, False]]
    SyncState(state_location, run_id="run-6").record_rejections("spotler", [refused], 5)
    assert state.rejected("spotler")[["attempts", "quarantined"]].values.tolist() == [[1, False]]


def test_releasing_a_record_that_is_not_quarantined_changes_nothing(state_location):
    state = SyncState(state_location, run_id="run-1")
    state.record_rejections("spotler", [{"external_id": "10001", "reason": "X", "status_code": 200}], 5)
    before = state.rejected("spotler")
    assert not state.release("spotler", "10001")
    assert not state.release("spotler", "10002")  # not a rejected record at all
    assert not state.release("mailchimp", "10001")  # rejected by another destination
    pd.testing.assert_frame_equal(state.rejected("spotler"), before)


def test_a_record_saved_twice_in_one_call_ends_as_the_later_row_over_the_earlier(state_location):
    state = SyncState(state_location)
    row = {"external_id": "A", "email_hash": "e", "permissions": {}, "bounced_email_hash": None}
    state.save_records("spotler", [{**row, "content_hash": "h0"}, {**row, "external_id": "B", "content_hash": "b"}])
    # One key twice in one save (Postgres refuses that in one statement): applied in order, as two saves would be.
    state.save_records("spotler", [{**row, "content_hash": "h1", "destination_key": "k1"},
                                   {**row, "content_hash": "h2"}, {**row, "external_id": "B", "content_hash": "b2"}])
    saved = state.records("spotler").set_index("external_id")
    assert saved.loc["A", ["content_hash", "destination_key"]].tolist() == ["h2", "k1"]
    assert saved.loc["B", "content_hash"] == "b2"


def test_a_postgres_url_without_a_password_takes_it_from_pgpassword_as_libpq_does(postgres_state, monkeypatch):
    url, password = postgres_state.replace(":afas-test-pg@", "@"), "afas-test-pg"
    monkeypatch.delenv("PGPASSWORD", raising=False)
    refused = r"cannot open the sync state postgresql://dagster@127\.0\.0\.1:\d+/\w+: .*password"
    with pytest.raises(StateError, match=refused):
        SyncState(url)
    monkeypatch.setenv("PGPASSWORD", password)  # as deploy/docker-compose.yml and the Helm values give it
    SyncState(url).set_cursor("xelion", "calls", "7")
    assert SyncState(postgres_state).cursor("xelion", "calls") == "7"


def test_a_sqlite_state_copied_into_postgres_goes_on_where_it_was(tmp_path, postgres_state):
    sqlite = SyncState(tmp_path / "state.sqlite")
    sqlite.record_feedback("spotler", EVENTS, "delivered")
    first = sqlite.begin_writes("spotler", {"A": {"content_hash": "a", "permissions": {}}}, None)

    assert copy_rows(sqlite, SyncState(postgres_state)) == {**{t: 0 for t in TABLES if t != "state_holder"},
                                                            "feedback_events": 3, "writes_in_flight": 1}
    postgres = SyncState(postgres_state)
    assert postgres.begin_writes("spotler", {"B": {"content_hash": "b", "permissions": {}}}, None) > first
    assert [e.intents.keys() for e in postgres.writes_in_flight("spotler")] == [{"A"}, {"B"}]
    assert set(postgres.feedback_events("spotler")["status"]) == {"delivered"}


def test_the_other_state_calls_keep_their_rules_on_either_database(state_location):
    state = SyncState(state_location)
    at = datetime(2026, 11, 16, 10, 0, tzinfo=timezone.utc)
    # C1: the latest opt-out per permission, and a watermark that never goes back.
    state.record_optouts("spotler", [("1", "1", at + timedelta(minutes=5)), ("1", "1", at)])
    assert state.optouts("spotler")["opted_out_at"].tolist() == [pd.Timestamp(at + timedelta(minutes=5))]
    state.set_watermark("spotler", "contact_updates", at + timedelta(hours=1))
    state.set_watermark("spotler", "contact_updates", at)
    assert state.watermark("spotler", "contact_updates") == at + timedelta(hours=1)
    # The identity saved first holds; R11 marks a bounce once.
    assert state.identity("mailchimp", "debtor.DebtorId") == "debtor.DebtorId"
    assert state.identity("mailchimp", "contact.ContactId") == "debtor.DebtorId"
    state.save_records("spotler", [{"external_id": i, "content_hash": "c", "email_hash": f"e{i}", "permissions": {},
                                    "bounced_email_hash": None} for i in ("A", "B")])
    assert state.mark_bounced("spotler", ["A", "A", "Z"]) == 1 and state.mark_bounced("spotler", ["A"]) == 0
    # Xelion: the phone index replaced per record (or whole), call reports counting attempts, cursors.
    state.replace_phone_numbers("xelion", _index_rows(("organisation:1", "k1", "b1", "1", "org"),
                                                     ("organisation:1", "k2", "b1", "1", "org"),
                                                     ("organisation:2", "k3", "b2", "2", "org"),
                                                     ("organisation:3", "k4", "b3", "3", "org")))
    # A record without a number any more (one row, no key) loses its rows; one left out of a whole read too.
    whole = pa.array(["organisation:1", "organisation:3"])
    state.replace_phone_numbers("xelion", _index_rows(("organisation:1", "k2", "b1", "1", "org"),
                                                     ("organisation:3", None, "b3", "3", "org")), every=whole)
    assert state.phone_index("xelion", ["k1", "k2", "k3", "k4"])[["external_id", "number_key"]].values.tolist() == [
        ["organisation:1", "k2"]]
    assert (state.phone_number_count("xelion"), state.phone_number_count("xelion", ["organisation:3"])) == (1, 0)
    # A whole read whose records were not made again (their input unchanged) keeps their rows, and the version.
    version = state.phone_index_version("xelion")
    assert not state.replace_phone_numbers("xelion", _index_rows(), every=whole)
    assert state.phone_index_version("xelion") == version and state.phone_number_count("xelion") == 1
    # The version changes with the rows only: a delta whose records keep their numbers changes nothing.
    version = state.phone_index_version("xelion")
    assert version and not state.replace_phone_numbers("xelion", _index_rows(("organisation:1", "k2", "b1", "1", "org")))
    assert state.phone_index_version("xelion") == version
    assert state.replace_phone_numbers("xelion", _index_rows(("organisation:1", "k5", "b1", "1", "org")))
    assert state.phone_index_version("xelion") not in (version, None)
    state.save_call_reports("xelion", [{"call_id": "c1", "oid": "9", "status": "made", "sbid": "77", "attempt": True}])
    state.save_call_reports("xelion", [{"call_id": "c1", "oid": "9", "status": "retry", "attempt": True}])
    assert state.call_reports("xelion")[["sbid", "attempts"]].values.tolist() == [["77", 2]]
    state.set_cursor("xelion", "calls", "1")
    state.set_cursor("xelion", "calls", "2")
    assert state.cursor("xelion", "calls") == "2"
    # Mailing reactions: delivered stays delivered; pruning takes delivered ones, never pending ones.
    reaction = ("m1", "A", "opened", "2026-11-16T10:05:00+00:00")
    state.record_mailing_reactions("spotler", [reaction], "delivered")
    state.record_mailing_reactions("spotler", [reaction, ("m1", "B", "opened", "2026-11-16T10:06:00+00:00")],
                                   "pending")
    assert state.mailing_reactions("spotler")["status"].tolist() == ["delivered", "pending"]
    assert state.prune_delivered(timedelta(0)) == {"feedback_events": 0, "mailing_reactions": 1}


# -- indexed look-ups: what a delta asks the state, by the keys at hand --


def test_a_delta_reads_the_optouts_refusals_and_address_holders_of_its_own_records_only(state_location):
    state = SyncState(state_location)
    at = datetime(2026, 11, 16, 10, tzinfo=timezone.utc)
    state.record_optouts("spotler", [("1", "1", at), ("1", "2", at), ("2", "1", at), ("3", "1", at)])
    state.record_optouts("mailchimp", [("1", "1", at)])
    state.record_rejections("spotler", [{"external_id": i, "reason": "E", "status_code": 400} for i in "123"],
                            quarantine_after=1)
    state.save_records("spotler", [{"external_id": i, "content_hash": "c", "email_hash": h, "permissions": {}}
                                   for i, h in (("1", "e1"), ("2", "e2"), ("3", "e1"))])
    state.save_records("mailchimp", [{"external_id": "9", "content_hash": "c", "email_hash": "e2", "permissions": {}}])

    optouts = state.optouts("spotler", ["1", "3", "4"])
    assert sorted(zip(optouts["external_id"], optouts["permission"])) == [("1", "1"), ("1", "2"), ("3", "1")]
    assert optouts["opted_out_at"].eq(pd.Timestamp(at)).all()
    assert state.optouts("spotler", []).empty and len(state.optouts("spotler")) == 4
    assert state.rejected("spotler", ["3", "2"])["external_id"].tolist() == ["2", "3"]
    assert state.rejected("spotler", ["2"])["quarantined"].tolist() == [True]
    state.save_records("spotler", [{"external_id": "2", "content_hash": "c", "email_hash": "e2",
                                    "permissions": {"1": {"sent": True}}}])
    stored = state.records("spotler", ["2", "4"], parsed=False)
    assert stored["external_id"].tolist() == ["2"] and orjson.loads(stored.loc[0, "permissions"]) == {"1": {"sent": True}}
    assert state.records("mailchimp", ["2"], parsed=False).empty
    holders = state.holders("spotler", ["e2", "e1", "e9"])
    assert holders["e2"] == "2" and holders["e1"] in ("1", "3") and "e9" not in holders
    assert state.holders("mailchimp", ["e2"]) == {"e2": "9"}


def test_records_reads_only_the_columns_asked_for_by_id_or_whole(state_location):
    state = SyncState(state_location)
    state.save_records("spotler", [{"external_id": i, "content_hash": f"c{i}", "email_hash": f"e{i}",
                                    "permissions": {"1": {"sent": i == "2"}}, "fields": {"function": "h"}}
                                   for i in "123"])
    some = state.records("spotler", ["3", "2", "9"], parsed=False, columns=("permissions",))
    assert list(some.columns) == ["external_id", "permissions"]
    assert sorted(zip(some["external_id"], some["permissions"].map(orjson.loads))) == [
        ("2", {"1": {"sent": True}}), ("3", {"1": {"sent": False}})]
    whole = state.records("spotler", columns=("email_hash", "fields"))
    assert list(whole.columns) == ["external_id", "email_hash", "fields"]
    assert sorted(zip(whole["external_id"], whole["email_hash"])) == [("1", "e1"), ("2", "e2"), ("3", "e3")]
    assert whole["fields"].tolist() == [{"function": "h"}] * 3  # parsed, as without `columns`
    assert list(state.records("spotler", ["1"]).columns) == ["external_id", "content_hash", "email_hash", "permissions",
                                                             "bounced_email_hash", "fields", "destination_key",
                                                             "input_hash"]
    with pytest.raises(ValueError, match="no such state record column: email"):
        state.records("spotler", columns=("email",))


def test_an_input_hash_stays_only_with_the_content_it_was_made_into(state_location):
    """What a record was made from (its AFAS input) lets a run tell it unchanged without making it again; it is kept
    only next to the content hash it gave, and a write of the record drops it."""
    state = SyncState(state_location)
    state.save_records("xelion", [{"external_id": k, "content_hash": "c1", "email_hash": None, "permissions": {},
                                   "destination_key": "9"} for k in ("A", "B")])
    state.save_input_hashes("xelion", [("A", "c1", "i1", {"left_out": {"invalid_number": 1}}), ("B", "c0", "i2", {})])
    rows = state.records("xelion").set_index("external_id")
    assert (rows.loc["A", "input_hash"], rows.loc["A", "fields"]) == ("i1", {"left_out": {"invalid_number": 1}})
    assert pd.isna(rows.loc["B", "input_hash"])  # B's content is no longer the one that input made
    state.save_records("xelion", [{"external_id": "A", "content_hash": "c2", "email_hash": None, "permissions": {}}])
    again = state.records("xelion", ["A"]).iloc[0]
    assert pd.isna(again["input_hash"]) and again["destination_key"] == "9"


def test_the_records_in_doubt_are_found_through_their_index_not_by_reading_every_record(state_location):
    state = SyncState(state_location)
    state.save_records("spotler", [{"external_id": i, "content_hash": h, "email_hash": "e", "permissions": {}}
                                   for i, h in (("A", "c"), ("B", None), ("C", "in-doubt"))])
    state.save_records("mailchimp", [{"external_id": "D", "content_hash": None, "email_hash": "e", "permissions": {}}])
    assert state.in_doubt("spotler") == ["B", "C"]
    if state.url is None:  # SQLite's plan: the partial index, which holds the records in doubt alone
        with state._connect() as db:
            plan = " ".join(str(row) for row in db.execute(f"EXPLAIN QUERY PLAN {IN_DOUBT_QUERY}", ("spotler",)))
        assert "records_in_doubt" in plan


@pytest.mark.parametrize("table", ["records", "optouts", "rejected", "feedback_events"])
def test_a_look_up_by_key_searches_the_table_by_each_key_instead_of_reading_the_destination_whole(tmp_path, table):
    state = SyncState(tmp_path / "state.sqlite")
    with state._connect() as db:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (external_id TEXT PRIMARY KEY)")
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN SELECT x.external_id FROM {BY_KEY} {table} x "
                                             "WHERE x.destination=? AND x.external_id = w.external_id", ("spotler",))]
    assert plan[0] == "SCAN w" and "(destination=? AND external_id=?)" in plan[1], plan


def test_a_whole_destination_is_read_through_the_table_in_one_pass_not_row_by_row_through_its_key(tmp_path,
                                                                                                 monkeypatch):
    """A full sync reads every record of its destination: by the primary key that is a page look-up per record
    (at 1,000,000 records 2.0 s of the 2.4 s the query took), in the table's order one pass. The rows of another
    destination still stay out."""
    statements = []

    def traced(*args, **kwargs):
        connection = sqlite3_connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    sqlite3_connect = sqlite3.connect
    state = SyncState(tmp_path / "state.sqlite")
    for d in ("spotler", "xelion"):
        state.save_records(d, [{"external_id": f"{d}{i}", "content_hash": "c", "email_hash": "e", "permissions": {}}
                               for i in range(3)])
        state.replace_phone_numbers(d, _index_rows((f"{d}1", "k1", "b1", "1", "org")))
    monkeypatch.setattr("afas_pipeline.sync.state.sqlite3.connect", traced)
    assert sorted(state.records("spotler")["external_id"]) == ["spotler0", "spotler1", "spotler2"]
    assert state.phone_index("xelion")["external_id"].tolist() == ["xelion1"]
    reads = [s for s in statements if s.startswith("SELECT") and ("FROM records" in s or "FROM phone_index" in s)]
    assert len(reads) == 2, statements
    with state._connect() as db:
        plans = [[row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {read}")] for read in reads]
    assert all(plan[0].startswith("SCAN") and "INDEX" not in plan[0] for plan in plans), plans


def test_transactions_inside_kept_open_leave_the_log_to_be_copied_back_once_at_its_end(tmp_path):
    """SQLite in WAL mode copies the log into the database and deletes it when its last connection closes: without
    a connection kept open, every transaction of a sync (one per batch saved) ended that way."""
    path = tmp_path / "state.sqlite"
    state = SyncState(path)
    log = Path(f"{path}-wal")
    row = {"external_id": "A", "content_hash": "c", "email_hash": "e", "permissions": {}}
    state.save_records("spotler", [row])
    assert not log.exists()  # closed last: checkpointed and deleted
    with state.kept_open():
        state.save_records("spotler", [{**row, "external_id": "B"}])
        state.save_records("spotler", [{**row, "external_id": "C"}])
        assert log.exists() and log.stat().st_size > 0
    assert not log.exists()
    assert sorted(state.records("spotler")["external_id"]) == ["A", "B", "C"]


def _index_rows(*rows) -> pa.Table:
    """Phone index rows (external_id, number_key, bcid, afas_id, kind) as `replace_phone_numbers` takes them."""
    columns = ("external_id", "number_key", "bcid", "afas_id", "kind")
    return pa.table({c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(columns)})


def _address_index(location: str) -> bool:
    """Whether the state's index of the records by address exists."""
    db = _Db(SyncState(location, read_only=True).connect_raw(), postgres=location.startswith("postgresql"))
    try:
        sql = ("SELECT 1 FROM pg_indexes WHERE indexname = 'records_by_email'" if db.postgres else
               "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'records_by_email'")
        return db.execute(sql).fetchone() is not None
    finally:
        db.connection.close()


def test_bulk_writes_build_the_address_index_again_after_them_even_when_they_fail(state_location, monkeypatch):
    monkeypatch.setattr("afas_pipeline.sync.state.BULK_WRITES", 3)
    state = SyncState(state_location)
    sqlite = not state_location.startswith("postgresql")
    with state.bulk_writes(2):  # too few to be worth it
        assert _address_index(state_location)
    with pytest.raises(RuntimeError):
        with state.bulk_writes(3):
            assert _address_index(state_location) is not sqlite  # SQLite only: Postgres keeps it
            state.save_records("spotler", [{"external_id": i, "content_hash": "c", "email_hash": h, "permissions": {}}
                                           for i, h in (("1", "e1"), ("2", "e2"), ("3", "e3"))])
            raise RuntimeError("the destination went away")
    assert _address_index(state_location)
    assert state.holders("spotler", ["e2", "e3", "e9"]) == {"e2": "2", "e3": "3"}


def test_a_state_left_without_its_address_index_by_a_killed_run_gets_it_back_when_opened(tmp_path):
    location = str(tmp_path / "sync_state.sqlite")
    SyncState(location)
    _execute(location, "DROP INDEX records_by_email")  # as a run killed inside bulk_writes leaves it
    assert not _address_index(location)
    SyncState(location)
    assert _address_index(location)


def test_replacing_phone_numbers_holds_sqlites_write_lock_from_its_first_read(tmp_path, monkeypatch):
    """`replace_phone_numbers` compares the new rows with the saved ones, then deletes and inserts. Begun as SQLite's
    default (deferred) transaction, a write another connection committed between its read and its delete failed it at
    once with "database is locked": SQLite cannot move a read transaction with an old snapshot to a write, and no
    timeout helps. Its transaction now takes the write lock first: a writer coming meanwhile waits (here its 0.2 s
    run out) and the replacement goes through."""
    location = tmp_path / "state.sqlite"
    state = SyncState(location)
    state.replace_phone_numbers("xelion", _index_rows(("organisation:1", "k1", "b1", "1", "org")))
    execute, refused = _Db.execute, []

    def meanwhile(db, sql, params=()):
        if sql.startswith("DELETE FROM phone_index") and not refused:
            other = sqlite3.connect(location, timeout=0.2)  # another process: `afas-pipeline release`, say
            try:
                with other:
                    other.execute("INSERT INTO cursors VALUES ('spotler', 'elsewhere', '1')")
                refused.append(False)
            except sqlite3.OperationalError as exc:
                refused.append("locked" in str(exc))
            finally:
                other.close()
        return execute(db, sql, params)

    monkeypatch.setattr(_Db, "execute", meanwhile)
    assert state.replace_phone_numbers("xelion", _index_rows(("organisation:1", "k2", "b1", "1", "org")))
    monkeypatch.undo()
    assert refused == [True]
    assert state.phone_index("xelion", ["k1", "k2"])["number_key"].tolist() == ["k2"]


def test_two_processes_opening_a_state_at_once_both_add_its_new_columns(tmp_path, monkeypatch):
    """A state older than a column gets it when it is opened (`ADD COLUMN`). Two runs opening it at once both saw the
    column missing, and the second to add it failed at setup with "duplicate column name"."""
    location = tmp_path / "state.sqlite"
    SyncState(location)
    columns = _Db.columns
    monkeypatch.setattr(_Db, "columns", lambda db, table: columns(db, table) - {"destination_key", "input_hash"})
    SyncState(location)  # as the second of two runs: the first added them after this one looked
    monkeypatch.undo()
    assert {"destination_key", "input_hash"} <= _Db(sqlite3.connect(location), postgres=False).columns("records")
