"""Drift: the mapping compared with what AFAS metainfo and Spotler's property list say (pure), plus one
check of the shipped mapping against the AFAS sandbox's real metainfo."""

from __future__ import annotations

import base64
import copy

import httpx
import pytest

from afas_pipeline.afas.client import AfasClient
from afas_pipeline.mapping.drift import afas_drift, destination_drift, live_subject_type_drift, subject_type_drift
from afas_pipeline.mapping.load import default_mapping
from afas_sandbox.afas.app import LIMITED_TOKEN

S, I, B, D = "string", "int", "boolean", "date"
GET_TYPES = {
    "Sync_Contacts": {"ContactId": I, "PersonId": S, "OrganisationId": S, "ContactKind": S, "MailWork": S,
                      "MailPrivate": S, "Blocked": B, "PermissionNewsletter": B, "PermissionEvents": B,
                      "BounceDate": D, "BounceType": S, "HardBounce": B, "IsDebtor": B, "Function": S},
    "Sync_Persons": {"PersonId": S, "Initials": S, "FirstName": S, "Prefix": S, "LastName": S, "Gender": S},
    "Sync_Organisations": {"OrganisationId": S, "Name": S, "City": S, "Country": S, "Street": S, "HouseNumber": I},
}
UPDATE_TYPES = {
    "KnContact": {"BcCoOga": S, "BcCoPer": S, "FuDs": S, "Bl": B, "UAC187778054F7C9022679701BEC7FD67": B,
                  "UEC610801D5DDDD07589D4D58C7D95E70": B, "U75F1C487D4A16C8A1AF773D9EA276418": D,
                  "UCC1D3710DBFE152311FF890317793493": S, "U5CDDF537F9AA47670ABAC39E715EF1A8": B},
    "KnPerson": {"BcCo": S, "FiNm": S},
    "KnOrganisation": {"BcCo": S, "Nm": S},
}
PROPERTIES = [
    {"name": "email", "type": "email"}, {"name": "firstName", "type": "string"}, {"name": "infix", "type": "string"},
    {"name": "lastName", "type": "string"}, {"name": "initials", "type": "string"}, {"name": "gender", "type": "gender"},
    {"name": "organisation", "type": "string"}, {"name": "city", "type": "string"}, {"name": "country", "type": "string"},
    {"name": "function", "type": "string"}, {"name": "afasPersonId", "type": "string"},
    {"name": "afasOrganisationId", "type": "string"}, {"name": "debtor", "type": "string"},
    {"name": "permissions", "type": "set", "entries": [{"bit": 1, "description": "Nieuwsbrief", "rank": 1},
                                                       {"bit": 2, "description": "Evenementen", "rank": 2}]},
]


# Rows of GET /connectors/Profit_SubjectTypes (only the keys the check reads; AFAS sends more).
SUBJECT_TYPES = [{"SubjectTypeId": 1, "Description": "Notitie", "Comment": True},
                 {"SubjectTypeId": 2, "Description": "Telefoonnotitie", "Comment": True},
                 {"SubjectTypeId": 7, "Description": "Mailing", "Comment": True}]


def get_meta(types=GET_TYPES) -> dict:
    # The shape of GET /metainfo/get/{id}.
    return {c: {"name": c, "fields": [{"id": f, "fieldId": f, "dataType": t, "label": f} for f, t in fields.items()]}
            for c, fields in types.items()}


def update_meta(types=UPDATE_TYPES) -> dict:
    # The shape of GET /metainfo/update/{id}: fields keyed by fieldId, nested objects beside them.
    return {c: {"id": c, "fields": [{"fieldId": f, "dataType": t} for f, t in fields.items()], "objects": []}
            for c, fields in types.items()}


@pytest.fixture
def mapping():
    return default_mapping("spotler")


def test_no_drift_when_everything_matches(mapping):
    assert afas_drift(mapping, get_meta(), update_meta()) == []
    assert destination_drift(mapping, PROPERTIES) == []


def test_bare_field_lists_are_accepted_too(mapping):
    gets = {c: meta["fields"] for c, meta in get_meta().items()}
    updates = {c: meta["fields"] for c, meta in update_meta().items()}
    assert afas_drift(mapping, gets, updates) == []
    del gets["Sync_Contacts"][0]  # ContactId
    assert any("external_id (contact.ContactId): R9:" in p for p in afas_drift(mapping, gets, updates))


def test_a_renamed_getconnector_field_is_named(mapping):
    types = copy.deepcopy(GET_TYPES)
    types["Sync_Persons"]["Voornaam"] = types["Sync_Persons"].pop("FirstName")
    [problem] = afas_drift(mapping, get_meta(types), update_meta())
    assert problem.startswith(f"{mapping.file}: fields[0].afas (person.FirstName): M1: ")
    assert "Sync_Persons has no field 'FirstName'" in problem and "Voornaam" in problem


def test_r9_missing_organisation_id_in_the_contacts_connector(mapping):
    types = copy.deepcopy(GET_TYPES)
    del types["Sync_Contacts"]["OrganisationId"]
    problems = afas_drift(mapping, get_meta(types), update_meta())
    assert any(": R9: GetConnector Sync_Contacts has no field 'OrganisationId'" in p for p in problems), problems


def test_an_incompatible_data_type_is_named(mapping):
    types = copy.deepcopy(GET_TYPES)
    types["Sync_Contacts"]["PermissionEvents"] = S
    [problem] = afas_drift(mapping, get_meta(types), update_meta())
    assert "permissions[1].afas (contact.PermissionEvents): R6:" in problem
    assert "is string" in problem and "yes_no" in problem


def test_r13_a_deleted_free_field_write_back_target_is_named(mapping):
    types = copy.deepcopy(UPDATE_TYPES)
    del types["KnContact"]["U75F1C487D4A16C8A1AF773D9EA276418"]
    [problem] = afas_drift(mapping, get_meta(), update_meta(types))
    assert problem.startswith(f"{mapping.file}: bounce.date.write_back.field (contact.BounceDate -> KnContact.U75F")
    assert ": R13: UpdateConnector KnContact has no field" in problem


def test_r13_write_back_target_of_the_wrong_type(mapping):
    types = copy.deepcopy(UPDATE_TYPES)
    types["KnContact"]["FuDs"] = B
    [problem] = afas_drift(mapping, get_meta(), update_meta(types))
    assert "fields[8].write_back.field (contact.Function -> KnContact.FuDs): R13:" in problem
    assert "boolean" in problem and "text" in problem


def test_missing_metainfo_is_reported_not_ignored(mapping):
    gets = get_meta()
    del gets["Sync_Organisations"]
    updates = update_meta()
    del updates["KnContact"]
    problems = afas_drift(mapping, gets, updates)
    assert any("GetConnector Sync_Organisations (organisation fields): no metainfo" in p for p in problems)
    assert sum("no metainfo given for UpdateConnector KnContact" in p for p in problems) == len(mapping.write_backs())


def test_destination_missing_property_is_named(mapping):
    props = [p for p in PROPERTIES if p["name"] != "afasPersonId"]
    [problem] = destination_drift(mapping, props)
    assert problem.startswith(f"{mapping.file}: fields[9].property (contact.PersonId -> afasPersonId): M5: ")


def test_r6_destination_missing_permission_bit_is_named(mapping):
    props = copy.deepcopy(PROPERTIES)
    props[-1]["entries"] = props[-1]["entries"][:1]
    [problem] = destination_drift(mapping, props)
    assert "permissions[1] (contact.PermissionEvents -> permission 2): R6:" in problem
    assert "it has: 1" in problem


def test_r5_destination_email_property_must_be_an_email(mapping):
    props = copy.deepcopy(PROPERTIES)
    props[0]["type"] = "string"
    [problem] = destination_drift(mapping, props)
    assert "email.property (contact.MailWork -> email): R5:" in problem


def test_a_field_cannot_feed_a_permission_set(mapping):
    props = copy.deepcopy(PROPERTIES)
    props[9]["type"] = "set"  # "function"
    [problem] = destination_drift(mapping, props)
    assert "fields[8].property (contact.Function -> function): R6:" in problem


def test_shipped_mapping_has_no_drift_against_the_afas_sandbox(sandbox):
    mapping = default_mapping("spotler")
    client = AfasClient(base_url=sandbox.afas_base_url, token=sandbox.afas_token, timeout_s=20)
    gets = {c: client.metainfo(c) for c in ("Sync_Contacts", "Sync_Persons", "Sync_Organisations")}
    token = f"<token><version>1</version><data>{sandbox.afas_token}</data></token>"
    headers = {"Authorization": "AfasToken " + base64.b64encode(token.encode()).decode()}
    updates = {}
    for connector in {t.connector for t in mapping.write_backs()}:
        response = httpx.get(f"{sandbox.afas_base_url}/metainfo/update/{connector}", headers=headers, timeout=20)
        response.raise_for_status()
        updates[connector] = response.json()
    assert set(updates) == {"KnContact"}
    assert afas_drift(mapping, gets, updates) == []
    # The same live metainfo catches a mapping that drifted from it.
    del updates["KnContact"]["fields"][[f["fieldId"] for f in updates["KnContact"]["fields"]].index("FuDs")]
    assert [p for p in afas_drift(mapping, gets, updates) if "KnContact has no field 'FuDs'" in p]


def test_r17_the_mailing_history_subject_type_exists_in_afas(mapping):
    assert mapping.mailing_history.subject_type == 7
    assert subject_type_drift(mapping, SUBJECT_TYPES) == []
    # No mailing history in the mapping: nothing to check.
    assert subject_type_drift(mapping.model_copy(update={"mailing_history": None}), []) == []


def test_r17_an_unknown_subject_type_names_the_setting_and_lists_the_types_afas_has(mapping):
    [problem] = subject_type_drift(mapping, [t for t in SUBJECT_TYPES if t["SubjectTypeId"] != 7])
    assert problem.startswith(f"{mapping.file}: mailing_history.subject_type (7): R17: ")
    assert mapping.file.endswith("mappings/spotler.yaml")
    assert "AFAS has no dossier item type 7 (GetConnector Profit_SubjectTypes)" in problem
    assert problem.endswith("(types it has: 1 = Notitie, 2 = Telefoonnotitie)")
    [problem] = subject_type_drift(mapping, [])
    assert problem.endswith("(types it has: none)")


def test_r17_shipped_subject_type_passes_against_the_afas_sandbox_and_a_removed_type_is_reported(afas_sandbox_clean):
    mapping = default_mapping("spotler")
    client = AfasClient(base_url=afas_sandbox_clean.afas_base_url, token=afas_sandbox_clean.afas_token, timeout_s=20)
    assert live_subject_type_drift(client, mapping) == []
    # An AFAS administrator removes the type: the same check now names the setting and what AFAS has.
    httpx.post(f"{afas_sandbox_clean.afas_admin_url}/delete", json={"table": "subject_types", "key": 7},
               timeout=20).raise_for_status()
    [problem] = live_subject_type_drift(client, mapping)
    assert problem.startswith(f"{mapping.file}: mailing_history.subject_type (7): R17: AFAS has no dossier item type 7")
    assert ("types it has: 1 = Notitie, 2 = Telefoonnotitie, 3 = E-mail, 4 = Brief, 5 = Afspraak, 6 = Klacht, "
            "8 = Offerte)") in problem


def test_r17_a_token_that_may_not_read_profit_subject_types_is_a_problem(sandbox):
    mapping = default_mapping("spotler")
    client = AfasClient(base_url=sandbox.afas_base_url, token=LIMITED_TOKEN, timeout_s=20)
    [problem] = live_subject_type_drift(client, mapping)
    assert problem.startswith(f"{mapping.file}: mailing_history.subject_type (7): R17: AFAS refused to read "
                              "GetConnector Profit_SubjectTypes (status 401")
    assert "add Profit_SubjectTypes to the App Connector" in problem
