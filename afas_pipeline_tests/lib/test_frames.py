"""`texts_in`: pandas' `isin` on text, by Arrow's hash lookup, for every kind of text column."""

import pandas as pd
import pytest

from afas_pipeline.lib.frames import texts_in


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
