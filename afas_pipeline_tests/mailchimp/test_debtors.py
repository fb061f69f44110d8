"""AFAS's debtors as the Mailchimp audience (seed 002; `mappings/mailchimp_debtors.yaml`), over real HTTP: one
member per debtor with a usable address, read from Profit_Debtor_App and Profit_Deliveryaddress; deltas that
see an edit of the debtor card and of its delivery address; consent that no AFAS edit undoes; nothing written
back to AFAS."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from afas_pipeline.afas.assets import build_afas_assets
from afas_pipeline.afas.sources import ENTITIES
from afas_pipeline.chain import build_destination_assets
from afas_pipeline.mailchimp.adapter import MailchimpAdapter
from afas_pipeline.mailchimp.client import subscriber_hash
from afas_pipeline.mapping.load import load_mapping
from afas_pipeline.sync.audience import is_valid_email, normalise_email
from afas_pipeline_tests.mailchimp.conftest import MailchimpWorld
from afas_pipeline_tests.world import holding

MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "mailchimp_debtors.yaml"
DELTA = "2026-11-22-06:15"
DEBTOR_WORLD_CONTACTS = 1000


@pytest.fixture(scope="module")
def debtor_assets() -> list:
    mapping = load_mapping(MAPPING)
    return [*build_afas_assets(entities=ENTITIES), *build_destination_assets(MailchimpAdapter(mapping))]


@pytest.fixture
def world(mc_world: MailchimpWorld, debtor_assets) -> MailchimpWorld:
    # About one organisation or person in ten is a debtor: 1,000 contacts give some 40 debtors, with every
    # planted case (no e-mail, a shared mailbox, foreign addresses, no delivery address).
    mc_world.afas("POST", "/dataset/generate", json={"contacts": DEBTOR_WORLD_CONTACTS, "seed": 7})
    mc_world.assets = debtor_assets
    return mc_world


def _debtors(world: MailchimpWorld) -> list[dict]:
    return world.afas("GET", "/records/debtors")


def _addresses(world: MailchimpWorld) -> dict[int, dict]:
    return {int(a["AddressId"]): a for a in world.afas("GET", "/records/delivery_addresses")}


def _expected_members(debtors: pd.DataFrame) -> set[str]:
    """Debtors with a valid address, the first (lowest id) of those sharing one: Mailchimp keeps one member per
    address, so a second debtor with the same mailbox is skipped, not merged into the first."""
    emails = debtors["MailWork"].map(normalise_email)
    valid = debtors[emails.map(lambda e: isinstance(e, str) and is_valid_email(e))].assign(email=emails)
    return set(valid.sort_values("DebtorId").drop_duplicates("email")["DebtorId"].astype(str))


def test_every_debtor_with_an_address_becomes_one_non_subscribed_member(world):
    debtors = pd.DataFrame(_debtors(world))
    result = world.sync()
    members = world.members()
    expected = _expected_members(debtors)
    assert set(members) == expected and len(expected) > 10
    # Without an AFAS opt-in field no member is subscribed: customers are in the audience, not in campaigns.
    assert {m["status"] for m in members.values()} == {"transactional"}
    audience = world.metadata(result, "mailchimp_audience")
    sync = world.metadata(result, "mailchimp_sync")
    assert audience["debtors_read"] == len(debtors)
    assert audience["members"] + sum(v for k, v in audience.items() if k.startswith("excluded/")) == len(debtors)
    assert sync["created"] == len(expected) and sync["rejected"] == 0
    # The audience is made of the debtors and their delivery addresses, nothing of the contacts.
    (audience_asset,) = holding(world.assets, "mailchimp_audience")
    assert {k.to_user_string() for k in audience_asset.dependency_keys} == {"afas_debtors", "afas_delivery_addresses"}


def test_address_comes_from_the_delivery_address_or_the_dutch_address_lines(world):
    world.sync()
    members = world.members()
    addresses = _addresses(world)
    by_id = {str(d["DebtorId"]): d for d in _debtors(world)}
    seen = {"delivery address": 0, "address lines": 0, "none": 0}
    for debtor_id, member in members.items():
        debtor, address = by_id[debtor_id], member["merge_fields"].get("ADDRESS")
        assert member["merge_fields"]["AFASID"] == debtor_id
        default = addresses.get(debtor["DeliveryAddressId"])
        if default and all(default[f] not in (None, "") for f in ("Street", "HouseNumber", "PostalCode", "City")):
            assert default["Street"] in address["addr1"] and address["city"] == default["City"]
            seen["delivery address"] += 1
        elif debtor["Country"] in (None, "", "NL") and debtor["Street"] and debtor["HouseNumber"] is not None:
            assert address["country"] == "NL" and address["city"] == debtor["City"]
            assert address["addr1"].startswith(debtor["Street"])
            seen["address lines"] += 1
        else:  # a foreign debtor without a complete delivery address: no half address
            assert address in (None, "", {}), debtor_id
            seen["none"] += 1
    assert seen["delivery address"] and seen["address lines"], seen


def test_delta_sees_an_edit_of_the_debtor_and_of_its_delivery_address(world):
    world.sync()
    members = world.members()
    renamed, moved = [d for d in _debtors(world) if str(d["DebtorId"]) in members and d["DeliveryAddressId"]][:2]
    world.afas_edit("debtors", renamed["DebtorId"], at="2026-11-22T06:20:00Z", Name="Nieuwe Naam B.V.")
    world.afas_edit("delivery_addresses", moved["DeliveryAddressId"], at="2026-11-22T06:21:00Z",
                    Street="Verhuisstraat", HouseNumber=9, HouseNumberAddition=None, PostalCode="1234 AB",
                    City="Verweggistan", Country="NL")
    world.mc("POST", "/stats/reset")
    result = world.delta(DELTA)
    after = world.members()
    assert after[str(renamed["DebtorId"])]["merge_fields"]["COMPANY"] == "Nieuwe Naam B.V."
    assert after[str(moved["DebtorId"])]["merge_fields"]["ADDRESS"]["addr1"] == "Verhuisstraat 9"
    assert world.metadata(result, "mailchimp_sync_delta")["updated"] == 2
    assert world.mc_writes() == 2


def test_an_unsubscribe_stands_and_nothing_is_written_to_afas(world):
    world.sync()
    debtor_id = sorted(world.members())[0]
    world.unsubscribe(debtor_id, at="2026-11-22T06:16:00Z")
    world.afas_edit("debtors", debtor_id, at="2026-11-22T06:20:00Z", Name="Weer Gewijzigd")
    world.afas("POST", "/stats/reset")
    result = world.delta(DELTA)
    member = world.member(debtor_id)
    assert member["status"] == "unsubscribed" and member["merge_fields"]["COMPANY"] == "Weer Gewijzigd"
    assert world.metadata(result, "mailchimp_sync_delta")["updated"] == 1
    world.feedback(DELTA)
    writes = {route: n for route, n in world.afas("GET", "/stats")["requests"].items()
              if route.split(" ")[0] in ("POST", "PUT", "DELETE")}
    assert writes == {}


def test_the_member_of_a_debtor_is_found_by_its_address(world):
    world.sync()
    members = world.members()
    debtor = next(d for d in _debtors(world) if str(d["DebtorId"]) in members)
    assert members[str(debtor["DebtorId"])]["id"] == subscriber_hash(debtor["MailWork"])


def test_switching_an_audience_from_contacts_to_debtors_stops_before_any_write(mc_world, debtor_assets):
    """Contact 20002 and debtor 20002 are different people: a state of contacts never serves debtors."""
    mc_world.sync()
    before = mc_world.members()
    mc_world.assets = debtor_assets
    mc_world.mc("POST", "/stats/reset")
    result = mc_world.sync(raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "external_id is debtor.DebtorId" in message and "keyed by contact.ContactId" in message
    assert mc_world.mc_writes() == 0 and mc_world.members() == before
