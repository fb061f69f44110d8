"""HTTP helpers shared by the clients: the server's clock from its `Date` header; retries of a call; calls that leave
nothing for the cycle collector."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import httpx
import pytest

from afas_pipeline.afas.client import AfasClient
from afas_pipeline.lib.http import UrlLimiter, call_with_retries, send_in_slot, server_time
from afas_pipeline_tests.waiting import wait_until


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



def _caller(limiter: UrlLimiter, name: str, limit: int, entered: list[str]) -> tuple[threading.Thread, threading.Event]:
    """A started thread that takes a slot under `limit`, notes `name` in `entered`, and holds the slot until its event."""
    leave = threading.Event()

    def call() -> None:
        with limiter.slot(limit):
            entered.append(name)
            leave.wait(10)

    thread = threading.Thread(target=call, name=name)
    thread.start()
    return thread, leave


def test_the_limiter_hands_each_freed_slot_to_the_oldest_waiter_its_limit_allows():
    limiter, entered = UrlLimiter(), []
    callers = {"first": _caller(limiter, "first", 1, entered)}
    wait_until(lambda: entered == ["first"])
    for n in range(4):  # each waits before the next comes
        callers[f"w{n}"] = _caller(limiter, f"w{n}", 1, entered)
        wait_until(lambda: len(limiter._waiting) == n + 1)
    callers["late"] = _caller(limiter, "late", 3, entered)  # a client of its own, with a higher limit: in at once
    wait_until(lambda: entered == ["first", "late"])
    callers["first"][1].set()
    callers["first"][0].join(10)
    assert entered == ["first", "late"] and len(limiter._waiting) == 4  # 1 in flight: a limit of 1 still waits
    for leaving, coming in [("late", "w0"), ("w0", "w1"), ("w1", "w2"), ("w2", "w3")]:
        callers[leaving][1].set()
        wait_until(lambda: entered[-1] == coming)
        assert len(limiter._waiting) == 3 - int(coming[1])  # one let in per freed slot, the oldest
    callers["w3"][1].set()
    for thread, _ in callers.values():
        thread.join(10)
    assert entered == ["first", "late", "w0", "w1", "w2", "w3"]
    assert limiter._in_flight == 0 and not limiter._waiting


@contextmanager
def _left_to_the_collector() -> Iterator[list]:
    """The httpx objects the block's calls left in reference cycles (what only the cycle collector frees; a sync
    pauses it while it sends, lib/bulk.py), in the list yielded, filled when the block ends."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a pass finds unreachable is kept in gc.garbage, to be looked at
    left: list = []
    try:
        yield left
        gc.collect()
        left.extend(type(o).__name__ for o in gc.garbage if type(o).__module__.startswith(("httpx", "httpcore")))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@contextmanager
def _slot_calls(sandbox) -> Iterator[Callable[[], None]]:
    with httpx.Client(base_url=sandbox.mailchimp_base_url + "/", auth=("x", sandbox.mailchimp_api_key)) as http:
        def call() -> None:
            response = send_in_slot(http, "GET", "ping", content=None, headers=None, limit=8,
                                    bad_url=ValueError, unanswered=ValueError)
            assert response.json()["health_status"]
        yield call


@contextmanager
def _afas_calls(sandbox) -> Iterator[Callable[[], None]]:
    with AfasClient(base_url=sandbox.afas_base_url, token=sandbox.afas_token) as client:
        yield lambda: client.profit_version()


@pytest.mark.parametrize("calls", [_slot_calls, _afas_calls], ids=["send_in_slot", "afas"])
def test_a_call_leaves_no_response_for_the_cycle_collector(sandbox, calls):
    """httpx binds a response's stream to the response; read and closed, the clients let go of it, so reference
    counting frees every call at once (a sync of one call per record left 13 kB each until the next pass)."""
    with calls(sandbox) as call:
        call()  # the connection made, outside the count
        with _left_to_the_collector() as left:
            for _ in range(20):
                call()
    assert left == []


def test_every_api_client_verifies_servers_with_one_tls_context_made_once():
    """Made once per process (loading the CA bundle per client took 25-45 ms), and still httpx's checking one."""
    import ssl

    from afas_pipeline.lib.http import tls_context

    context = tls_context()
    assert context is tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    from afas_pipeline.mailchimp.client import MailchimpClient
    from afas_pipeline.spotler.client import SpotlerClient
    from afas_pipeline.xelion.client import XelionClient

    clients = [resource._new_client() for resource in (
        AfasClient(base_url="https://81234.rest.afas.online/ProfitRestServices", token="a" * 64),
        SpotlerClient(base_url="https://restapi.mailplus.nl/integrationservice-1.1.0", consumer_key="k",
                      consumer_secret="s"),
        MailchimpClient(api_key="0" * 32 + "-us21", list_id="l"),
        XelionClient(base_url="https://xelion.example.nl/api/v1/master", user_name="u", password="p"),
    )]
    try:
        for client in clients:
            assert client._transport._pool._ssl_context is context
    finally:
        for client in clients:
            client.close()
