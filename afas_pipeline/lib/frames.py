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
    return pc.is_in(large_texts(values), value_set=large_texts(among)).fill_null(False).to_numpy(
        zero_copy_only=False).copy()


def repeated_texts(values: pd.Series) -> np.ndarray:
    """Per value of `values` (text) whether another row holds it too, as pandas' `duplicated(keep=False)` tells it,
    except that missing values never are. Arrow's dictionary encoding: pandas factorizes text some 5x slower."""
    encoded = large_texts(values).dictionary_encode()
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    counts = np.bincount(codes[codes >= 0], minlength=len(encoded.dictionary))
    return (codes >= 0) & (counts[codes] > 1)


def latest_texts(wanted: pd.Series, keys: pd.Series, values: pd.Series) -> pa.Array:
    """Per value of `wanted`, the value in `values` of the last row whose key in `keys` (as text, as pandas'
    `astype("string")` writes it) is that one; null where no row has it. Arrow's hash look-up, newest first."""
    found = pc.index_in(large_texts(wanted), value_set=large_texts(keys)[::-1])
    return large_texts(values)[::-1].take(found)


def large_texts(values: pd.Series) -> pa.Array:
    """A column as text (as pandas' `astype("string")` writes it) in one Arrow array: a column Arrow holds in chunks
    is joined (Arrow's look-ups take one array of values)."""
    texts = pa.array(pd.Series(values).astype("string"), type=pa.large_string(), from_pandas=True)
    return texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
