"""The sync state's feedback ledger: SQLite in a temporary directory, no HTTP."""

from afas_pipeline.sync.state import SyncState

EVENTS = [("10001", "optout:1", "2026-11-16T10:05:00+00:00"), ("10002", "bounce:hard", "2026-11-16T10:06:00+00:00"),
          ("10003", "optout:2", "2026-11-16T10:07:00+00:00")]


def test_the_ledger_is_read_for_the_keys_a_run_holds_and_a_delivered_event_stays_delivered(tmp_path):
    state = SyncState(tmp_path / "state.sqlite")
    state.record_feedback("spotler", EVENTS[:2], "delivered")
    state.record_feedback("spotler", EVENTS[2:], "pending")
    state.record_feedback("spotler", EVENTS[:1], "pending")  # read again later: stays delivered

    wanted = [EVENTS[0], EVENTS[2], ("10004", "optout:1", "2026-11-16T10:08:00+00:00")]
    rows = state.feedback_events("spotler", keys=wanted)

    assert list(zip(rows["external_id"], rows["status"])) == [("10001", "delivered"), ("10003", "pending")]
    assert list(state.feedback_events("spotler", status="pending", keys=wanted)["external_id"]) == ["10003"]
    assert len(state.feedback_events("spotler")) == 3
    assert state.feedback_events("mailchimp", keys=wanted).empty
