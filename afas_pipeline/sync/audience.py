"""Who goes to a destination, and why the others do not: the audience rules as plain DataFrame work.

`build_audience` takes the AFAS reads of the mapping's base (contacts, or debtors) and of the entities
joined to it (a contact's person and organisation; a debtor's delivery address), and returns one row per
input row of the base: either a member, with its mapped values, or an excluded row naming the rule that
left it out. Input = members + excluded, always (C4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT

from afas_pipeline.afas.sources import AfasSources
from afas_pipeline.lib.frames import object_values, only_columns
from afas_pipeline.lib.privacy import hash_bytes, hash_many
from afas_pipeline.mapping.models import BACK_REFERENCES, ENTITY_KEY, ENTITY_SOURCE, DestinationMapping

#: Why a contact is not in the audience. Keys are the rule ids that tests and metadata use.
EXCLUSION_RULES: dict[str, str] = {
    "R4": "not a person at an organisation (loose person, department, ...)",
    "R8": "left out by a source filter of the mapping (e.g. debtors only)",
    "R3": "no e-mail address in the mapped e-mail field",
    "R3-syntax": "the e-mail address is not a valid address",
    "C2": "the same contact appeared more than once in the read; the latest row is kept",
    "P2": "its person is to be, or was, erased (an erasure request, or marked for erasure in AFAS)",
}

PERSON_KINDS_AT_ORGANISATION = "PRS"


@dataclass(frozen=True)
class Audience:
    """`rows`: one row per input contact. Members have `excluded_by` null."""

    rows: pd.DataFrame
    input_rows: int

    @property
    def members(self) -> pd.DataFrame:
        return audience_members(self.rows)

    @property
    def excluded(self) -> pd.DataFrame:
        return self.rows[self.rows["excluded_by"].notna()]

    def excluded_counts(self) -> dict[str, int]:
        counts = self.rows["excluded_by"].value_counts()  # the members' null not counted
        return {rule: int(counts.get(rule, 0)) for rule in EXCLUSION_RULES}


def audience_members(rows: pd.DataFrame) -> pd.DataFrame:
    """The members of an audience's rows (no rule left them out). An audience holds its members first
    (`_members_first`), so they are its first rows: a slice, not a copy of every column (about 270 MB at 1,000,000
    contacts). Rows in another order (an audience stored before that order) are picked out one by one."""
    member = rows["excluded_by"].isna()
    count = int(member.sum())
    return rows.iloc[:count] if member.iloc[:count].all() else rows[member]


def property_column(name: str) -> str:
    return f"prop:{name}"


def permission_column(key: int | str) -> str:
    """What the destination should show: AFAS's permission, off while the contact is blocked (R7)."""
    return f"perm:{key}"


def afas_permission_column(key: int | str) -> str:
    """AFAS's own permission field, before blocking: consent (C1) is about this one."""
    return f"afas_perm:{key}"


def field_hash_column(name: str) -> str:
    """The hash of a two-way property's value (`direction: both`): diffed on its own, like a permission,
    so a change made in the destination can be told from an echo of the value last sent."""
    return f"field_hash:{name}"


YES = frozenset({"1", "true", "yes", "y", "ja", "j"})
NO = frozenset({"0", "false", "no", "n", "nee"})


def field_value(value: object, kind: str) -> str | bool | None:
    """A two-way field's value in one form on both sides: text trimmed (empty means none), yes/no as a
    bool, whether it comes from AFAS (`True`, "Manager") or from the destination ("yes", "Manager ")."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    if kind == "yes_no":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in YES else False if text in NO else None
    text = str(value).strip()
    return text or None


def field_hash(value: object, kind: str) -> str:
    """The hash kept in the sync state for a two-way field's value (never the value itself)."""
    return hash_bytes(orjson.dumps(field_value(value, kind)))


def field_hashes(values: pd.Series, kind: str) -> pd.Series:
    """`field_hash` over a column, each distinct value hashed once: a two-way field (a function, a yes/no) holds
    few distinct values among many rows. A column of Python objects is hashed value by value, as values pandas
    takes for equal (True and 1) can differ as text."""
    if values.dtype == object:
        return pd.Series([field_hash(v, kind) for v in values], index=values.index, dtype="string")
    codes, distinct = pd.factorize(values)
    hashes = np.array([field_hash(v, kind) for v in distinct] + [field_hash(None, kind)], dtype=object)
    return pd.Series(hashes[codes], index=values.index, dtype="string")  # code -1 (missing) takes the last


def audience_columns(mapping: DestinationMapping, sources: AfasSources, *, delta: bool) -> dict[str, list[str]]:
    """Per AFAS read an audience is made of (its base and the entities joined to it), the fields its step uses:
    the mapping's (`columns()`: keys, join keys, ContactKind, filter fields, mapped fields; only the key of a
    joined entity the mapping names no field of), the base's modified dates (C1, C2) and erasure flag (P2), and in a
    delta the field a joined row names its base row by (`BACK_REFERENCES`: the base rows it completes)."""
    used = mapping.columns()
    base = sources[ENTITY_SOURCE[mapping.base]]
    out: dict[str, list[str]] = {}
    for entity in (mapping.base, *mapping.joined()):
        fields = list(used.get(entity, [ENTITY_KEY[entity]]))
        if entity == mapping.base:
            fields += [*base.modified, *([base.erase_flag] if base.erase_flag else [])]
        elif delta and entity in BACK_REFERENCES:
            fields.append(BACK_REFERENCES[entity])
        out[entity] = list(dict.fromkeys(fields))
    return out


def qualify(df: pd.DataFrame, entity: str) -> pd.DataFrame:
    """Prefix every column with its entity, the way mappings refer to them (`person.LastName`)."""
    return df.rename(columns={c: f"{entity}.{c}" for c in df.columns})


def join_entities(base: pd.DataFrame, related: Mapping[str, pd.DataFrame], mapping: DestinationMapping,
                  modified: Sequence[str] = ()) -> pd.DataFrame:
    """The base rows (contacts, or debtors) with their joined entities' fields, one row per base row: a
    contact's person and organisation, a debtor's preferred delivery address. Only the fields the mapping uses
    (`columns()`) and the base's `modified` dates are joined: a read may hold more (a delta's rows read by key)."""
    used = mapping.columns()
    joined = qualify(only_columns(base, [*used[mapping.base], *modified]), mapping.base)
    for entity, via in mapping.joined().items():
        frame = related.get(entity)
        if frame is None or not len(frame.columns):
            continue
        key = ENTITY_KEY[entity]
        rows = qualify(only_columns(frame, used.get(entity, [key])).drop_duplicates(key, keep="last"), entity)
        left, right = f"{mapping.base}.{via}", f"{entity}.{key}"
        if joined[left].dtype != rows[right].dtype:  # an id read as int on one side, text or float on the other
            joined[left], rows[right] = _key_text(joined[left]), _key_text(rows[right])
        joined = joined.merge(rows, how="left", left_on=left, right_on=right)
    return joined


def _key_text(ids: pd.Series) -> pd.Series:
    """Ids as text, a whole number written without ".0" (an int column with a gap arrives as floats)."""
    if pd.api.types.is_numeric_dtype(ids):
        return ids.astype("Float64").astype("Int64").astype("string")
    return ids.astype("string")


def normalise_email(value: object) -> str | None:
    """C2: addresses are compared trimmed and lower-cased; empty means none."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    text = str(value).strip().lower()
    return text or None


#: What Python's `str.strip()` removes from ASCII text (it counts \x1c-\x1f as white space; Unicode does not).
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def normalise_emails(values: pd.Series) -> pd.Series:
    """`normalise_email` over a column (string dtype): ASCII text trimmed and lower-cased by Arrow in one pass,
    any other text one value at a time, as Python's Unicode case rules differ from Arrow's."""
    try:
        text = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not text: each value as normalise_email takes it
        return values.map(normalise_email).astype("string")
    ascii_ = pc.fill_null(pc.string_is_ascii(text), True)
    quick = pc.ascii_lower(pc.utf8_trim(text, _ASCII_WHITESPACE))
    out = pd.Series(quick.to_pandas(types_mapper=pd.ArrowDtype), index=values.index).astype("string")
    others = ~ascii_.to_numpy(zero_copy_only=False)
    if others.any():
        out[others] = values[others].map(normalise_email).astype("string")
    return out.mask(out == "")


#: A plain ASCII address, as `is_valid_email` takes it without email-validator: a dot-atom local part and a plain
#: host name (`_PLAIN_DOMAIN`), in RE2 (Arrow's regular expressions); the lengths and names are checked apart.
_PLAIN_ADDRESS = (r"^[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+(?:\.[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+)*"
                  r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z0-9][a-z0-9-]{0,61})?[a-z]$")


def valid_emails(addresses: pd.Series) -> pd.Series:
    """`is_valid_email` over a column of normalised addresses (a missing one is not valid): the plain ones judged by
    Arrow in one pass, the rest one at a time. The same verdict for every value (a property test checks it)."""
    text = pa.array(addresses, type=pa.string(), from_pandas=True)
    at = pc.find_substring(text, "@")
    length = pc.utf8_length(text)
    plain = pc.and_(pc.match_substring_regex(text, _PLAIN_ADDRESS), pc.less_equal(length, 254))
    plain = pc.and_(plain, pc.less_equal(at, _LOCAL_WITH_EXAMPLE_MAX))
    plain = pc.and_(plain, pc.less_equal(pc.subtract(pc.subtract(length, at), 1), _DOMAIN_WITH_POSTMASTER_MAX))
    plain = pc.and_not(plain, pc.match_substring_regex(text, _UNPLAIN_DOMAIN))
    valid = pc.fill_null(plain, False).to_numpy(zero_copy_only=False)
    others = ~valid & addresses.notna().to_numpy()
    valid[others] = [is_valid_email(a) for a in addresses[others]]
    return pd.Series(valid, index=addresses.index)


def is_valid_email(address: str) -> bool:
    """Syntax only (no DNS), with email-validator's verdicts. The two halves are checked apart: a plain ASCII
    half by the rules email-validator would apply to it (its per-character Unicode and IDNA steps cost
    milliseconds and change nothing there), any other by email-validator itself, once per distinct value."""
    local, at, domain = address.rpartition("@")
    return bool(at) and len(address) <= 254 and _valid_local_part(local) and _valid_domain(domain)


#: `local@example.com` is at most 254 characters long (email-validator's length rule).
_LOCAL_WITH_EXAMPLE_MAX = 254 - len("@example.com")


def _valid_local_part(local: str) -> bool:
    # Nearly every local part is plain ASCII dot-atom: email-validator's own first test, which accepts it as it
    # is, so only its length rule is left to apply. The rest (quotes, Unicode) goes through the library, which
    # walks the address character by character.
    if len(local) <= _LOCAL_WITH_EXAMPLE_MAX and DOT_ATOM_TEXT.match(local):
        return True
    return _valid_unusual_local_part(local)


@lru_cache(maxsize=65536)
def _valid_unusual_local_part(local: str) -> bool:
    return _validates(f"{local}@example.com")


#: Lower-case letters, digits and inner hyphens in labels of at most 63, at least one dot, ending in a letter.
_PLAIN_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z0-9][a-z0-9-]{0,61})?[a-z]\Z")
#: email-validator's special-use names (as the library has them when this module loads), and as parent domains.
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)
_SPECIAL_USE_SUFFIXES = tuple(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)
#: `postmaster@domain` is at most 254 characters long.
_DOMAIN_WITH_POSTMASTER_MAX = 254 - len("postmaster@")
#: Host names `_valid_domain` leaves to the library (a "--", a special-use name), as RE2 on a whole address.
_UNPLAIN_DOMAIN = "@.*--|@(?:.*\\.)?(?:" + "|".join(re.escape(n) for n in SPECIAL_USE_DOMAIN_NAMES) + ")$"


def _valid_domain(domain: str) -> bool:
    # A plain ASCII host name passes each of email-validator's domain rules as it is (Unicode mapping and IDNA
    # change nothing in it; "--" is left to the library for its Punycode rules), unless it is a special-use name.
    # Anything else goes through the library, which checks it character by character.
    if len(domain) <= _DOMAIN_WITH_POSTMASTER_MAX and _PLAIN_DOMAIN.match(domain) and "--" not in domain \
            and domain not in _SPECIAL_USE and not domain.endswith(_SPECIAL_USE_SUFFIXES):
        return True
    return _valid_unusual_domain(domain)


@lru_cache(maxsize=65536)
def _valid_unusual_domain(domain: str) -> bool:
    return _validates(f"postmaster@{domain}")


def _validates(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def build_audience(base: pd.DataFrame, related: Mapping[str, pd.DataFrame], mapping: DestinationMapping,
                   modified: Sequence[str] = ()) -> Audience:
    """`base`: the rows of `mapping.base` (contacts or debtors); `related`: the joined entities' rows by entity
    (`person`, `organisation`; `delivery_address`); `modified`: the base's modified-date fields (the latest
    row of a record read twice is kept, C2; the latest of them is the record's AFAS change, C1)."""
    input_rows = len(base)
    joined = join_entities(base, related, mapping, modified)
    key = mapping.external_id.column
    rule = pd.Series(pd.NA, index=joined.index, dtype="string")
    modified_columns = [f"{mapping.base}.{m}" for m in modified if f"{mapping.base}.{m}" in joined]

    # C2: one AFAS record is one destination record. A read that returns a record twice (one edited
    # during paging) keeps its latest row.
    # (Only the dates are sorted: sorting the joined frame would copy all of it to read its order.)
    order = joined[modified_columns].sort_values(modified_columns, na_position="first", kind="stable").index \
        if modified_columns else joined.index
    later_copy = joined.loc[order, key].duplicated(keep="last").reindex(joined.index)
    rule[later_copy] = "C2"

    if mapping.base == "contact":
        kind = joined["contact.ContactKind"]
        rule[rule.isna() & (kind != PERSON_KINDS_AT_ORGANISATION).fillna(True)] = "R4"
    for source_filter in mapping.source.filters:
        if source_filter.field == "ContactKind":
            continue  # R4 above
        values = joined[f"contact.{source_filter.field}"]
        rule[rule.isna() & ~(values == source_filter.equals).fillna(False).astype(bool)] = "R8"

    email = normalise_emails(joined[mapping.email.afas.column])
    rule[rule.isna() & email.isna()] = "R3"
    undecided = rule.isna()
    valid = valid_emails(email[undecided])
    rule[undecided & ~valid.reindex(joined.index, fill_value=True).astype(bool)] = "R3-syntax"

    out = pd.DataFrame(
        {
            "external_id": joined[key].astype("string"),
            "excluded_by": rule,
            "email": email,
        },
        index=joined.index,
    )
    for column, name in mapping.properties():
        if name == mapping.email.property:
            continue
        out[property_column(name)] = joined[column] if column in joined else pd.NA
    blocked = _flag(joined, mapping.blocked.column)
    for column, key_ in mapping.permission_keys():
        out[afas_permission_column(key_)] = _flag(joined, column)
        # R7: a blocked contact is sent, but with every permission off.
        out[permission_column(key_)] = _flag(joined, column) & ~blocked
    out["blocked"] = blocked
    out["hard_bounced"] = _flag(joined, mapping.hard_bounce.column) if mapping.hard_bounce else False
    out["afas_modified"] = joined[modified_columns].max(axis=1) if modified_columns else pd.NaT
    for name, kind in mapping.two_way_fields():
        out[field_hash_column(name)] = field_hashes(out[property_column(name)], kind)
    # Hashed are the members: a sync compares their hashes with its state; an excluded row is sent nowhere.
    members = rule.isna().to_numpy()
    out["email_hash"] = pd.Series(hash_many(None if e is None else e.encode() for e in object_values(email[members])),
                                  index=email.index[members], dtype="string").reindex(out.index)
    out["content_hash"] = _content_hashes(out.loc[members], mapping).reindex(out.index)
    del joined  # before `out` is reordered: the joined frame is the largest of the step
    return Audience(rows=_members_first(out), input_rows=input_rows)


def _members_first(out: pd.DataFrame) -> pd.DataFrame:
    """`out` with its members first, in external id order (a stable, readable asset), moved a column at a time:
    a sort of the whole frame would hold all of it twice. Empties `out`."""
    keys = out[["excluded_by", "external_id"]].reset_index(drop=True)
    order = keys.sort_values(list(keys.columns), na_position="first", kind="stable").index.to_numpy()
    del keys
    return pd.DataFrame({c: out.pop(c).take(order).reset_index(drop=True) for c in list(out.columns)}, copy=False)


def _flag(joined: pd.DataFrame, column: str) -> pd.Series:
    if column not in joined:
        return pd.Series(False, index=joined.index)
    return joined[column].fillna(False).astype(bool)


#: Rows per slice of the audience whose content hashes are computed at once.
HASH_SLICE = 50_000


def _content_hashes(out: pd.DataFrame, mapping: DestinationMapping) -> pd.Series:
    """A hash over what the destination shows of a contact (e-mail and mapped properties), without the
    permissions and the two-way fields: those are diffed one by one (consent; changes made in the
    destination)."""
    two_way = {name for name, _ in mapping.two_way_fields()}
    columns = ["email", *(property_column(n) for _, n in mapping.properties()
                          if n != mapping.email.property and n not in two_way)]
    hashes: list[str | None] = []
    # A slice at a time: the rows as Python values take about 700 bytes each, too much for a million at once. Each
    # row's JSON array hashed as `hash_key` hashes its text (the hashes the sync state holds must not change).
    for start in range(0, len(out), HASH_SLICE):
        part = out.iloc[start:start + HASH_SLICE]
        values = [object_values(part[c]) for c in columns]
        hashes += hash_many(orjson.dumps(row, default=str) for row in zip(*values))
    return pd.Series(hashes, index=out.index, dtype="string")
