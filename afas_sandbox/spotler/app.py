"""The Spotler Mail+ REST API emulator (``{url}/spotler/integrationservice-1.1.0``) as an ASGI app.

Routes below the base path (reference §A4/§A5): ``GET contact/properties/list``, ``POST contact``,
``GET|PUT contact/{externalId}`` (``DELETE`` -> 405: Spotler has no hard delete), ``POST contact/list``,
``PUT contact/inactivate/{externalId}``, ``PUT contact/anonymize/{externalId}``, ``GET contact/updates/list``,
``GET contact/bounces/list``, ``GET mailing``, ``GET mailing/{encryptedId}``,
``GET campaign-mailing/{encryptedId}``, ``GET mailing-interaction/{sent|opened|clicked|bounced}``.
The unversioned ``/integrationservice`` base is an alias. Every call is verified as OAuth 1.0a one-legged
(``oauth.py``) with the sandbox's documented consumer key and secret. Errors always carry
``{"errorType": "<ENUM>", "message": "..."}``.

Choices where the reference is silent (the most Spotler-like behaviour we could infer):

- Dates in responses (contact ``created``/``lastChanged``, bounce ``date``, mailing ``scheduledStartDate``,
  interaction ``date``/``changeDate``) are epoch milliseconds, as a Jackson back end writes them.
- Query dates: ISO-8601 with an offset are honoured; naive values are Europe/Amsterdam local time
  (see ``store.parse_date``); all digits are epoch ms. ``fromDate`` is required for the contact feeds,
  ``toDate`` defaults to now; every date of ``mailing-interaction`` is optional. A bad value -> 400
  INVALID_PARAMS, as is ``pageSize`` outside 1..10000 or a negative ``after``.
- The contact feeds are bare arrays ordered by (lastChanged, externalId) resp. bounce date; page with
  ``after``/``pageSize`` until a short page. ``mailing-interaction`` pages carry ``paging.next`` (absolute URL
  of the next page, ``null`` on the last one) and ``paging.after`` (the offset of the next page).
- Writes: ``update:false`` on an existing contact -> CONTACT_ALREADY_EXISTS; an unknown property, a value of
  the wrong type, a string over 255 characters, a gender other than M/F, an unknown permission bit or
  invalid e-mail syntax -> PROPERTY_INVALID in ``contact/list`` (400 INVALID_PROPERTY for the single-contact
  calls); an unknown top-level field or a missing externalId -> ERROR (400 INVALID_PARAMS). A ``null``
  property value (or an empty e-mail) clears the property. E-mail addresses are stored trimmed, case kept.
  The read-only fields a client read (encryptedId, created, lastChanged, testGroup, temporary) are ignored.
- ``lastChanged`` is stamped only when a write changes something; a write identical to the stored state
  is accepted (OK/204) but leaves ``lastChanged`` and the change log alone.
- A contact/list batch of more than 1000 contacts -> 400 INVALID_PARAMS; results come in request order
  with ``message: null`` for OK. A PUT whose body names another externalId than the path -> 400.
- New contacts get channel EMAIL on. Writes leave channels alone unless they send ``channels``; so a
  hard-bounced contact is only reactivated by a write with ``{"name":"EMAIL","value":true}``.
- ``inactivate`` turns every channel off; ``anonymize`` removes all properties, switches every
  permission and channel off and keeps the externalId (there is no hard delete).
- Campaign mailings are not in ``GET mailing`` (Spotler lists them under ``campaign-mailing``) but their
  interactions are in the ``mailing-interaction`` feed.
- Overload answers: beyond ``max_concurrency`` requests in flight -> 429 with ``Retry-After: 1``; injected
  faults give 503 (``Retry-After``), 500, 429 or a dropped connection; all with errorType
  BACKEND_EXCEPTION. The fault middleware acts on the REST API only, never on ``/_admin``.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlencode

import orjson
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router
from starlette.types import Receive, Scope, Send

from afas_sandbox.admin_common import LoopbackOnly, query_int
from afas_sandbox.faults import JSON_TYPE, FaultConfig, FaultInjector, json_response
from afas_sandbox.spotler.oauth import OAuthFailure, Verifier
from afas_sandbox.spotler.store import (
    DEFAULT_PAGE_SIZE,
    INTERACTION_KINDS,
    MAX_BATCH,
    MAX_PAGE_SIZE,
    PROPERTIES,
    Account,
    Invalid,
    parse_date,
    validate,
)

log = logging.getLogger("afas_sandbox.spotler")

#: The sandbox's consumer key and secret: documented constants, not secrets.
CONSUMER_KEY = "afaspipeline-sandbox"
CONSUMER_SECRET = "sandbox-secret-7d1e0c5b9a3f4e21"
BASE_PATHS = ("integrationservice-1.1.0", "integrationservice")
BASE_PATH = "/" + BASE_PATHS[0]


class SpotlerFaultConfig(FaultConfig):
    error_429_rate: float = Field(0.0, ge=0, le=1)


class SpotlerFailure(Exception):
    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def spotler_error(status: int, error_type: str, message: str, headers: dict | None = None) -> Response:
    return json_response(status, {"errorType": error_type, "message": message}, headers)


def _retry_later(status: int, message: str):
    def respond(retry_after: int) -> Response:
        return spotler_error(status, "BACKEND_EXCEPTION", message, {"Retry-After": str(retry_after)})
    return respond


def _segments(path: str) -> list[str] | None:
    """Path segments below the base path, or None when the path is not below it."""
    parts = path.split("/")
    if len(parts) < 2 or parts[1] not in BASE_PATHS:
        return None
    return [unquote(p) for p in parts[2:] if p]


CONTACT_ROUTES = {"list", "properties", "updates", "bounces"}


def stats_key(method: str, path: str) -> str:
    """``POST contact/list``, ``GET contact/{externalId}``: the route below the base path, ids as names."""
    parts = _segments(path) or []
    if parts[:1] == ["contact"] and len(parts) >= 2:
        if parts[1] in ("inactivate", "anonymize"):
            return f"{method} contact/{parts[1]}/{{externalId}}"
        if parts[1] in CONTACT_ROUTES:
            return f"{method} " + "/".join(parts)
        return f"{method} contact/{{externalId}}"
    if parts[:1] in (["mailing"], ["campaign-mailing"]) and len(parts) == 2:
        return f"{method} {parts[0]}/{{encryptedId}}"
    return f"{method} " + "/".join(parts)


def _int(params, name: str, default: int, low: int, high: int) -> int:
    try:
        value = query_int(params, name, default)
    except ValueError:
        raise SpotlerFailure(400, "INVALID_PARAMS", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise SpotlerFailure(400, "INVALID_PARAMS", f"{name} must be between {low} and {high}")
    return value


def _date(params, name: str, *, required: bool = False) -> int | None:
    raw = params.get(name)
    if not raw:
        if required:
            raise SpotlerFailure(400, "INVALID_PARAMS", f"{name} is required")
        return None
    try:
        return parse_date(raw)
    except (ValueError, OverflowError):
        raise SpotlerFailure(400, "INVALID_PARAMS", f"{name} is not an ISO-8601 date: {raw!r}") from None


def _paging(params) -> tuple[int, int]:
    return (_int(params, "after", 0, 0, 2**31 - 1),
            _int(params, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE))


def _json_body(body: bytes) -> dict:
    try:
        doc = orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        raise SpotlerFailure(400, "INVALID_PARAMS", "the body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise SpotlerFailure(400, "INVALID_PARAMS", "the body must be a JSON object")
    return doc


def _flag(doc: dict, name: str, default: bool) -> bool:
    value = doc.get(name, default)
    if not isinstance(value, bool):
        raise SpotlerFailure(400, "INVALID_PARAMS", f"{name} must be true or false")
    return value


def _single(doc, external_id: str | None = None):
    try:
        return validate(doc, external_id)
    except Invalid as exc:
        error_type = "INVALID_PROPERTY" if exc.code == "PROPERTY_INVALID" else "INVALID_PARAMS"
        raise SpotlerFailure(400, error_type, exc.message) from None


class SpotlerEmulator:
    """ASGI app for ``/spotler``: the REST API behind the fault injector, plus ``/_admin``."""

    def __init__(self, consumers: dict[str, str] | None = None, *, allow_remote_admin: bool = False):
        from afas_sandbox.spotler.admin import admin_routes

        self.account = Account()
        self.verifier = Verifier(consumers or {CONSUMER_KEY: CONSUMER_SECRET})
        self.faults = FaultInjector(
            self._route, applies=lambda p: _segments(p) is not None, stats_key=stats_key,
            error_500=lambda: spotler_error(500, "BACKEND_EXCEPTION", "An internal error occurred"),
            unavailable=_retry_later(503, "Service temporarily unavailable"),
            too_busy=lambda: _retry_later(429, "Too many concurrent requests")(1),
            too_many=_retry_later(429, "Too many requests"), config_class=SpotlerFaultConfig)
        admin = LoopbackOnly(Router(routes=admin_routes(self)), allow_remote=allow_remote_admin)
        self.router = Router(routes=[Mount("/_admin", app=admin),
                                     Route("/{path:path}", self.rest, methods=["GET", "POST", "PUT", "DELETE",
                                                                              "PATCH"])])

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    def reset(self) -> None:
        self.account.reset()
        self.verifier.reset()
        self.faults.configure(SpotlerFaultConfig())
        self.faults.reset_stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.faults(scope, receive, send)

    # --- REST ------------------------------------------------------------------------------------
    async def rest(self, request: Request) -> Response:
        scope = request.scope
        root = scope.get("root_path", "")
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        rel = raw[len(root):] if root and raw.startswith(root) else raw
        parts = _segments(rel)
        if parts is None:
            return spotler_error(404, "RESOURCE_NOT_FOUND", "The requested resource was not found")
        query = scope["query_string"].decode("latin-1")
        host = request.headers.get("host", "")
        uri = f"{scope['scheme']}://{host}{raw}" + (f"?{query}" if query else "")
        try:
            self.verifier.verify(request.method, uri, query, request.headers.get("authorization"))
        except OAuthFailure as exc:
            return spotler_error(401, exc.error_type, exc.message)
        body = await request.body()
        try:
            return await run_in_threadpool(self._dispatch, request.method, parts, request.query_params, body,
                                           f"{scope['scheme']}://{host}{raw}")
        except SpotlerFailure as exc:
            return spotler_error(exc.status, exc.error_type, exc.message)
        except Exception:
            log.exception("sandbox Spotler request failed")
            return spotler_error(500, "BACKEND_EXCEPTION", "An internal error occurred")

    def _dispatch(self, method: str, parts: list[str], params, body: bytes, url: str) -> Response:
        head, n = (parts[0] if parts else ""), len(parts)
        if head == "contact" and n >= 2:
            return self._contact(method, parts[1:], params, body)
        if head == "contact" and n == 1:
            if method != "POST":
                raise _not_allowed()
            doc = _json_body(body)
            write = _single(doc.get("contact"))
            try:
                self.account.write_one(write, update=_flag(doc, "update", False), purge=_flag(doc, "purge", False))
            except Invalid as exc:
                raise SpotlerFailure(400, exc.code, exc.message) from None
            return Response(status_code=204)
        if head in ("mailing", "campaign-mailing") and method == "GET":
            if n == 1 and head == "mailing":
                return json_response(200, self.account.mailing_list(_date(params, "fromDate"),
                                                                    _date(params, "toDate")))
            if n == 2:
                mailing = self.account.mailing(parts[1], campaign=head == "campaign-mailing")
                if mailing is None:
                    raise SpotlerFailure(404, "MAILING_NOTFOUND", "Mailing not found")
                return json_response(200, mailing)
        if head == "mailing-interaction" and n == 2 and parts[1] in INTERACTION_KINDS:
            if method != "GET":
                raise _not_allowed()
            return self._interactions(parts[1], params, url)
        raise SpotlerFailure(404, "RESOURCE_NOT_FOUND", "The requested resource was not found")

    def _contact(self, method: str, rest: list[str], params, body: bytes) -> Response:
        account = self.account
        if rest == ["properties", "list"]:
            _only(method, "GET")
            return json_response(200, PROPERTIES)
        if rest in (["updates", "list"], ["bounces", "list"]):
            _only(method, "GET")
            start = _date(params, "fromDate", required=True)
            end = _date(params, "toDate")
            end = account.now() + 1 if end is None else end
            after, size = _paging(params)
            if rest[0] == "updates":
                return Response(account.updates(start, end, after, size), media_type=JSON_TYPE)
            return json_response(200, account.bounce_list(start, end, after, size))
        if rest == ["list"]:
            _only(method, "POST")
            doc = _json_body(body)
            contacts = doc.get("contacts")
            if not isinstance(contacts, list):
                raise SpotlerFailure(400, "INVALID_PARAMS", "contacts must be a list")
            if len(contacts) > MAX_BATCH:
                raise SpotlerFailure(400, "INVALID_PARAMS", f"at most {MAX_BATCH} contacts per request")
            results = account.write_many(contacts, update=_flag(doc, "update", False),
                                         purge=_flag(doc, "purge", False))
            return json_response(200, results)
        if len(rest) == 2 and rest[0] in ("inactivate", "anonymize"):
            _only(method, "PUT")
            action = account.inactivate if rest[0] == "inactivate" else account.anonymize
            if action(rest[1]) is None:
                raise _contact_not_found(rest[1])
            return Response(status_code=204)
        if len(rest) == 1:
            external_id = rest[0]
            if method == "GET":
                contact = account.get(external_id)
                if contact is None:
                    raise _contact_not_found(external_id)
                return json_response(200, contact.to_json())
            if method == "PUT":
                doc = _json_body(body)
                write = _single(doc.get("contact"), external_id)
                try:
                    account.write_one(write, update=True, purge=_flag(doc, "purge", False), create=False)
                except Invalid:
                    raise _contact_not_found(external_id) from None
                return Response(status_code=204)
            raise _not_allowed()
        raise SpotlerFailure(404, "RESOURCE_NOT_FOUND", "The requested resource was not found")

    def _interactions(self, kind: str, params, url: str) -> Response:
        after, size = _paging(params)
        ids = params.get("trendReportIds")
        try:
            trend_ids = None if not ids else {int(i) for i in ids.split(",") if i.strip()}
        except ValueError:
            raise SpotlerFailure(400, "INVALID_PARAMS", "trendReportIds is a comma-separated list of ids") from None
        rows, more = self.account.interaction_list(
            kind, start=_date(params, "fromDate"), end=_date(params, "toDate"),
            change_start=_date(params, "fromChangeDate"), change_end=_date(params, "toChangeDate"),
            trend_report_ids=trend_ids, after=after, size=size)
        nxt = None
        if more:
            query = [(k, v) for k, v in params.multi_items() if k != "after"] + [("after", str(after + len(rows)))]
            nxt = f"{url}?{urlencode(query)}"
        return json_response(200, {"paging": {"next": nxt, "after": after + len(rows)}, "interactions": rows})


def _only(method: str, allowed: str) -> None:
    if method != allowed:
        raise _not_allowed()


def _not_allowed() -> SpotlerFailure:
    return SpotlerFailure(405, "INVALID_PARAMS", "HTTP 405 Method Not Allowed")


def _contact_not_found(external_id: str) -> SpotlerFailure:
    return SpotlerFailure(404, "CONTACT_NOT_FOUND", "Contact not found")
