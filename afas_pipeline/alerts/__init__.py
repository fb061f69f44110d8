"""Alerts: a failed run, or a 15-minute asset that has not succeeded for 45 minutes, notifies someone through
an incoming webhook and/or e-mail (`targets`), in words built by `messages`, from the sensors in `sensors`."""

from afas_pipeline.alerts.sensors import (
    FRESHNESS_ALERT_SENSOR, FRESHNESS_CHECKS_SENSOR, RUN_FAILURE_SENSOR, alert_sensors, freshness_checks,
)
from afas_pipeline.alerts.targets import ALERT_SETTINGS, AlertsResource, alert_problems, alerts_resource

__all__ = ["ALERT_SETTINGS", "FRESHNESS_ALERT_SENSOR", "FRESHNESS_CHECKS_SENSOR", "RUN_FAILURE_SENSOR",
           "AlertsResource", "alert_problems", "alert_sensors", "alerts_resource", "freshness_checks"]
