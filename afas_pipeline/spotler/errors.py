"""Errors raised by the Spotler Mail+ client.

Writes of contacts do not raise for what Spotler refuses contact by contact: a refused contact comes back
as data, a ``ContactResult``. These errors are for what no contact can get past (wrong credentials), for
reads that cannot be answered, and for writes that got no answer at all (``SpotlerWriteIncomplete``: an
outage is not a refusal, C4). Every error names the endpoint, the HTTP status and Spotler's
``errorType``; none ever carries the consumer secret. Text Spotler wrote (its ``message`` and ``errorType``)
is kept with control characters escaped (`lib.text.printable`), so an error can be logged or printed as it is.
"""

from __future__ import annotations

from afas_pipeline.lib.errors import ServiceError


class SpotlerError(ServiceError):
    """A call to Spotler Mail+ failed."""

    service = "Spotler"
    details = (("error_type", "errorType"), ("spotler_message", None))


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
