"""The Spotler -> AFAS rules (R12-R16, C1), one test each (named after the rule), over real HTTP.

Each test syncs a 300-contact AFAS sandbox to an empty Spotler account, then acts as a recipient in
Spotler (unsubscribe, bounce) with explicit times in a quiet window, and runs the feedback assets
`spotler_optout_feedback`, `spotler_bounce_feedback` -> `spotler_afas_write_back` through Dagster for those 15-minute windows.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest

from afas_pipeline.mapping.errors import MappingError
from afas_pipeline.mapping.load import MAPPINGS_DIR, default_mapping, load_mapping
from afas_pipeline.chain.feedback import AFAS
from afas_pipeline.afas.updates import Write, guard
from afas_pipeline_tests.spotler.conftest import email_active

WINDOW = "2026-11-16-10:00"
NEXT = "2026-11-16-10:15"
LATER = "2026-11-16-10:30"


def _id(contact: dict) -> str:
    return str(contact["ContactId"])


def _afas_contact(world, external_id: str) -> dict:
    df = world.afas_contacts()
    (row,) = df[df["ContactId"].astype(str) == external_id].to_dict("records")
    return row


def _afas_puts(world) -> dict[str, int]:
    requests = world.afas("GET", "/stats")["requests"]
    return {route: n for route, n in requests.items() if route.split(" ")[0] in ("PUT", "POST", "DELETE")}


def _synced_subscriber(world, n: int = 1) -> list[dict]:
    world.sync()
    return world.pick(n, ContactKind="PRS", PermissionNewsletter=True, Blocked=False, HardBounce=False)


def _bounce_date(row: dict) -> str | None:
    value = row["BounceDate"]
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return pd.Timestamp(value, unit="ms" if isinstance(value, (int, float)) else None).date().isoformat()


def test_r12_an_unsubscribe_reaches_afas_within_two_15_minute_partitions(world):
    (contact,) = _synced_subscriber(world)
    # At the very end of a window: seen by that window's run or, at the latest, by the next one.
    world.spotler("POST", f"/recipients/{_id(contact)}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:14:59.900Z"})
    world.afas("POST", "/stats/reset")

    first = world.feedback(WINDOW)
    second = world.feedback(NEXT)

    assert _afas_contact(world, _id(contact))["PermissionNewsletter"] is False
    sent = world.metadata(first, "spotler_afas_write_back")["calls_sent"] + world.metadata(second, "spotler_afas_write_back")["calls_sent"]
    assert sent == 1
    assert sum(_afas_puts(world).values()) == 1
    # The state learned the new value: the next AFAS -> Spotler delta sends nothing back.
    assert world.state().records("spotler", [_id(contact)])["permissions"].iloc[0]["1"]["sent"] is False
    world.spotler("POST", "/stats/reset")
    world.delta(LATER)
    assert world.spotler_writes() == 0


def test_r12_a_bounce_reported_late_still_reaches_afas(world):
    (contact,) = _synced_subscriber(world)
    world.feedback(WINDOW)
    world.feedback(NEXT)
    # Spotler reports a bounce dated inside a window that was already processed.
    world.spotler("POST", f"/recipients/{_id(contact)}/bounce", json={"type": "soft", "at": "2026-11-16T10:05:00Z"})

    result = world.feedback(LATER)

    row = _afas_contact(world, _id(contact))
    assert _bounce_date(row) == "2026-11-16"
    assert row["BounceType"] == "soft"
    assert world.metadata(result, "spotler_bounce_feedback")["events/bounce:soft"] == 1


def test_r12_a_rerun_of_the_feedback_partitions_writes_nothing_twice(world):
    contacts = _synced_subscriber(world, 2)
    world.spotler("POST", f"/recipients/{_id(contacts[0])}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:05:00Z"})
    world.spotler("POST", f"/recipients/{_id(contacts[1])}/bounce", json={"type": "hard", "at": "2026-11-16T10:20:00Z"})
    world.feedback(WINDOW)
    world.feedback(NEXT)
    world.afas("POST", "/stats/reset")

    reruns = [world.feedback(WINDOW), world.feedback(NEXT), world.feedback(LATER)]

    assert _afas_puts(world) == {}
    for result in reruns:
        assert _fresh_events(world, result) == 0
        assert world.metadata(result, "spotler_afas_write_back")["calls_sent"] == 0
    delivered = world.state().feedback_events("spotler", status="delivered")
    assert sorted(delivered["kind"]) == ["bounce:hard", "optout:1"]


def test_r13_a_protected_field_in_the_mapping_is_refused_at_load_time(tmp_path):
    text = (MAPPINGS_DIR / "spotler.yaml").read_text()
    # Company name written back to AFAS: refused when the file is loaded, before anything runs.
    bad = text.replace("write_back: {connector: KnContact, field: FuDs}",
                       "write_back: {connector: KnOrganisation, field: Nm}")
    assert bad != text
    path = tmp_path / "spotler.yaml"
    path.write_text(bad)
    with pytest.raises(MappingError, match="R13"):
        load_mapping(path)


def test_r13_the_guard_stops_protected_unmapped_and_create_payloads():
    mapping = default_mapping("spotler")
    identity = {"BcCoOga": "1", "BcCoPer": "2"}
    newsletter = next(t.field for t in mapping.write_backs() if t.origin == "permission")
    assert guard(Write("1", "KnContact", "PUT", {**identity, newsletter: False}), mapping) == []
    assert "no_protected_field" in guard(Write("1", "KnOrganisation", "PUT", {"BcCo": "1", "Nm": "X"}), mapping)
    assert guard(Write("1", "KnContact", "PUT", {**identity, "EmAd": "x"}), mapping) == ["only_mapped_fields"]
    assert guard(Write("1", "KnContact", "POST", {**identity, newsletter: False}), mapping) == ["no_create"]
    assert guard(Write("1", "KnContact", "PUT", {"BcCoOga": "1", "BcCoPer": "None", newsletter: False}), mapping) == ["no_create"]


def test_r14_a_bounce_of_a_contact_afas_does_not_have_creates_nothing(world):
    world.sync()
    before = len(world.afas_contacts())
    stranger = "99999999"
    world.spotler("POST", "/dataset", json=_with_stranger(world.spotler("GET", "/dataset"), stranger))
    world.spotler("POST", f"/recipients/{stranger}/bounce", json={"type": "hard", "at": "2026-11-16T10:05:00Z"})
    world.afas("POST", "/stats/reset")

    result = world.feedback(WINDOW)

    assert len(world.afas_contacts()) == before
    assert _afas_puts(world) == {}
    assert world.metadata(result, "spotler_afas_write_back")["contacts/not_in_afas"] == 1
    assert world.metadata(result, "spotler_afas_write_back")["calls_sent"] == 0


def _with_stranger(dataset: dict, external_id: str) -> dict:
    """The Spotler account plus one contact AFAS never had (a copy of the first with another id)."""
    contacts = dataset["contacts"]
    key = "contacts"
    if isinstance(contacts, dict):
        first = next(iter(contacts.values()))
        contacts[external_id] = {**first, "externalId": external_id}
    else:
        contacts.append({**contacts[0], "externalId": external_id})
    dataset[key] = contacts
    return dataset


def test_r15_only_the_contact_whose_mapped_fields_changed_gets_one_knContact_put(world):
    contacts = _synced_subscriber(world, 3)
    world.spotler("POST", f"/recipients/{_id(contacts[0])}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:05:00Z"})
    before = world.afas_contacts().set_index("ContactId")
    world.afas("POST", "/stats/reset")

    world.feedback(WINDOW)

    puts = _afas_puts(world)
    assert list(puts.values()) == [1] and "KnContact" in next(iter(puts)), puts
    after = world.afas_contacts().set_index("ContactId")
    changed = [c for c in before.index if not before.loc[c].drop("ModifiedDate", errors="ignore").equals(
        after.loc[c].drop("ModifiedDate", errors="ignore"))]
    assert changed == [contacts[0]["ContactId"]]


def test_r16_a_soft_then_a_hard_bounce_set_date_type_and_the_hard_flag(world):
    (contact,) = _synced_subscriber(world)
    world.spotler("POST", f"/recipients/{_id(contact)}/bounce", json={"type": "soft", "at": "2026-11-16T10:05:00Z"})
    world.feedback(WINDOW)
    soft = _afas_contact(world, _id(contact))
    assert (soft["BounceType"], bool(soft["HardBounce"]), _bounce_date(soft)) == ("soft", False, "2026-11-16")

    world.spotler("POST", f"/recipients/{_id(contact)}/bounce", json={"type": "hard", "at": "2026-11-17T09:05:00Z"})
    world.feedback("2026-11-17-09:00")

    hard = _afas_contact(world, _id(contact))
    assert (hard["BounceType"], bool(hard["HardBounce"]), _bounce_date(hard)) == ("hard", True, "2026-11-17")
    # R11: the address that bounced is remembered, so the sync stops enriching the contact.
    record = world.state().records("spotler", [_id(contact)]).iloc[0]
    assert record["bounced_email_hash"] == record["email_hash"]
    world.afas_edit("contacts", contact["ContactId"], at="2026-11-17T09:20:00Z", Function="Na de bounce")
    world.spotler("POST", "/stats/reset")
    plan = world.delta("2026-11-17-09:15")
    assert world.spotler_writes() == 0
    assert world.metadata(plan, "spotler_sync_delta")["skipped_hard_bounce"] == 1


def test_c1_an_optout_and_an_afas_edit_in_one_window_resolve_to_off(world):
    (contact,) = _synced_subscriber(world)
    world.afas_edit("contacts", contact["ContactId"], at="2026-11-16T10:03:00Z", Function="Nieuw C1")
    world.spotler("POST", f"/recipients/{_id(contact)}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:06:00Z"})

    world.feedback(WINDOW)
    world.delta(WINDOW)
    world.sync()  # the full read: AFAS as it is now, with the edit and the written-back opt-out

    assert _afas_contact(world, _id(contact))["PermissionNewsletter"] is False
    spotler = world.spotler_contact(_id(contact))
    assert {int(p["bit"]): p["enabled"] for p in spotler["properties"]["permissions"]}[1] is False
    assert spotler["properties"]["function"] == "Nieuw C1"


def test_c1_a_stale_optin_never_switches_a_permission_on_in_afas(world):
    (contact,) = _synced_subscriber(world)
    world.spotler("POST", f"/recipients/{_id(contact)}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:05:00Z"})
    world.feedback(WINDOW)
    # The state remembers an opt-out at 10:05; a subscribe stamped before it is stale.
    world.spotler("POST", f"/recipients/{_id(contact)}/subscribe", json={"bit": 1, "at": "2026-11-16T10:01:00Z"})

    result = world.feedback(WINDOW)

    assert _afas_contact(world, _id(contact))["PermissionNewsletter"] is False
    assert world.metadata(result, "spotler_afas_write_back")["held_by_consent"] == 1


def test_c4_an_afas_500_becomes_a_rejected_record_with_its_reference_and_is_delivered_next_run(world):
    (contact,) = _synced_subscriber(world)
    world.spotler("POST", f"/recipients/{_id(contact)}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:05:00Z"})
    # AFAS refuses the PUT itself (a 500 on a write is AFAS's verdict on the record; reads still work).
    world.afas("PUT", "/faults", json={"error_500_rate": 1.0, "methods": ["PUT"]})

    failed = world.feedback(WINDOW)

    rejected = world.state().rejected(AFAS)
    assert list(rejected["external_id"]) == [_id(contact)]
    assert rejected["reason"].iloc[0].startswith("profitLogReference=")
    assert world.metadata(failed, "spotler_afas_write_back")["contacts/rejected"] == 1
    assert list(world.state().feedback_events("spotler", status="pending")["external_id"]) == [_id(contact)]

    world.afas("PUT", "/faults", json={"error_500_rate": 0.0})
    world.feedback(NEXT)  # a later window: the event is no longer in its read, the ledger keeps it

    assert _afas_contact(world, _id(contact))["PermissionNewsletter"] is False
    assert world.state().rejected(AFAS).empty
    assert world.state().feedback_events("spotler", status="pending").empty


def _seed_failing_only_request(n: int, rate: float) -> int:
    """A fault seed under which AFAS requests 1..n-1 pass and request n gets a 500: the sandbox draws two
    numbers per request (fault, jitter) from random.Random(seed)."""
    for seed in range(10_000):
        rng = random.Random(seed)
        draws = [rng.random() for _ in range(2 * n)][::2]
        if all(d >= rate for d in draws[:-1]) and draws[-1] < rate:
            return seed
    raise AssertionError("no such seed")


def test_c4_a_refused_put_keeps_its_profit_log_reference_and_is_retried_next_run(world):
    (contact,) = _synced_subscriber(world)
    world.spotler("POST", f"/recipients/{_id(contact)}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:05:00Z"})
    world.afas("POST", "/stats/reset")
    # The run asks AFAS for the metainfo and the contact (reads), then sends its one PUT: only that fails.
    world.afas("PUT", "/faults", json={"error_500_rate": 0.5, "seed": _seed_failing_only_request(3, 0.5)})

    failed = world.feedback(WINDOW)

    stats = world.afas("GET", "/stats")
    assert stats["faults"]["500"] == 1, stats
    assert sum(n for route, n in stats["requests"].items() if route.startswith("PUT") and "KnContact" in route) == 1, stats
    rejected = world.state().rejected(AFAS)
    assert list(rejected["external_id"]) == [_id(contact)]
    assert rejected["reason"].iloc[0].startswith("profitLogReference=") and len(rejected["reason"].iloc[0]) > 20
    assert world.metadata(failed, "spotler_afas_write_back")["contacts/rejected"] == 1
    assert _afas_contact(world, _id(contact))["PermissionNewsletter"] is True

    world.afas("PUT", "/faults", json={"error_500_rate": 0.0})
    world.feedback(WINDOW)  # a rerun of the same window delivers it, once

    assert _afas_contact(world, _id(contact))["PermissionNewsletter"] is False
    assert world.state().rejected(AFAS).empty
    assert list(world.state().feedback_events("spotler", status="delivered")["kind"]) == ["optout:1"]


def test_r12_a_backfill_of_the_feedback_partitions_delivers_each_event_once_in_one_run(world):
    contacts = _synced_subscriber(world, 2)
    world.spotler("POST", f"/recipients/{_id(contacts[0])}/unsubscribe", json={"bit": 1, "at": "2026-11-16T10:05:00Z"})
    world.spotler("POST", f"/recipients/{_id(contacts[1])}/bounce", json={"type": "soft", "at": "2026-11-16T11:50:00Z"})
    backfill = {"dagster/asset_partition_range_start": WINDOW, "dagster/asset_partition_range_end": "2026-11-16-11:45"}
    world.afas("POST", "/stats/reset")

    first = world.feedback(tags=backfill)
    again = world.feedback(tags=backfill)

    assert world.metadata(first, "spotler_afas_write_back")["calls_sent"] == 2
    assert world.metadata(again, "spotler_afas_write_back")["calls_sent"] == 0
    assert sum(_afas_puts(world).values()) == 2
    assert _afas_contact(world, _id(contacts[0]))["PermissionNewsletter"] is False
    assert _afas_contact(world, _id(contacts[1]))["BounceType"] == "soft"


def test_r11_a_new_address_after_a_hard_bounce_reactivates_the_contact_and_clears_the_bounce_in_afas(world):
    (contact,) = _synced_subscriber(world)
    world.spotler("POST", f"/recipients/{_id(contact)}/bounce", json={"type": "hard", "at": "2026-11-17T09:05:00Z"})
    world.feedback("2026-11-17-09:00")
    bounced = _afas_contact(world, _id(contact))
    assert (bounced["BounceType"], bool(bounced["HardBounce"]), _bounce_date(bounced)) == ("hard", True, "2026-11-17")

    world.afas_edit("contacts", contact["ContactId"], at="2026-11-17T09:20:00Z", MailWork="nieuw.adres@voorbeeld.nl")
    delta = world.delta("2026-11-17-09:15")
    assert world.metadata(delta, "spotler_sync_delta")["reactivated"] == 1
    assert email_active(world.spotler_contact(_id(contact)))
    world.afas("POST", "/stats/reset")

    result = world.feedback("2026-11-17-09:15")

    cleared = _afas_contact(world, _id(contact))
    assert pd.isna(cleared["BounceType"]) and cleared["HardBounce"] is False and _bounce_date(cleared) is None
    assert sum(_afas_puts(world).values()) == 1
    assert world.metadata(result, "spotler_afas_write_back")["contacts/delivered"] == 1
    assert world.metadata(result, "spotler_afas_write_back")["events/reactivated"] == 1
    # Delivered once: the next window and a rerun leave AFAS alone, and the contact stays active.
    world.afas("POST", "/stats/reset")
    world.feedback("2026-11-17-09:30")
    world.feedback("2026-11-17-09:15")
    world.delta("2026-11-17-09:30")
    assert _afas_puts(world) == {}
    assert email_active(world.spotler_contact(_id(contact)))


def test_r13_a_two_way_field_edited_in_spotler_reaches_afas_and_is_not_sent_back(world):
    contacts = _synced_subscriber(world, 2)
    edited, untouched = _id(contacts[0]), _id(contacts[1])
    world.spotler("POST", f"/contacts/{edited}", json={"properties": {"function": "Hoofd Marketing"},
                                                       "at": "2026-11-16T10:05:00Z"})
    world.afas("POST", "/stats/reset")

    result = world.feedback(WINDOW)

    assert world.metadata(result, "spotler_optout_feedback")["events/field:function"] == 1
    assert _afas_contact(world, edited)["Function"] == "Hoofd Marketing"
    assert _afas_contact(world, untouched)["Function"] == contacts[1]["Function"]
    puts = _afas_puts(world)
    assert list(puts.values()) == [1] and "KnContact" in next(iter(puts)), puts
    # AFAS and Spotler agree now: the AFAS -> Spotler delta that sees the contact changed sends nothing,
    # and the feedback of the next window sees no change.
    world.spotler("POST", "/stats/reset")
    world.delta(WINDOW)
    world.delta(NEXT)
    world.sync()
    assert world.spotler_writes() == 0
    assert _fresh_events(world, world.feedback(NEXT)) == 0


def test_r13_a_two_way_field_edited_on_both_sides_in_one_window_ends_with_afas_value_on_both(world):
    (contact,) = _synced_subscriber(world)
    world.afas_edit("contacts", contact["ContactId"], at="2026-11-16T10:03:00Z", Function="Uit AFAS")
    world.spotler("POST", f"/contacts/{_id(contact)}", json={"properties": {"function": "Uit Spotler"},
                                                             "at": "2026-11-16T10:06:00Z"})

    world.delta(WINDOW)  # the job's order: the sync to Spotler first, then the way back
    world.feedback(WINDOW)
    world.feedback(NEXT)

    assert _afas_contact(world, _id(contact))["Function"] == "Uit AFAS"
    assert world.spotler_contact(_id(contact))["properties"]["function"] == "Uit AFAS"


def test_r13_a_table_link_field_never_flows_back(world):
    (contact,) = _synced_subscriber(world)
    gender = world.spotler_contact(_id(contact))["properties"].get("gender")
    world.spotler("POST", f"/contacts/{_id(contact)}", json={"properties": {"gender": "M" if gender == "F" else "F"},
                                                             "at": "2026-11-16T10:05:00Z"})
    world.afas("POST", "/stats/reset")

    result = world.feedback(WINDOW)

    assert _fresh_events(world, result) == 0
    assert _afas_puts(world) == {}


def test_c4_feedback_under_20_percent_faults_on_both_sides_delivers_every_event_once(world):
    contacts = _synced_subscriber(world, 12)
    ids = [_id(c) for c in contacts]
    expected: dict[str, dict] = {}
    for n, external_id in enumerate(ids):
        at = f"2026-11-16T10:{n + 1:02d}:00Z"
        if n % 3 == 0:
            world.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1, "at": at})
            expected[external_id] = {"PermissionNewsletter": False}
        elif n % 3 == 1:
            world.spotler("POST", f"/recipients/{external_id}/bounce", json={"type": "soft", "at": at})
            expected[external_id] = {"BounceType": "soft"}
        else:
            world.spotler("POST", f"/contacts/{external_id}", json={"properties": {"function": f"Functie {n}"}, "at": at})
            expected[external_id] = {"Function": f"Functie {n}"}
    world.afas("PUT", "/faults", json={"error_503_rate": 0.08, "error_500_rate": 0.06, "drop_rate": 0.06,
                                       "retry_after": 0, "seed": 11})
    world.spotler("PUT", "/faults", json={"error_503_rate": 0.1, "drop_rate": 0.05, "error_429_rate": 0.05,
                                          "retry_after": 0, "seed": 13})

    runs = 0
    while runs < 8:  # what an on-call engineer does: rerun the window until nothing is left
        runs += 1
        result = world.feedback(WINDOW, raise_on_error=False)
        state = world.state()
        if result.success and state.feedback_events("spotler", status="pending").empty and state.rejected(AFAS).empty:
            break

    faults = world.afas("GET", "/stats")["faults"]
    assert sum(faults.values()) > 0 and sum(world.spotler_stats()["faults"].values()) > 0
    world.afas("PUT", "/faults", json={"error_503_rate": 0.0, "error_500_rate": 0.0, "drop_rate": 0.0})
    for external_id, fields in expected.items():
        row = _afas_contact(world, external_id)
        assert {name: row[name] for name in fields} == fields, external_id
    delivered = world.state().feedback_events("spotler", status="delivered")
    assert len(delivered) == len(expected)
    assert sorted(delivered["external_id"]) == sorted(expected)
    assert world.state().feedback_events("spotler", status="pending").empty
    assert world.state().rejected(AFAS).empty


def test_c4_a_refused_two_way_field_write_is_retried_with_the_value_spotler_holds_then(world):
    (contact,) = _synced_subscriber(world)
    world.spotler("POST", f"/contacts/{_id(contact)}", json={"properties": {"function": "Eerste"},
                                                             "at": "2026-11-16T10:05:00Z"})
    world.afas("PUT", "/faults", json={"error_500_rate": 1.0, "methods": ["PUT"]})  # the write is refused
    world.feedback(WINDOW)
    assert list(world.state().feedback_events("spotler", status="pending")["kind"]) == ["field:function"]
    # Edited again in Spotler while the write waits; the ledger keeps no values, Spotler is asked.
    world.spotler("POST", f"/contacts/{_id(contact)}", json={"properties": {"function": "Tweede"},
                                                             "at": "2026-11-16T10:40:00Z"})
    world.afas("PUT", "/faults", json={"error_500_rate": 0.0})

    result = world.feedback(NEXT)  # a window that does not read the second edit

    assert world.metadata(result, "spotler_afas_write_back")["field_values_reread"] == 1
    assert _afas_contact(world, _id(contact))["Function"] == "Tweede"
    assert world.state().feedback_events("spotler", status="pending").empty


# --- opt-outs and the sync's own writes in one window (R12, C1) -------------------------------------------


def _closed_windows(world, n: int) -> list[tuple[str, pd.Timestamp]]:
    """`n` consecutive 15-minute windows, all closed in Spotler's clock, which is set back 45 minutes so that
    the sync's own writes are stamped after them (as in production, where a window's run starts after it
    closed): (partition key, window start)."""
    world.spotler("PUT", "/clock", json={"offset_s": -45 * 60})
    first = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=45)).floor("15min") - pd.Timedelta(minutes=15 * n)
    starts = [first + pd.Timedelta(minutes=15 * i) for i in range(n)]
    return [(s.strftime("%Y-%m-%d-%H:%M"), s) for s in starts]


def _at(start: pd.Timestamp, minute: float) -> str:
    return (start + pd.Timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def spotler_clock_back(world):
    yield world
    world.spotler("PUT", "/clock", json={"offset_s": 0})


def test_r12_an_optout_reaches_afas_within_two_windows_while_afas_edits_the_contact_in_every_window(spotler_clock_back):
    world = spotler_clock_back
    windows = _closed_windows(world, 2)
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", PermissionNewsletter=True, Blocked=False, HardBounce=False)
    external_id = _id(contact)
    world.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1, "at": _at(windows[0][1], 2)})

    for n, (key, start) in enumerate(windows):
        # AFAS edits the contact in every window: the window's sync writes it to Spotler, restamping it.
        world.afas_edit("contacts", external_id, at=_at(start, 5), Function=f"Functie {n}")
        world.delta(key)
        world.feedback(key)

    assert _afas_contact(world, external_id)["PermissionNewsletter"] is False
    assert email_active(world.spotler_contact(external_id))
    assert world.spotler_contact(external_id)["properties"]["function"] == "Functie 1"


@pytest.mark.parametrize("first", ["afas_blocks", "recipient_opts_out"])
def test_r12_c1_a_recipients_optout_and_the_syncs_own_switch_off_in_one_window_both_reach_afas(
        spotler_clock_back, first):
    world = spotler_clock_back
    (window, start), (later, later_start) = _closed_windows(world, 2)
    # The full sync before both windows in Spotler's clock as well, as it would have been: the opt-out below is
    # then stamped after the feed's last read, not half an hour before it (longer than any late stamp).
    world.spotler("PUT", "/clock", json={"offset_s": -120 * 60})
    world.sync()
    world.spotler("PUT", "/clock", json={"offset_s": -45 * 60})
    (contact,) = world.pick(1, ContactKind="PRS", PermissionNewsletter=True, Blocked=False, HardBounce=False)
    external_id = _id(contact)
    block_at, optout_at = (_at(start, 1), _at(start, 2)) if first == "afas_blocks" else (_at(start, 2), _at(start, 1))
    world.afas_edit("contacts", external_id, at=block_at, Blocked=True)  # R7: the sync switches every bit off
    world.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1, "at": optout_at})

    world.delta(window)
    world.feedback(window)

    assert _afas_contact(world, external_id)["PermissionNewsletter"] is False  # the recipient's act, not an echo
    world.afas_edit("contacts", external_id, at=_at(later_start, 3), Blocked=False)
    world.delta(later)
    world.feedback(later)
    spotler_bits = {p["bit"]: p["enabled"] for p in world.spotler_contact(external_id)["properties"]["permissions"]}
    afas = _afas_contact(world, external_id)
    assert spotler_bits[1] is False and afas["PermissionNewsletter"] is False  # C1, and both sides agree
    assert spotler_bits[2] is bool(afas["PermissionEvents"])


def _fresh_events(world, result) -> int:
    """Events a feedback run found that the ledger did not hold as delivered, opt-outs and bounces together."""
    return sum(world.metadata(result, f"spotler_{kind}_feedback")["dagster/row_count"] for kind in ("optout", "bounce"))
