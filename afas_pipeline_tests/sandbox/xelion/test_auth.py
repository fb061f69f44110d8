"""Sessions (reference §C1): login, the xelion token, expiry, renew, one login per userSpace, error bodies."""

from __future__ import annotations

import httpx
import pytest

from afas_sandbox.server import Sandbox
from afas_pipeline_tests.sandbox.xelion.conftest import login, refused, xelion_client


def test_login_returns_a_token_that_authenticates_as_xelion_token(xelion_sandbox_clean: Sandbox):
    sb = xelion_sandbox_clean
    answer = login(sb, "afas-pipeline-1").json()
    assert {"authentication", "renewalToken", "validUntil", "version", "serverVersion", "buildNumber", "brand",
            "host", "tenant", "userName"} <= answer.keys()
    assert (answer["tenant"], answer["userName"]) == ("master", sb.xelion_user)
    assert len(answer["validUntil"]) == 19 and answer["validUntil"][10] == " "  # "2026-10-25 02:05:00"
    token = answer["authentication"]
    url = sb.xelion_base_url + "/addressables"
    assert httpx.get(url, headers={"Authorization": f"xelion {token}"}).status_code == 200
    refused(httpx.get(url), 401, 10000)
    refused(httpx.get(url, headers={"Authorization": f"Bearer {token}"}), 401, 10020)
    refused(httpx.get(url, headers={"Authorization": "xelion not-a-token"}), 401, 10000)


@pytest.mark.parametrize("body, status, code", [
    ({"userName": "afas-pipeline", "password": "wrong", "userSpace": "s"}, 401, 10004),
    ({"userName": "someone-else", "password": "sandbox-xelion-3c9e51d2", "userSpace": "s"}, 401, 10004),
    ({"password": "sandbox-xelion-3c9e51d2", "userSpace": "s"}, 400, 10002),
    ({"userName": "afas-pipeline", "userSpace": "s"}, 400, 10003),
    ({"userName": "afas-pipeline", "password": "sandbox-xelion-3c9e51d2"}, 400, 10202),
    ({}, 400, 10200),
])
def test_a_refused_login_says_why_with_xelions_error_code(xelion_sandbox_clean: Sandbox, body, status, code):
    refused(httpx.post(xelion_sandbox_clean.xelion_base_url + "/me/login", json=body), status, code)


def test_a_body_that_is_not_json_is_malformed(xelion_sandbox_clean: Sandbox):
    response = httpx.post(xelion_sandbox_clean.xelion_base_url + "/me/login", content=b"{userName",
                          headers={"Content-Type": "application/json"})
    refused(response, 400, 10202)


def test_a_second_login_with_the_same_user_space_is_refused_while_the_first_is_valid(
        xelion_sandbox_clean: Sandbox):
    sb = xelion_sandbox_clean
    assert login(sb, "sync").status_code == 200
    refused(login(sb, "sync"), 401, 10005)
    assert login(sb, "another-integration").status_code == 200


def test_an_expired_token_gets_10000_and_the_user_space_may_log_in_again(xelion_sandbox_clean: Sandbox,
                                                                       xelion_admin: httpx.Client):
    sb = xelion_sandbox_clean
    with xelion_client(sb, "sync") as client:
        assert client.get("addressables").status_code == 200
        xelion_admin.put("clock", json={"offset_s": 3601}).raise_for_status()  # the default lifetime is 1 h
        refused(client.get("addressables"), 401, 10000)
    assert [s["expired"] for s in xelion_admin.get("sessions").json()] == [True]
    assert login(sb, "sync").status_code == 200


def test_token_lifetime_is_a_setting(xelion_sandbox_clean: Sandbox, xelion_admin: httpx.Client):
    assert xelion_admin.put("settings", json={"token_lifetime_s": 60}).json() == {"token_lifetime_s": 60}
    with xelion_client(xelion_sandbox_clean) as client:
        xelion_admin.put("clock", json={"offset_s": 59}).raise_for_status()
        assert client.get("addressables").status_code == 200
        xelion_admin.put("clock", json={"offset_s": 61}).raise_for_status()
        refused(client.get("addressables"), 401, 10000)
    assert xelion_admin.put("settings", json={"token_lifetime_s": 0}).status_code == 400


def test_renew_with_the_renewal_token_replaces_both_tokens_even_after_expiry(xelion_sandbox_clean: Sandbox,
                                                                             xelion_admin: httpx.Client):
    sb = xelion_sandbox_clean
    first = login(sb, "sync").json()
    xelion_admin.put("clock", json={"offset_s": 7200}).raise_for_status()
    renewed = httpx.post(sb.xelion_base_url + "/me/renew", json=first["renewalToken"])
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert fresh["authentication"] != first["authentication"] and fresh["renewalToken"] != first["renewalToken"]
    assert fresh["validUntil"] > first["validUntil"]
    url = sb.xelion_base_url + "/addressables"
    assert httpx.get(url, headers={"Authorization": f"xelion {fresh['authentication']}"}).status_code == 200
    refused(httpx.get(url, headers={"Authorization": f"xelion {first['authentication']}"}), 401, 10000)
    refused(httpx.post(sb.xelion_base_url + "/me/renew", json=first["renewalToken"]), 401, 10004)
    refused(login(sb, "sync"), 401, 10005)  # the renewed session holds its userSpace again


def test_renew_with_the_password_needs_the_old_token(xelion_sandbox_clean: Sandbox):
    sb = xelion_sandbox_clean
    token = login(sb).json()["authentication"]
    renew = sb.xelion_base_url + "/me/renew"
    refused(httpx.post(renew, json=sb.xelion_password), 401, 10004)
    answer = httpx.post(renew, json=sb.xelion_password, headers={"Authorization": f"xelion {token}"})
    assert answer.status_code == 200 and answer.json()["authentication"] != token
    refused(httpx.post(renew, content=b""), 400, 10202)


def test_logout_ends_the_session_and_frees_its_user_space(xelion_sandbox_clean: Sandbox):
    sb = xelion_sandbox_clean
    with xelion_client(sb, "sync") as client:
        assert client.post("me/logout").status_code == 204
        refused(client.get("addressables"), 401, 10000)
    assert login(sb, "sync").status_code == 200


def test_unknown_paths_and_tenants_are_10100_and_other_methods_405(xelion: httpx.Client,
                                                                   xelion_sandbox_clean: Sandbox):
    refused(xelion.get("no-such-resource"), 404, 10100)
    other = xelion_sandbox_clean.xelion_base_url.replace("/master", "/other") + "/addressables"
    refused(xelion.get(other), 404, 10100)
    response = xelion.delete("addressables")
    refused(response, 405, 10100)
    assert response.headers["Allow"] == "GET, POST"
