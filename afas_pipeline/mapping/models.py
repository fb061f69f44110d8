"""The mapping between AFAS and one destination, as pydantic models.

A mapping file (`mappings/<destination>.yaml`) is data; these models give it types and enforce the sync
rules that a file can break on its own (R5, R6, R7, R8, R9, R13 and the file rules M1..M4 of
`errors.py`). What depends on a live system (does the GetConnector still have the field? does the
destination still have the property?) is checked by `drift.py` against what the APIs return.

Nothing here knows Spotler beyond the `destination` name: a permission is identified by a `bit`
(Spotler's integer permission bits) or an `id` (a Mailchimp interest or marketing-permission id), and a
destination property is just a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    StrictBool,
    StrictStr,
    ValidationInfo,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from afas_pipeline.afas.filters import Condition, Filter, Op
from afas_pipeline.mapping.errors import Problem

Entity = Literal["contact", "person", "organisation", "debtor", "delivery_address"]
ENTITIES: tuple[Entity, ...] = ("contact", "person", "organisation", "debtor", "delivery_address")
#: Whose rows an audience is made of (`source.entity`): AFAS's contacts, or its customers (debtors, seed 002).
Base = Literal["contact", "debtor"]
FieldType = Literal["text", "yes_no", "table_link", "date", "number", "phone"]
Direction = Literal["to_destination", "both"]
UpdateConnector = Literal["KnContact", "KnPerson", "KnOrganisation"]

# The UpdateConnector that writes each entity (R15: a write-back touches only the entity it belongs to). AFAS
# updates debtors through KnSalesRelationOrg/KnSalesRelationPer, which this pipeline does not write.
ENTITY_CONNECTOR: dict[str, str] = {"contact": "KnContact", "person": "KnPerson", "organisation": "KnOrganisation"}
# The key of each entity's GetConnector row (R9).
ENTITY_KEY: dict[str, str] = {"contact": "ContactId", "person": "PersonId", "organisation": "OrganisationId",
                              "debtor": "DebtorId", "delivery_address": "Adres_ID"}
# The entity's section in mappings/afas_sources.yaml.
ENTITY_SOURCE: dict[str, str] = {"contact": "contacts", "person": "persons", "organisation": "organisations",
                                 "debtor": "debtors", "delivery_address": "delivery_addresses"}
# Per audience base, the entities joined to its rows: entity -> the base column holding that entity's key.
JOINS: dict[str, dict[str, str]] = {
    "contact": {"person": "PersonId", "organisation": "OrganisationId"},
    # The debtor card holds the name, address, phone and e-mail itself; its preferred delivery address joins.
    "debtor": {"delivery_address": "DeliveryAddressId"},
}
# A joined row that names its base row itself: an edit of it reaches the 15-minute delta through that key.
# (A contact row carries its person's and organisation's modified dates, so those need none.)
BACK_REFERENCES: dict[str, str] = {"delivery_address": "DebiteurID"}
# Always read from the base GetConnector: its key, the join keys (R9) and, for contacts, the kind (R4).
CONTACT_BASE_COLUMNS: tuple[str, ...] = ("ContactId", "PersonId", "OrganisationId", "ContactKind")
BASE_COLUMNS: dict[str, tuple[str, ...]] = {"contact": CONTACT_BASE_COLUMNS, "debtor": ("DebtorId", "DeliveryAddressId")}

# R5: the only e-mail fields a mapping may choose, per entity.
MAIL_FIELDS: dict[str, tuple[str, ...]] = {"contact": ("MailWork", "MailPrivate"), "person": ("MailWork", "MailPrivate"),
                                           "debtor": ("Email",)}
# R8: the only GetConnector filters allowed, as (field, value).
ALLOWED_FILTERS: dict[str, Any] = {"ContactKind": "PRS", "IsDebtor": True}
# R13: AFAS refuses updates of these from outside (seed 000: "Bedrijfsnaam, Straat, Huisnummer, Postcode,
# Woonplaats"), so they never flow back, neither as a GetConnector field nor as an UpdateConnector target.
PROTECTED_REFS = frozenset({"organisation.Name", "organisation.Street", "organisation.HouseNumber",
                            "organisation.PostalCode", "organisation.City"})
PROTECTED_TARGETS = frozenset({"Nm", "Ad", "HmNr", "ZpCd", "Rs"})
WRITE_BACK_TYPES = ("text", "yes_no")  # R13: only these AFAS field types flow back
# How each destination names its permissions: Spotler has integer bits, Mailchimp string ids.
PERMISSION_KEY: dict[str, str] = {"spotler": "bit", "mailchimp": "id"}

# A GetConnector row key; AFAS allows a dot in one (Profit_Deliveryaddress has `A_Toev_Huisnr.`).
_FIELD_ID = re.compile(r"[A-Za-z][A-Za-z0-9_.]*\Z")
_MODEL = ConfigDict(extra="forbid", frozen=True)


class FieldRef(BaseModel):
    """An AFAS field, written `<entity>.<Field>` in the file: the entity's GetConnector row key `Field`.

    `column` is the same text; it names the column in the joined audience frame.
    """

    model_config = _MODEL

    entity: Entity
    field: str

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, FieldRef) or isinstance(value, dict):
            return value
        if not isinstance(value, str):
            raise PydanticCustomError(
                "mapping_rule", "M1: expected an AFAS field written '<entity>.<Field>' (e.g. contact.MailWork), got {got}",
                {"rule": "M1", "got": repr(value)})
        entity, dot, field = value.strip().partition(".")
        if not dot or not _FIELD_ID.match(field):
            raise PydanticCustomError(
                "mapping_rule", "M1: {got} is not '<entity>.<Field>'; write e.g. person.FirstName, where FirstName "
                "is a row key of the entity's GetConnector (see mappings/afas_sources.yaml)",
                {"rule": "M1", "got": repr(value)})
        if entity not in ENTITIES:
            raise PydanticCustomError(
                "mapping_rule", "M1: {got} names entity '{entity}'; the entity is one of contact, person, "
                "organisation, debtor, delivery_address (the GetConnectors of mappings/afas_sources.yaml)",
                {"rule": "M1", "got": repr(value), "entity": entity})
        return {"entity": entity, "field": field}

    @property
    def column(self) -> str:
        return f"{self.entity}.{self.field}"

    @model_serializer
    def _as_text(self) -> str:
        return self.column

    def __str__(self) -> str:
        return self.column


class WriteBack(BaseModel):
    """Where a value from the destination is written in AFAS: an UpdateConnector and its field id
    (as `GET /metainfo/update/<connector>` lists it; free fields are `U<32 hex>`)."""

    model_config = _MODEL

    connector: UpdateConnector
    field: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")


class FieldMapping(BaseModel):
    """One AFAS field sent to one destination property, and optionally back (R13)."""

    model_config = _MODEL

    afas: FieldRef
    type: FieldType
    property: str = Field(min_length=1)
    direction: Direction = "to_destination"
    write_back: WriteBack | None = None


class PermissionMapping(BaseModel):
    """An AFAS yes/no field mapped to one destination permission (R6): a Spotler permission `bit`, or
    the `id` of a Mailchimp interest / marketing permission."""

    model_config = _MODEL

    afas: FieldRef
    bit: int | None = Field(default=None, ge=1, strict=True)
    id: str | None = Field(default=None, min_length=1)
    write_back: WriteBack | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> PermissionMapping:
        if (self.bit is None) == (self.id is None):
            raise PydanticCustomError(
                "mapping_rule", "M2: give the destination permission as exactly one of `bit` (Spotler: an integer "
                "permission bit, e.g. bit: 1) or `id` (Mailchimp: an interest or marketing-permission id)",
                {"rule": "M2"})
        return self

    @property
    def key(self) -> int | str:
        """The destination's identifier of this permission (the Spotler bit, or the Mailchimp id)."""
        return self.bit if self.bit is not None else self.id  # type: ignore[return-value]


class EmailMapping(BaseModel):
    """The one AFAS e-mail field (R5) and the destination property that holds the address."""

    model_config = _MODEL

    afas: FieldRef
    property: str = Field(min_length=1)


class SourceFilter(BaseModel):
    """`field = value` on the contacts GetConnector (R8 allows only two of these)."""

    model_config = _MODEL

    field: str = Field(min_length=1)
    equals: StrictStr | StrictBool

    def condition(self) -> Condition:
        return Condition(self.field, Op.EQ, self.equals)


class SourceSpec(BaseModel):
    """Whose rows the audience is made of (AFAS's contacts, or its debtors), the GetConnector they come from,
    and its (R8-limited) filters."""

    model_config = _MODEL

    entity: Base = "contact"
    connector: str = Field(min_length=1)
    filters: tuple[SourceFilter, ...] = ()

    def afas_filter(self) -> Filter | None:
        """The filters ANDed together, ready for `AfasClient.read(filters=...)`; None without filters."""
        if not self.filters:
            return None
        combined = Filter.of(self.filters[0].condition())
        for extra in self.filters[1:]:
            combined = combined & extra.condition()
        return combined


class BounceField(BaseModel):
    """One bounce detail in AFAS, optionally written back from the destination's bounce feed (R16)."""

    model_config = _MODEL

    afas: FieldRef
    write_back: WriteBack | None = None


class BounceMapping(BaseModel):
    """Optional bounce detail (R16): the bounce date, its type (soft/hard) and a separate hard-bounce flag."""

    model_config = _MODEL

    date: BounceField
    type: BounceField | None = None
    hard: BounceField | None = None

    def parts(self) -> list[tuple[str, BounceField]]:
        return [(name, part) for name, part in (("date", self.date), ("type", self.type), ("hard", self.hard))
                if part is not None]


# What a bounce part holds, for R13-style type checks in AFAS (date, text, yes/no).
BOUNCE_TYPES: dict[str, str] = {"date": "date", "type": "text", "hard": "yes_no"}


Interaction = Literal["opened", "clicked", "bounced"]


class MailingHistoryMapping(BaseModel):
    """R17 (optional): one AFAS dossier item (KnSubject) per mailing per contact, with the chosen
    interactions added to it as dated reactions. Only mailings sent at or after `enabled_from`."""

    model_config = _MODEL

    enabled_from: datetime
    mailings: Literal["all", "trend_reports"] = "all"
    interactions: tuple[Interaction, ...] = ()
    subject_type: int = Field(ge=1, strict=True)

    @field_validator("enabled_from", mode="before")
    @classmethod
    def _utc_instant(cls, value: Any) -> Any:
        example = "write e.g. `enabled_from: 2026-11-01T00:00:00Z`"
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise PydanticCustomError(
                    "mapping_rule", "R17: {got} has no time zone; the moment the history was switched on is a UTC "
                    "date-time ending in Z (or with an offset); " + example, {"rule": "R17", "got": value.isoformat(" ")})
            return value.astimezone(timezone.utc)
        if isinstance(value, date):
            raise PydanticCustomError(
                "mapping_rule", "R17: {got} is a date; give the moment the history was switched on as a UTC "
                "date-time; " + example, {"rule": "R17", "got": value.isoformat()})
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return parsed.astimezone(timezone.utc)
        raise PydanticCustomError(
            "mapping_rule", "R17: {got} is not a UTC date-time; " + example, {"rule": "R17", "got": repr(value)})

    @field_validator("interactions")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise PydanticCustomError(
                "mapping_rule", "R17: {twice} listed twice; name each interaction at most once",
                {"rule": "R17", "twice": ", ".join(twice)})
        return value


@dataclass(frozen=True)
class WriteBackTarget:
    """One AFAS field that may be written from the destination (R13), and what feeds it.

    origin "field": `source` is the destination property; "permission": the permission bit/id;
    "bounce": the bounce part ("date", "type" or "hard").
    """

    path: str  # the mapping entry, e.g. "fields[8]"
    column: str  # the AFAS column, e.g. "contact.Function"
    connector: str  # the UpdateConnector, e.g. "KnContact"
    field: str  # its field id, e.g. "FuDs"
    origin: Literal["field", "permission", "bounce"]
    source: str | int
    type: str  # text | yes_no | date


class DestinationMapping(BaseModel):
    """Everything one destination needs to know about AFAS: see `mappings/spotler.yaml` for a commented
    example. Construct it through `load.load_mapping`, which adds the file name to every error."""

    model_config = _MODEL

    destination: Literal["spotler", "mailchimp"]
    source: SourceSpec
    external_id: FieldRef
    email: EmailMapping
    fields: tuple[FieldMapping, ...] = ()
    permissions: tuple[PermissionMapping, ...] = ()
    blocked: FieldRef
    hard_bounce: FieldRef | None = None
    bounce: BounceMapping | None = None
    mailing_history: MailingHistoryMapping | None = None

    _file: str | None = PrivateAttr(default=None)

    @property
    def file(self) -> str | None:
        """The file this mapping was loaded from (None when built in code); drift messages name it."""
        return self._file

    @model_validator(mode="after")
    def _keeps_the_rules(self, info: ValidationInfo) -> DestinationMapping:
        connectors = (info.context or {}).get("connectors")
        problems = rule_problems(self, connectors=connectors)
        if problems:
            text = "; ".join(p.render(None) for p in problems)
            raise PydanticCustomError("mapping_rule", "{text}", {"text": text, "problems": problems})
        return self

    # -- helpers for the sync --

    @property
    def base(self) -> str:
        """The entity one audience row (one destination record) is: `contact` or `debtor`."""
        return self.source.entity

    def joined(self) -> dict[str, str]:
        """The entities joined to the base rows: entity -> the base column holding its key."""
        return JOINS[self.base]

    def refs(self) -> list[tuple[str, FieldRef]]:
        """Every AFAS field the file names, with its path in the file, in file order."""
        out: list[tuple[str, FieldRef]] = [("external_id", self.external_id), ("email.afas", self.email.afas)]
        out += [(f"fields[{i}].afas", f.afas) for i, f in enumerate(self.fields)]
        out += [(f"permissions[{i}].afas", p.afas) for i, p in enumerate(self.permissions)]
        out.append(("blocked", self.blocked))
        if self.hard_bounce is not None:
            out.append(("hard_bounce", self.hard_bounce))
        if self.bounce is not None:
            out += [(f"bounce.{name}.afas", part.afas) for name, part in self.bounce.parts()]
        return out

    def columns(self) -> dict[str, list[str]]:
        """Per entity, the GetConnector fields to read, for the join.

        The base is always present and starts with its key and join keys (R9): for contacts ContactId,
        PersonId, OrganisationId and ContactKind (R4), then the filter fields. A joined entity appears only
        when the mapping uses it, starting with its key (PersonId, OrganisationId, Adres_ID).
        """
        wanted: dict[str, dict[str, None]] = {self.base: dict.fromkeys(BASE_COLUMNS[self.base])}
        for f in self.source.filters:
            wanted[self.base][f.field] = None
        for _, ref in self.refs():
            wanted.setdefault(ref.entity, {ENTITY_KEY[ref.entity]: None})[ref.field] = None
        return {entity: list(fields) for entity, fields in sorted(wanted.items(), key=lambda kv: ENTITIES.index(kv[0]))}

    def properties(self) -> list[tuple[str, str]]:
        """(column, destination property) in file order, the e-mail first."""
        return [(self.email.afas.column, self.email.property)] + [(f.afas.column, f.property) for f in self.fields]

    def permission_keys(self) -> list[tuple[str, int | str]]:
        """(column, destination permission bit or id) in file order (R6)."""
        return [(p.afas.column, p.key) for p in self.permissions]

    def two_way_fields(self) -> list[tuple[str, str]]:
        """(destination property, type) of the fields that also flow back (`direction: both`), in file order."""
        return [(str(t.source), t.type) for t in self.write_backs() if t.origin == "field"]

    def write_backs(self) -> list[WriteBackTarget]:
        """The AFAS fields allowed to flow back (R13), with their AFAS target, in file order."""
        out = [WriteBackTarget(f"fields[{i}]", f.afas.column, f.write_back.connector, f.write_back.field, "field",
                               f.property, f.type)
               for i, f in enumerate(self.fields) if f.write_back is not None]
        out += [WriteBackTarget(f"permissions[{i}]", p.afas.column, p.write_back.connector, p.write_back.field,
                                "permission", p.key, "yes_no")
                for i, p in enumerate(self.permissions) if p.write_back is not None]
        if self.bounce is not None:
            out += [WriteBackTarget(f"bounce.{name}", part.afas.column, part.write_back.connector, part.write_back.field,
                                    "bounce", name, BOUNCE_TYPES[name])
                    for name, part in self.bounce.parts() if part.write_back is not None]
        return out


# --- the rules a file can break on its own -------------------------------------------------------------


def rule_problems(m: DestinationMapping, *, connectors: dict[str, str] | None = None) -> list[Problem]:
    """Every load-time rule the mapping breaks. `connectors` are the GetConnectors of mappings/afas_sources.yaml
    by entity (R9: the source must be the base entity's); None skips that one check."""
    problems: list[Problem] = []
    problems += _r9_identity(m, connectors)
    problems += _m1_entities(m)
    problems += _r8_filters(m)
    problems += _r5_email(m)
    problems += _m3_unique_properties(m)
    problems += _r6_permissions(m)
    problems += _r7_r11_contact_flags(m)
    problems += _r13_write_backs(m)
    problems += _m4_unique_targets(m)
    return problems


def _ctx(ref: FieldRef, to: str) -> str:
    return f"{ref.column} -> {to}"


def _r9_identity(m: DestinationMapping, connectors: dict[str, str] | None) -> list[Problem]:
    out = []
    identity = f"{m.base}.{ENTITY_KEY[m.base]}"
    if m.external_id.column != identity:
        out.append(Problem(
            "external_id", "R9",
            f"the destination's external id must be {identity} (one AFAS {m.base} is one destination "
            f"record, C2), not {m.external_id.column}; write `external_id: {identity}`",
            _ctx(m.external_id, "externalId")))
    expected = (connectors or {}).get(ENTITY_SOURCE[m.base])
    if connectors is not None and m.source.connector != expected:
        section = ENTITY_SOURCE[m.base]
        out.append(Problem(
            "source.connector", "R9",
            f"the source is GetConnector '{m.source.connector}', but the {section} GetConnector in "
            f"mappings/afas_sources.yaml is '{expected}' (the one checked for "
            f"{', '.join(BASE_COLUMNS[m.base])}); write `connector: {expected}` or change {section}.connector there"
            if expected else
            f"the source is AFAS's {section}, but mappings/afas_sources.yaml has no `{section}:` block; copy it "
            f"from the project's mappings/afas_sources.yaml"))
    return out


def _m1_entities(m: DestinationMapping) -> list[Problem]:
    """An audience of contacts reads contacts, persons and organisations; one of debtors reads the debtor card
    and its delivery address (the debtor card holds the name, phone and e-mail itself)."""
    allowed = (m.base, *m.joined())
    return [
        Problem(path, "M1", f"{ref.column} is not read for an audience of {ENTITY_SOURCE[m.base]} "
                            f"(`source.entity: {m.base}`), which reads {', '.join(allowed)} fields only; map "
                            f"a field of those", str(ref))
        for path, ref in m.refs() if ref.entity not in allowed and path != "external_id"
    ]


def _r8_filters(m: DestinationMapping) -> list[Problem]:
    out: list[Problem] = []
    if m.base != "contact" and m.source.filters:
        return [Problem("source.filters", "R8", f"an audience of {ENTITY_SOURCE[m.base]} takes no filters (every "
                                                "debtor is a customer); remove `filters:`")]
    allowed = "`{field: ContactKind, equals: PRS}` and `{field: IsDebtor, equals: true}`"
    seen: set[str] = set()
    for i, f in enumerate(m.source.filters):
        path = f"source.filters[{i}]"
        if f.field not in ALLOWED_FILTERS:
            out.append(Problem(
                f"{path}.field", "R8",
                f"filtering the GetConnector on '{f.field}' is not allowed: a contact filtered out stays unchanged in "
                f"the destination for ever (R10), e.g. a blocked contact would keep its permissions. Only {allowed} "
                f"exist; remove this filter (blocked contacts are handled by R7, not by filtering)"))
        elif f.equals != ALLOWED_FILTERS[f.field] or type(f.equals) is not type(ALLOWED_FILTERS[f.field]):
            expected = "true" if ALLOWED_FILTERS[f.field] is True else ALLOWED_FILTERS[f.field]
            out.append(Problem(
                f"{path}.equals", "R8",
                f"the filter on {f.field} may only be `equals: {expected}`, not {f.equals!r}; only {allowed} exist"))
        elif f.field in seen:
            out.append(Problem(f"{path}.field", "R8", f"the filter on {f.field} is listed twice; remove one"))
        seen.add(f.field)
    return out


def _r5_email(m: DestinationMapping) -> list[Problem]:
    out = []
    ref = m.email.afas
    if ref.field not in MAIL_FIELDS.get(ref.entity, ()):
        choices = [f"{entity}.{field}" for entity in (m.base, *m.joined()) for field in MAIL_FIELDS.get(entity, ())]
        out.append(Problem(
            "email.afas", "R5",
            f"the e-mail must come from {' or '.join(choices)}, not {ref.column}; write `afas: {choices[0]}`",
            _ctx(ref, m.email.property)))
    for i, f in enumerate(m.fields):
        if f.property == m.email.property:
            out.append(Problem(
                f"fields[{i}].property", "R5",
                f"property '{f.property}' already holds the e-mail address (email.property); exactly one AFAS "
                f"e-mail field feeds it. Remove this entry or choose the e-mail field under `email:`",
                _ctx(f.afas, f.property)))
        elif f.afas.field in MAIL_FIELDS.get(f.afas.entity, ()):
            out.append(Problem(
                f"fields[{i}].afas", "R5",
                f"{f.afas.column} is an e-mail field and exactly one AFAS e-mail field is mapped (under `email:`, "
                f"now {ref.column}); remove this entry",
                _ctx(f.afas, f.property)))
    return out


def _m3_unique_properties(m: DestinationMapping) -> list[Problem]:
    out, first = [], {}
    for i, f in enumerate(m.fields):
        if f.property in first:
            out.append(Problem(
                f"fields[{i}].property", "M3",
                f"property '{f.property}' is already fed by fields[{first[f.property]}] "
                f"({m.fields[first[f.property]].afas.column}); each destination property gets one AFAS field, "
                f"remove one of the two",
                _ctx(f.afas, f.property)))
        first.setdefault(f.property, i)
    return out


def _r6_permissions(m: DestinationMapping) -> list[Problem]:
    out, first = [], {}
    key_name = PERMISSION_KEY[m.destination]
    for i, p in enumerate(m.permissions):
        label = f"permission {key_name} {p.key}"
        if getattr(p, key_name) is None:
            out.append(Problem(
                f"permissions[{i}]", "R6",
                f"{m.destination} identifies a permission by `{key_name}`"
                + (" (an integer permission bit, e.g. bit: 1)" if key_name == "bit" else " (a string id)")
                + f"; replace `{'id' if key_name == 'bit' else 'bit'}:` with `{key_name}:`",
                _ctx(p.afas, label)))
            continue
        if p.key in first:
            out.append(Problem(
                f"permissions[{i}].{key_name}", "R6",
                f"{key_name} {p.key} is already mapped by permissions[{first[p.key]}] "
                f"({m.permissions[first[p.key]].afas.column}); each destination permission gets one AFAS yes/no "
                f"field, use another {key_name} or remove one entry",
                _ctx(p.afas, label)))
        first.setdefault(p.key, i)
    return out


def _r7_r11_contact_flags(m: DestinationMapping) -> list[Problem]:
    out = []
    own = f"{m.base}.Blocked"
    if m.blocked.entity != m.base:
        out.append(Problem("blocked", "R7", f"the blocked flag is the {m.base}'s own ({own}), not "
                           f"{m.blocked.column}; write `blocked: {own}`", _ctx(m.blocked, "all permissions off")))
    if m.hard_bounce is not None and m.hard_bounce.entity != m.base:
        out.append(Problem("hard_bounce", "R11", f"the hard-bounce flag is a {m.base} field, not "
                           f"{m.hard_bounce.column}", _ctx(m.hard_bounce, "inactive")))
    if m.base != "contact" and m.mailing_history is not None:
        out.append(Problem("mailing_history", "R17", "the mailing history files dossier items on AFAS contacts; an "
                           f"audience of {ENTITY_SOURCE[m.base]} has none, remove `mailing_history:`"))
    elif m.destination != "spotler" and m.mailing_history is not None and m.mailing_history.mailings != "all":
        out.append(Problem("mailing_history.mailings", "R17", f"trend reports are Spotler's; {m.destination} "
                           "campaigns are all mailings, write `mailings: all`"))
    return out


def _target_problems(path: str, ref: FieldRef, wb: WriteBack, context: str) -> list[Problem]:
    out = []
    if wb.field in PROTECTED_TARGETS:
        out.append(Problem(
            f"{path}.write_back.field", "R13",
            f"{wb.connector}.{wb.field} is a company name / street / house number / postal code / city field, "
            f"which AFAS does not let an integration update; remove the write_back", context))
    expected = ENTITY_CONNECTOR.get(ref.entity)
    if expected is None:
        out.append(Problem(
            f"{path}.write_back", "R13",
            f"{ref.column} is a field of the {ref.entity}, which AFAS updates through KnSalesRelationOrg/Per; this "
            f"pipeline writes only contacts, persons and organisations, so remove the write_back", context))
    elif wb.connector != expected:
        out.append(Problem(
            f"{path}.write_back.connector", "R13",
            f"{ref.column} is a field of the {ref.entity}, so it is written back through {expected}, not "
            f"{wb.connector} (a write-back touches only the entity whose field changed, R15); write "
            f"`connector: {expected}`", context))
    return out


def _r13_write_backs(m: DestinationMapping) -> list[Problem]:
    out: list[Problem] = []
    for i, f in enumerate(m.fields):
        path, context = f"fields[{i}]", _ctx(f.afas, f.property)
        if f.direction != "both" and f.write_back is None:
            continue
        if f.type == "table_link":
            out.append(Problem(
                f"{path}.direction" if f.direction == "both" else f"{path}.write_back", "R13",
                "table-link fields flow to the destination but never back to AFAS; remove `direction: both` and "
                "`write_back`", context))
            continue
        if f.type not in WRITE_BACK_TYPES:
            out.append(Problem(
                f"{path}.type", "R13",
                f"only AFAS fields of type text or yes_no flow back, this one is {f.type}; remove `direction: both` "
                f"and `write_back`", context))
            continue
        if f.afas.column in PROTECTED_REFS:
            out.append(Problem(
                f"{path}.direction" if f.direction == "both" else f"{path}.write_back", "R13",
                f"{f.afas.column} (company name, street, house number, postal code or city) is never written to "
                f"AFAS; remove `direction: both` and `write_back`", context))
            continue
        if f.direction == "both" and f.write_back is None and f.afas.entity not in ENTITY_CONNECTOR:
            out.append(Problem(
                f"{path}.direction", "R13", f"{f.afas.column} is a field of the {f.afas.entity}, which this "
                "pipeline never writes in AFAS; remove `direction: both`", context))
            continue
        if f.direction == "both" and f.write_back is None:
            out.append(Problem(
                f"{path}.write_back", "R13",
                f"`direction: both` needs the AFAS field to write to; add e.g. `write_back: {{connector: "
                f"{ENTITY_CONNECTOR[f.afas.entity]}, field: <field id from GET /metainfo/update/"
                f"{ENTITY_CONNECTOR[f.afas.entity]}>}}`, or drop `direction: both`", context))
            continue
        if f.direction != "both":
            out.append(Problem(
                f"{path}.direction", "R13",
                "`write_back` is set but the direction is to_destination; write `direction: both` to let the value "
                "flow back, or remove `write_back`", context))
            continue
        out += _target_problems(path, f.afas, f.write_back, context)  # type: ignore[arg-type]
    for i, p in enumerate(m.permissions):
        if p.write_back is not None:
            out += _target_problems(f"permissions[{i}]", p.afas, p.write_back,
                                    _ctx(p.afas, f"permission {PERMISSION_KEY[m.destination]} {p.key}"))
    if m.bounce is not None:
        for name, part in m.bounce.parts():
            if part.write_back is not None:
                out += _target_problems(f"bounce.{name}", part.afas, part.write_back, _ctx(part.afas, f"bounce {name}"))
    return out


def _m4_unique_targets(m: DestinationMapping) -> list[Problem]:
    out, first = [], {}
    for target in m.write_backs():
        key = (target.connector, target.field)
        if key in first:
            out.append(Problem(
                f"{target.path}.write_back.field", "M4",
                f"{target.connector}.{target.field} is already written back by {first[key]}; two destination values "
                f"would overwrite each other in AFAS, remove one write_back",
                f"{target.column} -> {target.source}"))
        first.setdefault(key, target.path)
    return out
