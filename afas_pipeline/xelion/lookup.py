"""X2: an incoming call opens the caller's AFAS InSite card. `afas-pipeline call-lookup` serves Xelion's
incoming-call trigger from the phone index the pipeline materialises (`xelion_phone_index`).

    GET /xelion/incoming-call?number=<the caller's number, in any common notation>
        302 to the InSite card of the organisation or person with that number (`insite_url` of xelion.yaml)
        404 a small HTML page when no AFAS organisation or person has it
        400 when there is no number, or it is not a phone number
        503 while the phone index has not been materialised
    GET /healthz
        200 with the index's numbers, its age, and the calls answered so far, per outcome

The index is read from where the pipeline stores its assets (a folder or S3, afas_pipeline/lib/storage.py) into
memory (sorted number keys and their BcIds in two compact arrays: a million numbers
take 45 MB, about 80 MB resident, and half a second to read) and read again when its file changes; the check
is at most once a second, and the old index keeps answering while the new one loads. A file that cannot be
read leaves the old index in place.

The caller's number is read, hashed (`number_key`) and forgotten: no log line, page or error holds it, and
uvicorn's access log (which would print the query string) is off.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from afas_pipeline.lib.phones import parse
from afas_pipeline.lib.storage import join, open_file, storage_location
from afas_pipeline.lib.privacy import hash_key, number_key
from afas_pipeline.xelion.config import XelionSettings

INDEX_FILE = "xelion_phone_index.parquet"
TRIGGER_PATH = "/xelion/incoming-call"
NUMBER_PARAMETER = "number"
#: What Xelion puts the caller's number in place of; its API calls the other party's number `remoteNumber`.
NUMBER_PLACEHOLDER = "{remoteNumber}"
RELOAD_CHECK_S = 1.0
#: Longer than any phone number typed with spaces, dashes and an extension; longer text is not read at all.
MAX_NUMBER_CHARS = 64
KEY_BYTES = 32  # number_key(): 32 hex characters

log = logging.getLogger(__name__)


class IndexFileError(ValueError):
    """The file is not a phone index (a missing column, a malformed key)."""


class LookupBindError(RuntimeError):
    """The endpoint cannot listen where it was asked to; the message names the address and what to change."""


def default_index_path(env: Mapping[str, str], fallback_home: Path) -> Path | str:
    """Where the ParquetIOManager stores `xelion_phone_index`: `$AFAS_PIPELINE_STORAGE` (a folder, or an s3:// URL
    given as it is), else the instance's storage folder `$DAGSTER_HOME/storage`, else that of `fallback_home` (the
    home `afas-pipeline up` uses)."""
    location = storage_location(Path(env.get("DAGSTER_HOME") or fallback_home) / "storage", env)
    return join(location, INDEX_FILE) if "://" in location else Path(location) / INDEX_FILE


def trigger_url(base_url: str) -> str:
    """The URL to configure as Xelion's incoming-call trigger."""
    return f"{base_url}{TRIGGER_PATH}?{NUMBER_PARAMETER}={NUMBER_PLACEHOLDER}"


# --- the index in memory -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PhoneIndex:
    """One load of the phone index file: number key -> BcId."""

    keys: np.ndarray  # sorted, dtype S32
    bcids: pa.Array  # the BcId of each key, in the same order
    path: Path | str
    identity: tuple[int, int, int]  # inode (0 on S3), size, mtime (ns): a different one is a different file
    rows: int
    without_bcid: int
    load_s: float
    loaded_at: float

    def bcid(self, key: str) -> str | None:
        needle = key.encode("ascii")
        at = int(self.keys.searchsorted(needle))
        if at < len(self.keys) and self.keys[at] == needle:
            return self.bcids[at].as_py()
        return None

    @property
    def numbers(self) -> int:
        return len(self.keys)

    @property
    def materialised_at(self) -> float:
        return self.identity[2] / 1e9


def read_index(path: Path | str) -> PhoneIndex:
    """Read the phone index file (a path or an s3:// URL). Raises OSError when it cannot be read, IndexFileError
    (or pyarrow's error) when it is not a phone index."""
    started = time.perf_counter()
    storage, key = open_file(str(path))
    # Stamped before it is read: a file replaced meanwhile differs from the stamp, and is read again.
    stamp = storage.stamp(key)
    if stamp is None:
        raise FileNotFoundError(f"no phone index at {path}")
    table = storage.read_parquet_table(key, columns=["number_key", "bcid"])
    rows = table.num_rows
    if table["bcid"].null_count:  # a record without a BcId has no card to open: its numbers count as unknown
        table = table.filter(pc.is_valid(table["bcid"]))
    keys = _fixed_width_keys(table["number_key"])
    # Stable: should a key occur twice, the first row wins, as phone_index() keeps the first of each number.
    order = np.argsort(keys, kind="stable")
    index = PhoneIndex(keys=keys[order], bcids=_as_text(table["bcid"]).take(pa.array(order)), path=path,
                       identity=stamp, rows=rows,
                       without_bcid=rows - table.num_rows, load_s=time.perf_counter() - started, loaded_at=time.time())
    del table, keys, order
    # Arrow's allocator keeps what the read used for later reads; a reload comes hours later, so hand it back
    # (for a million numbers: about 80 MB resident instead of 200).
    pa.default_memory_pool().release_unused()
    return index


def _fixed_width_keys(column: pa.ChunkedArray) -> np.ndarray:
    """The number keys as one array of 32-byte strings, straight from Arrow's buffer: no Python object per key,
    which for a million numbers is the difference between 50 and 250 MB."""
    keys = pc.cast(column, pa.large_string()).combine_chunks()
    if len(keys) == 0:
        return np.array([], dtype=f"S{KEY_BYTES}")
    lengths = pc.min_max(pc.binary_length(keys)).as_py()
    if keys.null_count or lengths != {"min": KEY_BYTES, "max": KEY_BYTES}:
        raise IndexFileError(f"number_key must be {KEY_BYTES} hex characters on every row")
    start = int(np.frombuffer(keys.buffers()[1], dtype=np.int64, count=1, offset=8 * keys.offset)[0])
    return np.frombuffer(keys.buffers()[2], dtype=f"S{KEY_BYTES}", count=len(keys), offset=start)


def _as_text(column: pa.ChunkedArray) -> pa.Array:
    if pa.types.is_floating(column.type):  # whole numbers in a column with gaps, as pandas writes them
        column = pc.cast(column, pa.int64())
    return pc.cast(column, pa.large_string()).combine_chunks()


class LivePhoneIndex:
    """The phone index file, in memory, read again when the file changes.

    A request asks for `current()`; at most once per `check_every_s` of `clock` that looks at the file's inode,
    size and mtime, and when they differ from the last file read, a thread reads it while the old index keeps
    answering. A file that fails to read is logged and not read again until it changes."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.monotonic,
                 check_every_s: float = RELOAD_CHECK_S, read: Callable[[Path | str], PhoneIndex] = read_index):
        self.path = path if "://" in str(path) else Path(path)
        self._storage, self._key = open_file(str(path))
        self._clock, self._check_every_s, self._read = clock, check_every_s, read
        self._lock = threading.Lock()
        self._index: PhoneIndex | None = None
        self._seen: tuple[int, int, int] | None = None  # the last file read, or tried
        self._checked_at: float | None = None
        self._loading = False
        self._unreachable = False
        self.loads = self.failed_loads = self.file_checks = 0

    def load(self) -> PhoneIndex | None:
        """Read the file now, in this thread (at start-up); None when there is none or it cannot be read."""
        identity = self._identity()
        if identity is not None:
            self._seen = identity
            self._load()
        self._checked_at = self._clock()
        return self._index

    def current(self) -> PhoneIndex | None:
        now = self._clock()
        with self._lock:
            if self._loading or (self._checked_at is not None and now - self._checked_at < self._check_every_s):
                return self._index
            self._checked_at = now
            self.file_checks += 1
            identity = self._identity()
            if identity is None or identity == self._seen:
                return self._index
            self._seen, self._loading = identity, True
        threading.Thread(target=self._load, name="phone-index-load", daemon=True).start()
        return self._index

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            stamp = self._storage.stamp(self._key)
        except OSError as exc:  # an S3 endpoint that does not answer: the old index keeps answering
            if not self._unreachable:  # once, not every second until it answers again
                log.warning("phone index %s could not be looked at (%s)", self.path, str(exc)[:300])
            self._unreachable = True
            return None
        self._unreachable = False
        return stamp

    def _load(self) -> None:
        try:
            index = self._read(self.path)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, the old index keeps answering
            self.failed_loads += 1
            kept = f"keeping the index of {_utc(self._index.materialised_at)}" if self._index else "no index yet"
            log.warning("phone index %s could not be read (%s: %s); %s", self.path, type(exc).__name__,
                        str(exc)[:200], kept)
        else:
            self._index = index
            self._seen = index.identity
            self.loads += 1
            log.info("phone index %s: %d numbers (%d rows without a BcId), materialised %s, read in %.2fs",
                     self.path, index.numbers, index.without_bcid, _utc(index.materialised_at), index.load_s)
        finally:
            self._loading = False


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- HTTP ----------------------------------------------------------------------------------------------------

NO_STORE = {"Cache-Control": "no-store"}
UNKNOWN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unknown caller</title></head>
<body><h1>Unknown caller</h1>
<p>No AFAS organisation or person has this number.</p>
<p>Add it to the organisation or person in AFAS: their card opens for it after the next sync.</p>
</body></html>
"""


def caller_number(query_string: bytes) -> str | None:
    """The `number` parameter of a raw query string. A literal `+` that starts the number is its plus sign (a
    trigger that does not encode the number sends E.164 as is); anywhere else it is a space (form encoding)."""
    for part in query_string.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if unquote(name) != NUMBER_PARAMETER:
            continue
        value = value.strip()
        plus = "+" if value.startswith("+") else ""
        return unquote(plus + value[len(plus):].replace("+", " ")).strip()
    return None


def _line(status: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(f"{status}: {text}\n", status_code=status, headers=NO_STORE)


def build_app(index: LivePhoneIndex, settings: XelionSettings) -> Starlette:
    """The endpoint's two routes over `index`, with `settings`' InSite URL template and phone region."""
    calls: Counter = Counter()

    async def incoming_call(request: Request) -> Response:
        try:
            return answer(request)
        except Exception as exc:  # noqa: BLE001 - its message may hold the number: only the type is logged
            calls["error"] += 1
            log.error("incoming call: failed with %s", type(exc).__name__)
            return _line(500, "the call lookup failed; the log of afas-pipeline call-lookup says more")

    def answer(request: Request) -> Response:
        text = caller_number(request.scope["query_string"])
        if not text:
            calls["no_number"] += 1
            log.info("incoming call: no number")
            return _line(400, f"no caller's number: call {TRIGGER_PATH}?{NUMBER_PARAMETER}=<the caller's number>")
        e164, reason = parse(text, settings.phone_region) if len(text) <= MAX_NUMBER_CHARS else (None, "too_long")
        if e164 is None:
            calls[reason] += 1
            log.info("incoming call: not a phone number (%s)", reason)
            return _line(400, f"not a phone number: give the caller's number, in international form (+...) or as "
                              f"dialled in {settings.phone_region}")
        current = index.current()
        if current is None:
            calls["no_index"] += 1
            log.warning("incoming call: no phone index at %s yet", index.path)
            return _line(503, "the phone index is not materialised yet: materialise xelion_phone_index "
                              "(e.g. afas-pipeline sync), then call again")
        key = number_key(e164)
        bcid = current.bcid(key)
        if bcid is None:
            calls["unknown"] += 1
            log.info("incoming call %s: unknown number", hash_key(key))
            return HTMLResponse(UNKNOWN_PAGE, status_code=404, headers=NO_STORE)
        calls["card"] += 1
        log.info("incoming call %s: card", hash_key(key))
        return RedirectResponse(settings.insite_card(bcid), status_code=302, headers=NO_STORE)

    async def healthz(request: Request) -> Response:
        current = index.current()
        body = {"status": "ok" if current else "no index", "index": str(index.path),
                "numbers": current.numbers if current else 0, "rows": current.rows if current else 0,
                "age_s": round(time.time() - current.materialised_at, 1) if current else None,
                "materialised_at": _utc(current.materialised_at) if current else None,
                "load_s": round(current.load_s, 3) if current else None,
                "loads": index.loads, "failed_loads": index.failed_loads, "file_checks": index.file_checks,
                "calls": dict(calls)}
        return JSONResponse(body, headers=NO_STORE)

    return Starlette(routes=[Route(TRIGGER_PATH, incoming_call, methods=["GET"]),
                             Route("/healthz", healthz, methods=["GET"])])


def lookup_server(app: Starlette) -> uvicorn.Server:
    """uvicorn for the endpoint: no access log (its lines hold the query string, the caller's number), only
    uvicorn's warnings, and the logging configuration left to the caller."""
    config = uvicorn.Config(app, access_log=False, log_config=None, log_level="warning", lifespan="off",
                            server_header=False)
    return uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before uvicorn starts so the port (0: a free one) is known for the banner."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LookupBindError(f"the call lookup cannot listen on {host}:{port}: {reason}; choose another --port "
                              f"(or --host)") from None
    return sock


def local_url(sock: socket.socket) -> str:
    """The URL this machine reaches the socket by: a wildcard bind (0.0.0.0, ::) over loopback."""
    host, port = sock.getsockname()[:2]
    address = ipaddress.ip_address(host)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"http://[{address}]:{port}" if address.version == 6 else f"http://{address}:{port}"


def serve(host: str, port: int, index_path: Path | str, settings: XelionSettings) -> None:
    """Run the endpoint in the foreground until interrupted, after printing where Xelion's trigger points."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    sock = bind(host, port)
    index = LivePhoneIndex(index_path)
    loaded = index.load()
    url = local_url(sock)
    print("Xelion call lookup (X2): an incoming call opens the caller's AFAS InSite card")
    print(f"  base URL:     {url}")
    print(f"  trigger URL:  {trigger_url(url)}")
    if loaded:
        print(f"  phone index:  {index_path} ({loaded.numbers} numbers, materialised {_utc(loaded.materialised_at)})")
    else:
        print(f"  phone index:  {index_path} (not materialised yet: calls get 503 until xelion_phone_index is; "
              f"e.g. afas-pipeline sync)")
    print(f"  InSite card:  {settings.insite_url}")
    if not ipaddress.ip_address(sock.getsockname()[0]).is_loopback:
        print(f"warning: listening on {sock.getsockname()[0]}: whoever reaches it can ask whether a number belongs "
              f"to an AFAS organisation or person", file=sys.stderr)
    print("Stop with Ctrl-C.", flush=True)
    try:
        lookup_server(build_app(index, settings)).run(sockets=[sock])
    finally:
        sock.close()
