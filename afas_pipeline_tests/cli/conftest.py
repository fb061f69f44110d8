"""The command line run in this process (`main`), against the session sandbox, as a cron user would run it."""

from __future__ import annotations

import pytest

from afas_pipeline.resources import SETTINGS
from afas_pipeline_tests.suite_settings import SUITE_ENV


@pytest.fixture
def cli_env(monkeypatch, tmp_path, sandbox):
    """No production setting; the session sandbox; a Dagster home, sync state and asset storage of the test's own.
    Returns the monkeypatch, to set more."""
    for name in set(SETTINGS) - set(SUITE_ENV):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("AFAS_PIPELINE_SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("AFAS_PIPELINE_STATE", str(tmp_path / "state" / "sync_state.sqlite"))
    monkeypatch.setenv("AFAS_PIPELINE_STORAGE", str(tmp_path / "storage"))
    return monkeypatch
