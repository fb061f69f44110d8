"""Errors raised by the Spotler Mail+ client.

Writes of contacts do not raise for what Spotler refuses contact by contact: a refused contact comes back
as data, a ``ContactResult``. These errors are for what no contact can get past (wrong credentials), for
reads that cannot be answered, and for writes that got no answer at all (``SpotlerWriteIncomplete``: an
outage is not a refusal, C4). Every error names the endpoint, the HTTP status and Spotler's
``errorType``; none ever carries the consumer secret. Text Spotler wrote (its ``message`` and ``errorType``)
is kept with control characters escaped (`lib.text.printable`), so an error can be logged or printed as it is.
"""

from __future__ import annotations

from afas_pipeline.lib.text import printable


class SpotlerError(Exception):
    """A call to Spotler Mail+ failed."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status_code: int | None = None,
        error_type: str | None = None,
        spotler_message: str | None = None,
    ) -> None:
        self.message = printable(message)
        self.endpoint = _clean(endpoint)
        self.status_code = status_code
        self.error_type = _clean(error_type)
        self.spotler_message = _clean(spotler_message)
        super().__init__(self.message)

    def __str__(self) -> str:
        details = []
        if self.endpoint:
            details.append(f"endpoint={self.endpoint}")
        if self.status_code is not None:
            details.append(f"status={self.status_code}")
        if self.error_type and self.error_type not in self.message:
            details.append(f"errorType={self.error_type}")
        if self.spotler_message and self.spotler_message not in self.message:
            details.append(f"Spotler says: '{self.spotler_message}'")
        return self.message + (" (" + ", ".join(details) + ")" if details else "")

    def __reduce__(self):  # keep the keyword fields when pickled (Dagster moves errors between processes)
        kwargs = {
            "endpoint": self.endpoint,
            "status_code": self.status_code,
            "error_type": self.error_type,
            "spotler_message": self.spotler_message,
        }
        return (_rebuild, (type(self), self.message, kwargs, dict(self.__dict__)))


def _clean(text: str | None) -> str | None:
    return None if text is None else printable(text)


def _rebuild(cls, message, kwargs, state):
    error = cls.__new__(cls)
    SpotlerError.__init__(error, message, **kwargs)
    error.__dict__.update(state)
    return error


class SpotlerAuthError(SpotlerError):
    """401/403: Spotler does not know the consumer key (AUTH_NOT_FOUND), or the secret or the signature
    is wrong (NOT_AUTHORIZED; a clock off by more than five minutes also breaks the signature). A
    configuration error: no request can succeed, so the client raises instead of reporting per contact."""


class SpotlerRequestError(SpotlerError):
    """A 4xx other than 401/403 on a read (bad parameters, unknown mailing): retrying cannot help."""


class SpotlerUnavailable(SpotlerError):
    """429, 5xx or network failures that outlasted the retries, or a Retry-After beyond the limit."""


class SpotlerConfigError(SpotlerError):
    """The client's configuration cannot work (e.g. a base URL without http(s))."""


class SpotlerWriteIncomplete(SpotlerError):
    """Some contact/list batches got no per-contact answer: Spotler stayed unavailable (429, 5xx, network)
    after the retries, or refused the request as a whole. No contact of those batches was refused, so none
    counts towards quarantine; ``results`` holds the answers of the batches that were delivered, and
    ``cause`` the error of the first batch that was not."""

    results: list
    cause: SpotlerError | None
