"""Client rules that need no server: filter rendering, token handling, errors, retry waits."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timezone
from urllib.parse import parse_qs

import httpx
import pytest
import tenacity

from afas_pipeline.afas.client import AfasClient, _Transient, _Wait
from afas_pipeline.afas.errors import AfasAuthError, AfasConfigError, AfasError
from afas_pipeline.afas.filters import Condition, Filter, Op

TOKEN = "0123456789abcdef" * 4


def test_all_fifteen_operator_codes_are_named():
    assert {op.name: int(op) for op in Op} == {
        "EQ": 1, "GE": 2, "LE": 3, "GT": 4, "LT": 5, "CONTAINS": 6, "NE": 7, "EMPTY": 8, "NOT_EMPTY": 9,
        "STARTS_WITH": 10, "NOT_CONTAINS": 11, "NOT_STARTS_WITH": 12, "ENDS_WITH": 13, "NOT_ENDS_WITH": 14,
        "QUICK": 15,
    }


def test_or_of_and_groups_renders_as_the_simple_filter():
    flt = Filter.all_of(Condition("A", Op.EQ, 1), Condition("B", Op.CONTAINS, "x")) | Condition("A", Op.EQ, 3)
    assert flt.to_params() == {"filterfieldids": "A,B;A", "filtervalues": "1,x;3", "operatortypes": "1,6;1"}


def test_and_distributes_over_or():
    flt = (Condition("K", Op.EQ, "PRS") | Condition("K", Op.EQ, "PER")) & Condition("D", Op.EQ, True)
    assert flt.to_params() == {"filterfieldids": "K,D;K,D", "filtervalues": "PRS,1;PER,1", "operatortypes": "1,1;1,1"}


def test_a_value_with_a_separator_switches_to_filterjson():
    flt = Condition("Name", Op.EQ, "Jansen, B.V.") | Condition("Mail", Op.EMPTY)
    params = flt.to_params()
    assert set(params) == {"filterjson"}
    assert json.loads(params["filterjson"]) == {
        "Filters": {
            "Filter": [
                {"@FilterId": "Filter 1", "Field": [{"@FieldId": "Name", "@OperatorType": "1", "#text": "Jansen, B.V."}]},
                {"@FilterId": "Filter 2", "Field": [{"@FieldId": "Mail", "@OperatorType": "8", "#text": ""}]},
            ]
        }
    }


def test_datetime_values_are_amsterdam_wall_time_without_z():
    flt = Condition("ModifiedDate", Op.GE, datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc))
    assert (flt & Condition("X", Op.NOT_EMPTY)).to_params()["filtervalues"] == "2026-10-25T02:30:00,"


def test_field_ids_with_separators_are_refused():
    with pytest.raises(ValueError, match="invalid AFAS field id"):
        Condition("A,B", Op.EQ, 1)


def test_token_is_absent_from_repr_str_and_config_errors():
    client = AfasClient(base_url="http://127.0.0.1:1/afas/ProfitRestServices", token=TOKEN)
    assert TOKEN not in repr(client) and TOKEN not in str(client)
    assert "redacted" in repr(client)
    bad = AfasClient(base_url="http://127.0.0.1:1/afas/ProfitRestServices", token="not-a-token-" + TOKEN[:20])
    with pytest.raises(AfasConfigError) as caught:
        bad._auth_header()
    assert TOKEN[:20] not in str(caught.value)


def test_token_forms_give_the_same_header():
    short = AfasClient(base_url="http://x/", token=TOKEN)._auth_header()
    full = AfasClient(base_url="http://x/", token=f"<token><version>1</version><data>{TOKEN}</data></token>")._auth_header()
    assert short == full and short.startswith("AfasToken ")


def test_environment_id_picks_the_afas_host():
    assert AfasClient(environment_id="12345", token=TOKEN).resolved_base_url() == (
        "https://12345.rest.afas.online/ProfitRestServices"
    )
    assert AfasClient(environment_id="12345", environment="test", token=TOKEN).resolved_base_url() == (
        "https://12345.resttest.afas.online/ProfitRestServices"
    )
    with pytest.raises(AfasConfigError, match="base_url or environment_id"):
        AfasClient(token=TOKEN).resolved_base_url()


def test_error_str_names_connector_status_message_and_reference_and_survives_pickling():
    error = AfasAuthError(
        "AFAS refused GetConnector 'Sync_X' (401)", connector="Sync_X", status_code=401,
        external_message="Ongeldige token", profit_log_reference="AB" * 16,
    )
    text = str(error)
    assert "Sync_X" in text and "401" in text and "Ongeldige token" in text and "AB" * 16 in text
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is AfasAuthError and str(clone) == text and clone.profit_log_reference == "AB" * 16
    config = pickle.loads(pickle.dumps(AfasConfigError("x", connector="C", missing_fields=["A"], rule="R9")))
    assert config.missing_fields == ("A",) and config.rule == "R9" and isinstance(config, AfasError)


def _state_after(exc: BaseException, attempt: int) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_wait_honours_retry_after_and_caps_backoff():
    wait = _Wait(initial=0.5, maximum=2.0)
    assert wait(_state_after(_Transient("503", safe_for_post=True, retry_after=7), 1)) >= 7
    waits = [wait(_state_after(_Transient("drop", safe_for_post=False), 10)) for _ in range(50)]
    assert all(0 <= w <= 2.0 for w in waits) and len(set(waits)) > 1  # jittered, capped


def test_query_params_encode_separators_the_way_afas_reads_them():
    params = (Condition("A", Op.EQ, 1) | Condition("A", Op.EQ, 2)).to_params()
    query = httpx.URL("http://x/", params=params).query.decode()
    assert parse_qs(query)["filterfieldids"] == ["A;A"]


# --- transport and refusals: what the token is sent over and whom it was refused by ----------------


@pytest.mark.parametrize("refused,accepted", [
    ("http://12345.rest.afas.online/ProfitRestServices", "https://12345.rest.afas.online/ProfitRestServices"),
    ("http://192.0.2.10:8765/afas/ProfitRestServices", "http://127.0.0.1:8765/afas/ProfitRestServices"),
    ("http://0.0.0.0:8765/afas/ProfitRestServices", "http://127.3.2.1:8765/afas/ProfitRestServices"),
    ("http://afas.example/ProfitRestServices", "http://localhost:8765/afas/ProfitRestServices"),
    ("http://[fd00::2]:8765/afas/ProfitRestServices", "http://[::1]:8765/afas/ProfitRestServices"),
])
def test_the_token_travels_over_plain_http_only_to_this_machine(refused, accepted):
    client = AfasClient(base_url=refused, token=TOKEN)
    with pytest.raises(AfasConfigError) as caught:
        client.read("Sync_Contacts", order_by=["ContactId"])
    message = str(caught.value)
    assert message.startswith("AFAS_BASE_URL ") and "use https" in message and "\n" not in message
    assert TOKEN not in message
    # https anywhere, and plain http to this machine (the sandbox), are accepted.
    with AfasClient(base_url=accepted, token=TOKEN) as client:
        assert str(client._client().base_url) == accepted + "/"


def _refusal(client: AfasClient, status: int) -> AfasError:
    response = httpx.Response(status, json={"externalMessage": "Ongeldige token", "errorNumber": -2147180996,
                                            "profitLogReference": "AB" * 16})
    return client._error_from(response, "Sync_Contacts", "GET", "connectors/Sync_Contacts")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_names_the_environment_it_was_refused_by(status):
    error = _refusal(AfasClient(environment_id="12345", environment="test", token=TOKEN), status)
    assert isinstance(error, AfasAuthError)
    assert "AFAS environment 12345 (test, https://12345.resttest.afas.online/ProfitRestServices)" in str(error)
    assert "Sync_Contacts" in str(error) and TOKEN not in str(error)


def test_a_refused_token_names_the_base_url_without_user_info():
    error = _refusal(AfasClient(base_url="https://user:pw@afas.example.nl/ProfitRestServices?x=1", token=TOKEN), 401)
    assert "AFAS at https://afas.example.nl/ProfitRestServices refused GetConnector 'Sync_Contacts' (401)" in str(error)
    assert "AFAS_TOKEN" in str(error) and TOKEN not in str(error) and "pw" not in str(error)
