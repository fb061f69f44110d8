"""X2: Xelion's incoming-call trigger opens the caller's AFAS InSite card (`afas-pipeline call-lookup`), over
real sockets, against phone index files made by `phone_index()` as the `xelion_phone_index` asset makes them."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from afas_pipeline.cli import main
from afas_pipeline.lib.privacy import hash_key, number_key
from afas_pipeline.xelion.addressbook import phone_index
from afas_pipeline.xelion.config import XelionSettings, default_settings
from afas_pipeline.xelion.lookup import (
    INDEX_FILE,
    LivePhoneIndex,
    PhoneIndex,
    bind,
    build_app,
    default_index_path,
    local_url,
    lookup_server,
    read_index,
)
from afas_pipeline_tests.waiting import wait_until

SETTINGS = XelionSettings(destination="xelion", insite_url="https://99999.afasinsite.nl/verkooprelatie-prs?BcId=<BCID>",
                          connectors={"organisations": "Sync_Organisations", "persons": "Sync_Persons",
                                      "contacts": "Sync_Contacts"})
#: The office number of organisation 100812 (BcId 4711), in E.164; typed in AFAS as 010-1234567.
OFFICE = "+31101234567"
#: Shared by person 2001 (BcId 15) and organisation 100900 (BcId 4800): its switchboard, on the contact.
SWITCHBOARD = "+31207654321"
#: Shared by two persons: BcId 33 and BcId 21.
HOUSEHOLD = "+31301112233"
MOBILE = "+31612345678"  # person 2001's own mobile
UNKNOWN = "+31401234567"


def server_log(caplog) -> str:
    """What the endpoint's side logged: every record but those of the test's own HTTP client, which names the
    URLs it calls."""
    handler = logging.StreamHandler()
    return "\n".join(handler.format(record) for record in caplog.records
                     if not record.name.startswith(("httpx", "httpcore")))


def card(bcid: str, settings: XelionSettings = SETTINGS) -> str:
    return settings.insite_card(bcid)


def index_table(numbers: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """`phone_index()` of (kind, afas id, BcId, E.164) rows: the table the asset stores."""
    entries = pd.DataFrame([{"external_id": f"{kind}:{afas_id}", "number_key": number_key(e164), "bcid": bcid,
                             "afas_id": afas_id, "kind": kind} for kind, afas_id, bcid, e164 in numbers])
    return phone_index(entries)[0]


CRM = [("organisation", "100812", "4711", OFFICE), ("person", "2001", "15", SWITCHBOARD),
       ("organisation", "100900", "4800", SWITCHBOARD), ("person", "2001", "15", MOBILE),
       ("person", "2002", "33", HOUSEHOLD), ("person", "2003", "21", HOUSEHOLD)]


def write_index(path: Path, table: pd.DataFrame, mtime_ns: int | None = None) -> None:
    """As the ParquetIOManager writes it: aside, then renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


class Clock:
    """The clock the index checks its file by: it moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def serving(path: Path, clock: Clock | None = None, read: Callable[[Path], PhoneIndex] = read_index,
            index=None) -> Iterator[httpx.Client]:
    """The endpoint on a free localhost port, in a thread; a client for it once /healthz answers."""
    index = index or LivePhoneIndex(path, clock=clock or Clock(), read=read)
    if isinstance(index, LivePhoneIndex):
        index.load()
    server = lookup_server(build_app(index, SETTINGS))
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=local_url(sock), timeout=10) as client:
            def answers() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, what="the call lookup answers /healthz")
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def call(client: httpx.Client, number: str | None = None, *, raw: str | None = None) -> httpx.Response:
    """Xelion's trigger: the number as a query parameter (encoded), or `raw` as the query string itself."""
    if raw is not None:
        return client.get(f"/xelion/incoming-call?{raw}")
    return client.get("/xelion/incoming-call", params=None if number is None else {"number": number})


@pytest.fixture(scope="module")
def crm_lookup(tmp_path_factory) -> Iterator[httpx.Client]:
    path = tmp_path_factory.mktemp("index") / INDEX_FILE
    write_index(path, index_table(CRM))
    with serving(path) as client:
        yield client


@pytest.mark.parametrize("typed", ["010-1234567", "+31 (0)10 123 4567", "0031101234567", "+31101234567",
                                   "010 123 45 67", "(010) 1234567"])
def test_x2_a_known_number_in_any_notation_opens_its_insite_card(crm_lookup, typed):
    answer = call(crm_lookup, typed)
    assert answer.status_code == 302
    assert answer.headers["location"] == card("4711")


@pytest.mark.parametrize("raw", ["number=+31101234567", "number=%2B31101234567", "number=010+123+4567",
                                 "number=%2B31+10+123+4567", "other=1&number=010-1234567"])
def test_x2_the_number_as_a_trigger_may_send_it_unencoded_or_form_encoded(crm_lookup, raw):
    # A leading + is the number's plus sign (E.164 sent as is); a + further on is a space (form encoding).
    answer = call(crm_lookup, raw=raw)
    assert (answer.status_code, answer.headers.get("location")) == (302, card("4711"))


def test_x2_a_shared_number_opens_the_card_the_index_chose(crm_lookup):
    table = index_table(CRM).set_index("number_key")
    assert table.loc[number_key(SWITCHBOARD), "candidates"] == 2
    # An organisation before a person: a switchboard number on a contact is the organisation's.
    assert call(crm_lookup, "020-7654321").headers["location"] == card("4800")
    # Two persons: the lowest BcId (21 before 33, as numbers).
    assert call(crm_lookup, "030-1112233").headers["location"] == card("21")
    # A person's own number still opens that person.
    assert call(crm_lookup, "06-12345678").headers["location"] == card("15")


def test_x2_an_unknown_number_gets_a_small_404_page_without_the_number(crm_lookup):
    answer = call(crm_lookup, "040-1234567")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "no afas organisation or person has this number" in answer.text.lower()
    assert "1234567" not in answer.text and "location" not in answer.headers


@pytest.mark.parametrize("query", [None, "", "   ", "abc", "12", "010-123", "+31 10 123 4567 8901", "1" * 200,
                                   "%00%0a"])
def test_x2_no_number_or_not_a_phone_number_gets_a_one_line_400(crm_lookup, query):
    answer = call(crm_lookup, raw=f"number={query}") if query == "%00%0a" else call(crm_lookup, query)
    assert answer.status_code == 400
    assert answer.text.count("\n") == 1 and answer.text.startswith("400: ")
    if query and query.strip():
        assert query not in answer.text


def test_x2_no_call_ended_in_a_server_error(crm_lookup):
    # Every call this server answered (these and the module's tests before, on this worker) went as designed.
    for typed in ("010-1234567", "040-1234567", "abc", ""):
        call(crm_lookup, typed)
    calls = crm_lookup.get("/healthz").json()["calls"]
    assert calls["card"] >= 1 and calls["unknown"] >= 1 and calls["not_a_number"] >= 1 and calls["no_number"] >= 1
    assert "error" not in calls


def test_x2_without_a_materialised_index_calls_get_503_until_it_is_there(tmp_path):
    path = tmp_path / INDEX_FILE
    clock = Clock()
    with serving(path, clock) as client:
        answer = call(client, "010-1234567")
        assert answer.status_code == 503
        assert answer.text.count("\n") == 1 and "materialise xelion_phone_index" in answer.text
        health = client.get("/healthz").json()
        assert (health["status"], health["numbers"], health["age_s"]) == ("no index", 0, None)

        write_index(path, index_table(CRM))
        clock.now += 1
        wait_until(lambda: client.get("/healthz").json()["loads"] == 1, what="the new index loaded")
        assert call(client, "010-1234567").headers["location"] == card("4711")


def test_x2_a_new_index_file_is_served_once_its_mtime_is_seen(tmp_path):
    path = tmp_path / INDEX_FILE
    write_index(path, index_table(CRM), mtime_ns=1_700_000_000 * 10**9)
    clock = Clock()
    with serving(path, clock) as client:
        assert call(client, "010-1234567").headers["location"] == card("4711")
        # The organisation moved: its office number is now BcId 4712's.
        moved = [("organisation", "100813", "4712", OFFICE), *CRM[1:]]
        write_index(path, index_table(moved), mtime_ns=1_700_000_060 * 10**9)

        checks = client.get("/healthz").json()["file_checks"]
        clock.now += 0.5  # the file is looked at no more than once a second
        assert call(client, "010-1234567").headers["location"] == card("4711")
        assert client.get("/healthz").json()["file_checks"] == checks
        clock.now += 0.5
        call(client, "010-1234567")
        assert client.get("/healthz").json()["file_checks"] == checks + 1
        wait_until(lambda: client.get("/healthz").json()["loads"] == 2, what="the new index loaded")
        assert call(client, "010-1234567").headers["location"] == card("4712")
        assert client.get("/healthz").json()["materialised_at"] == "2023-11-14T22:14:20Z"


def test_x2_the_old_index_answers_while_the_new_one_loads(tmp_path):
    path = tmp_path / INDEX_FILE
    write_index(path, index_table(CRM), mtime_ns=1_700_000_000 * 10**9)
    reading, release = threading.Event(), threading.Event()
    reads: list[Path] = []

    def slow_read(p: Path) -> PhoneIndex:
        reads.append(p)
        if len(reads) > 1:  # the first read is at start-up; the next one takes until the test releases it
            reading.set()
            assert release.wait(10)
        return read_index(p)

    clock = Clock()
    with serving(path, clock, read=slow_read) as client:
        write_index(path, index_table([("organisation", "100813", "4712", OFFICE)]), mtime_ns=1_700_000_060 * 10**9)
        clock.now += 1
        assert call(client, "010-1234567").headers["location"] == card("4711")
        wait_until(reading.is_set, what="the reload started")
        # Loading: every call is still answered, from the old index, without waiting for the new one.
        assert call(client, "010-1234567").headers["location"] == card("4711")
        assert call(client, "06-12345678").headers["location"] == card("15")
        release.set()
        wait_until(lambda: client.get("/healthz").json()["loads"] == 2, what="the new index loaded")
        assert call(client, "010-1234567").headers["location"] == card("4712")
        assert call(client, "06-12345678").status_code == 404


def test_x2_a_broken_index_file_keeps_the_old_index_and_logs_a_warning(tmp_path, caplog):
    path = tmp_path / INDEX_FILE
    write_index(path, index_table(CRM), mtime_ns=1_700_000_000 * 10**9)
    clock = Clock()
    with serving(path, clock) as client:
        path.write_bytes(b"PAR1 this is no parquet file")
        os.utime(path, ns=(1_700_000_060 * 10**9,) * 2)
        clock.now += 1
        with caplog.at_level(logging.WARNING, logger="afas_pipeline.xelion.lookup"):
            call(client, "010-1234567")
            wait_until(lambda: client.get("/healthz").json()["failed_loads"] == 1, what="the failed load")
        assert call(client, "010-1234567").headers["location"] == card("4711")
        [warning] = [r for r in caplog.records if r.name == "afas_pipeline.xelion.lookup" and r.levelno == logging.WARNING]
        assert "could not be read" in warning.getMessage() and "keeping the index of" in warning.getMessage()
        # It is not read again every second, only once it changes.
        clock.now += 1
        call(client, "010-1234567")
        assert client.get("/healthz").json()["failed_loads"] == 1

        write_index(path, index_table([("organisation", "100813", "4712", OFFICE)]), mtime_ns=1_700_000_120 * 10**9)
        clock.now += 1
        call(client, "010-1234567")
        wait_until(lambda: client.get("/healthz").json()["loads"] == 2, what="the repaired index loaded")
        assert call(client, "010-1234567").headers["location"] == card("4712")


def test_x2_logs_hold_a_hashed_key_never_the_number(tmp_path, caplog):
    path = tmp_path / INDEX_FILE
    write_index(path, index_table(CRM))
    with caplog.at_level(logging.DEBUG), serving(path) as client:
        for typed in ("010-1234567", "+31 (0)10 123 4567", "0031101234567", "040-1234567", "not 1234567"):
            call(client, typed)
        call(client, raw="number=+31101234567")
    logged = server_log(caplog)
    assert hash_key(number_key(OFFICE)) in logged and hash_key(number_key(UNKNOWN)) in logged
    for digits in ("1234567", "123 4567", "31101234567", "31401234567"):
        assert digits not in logged


def test_x2_an_unexpected_failure_is_a_500_that_names_no_number(tmp_path, caplog):
    class Broken:
        numbers = rows = 1
        materialised_at, load_s = 1_700_000_000.0, 0.0

        def bcid(self, key):
            raise RuntimeError(f"lookup of {OFFICE} went wrong")

    class Failing:
        path, loads, failed_loads, file_checks = tmp_path / INDEX_FILE, 1, 0, 0

        def current(self):
            return Broken()

    with caplog.at_level(logging.DEBUG), serving(tmp_path, index=Failing()) as client:
        answer = call(client, "010-1234567")
    assert answer.status_code == 500 and answer.text.startswith("500: ")
    assert "1234567" not in answer.text and "1234567" not in server_log(caplog)
    assert "RuntimeError" in server_log(caplog)


def test_default_index_path_is_where_the_parquet_io_manager_stores_the_asset(tmp_path):
    fallback = tmp_path / ".dagster_home"
    assert default_index_path({"AFAS_PIPELINE_STORAGE": "/data/s", "DAGSTER_HOME": "/h"}, fallback) == \
        Path("/data/s/xelion_phone_index.parquet")
    assert default_index_path({"DAGSTER_HOME": "/h"}, fallback) == Path("/h/storage/xelion_phone_index.parquet")
    assert default_index_path({}, fallback) == fallback / "storage" / "xelion_phone_index.parquet"


def test_call_lookup_help_names_the_trigger_path_and_its_parameter(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["call-lookup", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "/xelion/incoming-call?number=" in text
    assert "--index" in text and "xelion_phone_index.parquet" in text and "$DAGSTER_HOME/storage" in text


def test_call_lookup_command_serves_prints_its_urls_and_stops_quietly_on_ctrl_c(tmp_path):
    path = tmp_path / INDEX_FILE
    write_index(path, index_table(CRM))
    process = subprocess.Popen([sys.executable, "-m", "afas_pipeline.cli", "call-lookup", "--port", "0",
                                "--index", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    try:
        banner = []
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Stop with Ctrl-C"):
                break
        assert banner and banner[-1].startswith("Stop with Ctrl-C"), banner
        fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in banner if ":" in line}
        base = fields["base URL"]
        assert fields["trigger URL"] == f"{base}/xelion/incoming-call?number={{remoteNumber}}"
        assert fields["phone index"].startswith(f"{path} (4 numbers")
        with httpx.Client(base_url=base, timeout=10) as client:
            def answers() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, what="afas-pipeline call-lookup answers /healthz")
            # The shipped mappings/xelion.yaml's InSite template.
            assert call(client, "010-1234567").headers["location"] == card("4711", default_settings())
            assert call(client, "+31 40 123 4567").status_code == 404
            assert call(client, raw="number=+31101234567").status_code == 302
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    output = "".join(banner) + out + err
    assert hash_key(number_key(OFFICE)) in err
    for digits in ("1234567", "123 4567", "31101234567", "31401234567"):
        assert digits not in output


def test_x2_on_object_storage_the_index_is_read_from_s3_and_a_new_one_is_served(s3_bucket, monkeypatch):
    """AFAS_PIPELINE_STORAGE=s3://...: the lookup finds the index where the IO manager put it, and a new
    materialisation is served once seen (a real S3-compatible server, afas_pipeline_tests/s3_server.py)."""
    import dagster as dg

    from afas_pipeline.lib.parquet_io import ParquetIOManager

    storage = f"s3://{s3_bucket}/assets"
    monkeypatch.setenv("AFAS_PIPELINE_STORAGE", storage)
    rows = {"numbers": CRM}

    @dg.asset
    def xelion_phone_index() -> pd.DataFrame:
        return index_table(rows["numbers"])

    def materialise() -> None:
        assert dg.materialize([xelion_phone_index], resources={"io_manager": ParquetIOManager(base_dir=storage)}).success

    location = default_index_path(os.environ, Path("/nowhere"))
    assert location == f"{storage}/{INDEX_FILE}"
    clock = Clock()
    with serving(location, clock) as client:
        assert client.get("/healthz").json()["status"] == "no index"
        materialise()
        clock.now += 1
        call(client, OFFICE)
        wait_until(lambda: client.get("/healthz").json()["loads"] == 1, what="the index read from S3")
        assert call(client, "010-1234567").headers["location"] == card("4711")
        rows["numbers"] = [("organisation", "100813", "4712", OFFICE), *CRM[1:], ("person", "2004", "40", UNKNOWN)]
        materialise()
        clock.now += 1
        call(client, OFFICE)
        wait_until(lambda: client.get("/healthz").json()["loads"] == 2, what="the new index read from S3")
        assert call(client, "010-1234567").headers["location"] == card("4712")
        assert client.get("/healthz").json()["index"] == location


def test_x2_an_s3_endpoint_that_does_not_answer_keeps_the_lookup_up_and_warns_once(s3_bucket, monkeypatch, caplog):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clock = Clock()
    index = LivePhoneIndex(f"s3://{s3_bucket}/assets/{INDEX_FILE}", clock=clock)
    with caplog.at_level(logging.WARNING, logger="afas_pipeline.xelion.lookup"):
        assert index.load() is None
        for _ in range(3):
            clock.now += 1
            assert index.current() is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "afas_pipeline.xelion.lookup"]
    assert len(warnings) == 1 and "cannot reach http://127.0.0.1:9" in warnings[0]
    assert index.file_checks == 3
