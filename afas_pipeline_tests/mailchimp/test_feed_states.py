"""Mailchimp's change feed read column-wise (`MailchimpAdapter.feed_states`): any page of members must give what
the member-by-member reading (`_change`, then `FeedStates.of`) gives, whatever its ids, statuses and times, and a time
neither reading can read is the same error."""

from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afas_pipeline.mailchimp.adapter import MailchimpAdapter
from afas_pipeline.mapping.load import load_mapping
from afas_pipeline.sync.events import FeedStates
from afas_pipeline_tests.feed_states import assert_same_states

ADAPTER = MailchimpAdapter(load_mapping(Path(__file__).resolve().parents[2] / "mappings" / "mailchimp.yaml"))
TAG = ADAPTER.id_tag

ID = st.one_of(st.integers(1, 10**6).map(str), st.sampled_from([" 42 ", "", None, 7, "  "]))
STATUS = st.sampled_from(["subscribed", "unsubscribed", "transactional", "cleaned", "pending", "archived", None])
TIME = st.one_of(
    st.datetimes(min_value=datetime(1971, 1, 1),
                 max_value=datetime(2100, 1, 1)).map(lambda t: t.isoformat()),
    st.sampled_from(["2026-11-22T06:00:00+00:00", "2026-11-22T07:00:00+01:00", "2026-11-22T06:00:00Z",
                     "2026-11-22T06:00:00.123456-05:30", "2026-11-22 06:00:00", "2026-11-22", "", None, 0]),
)


def _member(external_id, status, time, whole: bool):
    member = {"merge_fields": {TAG: external_id} if external_id is not None else {}}
    if whole or status is not None:
        member["status"] = status
    if whole or time is not None:
        member["last_changed"] = time
    return member


MEMBERS = st.lists(st.builds(_member, ID, STATUS, TIME, st.booleans()), max_size=12)


def _row_by_row(members: list[dict]) -> FeedStates:
    return FeedStates.of(change for member in members if (change := ADAPTER._change(member, fields=False)))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(members=MEMBERS)
def test_any_page_of_members_reads_as_the_member_by_member_reading_does(members):
    assert_same_states(ADAPTER.feed_states(members), _row_by_row(members))


def test_an_unsubscribe_a_cleaned_member_and_one_not_ours_read_column_wise(monkeypatch):
    monkeypatch.setattr(MailchimpAdapter, "_change", lambda *_, **__: pytest.fail("read member by member"))
    members = [{"merge_fields": {TAG: "7"}, "status": "unsubscribed", "last_changed": "2026-11-22T06:00:01+00:00"},
               {"merge_fields": {TAG: " 8 "}, "status": "cleaned", "last_changed": "2026-11-22T07:00:00+01:00"},
               {"merge_fields": {}, "status": "unsubscribed", "last_changed": "2026-11-22T06:00:00+00:00"},
               {"merge_fields": {TAG: "9"}, "status": "subscribed"}]
    states = ADAPTER.feed_states(members)
    assert states.external_ids == ["7", "8", "9"]
    assert states.changed_at.tolist() == [1795327201000000, 1795327200000000, 0]
    assert states.mailable.tolist() == [True, False, True]
    assert {k: v.tolist() for k, v in states.off.items()} == {"status": [True, False, False]}


def test_a_time_neither_reading_can_read_is_the_same_error():
    members = [{"merge_fields": {TAG: "7"}, "status": "subscribed", "last_changed": "not a time"}]
    with pytest.raises(ValueError) as row_by_row:
        _row_by_row(members)
    with pytest.raises(type(row_by_row.value)):
        ADAPTER.feed_states(members)
