"""AFAS organisations and persons as Xelion addressables (X1): pure functions from the AFAS reads to the
documents the address book sync sends, and to the phone index (X2). No HTTP and no Dagster here.

- An organisation is an `Organisation`: name, KvK number, its phone, its e-mail, its visiting address.
- A person is a `Person`: given name, prefix, family name, initials; its own phone and mobile; one employment
  per contact "person at organisation" (PRS) with the contact's function as job title and the contact's own
  phone and mobile; its e-mail.
- Every phone number is read with libphonenumber (`afas_pipeline.lib.phones`) in the configured region and
  sent in E.164; one that gives no valid number is left out of its record and counted by reason. A number
  twice on one record is sent once.
- An employment names its organisation by AFAS key (`{"afas": "organisation:<id>"}`); the sync puts the
  organisation's Xelion oid in its place (`resolve_employments`).
- `comment` carries the AFAS key ("AFAS organisatie 100812"): the sync finds an addressable it made by it
  when a create's answer was lost (a run killed mid-call), instead of making a second one.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from afas_pipeline.lib.phones import parse
from afas_pipeline.lib.privacy import number_key
from afas_pipeline.xelion.config import (
    CONTACT_FIELDS,
    ORGANISATION_FIELDS,
    PERSON_FIELDS,
)

ORGANISATION, PERSON = "organisation", "person"
#: The words a `comment` marker is made of, per kind (Dutch, as the address book's users read it).
MARKER_WORDS = {ORGANISATION: "AFAS organisatie", PERSON: "AFAS persoon"}


@dataclass
class Entry:
    """One addressable as AFAS has it."""

    external_id: str  # organisation:<OrganisationId> or person:<PersonId>
    kind: str
    afas_id: str
    bcid: str | None
    document: dict
    numbers: list[str] = field(default_factory=list)  # E.164, for the phone index only; never stored
    left_out: Counter = field(default_factory=Counter)  # numbers of the record left out, by reason

    @property
    def number_keys(self) -> list[str]:
        return [number_key(n) for n in self.numbers]


class AddressBook:
    """The addressables of the AFAS rows, made a part at a time as the sync asks for them (`parts`, `chunks`): at
    1,000,000 contacts every Entry at once held 2.8 GB. The rows are kept as read (typed columns); an Entry is made
    from its row, its document sent, and dropped. A record whose input is as when it was last sent is not made at
    all (`Part.fingerprints`): making all 1,133,557 again only to find their hashes unchanged took 267 s of a 300 s
    rerun.

    As a kind's entries are made the book keeps what the phone index needs (`phone_numbers`) and the numbers left
    out, by reason (`left_out`): each number is parsed once. Rows repeated in a read (a delta over several windows)
    count once; the entries of a kind come in the order of their AFAS key as text."""

    def __init__(self, organisations: pd.DataFrame | None, persons: pd.DataFrame | None,
                 contacts: pd.DataFrame | None, region: str = "NL"):
        self.region = region
        self._rows = {ORGANISATION: _once(organisations, "OrganisationId", ORGANISATION_FIELDS),
                      PERSON: _once(persons, "PersonId", PERSON_FIELDS)}
        self._employments = _employments(contacts)
        #: Per contact of `_employments`, in its order, the person's key as text: the persons of a chunk find theirs.
        self._person_of_contact = np.asarray(
            self._employments.frame["_pid"].to_numpy()[self._employments.order], dtype=str)
        self._numbers: dict[str, list[pa.Table]] = {}
        self._left_out: dict[str, Counter] = {}
        self._made: set[str] = set()  # the kinds made to their last entry since their numbers were reset

    def __len__(self) -> int:
        return self.count(ORGANISATION) + self.count(PERSON)

    def count(self, kind: str) -> int:
        return len(self._rows[kind].order)

    def without(self, erasing: Callable[[str], bool]) -> tuple["AddressBook", int]:
        """The book without the persons to be (or already) erased (P2): `erasing` says so of a record key.
        Organisations stay. Also how many were left out."""
        rows = self._rows[PERSON]
        ids = rows.frame["_id"].to_numpy()[rows.order]
        kept = rows.order[np.array([not erasing(external_id(PERSON, i)) for i in ids], dtype=bool)]
        book = copy.copy(self)
        book._rows = {**self._rows, PERSON: _Sorted(rows.frame, kept)}
        book._numbers, book._left_out, book._made = {}, {}, set()
        return book, len(rows.order) - len(kept)

    def parts(self, kind: str, size: int = 5000) -> Iterator["Part"]:
        """The records of one kind, `size` at a time, as parts the sync makes entries of (`Part.entries`), all or
        all but the records it finds unchanged by their input (`Part.fingerprints`)."""
        self._numbers[kind], self._left_out[kind] = [], Counter()
        self._made.discard(kind)
        rows = self._rows[kind]
        for start in range(0, len(rows.order), size):
            yield Part(self, kind, rows.part(start, start + size))
        self._made.add(kind)

    def chunks(self, kind: str, size: int = 5000) -> Iterator[list[Entry]]:
        """The entries of one kind, `size` at a time."""
        for part in self.parts(kind, size):
            yield part.entries()

    def keys(self) -> pa.Array:
        """The external ids of every record of the book (for `SyncState.replace_phone_numbers`' `every`)."""
        return pa.concat_arrays([
            pc.binary_join_element_wise(f"{kind}:", pa.array(rows.frame["_id"].to_numpy()[rows.order], pa.string()), "")
            for kind, rows in self._rows.items()])

    @property
    def left_out(self) -> Counter:
        """Numbers left out of the entries made so far, by reason (`not_a_number`, `invalid_number`)."""
        return sum(self._left_out.values(), Counter())

    def phone_numbers(self) -> pa.Table:
        """The rows for `SyncState.replace_phone_numbers` (`INDEX_COLUMNS`; a record without a number has one row
        without a number key) of the entries made, kept as they were made, as columns: at 1,000,000 contacts the
        same as Python tuples held 640 MB. A record the sync found unchanged by its input was not made: its rows are
        the saved ones. A kind not made to its end (a sync that stopped early) is made now, whole, for its numbers."""
        for kind in (ORGANISATION, PERSON):
            if kind not in self._made:
                for _ in self.chunks(kind):
                    pass
        tables = [*self._numbers[ORGANISATION], *self._numbers[PERSON]]
        return pa.concat_tables(tables) if tables else _index_rows([])

    def _span(self, person_ids: pd.Series) -> tuple[int, int]:
        """Where the PRS contacts of these persons (ids sorted as text) are among the sorted contacts."""
        if not len(self._employments.order) or person_ids.empty:
            return 0, 0
        return (int(np.searchsorted(self._person_of_contact, person_ids.iloc[0], side="left")),
                int(np.searchsorted(self._person_of_contact, person_ids.iloc[-1], side="right")))

    def _employments_of(self, person_ids: pd.Series) -> dict[str, list[dict]]:
        """The PRS contacts of these persons, per person: one slice of the sorted contacts."""
        grouped: dict[str, list[dict]] = {}
        for contact in _records(self._employments.part(*self._span(person_ids))):
            grouped.setdefault(contact["_pid"], []).append(contact)
        return grouped


class Part:
    """Some records of one kind of a book, in key order: their keys, what each is made from as a hash, and their
    entries. Entries made are counted into the book's numbers (`AddressBook.phone_numbers`, `left_out`)."""

    def __init__(self, book: AddressBook, kind: str, rows: pd.DataFrame):
        self.book, self.kind, self.rows = book, kind, rows
        self.keys = [external_id(kind, i) for i in rows["_id"]]

    @functools.cached_property
    def _contacts(self) -> pd.DataFrame:
        """The PRS contacts of these persons (their employments)."""
        return self.book._employments.part(*self.book._span(self.rows["_id"]))

    def named_organisations(self) -> set[str]:
        """The AFAS keys of the organisations these persons' employments name."""
        if self.kind != PERSON:
            return set()
        return {external_id(ORGANISATION, v) for v in self._contacts["OrganisationId"].astype(object)}

    def fingerprints(self, oids: dict[str, str]) -> list[str]:
        """Per record, a hash of everything its document and numbers are made from: its row, its employments with the
        oid each organisation has in Xelion (`oids`), and `_seed` (the region, the salt of the number keys,
        libphonenumber's version, `DOCUMENT_VERSION`). Equal fingerprints make equal entries; made with pandas'
        vectorised hashing (at 1,000,000 contacts making every entry again to compare its hash took 267 s)."""
        own = _row_hashes(self.rows)
        if self.kind == PERSON:
            contacts = self._contacts
            named = [oids.get(external_id(ORGANISATION, v)) for v in contacts["OrganisationId"].astype(object)]
            hashes = _row_hashes(contacts.assign(_oid=named))
            by_person = _sums(contacts["_pid"].to_numpy(), hashes)
            employments = np.array([by_person.get(i, 0) for i in self.rows["_id"]], dtype=np.uint64)
        else:
            employments = np.zeros(len(own), dtype=np.uint64)
        seed = np.full(len(own), _seed(self.book.region), dtype=np.uint64)
        combined = pd.util.hash_pandas_object(pd.DataFrame({"row": own, "employments": employments, "seed": seed}),
                                              index=False).to_numpy()
        return [f"{v:016x}" for v in combined.tolist()]

    def entries(self, skip: set[str] | frozenset = frozenset()) -> list[Entry]:
        """The entries of the part's records but those in `skip` (external ids)."""
        rows = self.rows
        if skip:
            wanted = [key not in skip for key in self.keys]
            if not any(wanted):  # a rerun: every record unchanged
                return []
            rows = rows[wanted]
        region, book = self.book.region, self.book
        if self.kind == ORGANISATION:
            entries = [organisation_entry(r, region) for r in _records(rows)]
        else:
            employments = book._employments_of(rows["_id"])
            entries = [person_entry(r, employments.get(r["_id"], []), region) for r in _records(rows)]
        book._numbers[self.kind].append(_index_rows(entries))
        left_out = book._left_out[self.kind]
        for entry in entries:
            left_out.update(entry.left_out)
        return entries


#: What a document is made of changes with this number: records whose input is unchanged are then made again.
#: Raise it with any change to `organisation_entry`, `person_entry` or `resolve_employments`
#: (`test_x1_documents_made_from_a_fixed_input_are_pinned` says when).
DOCUMENT_VERSION = 1


@functools.lru_cache(maxsize=8)
def _seed(region: str) -> int:
    """What every record's entry is also made from: this code's version, the region, the salt of the number keys
    (as the key of a fixed number), and libphonenumber's version (its metadata decides which numbers are valid)."""
    text = f"{DOCUMENT_VERSION}|{region}|{number_key('+0')}|{phonenumbers.__version__}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of these columns (in their order), the same in every process. Each column is hashed as
    Arrow text: pandas hashes a Python object column's missing value as the text "None" (and NaN as "nan"), so a
    name typed "None" where there was none would keep its hash."""
    if frame.empty:
        return np.zeros(0, dtype=np.uint64)
    texts = frame.astype(pd.StringDtype("pyarrow"))
    return pd.util.hash_pandas_object(texts, index=False, categorize=False).to_numpy(dtype=np.uint64)


def _sums(groups: np.ndarray, hashes: np.ndarray) -> dict[str, int]:
    """Per group (`groups` sorted, equal ones together) the sum of its hashes, modulo 2**64: the order of a
    person's employments does not matter, each contact's hash holds its ContactId."""
    if not len(groups):
        return {}
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return dict(zip(groups[starts].tolist(), np.add.reduceat(hashes, starts).tolist()))


@dataclass(frozen=True)
class _Sorted:
    """The rows of a read the book takes, in the order it takes them: `order` holds their positions in `frame` (the
    read's columns the book uses, not copied: at 1,000,000 contacts a sorted copy held 180 MB more)."""

    frame: pd.DataFrame
    order: np.ndarray

    def part(self, start: int, stop: int) -> pd.DataFrame:
        return self.frame.take(self.order[start:stop])


def _text_order(frame: pd.DataFrame, positions: np.ndarray, columns: list[str]) -> np.ndarray:
    """`positions` sorted by these text columns of `frame` (Arrow compares text by code point, as Python does)."""
    table = pa.table({c: pa.array(frame[c].to_numpy()[positions], pa.string()) for c in columns})
    return positions[pc.sort_indices(table, sort_keys=[(c, "ascending") for c in columns]).to_numpy()]


#: A phone index row: a record's number key (a salted hash of one E.164 number) with what a call on it opens.
INDEX_COLUMNS = ("external_id", "number_key", "bcid", "afas_id", "kind")


def _index_rows(entries: list[Entry]) -> pa.Table:
    rows = [(e.external_id, key, e.bcid, e.afas_id, e.kind) for e in entries for key in (e.number_keys or [None])]
    columns = list(zip(*rows)) if rows else [()] * len(INDEX_COLUMNS)
    return pa.table({name: pa.array(values, pa.string()) for name, values in zip(INDEX_COLUMNS, columns)})


def external_id(kind: str, afas_id: object) -> str:
    return f"{kind}:{afas_id}"


def marker(kind: str, afas_id: object) -> str:
    return f"{MARKER_WORDS[kind]} {afas_id}"


def _text(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():  # a whole number in a column with gaps reads as float
        value = int(value)
    text = str(value).strip()
    return text or None


class _Numbers:
    """Collects one record's telecom addresses: E.164 phones (each once) and the e-mail."""

    def __init__(self, region: str):
        self.region, self.left_out = region, Counter()
        self.items: list[dict] = []
        self.numbers: list[str] = []

    def phone(self, value, address_type: str, label: str) -> None:
        text = _text(value)
        if text is None:
            return
        number, reason = parse(text, self.region)
        if number is None:
            self.left_out[reason] += 1
            return
        if number in self.numbers:
            return
        self.numbers.append(number)
        self.items.append({"addressType": address_type, "address": number, "label": label,
                           "orderNumber": len(self.items)})

    def email(self, value) -> None:
        text = _text(value)
        if text and " " not in text and "@" in text:
            self.items.append({"addressType": "Email", "address": text, "label": "Werk",
                               "orderNumber": len(self.items)})


def _house_number(number, addition) -> str | None:
    parts = [p for p in (_text(number), _text(addition)) if p]
    return " ".join(parts) or None


def organisation_entry(row: dict, region: str) -> Entry:
    afas_id = str(row["OrganisationId"])
    telecom = _Numbers(region)
    telecom.phone(row.get("Phone"), "Telephone", "Werk")
    telecom.email(row.get("MailWork"))
    address = {"street": _text(row.get("Street")), "streetNumber": _house_number(row.get("HouseNumber"),
                                                                                 row.get("HouseNumberAddition")),
               "zipCode": _text(row.get("PostalCode")), "city": _text(row.get("City")),
               "country": _text(row.get("Country")), "addressType": "Visit"}
    document = {"objectType": "Organisation", "name": _text(row.get("Name")) or afas_id,
                "kvkNumber": _text(row.get("ChamberOfCommerce")), "comment": marker(ORGANISATION, afas_id),
                "telecomAddresses": telecom.items,
                "addresses": [address] if any(v for k, v in address.items() if k != "addressType") else []}
    return Entry(external_id(ORGANISATION, afas_id), ORGANISATION, afas_id, _text(row.get("BcId")), document,
                 telecom.numbers, telecom.left_out)


def person_entry(row: dict, contacts: list[dict], region: str) -> Entry:
    afas_id = str(row["PersonId"])
    telecom = _Numbers(region)
    telecom.phone(row.get("Phone"), "Telephone", "Werk")
    telecom.phone(row.get("PhoneMobile"), "Mobile", "Mobiel")
    employments = []
    for contact in sorted(contacts, key=lambda c: str(c["ContactId"])):
        telecom.phone(contact.get("Phone"), "Telephone", "Werk")
        telecom.phone(contact.get("Mobile"), "Mobile", "Mobiel")
        employments.append({"organisation": {"afas": external_id(ORGANISATION, contact["OrganisationId"])},
                            "jobTitle": _text(contact.get("Function"))})
    telecom.email(row.get("MailWork"))
    family = _text(row.get("LastName"))
    given = _text(row.get("FirstName"))
    document = {"objectType": "Person", "givenName": given, "namePrefix": _text(row.get("Prefix")),
                "familyName": family or (None if given else afas_id), "initials": _text(row.get("Initials")),
                "comment": marker(PERSON, afas_id), "telecomAddresses": telecom.items, "employments": employments}
    return Entry(external_id(PERSON, afas_id), PERSON, afas_id, _text(row.get("BcId")), document, telecom.numbers,
                 telecom.left_out)


def _once(frame: pd.DataFrame | None, key: str, fields: tuple[str, ...]) -> _Sorted:
    """The rows with a `key`, the last read of each, sorted by the key as text (`_id`); only the `fields` the book
    reads (the others, such as the dates, are left out before any conversion to Python objects)."""
    if frame is None or key not in frame or frame.empty:
        return _Sorted(pd.DataFrame(columns=[*fields, "_id"]), np.empty(0, dtype=np.int64))
    frame = frame[[c for c in frame.columns if c in fields]].assign(_id=frame[key].astype(str))
    keep = frame[key].notna().to_numpy(dtype=bool) & ~frame["_id"].duplicated(keep="last").to_numpy(dtype=bool)
    return _Sorted(frame, _text_order(frame, np.flatnonzero(keep), ["_id"]))


def _employments(contacts: pd.DataFrame | None) -> _Sorted:
    """The contacts "person at organisation" (kind PRS), the last read of each, sorted by person, then contact (as
    text: `_pid`, `_cid`)."""
    if contacts is None or contacts.empty or any(c not in contacts for c in ("ContactId", "PersonId",
                                                                            "OrganisationId", "ContactKind")):
        return _Sorted(pd.DataFrame(columns=[*CONTACT_FIELDS, "_pid", "_cid"]), np.empty(0, dtype=np.int64))
    at_organisation = (contacts["ContactKind"].eq("PRS").fillna(False).astype(bool) & contacts["PersonId"].notna()
                       & contacts["OrganisationId"].notna()).to_numpy(dtype=bool)
    frame = contacts[[c for c in contacts.columns if c in CONTACT_FIELDS]].assign(
        _pid=contacts["PersonId"].astype(str), _cid=contacts["ContactId"].astype(str))
    positions = np.flatnonzero(at_organisation)
    last = ~frame[["_pid", "_cid"]].take(positions).duplicated(keep="last").to_numpy(dtype=bool)
    return _Sorted(frame, _text_order(frame, positions[last], ["_pid", "_cid"]))


def _records(frame: pd.DataFrame) -> list[dict]:
    """The rows as dicts of Python values, a gap as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def address_book(organisations: pd.DataFrame | None, persons: pd.DataFrame | None, contacts: pd.DataFrame | None,
                 region: str = "NL") -> AddressBook:
    """The addressables of these AFAS rows: every organisation, every person with the employments among
    `contacts` (kind PRS, at an organisation)."""
    return AddressBook(organisations, persons, contacts, region)


def resolve_employments(document: dict, oids: dict[str, str]) -> tuple[dict, int]:
    """The document with each employment's organisation as `{"oid": ...}` (from AFAS key -> oid); employments
    at an organisation Xelion does not have yet are left out (the next run adds them). Returns the document and
    how many were left out."""
    if "employments" not in document:
        return document, 0
    kept, missing = [], 0
    for employment in document["employments"]:
        oid = oids.get(employment["organisation"]["afas"])
        if oid is None:
            missing += 1
            continue
        kept.append({"organisation": {"oid": oid}, "jobTitle": employment["jobTitle"]})
    return {**document, "employments": kept}, missing


def content_hash(document: dict) -> str:
    """What was sent, as a hash: the same document always hashes the same (keys sorted)."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def common_name(document: dict) -> str:
    """The name Xelion shows (and searches by) for the document."""
    if document["objectType"] == "Organisation":
        return document.get("name") or ""
    return " ".join(p for p in (document.get("givenName"), document.get("namePrefix"), document.get("familyName")) if p)


def phone_index(entries: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The lookup table from index rows (external_id, number_key, bcid, afas_id, kind): one row per number key
    with the BcId it resolves to and how many records share it. A shared number resolves deterministically:
    an organisation before a person (a switchboard number on a contact is the organisation's), then the lowest
    BcId. Returns the table and counts (numbers, records, ambiguous numbers)."""
    columns = ["number_key", "bcid", "afas_id", "kind", "candidates"]
    if entries.empty:
        return pd.DataFrame(columns=columns).astype({"candidates": "int64"}), {"numbers": 0, "records": 0,
                                                                                "ambiguous_numbers": 0}
    # As codes and numpy arrays, not a sort of the text columns themselves: at 1,836,129 rows pandas' sort and
    # group-by of the text made some 800 MB of Python objects, these 550 MB.
    key_codes, keys = pd.factorize(entries["number_key"], sort=True)
    id_codes, ids = pd.factorize(entries["external_id"], sort=True)
    rank = (entries["kind"] != ORGANISATION).to_numpy(dtype=np.int8, na_value=1)
    bcid = pd.to_numeric(entries["bcid"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    no_bcid = np.isnan(bcid)
    # np.lexsort sorts by its last key first: number, organisation first, a BcId before none, the lowest, the key
    order = np.lexsort((id_codes, np.where(no_bcid, 0, bcid), no_bcid, rank, key_codes))
    by_number = key_codes[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = by_number[1:] != by_number[:-1]
    pairs = np.unique(key_codes.astype(np.int64) * len(ids) + id_codes)  # each record once per number
    candidates = np.bincount(pairs // len(ids), minlength=len(keys))
    chosen = order[first]
    table = entries.iloc[chosen][columns[:-1]].reset_index(drop=True)
    table["candidates"] = candidates[key_codes[chosen]].astype("int64")
    return table, {"numbers": len(table), "records": len(ids),
                   "ambiguous_numbers": int((table["candidates"] > 1).sum())}
