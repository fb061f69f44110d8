"""The AFAS <-> Xelion rules (X1-X4, C3, C4), one test each (named after the rule), over real HTTP.

Each test starts from a 300-contact AFAS sandbox (seed 7), an empty Xelion tenant and an empty sync state, drives
the Xelion graph through Dagster as the schedules would, and acts as an AFAS user or a caller through the
sandboxes' admin APIs.
"""

from __future__ import annotations

import threading

import dagster as dg
import httpx
import pandas as pd
import phonenumbers
import pytest

from afas_pipeline.lib import failpoints
from afas_pipeline.lib.phones import e164
from afas_pipeline.lib.privacy import hash_key, number_key
from afas_pipeline.xelion import sync as xelion_sync
from afas_pipeline.xelion.calls import MARKER
from afas_pipeline_tests.world import WORLD_CONTACTS
from afas_pipeline_tests.xelion.world import NEXT_WINDOW, WINDOW, XelionWorld

REPORT_TYPE = 2  # mappings/xelion.yaml: call_reports.dossier_item_type


@pytest.fixture
def world(sandbox, afas_sandbox_clean, xelion_sandbox_clean, tmp_path) -> XelionWorld:
    httpx.post(f"{sandbox.afas_admin_url}/dataset/generate", json={"contacts": WORLD_CONTACTS, "seed": 7},
               timeout=60).raise_for_status()
    return XelionWorld(sandbox, tmp_path)


def _meta(world: XelionWorld, result, asset: str = "xelion_address_book") -> dict:
    return world.metadata(result, asset)


def _writes(world: XelionWorld) -> int:
    stats = world.x("GET", "/stats")["requests"]
    return sum(n for route, n in stats.items() if route.split(" ")[0] in ("POST", "PUT", "DELETE")
               and "me/" not in route)


def _an_organisation_with_a_phone(world: XelionWorld) -> dict:
    orgs = world.afas_rows("organisations")
    return next(o for o in orgs.to_dict("records") if isinstance(o["Phone"], str) and e164(o["Phone"]))


def test_x1_the_address_book_holds_every_organisation_and_person_once_numbers_in_e164(world):
    result = world.sync()
    meta = _meta(world, result)
    orgs, persons = world.afas_rows("organisations"), world.afas_rows("persons")
    book = world.by_afas_key()
    assert len(book) == len(orgs) + len(persons) == meta["created"]
    assert len(world.addressables()) == len(book)  # never two for one AFAS record
    numbers = [t["address"] for a in book.values() for t in a["telecomAddresses"] if t["addressType"] != "Email"]
    assert numbers and all(phonenumbers.is_valid_number(phonenumbers.parse(n)) and n.startswith("+") for n in numbers)
    assert sum(v for k, v in meta.items() if k.startswith("numbers_left_out/")) > 0  # the dataset types some badly
    # A person at an organisation is employed there.
    contact = world.afas_rows("contacts").query("ContactKind == 'PRS'").iloc[0]
    person = book[f"person:{contact['PersonId']}"]
    organisation = book[f"organisation:{contact['OrganisationId']}"]
    assert organisation["oid"] in [e["organisation"]["oid"] for e in person["employments"]]
    # The asset's rows carry the record keys hashed, never an AFAS id in clear.
    stored = world.stored("xelion_address_book")
    assert set(stored["external_id"]) == {hash_key(key) for key in book} and set(stored["status"]) == {"ok"}


def _index_made(result) -> bool:
    return any(e.materialization.asset_key.to_user_string() == "xelion_phone_index"
               for e in result.get_asset_materialization_events())


def _numbers(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k.startswith("numbers_")}


def test_c3_a_rerun_sends_nothing(world):
    """A rerun sends nothing, and makes no record again whose AFAS input is as when it was sent (at 1,000,000
    contacts the step took 267 s): its counts are the first run's, and the phone index is kept."""
    first = _meta(world, world.sync())
    assert "outcome/unchanged/unchanged" not in first  # a first run: no outcome counted as 0
    before = _writes(world)
    result = world.sync()
    meta = _meta(world, result)
    assert (meta["created"], meta["updated"], _writes(world) - before) == (0, 0, 0)
    assert meta["unchanged"] == meta["not_made_input_unchanged"] == len(world.by_afas_key())
    assert meta["made_again"] == 0 and _numbers(meta) == _numbers(first) and not _index_made(result)


def test_x1_an_edited_employment_makes_its_person_again_and_nothing_else(world):
    """A full sync makes again the records whose input changed: an employment's job title is the person's."""
    world.sync()
    contact = world.afas_rows("contacts").query("ContactKind == 'PRS'").iloc[0]
    world.afas_edit("contacts", contact["ContactId"], at="2026-11-22T12:05:00Z", Function="Directeur")
    meta = _meta(world, world.sync())
    assert (meta["made_again"], meta["updated"], meta["created"]) == (1, 1, 0)
    person = world.by_afas_key()[f"person:{contact['PersonId']}"]
    assert "Directeur" in [e["jobTitle"] for e in person["employments"]]


def test_x2_a_run_killed_before_its_numbers_were_saved_makes_its_records_again_and_indexes_them(world):
    """What a record was made from is saved only after its numbers are in the phone index: a run killed between its
    writes and the index leaves the next run to make every record again (sending nothing) and index every number."""
    failpoints.arm("xelion_address_book.synced", "crash")
    with pytest.raises(failpoints.SimulatedCrash):
        world.sync()
    failpoints.disarm()
    assert world.state().phone_index("xelion").empty
    before = _writes(world)
    meta = _meta(world, world.sync())
    assert (meta["made_again"], meta["created"], meta["updated"], _writes(world) - before) == (
        len(world.by_afas_key()), 0, 0, 0)
    indexed = world.state().phone_index("xelion")
    assert len(indexed) == meta["numbers_sent"] > 0
    assert _meta(world, world.sync())["made_again"] == 0
    assert world.state().phone_index("xelion").sort_values(["external_id", "number_key"]).reset_index(drop=True).equals(
        indexed.sort_values(["external_id", "number_key"]).reset_index(drop=True))


def test_x1_an_afas_edit_updates_the_addressable_it_made_never_a_second_one(world):
    world.sync()
    person = world.afas_rows("persons").iloc[3]
    oid = world.by_afas_key()[f"person:{person['PersonId']}"]["oid"]
    world.afas_edit("persons", person["PersonId"], at="2026-11-22T12:05:00Z", LastName="Zuiderduin",
                    Phone="020-7654321")
    meta = _meta(world, world.sync(WINDOW, delta=True), "xelion_address_book_delta")
    after = world.by_afas_key()[f"person:{person['PersonId']}"]
    assert (after["oid"], after["familyName"], meta["updated"], meta["created"]) == (oid, "Zuiderduin", 1, 0)
    assert "+31207654321" in [t["address"] for t in after["telecomAddresses"]]
    assert len(world.addressables()) == len(world.by_afas_key())
    # C3: a rerun of the window (a retry, a backfill) sends nothing.
    before = _writes(world)
    meta = _meta(world, world.sync(WINDOW, delta=True), "xelion_address_book_delta")
    assert (meta["updated"], meta["created"], _writes(world) - before) == (0, 0, 0)


def test_x1_the_sync_never_deletes_what_afas_no_longer_has(world):
    world.sync()
    before = len(world.addressables())
    # A user removes a person's employment in AFAS: the person stays in Xelion, only the employment goes.
    contact = world.afas_rows("contacts").query("ContactKind == 'PRS'").iloc[0]
    world.afas("POST", "/delete", json={"table": "contacts", "key": str(contact["ContactId"])})
    world.sync()
    assert len(world.addressables()) == before
    stats = world.x("GET", "/stats")["requests"]
    assert not any(route.startswith("DELETE") for route in stats)


def test_x1_token_renewal_mid_run(world):
    """The token expires in the middle of a run (the tenant's clock jumps past it): the client renews and the run
    ends as a run without it would."""
    failpoints.arm("xelion_address_book.chunk_answered", "pause")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=world.sync(raise_on_error=False)))
    runner.start()
    try:
        assert failpoints.wait_until_paused("xelion_address_book.chunk_answered")
        world.x("PUT", "/clock", json={"offset_s": 7200})
    finally:
        failpoints.release("xelion_address_book.chunk_answered")
        runner.join(120)
    result = outcome["result"]
    assert result.success
    meta = _meta(world, result)
    assert meta["xelion/renewals"] + meta["xelion/logins"] >= 2
    assert meta["created"] == len(world.by_afas_key()) == len(world.addressables())


def test_x1_x3_twenty_percent_faults_converge_without_doubles(world):
    """20% of Xelion's and AFAS's answers fail (500, 503, dropped connections): runs that fail are run again, as the
    schedule would, and the end state is the fault-free one: every record once in Xelion, every call once in AFAS,
    and a clean rerun writes nothing."""
    faults = {"error_500_rate": 0.1, "error_503_rate": 0.05, "drop_rate": 0.05, "retry_after": 0, "seed": 3}
    world.x("PUT", "/faults", json=faults)
    for _ in range(6):  # an outage fails the step; the next run carries on
        if world.sync(raise_on_error=False).success:
            break
    world.x("PUT", "/faults", json={})
    numbers = [o["Phone"] for o in world.afas_rows("organisations").to_dict("records")
               if isinstance(o["Phone"], str) and e164(o["Phone"])][:3]
    for number in numbers:
        world.place_call(number=number, direction="incoming", answered=True, note="Storing?", recording=True)
    world.afas("PUT", "/faults", json=faults)
    world.x("PUT", "/faults", json=faults)
    for _ in range(8):
        if world.reports(raise_on_error=False).success:
            break
    injected = sum(world.x("GET", "/stats")["faults"].values()) + sum(world.afas("GET", "/stats")["faults"].values())
    world.x("PUT", "/faults", json={})
    world.afas("PUT", "/faults", json={})
    assert injected > 0
    meta = _meta(world, world.sync())
    assert (meta["created"], meta["updated"], meta["rejected"]) == (0, 0, 0)
    assert len(world.addressables()) == len(world.by_afas_key()) == len(world.afas_rows("organisations")) + len(
        world.afas_rows("persons"))
    world.reports(NEXT_WINDOW)
    items = world.dossier_items(REPORT_TYPE)
    assert len(items) == len(numbers) and items["Text"].str.extract(r"Xelion call id: (\S+)")[0].nunique() == 3
    assert (items["Attachments"] == 1).all()


def test_x3_x4_a_call_becomes_one_dossier_item_with_its_recording(world):
    world.sync()
    org = _an_organisation_with_a_phone(world)
    call = world.place_call(number=org["Phone"], direction="incoming", answered=True, duration_s=95,
                            subject="Offerte besproken", note="Wil volgende week een voorstel.", recording=True)
    result = world.reports()
    items = world.dossier_items(REPORT_TYPE)
    mine = items[items["Text"].str.contains(MARKER + call["callId"], regex=False)]
    assert len(mine) == 1
    item = mine.iloc[0]
    assert (item["OrganisationId"], item["Description"], item["Attachments"]) == (org["OrganisationId"],
                                                                               "Offerte besproken", 1)
    assert "Wil volgende week een voorstel." in item["Text"] and "Duur: 1:35" in item["Text"]
    assert world.metadata(result, "xelion_call_reports")["calls/reported_with_recording"] == 1
    # A rerun of the window, and the next window (which reads the call again in its overlap), make no second item.
    world.reports()
    world.reports(NEXT_WINDOW)
    assert len(world.dossier_items(REPORT_TYPE)) == len(items)


def test_x3_a_call_without_note_or_recording_gets_no_item_unless_always_sync(world):
    world.sync()
    org = _an_organisation_with_a_phone(world)
    world.place_call(number=org["Phone"], direction="outgoing", answered=False)
    meta = world.metadata(world.reports(), "xelion_call_reports")
    assert meta["calls/without_content"] == 1 and len(world.dossier_items(REPORT_TYPE)) == 0


def test_x3_an_unknown_number_waits_and_is_reported_once_afas_knows_it(world):
    world.sync()
    world.place_call(number="+31 6 48765432", direction="incoming", answered=True, note="Nieuwe klant?")
    meta = world.metadata(world.reports(), "xelion_call_reports")
    assert meta["calls/waiting_for_number"] == 1 and len(world.dossier_items(REPORT_TYPE)) == 0
    person = world.afas_rows("persons").iloc[5]
    world.afas_edit("persons", person["PersonId"], at="2026-11-22T12:14:00Z", PhoneMobile="06-48765432")
    world.sync(WINDOW, delta=True)
    meta = world.metadata(world.reports(NEXT_WINDOW), "xelion_call_reports")
    items = world.dossier_items(REPORT_TYPE)
    assert meta["calls/reported"] == 1 and list(items["PersonId"]) == [person["PersonId"]]


def test_x3_a_post_whose_answer_was_lost_is_found_not_made_twice(world):
    world.sync()
    org = _an_organisation_with_a_phone(world)
    world.place_call(number=org["Phone"], direction="incoming", answered=True, note="Terugbellen")
    failpoints.arm("xelion_call_reports.post_answered", "crash")
    with pytest.raises(failpoints.SimulatedCrash):
        world.reports()
    failpoints.disarm()
    meta = world.metadata(world.reports(), "xelion_call_reports")
    assert meta["calls/found_in_afas"] == 1 and len(world.dossier_items(REPORT_TYPE)) == 1


@pytest.mark.parametrize("plan_chunk, chunk, crash_at", [(5000, 200, 1), (7, 3, 40)], ids=["one-plan", "small-chunks"])
def test_x1_a_create_whose_answer_was_lost_is_found_not_made_twice(world, monkeypatch, plan_chunk, chunk, crash_at):
    """The run dies once a chunk of writes is answered, before the answers are saved. With small chunks it dies among
    the persons, whose plan chunks come after the organisations': the next run makes each record once, and every
    employment names the organisation Xelion holds."""
    monkeypatch.setattr(xelion_sync, "PLAN_CHUNK", plan_chunk)
    monkeypatch.setattr(xelion_sync, "CHUNK", chunk)
    failpoints.arm("xelion_address_book.chunk_answered", "crash", at=crash_at)
    with pytest.raises(failpoints.SimulatedCrash):
        world.sync()
    failpoints.disarm()
    world.sync()
    assert len(world.addressables()) == len(world.by_afas_key()) == len(world.afas_rows("organisations")) + len(
        world.afas_rows("persons"))
    book = world.by_afas_key()
    oids = {a["oid"] for key, a in book.items() if key.startswith("organisation:")}
    employments = [e["organisation"]["oid"] for key, a in book.items() if key.startswith("person:")
                   for e in a["employments"]]
    prs = world.afas_rows("contacts").query("ContactKind == 'PRS'").dropna(subset=["OrganisationId", "PersonId"])
    assert set(employments) <= oids and len(employments) == len(prs)


def test_c4_a_refused_record_is_kept_with_its_reason_and_a_full_sync_heals_a_reset_tenant(world):
    """Xelion loses its address book (a tenant reset): a delta edit of a person at an organisation is refused (its
    employment names an organisation oid Xelion no longer has) and kept as rejected with Xelion's code and the field,
    never a value; the next full sync makes the organisation and the person again, and the rejection is cleared."""
    world.sync()
    contact = world.afas_rows("contacts").query("ContactKind == 'PRS'").iloc[0]
    world.x("POST", "/reset")
    world.afas_edit("persons", contact["PersonId"], at="2026-11-22T12:03:00Z", FirstName="Hendrika")
    meta = _meta(world, world.sync(WINDOW, delta=True), "xelion_address_book_delta")
    rejected = world.state().rejected("xelion")
    assert meta["rejected"] == 1 and list(rejected["external_id"]) == [f"person:{contact['PersonId']}"]
    assert rejected["reason"].iloc[0].startswith("400/10203: employments") and "Hendrika" not in rejected["reason"].iloc[0]
    world.sync()
    assert world.state().rejected("xelion").empty
    book = world.by_afas_key()
    person = book[f"person:{contact['PersonId']}"]
    assert person["givenName"] == "Hendrika"
    assert book[f"organisation:{contact['OrganisationId']}"]["oid"] in [e["organisation"]["oid"] for e in person["employments"]]


def test_c4_xelion_and_afas_down_for_several_runs_lose_nothing_and_count_no_refusal(world):
    """An outage is not a refusal: with Xelion answering nothing but 503 for two runs the address book fails
    without a rejected record, and with AFAS down for two runs the call reports fail without losing a call; once
    they are back, the next runs end where runs without the outage would have."""
    world.xelion_options = {"max_attempts": 2}
    world.afas_options = {"max_attempts": 2}
    world.x("PUT", "/faults", json={"error_503_rate": 1.0, "retry_after": 0})
    for _ in range(2):
        assert not world.sync(raise_on_error=False).success
    assert world.state().rejected("xelion").empty
    indexed_in_outage = set(world.state().phone_index("xelion")["external_id"])  # the numbers come from AFAS
    world.x("PUT", "/faults", json={})
    world.sync()
    assert indexed_in_outage == set(world.state().phone_index("xelion")["external_id"]) != set()
    assert len(world.addressables()) == len(world.by_afas_key()) == len(world.afas_rows("organisations")) + len(
        world.afas_rows("persons"))
    org = _an_organisation_with_a_phone(world)
    world.place_call(number=org["Phone"], direction="incoming", answered=True, note="Storing in AFAS")
    world.afas("PUT", "/faults", json={"error_503_rate": 1.0, "retry_after": 0})
    for _ in range(2):
        assert not world.reports(raise_on_error=False).success
    world.afas("PUT", "/faults", json={})
    meta = world.metadata(world.reports(NEXT_WINDOW), "xelion_call_reports")
    assert meta["calls/reported"] == 1 and len(world.dossier_items(REPORT_TYPE)) == 1


def test_x2_the_phone_index_is_made_again_only_when_a_number_changed_or_was_erased(world):
    """At 1,000,000 contacts making the index again took 14 s of a 20 s delta. A window whose edits keep every number
    keeps the stored index (no new materialisation); a new number, an erased person's numbers (P2) or a lost file
    make it again."""
    world.sync()
    index = world.storage / "xelion_phone_index.parquet"
    made = index.stat().st_mtime_ns

    def materialised(result) -> bool:
        return any(e.materialization.asset_key.to_user_string() == "xelion_phone_index"
                   for e in result.get_asset_materialization_events())

    person = world.afas_rows("persons").iloc[4]
    world.afas_edit("persons", person["PersonId"], at="2026-11-22T12:03:00Z", FirstName="Hendrika")
    result = world.sync(WINDOW, delta=True)
    assert _meta(world, result, "xelion_address_book_delta")["updated"] == 1
    assert not materialised(result) and index.stat().st_mtime_ns == made

    world.afas_edit("persons", person["PersonId"], at="2026-11-22T12:18:00Z", PhoneMobile="06 11112222")
    assert materialised(world.sync(NEXT_WINDOW, delta=True))
    stored = pd.read_parquet(index).set_index("number_key")
    assert stored.loc[number_key("+31611112222"), "afas_id"] == str(person["PersonId"])

    world.state().purge_records("xelion", [f"person:{person['PersonId']}"])  # what the erasure job does (P2)
    quiet = "2026-11-22-12:30"  # a window without edits
    assert materialised(world.sync(quiet, delta=True))
    assert number_key("+31611112222") not in set(pd.read_parquet(index)["number_key"])

    assert not materialised(world.sync(quiet, delta=True))
    forced = dg.materialize(world._named("xelion_phone_index"), resources=world.resources(), instance=world.instance,
                            run_config={"ops": {"xelion_phone_index": {"config": {"force": True}}}})
    assert materialised(forced)  # an operator's "make it again"
    index.unlink()
    assert materialised(world.sync(quiet, delta=True)) and index.exists()
