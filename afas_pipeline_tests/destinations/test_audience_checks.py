"""The audience's checks judge the audience against what AFAS returned, not against itself: R4 (only persons at
organisations) by each member's latest row as read, C2 (one record per contact) by its ids and addresses."""

from __future__ import annotations

import pandas as pd

from afas_pipeline.chain.sync import _audience_checks


def _checks(rows: pd.DataFrame, read: pd.DataFrame) -> dict:
    return {c.check_name: c for c in _audience_checks(rows, len(rows), read, "ContactId", contact_kinds=True)}


def _rows(ids: list[str], emails: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"external_id": pd.Series(ids, dtype="string"),
                         "excluded_by": pd.Series([None] * len(ids), dtype="string"),
                         "email": pd.Series(emails, dtype="string")})


def _read(ids: list[int], kinds: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"ContactId": pd.Series(ids, dtype="Int64"), "ContactKind": pd.Series(kinds, dtype="string")})


def test_r4_holds_for_members_whose_latest_row_is_a_person_at_an_organisation():
    # Contact 2 was read twice (edited during paging): its later row counts.
    checks = _checks(_rows(["1", "2"], ["a@x.nl", "b@x.nl"]), _read([1, 2, 2], ["PRS", "ORG", "PRS"]))
    assert checks["r4_only_persons_at_organisations"].passed
    assert checks["r4_only_persons_at_organisations"].metadata["offenders"].value == 0


def test_r4_fails_for_a_member_the_read_does_not_hold_or_holds_without_a_kind_or_as_another_kind():
    # A member absent from the read, or read without a kind, passed this check before: pandas' map gave NA, and NA
    # counted as no offender.
    checks = _checks(_rows(["1", "2", "3", "4"], ["a@x.nl", "b@x.nl", "c@x.nl", "d@x.nl"]),
                     _read([1, 3, 4, 4], ["PRS", None, "PRS", "ORG"]))
    r4 = checks["r4_only_persons_at_organisations"]
    assert not r4.passed
    assert r4.metadata["offenders"].value == 3
    assert len(r4.metadata["offender_keys"].value) == 3


def test_c2_counts_duplicate_ids_and_shared_addresses_but_not_missing_ones():
    checks = _checks(_rows(["1", "2", "2", "3", "4", "5"], ["a@x.nl", "b@x.nl", "c@x.nl", "a@x.nl", None, None]),
                     _read([1, 2, 3, 4, 5], ["PRS"] * 5))
    c2 = checks["c2_one_record_per_contact"]
    assert not c2.passed
    assert c2.metadata["duplicate_ids"].value == 2
    assert c2.metadata["members_sharing_an_address"].value == 2
    assert checks["r4_only_persons_at_organisations"].passed
