"""GetConnector filters: an OR of AND groups of conditions, rendered as AFAS query parameters.

AFAS's simple filter writes three parallel lists where `,` means AND and `;` means OR. A value that
itself contains `,` or `;` cannot be escaped there, so such a filter is sent as `filterjson`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum

from afas_pipeline.lib.timewindows import format_afas_filter_value

FilterValue = str | int | float | Decimal | bool | date | datetime | None


class Op(IntEnum):
    """AFAS operatortypes."""

    EQ = 1
    GE = 2
    LE = 3
    GT = 4
    LT = 5
    CONTAINS = 6
    NE = 7
    EMPTY = 8
    NOT_EMPTY = 9
    STARTS_WITH = 10
    NOT_CONTAINS = 11
    NOT_STARTS_WITH = 12
    ENDS_WITH = 13
    NOT_ENDS_WITH = 14
    QUICK = 15


@dataclass(frozen=True)
class Condition:
    """``field op value``. EMPTY/NOT_EMPTY need no value. Datetimes: aware ones are converted to
    Amsterdam wall time; naive ones are taken as Amsterdam wall time already."""

    field: str
    op: Op
    value: FilterValue = None

    def __post_init__(self) -> None:
        if not self.field or any(ch in self.field for ch in ",;"):
            raise ValueError(f"invalid AFAS field id {self.field!r}")
        object.__setattr__(self, "op", Op(self.op))

    def __and__(self, other: Condition | Filter) -> Filter:
        return Filter.of(self) & other

    def __or__(self, other: Condition | Filter) -> Filter:
        return Filter.of(self) | other


@dataclass(frozen=True)
class Filter:
    """OR of AND groups: ``Filter(((a, b), (c,)))`` is ``(a AND b) OR c``."""

    groups: tuple[tuple[Condition, ...], ...]

    def __post_init__(self) -> None:
        groups = tuple(tuple(group) for group in self.groups)
        if not groups or any(not group for group in groups):
            raise ValueError("a Filter needs at least one non-empty AND group")
        object.__setattr__(self, "groups", groups)

    @classmethod
    def of(cls, condition: Condition | Filter) -> Filter:
        return condition if isinstance(condition, Filter) else cls(((condition,),))

    @classmethod
    def all_of(cls, *conditions: Condition) -> Filter:
        """All conditions must hold (one AND group)."""
        return cls((tuple(conditions),))

    @classmethod
    def any_of(cls, *conditions: Condition | Filter) -> Filter:
        """At least one must hold (OR)."""
        groups: list[tuple[Condition, ...]] = []
        for item in conditions:
            groups.extend(Filter.of(item).groups)
        return cls(tuple(groups))

    def __or__(self, other: Condition | Filter) -> Filter:
        return Filter(self.groups + Filter.of(other).groups)

    def __and__(self, other: Condition | Filter) -> Filter:
        # (a OR b) AND (c OR d) = ac OR ad OR bc OR bd: AFAS has no nesting, so distribute.
        return Filter(tuple(left + right for left in self.groups for right in Filter.of(other).groups))

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(condition.field for group in self.groups for condition in group)

    def to_params(self) -> dict[str, str]:
        """Query parameters for a GetConnector call."""
        rendered = [[(c.field, int(c.op), render_value(c)) for c in group] for group in self.groups]
        if any(ch in value for group in rendered for _, _, value in group for ch in ",;"):
            return {"filterjson": _filterjson(rendered)}
        return {
            "filterfieldids": ";".join(",".join(f for f, _, _ in group) for group in rendered),
            "filtervalues": ";".join(",".join(v for _, _, v in group) for group in rendered),
            "operatortypes": ";".join(",".join(str(o) for _, o, _ in group) for group in rendered),
        }


def render_value(condition: Condition) -> str:
    """A condition's value as AFAS expects it in a filter."""
    value = condition.value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (datetime, date)):
        return format_afas_filter_value(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _filterjson(rendered: Iterable[Iterable[tuple[str, int, str]]]) -> str:
    filters = [
        {
            "@FilterId": f"Filter {number}",
            "Field": [{"@FieldId": f, "@OperatorType": str(o), "#text": v} for f, o, v in group],
        }
        for number, group in enumerate(rendered, start=1)
    ]
    return json.dumps({"Filters": {"Filter": filters}}, ensure_ascii=False, separators=(",", ":"))


def filter_params(filters: Filter | Condition | None) -> Mapping[str, str]:
    return {} if filters is None else Filter.of(filters).to_params()
