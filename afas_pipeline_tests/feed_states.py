"""What the column-wise readings of a destination's change feed are held to (`afas_pipeline.sync.events.FeedStates`)."""

from afas_pipeline.sync.events import FeedStates


def assert_same_states(got: FeedStates, expected: FeedStates) -> None:
    """The same records in the same order, with the same times, bounces and permissions switched off."""
    assert got.external_ids == expected.external_ids
    assert got.changed_at.tolist() == expected.changed_at.tolist()
    assert got.mailable.tolist() == expected.mailable.tolist()
    assert {k: v.tolist() for k, v in got.off.items()} == {k: v.tolist() for k, v in expected.off.items()}
