"""The Spotler Mail+ REST client: a Dagster resource that upserts contacts and reads what happened in Spotler.

What it takes care of, so callers do not have to:
- OAuth 1.0a "one leg" (consumer key and secret, no token) with authlib's signer: HMAC-SHA1 over the
  method, the URL and the query parameters; the JSON body is not signed (Spotler's rule);
- batching of contact upserts (``POST contact/list``, at most 1000 per call), batches in parallel up
  to a cap per base URL shared by every client in the process;
- retries with exponential backoff and jitter, following Spotler's official connector: never after
  400, 401 or 404; after 429, 5xx and network errors, honouring ``Retry-After``. Upserts use
  ``update: true`` and are therefore idempotent, so repeating one is safe;
- refused contacts as data (``ContactResult``), never as exceptions; a batch that gets no per-contact
  answer (an outage that outlasts the retries, a request refused as a whole) is not a refusal of its
  contacts: once the other batches are done, ``SpotlerWriteIncomplete`` says which part went unanswered;
  a configuration error (wrong key or secret) raises at once;
- paging of the change feeds (``contact/updates/list``, ``contact/bounces/list``, ``mailing-interaction/*``);
- never the consumer secret in a repr, log line or error; never contact data in logs.
"""

from __future__ import annotations

import email.utils
import logging
import time
import warnings
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import quote

import authlib.deprecate  # noqa: F401  (imported first: it installs an "always show" warning filter)
import httpx
import orjson
from authlib.common.security import is_secure_transport
from pydantic import Field

from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.http import (
    FeedRead,
    RetryingHttpResource,
    json_request,
    redact_httpx_queries,
    server_time,
    tls_context,
)
from afas_pipeline.lib.text import printable
from afas_pipeline.lib.timewindows import require_utc
from afas_pipeline.spotler.errors import (
    SpotlerAuthError,
    SpotlerConfigError,
    SpotlerError,
    SpotlerRequestError,
    SpotlerUnavailable,
    SpotlerWriteIncomplete,
)

with warnings.catch_warnings():
    # authlib 1.9 nudges towards its `httpx2` fork at import; it still supports httpx, which this
    # project uses everywhere.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth1Auth

__all__ = ["ContactResult", "InteractionKind", "SpotlerClient", "WriteStats"]

logger = logging.getLogger("afas_pipeline.spotler")

DEFAULT_BASE_URL = "https://restapi.mailplus.nl/integrationservice-1.1.0"
MAX_BATCH = 1000  # Spotler refuses larger contact/list batches (400 INVALID_PARAMS)
MAX_PAGE_SIZE = 10000
InteractionKind = Literal["sent", "opened", "clicked", "bounced"]
_INTERACTION_KINDS = ("sent", "opened", "clicked", "bounced")
_CONTACT_ROUTE = "contact/{externalId}"

redact_httpx_queries()


# --- results and counts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactResult:
    """What became of one contact sent to Spotler.

    ``code`` is Spotler's per-contact code (``OK``, ``PROPERTY_INVALID``, ``CONTACT_ALREADY_EXISTS``, ...),
    or, when the request carrying the contact failed as a whole, Spotler's ``errorType`` (e.g.
    ``INVALID_PARAMS``, ``BACKEND_EXCEPTION``), ``HTTP_<status>`` when Spotler gave none, or
    ``NETWORK_ERROR``. ``status_code`` is the HTTP status of the answer that decided the result
    (200 for a per-contact code of a batch, 204 for an accepted PUT), None when no answer came.
    ``message`` is Spotler's text: it may quote the contact's data, so it is not for logs.
    """

    external_id: str
    code: str
    message: str | None = None
    status_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    #: Spotler keys a contact by its externalId: it has no key of its own to remember.
    destination_key = None

    @property
    def consent_refusal(self) -> bool:
        """Spotler refuses no contact for a consent reason of its own: its permissions are ours to guard (C1)."""
        return False


@dataclass
class WriteStats:
    """Counts over the client's lifetime (numbers only, fit for Dagster metadata)."""

    requests: int = 0  # HTTP attempts, retries included, reads included
    retries: int = 0
    batches: int = 0  # contact/list calls (one per batch, however often it was retried)
    contacts_sent: int = 0  # contacts handed to upsert_contacts / update_contact
    contacts_failed: int = 0  # of those, results that are not OK

    def as_metadata(self) -> dict[str, int]:
        return asdict(self)


# --- signing --------------------------------------------------------------------------------------


class _OneLeggedOAuth1(OAuth1Auth):
    """authlib's signer, keeping the JSON body.

    authlib signs a non-form body by leaving it out, which is exactly Spotler's rule, but its httpx
    adapter then also sends the request WITHOUT the body (Content-Length 0). The signature is
    authlib's; only the original body is put back.
    """

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        url, headers, body = self.prepare(request.method, str(request.url), request.headers, request.content)
        if not body and request.content:
            body = request.content
        headers["Content-Length"] = str(len(body))
        signed = httpx.Request(method=request.method, url=url, headers=headers, content=body)
        signed.extensions = request.extensions
        yield signed


# --- retry plumbing -------------------------------------------------------------------------------


class _Transient(Exception):
    """An attempt that may succeed when repeated (429, 5xx, network)."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        error_type: str | None = None,
        spotler_message: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        self.error_type = error_type
        self.spotler_message = spotler_message


# --- the resource ---------------------------------------------------------------------------------


class SpotlerClient(RetryingHttpResource):
    """Spotler Mail+ REST client (OAuth 1.0a one-legged: consumer key and secret)."""

    base_url: str = Field(default=DEFAULT_BASE_URL, description="REST base URL, up to and including integrationservice-1.1.0.")
    consumer_key: str = Field(description="The REST API key; from dg.EnvVar in production.")
    consumer_secret: str = Field(repr=False, description="The key's secret; from dg.EnvVar. Never logged.")
    batch_size: int = Field(default=500, gt=0, le=MAX_BATCH, description="Contacts per contact/list call.")
    page_size: int = Field(default=MAX_PAGE_SIZE, gt=0, le=MAX_PAGE_SIZE,
                           description="Rows per page of the change feeds (Spotler allows up to 10000).")
    max_concurrency: int = Field(default=4, gt=0, description="Calls in flight per base URL in this process.")
    timeout_s: float = Field(default=60.0, gt=0)

    stats_type = WriteStats

    # The secret must not leak through reprs; pydantic's __str__ already honours repr=False.
    def __repr__(self) -> str:
        return f"SpotlerClient(url={self.base_url!r}, consumer_secret=<redacted>)"

    # -- public API: writes --

    def upsert_contacts(self, contacts: Sequence[dict], *, purge: bool = False,
                        on_batch: Callable[[list[ContactResult]], None] | None = None) -> list[ContactResult]:
        """Create or update contacts by ``externalId`` (``POST contact/list`` with ``update: true``), in
        batches of ``batch_size`` sent in parallel up to the concurrency cap.

        ``purge=False`` merges: properties left out are kept, permissions are merged per bit.
        ``purge=True`` replaces the stored contact. Returns one result per contact, in input order;
        refusals are results, not exceptions. ``on_batch`` is called with each batch's results as soon as
        they are in (from the sending thread), so a caller can save them before the next batch is answered.
        Raises ``SpotlerAuthError`` at once, and ``SpotlerWriteIncomplete`` after the other batches are done
        when a batch got no per-contact answer.
        """
        ids = [_external_id_of(c, i) for i, c in enumerate(contacts)]
        if not contacts:
            return []
        batches = [
            (list(contacts[i : i + self.batch_size]), ids[i : i + self.batch_size])
            for i in range(0, len(contacts), self.batch_size)
        ]
        started = time.perf_counter()
        self._count(contacts_sent=len(contacts))

        def send(numbered: tuple[int, tuple[list[dict], list[str]]]) -> list[ContactResult] | SpotlerError:
            number, (batch, batch_ids) = numbered
            try:
                results = self._upsert_batch(batch, batch_ids, purge=purge, label=f"batch {number + 1} of {len(batches)}")
            except (SpotlerAuthError, SpotlerConfigError):
                raise
            except SpotlerError as exc:
                return exc
            if on_batch is not None:
                on_batch(results)
            return results

        workers = min(self.max_concurrency, len(batches))
        repeated = len(ids) - len(set(ids))
        if repeated:
            # Parallel batches would make the surviving version a race; in order, the last one wins.
            logger.warning("%d contact(s) repeat an earlier externalId; sending the batches one at a time", repeated)
            workers = 1
        if workers == 1:
            per_batch = [send(item) for item in enumerate(batches)]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spotler-upsert") as pool:
                # map() re-raises the first SpotlerAuthError; the other batches fail the same way.
                per_batch = list(pool.map(send, enumerate(batches)))
        results = [r for batch_results in per_batch if isinstance(batch_results, list) for r in batch_results]
        failed = sum(not r.ok for r in results)
        self._count(contacts_failed=failed)
        unanswered = [(exc, len(batch)) for exc, (batch, _) in zip(per_batch, batches) if isinstance(exc, SpotlerError)]
        logger.info(
            "upserted %d contacts in %d batches: %d ok, %d refused, %d unanswered, %.2fs",
            len(results), len(batches), len(results) - failed, failed, sum(n for _, n in unanswered),
            time.perf_counter() - started,
        )
        if unanswered:
            cause = unanswered[0][0]
            error = SpotlerWriteIncomplete(
                f"contact/list: {len(unanswered)} of {len(batches)} batches ({sum(n for _, n in unanswered)} contacts) "
                f"got no answer ({cause}); the other batches were delivered. None of their contacts counts as "
                "refused: run again once Spotler answers",
                endpoint="contact/list", status_code=cause.status_code, error_type=cause.error_type,
            )
            error.results, error.cause = results, cause
            raise error
        return results

    def update_contact(self, external_id: str, contact: dict, *, purge: bool = False) -> ContactResult:
        """Update one existing contact (``PUT contact/{externalId}``). An unknown contact is a result
        with code ``CONTACT_NOT_FOUND`` (status 404), not an exception; no answer at all (an outage) raises
        ``SpotlerUnavailable``: it is not a refusal."""
        if not isinstance(external_id, str) or not external_id:
            raise ValueError("external_id must be a non-empty string")
        given = contact.get("externalId")
        if given is not None and str(given) != external_id:
            raise ValueError("the contact's externalId differs from external_id")
        self._count(contacts_sent=1)
        body = {"purge": purge, "contact": {**contact, "externalId": external_id}}
        try:
            response = self._send("PUT", f"contact/{_segment(external_id)}", route=_CONTACT_ROUTE, body=body)
            result = ContactResult(external_id, "OK", None, response.status_code)
        except SpotlerRequestError as exc:
            result = _failed_result(external_id, exc)
        if not result.ok:
            self._count(contacts_failed=1)
        return result

    def anonymize(self, external_id: str) -> bool:
        """Strip the contact's personal data (``PUT contact/anonymize/{externalId}``): Spotler has no hard delete.
        False when Spotler does not know the contact (nothing to erase); no answer raises ``SpotlerUnavailable``."""
        try:
            self._send("PUT", f"contact/anonymize/{_segment(external_id)}", route="contact/anonymize/{externalId}")
        except SpotlerRequestError as exc:
            if exc.error_type == "CONTACT_NOT_FOUND":
                return False
            raise
        return True

    # -- public API: reads --

    def get_contact(self, external_id: str) -> dict | None:
        """The contact with this externalId, or None when Spotler does not know it."""
        try:
            response = self._send("GET", f"contact/{_segment(external_id)}", route=_CONTACT_ROUTE)
        except SpotlerRequestError as exc:
            # Spotler answers an unknown contact with 404, some accounts with 400 (S-py accepts both); only
            # the errorType tells it from a wrong URL (404 RESOURCE_NOT_FOUND), which must not read as "absent".
            if exc.error_type == "CONTACT_NOT_FOUND":
                return None
            raise
        return self._json(response, _CONTACT_ROUTE)

    def properties(self) -> list[dict]:
        """The account's contact properties ``[{name, description, type, entries?}]``."""
        return _as_list(self._json(self._send("GET", "contact/properties/list")), "contact/properties/list")

    def updates(self, start: datetime, end: datetime) -> FeedRead:
        """Contacts (current state) whose ``lastChanged`` lies in ``[start, end)``: changes by API writes
        and by recipients (opt-outs). All pages, with Spotler's clock at the first (``server_time``).

        The feed is paged by offset over a live list: a contact that changes again while the pages are
        read leaves the window and shifts the later pages, so one contact can be skipped. Poll with
        overlapping windows (Spotler's own connector reads the last two hours every hour) and process
        idempotently; each contact appears at most once here (the last version read wins).
        """
        rows = self._bare_pages("contact/updates/list", _window(start, end))
        latest = {str(row.get("externalId")): row for row in rows}
        return FeedRead(latest.values(), rows.server_time)

    def update_pages(self, start: datetime, end: datetime,
                     parse: Callable[[bytes, datetime | None], Sized] | None = None) -> Iterator[Any]:
        """``updates`` page by page, as read (a contact changed during the read may be on two pages; the later
        one is its latest version); the first page carries Spotler's clock (``server_time``). Each page is a
        ``FeedRead`` of contacts, or what ``parse`` makes of its body and that clock (the reader's own columns)."""
        return self._bare_page_reads("contact/updates/list", _window(start, end), parse, row_key=b'"externalId"')

    def bounces(self, start: datetime, end: datetime) -> list[dict]:
        """Bounces ``{date, type: HARDBOUNCE|SOFTBOUNCE, contact, encryptedActId}`` dated in ``[start, end)``."""
        return self._bare_pages("contact/bounces/list", _window(start, end))

    def mailings(self, start: datetime, end: datetime) -> list[dict]:
        """Mailings sent in ``[start, end)``."""
        payload = self._json(self._send("GET", "mailing", params=_window(start, end)))
        if isinstance(payload, dict):  # tolerate a paged envelope as well as a bare array
            payload = payload.get("mailings", payload.get("items", []))
        return _as_list(payload, "mailing")

    def interactions(
        self,
        kind: InteractionKind,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        change_start: datetime | None = None,
        change_end: datetime | None = None,
        trend_report_ids: Sequence[int | str] | None = None,
    ) -> list[dict]:
        """Mailing interactions of one kind (``mailing-interaction/{kind}``), all pages. ``start``/``end``
        select on the interaction date, ``change_start``/``change_end`` on its change date."""
        if kind not in _INTERACTION_KINDS:
            raise ValueError(f"kind must be one of {', '.join(_INTERACTION_KINDS)}; got {kind!r}")
        params: dict[str, str] = {}
        for name, value, ceil in (
            ("fromDate", start, False), ("toDate", end, True), ("fromChangeDate", change_start, False), ("toChangeDate", change_end, True)
        ):
            if value is not None:
                params[name] = _iso(value, name, ceil=ceil)
        if trend_report_ids:
            params["trendReportIds"] = ",".join(str(i) for i in trend_report_ids)
        path = f"mailing-interaction/{kind}"
        rows: list[dict] = []
        after = 0
        while True:
            payload = self._json(self._send("GET", path, params={**params, "after": str(after), "pageSize": str(self.page_size)}))
            if not isinstance(payload, dict) or not isinstance(payload.get("interactions"), list):
                raise SpotlerError("Spotler returned an interaction page without 'interactions'", endpoint=path)
            page = payload["interactions"]
            rows.extend(page)
            paging = payload.get("paging") or {}
            if not page or not paging.get("next"):
                return rows
            following = paging.get("after")
            following = int(following) if isinstance(following, (int, str)) and str(following).isdigit() else after + len(page)
            if following <= after:
                raise SpotlerError(f"Spotler's paging did not advance (after={after})", endpoint=path)
            after = following

    # -- internals --

    def _client(self) -> httpx.Client:
        return self._keep_alive(self._new_client)

    def _new_client(self) -> httpx.Client:
        base = self.base_url.rstrip("/") + "/"
        if not is_secure_transport(base):
            raise SpotlerConfigError(
                f"Spotler base URL {self.base_url!r} must use https (OAuth 1 requires it; plain http is "
                f"accepted only for a sandbox on this machine)"
            )
        return httpx.Client(
            verify=tls_context(),
            base_url=base,
            auth=_OneLeggedOAuth1(self.consumer_key, self.consumer_secret),
            timeout=self.timeout_s,
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_connections=max(self.max_concurrency, 1) * 2),
        )

    def _upsert_batch(self, batch: list[dict], ids: list[str], *, purge: bool, label: str) -> list[ContactResult]:
        failpoint("spotler.contact_list")
        self._count(batches=1)
        body = {"update": True, "purge": purge, "contacts": batch}
        try:
            response = self._send("POST", "contact/list", body=body)
            answers = _as_list(self._json(response), "contact/list")
        except SpotlerError as exc:
            logger.warning(
                "Spotler gave no per-contact answer to contact/list %s (%d contacts): status %s, errorType %s",
                label, len(batch), exc.status_code, exc.error_type,
            )
            raise
        status = response.status_code
        if len(answers) == len(ids) and all(isinstance(a, dict) and str(a.get("externalId")) == i
                                            for a, i in zip(answers, ids)):
            in_order = answers  # Spotler's usual answer: one per contact, in the order sent
        else:
            by_id: dict[str, deque[dict]] = defaultdict(deque)
            for answer in answers:
                if isinstance(answer, dict):
                    by_id[str(answer.get("externalId"))].append(answer)
            in_order = [by_id[i].popleft() if by_id.get(i) else None for i in ids]
        results = []
        for external_id, answer in zip(ids, in_order):
            if answer is None:
                results.append(ContactResult(external_id, "ERROR", "Spotler returned no result for this contact", status))
            else:
                results.append(ContactResult(external_id, str(answer.get("code") or "ERROR"), answer.get("message"), status))
        return results

    def _bare_pages(self, path: str, params: dict[str, str]) -> FeedRead:
        """Every row of an endpoint that answers a bare array, with Spotler's clock at the first page."""
        rows = FeedRead()
        for page in self._bare_page_reads(path, params):
            rows.server_time = rows.server_time or page.server_time
            rows.extend(page)
        return rows

    def _bare_page_reads(self, path: str, params: dict[str, str],
                         parse: Callable[[bytes, datetime | None], Sized] | None = None,
                         row_key: bytes | None = None) -> Iterator[Any]:
        """Page by page, an endpoint that answers a bare array, offset-paged by ``after``: a short page ends it.
        The first page carries Spotler's clock when it answered (its ``Date``). ``parse``: the page made of the
        body and that clock instead of a ``FeedRead`` of the parsed rows. ``row_key``: a key every row holds once
        (``b'"externalId"'``); a body that holds it ``page_size`` times is a full page, so the next page is asked
        for while this one is parsed and used. The requests are the ones a read page after page makes, unless the
        values of a short last page quote the key: then one more, whose page is dropped."""

        def get(after: int) -> httpx.Response:
            return self._send("GET", path, params={**params, "after": str(after), "pageSize": str(self.page_size)})

        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spotler-page")
        try:
            after, response = 0, get(0)
            while True:
                clock = None if after else server_time(response)
                following = (ahead.submit(get, after + self.page_size)
                             if row_key is not None and response.content.count(row_key) >= self.page_size else None)
                page = (FeedRead(_as_list(self._json(response), path), clock) if parse is None
                        else parse(response.content, clock))
                del response
                yield page
                if len(page) < self.page_size:
                    return
                after += len(page)
                response = following.result() if following is not None else get(after)
        finally:  # a page asked for ahead and not used is left to its thread (a reader that stopped does not wait)
            ahead.shutdown(wait=False, cancel_futures=True)

    def _json(self, response: httpx.Response, endpoint: str | None = None) -> Any:
        if not response.content.strip():
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise SpotlerError(
                "Spotler returned a body that is not JSON",
                endpoint=endpoint or response.request.url.path,
                status_code=response.status_code,
            ) from None

    def _send(
        self, method: str, path: str, *, route: str | None = None, params: dict[str, str] | None = None, body: Any = None
    ) -> httpx.Response:
        """One call with retries. ``route`` names the call in logs and errors without the externalId in it."""
        http = self._client()
        url, content, headers = json_request(http, path, params, body)
        path = route or path
        what = f"{method} {path}"

        def attempt() -> httpx.Response:
            response = self._attempt(http, method, url, content, headers, service="Spotler", endpoint=path,
                                     what=what, config_error=SpotlerConfigError, transient=_Transient)
            status = response.status_code
            if status == 429 or status >= 500:
                error_type, message = _error_info(response)
                retry_after = _retry_after(response)
                refusal = self._too_long_to_wait(retry_after, "Spotler", what, status)
                if refusal:
                    raise SpotlerUnavailable(refusal, endpoint=path, status_code=status, error_type=error_type,
                                             spotler_message=self._scrub(message))
                raise _Transient(
                    f"{status} {error_type or ''} on {what}".replace("  ", " "),
                    retry_after=retry_after, status=status, error_type=error_type, spotler_message=message,
                )
            if status >= 400:
                raise self._error_from(response, method, path)
            return response

        try:
            return self._retrying(attempt, what=f"Spotler {what}", transient=_Transient, logger=logger)
        except _Transient as exc:
            raise SpotlerUnavailable(
                f"{what}: Spotler stayed unavailable ({exc.reason}) after {self.max_attempts} attempt(s)",
                endpoint=path, status_code=exc.status, error_type=exc.error_type,
                spotler_message=self._scrub(exc.spotler_message),
            ) from None

    def _error_from(self, response: httpx.Response, method: str, path: str) -> SpotlerError:
        status = response.status_code
        error_type, message = _error_info(response)
        message = self._scrub(message)
        what = f"{method} {path}"
        if status in (401, 403):
            if error_type == "AUTH_NOT_FOUND":
                text = f"Spotler refused {what} ({status} AUTH_NOT_FOUND): it does not know this consumer key"
            else:
                text = (
                    f"Spotler refused {what} ({status} {error_type or 'unauthorised'}): the consumer key, the consumer "
                    f"secret or the signature is wrong (the secret is checked through the signature, which also "
                    f"fails when this machine's clock is more than 5 minutes off)"
                )
            logger.warning("Spotler %s failed: status %d, errorType %s", what, status, error_type)
            return SpotlerAuthError(text, endpoint=path, status_code=status, error_type=error_type, spotler_message=message)
        logger.warning("Spotler %s failed: status %d, errorType %s", what, status, error_type)
        return SpotlerRequestError(
            f"Spotler refused {what} ({status} {error_type or 'no errorType'})",
            endpoint=path, status_code=status, error_type=error_type, spotler_message=message,
        )

    def _scrub(self, text: str | None) -> str | None:
        if text and self.consumer_secret:
            text = text.replace(self.consumer_secret, "<redacted>")
        return text


# --- helpers --------------------------------------------------------------------------------------


def _external_id_of(contact: Any, index: int) -> str:
    if not isinstance(contact, dict):
        raise TypeError(f"contact {index} is a {type(contact).__name__}, not a dict")
    value = contact.get("externalId")
    if value is None or str(value) == "":
        raise ValueError(f"contact {index} has no externalId (Spotler keys contacts by it)")
    return str(value)


def _failed_result(external_id: str, exc: SpotlerError) -> ContactResult:
    if exc.error_type:
        code = exc.error_type
    elif isinstance(exc, SpotlerUnavailable) and exc.status_code is None:
        code = "NETWORK_ERROR"
    elif exc.status_code is not None and exc.status_code >= 400:
        code = f"HTTP_{exc.status_code}"
    else:
        code = "ERROR"  # an answer that could not be read
    # A refusal is best told in Spotler's words; for an outage our own account (attempts, retry-after) says more.
    message = str(exc) if isinstance(exc, SpotlerUnavailable) else (exc.spotler_message or exc.message)
    return ContactResult(external_id, code, message, exc.status_code)


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _iso(value: datetime, name: str, *, ceil: bool = False) -> str:
    """Whole seconds with an explicit offset: Spotler reads a naive time as Amsterdam local, which would
    shift the window. A sub-second bound is widened (start down, end up ``ceil``), never narrowed."""
    instant = require_utc(value, name)
    whole = instant.replace(microsecond=0)
    if ceil and whole != instant:
        whole += timedelta(seconds=1)
    return whole.isoformat()


def _window(start: datetime, end: datetime) -> dict[str, str]:
    lo, hi = require_utc(start, "start"), require_utc(end, "end")
    if hi < lo:
        raise ValueError("end lies before start")
    return {"fromDate": _iso(lo, "start"), "toDate": _iso(hi, "end", ceil=True)}


def page_rows(content: bytes, endpoint: str) -> list:
    """The rows of a page that is a bare JSON array (none for an empty body); a body of anything else is an error."""
    if not content.strip():
        return []
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise SpotlerError("Spotler returned a body that is not JSON", endpoint=endpoint) from None
    return _as_list(payload, endpoint)


def _as_list(payload: Any, endpoint: str) -> list:
    if payload is None:
        return []
    if not isinstance(payload, list):
        raise SpotlerError("Spotler returned an object where a list was expected", endpoint=endpoint)
    return payload


def _error_info(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    error_type = body.get("errorType")
    message = body.get("message")
    if isinstance(body.get("error"), dict):  # a gateway-style envelope
        message = message or body["error"].get("message")
    # errorType reaches log lines: escaped like every text Spotler writes (the message is escaped in SpotlerError).
    return (printable(error_type) if error_type else None), (str(message) if message else None)


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:  # the HTTP-date form
                when = email.utils.parsedate_to_datetime(header)
                return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                pass
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, dict) and isinstance(body.get("retry_after"), (int, float)):
        return float(body["retry_after"])
    return None

