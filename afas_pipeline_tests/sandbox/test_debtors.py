"""The debtor GetConnectors the AFAS-Mailchimp link reads (seed 002): Profit_Debtor(_App),
Profit_Deliveryaddress and Profit_Contacts_App, over real HTTP: AFAS's row keys and types, paging, sorting,
filters, the edge cases of the default dataset, ids that agree with the Sync_* connectors, admin edits,
the App Connector whitelist and the dataset round trip."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter

import numpy as np
import pytest

from afas_sandbox.afas import dataset
from afas_sandbox.afas.app import LIMITED_TOKEN
from afas_sandbox.afas.dataset import PLANTED_PHONES, generate
from afas_pipeline_tests.sandbox.conftest import afas_client, all_rows
from afas_pipeline_tests.sandbox.test_getconnector import ORACLE

DEBTOR_CONNECTORS = ("Profit_Debtor", "Profit_Debtor_App", "Profit_Deliveryaddress", "Profit_Contacts_App")
DISPLAY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# Row keys and types as AFAS publishes them (AFASSoftware/OASContent, OpenApiSpecs/profit/*/Mutaties.json,
# "Verkoop en Orders.json", "Organisaties en personen.json"); OpenAPI's "number" is metainfo's "decimal",
# its date strings are "date".
PROFIT_DEBTOR = {
    "DebtorId": "string", "DebtorName": "string", "BcCo": "string", "SearchName": "string", "AdressLine1": "string",
    "AdressLine3": "string", "AdressLine4": "string", "TelNr": "string", "Email": "string", "IBAN": "string",
    "VatNr": "string", "ChOfCommNr": "string", "CollectAccount": "string", "PayCon": "string", "VatDuty": "string",
    "Blocked": "boolean", "CreditLimit": "decimal", "CurrencyId": "string", "AutoPayment": "boolean",
    "CreateDate": "date", "ModifiedDate": "date",
}
# The App copy: the link's names for the address lines and the modified date, plus the ids and name parts.
PROFIT_DEBTOR_APP = {
    **{("AddressLine" + k[len("AdressLine"):] if k.startswith("AdressLine") else
        "DateModified" if k == "ModifiedDate" else k): v for k, v in PROFIT_DEBTOR.items()},
    "OrganisationId": "string", "PersonId": "string", "FirstName": "string", "Prefix": "string", "LastName": "string",
    "DeliveryAddressId": "int",
}
PROFIT_DELIVERYADDRESS = {
    "OrgId": "string", "Bedrijf": "string", "Tel": "string", "Fax": "string", "Mail": "string", "Gewijzigd_op": "date",
    "Gewijzigd_op_2": "date", "Is_debiteur": "boolean", "Adres_ID": "int", "Adrestype_code": "string",
    "A_Straat": "string", "A_Huisnummer": "int", "A_Toev_Huisnr.": "string", "A_Postcode": "string",
    "A_Woonplaats": "string", "Adrestype_code_2": "string", "A_Land": "string", "DebiteurID": "string",
}
PROFIT_CONTACTS_APP = {
    "Type": "string", "ContactId": "int", "Name": "string", "OrgNumber": "string", "PerNumber": "string",
    "Department": "string", "Blocked": "boolean", "AddressLine1": "string", "AddressLine3": "string",
    "AddressLine4": "string", "TelWork": "string", "MobWork": "string", "MailWork": "string", "Note": "string",
    "Function": "string", "FunctionCard": "string", "FullName": "string", "Gender": "string", "TelPrivate": "string",
    "MobPrivate": "string", "MailPrivate": "string", "CreateDate": "date", "ModifiedDate": "date",
    "PersonId": "string", "OrganisationId": "string", "OrganisationName": "string", "FirstName": "string",
    "Prefix": "string", "LastName": "string", "IsDebtor": "boolean", "PermissionNewsletter": "boolean",
    "HardBounce": "boolean", "PersonModified": "date", "OrganisationModified": "date",
}
EXPECTED_KEYS = {"Profit_Debtor": PROFIT_DEBTOR, "Profit_Debtor_App": PROFIT_DEBTOR_APP,
                 "Profit_Deliveryaddress": PROFIT_DELIVERYADDRESS, "Profit_Contacts_App": PROFIT_CONTACTS_APP}
POSTCODES = {"Nederland": r"\d{4} [A-Z]{2} .+", "België": r"\d{4} .+", "Duitsland": r"\d{5} .+",
             "Verenigd Koninkrijk": r".+ [A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}"}


@pytest.fixture
def debtors(afas) -> list[dict]:
    return all_rows(afas, "Profit_Debtor_App", orderbyfieldids="DebtorId")


def _rows(afas, connector: str, **params) -> list[dict]:
    response = afas.get(f"/connectors/{connector}", params={"skip": -1, "take": -1, **params})
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def _ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


# --- what the connectors are ------------------------------------------------------------------------------

@pytest.mark.parametrize("connector", DEBTOR_CONNECTORS)
def test_metainfo_and_rows_carry_afas_row_keys_and_types(afas, connector):
    meta = afas.get(f"/metainfo/get/{connector}").json()
    assert meta["name"] == connector
    assert {f["id"]: f["dataType"] for f in meta["fields"]} == EXPECTED_KEYS[connector]
    assert [f["id"] for f in meta["fields"]] == list(EXPECTED_KEYS[connector]), "AFAS's order"
    rows = all_rows(afas, connector)
    assert rows and all(list(row) == list(EXPECTED_KEYS[connector]) for row in rows)
    listing = {c["id"] for c in afas.get("/metainfo").json()["getConnectors"]}
    assert connector in listing


def test_credit_limit_is_a_decimal_shown_as_a_json_number(afas, debtors):
    field = next(f for f in afas.get("/metainfo/get/Profit_Debtor_App").json()["fields"] if f["id"] == "CreditLimit")
    assert (field["dataType"], field["decimals"], field["fieldId"]) == ("decimal", 2, "Krli")
    limits = [r["CreditLimit"] for r in debtors]
    assert None in limits and all(v is None or isinstance(v, (int, float)) for v in limits)
    assert any(v is not None and v != int(v) for v in limits), "an amount with cents"


def test_limited_token_is_refused_every_debtor_connector(afas_sandbox_clean):
    with afas_client(afas_sandbox_clean, LIMITED_TOKEN) as limited:
        for connector in DEBTOR_CONNECTORS:
            for path in (f"/connectors/{connector}", f"/metainfo/get/{connector}"):
                response = limited.get(path)
                assert response.status_code == 401, path
                assert "not supported for this app" in response.json()["externalMessage"]
        listed = {c["id"] for c in limited.get("/metainfo").json()["getConnectors"]}
        assert not listed & set(DEBTOR_CONNECTORS)


# --- paging, sorting, filters ---------------------------------------------------------------------------

def test_pages_partition_the_sorted_debtors_and_repeat_identically(afas, debtors):
    def pages() -> list[str]:
        out, skip = [], 0
        while True:
            body = afas.get("/connectors/Profit_Debtor_App",
                            params={"skip": skip, "take": 10, "orderbyfieldids": "-DateModified,DebtorId"}).json()
            assert (body["skip"], body["take"]) == (skip, 10)
            out.extend(r["DebtorId"] for r in body["rows"])
            skip += 10
            if len(body["rows"]) < 10:
                return out

    first = pages()
    assert first == pages() and len(first) == len(set(first)) == len(debtors)
    by_id = {r["DebtorId"]: r for r in debtors}
    assert [by_id[i]["DateModified"] for i in first] == sorted((r["DateModified"] for r in debtors), reverse=True)


def test_sort_on_text_is_case_insensitive_with_empty_first(afas):
    rows = all_rows(afas, "Profit_Deliveryaddress", orderbyfieldids="Adrestype_code,-Adres_ID")
    keys = [(r["Adrestype_code"] or "").lower() for r in rows]
    assert keys == sorted(keys) and rows[0]["Adrestype_code"] is None
    empty = [r["Adres_ID"] for r in rows if r["Adrestype_code"] is None]
    assert empty == sorted(empty, reverse=True), "the second key orders the ties"


TEXT_CASES = {1: "06-12345678", 2: "0", 3: "0", 4: "+3", 5: "+3", 6: "%12 34%", 7: "onbekend", 8: "", 9: "[is leeg]",
              10: "+31%", 11: "-", 12: "0%", 13: "%5678", 14: "5678", 15: "toestel"}


@pytest.mark.parametrize("op", sorted(TEXT_CASES))
def test_every_operator_on_the_phone_number_matches_the_oracle(afas, debtors, op):
    value = TEXT_CASES[op]
    got = [r["DebtorId"] for r in _rows(afas, "Profit_Debtor_App", filterfieldids="TelNr", filtervalues=value,
                                         operatortypes=str(op), orderbyfieldids="DebtorId")]
    needle = value.replace("%", "").lower()
    assert got == [r["DebtorId"] for r in debtors if ORACLE[op](r["TelNr"], needle)]
    assert 0 < len(got) < len(debtors), "the case must discriminate"


def test_or_filter_and_filterjson_agree(afas, debtors):
    simple = _rows(afas, "Profit_Debtor_App", filterfieldids="Blocked;Email;AddressLine4",
                   filtervalues="1;;Verenigd Koninkrijk", operatortypes="1;8;1", orderbyfieldids="DebtorId")
    expected = [r for r in debtors if r["Blocked"] or r["Email"] is None or r["AddressLine4"] == "Verenigd Koninkrijk"]
    assert simple == expected and len(expected) >= 3
    flt = {"Filters": {"Filter": [
        {"@FilterId": "Filter 1", "Field": {"@FieldId": "Blocked", "@OperatorType": "1", "#text": "true"}},
        {"@FilterId": "Filter 2", "Field": {"@FieldId": "Email", "@OperatorType": "8", "#text": ""}},
        {"@FilterId": "Filter 3", "Field": {"@FieldId": "AddressLine4", "@OperatorType": "1",
                                             "#text": "Verenigd Koninkrijk"}}]}}
    assert _rows(afas, "Profit_Debtor_App", filterjson=json.dumps(flt), orderbyfieldids="DebtorId") == expected


def test_decimal_and_integer_filters_compare_numbers(afas, debtors):
    rows = _rows(afas, "Profit_Debtor", filterfieldids="CreditLimit,CreditLimit", filtervalues="2500,10000.5",
                 operatortypes="2,5", orderbyfieldids="DebtorId")
    expected = [r["DebtorId"] for r in debtors if r["CreditLimit"] is not None and 2500 <= r["CreditLimit"] < 10000.5]
    assert [r["DebtorId"] for r in rows] == expected and expected
    assert afas.get("/connectors/Profit_Debtor", params={
        "filterfieldids": "CreditLimit", "filtervalues": "veel", "operatortypes": "1"}).status_code == 500
    defaults = {r["DeliveryAddressId"] for r in debtors if r["DeliveryAddressId"] is not None}
    lowest = min(defaults)
    rows = _rows(afas, "Profit_Deliveryaddress", filterfieldids="Adres_ID", filtervalues=str(lowest), operatortypes="1")
    assert [r["Adres_ID"] for r in rows] == [lowest]
    with_addition = _rows(afas, "Profit_Deliveryaddress", filterfieldids="A_Toev_Huisnr.", filtervalues="",
                          operatortypes="9")
    assert with_addition and all(r["A_Toev_Huisnr."] for r in with_addition)


# --- the data ----------------------------------------------------------------------------------------------

def test_debtors_are_the_relations_marked_is_debtor_with_ids_that_agree_with_sync(afas, debtors):
    organisations = {r["OrganisationId"]: r for r in all_rows(afas, "Sync_Organisations")}
    persons = {r["PersonId"]: r for r in all_rows(afas, "Sync_Persons")}
    loose = {r["PersonId"]: r for r in all_rows(afas, "Sync_Contacts") if r["ContactKind"] == "PER"}
    assert all((r["OrganisationId"] is None) != (r["PersonId"] is None) for r in debtors)
    assert {r["OrganisationId"] for r in debtors if r["OrganisationId"]} == {
        k for k, r in organisations.items() if r["IsDebtor"]}
    assert {r["PersonId"] for r in debtors if r["PersonId"]} == {k for k, r in loose.items() if r["IsDebtor"]}
    for row in debtors:
        assert row["BcCo"] == (row["OrganisationId"] or row["PersonId"])
        if row["OrganisationId"]:
            assert row["DebtorName"] == organisations[row["OrganisationId"]]["Name"]
            assert row["ChOfCommNr"] == organisations[row["OrganisationId"]]["ChamberOfCommerce"]
        else:
            person = persons[row["PersonId"]]
            assert (row["FirstName"], row["LastName"]) == (person["FirstName"], person["LastName"])
            parts = (person["FirstName"], person["Prefix"], person["LastName"])
            assert row["DebtorName"] == " ".join(p for p in parts if p)
    assert len({r["DebtorId"] for r in debtors}) == len(debtors)


def test_profit_debtor_is_the_app_copy_under_afas_standard_keys(afas, debtors):
    standard = all_rows(afas, "Profit_Debtor", orderbyfieldids="DebtorId")
    renamed = {"AdressLine1": "AddressLine1", "AdressLine3": "AddressLine3", "AdressLine4": "AddressLine4",
               "ModifiedDate": "DateModified"}
    assert standard == [{k: app[renamed.get(k, k)] for k in PROFIT_DEBTOR} for app in debtors]


def test_delivery_addresses_belong_to_their_debtor_and_the_default_is_one_of_them(afas, debtors):
    addresses = all_rows(afas, "Profit_Deliveryaddress")
    by_debtor = {r["DebtorId"]: r for r in debtors}
    per_debtor = Counter(r["DebiteurID"] for r in addresses)
    assert set(Counter(per_debtor.get(d, 0) for d in by_debtor)) == {0, 1, 2}
    for row in addresses:
        debtor = by_debtor[row["DebiteurID"]]
        assert (row["OrgId"], row["Bedrijf"], row["Is_debiteur"]) == (debtor["BcCo"], debtor["DebtorName"], True)
        assert row["Gewijzigd_op_2"] == debtor["DateModified"] and DISPLAY.match(row["Gewijzigd_op"])
        assert re.fullmatch(r"[A-Z]{2}", row["A_Land"])
    own = {(r["DebiteurID"], r["Adres_ID"]) for r in addresses}
    for debtor in debtors:
        if per_debtor.get(debtor["DebtorId"]):
            assert (debtor["DebtorId"], debtor["DeliveryAddressId"]) in own
        else:
            assert debtor["DeliveryAddressId"] is None


def test_profit_contacts_app_is_every_contact_with_the_sync_ids(afas):
    sync = {r["ContactId"]: r for r in all_rows(afas, "Sync_Contacts")}
    organisations = {r["OrganisationId"]: r for r in all_rows(afas, "Sync_Organisations")}
    app = all_rows(afas, "Profit_Contacts_App")
    assert [r["ContactId"] for r in app] == list(sync)
    for row in app:
        contact = sync[row["ContactId"]]
        same = ("PersonId", "OrganisationId", "MailWork", "Blocked", "IsDebtor", "PermissionNewsletter", "HardBounce")
        assert [row[k] for k in same] == [contact[k] for k in same]
        assert (row["OrgNumber"], row["PerNumber"], row["Type"]) == (
            contact["OrganisationId"], contact["PersonId"], contact["ContactKind"])
        assert row["ModifiedDate"] == contact["ContactModified"] and row["PersonModified"] == contact["PersonModified"]
        org = organisations.get(row["OrganisationId"])
        assert row["OrganisationName"] == (org["Name"] if org else None)
    assert any(r["TelWork"] for r in app) and any(r["MobWork"] for r in app)


def test_edge_cases_exist_in_the_default_dataset(afas, admin, debtors):
    assert sum(r["Email"] is None for r in debtors) >= 1, "a debtor without e-mail"
    lines = Counter((r["AddressLine1"], r["AddressLine3"]) for r in debtors)
    assert max(lines.values()) >= 3, "several debtors at one address"
    assert max(Counter(r["Email"] for r in debtors if r["Email"]).values()) >= 2, "one invoice mailbox, two debtors"
    assert any(r["Email"] and r["Email"] != r["Email"].strip().lower() for r in debtors)
    countries = Counter(r["AddressLine4"] for r in debtors)
    assert {"Nederland", "België", "Duitsland", "Verenigd Koninkrijk"} <= set(countries)
    for row in debtors:
        assert re.fullmatch(POSTCODES[row["AddressLine4"]], row["AddressLine3"]), row["AddressLine3"]
    british = next(r for r in debtors if r["AddressLine4"] == "Verenigd Koninkrijk")
    assert re.fullmatch(r"\d+[A-Z]? .+", british["AddressLine1"]), "the number before the street"
    assert british["CurrencyId"] == "GBP"
    phones = [r["TelNr"] for r in debtors]
    assert set(PLANTED_PHONES) <= set(phones), "every way of typing a number"
    assert any(p and p.startswith("0032") for p in phones) and any(p and p.startswith("+44") for p in phones)
    assert any(r["Blocked"] for r in debtors) and not all(r["Blocked"] for r in debtors)
    assert any(r["PersonId"] for r in debtors) and any(r["OrganisationId"] for r in debtors)
    for iban in (r["IBAN"] for r in debtors if r["IBAN"]):
        digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
        assert int(digits) % 97 == 1, iban
    modified = np.array([_ms(dt.datetime.fromisoformat(r["ModifiedDate"].replace("Z", "+00:00")))
                         for r in admin.get("/records/debtors").json()])
    for change in ((2026, 3, 29), (2026, 10, 25)):  # 01:00 UTC: both DST changes
        at, hour = _ms(dt.datetime(*change, 1, tzinfo=dt.timezone.utc)), 3_600_000
        assert ((modified >= at - hour) & (modified < at)).any() and ((modified >= at) & (modified < at + hour)).any()


@pytest.mark.parametrize("contacts,seed", [(3000, 7), (300, 2)])
def test_same_seed_same_debtors_and_the_crm_tables_untouched(monkeypatch, contacts, seed):
    first, second = generate(contacts, seed), generate(contacts, seed)
    for table in ("debtors", "delivery_addresses"):
        assert first[table].keys() == second[table].keys()
        for name, values in first[table].items():
            assert np.array_equal(values, second[table][name]), (table, name)
    assert not np.array_equal(first["debtors"]["Phone"], generate(contacts, seed + 1)["debtors"]["Phone"])
    # The debtors draw from a stream of their own: without them the other tables are exactly the same.
    monkeypatch.setattr(dataset, "debtors", lambda orgs, persons, s: {})
    bare = generate(contacts, seed)
    for table in ("organisations", "persons", "contacts"):
        for name, values in bare[table].items():
            assert np.array_equal(values, first[table][name]), (table, name)


# --- admin -------------------------------------------------------------------------------------------------

def test_admin_edit_stamps_date_modified_and_a_window_filter_finds_it(afas, admin, debtors):
    target = debtors[20]["DebtorId"]
    state = admin.get("/state").json()
    assert state["counts"]["debtors"] == len(debtors)
    assert state["counts"]["delivery_addresses"] == len(all_rows(afas, "Profit_Deliveryaddress"))
    edited = admin.post("/edit", json={"table": "debtors", "key": target, "at": "2026-10-25T00:30:00.250Z",
                                       "fields": {"MailWork": "nieuw@debiteur.example", "CreditLimit": 1234.56}})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["ModifiedDate"], edited.json()["CreditLimit"]) == ("2026-10-25T00:30:00.250Z", 1234.56)
    window = _rows(afas, "Profit_Debtor_App", filterfieldids="DateModified,DateModified",
                   filtervalues="2026-10-25T02:30:00,2026-10-25T02:31:00", operatortypes="2,5")
    found = [r for r in window if r["DebtorId"] == target]
    assert found and found[0]["DateModified"] == "2026-10-25T02:30:00Z"  # CEST, the first 02:30 of that night
    assert (found[0]["Email"], found[0]["CreditLimit"]) == ("nieuw@debiteur.example", 1234.56)
    before = next(r for r in debtors if r["DebtorId"] == target)
    assert before["DateModified"] != found[0]["DateModified"]

    address = all_rows(afas, "Profit_Deliveryaddress")[0]
    admin.post("/edit", json={"table": "delivery_addresses", "key": address["Adres_ID"], "fields": {"City": "Delft"},
                              "at": "2026-03-29T01:00:00Z"}).raise_for_status()
    after = _rows(afas, "Profit_Deliveryaddress", filterfieldids="Adres_ID", filtervalues=str(address["Adres_ID"]),
                  operatortypes="1")[0]
    assert (after["A_Woonplaats"], after["Gewijzigd_op"]) == ("Delft", "2026-03-29T03:00:00Z")
    assert after["Gewijzigd_op_2"] == address["Gewijzigd_op_2"], "the debtor itself did not change"


def test_admin_insert_and_delete_keep_the_relation_is_debtor_flag(afas, admin):
    code = admin.post("/insert", json={"table": "organisations", "at": "2026-01-01T00:00:00Z",
                                       "fields": {"Name": "Nieuwe Klant B.V."}}).json()["OrganisationId"]
    org = _rows(afas, "Sync_Organisations", filterfieldids="OrganisationId", filtervalues=code, operatortypes="1")[0]
    assert not org["IsDebtor"]
    created = admin.post("/insert", json={"table": "debtors", "at": "2026-01-02T03:04:05Z", "fields": {
        "OrganisationId": org["OrganisationId"], "Name": org["Name"], "MailWork": "facturen@nieuw.example",
        "Country": "NL", "Blocked": False}})
    assert created.status_code == 200, created.text
    debtor = created.json()["DebtorId"]
    existing = [int(r["DebtorId"]) for r in admin.get("/records/debtors").json() if r["DebtorId"] != debtor]
    assert int(debtor) > max(existing)
    flagged = _rows(afas, "Sync_Organisations", filterfieldids="OrganisationId", filtervalues=org["OrganisationId"],
                    operatortypes="1")[0]
    assert flagged["IsDebtor"] and flagged["ModifiedDate"] == org["ModifiedDate"]
    again = admin.post("/insert", json={"table": "debtors", "fields": {"OrganisationId": org["OrganisationId"]}})
    assert again.status_code == 409
    refused = admin.post("/delete", json={"table": "organisations", "key": code})
    assert refused.status_code == 409 and "debtor" in refused.json()["error"]

    address = admin.post("/insert", json={"table": "delivery_addresses", "fields": {
        "DebtorId": debtor, "Street": "Kade", "HouseNumber": 3, "PostalCode": "1011 AB", "City": "Amsterdam",
        "Country": "NL"}}).json()
    assert admin.post("/edit", json={"table": "debtors", "key": debtor,
                                     "fields": {"DeliveryAddressId": address["AddressId"]}}).status_code == 200
    others = _rows(afas, "Profit_Deliveryaddress", filterfieldids="DebiteurID", filtervalues=debtor, operatortypes="7")
    assert admin.post("/edit", json={"table": "debtors", "key": debtor,
                                     "fields": {"DeliveryAddressId": others[0]["Adres_ID"]}}).status_code == 400
    assert admin.post("/delete", json={"table": "delivery_addresses", "key": address["AddressId"]}).status_code == 200
    assert admin.get("/records/debtors", params={"key": debtor}).json()[0]["DeliveryAddressId"] is None

    admin.post("/insert", json={"table": "delivery_addresses", "fields": {"DebtorId": debtor}}).raise_for_status()
    assert admin.post("/delete", json={"table": "debtors", "key": debtor}).json() == {"deleted": debtor}
    left = _rows(afas, "Profit_Deliveryaddress", filterfieldids="DebiteurID", filtervalues=debtor, operatortypes="1")
    assert left == []
    assert not _rows(afas, "Sync_Organisations", filterfieldids="OrganisationId", filtervalues=org["OrganisationId"],
                     operatortypes="1")[0]["IsDebtor"]


@pytest.mark.parametrize("body,status", [
    ({"table": "debtors", "key": "20001", "fields": {"OrganisationId": "100001"}}, 400),  # set on insert only
    ({"table": "debtors", "key": "20001", "fields": {"DebtorId": "1"}}, 400),
    ({"table": "debtors", "key": "20001", "fields": {"CreditLimit": "veel"}}, 400),
    ({"table": "debtors", "key": "20001", "fields": {"CreditLimit": True}}, 400),
    ({"table": "debtors", "key": "20001", "fields": {"DeliveryAddressId": 1}}, 400),
    ({"table": "debtors", "key": "99", "fields": {"Blocked": True}}, 404),
    ({"table": "delivery_addresses", "key": 50001, "fields": {"DebtorId": "20002"}}, 400),
])
def test_invalid_debtor_edits_are_refused_and_change_nothing(admin, body, status):
    version = admin.get("/state").json()["version"]
    response = admin.post("/edit", json=body)
    assert response.status_code == status and response.json()["error"]
    assert admin.get("/state").json()["version"] == version


@pytest.mark.parametrize("fields", [{}, {"OrganisationId": "100000", "PersonId": "100700"}, {"OrganisationId": "nope"}])
def test_a_debtor_is_for_exactly_one_existing_relation(admin, fields):
    assert admin.post("/insert", json={"table": "debtors", "fields": fields}).status_code == 400


# --- dataset -----------------------------------------------------------------------------------------------

def test_dataset_round_trip_keeps_debtors_and_delivery_addresses(afas, admin):
    admin.post("/edit", json={"table": "debtors", "key": "20003", "fields": {"Phone": "+31 (0)6-1234 5678"},
                              "at": "2026-10-25T01:30:00.500Z"}).raise_for_status()
    exported = admin.get("/dataset").json()
    assert exported["tables"]["debtors"] and exported["tables"]["delivery_addresses"]
    before = {c: all_rows(afas, c) for c in DEBTOR_CONNECTORS}
    admin.post("/dataset/generate", json={"contacts": 150, "seed": 1}).raise_for_status()
    assert all_rows(afas, "Profit_Debtor_App") != before["Profit_Debtor_App"]
    state = admin.post("/dataset", json=exported).json()
    assert state["counts"]["debtors"] == len(before["Profit_Debtor"])
    assert {c: all_rows(afas, c) for c in DEBTOR_CONNECTORS} == before
    assert admin.get("/dataset").json() == exported


def test_a_document_from_before_debtors_gets_them_from_is_debtor(afas, admin):
    generated = all_rows(afas, "Profit_Debtor_App")
    exported = admin.get("/dataset").json()
    del exported["tables"]["debtors"], exported["tables"]["delivery_addresses"]
    admin.post("/dataset", json=exported).raise_for_status()
    assert all_rows(afas, "Profit_Debtor_App") == generated
