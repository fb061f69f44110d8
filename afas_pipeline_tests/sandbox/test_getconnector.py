"""GetConnector semantics: paging, filters with every operator, OR, filterjson, sorting, display formats."""

from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import pytest

from afas_sandbox.afas.app import LIMITED_TOKEN
from afas_sandbox.afas.connectors import GET_CONNECTORS
from afas_pipeline_tests.sandbox.conftest import afas_client, all_rows

DISPLAY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def contacts(afas):
    return all_rows(afas, "Sync_Contacts")


def ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [row["ContactId"] for row in response.json()["rows"]]


def query(afas, fields: str, values: str, ops: str, **extra):
    return afas.get("/connectors/Sync_Contacts", params={
        "filterfieldids": fields, "filtervalues": values, "operatortypes": ops, "skip": -1, "take": -1, **extra})


def test_rows_have_exactly_the_connector_fields_with_nulls(afas, contacts):
    expected = [f.id for f in GET_CONNECTORS["Sync_Contacts"].fields]
    assert len(contacts) == 3000
    assert all(list(row) == expected for row in contacts)
    assert any(row["MailWork"] is None for row in contacts)
    for connector in ("Sync_Persons", "Sync_Organisations", "Profit_Contacts", "ProfitSubjects", "Profit_SubjectTypes",
                      "Profit_Debtor", "Profit_Debtor_App", "Profit_Deliveryaddress", "Profit_Contacts_App"):
        rows = all_rows(afas, connector)
        assert all(list(row) == [f.id for f in GET_CONNECTORS[connector].fields] for row in rows), connector


def test_defaults_take_100_and_echo_skip_take(afas):
    body = afas.get("/connectors/Sync_Contacts").json()
    assert (body["skip"], body["take"], len(body["rows"])) == (0, 100, 100)
    body = afas.get("/connectors/Sync_Contacts", params={"skip": 2990, "take": 50}).json()
    assert (body["skip"], body["take"], len(body["rows"])) == (2990, 50, 10)


def test_pages_partition_the_sorted_rows(afas, contacts):
    pages, skip = [], 0
    while True:
        page = ids(afas.get("/connectors/Sync_Contacts",
                            params={"skip": skip, "take": 700, "orderbyfieldids": "-ContactModified,ContactId"}))
        pages.extend(page)
        skip += 700
        if len(page) < 700:
            break
    expected = sorted(contacts, key=lambda r: r["ContactId"])
    expected = sorted(expected, key=lambda r: r["ContactModified"], reverse=True)
    assert len(pages) == len(set(pages)) == 3000
    # Displayed seconds tie; the stored milliseconds decide, so compare per displayed second.
    assert [r["ContactModified"] for r in expected] == [
        {r["ContactId"]: r for r in contacts}[i]["ContactModified"] for i in pages]


@pytest.mark.parametrize("skip,take", [(2, -1), (-2, 10), (0, -5), ("x", 10)])
def test_invalid_paging_is_a_500(afas, skip, take):
    response = afas.get("/connectors/Sync_Contacts", params={"skip": skip, "take": take})
    assert response.status_code == 500
    assert response.json()["errorNumber"] == -2147180999


def test_skip_minus_one_returns_everything_whatever_take(afas):
    assert len(ids(afas.get("/connectors/Sync_Contacts", params={"skip": -1, "take": 5}))) == 3000


def test_take_zero_returns_one_row_like_afas(afas):
    assert len(afas.get("/connectors/Sync_Contacts", params={"take": 0}).json()["rows"]) == 1


def _text(v):
    return None if v is None else str(v).lower()


ORACLE = {
    1: lambda v, x: v is not None and _text(v) == x,
    2: lambda v, x: v is not None and _text(v) >= x,
    3: lambda v, x: v is not None and _text(v) <= x,
    4: lambda v, x: v is not None and _text(v) > x,
    5: lambda v, x: v is not None and _text(v) < x,
    6: lambda v, x: v is not None and x in _text(v),
    7: lambda v, x: not (v is not None and _text(v) == x),
    8: lambda v, x: v is None or v == "",
    9: lambda v, x: not (v is None or v == ""),
    10: lambda v, x: v is not None and _text(v).startswith(x),
    11: lambda v, x: not (v is not None and x in _text(v)),
    12: lambda v, x: not (v is not None and _text(v).startswith(x)),
    13: lambda v, x: v is not None and _text(v).endswith(x),
    14: lambda v, x: not (v is not None and _text(v).endswith(x)),
    15: lambda v, x: v is not None and x in _text(v),
}
TEXT_CASES = {1: "administratie@gedeeld.example", 2: "m", 3: "d", 4: "m", 5: "d", 6: "%Bakker%", 7: "PRS",
              8: "", 9: "[is leeg]", 10: "jan%", 11: "example", 12: "a%", 13: "%.EXAMPLE", 14: ".example", 15: "vries"}


@pytest.mark.parametrize("op", sorted(TEXT_CASES))
def test_every_operator_on_text_is_case_insensitive_and_matches_the_oracle(afas, contacts, op):
    field = "ContactKind" if op == 7 else "MailWork"
    value = TEXT_CASES[op]
    got = ids(query(afas, field, value, str(op)))
    needle = value.replace("%", "").lower()
    expected = [r["ContactId"] for r in contacts if ORACLE[op](r[field], needle)]
    assert got == expected
    assert 0 < len(got) < 3000, "the case must discriminate"


@pytest.mark.parametrize("op,value,expected", [
    (1, "10005", {10005}), (2, "12998", {12998, 12999, 13000}), (3, "10002", {10001, 10002}),
    (4, "12999", {13000}), (5, "10002", {10001}), (7, "10001", None)])
def test_integer_operators_compare_numbers(afas, op, value, expected):
    got = set(ids(query(afas, "ContactId", value, str(op))))
    assert got == (expected if expected is not None else set(range(10002, 13001)))


def test_boolean_filter_accepts_1_and_true(afas, contacts):
    blocked = {r["ContactId"] for r in contacts if r["Blocked"]}
    assert set(ids(query(afas, "Blocked", "1", "1"))) == blocked
    assert set(ids(query(afas, "Blocked", "true", "1"))) == blocked
    assert set(ids(query(afas, "Blocked", "false", "1"))) == {r["ContactId"] for r in contacts} - blocked


def test_datetime_filter_compares_stored_milliseconds_in_amsterdam_time(afas, contacts):
    # Contact 10016 was modified at 2026-10-25T00:59:59.500Z = 02:59:59.500 CEST, displayed rounded up.
    row = next(r for r in contacts if r["ContactId"] == 10016)
    assert row["ContactModified"] == "2026-10-25T03:00:00Z"
    at = ids(query(afas, "ContactModified", "2026-10-25T02:59:59.500", "1"))
    assert at == [10016]
    after_display = ids(query(afas, "ContactModified", "2026-10-25T03:00:00", "2"))
    assert 10016 not in after_display, ">= on the displayed second misses the row, as on AFAS"


def test_repeated_autumn_hour_matches_both_occurrences(afas):
    # 10014 at 00:30:00.250Z (02:30 CEST) and 10015 at 01:30:00.250Z (02:30 CET): same wall clock.
    got = ids(query(afas, "ContactModified,ContactModified", "2026-10-25T02:30:00,2026-10-25T02:30:01", "2,5"))
    assert got == [10014, 10015]


def test_date_filter_value_with_z_is_rejected(afas):
    response = query(afas, "ContactModified", "2026-10-25T02:05:00Z", "2")
    assert response.status_code == 500
    assert "ContactModified" in response.json()["externalMessage"]


def test_value_of_wrong_type_is_rejected(afas):
    assert query(afas, "ContactId", "abc", "1").status_code == 500


def test_or_of_and_groups(afas, contacts):
    got = ids(query(afas, "ContactKind,Blocked;ContactId", "PRS,1;10031", "1,1;1"))
    expected = [r["ContactId"] for r in contacts
                if (r["ContactKind"] == "PRS" and r["Blocked"]) or r["ContactId"] == 10031]
    assert got == expected and 10031 in got and len(got) > 5


def test_filterjson_equals_the_simple_filter_and_allows_separators_in_values(afas, admin, contacts):
    simple = ids(query(afas, "ContactKind,Blocked;ContactId", "PRS,1;10031", "1,1;1"))
    flt = {"Filters": {"Filter": [
        {"@FilterId": "Filter 1", "Field": [{"@FieldId": "ContactKind", "@OperatorType": "1", "#text": "PRS"},
                                            {"@FieldId": "Blocked", "@OperatorType": "1", "#text": "1"}]},
        {"@FilterId": "Filter 2", "Field": {"@FieldId": "ContactId", "@OperatorType": "1", "#text": "10031"}}]}}
    response = afas.get("/connectors/Sync_Contacts", params={"filterjson": json.dumps(flt), "skip": -1, "take": -1})
    assert ids(response) == simple
    name = "Jansen, de Vries & Partners; Holding B.V."
    flt = {"Filters": {"Filter": {"Field": {"@FieldId": "Name", "@OperatorType": "1", "#text": name}}}}
    rows = afas.get("/connectors/Sync_Organisations", params={"filterjson": json.dumps(flt)}).json()["rows"]
    assert [r["Name"] for r in rows] == [name]


def test_mismatched_filter_lists_are_a_500(afas):
    assert query(afas, "ContactKind,Blocked", "PRS", "1,1").status_code == 500


def test_unknown_filter_or_sort_field_names_the_field(afas):
    for params in ({"filterfieldids": "Nope", "filtervalues": "1", "operatortypes": "1"},
                   {"orderbyfieldids": "ContactId,-Nope"}):
        response = afas.get("/connectors/Sync_Contacts", params=params)
        assert response.status_code == 500
        assert response.json()["externalMessage"] == "Connector field 'Nope' not found"


def test_sort_is_case_insensitive_stable_and_puts_empty_first_ascending(afas, contacts):
    got = all_rows(afas, "Sync_Contacts", orderbyfieldids="MailWork")
    keys = [(r["MailWork"] or "").lower() for r in got]
    assert keys == sorted(keys)
    assert got[0]["MailWork"] is None
    shared = [r["ContactId"] for r in got if r["MailWork"] == "administratie@gedeeld.example"]
    assert shared == sorted(shared), "ties keep storage order"
    desc = all_rows(afas, "Sync_Contacts", orderbyfieldids="-MailWork")
    assert desc[-1]["MailWork"] is None and (desc[0]["MailWork"] or "").lower() == keys[-1]


def test_datetimes_display_amsterdam_local_with_fake_z_and_dates_at_midnight(afas, contacts, admin):
    assert all(DISPLAY.match(r["ContactModified"]) for r in contacts)
    record = admin.get("/records/contacts", params={"key": 10014}).json()[0]
    assert record["ModifiedDate"] == "2026-10-25T00:30:00.250Z"
    row = next(r for r in contacts if r["ContactId"] == 10014)
    assert row["ContactModified"] == "2026-10-25T02:30:00Z"  # still CEST, +2h
    bounced = next(r for r in contacts if r["ContactId"] == 10007)
    assert re.match(r"^\d{4}-\d\d-\d\dT00:00:00Z$", bounced["BounceDate"])
    spring = next(r for r in contacts if r["ContactId"] == 10012)  # 2026-03-29T01:00:00.000Z = 03:00 CEST
    assert spring["ContactModified"] == "2026-03-29T03:00:00Z"


def test_joined_fields_come_from_person_and_organisation(afas, contacts):
    persons = {r["PersonId"]: r for r in all_rows(afas, "Sync_Persons")}
    orgs = {r["OrganisationId"]: r for r in all_rows(afas, "Sync_Organisations")}
    for row in contacts[:200]:
        if row["ContactKind"] == "PRS":
            assert row["MailPrivate"] == persons[row["PersonId"]]["MailPrivate"]
            assert row["PersonModified"] == persons[row["PersonId"]]["ModifiedDate"]
            assert row["IsDebtor"] == orgs[row["OrganisationId"]]["IsDebtor"]
            assert row["OrganisationModified"] == orgs[row["OrganisationId"]]["ModifiedDate"]
        if row["ContactKind"] == "PER":
            assert row["OrganisationId"] is None and row["OrganisationModified"] is None


def test_profit_contacts_is_a_second_view_of_the_same_contacts(afas, contacts):
    profit = {r["ContactId"]: r for r in all_rows(afas, "Profit_Contacts")}
    assert set(profit) == {r["ContactId"] for r in contacts}
    for row in contacts[:300]:
        p = profit[row["ContactId"]]
        assert (p["Type"], p["OrgNumber"], p["PerNumber"], p["MailWork"], p["Blocked"]) == (
            row["ContactKind"], row["OrganisationId"], row["PersonId"], row["MailWork"], row["Blocked"])
        assert p["ModifiedDate"] == row["ContactModified"]


def test_response_headers(afas):
    response = afas.get("/connectors/Sync_Contacts", params={"take": 1})
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert re.fullmatch(r"complete\(\d+ms\)", response.headers["x-afas-proxy-stats"])


def test_query_string_over_2049_chars_is_404(afas):
    long_value = "x" * 2100
    response = afas.get("/connectors/Sync_Contacts", params={"filterfieldids": "MailWork", "filtervalues": long_value,
                                                             "operatortypes": "6"})
    assert response.status_code == 404
    short = afas.get("/connectors/Sync_Contacts", params={"filterfieldids": "MailWork", "filtervalues": "x" * 1900,
                                                          "operatortypes": "6"})
    assert short.status_code == 200


def test_paths_and_connector_ids_are_case_insensitive(afas_sandbox_clean, afas):
    url = afas_sandbox_clean.url + "/afas/profitrestservices/CONNECTORS/sync_contacts"
    response = afas.get(url, params={"take": 3})
    assert response.status_code == 200 and len(response.json()["rows"]) == 3


def test_metainfo_describes_fields_and_types(afas):
    meta = afas.get("/metainfo/get/Sync_Contacts").json()
    types = {f["id"]: f["dataType"] for f in meta["fields"]}
    assert types["ContactId"] == "int" and types["Blocked"] == "boolean"
    assert types["ContactModified"] == "date" and types["MailWork"] == "string"
    assert set(meta["fields"][0]) == {"id", "fieldId", "dataType", "label", "length", "controlType", "decimals",
                                      "decimalsFieldId"}
    listing = afas.get("/metainfo").json()
    assert {c["id"] for c in listing["getConnectors"]} >= {
        "Sync_Contacts", "Sync_Persons", "Sync_Organisations", "Profit_Contacts", "ProfitSubjects", "Profit_Debtor",
        "Profit_Debtor_App", "Profit_Deliveryaddress", "Profit_Contacts_App"}
    assert {c["id"] for c in listing["updateConnectors"]} == {"KnOrganisation", "KnPerson", "KnContact", "KnSubject"}
    assert afas.get("/ProfitVersion").json() == {"version": "22.22.5"}


# The row keys and types of AFAS's standard GetConnector Profit_SubjectTypes, as AFAS's OpenAPI description
# lists them (AFASSoftware/OASContent, "Dossiers en bijlagen en workflows"), AFAS's spellings included.
SUBJECT_TYPE_KEYS = {
    "SubjectTypeId": "int", "Description": "string", "Comment": "boolean", "SubjectText": "boolean",
    "Responsible": "boolean", "StartDate": "boolean", "EndDate": "boolean", "Completed": "boolean",
    "DateCompleted": "boolean", "ResponsibleMandatory": "boolean", "UseFeatures": "boolean",
    "OnlyExistingFeatures": "boolean", "WithoutFeature": "boolean", "Confedential": "boolean", "LinkFile": "boolean",
    "EditMode": "string", "VisibleOutsite": "boolean", "VisibleInsite": "boolean", "UseNumber": "boolean",
    "LastNumber": "int",
}


def test_profit_subject_types_lists_the_seeded_dossier_item_types_with_afas_row_keys(afas_sandbox_clean, afas):
    rows = all_rows(afas, "Profit_SubjectTypes", orderbyfieldids="SubjectTypeId")
    assert [(r["SubjectTypeId"], r["Description"]) for r in rows] == [
        (1, "Notitie"), (2, "Telefoonnotitie"), (3, "E-mail"), (4, "Brief"), (5, "Afspraak"), (6, "Klacht"),
        (7, "Mailing"), (8, "Offerte")]
    assert all(list(r) == list(SUBJECT_TYPE_KEYS) for r in rows)
    klacht = rows[5]
    assert klacht["ResponsibleMandatory"] and klacht["Confedential"] and not klacht["VisibleInsite"]
    meta = afas.get("/metainfo/get/Profit_SubjectTypes").json()
    assert {f["id"]: f["dataType"] for f in meta["fields"]} == SUBJECT_TYPE_KEYS
    listing = {c["id"]: c["description"] for c in afas.get("/metainfo").json()["getConnectors"]}
    assert listing["Profit_SubjectTypes"] == "Typen dossieritem"

    # Paging, sorting and filters as on every other GetConnector.
    page = afas.get("/connectors/Profit_SubjectTypes", params={"skip": 2, "take": 3, "orderbyfieldids": "-SubjectTypeId"})
    assert (page.json()["skip"], page.json()["take"]) == (2, 3)
    assert [r["SubjectTypeId"] for r in page.json()["rows"]] == [6, 5, 4]
    mail = afas.get("/connectors/Profit_SubjectTypes", params={
        "filterfieldids": "Description", "filtervalues": "MAIL", "operatortypes": "6", "orderbyfieldids": "SubjectTypeId"})
    assert [r["Description"] for r in mail.json()["rows"]] == ["E-mail", "Mailing"]
    linked = afas.get("/connectors/Profit_SubjectTypes", params={"filterjson": json.dumps(
        {"Filters": {"Filter": [{"@FilterId": "f", "Field": [
            {"@FieldId": "LinkFile", "@OperatorType": "1", "#text": "true"},
            {"@FieldId": "SubjectTypeId", "@OperatorType": "4", "#text": "4"}]}]}}), "orderbyfieldids": "SubjectTypeId"})
    assert [r["SubjectTypeId"] for r in linked.json()["rows"]] == [7, 8]

    # A type an administrator adds is listed at once; the persons-only token may not read the connector.
    added = httpx.post(afas_sandbox_clean.afas_admin_url + "/insert",
                       json={"table": "subject_types", "fields": {"Description": "Webinar", "LinkFile": True}}).json()
    assert added["SubjectTypeId"] == 9
    assert all_rows(afas, "Profit_SubjectTypes")[-1]["Description"] == "Webinar"
    with afas_client(afas_sandbox_clean, LIMITED_TOKEN) as limited:
        refused = limited.get("/connectors/Profit_SubjectTypes")
        assert refused.status_code == 401
        assert "not supported for this app" in refused.json()["externalMessage"]
        assert "Profit_SubjectTypes" not in {c["id"] for c in limited.get("/metainfo").json()["getConnectors"]}


def test_a_page_after_an_edit_shows_the_edit(afas, admin):
    before = afas.get("/connectors/Sync_Contacts", params={"filterfieldids": "ContactId", "filtervalues": "10040",
                                                          "operatortypes": "1"}).json()["rows"][0]
    admin.post("/edit", json={"table": "contacts", "key": 10040, "fields": {"Function": "Nieuw"},
                              "at": "2026-10-25T00:05:00.250Z"}).raise_for_status()
    after = afas.get("/connectors/Sync_Contacts", params={"filterfieldids": "ContactId", "filtervalues": "10040",
                                                         "operatortypes": "1"}).json()["rows"][0]
    assert before["Function"] != "Nieuw" and after["Function"] == "Nieuw"
    assert after["ContactModified"] == "2026-10-25T02:05:00Z"
    assert dt.datetime.fromisoformat(after["CreateDate"][:-1]) < dt.datetime(2026, 10, 25, 2, 5)
