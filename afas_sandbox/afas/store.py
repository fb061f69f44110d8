"""The sandbox's AFAS data: canonical tables, GetConnector views and their page caches.

Every accepted write bumps ``Store.version``. A view (``connectors.GET_CONNECTORS``) is built on first
use per version; it keeps

the filtered + sorted row index per (filter, order) in a small LRU, so paging with skip/take through
1,000,000 contacts evaluates the filter and the sort once; a page is then a slice of that index rendered
with one ``orjson.dumps``. (Caching each row's JSON bytes, as first planned, measured slower on first
read - millions of small allocations - and grows memory by ~0.5 GB per connector at 1M rows.)

A rebuilt view starts with an empty cache; that is cheaper and safer than patching caches on writes.
Deleted rows stay in their table as dead rows (``alive`` false) so row positions never move.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import orjson

from afas_sandbox.afas import dataset
from afas_sandbox.afas.connectors import GET_CONNECTORS, GetConnector
from afas_sandbox.afas.model import (
    BOOL,
    DATE,
    DEC,
    DTYPES,
    INT,
    KEYS,
    NULL,
    NUMERIC,
    STR,
    TABLES,
    TS,
    Columns,
    amount_to_cents,
    cents_to_amount,
    days_to_iso,
    empty_columns,
    iso_to_days,
    ms_to_utc_iso,
    parse_utc_instant,
)
from afas_sandbox.afas.query import ColumnCache, Filter, evaluate, order

INDEX_CACHE_SIZE = 16


class Table:
    """One table as numpy columns with spare capacity at the end (an insert is amortised O(1), not a copy
    of every column), a key -> position map, and lookups by other columns built on first use and dropped
    when one of their columns is written (so that e.g. a KnContact PUT by organisation and person is a
    dict lookup, not a scan of every contact)."""

    def __init__(self, name: str, columns: Columns):
        self.name, self.schema, self.key = name, TABLES[name], KEYS[name]
        n = len(columns[self.key])
        # A column added to the model after a dataset was saved starts empty (false, NULL) in that dataset.
        defaults = empty_columns(name, n)
        self._cols: Columns = {c: np.asarray(columns[c] if c in columns else defaults[c], dtype=DTYPES[k])
                               for c, k in self.schema.items()}
        self._n = len(self._cols[self.key])
        self._alive = np.ones(self._n, dtype=bool)
        self.pos: dict = {k: i for i, k in enumerate(self._cols[self.key].tolist())}
        if len(self.pos) != self._n:
            raise ValueError(f"duplicate keys in table {name}")
        self._lookups: dict[tuple[str, ...], dict[tuple, list[int]]] = {}

    @property
    def cols(self) -> Columns:
        """The columns, one entry per row ever stored (views: writing into them writes the table)."""
        n = self._n
        return {c: v[:n] for c, v in self._cols.items()}

    @property
    def alive(self) -> np.ndarray:
        return self._alive[: self._n]

    def __len__(self) -> int:
        return len(self.pos)

    def normalise_key(self, key):
        return int(key) if self.schema[self.key] == INT else str(key)

    def find(self, key) -> int | None:
        try:
            return self.pos.get(self.normalise_key(key))
        except (TypeError, ValueError):
            return None

    def live(self) -> Columns:
        if self.alive.all():
            return self.cols
        alive = self.alive
        return {c: v[alive] for c, v in self.cols.items()}

    def get(self, pos: int, field: str):
        value = self._cols[field][pos]
        kind = self.schema[field]
        if kind == BOOL:
            return bool(value)
        if kind in NUMERIC:
            return None if value == NULL else int(value)
        return value

    def set(self, pos: int, field: str, value) -> None:
        """``value`` in storage form: str/None, int/None (ms, days), bool."""
        if value is None and self.schema[field] != STR:
            value = NULL if self.schema[field] != BOOL else False
        self._cols[field][pos] = value
        if self._lookups:
            self._lookups = {k: v for k, v in self._lookups.items() if field not in k}

    def append(self, values: dict) -> int:
        pos = self._n
        if pos == len(self._alive):  # full: double the capacity, once for many inserts
            extra = max(16, pos)
            spare = empty_columns(self.name, extra)
            self._cols = {c: np.concatenate([v, spare[c]]) for c, v in self._cols.items()}
            self._alive = np.concatenate([self._alive, np.zeros(extra, dtype=bool)])
        for field, value in values.items():
            self._cols[field][pos] = NULL if value is None and self.schema[field] in NUMERIC else value
        self._alive[pos] = True
        self._n = pos + 1
        self.pos[self.normalise_key(values[self.key])] = pos
        self._lookups = {}
        return pos

    def delete(self, pos: int) -> None:
        self._alive[pos] = False
        del self.pos[self.normalise_key(self._cols[self.key][pos])]
        self._lookups = {}

    def restore(self, pos: int) -> None:
        self._alive[pos] = True
        self.pos[self.normalise_key(self._cols[self.key][pos])] = pos
        self._lookups = {}

    def where(self, **equal) -> np.ndarray:
        """Live row positions whose columns equal the given values (exact match), in row order."""
        fields = tuple(sorted(equal))
        lookup = self._lookups.get(fields)
        if lookup is None:
            lookup = {}
            alive = self.alive
            columns = [self.cols[f].tolist() for f in fields]
            for pos, values in enumerate(zip(*columns)):
                if alive[pos]:
                    lookup.setdefault(values, []).append(pos)
            self._lookups[fields] = lookup
        wanted = tuple(NULL if equal[f] is None and self.schema[f] != STR else equal[f] for f in fields)
        return np.asarray(lookup.get(wanted, ()), dtype=np.int64)

    def records(self, positions=None) -> list[dict]:
        """Rows as JSON-ready dicts: instants as UTC ISO with milliseconds, dates as ``YYYY-MM-DD``."""
        positions = np.flatnonzero(self.alive) if positions is None else np.asarray(positions, dtype=np.int64)
        columns = []
        for field, kind in self.schema.items():
            values = self.cols[field][positions].tolist()
            if kind == TS:
                values = [ms_to_utc_iso(v) for v in values]
            elif kind == DATE:
                values = [days_to_iso(v) for v in values]
            elif kind == INT:
                values = [None if v == NULL else v for v in values]
            elif kind == DEC:
                values = [cents_to_amount(v) for v in values]
            columns.append(values)
        names = list(self.schema)
        return [dict(zip(names, row)) for row in zip(*columns)]

    @classmethod
    def from_records(cls, name: str, records: list[dict]) -> "Table":
        schema = TABLES[name]
        cols = empty_columns(name, len(records))
        for field, kind in schema.items():
            raw = [r.get(field) for r in records]
            if kind == TS:
                cols[field][:] = [NULL if v is None else parse_utc_instant(v) for v in raw]
            elif kind == DATE:
                cols[field][:] = [NULL if v is None else iso_to_days(v) for v in raw]
            elif kind == INT:
                cols[field][:] = [NULL if v is None else int(v) for v in raw]
            elif kind == DEC:
                cols[field][:] = [NULL if v is None else amount_to_cents(v) for v in raw]
            elif kind == BOOL:
                cols[field][:] = [bool(v) for v in raw]
            else:
                cols[field][:] = [None if v is None else str(v) for v in raw]
        return cls(name, cols)


def _max_number(table: Table) -> int:
    """The highest key of a numbered table; text keys (debtor numbers) count when they are digits."""
    keys = table.cols[table.key]
    if table.schema[table.key] != STR:
        return int(keys.max(initial=0))
    return max((int(k) for k in keys if k is not None and k.isdigit()), default=0)


class View:
    """One GetConnector over one data version."""

    def __init__(self, connector: GetConnector, tables: dict[str, Table], carried: dict | None = None):
        self.connector = connector
        columns = connector.build({name: t.live() for name, t in tables.items()})
        self.kinds = {f.id: f.kind for f in connector.fields}
        self.names = [f.id for f in connector.fields]
        self.columns = {f: columns[f] for f in self.names}
        self.n = len(self.columns[self.names[0]])
        self.cache = ColumnCache(self.columns, self.kinds, carried=carried)
        self._indexes: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def index(self, flt: Filter, sort: tuple[tuple[str, bool], ...]) -> np.ndarray:
        key = (flt, sort)
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
            rows = order(self.cache, evaluate(self.cache, flt, self.n), sort)
            self._indexes[key] = rows
            if len(self._indexes) > INDEX_CACHE_SIZE:
                self._indexes.popitem(last=False)
            return rows

    def rows_json(self, rows: np.ndarray) -> bytes:
        """The JSON array of the given rows. One ``orjson.dumps`` over the page measured faster than
        caching per-row bytes (no per-row allocations, flat memory) - about 20 ms per 5000 rows."""
        names = self.names
        lists = [_display(self.kinds[name], self.columns[name][rows]) for name in names]
        return orjson.dumps([dict(zip(names, values)) for values in zip(*lists)])


def _display(kind: str, values: np.ndarray) -> list:
    """AFAS display values: date-times as Amsterdam wall clock rounded to the second with a fake ``Z``,
    dates as ``T00:00:00Z``, decimals as JSON numbers (``2500.5``)."""
    if kind in ("string", "boolean"):
        return values.tolist()
    null = values == NULL
    if kind in ("int", "decimal"):
        out = (values / 100 if kind == "decimal" else values).astype(object)
        out[null] = None
        return out.tolist()
    seconds = np.where(null, 0, (values + 500) // 1000) if kind == "datetime" else np.where(null, 0, values // 1000)
    text = np.char.add(np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s"), "Z").astype(object)
    text[null] = None
    return text.tolist()


class Store:
    """Tables plus versioned views. Writers hold ``lock``; readers take a view under it and then work on
    that immutable snapshot without it."""

    def __init__(self, contacts: int = 3000, seed: int = 7):
        self.lock = threading.RLock()
        self.version = 0
        self.tables: dict[str, Table] = {}
        self._views: dict[str, View] = {}
        self._carried: dict[str, dict] = {}  # per connector: what its last view derived (ColumnCache.carried)
        self.generate(contacts, seed)

    # --- whole dataset -------------------------------------------------------------------------------
    def generate(self, contacts: int, seed: int) -> None:
        data = dataset.generate(contacts, seed)
        self._replace({name: Table(name, cols) for name, cols in data.items()}, seed)

    def _replace(self, tables: dict[str, Table], seed) -> None:
        with self.lock:
            self.tables = tables
            self.seed = seed
            self._views.clear()
            self._carried.clear()
            numeric = [int(k) for t in ("organisations", "persons") for k in tables[t].pos if str(k).isdigit()]
            self.next_code = max(numeric, default=99999) + 1
            self.next_bcid = max([int(tables[t].cols["BcId"].max(initial=0)) for t in ("organisations", "persons")]
                                 + [self.next_code - 1]) + 1
            self.next_ids = {t: _max_number(tables[t]) + 1 for t in (
                "contacts", "subjects", "attachments", "subject_types", "debtors", "delivery_addresses")}
            self.bump()

    def export(self) -> dict:
        with self.lock:
            return {"format": "afas-sandbox/1", "seed": self.seed,
                    "tables": {name: t.records() for name, t in self.tables.items()}}

    def load(self, doc: dict) -> None:
        """Replace the data with an exported document. A document from before the sandbox had dossier item
        types (no ``subject_types``) gets the standard ones, so its dossier items keep a valid type; one from
        before it had debtors gets them generated from its organisations' and persons' ``IsDebtor``."""
        tables = {name: Table.from_records(name, doc["tables"].get(name, [])) for name in TABLES}
        if "subject_types" not in doc["tables"]:
            tables["subject_types"] = Table("subject_types", dataset.subject_types())
        if "debtors" not in doc["tables"]:
            seed = doc.get("seed") if isinstance(doc.get("seed"), int) else 0
            made = dataset.debtors(tables["organisations"].live(), tables["persons"].live(), seed)
            tables.update({name: Table(name, cols) for name, cols in made.items()})
        self._replace(tables, doc.get("seed"))

    # --- versions and views --------------------------------------------------------------------------
    def bump(self) -> None:
        with self.lock:
            self.version += 1
            self._carried.update({name: view.cache.carried() for name, view in self._views.items()})
            self._views.clear()

    def view(self, connector_id: str) -> View:
        with self.lock:
            view = self._views.get(connector_id)
            if view is None:
                view = self._views[connector_id] = View(GET_CONNECTORS[connector_id], self.tables,
                                                        self._carried.pop(connector_id, None))
            return view

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {name: len(t) for name, t in self.tables.items() if name != "attachments"}

    # --- keys ----------------------------------------------------------------------------------------
    def code_in_use(self, code: str) -> bool:
        return self.tables["organisations"].find(code) is not None or self.tables["persons"].find(code) is not None

    def new_code(self) -> str:
        while self.code_in_use(str(self.next_code)):
            self.next_code += 1
        self.next_code += 1
        return str(self.next_code - 1)

    def new_bcid(self) -> int:
        self.next_bcid += 1
        return self.next_bcid - 1

    def new_id(self, table: str) -> int:
        self.next_ids[table] += 1
        return self.next_ids[table] - 1
