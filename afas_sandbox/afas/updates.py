"""UpdateConnectors: KnOrganisation, KnPerson, KnContact and KnSubject.

Each request is one transaction (AFAS validates the whole body at once): changes are applied under the
store lock with an undo log and rolled back on the first validation error, which becomes a 500 error
body. Every entity that receives a data field gets its ``ModifiedDate`` set to the request time
(millisecond precision); fields used only to identify or match an entity do not count as a change.

Choices where the reference is silent:

- ``MatchOga``/``MatchPer`` default to 0 (match on ``BcCo``) when ``BcCo`` is sent, else to 6/7 (always
  insert). A match overrides the verb: a POST that matches updates. A PUT that matches nothing is an
  error ("does not exist"), since a PUT never inserts. More than one match is an error.
- Inserting a person on its own (POST KnPerson) makes it a loose person: AFAS creates its ``PER`` contact.
- A KnContact nested in KnOrganisation updates the existing contact of that person at that organisation
  when there is one; the sub-object insert (POST ``/connectors/KnOrganisation/KnContact``) refuses such a
  duplicate instead.
- Standalone KnContact (PUT) is found by ``CdId`` when sent, else by ``BcCoOga`` + ``BcCoPer``; without
  ``BcCoOga`` it is the person's loose-person (``PER``) contact.
- ``""`` clears a field; strings longer than the field's length, unknown fields and unknown sub-objects
  are refused.
- KnSubject's ``StId`` must be a dossier item type AFAS has (the ``subject_types`` table, listed by
  GetConnector ``Profit_SubjectTypes``), on POST and on PUT; an unknown one is refused like every other
  value that does not exist (500, "The entered value for 'Type dossieritem' does not exist: '99'.").
- POST results list the key of every object that was inserted, as strings, e.g.
  ``{"KnOrganisation":{"BcCo":"100812","BcId":"100812"},"KnContact":{"CdId":"10523"}}``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from afas_sandbox.afas.model import FREE_FIELDS, iso_to_days, local_to_utc_ms, parse_local
from afas_sandbox.afas.store import Store

UPDATE_ERROR_NUMBER = -2147220469


class UpdateError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class UField:
    field_id: str
    kind: str  # string | int | boolean | date | datetime
    label: str
    length: int = 0
    column: str | None = None  # canonical column written; None: accepted, not kept
    mandatory: bool = False
    values: tuple[tuple[str, str], ...] | None = None

    def metainfo(self) -> dict:
        return {"fieldId": self.field_id, "primaryKey": self.field_id in ("BcCo", "CdId", "SbId"),
                "dataType": "date" if self.kind == "datetime" else self.kind, "label": self.label,
                "mandatory": self.mandatory, "length": self.length, "decimals": 0, "decimalFieldId": "",
                "notzero": False, "controlType": {"string": 1, "int": 3, "boolean": 5}.get(self.kind, 4),
                "values": [{"id": i, "description": d} for i, d in self.values] if self.values else None}


def _u(field_id, kind="string", label="", length=0, column=None, mandatory=False, values=None) -> UField:
    return UField(field_id, kind, label or field_id, length, column, mandatory, values)


GENDERS = (("M", "Man"), ("V", "Vrouw"), ("O", "Onbekend"), ("X", "Non-binair"))
CONTACT_KINDS = (("PRS", "Persoon bij organisatie"), ("AFD", "Afdeling bij organisatie"), ("PER", "Persoon"),
                 ("AFL", "Afleveradres"), ("ORG", "Organisatie"))
_ADDRESS = (
    _u("CoId", label="Land", length=3, column="Country"), _u("PbAd", "boolean", "Postbusadres"),
    _u("Ad", label="Straat", length=60, column="Street"), _u("HmNr", "int", "Huisnummer", 9, "HouseNumber"),
    _u("HmAd", label="Toevoeging", length=30, column="HouseNumberAddition"),
    _u("ZpCd", label="Postcode", length=15, column="PostalCode"), _u("Rs", label="Woonplaats", length=50, column="City"),
    _u("AdAd", label="Adres toevoeging", length=100), _u("BeginDate", "date", "Begindatum"),
    _u("ResZip", "boolean", "Postcode-check"),
)
OBJECTS: dict[str, tuple[UField, ...]] = {
    "KnOrganisation": (
        _u("MatchOga", "int", "Organisatie vergelijken op", values=tuple((str(i), d) for i, d in enumerate(
            ["Nummer", "KvK-nummer", "Fiscaal nummer", "Naam", "Adres", "Postadres", "Altijd nieuw"]))),
        _u("BcCo", label="Nummer", length=15, column="OrganisationId"), _u("AutoNum", "boolean", "Autonummering"),
        _u("Nm", label="Naam", length=255, column="Name"), _u("SeNm", label="Zoeknaam", length=10),
        _u("CcNr", label="KvK-nummer", length=30, column="ChamberOfCommerce"),
        _u("FiNr", label="Fiscaal nummer", length=30, column="FiscalNumber"),
        _u("TeNr", label="Telefoonnr. werk", length=30, column="Phone"), _u("MbNr", label="Mobiel werk", length=30),
        _u("EmAd", label="E-mail werk", length=255, column="MailWork"), _u("HoPa", label="Homepage", length=255),
        _u("Corr", "boolean", "Correspondentie"), _u("ViMd", label="Voorkeursmedium", length=3),
        _u("PadAdr", "boolean", "Postadres is bezoekadres"), _u("Re", label="Opmerking", length=2000),
        _u("StId", "int", "Status"), _u("LgId", label="Taal", length=3), _u("BcPa", label="Moederorganisatie", length=15),
    ),
    "KnBasicAddressAdr": _ADDRESS,
    "KnBasicAddressPad": _ADDRESS,
    "KnContact": (
        _u("BcCoOga", label="Organisatie", length=15), _u("BcCoPer", label="Persoon", length=15),
        _u("CdId", "int", "Contact"), _u("ViKc", label="Soort contact", length=3, column="ContactKind", values=CONTACT_KINDS),
        _u("EmAd", label="E-mail werk", length=255, column="MailWork"),
        _u("TeNr", label="Telefoonnr. werk", length=30, column="Phone"),
        _u("MbNr", label="Mobiel werk", length=30, column="Mobile"), _u("FaNr", label="Fax werk", length=30),
        _u("HoPa", label="Homepage", length=255), _u("ExAd", label="Afdeling", length=60, column="Department"),
        _u("FuDs", label="Functie", length=80, column="Function"), _u("ViFu", label="Functie visitekaart", length=80),
        _u("Corr", "boolean", "Correspondentie"), _u("ViMd", label="Voorkeursmedium", length=3),
        _u("Re", label="Opmerking", length=2000), _u("Bl", "boolean", "Geblokkeerd", column="Blocked"),
        _u("AtLn", label="Attentieregel", length=100), _u("LeHe", label="Briefaanhef", length=100),
        _u("SocN", label="Sociale netwerken", length=255), _u("Face", label="Facebook", length=255),
        _u("Link", label="LinkedIn", length=255), _u("Twtr", label="Twitter", length=255),
        _u("AddToPortal", "boolean", "Toevoegen aan portal"), _u("EmailPortal", label="E-mail portal", length=255),
        *(_u(guid, kind, label, 10 if kind == "date" else (4 if kind == "string" else 0), column)
          for guid, (column, kind, label) in FREE_FIELDS.items()),
    ),
    "KnPerson": (
        _u("MatchPer", "int", "Persoon vergelijken op", values=tuple((str(i), d) for i, d in enumerate(
            ["Nummer", "BSN", "Naam, voorvoegsel, voorletters, geslacht", "+ e-mail werk", "+ mobiel werk",
             "+ telefoon werk", "+ geboortedatum", "Altijd nieuw"]))),
        _u("BcCo", label="Nummer", length=15, column="PersonId"), _u("AutoNum", "boolean", "Autonummering"),
        _u("SeNm", label="Zoeknaam", length=10), _u("CaNm", label="Roepnaam", length=50),
        _u("FiNm", label="Voornaam", length=50, column="FirstName"), _u("In", label="Voorletters", length=15, column="Initials"),
        _u("Is", label="Voorvoegsel", length=15, column="Prefix"), _u("LaNm", label="Achternaam", length=80, column="LastName"),
        _u("SpNm", "boolean", "Geboortenaam apart"), _u("NmBi", label="Geboortenaam", length=80),
        _u("ViGe", label="Geslacht", length=1, column="Gender", values=GENDERS),
        _u("DaBi", "date", "Geboortedatum", column="BirthDate"), _u("SoSe", label="BSN", length=9, column="Bsn"),
        _u("TeNr", label="Telefoonnr. werk", length=30, column="Phone"), _u("TeN2", label="Telefoonnr. privé", length=30),
        _u("MbNr", label="Mobiel werk", length=30, column="PhoneMobile"), _u("MbN2", label="Mobiel privé", length=30),
        _u("EmAd", label="E-mail werk", length=255, column="MailWork"),
        _u("EmA2", label="E-mail privé", length=255, column="MailPrivate"),
        _u("Corr", "boolean", "Correspondentie"), _u("ViMd", label="Voorkeursmedium", length=3),
        _u("Re", label="Opmerking", length=2000), _u("LgId", label="Taal", length=3),
        _u("PadAdr", "boolean", "Postadres is bezoekadres"),
    ),
    "KnSubject": (
        _u("StId", "int", "Type dossieritem", column="SubjectTypeId", mandatory=True),
        _u("Ds", label="Onderwerp", length=255, column="Description", mandatory=True),
        _u("SbTx", label="Toelichting", length=4000, column="Text"), _u("Da", "datetime", "Datum", column="Date"),
        _u("DtFr", "date", "Begindatum"), _u("DtTo", "date", "Einddatum"), _u("St", "boolean", "Afgehandeld"),
        _u("DtSt", "date", "Datum afgehandeld"), _u("UsId", label="Afzender", length=20),
        _u("EmId", label="Verantwoordelijke", length=15), _u("SaId", label="Kenmerk", length=20),
        _u("ViPr", label="Prioriteit", length=1), _u("FvF1", "int", "Kenmerk 1"), _u("FvF2", "int", "Kenmerk 2"),
        _u("FvF3", "int", "Kenmerk 3"), _u("SbBl", "boolean", "Geblokkeerd"), _u("SbHi", "int", "Oorzaak"),
        _u("MarkOpened", "boolean", "Markeren als geopend"),
    ),
    "KnSubjectLink": (
        _u("DoCRM", "boolean", "Opslaan in CRM"), _u("SfTp", "int", "Type bestemming"),
        _u("SfId", label="Bestemming", length=15), _u("ToBC", "boolean", "Naar organisatie/persoon"),
        _u("ToEm", "boolean", "Naar medewerker"), _u("ToSR", "boolean", "Naar verkooprelatie"),
        _u("ToPR", "boolean", "Naar inkooprelatie"), _u("ToAp", "boolean", "Naar sollicitant"),
        _u("BcId", label="Organisatie/persoon", length=15), _u("CdId", "int", "Contact"),
    ),
    "KnSubjectAttachment": (
        _u("FileName", label="Bestandsnaam", length=255, mandatory=True), _u("FileStream", label="Bestand"),
        _u("FileId", label="Bestand-id", length=64),
    ),
}
CHILDREN = {"KnOrganisation": ("KnBasicAddressAdr", "KnBasicAddressPad", "KnContact"), "KnContact": ("KnPerson",),
            "KnPerson": (), "KnSubject": ("KnSubjectLink", "KnSubjectAttachment"), "KnBasicAddressAdr": (),
            "KnBasicAddressPad": (), "KnSubjectLink": (), "KnSubjectAttachment": ()}
UPDATE_CONNECTORS = {"KnOrganisation": "Organisatie", "KnPerson": "Persoon", "KnContact": "Contact",
                     "KnSubject": "Dossieritem"}
_FIELDS = {obj: {f.field_id: f for f in fields} for obj, fields in OBJECTS.items()}


def metainfo_update(connector: str) -> dict:
    def describe(obj: str) -> dict:
        return {"name": obj, "fields": [f.metainfo() for f in OBJECTS[obj]],
                "objects": [describe(child) for child in CHILDREN[obj]]}

    root = describe(connector)
    return {"id": connector, "description": UPDATE_CONNECTORS[connector], "name": connector,
            "fields": root["fields"], "objects": root["objects"]}


# --- values ----------------------------------------------------------------------------------------

def convert(obj: str, spec: UField, raw):
    """An UpdateConnector value in storage form; raises UpdateError naming the field."""
    if raw is None or raw == "":
        return None

    def invalid() -> UpdateError:
        return UpdateError(f"The entered value '{raw}' for field '{spec.field_id}' ({obj}) is not valid.")

    if spec.kind == "string":
        if isinstance(raw, (dict, list, bool)):
            raise invalid()
        value = str(raw)
        if spec.length and len(value) > spec.length:
            raise UpdateError(f"The value for field '{spec.field_id}' ({obj}) is longer than {spec.length} characters.")
        if spec.values and value not in {v for v, _ in spec.values}:
            raise invalid()
        return value
    if spec.kind == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "-1"):
            return True
        if text in ("0", "false"):
            return False
        raise invalid()
    try:
        if spec.kind == "int":
            if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(raw)
        if not isinstance(raw, str):
            raise ValueError
        if spec.kind == "date":
            parse_local(raw)  # refuses a zone, like every date value AFAS accepts
            return iso_to_days(raw)
        return local_to_utc_ms(parse_local(raw))
    except (ValueError, TypeError):
        raise invalid() from None


def _as_list(node) -> list:
    if node is None:
        return []
    return node if isinstance(node, list) else [node]


def elements(obj: str, node) -> list[dict]:
    """The Element(s) of one object node: ``{"Element": {...}}`` or ``{"Element": [...]}``."""
    if not isinstance(node, dict) or "Element" not in node:
        raise UpdateError(f"Object '{obj}' has no Element.")
    items = _as_list(node["Element"])
    if not all(isinstance(e, dict) for e in items):
        raise UpdateError(f"Object '{obj}' has an invalid Element.")
    return items


def fields_of(obj: str, element: dict) -> dict:
    """Converted Fields by field id; unknown fields are refused."""
    raw = element.get("Fields") or {}
    if not isinstance(raw, dict):
        raise UpdateError(f"Fields of object '{obj}' must be an object.")
    out = {}
    for field_id, value in raw.items():
        if field_id.lower() == "@action":
            continue
        spec = _FIELDS[obj].get(field_id)
        if spec is None:
            raise UpdateError(f"Field '{field_id}' does not exist in object '{obj}'.")
        out[field_id] = convert(obj, spec, value)
    return out


def children_of(obj: str, element: dict) -> dict[str, object]:
    """Sub-objects by name; ``Objects`` may be a map or a list of one-key maps (AFAS uses both)."""
    out: dict[str, object] = {}
    for part in _as_list(element.get("Objects")):
        if not isinstance(part, dict):
            raise UpdateError(f"Objects of '{obj}' are invalid.")
        for name, node in part.items():
            if name not in CHILDREN[obj]:
                raise UpdateError(f"Object '{name}' is not a sub-object of '{obj}'.")
            out[name] = node
    return out


def columns(obj: str, fields: dict, *, skip: tuple[str, ...] = ()) -> dict:
    return {_FIELDS[obj][f].column: v for f, v in fields.items()
            if _FIELDS[obj][f].column and f not in skip}


def mandatory(obj: str, fields: dict) -> None:
    for spec in OBJECTS[obj]:
        if spec.mandatory and fields.get(spec.field_id) is None:
            raise UpdateError(f"Field '{spec.field_id}' ({obj}) is mandatory.")


# --- transactions ----------------------------------------------------------------------------------

class Tx:
    """Writes with an undo log; ``rollback`` restores the tables and the key counters."""

    def __init__(self, store: Store, at_ms: int):
        self.store, self.at = store, at_ms
        self.undo: list = []
        self.counters = (store.next_code, store.next_bcid, dict(store.next_ids))
        self.results: dict[str, dict[str, str]] = {}

    def write(self, table: str, pos: int, values: dict, *, touch: bool = True) -> None:
        t = self.store.tables[table]
        if touch and "ModifiedDate" in t.schema:
            values = {**values, "ModifiedDate": self.at}
        for col, value in values.items():
            old = t.get(pos, col)
            self.undo.append(lambda t=t, c=col, p=pos, o=old: t.set(p, c, o))
            t.set(pos, col, value)

    def insert(self, table: str, values: dict) -> int:
        t = self.store.tables[table]
        if "ModifiedDate" in t.schema:
            values = {"ModifiedDate": self.at, "CreateDate": self.at, **values}
        pos = t.append(values)
        self.undo.append(lambda: t.delete(pos))
        return pos

    def delete(self, table: str, pos: int) -> None:
        t = self.store.tables[table]
        t.delete(pos)
        self.undo.append(lambda: t.restore(pos))

    def rollback(self) -> None:
        for undo in reversed(self.undo):
            undo()
        self.store.next_code, self.store.next_bcid, self.store.next_ids = self.counters


def transaction(store: Store, at_ms: int, work):
    """Run ``work(tx)`` atomically; a failure leaves the data untouched."""
    with store.lock:
        tx = Tx(store, at_ms)
        try:
            result = work(tx)
        except BaseException:
            tx.rollback()
            raise
        if tx.undo:
            store.bump()
        return result


# --- organisations and persons ---------------------------------------------------------------------

def _one(positions: np.ndarray, what: str, match: int) -> int | None:
    if len(positions) > 1:
        raise UpdateError(f"More than one {what} matches (match code {match}).")
    return int(positions[0]) if len(positions) else None


def _new_code(tx: Tx, code: str | None) -> str:
    if code is None:
        return tx.store.new_code()
    if tx.store.code_in_use(code):
        raise UpdateError(f"The number '{code}' is already in use by another organisation or person.")
    return code


def save_organisation(tx: Tx, element: dict, *, verb: str, contact_insert_only: bool = False) -> str:
    f = fields_of("KnOrganisation", element)
    subs = children_of("KnOrganisation", element)
    address: dict = {}
    for name in ("KnBasicAddressAdr", "KnBasicAddressPad"):
        for el in elements(name, subs[name]) if name in subs else []:
            address.update(columns(name, fields_of(name, el)))
    orgs = tx.store.tables["organisations"]
    match = f.get("MatchOga", 0 if f.get("BcCo") else 6)
    if match == 0:
        pos = orgs.find(f.get("BcCo")) if f.get("BcCo") else None
    elif match in (1, 2, 3):
        column = {1: "ChamberOfCommerce", 2: "FiscalNumber", 3: "Name"}[match]
        value = columns("KnOrganisation", f).get(column)
        pos = _one(orgs.where(**{column: value}), "organisation", match) if value else None
    elif match in (4, 5):
        keys = {k: address.get(k) for k in ("Street", "HouseNumber", "PostalCode")}
        pos = _one(orgs.where(**keys), "organisation", match) if keys["Street"] else None
    elif match == 6:
        pos = None
    else:
        raise UpdateError(f"The entered value '{match}' for field 'MatchOga' (KnOrganisation) is not valid.")
    data = {**columns("KnOrganisation", f, skip=("BcCo",)), **address}
    if pos is None:
        if verb != "POST" or contact_insert_only:
            raise UpdateError(f"The entered value for 'Organisation' does not exist: '{f.get('BcCo')}'.")
        if not data.get("Name"):
            raise UpdateError("Field 'Nm' (KnOrganisation) is mandatory.")
        code, bcid = _new_code(tx, f.get("BcCo")), tx.store.new_bcid()
        pos = tx.insert("organisations", {"OrganisationId": code, "BcId": bcid, **data})
        tx.results["KnOrganisation"] = {"BcCo": code, "BcId": str(bcid)}
    elif data:
        tx.write("organisations", pos, data)
    code = orgs.cols["OrganisationId"][pos]
    for el in elements("KnContact", subs["KnContact"]) if "KnContact" in subs else []:
        save_nested_contact(tx, el, code, insert_only=contact_insert_only)
    return code


PERSON_MATCH = {2: ("LastName", "Prefix", "Initials", "Gender"), 3: ("MailWork",), 4: ("PhoneMobile",),
                5: ("Phone",), 6: ("BirthDate",)}


def save_person(tx: Tx, element: dict, *, verb: str, loose: bool) -> str:
    f = fields_of("KnPerson", element)
    children_of("KnPerson", element)
    persons = tx.store.tables["persons"]
    match = f.get("MatchPer", 0 if f.get("BcCo") else 7)
    data = columns("KnPerson", f, skip=("BcCo",))
    if match == 0:
        pos = persons.find(f.get("BcCo")) if f.get("BcCo") else None
    elif match == 1:
        pos = _one(persons.where(Bsn=data.get("Bsn")), "person", match) if data.get("Bsn") else None
    elif 2 <= match <= 6:
        keys = PERSON_MATCH[2] + (PERSON_MATCH[match] if match > 2 else ())
        pos = _one(persons.where(**{k: data.get(k) for k in keys}), "person", match)
    elif match == 7:
        pos = None
    else:
        raise UpdateError(f"The entered value '{match}' for field 'MatchPer' (KnPerson) is not valid.")
    if pos is None:
        if verb != "POST":
            raise UpdateError(f"The entered value for 'Person' does not exist: '{f.get('BcCo')}'.")
        if not data.get("LastName"):
            raise UpdateError("Field 'LaNm' (KnPerson) is mandatory.")
        code, bcid = _new_code(tx, f.get("BcCo")), tx.store.new_bcid()
        tx.insert("persons", {"PersonId": code, "BcId": bcid, "Gender": "O", **data})
        tx.results["KnPerson"] = {"BcCo": code, "BcId": str(bcid)}
        if loose:
            cdid = tx.store.new_id("contacts")
            tx.insert("contacts", {"ContactId": cdid, "PersonId": code, "ContactKind": "PER",
                                   "MailWork": data.get("MailWork")})
            tx.results["KnContact"] = {"CdId": str(cdid)}
        return code
    if data:
        tx.write("persons", pos, data)
    return persons.cols["PersonId"][pos]


# --- contacts --------------------------------------------------------------------------------------

def save_nested_contact(tx: Tx, element: dict, org_code: str, *, insert_only: bool) -> None:
    f = fields_of("KnContact", element)
    subs = children_of("KnContact", element)
    person_elements = elements("KnPerson", subs["KnPerson"]) if "KnPerson" in subs else []
    person = save_person(tx, person_elements[0], verb="POST", loose=False) if person_elements else None
    kind = f.get("ViKc") or ("PRS" if person else "AFD")
    if kind not in ("PRS", "AFD"):
        raise UpdateError(f"The entered value '{kind}' for field 'ViKc' (KnContact) is not valid here.")
    if kind == "PRS" and person is None:
        raise UpdateError("A contact of kind PRS needs a KnPerson.")
    contacts = tx.store.tables["contacts"]
    data = columns("KnContact", f, skip=("ViKc",))
    existing = contacts.where(OrganisationId=org_code, PersonId=person, ContactKind="PRS") if person else []
    if len(existing):
        if insert_only:
            raise UpdateError(f"Person '{person}' already is a contact of organisation '{org_code}'.")
        if data:
            tx.write("contacts", int(existing[0]), data)
        return
    cdid = tx.store.new_id("contacts")
    tx.insert("contacts", {"ContactId": cdid, "PersonId": person, "OrganisationId": org_code, "ContactKind": kind,
                           **data})
    tx.results["KnContact"] = {"CdId": str(cdid)}


def update_contact(tx: Tx, element: dict) -> None:
    f = fields_of("KnContact", element)
    children_of("KnContact", element)
    contacts = tx.store.tables["contacts"]
    if f.get("CdId") is not None:
        pos = contacts.find(f["CdId"])
    elif f.get("BcCoPer"):
        org = f.get("BcCoOga")
        found = contacts.where(OrganisationId=org, PersonId=f["BcCoPer"], ContactKind="PRS" if org else "PER")
        pos = int(found[0]) if len(found) else None
    else:
        raise UpdateError("Field 'BcCoPer' (KnContact) is mandatory.")
    if pos is None:
        raise UpdateError(f"The entered value for 'Contact' does not exist: "
                          f"'{f.get('CdId') or (f.get('BcCoOga'), f.get('BcCoPer'))}'.")
    data = columns("KnContact", f, skip=("ViKc",))
    if data:
        tx.write("contacts", pos, data)


# --- subjects --------------------------------------------------------------------------------------

def _link(tx: Tx, element: dict) -> dict:
    f = fields_of("KnSubjectLink", element)
    if any(f.get(flag) for flag in ("ToEm", "ToSR", "ToPR", "ToAp")) or f.get("SfTp") not in (None, 1, 3):
        raise UpdateError("The sandbox links dossier items to organisations, persons and contacts only "
                          "(SfTp 1 or 3, ToBC).")
    if f.get("CdId") is not None:
        contacts = tx.store.tables["contacts"]
        pos = contacts.find(f["CdId"])
        if pos is None:
            raise UpdateError(f"The entered value for 'Contact' does not exist: '{f['CdId']}'.")
        return {"ContactId": int(f["CdId"]), "OrganisationId": contacts.cols["OrganisationId"][pos],
                "PersonId": contacts.cols["PersonId"][pos]}
    target = f.get("SfId") if f.get("SfTp") == 3 else (f.get("BcId") if f.get("ToBC") else None)
    if target is None:
        return {}
    for table, column in (("organisations", "OrganisationId"), ("persons", "PersonId")):
        t = tx.store.tables[table]
        pos = t.find(target)
        if pos is None and str(target).isdigit():
            found = t.where(BcId=int(target))
            pos = int(found[0]) if len(found) else None
        if pos is not None:
            return {column: t.cols[column][pos]}
    raise UpdateError(f"The entered value for 'Organisation/person' does not exist: '{target}'.")


def _attach(tx: Tx, subject_id: int, node) -> int:
    added = 0
    for el in elements("KnSubjectAttachment", node):
        f = fields_of("KnSubjectAttachment", el)
        mandatory("KnSubjectAttachment", f)
        try:
            base64.b64decode(f.get("FileStream") or "", validate=True)
        except (binascii.Error, ValueError):
            raise UpdateError("Field 'FileStream' (KnSubjectAttachment) is not valid base64.") from None
        tx.insert("attachments", {"FileId": tx.store.new_id("attachments"), "SubjectId": subject_id,
                                  "FileName": f["FileName"], "FileData": f.get("FileStream") or ""})
        added += 1
    return added


def _known_subject_type(tx: Tx, type_id: int | None) -> None:
    if type_id is not None and tx.store.tables["subject_types"].find(type_id) is None:
        raise UpdateError(f"The entered value for 'Type dossieritem' does not exist: '{type_id}'.")


def save_subject(tx: Tx, element: dict, *, verb: str, attachments_only: bool = False) -> None:
    f = fields_of("KnSubject", element)
    subs = children_of("KnSubject", element)
    _known_subject_type(tx, f.get("StId"))
    subjects = tx.store.tables["subjects"]
    sbid = element.get("@SbId")
    data = columns("KnSubject", f)
    if "KnSubjectLink" in subs:
        data.update(_link(tx, elements("KnSubjectLink", subs["KnSubjectLink"])[0]))
    if sbid is None:
        if verb != "POST" or attachments_only:
            raise UpdateError("Field '@SbId' (KnSubject) is mandatory.")
        mandatory("KnSubject", f)
        sbid = tx.store.new_id("subjects")
        pos = tx.insert("subjects", {"SubjectId": sbid, "Date": tx.at, "Attachments": 0, **data})
        tx.results["KnSubject"] = {"SbId": str(sbid)}
    else:
        pos = subjects.find(sbid)
        if pos is None:
            raise UpdateError(f"The entered value for 'Dossieritem' does not exist: '{sbid}'.")
        if data:
            tx.write("subjects", pos, data)
        if attachments_only:
            tx.results["KnSubject"] = {"SbId": str(sbid)}
    if "KnSubjectAttachment" in subs:
        added = _attach(tx, int(subjects.cols["SubjectId"][pos]), subs["KnSubjectAttachment"])
        tx.write("subjects", pos, {"Attachments": int(subjects.cols["Attachments"][pos]) + added})


def delete_subject(tx: Tx, sbid: str) -> None:
    subjects, files = tx.store.tables["subjects"], tx.store.tables["attachments"]
    pos = subjects.find(sbid)
    if pos is None:
        raise UpdateError(f"The entered value for 'Dossieritem' does not exist: '{sbid}'.")
    for file_pos in files.where(SubjectId=int(subjects.cols["SubjectId"][pos])):
        tx.delete("attachments", int(file_pos))
    tx.delete("subjects", pos)


# --- dispatch --------------------------------------------------------------------------------------

def execute(store: Store, connector: str, verb: str, body, sub_object: str | None, at_ms: int) -> dict:
    """Apply one UpdateConnector request; returns the POST results (``{}`` for PUT)."""
    if not isinstance(body, dict) or connector not in body:
        raise UpdateError(f"The body must contain object '{connector}'.")
    allowed = {("KnOrganisation", None), ("KnOrganisation", "KnContact"), ("KnPerson", None), ("KnContact", None),
               ("KnSubject", None), ("KnSubject", "KnSubjectAttachment")}
    if (connector, sub_object) not in allowed:
        raise UpdateError(f"Object '{sub_object}' cannot be inserted into '{connector}' on its own.")
    if connector == "KnContact" and verb == "POST":
        raise UpdateError("KnContact cannot be inserted on its own; use KnOrganisation/KnContact.")

    def work(tx: Tx) -> dict:
        for el in elements(connector, body[connector]):
            if connector == "KnOrganisation":
                save_organisation(tx, el, verb=verb, contact_insert_only=sub_object == "KnContact")
            elif connector == "KnPerson":
                save_person(tx, el, verb=verb, loose=True)
            elif connector == "KnContact":
                update_contact(tx, el)
            else:
                save_subject(tx, el, verb=verb, attachments_only=sub_object == "KnSubjectAttachment")
        return tx.results

    return transaction(store, at_ms, work)


def execute_delete(store: Store, connector: str, path: list[str], at_ms: int) -> None:
    """``DELETE /connectors/KnSubject/KnSubject/@SbId/{id}`` (the only delete the sandbox offers)."""
    if connector != "KnSubject" or len(path) != 3 or path[0] != "KnSubject" or path[1] != "@SbId":
        raise UpdateError(f"Delete is not supported for '{'/'.join([connector, *path])}'.")
    transaction(store, at_ms, lambda tx: delete_subject(tx, path[2]))

