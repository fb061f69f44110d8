"""The AFAS -> Spotler sync against a reference model of the rules, over random sequences of steps.

Each example starts from the same world: a 100-contact AFAS sandbox (seed 7) already synced once into an
empty Spotler account. Then it plays a random sequence of steps on six contacts:
- an AFAS user editing (e-mail, function, permissions, blocked, contact kind, the person's last name,
  the organisation's name) through the AFAS sandbox admin API;
- a recipient acting in Spotler (unsubscribe from bit 1 or 2, hard or soft bounce) through the Spotler
  sandbox admin API; a bounce may also be written back into AFAS, as the feedback flow (R12, R16) would;
- a sync: the full chain afas_* -> spotler_audience -> spotler_sync_plan -> spotler_sync, materialised
  in-process through Dagster.
After every sync, Spotler as its admin API shows it must equal the reference model below, and a sync
that follows a sync with no AFAS edit in between must write nothing (C3).

The model is written from the rules in docs/rules.md, not from afas_pipeline.sync: it keeps, per Spotler
contact, what a recipient would see and the little history the rules need (what AFAS said when the sync
last acted on the contact, which bits the recipient switched off, which address hard-bounced). Where the
rules leave room, it reads them so:
- C1: "AFAS switched it on" is what a sync can see: the permission field off when the sync last acted on
  the contact and on now. An off-and-on between two syncs is invisible, so the opt-out stands; unblocking
  (R7) is not a switch-on of the permission.
- R11: the contact is inactive from Spotler's hard bounce on, whether or not the bounce has been written
  back into AFAS yet; the address that bounced stays known, so AFAS going back to it is not enriched.
- A soft bounce changes nothing; a contact excluded (R3, R4) or deleted in AFAS stays as it is (R10).

Each rule in the test's name has an explicit example; then `SYNC_MODEL_EXAMPLES` (default 5) generated sequences,
the same on every run. To explore further locally: `SYNC_MODEL_EXAMPLES=100 SYNC_MODEL_RANDOM=1 pytest
afas_pipeline_tests/properties/test_sync_model.py` (a new draw each run; `properties/examples.py`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import httpx
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import event, example, given
from hypothesis import strategies as st

from afas_pipeline.afas.client import AfasClient
from afas_pipeline.definitions import assets as ALL_ASSETS
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_sandbox.server import Sandbox
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline.sync.state import SyncStateResource
from afas_pipeline_tests.properties.examples import model_settings
from afas_pipeline_tests.world import holding

DATASET = {"contacts": 100, "seed": 7}
#: The contacts the steps touch. In the seed-7 dataset: 10001 has no e-mail yet (R3) and shares its
#: organisation with 10006 (an address used by several contacts) and 10009 (blocked, R7); 10003's
#: address has capitals and spaces around it (C2); 10007 is flagged hard-bounced in AFAS from the start
#: (R11); 10011 is a plain contact at another organisation.
CONTACTS = (10001, 10003, 10006, 10007, 10009, 10011)
FULL_PARTITION = "2026-11-22-06:00"
FULL_CHAIN = ("afas_contacts", "afas_persons", "afas_organisations", "spotler_audience", "spotler_sync_plan",
              "spotler_sync")
SYNC_ASSETS = holding(ALL_ASSETS, *FULL_CHAIN)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

PERMISSIONS = {1: "PermissionNewsletter", 2: "PermissionEvents"}
GENDERS = {"M": "M", "V": "F"}
SPOTLER_MAX_STRING = 255
#: Replaced, when the step runs, by the contact's current address in capitals with spaces around it.
VARIANT = "<current address, upper-case, spaces around>"


# --- the steps ----------------------------------------------------------------------------------------


class AfasEdit(NamedTuple):
    """An AFAS user sets `field` of the contact, or of its person or organisation (`table`)."""

    table: str
    contact: int
    field: str
    value: object


class AfasDelete(NamedTuple):
    """An AFAS user deletes the contact (R10: Spotler keeps it as it is)."""

    contact: int


class Unsubscribe(NamedTuple):
    contact: int
    bit: int


class Bounce(NamedTuple):
    contact: int
    hard: bool
    written_back: bool  # the feedback flow has put the bounce into AFAS (R12, R16)


class Sync(NamedTuple):
    pass


EMAILS = ["anna@voorbeeld.example", "bram@voorbeeld.example", "administratie@gedeeld.example", VARIANT,
          "geen-adres", "anna@@voorbeeld.example", "", None]


def afas_edits(contact: st.SearchStrategy[int]) -> st.SearchStrategy[AfasEdit | AfasDelete]:
    def edit(table: str, field_: str, values: st.SearchStrategy) -> st.SearchStrategy[AfasEdit]:
        return st.builds(AfasEdit, st.just(table), contact, st.just(field_), values)

    permission = st.sampled_from(list(PERMISSIONS.values())).flatmap(lambda f: edit("contacts", f, st.booleans()))
    kinds = {
        "email": edit("contacts", "MailWork", st.sampled_from(EMAILS)),
        "function": edit("contacts", "Function", st.sampled_from(["Directeur", "Inkoper", None])),
        "permission": permission,
        "blocked": edit("contacts", "Blocked", st.booleans()),
        "kind": edit("contacts", "ContactKind", st.sampled_from(["PER", "PRS"])),
        "last_name": edit("persons", "LastName", st.sampled_from(["Jansen", "de Vries", "Ødegaard"])),
        "organisation": edit("organisations", "Name",
                             st.sampled_from(["Bakker BV", "Çelik & Zn", "Muller, Smit; Partners"])),
        "delete": st.builds(AfasDelete, contact),
    }
    # Weighted towards the edits the rules are subtle about.
    weights = ["email", "email", "permission", "permission", "blocked", "blocked", "function", "kind",
               "last_name", "organisation", "delete"]
    return st.sampled_from(weights).flatmap(kinds.__getitem__)


def spotler_actions(contact: st.SearchStrategy[int]) -> st.SearchStrategy[Unsubscribe | Bounce]:
    return st.one_of(
        st.builds(Unsubscribe, contact, st.sampled_from(list(PERMISSIONS))),
        st.builds(Bounce, contact, st.booleans(), st.booleans()),
    )


def step_sequences() -> st.SearchStrategy[list]:
    """3-7 steps (the test adds a closing sync); nearly half of them on one contact chosen per example,
    so that steps meet on the same contact."""

    def around(focus: int) -> st.SearchStrategy[list]:
        contact = st.sampled_from((focus, focus, focus, *CONTACTS))
        kinds = {"afas": afas_edits(contact), "spotler": spotler_actions(contact), "sync": st.just(Sync())}
        step = st.sampled_from(["afas", "afas", "afas", "spotler", "spotler", "sync"]).flatmap(kinds.__getitem__)
        return st.lists(step, min_size=3, max_size=7)

    return st.sampled_from(CONTACTS).flatmap(around)


# --- the reference model ------------------------------------------------------------------------------


@dataclass
class AfasSnapshot:
    contacts: dict[int, dict]
    persons: dict[str, dict]
    organisations: dict[str, dict]


@dataclass
class Recipient:
    """One Spotler contact as the rules say it should be, plus the history the rules need."""

    email: str
    properties: dict
    permissions: dict[int, bool]
    active: bool
    afas_permissions: dict[int, bool]  # AFAS's permission fields when the sync last acted on the contact
    afas_blocked: bool                 # AFAS's blocked flag then
    opted_out: set[int] = field(default_factory=set)  # bits the recipient switched off, not switched on by AFAS since
    bounced: str | None = None         # the address that hard-bounced (R11)

    def visible(self) -> dict:
        return {"email": self.email, "properties": self.properties, "permissions": self.permissions,
                "active": self.active}


def normalised_email(value) -> str | None:
    """C2: compared trimmed and lower-cased; empty is none."""
    text = (value or "").strip().lower()
    return text or None


@lru_cache(maxsize=None)
def valid_email(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def mapped_properties(contact: dict, person: dict, organisation: dict) -> dict:
    """mappings/spotler.yaml, written out by hand; an empty AFAS value is no property in Spotler."""
    gender = person.get("Gender")
    values = {
        "firstName": person.get("FirstName"), "infix": person.get("Prefix"), "lastName": person.get("LastName"),
        "initials": person.get("Initials"), "gender": GENDERS.get(gender.upper()) if gender else None,
        "organisation": organisation.get("Name"), "city": organisation.get("City"),
        "country": organisation.get("Country"), "function": contact.get("Function"),
        "afasPersonId": contact.get("PersonId"), "afasOrganisationId": contact.get("OrganisationId"),
        "debtor": "yes" if organisation.get("IsDebtor") else "no",
    }
    return {name: value for name, value in values.items() if value is not None}


@dataclass
class SpotlerModel:
    recipients: dict[str, Recipient] = field(default_factory=dict)
    #: What the syncs of an example went through, for `--hypothesis-show-statistics`.
    seen: set[str] = field(default_factory=set)

    def sync(self, afas: AfasSnapshot) -> int:
        """Apply one sync; returns how many members Spotler refuses (C4)."""
        refused = 0
        for contact_id, contact in afas.contacts.items():
            email = normalised_email(contact["MailWork"])
            if contact["ContactKind"] != "PRS" or email is None or not valid_email(email):
                continue  # R4, R3; and R10: whatever Spotler has stays as it is
            person = afas.persons.get(contact["PersonId"], {})
            organisation = afas.organisations.get(contact["OrganisationId"], {})
            properties = mapped_properties(contact, person, organisation)
            if len(email) > SPOTLER_MAX_STRING or any(
                isinstance(v, str) and len(v) > SPOTLER_MAX_STRING for v in properties.values()
            ):
                refused += 1
                continue  # C4: Spotler refuses it; it is retried, Spotler keeps what it had
            afas_permissions = {bit: bool(contact[name]) for bit, name in PERMISSIONS.items()}
            blocked = bool(contact["Blocked"])
            # R6, R7: AFAS's yes/no fields, all off while blocked.
            wanted = {bit: on and not blocked for bit, on in afas_permissions.items()}
            key = str(contact_id)
            recipient = self.recipients.get(key)
            if recipient is None:
                # R11: an address AFAS already knows to hard-bounce is created, but not mailable.
                hard = bool(contact["HardBounce"])
                self.recipients[key] = Recipient(email, properties, dict(wanted), not hard, afas_permissions,
                                                 blocked, bounced=email if hard else None)
                continue
            if recipient.bounced == email:
                if properties != recipient.properties:
                    self.seen.add("R11 edit held back")
                continue  # R11: not enriched while its address is the one that hard-bounced
            if not recipient.active:
                self.seen.add("R11 reactivated")
                recipient.active = True  # R11: a new address after a hard bounce makes it mailable again
            if email != recipient.email:
                self.seen.add("new address")
            recipient.email, recipient.properties = email, properties
            for bit in PERMISSIONS:
                if not wanted[bit]:
                    recipient.permissions[bit] = False
                elif not recipient.afas_permissions[bit]:
                    # AFAS switched the permission on after the recipient's opt-out, if any (C1).
                    if bit in recipient.opted_out:
                        self.seen.add("C1 AFAS switched on after an opt-out")
                    recipient.permissions[bit] = True
                    recipient.opted_out.discard(bit)
                elif recipient.afas_blocked and bit not in recipient.opted_out:
                    recipient.permissions[bit] = True  # unblocked (R7); an opt-out still stands (C1)
                elif bit in recipient.opted_out:
                    self.seen.add("C1 opt-out kept")
            recipient.afas_permissions, recipient.afas_blocked = afas_permissions, blocked
        return refused

    def unsubscribe(self, external_id: str, bit: int) -> None:
        recipient = self.recipients[external_id]
        if recipient.permissions[bit]:
            recipient.permissions[bit] = False
            recipient.opted_out.add(bit)

    def hard_bounce(self, external_id: str) -> None:
        recipient = self.recipients[external_id]
        if recipient.active:
            recipient.active = False
            recipient.bounced = recipient.email

    def visible(self) -> dict[str, dict]:
        return {key: r.visible() for key, r in self.recipients.items()}


# --- the world: both sandboxes, the sync state, the chain ---------------------------------------------


def seen_in_spotler(contact: dict) -> dict:
    properties = dict(contact["properties"])
    permissions = {int(p["bit"]): bool(p["enabled"]) for p in properties.pop("permissions", [])}
    email = properties.pop("email", None)
    active = any(c["name"] == "EMAIL" and c["value"] for c in contact.get("channels", []))
    return {"email": email, "properties": properties, "permissions": permissions, "active": active}


def differences(expected: dict[str, dict], actual: dict[str, dict]) -> list[str]:
    problems = [f"{key}: missing in Spotler" for key in sorted(expected.keys() - actual.keys())]
    problems += [f"{key}: in Spotler but the rules say it should not be"
                 for key in sorted(actual.keys() - expected.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        for part, wanted in expected[key].items():
            have = actual[key][part]
            if isinstance(wanted, dict) and isinstance(have, dict):
                for name in sorted(wanted.keys() | have.keys(), key=str):
                    if have.get(name) != wanted.get(name):
                        problems.append(f"{key}.{part}.{name}: Spotler has {have.get(name)!r}, "
                                        f"the rules say {wanted.get(name)!r}")
            elif have != wanted:
                problems.append(f"{key}.{part}: Spotler has {have!r}, the rules say {wanted!r}")
    return problems


class World:
    def __init__(self, sandbox: Sandbox, root: Path):
        self.sandbox, self.root = sandbox, root
        self.instance = dg.DagsterInstance.ephemeral()
        self.runs = 0
        self.state_path = root / "state-0.sqlite"
        self.baseline: tuple[dict, Path, SpotlerModel] | None = None
        self.links: dict[int, tuple[str, str]] = {}  # contact -> its person and organisation

    # -- HTTP --

    def afas(self, method: str, path: str, **kwargs):
        response = httpx.request(method, self.sandbox.afas_admin_url + path, timeout=60, **kwargs)
        response.raise_for_status()
        return response.json()

    def spotler(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.sandbox.spotler_admin_url + path, timeout=60, **kwargs)

    def afas_snapshot(self) -> AfasSnapshot:
        return AfasSnapshot(
            contacts={r["ContactId"]: r for r in self.afas("GET", "/records/contacts")},
            persons={r["PersonId"]: r for r in self.afas("GET", "/records/persons")},
            organisations={r["OrganisationId"]: r for r in self.afas("GET", "/records/organisations")},
        )

    def afas_contact(self, contact_id: int) -> dict | None:
        records = self.afas("GET", "/records/contacts", params={"key": str(contact_id)})
        return records[0] if records else None

    def spotler_contacts(self) -> dict[str, dict]:
        response = self.spotler("GET", "/contacts")
        response.raise_for_status()
        return {str(c["externalId"]): seen_in_spotler(c) for c in response.json()}

    def spotler_writes(self) -> int:
        response = self.spotler("GET", "/stats")
        response.raise_for_status()
        return sum(n for route, n in response.json()["requests"].items() if route.split(" ")[0] in ("POST", "PUT"))

    # -- the chain --

    def resources(self) -> dict:
        sb = self.sandbox
        return {
            "afas": AfasClient(base_url=sb.afas_base_url, token=sb.afas_token, backoff_initial_s=0.01,
                               backoff_max_s=0.05),
            "spotler": SpotlerClient(base_url=sb.spotler_base_url, consumer_key=sb.spotler_consumer_key,
                                     consumer_secret=sb.spotler_consumer_secret, backoff_initial_s=0.01,
                                     backoff_max_s=0.05),
            "sync_state": SyncStateResource(path=str(self.state_path)),
            "io_manager": ParquetIOManager(base_dir=str(self.root / "storage")),
        }

    def sync(self) -> tuple[int, dict]:
        """Materialise the full chain once; returns how many writes Spotler received and the metadata
        of spotler_sync."""
        self.spotler("POST", "/stats/reset").raise_for_status()
        result = dg.materialize(SYNC_ASSETS, partition_key=FULL_PARTITION, resources=self.resources(),
                                instance=self.instance, run_config=QUIET)
        failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in result.get_asset_check_evaluations()
                  if not c.passed]
        assert not failed, f"asset checks failed: {failed}"
        (event,) = [e for e in result.get_asset_materialization_events()
                    if e.materialization.asset_key.to_user_string() == "spotler_sync"]
        return self.spotler_writes(), {k: v.value for k, v in event.materialization.metadata.items()}

    # -- each example starts from the same synced world --

    def start(self) -> SpotlerModel:
        self.afas("POST", "/dataset/generate", json=DATASET)
        if self.baseline is None:
            self.spotler("POST", "/reset").raise_for_status()
            self.prepare_spotler()
            model, afas = SpotlerModel(), self.afas_snapshot()
            self.links = {c: (afas.contacts[c]["PersonId"], afas.contacts[c]["OrganisationId"]) for c in CONTACTS}
            model.sync(afas)
            self.sync()
            problems = differences(model.visible(), self.spotler_contacts())
            assert not problems, "after the first sync:\n" + "\n".join(problems)
            exported = self.spotler("GET", "/dataset")
            exported.raise_for_status()
            self.baseline = (exported.json(), self.root / "state-baseline.sqlite", model)
            _copy_sqlite(self.state_path, self.baseline[1])
        spotler_dataset, state_file, model = self.baseline
        self.spotler("POST", "/dataset", json=spotler_dataset).raise_for_status()
        self.runs += 1
        self.state_path = self.root / f"state-{self.runs}.sqlite"
        _copy_sqlite(state_file, self.state_path)
        return _clone(model)

    def prepare_spotler(self) -> None:
        """Set up the empty Spotler account before the baseline sync (a subclass may move its clock)."""

    # -- the steps --

    def play(self, step, model: SpotlerModel) -> bool:
        """Carry out one step that is not a sync; returns whether it changed anything in AFAS."""
        if isinstance(step, AfasDelete | AfasEdit):
            contact = self.afas_contact(step.contact)
            if contact is None and (isinstance(step, AfasDelete) or step.table == "contacts"):
                return False  # deleted by an earlier step
            if isinstance(step, AfasDelete):
                self.afas("POST", "/delete", json={"table": "contacts", "key": str(step.contact)})
                return True
            value = step.value
            if value == VARIANT:
                current = (contact["MailWork"] or "").strip() or "anna@voorbeeld.example"
                value = f"  {current.upper()} "
            person, organisation = self.links[step.contact]
            key = {"contacts": str(step.contact), "persons": person, "organisations": organisation}[step.table]
            self.afas("POST", "/edit", json={"table": step.table, "key": key, "fields": {step.field: value}})
            return True
        external_id = str(step.contact)
        exists = external_id in model.recipients
        if isinstance(step, Unsubscribe):
            response = self.spotler("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": step.bit})
        else:
            response = self.spotler("POST", f"/recipients/{external_id}/bounce",
                                    json={"type": "hard" if step.hard else "soft"})
        # A recipient can only act on a contact the sync put in Spotler.
        assert response.status_code == (200 if exists else 404), (step, response.status_code, response.text)
        if not exists:
            return False
        if isinstance(step, Unsubscribe):
            model.unsubscribe(external_id, step.bit)
            return False
        if step.hard:
            model.hard_bounce(external_id)
        if not step.written_back or self.afas_contact(step.contact) is None:
            return False
        fields = {"BounceDate": dt.date.today().isoformat(), "BounceType": "hard" if step.hard else "soft"}
        if step.hard:
            fields["HardBounce"] = True
        self.afas("POST", "/edit", json={"table": "contacts", "key": external_id, "fields": fields})
        return True


def _copy_sqlite(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _clone(model: SpotlerModel) -> SpotlerModel:
    return SpotlerModel({
        key: Recipient(r.email, dict(r.properties), dict(r.permissions), r.active, dict(r.afas_permissions),
                       r.afas_blocked, set(r.opted_out), r.bounced)
        for key, r in model.recipients.items()
    })


# --- the property -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(sandbox: Sandbox):
    _reset(sandbox)
    with tempfile.TemporaryDirectory(prefix="sync-model-") as root:
        yield World(sandbox, Path(root))
    _reset(sandbox)


def _reset(sandbox: Sandbox) -> None:
    """Faults off, stats zeroed, start-up data back: what the other tests of the session expect."""
    httpx.post(sandbox.afas_admin_url + "/reset", timeout=60).raise_for_status()
    httpx.post(sandbox.spotler_admin_url + "/reset", timeout=60).raise_for_status()


# Paths random sequences rarely take, and sequences that once broke a rule (each the shortest way there).
# C1: AFAS switching a permission off and on again after an opt-out is a new consent.
@example(steps=[Unsubscribe(10006, 1), AfasEdit("contacts", 10006, "PermissionNewsletter", False), Sync(),
                AfasEdit("contacts", 10006, "PermissionNewsletter", True), Sync()])
# C1: an opt-out made before the contact was blocked survives the unblocking.
@example(steps=[Unsubscribe(10006, 1), AfasEdit("contacts", 10006, "Blocked", True), Sync(),
                AfasEdit("contacts", 10006, "Blocked", False), Sync()])
# R11: a contact Spotler hard-bounced is not enriched, even before AFAS has heard of the bounce ...
@example(steps=[Bounce(10006, hard=True, written_back=False), AfasEdit("contacts", 10006, "Function", "Directeur"),
                Sync()])
# ... and a new address from AFAS makes it mailable again.
@example(steps=[Bounce(10006, hard=True, written_back=False),
                AfasEdit("contacts", 10006, "MailWork", "anna@voorbeeld.example"), Sync()])
# R11: the second hard bounce (of the address that reactivated the contact) counts as much as the first.
@example(steps=[Bounce(10006, hard=True, written_back=True),
                AfasEdit("contacts", 10006, "MailWork", "anna@voorbeeld.example"), Sync(),
                Bounce(10006, hard=True, written_back=True), AfasEdit("contacts", 10006, "Function", "Directeur"),
                Sync()])
# R3, R4, R10: a contact AFAS no longer offers (its address invalid or gone, no longer a person at an
# organisation, deleted) stays in Spotler as it was.
@example(steps=[AfasEdit("contacts", 10011, "MailWork", "geen-adres"), AfasEdit("contacts", 10003, "MailWork", ""),
                AfasEdit("contacts", 10006, "ContactKind", "PER"), AfasDelete(10009), Sync()])
# C2: the same address in capitals with spaces around is no change; C3: a sync after a sync writes nothing.
@example(steps=[AfasEdit("contacts", 10003, "MailWork", VARIANT), Sync(), Sync()])
# R6: person and organisation edits (characters that need escaping) reach every contact of theirs; a soft bounce
# changes nothing.
@example(steps=[AfasEdit("persons", 10011, "LastName", "Ødegaard"), Bounce(10011, hard=False, written_back=True),
                AfasEdit("organisations", 10006, "Name", "Muller, Smit; Partners"), Sync()])
# Shrinking is off and the count small (properties/examples.py): every try re-runs the chain.
@model_settings("SYNC_MODEL", examples=5)
# Dozens of full Dagster runs: on a loaded 2-core machine this can take longer than the default 300 s.
@pytest.mark.timeout(900)
@given(steps=step_sequences())
def test_r3_r4_r6_r7_r10_r11_c1_c2_c3_spotler_follows_the_rules_over_random_steps(world, steps):
    if not isinstance(steps[-1], Sync):
        steps = [*steps, Sync()]
    model = world.start()
    afas_changed = False  # since the last sync (the baseline sync included)
    for n, step in enumerate(steps):
        if not isinstance(step, Sync):
            afas_changed |= world.play(step, model)
            continue
        refused = model.sync(world.afas_snapshot())
        writes, metadata = world.sync()
        assert metadata["rejected"] == refused, f"C4: after step {n} of {steps}: {metadata}"
        problems = differences(model.visible(), world.spotler_contacts())
        assert not problems, f"after step {n} of {steps}:\n" + "\n".join(problems)
        for note in model.seen:
            event(note)
        if not afas_changed:
            event("C3 sync after a sync")
            assert writes == 0, f"C3: step {n} of {steps} wrote {writes} times with no AFAS change since the last sync"
        afas_changed = False
