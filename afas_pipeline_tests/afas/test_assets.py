"""The AFAS source assets, materialised through Dagster against the sandbox over real HTTP."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest

from afas_pipeline.afas.assets import build_afas_assets, build_source_assets
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.sources import AfasSource
from afas_pipeline.lib.parquet_io import ParquetIOManager

ASSETS = build_afas_assets()
FULL = [a for a in ASSETS if not a.key.to_user_string().endswith("_changes")]
CHANGES = [a for a in ASSETS if a.key.to_user_string().endswith("_changes")]
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
    result = dg.materialize(FULL, partition_key="2026-11-22-06:00", resources=resources)
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
    assets = build_source_assets("persons", source)
    result = dg.materialize(assets[:1], partition_key="2026-11-22-06:00", resources=resources, raise_on_error=False)
    assert not result.success
    message = _failure_message(result)
    assert "Sync_Persons" in message and "Shoesize" in message and "R9" in message


def test_an_unknown_connector_fails_naming_it(sandbox, resources):
    source = AfasSource(connector="Sync_Nope", key="Id", modified=("ModifiedDate",))
    assets = build_source_assets("persons", source)
    result = dg.materialize(assets[:1], partition_key="2026-11-22-06:00", resources=resources, raise_on_error=False)
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
    assert dg.materialize(FULL, partition_key="2026-11-22-06:00", resources=resources, instance=instance).success
    (run,) = instance.get_runs()
    persons = pd.DataFrame(_admin(sandbox, "GET", "/records/persons"))
    surnames = {str(v) for v in persons.get("LastName", persons.get("LaNm", pd.Series(dtype=str))).dropna() if len(str(v)) > 5}
    assert surnames, "the sandbox should have surnames to look for"
    for record in instance.all_logs(run.run_id):
        text = record.user_message + " " + str(record.dagster_event.event_specific_data if record.dagster_event else "")
        assert not EMAIL.search(text), text[:200]
        assert not any(name in text for name in surnames), text[:200]
        assert sandbox.afas_token not in text
