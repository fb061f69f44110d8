"""The AFAS -> Spotler rules, one test each (named after the rule), run through the real chain over HTTP. The rules
every destination keeps alike (R3, R7, C1 against an unrelated edit, C3, C4 accounting, R12) are tested once per
destination in `afas_pipeline_tests/destinations/`.

Each test starts from a 300-contact AFAS sandbox, an empty Spotler account and an empty sync state,
and drives the assets through Dagster exactly as a schedule or a backfill would.
"""

from __future__ import annotations

import re

import pytest

from afas_pipeline.afas.sources import AfasSource, AfasSources, default_sources
from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.mapping.errors import MappingError
from afas_pipeline.mapping.load import default_mapping, load_mapping
from afas_pipeline.sync.erasure import tombstone
from afas_pipeline_tests.spotler.conftest import spotler_assets
from afas_pipeline.afas.assets import build_afas_assets
from afas_pipeline_tests.spotler.conftest import email_active, permissions

# A quiet window after the synthetic CRM's last modified date (2026-11-01): only our edits are in it.
WINDOW = "2026-11-16-10:00"
IN_WINDOW = "2026-11-16T10:05:00Z"


def _id(contact: dict) -> str:
    return str(contact["ContactId"])


def _plain_address(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[a-z0-9.]+@[a-z0-9.]+[.]example", value) is not None


def _hard_bounced_or_rejected(world) -> set[str]:
    return set(world.state().rejected("spotler")["external_id"])


def test_r1_a_contact_changed_in_a_window_reaches_spotler_in_that_windows_delta(world):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS")
    world.afas_edit("contacts", contact["ContactId"], at=IN_WINDOW, Function="Inkoper R1")
    world.spotler("POST", "/stats/reset")

    result = world.delta(WINDOW)

    assert world.spotler_contact(_id(contact))["properties"]["function"] == "Inkoper R1"
    assert world.metadata(result, "spotler_sync_delta")["contacts_sent"] == 1
    assert world.spotler_writes() == 1


def test_r1_a_contact_edited_twice_in_one_window_arrives_with_its_last_value(world):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS")
    world.afas_edit("contacts", contact["ContactId"], at="2026-11-16T10:01:00Z", Function="Eerste")
    world.afas_edit("contacts", contact["ContactId"], at="2026-11-16T10:09:00Z", Function="Tweede")

    result = world.delta(WINDOW)

    assert world.spotler_contact(_id(contact))["properties"]["function"] == "Tweede"
    assert world.metadata(result, "spotler_sync_delta")["contacts_sent"] == 1


@pytest.mark.parametrize(
    ("edits", "windows"),
    [
        # Spring forward, 2026-03-29 01:00 UTC (02:00 CET -> 03:00 CEST).
        (["2026-03-29T00:50:00Z", "2026-03-29T01:05:00Z", "2026-03-29T00:59:59.600Z"],
         [f"2026-03-29-{h:02d}:{m:02d}" for h in (0, 1) for m in (0, 15, 30, 45)]),
        # Fall back, 2026-10-25 01:00 UTC: local 02:00-03:00 happens twice.
        (["2026-10-25T00:20:00Z", "2026-10-25T01:20:00Z", "2026-10-25T00:59:59.700Z", "2026-10-25T01:00:00.300Z"],
         [f"2026-10-25-{h:02d}:{m:02d}" for h in (0, 1, 2) for m in (0, 15, 30, 45)]),
    ],
    ids=["spring", "autumn"],
)
def test_r1_deltas_across_a_dst_change_deliver_every_edit_exactly_once(world, edits, windows):
    world.sync()
    contacts = world.pick(len(edits), ContactKind="PRS")
    for n, (contact, at) in enumerate(zip(contacts, edits)):
        world.afas_edit("contacts", contact["ContactId"], at=at, Function=f"DST {n}")
    world.spotler("POST", "/stats/reset")

    sent = 0
    for window in windows:
        sent += world.metadata(world.delta(window), "spotler_sync_delta")["contacts_sent"]

    assert sent == len(edits)  # none lost, none sent twice
    for n, contact in enumerate(contacts):
        assert world.spotler_contact(_id(contact))["properties"]["function"] == f"DST {n}"


def test_r2_a_person_edit_reaches_spotler_in_the_delta_through_the_persons_own_date(world):
    world.sync()
    contacts = world.afas_contacts()
    synced = world.spotler_contacts()
    person = next(p for p in contacts["PersonId"].dropna()
                  if any(str(c) in synced for c in contacts.loc[contacts["PersonId"] == p, "ContactId"]))
    world.afas_edit("persons", person, at=IN_WINDOW, LastName="Achternaam-Nieuw")

    world.delta(WINDOW)

    ids = [str(c) for c in contacts.loc[contacts["PersonId"] == person, "ContactId"] if str(c) in synced]
    assert ids
    for external_id in ids:
        assert world.spotler_contact(external_id)["properties"]["lastName"] == "Achternaam-Nieuw"


def test_r2_the_full_sync_repairs_what_no_delta_picked_up(world):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS")
    # Edited in a window whose delta never runs: only the next full sync can see it.
    world.afas_edit("contacts", contact["ContactId"], at="2026-11-20T03:03:00Z", Function="Hersteld")

    result = world.sync("2026-11-22-12:00")

    assert world.spotler_contact(_id(contact))["properties"]["function"] == "Hersteld"
    assert world.metadata(result, "spotler_sync")["updated"] == 1


def test_r4_loose_persons_and_departments_are_not_synced(world):
    world.sync()
    synced = world.spotler_contacts()
    others = world.afas_contacts().query("ContactKind != 'PRS'")
    assert len(others)
    assert not {str(c) for c in others["ContactId"]} & set(synced)
    audience = world.stored("spotler_audience").set_index("external_id")
    assert set(audience.loc[[str(c) for c in others["ContactId"]], "excluded_by"]) == {"R4"}


def test_r5_only_the_mapped_work_email_is_used(world):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS")
    assert world.spotler_contact(_id(contact))["properties"]["email"] == contact["MailWork"].strip().lower()
    # The person's private address is not mapped: changing it sends nothing.
    world.afas_edit("persons", contact["PersonId"], MailPrivate="prive.adres@thuis.example")
    world.spotler("POST", "/stats/reset")
    world.sync("2026-11-22-12:00")
    assert world.spotler_writes() == 0


def test_r6_newsletter_permissions_are_spotler_permission_bits(world):
    world.sync()
    synced = world.spotler_contacts()
    contacts = world.afas_contacts().set_index("ContactId")
    checked = 0
    for external_id, spotler_contact in synced.items():
        afas = contacts.loc[int(external_id)]
        if afas["Blocked"] or afas["HardBounce"]:
            continue
        assert permissions(spotler_contact) == {1: bool(afas["PermissionNewsletter"]), 2: bool(afas["PermissionEvents"])}
        checked += 1
    assert checked > 100


def test_r8_a_debtor_filter_is_allowed_and_any_other_filter_is_refused(world, tmp_path):
    text = open(default_mapping("spotler").file, encoding="utf-8").read()
    debtors = tmp_path / "spotler.yaml"
    debtors.write_text(text.replace("# - {field: IsDebtor, equals: true}", "- {field: IsDebtor, equals: true}"))
    world.assets = [*build_afas_assets(), *spotler_assets(mapping=load_mapping(debtors))]
    world.sync()
    audience = world.stored("spotler_audience")
    members = audience[audience["excluded_by"].isna()]
    assert len(members) and (audience["excluded_by"] == "R8").sum() > 0
    debtor_flags = world.stored("afas_contacts").set_index("ContactId")["IsDebtor"]
    assert all(debtor_flags.loc[int(i)] for i in members["external_id"])
    assert set(world.spotler_contacts()) == set(members["external_id"]) - _hard_bounced_or_rejected(world)

    blocked_filter = tmp_path / "blocked" / "spotler.yaml"
    blocked_filter.parent.mkdir()
    blocked_filter.write_text(text.replace("# - {field: IsDebtor, equals: true}", "- {field: Blocked, equals: false}"))
    with pytest.raises(MappingError) as error:
        load_mapping(blocked_filter)
    assert str(blocked_filter) in str(error.value) and "R8" in str(error.value) and "Blocked" in str(error.value)


def test_r9_a_contacts_connector_without_the_ids_is_refused_before_anything_is_written(world):
    shipped = default_sources()
    sources = AfasSources(
        contacts=AfasSource(connector="Sync_Persons", key="PersonId", modified=("ModifiedDate",),
                            required=("ContactId", "PersonId", "OrganisationId", "ContactKind")),
        persons=shipped.persons,
        organisations=shipped.organisations,
    )
    world.assets = [*build_afas_assets(sources), *spotler_assets(sources=sources)]
    result = world.sync(raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.to_string()
    assert "Sync_Persons" in message and "ContactId" in message and "R9" in message
    assert world.spotler_contacts() == {}


def test_r10_a_contact_removed_from_afas_stays_unchanged_in_spotler(world):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS")
    before = world.spotler_contact(_id(contact))
    world.afas("POST", "/delete", json={"table": "contacts", "key": _id(contact)})
    world.spotler("POST", "/stats/reset")

    world.sync("2026-11-22-12:00")

    after = world.spotler_contact(_id(contact))
    assert after == before  # not deleted, not anonymised, not a single property touched
    assert world.spotler_writes() == 0


def test_r11_a_hard_bounced_contact_is_not_enriched_until_afas_gives_it_a_new_address(world):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", HardBounce=False, Blocked=False)
    external_id = _id(contact)
    world.spotler("POST", f"/recipients/{external_id}/bounce", json={"type": "hard"})
    assert not email_active(world.spotler_contact(external_id))
    # The bounce reaches AFAS (the feedback loop); afterwards an unrelated AFAS edit is not sent.
    world.afas_edit("contacts", external_id, at="2026-11-16T10:01:00Z", HardBounce=True, BounceType="hard")
    world.delta(WINDOW)
    world.afas_edit("contacts", external_id, at="2026-11-16T10:16:00Z", Function="Niet verrijkt")
    world.delta("2026-11-16-10:15")
    assert world.spotler_contact(external_id)["properties"].get("function") != "Niet verrijkt"
    assert not email_active(world.spotler_contact(external_id))

    world.afas_edit("contacts", external_id, at="2026-11-16T10:31:00Z", MailWork="nieuw.adres@voorbeeld.example")
    world.delta("2026-11-16-10:30")

    reactivated = world.spotler_contact(external_id)
    assert reactivated["properties"]["email"] == "nieuw.adres@voorbeeld.example"
    assert reactivated["properties"]["function"] == "Niet verrijkt"
    assert email_active(reactivated)


def test_r11_a_contact_spotler_inactivated_since_the_last_run_is_left_alone_by_the_next_full_sync(world):
    """The full sync's plan reads the state whole before it reads Spotler's change feed; the feed's hard bounce is
    in the state only after that, so the plan must take that record's row again (it did not: the contact was
    enriched)."""
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", HardBounce=False, Blocked=False)
    external_id = _id(contact)
    world.spotler("POST", f"/recipients/{external_id}/bounce", json={"type": "hard"})
    world.afas_edit("contacts", external_id, Function="Niet verrijkt")  # before the bounce reached AFAS

    world.sync("2026-11-22-12:00")

    assert world.spotler_contact(external_id)["properties"].get("function") != "Niet verrijkt"
    assert not email_active(world.spotler_contact(external_id))


def test_r11_a_plan_sent_later_leaves_alone_a_record_spotler_inactivated_since(world):
    """A plan sent by another run or attempt than the one that made it (a re-execution from failure, a step retry,
    the sync materialized alone): its sync reads Spotler's change feed again first, and a hard bounce there makes the
    record inactive in the state. The plan's update of that record is not sent, nor its state row saved over the
    bounce (it was: the contact was enriched, and the state forgot the bounced address)."""
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", HardBounce=False, Blocked=False)
    external_id = _id(contact)
    world.afas_edit("contacts", external_id, Function="Niet verrijkt")
    planned = world.sync("2026-11-22-12:00", dry_run=True)  # the plan of a run that died before its sync
    assert world.metadata(planned, "spotler_sync_plan")["plan/update"] == 1
    world.spotler("POST", f"/recipients/{external_id}/bounce", json={"type": "hard"})

    sent = world.send("2026-11-22-12:00")

    assert world.spotler_contact(external_id)["properties"].get("function") != "Niet verrijkt"
    assert not email_active(world.spotler_contact(external_id))
    assert world.state().records("spotler", [external_id])["bounced_email_hash"].notna().all()
    metadata = world.metadata(sent, "spotler_sync")
    assert (metadata["optouts_reread"], metadata["superseded"], metadata["contacts_sent"]) == (True, 1, 0)


def test_c1_a_plan_sent_after_a_later_run_planned_sends_nothing_of_it(world):
    """A full sync's run dies after its plan. Before the plan is sent (the run retried from failure, a re-execution),
    AFAS switched a newsletter off again and a delta run planned that record: nothing to do, Spotler never had it on.
    The old plan's switch-on must not reach Spotler (it did: an unsubscribe made in AFAS was undone until the next
    full sync). A later plan of the destination supersedes all of an older one."""
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", Blocked=False, HardBounce=False, PermissionNewsletter=False)
    external_id = _id(contact)
    world.afas_edit("contacts", external_id, PermissionNewsletter=True)
    planned = world.sync("2026-11-22-12:00", dry_run=True)
    assert world.metadata(planned, "spotler_sync_plan")["plan/permissions_on"] == 1
    world.afas_edit("contacts", external_id, at=IN_WINDOW, PermissionNewsletter=False)
    delta = world.delta(WINDOW)
    assert world.metadata(delta, "spotler_sync_delta")["contacts_sent"] == 0  # Spotler has it off already
    rows = world.metadata(planned, "spotler_sync_plan")["dagster/row_count"]

    sent = world.send("2026-11-22-12:00")

    assert not permissions(world.spotler_contact(external_id)).get(1)
    metadata = world.metadata(sent, "spotler_sync")
    assert (metadata["superseded"], metadata["contacts_sent"]) == (rows, 0)


def test_p2_a_plan_sent_later_creates_no_person_erased_since(world):
    """A contact new to Spotler is planned; before the plan is sent (a re-execution from failure), the person is
    erased (their tombstone written). The old plan must not create them (it did: the state holds nothing of a
    record it never sent, so it looked the same as when the plan was made)."""
    world.sync()
    contacts = world.afas_contacts()
    new = contacts[(contacts["ContactKind"] == "PRS") & ~contacts["Blocked"].astype(bool)
                   & contacts["MailWork"].isna()].iloc[0]
    external_id = str(new["ContactId"])
    world.afas_edit("contacts", external_id, MailWork="nieuw.lid@voorbeeld.example")
    planned = world.sync("2026-11-22-12:00", dry_run=True)
    assert world.metadata(planned, "spotler_sync_plan")["plan/create"] == 1
    world.state().queue_erasure(hash_key(external_id), {"contacts": [external_id]},
                                [tombstone("spotler", external_id)], source="cli")

    sent = world.send("2026-11-22-12:00")

    assert world.spotler_contact(external_id) is None
    assert world.metadata(sent, "spotler_sync")["superseded"] == 1


def test_c1_a_permission_afas_switches_on_after_the_opt_out_is_switched_on(world):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", Blocked=False, HardBounce=False, PermissionNewsletter=True)
    external_id = _id(contact)
    world.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1})
    world.afas_edit("contacts", external_id, PermissionNewsletter=False)
    world.sync("2026-11-21-12:00")
    world.afas_edit("contacts", external_id, PermissionNewsletter=True)

    world.sync("2026-11-21-18:00")

    assert permissions(world.spotler_contact(external_id))[1] is True


def test_c2_addresses_are_trimmed_and_lower_cased_and_each_contact_is_its_own_record(world):
    result = world.sync()
    contacts = world.afas_contacts().query("ContactKind == 'PRS'")
    messy = contacts[contacts["MailWork"].map(lambda m: isinstance(m, str) and m != m.strip().lower() and "@" in m)]
    assert len(messy)
    synced = world.spotler_contacts()
    for row in messy.itertuples():
        if str(row.ContactId) in synced:
            assert synced[str(row.ContactId)]["properties"]["email"] == row.MailWork.strip().lower()
    normalised = contacts["MailWork"].map(lambda m: m.strip().lower() if isinstance(m, str) else None)
    shared = normalised[normalised.duplicated(keep=False) & normalised.notna()]
    in_spotler = [str(c) for c in contacts.loc[shared.index, "ContactId"] if str(c) in synced]
    assert len(in_spotler) >= 2  # one address on several contacts: one Spotler record each
    # The check names them (hashed), so an operator can find the contacts that share an address.
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "c2_one_record_per_contact"]
    keys = check.metadata["sharing_keys"].value
    assert len(keys) == min(10, check.metadata["members_sharing_an_address"].value) and set(map(hash_key, in_spotler)) & set(keys)


def test_c4_every_contact_is_synced_excluded_or_rejected_and_rejections_are_retried(world):
    (contact,) = world.pick(1, in_spotler=None, ContactKind="PRS", Blocked=False, HardBounce=False, MailWork=_plain_address)
    external_id = _id(contact)
    # Spotler refuses properties over 255 characters; AFAS allows longer free text.
    world.afas_edit("contacts", external_id, Function="x" * 300)
    result = world.sync()
    sync = world.metadata(result, "spotler_sync")
    audience = world.metadata(result, "spotler_audience")
    assert sync["rejected"] == 1
    assert audience["contacts_read"] == sync["created"] + sync["skipped_hard_bounce"] + sync["excluded"] + sync["rejected"]
    rejected = world.state().rejected("spotler").set_index("external_id")
    # The refusal names the property an operator has to fix in AFAS, never its value.
    assert rejected.loc[external_id, "reason"] == "PROPERTY_INVALID:function" and rejected.loc[external_id, "attempts"] == 1
    assert world.spotler_contact(external_id) is None
    assert len(rejected) == 1

    world.afas_edit("contacts", external_id, at=IN_WINDOW, Function="Kort genoeg")
    world.delta(WINDOW)

    assert world.spotler_contact(external_id)["properties"]["function"] == "Kort genoeg"
    assert world.state().rejected("spotler").empty


def test_c4_a_record_refused_again_and_again_is_quarantined(world):
    (contact,) = world.pick(1, in_spotler=None, ContactKind="PRS", Blocked=False, HardBounce=False, MailWork=_plain_address)
    world.afas_edit("contacts", contact["ContactId"], Function="y" * 300)
    for partition in ("2026-11-21-00:00", "2026-11-21-06:00", "2026-11-21-12:00", "2026-11-21-18:00", "2026-11-22-00:00"):
        world.sync(partition)
    rejected = world.state().rejected("spotler").set_index("external_id")
    assert rejected.loc[_id(contact), "attempts"] == 5 and rejected.loc[_id(contact), "quarantined"]
    world.spotler("POST", "/stats/reset")
    result = world.sync("2026-11-21-12:00")
    assert world.metadata(result, "spotler_sync")["quarantined"] == 1
    assert world.spotler_writes() == 0


def test_a_dry_run_plans_and_writes_nothing(world):
    result = world.sync(dry_run=True)
    plan = world.metadata(result, "spotler_sync_plan")
    assert plan["plan/create"] > 100
    assert world.metadata(result, "spotler_sync")["dry_run"] is True
    assert world.spotler_contacts() == {}
    assert world.state().records("spotler").empty


def test_faults_on_both_sides_converge_to_exactly_the_expected_spotler_state(world):
    world.sync()
    expected = {i: (c["properties"]["email"], permissions(c)) for i, c in world.spotler_contacts().items()}
    world.spotler("POST", "/reset")
    world.state_path.unlink()
    # Small pages and batches, so that 20% faults hit dozens of calls on both sides.
    world.afas_options, world.spotler_options = {"page_size": 20}, {"batch_size": 10}
    world.afas("PUT", "/faults", json={"error_503_rate": 0.1, "drop_rate": 0.1, "retry_after": 0, "seed": 3})
    world.spotler("PUT", "/faults", json={"error_503_rate": 0.1, "drop_rate": 0.05, "error_429_rate": 0.05,
                                          "retry_after": 0, "seed": 5})

    result = world.sync("2026-11-22-12:00")

    afas_faults = world.afas("GET", "/stats")["faults"]
    spotler_faults = world.spotler_stats()["faults"]
    assert sum(afas_faults.values()) > 0 and sum(spotler_faults.values()) > 0
    assert world.metadata(result, "spotler_sync")["rejected"] == 0
    actual = {i: (c["properties"]["email"], permissions(c)) for i, c in world.spotler_contacts().items()}
    assert actual == expected  # nothing lost, nothing doubled, nothing different


def test_schema_drift_stops_the_sync_before_any_write(world, tmp_path):
    text = open(default_mapping("spotler").file, encoding="utf-8").read()
    drifted = tmp_path / "spotler.yaml"
    drifted.write_text(text.replace("property: function,", "property: jobTitle,"))
    world.assets = [*build_afas_assets(), *spotler_assets(mapping=load_mapping(drifted))]

    result = world.sync(raise_on_error=False)

    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "mapping_matches_afas_and_spotler"]
    assert not check.passed and "jobTitle" in check.description
    assert world.spotler_contacts() == {}
    assert world.spotler_writes() == 0


def test_r11_a_contact_afas_flags_as_hard_bounced_is_created_inactive_and_then_left_alone(world):
    world.sync()
    flagged = world.afas_contacts().query("HardBounce and ContactKind == 'PRS' and not Blocked")
    synced = world.spotler_contacts()
    present = [str(c) for c in flagged["ContactId"] if str(c) in synced]
    assert present
    assert not any(email_active(synced[i]) for i in present)
    world.afas_edit("contacts", present[0], Function="Niet verrijkt")
    world.spotler("POST", "/stats/reset")
    world.sync("2026-11-22-12:00")
    assert world.spotler_writes() == 0
