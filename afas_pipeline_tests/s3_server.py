"""A real S3-compatible server on localhost for the tests: moto in server mode (HTTP on a free port, S3's wire
protocol, signatures checked when asked). Registered in conftest.py through `pytest_plugins`.

`s3_server` runs for the whole session; `s3_bucket` gives a test a fresh bucket and points the standard AWS
variables at the server for that test only. Nothing reaches past localhost: the instance metadata lookup of the
AWS SDK is off and no shared AWS profile is read.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs
import pytest

#: The documented fake credentials of moto; any pair is accepted unless authentication is turned on.
ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "eu-west-1"
_count = itertools.count()


@dataclass(frozen=True)
class S3Server:
    url: str  # http://127.0.0.1:<port>

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point the pipeline at this server."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def filesystem(self, **options) -> pafs.S3FileSystem:
        """A client of the server for the tests' own looks (not the pipeline's)."""
        return pafs.S3FileSystem(endpoint_override=self.url, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                 region=REGION, **options)

    def create_bucket(self) -> str:
        name = f"t{next(_count)}-{uuid.uuid4().hex[:10]}"
        self.filesystem(allow_bucket_creation=True).create_dir(name)
        return name

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object in the bucket, by key, with its body."""
        fs = self.filesystem()
        found = fs.get_file_info(pafs.FileSelector(bucket, recursive=True))
        out = {}
        for info in found:
            if info.type == pafs.FileType.File:
                with fs.open_input_stream(info.path) as stream:
                    out[info.path.split("/", 1)[1]] = stream.readall()
        return out


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty bucket, with the AWS variables of this test pointing at the server. Returns its name."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    return s3_server.create_bucket()
