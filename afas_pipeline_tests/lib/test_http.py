"""HTTP helpers shared by the clients: the server's clock from its `Date` header; retries of a call."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import httpx
import pytest

from afas_pipeline.lib.http import call_with_retries, server_time


def test_server_time_is_the_date_header_in_utc():
    response = httpx.Response(200, headers={"Date": "Thu, 03 Dec 2026 10:15:07 GMT"})
    assert server_time(response) == datetime(2026, 12, 3, 10, 15, 7, tzinfo=timezone.utc)


@pytest.mark.parametrize("headers", [{}, {"Date": "yesterday"}, {"Date": ""}])
def test_server_time_without_a_valid_date_is_none(headers):
    assert server_time(httpx.Response(200, headers=headers)) is None


class Busy(Exception):
    """A transient failure, as the clients' own `_Transient` (its `reason` is what a retry logs)."""

    reason = "503 busy"
    retry_after = None


def _calls(outcomes: list, max_attempts: int = 4):
    """call_with_retries over an attempt that raises or returns the next of `outcomes`; what it returned or
    raised, how many attempts and counted retries there were."""
    attempts, retries = [], []

    def attempt():
        outcome = outcomes[len(attempts)]
        attempts.append(outcome)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    try:
        result = call_with_retries(attempt, transient=Busy, max_attempts=max_attempts, backoff_initial_s=0,
                                   backoff_max_s=0, logger=logging.getLogger("test"), what="PUT x",
                                   on_retry=lambda: retries.append(1))
    except BaseException as exc:  # noqa: BLE001 (what the call raised is the outcome under test)
        result = exc
    return result, len(attempts), len(retries)


def test_a_call_answered_at_once_is_made_once_and_counts_no_retry():
    assert _calls(["ok"]) == ("ok", 1, 0)


def test_a_call_failing_transiently_is_retried_and_each_retry_logged_and_counted(caplog):
    caplog.set_level(logging.WARNING, logger="test")
    assert _calls([Busy(), Busy(), "ok"]) == ("ok", 3, 2)
    assert [r.getMessage() for r in caplog.records] == ["PUT x: 503 busy; retry 1 of 3 in 0.00s",
                                                        "PUT x: 503 busy; retry 2 of 3 in 0.00s"]


def test_a_call_failing_every_time_raises_the_last_failure_after_max_attempts():
    failures = [Busy(), Busy(), Busy()]
    assert _calls(failures, max_attempts=3) == (failures[-1], 3, 2)


@pytest.mark.parametrize("before", [0, 1])
def test_a_failure_that_is_not_transient_is_raised_at_once(before):
    refused = ValueError("400 refused")
    assert _calls([Busy()] * before + [refused, "never"]) == (refused, before + 1, before)
