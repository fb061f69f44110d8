"""The sandbox server: one Starlette app with an emulator mounted per system, served by uvicorn.

- ``/afas``: the AFAS Profit emulator (``/afas/ProfitRestServices``, admin ``/afas/_admin``).
- ``/spotler``: the Spotler Mail+ emulator (``/spotler/integrationservice-1.1.0``, admin ``/spotler/_admin``).
- ``/mailchimp``: the Mailchimp Marketing API v3 emulator (API root ``/mailchimp/3.0``, admin ``/mailchimp/_admin``).
- ``/xelion``: the Xelion REST API emulator (tenant root ``/xelion/api/v1/master``, admin ``/xelion/_admin``).

``start_sandbox()`` runs it in a background thread (tests, bench); ``serve()`` blocks (the CLI). Both bind
the socket before uvicorn starts, so the port is known up front, and ``start_sandbox`` returns only once
uvicorn reports that it accepts connections.

Every answer carries a ``Date`` header in the clock of the system that answers, as the real services' do:
Spotler's and Mailchimp's move with their admin ``/clock``, so a client that dates its reads by the server's
clock can be tested against a server whose clock differs from its own (uvicorn's own ``Date`` is off).

The admin APIs answer only clients on this machine unless ``allow_remote_admin`` is set; binding an address
other machines can reach (``0.0.0.0``, a LAN address) is warned about at start-up.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from afas_sandbox.admin_common import ALLOW_REMOTE_OPTION, is_loopback
from afas_sandbox.afas.app import FULL_ACCESS_TOKEN, LIMITED_TOKEN, AfasEmulator
from afas_sandbox.faults import quiet_drops
from afas_sandbox.mailchimp.app import API_KEY as MAILCHIMP_API_KEY
from afas_sandbox.mailchimp.app import API_ROOT as MAILCHIMP_API_ROOT
from afas_sandbox.mailchimp.app import LIST_ID as MAILCHIMP_LIST_ID
from afas_sandbox.mailchimp.app import MailchimpEmulator
from afas_sandbox.mailchimp.store import SANDBOX_LIST_NAME as MAILCHIMP_LIST_NAME
from afas_sandbox.spotler.app import BASE_PATH as SPOTLER_BASE_PATH
from afas_sandbox.spotler.app import CONSUMER_KEY, CONSUMER_SECRET, SpotlerEmulator
from afas_sandbox.xelion.app import SANDBOX_PASSWORD as XELION_PASSWORD
from afas_sandbox.xelion.app import SANDBOX_USER_NAME as XELION_USER_NAME
from afas_sandbox.xelion.app import TENANT_ROOT as XELION_TENANT_ROOT
from afas_sandbox.xelion.app import XelionEmulator

DEFAULT_CONTACTS = 3000
DEFAULT_SEED = 7
DEFAULT_PORT = 8765
#: The 64-hex ``data`` parts of the sandbox's AFAS tokens: documented constants, not secrets.
SANDBOX_AFAS_TOKEN = FULL_ACCESS_TOKEN
SANDBOX_AFAS_LIMITED_TOKEN = LIMITED_TOKEN
#: The sandbox's Spotler OAuth consumer key and secret: documented constants, not secrets.
SANDBOX_SPOTLER_KEY = CONSUMER_KEY
SANDBOX_SPOTLER_SECRET = CONSUMER_SECRET
#: The sandbox's Mailchimp API key (``<32 hex>-<dc>``) and the audience there from the start: documented constants.
SANDBOX_MAILCHIMP_KEY = MAILCHIMP_API_KEY
SANDBOX_MAILCHIMP_LIST_ID = MAILCHIMP_LIST_ID
#: The sandbox's Xelion user and password (any fresh userSpace logs in): documented constants.
SANDBOX_XELION_USER = XELION_USER_NAME
SANDBOX_XELION_PASSWORD = XELION_PASSWORD
STARTUP_TIMEOUT_S = 120.0

log = logging.getLogger("afas_sandbox")


class SandboxBindError(RuntimeError):
    """The sandbox cannot listen where it was asked to; the message names the address and what to change."""


def build_app(contacts: int = DEFAULT_CONTACTS, seed: int = DEFAULT_SEED, *,
              allow_remote_admin: bool = False) -> tuple[Starlette, AfasEmulator]:
    app, afas, *_ = build_apps(contacts, seed, allow_remote_admin=allow_remote_admin)
    return app, afas


def build_apps(contacts: int = DEFAULT_CONTACTS, seed: int = DEFAULT_SEED, *, allow_remote_admin: bool = False
               ) -> tuple[Starlette, AfasEmulator, SpotlerEmulator, MailchimpEmulator, XelionEmulator]:
    afas = AfasEmulator(contacts=contacts, seed=seed, allow_remote_admin=allow_remote_admin)
    spotler = SpotlerEmulator(allow_remote_admin=allow_remote_admin)
    mailchimp = MailchimpEmulator(allow_remote_admin=allow_remote_admin)
    xelion = XelionEmulator(allow_remote_admin=allow_remote_admin)
    app = Starlette(routes=[Mount("/afas", app=afas), Mount("/spotler", app=spotler),
                            Mount("/mailchimp", app=mailchimp), Mount("/xelion", app=xelion)])
    clocks = {"/spotler/": lambda: spotler.account.now() / 1000, "/mailchimp/": mailchimp.account.now}
    app.add_middleware(DateHeader, clocks=clocks)
    return app, afas, spotler, mailchimp, xelion


class DateHeader:
    """Sets ``Date`` on every answer from the clock of the system under the path's prefix (``clocks``: prefix ->
    epoch seconds), the real time elsewhere. HTTP dates have whole seconds: the time is rounded down."""

    def __init__(self, app: ASGIApp, clocks: dict[str, Callable[[], float]]):
        self.app, self.clocks = app, clocks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        clock = next((c for prefix, c in self.clocks.items() if path.startswith(prefix)), time.time)

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", formatdate(clock(), usegmt=True).encode())]}
            await send(message)

        await self.app(scope, receive, dated)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SandboxBindError(
            f"the sandbox cannot listen on {host}:{port}: {reason}; choose another --port (or --host)"
        ) from None
    sock.set_inheritable(True)
    return sock


def exposure_warning(sock: socket.socket, allow_remote_admin: bool) -> str | None:
    """One line to warn with when the sandbox listens where other machines can reach it, else None."""
    address = sock.getsockname()[0]
    if is_loopback(address):
        return None
    reach = (f"warning: the sandbox listens on {address}, where other machines can reach its APIs (the credentials "
             f"are public sandbox constants)")
    if allow_remote_admin:
        return f"{reach} and, with {ALLOW_REMOTE_OPTION}, its admin APIs: dataset export, faults, reset"
    return f"{reach}; its admin APIs still answer only this machine ({ALLOW_REMOTE_OPTION} lifts that)"


def _local_host(host: str) -> str:
    """The address to print and to connect to: a wildcard bind (0.0.0.0, ::) is reached over loopback."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if not address.is_unspecified:
        return host
    return "::1" if address.version == 6 else "127.0.0.1"


class _Server(uvicorn.Server):
    """uvicorn server that signals ``ready`` once it accepts connections (or has given up)."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets=None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()

    def run(self, sockets=None) -> None:
        try:
            super().run(sockets=sockets)
        finally:
            self.ready.set()


def _server(app: Starlette, log_level: str) -> _Server:
    quiet_drops()
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", timeout_keep_alive=30,
                            date_header=False)  # the app dates its answers (DateHeader)
    return _Server(config)


@dataclass
class Sandbox:
    """A running sandbox. ``afas_token``/``afas_limited_token`` are the 64-hex ``data`` parts;
    ``spotler_consumer_key``/``spotler_consumer_secret`` sign Spotler calls (OAuth 1.0a, one-legged);
    ``mailchimp_api_key`` is the password of Mailchimp's Basic auth (any user name), ``mailchimp_list_id`` the
    audience there from the start; ``xelion_user``/``xelion_password`` log in at ``xelion_base_url`` with any fresh
    ``userSpace``."""

    url: str
    afas: AfasEmulator
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _socket: socket.socket = field(repr=False)
    spotler: SpotlerEmulator = field(repr=False)
    mailchimp: MailchimpEmulator = field(repr=False)
    xelion: XelionEmulator = field(repr=False)
    afas_token: str = FULL_ACCESS_TOKEN
    afas_limited_token: str = LIMITED_TOKEN
    spotler_consumer_key: str = CONSUMER_KEY
    spotler_consumer_secret: str = field(default=CONSUMER_SECRET, repr=False)
    mailchimp_api_key: str = field(default=MAILCHIMP_API_KEY, repr=False)
    mailchimp_list_id: str = MAILCHIMP_LIST_ID
    xelion_user: str = XELION_USER_NAME
    xelion_password: str = field(default=XELION_PASSWORD, repr=False)

    @property
    def afas_base_url(self) -> str:
        return self.url + "/afas/ProfitRestServices"

    @property
    def afas_admin_url(self) -> str:
        return self.url + "/afas/_admin"

    @property
    def spotler_base_url(self) -> str:
        return self.url + "/spotler" + SPOTLER_BASE_PATH

    @property
    def spotler_admin_url(self) -> str:
        return self.url + "/spotler/_admin"

    @property
    def mailchimp_base_url(self) -> str:
        """The API root (``.../mailchimp/3.0``): what a client puts where ``https://<dc>.api.mailchimp.com/3.0``
        would go."""
        return self.url + "/mailchimp" + MAILCHIMP_API_ROOT

    @property
    def mailchimp_admin_url(self) -> str:
        return self.url + "/mailchimp/_admin"

    @property
    def xelion_base_url(self) -> str:
        """The tenant root (``.../xelion/api/v1/master``): what a client puts where
        ``https://<host>/api/v1/master`` would go."""
        return self.url + "/xelion" + XELION_TENANT_ROOT

    @property
    def xelion_admin_url(self) -> str:
        return self.url + "/xelion/_admin"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def local_url(host: str, port: int) -> str:
    """The URL this machine reaches a sandbox listening on `host` by (a wildcard bind over loopback)."""
    return _url(_local_host(host), port)


def start_sandbox(host: str = "127.0.0.1", port: int = 0, contacts: int = DEFAULT_CONTACTS,
                  seed: int = DEFAULT_SEED, log_level: str = "warning", *, allow_remote_admin: bool = False) -> Sandbox:
    """Start the sandbox in a daemon thread; port 0 picks a free port."""
    app, afas, spotler, mailchimp, xelion = build_apps(contacts, seed, allow_remote_admin=allow_remote_admin)
    sock = _bind(host, port)
    warning = exposure_warning(sock, allow_remote_admin)
    if warning:
        log.warning(warning)
    server = _server(app, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="afas-sandbox", daemon=True)
    thread.start()
    server.ready.wait(STARTUP_TIMEOUT_S)
    if not server.started:
        server.should_exit = True
        sock.close()
        raise RuntimeError("the sandbox server failed to start")
    return Sandbox(url=local_url(host, sock.getsockname()[1]), afas=afas, _server=server, _thread=thread,
                   _socket=sock, spotler=spotler, mailchimp=mailchimp, xelion=xelion)


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, contacts: int = DEFAULT_CONTACTS, seed: int = DEFAULT_SEED,
          log_level: str = "info", *, allow_remote_admin: bool = False) -> None:
    """Run the sandbox in the foreground until interrupted, after printing how to reach each emulator."""
    sock = _bind(host, port)
    warning = exposure_warning(sock, allow_remote_admin)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    app, _ = build_app(contacts, seed, allow_remote_admin=allow_remote_admin)
    url = local_url(host, sock.getsockname()[1])
    print(f"AFAS sandbox ({contacts} contacts, seed {seed})")
    print(f"  base URL:       {url}/afas/ProfitRestServices")
    print(f"  admin URL:      {url}/afas/_admin")
    print(f"  token (data):   {FULL_ACCESS_TOKEN}")
    print(f"  limited token:  {LIMITED_TOKEN}  (GetConnector Sync_Persons only)")
    print("Spotler Mail+ sandbox (empty account)")
    print(f"  base URL:         {url}/spotler{SPOTLER_BASE_PATH}")
    print(f"  admin URL:        {url}/spotler/_admin")
    print(f"  consumer key:     {CONSUMER_KEY}")
    print(f"  consumer secret:  {CONSUMER_SECRET}  (sandbox constant, OAuth 1.0a HMAC-SHA1)")
    print(f"Mailchimp Marketing API sandbox (audience {MAILCHIMP_LIST_ID} {MAILCHIMP_LIST_NAME!r}, no members)")
    print(f"  API root:         {url}/mailchimp{MAILCHIMP_API_ROOT}")
    print(f"  admin URL:        {url}/mailchimp/_admin")
    print(f"  API key:          {MAILCHIMP_API_KEY}  (sandbox constant, Basic auth with any user name)")
    print("Xelion sandbox (empty address book, no calls)")
    print(f"  tenant root:      {url}/xelion{XELION_TENANT_ROOT}")
    print(f"  admin URL:        {url}/xelion/_admin")
    print(f"  user name:        {XELION_USER_NAME}")
    print(f"  password:         {XELION_PASSWORD}  (sandbox constant, POST me/login with any fresh userSpace)",
          flush=True)
    try:
        _server(app, log_level).run(sockets=[sock])
    finally:
        sock.close()
