"""Real receivers on localhost for the alert targets: an incoming-webhook server (http.server in a thread) and an
SMTP server (aiosmtpd, optionally with STARTTLS and a login), each keeping what it received."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from afas_pipeline.alerts.targets import AlertsResource

SECRET_PATH = "/services/T0001/B0002/s3cr3t-t0k3n"
SMTP_USER, SMTP_PASSWORD = "alerts@example.com", "smtp-pass-9f2c"
SENDER, RECIPIENTS = "afas-pipeline@example.com", ["oncall@example.com", "data@example.com"]
UI = "http://127.0.0.1:3000"


class WebhookServer(ThreadingHTTPServer):
    """Keeps each POST's path and JSON body; answers with the next status of `answers` (200 when empty)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.received: list[tuple[str, dict]] = []
        self.answers: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{SECRET_PATH}"


class _WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.answers.pop(0) if self.server.answers else 200
        if status == 200:
            self.server.received.append((self.path, json.loads(body)))
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    server = WebhookServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    """What the SMTP server accepted: envelope sender, recipients and the parsed message, plus logins."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, over TLS)
    port: int = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class _AnyPortController(Controller):
    """aiosmtpd's controller on a free port (port 0): it checks readiness by connecting to its own port."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp():
    """A plain SMTP server on localhost (security `none`, no login)."""
    mailbox = Mailbox()
    controller = _AnyPortController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    mailbox.port = controller.port
    yield mailbox
    controller.stop()


@pytest.fixture
def smtp_starttls(tmp_path, monkeypatch):
    """An SMTP server that requires STARTTLS (certificate of a test CA the client is made to trust through
    SSL_CERT_FILE) and a login over TLS, as a mail provider's submission port does."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    mailbox = Mailbox()

    def authenticator(server, session, envelope, mechanism, auth_data):
        user, password = auth_data.login.decode(), auth_data.password.decode()
        mailbox.logins.append((user, session.ssl is not None))
        # handled=False: aiosmtpd answers a refusal with 535 itself (True would leave the client waiting).
        return AuthResult(success=(user, password) == (SMTP_USER, SMTP_PASSWORD), handled=False)

    controller = _AnyPortController(mailbox, hostname="127.0.0.1", port=0, tls_context=server_tls,
                                    require_starttls=True, authenticator=authenticator, auth_required=True,
                                    auth_require_tls=True)
    controller.start()
    mailbox.port = controller.port
    yield mailbox
    controller.stop()


def closed_port() -> int:
    """A port nothing listens on (free now, and nothing is started on it)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def alerts(*, webhook: WebhookServer | None = None, smtp: Mailbox | None = None, **options) -> AlertsResource:
    """The alerts resource pointed at the test receivers, with quick retries."""
    settings: dict = {"ui_url": UI, "backoff_s": 0.01, "timeout_s": 5}
    if webhook is not None:
        settings["webhook_url"] = webhook.url
    if smtp is not None:
        settings.update(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none", mail_from=SENDER,
                        mail_to=RECIPIENTS)
    return AlertsResource(**{**settings, **options})
