"""Basic auth with the API key, ``/ping``, the audience there from the start, problem+json for what is not served,
and the admin API for this machine only."""

from __future__ import annotations

import asyncio
import re

import httpx
import orjson
import pytest

from afas_sandbox.server import SANDBOX_MAILCHIMP_KEY, SANDBOX_MAILCHIMP_LIST_ID, Sandbox
from afas_pipeline_tests.sandbox.mailchimp.conftest import mailchimp_client, problem

API_KEY_FORM = re.compile(r"[0-9a-f]{32}-[a-z]+[0-9]+")


def test_sandbox_constants_are_the_documented_credentials(mailchimp_sandbox_clean: Sandbox):
    sb = mailchimp_sandbox_clean
    assert API_KEY_FORM.fullmatch(SANDBOX_MAILCHIMP_KEY)
    assert (sb.mailchimp_api_key, sb.mailchimp_list_id) == (SANDBOX_MAILCHIMP_KEY, SANDBOX_MAILCHIMP_LIST_ID)
    assert sb.mailchimp_base_url == sb.url + "/mailchimp/3.0"
    assert sb.mailchimp_admin_url == sb.url + "/mailchimp/_admin"
    assert SANDBOX_MAILCHIMP_KEY not in repr(sb)


@pytest.mark.parametrize("user", ["anystring", "user", ""])
def test_ping_answers_the_key_whatever_the_user_name(mailchimp_sandbox_clean: Sandbox, user):
    with mailchimp_client(mailchimp_sandbox_clean, user=user) as client:
        response = client.get("ping")
    assert response.status_code == 200
    assert response.json() == {"health_status": "Everything's Chimpy!"}


@pytest.mark.parametrize("authorization", [
    "Basic " + "YW55c3RyaW5nOjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwLXVzMjE=",  # a well-formed other key
    "Basic not-base64!",
    "Bearer " + SANDBOX_MAILCHIMP_KEY,  # OAuth tokens are not emulated
])
def test_a_wrong_key_is_401_api_key_invalid_with_a_problem_body(mailchimp_sandbox_clean: Sandbox, authorization):
    response = httpx.get(mailchimp_sandbox_clean.mailchimp_base_url + "/ping",
                         headers={"Authorization": authorization})
    body = problem(response, 401, "API Key Invalid")
    assert "API key" in body["detail"]


def test_no_key_is_401_api_key_missing(mailchimp_sandbox_clean: Sandbox):
    response = httpx.get(mailchimp_sandbox_clean.mailchimp_base_url + "/lists")
    problem(response, 401, "API Key Missing")
    assert response.content, "the SDK would hide an empty 401"


def test_unknown_paths_are_404_and_other_methods_405(mailchimp: httpx.Client, mailchimp_sandbox_clean: Sandbox):
    problem(mailchimp.get("no/such/thing"), 404, "Resource Not Found")
    problem(mailchimp.get("lists/0000000000"), 404, "Resource Not Found")
    refused = mailchimp.delete("ping")
    problem(refused, 405, "Method Not Allowed")
    assert refused.headers["Allow"] == "GET"
    outside = httpx.get(mailchimp_sandbox_clean.url + "/mailchimp/2.0/ping")
    problem(outside, 404, "Resource Not Found")


def test_the_account_root_answers(mailchimp: httpx.Client):
    root = mailchimp.get("")
    assert root.status_code == 200 and root.json()["account_name"] == "AFAS pipeline sandbox"


def test_the_audience_exists_from_the_start_with_the_default_merge_fields_and_the_afas_ones(mailchimp: httpx.Client):
    lists = mailchimp.get("lists").json()
    assert lists["total_items"] == 1 and lists["lists"][0]["id"] == SANDBOX_MAILCHIMP_LIST_ID
    assert mailchimp.get(f"lists/{SANDBOX_MAILCHIMP_LIST_ID}").json()["stats"]["member_count"] == 0
    fields = mailchimp.get(f"lists/{SANDBOX_MAILCHIMP_LIST_ID}/merge-fields").json()
    assert [(f["tag"], f["type"], f["required"]) for f in fields["merge_fields"]] == [
        ("FNAME", "text", False), ("LNAME", "text", False), ("ADDRESS", "address", False),
        ("PHONE", "phone", False), ("COMPANY", "text", False), ("AFASID", "text", False), ("JOBTITLE", "text", False)]
    assert fields["total_items"] == 7 and {f["list_id"] for f in fields["merge_fields"]} == {SANDBOX_MAILCHIMP_LIST_ID}


def test_merge_fields_are_created_read_filtered_and_deleted(mailchimp: httpx.Client):
    base = f"lists/{SANDBOX_MAILCHIMP_LIST_ID}/merge-fields"
    created = mailchimp.post(base, json={"name": "Functie", "type": "text", "tag": "function", "required": True})
    assert created.status_code == 200, created.text
    assert (created.json()["merge_id"], created.json()["tag"], created.json()["required"]) == (8, "FUNCTION", True)
    assert mailchimp.get(f"{base}/8").json()["name"] == "Functie"
    assert [f["tag"] for f in mailchimp.get(base, params={"required": "true"}).json()["merge_fields"]] == ["FUNCTION"]
    assert [f["tag"] for f in mailchimp.get(base, params={"type": "address"}).json()["merge_fields"]] == ["ADDRESS"]
    duplicate = problem(mailchimp.post(base, json={"name": "Again", "type": "text", "tag": "FNAME"}), 400,
                        "Invalid Resource")
    assert duplicate["errors"][0]["field"] == "tag"
    wrong = problem(mailchimp.post(base, json={"name": "X", "type": "colour"}), 400, "Invalid Resource")
    assert [e["field"] for e in wrong["errors"]] == ["type"]
    assert mailchimp.post(base, json={"name": "Auto", "type": "number"}).json()["tag"] == "MMERGE9"
    assert mailchimp.delete(f"{base}/8").status_code == 204
    problem(mailchimp.get(f"{base}/8"), 404, "Resource Not Found")


def _asgi_get(app, client_host: str, path: str) -> int:
    """The status of one GET through an ASGI app as if from `client_host`."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [], "client": (client_host, 40000), "server": ("127.0.0.1", 1),
             "scheme": "http", "http_version": "1.1"}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if sent[0]["status"] == 403:
        assert "--allow-remote-admin" in orjson.loads(body)["error"]
    return sent[0]["status"]


def test_the_admin_api_answers_this_machine_only(mailchimp_sandbox_clean: Sandbox):
    emulator = mailchimp_sandbox_clean.mailchimp
    assert _asgi_get(emulator, "192.0.2.10", "/_admin/state") == 403
    assert _asgi_get(emulator, "127.0.0.1", "/_admin/state") == 200
    assert httpx.get(mailchimp_sandbox_clean.mailchimp_admin_url + "/state").status_code == 200
