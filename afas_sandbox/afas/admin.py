"""The AFAS sandbox admin API (``{url}/afas/_admin``): JSON in, JSON out, no auth, but only for clients on
this machine (others get 403) unless the sandbox runs with ``--allow-remote-admin``.

Records use the canonical field names (for contacts, persons and organisations the same keys as the
``Sync_*`` GetConnector rows), instants as UTC ISO with milliseconds (``2026-10-25T00:05:00.250Z``) and
dates as ``YYYY-MM-DD``.

- ``GET  /state`` -> ``{"version", "seed", "counts": {"organisations", "persons", "contacts", "subjects"}}``
- ``GET  /records/{table}?key=K`` -> list of records of
  ``organisations|persons|contacts|subjects|attachments|subject_types|debtors|delivery_addresses`` (all live
  records without ``key``; ``[]`` when the key is unknown). ``subject_types`` are the dossier item types
  (``Profit_SubjectTypes`` row keys); ``debtors`` and ``delivery_addresses`` what ``Profit_Debtor(_App)`` and
  ``Profit_Deliveryaddress`` show (amounts such as ``CreditLimit`` as JSON numbers).
- ``POST /edit`` ``{"table", "key", "fields": {...}, "at": "<UTC instant>"}`` -> the edited record. Edits as a
  user in AFAS would: the entity's ``ModifiedDate`` becomes ``at`` (default: now).
- ``POST /insert`` ``{"table", "fields": {...}, "at"}`` -> the created record (key chosen by the sandbox unless
  given). Inserting a person creates no contact; insert the contact explicitly.
- ``POST /delete`` ``{"table", "key"}`` -> ``{"deleted": key}``. An organisation or person that still has
  contacts or a debtor is refused with 409 (delete those first); a subject takes its attachments along; a
  dossier item type that dossier items still use is refused with 409, as AFAS refuses it.

A debtor belongs to one organisation or one person (``OrganisationId`` or ``PersonId``, set on insert, not
changed later; a relation has at most one debtor) and keeps that relation's ``IsDebtor`` on while it exists.
Its ``DeliveryAddressId`` (the default delivery address) must be one of its own ``delivery_addresses``;
deleting a debtor deletes its delivery addresses, deleting its default address clears the default (an edit
of the debtor). A delivery address stays with the debtor it was inserted for.
- ``GET  /dataset`` -> the whole dataset; ``POST /dataset`` with that document replaces the dataset;
  ``POST /dataset/generate`` ``{"contacts", "seed"}`` replaces it with generated data. Each returns the state.
- ``POST /reset`` -> regenerates the start-up dataset and resets faults and stats (for test isolation).
- ``GET|PUT /faults``, ``GET /stats``, ``POST /stats/reset``: see ``afas_sandbox.faults``.

Invalid requests get 400 (404 for an unknown table or key) with ``{"error": "<what is wrong>"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from afas_sandbox.afas.model import (
    BOOL,
    DATE,
    DEC,
    INT,
    KEYS,
    STR,
    TABLES,
    TS,
    amount_to_cents,
    iso_to_days,
    now_ms,
    parse_utc_instant,
)
from afas_sandbox.afas.store import Store
from afas_sandbox.afas.updates import Tx, transaction
from afas_sandbox.admin_common import AdminError, json_object, load_document
from afas_sandbox.faults import fault_admin_routes, json_response

if TYPE_CHECKING:
    from afas_sandbox.afas.app import AfasEmulator

EDITABLE_TABLES = ("organisations", "persons", "contacts", "subjects", "subject_types", "debtors",
                   "delivery_addresses")
READ_ONLY = {"BcId", "ModifiedDate", "CreateDate", "Attachments"}
REFERENCES = {"contacts": {"PersonId": "persons", "OrganisationId": "organisations"},
              "subjects": {"PersonId": "persons", "OrganisationId": "organisations", "ContactId": "contacts",
                           "SubjectTypeId": "subject_types"},
              "debtors": {"PersonId": "persons", "OrganisationId": "organisations",
                          "DeliveryAddressId": "delivery_addresses"},
              "delivery_addresses": {"DebtorId": "debtors"}}
SET_ON_INSERT = {"debtors": ("OrganisationId", "PersonId"), "delivery_addresses": ("DebtorId",)}


def _table(name) -> str:
    if name not in EDITABLE_TABLES:
        raise AdminError(f"table must be one of {', '.join(EDITABLE_TABLES)}", 404)
    return name


def _value(table: str, field: str, raw):
    kind = TABLES[table].get(field)
    if kind is None or field in READ_ONLY:
        editable = sorted(f for f in TABLES[table] if f not in READ_ONLY)
        raise AdminError(f"{table} has no editable field {field!r}; editable: {', '.join(editable)}")
    if raw is None:
        return None
    try:
        if kind == STR:
            if not isinstance(raw, str):
                raise TypeError
            return raw
        if kind == BOOL:
            if not isinstance(raw, bool):
                raise TypeError
            return raw
        if kind == INT:
            if isinstance(raw, bool):
                raise TypeError
            return int(raw)
        if kind == DEC:
            return amount_to_cents(raw)
        if kind == DATE:
            return iso_to_days(raw)
        if kind == TS:
            return parse_utc_instant(raw)
    except (TypeError, ValueError, AttributeError):
        pass
    raise AdminError(f"invalid value for {table}.{field}: {raw!r}")


def _values(store: Store, table: str, fields, *, new: bool = False) -> dict:
    if not isinstance(fields, dict):
        raise AdminError("fields must be an object")
    if KEYS[table] in fields and (table not in ("organisations", "persons") or not new):
        raise AdminError(f"{KEYS[table]} is chosen by the sandbox and cannot be set or changed")
    values = {field: _value(table, field, raw) for field, raw in fields.items()}
    if values.get("ContactKind", "PRS") not in ("PRS", "PER", "AFD"):
        raise AdminError("ContactKind must be PRS, PER or AFD")
    for field, target in REFERENCES.get(table, {}).items():
        if values.get(field) is not None and store.tables[target].find(values[field]) is None:
            raise AdminError(f"{field} {values[field]!r} does not exist in {target}")
    fixed = [f for f in SET_ON_INSERT.get(table, ()) if f in values]
    if fixed and not new:
        raise AdminError(f"{', '.join(fixed)} of {table} is set on insert and cannot be changed")
    return values


def _relation(store: Store, values: dict) -> tuple[str, int]:
    """The organisation or person a new debtor is for: (table, row position)."""
    given = [(table, values[key]) for table, key in (("organisations", "OrganisationId"), ("persons", "PersonId"))
             if values.get(key) is not None]
    if len(given) != 1:
        raise AdminError("a debtor is for exactly one organisation (OrganisationId) or person (PersonId)")
    table, code = given[0]
    if len(store.tables["debtors"].where(**{KEYS[table]: code})):
        raise AdminError(f"{KEYS[table]} {code!r} already has a debtor", 409)
    return table, store.tables[table].find(code)


def _own_delivery_address(store: Store, debtor: str, values: dict) -> None:
    address = values.get("DeliveryAddressId")
    if address is None:
        return
    pos = store.tables["delivery_addresses"].find(address)
    if store.tables["delivery_addresses"].cols["DebtorId"][pos] != debtor:
        raise AdminError(f"delivery address {address} belongs to another debtor")


def _at(body: dict) -> int:
    try:
        return parse_utc_instant(body["at"]) if body.get("at") else now_ms()
    except (TypeError, ValueError, AttributeError):
        raise AdminError(f"invalid 'at': {body.get('at')!r}") from None


def _position(store: Store, table: str, key) -> int:
    """The row of `table` with `key`, or a 404 naming both."""
    pos = store.tables[table].find(key)
    if pos is None:
        raise AdminError(f"no {table} record with key {key!r}", 404)
    return pos


def edit(store: Store, body: dict) -> dict:
    table = _table(body.get("table"))

    def work(tx: Tx) -> dict:
        t = store.tables[table]
        pos = _position(store, table, body.get("key"))
        values = _values(store, table, body.get("fields"))
        if table == "debtors":
            _own_delivery_address(store, t.cols["DebtorId"][pos], values)
        tx.write(table, pos, values)
        return t.records([pos])[0]

    return transaction(store, _at(body), work)


def insert(store: Store, body: dict) -> dict:
    table = _table(body.get("table"))

    def work(tx: Tx) -> dict:
        values = _values(store, table, body.get("fields"), new=True)
        key = KEYS[table]
        if table in ("organisations", "persons"):
            code = values.get(key)
            if code is not None and store.code_in_use(code):
                raise AdminError(f"{key} {code!r} is already in use")
            values[key] = code or store.new_code()
            values["BcId"] = store.new_bcid()
        elif table == "debtors":
            if values.get("DeliveryAddressId") is not None:
                raise AdminError("a new debtor has no delivery addresses yet; set DeliveryAddressId by an edit")
            relation, relation_pos = _relation(store, values)
            values[key] = str(store.new_id(table))
            tx.write(relation, relation_pos, {"IsDebtor": True}, touch=False)
        else:
            values[key] = store.new_id(table)
        if table == "delivery_addresses" and values.get("DebtorId") is None:
            raise AdminError("a delivery address needs the DebtorId it belongs to")
        if table == "contacts":
            values.setdefault("ContactKind", "PER" if not values.get("OrganisationId")
                              else "PRS" if values.get("PersonId") else "AFD")
        if table == "subjects":
            values.setdefault("Date", tx.at)
            values["Attachments"] = 0
        if table == "subject_types":
            if not values.get("Description"):
                raise AdminError("a dossier item type needs a Description")
            values.setdefault("LastNumber", 0)
        return store.tables[table].records([tx.insert(table, values)])[0]

    return transaction(store, _at(body), work)


def delete(store: Store, body: dict) -> dict:
    table = _table(body.get("table"))

    def work(tx: Tx) -> dict:
        t = store.tables[table]
        pos = _position(store, table, body.get("key"))
        key = t.cols[KEYS[table]][pos]
        if table in ("organisations", "persons"):
            used = store.tables["contacts"].where(**{KEYS[table]: key})
            if len(used):
                raise AdminError(f"{table} {key!r} still has {len(used)} contact(s); delete them first", 409)
            if len(store.tables["debtors"].where(**{KEYS[table]: key})):
                raise AdminError(f"{table} {key!r} is a debtor; delete the debtor first", 409)
        if table == "debtors":
            _delete_debtor(store, tx, pos)
        if table == "delivery_addresses":
            debtors = store.tables["debtors"]
            for debtor_pos in debtors.where(DeliveryAddressId=int(key)):
                tx.write("debtors", int(debtor_pos), {"DeliveryAddressId": None})
        if table == "subjects":
            for file_pos in store.tables["attachments"].where(SubjectId=int(key)):
                tx.delete("attachments", int(file_pos))
        if table == "subject_types":
            used = store.tables["subjects"].where(SubjectTypeId=int(key))
            if len(used):
                raise AdminError(f"dossier item type {key} is used by {len(used)} dossier item(s)", 409)
        tx.delete(table, pos)
        return {"deleted": key.item() if hasattr(key, "item") else key}

    return transaction(store, now_ms(), work)


def _delete_debtor(store: Store, tx: Tx, pos: int) -> None:
    """A debtor takes its delivery addresses along and switches its relation's ``IsDebtor`` off."""
    debtors = store.tables["debtors"]
    for address_pos in store.tables["delivery_addresses"].where(DebtorId=debtors.cols["DebtorId"][pos]):
        tx.delete("delivery_addresses", int(address_pos))
    for table in ("organisations", "persons"):
        code = debtors.cols[KEYS[table]][pos]
        if code is not None and store.tables[table].find(code) is not None:
            tx.write(table, store.tables[table].find(code), {"IsDebtor": False}, touch=False)


def records(store: Store, table: str, key: str | None) -> list[dict]:
    if table not in TABLES:
        raise AdminError(f"unknown table {table!r}", 404)
    with store.lock:
        t = store.tables[table]
        if key is None:
            return t.records()
        pos = t.find(key)
        return [] if pos is None else t.records([pos])


def state(store: Store) -> dict:
    with store.lock:
        return {"version": store.version, "seed": store.seed, "counts": store.counts()}


def admin_routes(emulator: "AfasEmulator") -> list[Route]:
    store = emulator.store

    def endpoint(work, *, with_body: bool = True):
        async def handle(request: Request) -> Response:
            try:
                args = (await json_object(request),) if with_body else (request,)
                return json_response(200, await run_in_threadpool(work, *args))
            except AdminError as exc:
                return json_response(exc.status, {"error": exc.message})
        return handle

    def load_dataset(body: dict) -> dict:
        load_document(store.load, body, "tables", dict)
        return state(store)

    def generate(body: dict) -> dict:
        try:
            contacts, seed = int(body.get("contacts", 3000)), int(body.get("seed", 7))
            store.generate(contacts, seed)
        except (TypeError, ValueError) as exc:
            raise AdminError(str(exc)) from None
        return state(store)

    def reset(body: dict) -> dict:
        emulator.reset()
        return state(store)

    return [
        Route("/state", endpoint(lambda request: state(store), with_body=False), methods=["GET"]),
        Route("/records/{table}", endpoint(lambda request: records(
            store, request.path_params["table"], request.query_params.get("key")), with_body=False), methods=["GET"]),
        Route("/edit", endpoint(lambda body: edit(store, body)), methods=["POST"]),
        Route("/insert", endpoint(lambda body: insert(store, body)), methods=["POST"]),
        Route("/delete", endpoint(lambda body: delete(store, body)), methods=["POST"]),
        Route("/dataset", endpoint(lambda request: store.export(), with_body=False), methods=["GET"]),
        Route("/dataset", endpoint(load_dataset), methods=["POST"]),
        Route("/dataset/generate", endpoint(generate), methods=["POST"]),
        Route("/reset", endpoint(reset), methods=["POST"]),
        *fault_admin_routes(emulator.faults),
    ]

