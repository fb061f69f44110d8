"""The alert targets against real receivers on localhost, and their settings: one line per problem, no secret."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from afas_pipeline.alerts.messages import run_failure_alert, FailedStep
from afas_pipeline.alerts.targets import EMAIL, WEBHOOK, alert_problems, alerts_resource
from afas_pipeline.resources import ConfigurationError, check_settings
from afas_pipeline_tests.alerts.conftest import (
    RECIPIENTS, SECRET_PATH, SENDER, SMTP_PASSWORD, SMTP_USER, alerts, closed_port,
)

ALERT = run_failure_alert(job="afas_delta_job", run_id="r-1", partition="2026-12-01-10:00",
                          steps=[FailedStep("afas_contacts_changes", "AfasUnavailable: AFAS answered 503")],
                          run_error=None, run_url="http://127.0.0.1:3000/runs/r-1")
LOG = logging.getLogger("afas_pipeline_tests.alerts")


def _lines(caplog, level=logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name and r.levelno >= level]


def test_an_alert_reaches_the_webhook_and_every_recipient_once(webhook, smtp):
    delivered = alerts(webhook=webhook, smtp=smtp).send(ALERT, LOG)

    assert delivered == [WEBHOOK, EMAIL]
    [(path, body)] = webhook.received
    assert path == SECRET_PATH
    assert body["text"] == ALERT.text and body["job"] == "afas_delta_job" and body["kind"] == "run_failure"
    [(sender, recipients, message)] = smtp.messages
    assert (sender, recipients) == (SENDER, RECIPIENTS)
    assert message["Subject"] == "afas-pipeline: afas_delta_job failed for partition 2026-12-01-10:00"
    assert "afas_contacts_changes: AfasUnavailable: AFAS answered 503" in message.get_content()


def test_starttls_is_negotiated_before_the_login(smtp_starttls):
    resource = alerts(smtp=smtp_starttls, smtp_security="starttls", smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD)

    assert resource.send(ALERT, LOG) == [EMAIL]
    assert smtp_starttls.logins == [(SMTP_USER, True)]
    assert len(smtp_starttls.messages) == 1


def test_a_wrong_smtp_password_is_one_line_without_the_password(smtp_starttls, caplog):
    resource = alerts(smtp=smtp_starttls, smtp_security="starttls", smtp_user=SMTP_USER, smtp_password="wrong-pass-1")

    assert resource.send(ALERT, LOG) == []
    assert smtp_starttls.logins and all(over_tls for _, over_tls in smtp_starttls.logins)
    # Refused credentials are not worth another attempt.
    [line] = _lines(caplog)
    assert line == (f"alert '{ALERT.subject}' not delivered to the SMTP server 127.0.0.1:{smtp_starttls.port} after "
                    "1 attempt(s): SMTPAuthenticationError: 535 5.7.8 Authentication credentials invalid")


def test_receivers_that_are_down_cost_one_line_each_and_raise_nothing(caplog):
    port = closed_port()
    down = alerts(webhook_url=f"http://127.0.0.1:{port}{SECRET_PATH}", smtp_host="127.0.0.1", smtp_port=port,
                  smtp_security="none", mail_from=SENDER, mail_to=RECIPIENTS)

    assert down.send(ALERT, LOG) == []

    lines = _lines(caplog)
    assert lines == [
        f"alert '{ALERT.subject}' not delivered to the webhook at http://127.0.0.1:{port} after 3 attempt(s): "
        "ConnectError: [Errno 111] Connection refused",
        f"alert '{ALERT.subject}' not delivered to the SMTP server 127.0.0.1:{port} after 3 attempt(s): "
        "ConnectionRefusedError: [Errno 111] Connection refused",
    ]


def test_a_webhook_that_answers_503_is_tried_again_and_a_400_is_not(webhook, caplog):
    webhook.answers = [503, 503]
    assert alerts(webhook=webhook).send(ALERT, LOG) == [WEBHOOK]
    assert len(webhook.received) == 1

    webhook.answers = [400, 200]
    assert alerts(webhook=webhook).send(ALERT, LOG) == []
    assert len(webhook.received) == 1 and webhook.answers == [200]
    [line] = _lines(caplog)
    assert line.endswith("after 1 attempt(s): WebhookRefused: the webhook answered 400")


def test_no_log_line_shows_the_webhook_s_secret_path(webhook, caplog):
    caplog.set_level(logging.DEBUG)
    webhook.answers = [500, 500, 500]

    alerts(webhook=webhook).send(ALERT, LOG)
    alerts(webhook=webhook).send(ALERT, LOG)

    assert any(r.name == "httpx" for r in caplog.records)  # httpx did log its requests
    assert not [r.getMessage() for r in caplog.records if "s3cr3t" in r.getMessage()]


# --- settings ---------------------------------------------------------------------------------------------------

SMTP = {"AFAS_PIPELINE_ALERT_SMTP_HOST": "smtp.example.com", "AFAS_PIPELINE_ALERT_FROM": SENDER,
        "AFAS_PIPELINE_ALERT_TO": ",".join(RECIPIENTS)}


def test_an_internal_relay_s_address_is_accepted():
    assert list(alert_problems({**SMTP, "AFAS_PIPELINE_ALERT_TO": "ops@mailhost, oncall@example.com"})) == []


def test_no_alert_setting_means_no_target_and_no_problem():
    assert list(alert_problems({})) == []
    resource = alerts_resource({})
    assert resource.targets() == [] and resource.ui_url == "http://127.0.0.1:3000"


def test_secrets_reach_the_resource_as_environment_variables_only():
    env = {**SMTP, "AFAS_PIPELINE_ALERT_WEBHOOK_URL": "https://hooks.example.com" + SECRET_PATH,
           "AFAS_PIPELINE_ALERT_SMTP_USER": SMTP_USER, "AFAS_PIPELINE_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
           "AFAS_PIPELINE_UI_URL": "https://dagster.example.com"}
    assert list(alert_problems(env)) == []

    config = alerts_resource(env).get_resource_definition().config_schema.default_value
    # What the UI shows of the resource: the variables' names, not their values.
    assert "s3cr3t" not in str(config) and SMTP_PASSWORD not in str(config)
    resource = alerts_resource(env)
    assert isinstance(resource.webhook_url, dg.EnvVar) and isinstance(resource.smtp_password, dg.EnvVar)
    assert (resource.smtp_host, resource.smtp_port, resource.smtp_security) == ("smtp.example.com", 587, "starttls")
    assert resource.mail_to == RECIPIENTS and resource.ui_url == "https://dagster.example.com"


@pytest.mark.parametrize(("env", "says"), [
    ({"AFAS_PIPELINE_ALERT_WEBHOOK_URL": "http://hooks.example.com" + SECRET_PATH},
     "AFAS_PIPELINE_ALERT_WEBHOOK_URL (http://hooks.example.com) would carry the alerts and its own secret path "
     "unencrypted over plain http: use https"),
    ({"AFAS_PIPELINE_ALERT_WEBHOOK_URL": "hooks.example.com" + SECRET_PATH},
     "AFAS_PIPELINE_ALERT_WEBHOOK_URL ((no host)) is not an http(s) URL"),
    ({**SMTP, "AFAS_PIPELINE_ALERT_SMTP_PORT": "smtp"}, "AFAS_PIPELINE_ALERT_SMTP_PORT 'smtp' is not a port number"),
    ({**SMTP, "AFAS_PIPELINE_ALERT_SMTP_SECURITY": "tls"},
     "AFAS_PIPELINE_ALERT_SMTP_SECURITY is 'tls': set it to starttls (the default), ssl or none"),
    ({**SMTP, "AFAS_PIPELINE_ALERT_SMTP_USER": SMTP_USER},
     "AFAS_PIPELINE_ALERT_SMTP_USER is set but AFAS_PIPELINE_ALERT_SMTP_PASSWORD is not"),
    ({**SMTP, "AFAS_PIPELINE_ALERT_SMTP_USER": SMTP_USER, "AFAS_PIPELINE_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
      "AFAS_PIPELINE_ALERT_SMTP_SECURITY": "none"},
     "AFAS_PIPELINE_ALERT_SMTP_SECURITY is none, so the SMTP password would travel unencrypted to 'smtp.example.com'"),
    ({**SMTP, "AFAS_PIPELINE_ALERT_TO": "oncall@example.com, nobody"},
     "AFAS_PIPELINE_ALERT_TO (address 2) 'nobody' is not an e-mail address"),
    ({"AFAS_PIPELINE_ALERT_SMTP_HOST": "smtp.example.com", "AFAS_PIPELINE_ALERT_FROM": SENDER},
     "AFAS_PIPELINE_ALERT_TO is not set: set the recipients' addresses, separated by commas"),
    ({"AFAS_PIPELINE_ALERT_TO": "oncall@example.com"},
     "AFAS_PIPELINE_ALERT_TO is set but AFAS_PIPELINE_ALERT_SMTP_HOST is not"),
    ({"AFAS_PIPELINE_UI_URL": "dagster:3000"}, "AFAS_PIPELINE_UI_URL (dagster:3000) is not an http(s) URL"),
])
def test_a_setting_that_cannot_work_is_one_line_naming_it(env, says):
    [problem] = alert_problems(env)
    assert problem.startswith(says)
    assert "s3cr3t" not in problem and SMTP_PASSWORD not in problem


def test_alert_settings_are_checked_with_the_others_when_the_code_location_loads(tmp_path):
    with pytest.raises(ConfigurationError) as raised:
        check_settings({"AFAS_PIPELINE_ALERT_SMTP_HOST": "smtp.example.com"})
    assert "AFAS_PIPELINE_ALERT_FROM is not set" in raised.value.problems[0]
    assert "AFAS_PIPELINE_ALERT_TO is not set" in raised.value.problems[1]
