"""The parquet IO manager keeps the same promises on a local folder and on S3 (a real S3-compatible server on
localhost, afas_pipeline_tests/s3_server.py): partitions and dict outputs round-trip, a snapshot for a range is
stored once and read once, a crash while writing leaves the stored partition whole and nothing half-written,
personal data in memory mode never reaches the store, and a store that cannot work says so in one line."""

import os
import threading

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from afas_pipeline.lib import failpoints
from afas_pipeline.lib.failpoints import SimulatedCrash
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_pipeline.lib.storage import WRITE_ID, StorageError, open_storage
from afas_pipeline.resources import ConfigurationError, check_settings

DAYS = dg.DailyPartitionsDefinition(start_date="2026-11-01")
RANGE = {"dagster/asset_partition_range_start": "2026-11-01", "dagster/asset_partition_range_end": "2026-11-03"}
POLICY = dg.BackfillPolicy.single_run()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> str:
    """Where the IO manager stores: a local folder, or a prefix in a fresh bucket of the test S3 server."""
    if request.param == "local":
        return str(tmp_path / "storage")
    return f"s3://{request.getfixturevalue('s3_bucket')}/assets"


def _files(store: str, s3_server=None) -> dict[str, bytes]:
    """Every stored file under the store, by its path relative to it, with its bytes."""
    if store.startswith("s3://"):
        bucket, prefix = store[5:].split("/", 1)
        return {k[len(prefix) + 1:]: v for k, v in s3_server.objects(bucket).items() if k.startswith(prefix + "/")}
    return {os.path.relpath(os.path.join(d, n), store): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(store) for n in names}


def _run(assets, store, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources={"io_manager": ParquetIOManager(base_dir=store)}, **kwargs)


def _seen() -> list[pd.DataFrame]:
    seen = []

    @dg.asset(partitions_def=DAYS, backfill_policy=POLICY)
    def spotler_sync_plan(context: dg.AssetExecutionContext, afas_contacts: pd.DataFrame) -> pd.DataFrame:
        seen.append(afas_contacts)
        return pd.DataFrame({"n": [len(afas_contacts)]})

    return seen, spotler_sync_plan


def test_partitions_and_dict_outputs_round_trip(store, request):
    @dg.asset(partitions_def=DAYS, backfill_policy=POLICY)
    def afas_contacts(context: dg.AssetExecutionContext) -> dict[str, pd.DataFrame]:
        return {key: pd.DataFrame({"day": [key] * 2, "at": pd.to_datetime([key] * 2, utc=True)})
                for key in context.partition_keys}

    seen, plan = _seen()
    assert _run([afas_contacts, plan], store, tags=RANGE).success
    [frame] = seen
    assert sorted(frame["day"]) == ["2026-11-01"] * 2 + ["2026-11-02"] * 2 + ["2026-11-03"] * 2
    assert str(frame["at"].dt.tz) == "UTC"  # the types survive the store
    stored = _files(store, request.getfixturevalue("s3_server") if store.startswith("s3") else None)
    assert sorted(stored) == [f"afas_contacts/2026-11-0{d}.parquet" for d in (1, 2, 3)] + \
        [f"spotler_sync_plan/2026-11-0{d}.parquet" for d in (1, 2, 3)]
    # one partition alone reads its own rows
    assert _run([afas_contacts, plan], store, selection=[plan], partition_key="2026-11-02").success
    assert list(seen[1]["day"]) == ["2026-11-02"] * 2


def test_a_snapshot_for_a_range_is_stored_once_and_read_once(store, request):
    @dg.asset(partitions_def=DAYS, backfill_policy=POLICY)
    def afas_contacts(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"contact": range(1000)})

    seen, plan = _seen()
    assert _run([afas_contacts, plan], store, tags=RANGE).success
    assert len(seen[0]) == 1000  # not 3000: the one snapshot, read once
    stored = {k: v for k, v in _files(store, request.getfixturevalue("s3_server") if store.startswith("s3")
                                       else None).items() if k.startswith("afas_contacts/")}
    assert len(stored) == 3
    if store.startswith("s3://"):  # copies made on the server, of one write
        ids = {pq.read_metadata(pa.BufferReader(v)).metadata[WRITE_ID] for v in stored.values()}
        assert len(ids) == 1
    else:  # hard links
        assert len({os.stat(os.path.join(store, k)).st_ino for k in stored}) == 1
    # a partition stored as a copy or link reads as the snapshot
    assert _run([afas_contacts, plan], store, selection=[plan], partition_key="2026-11-03").success
    assert len(seen[1]) == 1000


def test_a_partition_of_a_snapshot_keeps_it_when_the_first_partition_is_written_again_alone(store):
    rows = {"n": 1000}

    @dg.asset(partitions_def=DAYS, backfill_policy=POLICY)
    def afas_contacts(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return pd.DataFrame({"contact": range(rows["n"])})

    seen, plan = _seen()
    assert _run([afas_contacts, plan], store, tags=RANGE).success
    rows["n"] = 5
    assert _run([afas_contacts], store, partition_key="2026-11-01").success
    assert _run([afas_contacts, plan], store, selection=[plan], partition_key="2026-11-03").success
    assert len(seen[-1]) == 1000
    # a range over separate writes reads each: 5 rows of the new one, 1000 of the snapshot's other copy
    assert _run([afas_contacts, plan], store, selection=[plan], tags={
        "dagster/asset_partition_range_start": "2026-11-01", "dagster/asset_partition_range_end": "2026-11-02"}).success
    assert len(seen[-1]) == 1005


def test_a_crash_while_writing_leaves_the_stored_partition_whole_and_nothing_half_written(store, request):
    version = {"rows": 10}

    @dg.asset(partitions_def=DAYS)
    def afas_contacts() -> pd.DataFrame:
        return pd.DataFrame({"contact": range(version["rows"])})

    assert _run([afas_contacts], store, partition_key="2026-11-01").success
    s3 = request.getfixturevalue("s3_server") if store.startswith("s3") else None
    before = _files(store, s3)
    version["rows"] = 20
    failpoints.arm("storage.serialised", "crash")
    with pytest.raises(SimulatedCrash):
        _run([afas_contacts], store, partition_key="2026-11-01")
    failpoints.disarm()
    assert _files(store, s3) == before
    seen, plan = _seen()
    assert _run([afas_contacts, plan], store, selection=[plan], partition_key="2026-11-01").success
    assert len(seen[0]) == 10


def test_two_runs_storing_one_partition_at_once_both_succeed_and_leave_it_whole(store, request):
    """Two runs may store one partition at once (a rerun beside a backfill; every run of either cadence stores
    `<d>_rejected`). The first stands still with its file written aside while the second stores its own: the first
    must then still put its file in place, not find it taken (it shared the second's file aside until this test)."""
    storage = open_storage(store)
    path = storage.path("afas_contacts", "2026-11-01.parquet")
    failed: list[BaseException] = []

    def first() -> None:
        try:
            storage.write_parquet(path, pd.DataFrame({"contact": range(10)}))
        except BaseException as exc:  # noqa: BLE001 (the test asserts there was none)
            failed.append(exc)

    failpoints.arm("storage.serialised", "pause")  # the first arrival stands still; the second goes on
    writer = threading.Thread(target=first)
    writer.start()
    assert failpoints.wait_until_paused("storage.serialised")
    storage.write_parquet(path, pd.DataFrame({"contact": range(20)}))
    assert len(storage.read_parquet(path)) == 20
    failpoints.release("storage.serialised")
    writer.join()
    assert failed == []
    assert len(storage.read_parquet(path)) == 10  # the last one stored
    s3 = request.getfixturevalue("s3_server") if store.startswith("s3") else None
    assert list(_files(store, s3)) == ["afas_contacts/2026-11-01.parquet"]  # nothing left aside


def test_a_partition_linked_again_is_there_to_read_throughout(tmp_path):
    """A snapshot for a range stored again: each further partition is linked to the new file. A run reading one of
    them meanwhile finds the old file or the new one, never none (it was unlinked before it was linked again)."""
    storage = open_storage(str(tmp_path / "storage"))
    first, other = (storage.path("afas_contacts", f"2026-11-0{day}.parquet") for day in (1, 2))
    storage.write_parquet(first, pd.DataFrame({"contact": range(10)}))
    storage.link(first, other)
    storage.write_parquet(first, pd.DataFrame({"contact": range(20)}))
    failpoints.arm("storage.linked_aside", "pause")
    linker = threading.Thread(target=storage.link, args=(first, other))
    linker.start()
    reached = failpoints.wait_until_paused("storage.linked_aside", timeout_s=10)
    readable = os.path.exists(other) and len(storage.read_parquet(other)) == 10
    failpoints.release("storage.linked_aside")
    linker.join()
    assert reached and readable
    assert len(storage.read_parquet(other)) == 20
    assert sorted(os.listdir(tmp_path / "storage" / "afas_contacts")) == ["2026-11-01.parquet", "2026-11-02.parquet"]


def test_pyarrow_completes_an_s3_upload_that_an_error_interrupted_hence_files_are_serialised_first(
        s3_bucket, s3_server):
    """Why the storage serialises a whole file before it uploads: pyarrow completes an S3 upload that an error
    interrupted, with what it got. (Pins pyarrow's behaviour: were it to abort instead, this fails.)"""
    fs = s3_server.filesystem()
    with pytest.raises(RuntimeError), fs.open_output_stream(f"{s3_bucket}/half.parquet") as out:
        out.write(b"PAR1 and then")
        raise RuntimeError("the writer failed halfway")
    assert s3_server.objects(s3_bucket) == {"half.parquet": b"PAR1 and then"}


def test_personal_data_in_memory_mode_reaches_no_store(store, request):
    @dg.asset(partitions_def=DAYS)
    def spotler_audience() -> pd.DataFrame:
        return pd.DataFrame({"email": ["jan@example.org"]})

    @dg.asset(partitions_def=DAYS)
    def spotler_sync_plan(spotler_audience: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"n": [len(spotler_audience)]})

    io = ParquetIOManager(base_dir=store, personal_data="memory")
    assert dg.materialize([spotler_audience, spotler_sync_plan], partition_key="2026-11-01",
                          resources={"io_manager": io}).success
    stored = _files(store, request.getfixturevalue("s3_server") if store.startswith("s3") else None)
    assert sorted(stored) == ["spotler_sync_plan/2026-11-01.parquet"]


def _readers(loaded: dict[str, pd.DataFrame]) -> list[dg.AssetsDefinition]:
    """afas_contacts (a, b, c, d) and two readers of it: `some` asks for c, a and a column the file lacks, `every`
    asks for nothing. What each received goes into `loaded`."""
    @dg.asset(partitions_def=DAYS)
    def afas_contacts() -> pd.DataFrame:
        return pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [True, False], "d": [0.5, 1.5]})

    @dg.asset(partitions_def=DAYS, ins={"contacts": dg.AssetIn("afas_contacts",
                                                                metadata={"columns": ["c", "a", "absent"]})})
    def some(contacts: pd.DataFrame) -> None:
        loaded["some"] = contacts

    @dg.asset(partitions_def=DAYS)
    def every(afas_contacts: pd.DataFrame) -> None:
        loaded["every"] = afas_contacts

    return [afas_contacts, some, every]


@pytest.mark.parametrize("personal_data", ["disk", "memory"])
def test_an_input_gets_only_the_columns_its_metadata_names_and_one_the_file_lacks_is_left_out(store, personal_data):
    loaded: dict[str, pd.DataFrame] = {}
    io = ParquetIOManager(base_dir=store, personal_data=personal_data)
    assert dg.materialize(_readers(loaded), partition_key="2026-11-01", resources={"io_manager": io}).success
    assert list(loaded["some"].columns) == ["a", "c"]  # the file's order; "absent" left out, not an error
    assert loaded["some"].to_dict("list") == {"a": [1, 2], "c": [True, False]}
    assert list(loaded["every"].columns) == ["a", "b", "c", "d"]


def test_a_stored_read_of_some_columns_reads_only_those(store):
    storage = open_storage(store)
    path = storage.path("afas_contacts", "one.parquet")
    storage.write_parquet(path, pd.DataFrame({"a": [1], "b": ["x"], "c": [2.5]}))
    assert list(storage.read_parquet(path, ["c", "a", "absent"]).columns) == ["a", "c"]
    assert list(storage.read_parquet(path, ["absent"]).columns) == []
    assert list(storage.read_parquet(path).columns) == ["a", "b", "c"]


def test_a_missing_bucket_is_one_line_naming_it_the_endpoint_and_the_setting(s3_bucket, s3_server):
    with pytest.raises(ConfigurationError) as raised:
        check_settings({**os.environ, "AFAS_PIPELINE_STORAGE": "s3://no-such-bucket/assets"})
    assert raised.value.problems == [f"AFAS_PIPELINE_STORAGE=s3://no-such-bucket/assets: the bucket no-such-bucket "
                                     f"does not exist at {s3_server.url}: create it, or name another"]
    check_settings({**os.environ, "AFAS_PIPELINE_STORAGE": f"s3://{s3_bucket}/assets"})  # an existing one passes

    @dg.asset
    def afas_contacts() -> pd.DataFrame:
        return pd.DataFrame({"contact": [1]})

    with pytest.raises(StorageError, match=r"^AFAS_PIPELINE_STORAGE=s3://no-such-bucket/x: cannot write "
                                           r"s3://no-such-bucket/x/afas_contacts.parquet: the bucket no-such-bucket "
                                           r"does not exist at http://127\.0\.0\.1:\d+: create it, or name another$"):
        _run([afas_contacts], "s3://no-such-bucket/x")


def test_an_unreachable_endpoint_is_one_line_naming_it_and_its_setting(s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ConfigurationError) as raised:
        check_settings({**os.environ, "AFAS_PIPELINE_STORAGE": f"s3://{s3_bucket}/assets"})
    assert raised.value.problems == [f"AFAS_PIPELINE_STORAGE=s3://{s3_bucket}/assets: cannot read the bucket "
                                     f"{s3_bucket}: cannot reach http://127.0.0.1:9: check AWS_ENDPOINT_URL_S3 or "
                                     "AWS_ENDPOINT_URL (and that the server runs)"]


def test_refused_credentials_are_one_line_that_shows_no_secret(s3_bucket, s3_server, monkeypatch):
    import httpx

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-123")
    httpx.post(f"{s3_server.url}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
    try:
        with pytest.raises(ConfigurationError) as raised:
            check_settings({**os.environ, "AFAS_PIPELINE_STORAGE": f"s3://{s3_bucket}/assets"})
    finally:
        httpx.post(f"{s3_server.url}/moto-api/reset-auth", content=b"inf", timeout=10).raise_for_status()
    [line] = raised.value.problems
    assert line == (f"AFAS_PIPELINE_STORAGE=s3://{s3_bucket}/assets: cannot read the bucket {s3_bucket}: "
                    f"{s3_server.url} refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                    "the role) and that they may use the bucket")
    assert "not-the-secret" not in line


def test_a_storage_url_that_is_not_s3_is_one_line():
    with pytest.raises(StorageError, match="^AFAS_PIPELINE_STORAGE='gs://b/p' is neither a folder nor s3://bucket"):
        open_storage("gs://b/p")
    with pytest.raises(ConfigurationError) as raised:
        check_settings({"AFAS_PIPELINE_STORAGE": "s3://B_ad/p"})
    assert raised.value.problems[0].startswith("AFAS_PIPELINE_STORAGE='s3://B_ad/p' is neither a folder nor")
