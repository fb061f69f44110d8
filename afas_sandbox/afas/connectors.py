"""The GetConnectors the sandbox offers: their fields (as ``/metainfo/get`` describes them) and how each
view is computed from the canonical tables.

A view is a set of typed columns over the live rows of one table, joined to the tables it shows fields
of. Column kinds: ``string`` (object array, ``None`` empty), ``int`` (int64, ``NULL`` empty),
``boolean`` (numpy bool), ``datetime`` and ``date`` (int64 Amsterdam wall-clock milliseconds, ``NULL``
empty). Keeping wall-clock values is what AFAS does: it stores local time, filters compare local time,
and only the display appends the fake ``Z``.

``Profit_SubjectTypes`` (the dossier item types, what KnSubject's ``StId`` refers to) follows AFAS's
published OpenAPI description of that standard GetConnector (AFASSoftware/OASContent,
``OpenApiSpecs/profit/*/Dossiers en bijlagen en workflows.json``, ``GET /connectors/Profit_SubjectTypes``):
the row keys, their types and their Dutch labels are AFAS's, including its spellings ``Confedential`` and
``VisibleOutsite``. That description gives no internal field ids (``fieldId``) or lengths; the sandbox's
are its own choice.

Where AFAS leaves a field empty we do too: a department contact (``AFD``) has no person, so its
``PersonId`` and ``PersonModified`` are ``null``; a loose person (``PER``) has no organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from afas_sandbox.afas.model import NULL, Columns, utc_ms_to_local_ms

DAY_MS = 86_400_000
METAINFO_TYPES = {"string": "string", "int": "int", "boolean": "boolean", "datetime": "date", "date": "date"}
CONTROL_TYPES = {"string": 1, "int": 3, "boolean": 5, "datetime": 4, "date": 4}


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
             "length": f.length, "controlType": CONTROL_TYPES[f.kind], "decimals": 0, "decimalsFieldId": ""}
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


COUNTRIES = {"NL": "Nederland", "BE": "België", "DE": "Duitsland"}


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
        "BounceType": c["BounceType"], "HardBounce": c["HardBounce"],
        "IsDebtor": np.where(loose, _gather(p["IsDebtor"], pp, False), _gather(o["IsDebtor"], op, False)),
        "Function": c["Function"], "ContactModified": _local(c["ModifiedDate"]),
        "PersonModified": _local(_gather(p["ModifiedDate"], pp, NULL)),
        "OrganisationModified": _local(_gather(o["ModifiedDate"], op, NULL)),
        "CreateDate": _local(c["CreateDate"]),
    }


def _sync_persons(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    p = t["persons"]
    out = {k: p[k] for k in ("PersonId", "Initials", "FirstName", "Prefix", "LastName", "Gender",
                             "MailWork", "MailPrivate", "PhoneMobile")}
    out.update(BirthDate=_date(p["BirthDate"]), ModifiedDate=_local(p["ModifiedDate"]),
               CreateDate=_local(p["CreateDate"]))
    return out


def _sync_organisations(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    o = t["organisations"]
    out = {k: o[k] for k in ("OrganisationId", "Name", "ChamberOfCommerce", "Street", "HouseNumber",
                             "HouseNumberAddition", "PostalCode", "City", "Country", "Phone", "MailWork", "IsDebtor")}
    out.update(ModifiedDate=_local(o["ModifiedDate"]), CreateDate=_local(o["CreateDate"]))
    return out


def _profit_contacts(t: dict[str, Columns]) -> dict[str, np.ndarray]:
    c, p, o, pp, op = _contacts_joined(t)
    full = _full_name(_gather(p["FirstName"], pp, None), _gather(p["Prefix"], pp, None), _gather(p["LastName"], pp, None))
    street, number = _gather(o["Street"], op, None), _gather(o["HouseNumber"], op, NULL)
    addition, postal = _gather(o["HouseNumberAddition"], op, None), _gather(o["PostalCode"], op, None)
    city, country = _gather(o["City"], op, None), _gather(o["Country"], op, None)
    empty = np.full(len(c["ContactId"]), None, dtype=object)
    return {
        "Type": c["ContactKind"], "ContactId": c["ContactId"], "OrgNumber": c["OrganisationId"],
        "PerNumber": c["PersonId"],
        "Name": np.where(c["ContactKind"] == "PER", full, _gather(o["Name"], op, None)).astype(object),
        "FullName": full, "Department": c["Department"], "Function": c["Function"], "FunctionCard": c["Function"],
        "Gender": _gather(p["Gender"], pp, None), "Blocked": c["Blocked"],
        "AddressLine1": np.array([None if s is None else f"{s} {n}{a or ''}".strip()
                                  for s, n, a in zip(street, number, addition)], dtype=object),
        "AddressLine3": np.array([None if z is None else f"{z} {y}" for z, y in zip(postal, city)], dtype=object),
        "AddressLine4": np.array([COUNTRIES.get(k, k) for k in country], dtype=object),
        "TelWork": c["Phone"], "MobWork": c["Mobile"], "MailWork": c["MailWork"], "TelPrivate": _gather(p["Phone"], pp, None),
        "MobPrivate": _gather(p["PhoneMobile"], pp, None), "MailPrivate": _gather(p["MailPrivate"], pp, None),
        "Note": empty, "CreateDate": _local(c["CreateDate"]), "ModifiedDate": _local(c["ModifiedDate"]),
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


S, I, B, DT, D = "string", "int", "boolean", "datetime", "date"

GET_CONNECTORS: dict[str, GetConnector] = {g.id: g for g in [
    GetConnector("Sync_Contacts", "Contactpersonen en losse personen voor synchronisatie", _fields(
        ("ContactId", I, "Contactnummer", 9, "CdId"), ("PersonId", S, "Persoonnummer", 15, "BcCoPer"),
        ("OrganisationId", S, "Organisatienummer", 15, "BcCoOga"), ("ContactKind", S, "Soort contact", 3, "ViKc"),
        ("MailWork", S, "E-mail werk", 255, "EmAd"), ("MailPrivate", S, "E-mail privé", 255, "EmA2"),
        ("Blocked", B, "Geblokkeerd", 1, "Bl"), ("PermissionNewsletter", B, "Nieuwsbrief", 1, "U001"),
        ("PermissionEvents", B, "Evenementen", 1, "U002"), ("BounceDate", D, "Bouncedatum", 10, "U003"),
        ("BounceType", S, "Bouncetype", 4, "U004"), ("HardBounce", B, "Harde bounce", 1, "U005"),
        ("IsDebtor", B, "Is debiteur", 1, "IsDb"), ("Function", S, "Functie", 80, "FuDs"),
        ("ContactModified", DT, "Contact gewijzigd op", 19, "CdModDt"),
        ("PersonModified", DT, "Persoon gewijzigd op", 19, "PerModDt"),
        ("OrganisationModified", DT, "Organisatie gewijzigd op", 19, "OgaModDt"),
        ("CreateDate", DT, "Aangemaakt op", 19, "CrDt")), _sync_contacts),
    GetConnector("Sync_Persons", "Personen voor synchronisatie", _fields(
        ("PersonId", S, "Nummer", 15, "BcCo"), ("Initials", S, "Voorletters", 15, "In"),
        ("FirstName", S, "Voornaam", 50, "FiNm"), ("Prefix", S, "Voorvoegsel", 15, "Is"),
        ("LastName", S, "Achternaam", 80, "LaNm"), ("Gender", S, "Geslacht", 1, "ViGe"),
        ("BirthDate", D, "Geboortedatum", 10, "DaBi"), ("MailWork", S, "E-mail werk", 255, "EmAd"),
        ("MailPrivate", S, "E-mail privé", 255, "EmA2"), ("PhoneMobile", S, "Mobiel werk", 30, "MbNr"),
        ("ModifiedDate", DT, "Gewijzigd op", 19, "ModDt"), ("CreateDate", DT, "Aangemaakt op", 19, "CrDt")),
        _sync_persons),
    GetConnector("Sync_Organisations", "Organisaties voor synchronisatie", _fields(
        ("OrganisationId", S, "Nummer", 15, "BcCo"), ("Name", S, "Naam", 255, "Nm"),
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
]}
