"""A failed run of the real delta job (AFAS down) reaches the on-call engineer through
`afas_pipeline_run_failure_alert`, driven the way the daemon drives it: ticks over the instance's event log,
with a cursor."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg
import httpx
import pytest

from afas_pipeline import definitions
from afas_pipeline.alerts import RUN_FAILURE_SENSOR
from afas_pipeline.xelion.client import XelionClient
from afas_pipeline_tests.alerts.conftest import RECIPIENTS, SENDER, alerts, closed_port
from afas_pipeline_tests.conftest import reset_sandbox
from afas_pipeline_tests.world import WORLD_CONTACTS, SyncWorld

SENSOR = definitions.defs.resolve_sensor_def(RUN_FAILURE_SENSOR)


@dataclass
class FailedRun:
    instance: dg.DagsterInstance
    cursor_before: str  # the sensor's cursor from a tick before the run failed
    run_id: str
    partition: str
    personal: set[str]  # names and addresses in the seeded AFAS data


def _last_closed_window() -> str:
    now = datetime.now(timezone.utc)
    end = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return (end - timedelta(minutes=15)).strftime("%Y-%m-%d-%H:%M")


def _personal(world: SyncWorld) -> set[str]:
    values = set()
    for table, columns in (("persons", ("FirstName", "LastName", "MailWork", "MailPrivate")),
                           ("organisations", ("Name", "MailWork")), ("contacts", ("MailWork",))):
        for record in world.afas("GET", f"/records/{table}"):
            values.update(str(record[c]) for c in columns if record.get(c) and len(str(record[c])) >= 5)
    return values


def _tick(instance, cursor, resource, log_to: logging.Handler | None = None):
    """One evaluation as the daemon makes it; the sensor's log (shown with the tick in the UI) also goes to
    `log_to`."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": resource})
    if log_to is not None:
        context.log.addHandler(log_to)
    return SENSOR.evaluate_tick(context)


def _alert_lines(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level and "alert" in r.getMessage()]


@pytest.fixture(scope="module")
def failed_run(sandbox, tmp_path_factory) -> FailedRun:
    """One run of `afas_delta_job` for the last closed window while AFAS answers every call with 503."""
    reset_sandbox(sandbox)
    httpx.post(f"{sandbox.afas_admin_url}/dataset/generate", json={"contacts": WORLD_CONTACTS, "seed": 7},
               timeout=60).raise_for_status()
    world = SyncWorld(sandbox, tmp_path_factory.mktemp("failed_run"))
    xelion = XelionClient(base_url=sandbox.xelion_base_url, user_name=sandbox.xelion_user,
                          password=sandbox.xelion_password, backoff_initial_s=0.01, backoff_max_s=0.05)
    job = dg.Definitions(assets=definitions.assets, jobs=definitions.jobs, resources={**world.resources(), "xelion": xelion},
                         executor=dg.in_process_executor).resolve_job_def("afas_delta_job")
    before = _tick(world.instance, None, alerts())  # the sensor was running before the run failed
    partition = _last_closed_window()
    # Retry-After 0: the client's retries (6 attempts) take no time.
    world.afas("PUT", "/faults", json={"error_503_rate": 1.0, "retry_after": 0})
    try:
        result = job.execute_in_process(partition_key=partition, instance=world.instance, raise_on_error=False)
    finally:
        world.afas("PUT", "/faults", json={})
    assert not result.success
    yield FailedRun(world.instance, before.cursor, result.run_id, partition, _personal(world))
    reset_sandbox(sandbox)


def test_a_failed_delta_window_sends_one_message_to_each_target(failed_run, webhook, smtp):
    target = alerts(webhook=webhook, smtp=smtp)

    tick = _tick(failed_run.instance, failed_run.cursor_before, target)
    _tick(failed_run.instance, tick.cursor, target)  # the next tick finds nothing new

    [(_, body)] = webhook.received
    run_url = f"http://127.0.0.1:3000/runs/{failed_run.run_id}"
    assert body["job"] == "afas_delta_job" and body["partition"] == failed_run.partition
    assert body["run_id"] == failed_run.run_id and body["run_url"] == run_url
    steps = {s["step"]: s["error"] for s in body["steps"]}
    assert {"afas_contacts_changes", "afas_persons_changes", "afas_organisations_changes"} <= set(steps)
    assert steps["afas_contacts_changes"].startswith("AfasUnavailable: ")
    assert body["text"].startswith(f"afas-pipeline: afas_delta_job failed for partition {failed_run.partition}: step ")
    assert body["text"].endswith(f" | {run_url}") and "\n" not in body["text"]
    print("\nwebhook text:", body["text"])

    [(sender, recipients, message)] = smtp.messages
    assert (sender, recipients) == (SENDER, RECIPIENTS)
    assert message["Subject"] == f"afas-pipeline: afas_delta_job failed for partition {failed_run.partition}"
    content = message.get_content()
    assert f"Open the run: {run_url}" in content and "afas_contacts_changes: AfasUnavailable: " in content
    print("e-mail:", message["Subject"], "\n" + content)

    # Nothing from the data: no address, no name.
    sent = json.dumps(body) + message["Subject"] + content
    assert "@" not in sent
    assert not [value for value in failed_run.personal if value in sent]


def test_without_a_target_nothing_is_sent_and_a_line_says_so(failed_run, webhook, smtp, caplog):
    tick = _tick(failed_run.instance, failed_run.cursor_before, alerts(), caplog.handler)

    assert webhook.received == [] and smtp.messages == []
    lines = _alert_lines(caplog, logging.INFO)
    assert len(lines) == 1
    assert lines[0].startswith("no alert target is set (AFAS_PIPELINE_ALERT_WEBHOOK_URL, AFAS_PIPELINE_ALERT_SMTP_HOST): "
                               "not sent: afas-pipeline: afas_delta_job failed")
    assert tick.cursor != failed_run.cursor_before  # the failure was handled, not left for every next tick


def test_a_receiver_that_is_down_costs_one_line_and_the_other_still_gets_it(failed_run, smtp, caplog):
    port = closed_port()
    target = alerts(smtp=smtp, webhook_url=f"http://127.0.0.1:{port}/hook")

    tick = _tick(failed_run.instance, failed_run.cursor_before, target, caplog.handler)

    assert tick.cursor != failed_run.cursor_before
    assert len(smtp.messages) == 1
    warnings = _alert_lines(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert f"not delivered to the webhook at http://127.0.0.1:{port} after 3 attempt(s): ConnectError" in warnings[0]
