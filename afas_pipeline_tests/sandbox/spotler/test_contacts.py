"""Contacts keyed by externalId: upsert, merge vs purge, per-contact result codes, no hard delete."""

from __future__ import annotations

import time

import httpx

from afas_sandbox.server import Sandbox
from afas_pipeline_tests.sandbox.spotler.conftest import contact, email_active, permissions, upsert

JAN = {"externalId": "1001", "properties": {"email": "jan@example.nl", "firstName": "Jan", "infix": "de",
                                           "lastName": "Vries", "permissions": [{"bit": 1, "enabled": True}]}}


def test_properties_list_describes_the_account(spotler: httpx.Client):
    props = {p["name"]: p for p in spotler.get("contact/properties/list").json()}
    assert props["email"]["type"] == "email" and props["gender"]["type"] == "gender"
    for name in ("firstName", "infix", "lastName", "initials", "organisation", "function", "city", "country",
                 "afasPersonId", "afasOrganisationId", "debtor"):
        assert props[name]["type"] == "string", name
    assert props["permissions"]["type"] == "set"
    assert props["permissions"]["entries"] == [{"bit": 1, "description": "Nieuwsbrief", "rank": 1},
                                               {"bit": 2, "description": "Evenementen", "rank": 2}]


def test_post_contact_creates_with_204_and_reads_back_in_spotler_shape(spotler: httpx.Client):
    before = int(time.time() * 1000)
    response = spotler.post("contact", json={"update": False, "purge": False, "contact": JAN})
    assert response.status_code == 204 and response.content == b""
    doc = contact(spotler, "1001")
    assert set(doc) == {"externalId", "encryptedId", "created", "lastChanged", "testGroup", "temporary",
                        "properties", "channels"}
    assert doc["externalId"] == "1001" and doc["encryptedId"] and doc["testGroup"] is False
    assert before <= doc["created"] == doc["lastChanged"] <= int(time.time() * 1000)
    assert doc["properties"] == {"email": "jan@example.nl", "firstName": "Jan", "infix": "de", "lastName": "Vries",
                                 "permissions": [{"bit": 1, "enabled": True, "description": "Nieuwsbrief"},
                                                 {"bit": 2, "enabled": False, "description": "Evenementen"}]}
    assert doc["channels"] == [{"name": "EMAIL", "value": True}]


def test_create_only_on_an_existing_contact_is_contact_already_exists(spotler: httpx.Client):
    assert spotler.post("contact", json={"update": False, "contact": JAN}).status_code == 204
    response = spotler.post("contact", json={"update": False, "contact": JAN})
    assert response.status_code == 400
    assert response.json()["errorType"] == "CONTACT_ALREADY_EXISTS"
    assert upsert(spotler, JAN, update=False)[0]["code"] == "CONTACT_ALREADY_EXISTS"


def test_put_updates_an_existing_contact_and_404s_an_unknown_one(spotler: httpx.Client):
    upsert(spotler, JAN)
    response = spotler.put("contact/1001", json={"purge": False, "contact": {"properties": {"city": "Zwolle"}}})
    assert response.status_code == 204
    assert contact(spotler, "1001")["properties"]["city"] == "Zwolle"
    response = spotler.put("contact/9999", json={"purge": False, "contact": {"properties": {"city": "Zwolle"}}})
    assert response.status_code == 404
    assert response.json()["errorType"] == "CONTACT_NOT_FOUND"
    assert spotler.get("contact/9999").json() == {"errorType": "CONTACT_NOT_FOUND", "message": "Contact not found"}


def test_merge_keeps_omitted_properties_and_merges_permissions_per_bit(spotler: httpx.Client):
    upsert(spotler, JAN)
    upsert(spotler, {"externalId": "1001", "properties": {"lastName": "Visser",
                                                         "permissions": [{"bit": 2, "enabled": True}]}})
    doc = contact(spotler, "1001")
    assert doc["properties"]["firstName"] == "Jan" and doc["properties"]["lastName"] == "Visser"
    assert permissions(doc) == {1: True, 2: True}
    upsert(spotler, {"externalId": "1001", "properties": {"infix": None, "permissions": [{"bit": 1, "enabled": False}]}})
    doc = contact(spotler, "1001")
    assert "infix" not in doc["properties"] and permissions(doc) == {1: False, 2: True}


def test_purge_replaces_the_stored_properties(spotler: httpx.Client):
    upsert(spotler, {**JAN, "properties": {**JAN["properties"], "permissions": [{"bit": 1, "enabled": True},
                                                                                 {"bit": 2, "enabled": True}]}})
    upsert(spotler, {"externalId": "1001", "properties": {"email": "jan@example.nl", "lastName": "Visser",
                                                         "permissions": [{"bit": 2, "enabled": True}]}}, purge=True)
    doc = contact(spotler, "1001")
    assert {k: v for k, v in doc["properties"].items() if k != "permissions"} == {"email": "jan@example.nl",
                                                                                   "lastName": "Visser"}
    assert permissions(doc) == {1: False, 2: True}


def test_contact_list_reports_a_code_per_contact_in_request_order(spotler: httpx.Client):
    upsert(spotler, {"externalId": "exists"})
    results = upsert(spotler,
                     {"externalId": "ok", "properties": {"email": "ok@example.nl"}},
                     {"externalId": "bad-mail", "properties": {"email": "no-at-sign.example.nl"}},
                     {"externalId": "unknown-prop", "properties": {"shoeSize": "44"}},
                     {"externalId": "bad-bit", "properties": {"permissions": [{"bit": 7, "enabled": True}]}},
                     {"externalId": "bad-gender", "properties": {"gender": "V"}},
                     {"externalId": "too-long", "properties": {"organisation": "x" * 256}},
                     {"externalId": "exists"},
                     {"properties": {"email": "no-id@example.nl"}},
                     update=False)
    assert [(r["externalId"], r["code"]) for r in results] == [
        ("ok", "OK"), ("bad-mail", "PROPERTY_INVALID"), ("unknown-prop", "PROPERTY_INVALID"),
        ("bad-bit", "PROPERTY_INVALID"), ("bad-gender", "PROPERTY_INVALID"), ("too-long", "PROPERTY_INVALID"),
        ("exists", "CONTACT_ALREADY_EXISTS"), (None, "ERROR")]
    assert results[0]["message"] is None and "shoeSize" in results[2]["message"]
    assert spotler.get("contact/bad-mail").status_code == 404  # a refused contact is not stored at all


def test_email_syntax_is_checked_and_surrounding_spaces_trimmed(spotler: httpx.Client):
    good = ["a@b.nl", "Zoë.Çelik@example.com", "o'brien+news@sub.example.co.uk", "  UPPER@EXAMPLE.NL "]
    bad = ["a@b", "a b@example.nl", "a@@example.nl", "@example.nl", "a@example.nl;b@example.nl", "a@-x.nl"]
    results = upsert(spotler, *({"externalId": f"g{i}", "properties": {"email": e}} for i, e in enumerate(good)),
                     *({"externalId": f"b{i}", "properties": {"email": e}} for i, e in enumerate(bad)))
    assert [r["code"] for r in results] == ["OK"] * len(good) + ["PROPERTY_INVALID"] * len(bad)
    assert contact(spotler, "g3")["properties"]["email"] == "UPPER@EXAMPLE.NL"


def test_single_contact_write_with_an_invalid_property_is_400_invalid_property(spotler: httpx.Client):
    response = spotler.post("contact", json={"update": True, "contact": {"externalId": "x",
                                                                         "properties": {"email": "nope"}}})
    assert response.status_code == 400 and response.json()["errorType"] == "INVALID_PROPERTY"


def test_batches_over_1000_contacts_are_refused_whole(spotler: httpx.Client, spotler_admin: httpx.Client):
    response = spotler.post("contact/list", json={"update": True, "purge": False,
                                                  "contacts": [{"externalId": str(i)} for i in range(1001)]})
    assert response.status_code == 400 and response.json()["errorType"] == "INVALID_PARAMS"
    assert spotler_admin.get("state").json()["contacts"] == 0
    assert len(upsert(spotler, *({"externalId": str(i)} for i in range(1000)))) == 1000


def test_invalid_json_is_invalid_params(spotler: httpx.Client):
    response = spotler.post("contact/list", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["errorType"] == "INVALID_PARAMS"


def test_there_is_no_hard_delete(spotler: httpx.Client):
    upsert(spotler, JAN)
    response = spotler.delete("contact/1001")
    assert response.status_code == 405 and "errorType" in response.json()
    assert contact(spotler, "1001")["properties"]["firstName"] == "Jan"


def test_inactivate_and_anonymize(spotler: httpx.Client):
    upsert(spotler, JAN, {**JAN, "externalId": "1002"})
    assert spotler.put("contact/inactivate/1001").status_code == 204
    assert email_active(contact(spotler, "1001")) is False
    assert contact(spotler, "1001")["properties"]["firstName"] == "Jan"
    assert spotler.put("contact/anonymize/1002").status_code == 204
    doc = contact(spotler, "1002")
    assert {k for k in doc["properties"]} == {"permissions"} and permissions(doc) == {1: False, 2: False}
    assert email_active(doc) is False
    assert spotler.put("contact/inactivate/nobody").json()["errorType"] == "CONTACT_NOT_FOUND"


def test_every_change_stamps_last_changed_but_an_identical_write_does_not(spotler: httpx.Client,
                                                                          spotler_admin: httpx.Client):
    upsert(spotler, JAN)
    first = contact(spotler, "1001")["lastChanged"]
    upsert(spotler, JAN)
    assert contact(spotler, "1001")["lastChanged"] == first
    assert len(spotler_admin.get("changes").json()) == 1
    at = "2030-01-01T00:00:00Z"
    spotler_admin.post("recipients/1001/unsubscribe", json={"bit": 1, "at": at}).raise_for_status()
    assert contact(spotler, "1001")["lastChanged"] == 1893456000000
    upsert(spotler, {"externalId": "1001", "properties": {"city": "Assen"}})
    assert first <= contact(spotler, "1001")["lastChanged"] < 1893456000000 + 1  # stamped with the write's now
    changes = spotler_admin.get("changes").json()
    assert [(c["change"], c["source"]) for c in changes] == [("created", "api"), ("unsubscribe bit 1", "recipient"),
                                                             ("updated", "api")]


def test_hard_bounce_inactivates_and_only_a_write_with_email_channel_on_reactivates(spotler: httpx.Client,
                                                                                   spotler_admin: httpx.Client):
    upsert(spotler, JAN)
    spotler_admin.post("recipients/1001/bounce", json={"type": "hard"}).raise_for_status()
    assert email_active(contact(spotler, "1001")) is False
    upsert(spotler, {"externalId": "1001", "properties": {"firstName": "Johannes"}})
    assert email_active(contact(spotler, "1001")) is False
    upsert(spotler, {"externalId": "1001", "properties": {"email": "jan@nieuw.nl"},
                     "channels": [{"name": "EMAIL", "value": True}]})
    doc = contact(spotler, "1001")
    assert email_active(doc) is True and doc["properties"]["email"] == "jan@nieuw.nl"


def test_soft_bounce_only_records_the_bounce(spotler: httpx.Client, spotler_admin: httpx.Client):
    upsert(spotler, JAN)
    before = contact(spotler, "1001")
    spotler_admin.post("recipients/1001/bounce", json={"type": "soft"}).raise_for_status()
    assert contact(spotler, "1001") == before
    bounces = spotler.get("contact/bounces/list", params={"fromDate": "2020-01-01T00:00:00Z"}).json()
    assert [b["type"] for b in bounces] == ["SOFTBOUNCE"]


def test_batches_of_1000_on_a_large_account_are_all_stored(spotler_sandbox_clean: Sandbox, spotler: httpx.Client):
    """The benchmark pushes 100k contacts through here (its timings are in bench/, not here)."""
    spotler_sandbox_clean.spotler.account.load({"contacts": [
        {"externalId": f"L{i}", "created": 1, "lastChanged": 1, "properties": {"email": f"l{i}@example.nl"}}
        for i in range(50_000)]})
    for n in range(6):
        batch = [{"externalId": f"L{n * 1000 + i}", "properties": {
            "email": f"l{i}@example.nl", "firstName": "Zoë", "lastName": "Ødegaard", "organisation": "Bakkerij",
            "city": "’s-Hertogenbosch", "afasPersonId": str(i), "permissions": [{"bit": 1, "enabled": True}]}}
            for i in range(1000)]
        results = upsert(spotler, *batch)
        assert all(r["code"] == "OK" for r in results)
    account = spotler_sandbox_clean.spotler.account
    assert len(account.contacts) == 50_000
    stored = account.get("L5999")
    assert stored.properties["city"] == "’s-Hertogenbosch" and stored.permissions == {1: True}
