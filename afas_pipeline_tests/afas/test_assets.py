"""The AFAS source assets, materialised through Dagster against the sandbox over real HTTP."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest

from afas_pipeline.afas.assets import SNAPSHOTS_STEP, build_afas_assets, build_snapshot_assets
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.sources import AfasSource
from afas_pipeline.lib import failpoints
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_pipeline_tests.waiting import wait_until

ASSETS = build_afas_assets()
(FULL,) = [a for a in ASSETS if a.node_def.name == SNAPSHOTS_STEP]  # every full read, one step
CHANGES = [a for a in ASSETS if a is not FULL]
# Windows after the synthetic CRM's last modified date (2026-11-01), so only our own edits are in them.
QUIET_DAY = "2026-11-16"


@pytest.fixture
def storage(tmp_path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def resources(sandbox, afas_sandbox_clean, storage):
    return {
        "afas": AfasClient(base_url=sandbox.afas_base_url, token=sandbox.afas_token),
        "io_manager": ParquetIOManager(base_dir=str(storage)),
    }


def _admin(sandbox, method: str, path: str, **kwargs):
    response = httpx.request(method, f"{sandbox.afas_admin_url}{path}", timeout=30, **kwargs)
    response.raise_for_status()
    return response.json()


def _edit(sandbox, table: str, key, at: str, **fields):
    return _admin(sandbox, "POST", "/edit", json={"table": table, "key": str(key), "fields": fields, "at": at})


def _stored(storage: Path, asset: str, partition: str) -> pd.DataFrame:
    return pd.read_parquet(storage / asset / f"{partition}.parquet")


def _some_contacts(sandbox, n: int, kind: str = "PRS") -> list[dict]:
    records = _admin(sandbox, "GET", "/records/contacts")
    chosen = [r for r in records if r.get("ContactKind", r.get("ViKc")) == kind][:n]
    assert len(chosen) == n
    return chosen


def _contact_id(record: dict):
    return record.get("ContactId", record.get("CdId"))


def test_full_read_materialises_every_entity_and_passes_its_checks(sandbox, resources, storage):
    result = dg.materialize([FULL], partition_key="2026-11-22-06:00", resources=resources)
    assert result.success
    counts = _admin(sandbox, "GET", "/state")["counts"]
    contacts = _stored(storage, "afas_contacts", "2026-11-22-06:00")
    persons = _stored(storage, "afas_persons", "2026-11-22-06:00")
    organisations = _stored(storage, "afas_organisations", "2026-11-22-06:00")
    assert len(contacts) == counts["contacts"]
    assert len(persons) == counts["persons"]
    assert len(organisations) == counts["organisations"]
    assert contacts["ContactId"].is_unique
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 7
    assert all(e.passed for e in evaluations if e.check_name != "contact_kind_known")
    row_counts = {
        m.asset_key.to_user_string(): m.metadata["dagster/row_count"].value
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }
    assert row_counts["afas_contacts"] == counts["contacts"]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["afas/pages"].value >= 1
    assert metadata["afas/requests"].value >= metadata["afas/pages"].value


def test_r1_delta_holds_exactly_the_contacts_edited_in_its_window(sandbox, resources, storage):
    edited = _some_contacts(sandbox, 3)
    for minute, record in zip((1, 7, 14), edited):
        _edit(sandbox, "contacts", _contact_id(record), f"{QUIET_DAY}T10:{minute:02d}:00.400Z", Function="Inkoper")
    # Just outside the window on both sides: not this partition's business.
    outside = _some_contacts(sandbox, 5)[3:]
    _edit(sandbox, "contacts", _contact_id(outside[0]), f"{QUIET_DAY}T09:59:58Z", Function="Inkoper")
    _edit(sandbox, "contacts", _contact_id(outside[1]), f"{QUIET_DAY}T10:15:00Z", Function="Inkoper")

    partition = f"{QUIET_DAY}-10:00"
    result = dg.materialize(
        [a for a in CHANGES if a.key.to_user_string() == "afas_contacts_changes"],
        partition_key=partition,
        resources=resources,
    )
    assert result.success
    stored = _stored(storage, "afas_contacts_changes", partition)
    assert sorted(stored["ContactId"]) == sorted(int(_contact_id(r)) for r in edited)


def test_r2_delta_sees_a_person_and_an_organisation_edit_through_their_own_dates(sandbox, resources, storage):
    (contact,) = _some_contacts(sandbox, 1)
    contacts = pd.DataFrame(_admin(sandbox, "GET", "/records/contacts"))
    person_col = "PersonId" if "PersonId" in contacts else "BcCoPer"
    org_col = "OrganisationId" if "OrganisationId" in contacts else "BcCoOga"
    person, organisation = contact[person_col], contact[org_col]
    _edit(sandbox, "persons", person, f"{QUIET_DAY}T11:03:00Z", LastName="Jansen")
    _edit(sandbox, "organisations", organisation, f"{QUIET_DAY}T11:04:00Z", Name="Jansen BV")

    partition = f"{QUIET_DAY}-11:00"
    assert dg.materialize(CHANGES, partition_key=partition, resources=resources).success
    changed = _stored(storage, "afas_contacts_changes", partition)
    expected = contacts.loc[(contacts[person_col] == person) | (contacts[org_col] == organisation)]
    assert set(changed["ContactId"]) == {int(c) for c in expected[_id_col(contacts)]}
    assert list(_stored(storage, "afas_persons_changes", partition)["PersonId"]) == [person]
    assert list(_stored(storage, "afas_organisations_changes", partition)["OrganisationId"]) == [organisation]


def _id_col(contacts: pd.DataFrame) -> str:
    return "ContactId" if "ContactId" in contacts else "CdId"


def test_backfill_of_8_partitions_runs_once_and_splits_rows_per_window(sandbox, resources, storage):
    contacts = _some_contacts(sandbox, 8)
    keys = [f"{QUIET_DAY}-{h:02d}:{m:02d}" for h in (20, 21) for m in (0, 15, 30, 45)]
    for key, record in zip(keys, contacts):
        at = datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(second=30).strftime("%Y-%m-%dT%H:%M:%SZ")
        _edit(sandbox, "contacts", _contact_id(record), at, Function="Inkoper")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        CHANGES,
        resources=resources,
        instance=instance,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    assert result.success
    assert len(instance.get_runs()) == 1
    for key, record in zip(keys, contacts):
        assert list(_stored(storage, "afas_contacts_changes", key)["ContactId"]) == [int(_contact_id(record))]
        assert _stored(storage, "afas_persons_changes", key).empty
    materialized = instance.get_materialized_partitions(dg.AssetKey("afas_contacts_changes"))
    assert set(keys) <= materialized


def test_r9_a_connector_without_a_required_field_fails_naming_it(sandbox, resources):
    source = AfasSource(connector="Sync_Persons", key="PersonId", modified=("ModifiedDate",), required=("Shoesize",))
    result = dg.materialize([build_snapshot_assets({"persons": source})], partition_key="2026-11-22-06:00",
                            resources=resources, raise_on_error=False)
    assert not result.success
    message = _failure_message(result)
    assert "Sync_Persons" in message and "Shoesize" in message and "R9" in message


def test_an_unknown_connector_fails_naming_it(sandbox, resources):
    source = AfasSource(connector="Sync_Nope", key="Id", modified=("ModifiedDate",))
    result = dg.materialize([build_snapshot_assets({"persons": source})], partition_key="2026-11-22-06:00",
                            resources=resources, raise_on_error=False)
    assert not result.success
    assert "Sync_Nope" in _failure_message(result)


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures
    error = failures[0].step_failure_data.error
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return " ".join(parts)


EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def test_no_personal_data_in_logs_or_metadata(sandbox, resources):
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([FULL], partition_key="2026-11-22-06:00", resources=resources, instance=instance).success
    (run,) = instance.get_runs()
    persons = pd.DataFrame(_admin(sandbox, "GET", "/records/persons"))
    surnames = {str(v) for v in persons.get("LastName", persons.get("LaNm", pd.Series(dtype=str))).dropna() if len(str(v)) > 5}
    assert surnames, "the sandbox should have surnames to look for"
    for record in instance.all_logs(run.run_id):
        text = record.user_message + " " + str(record.dagster_event.event_specific_data if record.dagster_event else "")
        assert not EMAIL.search(text), text[:200]
        assert not any(name in text for name in surnames), text[:200]
        assert sandbox.afas_token not in text


# --- the full reads: one step, its connectors read side by side ----------------------------------------------------

FULL_PARTITION = "2026-11-22-06:00"
CONNECTORS = {"afas_contacts": "Sync_Contacts", "afas_persons": "Sync_Persons", "afas_organisations": "Sync_Organisations"}


def _pages_requested(sandbox) -> Counter:
    """GetConnector page requests per connector so far (metainfo look-ups not counted)."""
    requests = _admin(sandbox, "GET", "/stats")["requests"]
    return Counter({key.removeprefix("GET connectors/"): n for key, n in requests.items()
                    if key.startswith("GET connectors/")})


def _materialised(instance: dg.DagsterInstance) -> set[str]:
    return {name for name in CONNECTORS if instance.get_latest_materialization_event(dg.AssetKey(name)) is not None}


def test_the_full_reads_ask_afas_side_by_side(sandbox, resources):
    # The first read to finish a page stands still there; the other connectors are asked meanwhile. Read one after
    # another, nothing else would be asked until it went on.
    failpoints.arm("afas.page_read", "pause")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(
        result=dg.materialize([FULL], partition_key=FULL_PARTITION, resources=resources, raise_on_error=False)))
    runner.start()
    try:
        assert failpoints.wait_until_paused("afas.page_read")
        wait_until(lambda: set(_pages_requested(sandbox)) == set(CONNECTORS.values()), timeout_s=30,
                   what="every connector asked while one read stands still")
    finally:
        failpoints.release("afas.page_read")
        runner.join(120)
    assert outcome["result"].success


def test_one_snapshot_materialised_alone_reads_only_its_connector(sandbox, resources, storage):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([FULL], selection=["afas_persons"], partition_key=FULL_PARTITION, resources=resources,
                            instance=instance)
    assert result.success
    assert _materialised(instance) == {"afas_persons"}
    assert len(_stored(storage, "afas_persons", FULL_PARTITION)) == _admin(sandbox, "GET", "/state")["counts"]["persons"]
    requests = _admin(sandbox, "GET", "/stats")["requests"]
    assert not [key for key in requests if "Sync_Contacts" in key or "Sync_Organisations" in key], requests
    assert sorted((e.asset_key.to_user_string(), e.check_name, e.passed) for e in result.get_asset_check_evaluations()) \
        == [("afas_persons", "required_ids_present", True), ("afas_persons", "unique_keys", True)]


def test_a_connector_that_fails_fails_the_step_naming_it_and_stores_no_snapshot(sandbox, resources, storage):
    _admin(sandbox, "PUT", "/faults", json={"refuse": [{"request": "GET connectors/Sync_Persons"}]})
    afas = AfasClient(base_url=sandbox.afas_base_url, token=sandbox.afas_token, max_attempts=2,
                      backoff_initial_s=0.001, backoff_max_s=0.01)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([FULL], partition_key=FULL_PARTITION, resources={**resources, "afas": afas},
                            instance=instance, raise_on_error=False)
    assert not result.success
    message = _failure_message(result)
    assert "GetConnector 'Sync_Persons'" in message and "Sync_Contacts" not in message
    assert _materialised(instance) == set()
    assert not storage.exists() or not list(storage.rglob("*.parquet"))
    assert not result.get_asset_check_evaluations()


def test_when_two_connectors_fail_one_is_the_steps_error_and_the_other_is_logged(sandbox, resources):
    _admin(sandbox, "PUT", "/faults", json={"refuse": [{"request": "GET connectors/Sync_Persons"},
                                                       {"request": "GET connectors/Sync_Organisations"}]})
    afas = AfasClient(base_url=sandbox.afas_base_url, token=sandbox.afas_token, max_attempts=1)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([FULL], partition_key=FULL_PARTITION, resources={**resources, "afas": afas},
                            instance=instance, raise_on_error=False)
    assert not result.success
    (raised,) = [c for c in ("Sync_Persons", "Sync_Organisations") if c in _failure_message(result)]
    (other,) = {"Sync_Persons", "Sync_Organisations"} - {raised}
    logged = [r.user_message for r in instance.all_logs(result.run_id) if "another AFAS read failed too" in r.user_message]
    assert len(logged) == 1 and other in logged[0] and raised not in logged[0]


def test_a_failed_read_stops_the_others_at_their_next_page(sandbox, resources):
    # Pages of 200: every read spans several. The first page read stands still until the persons read has failed
    # (the step has seen it); then that read stops instead of reading on.
    _admin(sandbox, "PUT", "/faults", json={"refuse": [{"request": "GET connectors/Sync_Persons"}]})
    afas = AfasClient(base_url=sandbox.afas_base_url, token=sandbox.afas_token, page_size=200, max_attempts=2,
                      backoff_initial_s=0.001, backoff_max_s=0.01)
    failpoints.arm("afas.page_read", "pause")
    failpoints.arm("afas.read_failed", "pause")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=dg.materialize(
        [FULL], partition_key=FULL_PARTITION, resources={**resources, "afas": afas}, raise_on_error=False)))
    runner.start()
    try:
        assert failpoints.wait_until_paused("afas.page_read")
        assert failpoints.wait_until_paused("afas.read_failed")
    finally:
        failpoints.release("afas.page_read")
        failpoints.release("afas.read_failed")
        runner.join(120)
    assert not outcome["result"].success and "Sync_Persons" in _failure_message(outcome["result"])
    pages = _pages_requested(sandbox)
    assert min(pages["Sync_Contacts"], pages["Sync_Organisations"]) == 1, pages  # the one that stood still


def test_a_check_run_alone_reads_its_connector_and_stores_nothing(sandbox, resources, storage):
    instance = dg.DagsterInstance.ephemeral()
    check = dg.AssetCheckKey(dg.AssetKey("afas_organisations"), "unique_keys")
    result = dg.materialize([FULL], selection=dg.AssetSelection.checks(check), resources=resources, instance=instance)
    assert result.success
    assert [(e.asset_key.to_user_string(), e.check_name, e.passed) for e in result.get_asset_check_evaluations()] == \
        [("afas_organisations", "unique_keys", True)]
    assert _materialised(instance) == set()
    assert set(_pages_requested(sandbox)) == {"Sync_Organisations"}
