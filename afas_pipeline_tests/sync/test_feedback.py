"""The way back as pure functions: which AFAS values a contact's events call for (C1), no HTTP."""

import pandas as pd

from afas_pipeline.mapping.load import default_mapping
from afas_pipeline.sync.feedback import EVENT_COLUMNS, desired_values

MAPPING = default_mapping("spotler")
NEWSLETTER = next(t.column for t in MAPPING.write_backs() if t.origin == "permission" and str(t.source) == "1")


def _events(*rows) -> pd.DataFrame:
    return pd.DataFrame([(*row, None, None) for row in rows], columns=EVENT_COLUMNS).astype("string")


def test_c1_an_optout_older_than_afas_switching_the_permission_on_again_is_not_written_back():
    events = _events(("10001", "optout:1", "2026-11-16T10:05:00+00:00"), ("10002", "optout:1", "2026-11-16T10:05:00+00:00"))
    afas_on_since = {("10001", "1"): pd.Timestamp("2026-11-16T10:10:00Z"),  # AFAS gave consent again after it
                     ("10002", "1"): pd.Timestamp("2026-11-01T08:00:00Z")}  # on long before the opt-out

    desired = desired_values(events, MAPPING, optouts={}, afas_on_since=afas_on_since)

    assert NEWSLETTER not in desired["10001"].values and desired["10001"].held == 1
    assert desired["10002"].values[NEWSLETTER] is False
