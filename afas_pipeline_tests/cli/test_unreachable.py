"""A system that does not answer (nothing listens, a host name that does not resolve, no answer in time) stops
`sync` and `validate-mappings --drift` before anything runs: one line naming the system, its URL and the setting
that chose it (for the sandbox: how to start it), exit code 1, no traceback."""

from __future__ import annotations

import socket

import pytest

from afas_pipeline import cli
from afas_pipeline.cli import main

PARTITION = "2026-11-22-06:00"


@pytest.fixture
def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]  # free now, and nothing listens on it once closed


def production(system: str, url: str) -> dict[str, str]:
    """The settings that make `system` the production one, at `url` (the others stay the sandbox)."""
    return {
        "afas": {"AFAS_BASE_URL": url, "AFAS_TOKEN": "A" * 64},
        "spotler": {"SPOTLER_BASE_URL": url, "SPOTLER_CONSUMER_KEY": "key", "SPOTLER_CONSUMER_SECRET": "secret"},
        "mailchimp": {"MAILCHIMP_BASE_URL": url, "MAILCHIMP_API_KEY": "0" * 32 + "-us21", "MAILCHIMP_LIST_ID": "l1"},
        "xelion": {"XELION_BASE_URL": url, "XELION_USER_NAME": "pipeline", "XELION_PASSWORD": "secret"},
    }[system]


def the_one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = err.splitlines()
    return line


@pytest.mark.parametrize("system,title,setting", [
    ("afas", "AFAS", "AFAS_BASE_URL"),
    ("spotler", "Spotler", "SPOTLER_BASE_URL"),
    ("mailchimp", "Mailchimp", "MAILCHIMP_BASE_URL"),
    ("xelion", "Xelion", "XELION_BASE_URL"),
])
def test_sync_to_a_system_nothing_listens_at_is_one_line_naming_its_url_and_setting(
        system, title, setting, cli_env, closed_port, capsys):
    url = f"http://127.0.0.1:{closed_port}/api"
    for name, value in production(system, url).items():
        cli_env.setenv(name, value)
    assert main(["sync", "--partition", PARTITION]) == 1
    line = the_one_error(capsys)
    assert line == (f"error: {title} at {url} ({setting}) does not answer (Connection refused): check {setting} and "
                    f"that this machine reaches it (network, proxy, firewall)")


def test_a_host_name_that_does_not_resolve_says_so(cli_env, capsys):
    # .invalid never resolves (RFC 2606).
    for name, value in production("afas", "https://afas.invalid/ProfitRestServices").items():
        cli_env.setenv(name, value)
    assert main(["sync", "--partition", PARTITION]) == 1
    line = the_one_error(capsys)
    assert line.startswith("error: AFAS at https://afas.invalid/ProfitRestServices (AFAS_BASE_URL) does not answer "
                           "(its host name does not resolve; DNS: ")


def test_a_system_that_accepts_but_never_answers_is_a_timeout(cli_env, capsys):
    cli_env.setattr(cli, "PROBE_TIMEOUT_S", 0.5)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; no one ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v1/master"
        for name, value in production("xelion", url).items():
            cli_env.setenv(name, value)
        assert main(["sync", "--partition", PARTITION, "--destination", "xelion"]) == 1
    assert the_one_error(capsys) == (
        f"error: Xelion at {url} (XELION_BASE_URL) does not answer (no answer within 0.5s): check XELION_BASE_URL "
        f"and that this machine reaches it (network, proxy, firewall)")


def test_only_the_systems_of_the_chosen_destination_are_asked(cli_env, closed_port, capsys):
    # Mailchimp does not answer, but a sync to Xelion does not need it: what stops it is Xelion's own URL.
    for name, value in production("mailchimp", f"http://127.0.0.1:{closed_port}/3.0").items():
        cli_env.setenv(name, value)
    for name, value in production("xelion", f"http://127.0.0.1:{closed_port}/xelion").items():
        cli_env.setenv(name, value)
    assert main(["sync", "--partition", PARTITION, "--destination", "xelion"]) == 1
    assert the_one_error(capsys).startswith(f"error: Xelion at http://127.0.0.1:{closed_port}/xelion ")


def test_drift_against_a_sandbox_that_is_not_running_says_how_to_start_it(cli_env, closed_port, capsys):
    cli_env.setenv("AFAS_PIPELINE_SANDBOX_URL", f"http://127.0.0.1:{closed_port}")
    assert main(["validate-mappings", "--drift"]) == 1
    line = the_one_error(capsys)
    assert line.startswith(f"error: the sandbox at http://127.0.0.1:{closed_port} (AFAS_PIPELINE_SANDBOX_URL) does "
                           f"not answer (Connection refused): start it with `afas-pipeline sandbox` (or `make "
                           f"sandbox`), point AFAS_PIPELINE_SANDBOX_URL at it, or configure production AFAS, ")
