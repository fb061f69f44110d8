"""Where the assets are stored: a local folder or an S3 bucket (and S3-compatibles: MinIO, Ceph, ...), one code path.

`AFAS_PIPELINE_STORAGE` is a folder (`/srv/afas/storage`) or `s3://bucket/prefix`. Both are reached through
`pyarrow.fs`: pyarrow is already a dependency, reads and writes parquet through it natively, and its S3 client (the
AWS SDK for C++) streams, retries and signs without adding boto or fsspec to a production install. (fsspec with s3fs,
which Dagster's UPathIOManager uses, would add aiobotocore and its pinned botocore for no behaviour we need.)

On S3 the endpoint and the region come from the standard AWS variables, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`
(for an S3-compatible server) and `AWS_REGION` (or `AWS_DEFAULT_REGION`); `AWS_MAX_ATTEMPTS` caps the tries of a
request (default 3). The credentials are left to the AWS SDK's own chain (`AWS_ACCESS_KEY_ID` and
`AWS_SECRET_ACCESS_KEY`, a shared profile, a Kubernetes service account's web identity) and are never read, logged
or shown here. Outside EC2 set `AWS_EC2_METADATA_DISABLED=true`, or the SDK asks the instance metadata address
(169.254.169.254) for credentials and a region when it finds none.

What the IO manager needs from a store, and how each keeps it:
- no half-written file is ever visible: locally a file is written aside (straight from the table, no copy in
  memory, under a name of its own write, so two runs storing one partition at once never share it) and renamed; on
  S3 an object appears only when its upload completes. An upload closed after an error
  completes with what it got (pyarrow closes rather than aborts), so the whole file is serialised in memory before
  the upload starts (`write_parquet`);
- a snapshot for a range of partitions is uploaded once and read once: locally it is hard-linked under each key
  (one inode). S3 has no links: each further key gets a server-side copy (no second upload), and every file
  carries a write id in its parquet footer, so a range read tells the copies of one write apart from separate
  writes by a small read of the footer (`identity`). A copy, unlike a link object naming the first key, stays
  what it was when that first partition is later written again alone, as a hard link does.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.text import printable
from afas_pipeline.lib.urls import shown_url

SETTING = "AFAS_PIPELINE_STORAGE"
ENDPOINT_SETTINGS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
#: The key, in a parquet file's footer metadata, of the id of the write that made it (shared by its copies).
WRITE_ID = b"afas_pipeline.write_id"
_S3_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?")


class StorageError(OSError):
    """The storage cannot be used; the message is one line naming the location, the setting and what to do."""


@dataclass(frozen=True)
class Entry:
    """One stored file: its path in the store, size, last-modified time (s) and what its bytes are (`identity`):
    the same for the keys of one snapshot stored once."""

    path: str
    size: int
    mtime: float
    identity: object


@dataclass(frozen=True)
class Storage:
    """A folder of a filesystem: `root` is its path there (`/srv/storage`, or `bucket/prefix` on S3)."""

    fs: pafs.FileSystem
    root: str
    location: str  # as configured, for messages
    endpoint: str | None = None  # S3 only: the endpoint override, for messages

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts]) if self.root else "/".join(parts)

    def url(self, path: str) -> str:
        """A path of this store as the user would write it (for messages and metadata)."""
        return path if self.local else f"s3://{path}"

    # -- reading --

    def info(self, path: str) -> pafs.FileInfo:
        with self._errors("read", path):
            return self.fs.get_file_info(path)

    def read_parquet(self, path: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """The file as a DataFrame; with `columns`, only those of them the file has (in the file's order): the
        others are never read, and one the file lacks is left out."""
        with self._errors("read", path):
            if columns is not None:
                wanted = set(columns)
                columns = [c for c in pq.read_schema(path, filesystem=self.fs).names if c in wanted]
            return pd.read_parquet(path, columns=columns, filesystem=self.fs)

    def read_parquet_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        with self._errors("read", path):
            with self.fs.open_input_file(path) as file:
                return pq.read_table(file, columns=columns)

    def stamp(self, path: str) -> tuple[int, int, int] | None:
        """What tells one version of a file from the next: inode (0 on S3), size and last-modified time (ns; on S3
        to the second); None when there is no file."""
        if self.local:
            try:
                stat = os.stat(path)
            except OSError:
                return None
            return stat.st_ino, stat.st_size, stat.st_mtime_ns
        info = self.info(path)
        return (0, info.size, info.mtime_ns) if info.type == pafs.FileType.File else None

    def identity(self, path: str) -> object | None:
        """What the bytes of the file at `path` are (None when there is none): the same for the keys of one
        snapshot (locally one inode; on S3 copies with one write id in their footers)."""
        if self.local:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                return None
            return stat.st_dev, stat.st_ino
        if self.info(path).type != pafs.FileType.File:
            return None
        with self._errors("read", path):
            with self.fs.open_input_file(path) as file:  # the footer only: one small ranged read
                metadata = pq.read_metadata(file).metadata or {}
        return metadata.get(WRITE_ID, path)

    def entries(self, folder: str, single: str) -> list[Entry]:
        """The files directly in `folder`, and `single` when it exists: an asset's partitions, or its only file."""
        if self.local:
            found = [os.path.join(folder, n) for n in os.listdir(folder)] if os.path.isdir(folder) else []
            found += [single] if os.path.lexists(single) else []
            out = []
            for p in found:
                st = os.lstat(p)
                if not os.path.isdir(p) or os.path.islink(p):
                    out.append(Entry(p, st.st_size, st.st_mtime, (st.st_dev, st.st_ino)))
            return out
        with self._errors("list", folder):
            infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
            infos.append(self.fs.get_file_info(single))
        return [Entry(i.path, i.size, i.mtime.timestamp(), i.path) for i in infos if i.type == pafs.FileType.File]

    # -- writing --

    def write_parquet(self, path: str, df: pd.DataFrame) -> None:
        """Store `df` at `path` as parquet, whole or not at all, with a write id of its own in the footer."""
        table = pa.Table.from_pandas(df, preserve_index=False)
        write_id = uuid.uuid4().hex
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), WRITE_ID: write_id.encode()})
        # Without dictionary pages: most columns here are one value per row (ids, addresses, hashes), for which the
        # writer builds a dictionary and then drops it. A full sync's seven outputs at 100,000 contacts: written in
        # 0.20 s instead of 0.42 s, 30.7 instead of 28.8 MB, read back as fast. The min/max statistics stay: without
        # them the six outputs of a rerun are written 0.05 s sooner, but the AFAS extraction's peak memory grew by
        # 15-20 MB at 100,000 contacts (2.5-2.7x its DataFrame, against 1.6-1.9x with them; three pairs, alternating).
        if not self.local:
            # The file made whole before it is uploaded: pyarrow completes an upload an error interrupted.
            buffer = pa.BufferOutputStream()
            pq.write_table(table, buffer, use_dictionary=False)
            failpoint("storage.serialised")
            with self._errors("write", path), self.fs.open_output_stream(path) as out:
                out.write(buffer.getvalue())
            return
        # Locally written into a file of its own beside the partition's, which then takes its place: no copy of the
        # whole file is held in memory (8 MB of the AFAS extraction's 40 at 100,000 contacts). Named after this write:
        # two runs storing one partition at once (every run of either cadence stores `<d>_rejected`) would otherwise
        # write into one file aside, and the first to rename it would take it from under the other.
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = _aside(path, write_id)
        try:
            pq.write_table(table, tmp, use_dictionary=False)
            failpoint("storage.serialised")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def link(self, source: str, path: str) -> None:
        """Make `path` (in the same folder as `source`) hold what `source` holds, without uploading it again."""
        if not self.local:
            with self._errors("copy", path):
                self.fs.copy_file(source, path)  # server-side; the copy appears whole
            return
        # Linked aside and renamed over `path`: a run reading `path` meanwhile finds the file it had, or this one.
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = _aside(path, uuid.uuid4().hex)
        try:
            try:
                os.link(source, tmp)
            except OSError:
                os.symlink(Path(source).name, tmp)  # same inode for identity(), where hard links are not allowed
            failpoint("storage.linked_aside")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, path: str) -> None:
        if self.local:
            Path(path).unlink(missing_ok=True)
            return
        with self._errors("delete", path):
            self.fs.delete_file(path)

    # -- errors --

    @contextmanager
    def _errors(self, doing: str, path: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except FileNotFoundError:
            raise
        except OSError as exc:
            if self.local:
                raise
            raise StorageError(self.explain(exc, f"cannot {doing} {self.url(path)}")) from None

    def explain(self, exc: OSError, what: str) -> str:
        """One line for an S3 failure: what failed, why in words, and the setting to look at (never a credential)."""
        text = str(exc)
        endpoint = self._endpoint_shown()
        where = f"{SETTING}={self.location}"
        if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
            return self._missing_bucket(f"{what}: ")
        if any(code in text for code in ("ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY_ID",
                                         "InvalidAccessKeyId", "SIGNATURE_DOES_NOT_MATCH", "SignatureDoesNotMatch",
                                         "Forbidden")):
            return (f"{where}: {what}: {endpoint} refused the credentials: check AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (or the role) and that they may use the bucket")
        if "NETWORK_CONNECTION" in text or "curlCode" in text:
            return (f"{where}: {what}: cannot reach {endpoint}: check {' or '.join(ENDPOINT_SETTINGS)} "
                    "(and that the server runs)")
        first = text.splitlines()[0] if text else type(exc).__name__
        return f"{where}: {what}: {printable(first)[:300]}"

    def problem(self) -> str | None:
        """Why this storage cannot be used, checked cheaply at start (a local folder: writable; S3: the bucket is
        there and the credentials may see it), or None."""
        if self.local:
            return _writable_folder_problem(Path(self.location))
        bucket = self.root.split("/", 1)[0]
        try:
            info = self.fs.get_file_info(bucket)
        except OSError as exc:
            return self.explain(exc, f"cannot read the bucket {bucket}")
        return self._missing_bucket() if info.type == pafs.FileType.NotFound else None

    def _missing_bucket(self, doing: str = "") -> str:
        return (f"{SETTING}={self.location}: {doing}the bucket {self.root.split('/', 1)[0]} does not exist at "
                f"{self._endpoint_shown()}: create it, or name another")

    def _endpoint_shown(self) -> str:
        return shown_url(self.endpoint) if self.endpoint else "AWS S3"


def _aside(path: str, write_id: str) -> str:
    """The name a local file is written under before it takes `path`'s place: in its folder (a rename within one
    file system), of this write only. A crash leaves it behind; the retention deletes it with the asset's files."""
    return f"{path}.{write_id[:16]}.tmp"


def open_storage(location: str, env: Mapping[str, str] = os.environ) -> Storage:
    """The storage at `location`: a local folder, or `s3://bucket/prefix` with the AWS variables of `env`."""
    if "://" not in location:
        return Storage(pafs.LocalFileSystem(), os.path.abspath(location), location)
    match = _S3_URL.fullmatch(location.strip())
    if not match:
        raise StorageError(f"{SETTING}='{printable(location)}' is neither a folder nor s3://bucket/prefix (a bucket "
                           "name of 3 to 63 lower-case letters, digits, dots and dashes)")
    endpoint = next((env[n].strip() for n in ENDPOINT_SETTINGS if env.get(n, "").strip()), None)
    options: dict[str, object] = {}
    if endpoint:
        options["endpoint_override"] = endpoint
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    if region:
        options["region"] = region
    attempts = (env.get("AWS_MAX_ATTEMPTS") or "").strip()
    if attempts:
        if not attempts.isdigit() or not 1 <= int(attempts) <= 20:
            raise StorageError(f"AWS_MAX_ATTEMPTS='{printable(attempts)}' is not a whole number from 1 to 20")
        options["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=int(attempts))
    root = match["bucket"] + ("/" + match["prefix"].strip("/") if match["prefix"] and match["prefix"].strip("/")
                              else "")
    return Storage(pafs.S3FileSystem(**options), root, location.strip(), endpoint)


def storage_location(default_folder: str | os.PathLike, env: Mapping[str, str] = os.environ) -> str:
    """`$AFAS_PIPELINE_STORAGE`, else `default_folder` (the Dagster instance's storage folder)."""
    return (env.get(SETTING) or "").strip() or str(default_folder)


def join(location: str, name: str) -> str:
    """A file in a storage location (a folder or an s3:// URL), as a location of its own."""
    return location.rstrip("/") + "/" + name if "://" in location else os.path.join(location, name)


def open_file(location: str, env: Mapping[str, str] = os.environ) -> tuple[Storage, str]:
    """The storage holding the file at `location` (a path or an s3:// URL), and the file's path there."""
    folder, _, name = location.rstrip("/").rpartition("/")
    storage = open_storage(folder or ".", env)
    return storage, storage.path(name)


def _writable_folder_problem(path: Path) -> str | None:
    """A folder that is created when missing: it must not be a file, nor lie under one, and be writable."""
    shown = printable(path)
    if path.exists() and not path.is_dir():
        return f"{SETTING} '{shown}' is a file: point it at a folder (it is created when missing)"
    existing = next(p for p in [path, *path.absolute().parents] if p.exists())
    if not existing.is_dir():
        return f"{SETTING} '{shown}' lies under the file '{printable(existing)}': point it at a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{SETTING} '{shown}': this user may not write in '{printable(existing)}'; choose a folder it may"
    return None
