"""Members by subscriber hash: upsert with status_if_new, status only when sent, PATCH, archive, delete-permanent,
tags, and Mailchimp's refusals (Member Exists, Member In Compliance State, Forgotten Email Not Subscribed,
Invalid Resource, 404) as problem+json."""

from __future__ import annotations

import httpx
import pytest

from afas_pipeline_tests.sandbox.mailchimp.conftest import problem, put_member, subscriber_hash

COMPLETE_ADDRESS = {"addr1": "Dorpsstraat 1", "city": "Utrecht", "state": "UT", "zip": "3511 AA", "country": "NL"}


def test_put_creates_a_member_with_status_if_new_under_its_subscriber_hash(mailchimp: httpx.Client, members: str):
    doc = put_member(mailchimp, members, "  Jan.Jansen@Voorbeeld.example ", status_if_new="pending",
                     merge_fields={"FNAME": "Jan", "LNAME": "Jansen", "COMPANY": "Voorbeeld BV"})
    assert doc["id"] == subscriber_hash("jan.jansen@voorbeeld.example")
    assert doc["email_address"] == "Jan.Jansen@Voorbeeld.example"
    assert (doc["status"], doc["full_name"]) == ("pending", "Jan Jansen")
    assert doc["merge_fields"] == {"FNAME": "Jan", "LNAME": "Jansen", "ADDRESS": "", "PHONE": "",
                                   "COMPANY": "Voorbeeld BV", "AFASID": "", "JOBTITLE": ""}
    assert doc["last_changed"].endswith("+00:00") and len(doc["unique_email_id"]) == 10
    assert mailchimp.get(f"{members}/{doc['id']}").json() == doc


def test_status_if_new_is_ignored_for_an_existing_member_and_status_changes_only_when_sent(
        mailchimp: httpx.Client, members: str):
    put_member(mailchimp, members, "a@voorbeeld.example", status_if_new="subscribed")
    kept = put_member(mailchimp, members, "a@voorbeeld.example", status_if_new="unsubscribed",
                      merge_fields={"FNAME": "Anna"})
    assert (kept["status"], kept["merge_fields"]["FNAME"]) == ("subscribed", "Anna")
    changed = put_member(mailchimp, members, "a@voorbeeld.example", status="unsubscribed")
    assert changed["status"] == "unsubscribed"
    assert changed["unsubscribe_reason"]
    again = put_member(mailchimp, members, "a@voorbeeld.example", merge_fields={"LNAME": "Bakker"})
    assert again["status"] == "unsubscribed", "a write without status leaves an unsubscribe alone"


def test_patch_merges_merge_fields_and_an_empty_string_clears_one(mailchimp: httpx.Client, members: str):
    put_member(mailchimp, members, "b@voorbeeld.example", merge_fields={"FNAME": "Bas", "LNAME": "Boer",
                                                                       "PHONE": "+31 30 123 4567"})
    response = mailchimp.patch(f"{members}/{subscriber_hash('b@voorbeeld.example')}",
                               json={"merge_fields": {"LNAME": "", "COMPANY": "Boer BV"}})
    assert response.status_code == 200, response.text
    assert response.json()["merge_fields"] == {"FNAME": "Bas", "LNAME": "", "ADDRESS": "", "PHONE": "+31 30 123 4567",
                                               "COMPANY": "Boer BV", "AFASID": "", "JOBTITLE": ""}
    problem(mailchimp.patch(f"{members}/{subscriber_hash('nobody@voorbeeld.example')}", json={}), 404,
            "Resource Not Found")


def test_last_changed_moves_only_when_a_write_changes_something(mailchimp: httpx.Client,
                                                                 mailchimp_admin: httpx.Client, members: str):
    mailchimp_admin.put("clock", json={"offset_s": -86400}).raise_for_status()  # yesterday
    first = put_member(mailchimp, members, "c@voorbeeld.example", merge_fields={"FNAME": "Cor"})
    mailchimp_admin.put("clock", json={"offset_s": 0}).raise_for_status()
    same = put_member(mailchimp, members, "c@voorbeeld.example", merge_fields={"FNAME": "Cor"})
    assert same["last_changed"] == first["last_changed"]
    edited = put_member(mailchimp, members, "c@voorbeeld.example", merge_fields={"FNAME": "Corrie"})
    assert edited["last_changed"] > first["last_changed"]
    assert [c["change"] for c in mailchimp_admin.get("changes").json()] == ["created", "updated"]


def test_delete_archives_and_a_put_brings_the_member_back(mailchimp: httpx.Client, members: str):
    url = f"{members}/{subscriber_hash('d@voorbeeld.example')}"
    put_member(mailchimp, members, "d@voorbeeld.example")
    assert mailchimp.delete(url).status_code == 204
    assert mailchimp.get(url).json()["status"] == "archived"
    problem(mailchimp.delete(url), 404, "Resource Not Found")
    back = put_member(mailchimp, members, "d@voorbeeld.example", status_if_new="pending")
    assert back["status"] == "pending"


def test_an_archived_member_who_had_unsubscribed_cannot_be_resubscribed_either(
        mailchimp: httpx.Client, mailchimp_admin: httpx.Client, members: str):
    put_member(mailchimp, members, "e@voorbeeld.example")
    mailchimp_admin.post("members/e@voorbeeld.example/unsubscribe", json={}).raise_for_status()
    assert mailchimp.delete(f"{members}/e@voorbeeld.example").status_code == 204
    refused = mailchimp.put(f"{members}/{subscriber_hash('e@voorbeeld.example')}",
                            json={"email_address": "e@voorbeeld.example", "status_if_new": "subscribed"})
    problem(refused, 400, "Member In Compliance State")


def test_delete_permanent_then_reimport_is_forgotten_email_not_subscribed(mailchimp: httpx.Client, members: str):
    email = "f@voorbeeld.example"
    url = f"{members}/{subscriber_hash(email)}"
    put_member(mailchimp, members, email)
    assert mailchimp.post(f"{url}/actions/delete-permanent").status_code == 204
    problem(mailchimp.get(url), 404, "Resource Not Found")
    for status in ("subscribed", "pending"):
        refused = mailchimp.put(url, json={"email_address": email, "status_if_new": status})
        body = problem(refused, 400, "Forgotten Email Not Subscribed")
        assert body["detail"].startswith(f"{email} was permanently deleted and cannot be re-imported")
    problem(mailchimp.post(members, json={"email_address": email.upper(), "status": "pending"}), 400,
            "Forgotten Email Not Subscribed")
    problem(mailchimp.post(f"{url}/actions/delete-permanent"), 404, "Resource Not Found")


@pytest.mark.parametrize("action", ["unsubscribe", "clean"])
def test_resubscribing_an_unsubscribed_or_cleaned_member_is_member_in_compliance_state(
        mailchimp: httpx.Client, mailchimp_admin: httpx.Client, members: str, action):
    email = "g@voorbeeld.example"
    url = f"{members}/{subscriber_hash(email)}"
    put_member(mailchimp, members, email)
    mailchimp_admin.post(f"members/{email}/{action}", json={}).raise_for_status()
    status = "unsubscribed" if action == "unsubscribe" else "cleaned"
    body = problem(mailchimp.put(url, json={"email_address": email, "status": "subscribed",
                                            "status_if_new": "subscribed"}), 400, "Member In Compliance State")
    assert body["detail"] == (f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review "
                              f"and cannot be subscribed.")
    problem(mailchimp.patch(url, json={"status": "subscribed"}), 400, "Member In Compliance State")
    assert mailchimp.get(url).json()["status"] == status, "a refused write changes nothing"
    kept = put_member(mailchimp, members, email, merge_fields={"FNAME": "Gijs"})
    assert kept["status"] == status and kept["merge_fields"]["FNAME"] == "Gijs"
    assert put_member(mailchimp, members, email, status="pending")["status"] == "pending"


def test_post_of_an_existing_member_is_member_exists(mailchimp: httpx.Client, members: str):
    put_member(mailchimp, members, "h@voorbeeld.example")
    body = problem(mailchimp.post(members, json={"email_address": "H@voorbeeld.example", "status": "subscribed"}),
                   400, "Member Exists")
    assert body["detail"] == ("H@voorbeeld.example is already a list member. Use PUT to insert or update list "
                              "members.")
    created = mailchimp.post(members, json={"email_address": "i@voorbeeld.example", "status": "subscribed",
                                            "tags": ["klant"]})
    assert created.status_code == 200 and [t["name"] for t in created.json()["tags"]] == ["klant"]


def test_put_with_another_address_renames_the_member(mailchimp: httpx.Client, members: str):
    old = put_member(mailchimp, members, "oud@voorbeeld.example", merge_fields={"FNAME": "Olga"})
    renamed = mailchimp.put(f"{members}/{old['id']}", json={"email_address": "nieuw@voorbeeld.example",
                                                             "status_if_new": "subscribed"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["id"] == subscriber_hash("nieuw@voorbeeld.example")
    assert (renamed.json()["contact_id"], renamed.json()["merge_fields"]["FNAME"]) == (old["contact_id"], "Olga")
    problem(mailchimp.get(f"{members}/{old['id']}"), 404, "Resource Not Found")
    put_member(mailchimp, members, "ander@voorbeeld.example")
    taken = mailchimp.patch(f"{members}/{renamed.json()['id']}", json={"email_address": "ander@voorbeeld.example"})
    problem(taken, 400, "Member Exists")


def test_put_on_a_hash_of_no_member_whose_address_is_a_member_is_member_exists(mailchimp: httpx.Client,
                                                                                members: str):
    put_member(mailchimp, members, "j@voorbeeld.example")
    wrong_hash = subscriber_hash("someone-else@voorbeeld.example")
    problem(mailchimp.put(f"{members}/{wrong_hash}", json={"email_address": "j@voorbeeld.example",
                                                           "status_if_new": "subscribed"}), 400, "Member Exists")


@pytest.mark.parametrize("email, message", [
    ("no-at-sign.example", "Please provide a valid email address."),
    ("jan@localhost", "Please provide a valid email address."),
    ("jan jansen@voorbeeld.example", "Please provide a valid email address."),
    ("", "This value should not be blank."),
    (None, "This value should not be blank."),
])
def test_an_invalid_email_is_invalid_resource_with_errors(mailchimp: httpx.Client, members: str, email, message):
    body = {"status_if_new": "subscribed"} | ({} if email is None else {"email_address": email})
    refused = problem(mailchimp.put(f"{members}/{subscriber_hash(email or 'x')}", json=body), 400,
                      "Invalid Resource")
    assert refused["errors"] == [{"field": "email_address", "message": message}]
    assert mailchimp.get(members).json()["total_items"] == 0


@pytest.mark.parametrize("address", [
    {"addr1": "Dorpsstraat 1", "city": "Utrecht", "zip": "3511 AA", "country": "NL"},   # no state
    {"street": "Dorpsstraat 1", "city": "Utrecht", "state": "UT", "zip": "3511 AA"},    # street is not addr1
    "Dorpsstraat 1, Utrecht",
])
def test_an_incomplete_address_is_invalid_resource(mailchimp: httpx.Client, members: str, address):
    refused = mailchimp.put(f"{members}/{subscriber_hash('k@voorbeeld.example')}",
                            json={"email_address": "k@voorbeeld.example", "status_if_new": "subscribed",
                                  "merge_fields": {"FNAME": "Kees", "ADDRESS": address}})
    body = problem(refused, 400, "Invalid Resource")
    assert body["detail"] == "Your merge fields were invalid."
    assert body["errors"] == [{"field": "ADDRESS", "message": "Please enter a complete address"}]


def test_a_complete_address_is_stored_with_country_defaulting_to_us(mailchimp: httpx.Client, members: str):
    address = {k: v for k, v in COMPLETE_ADDRESS.items() if k != "country"}
    doc = put_member(mailchimp, members, "l@voorbeeld.example", merge_fields={"ADDRESS": address})
    assert doc["merge_fields"]["ADDRESS"] == {**address, "addr2": "", "country": "US"}


def test_a_merge_value_of_the_wrong_type_names_the_field(mailchimp: httpx.Client, members: str):
    refused = mailchimp.put(f"{members}/{subscriber_hash('m@voorbeeld.example')}",
                            json={"email_address": "m@voorbeeld.example", "status_if_new": "subscribed",
                                  "merge_fields": {"FNAME": True, "UNKNOWN": "ignored"}})
    body = problem(refused, 400, "Invalid Resource")
    assert body["errors"] == [{"field": "merge_fields.FNAME",
                               "message": "Data did not match any of the schemas described in anyOf."}]


def test_a_required_merge_field_is_needed_unless_skip_merge_validation(mailchimp: httpx.Client, members: str,
                                                                       mailchimp_sandbox_clean):
    fields = f"lists/{mailchimp_sandbox_clean.mailchimp_list_id}/merge-fields"
    mailchimp.post(fields, json={"name": "Klantnummer", "tag": "KLANTNR", "type": "text",
                                 "required": True}).raise_for_status()
    url = f"{members}/{subscriber_hash('n@voorbeeld.example')}"
    body = {"email_address": "n@voorbeeld.example", "status_if_new": "subscribed"}
    refused = problem(mailchimp.put(url, json=body), 400, "Invalid Resource")
    assert refused["errors"] == [{"field": "KLANTNR", "message": "Please enter a value"}]
    skipped = mailchimp.put(url, json=body, params={"skip_merge_validation": "true"})
    assert skipped.status_code == 200, skipped.text
    assert put_member(mailchimp, members, "n@voorbeeld.example", merge_fields={"FNAME": "Nina"})["status"] == \
        "subscribed", "an update need not carry a required field it leaves alone"


@pytest.mark.parametrize("body, field", [
    ({"email_address": "o@voorbeeld.example"}, "status_if_new"),
    ({"email_address": "o@voorbeeld.example", "status_if_new": "active"}, "status_if_new"),
    ({"email_address": "o@voorbeeld.example", "status_if_new": "subscribed", "email_type": "pdf"}, "email_type"),
    ({"email_address": "o@voorbeeld.example", "status_if_new": "subscribed", "interests": {"abc": True}},
     "interests"),
])
def test_a_bad_member_document_is_invalid_resource(mailchimp: httpx.Client, members: str, body, field):
    refused = problem(mailchimp.put(f"{members}/{subscriber_hash('o@voorbeeld.example')}", json=body), 400,
                      "Invalid Resource")
    assert refused["errors"][0]["field"] == field


def test_a_body_that_is_not_json_is_a_json_parse_exception(mailchimp: httpx.Client, members: str):
    response = mailchimp.put(f"{members}/{subscriber_hash('p@voorbeeld.example')}", content=b"{not json")
    problem(response, 400, "JSON Parse Exception")


@pytest.mark.parametrize("method, suffix", [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/tags"),
                                            ("POST", "/tags"), ("GET", "/activity"), ("GET", "/activity-feed"),
                                            ("POST", "/actions/delete-permanent")])
def test_an_unknown_member_is_404(mailchimp: httpx.Client, members: str, method, suffix):
    url = f"{members}/{subscriber_hash('nobody@voorbeeld.example')}{suffix}"
    body = {"tags": [{"name": "x", "status": "active"}]} if suffix == "/tags" else {}
    response = mailchimp.request(method, url, json=body if method in ("POST", "PATCH") else None)
    problem(response, 404, "Resource Not Found")


def test_a_member_is_found_by_hash_address_or_contact_id(mailchimp: httpx.Client, members: str):
    doc = put_member(mailchimp, members, "Q@Voorbeeld.example")
    for key in (doc["id"], "q@voorbeeld.example", "Q%40Voorbeeld.example", doc["contact_id"]):
        assert mailchimp.get(f"{members}/{key}").json()["id"] == doc["id"], key


def test_tags_are_added_and_removed(mailchimp: httpx.Client, members: str):
    url = f"{members}/{subscriber_hash('r@voorbeeld.example')}"
    put_member(mailchimp, members, "r@voorbeeld.example")
    response = mailchimp.post(f"{url}/tags", json={"tags": [{"name": "klant", "status": "active"},
                                                            {"name": "afas", "status": "active"}]})
    assert response.status_code == 204 and not response.content
    mailchimp.post(f"{url}/tags", json={"tags": [{"name": "klant", "status": "inactive"}]}).raise_for_status()
    tags = mailchimp.get(f"{url}/tags").json()
    assert [t["name"] for t in tags["tags"]] == ["afas"] and tags["total_items"] == 1
    assert mailchimp.get(url).json()["tags_count"] == 1
    problem(mailchimp.post(f"{url}/tags", json={"tags": [{"name": "x", "status": "on"}]}), 400, "Invalid Resource")
