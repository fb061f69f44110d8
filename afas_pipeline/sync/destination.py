"""What the chain needs of a destination: the seam between the destination-neutral rules and one vendor's API.

A destination is a mapping file plus an adapter (`Destination`). The adapter turns plan rows into the
documents its API takes and that API's feeds into the typed values of `afas_pipeline.sync.events`; it is
handed the destination's client (a Dagster resource under the destination's name) for every call, so the
chain (`afas_pipeline.chain`) holds no vendor code and an adapter holds no rule. Free of Dagster and HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.sync.events import Bounce, ContactChange, FeedStates, Interaction, MailingSent


class WriteResult(Protocol):
    """What became of one record sent: `ok`, or refused with a `code` (the destination's own words).

    `consent_refusal`: the destination refuses the record for a consent reason of its own (Mailchimp's
    "Member In Compliance State", "Forgotten Email Not Subscribed"): an outcome, not a failure. The record
    is kept as excluded by consent with that reason, and sent again only when AFAS changes it."""

    external_id: str
    code: str
    status_code: int | None
    #: The destination's own key of the record after the write, when it is not the external id (Mailchimp's
    #: subscriber hash, which changes with the address); saved in the sync state.
    destination_key: str | None

    @property
    def ok(self) -> bool: ...

    @property
    def consent_refusal(self) -> bool: ...


class WriteIncomplete(Protocol):
    """The exception a destination's `write` raises when some records got no answer at all (an outage is not
    a refusal, C4); it is raised after the answered batches were handed to `on_batch`."""


#: What an erasure did to one record: the destination erased it (as far as its API allows), or had no such record.
ERASED, ABSENT = "erased", "absent"


@runtime_checkable
class Erasable(Protocol):
    """A destination that can forget one person (P2): the e-mail destinations and Xelion's address book."""

    name: str
    title: str

    def erasure_ids(self, keys: Mapping[str, list[str]]) -> list[str]:
        """This destination's record keys (external ids) of a request's AFAS keys (`contacts`, `persons`)."""

    def erase(self, client: Any, external_id: str, destination_key: str | None) -> str:
        """Erase the record of `external_id` (with the destination's own key as last saved, if any) as far as the
        API allows: `ERASED`, or `ABSENT` when the destination has no such record (already gone). An outage raises
        the client's unavailable error: the erasure stays pending. Called again after a crash, it must be safe."""


@runtime_checkable
class Destination(Erasable, Protocol):
    """One destination of the AFAS contacts: see `afas_pipeline.spotler.adapter` for an example."""

    #: The name: prefix of its asset keys, its Dagster group, the resource key of its client and its key in
    #: the sync state (e.g. `spotler`).
    name: str
    #: As the users write it (`Spotler`), for descriptions.
    title: str
    #: Asset kinds shown on its assets in the UI.
    kind: str
    mapping: DestinationMapping
    #: Whether the destination knows a record by its e-mail address (Mailchimp): then two AFAS contacts sharing
    #: an address cannot both be records of their own, and the later ones are skipped (C2).
    keyed_by_address: bool
    #: The text every AFAS dossier item made for this destination starts with (R17), so a retried POST
    #: whose answer was lost is found in AFAS instead of being made twice.
    dossier_marker: str

    @property
    def permission_keys(self) -> list[int | str]:
        """The destination's permission keys, in mapping order (Spotler bits, Mailchimp statuses or ids)."""

    def documents(self, rows: pd.DataFrame, keys: Mapping[str, str | None]) -> list[Any]:
        """One document per row of plan joined with its member (only what the plan says to send). `keys` holds per
        external id the destination's own key of the record as last saved (`WriteResult.destination_key`)."""

    def write(self, client: Any, documents: list[Any], on_batch: Callable[[list[WriteResult]], None]) -> None:
        """Send the documents; each batch's results go to `on_batch` as soon as they are in."""

    def changes(self, client: Any, start: datetime, end: datetime) -> list[ContactChange]:
        """The records changed in the destination between `start` and `end`, as it holds them now."""

    def change_pages(self, client: Any, start: datetime, end: datetime) -> Iterator[FeedStates]:
        """`changes` page by page as the destination answers them, column by column (`FeedStates.of` makes them
        of changes read row by row), so a long read (a full sync's own writes) is never held as objects; a record
        changed during the read may be on two pages, the later its latest version. The first page carries the
        destination's clock (`server_time`)."""

    def bounces(self, client: Any, start: datetime, end: datetime) -> list[Bounce]:
        """The bounces the destination reports between `start` and `end`."""

    def current_fields(self, client: Any, keys: Mapping[str, str | None]) -> Mapping[str, Mapping[str, object] | None]:
        """Per external id (with the destination's own key as last saved) the record's fields as the destination
        holds them now (None: it has no such record)."""

    def properties(self, client: Any) -> list[dict]:
        """The destination's property list for the drift check: `[{name, type, entries?}]`, permissions as
        `set` properties whose entries carry `bit` or `id` (see `mapping.drift.destination_drift`)."""

    def write_counts(self, client: Any) -> dict[str, int]:
        """Counts of the client's writes so far (numbers only), for the sync's metadata."""

    def refusal_reason(self, result: WriteResult) -> str:
        """What a rejected record keeps of a refusal: a code and the field it names, never a value."""

    def resubscriptions(self, documents: list[Any], actions: list[str]) -> list[int]:
        """The positions of documents that would subscribe a record the destination already has (MC3: the
        destination's own consent, which only the recipient may give back). Those are never sent."""

    @property
    def mailings(self) -> MailingFeed | None:
        """The mailing feed for the mailing history (R17), or None when the destination has none."""


@runtime_checkable
class MailingFeed(Protocol):
    """The mails a destination sent and the recipients' interactions with them (R17)."""

    def sent(self, client: Any, *, change_start: datetime, change_end: datetime) -> list[MailingSent]:
        """Mails whose record changed in the window (how the feed is read every 15 minutes)."""

    def sent_at(self, client: Any, start: datetime, end: datetime) -> list[MailingSent]:
        """Mails sent in the window (to re-read an item waiting for a retry)."""

    def interactions(self, client: Any, kind: str, *, change_start: datetime, change_end: datetime) -> list[Interaction]:
        """Interactions of one kind (opened, clicked, bounced) changed in the window."""

    def campaign_ids(self, client: Any, sent: list[MailingSent]) -> set[str]:
        """The mailings of `sent` that are campaign (automation) mails, not newsletters."""
