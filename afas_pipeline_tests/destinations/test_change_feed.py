"""Reading a destination's change feed (`refresh_optouts`, in `<d>_sync_plan`): the watermark, where the next read
starts less FEED_OVERLAP, is in the destination's clock (its `Date`), so a quiet account does not read a full
sync's own writes again on every run (issue 13), while an opt-out the destination stamps late is still read (C1)
and a destination clock ahead of ours never moves the watermark past what the read covered. The feed is read in
pages of 7, as a long read is page by page."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from afas_pipeline.chain.component import declared_destinations
from afas_pipeline.chain.sync import FeedFrame, refresh_optouts
from afas_pipeline.sync.events import FeedStates, epoch_us
from afas_pipeline.sync.state import SyncState


@pytest.fixture
def destination(destination):
    """The destination with its change feed read in pages of 7 (refresh_optouts reads page by page)."""
    world, probe = destination
    world.spotler_options, world.mailchimp_options = {"page_size": 7}, {"page_size": 7}
    return world, probe


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _feed(world, result) -> dict:
    meta = world.metadata(result, f"{world.destination}_sync_plan")
    return {"read": meta["feed_changes_read"], "optouts": meta["optouts_seen"]}


def _a_subscriber(probe) -> str:
    return next(i for i, record in probe.records().items() if probe.subscribed(record))


def test_a_quiet_account_reads_a_full_syncs_own_writes_once(destination):
    world, probe = destination
    probe.set_clock(-20 * 60)  # the full sync's writes are stamped 20 minutes ago, a window or more back
    world.sync()
    probe.set_clock(0)
    written = len(probe.records())

    first, second = world.sync(), world.sync()

    # The first read after the writes sees them (an opt-out among them would count); then the watermark is the
    # destination's clock at that read, not the last write's stamp, and the writes are past FEED_OVERLAP.
    assert _feed(world, first) == {"read": written, "optouts": 0}
    assert _feed(world, second) == {"read": 0, "optouts": 0}


def test_an_optout_stamped_before_the_last_read_is_still_read(destination):
    world, probe = destination
    probe.set_clock(-20 * 60)
    world.sync()
    probe.set_clock(0)
    world.sync()  # reads the full sync's writes; the watermark is now the destination's clock at that read
    external_id = _a_subscriber(probe)
    # Stamped five minutes before that read yet not in it: a change the destination commits late.
    probe.opt_out(external_id, at=_iso(datetime.now(timezone.utc) - timedelta(minutes=5)))

    result = world.sync()

    assert _feed(world, result) == {"read": 1, "optouts": 1}
    assert probe.opted_out(probe.records()[external_id])  # C1: the sync did not switch it back on
    assert set(world.state().optouts(world.destination, {external_id})["external_id"]) == {external_id}


def test_a_destination_clock_ahead_of_ours_does_not_move_the_watermark_past_the_read(destination):
    world, probe = destination
    world.sync()
    adapter = next(c.destination() for c in declared_destinations() if c.destination().name == world.destination)
    client, state = world.resources()[world.destination], world.state()
    external_id = _a_subscriber(probe)
    now = datetime.now(timezone.utc)
    probe.set_clock(30 * 60)
    # Twenty minutes ago in the destination's clock, ten minutes ahead in ours: after the end of a read up to now.
    probe.opt_out(external_id, at=_iso(now + timedelta(minutes=10)))

    assert refresh_optouts(adapter, client, state, now=now)[0] == 0
    # The watermark is at most `now` (the read's end), not the destination's clock of half an hour later.
    assert refresh_optouts(adapter, client, state, now=now + timedelta(minutes=20))[0] == 1
    assert set(state.optouts(world.destination, {external_id})["external_id"]) == {external_id}


@pytest.mark.parametrize("order", ["off, then on again", "on, then off"])
def test_c1_a_record_read_twice_in_one_read_is_judged_by_its_later_version(tmp_path, order):
    """A contact changed while the feed was paged shows up twice, its later row last: a permission switched off and
    on again is no opt-out (the recipient took it back), switched off last it is one."""
    adapter = next(c.destination() for c in declared_destinations() if c.destination().name == "spotler")
    state = SyncState(tmp_path / "state.sqlite")
    sent_on = {"1": {"sent": True, "afas": True, "on_since": "2026-11-01T10:00:00+00:00"}}
    state.save_records("spotler", [{"external_id": "C1", "content_hash": "c", "email_hash": "e",
                                    "permissions": sent_on, "bounced_email_hash": None}])
    now = datetime.now(timezone.utc)
    earlier, later = (epoch_us(now - timedelta(minutes=m)) for m in (2, 1))
    off = [True, False] if order == "off, then on again" else [False, True]
    page = FeedStates(["C1", "C1"], np.array([earlier, later]), np.array([True, True]), {"1": np.array(off)})
    fed = FeedFrame(FeedStates.frame([page]), 2, None, now - timedelta(hours=1))

    judged = refresh_optouts(adapter, None, state, now=now, fed=fed)

    expected = 0 if order == "off, then on again" else 1
    assert judged.optouts == expected
    assert len(state.optouts("spotler")) == expected
