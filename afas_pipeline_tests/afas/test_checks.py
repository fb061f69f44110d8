"""The source-data rules as plain functions: no Dagster, no HTTP."""

import pandas as pd

from afas_pipeline.afas import checks
from afas_pipeline.afas.sources import default_sources
from afas_pipeline.lib.privacy import hash_key

CONTACTS = default_sources().contacts


def _contacts(**overrides):
    rows = [
        {"ContactId": 1, "PersonId": "P1", "OrganisationId": "O1", "ContactKind": "PRS"},
        {"ContactId": 2, "PersonId": "P2", "OrganisationId": None, "ContactKind": "PER"},
        {"ContactId": 3, "PersonId": None, "OrganisationId": "O1", "ContactKind": "AFD"},
    ]
    for index, changes in overrides.items():
        rows[int(index[1:])].update(changes)
    return pd.DataFrame(rows)


def test_r9_complete_ids_pass_a_loose_person_needs_no_organisation_a_department_no_person():
    outcome = checks.required_ids_present(_contacts(), "contacts", CONTACTS)
    assert outcome.passed
    assert outcome.metadata["rows_missing_ids"] == 0


def test_r9_contact_at_organisation_without_organisation_id_fails_with_hashed_key():
    outcome = checks.required_ids_present(_contacts(r0={"OrganisationId": None}), "contacts", CONTACTS)
    assert not outcome.passed
    assert outcome.metadata["rows_missing_ids"] == 1
    assert outcome.metadata["offender_keys"] == [hash_key(1)]


def test_r9_missing_person_id_fails():
    outcome = checks.required_ids_present(_contacts(r1={"PersonId": None}), "contacts", CONTACTS)
    assert not outcome.passed


def test_unknown_contact_kind_is_counted_by_kind():
    outcome = checks.contact_kind_known(_contacts(r2={"ContactKind": "XYZ"}), CONTACTS)
    assert not outcome.passed
    assert outcome.metadata["unknown_kinds"] == {"XYZ": 1}


def test_duplicate_keys_fail_and_report_each_key_once():
    df = pd.concat([_contacts(), _contacts().iloc[[0, 0]]], ignore_index=True)
    outcome = checks.unique_keys(df, CONTACTS)
    assert not outcome.passed
    assert outcome.metadata["duplicate_keys"] == 1
    assert outcome.metadata["offender_keys"] == [hash_key(1)]
    assert checks.unique_keys(_contacts(), CONTACTS).passed
