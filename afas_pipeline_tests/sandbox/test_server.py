"""Starting and stopping the sandbox server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import httpx
import pytest

from afas_sandbox.server import (
    SANDBOX_AFAS_TOKEN,
    SANDBOX_MAILCHIMP_KEY,
    SANDBOX_MAILCHIMP_LIST_ID,
    SANDBOX_SPOTLER_KEY,
    SANDBOX_XELION_PASSWORD,
    SANDBOX_XELION_USER,
    start_sandbox,
)


def test_start_returns_a_serving_sandbox_and_stop_frees_the_port():
    with start_sandbox(port=0, contacts=120, seed=3) as sb:
        assert sb.url.startswith("http://127.0.0.1:")
        assert sb.afas_base_url == sb.url + "/afas/ProfitRestServices"
        assert sb.afas_admin_url == sb.url + "/afas/_admin"
        assert httpx.get(sb.afas_admin_url + "/state").json()["counts"]["contacts"] == 120
        url = sb.afas_admin_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/state")


def test_two_sandboxes_are_independent(sandbox):
    with start_sandbox(contacts=100, seed=1) as other:
        assert other.url != sandbox.url
        assert httpx.get(other.afas_admin_url + "/state").json()["counts"]["contacts"] == 100
        assert httpx.get(sandbox.afas_admin_url + "/state").json()["counts"]["contacts"] == 3000


def test_other_paths_are_404(sandbox):
    assert httpx.get(sandbox.url + "/spotler/anything").status_code == 404
    assert httpx.get(sandbox.url + "/mailchimp/anything").status_code == 404
    assert httpx.get(sandbox.url + "/xelion/anything").status_code == 404


def _banner(proc: subprocess.Popen, last: str) -> list[str]:
    """The lines `afas-pipeline sandbox` prints up to the one starting with `last` (then it serves)."""
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.strip().startswith(last):
            return lines
    raise AssertionError(f"the banner ended without a {last!r} line: {lines}")


def test_the_cli_banner_shows_how_to_reach_each_emulator_and_its_api_answers():
    cli = [sys.executable, "-m", "afas_pipeline.cli", "sandbox", "--port", "0", "--contacts", "100"]
    with subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=os.environ) as proc:
        try:
            lines = _banner(proc, "password:")
            fields = {}
            for line in lines:
                if not line.startswith("  "):
                    block = line.split(" (")[0]
                else:
                    name, _, value = line.strip().partition(":")
                    fields[(block, name)] = value.split()[0]
            url = fields[("AFAS sandbox", "base URL")].rsplit("/afas/", 1)[0]
            assert url.startswith("http://127.0.0.1:")
            assert fields[("AFAS sandbox", "token (data)")] == SANDBOX_AFAS_TOKEN
            assert fields[("Spotler Mail+ sandbox", "base URL")] == url + "/spotler/integrationservice-1.1.0"
            assert fields[("Spotler Mail+ sandbox", "consumer key")] == SANDBOX_SPOTLER_KEY
            mailchimp = "Mailchimp Marketing API sandbox"
            root, key = fields[(mailchimp, "API root")], fields[(mailchimp, "API key")]
            assert root == url + "/mailchimp/3.0"
            assert fields[(mailchimp, "admin URL")] == url + "/mailchimp/_admin"
            assert re.fullmatch(r"[0-9a-f]{32}-[a-z]+[0-9]+", key) and key == SANDBOX_MAILCHIMP_KEY
            assert SANDBOX_MAILCHIMP_LIST_ID in next(line for line in lines if line.startswith(mailchimp))
            ping = httpx.get(root + "/ping", auth=("anystring", key), timeout=60)
            assert ping.json() == {"health_status": "Everything's Chimpy!"}
            audience = httpx.get(f"{root}/lists/{SANDBOX_MAILCHIMP_LIST_ID}", auth=("anystring", key), timeout=60)
            assert audience.status_code == 200
            assert httpx.get(fields[(mailchimp, "admin URL")] + "/state", timeout=60).json()["lists"] == 1
            xelion = "Xelion sandbox"
            root = fields[(xelion, "tenant root")]
            assert root == url + "/xelion/api/v1/master"
            assert fields[(xelion, "admin URL")] == url + "/xelion/_admin"
            user, password = fields[(xelion, "user name")], fields[(xelion, "password")]
            assert (user, password) == (SANDBOX_XELION_USER, SANDBOX_XELION_PASSWORD)
            for space in ("banner-test", "another-integration"):  # any fresh userSpace logs in
                login = httpx.post(root + "/me/login", json={"userName": user, "password": password,
                                                             "userSpace": space}, timeout=60)
                assert login.status_code == 200, login.text
            token = login.json()["authentication"]
            assert httpx.get(root + "/addressables", headers={"Authorization": f"xelion {token}"},
                             timeout=60).json()["data"] == []
            assert httpx.get(fields[(xelion, "admin URL")] + "/state", timeout=60).json()["sessions"] == 2
        finally:
            proc.kill()


@pytest.mark.parametrize(("system", "clocked"), [("afas", False), ("spotler", True), ("mailchimp", True),
                                                 ("xelion", False)])
def test_every_answer_carries_one_date_in_the_clock_of_the_system_that_answers(
        sandbox, spotler_sandbox_clean, mailchimp_sandbox_clean, system, clocked):
    admin = getattr(sandbox, f"{system}_admin_url")
    if clocked:
        httpx.put(f"{admin}/clock", json={"offset_s": -3600}).raise_for_status()
    before = datetime.now(timezone.utc)
    response = httpx.get(f"{sandbox.url}/{system}/anything")  # an answer of that system, here a 404
    after = datetime.now(timezone.utc)

    (date,) = response.headers.get_list("date")
    shift = timedelta(hours=-1) if clocked else timedelta(0)
    assert (before + shift).replace(microsecond=0) <= parsedate_to_datetime(date) <= after + shift
