"""What comes back from a destination, as typed values. Each destination's adapter reads its API's JSON into
these; the rules (`afas_pipeline.sync`) read only these, never a vendor's field names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ContactChange:
    """A contact of the destination's change feed, as the destination holds it now."""

    external_id: str
    changed_at: datetime  # UTC, the destination's clock: when it last changed
    permissions: Mapping[str, bool] = field(default_factory=dict)  # permission key -> on, as it holds it now
    fields: Mapping[str, object] = field(default_factory=dict)  # property -> value; an empty property is absent
    mailable: bool = True  # False: the destination made it inactive (a hard bounce, R11)


@dataclass(frozen=True)
class Bounce:
    """A bounce the destination reports."""

    external_id: str
    at: datetime  # UTC
    hard: bool
    email_hash: str | None = None  # the hash of the address that bounced (R11), when the destination says it


@dataclass(frozen=True)
class MailingSent:
    """A mail of a mailing the destination sent to one contact (R17)."""

    mailing_id: str
    external_id: str
    at: datetime  # UTC
    name: str = ""
    subject: str = ""
    link: str = ""  # the recipient's personal online version
    trend_report_id: str | None = None  # the trend report the mailing belongs to, if any


@dataclass(frozen=True)
class Interaction:
    """A recipient's interaction with a mail: `opened`, `clicked`, `bounced:hard` or `bounced:soft` (R17)."""

    mailing_id: str
    external_id: str
    kind: str
    at: datetime  # UTC
