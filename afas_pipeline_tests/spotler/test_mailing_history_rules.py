"""R17, mailing history as AFAS dossier items, over real HTTP against both sandboxes.

Each test syncs a 300-contact AFAS sandbox to an empty Spotler account, sends mailings and acts as a
recipient through the Spotler sandbox's admin API with explicit times, runs the `mailing_history` asset
through Dagster for those 15-minute windows, and reads the dossier items back through AFAS's
`ProfitSubjects` GetConnector.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd

from afas_pipeline.afas.assets import build_afas_assets
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.errors import AfasOutcomeUnknown
from afas_pipeline.definitions import assets as ALL_ASSETS
from afas_pipeline.mapping.load import MAPPINGS_DIR, default_mapping, load_mapping
from afas_pipeline_tests.spotler.conftest import spotler_assets
from afas_pipeline.chain.mailing_history import AFAS, CLAIM_LEASE, QUARANTINE_AFTER, rejection_key
from afas_pipeline.sync.state import SyncStateResource
from afas_pipeline.afas.dossier import MARKER, TEXT_MAX, with_reactions
from afas_pipeline_tests.waiting import wait_until
from afas_pipeline_tests.world import holding

WINDOW = "2026-11-16-10:00"
NEXT = "2026-11-16-10:15"
LATER = "2026-11-16-10:30"
SUBJECT_TYPE = default_mapping("spotler").mailing_history.subject_type


def _id(contact: dict) -> str:
    return str(contact["ContactId"])


def _recipients(world, n: int) -> list[dict]:
    world.sync()
    return world.pick(n, ContactKind="PRS", PermissionNewsletter=True, Blocked=False, HardBounce=False)


def _send(world, contacts: list[dict], at: str, name: str = "Nieuwsbrief november",
          subject: str = "Het nieuws van november", **extra) -> dict:
    return world.spotler("POST", "/mailings", json={"name": name, "subject": subject, "at": at,
                                                     "recipients": [_id(c) for c in contacts], **extra})


def _items(world) -> pd.DataFrame:
    """The dossier items AFAS holds, read through the ProfitSubjects GetConnector."""
    frame, _ = world.resources()["afas"].read("ProfitSubjects", order_by=["SubjectId"])
    return frame


def _writes(world) -> dict[str, int]:
    requests = world.afas("GET", "/stats")["requests"]
    return {route: n for route, n in requests.items() if route.split(" ")[0] in ("PUT", "POST", "DELETE")}


def _posts(world) -> int:
    return sum(n for route, n in _writes(world).items() if route.startswith("POST"))


def _with_mapping(world, tmp_path, old: str, new: str) -> None:
    text = (MAPPINGS_DIR / "spotler.yaml").read_text()
    changed = text.replace(old, new)
    assert changed != text
    path = tmp_path / "spotler.yaml"
    path.write_text(changed)
    world.assets = [*build_afas_assets(), *spotler_assets(mapping=load_mapping(path))]


def test_r17_one_dossier_item_per_mailing_per_contact_with_name_subject_send_date_and_link(world):
    contacts = _recipients(world, 3)
    mailing = _send(world, contacts, "2026-11-16T10:05:00Z")
    links = {s["externalContactId"]: s["onlineVersionLink"] for s in mailing["sent"]}

    result = world.history(WINDOW)

    items = _items(world)
    assert len(items) == 3
    assert sorted(items["ContactId"].astype(str)) == sorted(_id(c) for c in contacts)
    by_contact = {c["ContactId"]: c for c in contacts}
    for item in items.to_dict("records"):
        contact = by_contact[item["ContactId"]]
        assert str(item["PersonId"]) == str(contact["PersonId"])
        assert str(item["OrganisationId"]) == str(contact["OrganisationId"])
        assert item["SubjectTypeId"] == SUBJECT_TYPE
        assert item["Description"] == "Mailing: Nieuwsbrief november"
        text = item["Text"].split("\n")
        assert "Subject: Het nieuws van november" in text
        assert "Sent: 2026-11-16 11:05 (Amsterdam time)" in text  # 10:05 UTC
        assert f"Online version: {links[str(item['ContactId'])]}" in text
        assert f"{MARKER}{mailing['encryptedId']}" in text
        assert pd.Timestamp(item["Date"]).strftime("%Y-%m-%d %H:%M") in ("2026-11-16 10:05", "2026-11-16 11:05")
    metadata = world.metadata(result, "spotler_mailing_history")
    assert metadata["items/created"] == 3 and metadata["posts_sent"] == 3
    state = world.state().mailing_items("spotler")
    assert sorted(state["sbid"]) == sorted(items["SubjectId"].astype(str))


def test_r17_opened_clicked_and_bounced_are_added_later_to_the_same_item(world):
    first, second = _recipients(world, 2)
    mailing = _send(world, [first, second], "2026-11-16T10:05:00Z")["encryptedId"]
    world.history(WINDOW)
    (sbid,) = _items(world).loc[_items(world)["ContactId"].astype(str) == _id(first), "SubjectId"]

    world.spotler("POST", f"/recipients/{_id(first)}/open", json={"mailing": mailing, "at": "2026-11-16T10:20:00Z"})
    world.spotler("POST", f"/recipients/{_id(first)}/click", json={"mailing": mailing, "at": "2026-11-16T10:21:30Z"})
    world.history(NEXT)
    world.spotler("POST", f"/recipients/{_id(first)}/bounce",
                  json={"type": "hard", "mailing": mailing, "at": "2026-11-16T10:40:00Z"})
    world.afas("POST", "/stats/reset")
    world.history(LATER)

    items = _items(world)
    assert len(items) == 2  # still one per mailing per contact
    (text,) = items.loc[items["SubjectId"] == sbid, "Text"]
    lines = text.split("\n")
    assert "- 2026-11-16 11:20:00 opened" in lines
    assert "- 2026-11-16 11:21:30 clicked" in lines
    assert "- 2026-11-16 11:40:00 bounced (hard)" in lines
    assert lines.index("- 2026-11-16 11:20:00 opened") < lines.index("- 2026-11-16 11:40:00 bounced (hard)")
    assert _writes(world) == {"PUT connectors/KnSubject": 1}  # the bounce, on the existing item; no POST
    (other,) = items.loc[items["ContactId"].astype(str) == _id(second), "Text"]
    assert not any(line.startswith("- ") for line in other.split("\n"))
    delivered = world.state().mailing_reactions("spotler", status="delivered")
    assert sorted(delivered["kind"]) == ["bounced:hard", "clicked", "opened"]

    # Reading the same windows again adds no line twice and sends nothing.
    world.afas("POST", "/stats/reset")
    again = [world.history(NEXT), world.history(LATER)]
    assert _writes(world) == {}
    assert all(world.metadata(r, "spotler_mailing_history")["reactions_added"] == 0 for r in again)
    assert _items(world).loc[_items(world)["SubjectId"] == sbid, "Text"].iloc[0] == text


def test_r17_a_rerun_and_a_backfill_create_no_second_dossier_item(world):
    contacts = _recipients(world, 2)
    mailing = _send(world, contacts, "2026-11-16T10:14:59Z")["encryptedId"]  # the end of a window
    world.history(WINDOW)
    world.afas("POST", "/stats/reset")

    rerun = world.history(WINDOW)
    following = world.history(NEXT)  # reads the same send again through its overlap
    backfill = world.history(tags={"dagster/asset_partition_range_start": "2026-11-16-09:00",
                                   "dagster/asset_partition_range_end": "2026-11-16-11:45"})

    assert _posts(world) == 0
    assert len(_items(world)) == 2
    for result in (rerun, following, backfill):
        metadata = world.metadata(result, "spotler_mailing_history")
        assert metadata["posts_sent"] == 0 and metadata["items/exists"] == 2
    # A later open goes to the existing item.
    world.spotler("POST", f"/recipients/{_id(contacts[0])}/open", json={"mailing": mailing, "at": "2026-11-16T10:50:00Z"})
    world.history("2026-11-16-10:45")
    assert _posts(world) == 0 and len(_items(world)) == 2
    assert _items(world)["Text"].str.contains("opened").sum() == 1


def test_r17_a_mailing_sent_before_enabled_from_creates_nothing(world):
    enabled_from = default_mapping("spotler").mailing_history.enabled_from
    assert enabled_from == pd.Timestamp("2026-11-01T00:00:00Z")
    contacts = _recipients(world, 2)
    old = _send(world, contacts, "2026-10-31T23:59:00Z", name="Oktober")["encryptedId"]
    # Opened long after the history was switched on: still no item for a mailing sent before.
    world.spotler("POST", f"/recipients/{_id(contacts[0])}/open", json={"mailing": old, "at": "2026-11-16T10:05:00Z"})
    world.afas("POST", "/stats/reset")

    backfill = world.history(tags={"dagster/asset_partition_range_start": "2026-10-31-23:00",
                                   "dagster/asset_partition_range_end": "2026-11-01-00:45"})
    window = world.history(WINDOW)

    assert _items(world).empty
    assert _writes(world) == {}
    assert world.metadata(backfill, "spotler_mailing_history")["skipped/before_enabled_from"] == 2
    assert world.metadata(window, "spotler_mailing_history")["interactions_for_held_items"] == 0
    assert world.state().mailing_items("spotler").empty

    # A mailing sent at the moment the history was switched on does get its items.
    _send(world, contacts, "2026-11-01T00:00:00Z", name="November")
    world.history("2026-11-01-00:00")
    assert sorted(_items(world)["Description"]) == ["Mailing: November"] * 2


def test_r17_trend_report_setting_skips_other_mailings_but_keeps_campaign_mails(world, tmp_path):
    _with_mapping(world, tmp_path, "  mailings: all\n", "  mailings: trend_reports\n")
    contacts = _recipients(world, 2)
    _send(world, contacts, "2026-11-16T10:01:00Z", name="Losse mailing")
    _send(world, contacts, "2026-11-16T10:02:00Z", name="Trendrapport", trend_report_id=12)
    _send(world, contacts, "2026-11-16T10:03:00Z", name="Campagne", campaign=True)

    result = world.history(WINDOW)

    names = sorted(_items(world)["Description"])
    assert names == ["Mailing: Campagne"] * 2 + ["Mailing: Trendrapport"] * 2
    metadata = world.metadata(result, "spotler_mailing_history")
    assert metadata["skipped/not_a_trend_report"] == 2
    assert metadata["items/created"] == 4


def _seed_failing_request(n: int, rate: float) -> int:
    """A fault seed whose first n-1 AFAS requests pass and whose n-th gets the injected 500 (the injector
    draws twice per request: the fault, then the jitter)."""
    for seed in range(10_000):
        draws = random.Random(seed)
        faults = [draws.random() for _ in range(2 * n)][::2]
        if all(d >= rate for d in faults[:-1]) and faults[-1] < rate:
            return seed
    raise AssertionError("no seed")


def test_r17_an_afas_500_on_the_post_is_retried_next_run_and_ends_with_exactly_one_item(world):
    (contact,) = _recipients(world, 1)
    mailing = _send(world, [contact], "2026-11-16T10:05:00Z")["encryptedId"]
    world.afas("POST", "/stats/reset")
    # The dossier item type check and the contact lookup pass (metainfo, then the read, each), the
    # KnSubject POST gets a 500.
    world.afas("PUT", "/faults", json={"error_500_rate": 0.5, "seed": _seed_failing_request(5, 0.5)})

    failed = world.history(WINDOW)

    stats = world.afas("GET", "/stats")
    assert stats["faults"]["500"] == 1
    assert stats["requests"].get("POST connectors/KnSubject") == 1  # sent once, never blindly repeated
    world.afas("PUT", "/faults", json={})  # AFAS answers again
    assert _items(world).empty
    metadata = world.metadata(failed, "spotler_mailing_history")
    assert metadata["items/rejected"] == 1 and metadata["rejected"] == 1 and metadata["posts_sent"] == 1
    rejected = world.state().rejected(AFAS)
    assert list(rejected["external_id"]) == [rejection_key(mailing, _id(contact))]
    assert rejected["status_code"].iloc[0] == 500

    retried = world.history(NEXT)  # the send is outside this window: retried from the sync state
    again = world.history(LATER)

    items = _items(world)
    assert len(items) == 1 and str(items["ContactId"].iloc[0]) == _id(contact)
    assert world.metadata(retried, "spotler_mailing_history")["items/created"] == 1
    assert world.metadata(again, "spotler_mailing_history")["posts_sent"] == 0
    assert world.state().rejected(AFAS).empty
    assert world.state().mailing_items("spotler")["sbid"].tolist() == [str(items["SubjectId"].iloc[0])]


def test_r17_a_subject_type_afas_does_not_have_stops_every_post_and_the_items_wait(world, tmp_path):
    contacts = _recipients(world, 2)
    _send(world, contacts, "2026-11-16T10:05:00Z")
    _with_mapping(world, tmp_path, "  subject_type: 7\n", "  subject_type: 99\n")
    world.afas("POST", "/stats/reset")

    stopped = world.history(WINDOW, raise_on_error=False)

    assert not stopped.success  # the blocking check fails the run
    assert _posts(world) == 0 and _items(world).empty
    metadata = world.metadata(stopped, "spotler_mailing_history")
    assert metadata["items/stopped"] == 2 and metadata["stopped/subject_type_exists"] == 2
    assert metadata["posts_sent"] == 0 and metadata["rejected"] == 0
    (check,) = stopped.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == ("subject_type_exists", False)
    assert "mailing_history.subject_type (99): R17: AFAS has no dossier item type 99" in check.description
    assert "7 = Mailing" in check.description
    assert world.state().rejected(AFAS).empty  # a setting to fix, not a refused record: never quarantined

    # The type fixed: the next run creates the waiting items, once.
    world.assets = list(ALL_ASSETS)
    fixed = world.history(NEXT)
    items = _items(world)
    assert sorted(items["ContactId"].astype(str)) == sorted(_id(c) for c in contacts)
    assert set(items["SubjectTypeId"]) == {SUBJECT_TYPE}
    assert world.metadata(fixed, "spotler_mailing_history")["items/created"] == 2


def test_r17_reactions_are_appended_once_in_time_order_and_never_past_afas_text_limit():
    text, added, dropped = with_reactions("Mailing: x", [("clicked", "2026-11-16T10:21:00+00:00"),
                                                         ("opened", "2026-11-16T10:20:00+00:00")])
    assert (added, dropped) == (2, 0)
    assert text.split("\n")[1:] == ["- 2026-11-16 11:20:00 opened", "- 2026-11-16 11:21:00 clicked"]
    again, added, _ = with_reactions(text, [("opened", "2026-11-16T10:20:00+00:00")])
    assert (again, added) == (text, 0)
    full, added, dropped = with_reactions("x" * (TEXT_MAX - 10), [("opened", "2026-11-16T10:20:00+00:00")])
    assert (added, dropped) == (0, 1) and len(full) <= TEXT_MAX


def _refuse_posts_for(contact_id: str, times: int | None = None) -> dict:
    """A sandbox refusal: AFAS answers 500 to the KnSubject POST linked to this contact (`times` of them, or all)."""
    return {"request": "POST connectors/KnSubject", "pattern": rf'"CdId":{contact_id}\b', "times": times}


def _open_all(world, contacts: list[dict], mailing: str, at: str) -> None:
    for contact in contacts:
        world.spotler("POST", f"/recipients/{_id(contact)}/open", json={"mailing": mailing, "at": at})


def _opened(items: pd.DataFrame, at: str) -> set[str]:
    """The contacts whose dossier item holds the open at `at` (Amsterdam time), exactly once."""
    line = f"- {at} opened"
    return {str(c) for c, text in zip(items["ContactId"], items["Text"]) if text.split("\n").count(line) == 1}


def test_r17_a_refused_post_holds_back_no_other_reaction_and_arrives_once_afas_accepts_it(world):
    contacts = _recipients(world, 30)
    mailing = _send(world, contacts, "2026-11-16T10:05:00Z")["encryptedId"]
    _open_all(world, contacts, mailing, "2026-11-16T10:10:00Z")
    stuck = _id(contacts[7])
    others = {_id(c) for c in contacts} - {stuck}
    # AFAS refuses this one contact's dossier item three times; then accepts it (the rule is used up).
    world.afas("PUT", "/faults", json={"refuse": [_refuse_posts_for(stuck, times=3)]})

    first = world.history(WINDOW)

    items = _items(world)
    assert set(items["ContactId"].astype(str)) == others
    assert _opened(items, "2026-11-16 11:10:00") == others  # the waiting item holds back no other reaction
    assert world.metadata(first, "spotler_mailing_history")["reactions_added"] == 29
    assert list(world.state().rejected(AFAS)["external_id"]) == [rejection_key(mailing, stuck)]

    world.history(NEXT)
    world.history(LATER)  # refused for the third time
    rejected = world.state().rejected(AFAS)
    assert list(rejected["attempts"]) == [3] and not rejected["quarantined"].any()  # one attempt per run

    world.history("2026-11-16-10:45")  # AFAS accepts it now

    items = _items(world)
    assert sorted(items["ContactId"].astype(str)) == sorted(_id(c) for c in contacts)
    assert _opened(items, "2026-11-16 11:10:00") == {_id(c) for c in contacts}
    assert world.state().rejected(AFAS).empty
    assert world.state().mailing_reactions("spotler", status="pending").empty
    assert world.state().mailing_items("spotler")["sbid"].notna().all()


def test_r17_a_stuck_item_is_retried_on_its_own_and_never_blocks_the_others(world):
    contacts = _recipients(world, 30)
    mailing = _send(world, contacts, "2026-11-16T10:05:00Z")["encryptedId"]
    stuck = _id(contacts[7])
    others = {_id(c) for c in contacts} - {stuck}
    # Every POST of the first run is refused: all 30 items wait for a retry, looked up in AFAS first.
    world.afas("PUT", "/faults", json={"refuse": [{"request": "POST connectors/KnSubject"}]})
    world.history(WINDOW)
    assert _items(world).empty and len(world.state().rejected(AFAS)) == 30
    # From now on AFAS refuses only this contact: its dossier item, and every dossier-item read that asks for it.
    world.afas("PUT", "/faults", json={"refuse": [
        _refuse_posts_for(stuck),
        {"request": "GET connectors/ProfitSubjects", "pattern": rf"filtervalues=([^&]*[;,])?{stuck}\b"}]})
    _open_all(world, contacts, mailing, "2026-11-16T10:20:00Z")

    retried = world.history(NEXT)

    items = _items(world)
    assert set(items["ContactId"].astype(str)) == others
    assert _opened(items, "2026-11-16 11:20:00") == others
    metadata = world.metadata(retried, "spotler_mailing_history")
    assert metadata["items/created"] == 29 and metadata["items/rejected"] == 1 and metadata["rejected"] == 1
    rejected = world.state().rejected(AFAS)
    assert list(rejected["external_id"]) == [rejection_key(mailing, stuck)]
    assert rejected["status_code"].tolist() == [500]

    # Retried on its own every run until it is quarantined (QUARANTINE_AFTER refusals); the others are done.
    for window in ("2026-11-16-10:30", "2026-11-16-10:45", "2026-11-16-11:00"):
        world.history(window)
    rejected = world.state().rejected(AFAS)
    assert list(rejected["external_id"]) == [rejection_key(mailing, stuck)]
    assert rejected["attempts"].tolist() == [QUARANTINE_AFTER] and rejected["quarantined"].all()
    world.afas("POST", "/stats/reset")
    world.history("2026-11-16-11:15")
    assert _writes(world) == {}  # quarantined: an operator looks first
    assert len(_items(world)) == 29
    assert world.state().mailing_reactions("spotler", status="pending")["external_id"].tolist() == [stuck]


class UnlockedState(SyncStateResource):
    """The sync state without the run's lock: what two runs meet through when the lock does not keep them
    apart (two machines, each with a lock file of its own). The claims must still hold."""

    def setup_for_execution(self, context) -> None:
        self._run_id = context.run.run_id

    def teardown_after_execution(self, context) -> None:
        pass


def _history_run(world, partition: str, afas: AfasClient, instance: dg.DagsterInstance,
                 raise_on_error: bool = True, unlocked: bool = False) -> dg.ExecuteInProcessResult:
    """`world.history`, with its own AFAS client and Dagster instance (a second run process)."""
    resources = {**world.resources(), "afas": afas}
    if unlocked:
        resources["sync_state"] = UnlockedState(path=str(world.state_path))
    return dg.materialize(holding(world.assets, "spotler_mailing_history"),
                          partition_key=partition, resources=resources, instance=instance,
                          raise_on_error=raise_on_error)


def _afas_client(world, cls: type[AfasClient] = AfasClient) -> AfasClient:
    sb = world.sandbox
    return cls(base_url=sb.afas_base_url, token=sb.afas_token, backoff_initial_s=0.01, backoff_max_s=0.05)


def test_c3_two_runs_that_meet_post_each_dossier_item_once(world):
    contacts = _recipients(world, 30)
    _send(world, contacts, "2026-11-16T10:05:00Z")
    release, lock = threading.Event(), threading.Lock()
    held: list[int] = []

    class HeldAfas(AfasClient):
        """The first run's AFAS client: its KnSubject POSTs wait until the second run is done."""

        def insert(self, connector: str, body: dict, *, sub_object: str | None = None) -> dict:
            with lock:
                held.append(body["KnSubject"]["Element"]["Objects"][0]["KnSubjectLink"]["Element"]["Fields"]["CdId"])
            assert release.wait(120), "the test never let the first run go on"
            return super().insert(connector, body, sub_object=sub_object)

    first: list[dict] = []

    def first_run() -> None:
        with dg.DagsterInstance.ephemeral() as instance:  # its own run process: its own instance and client
            result = _history_run(world, WINDOW, _afas_client(world, HeldAfas), instance, unlocked=True)
            first.append(world.metadata(result, "spotler_mailing_history"))

    runner = threading.Thread(target=first_run)
    runner.start()
    try:
        # The first run has read the window and holds as many POSTs as its client sends side by side.
        wait_until(lambda: len(held) == 4, timeout_s=120, what="the first run holding 4 POSTs")
        # The same window, the same sync state, while the first run is mid-way (it does not hold the lock).
        second = world.history(WINDOW)
    finally:
        release.set()
        runner.join(timeout=120)

    items = _items(world)
    per_contact = items["ContactId"].astype(str).value_counts()
    assert sorted(per_contact.index) == sorted(_id(c) for c in contacts)
    assert set(per_contact) == {1}  # one dossier item per (mailing, contact)
    ran = [*first, world.metadata(second, "spotler_mailing_history")]
    assert [m["items/created"] for m in ran] == [4, 26]
    assert [m["items/claimed_elsewhere"] for m in ran] == [26, 4]
    assert sum(m["posts_sent"] for m in ran) == 30 == _posts(world)
    assert world.state().mailing_items("spotler")["sbid"].notna().all()
    assert world.state().rejected(AFAS).empty


def test_c3_a_post_whose_answer_was_lost_keeps_its_claim_until_afas_has_had_time_to_show_the_item(world):
    """A POST AFAS may have processed (the answer timed out, a 502/504, the connection cut halfway) is not repeated;
    nor may the next attempt POST it again at once: AFAS may still be saving the first, so a look-up finds nothing
    yet. The claim stays for its lease (it was given up, and a step retry a minute later made a second item)."""
    (contact,) = _recipients(world, 1)
    _send(world, [contact], "2026-11-16T10:05:00Z")
    unsaved: list[dict] = []

    class BusyAfas(AfasClient):
        """AFAS took the POST but had not saved it when the client gave up on its answer."""

        def insert(self, connector: str, body: dict, *, sub_object: str | None = None) -> dict:
            unsaved.append(body)
            raise AfasOutcomeUnknown("POST connectors/KnSubject: ReadTimeout; not repeated because AFAS may have "
                                     "processed it", connector=connector)

    with dg.DagsterInstance.ephemeral() as instance:
        lost = _history_run(world, WINDOW, _afas_client(world, BusyAfas), instance, raise_on_error=False)
    assert not lost.success and len(unsaved) == 1

    world.afas("POST", "/stats/reset")
    retried = world.history(WINDOW)  # a step retry or the next run, before AFAS has saved the first POST
    metadata = world.metadata(retried, "spotler_mailing_history")
    assert metadata.get("items/claimed_elsewhere", 0) == 1 and _posts(world) == 0
    _afas_client(world).insert("KnSubject", unsaved[0])  # AFAS has saved it now

    with sqlite3.connect(world.state_path) as db:  # the lease is over: the next run looks the item up first
        db.execute("UPDATE mailing_history SET claimed_at = ?",
                   ((datetime.now(timezone.utc) - CLAIM_LEASE - timedelta(minutes=1)).isoformat(),))
    later = world.history(NEXT)

    assert list(_items(world)["ContactId"].astype(str)) == [_id(contact)]
    assert world.metadata(later, "spotler_mailing_history")["items/found_in_afas"] == 1


def test_c3_a_run_that_died_mid_post_leaves_claims_taken_over_only_after_a_look_up_in_afas(world):
    contacts = _recipients(world, 2)
    _send(world, contacts, "2026-11-16T10:05:00Z")
    posted, lost = _id(contacts[0]), _id(contacts[1])

    class DyingAfas(AfasClient):
        """A run killed during its POSTs: one reached AFAS (the answer was never saved), one never left."""

        def insert(self, connector: str, body: dict, *, sub_object: str | None = None) -> dict:
            fields = body["KnSubject"]["Element"]["Objects"][0]["KnSubjectLink"]["Element"]["Fields"]
            if str(fields["CdId"]) == posted:
                super().insert(connector, body, sub_object=sub_object)
            raise RuntimeError("killed")

    with dg.DagsterInstance.ephemeral() as instance:
        died = _history_run(world, WINDOW, _afas_client(world, DyingAfas), instance, raise_on_error=False)
    assert not died.success
    assert list(_items(world)["ContactId"].astype(str)) == [posted]

    # Right after: both are looked up in AFAS. The one AFAS holds is found; the other's claim is fresh, so it
    # may belong to a run that is still POSTing it: left alone.
    world.afas("POST", "/stats/reset")
    soon = world.history(WINDOW)
    metadata = world.metadata(soon, "spotler_mailing_history")
    assert metadata["items/found_in_afas"] == 1 and metadata["items/claimed_elsewhere"] == 1 and _posts(world) == 0

    # The run died longer ago than the claim lease: the next run looks the item up in AFAS, then POSTs it once.
    with sqlite3.connect(world.state_path) as db:
        db.execute("UPDATE mailing_history SET claimed_at = ?",
                   ((datetime.now(timezone.utc) - CLAIM_LEASE - timedelta(minutes=1)).isoformat(),))
    later = world.history(NEXT)

    items = _items(world)
    assert sorted(items["ContactId"].astype(str)) == sorted([posted, lost])
    metadata = world.metadata(later, "spotler_mailing_history")
    assert metadata["items/created"] == 1 and metadata["retried_from_earlier_runs"] == 1 and _posts(world) == 1
    state = world.state().mailing_items("spotler")
    assert state["sbid"].notna().all() and state["claimed_by"].isna().all()
