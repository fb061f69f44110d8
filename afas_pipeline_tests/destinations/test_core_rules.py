"""The rules of the core (docs/rules.md), held by every destination alike: one test each, run once per destination
through its real chain over HTTP. Rules only one destination has are tested in its own folder."""

from __future__ import annotations

WINDOW = "2026-11-16-10:00"  # a quiet window after the synthetic CRM's last change: only our edits are in it
IN_WINDOW = "2026-11-16T10:05:00Z"


def _eligible(world, probe, **conditions) -> dict:
    """An AFAS contact the last sync put in the destination, matching conditions."""
    present = probe.records()
    contacts = world.afas_contacts()
    for name, wanted in conditions.items():
        contacts = contacts[contacts[name] == wanted]
    contacts = contacts[contacts["ContactId"].astype(str).isin(present)]
    assert len(contacts), f"the dataset has no synced contact with {conditions}"
    return contacts.iloc[0].to_dict()


def test_r3_a_contact_without_a_valid_email_address_is_never_created(destination):
    world, probe = destination
    result = world.sync()
    audience = world.stored(f"{world.destination}_audience").set_index("external_id")
    created = set(probe.records())
    without = set(audience.index[audience["excluded_by"].isin(["R3", "R3-syntax"])])
    assert (audience["excluded_by"] == "R3").any() and (audience["excluded_by"] == "R3-syntax").any()
    assert not without & created
    assert world.metadata(result, f"{world.destination}_audience")["excluded/R3"] >= 1


def test_r7_a_blocked_contact_gets_no_marketing_permission(destination):
    world, probe = destination
    world.sync()
    records = probe.records()
    blocked = [str(c) for c in world.afas_contacts().query("Blocked and ContactKind == 'PRS'")["ContactId"]
               if str(c) in records]
    assert blocked, "the dataset should have blocked contacts with an address"
    assert not any(probe.subscribed(records[i]) for i in blocked)
    # Blocking a subscribed contact takes the permission away at the next delta.
    contact = _eligible(world, probe, ContactKind="PRS", Blocked=False, HardBounce=False, PermissionNewsletter=True)
    external_id = str(contact["ContactId"])
    assert probe.subscribed(probe.records()[external_id])
    world.afas_edit("contacts", external_id, at=IN_WINDOW, Blocked=True)
    world.delta(WINDOW)
    assert not probe.subscribed(probe.records()[external_id])


def test_c1_an_opt_out_in_the_destination_survives_an_unrelated_afas_edit(destination):
    world, probe = destination
    world.sync()
    contact = _eligible(world, probe, ContactKind="PRS", Blocked=False, HardBounce=False, PermissionNewsletter=True)
    external_id = str(contact["ContactId"])
    probe.opt_out(external_id)
    world.afas_edit("contacts", external_id, Function="Iets anders")  # now: after the opt-out

    result = world.sync("2026-11-22-12:00")

    after = probe.records()[external_id]
    assert probe.job_title(after) == "Iets anders"
    assert not probe.subscribed(after)
    assert world.metadata(result, f"{world.destination}_sync_plan")["optouts_seen"] == 1
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "c1_no_optout_undone"]
    assert check.passed


def test_c1_a_sync_sending_a_plan_made_before_an_opt_out_holds_its_switch_on(destination):
    """A window's sync run again on its own (a re-execution from failure, a step retry, a materialization of
    `<d>_sync_delta` alone) sends the plan stored earlier: an opt-out made since must still hold."""
    world, probe = destination
    d = world.destination
    world.sync()
    contact = _eligible(world, probe, ContactKind="PRS", Blocked=False, HardBounce=False, PermissionNewsletter=False)
    external_id = str(contact["ContactId"])
    world.afas_edit("contacts", external_id, at=IN_WINDOW, PermissionNewsletter=True)
    first = world.delta(WINDOW)
    assert world.metadata(first, f"{d}_sync_plan_delta")["plan/permissions_on"] == 1
    assert not probe.opted_out(probe.records()[external_id])
    probe.opt_out(external_id)  # the recipient, once the switch-on reached them
    probe.reset_writes()

    again = world.send(WINDOW, delta=True)

    assert probe.opted_out(probe.records()[external_id]), "C1: the opt-out was undone by the plan made before it"
    sent_again = world.metadata(again, f"{d}_sync_delta")
    assert (sent_again["held_at_send"], sent_again["optouts_reread"]) == (1, True)
    assert world.metadata(first, f"{d}_sync_delta")["optouts_reread"] is False  # its own run's plan: no second read
    assert probe.writes() == 0  # the plan's only write was the switch-on
    assert all(c.passed for c in again.get_asset_check_evaluations())
    # The next plan sees the opt-out too (C1) and sends nothing back.
    later = world.sync("2026-11-22-12:00")
    (check,) = [c for c in later.get_asset_check_evaluations() if c.check_name == "c1_no_optout_undone"]
    assert check.passed and probe.opted_out(probe.records()[external_id])


def test_c3_a_rerun_and_a_backfill_of_unchanged_windows_send_zero_writes(destination):
    world, probe = destination
    world.sync()
    contacts = world.afas_contacts().query("ContactKind == 'PRS' and not Blocked and not HardBounce")
    contacts = contacts[contacts["ContactId"].astype(str).isin(probe.records())].head(3)
    for n, external_id in enumerate(contacts["ContactId"]):
        world.afas_edit("contacts", external_id, at=f"2026-11-16T10:{5 + 15 * n:02d}:00Z", Function=f"C3 {n}")
    keys = [f"2026-11-16-10:{m:02d}" for m in (0, 15, 30, 45)] + [f"2026-11-16-11:{m:02d}" for m in (0, 15, 30, 45)]
    backfill = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    probe.reset_writes()
    first = world.sync(delta=True, tags=backfill)
    assert world.metadata(first, f"{world.destination}_sync_plan_delta")["plan/update"] == 3
    # A backfill's sync sends the plan its own run made for the range: no second read of the feed.
    assert world.metadata(first, f"{world.destination}_sync_delta")["optouts_reread"] is False
    assert probe.writes() > 0
    probe.reset_writes()

    world.sync()  # rerun of the full partition
    world.sync(delta=True, tags=backfill)  # the same backfill again
    world.delta(keys[0])  # and one window of it

    assert probe.writes() == 0


def test_c4_every_contact_is_synced_excluded_or_rejected(destination):
    world, probe = destination
    result = world.sync()
    metadata = world.metadata(result, f"{world.destination}_sync")
    audience = world.stored(f"{world.destination}_audience")
    sync = world.stored(f"{world.destination}_sync")
    assert len(sync) + metadata["excluded"] == len(audience) == world.metadata(
        result, f"{world.destination}_audience")["contacts_read"]
    (check,) = [c for c in result.get_asset_check_evaluations()
                if c.check_name == "c4_every_contact_synced_excluded_or_rejected"]
    assert check.passed
    assert set(probe.records()) <= set(sync.loc[sync["status"] == "ok", "external_id"])


def test_r12_an_opt_out_in_the_destination_switches_the_afas_field_off(destination):
    world, probe = destination
    world.sync()
    contact = _eligible(world, probe, ContactKind="PRS", Blocked=False, HardBounce=False, PermissionNewsletter=True)
    external_id = str(contact["ContactId"])
    probe.opt_out(external_id)

    # The plan of the next sync sees the opt-out and queues it; the write-back of a window delivers it.
    world.sync("2026-11-22-12:00")
    result = world.feedback("2026-11-22-12:00")

    afas = world.afas_contacts().set_index(world.afas_contacts()["ContactId"].astype(str))
    assert not bool(afas.loc[external_id, "PermissionNewsletter"])
    assert world.metadata(result, f"{world.destination}_afas_write_back")["calls_sent"] == 1
    assert world.metadata(world.feedback("2026-11-22-12:00"), f"{world.destination}_afas_write_back")["calls_sent"] == 0
