"""C1 and C4 through a crash: a sync killed at any moment, then run again, ends where a sync that was never
killed ends, with no opt-out undone and nothing re-sent that Spotler's answer had been saved for.

The crash is a fail point (`afas_pipeline.lib.failpoints`) armed with the `crash` action: the run dies at
exactly that moment, in-process; `test_a_cli_sync_killed_with_sigkill_...` does the same with a real SIGKILL
of an `afas-pipeline sync` process. Spotler sends one batch at a time here (`max_concurrency` 1, 20
contacts a batch), so "the 6th batch" is the same batch on every run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pandas as pd
import pytest

from afas_pipeline.chain import writer
from afas_pipeline.lib import failpoints
from afas_pipeline.lib.failpoints import SimulatedCrash
from afas_pipeline.sync.state import IN_DOUBT
from afas_pipeline_tests.properties.test_sync_model import seen_in_spotler

ONE_AT_A_TIME = {"max_concurrency": 1, "batch_size": 20}
FEEDBACK_WINDOW = "2026-11-22-06:00"


def _crash(world, point: str, at: int) -> None:
    failpoints.arm(point, "crash", at)
    with pytest.raises(SimulatedCrash):
        world.sync()
    failpoints.disarm()


def _saved(world) -> set[str]:
    """Records whose acknowledged write the sync state holds (not in doubt)."""
    records = world.state().records("spotler")
    hashes = records["content_hash"].astype(object)
    return set(records.loc[hashes.map(lambda h: isinstance(h, str) and h != IN_DOUBT).astype(bool), "external_id"])


def _snapshot(world) -> dict[str, dict]:
    return {key: seen_in_spotler(c) for key, c in world.spotler_contacts().items()}


def _unsubscribe(world, ids: list[str]) -> None:
    for external_id in ids:
        world.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1})


def _subscribed(world, ids) -> list[str]:
    contacts = world.spotler_contacts()
    return sorted((i for i in ids if i in contacts and any(p["bit"] == 1 and p["enabled"] for p in
                                                          contacts[i]["properties"].get("permissions", []))), key=int)


def _sent_ids(result) -> set[str]:
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == "spotler_sync"]
    stored = pd.read_parquet(event.materialization.metadata["path"].value)
    return set(stored.loc[stored["status"] == "ok", "external_id"])


def _on(world, backend: str, request) -> None:
    """The world's sync state on this database: its SQLite file, or a fresh Postgres database."""
    if backend == "postgres":
        world.state_url = request.getfixturevalue("postgres_state")


def _fault_free(world, unsubscribed: list[str]) -> dict[str, dict]:
    """What the same steps give without the crash: a fresh state, an empty Spotler account, a full sync,
    the same recipients unsubscribing, a second full sync."""
    world.spotler("POST", "/reset")
    world.state_path = world.root / "fault-free.sqlite"
    world.storage = world.root / "fault-free-storage"
    world.sync()
    _unsubscribe(world, unsubscribed)
    world.sync()
    return _snapshot(world)


@pytest.mark.parametrize(("point", "at", "chunk"), [
    ("afas.page_read", 2, None),                     # during the AFAS read
    ("spotler_sync_plan.feed_recorded", 1, None),    # while the plan records what Spotler's feed said
    ("spotler_sync.intent_recorded", 1, None),       # the writes are recorded as in flight, none sent yet
    ("spotler.contact_list", 6, None),               # between two write batches: 5 answered and saved
    ("spotler_sync.batch_acknowledged", 6, None),    # batch 6 arrived in Spotler, its answer not saved yet
    ("spotler_sync.batch_saved", 11, None),          # the last batch saved, the chunk still marked in flight
    # Chunks of 3 batches, two on their way at once (their batches take turns at the one slot):
    ("spotler_sync.intent_recorded", 3, 60),         # the third chunk recorded while the first two are sent
    ("spotler_sync.batch_acknowledged", 5, 60),      # a batch of the first or second chunk, the other on its way
    ("spotler_sync.batch_saved", 4, 60),             # saved, its chunk and the next one still in flight
])
def test_c1_c4_a_first_sync_killed_at_any_point_then_rerun_ends_as_if_never_killed(world, point, at, chunk,
                                                                                  monkeypatch):
    world.spotler_options = ONE_AT_A_TIME
    if chunk is not None:
        monkeypatch.setattr(writer, "SEND_CHUNK", chunk)
    _crash(world, point, at)
    saved = _saved(world)
    landed = set(world.spotler_contacts())
    # Recipients unsubscribe before the rerun: those whose answer was saved and those whose was not.
    unsubscribed = _subscribed(world, landed - saved)[:10] + _subscribed(world, saved)[:10]
    _unsubscribe(world, unsubscribed)

    rerun = world.sync()

    after = _snapshot(world)
    undone = [i for i in unsubscribed if after[i]["permissions"].get(1) is not False]
    assert undone == [], f"C1: {len(undone)} of {len(unsubscribed)} opt-outs undone by the rerun"
    assert not (_sent_ids(rerun) & saved), "a record whose answer was saved before the crash was sent again"
    assert world.state().writes_in_flight("spotler") == []
    world.spotler("POST", "/stats/reset")
    world.sync()
    assert world.spotler_writes() == 0  # C3: the state and Spotler agree
    # The opt-outs the plans saw reach AFAS (R12) through the next write-back, whatever window it runs for.
    world.feedback(FEEDBACK_WINDOW)
    afas = world.afas_contacts()
    newsletter = dict(zip(afas["ContactId"].astype(str), afas["PermissionNewsletter"].astype(bool)))
    assert [i for i in unsubscribed if newsletter[i]] == []

    assert after == _fault_free(world, unsubscribed)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_c1_a_crash_between_a_write_and_its_state_save_is_judged_against_the_write(world, backend, request):
    """A contact whose create arrived but whose answer was never saved, switched off by the recipient, then
    edited in AFAS after the opt-out: the rerun must not take AFAS's later edit for a new consent. On both
    databases of the sync state."""
    _on(world, backend, request)
    world.spotler_options = ONE_AT_A_TIME
    _crash(world, "spotler_sync.batch_acknowledged", 1)
    (external_id, *_) = _subscribed(world, set(world.spotler_contacts()) - _saved(world))
    _unsubscribe(world, [external_id])
    world.afas_edit("contacts", external_id, Function="Later bewerkt")

    world.sync()

    contact = world.spotler_contact(external_id)
    assert contact["properties"]["function"] == "Later bewerkt"
    assert seen_in_spotler(contact)["permissions"][1] is False


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "afas_pipeline.cli", "sync", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_a_cli_sync_killed_with_sigkill_between_a_write_and_its_state_save_undoes_no_optout(
        sandbox, afas_sandbox_clean, spotler_sandbox_clean, tmp_path):
    env = {"AFAS_PIPELINE_SANDBOX_URL": sandbox.url, "DAGSTER_HOME": str(tmp_path),
           "AFAS_PIPELINE_STATE": str(tmp_path / "state.sqlite")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    # Spotler's chain only: the kill is in Spotler's writes; Mailchimp's chain would only add run time.
    killed = _cli({**env, failpoints.ENV: "spotler_sync.batch_acknowledged=kill@2"}, "--partition", "2026-11-22-06:00",
                  "--destination", "spotler")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    landed = [c for c in httpx.get(f"{sandbox.spotler_admin_url}/contacts").json()
              if seen_in_spotler(c)["permissions"].get(1)]
    assert landed, "the killed run wrote nothing to Spotler"
    ids = sorted((str(c["externalId"]) for c in landed), key=int)[-20:]
    for external_id in ids:
        httpx.post(f"{sandbox.spotler_admin_url}/recipients/{external_id}/unsubscribe", json={"bit": 1}).raise_for_status()

    rerun = _cli(env, "--partition", "2026-11-22-06:00", "--destination", "spotler")
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    contacts = {str(c["externalId"]): c for c in httpx.get(f"{sandbox.spotler_admin_url}/contacts").json()}
    undone = [i for i in ids if seen_in_spotler(contacts[i])["permissions"].get(1) is not False]
    assert undone == []


# --- the way back ---------------------------------------------------------------------------------------

OPTOUT_WINDOW = "2026-11-16-10:00"
LATER_WINDOW = "2026-11-16-11:00"  # its read of Spotler's feed starts after the opt-outs


def _afas_newsletter(world) -> dict[str, bool]:
    afas = world.afas_contacts()
    return dict(zip(afas["ContactId"].astype(str), afas["PermissionNewsletter"].astype(bool)))


@pytest.mark.parametrize(("point", "at", "backend"), [
    ("afas.page_read", 1, "sqlite"),                    # reading the contacts to write to
    ("afas_write_back.put_answered", 3, "sqlite"),      # some PUTs answered, the ledger not yet written
    ("afas_write_back.put_answered", 3, "postgres"),
    ("afas_write_back.before_ledger", 1, "sqlite"),     # every PUT answered, the ledger not yet written
])
def test_r12_c4_a_write_back_killed_halfway_is_finished_by_a_later_window_and_doubles_nothing(world, point, at,
                                                                                            backend, request):
    _on(world, backend, request)
    world.sync()
    ids = [str(c["ContactId"]) for c in world.pick(5, ContactKind="PRS", PermissionNewsletter=True, Blocked=False,
                                                     HardBounce=False)]
    for n, external_id in enumerate(ids):
        world.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1, "at": f"2026-11-16T10:0{n}:00Z"})
    world.afas("POST", "/stats/reset")
    failpoints.arm(point, "crash", at)
    with pytest.raises(SimulatedCrash):
        world.feedback(OPTOUT_WINDOW)
    failpoints.disarm()

    world.feedback(LATER_WINDOW)  # not a rerun of the window: a later one, as the schedule would run it

    assert [i for i in ids if _afas_newsletter(world)[i]] == []
    puts = sum(n for route, n in world.afas("GET", "/stats")["requests"].items() if route.startswith("PUT"))
    assert puts == len(ids)  # one PUT per contact, however the crash fell
    assert world.state().feedback_events("spotler", status="pending").empty
    world.spotler("POST", "/stats/reset")
    world.delta(LATER_WINDOW)
    assert world.spotler_writes() == 0  # the state learned what AFAS holds: nothing echoes back
