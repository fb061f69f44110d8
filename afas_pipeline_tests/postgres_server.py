"""A real PostgreSQL server, started by the suite itself (a pytest plugin, registered in conftest.py): the server
binaries come from the `pgserver` wheel (test extra), so no machine needs an apt package. initdb and pg_ctl on a free
localhost port in a temporary folder, once per session (per xdist worker), stopped at the end.

pgserver 0.1.4 (June 2024; PostgreSQL 16.2; wheels for CPython 3.9-3.12 on Linux and macOS) is old, but a server
binary does not rot: only its files are used, not its own start-up code (which adds a system user when root). Should
it stop installing, Debian's `postgresql` package has the same binaries (/usr/lib/postgresql/<v>/bin).

`state_location` hands each sync-state test a fresh state, once as a SQLite file and once as a Postgres database
(CREATE DATABASE from a template that holds the state's tables: a few tens of milliseconds)."""

import itertools
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from pgserver._commands import POSTGRES_BIN_PATH

LOG = logging.getLogger("afas_pipeline_tests.postgres")
#: The server refuses to run as root; as root (CI containers) it runs as this user, which every Debian has.
UNPRIVILEGED = "nobody"


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    db_name: str
    username: str
    password: str

    def env(self) -> dict[str, str]:
        """The settings deploy/dagster.postgres.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": self.db_name,
                "DAGSTER_PG_USERNAME": self.username, "DAGSTER_PG_PASSWORD": self.password}

    def connect(self, db_name: str | None = None):
        return psycopg2.connect(host=self.host, port=self.port, dbname=db_name or self.db_name, user=self.username,
                                password=self.password)

    def url(self, db_name: str) -> str:
        """AFAS_PIPELINE_STATE for a database of this server."""
        return f"postgresql://{self.username}:{self.password}@{self.host}:{self.port}/{db_name}"

    def create_database(self, name: str, template: str = "template1") -> None:
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        """One statement outside a transaction (CREATE/DROP DATABASE cannot run inside one)."""
        admin = self.connect()
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(statement)
        finally:
            admin.close()


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """A fresh cluster with database `dagster` owned by role `dagster`; over TCP the password is checked (scram)."""
    started = time.monotonic()
    # Not pytest's tmp_path: its folders are private to the user running the tests, and the server runs as another.
    top = Path(tempfile.mkdtemp(prefix="afas-pg-"))
    top.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", UNPRIVILEGED, "--"]
        account = pwd.getpwnam(UNPRIVILEGED)
        os.chown(top, account.pw_uid, account.pw_gid)
    data, log = top / "data", top / "server.log"
    bin_ = Path(POSTGRES_BIN_PATH)

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command[0]} failed: {done.stderr[-2000:]}"

    run(str(bin_ / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
        "--auth-host=scram-sha-256", "--no-sync")
    port = _free_port()
    run(str(bin_ / "pg_ctl"), "-w", "-D", str(data), "-l", str(log), "start",
        "-o", f"-p {port} -k {top} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c autovacuum=off")
    # A throwaway cluster: no crash safety needed, and fast CREATE DATABASE. No autovacuum: a worker of it inside a
    # test's database makes `DROP DATABASE ... WITH (FORCE)` fail, as the test role may not terminate it.
    try:
        admin = psycopg2.connect(host=str(top), port=port, dbname="postgres", user="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE ROLE dagster LOGIN CREATEDB PASSWORD 'afas-test-pg'")
            cur.execute("CREATE DATABASE dagster OWNER dagster")
        admin.close()
        LOG.info("postgres on 127.0.0.1:%s ready in %.2fs", port, time.monotonic() - started)
        yield Postgres("127.0.0.1", port, "dagster", "dagster", "afas-test-pg")
    finally:
        run(str(bin_ / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(top, ignore_errors=True)


_databases = itertools.count()
#: The template of every Postgres state a test gets: the state's tables made once.
STATE_TEMPLATE = "afas_state_template"


@pytest.fixture(scope="session")
def postgres_state_template(postgres: Postgres) -> str:
    from afas_pipeline.sync.state import SyncState

    postgres.create_database(STATE_TEMPLATE)
    SyncState(postgres.url(STATE_TEMPLATE))
    return STATE_TEMPLATE


@pytest.fixture
def postgres_state(postgres: Postgres, postgres_state_template: str) -> str:
    """AFAS_PIPELINE_STATE of a fresh Postgres state: a database of its own, dropped after the test."""
    name = f"afas_state_{os.getpid()}_{next(_databases)}"
    postgres.create_database(name, template=postgres_state_template)
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def state_location(request, tmp_path) -> str:
    """AFAS_PIPELINE_STATE of a fresh sync state: a SQLite file, then a Postgres database (the same tests run on
    both backends)."""
    if request.param == "sqlite":
        return str(tmp_path / "state" / "sync_state.sqlite")
    return request.getfixturevalue("postgres_state")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
