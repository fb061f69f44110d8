"""The Xelion REST API emulator (``{url}/xelion/api/v1/master``) as an ASGI app.

Routes below the tenant root (reference §C): ``POST me/login``, ``POST me/renew``, ``POST me/logout``,
``GET|POST addressables``, ``GET|PUT|DELETE addressables/{oid}``, ``POST addressables/{oid}/join``,
``GET communications``, ``GET communications/{oid|callId}``, ``GET communications/{oid}/audio``. The rules of
sessions, addressables and calls are in ``store.py``; the admin API (``/xelion/_admin``) in ``admin.py``.

- Every call but login and renew carries ``Authorization: xelion <authentication>``.
- One object is ``{"object": {...}, "links": [{"rel", "href", "method"}]}``; a list is
  ``{"data": [<object envelopes>], "meta": {"links": [...], "paging": {"previousId", "nextId"}}}`` with
  ``nextId`` the oid of the page's last item (none on an empty page), so ``after=<nextId>`` reads on. A
  ``next`` link is there while more items follow. A call with a recording links its ``audio``.
- Errors are ``{"errorCode", "message", "info": "resource=<METHOD> /api/v1/master/..."}`` (``errors.py``); an
  unknown path or tenant is 404 (10100), another method 405 with ``Allow``, a body that is not JSON 400 (10202).
- ``DELETE addressables/{oid}`` removes a Person or Organisation (204; unknown: 404/10100), for an erasure (P2).
  [I] The reference (§C3) documents no delete; Xelion's object API has one for every object it lists, and this
  is how the sandbox assumes it looks. Calls keep naming the party by number, no longer by addressable.
- ``GET communications/{oid}/audio`` is the recording as ``audio/x-mp3`` (silent MPEG-1 Layer III frames of the
  call's length, ``mp3.py``), 404 (10100) when the call has none.
- Limits and faults (``afas_sandbox.faults``, REST API only, never ``/_admin``): beyond
  ``max_session_concurrency`` (4; the reference names the refusal, not the number) requests of one session in
  flight -> 429 (10400); beyond ``max_concurrency`` (64) in all -> 429 (10402, timed out waiting). Injected
  faults: 503 (``Retry-After``) and 500 as errorCode 11000, 429 (``error_429_rate``, 10400) or a dropped
  connection.
"""

from __future__ import annotations

import logging
from typing import Callable
from urllib.parse import urlencode

import orjson
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router, compile_path
from starlette.types import Receive, Scope, Send

from afas_sandbox.admin_common import LoopbackOnly
from afas_sandbox.faults import FaultConfig, FaultInjector, route_path
from afas_sandbox.xelion.errors import (
    JSON,
    SERVER_ERROR,
    TIMED_OUT_WAITING,
    TOO_MANY_CONCURRENT,
    XelionError,
    bad_request,
    method_not_allowed,
    not_found,
)
from afas_sandbox.xelion.mp3 import silent_mp3
from afas_sandbox.xelion.store import PASSWORD, TENANT, USER_NAME, Session, Tenant

log = logging.getLogger("afas_sandbox.xelion")

API_PREFIX = "/api/v1"
#: The tenant root below the mount point: what a client puts where ``https://<host>/api/v1/master`` would go.
TENANT_ROOT = f"{API_PREFIX}/{TENANT}"
SANDBOX_USER_NAME = USER_NAME
SANDBOX_PASSWORD = PASSWORD
MP3 = "audio/x-mp3"
ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


class XelionFaultConfig(FaultConfig):
    max_concurrency: int = Field(64, ge=1)
    max_session_concurrency: int = Field(4, ge=1, description="Requests of one session in flight before 10400.")
    error_429_rate: float = Field(0.0, ge=0, le=1)


#: Route templates below the tenant root -> the methods each answers (the handler is ``XelionEmulator._<name>``).
ROUTES: list[tuple[str, dict[str, str]]] = [
    ("me/login", {"POST": "login"}),
    ("me/renew", {"POST": "renew"}),
    ("me/logout", {"POST": "logout"}),
    ("addressables", {"GET": "addressables", "POST": "create"}),
    ("addressables/{oid}", {"GET": "addressable", "PUT": "update", "DELETE": "remove"}),
    ("addressables/{oid}/join", {"POST": "join"}),
    ("communications", {"GET": "communications"}),
    ("communications/{oid}", {"GET": "communication"}),
    ("communications/{oid}/audio", {"GET": "audio"}),
]
#: Answered without a session.
PUBLIC = {"login", "renew"}
_COMPILED = [(template, compile_path(f"{API_PREFIX}/{{tenant}}/{template}")[0]) for template, _ in ROUTES]


def stats_key(method: str, path: str) -> str:
    """``GET addressables/{oid}``: the route template, or the path when unknown."""
    for template, regex in _COMPILED:
        if regex.match(path):
            return f"{method} {template}"
    return f"{method} {path}"


def _is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def _authorization(scope: Scope) -> str | None:
    """The session of a request for the per-session cap: its ``Authorization`` value."""
    if not _is_api(route_path(scope)):
        return None
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)


def _error(status: int, code: int, message: str, retry: bool = False) -> Callable[..., XelionError]:
    def answer(retry_after: int = 1) -> XelionError:
        return XelionError(status, code, message, {"Retry-After": str(retry_after)} if retry else None)
    return answer


def envelope(obj: dict, root: str) -> dict:
    kind = "communications" if obj["objectType"] == "CallLog" else "addressables"
    href = f"{root}/{kind}/{obj['oid']}"
    links = [{"rel": "self", "href": href, "method": "GET"}]
    if kind == "addressables" and obj["objectType"] != "UnknownAddressable":
        links.append({"rel": "update", "href": href, "method": "PUT"})
    if obj.get("_audio"):
        links.append({"rel": "audio", "href": href + "/audio", "method": "GET"})
    return {"object": {k: v for k, v in obj.items() if not k.startswith("_")}, "links": links}


def page_envelope(items: list[dict], more: bool, request: Request, root: str) -> dict:
    paging: dict = {}
    links = [{"rel": "self", "href": str(request.url), "method": "GET"}]
    if items:
        paging = {"previousId": items[0]["oid"], "nextId": items[-1]["oid"]}
        if more:
            params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("after", "before")]
            query = urlencode([*params, ("after", items[-1]["oid"])])
            links.append({"rel": "next", "href": str(request.url.replace(query=query)), "method": "GET"})
    return {"data": [envelope(item, root) for item in items], "meta": {"links": links, "paging": paging}}


class XelionEmulator:
    """ASGI app for ``/xelion``: the REST API (``/api/v1/master``) behind the fault injector, plus ``/_admin``."""

    def __init__(self, *, allow_remote_admin: bool = False):
        from afas_sandbox.xelion.admin import admin_routes

        self.tenant = Tenant()
        self.faults = FaultInjector(
            self._route, applies=_is_api, stats_key=stats_key,
            error_500=_error(500, SERVER_ERROR, "internal server error"),
            unavailable=_error(503, SERVER_ERROR, "service temporarily unavailable", retry=True),
            too_busy=_error(429, TIMED_OUT_WAITING, "timed out waiting: too many requests in flight"),
            too_many=_error(429, TOO_MANY_CONCURRENT, "too many concurrent requests for this session", retry=True),
            session=_authorization,
            session_busy=_error(429, TOO_MANY_CONCURRENT, "too many concurrent requests for this session"),
            config_class=XelionFaultConfig)
        admin = LoopbackOnly(Router(routes=admin_routes(self)), allow_remote=allow_remote_admin)
        self.router = Router(routes=[Mount("/_admin", app=admin), Route("/{path:path}", self.rest, methods=ALL_METHODS)])

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    def reset(self) -> None:
        self.tenant.reset()
        self.faults.configure(XelionFaultConfig())
        self.faults.reset_stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.faults(scope, receive, send)

    # --- REST --------------------------------------------------------------------------------------------
    async def rest(self, request: Request) -> Response:
        try:
            found = self._match(route_path(request.scope))
            if found is None:
                raise not_found("resource")
            tenant, methods, args = found
            if tenant != TENANT:
                raise not_found(f"tenant {tenant}")
            if request.method not in methods:
                raise method_not_allowed(list(methods))
            name = methods[request.method]
            session = None if name in PUBLIC else self.tenant.authenticate(request.headers.get("authorization"))
            doc = _json_body(await request.body()) if request.method in ("POST", "PUT") else None
            url = str(request.url.replace(query=""))
            root = url[:url.index(TENANT_ROOT) + len(TENANT_ROOT)]
            handler = getattr(self, "_" + name)
            return await run_in_threadpool(handler, request, doc, session, root, **args)
        except XelionError as error:
            return _AsResponse(error)
        except Exception:
            log.exception("sandbox Xelion request failed")
            return _AsResponse(XelionError(500, SERVER_ERROR, "internal server error"))

    @staticmethod
    def _match(path: str) -> tuple[str, dict[str, str], dict[str, str]] | None:
        for (template, methods), (_, regex) in zip(ROUTES, _COMPILED):
            m = regex.match(path)
            if m:
                args = m.groupdict()
                return args.pop("tenant"), methods, args
        return None

    # --- handlers: (request, JSON body, session, tenant root, path arguments) -> response ------------------
    def _login(self, request, doc, session, root) -> Response:
        return _json(self.tenant.login(doc))

    def _renew(self, request, doc, session, root) -> Response:
        return _json(self.tenant.renew(doc, request.headers.get("authorization")))

    def _logout(self, request, doc, session: Session, root) -> Response:
        self.tenant.logout(session)
        return Response(status_code=204)

    def _addressables(self, request, doc, session, root) -> Response:
        items, more = self.tenant.addressables_page(request.query_params)
        return _json(page_envelope(items, more, request, root))

    def _create(self, request, doc, session, root) -> Response:
        return _json(envelope(self.tenant.create(doc), root))

    def _addressable(self, request, doc, session, root, oid) -> Response:
        return _json(envelope(self.tenant.get(oid), root))

    def _update(self, request, doc, session, root, oid) -> Response:
        return _json(envelope(self.tenant.update(oid, doc), root))

    def _remove(self, request, doc, session, root, oid) -> Response:
        self.tenant.remove(oid)
        return Response(status_code=204)

    def _join(self, request, doc, session, root, oid) -> Response:
        return _json(envelope(self.tenant.join(oid, doc), root))

    def _communications(self, request, doc, session, root) -> Response:
        items, more = self.tenant.calls_page(request.query_params)
        return _json(page_envelope(items, more, request, root))

    def _communication(self, request, doc, session, root, oid) -> Response:
        return _json(envelope(self.tenant.call_json(self.tenant.call(oid)), root))

    def _audio(self, request, doc, session, root, oid) -> Response:
        call = self.tenant.call(oid) if oid.isdigit() else None
        if call is None or not self.tenant.has_recording(call):
            raise not_found(f"recording of communication {oid}")
        return Response(silent_mp3(call["_recording_s"]), media_type=MP3)


class _AsResponse(Response):
    """An ``XelionError`` where Starlette wants a ``Response`` (its body needs the request's scope)."""

    def __init__(self, error: XelionError):
        super().__init__(status_code=error.status)
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.error(scope, receive, send)


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _json_body(body: bytes):
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("malformed JSON payload") from None
