"""Batch subscribe (``POST lists/{id}``: 200 with per-member errors, at most 500) and reading members back:
count/offset paging, since_last_changed windows, status filters, fields."""

from __future__ import annotations

import datetime as dt

import httpx

from afas_pipeline_tests.sandbox.mailchimp.conftest import problem, put_member, subscriber_hash


def batch(client: httpx.Client, members_url: str, members: list[dict], **options) -> dict:
    response = client.post(members_url.rsplit("/", 1)[0], json={"members": members, **options})
    assert response.status_code == 200, response.text
    return response.json()


def test_batch_subscribe_answers_200_with_per_member_errors(mailchimp: httpx.Client, mailchimp_admin: httpx.Client,
                                                            members: str):
    put_member(mailchimp, members, "bestaand@voorbeeld.example")
    put_member(mailchimp, members, "afgemeld@voorbeeld.example")
    mailchimp_admin.post("members/afgemeld@voorbeeld.example/unsubscribe", json={}).raise_for_status()
    put_member(mailchimp, members, "vergeten@voorbeeld.example")
    mailchimp.post(f"{members}/vergeten@voorbeeld.example/actions/delete-permanent").raise_for_status()
    result = batch(mailchimp, members, [
        {"email_address": "nieuw@voorbeeld.example", "status": "subscribed", "merge_fields": {"FNAME": "Nel"}},
        {"email_address": "bestaand@voorbeeld.example", "status": "subscribed"},
        {"email_address": "geen-adres", "status": "subscribed"},
        {"email_address": "adres@voorbeeld.example", "status": "subscribed",
         "merge_fields": {"ADDRESS": {"addr1": "Dorpsstraat 1", "city": "Utrecht"}}},
        {"email_address": "vergeten@voorbeeld.example", "status": "pending"},
        {"email_address": "zonder-status@voorbeeld.example"},
    ])
    assert [m["email_address"] for m in result["new_members"]] == ["nieuw@voorbeeld.example"]
    assert (result["total_created"], result["total_updated"], result["error_count"]) == (1, 0, 5)
    errors = {e["email_address"]: e for e in result["errors"]}
    assert errors["bestaand@voorbeeld.example"]["error_code"] == "ERROR_CONTACT_EXISTS"
    assert errors["geen-adres"]["error_code"] == "ERROR_GENERIC"
    assert errors["geen-adres"]["field"] == "email_address"
    assert (errors["adres@voorbeeld.example"]["field"], errors["adres@voorbeeld.example"]["field_message"]) == (
        "ADDRESS", "Please enter a complete address")
    assert "permanently deleted" in errors["vergeten@voorbeeld.example"]["error"]
    assert errors["zonder-status@voorbeeld.example"]["field"] == "status"

    updated = batch(mailchimp, members, [
        {"email_address": "bestaand@voorbeeld.example", "status": "unsubscribed"},
        {"email_address": "afgemeld@voorbeeld.example", "status": "subscribed"},
        {"email_address": "nieuw@voorbeeld.example", "merge_fields": {"LNAME": "Nooij"}},
    ], update_existing=True)
    assert [m["status"] for m in updated["updated_members"]] == ["unsubscribed", "subscribed"]
    assert updated["updated_members"][1]["merge_fields"]["LNAME"] == "Nooij"
    assert updated["errors"][0]["email_address"] == "afgemeld@voorbeeld.example"
    assert "compliance state" in updated["errors"][0]["error"]
    assert mailchimp.get(f"{members}/afgemeld@voorbeeld.example").json()["status"] == "unsubscribed"


def test_a_batch_holds_at_most_500_members(mailchimp: httpx.Client, members: str):
    too_many = [{"email_address": f"m{i}@voorbeeld.example", "status": "subscribed"} for i in range(501)]
    response = mailchimp.post(members.rsplit("/", 1)[0], json={"members": too_many})
    assert problem(response, 400, "Invalid Resource")["errors"][0]["field"] == "members"
    assert mailchimp.get(members).json()["total_items"] == 0
    assert batch(mailchimp, members, too_many[:500])["total_created"] == 500


def test_paging_with_count_and_offset_returns_every_member_once(mailchimp: httpx.Client, members: str):
    batch(mailchimp, members, [{"email_address": f"p{i:02}@voorbeeld.example", "status": "subscribed"}
                               for i in range(25)])
    first = mailchimp.get(members).json()
    assert len(first["members"]) == 10 and first["total_items"] == 25
    seen = []
    for offset in range(0, 30, 10):
        page = mailchimp.get(members, params={"count": 10, "offset": offset}).json()
        seen += [m["email_address"] for m in page["members"]]
    assert seen == [f"p{i:02}@voorbeeld.example" for i in range(25)]
    problem(mailchimp.get(members, params={"count": 1001}), 400, "Invalid Resource")
    problem(mailchimp.get(members, params={"offset": -1}), 400, "Invalid Resource")


def _clock(admin: httpx.Client, offset_s: int) -> dt.datetime:
    response = admin.put("clock", json={"offset_s": offset_s})
    assert response.status_code == 200, response.text
    return dt.datetime.fromisoformat(response.json()["now"])


def test_since_last_changed_selects_the_changes_of_a_closed_window(mailchimp: httpx.Client,
                                                                   mailchimp_admin: httpx.Client, members: str):
    _clock(mailchimp_admin, -3600)
    put_member(mailchimp, members, "uur@voorbeeld.example")
    window_now = _clock(mailchimp_admin, -1800)
    put_member(mailchimp, members, "half@voorbeeld.example")
    mailchimp_admin.post("members/uur@voorbeeld.example/profile",
                         json={"merge_fields": {"FNAME": "Uri"}}).raise_for_status()
    _clock(mailchimp_admin, 0)
    put_member(mailchimp, members, "nu@voorbeeld.example")
    since = (window_now - dt.timedelta(minutes=5)).isoformat()
    before = (window_now + dt.timedelta(minutes=5)).isoformat()
    window = mailchimp.get(members, params={"since_last_changed": since, "before_last_changed": before}).json()
    assert sorted(m["email_address"] for m in window["members"]) == ["half@voorbeeld.example", "uur@voorbeeld.example"]
    later = mailchimp.get(members, params={"since_last_changed": before}).json()
    assert [m["email_address"] for m in later["members"]] == ["nu@voorbeeld.example"]
    problem(mailchimp.get(members, params={"since_last_changed": "yesterday"}), 400, "Invalid Resource")


def test_status_filters_and_unsubscribed_since(mailchimp: httpx.Client, mailchimp_admin: httpx.Client, members: str):
    for name in ("s1", "s2", "u1", "c1"):
        put_member(mailchimp, members, f"{name}@voorbeeld.example")
    mailchimp_admin.post("members/u1@voorbeeld.example/unsubscribe",
                         json={"at": "2020-03-01T12:00:00Z"}).raise_for_status()
    mailchimp_admin.post("members/c1@voorbeeld.example/clean", json={}).raise_for_status()

    def emails(**params) -> list[str]:
        response = mailchimp.get(members, params=params)
        assert response.status_code == 200, response.text
        return [m["email_address"].split("@")[0] for m in response.json()["members"]]

    assert emails(status="subscribed") == ["s1", "s2"]
    assert emails(status="cleaned") == ["c1"]
    assert emails(status="unsubscribed", unsubscribed_since="2020-02-01T00:00:00+00:00") == ["u1"]
    assert emails(status="unsubscribed", unsubscribed_since="2020-04-01T00:00:00+00:00") == []
    problem(mailchimp.get(members, params={"status": "subscribed", "unsubscribed_since": "2026-02-01T00:00:00Z"}),
            400, "Invalid Resource")
    problem(mailchimp.get(members, params={"status": "gone"}), 400, "Invalid Resource")
    assert emails(sort_field="last_changed", sort_dir="DESC")[-1] == "u1"


def test_fields_and_exclude_fields_trim_the_answer(mailchimp: httpx.Client, members: str):
    put_member(mailchimp, members, "t@voorbeeld.example", merge_fields={"FNAME": "Tom"})
    kept = mailchimp.get(members, params={"fields": "members.id,members.merge_fields.FNAME,total_items"}).json()
    assert kept == {"members": [{"id": subscriber_hash("t@voorbeeld.example"), "merge_fields": {"FNAME": "Tom"}}],
                    "total_items": 1}
    dropped = mailchimp.get(members, params={"exclude_fields": "members.merge_fields,members.location"}).json()
    assert "merge_fields" not in dropped["members"][0] and dropped["members"][0]["status"] == "subscribed"


def test_a_page_of_some_fields_holds_what_the_whole_members_hold(mailchimp: httpx.Client, mailchimp_admin: httpx.Client,
                                                                members: str):
    """Members asked for with `fields` are made from those keys alone: the answer is the whole members cut down,
    key for key, for every key made that way, nested ones and a collection-wide `fields` included."""
    put_member(mailchimp, members, "t@voorbeeld.example", merge_fields={"FNAME": "Tom", "ADDRESS": {
        "addr1": "Dorpsstraat 1", "city": "Ede", "state": "Gelderland", "zip": "6711 AA", "country": "NL"}})
    put_member(mailchimp, members, "u@voorbeeld.example")
    mailchimp_admin.post("members/u@voorbeeld.example/unsubscribe", json={}).raise_for_status()
    whole = mailchimp.get(members).json()
    for fields, keys in [("members.id,members.email_address,members.contact_id,members.status,members.list_id", None),
                         ("members.last_changed,members.merge_fields", None),
                         ("members.merge_fields.ADDRESS,members.status,total_items", ("merge_fields", "status")),
                         ("members.status,members.unsubscribe_reason", ("status", "unsubscribe_reason"))]:
        wanted = keys or [f.removeprefix("members.") for f in fields.split(",")]
        got = mailchimp.get(members, params={"fields": fields}).json()
        expected = [{k: m[k] for k in wanted if k in m} for m in whole["members"]]
        if "merge_fields.ADDRESS" in fields:
            expected = [{**m, "merge_fields": {"ADDRESS": m["merge_fields"]["ADDRESS"]}} for m in expected]
        assert got["members"] == expected, fields
    assert {m["status"] for m in whole["members"]} == {"subscribed", "unsubscribed"}


def test_a_large_audience_pages_by_1000(mailchimp: httpx.Client, members: str):
    count = 1000
    for start in range(0, 2500, 500):
        batch(mailchimp, members, [{"email_address": f"g{i}@voorbeeld.example", "status": "subscribed"}
                                   for i in range(start, start + 500)])
    pages = [mailchimp.get(members, params={"count": count, "offset": o, "fields": "members.id"}).json()["members"]
             for o in range(0, 2500, count)]
    assert [len(p) for p in pages] == [1000, 1000, 500]
    assert len({m["id"] for p in pages for m in p}) == 2500
