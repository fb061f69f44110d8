"""Freshness: a 15-minute asset that has not succeeded for 45 minutes fails its `freshness_check`, and
`afas_pipeline_freshness_alert` says so once per episode and once when it is over. The checks are Dagster's own,
run when `afas_pipeline_freshness_checks` asks for them; the clock is Dagster's, frozen at each step (no sleeping)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from afas_pipeline import definitions
from afas_pipeline.alerts import FRESHNESS_ALERT_SENSOR, FRESHNESS_CHECKS_SENSOR
from afas_pipeline_tests.alerts.conftest import alerts

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
LATE = "spotler_sync_delta"
KEYS = [spec.key for c in definitions.checks for spec in c.check_specs]
FIFTEEN_MINUTE = sorted({k.asset_key.to_user_string() for k in KEYS})


class Clock:
    """The instance and the three moving parts, each step at a frozen moment T0 + minutes."""

    def __init__(self, target, log_to: logging.Handler | None = None) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.target = target
        self.log_to = log_to  # also receives the sensors' log lines
        self.check_sensor = definitions.defs.resolve_sensor_def(FRESHNESS_CHECKS_SENSOR)
        self.alert_sensor = definitions.defs.resolve_sensor_def(FRESHNESS_ALERT_SENSOR)
        self.cursors: dict[str, str | None] = {}

    def materialised(self, minutes: int, assets: list[str], window: str) -> None:
        """`assets` succeeded for `window` at T0 + minutes."""
        with freeze_time(T0 + timedelta(minutes=minutes)):
            for name in assets:
                self.instance.report_runless_asset_event(dg.AssetMaterialization(name, partition=window))

    def evaluate(self, minutes: int) -> set[str]:
        """One tick of the freshness check sensor, the check run it asks for (as the daemon would launch it), then
        one tick of the alert sensor. Returns the assets whose check ran."""
        ran: set[str] = set()
        with freeze_time(T0 + timedelta(minutes=minutes)):
            tick = self._tick(self.check_sensor)
            for request in tick.run_requests:
                result = dg.materialize([*(dg.AssetSpec(n) for n in FIFTEEN_MINUTE), *definitions.checks],
                                        selection=dg.AssetSelection.checks(*request.asset_check_keys),
                                        instance=self.instance)
                ran |= {e.asset_key.to_user_string() for e in result.get_asset_check_evaluations()}
            self._tick(self.alert_sensor, {"alerts": self.target})
        return ran

    def _tick(self, sensor: dg.SensorDefinition, resources: dict | None = None):
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(sensor.name),
                                          definitions=definitions.defs, sensor_name=sensor.name, resources=resources)
        if self.log_to is not None:
            context.log.addHandler(self.log_to)
        tick = sensor.evaluate_tick(context)
        self.cursors[sensor.name] = tick.cursor
        return tick


@pytest.fixture
def clock(webhook, smtp):
    return Clock(alerts(webhook=webhook, smtp=smtp))


def test_an_asset_without_success_for_45_minutes_alerts_once_and_once_more_when_it_recovers(clock, webhook, smtp):
    clock.materialised(0, FIFTEEN_MINUTE, "2026-12-01-08:45")
    assert clock.evaluate(1) == set(FIFTEEN_MINUTE)  # never checked before: all of them, all fresh
    assert webhook.received == []

    # 46 minutes on, every window but the late asset's succeeded since.
    clock.materialised(44, [n for n in FIFTEEN_MINUTE if n != LATE], "2026-12-01-09:30")
    assert LATE in clock.evaluate(46)
    [(_, overdue)] = webhook.received
    assert overdue["kind"] == "freshness_overdue"
    assert overdue["text"] == (
        "afas-pipeline: 1 15-minute asset has not succeeded for 45 minutes: spotler_sync_delta (last success "
        "2026-12-01 09:00 UTC, window 2026-12-01-08:45) | http://127.0.0.1:3000/assets/spotler_sync_delta")
    assert [a["asset"] for a in overdue["assets"]] == [LATE]
    print("\nwebhook text:", overdue["text"])

    # Still overdue on the next ticks: no second alert (nor a new check run until the asset materialises).
    assert clock.evaluate(50) == set()
    assert len(webhook.received) == 1 and len(smtp.messages) == 1

    # The window succeeds: its check runs again, passes, and the episode ends with one message.
    clock.materialised(55, [LATE], "2026-12-01-09:45")
    assert clock.evaluate(56) == {LATE}
    assert [body["kind"] for _, body in webhook.received] == ["freshness_overdue", "freshness_recovered"]
    assert webhook.received[1][1]["text"] == (
        "afas-pipeline: 1 15-minute asset is up to date again: spotler_sync_delta | "
        "http://127.0.0.1:3000/assets/spotler_sync_delta")
    assert [m["Subject"] for _, _, m in smtp.messages] == [
        "afas-pipeline: 1 15-minute asset has not succeeded for 45 minutes",
        "afas-pipeline: 1 15-minute asset is up to date again"]
    clock.evaluate(57)
    assert len(webhook.received) == 2


def test_a_target_that_was_down_hears_of_the_episode_on_a_later_tick_the_other_only_once(clock, webhook, smtp):
    clock.materialised(0, FIFTEEN_MINUTE, "2026-12-01-08:45")
    clock.evaluate(1)

    webhook.answers = [503, 503, 503]  # every attempt of the next tick
    clock.evaluate(46)  # nothing succeeded since T0 (AFAS down, say): every 15-minute asset is overdue
    assert webhook.received == [] and len(smtp.messages) == 1
    clock.evaluate(47)

    [(_, body)] = webhook.received
    first_three = ", ".join(FIFTEEN_MINUTE[:3])
    assert body["text"] == (
        f"afas-pipeline: {len(FIFTEEN_MINUTE)} 15-minute assets have not succeeded for 45 minutes: {first_three} "
        f"(+{len(FIFTEEN_MINUTE) - 3} more) (last success 2026-12-01 09:00 UTC, window 2026-12-01-08:45) | "
        f"http://127.0.0.1:3000/assets/{FIFTEEN_MINUTE[0]}")
    assert len(body["assets"]) == len(FIFTEEN_MINUTE)
    assert len(smtp.messages) == 1
    content = smtp.messages[0][2].get_content()
    assert all(f"  {name}: last success 2026-12-01 09:00 UTC" in content for name in FIFTEEN_MINUTE)


def test_without_a_target_an_episode_is_one_log_line_not_one_per_tick(webhook, smtp, caplog):
    clock = Clock(alerts(), caplog.handler)
    clock.materialised(0, FIFTEEN_MINUTE, "2026-12-01-08:45")
    clock.evaluate(1)
    clock.materialised(44, [n for n in FIFTEEN_MINUTE if n != LATE], "2026-12-01-09:30")
    clock.evaluate(46)
    clock.evaluate(47)
    clock.evaluate(48)

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("no alert target is set")]
    assert len(lines) == 1
    assert lines[0].endswith("not sent: afas-pipeline: 1 15-minute asset has not succeeded for 45 minutes: "
                             "spotler_sync_delta (last success 2026-12-01 09:00 UTC, window 2026-12-01-08:45) | "
                             "http://127.0.0.1:3000/assets/spotler_sync_delta")
    assert webhook.received == [] and smtp.messages == []


def test_every_15_minute_asset_has_a_freshness_check_that_its_delta_run_evaluates():
    graph = definitions.defs.resolve_asset_graph()
    fifteen = {k.to_user_string() for k in graph.get_all_asset_keys()
               if getattr(graph.get(k).partitions_def, "cron_schedule", None) == "*/15 * * * *"}
    assert fifteen == set(FIFTEEN_MINUTE) and {"spotler_afas_write_back", "afas_contacts_changes"} <= fifteen

    def freshness(job: str) -> set[str]:
        keys = definitions.defs.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys
        return {k.asset_key.to_user_string() for k in keys if k.name == "freshness_check"}

    # The delta job checks freshness after its assets: a window that succeeds passes them.
    assert freshness("afas_delta_job") == fifteen and freshness("afas_full_job") == set()
    for name in ("afas_pipeline_run_failure_alert", FRESHNESS_CHECKS_SENSOR, FRESHNESS_ALERT_SENSOR):
        assert definitions.defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
