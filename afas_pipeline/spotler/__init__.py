"""Spotler Mail+: the REST client (the sandbox emulator lives apart, in ``afas_sandbox.spotler``)."""

from afas_pipeline.spotler.client import ContactResult, SpotlerClient, WriteStats
from afas_pipeline.spotler.errors import (
    SpotlerAuthError,
    SpotlerConfigError,
    SpotlerError,
    SpotlerRequestError,
    SpotlerUnavailable,
    SpotlerWriteIncomplete,
)

__all__ = [
    "ContactResult",
    "SpotlerAuthError",
    "SpotlerClient",
    "SpotlerConfigError",
    "SpotlerError",
    "SpotlerRequestError",
    "SpotlerUnavailable",
    "SpotlerWriteIncomplete",
    "WriteStats",
]
