"""Where alerts go: an incoming webhook (POST JSON with `text`), e-mail over SMTP, or both; configured by
environment variables, read once where every resource is chosen (`afas_pipeline/resources.py`).

The webhook URL (a Slack or Teams webhook's path is its secret) and the SMTP password reach the resource
through `dg.EnvVar`, so the UI shows the variable's name, never the value; log lines show the webhook's
scheme and host only. A target that does not answer is tried `attempts` times, then one warning line says
which target failed and why; the other target is still tried and nothing is raised, so one broken target
never stops the sensor that alerts.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterator, Mapping
from typing import Literal
from urllib.parse import urlsplit

import dagster as dg
import httpx
import tenacity
from authlib.common.security import is_secure_transport
from email_validator import EmailNotValidError, validate_email

from afas_pipeline.alerts.messages import Alert
from afas_pipeline.lib.text import printable

WEBHOOK = "webhook"
EMAIL = "e-mail"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
SECURITY = ("starttls", "ssl", "none")
#: Settings that only mean something with AFAS_PIPELINE_ALERT_SMTP_HOST.
SMTP_SETTINGS = ("AFAS_PIPELINE_ALERT_SMTP_PORT", "AFAS_PIPELINE_ALERT_SMTP_USER", "AFAS_PIPELINE_ALERT_SMTP_PASSWORD",
                 "AFAS_PIPELINE_ALERT_SMTP_SECURITY", "AFAS_PIPELINE_ALERT_FROM", "AFAS_PIPELINE_ALERT_TO")

#: The variables read here (README, "Alerts").
ALERT_SETTINGS = ("AFAS_PIPELINE_ALERT_WEBHOOK_URL", "AFAS_PIPELINE_ALERT_SMTP_HOST", *SMTP_SETTINGS,
                  "AFAS_PIPELINE_UI_URL")


class AlertsResource(dg.ConfigurableResource):
    """The alert targets. Without a webhook URL and without an SMTP host there is none: the sensors then
    log that no target is set and send nothing."""

    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    mail_from: str | None = None
    mail_to: list[str] = []
    #: The Dagster UI the alerts link to.
    ui_url: str = DEFAULT_UI_URL
    timeout_s: float = 5.0
    attempts: int = 3
    backoff_s: float = 0.5

    def targets(self) -> list[str]:
        return [name for name, on in ((WEBHOOK, bool(self.webhook_url)), (EMAIL, bool(self.smtp_host))) if on]

    def link(self, path: str) -> str:
        return f"{self.ui_url.rstrip('/')}/{path.lstrip('/')}"

    def send(self, alert: Alert, log: logging.Logger, targets: list[str] | None = None) -> list[str]:
        """Send `alert` to `targets` (default: every configured one); return those it reached. Each target
        that fails costs one warning line in `log`; nothing is raised."""
        delivered = []
        for target in self.targets() if targets is None else targets:
            retrying = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(max(1, self.attempts)),
                wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=10 * self.backoff_s),
                retry=tenacity.retry_if_exception(_transient),
                reraise=True,
            )
            try:
                retrying(self._post if target == WEBHOOK else self._mail, alert)
            except Exception as exc:  # noqa: BLE001 - a broken target must never stop the sensor
                attempts = retrying.statistics.get("attempt_number", 1)
                log.warning(f"alert '{alert.subject}' not delivered to the {self._shown(target)} after "
                            f"{attempts} attempt(s): {self._reason(exc)}")
                continue
            log.info(f"alert '{alert.subject}' sent to the {self._shown(target)}")
            delivered.append(target)
        return delivered

    # -- the two targets --

    def _post(self, alert: Alert) -> None:
        _HIDDEN_URLS.add(str(httpx.URL(self.webhook_url)))
        response = httpx.post(self.webhook_url, json=alert.webhook_payload(), timeout=self.timeout_s)
        if response.status_code >= 300:
            raise WebhookRefused(response.status_code)

    def _mail(self, alert: Alert) -> None:
        message = alert.email(self.mail_from, self.mail_to)
        tls = ssl.create_default_context()
        if self.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(self.smtp_host, self.smtp_port, timeout=self.timeout_s, context=tls)
        else:
            smtp = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_s)
        with smtp:
            if self.smtp_security == "starttls":
                smtp.starttls(context=tls)
            if self.smtp_user:
                smtp.login(self.smtp_user, self.smtp_password or "")
            refused = smtp.send_message(message)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)

    def _shown(self, target: str) -> str:
        if target == WEBHOOK:
            return f"webhook at {_origin(self.webhook_url or '')}"
        return f"SMTP server {printable(self.smtp_host)}:{self.smtp_port}"

    def _reason(self, exc: Exception) -> str:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return f"{type(exc).__name__}: {len(exc.recipients)} recipient(s) refused"
        if isinstance(exc, smtplib.SMTPResponseException):
            detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            text = f"{exc.smtp_code} {detail}"
        else:
            text = str(exc) or "no detail"
        if self.webhook_url:
            text = text.replace(self.webhook_url, _origin(self.webhook_url))
        if self.smtp_password:
            text = text.replace(self.smtp_password, "***")
        return f"{type(exc).__name__}: {printable(' '.join(text.split()))[:200]}"


class WebhookRefused(Exception):
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(f"the webhook answered {status_code}")


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: no connection, a timeout, a 5xx or 429, an SMTP 4xx or a dropped session;
    not a refusal (4xx, bad credentials, an untrusted certificate)."""
    if isinstance(exc, WebhookRefused):
        return exc.status_code >= 500 or exc.status_code == 429
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, (smtplib.SMTPRecipientsRefused, ssl.SSLError)):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError))


def _origin(url: str) -> str:
    """`scheme://host[:port]` of a URL: its path and query may be its secret."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return printable(f"{parts.scheme}://{parts.hostname}{port}") if parts.hostname else "(no host)"
    except ValueError:
        return "(not a URL)"


#: URLs httpx must not write into its request log line (a webhook's path is its secret).
_HIDDEN_URLS: set[str] = set()


class _HideWebhookPath(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and _HIDDEN_URLS:
            record.args = tuple(_origin(str(a)) if isinstance(a, httpx.URL) and str(a) in _HIDDEN_URLS else a
                                for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_HideWebhookPath())


# --- settings -----------------------------------------------------------------------------------------------


def alerts_resource(env: Mapping[str, str]) -> AlertsResource:
    """The `alerts` resource from the environment (checked first by `alert_problems`)."""
    options: dict[str, object] = {"ui_url": _get(env, "AFAS_PIPELINE_UI_URL") or DEFAULT_UI_URL}
    if _get(env, "AFAS_PIPELINE_ALERT_WEBHOOK_URL"):
        options["webhook_url"] = dg.EnvVar("AFAS_PIPELINE_ALERT_WEBHOOK_URL")
    if _get(env, "AFAS_PIPELINE_ALERT_SMTP_HOST"):
        options.update(
            smtp_host=_get(env, "AFAS_PIPELINE_ALERT_SMTP_HOST"),
            smtp_port=int(_get(env, "AFAS_PIPELINE_ALERT_SMTP_PORT") or 587),
            smtp_security=_get(env, "AFAS_PIPELINE_ALERT_SMTP_SECURITY") or "starttls",
            mail_from=_get(env, "AFAS_PIPELINE_ALERT_FROM"),
            mail_to=_recipients(env),
        )
        if _get(env, "AFAS_PIPELINE_ALERT_SMTP_USER"):
            options["smtp_user"] = _get(env, "AFAS_PIPELINE_ALERT_SMTP_USER")
            options["smtp_password"] = dg.EnvVar("AFAS_PIPELINE_ALERT_SMTP_PASSWORD")
    return AlertsResource(**options)


def alert_problems(env: Mapping[str, str]) -> Iterator[str]:
    """One line per alert setting that cannot work, naming the variable and the fix; never a secret."""
    webhook = _get(env, "AFAS_PIPELINE_ALERT_WEBHOOK_URL")
    if webhook:
        yield from _optional(_url_problem("AFAS_PIPELINE_ALERT_WEBHOOK_URL", webhook, secret=True,
                                          example="https://hooks.slack.com/services/..."))
    ui = _get(env, "AFAS_PIPELINE_UI_URL")
    if ui:
        yield from _optional(_url_problem("AFAS_PIPELINE_UI_URL", ui, secret=False, example=DEFAULT_UI_URL))
    host = _get(env, "AFAS_PIPELINE_ALERT_SMTP_HOST")
    if not host:
        for name in SMTP_SETTINGS:
            if _get(env, name):
                yield f"{name} is set but AFAS_PIPELINE_ALERT_SMTP_HOST is not: set the SMTP server, or unset {name}"
        return
    if any(c.isspace() or not c.isprintable() for c in host) or "/" in host:
        yield (f"AFAS_PIPELINE_ALERT_SMTP_HOST '{printable(host)}' is not a host name: give the SMTP server's name "
               "or address alone, like smtp.example.com")
    port = _get(env, "AFAS_PIPELINE_ALERT_SMTP_PORT")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        yield (f"AFAS_PIPELINE_ALERT_SMTP_PORT '{printable(port)}' is not a port number: set 587 (STARTTLS), "
               "465 (ssl) or 25, or unset it for 587")
    security = _get(env, "AFAS_PIPELINE_ALERT_SMTP_SECURITY") or "starttls"
    if security not in SECURITY:
        yield (f"AFAS_PIPELINE_ALERT_SMTP_SECURITY is '{printable(security)}': set it to starttls (the default), "
               "ssl or none")
    user, password = _get(env, "AFAS_PIPELINE_ALERT_SMTP_USER"), env.get("AFAS_PIPELINE_ALERT_SMTP_PASSWORD", "")
    if bool(user) != bool(password):
        given, missing = (("AFAS_PIPELINE_ALERT_SMTP_USER", "AFAS_PIPELINE_ALERT_SMTP_PASSWORD") if user else
                          ("AFAS_PIPELINE_ALERT_SMTP_PASSWORD", "AFAS_PIPELINE_ALERT_SMTP_USER"))
        yield f"{given} is set but {missing} is not: set both to log in to the SMTP server, or neither"
    if password and any(c in password for c in "\r\n\x00"):
        yield "AFAS_PIPELINE_ALERT_SMTP_PASSWORD holds a line break or NUL: set the password alone, on one line"
    if password and security == "none" and not is_secure_transport(f"http://{host}/"):
        yield (f"AFAS_PIPELINE_ALERT_SMTP_SECURITY is none, so the SMTP password would travel unencrypted to "
               f"'{printable(host)}': use starttls or ssl (none is accepted with a password only on this machine)")
    sender = _get(env, "AFAS_PIPELINE_ALERT_FROM")
    if not sender:
        yield "AFAS_PIPELINE_ALERT_FROM is not set: set the sender's address, like afas-pipeline@example.com"
    else:
        yield from _optional(_address_problem("AFAS_PIPELINE_ALERT_FROM", sender))
    recipients = _recipients(env)
    if not recipients:
        yield ("AFAS_PIPELINE_ALERT_TO is not set: set the recipients' addresses, separated by commas, like "
               "oncall@example.com,data@example.com")
    for i, address in enumerate(recipients, start=1):
        yield from _optional(_address_problem(f"AFAS_PIPELINE_ALERT_TO (address {i})", address))


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _recipients(env: Mapping[str, str]) -> list[str]:
    return [a.strip() for a in _get(env, "AFAS_PIPELINE_ALERT_TO").split(",") if a.strip()]


def _address_problem(setting: str, address: str) -> str | None:
    try:
        # Not globally deliverable is fine: alerts may go through an internal relay to `ops@mailhost`.
        validate_email(address, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError as exc:
        return f"{setting} '{printable(address)}' is not an e-mail address ({printable(exc)}): fix it"
    return None


def _url_problem(setting: str, url: str, *, secret: bool, example: str) -> str | None:
    """An http(s) URL with a host; for a secret one https unless on this machine. The message shows the
    scheme and host only, never a secret path."""
    shown = _origin(url) if secret else printable(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{setting} ({shown}) is not a valid URL: set it like {example}"
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return f"{setting} ({shown}) is not an http(s) URL: set it like {example}"
    if secret and not is_secure_transport(url):
        return (f"{setting} ({shown}) would carry the alerts and its own secret path unencrypted over plain http: "
                f"use https (plain http is accepted only on this machine)")
    return None


def _optional(problem: str | None) -> Iterator[str]:
    if problem:
        yield problem
