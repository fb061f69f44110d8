"""What every emulator's admin API shares: its error, how it reads a JSON body, and who may call it."""

from __future__ import annotations

import datetime as dt
import ipaddress

from collections.abc import Callable

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from afas_sandbox.faults import json_response


class AdminError(Exception):
    """An admin request that cannot be carried out; answered as `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


async def json_object(request: Request) -> dict:
    """The request body as a JSON object (an empty body is `{}`)."""
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise AdminError("body must be JSON") from None
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    return body


#: The `afas-pipeline sandbox` option that lets other machines use the admin APIs.
ALLOW_REMOTE_OPTION = "--allow-remote-admin"


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine (127.0.0.0/8, ::1, or IPv4 loopback mapped into IPv6)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def admin_allowed(client_host: str | None, allow_remote: bool) -> bool:
    """The admin APIs export the whole dataset, inject faults and reset everything: only this machine may
    call them, unless the sandbox was started with `--allow-remote-admin`."""
    return allow_remote or is_loopback(client_host)


class LoopbackOnly:
    """ASGI middleware in front of an admin API: a client that `admin_allowed` refuses gets 403 with
    `{"error": ...}` naming the option that would let it in."""

    def __init__(self, app: ASGIApp, *, allow_remote: bool) -> None:
        self.app, self.allow_remote = app, allow_remote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and not admin_allowed(client[0] if client else None, self.allow_remote):
            message = (f"the sandbox admin API answers only this machine (127.0.0.1 or ::1); start the sandbox "
                       f"with {ALLOW_REMOTE_OPTION} to let other hosts use it")
            response = Response(orjson.dumps({"error": message}), status_code=403,
                                media_type="application/json; charset=utf-8")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def clock_offset_s(body: dict) -> float:
    """`offset_s` of a `PUT /clock` body: how far the account's clock runs ahead (negative: behind)."""
    offset = body.get("offset_s")
    if isinstance(offset, bool) or not isinstance(offset, (int, float)):
        raise AdminError("offset_s is a number of seconds (negative: the account's clock runs behind)")
    return float(offset)


def at_instant(body: dict, now: int, per_second: int = 1) -> int:
    """`at` of an admin body in whole units of `1/per_second` s since the epoch (1: seconds, 1000: milliseconds):
    a UTC instant like `2026-10-25T00:05:00.250Z` (naive means UTC); `now` when the body has none."""
    raw = body.get("at")
    if raw is None:
        return now
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except (TypeError, ValueError, AttributeError):
        raise AdminError(f"invalid 'at': {raw!r} (a UTC instant like 2026-10-25T00:05:00.250Z)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return round(value.timestamp() * 1000) * per_second // 1000


def query_int(params, name: str, default: int) -> int:
    """A whole-number query parameter, `default` when absent or empty; ValueError when it is not a whole number
    (each emulator answers that with its vendor's own error)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    return int(raw)


def load_document(load, body: dict, collection: str, kind: type = list) -> None:
    """`load(body)` for a dataset document, which must hold `collection` (a list, or `kind`); a document that does
    not fit is a 400 naming why, never a half-loaded account."""
    if not isinstance(body.get(collection), kind):
        raise AdminError(f"a dataset document has '{collection}'")
    try:
        load(body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AdminError(f"invalid dataset: {exc!r}") from None


def account_routes(endpoint: Callable, emulator, account, collection: str) -> list[Route]:
    """The admin routes every vendor emulator has, over its account (`counts`, `export`, `load`): the state, the
    dataset out and in (a document holding `collection`), and a reset of the whole emulator."""

    def load(request: Request, body: dict):
        load_document(account.load, body, collection)
        return account.counts()

    def reset(request: Request, body: dict):
        emulator.reset()
        return account.counts()

    return [
        Route("/state", endpoint(lambda r, b: account.counts()), methods=["GET"]),
        Route("/dataset", endpoint(lambda r, b: account.export()), methods=["GET"]),
        Route("/dataset", endpoint(load), methods=["POST"]),
        Route("/reset", endpoint(reset), methods=["POST"]),
    ]


def admin_endpoint(work: Callable[[Request, dict], object],
                   refusal: Callable[[Exception], tuple[int, dict] | None] = lambda exc: None):
    """A JSON admin endpoint around `work(request, body)` (run off the event loop): 200 with its answer; an
    `AdminError` as its status, an unknown record (`LookupError`) as 404, and what `refusal` turns into
    (status, body) for the emulator's own refusals."""

    async def handle(request: Request) -> Response:
        try:
            body = await json_object(request) if request.method in ("POST", "PUT") else {}
            return json_response(200, await run_in_threadpool(work, request, body))
        except AdminError as exc:
            return json_response(exc.status, {"error": exc.message})
        except LookupError as exc:
            return json_response(404, {"error": exc.args[0]})
        except Exception as exc:
            answer = refusal(exc)
            if answer is None:
                raise
            return json_response(*answer)

    return handle
