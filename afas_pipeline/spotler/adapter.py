"""The Spotler side of a sync: turn an audience member and its plan into a Spotler contact document.

Everything else (audience, plan, state, consent) is destination-neutral; a second destination
brings its own mapping file and an adapter like this one.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pandas as pd

from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.sync.audience import property_column
from afas_pipeline.sync.plan import set_column

#: AFAS gender codes (M man, V vrouw, O onbekend, X non-binary) to Spotler's M/F; others stay empty.
GENDERS = {"M": "M", "V": "F"}


class SpotlerAdapter:
    destination = "spotler"

    def __init__(self, mapping: DestinationMapping):
        self.mapping = mapping
        self._types = {f.property: f.type for f in mapping.fields}
        self._permission_keys = [key for _, key in mapping.permission_keys()]

    @property
    def permission_keys(self) -> list[int | str]:
        return self._permission_keys

    def contact(self, member: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        """The `contact` document for `POST contact/list`: only what the plan says to send (merge, not purge)."""
        properties: dict[str, Any] = {}
        if plan["send_properties"]:
            properties[self.mapping.email.property] = _plain(member["email"])
            for _, name in self.mapping.properties():
                if name != self.mapping.email.property:
                    properties[name] = self._format(name, member.get(property_column(name)))
        permissions = [
            {"bit": int(key), "enabled": bool(plan[set_column(key)])}
            for key in self._permission_keys
            if not _missing(plan.get(set_column(key)))
        ]
        if permissions:
            properties["permissions"] = permissions
        document: dict[str, Any] = {"externalId": str(member["external_id"]), "properties": properties}
        if plan.get("reactivate"):
            # R11: a new address after a hard bounce makes the contact mailable again.
            document["channels"] = [{"name": "EMAIL", "value": True}]
        elif plan.get("deactivate"):
            # R11: an address AFAS already knows to hard-bounce is not made mailable by being created.
            document["channels"] = [{"name": "EMAIL", "value": False}]
        return document

    def _format(self, name: str, value: Any) -> Any:
        value = _plain(value)
        if value is None:
            return None  # clears the property in Spotler (merge keeps omitted ones, not nulls)
        kind = self._types.get(name)
        if name == "gender":
            return GENDERS.get(str(value).upper())
        if kind == "yes_no":
            return "yes" if value else "no"
        if kind == "date":
            return value.date().isoformat() if isinstance(value, datetime) else str(value)
        if kind == "number":
            return value
        return str(value)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    if _missing(value) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, date | datetime | str | bool | int | float):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
