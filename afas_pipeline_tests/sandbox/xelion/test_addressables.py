"""The address book (reference §C2/§C3): the envelope, create, read -> edit -> changeType -> PUT, numbers in
E.164, cursor paging with meta.paging.nextId, where filters, include, and joining an unknown caller."""

from __future__ import annotations

import httpx
import pytest

from afas_pipeline_tests.sandbox.xelion.conftest import create, place_call, refused


def _organisation(client: httpx.Client, name: str = "Bakkerij De Korenschoof BV", number: str = "010-1234567"):
    return create(client, objectType="Organisation", name=name, kvkNumber="12345678",
                  telecomAddresses=[{"addressType": "Telephone", "address": number}],
                  addresses=[{"addressType": "Visit", "street": "Hoogstraat", "streetNumber": "12",
                              "zipCode": "3011 PT", "city": "Rotterdam", "country": "NL"}])


def test_a_person_employed_at_an_organisation_comes_back_in_the_object_envelope(xelion: httpx.Client):
    org = _organisation(xelion)
    person = create(xelion, objectType="Person", familyName="Jan de Jager",
                    employments=[{"organisation": {"oid": org["oid"]}, "jobTitle": "Inkoper"}],
                    telecomAddresses=[{"addressType": "Mobile", "address": "06 12345678"},
                                      {"addressType": "Email", "address": "jan@korenschoof.example"}])
    read = xelion.get(f"addressables/{person['oid']}").json()
    assert read["object"] == person
    assert {"rel": "self", "href": str(xelion.base_url) + f"addressables/{person['oid']}", "method": "GET"} \
        in read["links"]
    assert (person["givenName"], person["namePrefix"], person["familyName"], person["commonName"]) == (
        "Jan", "de", "Jager", "Jan de Jager")
    employment = person["employments"][0]
    assert employment["organisation"] == {"oid": org["oid"], "objectType": "Organisation",
                                          "commonName": "Bakkerij De Korenschoof BV"}
    assert employment["jobTitle"] == "Inkoper" and employment["changeType"] == "Unmodified"
    assert [t["address"] for t in person["telecomAddresses"]] == ["+31612345678", "jan@korenschoof.example"]
    assert org["addresses"][0]["objectType"] == "DeliveryAddress" and org["addresses"][0]["city"] == "Rotterdam"
    assert all(isinstance(o["oid"], str) and o["oid"].isdigit() for o in [person, *person["telecomAddresses"]])


@pytest.mark.parametrize("typed, e164", [
    ("010-1234567", "+31101234567"), ("010 123 45 67", "+31101234567"), ("+31 (0)10 1234567", "+31101234567"),
    ("0031101234567", "+31101234567"), ("06-12345678", "+31612345678"), ("+32 2 289 26 10", "+3222892610"),
])
def test_phone_numbers_are_stored_in_e164(xelion: httpx.Client, typed, e164):
    org = _organisation(xelion, number=typed)
    assert org["telecomAddresses"][0]["address"] == e164


@pytest.mark.parametrize("number", ["12345678", "010-123456", "bel mij", "+31 6 1234"])
def test_a_number_that_is_not_a_valid_phone_number_is_refused_not_stored_raw(xelion: httpx.Client, number):
    response = xelion.post("addressables", json={"objectType": "Organisation", "name": "X",
                                                 "telecomAddresses": [{"addressType": "Telephone",
                                                                       "address": number}]})
    assert number in refused(response, 400, 10202)["message"]
    assert xelion.get("addressables").json()["data"] == []


def test_update_is_read_edit_change_type_put(xelion: httpx.Client):
    org = _organisation(xelion)
    person = create(xelion, objectType="Person", givenName="Petra", familyName="Visser",
                    telecomAddresses=[{"addressType": "Telephone", "address": "020-7654321"},
                                      {"addressType": "Mobile", "address": "0612345678"}])
    doc = xelion.get(f"addressables/{person['oid']}").json()["object"]
    doc["familyName"] = "Visser-de Boer"
    unmodified = xelion.put(f"addressables/{person['oid']}", json=doc).json()["object"]
    assert unmodified["familyName"] == "Visser", "the object itself says Unmodified: its edit is lost"
    doc["changeType"] = "Modified"
    phone, mobile = doc["telecomAddresses"]
    phone.update(address="020 765 43 21", changeType="Unmodified")  # an edit without Modified is lost
    mobile.update(address="06 87654321", changeType="Modified")
    doc["addresses"] = [{"oid": "", "changeType": "Created", "street": "Kerkstraat", "city": "Utrecht"}]
    doc["employments"] = [{"oid": "", "changeType": "Created", "organisation": {"oid": org["oid"]},
                           "jobTitle": "Directeur"}]
    written = xelion.put(f"addressables/{person['oid']}", json=doc)
    assert written.status_code == 200, written.text
    after = xelion.get(f"addressables/{person['oid']}").json()["object"]
    assert after == written.json()["object"]
    assert after["commonName"] == "Petra Visser-de Boer"
    assert [(t["oid"], t["address"]) for t in after["telecomAddresses"]] == [
        (phone["oid"], "+31207654321"), (mobile["oid"], "+31687654321")]
    assert after["addresses"][0]["oid"].isdigit() and after["addresses"][0]["street"] == "Kerkstraat"
    assert after["employments"][0]["organisation"]["oid"] == org["oid"]

    after["telecomAddresses"][0]["changeType"] = "Removed"
    for sub in after["telecomAddresses"][1:] + after["addresses"] + after["employments"]:
        sub["changeType"] = "Unmodified"
    removed = xelion.put(f"addressables/{person['oid']}", json=after).json()["object"]
    assert [t["address"] for t in removed["telecomAddresses"]] == ["+31687654321"]


@pytest.mark.parametrize("edit, code", [
    (lambda d: d["telecomAddresses"][0].pop("changeType"), 10202),
    (lambda d: d["telecomAddresses"][0].update(changeType="Changed"), 10202),
    (lambda d: d["telecomAddresses"][0].update(changeType="Modified", oid="999999"), 10203),
    (lambda d: d["telecomAddresses"].append({"oid": "5", "changeType": "Created", "addressType": "Mobile",
                                             "address": "0612345678"}), 10203),
    (lambda d: d.update(objectType="Person"), 10203),
    (lambda d: d.update(oid="123"), 10203),
    (lambda d: d["addresses"].__setitem__(0, {**d["addresses"][0], "changeType": "Modified", "city": 7}), 10202),
])
def test_a_put_that_breaks_the_change_type_rules_is_refused_and_changes_nothing(xelion: httpx.Client, edit, code):
    org = _organisation(xelion)
    doc = xelion.get(f"addressables/{org['oid']}").json()["object"]
    doc.update(name="Nieuwe naam", changeType="Modified")
    edit(doc)
    refused(xelion.put(f"addressables/{org['oid']}", json=doc), 400, code)
    assert xelion.get(f"addressables/{org['oid']}").json()["object"] == org


def test_an_employment_names_an_existing_organisation(xelion: httpx.Client):
    person = {"objectType": "Person", "familyName": "Bakker", "employments": [{"organisation": {"oid": "424242"}}]}
    refused(xelion.post("addressables", json=person), 400, 10203)
    refused(xelion.post("addressables", json={"objectType": "UnknownAddressable"}), 400, 10203)
    refused(xelion.post("addressables", json={"objectType": "Organisation"}), 400, 10202)
    refused(xelion.get("addressables/424242"), 404, 10100)


def test_cursor_paging_walks_the_whole_book_by_next_id(xelion: httpx.Client):
    made = [_organisation(xelion, name=f"Organisatie {i}", number=f"010-12345{i:02d}")["oid"] for i in range(7)]
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"after": after} if after else {})}
        page = xelion.get("addressables", params=params).json()
        pages += 1
        seen += [item["object"]["oid"] for item in page["data"]]
        nexts = [link for link in page["meta"]["links"] if link["rel"] == "next"]
        if not nexts:
            break
        after = page["meta"]["paging"]["nextId"]
        assert nexts[0]["href"].endswith(f"after={after}")
    assert (seen, pages) == (made, 3)
    assert xelion.get("addressables").json()["data"].__len__() == 7  # limit defaults to 15
    before = xelion.get("addressables", params={"before": made[5], "limit": 2}).json()
    assert [item["object"]["oid"] for item in before["data"]] == made[3:5]
    refused(xelion.get("addressables", params={"limit": 0}), 400, 10202)


def test_a_listing_follows_every_change_of_the_book(xelion: httpx.Client):
    """The book's order is kept between reads (a read page by page costs a page per page): a creation, an edit, a
    deletion, and a condition of its own each show at once."""
    made = [_organisation(xelion, name=f"Organisatie {i}", number=f"010-12345{i:02d}")["oid"] for i in range(4)]

    def listed(after=None, **params):
        page = xelion.get("addressables", params={**params, **({"after": after} if after else {})}).json()
        return [(item["object"]["oid"], item["object"]["commonName"]) for item in page["data"]]

    assert [oid for oid, _ in listed(after=made[1])] == made[2:]
    newest = _organisation(xelion, name="Organisatie nieuw", number="010-1234599")["oid"]
    assert [oid for oid, _ in listed(after=made[1])] == [*made[2:], newest]
    doc = xelion.get(f"addressables/{made[2]}").json()["object"]
    doc.update(name="Hernoemd BV", changeType="Modified")
    assert xelion.put(f"addressables/{made[2]}", json=doc).status_code == 200
    assert listed(after=made[1])[0] == (made[2], "Hernoemd BV")
    assert [oid for oid, _ in listed(where="name=hernoemd*")] == [made[2]]
    assert xelion.delete(f"addressables/{made[3]}").status_code < 300
    assert [oid for oid, _ in listed(after=made[1])] == [made[2], newest]
    assert [oid for oid, _ in listed(where="name=hernoemd*")] == [made[2]]


def test_where_filters_by_type_name_and_e164_number(xelion: httpx.Client):
    org = _organisation(xelion)
    person = create(xelion, objectType="Person", givenName="Kees", familyName="Jansen",
                    telecomAddresses=[{"addressType": "Mobile", "address": "06 11122233"}])

    def oids(*where, **params):
        response = xelion.get("addressables", params={"where": list(where), **params})
        assert response.status_code == 200, response.text
        return [item["object"]["oid"] for item in response.json()["data"]]

    assert oids("obj_type=Person") == [person["oid"]]
    assert oids("obj_type=Organisation") == [org["oid"]]
    assert oids("name=bakkerij*") == [org["oid"]]
    assert oids("phone=+31611122233") == [person["oid"]]
    assert oids("phone=+3110*", "obj_type=Organisation") == [org["oid"]]
    assert oids("phone=0611122233") == []  # numbers are matched in E.164
    unescaped = xelion.get("addressables?where=phone=+31611122233")  # an unescaped + is a space
    assert unescaped.json()["data"] == []
    summary = xelion.get("addressables", params={"where": "obj_type=Person"}).json()["data"][0]["object"]
    assert summary == {"oid": person["oid"], "objectType": "Person", "commonName": "Kees Jansen"}
    included = xelion.get("addressables", params={"where": "obj_type=Person", "include": "telecomAddresses"})
    assert included.json()["data"][0]["object"]["telecomAddresses"][0]["address"] == "+31611122233"
    refused(xelion.get("addressables", params={"where": "colour=blue"}), 400, 10202)


def test_an_unknown_caller_is_joined_to_a_contact(xelion: httpx.Client, xelion_admin: httpx.Client):
    call = place_call(xelion_admin, number="0301234567")
    unknown = call["participants"][0]["addressable"]
    assert unknown["objectType"] == "UnknownAddressable" and unknown["commonName"] == "+31301234567"
    org = _organisation(xelion)
    refused(xelion.put(f"addressables/{unknown['oid']}", json={"changeType": "Modified"}), 400, 10203)
    refused(xelion.post(f"addressables/{org['oid']}/join", json=unknown["oid"]), 400, 10203)
    joined = xelion.post(f"addressables/{unknown['oid']}/join", json=org["oid"])
    assert joined.status_code == 200, joined.text
    assert [t["address"] for t in joined.json()["object"]["telecomAddresses"]] == ["+31101234567", "+31301234567"]
    refused(xelion.get(f"addressables/{unknown['oid']}"), 404, 10100)
    again = xelion.get(f"communications/{call['oid']}").json()["object"]
    assert again["participants"][0]["addressable"]["oid"] == org["oid"]
    assert place_call(xelion_admin, number="+31301234567")["participants"][0]["addressable"]["oid"] == org["oid"]
