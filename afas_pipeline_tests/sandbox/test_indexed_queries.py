"""GetConnector filters answered from indexes give the rows, in the order, a scan of every row gives."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afas_sandbox.afas.connectors import GET_CONNECTORS
from afas_sandbox.afas.model import NULL
from afas_sandbox.afas.query import ColumnCache, Condition, QueryError, evaluate, order
from afas_sandbox.afas.store import Store
from afas_sandbox.afas.updates import transaction

CONNECTORS = ("Sync_Contacts", "Sync_Persons", "Profit_Debtor")


@pytest.fixture(scope="module")
def store() -> Store:
    return Store(contacts=150, seed=11)


def _text(kind: str, value) -> str:
    """A stored value as a filter value, the way a client writes it."""
    if kind == "string":
        return "" if value is None else value
    if kind == "boolean":
        return "true" if value else "false"
    if value == NULL:
        return ""
    if kind == "decimal":
        return str(value / 100)
    if kind == "int":
        return str(value)
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).replace(tzinfo=None).isoformat()


@st.composite
def conditions(draw, view):
    numbers = [f for f in view.names if view.kinds[f] in ("int", "decimal", "datetime", "date")]
    field = draw(st.sampled_from(draw(st.sampled_from([view.names, numbers]))))  # half on indexed ranges
    kind = view.kinds[field]
    op = draw(st.sampled_from([1, 1, 2, 3, 4, 5, 6, 8, 9]))
    filled = np.flatnonzero(~view.cache.empty(field))  # mostly a value some rows have; sometimes empty
    rows = filled if len(filled) and draw(st.integers(0, 9)) else np.arange(view.n)
    value = _text(kind, view.columns[field][rows[draw(st.integers(0, len(rows) - 1))]])
    if kind == "string" and value and draw(st.booleans()):
        value = value.upper()  # text compares case-insensitively
    if kind in ("int", "decimal", "datetime", "date") and value and draw(st.booleans()):
        value = draw(st.sampled_from(["0", "-5", "99999999", "2025-06-01T00:00:00", "abc", "1.5"]))
    return Condition(field, op, value)


@st.composite
def windows(draw, view):
    """``low <= field < high`` (or another pair of range operators) on one number or date field, as a delta asks."""
    field = draw(st.sampled_from([f for f in view.names if view.kinds[f] in ("int", "decimal", "datetime", "date")]))
    low, high = (_text(view.kinds[field], view.columns[field][draw(st.integers(0, view.n - 1))]) for _ in "ab")
    return (Condition(field, draw(st.sampled_from([2, 4])), low), Condition(field, draw(st.sampled_from([3, 5])), high))


def _answer(cache: ColumnCache, n: int, flt, sort):
    """The rows in order, or the 500's message."""
    try:
        return order(cache, evaluate(cache, flt, n), sort).tolist()
    except QueryError as exc:
        return exc.message


def _both(view, flt, sort) -> tuple:
    """(the view's indexed answer, a scan of the same columns)."""
    return (_answer(view.cache, view.n, flt, sort),
            _answer(ColumnCache(view.columns, view.kinds, indexed=False), view.n, flt, sort))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_an_indexed_answer_is_the_scanning_answer(store, data):
    view = store.view(data.draw(st.sampled_from(CONNECTORS)))
    group = st.lists(conditions(view), min_size=1, max_size=3).map(tuple) | windows(view)
    groups = data.draw(st.lists(group, min_size=1, max_size=4).map(tuple))
    sort = tuple(data.draw(st.lists(st.tuples(st.sampled_from(view.names), st.booleans()), max_size=2)))
    indexed, scanned = _both(view, groups, sort)
    assert indexed == scanned
    if not isinstance(indexed, str):  # the selected rows sort as they do within every row
        everything = _answer(view.cache, view.n, (), sort)
        assert indexed == [p for p in everything if p in set(indexed)]


@pytest.mark.parametrize("connector", sorted(GET_CONNECTORS))
def test_every_indexed_operator_on_every_field_answers_as_the_scan(store, connector):
    """``=`` on every field, 2-5 on every number and date field, at the lowest, a middle and the highest value."""
    view = store.view(connector)
    for field in view.names:
        kind = view.kinds[field]
        filled = np.flatnonzero(~view.cache.empty(field))
        values = sorted({_text(kind, view.columns[field][p]) for p in filled[[0, len(filled) // 2, -1]]}
                        if len(filled) else {""})
        ops = (1, 2, 3, 4, 5) if kind in ("int", "decimal", "datetime", "date") else (1,)
        for value in values:
            for op in ops:
                flt = ((Condition(field, op, value),),)
                indexed, scanned = _both(view, flt, ())
                assert indexed == scanned, (connector, field, op, value)


def test_an_or_of_ids_is_served_by_the_index(store):
    view = store.view("Sync_Persons")
    ids = view.columns["PersonId"][:50].tolist()
    flt = tuple((Condition("PersonId", 1, i.lower()),) for i in ids)
    expected = sorted(range(50), key=lambda p: ids[p].lower())
    assert _both(view, flt, (("PersonId", True),)) == (expected, expected)
    assert view.index(flt, (("PersonId", True),)).tolist() == expected
    assert "PersonId" in view.cache._text_index


def test_indexes_follow_updates_inserts_and_deletes(store):
    """A write starts a new view whose indexes see the new data: every answer still equals the scan."""
    contacts, persons = store.tables["contacts"], store.tables["persons"]
    view = store.view("Sync_Contacts")
    person = view.columns["PersonId"][3]
    window = ((Condition("ContactModified", 2, "2026-12-01T00:00:00"), Condition("ContactModified", 5, "2027-01-01T00:00:00")),)
    by_person = ((Condition("PersonId", 1, person),), (Condition("PersonId", 1, "NEW-1"),))
    before = {name: _both(store.view("Sync_Contacts"), flt, (("ContactId", True),))[0] for name, flt in
              (("window", window), ("person", by_person))}
    assert before["person"] and not before["window"]
    at = round(dt.datetime(2026, 12, 2, 12).timestamp() * 1000)

    def work(tx):
        first = int(np.flatnonzero(contacts.alive)[0])
        tx.write("contacts", first, {"Function": "x"})  # touch: modified in the window
        tx.delete("contacts", int(contacts.where(PersonId=person)[0]))
        tx.insert("persons", {"PersonId": "NEW-1", "BcId": 999_999})
        tx.write("contacts", int(np.flatnonzero(contacts.alive)[1]), {"PersonId": "NEW-1"})
    transaction(store, at, work)
    assert persons.find("NEW-1") is not None
    after = store.view("Sync_Contacts")
    assert after is not view
    for flt in (window, by_person):
        indexed, scanned = _both(after, flt, (("ContactId", True),))
        assert indexed == scanned
    assert len(_both(after, window, ())[0]) == 2
    assert _both(after, by_person, ())[0] != before["person"]


def test_a_write_keeps_the_indexes_of_the_fields_it_leaves_unchanged(store):
    view = store.view("Sync_Contacts")
    by_person = ((Condition("PersonId", 1, view.columns["PersonId"][5]),),)
    window = ((Condition("ContactModified", 2, "2026-12-01T00:00:00"),),)
    _both(view, by_person + window, ())
    person_index, modified_index = view.cache.text_index("PersonId"), view.cache.number_index("ContactModified")
    at = round(dt.datetime(2026, 12, 5, 12).timestamp() * 1000)
    transaction(store, at, lambda tx: tx.write("contacts", int(np.flatnonzero(store.tables["contacts"].alive)[7]),
                                              {"Function": "y"}))  # and its modified date
    after = store.view("Sync_Contacts")
    indexed, scanned = _both(after, by_person + window, ())
    assert indexed == scanned and len(indexed) >= 2
    assert after.cache.text_index("PersonId") is person_index
    assert after.cache.number_index("ContactModified") is not modified_index


def test_an_index_sees_a_write_into_a_column_the_view_shares_with_its_table(store):
    """A view's column can be its table's own storage, so the previous version's values are a copy."""
    view = store.view("Sync_Persons")
    position = int(np.flatnonzero(store.tables["persons"].alive)[2])
    person = store.tables["persons"].get(position, "PersonId")
    renamed = ((Condition("FirstName", 1, "Zebedeüs"),),)
    assert _both(view, renamed, ()) == ([], [])
    transaction(store, round(dt.datetime(2026, 12, 6).timestamp() * 1000),
                lambda tx: tx.write("persons", position, {"FirstName": "Zebedeüs"}))
    after = store.view("Sync_Persons")
    indexed, scanned = _both(after, renamed, ())
    assert indexed == scanned and [after.columns["PersonId"][p] for p in indexed] == [person]
