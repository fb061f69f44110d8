"""Errors raised by the Xelion REST API client.

Every error names the endpoint (a route template such as ``GET addressables/{oid}``, never an oid or a query),
the HTTP status and Xelion's ``errorCode``. Its message is ours: a generic text per error code, never Xelion's
own ``message``, which may echo what was sent (a name, a phone number, an e-mail address, the user space), and
never a request body, a token or the password. None of these errors is worth retrying as it is: the client has
already retried what could be retried.
"""

from __future__ import annotations

from afas_pipeline.lib.errors import ServiceError


class XelionError(ServiceError):
    """A call to Xelion failed. ``error_code`` is Xelion's ``errorCode`` (an int), None when the answer had none."""

    service = "Xelion"

    def __init__(self, message: str, *, endpoint: str | None = None, status_code: int | None = None,
                 error_code: int | None = None) -> None:
        super().__init__(message, endpoint=endpoint, status_code=status_code)
        self.error_code = error_code  # kept by pickling: ServiceError.__reduce__ restores __dict__

    def __str__(self) -> str:
        parts = [f"endpoint={self.endpoint}" if self.endpoint else "",
                 f"status={self.status_code}" if self.status_code is not None else "",
                 f"errorCode={self.error_code}" if self.error_code is not None else ""]
        parts = [part for part in parts if part]
        return self.message + (" (" + ", ".join(parts) + ")" if parts else "")


class XelionConfigError(XelionError, ValueError):
    """The client's configuration cannot work (a base URL without http(s), no password). Raised before any
    request; the message names the setting, never its value."""


class XelionAuthError(XelionError):
    """Xelion refused to log in (wrong user name or password 10004, a disabled account 10006, an expired password
    10007, MFA required 10013), or still answered 401 after the client had renewed its session or logged in
    again once. No call can succeed until the settings change."""


class XelionSessionInUse(XelionAuthError):
    """The login was refused with 10005: the user is already logged in with this ``userSpace``. Another process
    uses the same user space (two deployments, or two runs at once), or an earlier run died without logging out
    (its session frees itself when its token expires). Set a user space of its own per deployment."""


class XelionRequestError(XelionError):
    """A refusal that repeating cannot change: 400 (a malformed body, an unknown oid in it), 403 (no permission
    or licence), 404 (an unknown oid or path), 405, 409... ``fields`` names the object's fields Xelion's message
    pointed at (paths like ``telecomAddresses[0].address``, never values)."""

    fields: tuple[str, ...] = ()


class XelionUnavailable(XelionError):
    """No answer after the retries: 429 (10400 too many requests of the session in flight, 10402 timed out
    waiting), 5xx or a broken connection; or a Retry-After beyond ``max_retry_after_s``."""


class XelionWriteUnknown(XelionUnavailable):
    """A create (``POST addressables``) whose answer was lost (the connection broke after the request was sent,
    or a proxy answered 502/504 without Xelion's error body): Xelion may have created the object. The client does
    not send it again, since a second POST would make a duplicate contact; look the object up before creating it
    again. (An update whose answer was lost does not raise this: the client reads the object back and sends only
    what it does not show yet.)"""
