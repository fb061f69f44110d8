"""C3 with two runs at once: however a second run was launched (a backfill, the CLI, a schedule), it waits for
the run that holds the sync state, and then finds nothing left to write."""

from __future__ import annotations

import re
import threading

import dagster as dg
import pytest

from afas_pipeline.lib import failpoints
from afas_pipeline.sync.state import StateError, SyncStateResource
from afas_pipeline_tests.waiting import wait_until

WINDOW = "2026-11-16-10:00"
IN_WINDOW = "2026-11-16T10:05:00Z"


def test_c3_a_second_run_waits_for_the_first_and_sends_nothing_twice(world):
    world.sync()
    edited = [str(c["ContactId"]) for c in world.pick(20, ContactKind="PRS", Blocked=False, HardBounce=False)]
    for external_id in edited:
        world.afas_edit("contacts", external_id, at=IN_WINDOW, Function="Gelijktijdig")
    failpoints.arm("spotler_sync.intent_recorded", "pause")  # the first run stops before its writes
    results = {}

    def run(name: str) -> None:
        results[name] = world.delta(WINDOW)

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert failpoints.wait_until_paused("spotler_sync.intent_recorded")
    second = threading.Thread(target=run, args=("second",))
    second.start()
    wait_until(lambda: failpoints.hits("sync_state.lock_wait") == 1, timeout_s=60,
               what="the second run waiting for the first")
    failpoints.release("spotler_sync.intent_recorded")
    first.join(120)
    second.join(120)

    sent = [world.metadata(results[name], "spotler_sync_delta")["contacts_sent"] for name in ("first", "second")]
    assert sent == [20, 0]


def test_a_run_that_waits_too_long_for_the_state_gives_up_naming_the_holder(world):
    holder = SyncStateResource(path=str(world.state_path))
    failpoints.arm("spotler_sync.intent_recorded", "pause")
    thread = threading.Thread(target=world.sync)
    thread.start()
    assert failpoints.wait_until_paused("spotler_sync.intent_recorded")
    waiting = SyncStateResource(path=str(world.state_path), lock_timeout_s=0.2)
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:
        with dg.build_resources({"sync_state": waiting}):
            pass
    assert isinstance(raised.value.__cause__, StateError)
    assert re.match(r"run \S+ \(pid \d+ on .+\) has held the sync state .+ for more than 0.2s; this run wrote nothing",
                    str(raised.value.__cause__))
    failpoints.release("spotler_sync.intent_recorded")
    thread.join(120)
    with dg.build_resources({"sync_state": holder}) as resources:  # free again once the first run is done
        assert resources.sync_state.open().records("spotler").shape[0] > 0
