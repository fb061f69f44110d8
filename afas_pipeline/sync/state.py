"""What was last sent where, as keys and hashes only: no e-mail address, no name, ever.

One SQLite file holds, per destination:
- `records`: per external id, the content hash and e-mail hash last sent, per permission the value
  last sent, AFAS's own value and since when AFAS has it on (C1), per two-way field the hash of the
  value the destination and AFAS last agreed on (a different value in the destination is a change
  made there), and the hash of the address that hard-bounced, if any (R11: the record stays inactive
  while that is still its address);
- `optouts`: when a permission was last seen switched off in the destination (C1);
- `rejected`: records the destination refused, with reason, status code and attempts (C4);
- `watermarks`: how far a destination's change feed has been read;
- `writes_in_flight`: what a sync is about to send, recorded before each chunk of writes and removed once
  every batch of the chunk was answered and saved. A run that dies in between leaves it behind: the next
  run reads it to judge Spotler's feed (an opt-out after a write we may have made is still an opt-out, C1)
  and sends the records whose answer it never saw again;
- `mailing_history` (R17): per (mailing id, external id) the AFAS dossier item (SbId) made for it, or
  none yet while its POST waits for a retry, and the send time; `mailing_reactions`: the interactions
  (kind such as `opened` or `bounced:hard`, time) added to that item, or still `pending`;
- `phone_index` (Xelion, X2/X3): per AFAS organisation or person the salted hashes of its phone numbers, with
  its BcId and number, never a number itself; `call_reports` (X3): per Xelion call id what became of its
  dossier item (the SbId once made, or why not yet); `cursors`: how far an oid-ordered feed was read;
- `erasure_requests` (P2): per person to be forgotten the salted hash it is known by, the AFAS keys needed to act
  (contacts, persons; emptied once erased), the hashes of every record key it covers (its tombstones: the syncs
  leave those records alone), where it came from, when, its status (pending | erased | lifted) and per destination what
  became of it;
- `feedback_events`: the ledger of events read back from a destination (external id, kind such as
  `optout:1` or `bounce:hard`, event time) and whether they were delivered to AFAS or still wait
  (`pending`), so each event is delivered once however often its window is read.
The state lives in a SQLite file (the embedded default: every run process on one machine) or in a Postgres
database (`postgresql://user:password@host:port/db`: run workers on several machines). One code path serves both:
the SQL is written once, with `?` placeholders and syntax both understand; `_Db` holds the few differences.
A run that dies halfway leaves the state as it was after its last committed batch. `transaction()` groups several
calls into one commit, so that what a feed read learned and the watermark that says it was read move together.
Upserts and claims are single statements on unique keys, so two runs that meet never double a row nor lose an
event; besides, one run writes the state at a time: `SyncStateResource` holds a lock for the whole run (a lock
file next to a SQLite file, a Postgres advisory lock on a Postgres state).
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import filelock
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, PrivateAttr

from afas_pipeline.lib.bulk import collector_paused
from afas_pipeline.lib.failpoints import failpoint

#: The index of the records by address (`holders`): dropped and built again around a sync's bulk writes.
ADDRESS_INDEX = "CREATE INDEX IF NOT EXISTS records_by_email ON records (destination, email_hash)"
#: How many records written at once make dropping the address index and building it again the cheaper way.
BULK_WRITES = 20_000

SCHEMA = [statement.strip() for statement in """
CREATE TABLE IF NOT EXISTS records (
    destination TEXT NOT NULL, external_id TEXT NOT NULL,
    content_hash TEXT, email_hash TEXT, permissions TEXT NOT NULL DEFAULT '{}',
    bounced_email_hash TEXT, synced_at TEXT NOT NULL, fields TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (destination, external_id));
{address_index};
CREATE INDEX IF NOT EXISTS records_in_doubt ON records (destination, external_id)
    WHERE content_hash IS NULL OR content_hash = 'in-doubt';
CREATE TABLE IF NOT EXISTS optouts (
    destination TEXT NOT NULL, external_id TEXT NOT NULL, permission TEXT NOT NULL, opted_out_at TEXT NOT NULL,
    PRIMARY KEY (destination, external_id, permission));
CREATE TABLE IF NOT EXISTS rejected (
    destination TEXT NOT NULL, external_id TEXT NOT NULL, reason TEXT, status_code INTEGER,
    attempts INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, quarantined INTEGER NOT NULL DEFAULT 0,
    last_run TEXT, PRIMARY KEY (destination, external_id));
CREATE TABLE IF NOT EXISTS feedback_events (
    destination TEXT NOT NULL, external_id TEXT NOT NULL, kind TEXT NOT NULL, event_at TEXT NOT NULL,
    status TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (destination, external_id, kind, event_at));
CREATE TABLE IF NOT EXISTS mailing_history (
    destination TEXT NOT NULL, mailing_id TEXT NOT NULL, external_id TEXT NOT NULL, sent_at TEXT NOT NULL,
    sbid TEXT, updated_at TEXT NOT NULL, claimed_by TEXT, claimed_at TEXT,
    PRIMARY KEY (destination, mailing_id, external_id));
CREATE TABLE IF NOT EXISTS mailing_reactions (
    destination TEXT NOT NULL, mailing_id TEXT NOT NULL, external_id TEXT NOT NULL, kind TEXT NOT NULL,
    event_at TEXT NOT NULL, status TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (destination, mailing_id, external_id, kind, event_at));
CREATE TABLE IF NOT EXISTS watermarks (
    destination TEXT NOT NULL, feed TEXT NOT NULL, read_until TEXT NOT NULL, PRIMARY KEY (destination, feed));
CREATE TABLE IF NOT EXISTS identities (
    destination TEXT PRIMARY KEY, identity TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS phone_index (
    destination TEXT NOT NULL, external_id TEXT NOT NULL, number_key TEXT NOT NULL, bcid TEXT, afas_id TEXT,
    kind TEXT NOT NULL, PRIMARY KEY (destination, external_id, number_key));
CREATE INDEX IF NOT EXISTS phone_index_by_number ON phone_index (destination, number_key);
CREATE TABLE IF NOT EXISTS call_reports (
    destination TEXT NOT NULL, call_id TEXT NOT NULL, oid TEXT NOT NULL, status TEXT NOT NULL, sbid TEXT,
    reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, PRIMARY KEY (destination, call_id));
CREATE TABLE IF NOT EXISTS cursors (
    destination TEXT NOT NULL, feed TEXT NOT NULL, position TEXT NOT NULL, PRIMARY KEY (destination, feed));
CREATE TABLE IF NOT EXISTS erasure_requests (
    subject_hash TEXT PRIMARY KEY, keys TEXT NOT NULL, tombstones TEXT NOT NULL, source TEXT NOT NULL,
    requested_at TEXT NOT NULL, status TEXT NOT NULL, outcome TEXT NOT NULL, attempts INTEGER NOT NULL,
    updated_at TEXT NOT NULL, finished_at TEXT);
CREATE TABLE IF NOT EXISTS writes_in_flight (
    id {serial} PRIMARY KEY, destination TEXT NOT NULL, started_at TEXT NOT NULL,
    feed_mark TEXT, intents TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state_holder (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL);
""".replace("{address_index}", ADDRESS_INDEX).split(";") if statement.strip()]
#: The tables of the state, in the order they are created (`copy_rows` copies them all).
TABLES = [re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement).group(1)
          for statement in SCHEMA if statement.startswith("CREATE TABLE")]

RECORD_COLUMNS = ["external_id", "content_hash", "email_hash", "permissions", "bounced_email_hash", "fields",
                  "destination_key", "input_hash"]
#: Columns added after the first release, with their definition: added to an older state file on open.
ADDED_COLUMNS = {"records": {"fields": "TEXT NOT NULL DEFAULT '{}'", "destination_key": "TEXT", "input_hash": "TEXT"}, "rejected": {"last_run": "TEXT"},
                 "mailing_history": {"claimed_by": "TEXT", "claimed_at": "TEXT"}}
#: The content hash of a record whose last write may or may not have reached the destination (the run died
#: before its answer was saved): it equals no real hash, so the next plan sends the record again.
IN_DOUBT = "in-doubt"
#: The records in doubt of a destination, with the condition of the partial index `records_in_doubt` written out
#: (a literal, not a parameter): the databases then read that small index, never every record.
IN_DOUBT_QUERY = ("SELECT external_id FROM records WHERE destination=? "
                  f"AND (content_hash IS NULL OR content_hash = '{IN_DOUBT}')")
REJECTED_COLUMNS = ["external_id", "reason", "status_code", "attempts", "first_seen", "last_seen", "quarantined"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class StateError(RuntimeError):
    """The sync state cannot be opened, or another run holds it: the message names the file and the fix."""


@dataclass(frozen=True)
class WritesInFlight:
    """One chunk of writes recorded before it was sent: per external id the state row a success saves."""

    id: int
    started_at: datetime
    feed_mark: datetime | None  # the destination's change feed had been read up to here (its clock)
    intents: dict[str, dict]


def acknowledged(row: dict, intent: dict) -> bool:
    """Whether the state already holds what the write of `intent` would have saved."""
    if row.get("content_hash") != intent.get("content_hash"):
        return False
    permissions = row.get("permissions") or {}
    return all((permissions.get(k) or {}).get("sent") == v.get("sent") for k, v in intent["permissions"].items())


def is_url(location: str | Path) -> bool:
    """Whether AFAS_PIPELINE_STATE is a URL (a Postgres database; another scheme is refused) rather than a SQLite
    file path."""
    return isinstance(location, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", location) is not None


def shown(location: str | Path) -> str:
    """The state's location as messages may show it: a URL with its password hidden."""
    if not is_url(location):
        return str(location)
    from sqlalchemy.engine import make_url

    try:
        return make_url(location).render_as_string(hide_password=True)
    except Exception:  # unparsable: show the scheme only, never the rest
        return f"{str(location).split(':', 1)[0]}://(unparsable URL)"


def state_url_problem(url: str) -> str | None:
    """What is wrong with a Postgres URL given as AFAS_PIPELINE_STATE (None: nothing), the password never shown."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return (f"AFAS_PIPELINE_STATE {shown(url)} is not a URL: write it as "
                "postgresql://user:password@host:port/database")
    if parsed.drivername not in ("postgresql", "postgresql+psycopg2", "postgres"):
        return (f"AFAS_PIPELINE_STATE {shown(url)} names the driver {parsed.drivername}: use postgresql:// or "
                "postgresql+psycopg2://")
    if not parsed.database:
        return f"AFAS_PIPELINE_STATE {shown(url)} names no database: end it with /<database>, e.g. /afas_state"
    return None


class _Db:
    """One connection in one transaction, as both dialects are used here: `execute(sql, params)` returns a cursor
    (`fetchall`, `fetchone`, `rowcount`, iteration), `executemany(sql, rows)`. `sql` uses `?` placeholders."""

    def __init__(self, connection, postgres: bool):
        self.connection, self.postgres = connection, postgres

    def whole(self, table: str) -> str:
        """`table` (with its alias) for a query that reads every row of one destination: `FROM {db.whole("records r")}
        WHERE r.destination=?`. SQLite would walk the primary key (destination, external_id) and fetch each row from
        the table by its rowid: at 1,000,000 records 2.0 s of page look-ups, where reading the table from end to end
        takes 0.4 s (a state holds a few destinations, so most of its rows are wanted). Postgres plans this itself."""
        return table if self.postgres else f"{table} NOT INDEXED"

    def execute(self, sql: str, params=()):
        if not self.postgres:
            return self.connection.execute(sql, params)
        cursor = self.connection.cursor()
        cursor.execute(_pg(sql), tuple(params))
        return cursor

    def executemany(self, sql: str, rows) -> None:
        if not self.postgres:
            self.connection.executemany(sql, rows)
            return
        from psycopg2.errors import CardinalityViolation
        from psycopg2.extras import execute_batch, execute_values

        values = _VALUES.search(sql) if sql.startswith("INSERT") else None
        with self.connection.cursor() as cursor:
            if values is None:  # an UPDATE or DELETE: many statements per round trip
                execute_batch(cursor, _pg(sql), rows, page_size=1000)
                return
            # An INSERT: many rows per statement, 20 to 30 times faster than a statement per row.
            statement = _pg(sql[:values.start(1)]) + "%s" + _pg(sql[values.end(1):])
            if "DO UPDATE" not in sql:
                execute_values(cursor, statement, rows, template=_pg(values.group(1)), page_size=1000)
                return
            # An upsert of one key twice in a statement is refused ("cannot affect row a second time"): then
            # row by row, as SQLite does it, the later row applied over the earlier.
            rows = list(rows)
            cursor.execute("SAVEPOINT many_rows")
            try:
                execute_values(cursor, statement, rows, template=_pg(values.group(1)), page_size=1000)
            except CardinalityViolation:
                cursor.execute("ROLLBACK TO SAVEPOINT many_rows")
                execute_batch(cursor, _pg(sql), rows, page_size=1000)
            cursor.execute("RELEASE SAVEPOINT many_rows")

    def write_first(self) -> None:
        """On SQLite, the block's transaction begins by taking the write lock (waiting for it as any write does), for
        a block that reads before it writes: a transaction that has read takes the write lock only while nobody
        committed since its read, else it fails at once with "database is locked", whatever the timeout. Postgres
        needs nothing (each statement sees what was committed before it)."""
        if not self.postgres and not self.connection.in_transaction:
            self.connection.execute("BEGIN IMMEDIATE")

    def columns(self, table: str) -> set[str]:
        """The columns `table` has now (none when it does not exist)."""
        if not self.postgres:
            return {row[1] for row in self.connection.execute(f"PRAGMA table_info({table})")}
        return {row[0] for row in self.execute("SELECT column_name FROM information_schema.columns "
                                               "WHERE table_schema = current_schema() AND table_name = ?", (table,))}

    def continue_identity(self) -> None:
        """After rows were copied in with their ids: new ids of `writes_in_flight` follow the highest."""
        if self.postgres:
            self.execute("SELECT setval(pg_get_serial_sequence('writes_in_flight', 'id'), "
                         "coalesce(max(id), 0) + 1, false) FROM writes_in_flight")

    def create_schema(self) -> None:
        if self.postgres:  # two runs creating the tables at once would collide on Postgres's catalogue
            self.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
        serial = "BIGINT GENERATED BY DEFAULT AS IDENTITY" if self.postgres else "INTEGER"
        for statement in SCHEMA:
            self.execute(statement.replace("{serial}", serial))
        for table, columns in ADDED_COLUMNS.items():
            have = self.columns(table)
            for name, definition in columns.items():
                if name not in have:
                    try:
                        self.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")
                    except sqlite3.OperationalError as exc:  # another process opening the state added it meanwhile
                        if "duplicate column name" not in str(exc):
                            raise


#: The row of an `INSERT ... VALUES (?, ...)`, which Postgres takes for many rows at once.
_VALUES = re.compile(r"VALUES\s*(\([^()]*\))")


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """`?` placeholders as psycopg2's `%s` (a literal % doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


#: Advisory lock keys (any bigint, fixed): creating the schema, and the run's hold on the whole state.
SCHEMA_LOCK = 0x61666173_0001
RUN_LOCK = 0x61666173_0002
#: How often a run waiting for a Postgres state asks for its lock again.
LOCK_POLL_S = 0.2


class SyncState:
    """The sync state of one SQLite file or Postgres database (`location`: a path or a `postgresql://` URL).
    `read_only`: open it without creating anything and refuse every write (a dry run reads a Postgres state so)."""

    def __init__(self, location: str | Path, run_id: str | None = None, *, read_only: bool = False):
        self.url = str(location) if is_url(location) else None
        self.path = None if self.url else Path(location)
        self.shown = shown(location)
        #: The Dagster run writing through this object: a record refused twice in one run is one attempt.
        self.run_id = run_id
        self.read_only = read_only
        self._local = threading.local()
        if self.path is not None:
            if self.path.is_dir():
                raise StateError(f"the sync state path {self.path} is a directory; set AFAS_PIPELINE_STATE to a "
                                 "file path such as state/sync_state.sqlite")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"cannot create the folder of the sync state {self.path}: {exc.strerror}; "
                                 "set AFAS_PIPELINE_STATE to a writable file path") from None
        if not read_only:
            with self._connect() as db:
                db.create_schema()

    def connect_raw(self):
        """A new DB-API connection to the state (autocommit off), for what is not a state call: the run lock."""
        if self.url is None:
            return sqlite3.connect(self.path, timeout=60)
        import psycopg2
        from sqlalchemy.engine import make_url

        problem = state_url_problem(self.url)
        if problem:
            raise StateError(problem)
        url = make_url(self.url)
        try:
            return psycopg2.connect(host=url.host, port=url.port, dbname=url.database, user=url.username,
                                    password=url.password, connect_timeout=30, application_name="afas-pipeline",
                                    **url.query)
        except psycopg2.Error as exc:
            raise StateError(f"cannot open the sync state {self.shown}: {str(exc).strip().splitlines()[0]}; set "
                             "AFAS_PIPELINE_STATE to a reachable postgresql://user:password@host:port/database "
                             "URL") from None

    @contextmanager
    def _connect(self) -> Iterator[_Db]:
        """A connection in a transaction: the one `transaction()` holds open in this thread, else a new one
        committed when the block ends."""
        current = getattr(self._local, "db", None)
        if current is not None:
            yield current
            return
        if self.url is None:
            try:
                connection = sqlite3.connect(self.path, timeout=60)
                connection.execute("PRAGMA journal_mode=WAL")
                if self.read_only:
                    connection.execute("PRAGMA query_only=ON")
            except sqlite3.Error as exc:
                raise StateError(f"cannot open the sync state {self.path}: {exc}; set AFAS_PIPELINE_STATE to a "
                                 "writable SQLite file path") from None
        else:
            connection = self.connect_raw()
            if self.read_only:  # one snapshot for the whole block, as SQLite's transaction gives
                connection.set_session(readonly=True, isolation_level="REPEATABLE READ")
        try:
            yield _Db(connection, postgres=self.url is not None)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()

    def _in_key_order(self, values: list[tuple], width: int) -> None:
        """Sorts an upsert's rows by their first `width` values (the table's key; the order of rows with one key
        kept) on Postgres: two transactions that upsert overlapping rows lock them in the same order, so Postgres
        never has to break a deadlock between them. SQLite has one writer at a time: no need, no cost."""
        if self.url is not None:
            values.sort(key=operator.itemgetter(*range(width)))

    @contextmanager
    def bulk_writes(self, records: int) -> Iterator[None]:
        """`records` records about to be written (a first full sync, a changed mapping). On SQLite, from
        BULK_WRITES records on, the index of the records by address is dropped for the writes and built again
        after them, in one pass: kept up record by record, it made every batch's commit write back about 500
        random pages of it (a batch of 500 upserts into 800,000 records: 33 ms with it, 5 ms without). Nothing
        written here reads it. A run killed before the end leaves it to the next opening of the state, which
        creates it again with the schema. Postgres keeps its index as it is (not measured there)."""
        if self.url is not None or records < BULK_WRITES:
            yield
            return
        with self._connect() as db:
            db.execute("DROP INDEX IF EXISTS records_by_email")
        try:
            yield
        finally:
            with self._connect() as db:
                db.execute(ADDRESS_INDEX)

    @contextmanager
    def kept_open(self) -> Iterator[None]:
        """A connection to a SQLite state held open for the block, so that the many short transactions in it (a
        sync's saves, batch by batch) do not each end in a checkpoint: in WAL mode the last connection to close
        copies the log into the database and deletes it. A full sync of 100,000 contacts closed 73 connections
        that way, 0.24 s of its 2.8 s of writes. The log is still copied back as it grows (SQLite's automatic
        checkpoint), and when the block ends. Postgres: nothing to do."""
        if self.url is not None:
            yield
            return
        keeper = sqlite3.connect(self.path, timeout=60)
        try:
            keeper.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the log; no transaction kept
            yield
        finally:
            keeper.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every call on this object in this thread inside the block commits together, or not at all."""
        if getattr(self._local, "db", None) is not None:
            yield
            return
        with self._connect() as db:
            self._local.db = db
            try:
                yield
            finally:
                self._local.db = None

    # -- records --

    def records(self, destination: str, external_ids: Iterable[str] | None = None, *,
                parsed: bool = True, columns: Sequence[str] = tuple(RECORD_COLUMNS)) -> pd.DataFrame:
        """State rows for these ids (all when None); `permissions` and `fields` parsed into dicts, or left as the JSON
        text stored (`parsed=False`: the planner parses the values it compares column-wise, `plan.state_columns`).
        `columns`: only these of `RECORD_COLUMNS` (`external_id` always), for a caller that reads a few of many rows."""
        wanted = ["external_id", *(c for c in RECORD_COLUMNS if c in columns and c != "external_id")]
        if unknown := set(columns) - set(RECORD_COLUMNS):
            raise ValueError(f"no such state record column: {', '.join(sorted(unknown))}")
        selected = ", ".join(f"r.{c}" for c in wanted)
        with self._connect() as db:
            if external_ids is None:
                cursor = db.execute(f"SELECT {selected} FROM {db.whole('records r')} WHERE r.destination=?",
                                    (destination,))
            else:
                _wanted(db, external_ids)
                cursor = db.execute(
                    f"SELECT {selected} FROM {BY_KEY} records r WHERE r.destination=? AND r.external_id = w.external_id",
                    (destination,),
                )
            if not parsed:
                return _text_frame(_chunks(cursor), wanted)
            rows = cursor.fetchall()
        df = pd.DataFrame(rows, columns=wanted)
        texts = [c for c in wanted if c not in ("permissions", "fields")]
        with collector_paused():  # a dict or two per record, kept: see lib/bulk.py
            for column in ("permissions", "fields"):
                if column in df:
                    df[column] = pd.Series([orjson.loads(text) for text in df[column].tolist()], index=df.index,
                                           dtype=object)
        return df.astype({c: "string" for c in texts})

    def save_records(self, destination: str, rows: Iterable[dict]) -> int:
        """Upsert state rows: external_id, content_hash, email_hash, permissions (dict), bounced_email_hash,
        fields (dict: two-way property -> value hash) and, optionally, destination_key (the destination's own key
        of the record when it is not the external id, e.g. Mailchimp's subscriber hash; a row without one keeps
        the key saved before). A saved row loses its `input_hash` (`save_input_hashes`) unless it brings one."""
        now = _now()
        values = [
            (destination, str(r["external_id"]), r["content_hash"], r["email_hash"],
             _json_text(r["permissions"]), r.get("bounced_email_hash"), now,
             _json_text(r.get("fields") or {}), r.get("destination_key"), r.get("input_hash"))
            for r in rows
        ]
        self._in_key_order(values, 2)
        with self._connect() as db:
            db.executemany(
                "INSERT INTO records (destination, external_id, content_hash, email_hash, permissions, "
                "bounced_email_hash, synced_at, fields, destination_key, input_hash) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(destination, external_id) DO UPDATE SET "
                "content_hash=excluded.content_hash, email_hash=excluded.email_hash, "
                "permissions=excluded.permissions, bounced_email_hash=excluded.bounced_email_hash, "
                "synced_at=excluded.synced_at, fields=excluded.fields, "
                "destination_key=COALESCE(excluded.destination_key, records.destination_key), "
                "input_hash=excluded.input_hash",
                values,
            )
        return len(values)

    def save_input_hashes(self, destination: str, rows: Iterable[tuple[str, str, str, dict]]) -> int:
        """For records whose input and content are settled (external_id, content_hash, input_hash, fields): the hash
        of what the record was made from, so the next run can tell it unchanged without making it again. Only where
        the saved content hash is still that one (a run that wrote the record since wins: its row keeps no input
        hash). How many rows were offered."""
        offered = 0
        with self.transaction(), self._connect() as db:
            # 50,000 at a time: at 1,000,000 contacts the 1,133,557 rows of a first full sync as one list held 0.4 GB.
            rows = iter(rows)
            while batch := list(itertools.islice(rows, 50_000)):
                values = [(input_hash, _json_text(fields or {}), destination, str(external_id), content_hash)
                          for external_id, content_hash, input_hash, fields in batch]
                if self.url is not None:  # in key order, as `_in_key_order` does for upserts
                    values.sort(key=operator.itemgetter(2, 3))
                db.executemany("UPDATE records SET input_hash=?, fields=? WHERE destination=? AND external_id=? "
                               "AND content_hash=?", values)
                offered += len(values)
        return offered

    def holders(self, destination: str, email_hashes: Iterable[str]) -> dict[str, str]:
        """Email hash -> the external id of a record the state holds with that address, for these hashes (an
        indexed look-up: a delta asks for its few addresses, not the whole state)."""
        with self._connect() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_hashes (email_hash TEXT PRIMARY KEY)")
            db.execute("DELETE FROM wanted_hashes")
            db.executemany("INSERT INTO wanted_hashes VALUES (?) ON CONFLICT DO NOTHING",
                           ((str(h),) for h in email_hashes))
            rows = db.execute("SELECT r.email_hash, r.external_id FROM wanted_hashes w CROSS JOIN records r "
                              "WHERE r.destination=? AND r.email_hash = w.email_hash", (destination,)).fetchall()
        return dict(rows)

    def mark_bounced(self, destination: str, external_ids: Iterable[str]) -> int:
        """R11: the destination made these records inactive: the address they have now is the bounced one."""
        with self._connect() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS bounced (external_id TEXT PRIMARY KEY)")
            db.execute("DELETE FROM bounced")
            db.executemany("INSERT INTO bounced VALUES (?) ON CONFLICT DO NOTHING", ((str(i),) for i in external_ids))
            return db.execute(
                "UPDATE records SET bounced_email_hash=email_hash WHERE destination=? "
                "AND external_id IN (SELECT external_id FROM bounced) "
                "AND (bounced_email_hash IS NULL OR bounced_email_hash != email_hash)", (destination,)).rowcount

    # -- consent --

    def record_optouts(self, destination: str, optouts: Iterable[tuple[str, str, datetime]]) -> int:
        """(external_id, permission key, when) of permissions seen switched off in the destination.
        Keeps the latest opt-out per permission."""
        values = [(destination, str(i), str(k), when.astimezone(timezone.utc).isoformat()) for i, k, when in optouts]
        self._in_key_order(values, 3)
        with self._connect() as db:
            db.executemany(
                "INSERT INTO optouts VALUES (?,?,?,?) ON CONFLICT(destination, external_id, permission) DO UPDATE "
                "SET opted_out_at=CASE WHEN excluded.opted_out_at > optouts.opted_out_at THEN excluded.opted_out_at "
                "ELSE optouts.opted_out_at END",
                values,
            )
        return len(values)

    def optouts(self, destination: str, external_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """The latest opt-out per record and permission: of these records (all when None)."""
        with self._connect() as db:
            query = "SELECT o.external_id, permission, opted_out_at FROM optouts o WHERE o.destination=?"
            if external_ids is not None:
                _wanted(db, external_ids)
                query = query.replace("FROM", f"FROM {BY_KEY}") + " AND o.external_id = w.external_id"
            rows = db.execute(query, (destination,)).fetchall()
        df = pd.DataFrame(rows, columns=["external_id", "permission", "opted_out_at"])
        df["opted_out_at"] = pd.to_datetime(df["opted_out_at"], utc=True, format="ISO8601")
        return df

    # -- rejected records --

    #: 1 when a refusal comes from another run than the one that counted the last attempt, else 0.
    NEW_RUN = ("(CASE WHEN excluded.last_run IS NULL OR rejected.last_run IS NULL "
               "OR rejected.last_run != excluded.last_run THEN 1 ELSE 0 END)")

    def record_rejections(self, destination: str, rejections: Iterable[dict], quarantine_after: int) -> None:
        """external_id, reason, status_code per refused record. Attempts count runs: a record refused
        twice in one run (or listed twice) is one attempt; quarantined at `quarantine_after` runs."""
        now = _now()
        latest = {str(r["external_id"]): r for r in rejections}
        with self._connect() as db:
            for external_id, r in latest.items():
                db.execute(
                    "INSERT INTO rejected VALUES (?,?,?,?,1,?,?,?,?) ON CONFLICT(destination, external_id) DO UPDATE SET "
                    "reason=excluded.reason, status_code=excluded.status_code, last_seen=excluded.last_seen, "
                    f"attempts=rejected.attempts + {self.NEW_RUN}, "
                    f"quarantined=CASE WHEN rejected.attempts + {self.NEW_RUN} >= ? THEN 1 ELSE 0 END, "
                    "last_run=excluded.last_run",
                    (destination, external_id, r.get("reason"), r.get("status_code"), now, now,
                     int(quarantine_after <= 1), self.run_id, quarantine_after),
                )

    def clear_rejections(self, destination: str, external_ids: Iterable[str]) -> None:
        with self._connect() as db:
            db.executemany(
                "DELETE FROM rejected WHERE destination=? AND external_id=?",
                ((destination, str(i)) for i in external_ids),
            )

    def release(self, destination: str, external_id: str) -> bool:
        """An operator lets a quarantined record be tried again: quarantined off and attempts back to 0, so the
        next run sends it and a refusal counts from 1 towards quarantine again. The row stays until the
        destination accepts the record. False, and nothing changed, when the record is not quarantined."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE rejected SET quarantined=0, attempts=0, last_run=NULL "
                "WHERE destination=? AND external_id=? AND quarantined=1",
                (destination, str(external_id)))
            return cursor.rowcount == 1

    def rejected(self, destination: str, external_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """The refused records (of these records; all when None), by external id."""
        with self._connect() as db:
            query = ("SELECT r.external_id, reason, status_code, attempts, first_seen, last_seen, quarantined "
                     "FROM rejected r WHERE r.destination=?")
            if external_ids is not None:
                _wanted(db, external_ids)
                query = query.replace("FROM", f"FROM {BY_KEY}") + " AND r.external_id = w.external_id"
            rows = db.execute(query + " ORDER BY r.external_id", (destination,)).fetchall()
        df = pd.DataFrame(rows, columns=REJECTED_COLUMNS)
        df["quarantined"] = df["quarantined"].astype(bool)
        return df

    # -- what a destination's records are --

    def identity(self, destination: str, identity: str) -> str:
        """The AFAS field this destination's records are keyed by (`contact.ContactId`, `debtor.DebtorId`): the
        one saved, else `identity`, saved now. A state saved before identities were kept holds contacts."""
        with self._connect() as db:
            row = db.execute("SELECT identity FROM identities WHERE destination=?", (destination,)).fetchone()
            if row:
                return row[0]
            known = db.execute("SELECT 1 FROM records WHERE destination=? LIMIT 1", (destination,)).fetchone()
            db.execute("INSERT INTO identities VALUES (?,?) ON CONFLICT DO NOTHING",
                       (destination, "contact.ContactId" if known else identity))
            # Another run may have saved one meanwhile: the one saved first holds.
            return db.execute("SELECT identity FROM identities WHERE destination=?", (destination,)).fetchone()[0]

    # -- feed watermarks --

    def watermark(self, destination: str, feed: str) -> datetime | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT read_until FROM watermarks WHERE destination=? AND feed=?", (destination, feed)
            ).fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def set_watermark(self, destination: str, feed: str, read_until: datetime) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO watermarks VALUES (?,?,?) ON CONFLICT(destination, feed) DO UPDATE SET "
                "read_until=CASE WHEN excluded.read_until > watermarks.read_until THEN excluded.read_until "
                "ELSE watermarks.read_until END",
                (destination, feed, read_until.astimezone(timezone.utc).isoformat()),
            )


    # -- phone index, call reports and feed cursors (Xelion: X1-X3) --

    def replace_phone_numbers(self, destination: str, rows: pa.Table, *, every: pa.Array | None = None) -> bool:
        """The phone index rows of some records (external_id, number_key, bcid, afas_id, kind: a record without a
        number has one row with a null number_key), replacing what was saved for them. `every`: the keys of every
        record there is (a full read): the rows of any other record go. Whether the rows changed: records whose rows
        are as saved change nothing, not even `phone_index_version`. Compared in the database, not in Python: at
        1,000,000 contacts the saved rows as Python tuples held 0.9 GB."""
        ids = pc.unique(rows["external_id"])
        numbered = rows.filter(pc.is_valid(rows["number_key"])).select(PHONE_INDEX_COLUMNS)
        new = (row for batch in numbered.to_batches(50_000)
               for row in zip(*(column.to_pylist() for column in batch.columns)))
        columns = ", ".join(PHONE_INDEX_COLUMNS)
        saved = (f"SELECT {', '.join(f'p.{c}' for c in PHONE_INDEX_COLUMNS)} FROM {BY_KEY} phone_index p "
                 "WHERE p.destination=? AND p.external_id = w.external_id")
        with self._connect() as db:
            db.write_first()  # it compares, then deletes and inserts
            _wanted(db, _texts(ids))
            db.execute("CREATE TEMP TABLE IF NOT EXISTS new_numbers (external_id TEXT NOT NULL, number_key TEXT NOT "
                       "NULL, bcid TEXT, afas_id TEXT, kind TEXT NOT NULL, PRIMARY KEY (external_id, number_key))")
            db.execute("DELETE FROM new_numbers")
            db.executemany(f"INSERT INTO new_numbers ({columns}) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING", new)
            changed = db.execute(f"SELECT EXISTS (SELECT {columns} FROM new_numbers EXCEPT {saved}) "
                                 f"OR EXISTS ({saved} EXCEPT SELECT {columns} FROM new_numbers)",
                                 (destination, destination)).fetchone()[0]
            if changed:
                db.execute("DELETE FROM phone_index WHERE destination=? AND external_id IN "
                           "(SELECT external_id FROM wanted)", (destination,))
                db.execute(f"INSERT INTO phone_index (destination, {columns}) SELECT ?, {columns} FROM new_numbers "
                           "WHERE true ON CONFLICT DO NOTHING", (destination,))
            db.execute("DELETE FROM new_numbers")
            if every is not None:
                db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (external_id TEXT PRIMARY KEY)")
                db.execute("DELETE FROM keep")
                db.executemany("INSERT INTO keep VALUES (?) ON CONFLICT DO NOTHING", ((i,) for i in _texts(every)))
                changed = db.execute("DELETE FROM phone_index WHERE destination=? AND external_id NOT IN "
                                     "(SELECT external_id FROM keep)", (destination,)).rowcount > 0 or changed
                db.execute("DELETE FROM keep")
            if changed:
                _phone_index_changed(db, destination)
        return bool(changed)

    def phone_index_version(self, destination: str) -> str | None:
        """A token that changes with the destination's phone index rows (replaced, or deleted by an erasure): while
        it is the same, so are the rows. None before any were saved."""
        return self.cursor(destination, PHONE_INDEX_FEED)

    def phone_number_count(self, destination: str, external_ids: Iterable[str] | None = None) -> int:
        """How many numbers the phone index rows hold, of every record or of these."""
        with self._connect() as db:
            if external_ids is None:
                return db.execute("SELECT COUNT(*) FROM phone_index WHERE destination=?", (destination,)).fetchone()[0]
            _wanted(db, external_ids)
            return db.execute(f"SELECT COUNT(*) FROM {BY_KEY} phone_index p WHERE p.destination=? "
                              "AND p.external_id = w.external_id", (destination,)).fetchone()[0]

    def phone_index(self, destination: str, number_keys: Iterable[str] | None = None) -> pd.DataFrame:
        """The index rows (external_id, number_key, bcid, afas_id, kind), all or for these number keys: read
        100,000 rows at a time into Arrow text (at 1,000,000 contacts its 1,836,129 rows fetched at once as Python
        tuples made the run's peak, some 0.9 GB more)."""
        columns = list(PHONE_INDEX_COLUMNS)
        query = f"SELECT {', '.join(columns)} FROM phone_index WHERE destination=?"
        with self._connect() as db:
            if number_keys is None:
                cursor = db.execute(query.replace("FROM phone_index", f"FROM {db.whole('phone_index')}"), (destination,))
                return _text_frame(_chunks(cursor), columns)
            rows = [row for key in set(number_keys)
                    for row in db.execute(query + " AND number_key=?", (destination, key)).fetchall()]
        return _text_frame([rows], columns)

    def call_reports(self, destination: str, call_ids: Iterable[str] | None = None,
                     status: str | None = None) -> pd.DataFrame:
        """Rows (call_id, oid, status, sbid, reason, attempts): for these call ids, or with this status, or all."""
        columns = ["call_id", "oid", "status", "sbid", "reason", "attempts"]
        query = f"SELECT {', '.join(columns)} FROM call_reports WHERE destination=?"
        with self._connect() as db:
            if call_ids is not None:
                rows = [row for call_id in set(call_ids)
                        for row in db.execute(query + " AND call_id=?", (destination, call_id)).fetchall()]
            elif status is not None:
                rows = db.execute(query + " AND status=?", (destination, status)).fetchall()
            else:
                rows = db.execute(query, (destination,)).fetchall()
        return pd.DataFrame(rows, columns=columns).astype({c: "string" for c in columns if c != "attempts"})

    def save_call_reports(self, destination: str, rows: Iterable[dict]) -> int:
        """Upsert (call_id, oid, status, sbid, reason); `attempt` adds one to the attempts. A saved SbId is kept."""
        values = [(destination, r["call_id"], r["oid"], r["status"], r.get("sbid"), r.get("reason"),
                   int(bool(r.get("attempt"))), _now()) for r in rows]
        self._in_key_order(values, 2)
        with self._connect() as db:
            db.executemany(
                "INSERT INTO call_reports VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(destination, call_id) DO UPDATE SET "
                "oid=excluded.oid, status=excluded.status, sbid=COALESCE(excluded.sbid, call_reports.sbid), "
                "reason=excluded.reason, attempts=call_reports.attempts + excluded.attempts, "
                "updated_at=excluded.updated_at", values)
        return len(values)

    def cursor(self, destination: str, feed: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT position FROM cursors WHERE destination=? AND feed=?",
                             (destination, feed)).fetchone()
        return row[0] if row else None

    def set_cursor(self, destination: str, feed: str, position: str) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(destination, feed) DO UPDATE SET "
                       "position=excluded.position", (destination, feed, position))

    # -- writes in flight (C1, C4: a run killed between a write and its state save) --

    def begin_writes(self, destination: str, intents: dict[str, dict], feed_mark: datetime | None) -> int:
        """Record, before sending, what a chunk of writes is about to do: per external id the state row its
        success saves (`feed_mark`: how far the change feed had been read). Returns the entry's id."""
        mark = feed_mark.astimezone(timezone.utc).isoformat() if feed_mark else None
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO writes_in_flight (destination, started_at, feed_mark, intents) VALUES (?,?,?,?) "
                "RETURNING id", (destination, _now(), mark, _json_text(intents)))
            return int(cursor.fetchone()[0])

    def end_writes(self, entry: int) -> None:
        """Every batch of the chunk was answered and its outcome saved."""
        with self._connect() as db:
            db.execute("DELETE FROM writes_in_flight WHERE id=?", (entry,))

    def writes_in_flight(self, destination: str) -> list[WritesInFlight]:
        """Chunks a run started and never finished (it died, or the destination went away), oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT id, started_at, feed_mark, intents FROM writes_in_flight WHERE destination=? "
                              "ORDER BY id", (destination,)).fetchall()
        return [WritesInFlight(i, datetime.fromisoformat(t), datetime.fromisoformat(m) if m else None, orjson.loads(x))
                for i, t, m, x in rows]

    def resolve_in_doubt(self, destination: str, entries: list[WritesInFlight]) -> int:
        """After the change feed was judged against `entries`: a record whose answer was never saved may or
        may not have reached the destination, so the next plan sends it again (content hash `IN_DOUBT`,
        permissions as never sent; a create stays a create). AFAS's side of consent (its permission values
        and since when they are on, C1) is kept from the intent. The entries are removed. Returns how many
        records are in doubt."""
        if not entries:
            return 0
        ids = {i for entry in entries for i in entry.intents}
        current = {str(r["external_id"]): r for r in self.records(destination, ids).to_dict("records")}
        doubtful: dict[str, dict] = {}
        for entry in entries:
            for external_id, intent in entry.intents.items():
                row = doubtful.get(external_id) or current.get(external_id)
                if row is not None and external_id not in doubtful and acknowledged(row, intent):
                    continue
                known = row is not None and isinstance(row.get("content_hash"), str)
                permissions = {k: dict(v) for k, v in ((row or {}).get("permissions") or {}).items()} if known else {}
                for key, wanted in intent["permissions"].items():
                    permissions[key] = {**permissions.get(key, {}), "sent": None,
                                        "afas": wanted.get("afas"), "on_since": wanted.get("on_since")}
                doubtful[external_id] = {
                    "external_id": external_id,
                    "content_hash": IN_DOUBT if known else None,
                    "email_hash": row.get("email_hash") if known else None,
                    "permissions": permissions,
                    "bounced_email_hash": row.get("bounced_email_hash") if known else None,
                    "fields": row.get("fields") if known else {},
                }
        with self.transaction(), self._connect() as db:
            self.save_records(destination, [_plain(r) for r in doubtful.values()])
            db.executemany("DELETE FROM writes_in_flight WHERE id=?", [(e.id,) for e in entries])
        return len(doubtful)

    def in_doubt(self, destination: str) -> list[str]:
        """Records to send again: their last write may not have arrived (in doubt, or still in flight)."""
        with self._connect() as db:
            ids = {r[0] for r in db.execute(IN_DOUBT_QUERY, (destination,))}
        ids |= {i for entry in self.writes_in_flight(destination) for i in entry.intents}
        return sorted(ids)

    # -- feedback ledger (destination -> AFAS) --

    def feedback_events(self, destination: str, status: str | None = None,
                        keys: Iterable[tuple[str, str, str]] | None = None) -> pd.DataFrame:
        """Ledger rows: external_id, kind, event_at (UTC ISO text), status; all, those with `status`, and/or
        only those of `keys` ((external_id, kind, event_at) triples: a run reads what it needs, not the whole
        ledger, which keeps every event ever delivered)."""
        query = "SELECT f.external_id, f.kind, f.event_at, status FROM feedback_events f WHERE f.destination=?"
        args: list = [destination]
        with self._connect() as db:
            if keys is not None:
                db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_events (external_id TEXT, kind TEXT, "
                           "event_at TEXT, PRIMARY KEY (external_id, kind, event_at))")
                db.execute("DELETE FROM wanted_events")
                db.executemany("INSERT INTO wanted_events VALUES (?,?,?) ON CONFLICT DO NOTHING",
                               ((str(i), str(k), str(t)) for i, k, t in keys))
                query = query.replace("FROM", "FROM wanted_events w CROSS JOIN") + (
                    " AND f.external_id = w.external_id AND f.kind = w.kind AND f.event_at = w.event_at")
            if status is not None:
                query += " AND status=?"
                args.append(status)
            rows = db.execute(query + " ORDER BY f.event_at, f.external_id, f.kind", args).fetchall()
        return pd.DataFrame(rows, columns=["external_id", "kind", "event_at", "status"])

    def record_feedback(self, destination: str, events: Iterable[tuple[str, str, str]], status: str) -> int:
        """(external_id, kind, event_at ISO) with their new status. A delivered event stays delivered."""
        now = _now()
        values = [(destination, str(i), str(k), str(t), status, now) for i, k, t in events]
        self._in_key_order(values, 4)
        with self._connect() as db:
            db.executemany(
                "INSERT INTO feedback_events VALUES (?,?,?,?,?,?) ON CONFLICT(destination, external_id, kind, event_at) "
                "DO UPDATE SET status=CASE WHEN feedback_events.status='delivered' THEN 'delivered' ELSE excluded.status END, "
                "updated_at=excluded.updated_at",
                values,
            )
        return len(values)

    def update_after_write_back(self, destination: str, permissions: dict[str, dict[str, bool]],
                                bounced: dict[str, str], fields: dict[str, dict[str, str]] | None = None,
                                switched_at: dict[str, dict[str, str]] | None = None) -> None:
        """What AFAS now holds because of a write-back: per permission the value sent and AFAS's own value
        (both the written value, so the next sync to the destination does not send it back as a change),
        per two-way field the hash of the value written (AFAS and the destination agree on it now) and,
        per hard-bounced record, the hash of the address that bounced (R11). Only existing records change.
        `switched_at` dates a permission switched on (the destination's event time; default now): C1 weighs a
        later opt-out against it."""
        fields, switched_at = fields or {}, switched_at or {}
        ids = set(permissions) | set(bounced) | set(fields)
        if not ids:
            return
        current = self.records(destination, ids)
        now = _now()
        rows = []
        for r in current.to_dict("records"):
            external_id = str(r["external_id"])
            sent = {k: dict(v) if isinstance(v, dict) else {"sent": bool(v)} for k, v in r["permissions"].items()}
            for key, value in permissions.get(external_id, {}).items():
                entry = sent.setdefault(str(key), {})
                was_on = entry.get("afas") is True and entry.get("on_since")
                # AFAS holds `value` now, written by us: switched on then (unless it already was on), or off.
                when = switched_at.get(external_id, {}).get(str(key), now)
                entry.update({"sent": bool(value), "afas": bool(value),
                              "on_since": (entry["on_since"] if was_on else when) if value else None})
            rows.append({
                "external_id": external_id,
                "content_hash": None if pd.isna(r["content_hash"]) else r["content_hash"],
                "email_hash": None if pd.isna(r["email_hash"]) else r["email_hash"],
                "permissions": sent,
                "fields": {**r["fields"], **fields.get(external_id, {})},
                "bounced_email_hash": bounced.get(external_id,
                                                  None if pd.isna(r["bounced_email_hash"]) else r["bounced_email_hash"]),
            })
        self.save_records(destination, rows)


    # -- mailing history (R17) --

    def mailing_items(self, destination: str, keys: Iterable[tuple[str, str]] | None = None, *,
                      pending_only: bool = False) -> pd.DataFrame:
        """Dossier items: mailing_id, external_id, sent_at (UTC ISO text), sbid (missing while its POST waits),
        claimed_by and claimed_at (the run POSTing it, if any) and updated_at (the row's version, for
        `claim_mailing_item`); all, those of `keys` ((mailing_id, external_id) pairs), or only those still
        waiting. Every column is pandas' "string" dtype: a missing value is pd.NA with every pandas version."""
        query = ("SELECT h.mailing_id, h.external_id, sent_at, sbid, claimed_by, claimed_at, updated_at "
                 "FROM mailing_history h")
        with self._connect() as db:
            if keys is not None:
                db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_items (mailing_id TEXT, external_id TEXT, "
                           "PRIMARY KEY (mailing_id, external_id))")
                db.execute("DELETE FROM wanted_items")
                db.executemany("INSERT INTO wanted_items VALUES (?,?) ON CONFLICT DO NOTHING",
                               ((str(m), str(e)) for m, e in keys))
                query += " JOIN wanted_items w ON w.mailing_id = h.mailing_id AND w.external_id = h.external_id"
            query += " WHERE destination=?" + (" AND sbid IS NULL" if pending_only else "")
            rows = db.execute(query + " ORDER BY sent_at, h.mailing_id, h.external_id", (destination,)).fetchall()
        return pd.DataFrame(rows, columns=MAILING_ITEM_COLUMNS, dtype=object).astype("string")

    def save_mailing_items(self, destination: str, items: Iterable[tuple[str, str, str, str | None]]) -> int:
        """(mailing_id, external_id, sent_at ISO, sbid or None). An SbId once known is never replaced; saving
        one ends the item's claim."""
        now = _now()
        values = [(destination, str(m), str(e), str(t), None if _missing(s) else str(s), now) for m, e, t, s in items]
        self._in_key_order(values, 3)
        with self._connect() as db:
            db.executemany(
                "INSERT INTO mailing_history (destination, mailing_id, external_id, sent_at, sbid, updated_at) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT(destination, mailing_id, external_id) DO UPDATE SET "
                "sbid=coalesce(mailing_history.sbid, excluded.sbid), updated_at=excluded.updated_at, "
                "claimed_by=CASE WHEN excluded.sbid IS NULL THEN mailing_history.claimed_by END, "
                "claimed_at=CASE WHEN excluded.sbid IS NULL THEN mailing_history.claimed_at END",
                values,
            )
        return len(values)

    def claim_mailing_item(self, destination: str, key: tuple[str, str], sent_at: str, run_id: str, *,
                           seen: str | None, lease: timedelta) -> bool:
        """Whether `run_id` may POST this item: at most one run holds its claim. `seen` is the item's
        `updated_at` as this run read it (None: it was not in the state). An item not in the state is claimed
        by adding it; one in the state only when it still has no SbId, nobody changed it since this run read
        it (and looked it up in AFAS), and its claim is free or older than `lease` (left by a run that died)."""
        now = datetime.now(timezone.utc)
        mailing_id, external_id = str(key[0]), str(key[1])
        with self._connect() as db:
            if seen is None:
                cursor = db.execute(
                    "INSERT INTO mailing_history (destination, mailing_id, external_id, sent_at, sbid, updated_at, "
                    "claimed_by, claimed_at) VALUES (?,?,?,?,NULL,?,?,?) ON CONFLICT DO NOTHING",
                    (destination, mailing_id, external_id, str(sent_at), now.isoformat(), run_id, now.isoformat()))
            else:
                cursor = db.execute(
                    "UPDATE mailing_history SET claimed_by=?, claimed_at=?, updated_at=? WHERE destination=? "
                    "AND mailing_id=? AND external_id=? AND sbid IS NULL AND updated_at=? "
                    "AND (claimed_by IS NULL OR claimed_at < ?)",
                    (run_id, now.isoformat(), now.isoformat(), destination, mailing_id, external_id, str(seen),
                     (now - lease).isoformat()))
            return cursor.rowcount == 1

    def release_mailing_claim(self, destination: str, key: tuple[str, str], run_id: str) -> None:
        """`run_id` gives up its claim (AFAS refused the POST): the item waits for a retry by any run."""
        with self._connect() as db:
            db.execute(
                "UPDATE mailing_history SET claimed_by=NULL, claimed_at=NULL, updated_at=? WHERE destination=? "
                "AND mailing_id=? AND external_id=? AND claimed_by=?",
                (_now(), destination, str(key[0]), str(key[1]), run_id))

    def drop_waiting_mailing_items(self, destination: str, keys: Iterable[tuple[str, str]], *,
                                   lease: timedelta) -> None:
        """Forget items still without an SbId (their contact is no longer in AFAS: nothing to retry), unless
        a run holds a claim on one that is younger than `lease`."""
        cutoff = (datetime.now(timezone.utc) - lease).isoformat()
        with self._connect() as db:
            db.executemany(
                "DELETE FROM mailing_history WHERE destination=? AND mailing_id=? AND external_id=? AND sbid IS NULL "
                "AND (claimed_by IS NULL OR claimed_at < ?)",
                ((destination, str(m), str(e), cutoff) for m, e in keys),
            )

    def mailing_reactions(self, destination: str, status: str | None = None) -> pd.DataFrame:
        """Reactions: mailing_id, external_id, kind, event_at (UTC ISO text), status (pending | delivered)."""
        query = "SELECT mailing_id, external_id, kind, event_at, status FROM mailing_reactions WHERE destination=?"
        args: tuple = (destination,)
        if status is not None:
            query, args = query + " AND status=?", (destination, status)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY event_at, mailing_id, external_id, kind", args).fetchall()
        return pd.DataFrame(rows, columns=["mailing_id", "external_id", "kind", "event_at", "status"])

    def record_mailing_reactions(self, destination: str, reactions: Iterable[tuple[str, str, str, str]],
                                 status: str) -> int:
        """(mailing_id, external_id, kind, event_at ISO) with their new status; delivered stays delivered."""
        now = _now()
        values = [(destination, str(m), str(e), str(k), str(t), status, now) for m, e, k, t in reactions]
        self._in_key_order(values, 5)
        with self._connect() as db:
            db.executemany(
                "INSERT INTO mailing_reactions VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT(destination, mailing_id, external_id, kind, event_at) DO UPDATE SET "
                "status=CASE WHEN mailing_reactions.status='delivered' THEN 'delivered' ELSE excluded.status END, "
                "updated_at=excluded.updated_at",
                values,
            )
        return len(values)

    # -- erasure --

    def queue_erasure(self, subject_hash: str, keys: dict[str, list[str]], tombstones: Iterable[str], source: str,
                      requested_at: datetime | None = None) -> bool:
        """A request to erase a person (P2): `keys` the AFAS ids to act on (`contacts`, `persons`), `tombstones` the
        hashes of their record keys. False, and nothing changed, when the subject already has a request (pending or
        erased); a lifted one (`lift_tombstones`) is requested anew."""
        when = (requested_at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat()
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO erasure_requests (subject_hash, keys, tombstones, source, requested_at, status, outcome, "
                "attempts, updated_at, finished_at) VALUES (?,?,?,?,?,'pending','{}',0,?,NULL) "
                "ON CONFLICT(subject_hash) DO UPDATE SET keys=excluded.keys, tombstones=excluded.tombstones, "
                "source=excluded.source, requested_at=excluded.requested_at, status='pending', outcome='{}', "
                "attempts=0, updated_at=excluded.updated_at, finished_at=NULL "
                "WHERE erasure_requests.status='lifted'",
                (subject_hash, _json_text(keys), _json_text(sorted(set(tombstones))), source, when,
                 _now()))
            return cursor.rowcount == 1

    def erasure_requests(self, status: str | None = None) -> pd.DataFrame:
        """The requests (or those of one status), oldest first: `keys`, `tombstones` and `outcome` parsed."""
        query = ("SELECT subject_hash, keys, tombstones, source, requested_at, status, outcome, attempts, updated_at, "
                 "finished_at FROM erasure_requests")
        args: tuple = ()
        if status is not None:
            query, args = query + " WHERE status=?", (status,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY requested_at, subject_hash", args).fetchall()
        df = pd.DataFrame(rows, columns=ERASURE_COLUMNS)
        for column in ("keys", "tombstones", "outcome"):
            df[column] = df[column].map(orjson.loads)
        return df

    def tombstones(self) -> set[str]:
        """The hashes of every record key an erasure request covers, pending or done: no sync sends those records."""
        with self._connect() as db:
            rows = db.execute("SELECT tombstones FROM erasure_requests").fetchall()
        return {h for (text,) in rows for h in orjson.loads(text)}

    def record_erasure(self, subject_hash: str, destination: str, outcome: str, *, purge: Iterable[str] = ()) -> None:
        """What became of the request in one destination; with `purge`, every state row of those record keys in that
        destination goes in the same transaction (the destination has forgotten them)."""
        with self.transaction(), self._connect() as db:
            if purge:
                self.purge_records(destination, purge)
            row = db.execute("SELECT outcome FROM erasure_requests WHERE subject_hash=?", (subject_hash,)).fetchone()
            if row is None:
                return
            outcomes = {**orjson.loads(row[0]), destination: outcome}
            db.execute("UPDATE erasure_requests SET outcome=?, updated_at=? WHERE subject_hash=?",
                       (_json_text(outcomes), _now(), subject_hash))

    def finish_erasure(self, subject_hash: str, done: bool) -> None:
        """One attempt over every destination is over: `done` marks the request erased and forgets its AFAS keys (the
        hashes stay, as tombstones and for the audit); otherwise it stays pending for the next attempt."""
        now = _now()
        with self._connect() as db:
            if done:
                db.execute("UPDATE erasure_requests SET status='erased', keys='{}', attempts=attempts + 1, "
                           "updated_at=?, finished_at=? WHERE subject_hash=?", (now, now, subject_hash))
            else:
                db.execute("UPDATE erasure_requests SET attempts=attempts + 1, updated_at=? WHERE subject_hash=?",
                           (now, subject_hash))

    def lift_tombstones(self, subject_hash: str) -> bool:
        """An operator lets the syncs send an erased person again (they asked to be added back): the request keeps its
        audit row, status `lifted`, without tombstones. False, and nothing changed, unless the request was erased."""
        with self._connect() as db:
            cursor = db.execute("UPDATE erasure_requests SET tombstones='[]', status='lifted', updated_at=? "
                                "WHERE subject_hash=? AND status='erased'", (_now(), subject_hash))
            return cursor.rowcount == 1

    def purge_records(self, destination: str, external_ids: Iterable[str]) -> int:
        """Deletes every state row of these record keys in this destination (records, opt-outs, refusals, feedback
        events, mailing history and reactions, phone numbers) and drops them from writes in flight. Rows deleted."""
        ids = [str(i) for i in external_ids]
        if not ids:
            return 0
        deleted = 0
        with self.transaction(), self._connect() as db:
            for table in ("records", "optouts", "rejected", "feedback_events", "mailing_history", "mailing_reactions",
                          "phone_index"):
                gone = sum(db.execute(f"DELETE FROM {table} WHERE destination=? AND external_id=?",
                                      (destination, external_id)).rowcount for external_id in ids)
                if table == "phone_index" and gone:  # an erased person's number must leave the stored index too
                    _phone_index_changed(db, destination)
                deleted += gone
            for entry in self.writes_in_flight(destination):
                intents = {k: v for k, v in entry.intents.items() if k not in ids}
                if len(intents) != len(entry.intents):
                    db.execute("UPDATE writes_in_flight SET intents=? WHERE id=?",
                               (_json_text(intents), entry.id))
        return deleted

    # -- retention --

    def prune_delivered(self, older_than: timedelta) -> dict[str, int]:
        """Deletes ledger events (feedback events, mailing reactions) delivered (or skipped: not in AFAS) more
        than `older_than` ago; pending ones stay whatever their age. Counts per table. An event pruned is delivered again should its
        window ever be read again: keep the retention longer than any window is re-read."""
        cutoff = (datetime.now(timezone.utc) - older_than).isoformat()
        counts = {}
        with self._connect() as db:
            for table in ("feedback_events", "mailing_reactions"):
                counts[table] = db.execute(f"DELETE FROM {table} WHERE status IN ('delivered', 'skipped') "
                                           "AND updated_at <= ?",
                                           (cutoff,)).rowcount
        return counts


ERASURE_COLUMNS = ["subject_hash", "keys", "tombstones", "source", "requested_at", "status", "outcome", "attempts",
                   "updated_at", "finished_at"]
MAILING_ITEM_COLUMNS = ["mailing_id", "external_id", "sent_at", "sbid", "claimed_by", "claimed_at", "updated_at"]


#: A query's keys first: `FROM {BY_KEY} <table> x WHERE x.destination=? AND x.external_id = w.external_id` looks up
#: each wanted key in the table's primary key. A plain JOIN lets SQLite (no statistics on the temporary table) read
#: every row of the destination and probe the keys instead: a delta's 100 keys cost a scan of the whole state.
BY_KEY = "wanted w CROSS JOIN"
PHONE_INDEX_COLUMNS = ("external_id", "number_key", "bcid", "afas_id", "kind")
#: The `cursors` row whose position is the phone index's version (`SyncState.phone_index_version`).
PHONE_INDEX_FEED = "phone_index_version"


#: Rows of a state read made into Arrow columns at a time (`_chunks`).
TEXT_CHUNK = 100_000


def _chunks(cursor) -> Iterator[list[tuple]]:
    """The rows of `cursor`, TEXT_CHUNK at a time: a million records as Python tuples at once take some 400 MB (a
    whole read of 800,000 peaked 600 MB above what it kept, 140 MB so)."""
    while rows := cursor.fetchmany(TEXT_CHUNK):
        yield rows


def _text_frame(chunks: Iterable[list[tuple]], columns: list[str]) -> pd.DataFrame:
    """Rows of text values as a DataFrame of text columns, each chunk made into Arrow columns before the next is read:
    80,000 records in 48 ms, where a DataFrame of the Python values and its cast to text took 88."""
    tables = [_text_columns(rows, columns) for rows in chunks]
    table = pa.concat_tables(tables) if tables else _text_columns([], columns)
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)


def _text_columns(rows: list[tuple], columns: list[str]) -> pa.Table:
    return pa.table({name: pa.array([row[i] for row in rows], pa.string()) for i, name in enumerate(columns)})


def _texts(values: pa.Array, size: int = 50_000) -> Iterator[str]:
    """The values of an Arrow text array as Python text, `size` at a time (at 1,000,000 contacts all 1,133,557 keys at
    once held 100 MB)."""
    for start in range(0, len(values), size):
        yield from values.slice(start, size).to_pylist()


def _phone_index_changed(db: _Db, destination: str) -> None:
    db.execute("INSERT INTO cursors VALUES (?,?,?) ON CONFLICT(destination, feed) DO UPDATE SET "
               "position=excluded.position", (destination, PHONE_INDEX_FEED, uuid.uuid4().hex))


def _wanted(db: _Db, external_ids: Iterable[str]) -> None:
    """The temporary table `wanted` (this connection's) filled with these external ids, for a query to join."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (external_id TEXT PRIMARY KEY)")
    db.execute("DELETE FROM wanted")
    db.executemany("INSERT INTO wanted VALUES (?) ON CONFLICT DO NOTHING", ((str(i),) for i in external_ids))


def _json_text(value) -> str:
    """A value as the JSON text the state keeps (keys sorted, so equal values are equal texts)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _missing(value) -> bool:
    """None, NaN or pd.NA: a missing value whatever pandas version made it."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _plain(row: dict) -> dict:
    """A state row as `save_records` takes it: missing values (NaN, NA) as None."""
    return {k: (None if not isinstance(v, (dict, list)) and _missing(v) else v) for k, v in row.items()}


class SyncStateResource(dg.ConfigurableResource):
    """Where the sync state lives: `path`, a SQLite file path or a `postgresql://` URL. Defaults to
    `$DAGSTER_HOME/state/sync_state.sqlite`.

    A run holds the state for its whole length (a lock file next to a SQLite file; a session-level advisory lock,
    on a connection of its own, in a Postgres database): a second run that would write the same records, however
    and wherever it was launched (a schedule, a backfill, `afas-pipeline sync`, the UI), waits until the first is
    done, and gives up with a message naming the holder after `lock_timeout_s`.
    """

    path: str | None = None
    lock_timeout_s: float = Field(default=1800.0, ge=0,
                                  description="How long a run waits for another run that holds the sync state.")

    _lock: filelock.BaseFileLock | None = PrivateAttr(default=None)
    _session: object | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)

    def location(self) -> str | Path:
        """The state's file path, or its Postgres URL."""
        given = self.path.get_value() if isinstance(self.path, dg.EnvVar) else self.path  # outside a run: unresolved
        if given:
            return given if is_url(given) else Path(given)
        home = os.environ.get("DAGSTER_HOME") or os.path.join(os.getcwd(), ".dagster_home")
        return Path(home) / "state" / "sync_state.sqlite"

    def open(self) -> SyncState:
        return SyncState(self.location(), run_id=self._run_id)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = getattr(context, "run", None)
        self._run_id = run.run_id if run is not None else None
        state = SyncState(self.location())  # a state that cannot be opened fails here, with its message, before a lock
        since = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        me = f"run {self._run_id or '?'} (pid {os.getpid()} on {socket.gethostname()}, since {since})"
        if state.url is None:
            self._lock = _hold_file(state.path, me, self.lock_timeout_s, context.log)
        else:
            self._session = _hold_database(state, me, self.lock_timeout_s, context.log)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._session is not None:
            self._session.close()  # ends the session, and with it the advisory lock
            self._session = None


def _waited_too_long(who: str, where: str, timeout_s: float) -> StateError:
    return StateError(f"{who} has held the sync state {where} for more than {timeout_s:g}s; this run wrote "
                      "nothing. Let it finish (or terminate it in the Dagster UI) and launch this run again")


def _hold_file(path: Path, me: str, timeout_s: float, log) -> filelock.BaseFileLock:
    """The SQLite state's lock: a lock file next to it, and the holder's description in a `.holder` file."""
    lock = filelock.FileLock(f"{path}.lock")
    holder = Path(f"{path}.holder")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        who = _read_text(holder) or "another run"
        if log:
            log.info(f"waiting for {who} to finish: it holds the sync state {path}")
        failpoint("sync_state.lock_wait")
        try:
            lock.acquire(timeout=timeout_s)
        except filelock.Timeout:
            raise _waited_too_long(who, str(path), timeout_s) from None
    holder.write_text(me)
    return lock


def _hold_database(state: SyncState, me: str, timeout_s: float, log):
    """The Postgres state's lock: a session-level advisory lock on a connection of its own, held until that
    connection closes (or its process dies), and the holder's description in the table `state_holder`."""
    session = state.connect_raw()
    session.autocommit = True
    try:
        db = _Db(session, postgres=True)
        if not db.execute("SELECT pg_try_advisory_lock(?)", (RUN_LOCK,)).fetchone()[0]:
            row = db.execute("SELECT holder FROM state_holder WHERE name='run'").fetchone()
            who = row[0] if row else "another run"
            if log:
                log.info(f"waiting for {who} to finish: it holds the sync state {state.shown}")
            failpoint("sync_state.lock_wait")
            # Asked again and again, not waited for in `pg_advisory_lock`: a blocked libpq call would not let
            # the run be terminated while it waits.
            deadline, tick = time.monotonic() + timeout_s, threading.Event()
            while not db.execute("SELECT pg_try_advisory_lock(?)", (RUN_LOCK,)).fetchone()[0]:
                if time.monotonic() >= deadline:
                    raise _waited_too_long(who, state.shown, timeout_s)
                tick.wait(min(LOCK_POLL_S, max(0.0, deadline - time.monotonic())))
        db.execute("INSERT INTO state_holder VALUES ('run', ?) ON CONFLICT (name) DO UPDATE SET holder=excluded.holder",
                   (me,))
    except BaseException:
        session.close()
        raise
    return session


def copy_rows(source: SyncState, target: SyncState) -> dict[str, int]:
    """Every row of `source` into `target` (an empty state), in one transaction on each side: the state of one
    moment. The columns both have; a table `source` lacks is skipped. Rows per table."""
    counts = {}
    with source._connect() as read, target.transaction(), target._connect() as write:
        for table in TABLES:
            if table == "state_holder":  # who holds the source's lock: nothing of the copy's
                continue
            columns = sorted(read.columns(table) & write.columns(table))
            if not columns:
                continue
            rows = read.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            write.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                              rows)
            counts[table] = len(rows)
        write.continue_identity()
    return counts


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
