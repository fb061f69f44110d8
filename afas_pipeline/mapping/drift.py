"""Drift: does the mapping still fit the live systems? Pure functions over what the APIs returned.

AFAS administrators rename GetConnector fields and free fields; Spotler users rename properties. Both
would otherwise surface as silently empty values in the sync, so every run (and `validate-mappings`)
compares the mapping with the systems' own descriptions and lists each mismatch as a readable sentence.

The mailing history's dossier item type (R17, `mailing_history.subject_type`) is checked against the
types AFAS lists in its standard GetConnector `Profit_SubjectTypes`: `subject_type_drift` over those rows
(pure), `live_subject_type_drift` reads them first (the one function here that calls AFAS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from afas_pipeline.afas.errors import AfasAuthError, AfasConfigError
from afas_pipeline.afas.sources import AfasSources, default_sources
from afas_pipeline.mapping.models import (
    BOUNCE_TYPES,
    BASE_COLUMNS,
    ENTITY_KEY,
    ENTITY_SOURCE,
    DestinationMapping,
)

# Which metainfo dataTypes (GET /metainfo/get and /metainfo/update) can hold each mapping type.
COMPATIBLE_TYPES: dict[str, frozenset[str]] = {
    "text": frozenset({"string"}),
    "phone": frozenset({"string"}),  # a text field holding a phone number (normalised before it is sent)
    "yes_no": frozenset({"boolean"}),
    "table_link": frozenset({"string", "int"}),
    "date": frozenset({"date"}),
    "number": frozenset({"int", "decimal"}),
    "key": frozenset({"string", "int"}),
}
# The destination property type that holds permissions (Spotler's `permissions`), never a plain field.
_SET_TYPE = "set"
#: AFAS's standard GetConnector listing the dossier item types (KnSubject `StId`), and its row keys.
SUBJECT_TYPES_CONNECTOR = "Profit_SubjectTypes"
SUBJECT_TYPE_ID, SUBJECT_TYPE_DESCRIPTION = "SubjectTypeId", "Description"

if TYPE_CHECKING:
    from afas_pipeline.afas.client import AfasClient


def _field_types(meta: Any) -> dict[str, str]:
    """`{field: dataType}` from a GetConnector/UpdateConnector metainfo: the raw JSON (`{"fields": [...]}`),
    its `fields` list, or an `AfasClient.metainfo()` result. GetConnector fields are keyed by `id` (the row
    key), UpdateConnector fields by `fieldId`."""
    fields = getattr(meta, "fields", None)
    if fields is None and isinstance(meta, Mapping):
        fields = meta.get("fields", [])
    if fields is None:
        fields = meta
    out: dict[str, str] = {}
    for f in fields:
        if isinstance(f, Mapping):
            key = f.get("id") or f.get("fieldId")
            out[str(key)] = str(f.get("dataType"))
        else:  # afas_pipeline.afas.client.FieldMeta
            out[f.id] = f.data_type
    return out


def afas_drift(mapping: DestinationMapping, get_meta: Mapping[str, Any], update_meta: Mapping[str, Any], *,
               sources: AfasSources | None = None) -> list[str]:
    """Problems between the mapping and AFAS, as sentences; empty when everything fits.

    get_meta: GetConnector id -> what `GET /metainfo/get/{id}` returned (or its `fields`); needs the
        mapping's source connector plus the persons/organisations connectors of afas_sources.yaml that
        the mapping uses.
    update_meta: UpdateConnector id -> what `GET /metainfo/update/{id}` returned, for every connector
        the mapping writes back to.
    sources: the AFAS sources (default: the shipped mappings/afas_sources.yaml), for the person and
        organisation connector names.
    """
    sources = sources or default_sources()
    file = mapping.file or f"mappings/{mapping.destination}.yaml"
    connector_of = {entity: sources[ENTITY_SOURCE[entity]].connector  # type: ignore[index]
                    for entity in mapping.joined()}
    connector_of[mapping.base] = mapping.source.connector
    problems: list[str] = []
    types: dict[str, dict[str, str] | None] = {}
    for entity in mapping.columns():
        connector = connector_of[entity]
        types[entity] = _field_types(get_meta[connector]) if connector in get_meta else None
        if types[entity] is None:
            problems.append(f"{file}: GetConnector {connector} ({entity} fields): no metainfo given, so its fields "
                            f"cannot be checked; fetch GET /metainfo/get/{connector}")

    def check(path: str, entity: str, field: str, kind: str, rule: str) -> None:
        known = types.get(entity)
        if known is None:
            return
        connector = connector_of[entity]
        if field not in known:
            problems.append(
                f"{file}: {path} ({entity}.{field}): {rule}: GetConnector {connector} has no field '{field}'; add it "
                f"to the GetConnector in AFAS, or correct the name in the mapping (fields it has: "
                f"{', '.join(sorted(known))})")
        elif known[field] not in COMPATIBLE_TYPES[kind]:
            problems.append(
                f"{file}: {path} ({entity}.{field}): {rule}: GetConnector {connector} says {field} is "
                f"{known[field]}, but the mapping treats it as {kind}; change `type:` or map another field")

    # R9: the join keys (and a contact's kind) must be in the base connector, the entity keys in theirs.
    for field in BASE_COLUMNS[mapping.base]:
        if field == "ContactKind":  # R4: only persons at an organisation are synced
            check("source.connector", mapping.base, field, "text", "R4")
        else:
            check("source.connector", mapping.base, field, "key", "R9")
    for entity in mapping.joined():
        if entity in mapping.columns():
            check(f"{entity} join key", entity, ENTITY_KEY[entity], "key", "R9")
    for i, f in enumerate(mapping.source.filters):
        kind = "yes_no" if isinstance(f.equals, bool) else "text"
        check(f"source.filters[{i}].field", mapping.base, f.field, kind, "R8")
    check("external_id", mapping.base, mapping.external_id.field, "key", "R9")
    check("email.afas", mapping.email.afas.entity, mapping.email.afas.field, "text", "R5")
    for i, fm in enumerate(mapping.fields):
        check(f"fields[{i}].afas", fm.afas.entity, fm.afas.field, fm.type, "M1")
    for i, p in enumerate(mapping.permissions):
        check(f"permissions[{i}].afas", p.afas.entity, p.afas.field, "yes_no", "R6")
    check("blocked", mapping.blocked.entity, mapping.blocked.field, "yes_no", "R7")
    if mapping.hard_bounce is not None:
        check("hard_bounce", mapping.hard_bounce.entity, mapping.hard_bounce.field, "yes_no", "R11")
    if mapping.bounce is not None:
        for name, part in mapping.bounce.parts():
            check(f"bounce.{name}.afas", part.afas.entity, part.afas.field, BOUNCE_TYPES[name], "R16")

    # R13: every write-back target exists in its UpdateConnector with a type the value fits.
    update_types: dict[str, dict[str, str]] = {}
    for t in mapping.write_backs():
        here = f"{file}: {t.path}.write_back.field ({t.column} -> {t.connector}.{t.field}): R13"
        if t.connector not in update_meta:
            problems.append(f"{here}: no metainfo given for UpdateConnector {t.connector}; fetch "
                            f"GET /metainfo/update/{t.connector}")
            continue
        known = update_types.setdefault(t.connector, _field_types(update_meta[t.connector]))
        if t.field not in known:
            problems.append(f"{here}: UpdateConnector {t.connector} has no field '{t.field}' (a renamed or deleted "
                            f"free field?); copy the field id from GET /metainfo/update/{t.connector}")
        elif known[t.field] not in COMPATIBLE_TYPES[t.type]:
            problems.append(f"{here}: UpdateConnector {t.connector} says {t.field} is {known[t.field]}, but a "
                            f"{t.type} value is written to it; point write_back at a {t.type} field")
    return problems


def destination_drift(mapping: DestinationMapping, properties: Iterable[Mapping[str, Any]]) -> list[str]:
    """Problems between the mapping and the destination's property list, as sentences.

    properties: what the destination lists as its contact properties, `[{name, type, entries?}]` (Spotler's
    `GET contact/properties/list`; a Mailchimp adapter gives its merge fields and interests in the same
    shape). Permissions are looked up in the `entries` of every `set` property, by `bit` or `id`.
    """
    props = {str(p.get("name")): p for p in properties}
    file = mapping.file or f"mappings/{mapping.destination}.yaml"
    problems: list[str] = []
    permission_ids = {entry.get("bit", entry.get("id"))
                      for p in props.values() if p.get("type") == _SET_TYPE for entry in p.get("entries") or []}
    where = f"{mapping.destination}'s property list"

    email = props.get(mapping.email.property)
    if email is None:
        problems.append(f"{file}: email.property ({mapping.email.afas.column} -> {mapping.email.property}): R5: "
                        f"{where} has no property '{mapping.email.property}'; use the name of the e-mail property "
                        f"(it has: {', '.join(sorted(props))})")
    elif email.get("type") not in (None, "email"):
        problems.append(f"{file}: email.property ({mapping.email.afas.column} -> {mapping.email.property}): R5: "
                        f"'{mapping.email.property}' is of type {email.get('type')}, not email; use the e-mail "
                        f"property")
    for i, f in enumerate(mapping.fields):
        prop = props.get(f.property)
        here = f"{file}: fields[{i}].property ({f.afas.column} -> {f.property})"
        if prop is None:
            problems.append(f"{here}: M5: {where} has no property '{f.property}'; create it in "
                            f"{mapping.destination} or correct the name (it has: {', '.join(sorted(props))})")
        elif prop.get("type") == _SET_TYPE:
            problems.append(f"{here}: R6: '{f.property}' is a permission set, not a field; map permissions under "
                            f"`permissions:`")
    for i, p in enumerate(mapping.permissions):
        if p.key not in permission_ids:
            known = ", ".join(str(k) for k in sorted(permission_ids, key=str)) or "none"
            problems.append(f"{file}: permissions[{i}] ({p.afas.column} -> permission {p.key}): R6: {where} has no "
                            f"permission {p.key} (it has: {known}); create it or use an existing one")
    return problems


def subject_type_drift(mapping: DestinationMapping, subject_types: Iterable[Mapping[str, Any]]) -> list[str]:
    """R17: the mailing history's `subject_type` must be a dossier item type AFAS has, or every KnSubject
    POST is refused. Empty when the mapping has no `mailing_history` or the type exists.

    subject_types: the rows of GetConnector `Profit_SubjectTypes` (`{"SubjectTypeId", "Description", ...}`,
    as `GET /connectors/Profit_SubjectTypes` returns them or as `AfasClient.read` frames them). The types
    that do exist are listed by id and description (not personal data).
    """
    history = mapping.mailing_history
    if history is None:
        return []
    known: dict[int, str] = {}
    for row in subject_types:
        try:
            type_id = int(row[SUBJECT_TYPE_ID])
        except (KeyError, TypeError, ValueError):  # an empty id (pd.NA, None) is no type
            continue
        description = row.get(SUBJECT_TYPE_DESCRIPTION)
        known[type_id] = "" if description is None or description != description else str(description)
    if history.subject_type in known:
        return []
    file = mapping.file or f"mappings/{mapping.destination}.yaml"
    listing = ", ".join(f"{i} = {d}" if d else str(i) for i, d in sorted(known.items())) or "none"
    return [f"{file}: mailing_history.subject_type ({history.subject_type}): R17: AFAS has no dossier item type "
            f"{history.subject_type} (GetConnector {SUBJECT_TYPES_CONNECTOR}), so AFAS would refuse every KnSubject "
            f"POST of the mailing history; set subject_type to one of the types AFAS has, or create the type in "
            f"AFAS (types it has: {listing})"]


def live_subject_type_drift(afas: "AfasClient", mapping: DestinationMapping) -> list[str]:
    """`subject_type_drift` against what AFAS lists now: reads GetConnector `Profit_SubjectTypes` (when the
    mapping has `mailing_history`; otherwise no call). A token that may not read that connector, or a
    connector without the `SubjectTypeId` row key, is a problem too: the type could not be checked.
    Other AFAS errors (unavailable, ...) are raised, as for every other read."""
    history = mapping.mailing_history
    if history is None:
        return []
    file = mapping.file or f"mappings/{mapping.destination}.yaml"
    here = f"{file}: mailing_history.subject_type ({history.subject_type}): R17"
    try:
        rows, _ = afas.read(SUBJECT_TYPES_CONNECTOR, order_by=[SUBJECT_TYPE_ID])
    except AfasAuthError as exc:
        return [f"{here}: AFAS refused to read GetConnector {SUBJECT_TYPES_CONNECTOR} (status {exc.status_code}: it "
                f"is not in the App Connector of this token, or the token is wrong), so the dossier item type cannot "
                f"be checked before the mailing history writes KnSubject; add {SUBJECT_TYPES_CONNECTOR} to the App "
                f"Connector in AFAS"]
    except AfasConfigError as exc:
        return [f"{here}: GetConnector {SUBJECT_TYPES_CONNECTOR} has no field(s) "
                f"{', '.join(exc.missing_fields) or SUBJECT_TYPE_ID}, so the dossier item type cannot be checked; "
                f"use AFAS's standard {SUBJECT_TYPES_CONNECTOR}"]
    return subject_type_drift(mapping, rows.to_dict("records"))
