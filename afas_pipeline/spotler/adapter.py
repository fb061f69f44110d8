"""The Spotler side of a sync (`afas_pipeline.sync.destination.Destination`): audience members and their plan as
Spotler contact documents, and Spotler's feeds (`contact/updates/list`, `contact/bounces/list`,
`mailing-interaction/*`) as the typed values of `afas_pipeline.sync.events`.

Everything else (audience, plan, state, consent, the way back) is destination-neutral (`afas_pipeline.chain`);
`afas_pipeline/defs/spotler/defs.yaml` names this adapter and the mapping file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from afas_pipeline.afas.dossier import MARKER
from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.spotler.client import page_rows
from afas_pipeline.sync.audience import normalise_email, property_column
from afas_pipeline.sync.destination import ABSENT, ERASED
from afas_pipeline.sync.events import Bounce, ContactChange, FeedStates, Interaction, MailingSent
from afas_pipeline.sync.plan import set_column
from afas_pipeline.sync.values import plain_values, typed_values

if TYPE_CHECKING:
    from afas_pipeline.spotler.client import ContactResult, SpotlerClient

#: AFAS gender codes (M man, V vrouw, O onbekend, X non-binary) to Spotler's M/F; others stay empty.
GENDERS = {"M": "M", "V": "F"}


class SpotlerAdapter:
    """Spotler Mail+ as a destination: contacts by externalId, permissions by bit, the EMAIL channel for R11."""

    title = "Spotler"
    kind = "spotler"
    keyed_by_address = False
    dossier_marker = MARKER

    def __init__(self, mapping: DestinationMapping, name: str = "spotler"):
        self.name = name
        self.mapping = mapping
        self._types = {f.property: f.type for f in mapping.fields}
        self._properties = [name for _, name in mapping.properties() if name != mapping.email.property]
        self._permission_keys = [key for _, key in mapping.permission_keys()]

    @property
    def permission_keys(self) -> list[int | str]:
        return self._permission_keys

    def documents(self, rows: pd.DataFrame, keys: Mapping[str, str | None] | None = None) -> list[dict[str, Any]]:
        """The `contact` documents for `POST contact/list`, one per row of plan joined with its member:
        only what the plan says to send (merge, not purge). Values are converted column by column."""
        values = {self.mapping.email.property: plain_values(rows["email"])}
        for name in self._properties:
            values[name] = self._column(name, rows[property_column(name)])
        permissions = {int(key): plain_values(rows[set_column(key)]) for key in self._permission_keys}
        send = rows["send_properties"].astype(bool).tolist()
        reactivate = rows["reactivate"].astype(bool).tolist()
        deactivate = rows["deactivate"].astype(bool).tolist()
        names = list(values)
        # Row by row only to assemble the dicts: the values of each row come out of the columns side by side.
        row_values = zip(*values.values())
        row_bits = zip(*permissions.values()) if permissions else repeat(())
        bit_keys = list(permissions)
        # The few combinations of permission values, each made once (the documents are only read after this).
        combinations: dict[tuple, list[dict]] = {}
        documents = []
        for i, (external_id, properties_row, bits_row) in enumerate(
                zip(rows["external_id"].astype(str).tolist(), row_values, row_bits)):
            properties = dict(zip(names, properties_row)) if send[i] else {}
            bits = combinations.get(bits_row)
            if bits is None:
                bits = combinations[bits_row] = [{"bit": bit, "enabled": bool(value)}
                                                 for bit, value in zip(bit_keys, bits_row) if value is not None]
            if bits:
                properties["permissions"] = bits
            document: dict[str, Any] = {"externalId": external_id, "properties": properties}
            if reactivate[i]:
                # R11: a new address after a hard bounce makes the contact mailable again.
                document["channels"] = [{"name": "EMAIL", "value": True}]
            elif deactivate[i]:
                # R11: an address AFAS already knows to hard-bounce is not made mailable by being created.
                document["channels"] = [{"name": "EMAIL", "value": False}]
            documents.append(document)
        return documents

    def write(self, client: SpotlerClient, documents: list[dict],
              on_batch: Callable[[list[ContactResult]], None]) -> None:
        client.upsert_contacts(documents, on_batch=on_batch)

    def changes(self, client: SpotlerClient, start: datetime, end: datetime) -> list[ContactChange]:
        return contact_changes(client.updates(start, end))

    def change_pages(self, client: SpotlerClient, start: datetime, end: datetime) -> Iterator[FeedStates]:
        return client.update_pages(start, end, parse=feed_states)

    def bounces(self, client: SpotlerClient, start: datetime, end: datetime) -> list[Bounce]:
        return bounces(client.bounces(start, end))

    def current_fields(self, client: SpotlerClient, keys: Mapping[str, str | None]) -> Mapping[str, Mapping | None]:
        ids = list(keys)
        with ThreadPoolExecutor(max_workers=max(1, client.max_concurrency)) as pool:
            contacts = dict(zip(ids, pool.map(client.get_contact, ids)))
        return {i: None if c is None else dict(c.get("properties") or {}) for i, c in contacts.items()}

    def properties(self, client: SpotlerClient) -> list[dict]:
        return client.properties()

    def write_counts(self, client: SpotlerClient) -> dict[str, int]:
        stats = client.stats
        return {"write_batches": stats.batches, "contacts_sent": stats.contacts_sent}

    def refusal_reason(self, result: ContactResult) -> str:
        """The code, and the property Spotler names, so an operator knows which AFAS field to fix; never the
        value (Spotler's message may quote it)."""
        match = re.search(r"property '([^']+)'", result.message or "")
        return f"{result.code}:{match.group(1)}" if match else result.code

    def erasure_ids(self, keys: Mapping[str, list[str]]) -> list[str]:
        # One record per AFAS contact; an audience of debtors is keyed by DebtorId, which no request names.
        return list(keys.get("contacts", [])) if self.mapping.base == "contact" else []

    def erase(self, client: SpotlerClient, external_id: str, destination_key: str | None) -> str:
        """Spotler has no hard delete: anonymize strips every property and switches permissions and channels off."""
        return ERASED if client.anonymize(external_id) else ABSENT

    def resubscriptions(self, documents: list[dict], actions: list[str]) -> list[int]:
        # Spotler has no consent state of its own beyond the permission bits, which C1 guards in the plan.
        return []

    @property
    def mailings(self) -> SpotlerMailings:
        return SpotlerMailings()

    def _column(self, name: str, column: pd.Series) -> list[Any]:
        """A mapped column in Spotler's terms; None clears the property (merge keeps omitted ones, not nulls)."""
        if name == "gender":
            return plain_values(column.astype("string").str.upper().map(GENDERS).where(column.notna()))
        return typed_values(column, self._types.get(name))


class SpotlerMailings:
    """Spotler's mailing feed (R17): `mailing-interaction/*` and, for campaign mails, `GET mailing`."""

    def sent(self, client: SpotlerClient, *, change_start: datetime, change_end: datetime) -> list[MailingSent]:
        return mails_sent(client.interactions("sent", change_start=change_start, change_end=change_end))

    def sent_at(self, client: SpotlerClient, start: datetime, end: datetime) -> list[MailingSent]:
        return mails_sent(client.interactions("sent", start=start, end=end))

    def interactions(self, client: SpotlerClient, kind: str, *, change_start: datetime,
                     change_end: datetime) -> list[Interaction]:
        return interactions(kind, client.interactions(kind, change_start=change_start, change_end=change_end))

    def campaign_ids(self, client: SpotlerClient, sent: list[MailingSent]) -> set[str]:
        """The mailings of `sent` that are campaign mails: Spotler's `GET mailing` lists every other mailing."""
        untied = {mail.mailing_id for mail in sent if mail.trend_report_id is None}
        if not untied:
            return set()
        dates = [mail.at for mail in sent]
        listed = client.mailings(min(dates) - timedelta(days=1), max(dates) + timedelta(days=1))
        return untied - {str(m.get("encryptedId")) for m in listed}


def contact_changes(contacts: Iterable[dict]) -> list[ContactChange]:
    """Spotler contacts (`contact/updates/list`: their current state) as changes: permissions by bit, the
    other properties, and whether the EMAIL channel is still on (off: inactive after a hard bounce, R11)."""
    changes = []
    for contact in contacts:
        properties = dict(contact.get("properties") or {})
        permissions = {str(p.get("bit")): bool(p.get("enabled")) for p in properties.pop("permissions", None) or []}
        channels = contact.get("channels") or []
        changes.append(ContactChange(
            external_id=str(contact.get("externalId")),
            changed_at=spotler_time(contact.get("lastChanged") or 0),
            permissions=permissions,
            fields=properties,
            mailable=not any(c.get("name") == "EMAIL" and not c.get("value") for c in channels),
        ))
    return changes


#: What the feed's judging reads of a `contact/updates/list` page, as Arrow parses it (other fields are skipped).
_FEED_SCHEMA = pa.schema([("rows", pa.list_(pa.struct([
    ("externalId", pa.string()),
    ("lastChanged", pa.int64()),
    ("properties", pa.struct([("permissions", pa.list_(pa.struct([("bit", pa.int64()), ("enabled", pa.bool_())])))])),
    ("channels", pa.list_(pa.struct([("name", pa.string()), ("value", pa.bool_())]))),
])))])


def feed_states(content: bytes, server_time: datetime | None) -> FeedStates:
    """A `contact/updates/list` page as the feed's judging reads it. The usual shape (text externalIds, epoch
    lastChanged, numbered bits) is parsed by Arrow, with no Python object per contact: the feed after a full sync
    holds every record it wrote. Any other shape is read row by row (`contact_changes`), to the same result."""
    states = _arrow_feed_states(content, server_time)
    if states is None:
        states = FeedStates.of(contact_changes(page_rows(content, "contact/updates/list")), server_time)
    return states


def _arrow_feed_states(content: bytes, server_time: datetime | None) -> FeedStates | None:
    """`feed_states` by Arrow; None for a page it does not read exactly as `contact_changes` would."""
    if not content.strip() or b"\n" in content:
        return None
    try:
        table = pa_json.read_json(
            io.BytesIO(b'{"rows":' + content + b"}"),
            read_options=pa_json.ReadOptions(block_size=len(content) + 64, use_threads=False),
            parse_options=pa_json.ParseOptions(explicit_schema=_FEED_SCHEMA, unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    pages = table.column("rows")
    if table.num_rows != 1 or pages.null_count:
        return None
    contacts = pages.combine_chunks().flatten()
    if contacts.null_count:
        return None
    external_id, changed_at, properties, channels = contacts.flatten()
    if external_id.null_count:
        return None  # the row-wise reading names it "None"
    (permissions,) = properties.flatten()
    entries = permissions.flatten()
    bit, enabled = entries.flatten()
    if bit.null_count:
        return None
    owner = pc.list_parent_indices(permissions).to_numpy()
    bits = bit.to_numpy()
    if pd.DataFrame({"owner": owner, "bit": bits}).duplicated().any():
        return None  # a bit named twice in one contact: the row-wise reading keeps the last
    off = ~enabled.fill_null(False).to_numpy(zero_copy_only=False)
    columns = {}
    for value in np.unique(bits):
        column = np.zeros(len(contacts), dtype=bool)
        column[owner[(bits == value) & off]] = True
        columns[str(value)] = column
    channel_owner = pc.list_parent_indices(channels).to_numpy()
    name, on = channels.flatten().flatten()
    email_off = (pc.equal(name, "EMAIL").fill_null(False).to_numpy(zero_copy_only=False)
                 & ~on.fill_null(False).to_numpy(zero_copy_only=False))
    mailable = np.ones(len(contacts), dtype=bool)
    mailable[channel_owner[email_off]] = False
    return FeedStates(external_ids=external_id.to_pylist(), changed_at=changed_at.fill_null(0).to_numpy() * 1000,
                      mailable=mailable, off=columns, server_time=server_time)


def bounces(rows: Iterable[dict]) -> list[Bounce]:
    """Spotler's `contact/bounces/list` rows (`{date, type: HARDBOUNCE|SOFTBOUNCE, contact}`) as bounces, with
    the hash of the address the contact had (never the address)."""
    out = []
    for row in rows:
        contact = row.get("contact") or {}
        if contact.get("externalId") is None:
            continue
        address = normalise_email((contact.get("properties") or {}).get("email"))
        out.append(Bounce(str(contact["externalId"]), spotler_time(row.get("date")),
                          hard=str(row.get("type", "")).upper().startswith("HARD"),
                          email_hash=hash_key(address) if address else None))
    return out


def mails_sent(rows: Iterable[dict]) -> list[MailingSent]:
    """`mailing-interaction/sent` rows as mails sent; a row without mailing, contact or date is left out."""
    out = []
    for row in rows:
        mailing, external_id = str(row.get("encryptedMailingId") or ""), str(row.get("externalContactId") or "")
        if not mailing or not external_id or row.get("date") is None:
            continue
        trend = row.get("trendReportId")
        out.append(MailingSent(mailing, external_id, spotler_time(row["date"]), name=str(row.get("name") or ""),
                               subject=str(row.get("subject") or ""), link=str(row.get("onlineVersionLink") or ""),
                               trend_report_id=None if trend is None else str(trend)))
    return out


def interactions(kind: str, rows: Iterable[dict]) -> list[Interaction]:
    """`mailing-interaction/{kind}` rows (opened, clicked, bounced) as interactions; a bounce's kind carries its
    type (`bounced:hard`, `bounced:soft`)."""
    out = []
    for row in rows:
        mailing, external_id = str(row.get("encryptedMailingId") or ""), str(row.get("externalContactId") or "")
        if not mailing or not external_id or row.get("date") is None:
            continue
        label = kind
        if kind == "bounced":
            label = "bounced:" + ("hard" if str(row.get("bounceType") or "").upper() == "HARD" else "soft")
        out.append(Interaction(mailing, external_id, label, spotler_time(row["date"])))
    return out


def spotler_time(value) -> datetime:
    """A Spotler date in UTC: epoch milliseconds, or ISO-8601 (naive means Amsterdam local)."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("Europe/Amsterdam", ambiguous=True, nonexistent="shift_forward")
    return stamp.tz_convert(timezone.utc).to_pydatetime()
