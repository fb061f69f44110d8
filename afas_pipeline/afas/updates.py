"""The AFAS write side of the way back: the UpdateConnector calls that bring AFAS to what a destination's
events call for, and the guard in front of every one of them (R13-R15).

- `write_backs` compares with what AFAS holds now and makes one PUT per entity whose mapped fields changed
  (R15), never a create (R14), only fields the mapping lets flow back (R13).
- `guard` is the independent check in front of every write: no protected field, no create, only mapped fields.

Every destination's write-back (and later Xelion's call reports) goes through here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from afas_pipeline.mapping.models import PROTECTED_TARGETS, DestinationMapping
from afas_pipeline.sync.feedback import Desired

#: The AFAS fields that identify an existing contact in a KnContact PUT (R14: never a create).
IDENTITY = {"KnContact": ("BcCoOga", "BcCoPer"), "KnPerson": ("BcCo",), "KnOrganisation": ("BcCo",)}
#: Fields that would make a call a create, or change which record it touches.
CREATE_MARKERS = frozenset({"AutoNum", "MatchOga", "MatchPer", "CdId", "ViKc"})
#: The Sync_Contacts columns that fill IDENTITY.
IDENTITY_COLUMNS = {"BcCoOga": "OrganisationId", "BcCoPer": "PersonId"}


@dataclass(frozen=True)
class Write:
    """One UpdateConnector call: `verb` is always PUT; `fields` holds identity and changed fields."""

    external_id: str
    connector: str
    verb: str
    fields: dict

    def body(self) -> dict:
        return {self.connector: {"Element": {"Fields": dict(self.fields)}}}


def _same(current, wanted, kind: str) -> bool:
    if current is None or (not isinstance(current, (list, dict)) and pd.isna(current)):
        return wanted is None
    if kind == "yes_no":
        return bool(current) == bool(wanted)
    if kind == "date":
        return _afas_date(current) == str(wanted)
    return str(current) == str(wanted)


def write_backs(desired: dict[str, Desired], afas_rows: pd.DataFrame, mapping: DestinationMapping,
                key: str) -> tuple[list[Write], dict[str, str]]:
    """The PUTs that bring AFAS to the desired values: one per entity with a changed mapped field (R15).
    Returns the writes and, per contact that needs none, why ("unchanged" or "not_in_afas": R14, a
    contact AFAS does not have is never created)."""
    targets = {t.column: t for t in mapping.write_backs()}
    rows = {str(r[key]): r for r in afas_rows.to_dict("records")} if len(afas_rows) else {}
    writes, no_write = [], {}
    for external_id, d in sorted(desired.items()):
        row = rows.get(external_id)
        if row is None:
            no_write[external_id] = "not_in_afas"
            continue
        per_connector: dict[str, dict] = {}
        for column, value in d.values.items():
            target = targets[column]
            if _same(row.get(column.split(".", 1)[1]), value, target.type):
                continue
            per_connector.setdefault(target.connector, {})[target.field] = value
        if not per_connector:
            no_write[external_id] = "unchanged"
        for connector, changed in sorted(per_connector.items()):
            identity = {f: str(row.get(IDENTITY_COLUMNS.get(f, f))) for f in IDENTITY[connector]}
            writes.append(Write(external_id, connector, "PUT", {**identity, **changed}))
    return writes, no_write


def _afas_date(value) -> str:
    """A date as the AFAS client reads it (a Timestamp, ISO text or epoch ms) as YYYY-MM-DD."""
    if isinstance(value, (int, float)):
        return pd.Timestamp(int(value), unit="ms").date().isoformat()
    return pd.Timestamp(value).date().isoformat()


GUARDS = ("no_protected_field", "no_create", "only_mapped_fields")


def guard(write: Write, mapping: DestinationMapping) -> list[str]:
    """The checks a write must pass, independent of how it was made; the names of those it fails."""
    allowed = {(t.connector, t.field) for t in mapping.write_backs()
               if t.type in ("text", "yes_no") or (t.origin == "bounce" and t.type == "date")}
    identity = set(IDENTITY.get(write.connector, ()))
    payload = {f for f in write.fields if f not in identity}
    failed = []
    if payload & PROTECTED_TARGETS:
        failed.append("no_protected_field")
    if write.verb != "PUT" or write.fields.keys() & CREATE_MARKERS or not identity or any(
            not write.fields.get(f) or write.fields.get(f) in ("None", "nan", "<NA>") for f in identity):
        failed.append("no_create")
    if any((write.connector, f) not in allowed for f in payload):
        failed.append("only_mapped_fields")
    return failed
