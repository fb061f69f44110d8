from __future__ import annotations

import itertools

import httpx
import pytest

from afas_pipeline_tests.conftest import reset_xelion_sandbox, xelion_sandbox_clean
from afas_sandbox.server import Sandbox

__all__ = ["reset_xelion_sandbox", "xelion_sandbox_clean"]

_spaces = itertools.count(1)


def login(sb: Sandbox, space: str | None = None) -> httpx.Response:
    body = {"userName": sb.xelion_user, "password": sb.xelion_password,
            "userSpace": space or f"test-space-{next(_spaces)}", "appKey": "afas-pipeline-tests"}
    return httpx.post(sb.xelion_base_url + "/me/login", json=body, timeout=30)


def xelion_client(sb: Sandbox, space: str | None = None) -> httpx.Client:
    """A client logged in with a userSpace of its own, sending `Authorization: xelion <token>`."""
    response = login(sb, space)
    assert response.status_code == 200, response.text
    return httpx.Client(base_url=sb.xelion_base_url + "/", timeout=30,
                        headers={"Authorization": f"xelion {response.json()['authentication']}"})


@pytest.fixture
def xelion(xelion_sandbox_clean: Sandbox) -> httpx.Client:
    with xelion_client(xelion_sandbox_clean) as client:
        yield client


@pytest.fixture
def xelion_admin(xelion_sandbox_clean: Sandbox) -> httpx.Client:
    with httpx.Client(base_url=xelion_sandbox_clean.xelion_admin_url + "/", timeout=60) as client:
        yield client


def refused(response: httpx.Response, status: int, code: int) -> dict:
    """Xelion's error body, after checking status, errorCode and that `info` names the request."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errorCode"] == code, body
    assert body["message"]
    assert body["info"] == f"resource={response.request.method} {response.request.url.path.split('/xelion', 1)[1]}"
    return body


def create(client: httpx.Client, **doc) -> dict:
    response = client.post("addressables", json=doc)
    assert response.status_code == 200, response.text
    return response.json()["object"]


def place_call(admin: httpx.Client, **body) -> dict:
    response = admin.post("calls", json=body)
    assert response.status_code == 200, response.text
    return response.json()
