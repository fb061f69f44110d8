"""What comes back from a destination, as typed values. Each destination's adapter reads its API's JSON into
these; the rules (`afas_pipeline.sync`) read only these, never a vendor's field names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ContactChange:
    """A contact of the destination's change feed, as the destination holds it now."""

    external_id: str
    changed_at: datetime  # UTC, the destination's clock: when it last changed
    permissions: Mapping[str, bool] = field(default_factory=dict)  # permission key -> on, as it holds it now
    fields: Mapping[str, object] = field(default_factory=dict)  # property -> value; an empty property is absent
    mailable: bool = True  # False: the destination made it inactive (a hard bounce, R11)


@dataclass(frozen=True)
class FeedStates:
    """One page of a destination's change feed, column by column: what the feed's judging (`refresh_optouts`) reads
    of each record as the destination holds it now. `external_ids` in the order read (a later row of an id is its
    later version); `changed_at` in microseconds since the epoch (UTC; 0: the destination did not say); `mailable` False
    where the destination made the record inactive (R11); `off` per permission key, True where the destination
    holds that permission off. `server_time`: the destination's clock when it answered (the first page)."""

    external_ids: list[str]
    changed_at: np.ndarray  # int64, epoch microseconds
    mailable: np.ndarray  # bool
    off: Mapping[str, np.ndarray]  # permission key -> bool per row
    server_time: datetime | None = None

    def __len__(self) -> int:
        return len(self.external_ids)

    @classmethod
    def of(cls, changes: Iterable[ContactChange], server_time: datetime | None = None) -> FeedStates:
        """The columns of changes read row by row."""
        changes = list(changes)
        keys = sorted({key for change in changes for key in change.permissions})
        return cls(
            external_ids=[change.external_id for change in changes],
            changed_at=np.array([epoch_us(change.changed_at) for change in changes], dtype=np.int64),
            mailable=np.array([change.mailable for change in changes], dtype=bool),
            off={key: np.array([change.permissions.get(key) is False for change in changes], dtype=bool)
                 for key in keys},
            server_time=server_time,
        )

    @staticmethod
    def frame(pages: Iterable[FeedStates]) -> pd.DataFrame:
        """Pages as one frame in the order read: `external_id`, `changed_at` (epoch µs), `mailable`, and per
        permission key `off:<key>` (False where a page did not name the key)."""
        pages = list(pages)
        keys = sorted({key for page in pages for key in page.off})
        return pd.DataFrame({
            "external_id": pd.array([i for page in pages for i in page.external_ids], dtype="string"),
            "changed_at": np.concatenate([page.changed_at for page in pages] or [np.array([], np.int64)]),
            "mailable": np.concatenate([page.mailable for page in pages] or [np.array([], bool)]),
            **{f"off:{key}": np.concatenate([page.off.get(key, np.zeros(len(page), bool)) for page in pages]
                                            or [np.array([], bool)]) for key in keys},
        })


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_us(when: datetime) -> int:
    """A time (timezone-aware) as whole microseconds since the epoch, exactly."""
    return (when - _EPOCH) // timedelta(microseconds=1)


def from_epoch_us(value: int) -> datetime:
    """`epoch_us` back: a UTC time."""
    return _EPOCH + timedelta(microseconds=int(value))


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
