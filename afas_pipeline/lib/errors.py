"""The base of the destinations' client errors: a message, the endpoint, the HTTP status and what the service said,
printable as one line (control characters escaped, `lib.text.printable`) and intact when pickled (Dagster moves
errors between processes). Never a credential: the clients scrub what they pass in."""

from __future__ import annotations

from afas_pipeline.lib.text import printable


class ServiceError(Exception):
    """A call to an external service failed. Subclasses name the service and the details it gives."""

    #: The service, as in "Spotler says: '...'".
    service = "the service"
    #: The service's own details, as (attribute, label in the text); label None: shown as what the service says.
    details: tuple[tuple[str, str | None], ...] = ()

    def __init__(self, message: str, *, endpoint: str | None = None, status_code: int | None = None,
                 **said: str | None) -> None:
        unknown = set(said) - {name for name, _ in self.details}
        if unknown:
            raise TypeError(f"{type(self).__name__} takes no {', '.join(sorted(unknown))}")
        self.message = printable(message)
        self.endpoint = _clean(endpoint)
        self.status_code = status_code
        for name, _ in self.details:
            setattr(self, name, _clean(said.get(name)))
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = []
        if self.endpoint:
            parts.append(f"endpoint={self.endpoint}")
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        for name, label in self.details:
            value = getattr(self, name)
            if value and value not in self.message:
                parts.append(f"{label}={value}" if label else f"{self.service} says: '{value}'")
        return self.message + (" (" + ", ".join(parts) + ")" if parts else "")

    def __reduce__(self):
        kwargs = {"endpoint": self.endpoint, "status_code": self.status_code,
                  **{name: getattr(self, name) for name, _ in self.details}}
        return (_rebuild, (type(self), self.message, kwargs, dict(self.__dict__)))


def _clean(text: str | None) -> str | None:
    return None if text is None else printable(text)


def _rebuild(cls, message, kwargs, state):
    error = cls.__new__(cls)
    ServiceError.__init__(error, message, **kwargs)
    error.__dict__.update(state)
    return error
