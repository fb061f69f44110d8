"""Errors raised by the AFAS client.

Every error names the connector, the HTTP status, AFAS's message and its profitLogReference (the key
an AFAS administrator looks up in the environment log). None of them ever carries the token. Text AFAS
wrote (its message, its log reference) is kept with control characters escaped (`lib.text.printable`), so
an error can be logged or printed as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from afas_pipeline.lib.text import printable


class AfasError(Exception):
    """A call to AFAS Profit failed."""

    def __init__(
        self,
        message: str,
        *,
        connector: str | None = None,
        status_code: int | None = None,
        external_message: str | None = None,
        error_number: int | None = None,
        profit_log_reference: str | None = None,
    ) -> None:
        self.message = printable(message)
        self.connector = _clean(connector)
        self.status_code = status_code
        self.external_message = _clean(external_message)
        self.error_number = error_number
        self.profit_log_reference = _clean(profit_log_reference)
        super().__init__(self.message)

    def rejection_reason(self) -> str:
        """What a rejected record keeps of this error: AFAS's log reference (to find the call in Profit's
        log), else the kind of error."""
        if self.profit_log_reference:
            return f"profitLogReference={self.profit_log_reference}"
        return type(self).__name__

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.connector:
            details.append(f"connector={self.connector}")
        if self.status_code is not None:
            details.append(f"status={self.status_code}")
        if self.external_message and self.external_message not in self.message:
            details.append(f"AFAS says: '{self.external_message}'")
        if self.profit_log_reference:
            details.append(f"profitLogReference={self.profit_log_reference}")
        if details:
            parts.append("(" + ", ".join(details) + ")")
        return " ".join(parts)

    def __reduce__(self):  # keep the keyword fields when pickled (Dagster moves errors between processes)
        return (
            _rebuild,
            (
                type(self),
                self.message,
                {
                    "connector": self.connector,
                    "status_code": self.status_code,
                    "external_message": self.external_message,
                    "error_number": self.error_number,
                    "profit_log_reference": self.profit_log_reference,
                },
                dict(self.__dict__),
            ),
        )


def _clean(text: str | None) -> str | None:
    return None if text is None else printable(text)


def _rebuild(cls, message, kwargs, state):
    error = cls.__new__(cls)
    AfasError.__init__(error, message, **kwargs)
    error.__dict__.update(state)
    return error


class AfasAuthError(AfasError):
    """401/403: the token is wrong or expired, the connector is not in the App Connector, or (403) an
    IP restriction. AFAS answers all of these the same way, so the message lists them."""


class AfasNotFound(AfasError):
    """404: a wrong URL (base URL, environment) or a missing object."""


class AfasServerError(AfasError):
    """500: AFAS refused the request (validation, unknown field, bad value) or failed on it."""


class AfasUnavailable(AfasError):
    """503 or connection failures that outlasted the retries, or a retry_after beyond the limit."""


class AfasOutcomeUnknown(AfasUnavailable):
    """An insert or update AFAS may have processed: its answer was lost (a timeout or a connection cut after the
    request left, a 502 or 504), so it is not repeated. Whether it happened is known only by asking AFAS later."""


class AfasQueryTooLong(AfasError):
    """The query string would exceed AFAS's 2049 characters (AFAS answers 404); split the filter."""


class AfasConfigError(AfasError):
    """The configuration does not fit the AFAS environment (e.g. a GetConnector lacks fields)."""

    def __init__(
        self,
        message: str,
        *,
        connector: str | None = None,
        missing_fields: Iterable[str] = (),
        rule: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(message, connector=connector, **kwargs)
        self.missing_fields = tuple(missing_fields)
        self.rule = rule


def is_refusal(error: AfasError) -> bool:
    """Whether AFAS refused this one record (a validation error, an unknown value): kept as a rejected record
    and retried, quarantined after repeated refusals. Anything else (AFAS unreachable or unavailable after
    the retries, a token or URL that cannot work) is no verdict on the record: the step fails, nothing
    counts towards quarantine, and a rerun continues where it stopped (C4)."""
    return not isinstance(error, (AfasUnavailable, AfasAuthError, AfasNotFound, AfasQueryTooLong, AfasConfigError))
