"""UpdateConnectors: inserts, updates, matching, validation as one transaction, dossier items."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest

from afas_sandbox.afas.updates import FREE_FIELDS
from afas_pipeline_tests.sandbox.conftest import all_rows

GUID = {column: guid for guid, (column, _, _) in FREE_FIELDS.items()}


def element(fields: dict, **objects) -> dict:
    el = {"Element": {"Fields": fields}}
    if objects:
        el["Element"]["Objects"] = objects
    return el


def row(afas, connector: str, field: str, value) -> dict | None:
    rows = afas.get(f"/connectors/{connector}", params={"filterfieldids": field, "filtervalues": str(value),
                                                         "operatortypes": "1"}).json()["rows"]
    assert len(rows) <= 1
    return rows[0] if rows else None


def assert_500(response, fragment: str) -> None:
    assert response.status_code == 500, response.text
    assert fragment in response.json()["externalMessage"]


def test_insert_organisation_with_contact_and_new_person(afas, admin):
    before = admin.get("/state").json()["counts"]
    body = {"KnOrganisation": element(
        {"PadAdr": True, "AutoNum": True, "MatchOga": "6", "Nm": "Ødegaard Advies B.V.", "CcNr": "87654321"},
        KnBasicAddressAdr=element({"CoId": "NL", "Ad": "Kerkstraat", "HmNr": "12", "ZpCd": "1234 AB", "Rs": "Delft"}),
        KnContact=element({"ViKc": "PRS", "FuDs": "Directeur", "EmAd": "sanne@odegaard.example"},
                          KnPerson=element({"MatchPer": "7", "FiNm": "Sanne", "LaNm": "Visser", "ViGe": "V"})))}
    response = afas.post("/connectors/KnOrganisation", json=body)
    assert response.status_code == 201, response.text
    results = response.json()["results"]
    assert set(results) == {"KnOrganisation", "KnPerson", "KnContact"}
    assert all(isinstance(v, str) for keys in results.values() for v in keys.values())
    org = row(afas, "Sync_Organisations", "OrganisationId", results["KnOrganisation"]["BcCo"])
    assert (org["Name"], org["Street"], org["HouseNumber"], org["City"]) == ("Ødegaard Advies B.V.", "Kerkstraat", 12, "Delft")
    contact = row(afas, "Sync_Contacts", "ContactId", results["KnContact"]["CdId"])
    assert (contact["OrganisationId"], contact["PersonId"], contact["ContactKind"], contact["MailWork"]) == (
        results["KnOrganisation"]["BcCo"], results["KnPerson"]["BcCo"], "PRS", "sanne@odegaard.example")
    after = admin.get("/state").json()["counts"]
    assert (after["organisations"], after["persons"], after["contacts"]) == (
        before["organisations"] + 1, before["persons"] + 1, before["contacts"] + 1)


def test_put_changes_only_sent_fields_and_bumps_the_modified_date(afas):
    before = row(afas, "Sync_Organisations", "OrganisationId", "100005")
    response = afas.put("/connectors/KnOrganisation",
                        json={"KnOrganisation": element({"MatchOga": "0", "BcCo": "100005", "Nm": "Nieuwe Naam"})})
    assert response.status_code == 200 and response.content == b""
    after = row(afas, "Sync_Organisations", "OrganisationId", "100005")
    assert after["Name"] == "Nieuwe Naam" and after["City"] == before["City"]
    assert after["ModifiedDate"] > before["ModifiedDate"]
    now_local = dt.datetime.now(dt.timezone.utc).astimezone(dt.timezone(dt.timedelta(hours=1))).replace(tzinfo=None)
    assert abs(dt.datetime.fromisoformat(after["ModifiedDate"][:-1]) - now_local) < dt.timedelta(hours=1, minutes=5)


def test_empty_string_clears_a_field(afas):
    afas.put("/connectors/KnOrganisation", json={"KnOrganisation": element({"BcCo": "100006", "TeNr": ""})})
    assert row(afas, "Sync_Organisations", "OrganisationId", "100006")["Phone"] is None


def test_match_on_chamber_of_commerce_updates_instead_of_inserting(afas, admin):
    kvk = admin.get("/records/organisations", params={"key": "100010"}).json()[0]["ChamberOfCommerce"]
    response = afas.post("/connectors/KnOrganisation",
                         json={"KnOrganisation": element({"MatchOga": "1", "CcNr": kvk, "Nm": "Via KvK"})})
    assert response.status_code == 201 and "KnOrganisation" not in response.json()["results"]
    assert row(afas, "Sync_Organisations", "OrganisationId", "100010")["Name"] == "Via KvK"


def test_more_than_one_match_is_refused(afas, admin):
    for key in ("100011", "100012"):
        admin.post("/edit", json={"table": "organisations", "key": key, "fields": {"Name": "Tweeling"}}).raise_for_status()
    response = afas.post("/connectors/KnOrganisation",
                         json={"KnOrganisation": element({"MatchOga": "3", "Nm": "Tweeling"})})
    assert_500(response, "More than one organisation")


def test_put_of_unknown_organisation_is_refused(afas):
    response = afas.put("/connectors/KnOrganisation", json={"KnOrganisation": element({"BcCo": "999999", "Nm": "X"})})
    assert_500(response, "does not exist")
    assert response.headers["X-Profit-Error"]


def test_a_failing_body_changes_nothing(afas, admin):
    before = admin.get("/state").json()
    body = {"KnOrganisation": element(
        {"Nm": "Half Werk B.V."},
        KnContact=element({"EmAd": "x@y.example"}, KnPerson=element({"LaNm": "Bakker", "Unknown": "1"})))}
    assert_500(afas.post("/connectors/KnOrganisation", json=body), "Field 'Unknown' does not exist")
    after = admin.get("/state").json()
    assert after == before
    assert row(afas, "Sync_Organisations", "Name", "Half Werk B.V.") is None


@pytest.mark.parametrize("fields,fragment", [
    ({"BcCo": "100001", "Nm": "x" * 256}, "longer than 255"),
    ({"BcCo": "100001", "AutoNum": "misschien"}, "is not valid"),
    ({"BcCo": "100001", "MatchOga": "9"}, "MatchOga"),
])
def test_invalid_values_are_refused(afas, fields, fragment):
    assert_500(afas.put("/connectors/KnOrganisation", json={"KnOrganisation": element(fields)}), fragment)


def test_invalid_json_is_400(afas):
    response = afas.post("/connectors/KnPerson", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["externalMessage"] == "Invalid json"


def test_insert_person_makes_a_loose_person(afas):
    response = afas.post("/connectors/KnPerson", json={"KnPerson": element(
        {"MatchPer": "7", "FiNm": "Zoë", "LaNm": "Ñúñez", "ViGe": "V", "DaBi": "1990-02-03", "EmA2": "zoe@prive.example"})})
    assert response.status_code == 201
    code = response.json()["results"]["KnPerson"]["BcCo"]
    person = row(afas, "Sync_Persons", "PersonId", code)
    assert (person["FirstName"], person["LastName"], person["BirthDate"]) == ("Zoë", "Ñúñez", "1990-02-03T00:00:00Z")
    contact = row(afas, "Sync_Contacts", "PersonId", code)
    assert contact["ContactKind"] == "PER" and contact["OrganisationId"] is None
    assert contact["MailPrivate"] == "zoe@prive.example"


def test_match_person_on_name_and_birth_date(afas, admin):
    person = next(p for p in admin.get("/records/persons").json()[650:] if p["BirthDate"])
    fields = {"MatchPer": "6", "LaNm": person["LastName"], "Is": person["Prefix"], "In": person["Initials"],
              "ViGe": person["Gender"], "DaBi": person["BirthDate"], "EmA2": "nieuw@prive.example"}
    response = afas.post("/connectors/KnPerson", json={"KnPerson": element(fields)})
    assert response.status_code == 201, response.text
    assert "KnPerson" not in response.json()["results"], "matched, so nothing inserted"
    assert row(afas, "Sync_Persons", "PersonId", person["PersonId"])["MailPrivate"] == "nieuw@prive.example"
    fields["MatchPer"] = "2"
    fields["LaNm"], fields["Is"], fields["In"] = "Jansen", None, "J."
    admin.post("/insert", json={"table": "persons", "fields": {"LastName": "Jansen", "Initials": "J.", "Gender": "M"}})
    admin.post("/insert", json={"table": "persons", "fields": {"LastName": "Jansen", "Initials": "J.", "Gender": "M"}})
    fields["ViGe"] = "M"
    assert_500(afas.post("/connectors/KnPerson", json={"KnPerson": element(fields)}), "More than one person")


def test_kncontact_put_writes_blocked_and_free_fields(afas, admin):
    before = row(afas, "Sync_Contacts", "ContactId", 10050)
    fields = {"BcCoOga": before["OrganisationId"], "BcCoPer": before["PersonId"], "Bl": True,
              GUID["PermissionNewsletter"]: False, GUID["BounceDate"]: "2026-10-20",
              GUID["BounceType"]: "hard", GUID["HardBounce"]: "1", "FuDs": "Inkoper"}
    assert afas.put("/connectors/KnContact", json={"KnContact": element(fields)}).status_code == 200
    after = row(afas, "Sync_Contacts", "ContactId", 10050)
    assert (after["Blocked"], after["PermissionNewsletter"], after["BounceDate"], after["BounceType"],
            after["HardBounce"], after["Function"]) == (True, False, "2026-10-20T00:00:00Z", "hard", True, "Inkoper")
    assert after["ContactModified"] > before["ContactModified"]
    assert after["PersonModified"] == before["PersonModified"], "only the contact was written"
    record = admin.get("/records/contacts", params={"key": 10050}).json()[0]
    assert record["ModifiedDate"].endswith("Z") and len(record["ModifiedDate"]) == 24  # millisecond precision


def test_kncontact_by_contact_id_and_unknown_contact(afas):
    assert afas.put("/connectors/KnContact", json={"KnContact": element({"CdId": 10051, "EmAd": "a@b.example"})}
                    ).status_code == 200
    assert row(afas, "Sync_Contacts", "ContactId", 10051)["MailWork"] == "a@b.example"
    assert_500(afas.put("/connectors/KnContact", json={"KnContact": element({"BcCoOga": "1", "BcCoPer": "2"})}),
               "does not exist")
    assert_500(afas.post("/connectors/KnContact", json={"KnContact": element({"CdId": 10051})}), "KnOrganisation/KnContact")


def test_metainfo_update_lists_the_free_field_guids(afas):
    meta = afas.get("/metainfo/update/KnContact").json()
    ids = {f["fieldId"]: f for f in meta["fields"]}
    assert set(FREE_FIELDS) <= set(ids) and {"BcCoOga", "BcCoPer", "EmAd", "Bl", "FuDs", "TeNr", "MbNr"} <= set(ids)
    assert {ids[g]["label"] for g in FREE_FIELDS} == {label for _, _, label in FREE_FIELDS.values()}
    org = afas.get("/metainfo/update/KnOrganisation").json()
    assert [o["name"] for o in org["objects"]] == ["KnBasicAddressAdr", "KnBasicAddressPad", "KnContact"]
    assert org["objects"][2]["objects"][0]["name"] == "KnPerson"


def test_sub_object_insert_adds_a_contact_to_an_existing_organisation(afas):
    body = {"KnOrganisation": element({"MatchOga": "0", "BcCo": "100020"}, KnContact=element(
        {"ViKc": "PRS", "FuDs": "Directeur", "EmAd": "dir@x.example"},
        KnPerson=element({"MatchPer": "0", "BcCo": "100700"})))}
    before = row(afas, "Sync_Organisations", "OrganisationId", "100020")
    response = afas.post("/connectors/KnOrganisation/KnContact", json=body)
    assert response.status_code == 201, response.text
    cdid = response.json()["results"]["KnContact"]["CdId"]
    contact = row(afas, "Sync_Contacts", "ContactId", cdid)
    assert (contact["OrganisationId"], contact["PersonId"], contact["MailWork"]) == ("100020", "100700", "dir@x.example")
    assert row(afas, "Sync_Organisations", "OrganisationId", "100020")["ModifiedDate"] == before["ModifiedDate"]
    assert_500(afas.post("/connectors/KnOrganisation/KnContact", json=body), "already is a contact")
    body["KnOrganisation"]["Element"]["Fields"]["BcCo"] = "999999"
    assert_500(afas.post("/connectors/KnOrganisation/KnContact", json=body), "does not exist")


def test_subject_insert_update_delete_and_read_back(afas, admin):
    stream = base64.b64encode(b"<html>mailing</html>").decode()
    body = {"KnSubject": element(
        {"StId": "2", "Ds": "Mailing: Nieuwsbrief oktober", "SbTx": "https://view.example/abc", "Da": "2026-10-25T02:30:00"},
        KnSubjectLink=element({"ToBC": True, "BcId": "100001", "CdId": 10010}),
        KnSubjectAttachment={"Element": [{"Fields": {"FileName": "mail.html", "FileStream": stream}}]})}
    response = afas.post("/connectors/KnSubject", json=body)
    assert response.status_code == 201, response.text
    sbid = response.json()["results"]["KnSubject"]["SbId"]
    subject = row(afas, "ProfitSubjects", "SubjectId", sbid)
    contact = row(afas, "Sync_Contacts", "ContactId", 10010)
    assert (subject["Description"], subject["ContactId"], subject["PersonId"], subject["OrganisationId"],
            subject["Attachments"], subject["Date"]) == ("Mailing: Nieuwsbrief oktober", 10010, contact["PersonId"],
                                                         contact["OrganisationId"], 1, "2026-10-25T02:30:00Z")
    files = afas.get("/connectors/Profit_Subject_Attachments").json()["rows"]
    assert [f["file_name"] for f in files] == ["mail.html"]
    file = afas.get(f"/SubjectConnector/{sbid}/{files[0]['file_id']}").json()
    assert (file["filename"], file["mimetype"], base64.b64decode(file["filedata"])) == (
        "mail.html", "text/html", b"<html>mailing</html>")

    put = {"KnSubject": {"Element": {"@SbId": sbid, "Fields": {"SbTx": "bijgewerkt"}}}}
    assert afas.put("/connectors/KnSubject", json=put).status_code == 200
    assert row(afas, "ProfitSubjects", "SubjectId", sbid)["Text"] == "bijgewerkt"

    assert afas.delete(f"/connectors/KnSubject/KnSubject/@SbId/{sbid}").status_code == 200
    assert row(afas, "ProfitSubjects", "SubjectId", sbid) is None
    assert afas.get("/connectors/Profit_Subject_Attachments").json()["rows"] == []
    assert_500(afas.delete(f"/connectors/KnSubject/KnSubject/@SbId/{sbid}"), "does not exist")


def test_subject_link_to_a_person_by_number_and_attachment_added_later(afas):
    body = {"KnSubject": element({"StId": 5, "Ds": "Belnotitie"},
                                 KnSubjectLink=element({"SfTp": "3", "SfId": "100650"}))}
    sbid = afas.post("/connectors/KnSubject", json=body).json()["results"]["KnSubject"]["SbId"]
    assert row(afas, "ProfitSubjects", "SubjectId", sbid)["PersonId"] == "100650"
    add = {"KnSubject": {"Element": {"@SbId": int(sbid), "Objects": [{"KnSubjectAttachment": element(
        {"FileName": "call.mp3", "FileStream": base64.b64encode(b"ID3").decode()})}]}}}
    assert afas.post("/connectors/KnSubject/KnSubjectAttachment", json=add).status_code == 201
    assert row(afas, "ProfitSubjects", "SubjectId", sbid)["Attachments"] == 1


@pytest.mark.parametrize("fields,fragment", [({"Ds": "zonder type"}, "'StId'"), ({"StId": 1}, "'Ds'")])
def test_subject_mandatory_fields(afas, fields, fragment):
    assert_500(afas.post("/connectors/KnSubject", json={"KnSubject": element(fields)}), fragment)


def test_subject_with_a_type_afas_does_not_have_is_refused_with_an_afas_error(afas, admin):
    body = {"KnSubject": element({"StId": 99, "Ds": "Mailing: Nieuwsbrief"}, KnSubjectLink=element({"CdId": 10010}))}
    response = afas.post("/connectors/KnSubject", json=body)
    message = "The entered value for 'Type dossieritem' does not exist: '99'."
    assert response.status_code == 500
    error = response.json()
    assert error["externalMessage"] == message and error["errorNumber"] == -2147220469
    assert re.fullmatch(r"[0-9A-F]{32}", error["profitLogReference"])
    assert base64.b64decode(response.headers["X-Profit-Error"]).decode() == message
    assert all_rows(afas, "ProfitSubjects") == []  # nothing of the refused request was kept

    # A PUT cannot move an item to an unknown type either; a known type is accepted.
    body["KnSubject"]["Element"]["Fields"]["StId"] = 7
    sbid = afas.post("/connectors/KnSubject", json=body).json()["results"]["KnSubject"]["SbId"]
    assert_500(afas.put("/connectors/KnSubject", json={"KnSubject": {"Element": {"@SbId": sbid, "Fields": {
        "StId": "0", "Ds": "ander onderwerp"}}}}), "'Type dossieritem' does not exist: '0'")
    assert (row(afas, "ProfitSubjects", "SubjectId", sbid)["SubjectTypeId"],
            row(afas, "ProfitSubjects", "SubjectId", sbid)["Description"]) == (7, "Mailing: Nieuwsbrief")

    # As in AFAS, a type still used by dossier items cannot be deleted; an unused one can, and is then refused.
    assert admin.post("/delete", json={"table": "subject_types", "key": 7}).status_code == 409
    assert admin.post("/delete", json={"table": "subject_types", "key": 4}).json() == {"deleted": 4}
    assert_500(afas.post("/connectors/KnSubject", json={"KnSubject": element({"StId": 4, "Ds": "Brief"})}),
               "'Type dossieritem' does not exist: '4'")


def test_subject_link_to_unknown_contact_is_refused(afas):
    body = {"KnSubject": element({"StId": 1, "Ds": "x"}, KnSubjectLink=element({"CdId": 1}))}
    assert_500(afas.post("/connectors/KnSubject", json=body), "does not exist")
    assert all_rows(afas, "ProfitSubjects") == []
