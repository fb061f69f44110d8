"""The AFAS Profit REST client: a Dagster resource that reads GetConnectors and calls UpdateConnectors.

What it takes care of, so callers do not have to:
- paging with a stable sort (AFAS does not promise an order between pages without one), into typed
  DataFrames built page by page as Arrow batches (never all rows as Python dicts);
- Amsterdam wall times with a fake `Z` (see ``afas_pipeline.lib.timewindows``);
- retries with exponential backoff and jitter for 503, timeouts and dropped connections, honouring
  AFAS's ``retry_after``, and for a 500 on a read; a POST is only repeated when AFAS certainly did not
  process it, and a POST or PUT that AFAS answers 500 (a refusal) is not repeated;
- a cap on parallel calls per base URL, shared by every client in the process (AFAS allows 8);
- errors that say what to fix, and never the token.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import tenacity
from pydantic import Field, PrivateAttr

from afas_pipeline.afas.errors import (
    AfasAuthError,
    AfasConfigError,
    AfasError,
    AfasNotFound,
    AfasOutcomeUnknown,
    AfasQueryTooLong,
    AfasServerError,
    AfasUnavailable,
)
from afas_pipeline.afas.filters import Condition, Filter, Op, filter_params
from afas_pipeline.lib.http import RetryAfterWait as _Wait
from afas_pipeline.lib.http import limiter_for as _limiter_for
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.http import RetryingHttpResource, redact_httpx_queries, tls_context, unbound
from afas_pipeline.lib.urls import base_url_problem, shown_url
from afas_pipeline.lib.text import printable
from afas_pipeline.lib.timewindows import afas_walls_to_utc, parse_afas_datetimes, select_window_rows, window_filter_bounds

__all__ = ["AfasClient", "Condition", "FieldMeta", "Filter", "GetConnectorMeta", "Op", "ReadStats", "ReadStopped"]

logger = logging.getLogger("afas_pipeline.afas")

MAX_QUERY_CHARS = 2049  # AFAS answers 404 beyond this
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
ENVIRONMENT_HOSTS = {"production": "rest", "test": "resttest", "accept": "restaccept"}
AFAS_URL_EXAMPLE = "https://12345.rest.afas.online/ProfitRestServices"


# --- results and metadata -------------------------------------------------------------------------


class ReadStopped(Exception):
    """A read ended early on purpose: its caller set the read's `stop` (another read failed, the run stops)."""


@dataclass
class ReadStats:
    """Counts for one read, numbers only, fit for Dagster metadata."""

    rows: int = 0  # rows in the returned DataFrame
    pages: int = 0
    requests: int = 0  # HTTP attempts, retries included
    retries: int = 0
    duration_s: float = 0.0
    bytes: int = 0  # response body bytes of successful requests
    rows_fetched: int = 0  # rows AFAS returned, before a window's trimming and de-duplication

    def as_metadata(self) -> dict[str, int | float]:
        return asdict(self)


@dataclass(frozen=True)
class FieldMeta:
    """One column of a GetConnector, from ``/metainfo/get/{id}``."""

    id: str  # the row key in the JSON
    field_id: str | None
    data_type: str  # string | int | decimal | boolean | date
    label: str | None = None
    length: int | None = None


_ARROW_TYPES = {"int": pa.int64(), "decimal": pa.float64(), "boolean": pa.bool_()}
_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.float64(): pd.Float64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    pa.string(): pd.StringDtype("pyarrow"),
}


@dataclass(frozen=True)
class GetConnectorMeta:
    """What AFAS says a GetConnector returns."""

    connector: str
    name: str | None
    description: str | None
    fields: tuple[FieldMeta, ...]

    @property
    def field_ids(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.fields)

    def data_type(self, field_id: str) -> str | None:
        return next((f.data_type for f in self.fields if f.id == field_id), None)

    def missing(self, field_ids: Iterable[str]) -> list[str]:
        present = set(self.field_ids)
        return [f for f in dict.fromkeys(field_ids) if f not in present]

    def arrow_schema(self) -> pa.Schema:
        # Dates stay text in the Arrow batches: they are AFAS wall times, converted once at the end.
        return pa.schema([(f.id, _ARROW_TYPES.get(f.data_type, pa.string())) for f in self.fields])


# --- retry plumbing -------------------------------------------------------------------------------


class _Transient(Exception):
    """An attempt that may succeed when repeated. ``safe_for_post``: AFAS certainly did not process it.
    ``error``: what to raise when the repeats run out (AFAS's own error, e.g. a read that kept failing)."""

    def __init__(self, reason: str, *, safe_for_post: bool, retry_after: float | None = None, status: int | None = None,
                 error: AfasError | None = None):
        super().__init__(reason)
        self.reason = reason
        self.safe_for_post = safe_for_post
        self.retry_after = retry_after
        self.status = status
        self.error = error


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


redact_httpx_queries()


# --- the resource ---------------------------------------------------------------------------------


class AfasClient(RetryingHttpResource):
    """AFAS Profit REST client (App Connector token auth)."""

    environment_id: str | None = Field(default=None, description="AFAS environment number, e.g. 12345.")
    environment: Literal["production", "test", "accept"] = "production"
    base_url: str | None = Field(default=None, description="Explicit base URL; wins over environment_id.")
    token: str = Field(repr=False, description="The 64-hex data part of the token, or the full <token> XML.")
    integration_id: str | None = Field(default=None, description="IntegrationId header for AFAS partners.")
    page_size: int = Field(default=5000, gt=0)
    max_concurrency: int = Field(default=4, gt=0, description="Calls in flight per base URL in this process.")
    timeout_s: float = Field(default=60.0, gt=0)
    _meta_cache: dict[str, GetConnectorMeta] = PrivateAttr(default_factory=dict)

    # The token must not leak through reprs; pydantic's __str__ already honours repr=False.
    def __repr__(self) -> str:
        return f"AfasClient(url={self.resolved_base_url()!r}, token=<redacted>)"

    def __str__(self) -> str:
        return self.__repr__()

    # -- public API: reads --

    def read(
        self,
        connector_id: str,
        *,
        filters: Filter | Condition | None = None,
        order_by: Sequence[str],
        page_size: int | None = None,
        stop: threading.Event | None = None,
    ) -> tuple[pd.DataFrame, ReadStats]:
        """All rows of a GetConnector matching ``filters``, typed from metainfo, sorted by ``order_by``
        (field ids, ``-`` prefix for descending). Pages until a short page, or until another thread sets
        ``stop``: then it raises ``ReadStopped`` after the page in hand."""
        if isinstance(order_by, str) or not order_by:
            raise ValueError("order_by must be a non-empty sequence of field ids (AFAS pages are only stable when sorted)")
        take = page_size or self.page_size
        if take <= 0:
            raise ValueError("page_size must be positive")
        stats = ReadStats()
        started = time.perf_counter()
        meta = self._metainfo(connector_id, stats)
        filter_fields = Filter.of(filters).fields if filters is not None else frozenset()
        unknown = meta.missing([f.lstrip("-") for f in order_by] + sorted(filter_fields))
        if unknown:
            raise AfasConfigError(
                f"GetConnector '{connector_id}' has no field(s) {', '.join(unknown)} used in the sort or filter",
                connector=connector_id,
                missing_fields=unknown,
            )
        base_params = {**filter_params(filters), "orderbyfieldids": ",".join(order_by)}
        # Refuse a too-long query before the first page, not halfway: skip grows with every page.
        self._check_query_length(connector_id, {**base_params, "skip": "9" * 7, "take": str(take)})
        schema = meta.arrow_schema()
        path = f"connectors/{_segment(connector_id)}"

        def fetch(skip: int) -> httpx.Response:
            params = {**base_params, "skip": str(skip), "take": str(take)}
            return self._send("GET", path, connector=connector_id, stats=stats, params=params)

        batches: list[pa.Table] = []
        skip = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="afas-page") as pager:
            response = fetch(skip)
            while True:
                # Once a read spans pages, the next page is fetched while this one is parsed, so
                # waiting on AFAS and parsing overlap. It costs one request past the last page.
                ahead = pager.submit(fetch, skip + take) if batches else None
                page = _page_table(response.content, schema, connector_id)
                del response  # one page of raw JSON at a time
                batches.append(page)
                stats.pages += 1
                failpoint("afas.page_read")
                if stop is not None and stop.is_set():
                    raise ReadStopped(f"the read of GetConnector '{connector_id}' was stopped after {stats.pages} page(s)")
                stats.rows_fetched += page.num_rows
                if page.num_rows < take:
                    break
                skip += take
                response = ahead.result() if ahead is not None else fetch(skip)
        table = pa.concat_tables(batches) if len(batches) > 1 else batches[0]
        del batches
        frame = _to_frame(table, meta)
        del table
        stats.rows = len(frame)
        stats.duration_s = round(time.perf_counter() - started, 6)
        logger.info(
            "read %s: %d rows, %d pages, %d requests, %d retries, %.2fs",
            connector_id, stats.rows, stats.pages, stats.requests, stats.retries, stats.duration_s,
        )
        return frame, stats

    def read_window(
        self,
        connector_id: str,
        *,
        key: str,
        date_fields: Sequence[str],
        start: datetime,
        end: datetime,
        extra_filter: Filter | Condition | None = None,
        margin: timedelta = timedelta(minutes=5),
        assign: Literal["any", "latest"] = "any",
    ) -> tuple[pd.DataFrame, ReadStats]:
        """Rows changed in the UTC window ``[start, end)``, once per ``key``.

        AFAS is asked for a slightly wider Amsterdam wall-time range (``margin`` below, and out of
        any DST hour), ORed over ``date_fields``; rows are then kept when ANY date field as
        displayed (``assign="latest"``: the latest one) falls in the window. Consecutive windows
        over one date field therefore partition the rows across both DST changes (see
        ``afas_pipeline.lib.timewindows``).
        """
        if isinstance(date_fields, str) or not date_fields:
            raise ValueError("date_fields must be a non-empty sequence of field ids")
        started = time.perf_counter()
        lo, hi = window_filter_bounds(start, end, margin)
        meta = self.metainfo(connector_id)
        not_dates = [f for f in date_fields if meta.data_type(f) not in (None, "date")]
        if not_dates:
            raise AfasConfigError(
                f"GetConnector '{connector_id}' field(s) {', '.join(not_dates)} are not date fields",
                connector=connector_id,
            )
        window = Filter.any_of(*(Filter.all_of(Condition(f, Op.GE, lo), Condition(f, Op.LT, hi)) for f in date_fields))
        combined = window if extra_filter is None else Filter.of(extra_filter) & window
        frame, stats = self.read(connector_id, filters=combined, order_by=[key])
        selected = select_window_rows(
            frame, date_columns=list(date_fields), key=key, start=start, end=end, assign=assign
        )
        stats.rows = len(selected)
        stats.duration_s = round(time.perf_counter() - started, 6)
        return selected, stats

    def metainfo(self, connector_id: str) -> GetConnectorMeta:
        """The fields of a GetConnector (cached per client instance)."""
        return self._metainfo(connector_id, ReadStats())

    def update_metainfo(self, connector: str) -> dict:
        """`/metainfo/update/{connector}` as AFAS returns it: the fields an UpdateConnector accepts."""
        response = self._send("GET", f"metainfo/update/{_segment(connector)}", connector=connector, stats=ReadStats())
        return _json(response, connector)

    def require_fields(self, connector_id: str, fields: Iterable[str], *, rule: str = "R9") -> GetConnectorMeta:
        """Metainfo of a GetConnector, or AfasConfigError naming the connector, the missing fields
        and the rule that needs them."""
        meta = self.metainfo(connector_id)
        missing = meta.missing(fields)
        if missing:
            raise AfasConfigError(
                f"GetConnector '{connector_id}' lacks field(s) {', '.join(missing)} required by rule {rule}; "
                f"add them to the GetConnector in AFAS or choose another connector",
                connector=connector_id,
                missing_fields=missing,
                rule=rule,
            )
        return meta

    def profit_version(self) -> str:
        response = self._send("GET", "ProfitVersion", connector=None, stats=ReadStats())
        return str(_json(response, None).get("version", ""))

    # -- public API: writes --

    def insert(self, connector: str, body: dict, *, sub_object: str | None = None) -> dict:
        """POST (insert). Repeated only when AFAS certainly did not process it (503, no connection)."""
        path = f"connectors/{_segment(connector)}" + (f"/{_segment(sub_object)}" if sub_object else "")
        response = self._send("POST", path, connector=connector, stats=ReadStats(), body=body, idempotent=False)
        return _json(response, connector)

    def update(self, connector: str, body: dict) -> dict:
        """PUT (update); idempotent, so retried like a read. AFAS answers 200/201, often empty."""
        response = self._send("PUT", f"connectors/{_segment(connector)}", connector=connector, stats=ReadStats(), body=body)
        return _json(response, connector)

    def delete(self, connector: str, path: str) -> None:
        """DELETE ``/connectors/{connector}/{path}``, e.g. ``delete("KnSubject", "KnSubject/@SbId/123")``."""
        full = f"connectors/{_segment(connector)}/{path.strip('/')}"
        self._send("DELETE", full, connector=connector, stats=ReadStats())

    def each(self, call, items: Sequence) -> list[tuple[Any, AfasError | None]]:
        """`call(item)` for every item, side by side with at most `max_concurrency` in flight, in item order:
        (its answer, None), or (None, the AfasError) when AFAS refused it after the client's retries."""

        def one(item) -> tuple[Any, AfasError | None]:
            try:
                return call(item), None
            except AfasError as exc:
                return None, exc

        if not items:
            return []
        with ThreadPoolExecutor(max_workers=max(1, self.max_concurrency)) as pool:
            return list(pool.map(one, items))

    # -- internals --

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.environment_id:
            if not re.fullmatch(r"[0-9]+", self.environment_id):
                raise AfasConfigError(
                    f"AFAS_ENVIRONMENT_ID '{printable(self.environment_id)}' is not an AFAS environment number: set it "
                    f"to the digits of your environment (12345 in https://12345.rest.afas.online)"
                )
            host = ENVIRONMENT_HOSTS[self.environment]
            return f"https://{self.environment_id}.{host}.afas.online/ProfitRestServices"
        raise AfasConfigError("AfasClient needs base_url or environment_id (AFAS_BASE_URL or AFAS_ENVIRONMENT_ID)")

    def _refused_by(self) -> str:
        """Which AFAS the token was refused by, for an operator with several environments (never the token)."""
        try:
            url = shown_url(self.resolved_base_url())
        except AfasConfigError:
            return "AFAS"
        if self.environment_id and not self.base_url:
            return f"AFAS environment {self.environment_id} ({self.environment}, {url})"
        return f"AFAS at {url}"

    def _auth_header(self) -> str:
        token = self.token.strip()
        if _HEX64.fullmatch(token):
            token = f"<token><version>1</version><data>{token}</data></token>"
        elif not (token.startswith("<token>") and token.endswith("</token>")):
            raise AfasConfigError("the AFAS token must be the 64-hex data part or the full <token>...</token> XML")
        return "AfasToken " + base64.b64encode(token.encode("utf-8")).decode("ascii")

    def _client(self) -> httpx.Client:
        return self._keep_alive(self._new_client)

    def _new_client(self) -> httpx.Client:
        base_url = self.resolved_base_url()
        problem = base_url_problem("AFAS_BASE_URL", base_url, sends="the AFAS token", example=AFAS_URL_EXAMPLE)
        if problem:
            raise AfasConfigError(problem)
        headers = {
            "Authorization": self._auth_header(),
            "Accept": "application/json",
            # AFAS: `connection: close` leads to "connection reset by peer".
            "Connection": "keep-alive",
        }
        if self.integration_id:
            headers["IntegrationId"] = self.integration_id
        return httpx.Client(
            verify=tls_context(),
            base_url=base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(
                max_connections=max(self.max_concurrency, 8), max_keepalive_connections=max(self.max_concurrency, 8)
            ),
            follow_redirects=False,
        )

    def _secrets(self) -> tuple[str, ...]:
        try:
            return (self.token.strip(), self._auth_header().split(" ", 1)[1])
        except AfasConfigError:
            return (self.token.strip(),)

    def _scrub(self, text: str | None) -> str | None:
        if not text:
            return text
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "<redacted>")
        return text

    def _metainfo(self, connector_id: str, stats: ReadStats) -> GetConnectorMeta:
        with self._lock:
            cached = self._meta_cache.get(connector_id)
        if cached is not None:
            return cached
        response = self._send("GET", f"metainfo/get/{_segment(connector_id)}", connector=connector_id, stats=stats)
        payload = _json(response, connector_id)
        fields = tuple(
            FieldMeta(
                id=str(f["id"]),
                field_id=f.get("fieldId"),
                data_type=str(f.get("dataType") or "string").lower(),
                label=f.get("label"),
                length=f.get("length"),
            )
            for f in payload.get("fields") or []
        )
        if not fields:
            raise AfasConfigError(f"AFAS metainfo for GetConnector '{connector_id}' lists no fields", connector=connector_id)
        meta = GetConnectorMeta(connector_id, payload.get("name"), payload.get("description"), fields)
        with self._lock:
            self._meta_cache[connector_id] = meta
        return meta

    def _check_query_length(self, connector: str | None, params: dict[str, str]) -> None:
        length = len(httpx.URL("http://afas/", params=params).query)
        if length > MAX_QUERY_CHARS:
            raise AfasQueryTooLong(
                f"the query for GetConnector '{connector}' would be {length} characters; AFAS refuses more "
                f"than {MAX_QUERY_CHARS} (404). Use fewer or shorter filter values, or split the read",
                connector=connector,
            )

    def _send(
        self,
        method: str,
        path: str,
        *,
        connector: str | None,
        stats: ReadStats,
        params: dict[str, str] | None = None,
        body: dict | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        http = self._client()
        url = http.base_url.join(path)
        if params:
            url = url.copy_merge_params(params)
            self._check_query_length(connector, params)
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json;charset=utf-8"} if body is not None else None
        limiter = _limiter_for(str(http.base_url))
        what = f"{method} {path}"

        def attempt() -> httpx.Response:
            stats.requests += 1
            with limiter.slot(self.max_concurrency):
                try:
                    response = unbound(http.request(method, url, content=content, headers=headers))
                except httpx.UnsupportedProtocol as exc:
                    raise AfasConfigError(f"bad AFAS base URL: {exc}", connector=connector) from None
                except httpx.TransportError as exc:
                    raise _Transient(
                        f"{type(exc).__name__} on {what}", safe_for_post=isinstance(exc, _NOT_SENT)
                    ) from None
            status = response.status_code
            if status == 503:
                retry_after = _retry_after(response)
                if retry_after is not None and retry_after > self.max_retry_after_s:
                    raise self._error_from(response, connector, method, path, AfasUnavailable, retry_after=retry_after)
                raise _Transient(f"503 on {what}", safe_for_post=True, retry_after=retry_after, status=503)
            if status in (502, 504):
                raise _Transient(f"{status} on {what}", safe_for_post=False, status=status)
            if status == 500 and method == "GET":
                # A read changes nothing, and AFAS answers 500 to passing trouble too (a timeout, a lock); a
                # POST or PUT 500 is a refusal of that record and is not repeated.
                error = self._error_from(response, connector, method, path)
                raise _Transient(f"500 on {what}", safe_for_post=False, status=500, error=error)
            if status >= 400:
                raise self._error_from(response, connector, method, path)
            stats.bytes += len(response.content)
            return response

        def should_retry(exc: BaseException) -> bool:
            return isinstance(exc, _Transient) and (idempotent or exc.safe_for_post)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "AFAS %s: %s; retry %d of %d in %.2fs",
                connector or path, getattr(exc, "reason", type(exc).__name__),
                state.attempt_number, self.max_attempts - 1, state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=_Wait(self.backoff_initial_s, self.backoff_max_s),
            retry=tenacity.retry_if_exception(should_retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as exc:
            if exc.error is not None:
                raise exc.error from None
            attempts = stats.requests
            if not idempotent and not exc.safe_for_post:
                raise AfasOutcomeUnknown(
                    f"{what}: {exc.reason}; not repeated because AFAS may have processed it. "
                    f"Check in AFAS whether the insert happened before sending it again",
                    connector=connector, status_code=exc.status) from None
            message = f"{what}: AFAS stayed unavailable ({exc.reason}) after {attempts} attempt(s)"
            raise AfasUnavailable(message, connector=connector, status_code=exc.status) from None

    def _error_from(
        self,
        response: httpx.Response,
        connector: str | None,
        method: str,
        path: str,
        cls: type[AfasError] | None = None,
        retry_after: float | None = None,
    ) -> AfasError:
        status = response.status_code
        info = _error_info(response)
        external = self._scrub(info.get("externalMessage"))
        kind = "GetConnector" if method == "GET" and path.startswith(("connectors/", "metainfo/get/")) else (
            "UpdateConnector" if path.startswith("connectors/") else "AFAS endpoint"
        )
        name = f"{kind} '{connector}'" if connector else f"{method} /{path.split('?')[0]}"
        if cls is AfasUnavailable:
            message = (
                f"AFAS is unavailable for {name} and asks to retry after {retry_after:.0f}s, longer than "
                f"max_retry_after_s={self.max_retry_after_s:.0f}s (maintenance?)"
            )
        elif status in (401, 403):
            cls = AfasAuthError
            refused_by = self._refused_by()
            if status == 403:
                message = (
                    f"{refused_by} refused {name} (403): an IP restriction on the App Connector blocks this machine"
                )
            else:
                message = (
                    f"{refused_by} refused {name} (401): either the token (AFAS_TOKEN) is wrong, expired or of "
                    f"another environment, or {kind} '{connector}' is not in this token's App Connector"
                    if connector
                    else f"{refused_by} refused {name} (401): the token (AFAS_TOKEN) is wrong, expired or of another "
                         f"environment"
                )
        elif status == 404:
            cls = AfasNotFound
            message = f"AFAS answered 404 for {name}: check the base URL / environment and the connector id"
        elif status >= 500:
            cls = AfasServerError
            message = f"AFAS rejected {name} ({status}): {external or 'no message'}"
        else:
            cls = AfasError
            message = f"AFAS answered {status} for {name}: {external or 'no message'}"
        # AFAS logs no request bodies; this line is what lets an administrator find the call. Bodies
        # are not logged here either: they hold names and e-mail addresses.
        logger.warning(
            "AFAS %s %s failed: status %d, errorNumber %s, profitLogReference %s",
            method, printable(connector or path.split("?")[0]), status, info.get("errorNumber"),
            printable(info.get("profitLogReference")),
        )
        return cls(
            message,
            connector=connector,
            status_code=status,
            external_message=external,
            error_number=info.get("errorNumber"),
            profit_log_reference=info.get("profitLogReference"),
        )


# --- helpers --------------------------------------------------------------------------------------


def _segment(value: str) -> str:
    return quote(value, safe="@,")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("retry_after"), (int, float)):
        return float(body["retry_after"])
    header = response.headers.get("Retry-After")
    if header:
        try:
            return float(header)
        except ValueError:
            return None
    return None


def _error_info(response: httpx.Response) -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        info["externalMessage"] = body.get("externalMessage") or body.get("message")
        if isinstance(body.get("error"), dict):
            info["externalMessage"] = info["externalMessage"] or body["error"].get("message")
        number = body.get("errorNumber")
        info["errorNumber"] = int(number) if isinstance(number, (int, str)) and str(number).lstrip("-").isdigit() else None
        info["profitLogReference"] = body.get("profitLogReference")
    if not info.get("externalMessage") and response.headers.get("X-Profit-Error"):
        try:  # obsolete header, only a fallback (AFAS removes it by end-2026)
            info["externalMessage"] = base64.b64decode(response.headers["X-Profit-Error"]).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            pass
    return info


def _json(response: httpx.Response, connector: str | None) -> dict:
    if not response.content.strip():
        return {}
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise AfasError("AFAS returned a body that is not JSON", connector=connector, status_code=response.status_code) from None
    return payload if isinstance(payload, dict) else {"value": payload}


def _page_table(content: bytes, schema: pa.Schema, connector: str) -> pa.Table:
    """One GetConnector page as an Arrow table typed by ``schema``, parsed in C++ without Python row dicts."""
    page_schema = pa.schema([("rows", pa.list_(pa.struct(list(schema))))])
    try:
        if b"\n" in content:  # pretty-printed (before Profit 7): arrow reads one JSON document per line
            rows = orjson.loads(content).get("rows")
            if not isinstance(rows, list):
                raise AfasError("AFAS returned a GetConnector answer without rows", connector=connector)
            return pa.Table.from_pylist(rows, schema=schema)
        parsed = pa_json.read_json(
            io.BytesIO(content),
            read_options=pa_json.ReadOptions(block_size=max(len(content) + 1, 1 << 16), use_threads=False),
            parse_options=pa_json.ParseOptions(explicit_schema=page_schema, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, orjson.JSONDecodeError, AttributeError) as exc:
        raise AfasError(
            f"GetConnector '{connector}' returned a page that is not JSON rows fitting its metainfo types: {exc}",
            connector=connector,
        ) from None
    rows = parsed.column("rows")
    if parsed.num_rows != 1 or rows.null_count:
        raise AfasError("AFAS returned a GetConnector answer without rows", connector=connector)
    return pa.Table.from_struct_array(rows.combine_chunks().flatten())


def _to_frame(table: pa.Table, meta: GetConnectorMeta) -> pd.DataFrame:
    frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get)
    for f in meta.fields:
        if f.data_type == "date":
            frame[f.id] = _afas_times(table.column(f.id), frame[f.id])
    return frame


def _afas_times(column: pa.ChunkedArray, fallback: pd.Series) -> pd.Series:
    """Fake-Z wall times to UTC; the common whole-second shape is parsed in Arrow, anything else by pandas."""
    try:
        wall = pc.strptime(column, format="%Y-%m-%dT%H:%M:%SZ", unit="s").to_pandas()
    except pa.ArrowInvalid:
        return parse_afas_datetimes(fallback)
    return afas_walls_to_utc(wall).set_axis(fallback.index)
