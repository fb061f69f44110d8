"""The Spotler side of a sync: turn audience members and their plan into Spotler contact documents.

Everything else (audience, plan, state, consent) is destination-neutral; a second destination
brings its own mapping file and an adapter like this one.
"""

from __future__ import annotations

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
        self._properties = [name for _, name in mapping.properties() if name != mapping.email.property]
        self._permission_keys = [key for _, key in mapping.permission_keys()]

    @property
    def permission_keys(self) -> list[int | str]:
        return self._permission_keys

    def documents(self, rows: pd.DataFrame) -> list[dict[str, Any]]:
        """The `contact` documents for `POST contact/list`, one per row of plan joined with its member:
        only what the plan says to send (merge, not purge). Values are converted column by column."""
        values = {self.mapping.email.property: _objects(rows["email"])}
        for name in self._properties:
            values[name] = self._column(name, rows[property_column(name)])
        permissions = {int(key): _objects(rows[set_column(key)]) for key in self._permission_keys}
        send = rows["send_properties"].astype(bool).tolist()
        reactivate = rows["reactivate"].astype(bool).tolist()
        deactivate = rows["deactivate"].astype(bool).tolist()
        documents = []
        for i, external_id in enumerate(rows["external_id"].astype(str)):
            properties = {name: column[i] for name, column in values.items()} if send[i] else {}
            bits = [{"bit": bit, "enabled": bool(column[i])} for bit, column in permissions.items() if column[i] is not None]
            if bits:
                properties["permissions"] = bits
            document: dict[str, Any] = {"externalId": external_id, "properties": properties}
            if reactivate[i]:
                # R11: a new address after a hard bounce makes the contact mailable again.
                document["channels"] = [{"name": "EMAIL", "value": True}]
            elif deactivate[i]:
                # R11: an address AFAS already knows to hard-bounce is not made mailable by being created.
                document["channels"] = [{"name": "EMAIL", "value": False}]
            documents.append(document)
        return documents

    def _column(self, name: str, column: pd.Series) -> list[Any]:
        """A mapped column in Spotler's terms; None clears the property (merge keeps omitted ones, not nulls)."""
        kind = self._types.get(name)
        present = column.notna()
        if name == "gender":
            column = column.astype("string").str.upper().map(GENDERS)
        elif kind == "yes_no":
            column = column.astype("boolean").map({True: "yes", False: "no"})
        elif kind == "date":
            column = pd.to_datetime(column, utc=True).dt.strftime("%Y-%m-%d")
        elif kind != "number":
            column = column.astype("string")
        return _objects(column.where(present))


def _objects(column: pd.Series) -> list[Any]:
    """Plain Python values (JSON-ready) with None for every kind of missing value."""
    values = column.to_numpy(dtype=object, na_value=None).tolist()
    return [v.item() if hasattr(v, "item") else v for v in values]
