"""The admin API: state, records, edits as a user would make them, export/load, generation."""

from __future__ import annotations

import pytest

from afas_pipeline_tests.sandbox.conftest import all_rows


def test_state_counts_the_start_up_dataset(admin):
    state = admin.get("/state").json()
    assert state["seed"] == 7 and isinstance(state["version"], int)
    assert state["counts"]["contacts"] == 3000 and state["counts"]["subjects"] == 0
    assert state["counts"]["organisations"] == 600


def test_records_by_key_and_all(admin):
    one = admin.get("/records/contacts", params={"key": "10001"}).json()
    assert len(one) == 1 and one[0]["ContactId"] == 10001
    assert one[0]["ModifiedDate"].endswith("Z")
    assert len(admin.get("/records/organisations").json()) == 600
    assert admin.get("/records/contacts", params={"key": "1"}).json() == []
    assert admin.get("/records/nope").status_code == 404


def test_edit_sets_fields_and_the_modified_instant(afas, admin):
    version = admin.get("/state").json()["version"]
    response = admin.post("/edit", json={"table": "persons", "key": "100601", "fields": {"MailPrivate": "NEW@x.example"},
                                         "at": "2026-03-29T00:59:59.999Z"})
    assert response.status_code == 200, response.text
    assert response.json()["MailPrivate"] == "NEW@x.example"
    assert response.json()["ModifiedDate"] == "2026-03-29T00:59:59.999Z"
    assert admin.get("/state").json()["version"] > version
    person = afas.get("/connectors/Sync_Persons", params={"filterfieldids": "PersonId", "filtervalues": "100601",
                                                          "operatortypes": "1"}).json()["rows"][0]
    assert person["ModifiedDate"] == "2026-03-29T02:00:00Z", "01:59:59.999 CET displays rounded to 02:00"


@pytest.mark.parametrize("body,status", [
    ({"table": "contacts", "key": 10001, "fields": {"MailPrivate": "x"}}, 400),  # a person field
    ({"table": "contacts", "key": 10001, "fields": {"Blocked": "yes"}}, 400),
    ({"table": "contacts", "key": 10001, "fields": {"ContactId": 5}}, 400),
    ({"table": "contacts", "key": 10001, "fields": {"PersonId": "nobody"}}, 400),
    ({"table": "contacts", "key": 1, "fields": {"Blocked": True}}, 404),
    ({"table": "spaceships", "key": 1, "fields": {}}, 404),
    ({"table": "contacts", "key": 10001, "fields": {"Blocked": True}, "at": "gisteren"}, 400),
])
def test_invalid_edits_are_refused_and_change_nothing(admin, body, status):
    version = admin.get("/state").json()["version"]
    response = admin.post("/edit", json=body)
    assert response.status_code == status and response.json()["error"]
    assert admin.get("/state").json()["version"] == version


def test_insert_and_delete_a_contact(afas, admin):
    created = admin.post("/insert", json={"table": "contacts", "fields": {
        "PersonId": "100601", "OrganisationId": "100003", "MailWork": "nieuw@x.example", "PermissionNewsletter": True},
        "at": "2026-10-25T01:30:00Z"}).json()
    assert created["ContactKind"] == "PRS" and created["ContactId"] > 13000
    assert created["ModifiedDate"] == created["CreateDate"] == "2026-10-25T01:30:00.000Z"
    rows = all_rows(afas, "Sync_Contacts", filterfieldids="ContactId", filtervalues=str(created["ContactId"]),
                    operatortypes="1")
    assert rows[0]["ContactModified"] == "2026-10-25T02:30:00Z" and rows[0]["PermissionNewsletter"] is True
    assert admin.post("/delete", json={"table": "contacts", "key": created["ContactId"]}).json() == {
        "deleted": created["ContactId"]}
    assert all_rows(afas, "Sync_Contacts", filterfieldids="ContactId", filtervalues=str(created["ContactId"]),
                    operatortypes="1") == []


def test_insert_organisation_gets_a_fresh_code_and_person_deletion_needs_no_contacts(admin):
    org = admin.post("/insert", json={"table": "organisations", "fields": {"Name": "Nieuw B.V."}}).json()
    codes = {r["OrganisationId"] for r in admin.get("/records/organisations").json()} | {
        r["PersonId"] for r in admin.get("/records/persons").json()}
    assert org["OrganisationId"] in codes
    assert admin.post("/delete", json={"table": "persons", "key": "100600"}).status_code == 409
    person = admin.post("/insert", json={"table": "persons", "fields": {"LastName": "Los"}}).json()
    assert admin.post("/delete", json={"table": "persons", "key": person["PersonId"]}).status_code == 200


def test_dataset_export_load_round_trip(afas, admin):
    admin.post("/edit", json={"table": "contacts", "key": 10001, "fields": {"Function": "Voor export"},
                              "at": "2026-10-25T00:30:00.123Z"}).raise_for_status()
    exported = admin.get("/dataset").json()
    before = all_rows(afas, "Sync_Contacts")
    admin.post("/dataset/generate", json={"contacts": 150, "seed": 1}).raise_for_status()
    assert admin.get("/state").json()["counts"]["contacts"] == 150
    state = admin.post("/dataset", json=exported).json()
    assert state["counts"]["contacts"] == 3000
    assert all_rows(afas, "Sync_Contacts") == before
    assert admin.get("/dataset").json() == exported
    assert admin.post("/dataset", json={"nope": 1}).status_code == 400


def test_generate_is_deterministic_over_http(afas, admin):
    admin.post("/dataset/generate", json={"contacts": 200, "seed": 5}).raise_for_status()
    first = all_rows(afas, "Sync_Contacts")
    admin.post("/dataset/generate", json={"contacts": 200, "seed": 6}).raise_for_status()
    admin.post("/dataset/generate", json={"contacts": 200, "seed": 5}).raise_for_status()
    assert all_rows(afas, "Sync_Contacts") == first and len(first) == 200


def test_reset_restores_the_start_up_dataset(afas, admin):
    before = all_rows(afas, "Sync_Organisations")
    admin.post("/edit", json={"table": "organisations", "key": "100000", "fields": {"Name": "Anders"}})
    admin.put("/faults", json={"latency_ms": 5})
    admin.post("/reset").raise_for_status()
    assert all_rows(afas, "Sync_Organisations") == before
    assert admin.get("/faults").json()["latency_ms"] == 0
    assert admin.get("/stats").json()["total"] == 1
