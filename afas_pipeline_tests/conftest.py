"""Fixtures shared by every part's tests: one sandbox per test session, reset between tests on demand."""

from __future__ import annotations

import logging
import os

from afas_pipeline_tests.suite_settings import SUITE_ENV

os.environ.update(SUITE_ENV)

import httpx  # noqa: E402
import pytest  # noqa: E402

from afas_pipeline.lib import failpoints  # noqa: E402
from afas_sandbox.server import Sandbox, start_sandbox  # noqa: E402

pytest_plugins = ["afas_pipeline_tests.postgres_server", "afas_pipeline_tests.s3_server"]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Quiet SQLAlchemy's pool as a test process ends. Tests that run a Dagster job in a thread (two runs that meet)
    leave connections of the ephemeral instance's in-memory event log checked out: a frame of Dagster's asset-key
    upsert keeps the IntegrityError it catches, and that frame the connection. They are closed as the process exits,
    from its main thread, which SQLite refuses for a connection another thread made, and the pool logs each refusal
    with its traceback (24 lines after the last test). Nothing of the tests' own is left open, and no test runs
    after this hook: only that logging is silenced."""
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """The sandbox (3000 contacts, seed 7) on a free localhost port, for the whole session."""
    with start_sandbox(contacts=3000, seed=7) as running:
        yield running


def _resetting(emulator: str, what: str):
    """The reset of one emulator through its admin API (`{emulator}_admin_url` + `/reset`: `what`), and a fixture
    that hands the session sandbox to a test with that emulator reset before and after it, so no data, fault,
    stat or clock leaks across tests."""

    def reset(sb: Sandbox) -> None:
        httpx.post(getattr(sb, f"{emulator}_admin_url") + "/reset", timeout=60).raise_for_status()

    @pytest.fixture
    def clean(sandbox: Sandbox) -> Sandbox:
        reset(sandbox)
        yield sandbox
        reset(sandbox)

    reset.__doc__ = what
    clean.__doc__ = f"The session sandbox with {what} before and after the test."
    return reset, clean


reset_sandbox, afas_sandbox_clean = _resetting("afas", "the AFAS start-up dataset back, faults off, stats zeroed")
reset_spotler_sandbox, spotler_sandbox_clean = _resetting("spotler", "an empty Spotler account, faults off, stats zeroed")
reset_mailchimp_sandbox, mailchimp_sandbox_clean = _resetting(
    "mailchimp", "the start-up Mailchimp account (the sandbox audience, no members), faults off, stats zeroed, real time")
reset_xelion_sandbox, xelion_sandbox_clean = _resetting(
    "xelion", "an empty Xelion tenant, no sessions, default token lifetime, faults off, stats zeroed, real time")


@pytest.fixture(scope="session", autouse=True)
def _one_default_ssl_context():
    """One default SSL context for every httpx client of the session.

    httpx builds a new one for each client, loading the whole CA bundle: about 0.1 s on a 2-core machine. The
    pipeline makes a client per resource per Dagster run and the admin helpers one per call (`httpx.post`), which
    came to minutes of the suite. Everything here speaks plain HTTP to the local sandbox, so no context is ever
    used for a handshake; sharing the default one changes nothing a test sees. Without httpx's hook (another
    httpx version) the clients build their own as before, only slower.
    """
    from httpx._transports import default as transport

    build = getattr(transport, "create_ssl_context", None)
    if build is None:
        yield
        return
    shared: dict[bool, object] = {}

    def create_ssl_context(verify=True, cert=None, trust_env=True):
        if verify is not True or cert is not None:
            return build(verify=verify, cert=cert, trust_env=trust_env)
        if trust_env not in shared:
            shared[trust_env] = build(verify=verify, cert=cert, trust_env=trust_env)
        return shared[trust_env]

    transport.create_ssl_context = create_ssl_context
    try:
        yield
    finally:
        transport.create_ssl_context = build


@pytest.fixture(autouse=True)
def _no_armed_failpoints():
    """No fail point armed by one test is left for the next (afas_pipeline.lib.failpoints)."""
    failpoints.disarm()
    yield
    failpoints.disarm()
