"""Tokens, the App Connector whitelist and AFAS's error bodies."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from afas_sandbox.afas.app import FULL_ACCESS_TOKEN, LIMITED_TOKEN
from afas_pipeline_tests.sandbox.conftest import afas_client

NOT_SUPPORTED = "GetConnector not supported for this app or the user is not authorized"


def assert_afas_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["externalMessage"] == message
    assert isinstance(body["errorNumber"], int)
    assert re.fullmatch(r"[0-9A-F]{32}", body["profitLogReference"])
    assert base64.b64decode(response.headers["X-Profit-Error"]).decode() == message


def test_sandbox_exposes_the_documented_token_constants(sandbox):
    assert sandbox.afas_token == FULL_ACCESS_TOKEN and sandbox.afas_limited_token == LIMITED_TOKEN
    assert all(re.fullmatch(r"[0-9A-F]{64}", t) for t in (FULL_ACCESS_TOKEN, LIMITED_TOKEN))


def _xml(data: str) -> str:
    return base64.b64encode(f"<token><version>1</version><data>{data}</data></token>".encode()).decode()


@pytest.mark.parametrize("header", [
    None,
    "AfasToken",
    "AfasToken not-base64!!",
    "Bearer " + _xml(FULL_ACCESS_TOKEN),
    "AfasToken " + base64.b64encode(FULL_ACCESS_TOKEN.encode()).decode(),  # data without the XML wrapper
    "AfasToken " + _xml("0" * 64),  # well-formed, unknown
    "AfasToken " + _xml(FULL_ACCESS_TOKEN[:-1]),
])
def test_missing_malformed_or_unknown_token_is_401(afas_sandbox_clean, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.get(afas_sandbox_clean.afas_base_url + "/connectors/Sync_Contacts", headers=headers)
    assert_afas_error(response, 401, "Ongeldige token")
    assert response.json()["errorNumber"] == -2147180996


def test_full_token_reads_everything(afas):
    for connector in ("Sync_Contacts", "Sync_Persons", "Sync_Organisations", "Profit_Contacts", "ProfitSubjects",
                      "Profit_Debtor", "Profit_Debtor_App", "Profit_Deliveryaddress", "Profit_Contacts_App"):
        assert afas.get(f"/connectors/{connector}", params={"take": 1}).status_code == 200


def test_limited_token_reads_only_its_whitelisted_connector(afas_sandbox_clean):
    with afas_client(afas_sandbox_clean, LIMITED_TOKEN) as limited:
        assert limited.get("/connectors/Sync_Persons", params={"take": 1}).status_code == 200
        assert_afas_error(limited.get("/connectors/Sync_Contacts"), 401, NOT_SUPPORTED)
        assert_afas_error(limited.get("/metainfo/get/Sync_Contacts"), 401, NOT_SUPPORTED)
        response = limited.put("/connectors/KnContact", json={"KnContact": {"Element": {"Fields": {}}}})
        assert_afas_error(response, 401, "UpdateConnector not supported for this app or the user is not authorized")
        listing = limited.get("/metainfo").json()
        assert [c["id"] for c in listing["getConnectors"]] == ["Sync_Persons"]
        assert listing["updateConnectors"] == []


def test_unknown_connector_looks_like_a_missing_whitelist_entry(afas):
    assert_afas_error(afas.get("/connectors/Does_Not_Exist"), 401, NOT_SUPPORTED)
    response = afas.post("/connectors/KnEmployee", json={"KnEmployee": {"Element": {"Fields": {}}}})
    assert_afas_error(response, 401, "UpdateConnector not supported for this app or the user is not authorized")


def test_unknown_route_is_404_with_an_error_body(afas):
    response = afas.get("/nothing/here")
    assert response.status_code == 404
    assert "externalMessage" in response.json()
