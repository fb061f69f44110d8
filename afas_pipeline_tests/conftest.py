"""Fixtures shared by every part's tests: one sandbox per test session, reset between tests on demand."""

from __future__ import annotations

import httpx
import pytest

from afas_pipeline.lib import failpoints
from afas_sandbox.server import Sandbox, start_sandbox


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """The sandbox (3000 contacts, seed 7) on a free localhost port, for the whole session."""
    with start_sandbox(contacts=3000, seed=7) as running:
        yield running


def reset_sandbox(sb: Sandbox) -> None:
    """Start-up dataset back, faults off, stats zeroed (through the admin API)."""
    httpx.post(sb.afas_admin_url + "/reset", timeout=60).raise_for_status()


@pytest.fixture
def afas_sandbox_clean(sandbox: Sandbox) -> Sandbox:
    """The session sandbox, reset before and after the test so no data, fault or stat leaks across tests."""
    yield from _reset_around(reset_sandbox, sandbox)


def reset_spotler_sandbox(sb: Sandbox) -> None:
    """Empty Spotler account, faults off, stats zeroed (through the Spotler admin API)."""
    httpx.post(sb.spotler_admin_url + "/reset", timeout=60).raise_for_status()


@pytest.fixture
def spotler_sandbox_clean(sandbox: Sandbox) -> Sandbox:
    """The session sandbox with its Spotler account reset before and after the test."""
    yield from _reset_around(reset_spotler_sandbox, sandbox)


def reset_mailchimp_sandbox(sb: Sandbox) -> None:
    """The start-up Mailchimp account (the sandbox audience, no members), faults off, stats zeroed, real time."""
    httpx.post(sb.mailchimp_admin_url + "/reset", timeout=60).raise_for_status()


@pytest.fixture
def mailchimp_sandbox_clean(sandbox: Sandbox) -> Sandbox:
    """The session sandbox with its Mailchimp account reset before and after the test."""
    yield from _reset_around(reset_mailchimp_sandbox, sandbox)


def reset_xelion_sandbox(sb: Sandbox) -> None:
    """An empty Xelion tenant, no sessions, default token lifetime, faults off, stats zeroed, real time."""
    httpx.post(sb.xelion_admin_url + "/reset", timeout=60).raise_for_status()


@pytest.fixture
def xelion_sandbox_clean(sandbox: Sandbox) -> Sandbox:
    """The session sandbox with its Xelion tenant reset before and after the test."""
    yield from _reset_around(reset_xelion_sandbox, sandbox)


def _reset_around(reset, sandbox: Sandbox):
    """The sandbox for one test, `reset` before and after it."""
    reset(sandbox)
    yield sandbox
    reset(sandbox)


@pytest.fixture(autouse=True)
def _no_armed_failpoints():
    """No fail point armed by one test is left for the next (afas_pipeline.lib.failpoints)."""
    failpoints.disarm()
    yield
    failpoints.disarm()
