"""The GetConnectors the sandbox offers: their fields (as ``/metainfo/get`` describes them) and how each
view is computed from the canonical tables.

A view is a set of typed columns over the live rows of one table, joined to the tables it shows fields
of. Column kinds: ``string`` (object array, ``None`` empty), ``int`` (int64, ``NULL`` empty), ``decimal``
(int64 hundredths, ``NULL`` empty; shown as a JSON number),
``boolean`` (numpy bool), ``datetime`` and ``date`` (int64 Amsterdam wall-clock milliseconds, ``NULL``
empty). Keeping wall-clock values is what AFAS does: it stores local time, filters compare local time,
and only the display appends the fake ``Z``.

``Profit_SubjectTypes`` (the dossier item types, what KnSubject's ``StId`` refers to) follows AFAS's
published OpenAPI description of that standard GetConnector (AFASSoftware/OASContent,
``OpenApiSpecs/profit/*/Dossiers en bijlagen en workflows.json``, ``GET /connectors/Profit_SubjectTypes``):
the row keys, their types and their Dutch labels are AFAS's, including its spellings ``Confedential`` and
``VisibleOutsite``. That description gives no internal field ids (``fieldId``) or lengths; the sandbox's
are its own choice.

The debtor connectors follow AFAS's published OpenAPI descriptions as well (AFASSoftware/OASContent, commit
64278d2): ``Profit_Debtor`` from ``OpenApiSpecs/profit/{en,nl}/Mutaties.json`` and ``Profit_Deliveryaddress``
from ``OpenApiSpecs/profit/{en,nl}/Verkoop en Orders.json`` (row keys, types and Dutch labels as published,
AFAS's spellings ``AdressLine1`` and ``A_Toev_Huisnr.`` included), ``Profit_Contacts_App`` copies
``Profit_Contacts`` from ``Organisaties en personen.json``. Internal field ids (``fieldId``) and lengths
come from the UpdateConnectors that write the same data in that file (KnSalesRelationOrg/-Per for the
debtor: ``DbId``, ``Iban``, ``VaId``, ``PaCd``, ``VaDu``, ``Bl``, ``Krli``, ``CuId``, ``AuPa``, ``ColA``, ``CdDa``;
KnOrganisation/KnPerson/KnBasicAddressAdr for names, phone, e-mail and address parts); the rest are the
sandbox's own. The ``_App`` connectors are what the AFAS-Mailchimp link (seed 002) calls copies of the
standard connectors with extra fields: ``Profit_Debtor_App`` names its row keys as the link documents them
(``AddressLine1/3/4``, ``DateModified`` where the standard spells ``AdressLine1/3/4`` and ``ModifiedDate``) and
adds the organisation or person number and name parts and the preferred delivery address; both
``_App`` connectors carry ``OrganisationId``/``PersonId`` (and contacts ``ContactId``) as the ``Sync_*``
connectors do, so the ids a reader needs (R9) are there. The ``Sync_*`` connectors also carry what the Xelion
link reads (seed 003, "de connectoren zijn alle drie nodig"): ``BcId`` (AFAS's internal id of an organisation or
person, what an InSite card URL names) and the phone fields (the contact's own work phone and mobile).

Where AFAS leaves a field empty we do too: a department contact (``AFD``) has no person, so its
``PersonId`` and ``PersonModified`` are ``null``; a loose person (``PER``) has no organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from afas_sandbox.afas.model import FREE_FIELD_IDS, NULL, Columns, utc_ms_to_local_ms

DAY_MS = 86_400_000
METAINFO_TYPES = {"string": "string", "int": "int", "decimal": "decimal", "boolean": "boolean", "datetime": "date",
                  "date": "date"}
CONTROL_TYPES = {"string": 1, "int": 3, "decimal": 3, "boolean": 5, "datetime": 4, "date": 4}


@dataclass(frozen=True)
class Field:
    id: str
    kind: str
    label: str
    length: int
    field_id: str


@dataclass(frozen=True)
class GetConnector:
    id: str
    description: str
    fields: tuple[Field, ...]
    build: Callable[[dict[str, Columns]], dict[str, np.ndarray]]

    def metainfo(self) -> dict:
        return {"name": self.id, "description": self.description, "fields": [
            {"id": f.id, "fieldId": f.field_id, "dataType": METAINFO_TYPES[f.kind], "label": f.label,
             "length": f.length, "controlType": CONTROL_TYPES[f.kind], "decimals": 2 if f.kind == "decimal" else 0,
             "decimalsFieldId": ""}
            for f in self.fields]}


def _fields(*specs: tuple[str, str, str, int, str]) -> tuple[Field, ...]:
    return tuple(Field(*spec) for spec in specs)


# --- joins ---------------------------------------------------------------------------------------------

def _positions(keys: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Row position in ``keys`` of each value in ``lookup`` (-1 when absent or empty)."""
    return pd.Index(keys, dtype=object).get_indexer(pd.Index(lookup, dtype=object))


def _gather(values: np.ndarray, pos: np.ndarray, empty) -> np.ndarray:
    out = values[np.maximum(pos, 0)]
    if out.dtype == object:
        out = out.copy()
        out[pos < 0] = empty
        return out
    return np.where(pos < 0, empty, out)


def _local(ms: np.ndarray) -> np.ndarray:
    return utc_ms_to_local_ms(ms)


def _date(days: np.ndarray) -> np.ndarray:
    return np.where(days == NULL, NULL, days * DAY_MS)


def _full_name(first: np.ndarray, prefix: np.ndarray, last: np.ndarray) -> np.ndarray:
    return np.array([" ".join(p for p in parts if p) or None for parts in zip(first, prefix, last)], dtype=object)


COUNTRIES = {"NL": "Nederland", "BE": "België", "DE": "Duitsland", "GB": "Verenigd Koninkrijk"}


def _address_lines(street, number, addition, postal, city, country) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AFAS's address lines: 1 street and house number, 3 postcode and city, 4 the country's name. A
    British address puts the number before the street and the postcode after the town."""
    line1, line3 = [], []
    for s, n, a, z, y, k in zip(street, number, addition, postal, city, country):
        house = ("" if n == NULL else str(n)) + (f" {a}" if a and " " in a else a or "")
        british = k == "GB"
        line1.append(None if s is None else (f"{house} {s}" if british else f"{s} {house}").strip())
        parts = (y, z) if british else (z, y)
        line3.append(" ".join(p for p in parts if p) or None)
    return (np.array(line1, dtype=object), np.array(line3, dtype=object),
            np.array([COUNTRIES.get(k, k) for k in country], dtype=object))


# --- views ---------------------------------------------------------------------------------------------

def _contacts_joined(t: dict[str, Columns]):
    c, p, o = t["contacts"], t["persons"], t["organisations"]
    return c, p, o, _positions(p["PersonId"], c["PersonId"]), _positions(o["OrganisationId"], c["OrganisationId"])


def _sync_contacts(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    c, p, o, pp, op = _contacts_joined(t)
    loose = c["ContactKind"] == "PER"
    return {
        "ContactId": c["ContactId"], "PersonId": c["PersonId"], "OrganisationId": c["OrganisationId"],
        "ContactKind": c["ContactKind"], "MailWork": c["MailWork"], "MailPrivate": _gather(p["MailPrivate"], pp, None),
        "Blocked": c["Blocked"], "PermissionNewsletter": c["PermissionNewsletter"],
        "PermissionEvents": c["PermissionEvents"], "BounceDate": _date(c["BounceDate"]),
        "BounceType": c["BounceType"], "HardBounce": c["HardBounce"], "EraseRequested": c["EraseRequested"],
        "IsDebtor": np.where(loose, _gather(p["IsDebtor"], pp, False), _gather(o["IsDebtor"], op, False)),
        "Function": c["Function"], "Phone": c["Phone"], "Mobile": c["Mobile"],
        "ContactModified": _local(c["ModifiedDate"]),
        "PersonModified": _local(_gather(p["ModifiedDate"], pp, NULL)),
        "OrganisationModified": _local(_gather(o["ModifiedDate"], op, NULL)),
        "CreateDate": _local(c["CreateDate"]),
    }


def _sync_persons(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    p = t["persons"]
    out = {k: p[k] for k in ("PersonId", "BcId", "Initials", "FirstName", "Prefix", "LastName", "Gender",
                             "MailWork", "MailPrivate", "Phone", "PhoneMobile")}
    out.update(BirthDate=_date(p["BirthDate"]), ModifiedDate=_local(p["ModifiedDate"]),
               CreateDate=_local(p["CreateDate"]))
    return out


def _sync_organisations(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    o = t["organisations"]
    out = {k: o[k] for k in ("OrganisationId", "BcId", "Name", "ChamberOfCommerce", "Street", "HouseNumber",
                             "HouseNumberAddition", "PostalCode", "City", "Country", "Phone", "MailWork", "IsDebtor")}
    out.update(ModifiedDate=_local(o["ModifiedDate"]), CreateDate=_local(o["CreateDate"]))
    return out


def _profit_contacts(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    c, p, o, pp, op = _contacts_joined(t)
    full = _full_name(_gather(p["FirstName"], pp, None), _gather(p["Prefix"], pp, None), _gather(p["LastName"], pp, None))
    # Formatted once per organisation, shared by its contacts (a third of the time and memory at 1M contacts).
    line1, line3, line4 = (_gather(line, op, None) for line in _address_lines(*(o[f] for f in ADDRESS)))
    empty = np.full(len(c["ContactId"]), None, dtype=object)
    return {
        "Type": c["ContactKind"], "ContactId": c["ContactId"], "OrgNumber": c["OrganisationId"],
        "PerNumber": c["PersonId"],
        "Name": np.where(c["ContactKind"] == "PER", full, _gather(o["Name"], op, None)).astype(object),
        "FullName": full, "Department": c["Department"], "Function": c["Function"], "FunctionCard": c["Function"],
        "Gender": _gather(p["Gender"], pp, None), "Blocked": c["Blocked"],
        "AddressLine1": line1, "AddressLine3": line3, "AddressLine4": line4,
        "TelWork": c["Phone"], "MobWork": c["Mobile"], "MailWork": c["MailWork"], "TelPrivate": _gather(p["Phone"], pp, None),
        "MobPrivate": _gather(p["PhoneMobile"], pp, None), "MailPrivate": _gather(p["MailPrivate"], pp, None),
        "Note": empty, "CreateDate": _local(c["CreateDate"]), "ModifiedDate": _local(c["ModifiedDate"]),
    }


def _profit_contacts_app(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    _, p, o, pp, op = _contacts_joined(t)
    sync = _sync_contacts(t)
    out = _profit_contacts(t)
    out.update({k: sync[k] for k in ("PersonId", "OrganisationId", "IsDebtor", "PermissionNewsletter", "HardBounce",
                                     "PersonModified", "OrganisationModified")})
    out.update(OrganisationName=_gather(o["Name"], op, None), FirstName=_gather(p["FirstName"], pp, None),
               Prefix=_gather(p["Prefix"], pp, None), LastName=_gather(p["LastName"], pp, None))
    return out


def _debtors_app(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    """Profit_Debtor_App's rows; Profit_Debtor's are the same under AFAS's standard keys."""
    d, o, p = t["debtors"], t["organisations"], t["persons"]
    op, pp = _positions(o["OrganisationId"], d["OrganisationId"]), _positions(p["PersonId"], d["PersonId"])
    line1, line3, line4 = _address_lines(*(d[f] for f in ADDRESS))
    return {
        "DebtorId": d["DebtorId"], "DebtorName": d["Name"],
        "BcCo": np.where(d["OrganisationId"] != None, d["OrganisationId"], d["PersonId"]),  # noqa: E711
        "SearchName": d["SearchName"], "AddressLine1": line1, "AddressLine3": line3, "AddressLine4": line4,
        "TelNr": d["Phone"], "Email": d["MailWork"], "IBAN": d["Iban"], "VatNr": d["VatNumber"],
        "ChOfCommNr": _gather(o["ChamberOfCommerce"], op, None), "CollectAccount": d["CollectAccount"],
        "PayCon": d["PaymentCondition"], "VatDuty": d["VatDuty"], "Blocked": d["Blocked"],
        "CreditLimit": d["CreditLimit"], "CurrencyId": d["Currency"], "AutoPayment": d["AutoPayment"],
        "CreateDate": _local(d["CreateDate"]), "DateModified": _local(d["ModifiedDate"]),
        "OrganisationId": d["OrganisationId"], "PersonId": d["PersonId"],
        "FirstName": _gather(p["FirstName"], pp, None), "Prefix": _gather(p["Prefix"], pp, None),
        "LastName": _gather(p["LastName"], pp, None),
        "DeliveryAddressId": d["DeliveryAddressId"],
    }


# Profit_Debtor's own row keys for the columns Profit_Debtor_App names differently.
STANDARD_DEBTOR_KEYS = {"AdressLine1": "AddressLine1", "AdressLine3": "AddressLine3", "AdressLine4": "AddressLine4",
                        "ModifiedDate": "DateModified"}


def _profit_debtor(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    app = _debtors_app(t)
    return {**app, **{standard: app[renamed] for standard, renamed in STANDARD_DEBTOR_KEYS.items()}}


def _delivery_addresses(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    """One row per delivery address with its debtor's relation number, name, flag and modified date."""
    a, d, o, p = t["delivery_addresses"], t["debtors"], t["organisations"], t["persons"]
    dp = _positions(d["DebtorId"], a["DebtorId"])
    org, person = _gather(d["OrganisationId"], dp, None), _gather(d["PersonId"], dp, None)
    is_debtor = np.where(org != None, _gather(o["IsDebtor"], _positions(o["OrganisationId"], org), False),  # noqa: E711
                         _gather(p["IsDebtor"], _positions(p["PersonId"], person), False))
    return {
        "OrgId": np.where(org != None, org, person), "Bedrijf": _gather(d["Name"], dp, None),  # noqa: E711
        "Tel": a["Phone"], "Fax": a["Fax"], "Mail": a["MailWork"], "Gewijzigd_op": _local(a["ModifiedDate"]),
        "Gewijzigd_op_2": _local(_gather(d["ModifiedDate"], dp, NULL)), "Is_debiteur": is_debtor,
        "Adres_ID": a["AddressId"], "Adrestype_code": a["StreetAddition"], "A_Straat": a["Street"],
        "A_Huisnummer": a["HouseNumber"], "A_Toev_Huisnr.": a["HouseNumberAddition"], "A_Postcode": a["PostalCode"],
        "A_Woonplaats": a["City"], "Adrestype_code_2": np.full(len(dp), None, dtype=object), "A_Land": a["Country"],
        "DebiteurID": a["DebtorId"],
    }


def _profit_subjects(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    s = t["subjects"]
    out = {k: s[k] for k in ("SubjectId", "SubjectTypeId", "Description", "Text", "OrganisationId", "PersonId",
                             "ContactId", "Attachments")}
    out.update(Date=_local(s["Date"]), CreateDate=_local(s["CreateDate"]), ModifiedDate=_local(s["ModifiedDate"]))
    return out


def _subject_attachments(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    a = t["attachments"]
    return {"attachment_id": a["FileId"], "subject_id": a["SubjectId"], "file_id": a["FileId"],
            "file_name": a["FileName"]}


def _subject_types(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    return dict(t["subject_types"])


ADDRESS = ("Street", "HouseNumber", "HouseNumberAddition", "PostalCode", "City", "Country")
S, I, N, B, DT, D = "string", "int", "decimal", "boolean", "datetime", "date"

# Profit_Debtor (OASContent Mutaties.json, "Debiteuren"), in AFAS's order, with its standard row keys; the
# App copy renames the address lines and the modified date (STANDARD_DEBTOR_KEYS) and adds fields.
_DEBTOR_HEAD = (
    ("DebtorId", S, "Nummer debiteur", 16, "DbId"), ("DebtorName", S, "Naam debiteur", 255, "Nm"),
    ("BcCo", S, "Nummer org./pers.", 15, "BcCo"), ("SearchName", S, "Zoeknaam", 10, "SeNm"))
_DEBTOR_ADDRESS = (("Adresregel 1 (straat - huisnr)", "AdL1"), ("Adresregel 3 (postc - wpl)", "AdL3"),
                   ("Adresregel 4 (land)", "AdL4"))
_DEBTOR_BODY = (
    ("TelNr", S, "Telefoonnr. werk", 255, "TeNr"), ("Email", S, "E-mail werk", 255, "EmAd"),
    ("IBAN", S, "IBAN-nummer", 40, "Iban"), ("VatNr", S, "Btw-identificatienummer", 21, "VaId"),
    ("ChOfCommNr", S, "KvK-nummer", 30, "CcNr"), ("CollectAccount", S, "Verzamelrekening", 16, "ColA"),
    ("PayCon", S, "Betaalvoorwaarde", 5, "PaCd"), ("VatDuty", S, "Btw-plicht", 3, "VaDu"),
    ("Blocked", B, "Geblokkeerd voor levering", 1, "Bl"), ("CreditLimit", N, "Kredietlimiet", 15, "Krli"),
    ("CurrencyId", S, "Valuta", 3, "CuId"), ("AutoPayment", B, "Automatisch incasseren", 1, "AuPa"),
    ("CreateDate", DT, "Aangemaakt op", 19, "CrDt"))


def _debtor_fields(line_key: str, modified_key: str, *extra) -> tuple[Field, ...]:
    lines = tuple((f"{line_key}{n}", S, label, 255, fid) for n, (label, fid) in zip((1, 3, 4), _DEBTOR_ADDRESS))
    return _fields(*_DEBTOR_HEAD, *lines, *_DEBTOR_BODY, (modified_key, DT, "Gewijzigd op", 19, "ModDt"), *extra)


# Profit_Contacts (OASContent "Organisaties en personen.json", "Contacten") in AFAS's order, for the App copy.
_PROFIT_CONTACTS_SPEC = (
    ("Type", S, "Soort contact code", 3, "ViKc"), ("ContactId", I, "Contactid", 9, "CdId"),
    ("Name", S, "Naam", 255, "Nm"), ("OrgNumber", S, "orgnummer", 15, "BcCoOga"),
    ("PerNumber", S, "persnummer", 15, "BcCoPer"), ("Department", S, "Afdeling", 60, "ExAd"),
    ("Blocked", B, "Geblokkeerd", 1, "Bl"), ("AddressLine1", S, "Adresregel 1 (straat - huisnr)", 255, "AdL1"),
    ("AddressLine3", S, "Adresregel 3 (postc - wpl)", 255, "AdL3"),
    ("AddressLine4", S, "Adresregel 4 (land)", 255, "AdL4"), ("TelWork", S, "Telefoonnr. werk", 30, "TeNr"),
    ("MobWork", S, "Mobiel werk", 30, "MbNr"), ("MailWork", S, "E-mail werk", 255, "EmAd"),
    ("Note", S, "Toelichting", 2000, "Re"), ("Function", S, "Functie", 80, "FuDs"),
    ("FunctionCard", S, "Functie op visitekaart", 80, "ViFu"),
    ("FullName", S, "Roepnaam voorvoegsel achternaam", 255, "CaNm"), ("Gender", S, "Geslacht code", 1, "ViGe"),
    ("TelPrivate", S, "Telefoonnr. privé", 30, "TeN2"), ("MobPrivate", S, "Mobiel privé", 30, "MbN2"),
    ("MailPrivate", S, "E-mail privé", 255, "EmA2"), ("CreateDate", DT, "Aangemaakt op", 19, "CrDt"),
    ("ModifiedDate", DT, "Gewijzigd op", 19, "ModDt"))
_PERSON_NAME = (("FirstName", S, "Voornaam", 50, "FiNm"), ("Prefix", S, "Voorvoegsel", 15, "Is"),
                ("LastName", S, "Achternaam", 80, "LaNm"))

GET_CONNECTORS: dict[str, GetConnector] = {g.id: g for g in [
    GetConnector("Sync_Contacts", "Contactpersonen en losse personen voor synchronisatie", _fields(
        ("ContactId", I, "Contactnummer", 9, "CdId"), ("PersonId", S, "Persoonnummer", 15, "BcCoPer"),
        ("OrganisationId", S, "Organisatienummer", 15, "BcCoOga"), ("ContactKind", S, "Soort contact", 3, "ViKc"),
        ("MailWork", S, "E-mail werk", 255, "EmAd"), ("MailPrivate", S, "E-mail privé", 255, "EmA2"),
        ("Blocked", B, "Geblokkeerd", 1, "Bl"), ("PermissionNewsletter", B, "Nieuwsbrief", 1, "U001"),
        ("PermissionEvents", B, "Evenementen", 1, "U002"), ("BounceDate", D, "Bouncedatum", 10, "U003"),
        ("BounceType", S, "Bouncetype", 4, "U004"), ("HardBounce", B, "Harde bounce", 1, "U005"),
        ("EraseRequested", B, "AVG verwijderverzoek", 1, "U006"),
        ("IsDebtor", B, "Is debiteur", 1, "IsDb"), ("Function", S, "Functie", 80, "FuDs"),
        ("Phone", S, "Telefoonnr. werk", 30, "TeNr"), ("Mobile", S, "Mobiel werk", 30, "MbNr"),
        ("ContactModified", DT, "Contact gewijzigd op", 19, "CdModDt"),
        ("PersonModified", DT, "Persoon gewijzigd op", 19, "PerModDt"),
        ("OrganisationModified", DT, "Organisatie gewijzigd op", 19, "OgaModDt"),
        ("CreateDate", DT, "Aangemaakt op", 19, "CrDt")), _sync_contacts),
    GetConnector("Sync_Persons", "Personen voor synchronisatie", _fields(
        ("PersonId", S, "Nummer", 15, "BcCo"), ("BcId", I, "Intern nummer", 9, "BcId"), ("Initials", S, "Voorletters", 15, "In"),
        ("FirstName", S, "Voornaam", 50, "FiNm"), ("Prefix", S, "Voorvoegsel", 15, "Is"),
        ("LastName", S, "Achternaam", 80, "LaNm"), ("Gender", S, "Geslacht", 1, "ViGe"),
        ("BirthDate", D, "Geboortedatum", 10, "DaBi"), ("MailWork", S, "E-mail werk", 255, "EmAd"),
        ("MailPrivate", S, "E-mail privé", 255, "EmA2"), ("Phone", S, "Telefoonnr. werk", 30, "TeNr"),
        ("PhoneMobile", S, "Mobiel werk", 30, "MbNr"), ("ModifiedDate", DT, "Gewijzigd op", 19, "ModDt"), ("CreateDate", DT, "Aangemaakt op", 19, "CrDt")),
        _sync_persons),
    GetConnector("Sync_Organisations", "Organisaties voor synchronisatie", _fields(
        ("OrganisationId", S, "Nummer", 15, "BcCo"), ("BcId", I, "Intern nummer", 9, "BcId"),
        ("Name", S, "Naam", 255, "Nm"),
        ("ChamberOfCommerce", S, "KvK-nummer", 30, "CcNr"), ("Street", S, "Straat", 60, "Ad"),
        ("HouseNumber", I, "Huisnummer", 9, "HmNr"), ("HouseNumberAddition", S, "Toevoeging", 30, "HmAd"),
        ("PostalCode", S, "Postcode", 15, "ZpCd"), ("City", S, "Woonplaats", 50, "Rs"),
        ("Country", S, "Land", 3, "CoId"), ("Phone", S, "Telefoonnr. werk", 30, "TeNr"),
        ("MailWork", S, "E-mail werk", 255, "EmAd"), ("IsDebtor", B, "Is debiteur", 1, "IsDb"),
        ("ModifiedDate", DT, "Gewijzigd op", 19, "ModDt"), ("CreateDate", DT, "Aangemaakt op", 19, "CrDt")),
        _sync_organisations),
    GetConnector("Profit_Contacts", "Contacten", _fields(
        ("Type", S, "Type", 3, "ViKc"), ("ContactId", I, "Contact", 9, "CdId"),
        ("OrgNumber", S, "Nummer organisatie", 15, "BcCoOga"), ("PerNumber", S, "Nummer persoon", 15, "BcCoPer"),
        ("Name", S, "Naam", 255, "Nm"), ("FullName", S, "Volledige naam", 255, "CaNm"),
        ("Department", S, "Afdeling", 60, "ExAd"), ("Function", S, "Functie", 80, "FuDs"),
        ("FunctionCard", S, "Functie op visitekaart", 80, "ViFu"), ("Gender", S, "Geslacht", 1, "ViGe"),
        ("Blocked", B, "Geblokkeerd", 1, "Bl"), ("AddressLine1", S, "Adresregel 1", 255, "AdL1"),
        ("AddressLine3", S, "Adresregel 3", 255, "AdL3"), ("AddressLine4", S, "Adresregel 4", 255, "AdL4"),
        ("TelWork", S, "Telefoonnr. werk", 30, "TeNr"), ("MobWork", S, "Mobiel werk", 30, "MbNr"),
        ("MailWork", S, "E-mail werk", 255, "EmAd"), ("TelPrivate", S, "Telefoonnr. privé", 30, "TeN2"),
        ("MobPrivate", S, "Mobiel privé", 30, "MbN2"), ("MailPrivate", S, "E-mail privé", 255, "EmA2"),
        ("Note", S, "Memo", 2000, "Re"), ("CreateDate", DT, "Aangemaakt op", 19, "CrDt"),
        ("ModifiedDate", DT, "Gewijzigd op", 19, "ModDt")), _profit_contacts),
    GetConnector("ProfitSubjects", "Dossieritems", _fields(
        ("SubjectId", I, "Nummer", 9, "SbId"), ("SubjectTypeId", I, "Type dossieritem", 9, "StId"),
        ("Description", S, "Onderwerp", 255, "Ds"), ("Text", S, "Toelichting", 4000, "SbTx"),
        ("Date", DT, "Datum", 19, "Da"), ("OrganisationId", S, "Organisatie", 15, "BcCoOga"),
        ("PersonId", S, "Persoon", 15, "BcCoPer"), ("ContactId", I, "Contact", 9, "CdId"),
        ("Attachments", I, "Aantal bijlagen", 9, "AtCt"), ("CreateDate", DT, "Aangemaakt op", 19, "CrDt"),
        ("ModifiedDate", DT, "Gewijzigd op", 19, "ModDt")), _profit_subjects),
    GetConnector("Profit_Subject_Attachments", "Bijlagen bij dossieritems", _fields(
        ("attachment_id", I, "Bijlage", 9, "AtId"), ("subject_id", I, "Dossieritem", 9, "SbId"),
        ("file_id", I, "Bestand", 9, "FileId"), ("file_name", S, "Bestandsnaam", 255, "FileName")),
        _subject_attachments),
    GetConnector("Profit_SubjectTypes", "Typen dossieritem", _fields(
        ("SubjectTypeId", I, "Type dossieritem", 9, "StId"), ("Description", S, "Omschrijving", 50, "Ds"),
        ("Comment", B, "Toelichting", 1, "InRe"), ("SubjectText", B, "Aanleiding", 1, "InSbHi"),
        ("Responsible", B, "Verantwoordelijke", 1, "InEmId"), ("StartDate", B, "Begindatum", 1, "InDtFr"),
        ("EndDate", B, "Einddatum", 1, "InDtTo"), ("Completed", B, "Afgehandeld", 1, "InSt"),
        ("DateCompleted", B, "Datum afgehandeld", 1, "InDtSt"),
        ("ResponsibleMandatory", B, "Verantwoordelijke is verplicht", 1, "EmIdMa"),
        ("UseFeatures", B, "Kenmerken gebruiken", 1, "UsFv"),
        ("OnlyExistingFeatures", B, "Alleen bestaande combinaties toegestaan", 1, "FvEx"),
        ("WithoutFeature", B, "Dossieritems zonder kenmerken toegestaan", 1, "FvNo"),
        ("Confedential", B, "Dossieritem als vertrouwelijk markeren", 1, "Conf"),
        ("LinkFile", B, "Bestand koppelen", 1, "LnFi"), ("EditMode", S, "Bewerkingopties code", 10, "EdMd"),
        ("VisibleOutsite", B, "Zichtbaar in OutSite", 1, "VsOs"),
        ("VisibleInsite", B, "Zichtbaar in InSite", 1, "VsIs"),
        ("UseNumber", B, "Dossieritems nummeren", 1, "UsNr"), ("LastNumber", I, "Laatst gebruikte nummer", 9, "LaNr")),
        _subject_types),
    GetConnector("Profit_Debtor", "Debiteuren", _debtor_fields("AdressLine", "ModifiedDate"), _profit_debtor),
    GetConnector("Profit_Debtor_App", "Debiteuren (AFAS-Mailchimp)", _debtor_fields(
        "AddressLine", "DateModified",
        ("OrganisationId", S, "Nummer organisatie", 15, "BcCoOga"), ("PersonId", S, "Nummer persoon", 15, "BcCoPer"),
        *_PERSON_NAME, ("DeliveryAddressId", I, "Voorkeur afleveradres", 9, "CdDa")), _debtors_app),
    # OASContent "Verkoop en Orders.json", "Adressen bij contacten (alle)". Gewijzigd_op is the address's
    # modified date, Gewijzigd_op_2 its debtor's; AFAS names no values for Adrestype_code_2, so it stays empty.
    GetConnector("Profit_Deliveryaddress", "Adressen bij contacten (alle)", _fields(
        ("OrgId", S, "Nummer", 15, "BcCo"), ("Bedrijf", S, "Naam", 255, "Nm"),
        ("Tel", S, "Telefoonnr. werk", 255, "TeNr"), ("Fax", S, "Fax werk", 255, "FaNr"),
        ("Mail", S, "E-mail werk", 255, "EmAd"),
        ("Gewijzigd_op", DT, "Gewijzigd op", 19, "ModDt"), ("Gewijzigd_op_2", DT, "Gewijzigd op", 19, "DbModDt"),
        ("Is_debiteur", B, "Debiteur", 1, "IsDb"), ("Adres_ID", I, "Adres Id", 9, "AdId"),
        ("Adrestype_code", S, "Toev. voor straat", 255, "StAd"), ("A_Straat", S, "Straat", 60, "Ad"),
        ("A_Huisnummer", I, "Huisnummer", 9, "HmNr"), ("A_Toev_Huisnr.", S, "Toev. aan huisnr.", 30, "HmAd"),
        ("A_Postcode", S, "Postcode", 15, "ZpCd"), ("A_Woonplaats", S, "Woonplaats", 50, "Rs"),
        ("Adrestype_code_2", S, "Adrestype code", 10, "AdTp"), ("A_Land", S, "ISO Alpha-2", 2, "CoIso"),
        ("DebiteurID", S, "Debiteur Id", 16, "DbId")), _delivery_addresses),
    GetConnector("Profit_Contacts_App", "Contacten (AFAS-Mailchimp)", _fields(
        *_PROFIT_CONTACTS_SPEC, ("PersonId", S, "Persoonnummer", 15, "PerId"),
        ("OrganisationId", S, "Organisatienummer", 15, "OgaId"),
        ("OrganisationName", S, "Naam organisatie", 255, "OgaNm"),
        *_PERSON_NAME, ("IsDebtor", B, "Is debiteur", 1, "IsDb"),
        ("PermissionNewsletter", B, "Nieuwsbrief", 1, FREE_FIELD_IDS["PermissionNewsletter"]),
        ("HardBounce", B, "Harde bounce", 1, FREE_FIELD_IDS["HardBounce"]),
        ("PersonModified", DT, "Persoon gewijzigd op", 19, "PerModDt"),
        ("OrganisationModified", DT, "Organisatie gewijzigd op", 19, "OgaModDt")), _profit_contacts_app),
]}
