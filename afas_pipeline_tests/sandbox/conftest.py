from __future__ import annotations

import httpx
import pytest

from afas_sandbox.afas.app import token_header
from afas_sandbox.server import Sandbox


def afas_client(sb: Sandbox, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": token_header(token or sb.afas_token)}
    return httpx.Client(base_url=sb.afas_base_url, headers=headers, timeout=30)


@pytest.fixture
def afas(afas_sandbox_clean: Sandbox) -> httpx.Client:
    """An authenticated client for the (freshly reset) sandbox's REST API."""
    with afas_client(afas_sandbox_clean) as client:
        yield client


@pytest.fixture
def admin(afas_sandbox_clean: Sandbox) -> httpx.Client:
    with httpx.Client(base_url=afas_sandbox_clean.afas_admin_url, timeout=60) as client:
        yield client


def set_faults(admin: httpx.Client, **faults) -> dict:
    """PUT an emulator's faults through its admin client (every emulator has `PUT /faults`); the config in force."""
    response = admin.put("faults", json=faults)
    assert response.status_code == 200, response.text
    return response.json()


def all_rows(client: httpx.Client, connector: str, **params) -> list[dict]:
    response = client.get(f"/connectors/{connector}", params={"skip": -1, "take": -1, **params})
    assert response.status_code == 200, response.text
    return response.json()["rows"]
