"""HTTP plumbing shared by the API clients (AFAS, Spotler, ...): a per-URL concurrency cap, a backoff that
honours the server's Retry-After, and a logging filter that keeps query strings out of httpx's logs."""

from __future__ import annotations

import email.utils
import functools
import logging
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, ClassVar

import dagster as dg
import httpx
import orjson
import tenacity
from pydantic import Field, PrivateAttr

__all__ = ["FeedRead", "RetryAfterWait", "UrlLimiter", "call_with_retries", "json_request", "limiter_for", "redact_httpx_queries",
           "retry_after_header", "send_in_slot", "server_time", "unbound"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every API client verifies servers with: httpx's default (certificates checked against certifi's
    bundle, or $SSL_CERT_FILE / $SSL_CERT_DIR), made once per process. httpx makes one for every client, loading the
    bundle again: 25-45 ms for each client a run makes."""
    return httpx.create_ssl_context()


class UrlLimiter:
    """Counts calls in flight to one base URL. A caller waits until fewer than ITS limit are in flight,
    so clients with different limits sharing a URL each keep theirs (a BoundedSemaphore cannot). Waiting callers
    are let in in the order they came, each freed slot handed to one of them: threads woken all at once for a slot
    only one of them gets would queue for the interpreter lock instead of sending (many waiters: a sync's senders)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiting: deque[tuple[int, threading.Lock]] = deque()  # (limit, gate held until the caller is let in)

    @contextmanager
    def slot(self, limit: int) -> Iterator[None]:
        gate = threading.Lock()
        gate.acquire()
        with self._lock:
            self._waiting.append((limit, gate))
            self._let_in()
        gate.acquire()  # released by `_let_in`, which counted this call in
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._let_in()

    def _let_in(self) -> None:
        """The waiting callers whose limit the calls in flight allow, oldest first (with the lock held)."""
        for waiter in list(self._waiting):
            if waiter[0] > self._in_flight:
                self._waiting.remove(waiter)
                self._in_flight += 1
                waiter[1].release()


_LIMITERS: dict[str, UrlLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(base_url: str) -> UrlLimiter:
    """The process-wide limiter of a base URL: every client instance talking to it shares one."""
    key = base_url.rstrip("/").lower()
    with _LIMITERS_LOCK:
        return _LIMITERS.setdefault(key, UrlLimiter())


class RetryAfterWait(tenacity.wait.wait_base):
    """Full-jitter exponential backoff, but never shorter than the server's retry-after, read from the
    ``retry_after`` attribute (seconds) of the exception that ended the attempt."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, float(retry_after)) if retry_after is not None else backoff


def retry_after_header(response: httpx.Response) -> float | None:
    """The seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP date), None without one."""
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:  # the HTTP-date form
        when = email.utils.parsedate_to_datetime(header)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def server_time(response: httpx.Response) -> datetime | None:
    """The server's clock when it answered (its `Date` header, whole seconds, UTC); None without a valid one."""
    try:
        when = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


class FeedRead(list):
    """The rows of one paged read of a change feed, and `server_time`: the server's clock when it answered the
    first page (None when it did not say). What the server had stamped before then is in the rows, bar a change
    it committed late or a shift of the pages while they were read (readers overlap their reads for those)."""

    def __init__(self, rows=(), server_time: datetime | None = None):
        super().__init__(rows)
        self.server_time = server_time


def json_request(http: httpx.Client, path: str, params: dict[str, str] | None,
                 body: Any) -> tuple[httpx.URL | str, bytes | None, dict[str, str] | None]:
    """The URL (path and query, relative to the client's base URL, which httpx puts in front: much cheaper per
    call than `URL.join`), the JSON body and its headers of one call."""
    url: httpx.URL | str = httpx.URL(path, params=params) if params else path
    content = orjson.dumps(body) if body is not None else None
    return url, content, {"Content-Type": "application/json"} if body is not None else None


def unbound(response: httpx.Response) -> httpx.Response:
    """`response`, read and closed (as `Client.request` returns it), without the stream httpx bound to it. That
    stream refers back to its response: a reference cycle of some 40 objects and 13 kB per call, which only the
    cycle collector frees, and a sync pauses the collector while it sends (lib/bulk.py). 1,000 calls left 43,000
    such objects; without the stream, none: reference counting frees each call's objects when it is done."""
    response.stream = _READ
    return response


_READ = httpx.ByteStream(b"")  # what a read response's body is read from again: nothing, httpx keeps the content


def send_in_slot(http: httpx.Client, method: str, url: httpx.URL | str, *, content: bytes | None,
                 headers: dict[str, str] | None, limit: int, bad_url: Callable[[Exception], Exception],
                 unanswered: Callable[[Exception], Exception]) -> httpx.Response:
    """One attempt, once fewer than `limit` calls to the base URL are in flight. A URL httpx cannot use raises
    `bad_url(exc)` (a configuration error), no answer at all `unanswered(exc)` (an attempt worth repeating)."""
    with limiter_for(str(http.base_url)).slot(limit):
        try:
            return unbound(http.request(method, url, content=content, headers=headers))
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise bad_url(exc) from None
        except httpx.TransportError as exc:
            raise unanswered(exc) from None


def call_with_retries(attempt: Callable[[], Any], *, transient: type[Exception], max_attempts: int,
                      backoff_initial_s: float, backoff_max_s: float, logger: logging.Logger, what: str,
                      on_retry: Callable[[], None]) -> Any:
    """`attempt()` until it returns or raises anything but `transient`, at most `max_attempts` times, waiting
    between attempts with `RetryAfterWait`. Each retry is logged (`what` and the exception's `reason`, never a
    body) and counted through `on_retry`; the last `transient` is re-raised for the client to turn into its
    "unavailable" error."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        on_retry()
        exc = state.outcome.exception() if state.outcome else None
        logger.warning("%s: %s; retry %d of %d in %.2fs", what, getattr(exc, "reason", type(exc).__name__),
                       state.attempt_number, max_attempts - 1, state.upcoming_sleep)

    # The first attempt on its own: most calls need no other, and a sync makes tens of thousands of them.
    try:
        return attempt()
    except transient as exc:
        failed: list[Exception] = [exc]

    def again() -> Any:  # the first attempt's failure as tenacity's first attempt, then attempts of its own
        if failed:
            raise failed.pop()
        return attempt()

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max_attempts),
        wait=RetryAfterWait(backoff_initial_s, backoff_max_s),
        retry=tenacity.retry_if_exception_type(transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(again)


class _RedactQuery(logging.Filter):
    """httpx logs each request URL at INFO; query values may hold e-mail addresses or names."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(a.copy_with(query=None) if isinstance(a, httpx.URL) and a.query else a for a in record.args)
        return True


def redact_httpx_queries() -> None:
    """Install the query-redacting filter on httpx's logger (once per process)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactQuery) for f in logger.filters):
        logger.addFilter(_RedactQuery())


class HttpClientLifecycle:
    """What the HTTP resources share: one keep-alive ``httpx.Client`` (in ``self._http``, guarded by
    ``self._lock``), closed after each Dagster step and usable as a context manager."""

    _http: Any
    _lock: Any

    def _keep_alive(self, make: Callable[[], httpx.Client]) -> httpx.Client:
        """The keep-alive client, made by `make` at first use. Every call asks for it: once made it is read without
        the lock."""
        http = self._http
        if http is not None:
            return http
        with self._lock:
            if self._http is None:
                self._http = make()
            return self._http

    def teardown_after_execution(self, context: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RetryingHttpResource(HttpClientLifecycle, dg.ConfigurableResource):
    """The settings and state every API client shares (AFAS and the destinations): how often and how long it retries, the
    longest Retry-After it waits for, its keep-alive client. Its repr (and str) is the subclass's, which never
    shows a secret."""

    max_attempts: int = Field(default=6, ge=1)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_retry_after_s: float = Field(default=300.0, ge=0)

    _http: httpx.Client | None = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _stats: Any = PrivateAttr(default=None)

    #: The dataclass of the client's counts (numbers only, fit for Dagster metadata).
    stats_type: ClassVar[type]

    def __str__(self) -> str:
        return self.__repr__()

    @property
    def stats(self):
        """A snapshot of the counts so far."""
        with self._lock:
            return replace(self._counts())

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = self.stats_type()

    def _count(self, **deltas: int) -> None:
        with self._lock:
            counts = self._counts()
            for name, delta in deltas.items():
                setattr(counts, name, getattr(counts, name) + delta)

    def _retrying(self, attempt: Callable[[], Any], *, what: str, transient: type[Exception],
                  logger: logging.Logger) -> Any:
        """`call_with_retries` with this client's settings, each retry counted in its stats."""
        return call_with_retries(attempt, transient=transient, max_attempts=self.max_attempts,
                                 backoff_initial_s=self.backoff_initial_s, backoff_max_s=self.backoff_max_s,
                                 logger=logger, what=what, on_retry=lambda: self._count(retries=1))

    def _attempt(self, http: httpx.Client, method: str, url: httpx.URL | str, content: bytes | None,
                 headers: dict[str, str] | None, *, service: str, endpoint: str, what: str,
                 config_error: type[Exception], transient: type[Exception]) -> httpx.Response:
        """One attempt of a call, counted, within the client's concurrency cap (`send_in_slot`)."""
        self._count(requests=1)
        return send_in_slot(
            http, method, url, content=content, headers=headers, limit=self.max_concurrency,
            bad_url=lambda exc: config_error(f"bad {service} base URL: {exc}", endpoint=endpoint),
            unanswered=lambda exc: transient(f"{type(exc).__name__} on {what}"))

    def _too_long_to_wait(self, retry_after: float | None, service: str, what: str, status: int) -> str | None:
        """Why not to wait for a Retry-After longer than `max_retry_after_s` (the message of the client's
        "unavailable" error), or None when waiting is fine."""
        if retry_after is None or retry_after <= self.max_retry_after_s:
            return None
        return (f"{service} is unavailable for {what} ({status}) and asks to retry after {retry_after:.0f}s, "
                f"longer than max_retry_after_s={self.max_retry_after_s:.0f}s; not waiting")

    def _counts(self):
        if self._stats is None:
            self._stats = self.stats_type()
        return self._stats
