"""Small DataFrame helpers shared by the IO manager, the audience and the feed's judging."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def only_columns(frame: pd.DataFrame, columns: Iterable[str] | None) -> pd.DataFrame:
    """`frame` with only those of `columns` it has, in its own order (all of it for None); one it lacks is left out."""
    if columns is None:
        return frame
    wanted = set(columns)
    return frame[[c for c in frame.columns if c in wanted]]


def texts_in(values: pd.Series, among: pd.Series | pd.Index) -> np.ndarray:
    """Per value of `values` (text) whether it is one of `among`, as a writable boolean array; missing values are
    not. Arrow's hash lookup: pandas' `isin` on text takes seconds for a few hundred thousand values."""
    haystack = pa.array(pd.Series(among, dtype="string"), type=pa.large_string(), from_pandas=True)
    needles = pa.array(pd.Series(values, dtype="string"), type=pa.large_string(), from_pandas=True)
    return pc.is_in(needles, value_set=haystack).fill_null(False).to_numpy(zero_copy_only=False).copy()
