"""The AFAS Profit REST API emulator (``{url}/afas/ProfitRestServices``) as an ASGI app.

Routes (the first path segment and the route words are matched case-insensitively, as are connector
ids, like AFAS on IIS): ``GET connectors/{GetConnector}``, ``POST|PUT connectors/{UpdateConnector}``,
``POST connectors/{UpdateConnector}/{SubObject}``, ``DELETE connectors/KnSubject/KnSubject/@SbId/{id}``,
``GET metainfo``, ``GET metainfo/get/{id}``, ``GET metainfo/update/{id}``, ``GET ProfitVersion``,
``GET SubjectConnector/{SbId}/{FileId}``.

Tokens are sandbox constants (documented, not secrets): ``FULL_ACCESS_TOKEN`` may call every connector,
``LIMITED_TOKEN`` only GetConnector ``Sync_Persons``. Errors always carry AFAS's body
``{"externalMessage","errorNumber","profitLogReference"}`` and the (obsolete, still sent) header
``X-Profit-Error: base64(externalMessage)``.

Choices where the reference is silent:

- A query string over 2049 characters is refused with 404 before authentication (IIS does that).
- The 401 body is the one AFAS clients report (``Ongeldige token``); a connector that is unknown or not in
  the token's App Connector gives 401 "... not supported for this app or the user is not authorized".
- ``skip=-1`` returns every row whatever ``take`` is; any other negative skip, or a negative take with
  ``skip >= 0``, is a 500 (-2147180999). ``take=0`` returns one row, as observed on AFAS. ``skip``/``take``
  in the response echo the request (or the defaults 0/100).
- ``filterjson`` wins when both it and the simple filter are sent.
- Invalid JSON in an UpdateConnector body is a 400 with the usual error body.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import re
import time
import uuid
from dataclasses import dataclass

import orjson
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router
from starlette.types import Receive, Scope, Send

from afas_sandbox.admin_common import LoopbackOnly
from afas_sandbox.afas.admin import admin_routes
from afas_sandbox.afas.connectors import GET_CONNECTORS
from afas_sandbox.afas.model import now_ms
from afas_sandbox.afas.query import GENERIC_ERROR, QueryError, parse_filterjson, parse_order, parse_simple
from afas_sandbox.afas.store import Store
from afas_sandbox.afas.updates import (
    UPDATE_CONNECTORS,
    UPDATE_ERROR_NUMBER,
    UpdateError,
    execute,
    execute_delete,
    metainfo_update,
)
from afas_sandbox.faults import FaultConfig, FaultInjector, Refusal, json_response

log = logging.getLogger("afas_sandbox.afas")

FULL_ACCESS_TOKEN = "3F4C8A34E5A41B1BD3996776431E1EB94C5CF79EE3985EA2085301168734E371"
LIMITED_TOKEN = "376573A90CA15048B7936DE0869736AFBAD3666C6F22A41565798C0CC8AAB076"
PROFIT_VERSION = "22.22.5"
ENVIRONMENT_ID = "99999"
MAX_QUERY_STRING = 2049
INVALID_TOKEN_NUMBER = -2147180996
TOKEN_XML = re.compile(r"\s*<token>\s*<version>1</version>\s*<data>([0-9A-Fa-f]{64})</data>\s*</token>\s*")
JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class AppConnector:
    name: str
    get: frozenset[str] | None  # None: every connector
    update: frozenset[str] | None

    def may_get(self, connector: str) -> bool:
        return self.get is None or connector in self.get

    def may_update(self, connector: str) -> bool:
        return self.update is None or connector in self.update


TOKENS = {
    FULL_ACCESS_TOKEN: AppConnector("afas-pipeline sandbox", None, None),
    LIMITED_TOKEN: AppConnector("afas-pipeline sandbox (persons only)", frozenset({"Sync_Persons"}), frozenset()),
}
GET_IDS = {name.lower(): name for name in GET_CONNECTORS}
UPDATE_IDS = {name.lower(): name for name in UPDATE_CONNECTORS}


class AfasFaultConfig(FaultConfig):
    refuse: list[Refusal] = Field(default_factory=list)


class AfasFailure(Exception):
    def __init__(self, status: int, message: str, number: int = -2147180999):
        super().__init__(message)
        self.status, self.message, self.number = status, message, number


def afas_error(status: int, message: str, number: int = -2147180999) -> Response:
    body = {"externalMessage": message, "errorNumber": number, "profitLogReference": uuid.uuid4().hex.upper()}
    return json_response(status, body, {"X-Profit-Error": base64.b64encode(message.encode()).decode()})


def token_header(data: str) -> str:
    """The ``Authorization`` header value for a token's 64-hex data part."""
    xml = f"<token><version>1</version><data>{data}</data></token>"
    return "AfasToken " + base64.b64encode(xml.encode()).decode()


def authenticate(header: str | None) -> AppConnector | None:
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() != "afastoken":
        return None
    try:
        xml = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    match = TOKEN_XML.fullmatch(xml)
    return TOKENS.get(match.group(1)) if match else None


def not_authorized(kind: str) -> AfasFailure:
    return AfasFailure(401, f"{kind} not supported for this app or the user is not authorized", INVALID_TOKEN_NUMBER)


def stats_key(method: str, path: str) -> str:
    """``GET connectors/Sync_Contacts``: the path below ProfitRestServices, without key values."""
    rest = path.split("/", 2)[2] if path.count("/") >= 2 else ""
    return f"{method} {rest.split('/@')[0]}"


class AfasEmulator:
    """ASGI app for ``/afas``: the REST API behind the fault injector, plus ``/_admin``."""

    def __init__(self, contacts: int = 3000, seed: int = 7, *, allow_remote_admin: bool = False):
        self.initial = (contacts, seed)
        self.store = Store(contacts, seed)
        self.faults = FaultInjector(self._route, applies=lambda p: p.lower().startswith("/profitrestservices"),
                                    stats_key=stats_key, error_500=lambda: afas_error(500, GENERIC_ERROR),
                                    config_class=AfasFaultConfig)
        admin = LoopbackOnly(Router(routes=admin_routes(self)), allow_remote=allow_remote_admin)
        self.router = Router(routes=[Mount("/_admin", app=admin),
                                     Route("/{path:path}", self.rest, methods=["GET", "POST", "PUT", "DELETE"])])

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    def reset(self) -> None:
        self.store.generate(*self.initial)
        self.faults.configure(AfasFaultConfig())
        self.faults.reset_stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.faults(scope, receive, send)

    # --- REST ------------------------------------------------------------------------------------
    async def rest(self, request: Request) -> Response:
        started = time.perf_counter()
        parts = [p for p in request.path_params["path"].split("/") if p]
        if not parts or parts[0].lower() != "profitrestservices":
            return afas_error(404, "The requested resource was not found.")
        if len(request.scope["query_string"]) > MAX_QUERY_STRING:
            return afas_error(404, "The request filtering module is configured to deny a request where the query "
                                   "string is too long.")
        token = authenticate(request.headers.get("authorization"))
        if token is None:
            return afas_error(401, "Ongeldige token", INVALID_TOKEN_NUMBER)
        body = await request.body()
        try:
            response = await run_in_threadpool(self._dispatch, token, request.method, parts[1:],
                                               dict(request.query_params), body)
        except AfasFailure as exc:
            return afas_error(exc.status, exc.message, exc.number)
        except QueryError as exc:
            return afas_error(500, exc.message, exc.number)
        except UpdateError as exc:
            return afas_error(500, exc.message, UPDATE_ERROR_NUMBER)
        except Exception:
            log.exception("sandbox AFAS request failed")
            return afas_error(500, GENERIC_ERROR)
        response.headers["X-AFAS-Proxy-Stats"] = f"complete({round((time.perf_counter() - started) * 1000)}ms)"
        return response

    def _dispatch(self, token: AppConnector, method: str, parts: list[str], params: dict, body: bytes) -> Response:
        head, n = (parts[0].lower() if parts else ""), len(parts)
        if head == "connectors" and n >= 2:
            if method == "GET" and n == 2:
                return self._get_connector(self._get_id(token, parts[1]), params)
            if method in ("POST", "PUT") and n in (2, 3):
                return self._update(self._update_id(token, parts[1]), method, parts[2] if n == 3 else None, body)
            if method == "DELETE" and n >= 3:
                execute_delete(self.store, self._update_id(token, parts[1]), parts[2:], now_ms())
                return Response(b"", 200)
        if method == "GET" and head == "metainfo":
            return self._metainfo(token, parts)
        if method == "GET" and head == "profitversion" and n == 1:
            return json_response(200, {"version": PROFIT_VERSION})
        if method == "GET" and head == "subjectconnector" and n == 3:
            return self._subject_file(token, parts[1], parts[2])
        raise AfasFailure(404, "The requested resource was not found.")

    @staticmethod
    def _get_id(token: AppConnector, name: str) -> str:
        connector = GET_IDS.get(name.lower())
        if connector is None or not token.may_get(connector):
            raise not_authorized("GetConnector")
        return connector

    @staticmethod
    def _update_id(token: AppConnector, name: str) -> str:
        connector = UPDATE_IDS.get(name.lower())
        if connector is None or not token.may_update(connector):
            raise not_authorized("UpdateConnector")
        return connector

    def _get_connector(self, connector: str, params: dict) -> Response:
        try:
            skip, take = int(params.get("skip", 0)), int(params.get("take", 100))
        except ValueError:
            raise QueryError() from None
        if skip < -1 or (skip >= 0 and take < 0):
            raise QueryError()
        if "filterjson" in params:
            flt = parse_filterjson(params["filterjson"])
        else:
            flt = parse_simple(params.get("filterfieldids"), params.get("filtervalues"), params.get("operatortypes"))
        view = self.store.view(connector)
        rows = view.index(flt, parse_order(params.get("orderbyfieldids")))
        if skip >= 0:
            rows = rows[skip: skip + max(take, 1)]
        head = b'{"skip":%d,"take":%d,"rows":' % (skip, take)
        return Response(head + view.rows_json(rows) + b"}", 200, media_type=JSON)

    def _update(self, connector: str, method: str, sub_object: str | None, body: bytes) -> Response:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise AfasFailure(400, "Invalid json") from None
        results = execute(self.store, connector, method, document, sub_object, now_ms())
        if method == "PUT":
            return Response(b"", 200)
        return json_response(201, {"results": results})

    def _metainfo(self, token: AppConnector, parts: list[str]) -> Response:
        if len(parts) == 1:
            return json_response(200, {
                "updateConnectors": [{"id": c, "description": d} for c, d in UPDATE_CONNECTORS.items()
                                     if token.may_update(c)],
                "getConnectors": [{"id": c, "description": g.description} for c, g in GET_CONNECTORS.items()
                                  if token.may_get(c)],
                "info": {"envid": ENVIRONMENT_ID, "appName": token.name, "group": "Sandbox", "tokenExpiry": None}})
        if len(parts) == 3 and parts[1].lower() == "get":
            return json_response(200, GET_CONNECTORS[self._get_id(token, parts[2])].metainfo())
        if len(parts) == 3 and parts[1].lower() == "update":
            return json_response(200, metainfo_update(self._update_id(token, parts[2])))
        raise AfasFailure(404, "The requested resource was not found.")

    def _subject_file(self, token: AppConnector, subject_id: str, file_id: str) -> Response:
        self._get_id(token, "ProfitSubjects")
        files = self.store.tables["attachments"]
        with self.store.lock:
            pos = files.find(file_id)
            if pos is None or str(files.cols["SubjectId"][pos]) != subject_id:
                raise AfasFailure(404, "The requested file was not found.")
            name, data = files.cols["FileName"][pos], files.cols["FileData"][pos]
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return json_response(200, {"filename": name, "mimetype": mimetype, "filedata": data})
