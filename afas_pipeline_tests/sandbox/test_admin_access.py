"""Who may call the admin APIs (dataset export, faults, reset): this machine only, unless the sandbox was
started with --allow-remote-admin; a sandbox listening where other machines reach it says so at start-up."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import httpx
import orjson
import pytest

from afas_sandbox.admin_common import admin_allowed
from afas_sandbox.server import start_sandbox

ADMIN_PATHS = ("/afas/_admin/state", "/spotler/_admin/state", "/xelion/_admin/state")


@pytest.mark.parametrize("client_host,allow_remote,allowed", [
    ("127.0.0.1", False, True),
    ("127.8.9.10", False, True),  # all of 127.0.0.0/8 is this machine
    ("::1", False, True),
    ("::ffff:127.0.0.1", False, True),  # IPv4 loopback on a dual-stack socket
    ("192.0.2.10", False, False),
    ("10.0.0.7", False, False),
    ("fd00::2", False, False),
    ("::ffff:192.0.2.10", False, False),
    ("0.0.0.0", False, False),
    ("testclient", False, False),  # not an address: not trusted
    (None, False, False),  # no peer address (a Unix socket): not trusted
    ("192.0.2.10", True, True),
    (None, True, True),
])
def test_admin_answers_loopback_clients_only_unless_remote_admin_is_allowed(client_host, allow_remote, allowed):
    assert admin_allowed(client_host, allow_remote) is allowed


def _lan_address() -> str | None:
    """An address of this machine other machines could reach (the source address of its default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1; a UDP connect sends nothing
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _asgi_get(app, client_host: str, path: str = "/state") -> tuple[int, dict]:
    """One GET through an ASGI app as if from `client_host` (only when the machine has no LAN address)."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [], "client": (client_host, 40000), "server": ("0.0.0.0", 1),
             "scheme": "http", "http_version": "1.1"}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body) if body else {}


def test_admin_refuses_a_client_on_another_address_with_403_naming_the_option():
    address = _lan_address()
    with start_sandbox(host="0.0.0.0", contacts=100, seed=3) as sb:
        port = sb.url.rsplit(":", 1)[1]
        if address is None:  # a machine with loopback only: each emulator as a remote client would reach it
            for emulator in (sb.afas, sb.spotler, sb.xelion):
                status, body = _asgi_get(emulator, "192.0.2.10", "/_admin/state")
                assert status == 403 and "--allow-remote-admin" in body["error"]
            return
        for path in ADMIN_PATHS:
            response = httpx.get(f"http://{address}:{port}{path}", timeout=30)
            assert response.status_code == 403, (path, response.text)
            assert "--allow-remote-admin" in response.json()["error"]
        # The emulated APIs themselves still answer (with their own authentication).
        assert httpx.get(f"http://{address}:{port}/afas/ProfitRestServices/connectors/Sync_Contacts",
                         timeout=30).status_code == 401
        # And this machine's own clients are answered as before.
        for path in ADMIN_PATHS:
            assert httpx.get(sb.url + path, timeout=30).status_code == 200


def test_allow_remote_admin_lets_another_address_in():
    address = _lan_address()
    with start_sandbox(host="0.0.0.0", contacts=100, seed=3, allow_remote_admin=True) as sb:
        port = sb.url.rsplit(":", 1)[1]
        if address is None:
            for emulator in (sb.afas, sb.spotler, sb.xelion):
                assert _asgi_get(emulator, "192.0.2.10", "/_admin/state")[0] == 200
            return
        for path in ADMIN_PATHS:
            assert httpx.get(f"http://{address}:{port}{path}", timeout=30).status_code == 200


def test_the_cli_warns_at_start_up_when_the_sandbox_listens_on_every_address():
    cli = [sys.executable, "-m", "afas_pipeline.cli", "sandbox", "--host", "0.0.0.0", "--port", "0", "--contacts", "100"]
    with subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ) as proc:
        try:
            line = proc.stderr.readline()
            while line and not line.startswith("warning:") and "Started server" not in line:
                line = proc.stderr.readline()
        finally:
            proc.kill()
    assert line.startswith("warning: the sandbox listens on 0.0.0.0"), line
    assert "--allow-remote-admin" in line and line.count("\n") == 1


def test_only_an_address_other_machines_reach_is_warned_about():
    from afas_sandbox.server import exposure_warning

    with socket.create_server(("127.0.0.1", 0)) as loopback:
        assert exposure_warning(loopback, allow_remote_admin=False) is None
    with socket.create_server(("0.0.0.0", 0)) as everywhere:
        assert "admin APIs still answer only this machine" in exposure_warning(everywhere, allow_remote_admin=False)
        assert "with --allow-remote-admin, its admin APIs" in exposure_warning(everywhere, allow_remote_admin=True)
