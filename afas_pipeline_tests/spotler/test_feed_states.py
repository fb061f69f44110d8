"""Spotler's change feed read column-wise (`feed_states`): Arrow parses the usual page; any page must give what the
row-by-row reading (`contact_changes`) gives, whatever shape its contacts have, and a body that is not a JSON array
is the same one-line error."""

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afas_pipeline.spotler.adapter import _arrow_feed_states, contact_changes, feed_states
from afas_pipeline.spotler.errors import SpotlerError
from afas_pipeline.sync.events import FeedStates
from afas_pipeline_tests.feed_states import assert_same_states

USUAL_ID = st.integers(1, 10**6).map(str)
ODD_ID = st.one_of(st.integers(1, 99), st.none())  # a number, or none (read as "None" row by row)
PERMISSION = st.fixed_dictionaries({"bit": st.integers(1, 6)}, optional={"enabled": st.one_of(st.booleans(), st.none())})
CHANNEL = st.fixed_dictionaries({}, optional={"name": st.sampled_from(["EMAIL", "SMS", None]),
                                              "value": st.one_of(st.booleans(), st.none())})


def _contact(external_id):
    return st.fixed_dictionaries(
        {"externalId": external_id},
        optional={
            "lastChanged": st.one_of(st.integers(0, 2 * 10**12), st.none()),
            "properties": st.one_of(st.none(), st.fixed_dictionaries(
                {"email": st.just("x@example.nl")},
                optional={"permissions": st.one_of(st.none(), st.lists(PERMISSION, max_size=4))})),
            "channels": st.one_of(st.none(), st.lists(CHANNEL, max_size=3)),
            "encryptedId": st.text(max_size=5),
        })


USUAL_PAGE = st.lists(_contact(USUAL_ID), max_size=12)
ANY_PAGE = st.lists(_contact(st.one_of(USUAL_ID, ODD_ID)), max_size=12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(page=ANY_PAGE)
def test_any_page_reads_as_the_row_by_row_reading_does(page):
    content = orjson.dumps(page)
    assert_same_states(feed_states(content, None), FeedStates.of(contact_changes(page)))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(page=USUAL_PAGE)
def test_the_usual_page_is_read_by_arrow(page):
    """Text ids and epoch times: Arrow's reading, not the row-by-row one (without a bit named twice)."""
    if any(len({p["bit"] for p in (c.get("properties") or {}).get("permissions") or []})
           < len((c.get("properties") or {}).get("permissions") or []) for c in page):
        return
    states = _arrow_feed_states(orjson.dumps(page), None)
    assert states is not None or not page
    if states is not None:
        assert_same_states(states, FeedStates.of(contact_changes(page)))


def test_a_page_with_an_opt_out_and_a_bounce():
    page = [{"externalId": "7", "lastChanged": 1763287500123,
             "properties": {"permissions": [{"bit": 1, "enabled": False}, {"bit": 2, "enabled": True}]},
             "channels": [{"name": "EMAIL", "value": False}]},
            {"externalId": "8", "lastChanged": 1763287500124, "properties": {"permissions": [{"bit": 2, "enabled": True}]}}]
    states = _arrow_feed_states(orjson.dumps(page), None)
    assert states.external_ids == ["7", "8"]
    assert states.changed_at.tolist() == [1763287500123000, 1763287500124000]
    assert states.mailable.tolist() == [False, True]
    assert {k: v.tolist() for k, v in states.off.items()} == {"1": [True, False], "2": [False, False]}


@pytest.mark.parametrize("body", [b'{"error": "x"}', b"[1, 2", b"<html>"])
def test_a_body_that_is_not_a_json_array_is_the_clients_one_line_error(body):
    with pytest.raises(SpotlerError, match="contact/updates/list"):
        feed_states(body, None)


def test_an_empty_body_is_an_empty_page():
    states = feed_states(b"", None)
    assert len(states) == 0 and states.off == {} and np.asarray(states.changed_at).size == 0
