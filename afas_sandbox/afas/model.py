"""Canonical tables of the emulated AFAS CRM and the time conversions every other module shares.

Storage is columnar numpy so that 1,000,000 contacts fit comfortably in memory:

- ``str`` columns are object arrays holding ``str`` or ``None``;
- ``int`` columns are int64, ``NULL`` (int64 minimum) when empty;
- ``bool`` columns are numpy bool (never empty);
- ``ts`` columns are int64 milliseconds since the Unix epoch in UTC, ``NULL`` when empty. AFAS keeps
  sub-second precision and so do we; only the GetConnector display rounds to whole seconds;
- ``date`` columns are int64 days since 1970-01-01, ``NULL`` when empty;
- ``dec`` columns (amounts, AFAS's ``decimal``) are int64 hundredths, ``NULL`` when empty, so they
  compare, sort and keep ``NULL`` exactly like the other integer columns.

Organisations and persons share AFAS's number space for ``BcCo`` (both are "relaties"), so a code is
never used by an organisation and a person at the same time. ``BcId`` is AFAS's internal id; for the
generated data it equals the numeric ``BcCo``.

A debtor (``debtors``) is an organisation or a person in its role of customer (AFAS's sales relation,
UpdateConnectors KnSalesRelationOrg/KnSalesRelationPer): exactly one of ``OrganisationId`` and
``PersonId`` is set, and that relation carries ``IsDebtor``. It keeps the debtor card as AFAS shows it in
``Profit_Debtor``: name, address, phone and e-mail are copies taken when the data is generated (an edit of
the organisation or person does not reach them; edit the debtor). ``delivery_addresses`` are a debtor's
delivery addresses (``Profit_Deliveryaddress``); the debtor's ``DeliveryAddressId`` (KnSalesRelation
``CdDa``, "Voorkeur afleveradres") marks its default one.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

NULL = np.iinfo(np.int64).min
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
UTC = dt.timezone.utc

STR, INT, BOOL, TS, DATE, DEC = "str", "int", "bool", "ts", "date", "dec"

TABLES: dict[str, dict[str, str]] = {
    "organisations": {
        "OrganisationId": STR, "BcId": INT, "Name": STR, "ChamberOfCommerce": STR, "FiscalNumber": STR,
        "Street": STR, "HouseNumber": INT, "HouseNumberAddition": STR, "PostalCode": STR, "City": STR,
        "Country": STR, "Phone": STR, "MailWork": STR, "IsDebtor": BOOL, "ModifiedDate": TS, "CreateDate": TS,
    },
    "persons": {
        "PersonId": STR, "BcId": INT, "Initials": STR, "FirstName": STR, "Prefix": STR, "LastName": STR,
        "Gender": STR, "BirthDate": DATE, "Bsn": STR, "MailWork": STR, "MailPrivate": STR, "Phone": STR,
        "PhoneMobile": STR, "IsDebtor": BOOL, "ModifiedDate": TS, "CreateDate": TS,
    },
    "contacts": {
        "ContactId": INT, "PersonId": STR, "OrganisationId": STR, "ContactKind": STR, "MailWork": STR,
        "Phone": STR, "Mobile": STR, "Function": STR, "Department": STR, "Blocked": BOOL,
        "PermissionNewsletter": BOOL, "PermissionEvents": BOOL, "BounceDate": DATE, "BounceType": STR,
        "HardBounce": BOOL, "EraseRequested": BOOL, "ModifiedDate": TS, "CreateDate": TS,
    },
    "subjects": {
        "SubjectId": INT, "SubjectTypeId": INT, "Description": STR, "Text": STR, "Date": TS,
        "OrganisationId": STR, "PersonId": STR, "ContactId": INT, "Attachments": INT,
        "ModifiedDate": TS, "CreateDate": TS,
    },
    "attachments": {"FileId": INT, "SubjectId": INT, "FileName": STR, "FileData": STR},
    # Dossier item types (what KnSubject's StId refers to), with the row keys of AFAS's standard
    # GetConnector Profit_SubjectTypes.
    "subject_types": {
        "SubjectTypeId": INT, "Description": STR, "Comment": BOOL, "SubjectText": BOOL, "Responsible": BOOL,
        "StartDate": BOOL, "EndDate": BOOL, "Completed": BOOL, "DateCompleted": BOOL, "ResponsibleMandatory": BOOL,
        "UseFeatures": BOOL, "OnlyExistingFeatures": BOOL, "WithoutFeature": BOOL, "Confedential": BOOL,
        "LinkFile": BOOL, "EditMode": STR, "VisibleOutsite": BOOL, "VisibleInsite": BOOL, "UseNumber": BOOL,
        "LastNumber": INT,
    },
    "debtors": {
        "DebtorId": STR, "OrganisationId": STR, "PersonId": STR, "Name": STR, "SearchName": STR,
        "Street": STR, "HouseNumber": INT, "HouseNumberAddition": STR, "PostalCode": STR, "City": STR,
        "Country": STR, "Phone": STR, "MailWork": STR, "Iban": STR, "VatNumber": STR, "CollectAccount": STR,
        "PaymentCondition": STR, "VatDuty": STR, "Blocked": BOOL, "CreditLimit": DEC, "Currency": STR,
        "AutoPayment": BOOL, "DeliveryAddressId": INT, "ModifiedDate": TS, "CreateDate": TS,
    },
    "delivery_addresses": {
        "AddressId": INT, "DebtorId": STR, "StreetAddition": STR, "Street": STR, "HouseNumber": INT,
        "HouseNumberAddition": STR, "PostalCode": STR, "City": STR, "Country": STR, "Phone": STR, "Fax": STR,
        "MailWork": STR, "ModifiedDate": TS, "CreateDate": TS,
    },
}
KEYS = {"organisations": "OrganisationId", "persons": "PersonId", "contacts": "ContactId",
        "subjects": "SubjectId", "attachments": "FileId", "subject_types": "SubjectTypeId",
        "debtors": "DebtorId", "delivery_addresses": "AddressId"}
DTYPES = {STR: object, INT: np.int64, BOOL: np.bool_, TS: np.int64, DATE: np.int64, DEC: np.int64}
NUMERIC = (INT, TS, DATE, DEC)  # int64 storage, NULL when empty

Columns = dict[str, np.ndarray]

FREE_FIELDS = {  # KnContact free fields: GUID field id -> (canonical column, kind, label)
    "UAC187778054F7C9022679701BEC7FD67": ("PermissionNewsletter", "boolean", "Nieuwsbrief"),
    "UEC610801D5DDDD07589D4D58C7D95E70": ("PermissionEvents", "boolean", "Evenementen"),
    "U75F1C487D4A16C8A1AF773D9EA276418": ("BounceDate", "date", "Bouncedatum"),
    "UCC1D3710DBFE152311FF890317793493": ("BounceType", "string", "Bouncetype"),
    "U5CDDF537F9AA47670ABAC39E715EF1A8": ("HardBounce", "boolean", "Harde bounce"),
    # The person asked to be forgotten (GDPR article 17): the pipeline erases the contact everywhere (P2).
    "U9A6E7C2B41D05F3E8B7A6C5D4E3F2A10": ("EraseRequested", "boolean", "AVG verwijderverzoek"),
}
FREE_FIELD_IDS = {column: guid for guid, (column, _, _) in FREE_FIELDS.items()}


def empty_columns(table: str, n: int = 0) -> Columns:
    out: Columns = {}
    for name, kind in TABLES[table].items():
        if kind == STR:
            out[name] = np.full(n, None, dtype=object)
        elif kind == BOOL:
            out[name] = np.zeros(n, dtype=bool)
        else:
            out[name] = np.full(n, NULL, dtype=np.int64)
    return out


# --- time conversions -------------------------------------------------------------------------------

def utc_ms_to_local_ms(ms: np.ndarray) -> np.ndarray:
    """UTC epoch ms -> Amsterdam wall-clock ms (as if that wall clock were UTC); NULL stays NULL."""
    ms = np.asarray(ms, dtype=np.int64)
    null = ms == NULL
    idx = pd.DatetimeIndex(np.where(null, 0, ms).astype("datetime64[ms]"), tz="UTC")
    local = idx.tz_convert(AMSTERDAM).tz_localize(None).as_unit("ms").asi8
    return np.where(null, NULL, local)


def now_ms() -> int:
    return int(dt.datetime.now(UTC).timestamp() * 1000)


def parse_utc_instant(text: str) -> int:
    """ISO instant ("2026-10-25T00:05:00.250Z"; naive means UTC) -> epoch ms."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def local_to_utc_ms(value: dt.datetime) -> int:
    """Amsterdam wall-clock -> epoch ms. An ambiguous autumn time is taken as the later occurrence
    (standard time), the same choice the pipeline's client makes when it reads."""
    return round(value.replace(tzinfo=AMSTERDAM, fold=1).timestamp() * 1000)


def parse_local(text: str) -> dt.datetime:
    """A filter or UpdateConnector date(-time) value: Amsterdam wall clock, no zone. A zone (like the
    fake ``Z`` AFAS itself prints) is refused, as AFAS refuses it."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is not None:
        raise ValueError(f"date-time value {text!r} must not carry a time zone")
    return value


def naive_ms(value: dt.datetime) -> int:
    return round(value.replace(tzinfo=UTC).timestamp() * 1000)


def ms_to_utc_iso(ms: int) -> str | None:
    if ms == NULL:
        return None
    value = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=int(ms))
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def days_to_iso(days: int) -> str | None:
    return None if days == NULL else (dt.date(1970, 1, 1) + dt.timedelta(days=int(days))).isoformat()


def iso_to_days(text: str) -> int:
    return (dt.date.fromisoformat(text.strip()[:10]) - dt.date(1970, 1, 1)).days


def cents_to_amount(cents: int) -> float | None:
    return None if cents == NULL else cents / 100


def amount_to_cents(amount) -> int:
    """A JSON number (or its text) -> hundredths; ``bool`` and non-finite values are refused."""
    if isinstance(amount, bool):
        raise TypeError("an amount is a number")
    cents = float(amount) * 100
    if not abs(cents) < 2**62:  # also NaN and infinity
        raise ValueError(f"invalid amount {amount!r}")
    return round(cents)
