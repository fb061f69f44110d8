"""`texts_in`: pandas' `isin` on text, by Arrow's hash lookup, for every kind of text column; `repeated_texts`:
pandas' `duplicated(keep=False)`; `latest_texts`: a look-up of the last row per key; `object_values`: a column as the
Python values `to_numpy` gives."""

import pandas as pd
import pytest

from afas_pipeline.lib.frames import latest_texts, object_values, repeated_texts, texts_in


@pytest.mark.parametrize("dtype", ["string", "object", "string[python]"])
def test_texts_in_agrees_with_isin_and_a_missing_value_is_never_in(dtype):
    values = pd.Series(["10", "11", None, "12", "10", "é"], dtype=dtype)
    among = pd.Index(["10", "é", "99"], dtype=dtype)
    got = texts_in(values, among)
    assert got.tolist() == [True, False, False, False, True, True]
    assert got.tolist() == values.isin(among).tolist()
    got[0] = False  # the caller may amend it (the feed's judging does, for writes in flight)
    assert texts_in(values.iloc[:0], among).tolist() == []
    assert not texts_in(values, among[:0]).any()


@pytest.mark.parametrize("dtype", ["string[pyarrow]", "str", "string[python]", "object", "boolean", "Int64", "float64"])
def test_object_values_are_what_to_numpy_gives_for_every_kind_of_column(dtype):
    raw = {"boolean": [True, None, False], "Int64": [1, None, 3], "float64": [1.5, None, 3.0]}.get(dtype, ["a", None, "é"])
    column = pd.Series(raw * 4, dtype=dtype, index=range(100, 112))
    # Arrow holds a column put together from parts in several chunks; a slice starts inside one.
    pieces = pd.concat([column.iloc[:5], column.iloc[5:]])
    for values in (column, pieces, pieces.iloc[3:10], column.iloc[:0]):
        expected = values.to_numpy(dtype=object, na_value=None).tolist()
        got = object_values(values)
        assert got == expected
        assert [type(v) for v in got] == [type(v) for v in expected]


@pytest.mark.parametrize("dtype", ["string", "object", "string[python]"])
def test_repeated_texts_agrees_with_duplicated_but_a_missing_value_is_never_repeated(dtype):
    values = pd.Series(["a", "b", None, "a", None, "é", "é", "c"], dtype=dtype, index=range(50, 58))
    got = repeated_texts(values)
    assert got.tolist() == [True, False, False, True, False, True, True, False]
    assert got.tolist() == (values.duplicated(keep=False) & values.notna()).tolist()
    assert repeated_texts(values.iloc[:0]).tolist() == []
    # Arrow holds a column put together from parts in several chunks, each encoded with a dictionary of its own.
    pieces = pd.concat([values.astype("string[pyarrow]").iloc[:4], values.astype("string[pyarrow]").iloc[4:]])
    assert repeated_texts(pieces).tolist() == got.tolist()


def test_latest_texts_takes_the_last_row_of_each_key_and_null_where_there_is_none():
    keys = pd.Series([1, 2, 1, 4, None], dtype="Int64")
    values = pd.Series(["PRS", "ORG", "PRS-2", None, "X"], dtype="string")
    got = latest_texts(pd.Series(["1", "2", "3", "4"], dtype="string"), keys, values)
    assert got.to_pylist() == ["PRS-2", "ORG", None, None]
    text_keys = pd.Series(["a", "b", "a"], dtype=object)
    assert latest_texts(pd.Series(["a", "b"]), text_keys, pd.Series(["1", "2", "3"])).to_pylist() == ["3", "2"]
    chunked = pd.concat([keys.astype("string[pyarrow]").iloc[:2], keys.astype("string[pyarrow]").iloc[2:]])
    assert latest_texts(pd.Series(["1", "2", "3", "4"]), chunked, values).to_pylist() == ["PRS-2", "ORG", None, None]
