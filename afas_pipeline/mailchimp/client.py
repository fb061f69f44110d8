"""The Mailchimp Marketing API v3 client: a Dagster resource that upserts audience members and reads what
changed in Mailchimp.

What it takes care of, so callers do not have to:
- the API key: ``<32 hex>-<dc>``, the data centre naming the default API root
  ``https://<dc>.api.mailchimp.com/3.0``; sent as HTTP Basic password (any user name), never logged, never
  in a repr or an error;
- member upserts, one ``PUT lists/{list_id}/members/{subscriber_hash}`` per member, up to ``max_concurrency``
  in flight per API root, shared by every client in the process (Mailchimp allows 10 simultaneous connections);
- members new to the sync created up to 500 a call by batch subscribe (``POST lists/{list_id}`` with
  ``update_existing: false``, Mailchimp's synchronous bulk call that answers per member). A member it did not
  create (one Mailchimp already has, a refusal of any kind) is sent its own PUT, whose answer decides: the
  batch call never updates a member, so it cannot change anyone's status;
- retries with exponential backoff and jitter after 429, 5xx, a bare 403 without body (Mailchimp over its
  connection limit) and network errors, honouring ``Retry-After`` should it ever come (Mailchimp sends none).
  A PUT is idempotent except for a rename, whose retry after an unanswered attempt can find the new address
  taken by the member itself: that case is checked, not reported as "Member Exists";
- refused members as data (``MemberResult`` with Mailchimp's problem ``title`` as code), never as
  exceptions; members that got no answer at all are not refused: ``MailchimpWriteIncomplete`` says which,
  once the answered ones are handed over; a wrong key raises at once;
- paging of collections by ``count``/``offset`` until ``total_items``;
- log lines with counts only, never an address, a name or a subscriber hash.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import dagster as dg
import httpx
import orjson
from pydantic import Field

from afas_pipeline.lib.http import (
    FeedRead,
    retry_after_header,
    RetryingHttpResource,
    json_request,
    redact_httpx_queries,
    server_time,
    tls_context,
)
from afas_pipeline.lib.text import printable
from afas_pipeline.lib.timewindows import require_utc
from afas_pipeline.lib.urls import base_url_problem
from afas_pipeline.mailchimp.errors import (
    MailchimpAuthError,
    MailchimpConfigError,
    MailchimpError,
    MailchimpRequestError,
    MailchimpUnavailable,
    MailchimpWriteIncomplete,
)

__all__ = ["MailchimpClient", "MemberResult", "MemberWrite", "WriteStats", "api_root_for_key", "subscriber_hash"]

logger = logging.getLogger("afas_pipeline.mailchimp")

MAX_GROUP = 500  # members per on_batch call at most (Mailchimp's own batch size)
MAX_PAGE_SIZE = 1000  # Mailchimp's largest ``count``
#: Pages of a collection on their way while one is used (`_page_reads`): Mailchimp makes the next ones while the
#: reader takes this one apart. The first read after a full sync of 1,000,000 contacts reads 791 pages of members.
PAGES_AHEAD = 3
MAX_CONNECTIONS = 10  # Mailchimp's simultaneous connections per user, across all apps
CONSENT_TITLES = frozenset({"Member In Compliance State", "Forgotten Email Not Subscribed"})
API_KEY_SETTING = "MAILCHIMP_API_KEY"
API_URL_EXAMPLE = "https://us21.api.mailchimp.com/3.0"
_API_KEY = re.compile(r"[0-9a-f]{32}-([a-z]{2,}[0-9]+)")
_HASH = re.compile(r"[0-9a-f]{32}")
_MEMBER_ROUTE = "lists/{list_id}/members/{subscriber_hash}"
_LIST_ROUTE = "lists/{list_id}"
#: The body keys a new member's write may have to go by batch subscribe (whose members take `status`, not
#: `status_if_new`); any other key sends the write as its own PUT.
_BULK_KEYS = frozenset({"email_address", "merge_fields", "status_if_new"})
_MEMBERS_ROUTE = "lists/{list_id}/members"
_MERGE_FIELDS_ROUTE = "lists/{list_id}/merge-fields"
_CAMPAIGNS_ROUTE = "campaigns"
_SENT_TO_ROUTE = "reports/{campaign_id}/sent-to"
_ACTIVITY_ROUTE = "reports/{campaign_id}/email-activity"

redact_httpx_queries()


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the md5 hex of the trimmed, lower-cased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


def api_root_for_key(api_key: str) -> str:
    """``https://<dc>.api.mailchimp.com/3.0`` for a key ``<32 hex>-<dc>``; a malformed key raises
    ``MailchimpConfigError`` naming the setting, never the key."""
    return f"https://{_data_centre(api_key)}.api.mailchimp.com/3.0"


def _data_centre(api_key: str) -> str:
    match = _API_KEY.fullmatch(api_key.strip()) if isinstance(api_key, str) else None
    if match is None:
        raise MailchimpConfigError(
            f"the Mailchimp API key (setting api_key, {API_KEY_SETTING}) is not in Mailchimp's form: expected 32 lower-case hexadecimal characters, a dash "
            f"and the data centre (like 0123...cdef-us21); copy the whole key from Mailchimp's Account > Extras > API keys"
        )
    return match.group(1)


# --- writes, results and counts -------------------------------------------------------------------


@dataclass(frozen=True)
class MemberWrite:
    """One member to upsert: ``subscriber_hash`` addresses the member (for a rename the OLD address's hash),
    ``body`` is the JSON body of the PUT (``email_address``, ``status_if_new`` and/or ``status``,
    ``merge_fields``, ...). ``new``: the sync has no record of this member, so it may be created by batch
    subscribe (when its body has no ``status`` and it is no rename); the PUT follows when it was not."""

    external_id: str
    subscriber_hash: str
    body: dict
    new: bool = False

    @property
    def bulk(self) -> bool:
        """Whether batch subscribe may create this member."""
        return (self.new and self.body.keys() <= _BULK_KEYS and "status_if_new" in self.body
                and _target_hash(self) == self.subscriber_hash)


@dataclass(frozen=True)
class MemberResult:
    """What became of one member write.

    ``code`` is ``OK`` or Mailchimp's problem ``title`` verbatim ("Member In Compliance State", "Forgotten
    Email Not Subscribed", "Invalid Resource", "Member Exists", "Resource Not Found", ...), ``HTTP_<status>``
    for a refusal without a problem body. ``message`` is Mailchimp's detail plus its field errors: it may
    quote the address, so it is not for logs. ``subscriber_hash`` is the hash the member has after an
    accepted write (of the address Mailchimp answered with), None for a refusal.
    """

    external_id: str
    code: str
    message: str | None = None
    status_code: int | None = None
    subscriber_hash: str | None = None
    fields: tuple[str, ...] = ()  # the merge fields Mailchimp's field errors name (names only, never values)

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    @property
    def destination_key(self) -> str | None:
        """The member's key after the write, for the sync state: the address's hash changes with a rename."""
        return self.subscriber_hash

    @property
    def consent_refusal(self) -> bool:
        """Mailchimp keeps an unsubscribed, cleaned or forgotten address from being subscribed again: the
        person's choice, an outcome to record, not a failure to repeat."""
        return self.code in CONSENT_TITLES


@dataclass
class WriteStats:
    """Counts over the client's lifetime (numbers only, fit for Dagster metadata)."""

    requests: int = 0  # HTTP attempts, retries and reads included
    retries: int = 0
    members_sent: int = 0  # writes handed to put_members
    members_failed: int = 0  # of those, refusals other than consent refusals
    batches: int = 0  # groups of batch_size writes
    members_created_in_bulk: int = 0  # of members_sent, created by batch subscribe (the rest: a PUT each)

    def as_metadata(self) -> dict[str, int]:
        return asdict(self)


# --- retry plumbing -------------------------------------------------------------------------------


class _Transient(Exception):
    """An attempt that may succeed when repeated (429, 5xx, bare 403, network)."""

    def __init__(self, reason: str, *, retry_after: float | None = None, status: int | None = None,
                 title: str | None = None, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after, self.status, self.title, self.detail = reason, retry_after, status, title, detail


class _Groups:
    """Hands results to ``on_batch`` per group of ``size`` consecutive writes, once every write of the
    group is settled (answered or given up); one call at a time, from whichever thread settles the group."""

    def __init__(self, total: int, size: int, on_batch: Callable[[list[MemberResult]], None] | None) -> None:
        self._size, self._on_batch = size, on_batch
        self._pending = [min(size, total - start) for start in range(0, total, size)]
        self._settled: list[MemberResult | None] = [None] * total
        self._lock, self._calling = threading.Lock(), threading.Lock()

    @property
    def count(self) -> int:
        return len(self._pending)

    def settle(self, index: int, result: MemberResult | None) -> None:
        group = index // self._size
        with self._lock:
            self._settled[index] = result
            self._pending[group] -= 1
            if self._pending[group]:
                return
            answered = [r for r in self._settled[group * self._size : (group + 1) * self._size] if r is not None]
        if self._on_batch is not None and answered:
            with self._calling:
                self._on_batch(answered)


# --- the resource ---------------------------------------------------------------------------------


class MailchimpClient(RetryingHttpResource):
    """Mailchimp Marketing API v3 client for one audience (Basic auth with the API key)."""

    api_key: str = Field(repr=False, description="The API key <32 hex>-<dc>; from dg.EnvVar. Never logged.")
    base_url: str | None = Field(default=None, description="API root up to and including /3.0; default from the key's data centre.")
    list_id: str = Field(description="The audience (list) id.")
    batch_size: int = Field(default=MAX_GROUP, gt=0, le=MAX_GROUP, description="Members per on_batch call.")
    max_concurrency: int = Field(default=8, gt=0, le=MAX_CONNECTIONS,
                                 description="Calls in flight per API root in this process (Mailchimp allows 10).")
    timeout_s: float = Field(default=120.0, gt=0)
    page_size: int = Field(default=MAX_PAGE_SIZE, gt=0, le=MAX_PAGE_SIZE, description="Rows per page of a collection.")

    stats_type = WriteStats

    def __repr__(self) -> str:
        return f"MailchimpClient(url={self._shown_root()!r}, list_id={self.list_id!r}, api_key=<redacted>)"

    def api_root(self) -> str:
        """The API root requests go to: ``base_url``, else the one of the key's data centre. Checks the key."""
        _data_centre(self.api_key)
        return (self.base_url or api_root_for_key(self.api_key)).rstrip("/")

    # -- public API: writes --

    def put_members(self, writes: Sequence[MemberWrite],
                    on_batch: Callable[[list[MemberResult]], None] | None = None) -> list[MemberResult]:
        """Upsert members, one PUT each (new ones by batch subscribe first, ``MemberWrite.new``), up to
        ``max_concurrency`` calls in flight. Returns one result per write,
        in input order; refusals are results, not exceptions. ``on_batch`` gets the results of each group
        of ``batch_size`` consecutive writes as soon as the group is settled (from a worker thread, one call
        at a time), so a caller can save them while the rest is sent. Raises ``MailchimpAuthError`` at once,
        and ``MailchimpWriteIncomplete`` at the end when some writes got no answer after the retries (their
        results are missing from the list and were not passed to ``on_batch``). An exception raised by
        ``on_batch`` stops the writes not yet started and propagates. Writes touching the same member (a hash
        or a target address twice) are sent one at a time, in order.
        """
        writes = list(writes)
        _check_writes(writes)
        if not writes:
            return []
        started = time.perf_counter()
        groups = _Groups(len(writes), self.batch_size, on_batch)
        self._count(members_sent=len(writes), batches=groups.count)
        outcomes = self._put_all(writes, groups)
        results = [o for o in outcomes if isinstance(o, MemberResult)]
        failed = sum(not (r.ok or r.consent_refusal) for r in results)
        self._count(members_failed=failed)
        unanswered = [(w, o) for w, o in zip(writes, outcomes) if isinstance(o, MailchimpError)]
        logger.info(
            "put %d members: %d ok, %d consent refusals, %d other refusals, %d unanswered, %.2fs",
            len(writes), sum(r.ok for r in results), sum(r.consent_refusal for r in results), failed,
            len(unanswered), time.perf_counter() - started,
        )
        if unanswered:
            raise _incomplete(results, unanswered, len(writes))
        return results

    def delete_permanent(self, subscriber_hash: str) -> bool:
        """Erase the member for good (``POST .../actions/delete-permanent``): its address can never be imported
        again. False when Mailchimp answers 404 (already gone); no answer raises ``MailchimpUnavailable``."""
        try:
            self._send("POST", f"{self._member_path(subscriber_hash)}/actions/delete-permanent",
                       route=f"{_MEMBER_ROUTE}/actions/delete-permanent")
        except MailchimpRequestError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    # -- public API: reads --

    def ping(self) -> dict:
        """``GET ping``: ``{"health_status": "Everything's Chimpy!"}`` when the key is accepted."""
        return self._json(self._send("GET", "ping", route="ping"), "ping") or {}

    def merge_fields(self) -> list[dict]:
        """The audience's merge fields (all pages)."""
        return self._pages(f"{self._list_path()}/merge-fields", _MERGE_FIELDS_ROUTE, "merge_fields", {})

    def get_member(self, subscriber_hash: str) -> dict | None:
        """The member with this hash, archived ones included; None when Mailchimp answers 404 (unknown,
        renamed away or deleted permanently)."""
        try:
            response = self._send("GET", self._member_path(subscriber_hash), route=_MEMBER_ROUTE)
        except MailchimpRequestError as exc:
            if exc.status_code == 404:
                return None
            raise
        return self._json(response, _MEMBER_ROUTE)

    def members_changed(self, since: datetime, until: datetime | None = None, *, status: str | None = None,
                        fields: Sequence[str] | None = None) -> FeedRead:
        """Members of every status (or of ``status`` only) whose ``last_changed`` is at or after ``since`` (whole
        seconds, rounded down), without those changed after ``until``. All pages, with Mailchimp's clock at the
        first (``server_time``).

        Pages are read by offset in the order members joined, which a change during the read does not
        disturb (a member changed meanwhile stays in place; one who joins is appended). A member deleted
        permanently meanwhile shifts the later pages, so poll with overlapping windows. Each member appears
        once (by ``contact_id``; the last version read wins). ``fields``: as for ``members_changed_pages``, with
        ``contact_id`` and ``id``.
        """
        latest: dict[str, dict] = {}
        clock = None
        fields = None if fields is None else [*fields, "contact_id", "id"]
        for page in self.members_changed_pages(since, until, status=status, fields=fields):
            clock = clock or page.server_time
            latest.update((str(row.get("contact_id") or row.get("id")), row) for row in page)
        return FeedRead(latest.values(), clock)

    def members_changed_pages(self, since: datetime, until: datetime | None = None, *, status: str | None = None,
                              fields: Sequence[str] | None = None) -> Iterator[FeedRead]:
        """``members_changed`` page by page, as read (a member may be on two pages; the later one is its latest
        version); the first page carries Mailchimp's clock (``server_time``). ``fields`` (dot notation, such as
        ``merge_fields.AFASID``): only these of each member, and its ``last_changed``, are asked for."""
        lo = require_utc(since, "since").replace(microsecond=0)
        hi = require_utc(until, "until") if until is not None else None
        if hi is not None and hi < lo:
            raise ValueError("until lies before since")
        params = {"since_last_changed": lo.isoformat(), **({"status": status} if status else {})}
        if fields is not None:
            # `last_changed` to drop the changes after `until`, `total_items` to read the next page ahead.
            wanted = dict.fromkeys([*fields, "last_changed"])
            params["fields"] = ",".join([*(f"members.{name}" for name in wanted), "total_items"])
        for page in self._page_reads(f"{self._list_path()}/members", _MEMBERS_ROUTE, "members", params):
            yield FeedRead((row for row in page if hi is None or not _changed_after(row, hi)), page.server_time)

    def member_tags(self, tag: str) -> dict[str, str]:
        """Subscriber hash -> the value of merge field ``tag`` of every member that has one (all pages, only
        those two fields asked for): how a report's recipients are found back."""
        params = {"fields": f"members.id,members.merge_fields.{tag},total_items"}
        rows = self._pages(f"{self._list_path()}/members", _MEMBERS_ROUTE, "members", params)
        values = ((str(row.get("id") or ""), str((row.get("merge_fields") or {}).get(tag) or "").strip()) for row in rows)
        return {member: value for member, value in values if member and value}

    # -- public API: campaigns and their reports --

    def campaigns_sent(self, start: datetime, end: datetime) -> list[dict]:
        """This audience's campaigns sent at or after ``start`` and before ``end`` (all pages)."""
        params = {"list_id": self.list_id, "status": "sent",
                  "since_send_time": require_utc(start, "start").replace(microsecond=0).isoformat(),
                  "before_send_time": require_utc(end, "end").isoformat()}
        return self._pages("campaigns", _CAMPAIGNS_ROUTE, "campaigns", params)

    def sent_to(self, campaign_id: str) -> list[dict]:
        """The recipients of a campaign (``reports/{id}/sent-to``, all pages): ``email_id`` is the subscriber hash."""
        return self._pages(f"reports/{_segment(campaign_id)}/sent-to", _SENT_TO_ROUTE, "sent_to", {})

    def email_activity(self, campaign_id: str, since: datetime) -> list[dict]:
        """The recipients of a campaign with opens, clicks or bounces after ``since`` (whole seconds), each with its
        ``activity`` list (``action``, ``timestamp``; a bounce's ``type``)."""
        params = {"since": require_utc(since, "since").replace(microsecond=0).isoformat()}
        return self._pages(f"reports/{_segment(campaign_id)}/email-activity", _ACTIVITY_ROUTE, "emails", params)

    # -- internals: writes --

    def _put_all(self, writes: list[MemberWrite], groups: _Groups) -> list[MemberResult | MailchimpError]:
        outcomes: list[MemberResult | MailchimpError | None] = [None] * len(writes)
        stop = threading.Event()  # set by the worker that meets an auth error: no other write starts

        def deliver(indexes: list[int]) -> None:
            if stop.is_set():
                return
            try:
                bulk = self._create_in_bulk([writes[i] for i in indexes]) if len(indexes) > 1 else {}
                for position, index in enumerate(indexes):
                    if stop.is_set():
                        return
                    outcome = bulk.get(position) or self._put_or_unanswered(writes[index])
                    outcomes[index] = outcome
                    groups.settle(index, outcome if isinstance(outcome, MemberResult) else None)
            except BaseException:  # an auth error, or on_batch's own
                stop.set()
                raise

        if self._touch_one_member_twice(writes):
            units, workers = [[i] for i in range(len(writes))], 1  # one PUT at a time, in order
        else:
            units = _units(writes, self.batch_size)
            workers = min(self.max_concurrency, len(units))
        if workers == 1:
            for unit in units:
                deliver(unit)
            return outcomes  # type: ignore[return-value]
        # Each worker takes the next unit (one write, or up to 500 new members) until none is left (a future per
        # write cost more than its PUT's bookkeeping).
        remaining, taking = iter(units), threading.Lock()

        def work() -> None:
            while not stop.is_set():
                with taking:
                    unit = next(remaining, None)
                if unit is None:
                    return
                deliver(unit)

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailchimp-put")
        try:
            for future in as_completed([pool.submit(work) for _ in range(workers)]):
                future.result()  # an auth error, or on_batch's own: stop sending at once
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return outcomes  # type: ignore[return-value]

    def _create_in_bulk(self, writes: list[MemberWrite]) -> dict[int, MemberResult | MailchimpError]:
        """Batch subscribe of these new members (``update_existing: false``): by position, the result of each member
        it created, and for every member an error when Mailchimp stayed unavailable. A member left out (one
        Mailchimp already has, or refused for any reason) gets its own PUT from the caller, whose answer counts."""
        members = [{**{k: v for k, v in w.body.items() if k != "status_if_new"}, "status": w.body["status_if_new"]}
                   for w in writes]
        try:
            response = self._send("POST", self._list_path(), route=_LIST_ROUTE,
                                  body={"members": members, "update_existing": False})
        except (MailchimpAuthError, MailchimpConfigError):
            raise
        except MailchimpRequestError as exc:  # the call as a whole refused: each member is sent its PUT
            logger.warning("batch subscribe of %d members refused (%s); sending a PUT each", len(writes), exc.title)
            return {}
        except MailchimpError as exc:  # unavailable after the retries: nothing was answered
            return dict.fromkeys(range(len(writes)), exc)
        payload = self._json(response, _LIST_ROUTE)
        created = payload.get("new_members") if isinstance(payload, dict) else None
        at = {w.subscriber_hash: n for n, w in enumerate(writes)}
        out: dict[int, MemberResult | MailchimpError] = {}
        for member in created if isinstance(created, list) else []:
            address = member.get("email_address") if isinstance(member, dict) else None
            n = at.get(subscriber_hash(address)) if isinstance(address, str) else None
            if n is not None:
                out[n] = _accepted(writes[n], member, response.status_code)
        self._count(members_created_in_bulk=len(out))
        return out

    def _touch_one_member_twice(self, writes: list[MemberWrite]) -> bool:
        hashes = [h for w in writes for h in {w.subscriber_hash, _target_hash(w)}]
        if len(hashes) != len(set(hashes)):
            # Two writes touching one member in parallel would make the outcome a race; in order, the last wins.
            logger.warning("%d write(s) touch a member another write touches; sending one at a time",
                           len(hashes) - len(set(hashes)))
            return True
        return False

    def _put_or_unanswered(self, write: MemberWrite) -> MemberResult | MailchimpError:
        try:
            return self._put_one(write)
        except (MailchimpAuthError, MailchimpConfigError):
            raise
        except MailchimpError as exc:
            return exc

    def _put_one(self, write: MemberWrite) -> MemberResult:
        try:
            response = self._send("PUT", self._member_path(write.subscriber_hash), route=_MEMBER_ROUTE,
                                  body=write.body)
        except MailchimpRequestError as exc:
            result = _refusal(write.external_id, exc)
            # A rename already applied (by a retry whose first attempt's answer was lost, or by a run that died
            # before it saved the new hash) finds its new address taken by this very member.
            if result.code == "Member Exists" and _target_hash(write) != write.subscriber_hash:
                return self._settle_rename(write, result)
            return result
        return _accepted(write, self._json(response, _MEMBER_ROUTE), response.status_code)

    def _settle_rename(self, write: MemberWrite, refused: MemberResult) -> MemberResult:
        """A rename refused as "Member Exists" may have been applied before (an attempt whose answer was lost, or
        a run that died before saving the new hash): then the new address is taken by this very member. The old hash gone and the new address
        showing the write's merge fields says so; anything else keeps the refusal."""
        if self.get_member(write.subscriber_hash) is not None:
            return refused
        member = self.get_member(_target_hash(write))
        if member is None or not _shows(member, write.body):
            return refused
        logger.info("a rename retried after a lost answer had been applied; counted as OK")
        return _accepted(write, member, 200)

    # -- internals: HTTP --

    def _shown_root(self) -> str:
        if isinstance(self.api_key, dg.EnvVar) and not self.base_url:
            return "<from the key, read at run time>"
        try:
            return self.api_root()
        except MailchimpConfigError:
            return "<invalid api_key>"

    def _client(self) -> httpx.Client:
        return self._keep_alive(self._new_client)

    def _new_client(self) -> httpx.Client:
        root = self.api_root()
        problem = base_url_problem("MAILCHIMP_BASE_URL", root, sends="the API key", example=API_URL_EXAMPLE)
        if problem:
            raise MailchimpConfigError(problem)
        return httpx.Client(
            verify=tls_context(),
            base_url=root + "/",
            auth=httpx.BasicAuth("afas-pipeline", self.api_key.strip()),
            timeout=self.timeout_s,
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_connections=self.max_concurrency),
        )

    def _list_path(self) -> str:
        return f"lists/{_segment(self.list_id)}"

    def _member_path(self, member_hash: str) -> str:
        return f"{self._list_path()}/members/{_segment(member_hash)}"

    def _pages(self, path: str, route: str, key: str, params: dict[str, str]) -> list[dict]:
        """Every row of a collection."""
        return [row for page in self._page_reads(path, route, key, params) for row in page]

    def _page_reads(self, path: str, route: str, key: str, params: dict[str, str]) -> Iterator[FeedRead]:
        """A collection page by page, ``count``/``offset`` paged until ``total_items``; the first page carries
        Mailchimp's clock when it answered (its ``Date``). The next pages that ``total_items`` says are there, up to
        ``PAGES_AHEAD`` (and ``max_concurrency``), are asked for while this one is used, at the offsets a read page
        after page asks for when the pages are full: the requests are those of such a read. A page that comes back
        short before the end is followed by the offset after it, as page after page."""
        depth = max(1, min(PAGES_AHEAD, self.max_concurrency))

        def get(offset: int) -> httpx.Response:
            return self._send("GET", path, route=route,
                              params={**params, "count": str(self.page_size), "offset": str(offset)})

        ahead = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="mailchimp-page")
        asked: dict[int, Future] = {}
        try:
            offset, response = 0, get(0)
            while True:
                payload = self._json(response, route)
                page = payload.get(key) if isinstance(payload, dict) else None
                if not isinstance(page, list):
                    raise MailchimpError(f"Mailchimp returned a page without '{key}'", endpoint=route)
                clock = None if offset else server_time(response)
                del response
                total, offset = payload.get("total_items"), offset + len(page)
                more = bool(page) and isinstance(total, int) and offset < total
                if more:
                    for later in range(offset, min(total, offset + depth * self.page_size), self.page_size):
                        if later not in asked:
                            asked[later] = ahead.submit(get, later)
                yield FeedRead(page, clock)
                if not more:
                    return
                following = asked.pop(offset, None)
                response = following.result() if following is not None else get(offset)
        finally:  # pages asked for ahead and not used are left to their threads (a reader that stopped does not wait)
            ahead.shutdown(wait=False, cancel_futures=True)

    def _json(self, response: httpx.Response, route: str) -> Any:
        if not response.content.strip():
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise MailchimpError("Mailchimp returned a body that is not JSON", endpoint=route,
                                 status_code=response.status_code) from None

    def _send(self, method: str, path: str, *, route: str, params: dict[str, str] | None = None,
              body: Any = None) -> httpx.Response:
        """One call with retries. ``route`` names it in logs and errors, without list id or hash."""
        http = self._client()
        url, content, headers = json_request(http, path, params, body)
        what = f"{method} {route}"

        def attempt() -> httpx.Response:
            response = self._attempt(http, method, url, content, headers, service="Mailchimp", endpoint=route,
                                     what=what, config_error=MailchimpConfigError, transient=_Transient)
            return self._checked(response, what, route)

        try:
            return self._retrying(attempt, what=f"Mailchimp {what}", transient=_Transient, logger=logger)
        except _Transient as exc:
            raise MailchimpUnavailable(
                f"{what}: Mailchimp stayed unavailable ({exc.reason}) after {self.max_attempts} attempt(s)",
                endpoint=route, status_code=exc.status, title=exc.title, detail=self._scrub(exc.detail),
            ) from None

    def _checked(self, response: httpx.Response, what: str, route: str) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        if status == 429 or status >= 500 or (status == 403 and not response.content.strip()):
            raise self._transient(response, what, route)
        raise self._error_from(response, what, route)

    def _transient(self, response: httpx.Response, what: str, route: str) -> _Transient:
        status = response.status_code
        title, detail, _ = _problem(response)
        reason = f"{status} {title or ('without body' if status == 403 else '')}".strip()
        retry_after = retry_after_header(response)
        refusal = self._too_long_to_wait(retry_after, "Mailchimp", what, status)
        if refusal:
            raise MailchimpUnavailable(refusal, endpoint=route, status_code=status, title=title,
                                       detail=self._scrub(detail))
        return _Transient(reason + f" on {what}", retry_after=retry_after, status=status, title=title, detail=detail)

    def _error_from(self, response: httpx.Response, what: str, route: str) -> MailchimpError:
        status = response.status_code
        title, detail, field_errors = _problem(response)
        detail = self._scrub(detail)
        logger.warning("Mailchimp %s failed: status %d, title %s", what, status, title)
        if status in (401, 403):
            return MailchimpAuthError(
                f"Mailchimp refused {what} ({status} {title or 'unauthorised'}): check the API key "
                f"(api_key, {API_KEY_SETTING}) and its data centre (the part after the dash must match the API root)",
                endpoint=route, status_code=status, title=title, detail=detail,
            )
        error = MailchimpRequestError(f"Mailchimp refused {what} ({status} {title or 'without a problem body'})",
                                      endpoint=route, status_code=status, title=title, detail=detail)
        error.field_errors = [{k: self._scrub(v) for k, v in e.items()} for e in field_errors]
        return error

    def _scrub(self, text: str | None) -> str | None:
        key = self.api_key.strip() if isinstance(self.api_key, str) else ""
        if text and key:
            text = text.replace(key, "<redacted>")
        return text


# --- helpers --------------------------------------------------------------------------------------


def _check_writes(writes: list) -> None:
    """Each write well formed, before anything is sent; messages name the position, never the data."""
    for index, write in enumerate(writes):
        if not isinstance(write, MemberWrite):
            raise TypeError(f"write {index} is a {type(write).__name__}, not a MemberWrite")
        if not isinstance(write.external_id, str) or not write.external_id:
            raise ValueError(f"write {index} has no external_id")
        if not isinstance(write.subscriber_hash, str) or not _HASH.fullmatch(write.subscriber_hash):
            raise ValueError(f"write {index}: subscriber_hash is not 32 lower-case hex characters (use subscriber_hash())")
        if not isinstance(write.body, dict) or not isinstance(write.body.get("email_address"), str):
            raise ValueError(f"write {index}: body is not a dict with an email_address")


def _target_hash(write: MemberWrite) -> str:
    """The hash of the address the write's body names (differs from ``write.subscriber_hash`` for a rename)."""
    return subscriber_hash(write.body["email_address"])


def _units(writes: list[MemberWrite], group: int) -> list[list[int]]:
    """The writes' positions as units of work: runs of consecutive new members (`MemberWrite.bulk`) inside one group
    of `group` writes, at most `MAX_GROUP` (batch subscribe's limit), and every other write alone."""
    units: list[list[int]] = []
    run: list[int] = []
    for index, write in enumerate(writes):
        if run and (not write.bulk or len(run) == MAX_GROUP or index // group != run[0] // group):
            units.append(run)
            run = []
        if write.bulk:
            run.append(index)
        else:
            units.append([index])
    return units + [run] if run else units


def _accepted(write: MemberWrite, member: Any, status: int) -> MemberResult:
    address = member.get("email_address") if isinstance(member, dict) else None
    member_hash = subscriber_hash(address) if isinstance(address, str) else _target_hash(write)
    return MemberResult(write.external_id, "OK", None, status, member_hash)


def _refusal(external_id: str, exc: MailchimpRequestError) -> MemberResult:
    code = exc.title or f"HTTP_{exc.status_code}"
    fields = "; ".join(f"{e.get('field') or '?'}: {e.get('message') or ''}" for e in getattr(exc, "field_errors", []))
    message = " ".join(part for part in (exc.detail, f"({fields})" if fields else None) if part) or None
    names = tuple(sorted({str(e["field"]) for e in getattr(exc, "field_errors", []) if e.get("field")}))
    return MemberResult(external_id, code, message, exc.status_code, None, names)


def _shows(member: dict, body: dict) -> bool:
    """Whether the member holds the write's plain merge values (text and numbers; addresses not compared)."""
    held = member.get("merge_fields") or {}
    wanted = body.get("merge_fields") or {}
    return all(str(held.get(tag, "")) == str(value) for tag, value in wanted.items() if isinstance(value, (str, int, float)))


def _incomplete(results: list[MemberResult], unanswered: list[tuple[MemberWrite, MailchimpError]],
                total: int) -> MailchimpWriteIncomplete:
    cause = unanswered[0][1]
    error = MailchimpWriteIncomplete(
        f"{len(unanswered)} of {total} member writes got no answer ({cause.message}); the other {len(results)} "
        "were answered. None of the unanswered counts as refused: run again once Mailchimp answers",
        endpoint=_MEMBER_ROUTE, status_code=cause.status_code, title=cause.title,
    )
    error.results = results
    error.unanswered = [w.external_id for w, _ in unanswered]
    return error


def _changed_after(member: dict, until: datetime) -> bool:
    try:
        changed = datetime.fromisoformat(str(member.get("last_changed")))
    except ValueError:
        return False  # unreadable: kept, never silently dropped
    if changed.tzinfo is None:
        changed = changed.replace(tzinfo=timezone.utc)
    return changed > until


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _problem(response: httpx.Response) -> tuple[str | None, str | None, list[dict]]:
    """(title, detail, errors) of a problem+json body; Nones and [] when there is none."""
    try:
        body = orjson.loads(response.content) if response.content.strip() else None
    except orjson.JSONDecodeError:
        return None, None, []
    if not isinstance(body, dict):
        return None, None, []
    title, detail = body.get("title"), body.get("detail")
    errors = [
        {"field": printable(e.get("field") or ""), "message": printable(e.get("message") or "")}
        for e in body.get("errors") or [] if isinstance(e, dict)
    ]
    return (printable(title) if title else None), (str(detail) if detail else None), errors
