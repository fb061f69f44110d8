"""Small DataFrame helpers shared by the IO manager and the audience."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def only_columns(frame: pd.DataFrame, columns: Iterable[str] | None) -> pd.DataFrame:
    """`frame` with only those of `columns` it has, in its own order (all of it for None); one it lacks is left out."""
    if columns is None:
        return frame
    wanted = set(columns)
    return frame[[c for c in frame.columns if c in wanted]]
