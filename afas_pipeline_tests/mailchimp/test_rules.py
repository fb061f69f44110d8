"""The AFAS <-> Mailchimp rules (MC1-MC5, C1-C4, R7, R14), one test each (named after the rule), over real HTTP.

Each test starts from a 300-contact AFAS sandbox (seed 7), an empty Mailchimp audience and an empty sync state,
drives the Mailchimp chain through Dagster as a schedule would (full sync, 15-minute deltas, the way back), and
acts as an AFAS user or a Mailchimp member through the sandboxes' admin APIs, with explicit times in quiet
windows after the synthetic CRM's last modified date (only our own acts are in them). Our own writes are stamped
with the real time, long after those windows, so the way back never takes them for a member's act.
"""

from __future__ import annotations

import re

import httpx
import pandas as pd
import phonenumbers

from afas_pipeline.chain.feedback import AFAS
from afas_pipeline.mailchimp.client import subscriber_hash
from afas_pipeline.sync.audience import property_column
from afas_pipeline_tests.mailchimp.conftest import MailchimpWorld
from afas_pipeline_tests.world import WORLD_CONTACTS

WINDOW = "2026-11-16-10:00"
NEXT = "2026-11-16-10:15"
LATER = "2026-11-16-10:30"
E164 = re.compile(r"\+[1-9]\d{7,14}")
ADDRESS_KEYS = {"addr1", "addr2", "city", "state", "zip", "country"}


def _id(contact: dict) -> str:
    return str(contact["ContactId"])


def _at(partition: str, minute: int) -> str:
    """An instant `minute` minutes into the 15-minute window `partition` (UTC)."""
    start = pd.Timestamp(partition[:10] + "T" + partition[11:], tz="UTC")
    return (start + pd.Timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _afas_contact(world: MailchimpWorld, external_id: str) -> dict:
    df = world.afas_contacts()
    (row,) = df[df["ContactId"].astype(str) == external_id].to_dict("records")
    return row


def _afas_writes(world: MailchimpWorld) -> dict[str, int]:
    requests = world.afas("GET", "/stats")["requests"]
    return {route: n for route, n in requests.items() if route.split(" ")[0] in ("PUT", "POST", "DELETE")}


def _subscribers(world: MailchimpWorld, n: int = 1) -> list[dict]:
    world.sync()
    return world.pick(n, ContactKind="PRS", PermissionNewsletter=True, Blocked=False, HardBounce=False)


def _check(result, name: str):
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return check


def _present(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


# --- AFAS -> Mailchimp ------------------------------------------------------------------------------------


def test_mc1_a_first_full_sync_makes_one_complete_member_per_eligible_contact_and_a_rerun_writes_nothing(mc_world):
    world = mc_world
    result = world.sync()

    audience = world.stored("mailchimp_audience").set_index("external_id")
    plan = world.stored("mailchimp_sync_plan").set_index("external_id")
    members = world.members()
    created = set(plan.index[plan["action"] == "create"])
    assert len(created) > 200 and set(members) == created  # one member per eligible contact, keyed by AFASID
    assert len(world.all_members()) == len(members)
    assert set(plan.index[plan["action"] == "skip_shared_address"]) == \
        set(audience.index[audience["excluded_by"].isna()]) - created  # C2: the rest share an address

    afas = world.afas_contacts().set_index(world.afas_contacts()["ContactId"].astype(str))
    complete_addresses = phones = 0
    unparseable = 0
    for external_id, member in members.items():
        row, fields = audience.loc[external_id], member["merge_fields"]
        assert member["email_address"] == row["email"]
        assert fields["AFASID"] == external_id
        for tag in ("FNAME", "LNAME", "COMPANY"):
            expected = row[property_column(tag)]
            assert fields[tag] == (expected if _present(expected) else ""), (external_id, tag)
        address = fields["ADDRESS"]
        if address:
            # Only a complete address is sent, as the object Mailchimp takes.
            assert set(address) == ADDRESS_KEYS
            assert all(_present(address[k]) for k in ("addr1", "city", "state", "zip", "country"))
            assert address["addr1"].startswith(str(row[property_column("ADDRESS.street")]).strip())
            assert address["zip"] == str(row[property_column("ADDRESS.zip")]).strip()
            complete_addresses += address["country"] == "NL"
        phone = row[property_column("PHONE")]
        if fields["PHONE"]:
            assert E164.fullmatch(fields["PHONE"]), fields["PHONE"]
            assert phonenumbers.is_valid_number(phonenumbers.parse(fields["PHONE"]))
            phones += 1
        elif _present(phone):
            unparseable += 1  # an AFAS number that cannot be read: left out, never sent as it is
        # MC3: a new member's status from the AFAS opt-in; R7: blocked is never subscribed; R11: bounced is cleaned.
        contact = afas.loc[external_id]
        if contact["HardBounce"]:
            assert member["status"] == "cleaned"
        elif contact["Blocked"] or not contact["PermissionNewsletter"]:
            assert member["status"] == "transactional", external_id
        else:
            assert member["status"] == "subscribed", external_id
    assert complete_addresses > 100 and phones > 50 and unparseable > 0
    metadata = world.metadata(result, "mailchimp_sync")
    assert metadata["phones_left_out_unparseable"] == unparseable
    assert metadata["created"] == len(members) and metadata["rejected"] == 0
    blocked = [i for i in members if afas.loc[i, "Blocked"] and afas.loc[i, "PermissionNewsletter"]]
    assert blocked, "the dataset should have blocked contacts with the opt-in on"

    # C3: the same window again sends no write at all.
    world.mc("POST", "/stats/reset")
    again = world.sync()
    assert world.mc_writes() == 0
    rerun = world.metadata(again, "mailchimp_sync")
    assert (rerun["created"], rerun["updated"]) == (0, 0)
    assert rerun["unchanged"] + rerun["skipped_hard_bounce"] == len(members)


def _soon(minutes: int) -> str:
    """An instant shortly after now: AFAS acts after what Mailchimp stamped now."""
    return (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_mc3_c1_an_unsubscribed_member_gets_afas_edits_stays_unsubscribed_and_an_afas_optin_sends_pending(mc_world):
    world = mc_world
    (contact,) = _subscribers(world)
    external_id = _id(contact)
    world.unsubscribe(external_id)
    # AFAS edits the name while its opt-in is still on (the unsubscribe has not flowed back yet).
    world.afas_edit("persons", contact["PersonId"], at=_soon(1), LastName="Achternaam-MC3")

    edited = world.sync("2026-11-22-12:00")

    member = world.member(external_id)
    assert member["merge_fields"]["LNAME"] == "Achternaam-MC3"
    assert member["status"] == "unsubscribed"
    assert world.metadata(edited, "mailchimp_sync")["updated"] == 1
    assert _check(edited, "no_resubscription").passed

    # AFAS switches the opt-in off, then on again after the unsubscribe: Mailchimp asks the person (pending).
    world.afas_edit("contacts", contact["ContactId"], at=_soon(2), PermissionNewsletter=False)
    off = world.sync("2026-11-22-18:00")
    assert world.member(external_id)["status"] == "unsubscribed"
    world.afas_edit("contacts", contact["ContactId"], at=_soon(3), PermissionNewsletter=True)
    on = world.sync("2026-11-23-00:00")

    assert world.member(external_id)["status"] == "pending"  # never `subscribed`: only the person gives it back
    assert world.metadata(on, "mailchimp_sync")["updated"] == 1
    for result in (off, on):
        assert _check(result, "no_resubscription").passed


def test_mc3_c4_a_member_deleted_permanently_is_excluded_by_consent_once_and_not_put_again(mc_world):
    world = mc_world
    contacts = _subscribers(world, 2)
    gone, kept = _id(contacts[0]), _id(contacts[1])
    world.delete_permanent(gone)
    for contact in contacts:
        world.afas_edit("contacts", contact["ContactId"], at="2026-11-22T07:00:00Z", Function="Na het wissen")

    result = world.sync("2026-11-22-12:00")

    assert result.success
    sync = world.stored("mailchimp_sync", "2026-11-22-12:00").set_index("external_id")
    assert sync.loc[gone, "status"] == "excluded_by_consent"
    assert sync.loc[kept, "status"] == "ok"
    metadata = world.metadata(result, "mailchimp_sync")
    assert (metadata["excluded_by_consent"], metadata["rejected"]) == (1, 0)
    rejected = world.metadata(result, "mailchimp_rejected")
    assert rejected["by_reason"] == {"consent:Forgotten Email Not Subscribed": 1}
    assert rejected["quarantined"] == 1 and rejected["pending_retry"] == 0
    assert list(world.state().rejected("mailchimp")["external_id"]) == [gone]
    assert gone not in world.members() and world.member(kept)["merge_fields"]["JOBTITLE"] == "Na het wissen"

    world.mc("POST", "/stats/reset")
    world.sync("2026-11-22-18:00")
    assert world.mc_writes() == 0  # not sent again until AFAS changes it


def test_mc4_an_afas_email_change_renames_the_member(mc_world):
    world = mc_world
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", Blocked=False, HardBounce=False)
    external_id = _id(contact)
    before = world.member(external_id)
    count = len(world.all_members())
    world.afas_edit("contacts", contact["ContactId"], at=_at(WINDOW, 5), MailWork="  Nieuw.Adres@Voorbeeld.EXAMPLE ")

    result = world.delta(WINDOW)

    after = world.member(external_id)
    assert after["email_address"] == "nieuw.adres@voorbeeld.example"
    assert after["id"] == subscriber_hash("nieuw.adres@voorbeeld.example") != before["id"]
    assert after["merge_fields"]["AFASID"] == external_id and after["status"] == before["status"]
    assert len(world.all_members()) == count
    assert before["id"] not in {m["id"] for m in world.all_members()}
    assert world.metadata(result, "mailchimp_sync_delta")["updated"] == 1
    assert world.state().records("mailchimp", [external_id])["destination_key"].iloc[0] == after["id"]


def test_c2_two_afas_contacts_with_one_address_make_one_member(mc_world):
    world = mc_world
    world.sync()
    (owner,) = world.pick(1, ContactKind="PRS", Blocked=False, HardBounce=False)
    (other,) = world.pick(1, in_mailchimp=False, ContactKind="PRS", MailWork=lambda m: not _present(m))
    address = world.member(_id(owner))["email_address"]
    count = len(world.all_members())
    world.afas_edit("contacts", other["ContactId"], at=_at(WINDOW, 5), MailWork=f"  {address.upper()} ")

    result = world.delta(WINDOW)

    plan = world.stored("mailchimp_sync_plan_delta", WINDOW).set_index("external_id")
    assert plan.loc[_id(other), "action"] == "skip_shared_address"
    assert len(world.all_members()) == count
    (member,) = [m for m in world.all_members() if m["email_address"] == address]
    assert member["merge_fields"]["AFASID"] == _id(owner)
    assert world.metadata(result, "mailchimp_sync_plan_delta")["plan/skip_shared_address"] == 1


# --- Mailchimp -> AFAS ------------------------------------------------------------------------------------


def test_mc2_mc5_r14_unsubscribe_clean_and_profile_edit_reach_afas_afas_wins_a_tie_and_nothing_is_created(mc_world):
    world = mc_world
    unsubscriber, cleaned, editor, tie = (_id(c) for c in _subscribers(world, 4))
    world.unsubscribe(unsubscriber, at=_at(WINDOW, 2))
    world.clean(cleaned, at=_at(WINDOW, 3))
    world.profile(editor, at=_at(WINDOW, 4), JOBTITLE="Hoofd Marketing")
    world.afas_edit("contacts", tie, at=_at(WINDOW, 3), Function="Uit AFAS")
    world.profile(tie, at=_at(WINDOW, 6), JOBTITLE="Uit Mailchimp")
    before = len(world.afas_contacts())
    world.afas("POST", "/stats/reset")

    world.delta(WINDOW)  # the job's order: the sync to Mailchimp first, then the way back
    back = world.feedback(WINDOW)
    world.feedback(NEXT)

    assert _afas_contact(world, unsubscriber)["PermissionNewsletter"] is False
    bounced = _afas_contact(world, cleaned)
    assert bool(bounced["HardBounce"]) is True
    assert pd.Timestamp(bounced["BounceDate"], unit="ms" if isinstance(bounced["BounceDate"], (int, float)) else None
                        ).date().isoformat() == "2026-11-16"
    assert _afas_contact(world, editor)["Function"] == "Hoofd Marketing"
    assert _afas_contact(world, tie)["Function"] == "Uit AFAS"  # MC2: AFAS is leading
    assert world.member(tie)["merge_fields"]["JOBTITLE"] == "Uit AFAS"
    metadata = world.metadata(back, "mailchimp_afas_write_back")
    assert metadata["contacts/delivered"] == 3 and metadata["stopped/no_create"] == 0
    # R14: only PUTs of existing contacts, one per changed contact (R15), never a create.
    writes = _afas_writes(world)
    assert all(route.startswith("PUT") and "KnContact" in route for route in writes), writes
    assert sum(writes.values()) == 3
    assert len(world.afas_contacts()) == before
    # The state learned AFAS's new values: the next delta sends nothing back to Mailchimp.
    world.mc("POST", "/stats/reset")
    world.delta(NEXT)
    assert world.mc_writes() == 0


# --- outages ----------------------------------------------------------------------------------------------

AFAS_FAULTS = {"error_503_rate": 0.1, "error_500_rate": 0.05, "drop_rate": 0.05, "retry_after": 0, "seed": 11}
MAILCHIMP_FAULTS = {"error_503_rate": 0.08, "error_429_rate": 0.06, "drop_rate": 0.06, "retry_after": 0, "seed": 13}


def _settled(world: MailchimpWorld, runs) -> bool:
    state = world.state()
    return all(r.success for r in runs) and state.feedback_events("mailchimp", status="pending").empty \
        and state.rejected(AFAS).empty and state.rejected("mailchimp").empty


def _scenario(world: MailchimpWorld, faults: bool) -> tuple[dict[str, tuple], list[str]]:
    """A full sync, three members unsubscribing, AFAS edits of them and others, then a delta, a full sync and the
    way back, under 20% faults on both sides when `faults`; then reruns without faults until every run is green.
    Returns Mailchimp's members (AFASID -> address, status, merge fields) and the unsubscribers."""
    world.sync()
    contacts = world.pick(6, ContactKind="PRS", PermissionNewsletter=True, Blocked=False, HardBounce=False)
    unsubscribers = [_id(c) for c in contacts[:3]]
    for n, external_id in enumerate(unsubscribers):
        world.unsubscribe(external_id, at=_at(WINDOW, n + 1))
    for n, contact in enumerate(contacts):
        world.afas_edit("contacts", contact["ContactId"], at=_at(WINDOW, 5 + n), Function=f"Functie {n}")
    if faults:
        world.afas("PUT", "/faults", json=AFAS_FAULTS)
        world.mc("PUT", "/faults", json=MAILCHIMP_FAULTS)
    # The delta restamps the members it writes (after the window), so their unsubscribes are seen by the full
    # sync's read of the change feed, which queues them for the next way back.
    runs = [world.delta(WINDOW, raise_on_error=False), world.sync("2026-11-22-12:00", raise_on_error=False),
            world.feedback(NEXT, raise_on_error=False)]
    if faults:
        assert sum(world.mc_stats()["faults"].values()) > 0 and sum(world.afas("GET", "/stats")["faults"].values()) > 0
        world.afas("PUT", "/faults", json={})
        world.mc("PUT", "/faults", json={})
    for _ in range(3):  # what an on-call engineer does: rerun until green and nothing is left pending
        if _settled(world, runs):
            break
        runs = [world.delta(WINDOW), world.sync("2026-11-22-18:00"), world.feedback(LATER)]
    assert _settled(world, runs)
    afas = world.afas_contacts().set_index(world.afas_contacts()["ContactId"].astype(str))
    assert not afas.loc[unsubscribers, "PermissionNewsletter"].any()  # the unsubscribes reached AFAS (MC5)
    members = {i: (m["email_address"], m["status"], m["merge_fields"]) for i, m in world.members().items()}
    return members, unsubscribers


def test_c4_mc3_syncs_under_20_percent_faults_converge_to_the_fault_free_state_with_no_resubscription(mc_world, tmp_path):
    faulty, unsubscribers = _scenario(mc_world, faults=True)

    sb = mc_world.sandbox
    httpx.post(f"{sb.afas_admin_url}/reset", timeout=60).raise_for_status()
    httpx.post(f"{sb.afas_admin_url}/dataset/generate", json={"contacts": WORLD_CONTACTS, "seed": 7},
               timeout=60).raise_for_status()
    httpx.post(f"{sb.mailchimp_admin_url}/reset", timeout=60).raise_for_status()
    (tmp_path / "fault-free").mkdir()
    clean, same_unsubscribers = _scenario(MailchimpWorld(sb, tmp_path / "fault-free"), faults=False)

    assert unsubscribers == same_unsubscribers
    assert faulty == clean
    assert [faulty[i][1] for i in unsubscribers] == ["unsubscribed"] * 3  # 0 subscribed after an unsubscribe
    assert all(faulty[i][2]["JOBTITLE"].startswith("Functie ") for i in unsubscribers)
