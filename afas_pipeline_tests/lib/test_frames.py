"""`texts_in`: pandas' `isin` on text, by Arrow's hash lookup, for every kind of text column; `object_values`: a
column as the Python values `to_numpy` gives."""

import pandas as pd
import pytest

from afas_pipeline.lib.frames import object_values, texts_in


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
