"""Fault injection, a concurrency cap and request statistics as ASGI middleware, shared by every emulator.

``FaultInjector`` wraps one emulator's app and acts only on the requests ``applies(path)`` selects (for
AFAS: the REST API, never its admin endpoints). For each such request, in this order:

1. it is counted under ``stats_key(method, path)``;
2. beyond ``max_concurrency`` requests in flight it is refused with a 503 (``retry_after`` 1) and counted
   as ``rejected_concurrency``, as AFAS refuses more than 8 parallel calls;
3. it waits ``latency_ms`` plus a uniform draw in ``[0, jitter_ms)``, and GETs another ``slow_page_ms``;
4. one draw from ``random.Random(seed)`` picks at most one fault (only for the ``methods`` listed, when
   any are: ``["POST", "PUT"]`` is an outage of the writes while reads still work): 503 (``error_503_rate``), 500
   (``error_500_rate``) or a dropped connection (``drop_rate``): the response start and half the body are
   sent, then the connection is closed, so the client sees a protocol error.

The random draws come from one generator that is reseeded whenever the faults are set, so a run repeats.
An emulator may bring its own answers (``unavailable`` for the 503 fault, ``too_busy`` for the concurrency
refusal, ``error_500``) and a ``FaultConfig`` subclass (``config_class``); a config with ``error_429_rate``
adds a fourth fault, a 429 with ``Retry-After`` (``too_many(retry_after)``), drawn after the other three.
A dropped 204/304 answer is sent as a 200 start so that a body can be cut off.
An emulator whose limit is per session (Xelion) passes ``session``, which names the session of a request from
its scope (None: no session, e.g. a login); its config's ``max_session_concurrency`` then caps the requests
of one session in flight, checked after the overall cap: one more is answered ``session_busy()`` and counted
as ``rejected_session``. Latency is spent inside both slots, so it holds them.
A config with ``refuse`` (a list of ``Refusal``) answers chosen requests with ``error_500`` without any
randomness, before the draw is acted on: one refused POST, or one id whose lookup always fails.
``fault_admin_routes`` exposes ``GET|PUT /faults``, ``GET /stats`` and ``POST /stats/reset`` for an
emulator's admin API.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import Counter
from typing import Awaitable, Callable
from urllib.parse import unquote_plus

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DROP_LOG_MESSAGE = "ASGI callable returned without completing response."


class FaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0, ge=0)
    jitter_ms: float = Field(0, ge=0)
    error_503_rate: float = Field(0.0, ge=0, le=1)
    retry_after: int = Field(1, ge=0)
    error_500_rate: float = Field(0.0, ge=0, le=1)
    drop_rate: float = Field(0.0, ge=0, le=1)
    slow_page_ms: float = Field(0, ge=0)
    max_concurrency: int = Field(8, ge=1)
    methods: list[str] = Field(default_factory=list, description="Faults only for these methods (none: all).")
    seed: int = 0


class Refusal(BaseModel):
    """A 500 for chosen requests: those whose stats key (e.g. ``POST connectors/KnSubject``) starts with
    ``request`` and, with ``pattern``, whose decoded query string or body matches that regular expression;
    the first ``times`` of them, or every one."""

    model_config = ConfigDict(extra="forbid")

    request: str = ""
    pattern: str | None = None
    times: int | None = Field(None, ge=1)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return pattern


JSON_TYPE = "application/json; charset=utf-8"


def json_response(status: int, body, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=JSON_TYPE)


def unavailable(retry_after: int, message: str = "Service temporarily unavailable") -> Response:
    return json_response(503, {"error": {"code": "503", "message": message}, "retry_after": retry_after},
                         {"Retry-After": str(retry_after)})


def too_busy() -> Response:
    return unavailable(1, "Too many concurrent requests")


def route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path and sets ``root_path``)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class FaultInjector:
    def __init__(self, app: ASGIApp, *, applies: Callable[[str], bool], stats_key: Callable[[str, str], str],
                 error_500: Callable[[], Response], unavailable: Callable[[int], Response] = unavailable,
                 too_busy: Callable[[], Response] = too_busy, too_many: Callable[[int], Response] | None = None,
                 config_class: type[FaultConfig] = FaultConfig, session: Callable[[Scope], str | None] | None = None,
                 session_busy: Callable[[], Response] = too_busy):
        self.app, self.applies, self.stats_key, self.error_500 = app, applies, stats_key, error_500
        self.unavailable, self.too_busy, self.too_many = unavailable, too_busy, too_many
        self.session, self.session_busy = session, session_busy
        self.config_class = config_class
        self.configure(config_class())
        self.reset_stats()

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.refusals: list[Refusal] = list(getattr(config, "refuse", []))
        self.refused = [0] * len(self.refusals)  # per rule, how many requests it refused

    def reset_stats(self) -> None:
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter({"503": 0, "500": 0, "drop": 0})
        if "error_429_rate" in self.config_class.model_fields:
            self.faults["429"] = 0
        self.in_flight = self.peak_concurrency = self.rejected_concurrency = self.rejected_session = 0
        self.session_in_flight: Counter[str] = Counter()

    def stats(self) -> dict:
        stats = {"requests": dict(self.requests), "total": sum(self.requests.values()),
                 "peak_concurrency": self.peak_concurrency, "rejected_concurrency": self.rejected_concurrency,
                 "faults": dict(self.faults)}
        if self.session is not None:
            stats["rejected_session"] = self.rejected_session
        return stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(route_path(scope)):
            await self.app(scope, receive, send)
            return
        cfg = self.config
        key = self.stats_key(scope["method"], route_path(scope))
        self.requests[key] += 1
        if self.in_flight >= cfg.max_concurrency:
            self.rejected_concurrency += 1
            await self.too_busy()(scope, receive, send)
            return
        session = self.session(scope) if self.session is not None else None
        if session is not None and self.session_in_flight[session] >= cfg.max_session_concurrency:
            self.rejected_session += 1
            await self.session_busy()(scope, receive, send)
            return
        self.in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        if session is not None:
            self.session_in_flight[session] += 1
        try:
            draw, jitter = self.rng.random(), self.rng.random() * cfg.jitter_ms
            if cfg.methods and scope["method"] not in cfg.methods:
                draw = 1.0  # no fault for this method
            delay = cfg.latency_ms + jitter + (cfg.slow_page_ms if scope["method"] == "GET" else 0)
            if delay:
                await asyncio.sleep(delay / 1000)
            refused, receive = await self._refused(key, scope, receive)
            if refused:
                self.faults["500"] += 1
                await self.error_500()(scope, receive, send)
            elif draw < cfg.error_503_rate:
                self.faults["503"] += 1
                await self.unavailable(cfg.retry_after)(scope, receive, send)
            elif draw < cfg.error_503_rate + cfg.error_500_rate:
                self.faults["500"] += 1
                await self.error_500()(scope, receive, send)
            elif draw < cfg.error_503_rate + cfg.error_500_rate + cfg.drop_rate:
                self.faults["drop"] += 1
                await self._drop(scope, receive, send)
            elif self.too_many and draw < (cfg.error_503_rate + cfg.error_500_rate + cfg.drop_rate
                                           + getattr(cfg, "error_429_rate", 0.0)):
                self.faults["429"] += 1
                await self.too_many(cfg.retry_after)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if session is not None:
                self.session_in_flight[session] -= 1
                if not self.session_in_flight[session]:
                    del self.session_in_flight[session]

    async def _refused(self, key: str, scope: Scope, receive: Receive) -> tuple[bool, Receive]:
        """Whether a ``Refusal`` takes this request (and counts it), and the ``receive`` to pass on: a body
        read to match a pattern is replayed to the app."""
        rules = [i for i, rule in enumerate(self.refusals)
                 if key.startswith(rule.request) and (rule.times is None or self.refused[i] < rule.times)]
        if not rules:
            return False, receive
        text = None
        if any(self.refusals[i].pattern is not None for i in rules):
            messages: list[Message] = []
            while not messages or messages[-1].get("more_body", False):
                messages.append(await receive())
                if messages[-1]["type"] != "http.request":
                    break
            body = b"".join(m.get("body", b"") for m in messages)
            text = unquote_plus(scope.get("query_string", b"").decode("latin-1")) + "\n" + body.decode("utf-8", "replace")
            pending, upstream = list(messages), receive

            async def replay() -> Message:
                return pending.pop(0) if pending else await upstream()

            receive = replay
        for i in rules:
            pattern = self.refusals[i].pattern
            if pattern is None or re.search(pattern, text):
                self.refused[i] += 1
                return True, receive
        return False, receive

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, then send the response start and half its body and stop: the server closes
        the connection mid-body (uvicorn logs ``DROP_LOG_MESSAGE``, which ``quiet_drops`` filters)."""
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        start = next(m for m in messages if m["type"] == "http.response.start")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        body = body or b'{"rows":[]}'
        if start["status"] in (204, 304):  # these may carry no body, and a drop needs one to cut off
            start = {**start, "status": 200}
        await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != DROP_LOG_MESSAGE


def quiet_drops() -> None:
    """Deliberate drops are not server errors; keep them out of uvicorn's error log."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def fault_admin_routes(injector: FaultInjector) -> list[Route]:
    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                injector.configure(injector.config_class.model_validate_json(await request.body() or b"{}"))
            except ValidationError as exc:
                return json_response(400, {"error": exc.errors(include_url=False, include_context=False)})
        return json_response(200, injector.config.model_dump())

    async def stats(request: Request) -> Response:
        return json_response(200, injector.stats())

    async def reset(request: Request) -> Response:
        injector.reset_stats()
        return json_response(200, injector.stats())

    handlers: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        ("/faults", faults, ["GET", "PUT"]), ("/stats", stats, ["GET"]), ("/stats/reset", reset, ["POST"])]
    return [Route(path, handler, methods=methods) for path, handler, methods in handlers]
