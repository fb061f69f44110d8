"""The whole loop AFAS -> Spotler -> AFAS over random sequences of steps, against the rules as invariants.

Each example starts from the world of `test_sync_model` (a 100-contact AFAS sandbox, seed 7, synced once
into an empty Spotler account) and plays a random sequence of steps on six contacts:
- an AFAS user editing the function, a permission, the blocked flag or the e-mail address (always a new
  one, so that R11's "back to the bounced address" stays the other test's business);
- a recipient in Spotler unsubscribing from or subscribing to bit 1 or 2, or bouncing (hard or soft);
- a Spotler user editing the function (a two-way field, `direction: both`);
- a sync (the full chain to Spotler) or a feedback run (`spotler_optout_feedback`, `spotler_bounce_feedback` -> `spotler_afas_write_back`);
- a crash: the next sync or feedback run dies at a chosen fail point (between two write batches, between a
  write and its state save, while the feed is recorded, during the AFAS read or the write-back, ...); the
  run after it resumes;
- an outage: the next run finds Spotler's or AFAS's writes answering 503 (it fails; nothing is refused).
The sequence ends with the syncs settling: feedback, sync, feedback.

What must hold:
- C1, after every sync and feedback run, crashed or failed ones included: a permission a recipient switched
  off stays off in Spotler until AFAS switches it on again, or the recipient does (an opt-out is never
  undone by the sync);
- R12, once settled: that opt-out has reached AFAS;
- after settling, AFAS and Spotler agree on every mapped field of every member Spotler has: e-mail,
  properties (the two-way function included), permissions (off while blocked, R7), and the hard bounce
  (R11: inactive in Spotler if and only if AFAS holds the hard-bounce flag);
- one more round (feedback, sync) then writes nothing, to either side.

Clocks: Spotler's clock is set 15 minutes behind the real time (its admin `/clock`), so that what happens
during a step falls in a 15-minute window that has already closed: a feedback run covers the windows from
the example's start to the last closed one, as the scheduled runs would have. The steps are dated on a
logical clock that starts a minute behind Spotler's and moves one second per step (AFAS edits and
recipient actions carry it as `at`): steps never share a second, which matters because AFAS keeps its
modified dates to the second, and the syncs' own writes come after the steps they follow, as in production.

The explicit examples hold each rule and put a crash at every fail point; then `SPOTLER_LOOP_EXAMPLES` (default 3)
generated sequences, the same on every run. To explore further locally: `SPOTLER_LOOP_EXAMPLES=100
SPOTLER_LOOP_RANDOM=1 pytest afas_pipeline_tests/properties/test_loop_model.py` (a new draw each run;
`properties/examples.py`).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import httpx
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from afas_pipeline.definitions import assets as ALL_ASSETS
from afas_pipeline.lib import failpoints
from afas_pipeline.lib.failpoints import SimulatedCrash
from afas_sandbox.server import Sandbox
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline_tests.properties.examples import model_settings
from afas_pipeline_tests.world import holding
from afas_pipeline_tests.properties.test_sync_model import (
    CONTACTS, FULL_PARTITION, PERMISSIONS, QUIET, SYNC_ASSETS, World, _reset, mapped_properties, normalised_email,
    valid_email,
)

FEEDBACK_ASSETS = holding(ALL_ASSETS, "spotler_optout_feedback", "spotler_bounce_feedback", "spotler_afas_write_back")
#: Spotler's clock runs this far behind the real time; the steps' clock a minute more (see the docstring).
BEHIND = dt.timedelta(minutes=15)
STEPS_BEHIND_SPOTLER = dt.timedelta(minutes=1)
WINDOW = dt.timedelta(minutes=15)


class AfasEdit(NamedTuple):
    contact: int
    field: str
    value: object


class Recipient(NamedTuple):
    """A recipient in Spotler: `unsubscribe` / `subscribe` (bit) or `bounce` (hard or soft)."""

    contact: int
    action: str
    detail: object


class SpotlerEdit(NamedTuple):
    contact: int
    function: str | None


class Sync(NamedTuple):
    pass


class Feedback(NamedTuple):
    pass


class Crash(NamedTuple):
    """A sync or feedback run (`run`) that dies the `at`-th time it reaches fail point `point`."""

    run: str
    point: str
    at: int


class Outage(NamedTuple):
    """A sync (Spotler's writes down) or feedback run (AFAS's writes down) that meets an outage: 503s."""

    run: str


#: Where a run may die. A sync: reading AFAS, recording Spotler's feed, between the intent and the writes,
#: before a batch, between a batch's answer and its state save, after it. A feedback run: reading AFAS,
#: after a PUT was answered, before the ledger is written.
CRASH_POINTS = {
    "sync": ("afas.page_read", "spotler_sync_plan.feed_recorded", "spotler_sync.intent_recorded",
             "spotler.contact_list", "spotler_sync.batch_acknowledged", "spotler_sync.batch_saved"),
    "feedback": ("afas.page_read", "afas_write_back.put_answered", "afas_write_back.before_ledger"),
}


def step_sequences() -> st.SearchStrategy[list]:
    def around(focus: int) -> st.SearchStrategy[list]:
        contact = st.sampled_from((focus, focus, focus, *CONTACTS))
        permission = st.sampled_from(list(PERMISSIONS.values()))
        afas = st.one_of(
            st.builds(AfasEdit, contact, st.just("Function"), st.sampled_from(["Directeur", "Inkoper", None])),
            st.builds(AfasEdit, contact, permission, st.booleans()),
            st.builds(AfasEdit, contact, st.just("Blocked"), st.booleans()),
            st.builds(AfasEdit, contact, st.just("MailWork"), st.just("<new address>")),
        )
        recipient = st.one_of(
            st.builds(Recipient, contact, st.sampled_from(["unsubscribe", "unsubscribe", "subscribe"]),
                      st.sampled_from(list(PERMISSIONS))),
            st.builds(Recipient, contact, st.just("bounce"), st.sampled_from(["hard", "soft"])),
        )
        spotler_edit = st.builds(SpotlerEdit, contact, st.sampled_from(["Eigenaar", "Hoofd Inkoop", None]))
        crash = st.sampled_from(sorted(CRASH_POINTS)).flatmap(
            lambda run: st.builds(Crash, st.just(run), st.sampled_from(CRASH_POINTS[run]), st.integers(1, 2)))
        trouble = st.one_of(crash, st.builds(Outage, st.sampled_from(["sync", "feedback"])))
        kinds = {"afas": afas, "recipient": recipient, "spotler_edit": spotler_edit,
                 "sync": st.just(Sync()), "feedback": st.just(Feedback()), "trouble": trouble}
        weights = ["afas", "afas", "afas", "recipient", "recipient", "recipient", "spotler_edit", "sync", "feedback",
                   "trouble", "trouble"]
        return st.lists(st.sampled_from(weights).flatmap(kinds.__getitem__), min_size=3, max_size=8)

    return st.sampled_from(CONTACTS).flatmap(around)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _window_key(moment: dt.datetime) -> str:
    floor = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    return floor.strftime("%Y-%m-%d-%H:%M")


class LoopWorld(World):
    """The sync-model world plus the way back and Spotler's clock behind."""

    def prepare_spotler(self) -> None:
        self.spotler("PUT", "/clock", json={"offset_s": -BEHIND.total_seconds()}).raise_for_status()

    def start(self):
        model = super().start()
        # Whole seconds, one per step: no two steps share a second.
        self.clock = (dt.datetime.now(dt.timezone.utc) - BEHIND - STEPS_BEHIND_SPOTLER).replace(microsecond=0)
        # The feedback runs cover every window from here on (one more back for Spotler's late stamps).
        self.first_window = _window_key(self.clock - WINDOW)
        self.new_addresses = 0
        return model

    def tick(self) -> str:
        self.clock += dt.timedelta(seconds=1)
        return _iso(self.clock)

    def stop(self) -> None:
        self.spotler("PUT", "/clock", json={"offset_s": 0}).raise_for_status()

    def resources(self) -> dict:
        resources = super().resources()
        sb = self.sandbox
        # Small batches, one at a time: a crash "between two batches" has batches on both sides of it.
        resources["spotler"] = SpotlerClient(
            base_url=sb.spotler_base_url, consumer_key=sb.spotler_consumer_key,
            consumer_secret=sb.spotler_consumer_secret, backoff_initial_s=0.01, backoff_max_s=0.05, batch_size=10,
            max_concurrency=1)
        return resources

    def feedback(self) -> dict:
        """The way back over the windows since the example started, up to the last closed one."""
        last = _window_key(dt.datetime.now(dt.timezone.utc) - WINDOW)
        tags = {"dagster/asset_partition_range_start": self.first_window, "dagster/asset_partition_range_end": last}
        result = dg.materialize(FEEDBACK_ASSETS, resources=self.resources(), instance=self.instance, tags=tags,
                                run_config=QUIET)
        failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
        assert not failed, f"write-back checks failed: {failed}"
        # One materialization per window of the range, with the same metadata: the run's.
        materialization = [e for e in result.get_asset_materialization_events()
                           if e.materialization.asset_key.to_user_string() == "spotler_afas_write_back"][-1]
        return {k: v.value for k, v in materialization.materialization.metadata.items()}

    def troubled_run(self, trouble: Crash | Outage) -> str:
        """A sync or feedback run with `trouble`: it died at its fail point, failed on the outage, or, when the
        trouble did not meet it (nothing to write), finished."""
        run = self.run_sync if trouble.run == "sync" else self.run_feedback
        if isinstance(trouble, Crash):
            failpoints.arm(trouble.point, "crash", trouble.at)
            try:
                run()
            except SimulatedCrash:
                return "crashed"
            finally:
                failpoints.disarm()
            return "finished"
        admin = self.sandbox.spotler_admin_url if trouble.run == "sync" else self.sandbox.afas_admin_url
        httpx.put(f"{admin}/faults", json={"error_503_rate": 1.0, "retry_after": 0, "methods": ["POST", "PUT"]},
                  timeout=30).raise_for_status()
        try:
            return "finished" if run(raise_on_error=False) else "failed on the outage"
        finally:
            httpx.put(f"{admin}/faults", json={}, timeout=30).raise_for_status()

    def run_sync(self, raise_on_error: bool = True) -> bool:
        return dg.materialize(SYNC_ASSETS, partition_key=FULL_PARTITION, resources=self.resources(),
                              instance=self.instance, run_config=QUIET, raise_on_error=raise_on_error).success

    def run_feedback(self, raise_on_error: bool = True) -> bool:
        last = _window_key(dt.datetime.now(dt.timezone.utc) - WINDOW)
        tags = {"dagster/asset_partition_range_start": self.first_window, "dagster/asset_partition_range_end": last}
        return dg.materialize(FEEDBACK_ASSETS, resources=self.resources(), instance=self.instance, tags=tags,
                              run_config=QUIET, raise_on_error=raise_on_error).success

    def afas_writes(self) -> int:
        requests = self.afas("GET", "/stats")["requests"]
        return sum(n for route, n in requests.items() if route.split(" ")[0] in ("PUT", "POST", "DELETE"))

    def play(self, step) -> str | None:
        """Carry out a step that is not a sync or feedback run; returns what it did to consent, if anything:
        "optout:<bit>", "on:<bit>" (a switch-on by AFAS or the recipient) or None."""
        at = self.tick()
        if isinstance(step, AfasEdit):
            contact = self.afas_contact(step.contact)
            value = step.value
            if value == "<new address>":
                self.new_addresses += 1
                value = f"nieuw{self.new_addresses}.{step.contact}@voorbeeld.example"
            self.afas("POST", "/edit", json={"table": "contacts", "key": str(step.contact), "fields": {step.field: value},
                                             "at": at})
            bit = {name: bit for bit, name in PERMISSIONS.items()}.get(step.field)
            if bit is not None and value is True and contact[step.field] is not True:
                return f"on:{bit}"
            return None
        external_id = str(step.contact)
        if isinstance(step, SpotlerEdit):
            response = self.spotler("POST", f"/contacts/{external_id}",
                                    json={"properties": {"function": step.function}, "at": at})
        elif step.action == "bounce":
            response = self.spotler("POST", f"/recipients/{external_id}/bounce", json={"type": step.detail, "at": at})
        else:
            before = self.spotler("GET", f"/contacts/{external_id}")
            response = self.spotler("POST", f"/recipients/{external_id}/{step.action}",
                                    json={"bit": step.detail, "at": at})
            if response.status_code == 200:
                was = {int(p["bit"]): p["enabled"] for p in before.json()["properties"].get("permissions", [])}
                now = {int(p["bit"]): p["enabled"] for p in response.json()["properties"].get("permissions", [])}
                if was.get(step.detail) != now.get(step.detail):
                    return f"{'optout' if step.action == 'unsubscribe' else 'on'}:{step.detail}"
        assert response.status_code in (200, 404), (step, response.status_code, response.text)
        return None


def _spotler_raw(world: LoopWorld) -> dict[str, dict]:
    response = world.spotler("GET", "/contacts")
    response.raise_for_status()
    return {str(c["externalId"]): c for c in response.json()}


def disagreements(world: LoopWorld) -> list[str]:
    """Where AFAS and Spotler differ on a mapped field of a member Spotler has."""
    afas = world.afas_snapshot()
    spotler = world.spotler_contacts()
    problems = []
    for contact_id in CONTACTS:
        key, contact = str(contact_id), afas.contacts.get(contact_id)
        if key not in spotler or contact is None:
            continue
        email = normalised_email(contact["MailWork"])
        if contact["ContactKind"] != "PRS" or email is None or not valid_email(email):
            continue  # not a member (R3, R4): Spotler keeps what it had (R10)
        seen = spotler[key]
        hard = bool(contact["HardBounce"])
        if seen["active"] == hard:
            problems.append(f"{key}: Spotler active={seen['active']} but AFAS HardBounce={hard} (R11)")
        if not seen["active"]:
            continue  # R11: not enriched while inactive
        if seen["email"] != email:
            problems.append(f"{key}: e-mail differs")
        wanted = mapped_properties(contact, afas.persons.get(contact["PersonId"], {}),
                                   afas.organisations.get(contact["OrganisationId"], {}))
        for name in sorted(wanted.keys() | seen["properties"].keys()):
            if wanted.get(name) != seen["properties"].get(name):
                problems.append(f"{key}.{name}: AFAS says {wanted.get(name)!r}, Spotler has "
                                f"{seen['properties'].get(name)!r}")
        for bit, name in PERMISSIONS.items():
            expected = bool(contact[name]) and not bool(contact["Blocked"])
            if seen["permissions"].get(bit, False) != expected:
                problems.append(f"{key}.permission {bit}: AFAS {name}={contact[name]} blocked={contact['Blocked']}, "
                                f"Spotler has {seen['permissions'].get(bit)}")
    return problems


@pytest.fixture(scope="module")
def loop_world(sandbox: Sandbox):
    _reset(sandbox)
    with tempfile.TemporaryDirectory(prefix="loop-model-") as root:
        world = LoopWorld(sandbox, Path(root))
        try:
            yield world
        finally:
            world.stop()
    _reset(sandbox)


# A recipient's opt-out reaches AFAS, and a later AFAS edit of the contact does not undo it.
@example(steps=[Recipient(10006, "unsubscribe", 1), Feedback(), AfasEdit(10006, "Function", "Inkoper"), Sync()])
# The same, with the AFAS edit before the way back has run.
@example(steps=[Recipient(10006, "unsubscribe", 1), AfasEdit(10006, "Function", "Inkoper"), Sync(), Feedback()])
# A Spotler user's edit of the function flows back; AFAS's own later edit wins.
@example(steps=[SpotlerEdit(10011, "Eigenaar"), Feedback(), AfasEdit(10011, "Function", "Directeur"), Sync()])
# R11: a hard bounce, written back, then a new address from AFAS: active again, bounce cleared in AFAS.
@example(steps=[Recipient(10003, "bounce", "hard"), Feedback(), AfasEdit(10003, "MailWork", "<new address>"), Sync()])
# A crash between a write and its state save, then the recipient opts out: the rerun must not undo it.
@example(steps=[AfasEdit(10006, "Function", "Inkoper"), Crash("sync", "spotler_sync.batch_acknowledged", 1),
                Recipient(10006, "unsubscribe", 1), Sync()])
# Spotler's writes down for a sync: nothing refused, the next sync repairs, the opt-out after it stands.
@example(steps=[AfasEdit(10011, "Function", "Directeur"), Outage("sync"), Recipient(10011, "unsubscribe", 1), Sync()])
# The write-back dies after its PUT; AFAS down for the next one; the opt-out still reaches AFAS once.
@example(steps=[Recipient(10006, "unsubscribe", 2), Crash("feedback", "afas_write_back.put_answered", 1),
                Outage("feedback"), AfasEdit(10006, "Function", "Inkoper"), Sync()])
# C1: AFAS switches a permission on after the opt-out reached it: a new consent.
@example(steps=[Recipient(10006, "unsubscribe", 2), Feedback(), AfasEdit(10006, "PermissionEvents", True), Sync()])
# A sync dies at each of its fail points in turn (the AFAS read, the feed recorded, the writes in flight, a write
# batch, between a batch and its state save) around an opt-out and a blocking (R7): no opt-out undone, all settles.
@example(steps=[AfasEdit(10011, "Function", "Inkoper"), Crash("sync", "afas.page_read", 1),
                Recipient(10011, "unsubscribe", 1), Crash("sync", "spotler_sync_plan.feed_recorded", 1),
                AfasEdit(10006, "Blocked", True), Crash("sync", "spotler_sync.intent_recorded", 1),
                Crash("sync", "spotler.contact_list", 1), Crash("sync", "spotler_sync.batch_saved", 1)])
# The way back dies reading AFAS and before its ledger, around an opt-out, a soft bounce and the recipient's own
# switch-on again; then AFAS blocks and unblocks the contact (R7).
@example(steps=[Recipient(10006, "unsubscribe", 1), Crash("feedback", "afas.page_read", 1),
                Recipient(10011, "bounce", "soft"), Crash("feedback", "afas_write_back.before_ledger", 1),
                Recipient(10006, "subscribe", 1), AfasEdit(10006, "Blocked", True), Sync(),
                AfasEdit(10006, "Blocked", False)])
# Shrinking is off and the count small (properties/examples.py): every try re-runs the whole loop.
@model_settings("SPOTLER_LOOP", examples=3)
# Dozens of full Dagster runs: on a loaded 2-core machine this can take longer than the default 300 s.
@pytest.mark.timeout(900)
@given(steps=step_sequences())
def test_r11_r12_r13_c1_afas_and_spotler_agree_after_the_loop_settles_and_no_optout_is_undone(loop_world, steps):
    world = loop_world
    world.start()
    optouts: dict[tuple[str, int], bool] = {}  # (contact, bit) -> an opt-out stands (not switched on since)

    def no_optout_undone(after: str) -> None:
        spotler = world.spotler_contacts()
        for (key, bit), stands in optouts.items():
            if stands and key in spotler:
                assert spotler[key]["permissions"].get(bit) is False, f"C1: {key} bit {bit} undone after {after}: {steps}"

    for n, step in enumerate([*steps, Feedback(), Sync(), Feedback()]):
        if isinstance(step, (Crash, Outage)):
            event(f"{step.run} {world.troubled_run(step)}" + (f" at {step.point}" if isinstance(step, Crash) else ""))
            no_optout_undone(f"step {n} ({step})")
        elif isinstance(step, Sync):
            world.sync()
            no_optout_undone(f"step {n} (sync)")
        elif isinstance(step, Feedback):
            metadata = world.feedback()
            if metadata.get("contacts/delivered"):
                event("feedback delivered")
            no_optout_undone(f"step {n} (feedback)")
        else:
            change = world.play(step)
            if change:
                kind, bit = change.split(":")
                optouts[(str(step.contact), int(bit))] = kind == "optout"

    problems = disagreements(world)
    assert not problems, f"after settling {steps}:\n" + "\n".join(problems)
    afas = world.afas_snapshot()
    for (key, bit), stands in optouts.items():
        if stands and int(key) in afas.contacts:
            assert afas.contacts[int(key)][PERMISSIONS[bit]] is False, f"R12: {key} bit {bit} opt-out not in AFAS: {steps}"
    world.afas("POST", "/stats/reset")
    world.feedback()
    writes, _ = world.sync()
    assert (world.afas_writes(), writes) == (0, 0), f"not settled after {steps}"
