"""Starting and stopping the sandbox server."""

from __future__ import annotations

import httpx
import pytest

from afas_sandbox.server import start_sandbox


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
