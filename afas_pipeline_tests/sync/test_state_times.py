"""The on-since times the sync state keeps: formatted column-wise, exactly as `pd.Timestamp.isoformat` writes them."""

import numpy as np
import pandas as pd
import pytest

from afas_pipeline.chain.writer import _iso_times

_RAW = np.random.default_rng(1).integers(-2 * 10**18, 4 * 10**18, 2000)
_RAW[::7] = _RAW[::7] // 1000 * 1000  # whole microseconds
_RAW[::11] = _RAW[::11] // 10**9 * 10**9  # whole seconds
_UTC = pd.Series(pd.to_datetime(_RAW, utc=True))


@pytest.mark.parametrize("times", [
    _UTC, pd.Series(pd.to_datetime(_RAW)), _UTC.where(pd.Series(_RAW % 3 == 0)), _UTC.dt.as_unit("us"),
    _UTC.dt.tz_convert("Europe/Amsterdam"), pd.Series([pd.NaT] * 3),
    pd.Series([None, pd.Timestamp("2026-01-01", tz="UTC"), float("nan")], dtype=object),
    pd.Series([], dtype="datetime64[ns, UTC]"),
], ids=["utc", "naive", "utc-with-gaps", "microseconds", "amsterdam", "all-missing", "objects", "empty"])
def test_on_since_times_are_written_as_isoformat_writes_them(times):
    assert _iso_times(times) == [None if pd.isna(t) else pd.Timestamp(t).isoformat() for t in times]
