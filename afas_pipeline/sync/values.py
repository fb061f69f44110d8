"""AFAS values in the forms destinations take: column by column, as plain JSON-ready Python values."""

from __future__ import annotations

from typing import Any

import pandas as pd

from afas_pipeline.lib.frames import object_values


def plain_values(column: pd.Series) -> list[Any]:
    """Plain Python values (JSON-ready) with None for every kind of missing value (None, NaN, NA, NaT)."""
    values = object_values(column)
    if isinstance(column.dtype, pd.StringDtype):
        return values  # already str or None
    return [v.item() if hasattr(v, "item") else v for v in values]


def typed_values(column: pd.Series, kind: str | None) -> list[Any]:
    """A mapped AFAS column by its mapping type: yes/no as "yes"/"no", a date as YYYY-MM-DD, a number as it is,
    anything else as text; None where AFAS has no value."""
    if kind not in ("yes_no", "date", "number"):
        return plain_values(column.astype("string"))  # a missing value of any kind is NA as text
    present = column.notna()
    if kind == "yes_no":
        column = column.astype("boolean").map({True: "yes", False: "no"})
    elif kind == "date":
        column = pd.to_datetime(column, utc=True).dt.strftime("%Y-%m-%d")
    return plain_values(column.where(present))
