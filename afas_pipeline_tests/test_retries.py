"""Transient failures retry by themselves, bounded and visible in the run's log: a step whose API stays unavailable
after the client's own retries is run again by Dagster (AFAS_PIPELINE_STEP_RETRIES, afas_pipeline/retries.py);
anything else fails at once; the clients' retry lines are in the run's log (`python_logs` in dagster.yaml).

The suite runs with AFAS_PIPELINE_STEP_RETRIES=0 (conftest.py); these tests build the assets with retries on and
no delay."""

import logging
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import httpx
import pytest

from afas_pipeline.afas.assets import build_changes_asset
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.errors import AfasUnavailable
from afas_pipeline.afas.sources import default_sources
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_pipeline.lib.settings import SettingError
from afas_pipeline.retries import retry_transient_failures, step_retry_policy

PROJECT = Path(__file__).resolve().parents[1]
WINDOW = "2026-11-22-06:00"
FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02}


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


@pytest.fixture
def retries_on(monkeypatch):
    """Two step retries without waiting, for the assets built in the test."""
    monkeypatch.setenv("AFAS_PIPELINE_STEP_RETRIES", "2")
    monkeypatch.setenv("AFAS_PIPELINE_STEP_RETRY_DELAY_S", "0")


class FlakyAfas:
    """A real HTTP server on localhost in front of the sandbox's AFAS: the first `failures` requests get a 503 (as
    AFAS in maintenance answers), the others are passed on; None: every request gets a 503."""

    def __init__(self, target: str, failures: int | None):
        self.left, self.answered_503 = failures, 0
        lock, outer, upstream = threading.Lock(), self, httpx.Client(base_url=target, timeout=60)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with lock:
                    fail = outer.left is None or outer.left > 0
                    if fail:
                        outer.left = None if outer.left is None else outer.left - 1
                        outer.answered_503 += 1
                if fail:
                    self._answer(503, b'{"error": "maintenance"}')
                    return
                answer = upstream.get(self.path, headers={"Authorization": self.headers["Authorization"]})
                self._answer(answer.status_code, answer.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._upstream = upstream

    def __enter__(self) -> "FlakyAfas":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._upstream.close()


def _contact_changes() -> dg.AssetsDefinition:
    """`afas_contacts_changes`, built with the step retries the environment asks for now."""
    return build_changes_asset("contacts", default_sources()["contacts"])


def _materialize(asset, afas: AfasClient, tmp_path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], partition_key=WINDOW, instance=instance, raise_on_error=False,
                          resources={"afas": afas, "io_manager": ParquetIOManager(base_dir=str(tmp_path / "storage"))})


def _log(instance: dg.DagsterInstance, result) -> list[str]:
    """The run's log as the UI shows it: its lines, step events included."""
    return [record.user_message for record in instance.all_logs(result.run_id)]


def _events(result, event_type: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == event_type]


def _innermost(error):
    while error.cause is not None:
        error = error.cause
    return error


def test_a_step_meeting_an_outage_that_heals_is_retried_and_the_run_succeeds(sandbox, afas_sandbox_clean, retries_on,
                                                                           instance, tmp_path):
    # The client tries each call twice: two 503s end its retries, the step's first attempt fails.
    with FlakyAfas(sandbox.url, failures=2) as afas:
        client = AfasClient(base_url=afas.url + "/afas/ProfitRestServices", token=sandbox.afas_token, max_attempts=2,
                            **FAST)
        result = _materialize(_contact_changes(), client, tmp_path, instance)
    assert result.success and afas.answered_503 == 2
    (up_for_retry,) = _events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    cause = _innermost(up_for_retry.event_specific_data.error)
    assert cause.cls_name == "AfasUnavailable"
    assert "AFAS stayed unavailable (503 on " in cause.message and "\n" not in cause.message.strip()
    assert len(_events(result, dg.DagsterEventType.STEP_RESTARTED)) == 1
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == [
        "afas_contacts_changes"]
    # The step's own line says what happened and what comes next, in the run's log.
    lines = _log(instance, result)
    assert any(line.startswith("afas_contacts_changes: GET metainfo/get/Sync_Contacts: AFAS stayed unavailable (503")
               and line.endswith("; step retry 1 of 2 in 0s") for line in lines), lines


def test_the_step_retries_are_bounded(sandbox, afas_sandbox_clean, retries_on, instance, tmp_path):
    with FlakyAfas(sandbox.url, failures=None) as afas:
        client = AfasClient(base_url=afas.url + "/afas/ProfitRestServices", token=sandbox.afas_token, max_attempts=2,
                            **FAST)
        result = _materialize(_contact_changes(), client, tmp_path, instance)
    assert not result.success
    assert afas.answered_503 == 3 * 2  # the first attempt and two retries, each with the client's two tries
    assert len(_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 2
    (failure,) = result.get_step_failure_events()
    # The step fails with the client's own error (under Dagster's usual wrapper), not "Exceeded max_retries".
    error = failure.step_failure_data.error
    assert not error.message.startswith("Exceeded max_retries") and _innermost(error).cls_name == "AfasUnavailable"
    assert any(line.endswith("; no step retry left (2 done)") for line in _log(instance, result))


def test_a_non_transient_error_is_not_retried(sandbox, afas_sandbox_clean, retries_on, instance, tmp_path):
    client = AfasClient(base_url=sandbox.afas_base_url, token="0" * 64, **FAST)  # a token AFAS does not know
    result = _materialize(_contact_changes(), client, tmp_path, instance)
    assert not result.success
    assert _events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    (failure,) = result.get_step_failure_events()
    assert _innermost(failure.step_failure_data.error).cls_name == "AfasAuthError"


def test_a_step_that_returns_its_value_retries_too(retries_on):
    attempts = []

    @dg.asset
    @retry_transient_failures
    def flaky(context: dg.AssetExecutionContext) -> int:
        attempts.append(context.retry_number)
        if len(attempts) == 1:
            raise AfasUnavailable("GetConnector 'Sync_Contacts': AFAS stayed unavailable (503)", status_code=503)
        if len(attempts) == 2:
            raise KeyError("a bug")  # not transient: no more attempts
        return 1

    result = dg.materialize([flaky], raise_on_error=False)
    assert attempts == [0, 1]
    assert len(_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 1
    assert _innermost(result.get_step_failure_events()[0].step_failure_data.error).cls_name == "KeyError"


def test_with_no_step_retries_the_function_is_left_as_it_is(monkeypatch):
    monkeypatch.setenv("AFAS_PIPELINE_STEP_RETRIES", "0")

    def compute(context):
        return context

    assert retry_transient_failures(compute) is compute


@pytest.mark.parametrize("env,says", [
    ({"AFAS_PIPELINE_STEP_RETRIES": "three"},
     "AFAS_PIPELINE_STEP_RETRIES='three' is not a whole number: use 0 to 10, e.g. 3"),
    ({"AFAS_PIPELINE_STEP_RETRIES": "11"}, "AFAS_PIPELINE_STEP_RETRIES=11 is out of range: use 0 to 10, e.g. 3"),
    ({"AFAS_PIPELINE_STEP_RETRIES": "-1"}, "AFAS_PIPELINE_STEP_RETRIES=-1 is out of range"),
    ({"AFAS_PIPELINE_STEP_RETRY_DELAY_S": "1m"},
     "AFAS_PIPELINE_STEP_RETRY_DELAY_S='1m' is not a number: use a number of seconds from 0 to 3600, e.g. 60"),
    ({"AFAS_PIPELINE_STEP_RETRY_DELAY_S": "-5"}, "AFAS_PIPELINE_STEP_RETRY_DELAY_S=-5 is out of range"),
    ({"AFAS_PIPELINE_STEP_RETRY_DELAY_S": "nan"}, "AFAS_PIPELINE_STEP_RETRY_DELAY_S=nan is out of range"),
])
def test_a_bad_retry_setting_is_one_line_naming_it(env, says):
    with pytest.raises(SettingError) as raised:
        step_retry_policy(env)
    assert str(raised.value).startswith(says) and "\n" not in str(raised.value)


def test_the_default_is_three_retries_growing_from_a_minute_with_jitter():
    policy = step_retry_policy({})
    assert (policy.max_retries, policy.delay) == (3, 60.0)
    waits = [[policy.calculate_delay(attempt) for attempt in (1, 2, 3)] for _ in range(200)]
    assert all(0 <= a <= 120 <= b <= 240 and 360 <= c <= 480 for a, b, c in waits)
    assert len({round(a) for a, _, _ in waits}) > 1  # jitter: not every run waits the same


# --- the clients' own lines in the run's log ------------------------------------------------------------------


@pytest.fixture
def project_instance(tmp_path):
    """An instance made from the project's dagster.yaml; the level it sets on the `afas_pipeline` logger is put
    back afterwards."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    logger = logging.getLogger("afas_pipeline")
    level = logger.level
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance
    logger.setLevel(level)


def test_the_clients_retry_lines_are_in_the_run_log(sandbox, afas_sandbox_clean, project_instance, tmp_path):
    # One GetConnector call answered 500 once (AFAS's passing trouble): the client repeats it and logs why.
    httpx.put(f"{sandbox.afas_admin_url}/faults", json={"refuse": [{"request": "GET connectors/", "times": 1}]},
              timeout=30).raise_for_status()
    client = AfasClient(base_url=sandbox.afas_base_url, token=sandbox.afas_token, **FAST)
    result = _materialize(_contact_changes(), client, tmp_path, project_instance)
    assert result.success
    records = project_instance.all_logs(result.run_id)
    retries = [r for r in records if r.user_message.startswith("AFAS ") and ": 500 on " in r.user_message
               and "; retry 1 of " in r.user_message]
    assert len(retries) == 1 and retries[0].level == logging.WARNING and retries[0].step_key == "afas_contacts_changes"
    # The client's summary of the read (INFO) is there too.
    assert any(r.user_message.startswith("read ") and " retries, " in r.user_message for r in records)


def test_every_step_that_talks_to_an_api_retries(retries_on):
    from afas_pipeline.afas.assets import build_afas_assets
    from afas_pipeline.afas.sources import MAPPINGS_DIR
    from afas_pipeline.chain import build_destination_assets
    from afas_pipeline.chain.component import declared_destinations
    from afas_pipeline.xelion.assets import build_xelion_assets
    from afas_pipeline.xelion.config import load_settings

    sources = default_sources()
    assets = [*build_afas_assets(sources),
              *[a for d in declared_destinations() for a in build_destination_assets(d.destination(), sources)],
              *build_xelion_assets(load_settings(MAPPINGS_DIR / "xelion.yaml", sources=sources, env={}), sources)]
    retrying = {key.to_user_string(): hasattr(a.op.compute_fn.decorated_fn, "__wrapped__") for a in assets for key in a.keys}
    # The UI's link to each asset's source still points at the asset's own module, not at afas_pipeline/retries.py.
    for asset in dg.with_source_code_references(assets):
        for spec in asset.specs:
            files = [r.file_path for r in spec.metadata["dagster/code_references"].code_references]
            assert files[-1].endswith(("/afas/assets.py", "/chain/sync.py", "/chain/feedback.py",
                                       "/chain/mailing_history.py", "/xelion/assets.py")), (spec.key, files)
    # The unpartitioned summaries only read the sync state. `<d>_sync` retries too: it reads the opt-outs again
    # before it sends (C1, afas_pipeline_tests/spotler/test_outages.py).
    assert sorted(name for name, on in retrying.items() if not on) == [
        "mailchimp_rejected", "spotler_rejected", "xelion_phone_index"]
    assert {"afas_contacts", "afas_contacts_changes", "spotler_sync_plan_delta", "spotler_sync", "spotler_sync_delta",
            "mailchimp_sync", "mailchimp_sync_delta", "spotler_afas_write_back", "mailchimp_mailing_history",
            "xelion_address_book_delta", "xelion_call_reports"} <= {name for name, on in retrying.items() if on}
