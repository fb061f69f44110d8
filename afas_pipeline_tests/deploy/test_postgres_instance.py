"""deploy/dagster.postgres.yaml against a real Postgres (afas_pipeline_tests/postgres_server.py): the instance loads and
validates; and the code location's delta job runs once on the embedded default (SQLite instance, SQLite state, local
files) and once on everything several machines share (the instance and the sync state on Postgres, the assets on an
S3-compatible server, afas_pipeline_tests/s3_server.py), each read back from its server."""

import io
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg2
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from afas_pipeline.cli import _job
from afas_pipeline.definitions import defs
from afas_pipeline.resources import SETTINGS, build_resources
from afas_pipeline.sync.state import SyncState

PROJECT = Path(__file__).resolve().parents[2]
CONFIG = PROJECT / "deploy" / "dagster.postgres.yaml"
WINDOW = "2026-11-22-06:00"


def test_the_postgres_config_keeps_the_settings_of_the_project_s_dagster_yaml():
    """Only the storage differs (and `retention`, whose purge settings are dagster.yaml's own business)."""
    embedded = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    postgres = yaml.safe_load(CONFIG.read_text())
    shared = {k: v for k, v in embedded.items() if k not in ("storage", "retention")}
    assert {"concurrency", "run_monitoring", "run_retries", "python_logs"} <= set(shared)
    assert {k: postgres.get(k) for k in shared} == shared
    assert postgres["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


@pytest.fixture
def instance(postgres, tmp_path, monkeypatch):
    """An instance made from deploy/dagster.postgres.yaml, as it is shipped, in a temporary DAGSTER_HOME."""
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text(CONFIG.read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as made:
        yield made


def test_the_instance_loads_on_postgres_with_the_pools_and_the_run_queue(instance, postgres):
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert f"@{postgres.host}:{postgres.port}/{postgres.db_name}" in instance.run_storage.postgres_url
    assert "postgresql+psycopg2://" in instance.run_storage.postgres_url
    config = instance.get_concurrency_config()
    assert (config.pool_config.pool_granularity.value, config.pool_config.default_pool_limit) == ("run", 1)
    assert config.run_queue_config.max_concurrent_runs == 2
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1


def _delta_window(instance, sandbox, state: str, storage: str, monkeypatch) -> dg.ExecuteInProcessResult:
    """The code location's delta job for one window, as `afas-pipeline sync` runs it, with these state and storage."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS or k.startswith("AWS_")}
    env |= {"AFAS_PIPELINE_SANDBOX_URL": sandbox.url, "AFAS_PIPELINE_STATE": state, "AFAS_PIPELINE_STORAGE": storage}
    monkeypatch.setenv("AFAS_PIPELINE_STATE", state)  # a Postgres URL is read through dg.EnvVar at run time
    job = _job(defs, "afas_delta_job", build_resources(env))
    result = job.execute_in_process(partition_key=WINDOW, instance=instance, raise_on_error=False)
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"afas_contacts_changes", "spotler_sync_delta", "mailchimp_afas_write_back", "xelion_address_book_delta"} \
        <= materialized
    return result


def test_the_pipeline_runs_on_the_embedded_default_sqlite_and_local_files(sandbox, tmp_path, monkeypatch):
    """The pair of the next test: the same window on what `make run` uses (an instance from the project's
    dagster.yaml on SQLite, a SQLite state, parquet files on the local disk)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = _delta_window(instance, sandbox, str(tmp_path / "state.db"), str(tmp_path / "storage"), monkeypatch)
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    assert SyncState(str(tmp_path / "state.db")).watermark("spotler", "contact_updates") is not None
    assert (tmp_path / "storage" / "afas_contacts_changes" / f"{WINDOW}.parquet").is_file()
    assert result.run_id


def test_the_pipeline_runs_on_postgres_and_s3_and_its_run_state_and_assets_are_there(instance, postgres,
                                                                                      postgres_state, s3_bucket,
                                                                                      s3_server, sandbox, monkeypatch):
    """Everything several machines share: the Dagster instance and the sync state on Postgres, the assets on the
    S3-compatible server. Each is read back from the server itself, not through the pipeline's own code."""
    result = _delta_window(instance, sandbox, postgres_state, f"s3://{s3_bucket}/assets", monkeypatch)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}

    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, partition FROM runs WHERE run_id = %s", (result.run_id,))
        assert cur.fetchall() == [("SUCCESS", WINDOW)]
        cur.execute("SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = "
                    "'ASSET_MATERIALIZATION'", (result.run_id,))
        stored = {dg.AssetKey.from_db_string(key).to_user_string() for (key,) in cur.fetchall()}
    assert stored == materialized
    latest = instance.get_latest_materialization_event(dg.AssetKey("afas_contacts_changes"))
    assert latest.run_id == result.run_id

    # The sync state: in its own database, with the window's watermark.
    state_db = postgres_state.rsplit("/", 1)[1]
    with psycopg2.connect(host=postgres.host, port=postgres.port, dbname=state_db, user=postgres.username,
                          password=postgres.password) as conn, conn.cursor() as cur:
        cur.execute("SELECT destination, feed FROM watermarks")
        assert ("spotler", "contact_updates") in set(cur.fetchall())

    # The assets: objects in the bucket, one per partition, readable as parquet by any tool.
    objects = s3_server.objects(s3_bucket)
    key = f"assets/afas_contacts_changes/{WINDOW}.parquet"
    assert key in objects
    assert "ContactId" in pd.read_parquet(io.BytesIO(objects[key])).columns
    assert {k.split("/")[1] for k in objects} >= {"afas_contacts_changes", "spotler_audience_delta"}
