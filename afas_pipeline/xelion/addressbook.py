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

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pandas as pd

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

    @property
    def number_keys(self) -> list[str]:
        return [number_key(n) for n in self.numbers]


@dataclass
class AddressBook:
    organisations: list[Entry]
    persons: list[Entry]
    #: Numbers left out, by reason (`not_a_number`, `invalid_number`).
    left_out: Counter

    @property
    def entries(self) -> list[Entry]:
        return [*self.organisations, *self.persons]

    def without(self, erasing: Callable[[str], bool]) -> tuple["AddressBook", int]:
        """The book without the persons to be (or already) erased (P2): `erasing` says so of a record key.
        Organisations stay. Also how many were left out."""
        kept = [e for e in self.persons if not erasing(e.external_id)]
        return AddressBook(self.organisations, kept, self.left_out), len(self.persons) - len(kept)


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

    def __init__(self, region: str, left_out: Counter):
        self.region, self.left_out = region, left_out
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


def organisation_entry(row: dict, region: str, left_out: Counter) -> Entry:
    afas_id = str(row["OrganisationId"])
    telecom = _Numbers(region, left_out)
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
                 telecom.numbers)


def person_entry(row: dict, contacts: list[dict], region: str, left_out: Counter) -> Entry:
    afas_id = str(row["PersonId"])
    telecom = _Numbers(region, left_out)
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
    return Entry(external_id(PERSON, afas_id), PERSON, afas_id, _text(row.get("BcId")), document, telecom.numbers)


def _records(frame: pd.DataFrame | None, fields: tuple[str, ...]) -> list[dict]:
    """The rows as dicts of the `fields` the book reads (the other columns, such as the dates, are left out before
    the conversion to Python objects: at 100,000 rows that conversion is most of the cost)."""
    if frame is None or not len(frame.columns) or frame.empty:
        return []
    frame = frame[[c for c in frame.columns if c in fields]]
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def address_book(organisations: pd.DataFrame, persons: pd.DataFrame, contacts: pd.DataFrame,
                 region: str = "NL") -> AddressBook:
    """The addressables of these AFAS rows: every organisation, every person with the employments among
    `contacts` (kind PRS, at an organisation). Rows repeated in a read (a delta over several windows) count once."""
    left_out: Counter = Counter()
    orgs = {str(r["OrganisationId"]): r for r in _records(organisations, ORGANISATION_FIELDS)
            if r.get("OrganisationId") is not None}
    people = {str(r["PersonId"]): r for r in _records(persons, PERSON_FIELDS) if r.get("PersonId") is not None}
    employments: dict[str, dict[str, dict]] = {}
    for c in _records(contacts, CONTACT_FIELDS):
        if c.get("ContactKind") == "PRS" and c.get("PersonId") is not None and c.get("OrganisationId") is not None:
            employments.setdefault(str(c["PersonId"]), {})[str(c["ContactId"])] = c
    return AddressBook(
        organisations=[organisation_entry(r, region, left_out) for _, r in sorted(orgs.items())],
        persons=[person_entry(r, list(employments.get(pid, {}).values()), region, left_out)
                 for pid, r in sorted(people.items())],
        left_out=left_out)


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
    frame = entries.assign(_rank=(entries["kind"] != ORGANISATION).astype(int),
                           _bcid=pd.to_numeric(entries["bcid"], errors="coerce"))
    frame = frame.sort_values(["number_key", "_rank", "_bcid", "external_id"], na_position="last")
    candidates = frame.groupby("number_key", sort=False)["external_id"].transform("nunique")
    first = frame.assign(candidates=candidates).drop_duplicates("number_key", keep="first")
    table = first[columns].reset_index(drop=True)
    return table, {"numbers": len(table), "records": int(entries["external_id"].nunique()),
                   "ambiguous_numbers": int((table["candidates"] > 1).sum())}
