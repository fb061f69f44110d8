"""The Mailchimp Marketing API v3 emulator (``{url}/mailchimp/3.0``) as an ASGI app.

Routes below the API root (reference §B): ``GET /`` (the account), ``GET ping``, ``GET lists``,
``GET lists/{list_id}``, ``POST lists/{list_id}`` (batch subscribe), ``GET|POST lists/{list_id}/merge-fields``,
``GET|DELETE lists/{list_id}/merge-fields/{merge_id}``, ``GET|POST lists/{list_id}/members``,
``GET|PUT|PATCH|DELETE lists/{list_id}/members/{subscriber_hash}``, ``GET|POST .../{subscriber_hash}/tags``,
``GET .../{subscriber_hash}/activity``, ``GET .../{subscriber_hash}/activity-feed``,
``POST .../{subscriber_hash}/actions/delete-permanent``, ``GET campaigns``, ``GET campaigns/{campaign_id}``,
``GET reports/{campaign_id}/email-activity[/{subscriber_hash}]`` and ``GET reports/{campaign_id}/sent-to``.
The member rules are in ``store.py``, the validation of documents in ``validation.py``.

- Authentication is HTTP Basic with any user name and the API key as password (what the official SDK sends):
  no ``Authorization`` -> 401 "API Key Missing", anything else -> 401 "API Key Invalid". OAuth bearer tokens
  are not emulated (401).
- Errors are problem+json (``errors.py``), never with an empty body; an unknown path is 404 "Resource Not
  Found", a known path with another method 405 with ``Allow``.
- Collections take ``count`` (default 10, at most 1000) and ``offset``; every GET takes ``fields`` and
  ``exclude_fields`` (comma-separated, dot notation). ``GET members`` filters by ``status``,
  ``since_last_changed`` (inclusive) and ``before_last_changed`` (exclusive), ``unsubscribed_since`` (only with
  ``status=unsubscribed``), ``since_timestamp_opt``/``before_timestamp_opt``, ``email_type``, ``vip_only``,
  and sorts by ``sort_field``/``sort_dir``; without a sort the order is the order members joined.
- Writes take ``skip_merge_validation=true`` (required merge fields may then be missing).
- Limits and faults (``afas_sandbox.faults``, REST API only, never ``/_admin``): beyond ``max_concurrency``
  (10, Mailchimp's simultaneous connections) requests in flight -> 429 "Too Many Requests", or, for a share
  ``bare_403_rate`` of them, a bare 403 without body or content type (Mailchimp at very high volume).
  Injected faults: 503, 500, 429 (``error_429_rate``) as problem+json, or a dropped connection. Mailchimp
  sends no rate-limit headers, so no ``Retry-After`` either (``retry_after`` has no effect here).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Callable
from urllib.parse import unquote

import orjson
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router
from starlette.types import Receive, Scope, Send

from afas_sandbox.admin_common import LoopbackOnly
from afas_sandbox.faults import FaultConfig, FaultInjector
from afas_sandbox.mailchimp import validation as check
from afas_sandbox.mailchimp.errors import Problem, bad_json, method_not_allowed, not_found
from afas_sandbox.mailchimp.store import SANDBOX_LIST_ID, Account

log = logging.getLogger("afas_sandbox.mailchimp")

#: The sandbox's API key, in Mailchimp's form ``<32 lower-case hex>-<dc>``: a documented constant, not a secret.
API_KEY = "3409dd0b1dab00826e94dc27237299c3-us21"
LIST_ID = SANDBOX_LIST_ID
API_ROOT = "/3.0"
MAX_CONNECTIONS = 10
JSON = "application/json; charset=utf-8"


class MailchimpFaultConfig(FaultConfig):
    max_concurrency: int = Field(MAX_CONNECTIONS, ge=1)
    error_429_rate: float = Field(0.0, ge=0, le=1)
    bare_403_rate: float = Field(0.0, ge=0, le=1,
                                 description="Share of the refusals over max_concurrency that are a bare 403.")


def _segments(path: str) -> list[str] | None:
    """Path segments below the API root (percent-decoded), or None when the path is not below it."""
    parts = path.split("/")
    if len(parts) < 2 or parts[1] != API_ROOT[1:]:
        return None
    return [unquote(p) for p in parts[2:] if p]


#: Route templates -> the methods each answers (the handler is ``MailchimpEmulator._<method>_<name>``).
ROUTES: list[tuple[str, dict[str, str]]] = [
    ("", {"GET": "root"}),
    ("ping", {"GET": "ping"}),
    ("lists", {"GET": "lists"}),
    ("lists/{list_id}", {"GET": "list", "POST": "batch_subscribe"}),
    ("lists/{list_id}/merge-fields", {"GET": "merge_fields", "POST": "add_merge_field"}),
    ("lists/{list_id}/merge-fields/{merge_id}", {"GET": "merge_field", "DELETE": "delete_merge_field"}),
    ("lists/{list_id}/members", {"GET": "members", "POST": "add_member"}),
    ("lists/{list_id}/members/{subscriber_hash}", {"GET": "member", "PUT": "put_member", "PATCH": "patch_member",
                                                   "DELETE": "archive_member"}),
    ("lists/{list_id}/members/{subscriber_hash}/tags", {"GET": "tags", "POST": "set_tags"}),
    ("lists/{list_id}/members/{subscriber_hash}/activity", {"GET": "activity"}),
    ("lists/{list_id}/members/{subscriber_hash}/activity-feed", {"GET": "activity_feed"}),
    ("lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent", {"POST": "delete_permanent"}),
    ("campaigns", {"GET": "campaigns"}),
    ("campaigns/{campaign_id}", {"GET": "campaign"}),
    ("reports/{campaign_id}/email-activity", {"GET": "email_activity"}),
    ("reports/{campaign_id}/email-activity/{subscriber_hash}", {"GET": "member_email_activity"}),
    ("reports/{campaign_id}/sent-to", {"GET": "sent_to"}),
]


def match(parts: list[str]) -> tuple[str, dict[str, str], dict[str, str]] | None:
    """(template, methods, path arguments) of the route these segments name, or None."""
    for template, methods in ROUTES:
        names = template.split("/") if template else []
        if len(names) != len(parts):
            continue
        args = {}
        for name, part in zip(names, parts):
            if name.startswith("{"):
                args[name[1:-1]] = part
            elif name != part:
                break
        else:
            return template, methods, args
    return None


def stats_key(method: str, path: str) -> str:
    """``PUT lists/{list_id}/members/{subscriber_hash}``: the route template, or the path when unknown."""
    parts = _segments(path) or []
    found = match(parts)
    return f"{method} {found[0] if found else '/'.join(parts)}"


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _problem(status: int, title: str, detail: str) -> Callable[..., Response]:
    def respond(*_) -> Response:
        return Problem(status, title, detail).response()
    return respond


class MailchimpEmulator:
    """ASGI app for ``/mailchimp``: the REST API (``/3.0``) behind the fault injector, plus ``/_admin``."""

    def __init__(self, api_key: str = API_KEY, *, allow_remote_admin: bool = False):
        from afas_sandbox.mailchimp.admin import admin_routes

        self.account = Account()
        self.api_key = api_key
        self.faults = FaultInjector(
            self._route, applies=lambda p: _segments(p) is not None, stats_key=stats_key,
            error_500=_problem(500, "Internal Server Error", "An unexpected internal error has occurred. Please "
                                                             "contact Support for more information."),
            unavailable=_problem(503, "Service Unavailable", "The service is temporarily unavailable. Please try "
                                                             "again later."),
            too_busy=self._over_limit,
            too_many=_problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous "
                                                        "connections."),
            config_class=MailchimpFaultConfig)
        admin = LoopbackOnly(Router(routes=admin_routes(self)), allow_remote=allow_remote_admin)
        self.router = Router(routes=[Mount("/_admin", app=admin),
                                     Route("/{path:path}", self.rest, methods=["GET", "POST", "PUT", "DELETE",
                                                                              "PATCH"])])

    def _over_limit(self) -> Response:
        share = self.faults.config.bare_403_rate
        if share >= 1 or (share > 0 and self.faults.rng.random() < share):
            return Response(status_code=403)
        return Problem(429, "Too Many Requests", f"You have exceeded the limit of {MAX_CONNECTIONS} simultaneous "
                                                 f"connections.").response()

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    def reset(self) -> None:
        self.account.reset()
        self.faults.configure(MailchimpFaultConfig())
        self.faults.reset_stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.faults(scope, receive, send)

    # --- REST --------------------------------------------------------------------------------------------
    def _refused(self, authorization: str | None) -> Problem | None:
        if not authorization:
            return Problem(401, "API Key Missing", "Your request did not include an API key.")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                _, _, key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                key = None
            if key == self.api_key:
                return None
        return Problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong "
                                               "datacenter.")

    async def rest(self, request: Request) -> Response:
        scope = request.scope
        root = scope.get("root_path", "")
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        parts = _segments(raw[len(root):] if root and raw.startswith(root) else raw)
        if parts is None:
            return not_found().response()
        refused = self._refused(request.headers.get("authorization"))
        if refused is not None:
            return refused.response()
        found = match(parts)
        try:
            if found is None:
                raise not_found()
            _, methods, args = found
            if request.method not in methods:
                raise method_not_allowed(list(methods))
            handler = getattr(self, "_" + methods[request.method])
            body = await request.body()
            return await run_in_threadpool(self._answer, handler, request.method, request.query_params, body, args)
        except Problem as problem:
            return problem.response()
        except Exception:
            log.exception("sandbox Mailchimp request failed")
            return Problem(500, "Internal Server Error", "An unexpected internal error has occurred.").response()

    def _answer(self, handler, method: str, params, body: bytes, args: dict) -> Response:
        doc = None
        if method in ("POST", "PUT", "PATCH") and body.strip():
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise bad_json() from None
        result = handler(params, doc, **args)
        if result is None:
            return Response(status_code=204)
        return _json(check.projection(params)(result) if method == "GET" else result)

    # --- handlers: (query params, JSON body, path arguments) -> body (None: 204) --------------------------
    def _root(self, params, doc) -> dict:
        counts = self.account.counts()
        return {"account_id": "sandbox0afas0pipeline", "login_id": "100001", "account_name": "AFAS pipeline sandbox",
                "email": "sandbox@mailchimp.sandbox.invalid", "first_name": "Sandbox", "last_name": "Account",
                "username": "afas-pipeline-sandbox", "role": "owner", "member_since": "2026-01-01T00:00:00+00:00",
                "pricing_plan_type": "monthly", "account_timezone": "Europe/Amsterdam", "pro_enabled": False,
                "contact": {"company": "AFAS pipeline sandbox", "addr1": "Sandboxstraat 1", "addr2": "",
                            "city": "Amsterdam", "state": "NH", "zip": "1011 AA", "country": "NL"},
                "total_subscribers": counts["subscribed"]}

    def _ping(self, params, doc) -> dict:
        return {"health_status": "Everything's Chimpy!"}

    def _lists(self, params, doc) -> dict:
        return self.account.lists_page(params)

    def _list(self, params, doc, list_id) -> dict:
        return self.account.get_list(list_id)

    def _batch_subscribe(self, params, doc, list_id) -> dict:
        return self.account.batch_subscribe(list_id, doc, skip=_skip(params))

    def _merge_fields(self, params, doc, list_id) -> dict:
        return self.account.merge_fields_page(list_id, params)

    def _add_merge_field(self, params, doc, list_id) -> dict:
        return self.account.add_merge_field(list_id, doc)

    def _merge_field(self, params, doc, list_id, merge_id) -> dict:
        return self.account.merge_field(list_id, merge_id)

    def _delete_merge_field(self, params, doc, list_id, merge_id) -> None:
        self.account.delete_merge_field(list_id, merge_id)

    def _members(self, params, doc, list_id) -> dict:
        return self.account.members_page(list_id, params)

    def _add_member(self, params, doc, list_id) -> dict:
        return self.account.post_member(list_id, doc, skip=_skip(params))

    def _member(self, params, doc, list_id, subscriber_hash) -> dict:
        return self.account.get_member(list_id, subscriber_hash)

    def _put_member(self, params, doc, list_id, subscriber_hash) -> dict:
        return self.account.put_member(list_id, subscriber_hash, doc, skip=_skip(params))

    def _patch_member(self, params, doc, list_id, subscriber_hash) -> dict:
        return self.account.put_member(list_id, subscriber_hash, doc, skip=_skip(params), patch=True)

    def _archive_member(self, params, doc, list_id, subscriber_hash) -> None:
        self.account.archive(list_id, subscriber_hash)

    def _tags(self, params, doc, list_id, subscriber_hash) -> dict:
        return self.account.member_tags(list_id, subscriber_hash)

    def _set_tags(self, params, doc, list_id, subscriber_hash) -> None:
        self.account.set_tags(list_id, subscriber_hash, doc)

    def _activity(self, params, doc, list_id, subscriber_hash) -> dict:
        return self.account.activity(list_id, subscriber_hash)

    def _activity_feed(self, params, doc, list_id, subscriber_hash) -> dict:
        return self.account.activity_feed(list_id, subscriber_hash, params)

    def _delete_permanent(self, params, doc, list_id, subscriber_hash) -> None:
        self.account.delete_permanent(list_id, subscriber_hash)

    def _campaigns(self, params, doc) -> dict:
        return self.account.campaigns_page(params)

    def _campaign(self, params, doc, campaign_id) -> dict:
        return self.account.get_campaign(campaign_id)

    def _email_activity(self, params, doc, campaign_id) -> dict:
        return self.account.email_activity(campaign_id, params)

    def _member_email_activity(self, params, doc, campaign_id, subscriber_hash) -> dict:
        return self.account.email_activity(campaign_id, params, subscriber_hash)

    def _sent_to(self, params, doc, campaign_id) -> dict:
        return self.account.sent_to(campaign_id, params)


def _skip(params) -> bool:
    return check.flag(params.get("skip_merge_validation"), "skip_merge_validation")
