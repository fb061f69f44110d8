"""Small DataFrame helpers shared by the IO manager, the audience and the feed's judging."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def object_values(column: pd.Series) -> list:
    """The values of `column` as `column.to_numpy(dtype=object, na_value=None).tolist()` gives them (None where one is
    missing); a column of text held by Arrow through Arrow's own conversion: pandas converts it value by value, some
    5x slower (0.28 against 0.06 s for the text a full sync of 100,000 contacts sends)."""
    if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
        return pa.array(column, from_pandas=True).to_pylist()
    return column.to_numpy(dtype=object, na_value=None).tolist()


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
