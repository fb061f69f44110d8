"""C1 and C4 through a crash, for Mailchimp's batch subscribe: a first full sync killed after a batch created its
members and before their answers were saved, then run again, undoes no opt-out made in between, makes nobody
twice, and ends where the state and Mailchimp agree (C3).

Mailchimp gets one call at a time here (`max_concurrency` 1, groups of 50 members), so "the 2nd batch" is the same
batch on every run. The crash is a fail point armed with the `crash` action (`afas_pipeline.lib.failpoints`).
"""

from __future__ import annotations

import pytest

from afas_pipeline.lib import failpoints
from afas_pipeline.lib.failpoints import SimulatedCrash
from afas_pipeline_tests.mailchimp.conftest import MailchimpWorld

ONE_AT_A_TIME = {"max_concurrency": 1, "batch_size": 50}
BATCH_SUBSCRIBE = "POST lists/{list_id}"
MEMBER_PUT = "PUT lists/{list_id}/members/{subscriber_hash}"


def _saved(world: MailchimpWorld) -> set[str]:
    records = world.state().records("mailchimp")
    return set(records.loc[records["destination_key"].notna(), "external_id"].astype(str))


@pytest.mark.parametrize(("point", "at"), [
    ("mailchimp_sync.batch_acknowledged", 2),  # batch 2 created its members in Mailchimp, its answer not saved
    ("mailchimp_sync.batch_saved", 3),         # batch 3 saved, the chunk still marked in flight
])
def test_c1_c4_a_first_sync_killed_after_a_batch_subscribe_then_rerun_undoes_no_opt_out(mc_world, point, at):
    world = mc_world
    world.mailchimp_options = ONE_AT_A_TIME
    failpoints.arm(point, "crash", at)
    with pytest.raises(SimulatedCrash):
        world.sync()
    failpoints.disarm()
    assert world.mc_stats()["requests"].get(BATCH_SUBSCRIBE, 0) >= at, "the members were created by batch subscribe"
    saved, members = _saved(world), world.members()
    landed_unsaved = sorted((i for i, m in members.items() if i not in saved and m["status"] == "subscribed"), key=int)
    landed_saved = sorted((i for i, m in members.items() if i in saved and m["status"] == "subscribed"), key=int)
    if point.endswith("batch_acknowledged"):  # (after a save, the next batch may or may not have been sent)
        assert landed_unsaved, "the killed run left members in Mailchimp whose creation the state does not hold"
    unsubscribed = landed_unsaved[:5] + landed_saved[:5]
    for external_id in unsubscribed:
        world.unsubscribe(external_id)
    world.mc("POST", "/stats/reset")

    world.sync()

    after = world.members()
    assert [i for i in unsubscribed if after[i]["status"] != "unsubscribed"] == [], "C1: an opt-out was undone"
    assert len(world.all_members()) == len(after), "a member was made twice"
    requests = world.mc_stats()["requests"]
    # The members the killed run created are offered to batch subscribe again, which leaves them alone, and each
    # gets its own PUT; the members it never reached are created by batch subscribe.
    assert requests.get(MEMBER_PUT, 0) >= len(landed_unsaved)
    assert world.state().writes_in_flight("mailchimp") == []
    world.mc("POST", "/stats/reset")
    world.sync()
    assert world.mc_writes() == 0  # C3: the state and Mailchimp agree


def _members(world: MailchimpWorld) -> dict[str, tuple]:
    return {i: (m["email_address"], m["status"], m["merge_fields"]) for i, m in world.members().items()}


def test_c4_a_first_sync_while_mailchimp_fails_and_drops_answers_ends_as_a_fault_free_one(mc_world, tmp_path):
    """The first full sync (its members made by batch subscribe) meets a Mailchimp that refuses or drops half of its
    writes (its reads answer), with two attempts a call, for two runs: some batches are applied without an answer,
    some never answered. Then Mailchimp recovers. The audience ends as a fault-free sync makes it: each member once,
    with its status, and nothing left to send."""
    world = mc_world
    world.mailchimp_options = {"max_attempts": 2, "batch_size": 20}
    world.mc("PUT", "/faults", json={"error_503_rate": 0.3, "drop_rate": 0.2, "retry_after": 0, "seed": 5,
                                     "methods": ["POST", "PUT"]})
    failed = [world.sync(raise_on_error=False) for _ in range(2)]
    faults = world.mc_stats()["faults"]
    world.mc("PUT", "/faults", json={})
    assert not all(r.success for r in failed), "the outage made a run fail"
    assert faults["drop"] > 0 and faults["503"] > 0
    assert world.mc_stats()["requests"].get(BATCH_SUBSCRIBE, 0) > 0
    world.sync()
    faulty = _members(world)
    world.mc("POST", "/stats/reset")
    world.sync()
    assert world.mc_writes() == 0  # C3: nothing left to send
    assert len(world.all_members()) == len(faulty), "a member was made twice"

    world.mc("POST", "/reset")
    (tmp_path / "fault-free").mkdir()
    clean = MailchimpWorld(world.sandbox, tmp_path / "fault-free")
    clean.mailchimp_options = {"batch_size": 20}
    clean.sync()
    assert faulty == _members(clean)
