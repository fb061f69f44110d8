"""C3 with two runs at once: however and wherever a second run was launched (a backfill, the CLI, a schedule; on
another machine when the state is on Postgres), it waits for the run that holds the sync state, and then finds
nothing left to write. Each test on a SQLite state and on a Postgres one; each run with its own Dagster instance,
as two run workers have."""

from __future__ import annotations

import dataclasses
import re
import threading

import dagster as dg
import pytest

from afas_pipeline.lib import failpoints
from afas_pipeline.sync.state import StateError, SyncStateResource
from afas_pipeline_tests.waiting import wait_until

WINDOW = "2026-11-16-10:00"
IN_WINDOW = "2026-11-16T10:05:00Z"


@pytest.fixture(params=["sqlite", "postgres"])
def world(request, world):
    """The Spotler world, its sync state a SQLite file or a Postgres database."""
    if request.param == "postgres":
        world.state_url = request.getfixturevalue("postgres_state")
    return world


def test_c3_a_second_run_waits_for_the_first_and_sends_nothing_twice(world):
    world.sync()
    picked = [str(c["ContactId"]) for c in world.pick(30, ContactKind="PRS", Blocked=False, HardBounce=False,
                                                      PermissionNewsletter=True)]
    edited, unsubscribed = picked[:20], picked[20:]
    for external_id in edited:
        world.afas_edit("contacts", external_id, at=IN_WINDOW, Function="Gelijktijdig")
    for external_id in unsubscribed:
        world.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1, "at": IN_WINDOW})
    for admin in ("spotler", "afas"):
        getattr(world, admin)("POST", "/stats/reset")
    failpoints.arm("spotler_sync.intent_recorded", "pause")  # the first run stops before its writes
    results = {}

    def run(name: str) -> None:
        worker = dataclasses.replace(world)  # the same state and storage, a Dagster instance of its own
        results[name] = (worker.delta(WINDOW), worker.feedback(WINDOW))

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

    delta = [world.metadata(results[name][0], "spotler_sync_delta") for name in ("first", "second")]
    assert [m["contacts_sent"] for m in delta] == [20, 0]
    spotler_writes = world.spotler_writes()
    assert 0 < spotler_writes <= 2  # one batch (or two) for the 20 records, by the first run only
    # Each unsubscribe read back by both runs reaches AFAS once, and the ledger holds it delivered.
    write_back = [world.metadata(results[name][1], "spotler_afas_write_back") for name in ("first", "second")]
    assert sorted(m["calls_sent"] for m in write_back) == [0, 10]
    afas_writes = world.afas("GET", "/stats")["requests"]
    assert sum(n for route, n in afas_writes.items() if route.split(" ")[0] in ("PUT", "POST")) == 10
    ledger = world.state().feedback_events("spotler")
    assert sorted(ledger["external_id"]) == sorted(unsubscribed) and set(ledger["status"]) == {"delivered"}


def test_a_run_that_waits_too_long_for_the_state_gives_up_naming_the_holder(world):
    holder = SyncStateResource(path=world.state_location)
    failpoints.arm("spotler_sync.intent_recorded", "pause")
    thread = threading.Thread(target=world.sync)
    thread.start()
    assert failpoints.wait_until_paused("spotler_sync.intent_recorded")
    waiting = SyncStateResource(path=world.state_location, lock_timeout_s=0.2)
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:
        with dg.build_resources({"sync_state": waiting}):
            pass
    assert isinstance(raised.value.__cause__, StateError)
    shown = re.escape(world.state_location.replace(":afas-test-pg@", ":***@"))
    assert re.match(rf"run \S+ \(pid \d+ on .+\) has held the sync state {shown} for more than 0.2s; this run wrote "
                    "nothing", str(raised.value.__cause__))
    failpoints.release("spotler_sync.intent_recorded")
    thread.join(120)
    with dg.build_resources({"sync_state": holder}) as resources:  # free again once the first run is done
        assert resources.sync_state.open().records("spotler").shape[0] > 0
