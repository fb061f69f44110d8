from __future__ import annotations

import importlib
import warnings

import httpx
import pytest

importlib.import_module("authlib.deprecate")  # it installs an "always" filter; imported first so ours wins
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # authlib warns that it falls back to httpx when httpx2 is absent
    from authlib.integrations.httpx_client import OAuth1Auth
    from authlib.integrations.httpx_client.utils import build_request

from afas_sandbox.server import Sandbox


class SpotlerAuth(OAuth1Auth):
    """authlib's OAuth1Auth, keeping the JSON body.

    authlib signs a non-form body as empty (right: Spotler does not sign the body) but then also SENDS it
    empty (``body = b""`` in ``ClientAuth.prepare``). The signature is still authlib's own."""

    def auth_flow(self, request: httpx.Request):
        url, headers, _ = self.prepare(request.method, str(request.url), request.headers, request.content)
        headers["Content-Length"] = str(len(request.content))
        yield build_request(url=url, headers=headers, body=request.content, initial_request=request)


def spotler_client(sb: Sandbox, key: str | None = None, secret: str | None = None) -> httpx.Client:
    auth = SpotlerAuth(key or sb.spotler_consumer_key, secret or sb.spotler_consumer_secret)
    return httpx.Client(base_url=sb.spotler_base_url + "/", auth=auth, timeout=30)


@pytest.fixture
def spotler(spotler_sandbox_clean: Sandbox) -> httpx.Client:
    """A signed client for the (freshly reset, empty) Spotler account."""
    with spotler_client(spotler_sandbox_clean) as client:
        yield client


@pytest.fixture
def spotler_admin(spotler_sandbox_clean: Sandbox) -> httpx.Client:
    with httpx.Client(base_url=spotler_sandbox_clean.spotler_admin_url + "/", timeout=60) as client:
        yield client


def upsert(client: httpx.Client, *contacts: dict, update: bool = True, purge: bool = False) -> list[dict]:
    response = client.post("contact/list", json={"update": update, "purge": purge, "contacts": list(contacts)})
    assert response.status_code == 200, response.text
    return response.json()


def contact(client: httpx.Client, external_id: str) -> dict:
    response = client.get(f"contact/{external_id}")
    assert response.status_code == 200, response.text
    return response.json()


def permissions(doc: dict) -> dict[int, bool]:
    return {p["bit"]: p["enabled"] for p in doc["properties"]["permissions"]}


def email_active(doc: dict) -> bool:
    return next(c["value"] for c in doc["channels"] if c["name"] == "EMAIL")
