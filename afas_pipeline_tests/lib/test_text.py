"""Control characters from either side never reach a log line or an error message raw."""

from __future__ import annotations

import logging
import pickle

import httpx
import pytest

from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.errors import AfasError, AfasServerError
from afas_pipeline.lib.text import one_line, printable
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline.spotler.errors import SpotlerRequestError

#: What a hostile or broken server could put in a message: a forged log line, a terminal escape that clears
#: the screen, a NUL, C1's CSI, and a right-to-left override.
NASTY = "refused\r\n2026-01-01 00:00:00 - INFO - all good\x1b[2J\x00\x9b31m\u202eevil"
RAW = ("\r", "\n", "\x1b", "\x00", "\x9b", "\u202e")


def _raw_controls(text: str) -> list[str]:
    return [char for char in RAW if char in text]


def test_printable_escapes_control_characters_as_a_string_literal_would():
    assert printable("a\r\nb\tc\x00d\x1b[31me\x7f\x9b\u2028\u202e") == (
        "a\\r\\nb\\tc\\x00d\\x1b[31me\\x7f\\x9b\\u2028\\u202e"
    )
    assert printable("Jansen & Zn., Zoë Ørsted, 山田") == "Jansen & Zn., Zoë Ørsted, 山田"  # text stays text


def test_printable_twice_is_printable_once():
    once = printable(NASTY)
    assert printable(once) == once and not _raw_controls(once)


def test_one_line_joins_our_own_lines_and_escapes_the_rest():
    assert one_line("3 problems\n  a: x\n  b: y\x1b[0m\n") == "3 problems | a: x | b: y\\x1b[0m"


@pytest.mark.parametrize("make", [
    lambda: AfasServerError(f"AFAS rejected UpdateConnector 'KnContact' (500): {NASTY}", connector="KnContact",
                            status_code=500, external_message=NASTY, profit_log_reference="AB\r\nCD"),
    lambda: SpotlerRequestError("Spotler refused POST contact (400 INVALID)", endpoint="contact", status_code=400,
                                error_type="INVALID\r\nX", spotler_message=NASTY),
], ids=["afas", "spotler"])
def test_errors_of_both_clients_hold_what_the_server_wrote_escaped(make):
    error = make()
    for text in (str(error), *(v for v in vars(error).values() if isinstance(v, str))):
        assert not _raw_controls(text), text
    assert "\\r\\n2026-01-01" in str(error) and "\\x1b[2J" in str(error)
    clone = pickle.loads(pickle.dumps(error))  # Dagster moves errors between processes
    assert str(clone) == str(error)


def test_an_afas_error_body_with_control_characters_reaches_the_log_and_the_error_escaped(caplog):
    client = AfasClient(base_url="http://127.0.0.1:1/afas/ProfitRestServices", token="0123456789abcdef" * 4)
    response = httpx.Response(500, json={"externalMessage": NASTY, "errorNumber": -1,
                                         "profitLogReference": "REF\r\nINFO forged"})
    with caplog.at_level(logging.WARNING, logger="afas_pipeline.afas"):
        error = client._error_from(response, "KnContact", "PUT", "connectors/KnContact")
    assert isinstance(error, AfasError)
    assert not _raw_controls(str(error)) and "\\x1b[2J" in str(error)
    logged = [record.getMessage() for record in caplog.records]
    assert logged and all(not _raw_controls(line) for line in logged)
    assert any("REF\\r\\nINFO forged" in line for line in logged)


def test_a_value_reaches_spotler_unchanged_and_is_escaped_only_in_messages(spotler_sandbox_clean):
    # Deliberately: the pipeline copies what AFAS holds; cleaning a value would make the two disagree and
    # the next sync would send it again. Only what is shown in messages and logs is escaped.
    sb = spotler_sandbox_clean
    value = "Directeur\r\nR&D\x1b[1m"
    with SpotlerClient(base_url=sb.spotler_base_url, consumer_key=sb.spotler_consumer_key,
                       consumer_secret=sb.spotler_consumer_secret) as client:
        [result] = client.upsert_contacts([{"externalId": "ctl-1",
                                            "properties": {"email": "ctl-1@example.nl", "function": value}}])
    assert result.ok, result
    stored = httpx.get(f"{sb.spotler_admin_url}/contacts/ctl-1", timeout=30).json()
    assert stored["properties"]["function"] == value
    shown = str(SpotlerRequestError("Spotler refused PUT contact/ctl-1 (400 INVALID)", spotler_message=value))
    assert "Directeur\\r\\nR&D\\x1b[1m" in shown and not _raw_controls(shown)
