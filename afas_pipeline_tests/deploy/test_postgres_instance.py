"""deploy/dagster.postgres.yaml against a real Postgres (conftest.py): the instance loads and validates, and a run of
the code location's delta job lands in Postgres with its materializations."""

import os
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from afas_pipeline.cli import _job
from afas_pipeline.definitions import defs
from afas_pipeline.resources import SETTINGS, build_resources

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


def test_a_delta_window_runs_and_its_run_and_materializations_are_in_postgres(instance, postgres, sandbox, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env |= {"AFAS_PIPELINE_SANDBOX_URL": sandbox.url, "AFAS_PIPELINE_STATE": str(tmp_path / "state.db"),
            "AFAS_PIPELINE_STORAGE": str(tmp_path / "storage")}
    job = _job(defs, "afas_delta_job", build_resources(env))
    result = job.execute_in_process(partition_key=WINDOW, instance=instance, raise_on_error=False)
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"afas_contacts_changes", "spotler_sync_delta", "mailchimp_afas_write_back"} <= materialized

    # Read back from the database itself, not through the instance's caches.
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, partition FROM runs WHERE run_id = %s", (result.run_id,))
        assert cur.fetchall() == [("SUCCESS", WINDOW)]
        cur.execute("SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = "
                    "'ASSET_MATERIALIZATION'", (result.run_id,))
        stored = {dg.AssetKey.from_db_string(key).to_user_string() for (key,) in cur.fetchall()}
    assert stored == materialized
    latest = instance.get_latest_materialization_event(dg.AssetKey("afas_contacts_changes"))
    assert latest.run_id == result.run_id
