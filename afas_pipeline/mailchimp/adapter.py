"""The Mailchimp side of a sync (`afas_pipeline.sync.destination.Destination`): audience members and their plan as
member upserts (`PUT lists/{id}/members/{hash}`; members new to the sync state by batch subscribe first), and
Mailchimp's members changed since a moment (`since_last_changed`) as the typed values of `afas_pipeline.sync.events`.

Consent, the way Mailchimp users lost it elsewhere (MC3):
- Mailchimp's audience status is the one permission, id `status` in `mappings/mailchimp.yaml`.
- A new member gets `status_if_new`: `subscribed` with the AFAS opt-in on, `transactional` (Mailchimp's
  "non-subscribed": receives no campaign, keeps its place in the audience) without it, `cleaned` when AFAS already
  knows its address to hard-bounce (R11). `status_if_new` is ignored for a member Mailchimp already has. A member
  new to the sync state goes by batch subscribe first, with that status as `status` and `update_existing: false`:
  a member Mailchimp already has is left alone by it and gets the PUT, so its status stays as it is.
- `status: subscribed` is never sent to an existing member: AFAS switching the opt-in on sends `pending`, so that
  Mailchimp asks the person to confirm (double opt-in); AFAS switching it off (or blocking the contact, R7) sends
  `unsubscribed`. A cleaned member that AFAS gives a new address (R11) is sent `pending` with the opt-in on (and
  no opt-out held by C1), else `unsubscribed` (held) or `transactional`: a renamed member does not stay cleaned,
  nor is it reported as a fresh hard bounce of its new address. `resubscriptions` finds any document that would
  send `subscribed` to an existing member; the chain never sends those.

Identity (C2, MC4): the member carries the AFAS external id in the merge field the mapping feeds from
`external_id`; the sync state keeps the member's subscriber hash, so an AFAS e-mail change renames the member
(the old hash gets the new `email_address`) instead of creating a second one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.mailchimp.client import MailchimpClient, MemberResult, MemberWrite, subscriber_hash
from afas_pipeline.mailchimp.merge_values import address_values, debtor_address_values, phone_values
from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.sync.audience import normalise_email, permission_column, property_column
from afas_pipeline.sync.destination import ABSENT, ERASED
from afas_pipeline.sync.events import Bounce, ContactChange, FeedStates, Interaction, MailingSent
from afas_pipeline.sync.plan import held_column, set_column
from afas_pipeline.sync.values import plain_values, typed_values

#: The permission id of Mailchimp's audience status (subscribed or not) in the mapping.
STATUS = "status"
#: ADDRESS is one merge field fed by several AFAS fields, mapped as `ADDRESS.<part>`: an address in parts (an
#: organisation's, a delivery address), or a debtor card's address lines (`line1`, `line3`, `line4`). With both,
#: a complete address in parts wins and the lines fill in for the rest.
ADDRESS = "ADDRESS"
ADDRESS_FIELDS = ("street", "house_number", "addition", "zip", "city", "country")
ADDRESS_LINES = ("line1", "line3", "line4")
ADDRESS_PARTS = (*ADDRESS_FIELDS, *ADDRESS_LINES)
#: The statuses that say whether the member may get campaigns; pending, cleaned and archived say nothing of
#: the person's choice (cleaned is a bounce, R11).
STATUS_PERMISSION = {"subscribed": True, "unsubscribed": False, "transactional": False}


class MailchimpAdapter:
    """Mailchimp as a destination: members by subscriber hash, the audience status as the one permission."""

    title = "Mailchimp"
    kind = "mailchimp"
    keyed_by_address = True
    dossier_marker = "Mailchimp campaign id: "

    def __init__(self, mapping: DestinationMapping, name: str = "mailchimp"):
        self.name, self.mapping = name, mapping
        keys = [key for _, key in mapping.permission_keys()]
        if keys not in ([], [STATUS]):
            raise ValueError(f"{mapping.file or 'mappings/mailchimp.yaml'}: permissions: Mailchimp has one "
                             f"permission, the audience status: map one AFAS opt-in field to `id: {STATUS}` "
                             f"(found {', '.join(map(str, keys))})")
        self._permission_keys = keys
        id_fields = [f.property for f in mapping.fields if f.afas == mapping.external_id]
        if not id_fields:
            raise ValueError(f"{mapping.file or 'mappings/mailchimp.yaml'}: fields: map {mapping.external_id} (the "
                             "external_id) to a text merge field, e.g. AFASID: Mailchimp members carry no id of ours")
        self.id_tag = id_fields[0]
        self._types = {f.property: f.type for f in mapping.fields}
        self._address = {f.property.split(".", 1)[1]: f.property for f in mapping.fields
                         if f.property.startswith(f"{ADDRESS}.")}
        self._plain = [f.property for f in mapping.fields if not f.property.startswith(f"{ADDRESS}.")]
        self._left_out = 0
        self._lock = threading.Lock()

    @property
    def permission_keys(self) -> list[int | str]:
        return self._permission_keys

    @property
    def mailings(self) -> MailchimpMailings:
        """The campaigns as a mailing feed (R17); a new one per run, so its lookups are read once per run."""
        return MailchimpMailings(self.id_tag)

    # -- AFAS -> Mailchimp --

    def documents(self, rows: pd.DataFrame, keys: Mapping[str, str | None]) -> list[MemberWrite]:
        """One member upsert per row of plan joined with its member: merge fields only when the plan sends the
        properties; the status as the consent rules above say."""
        emails = rows["email"].astype("string").tolist()
        values = {tag: self._column(tag, rows) for tag in self._plain}
        if self._address:
            values[ADDRESS] = [a if a is not None else "" for a in self._address_column(rows)]
        status = plain_values(rows[set_column(STATUS)]) if STATUS in self._permission_keys else [None] * len(rows)
        send = rows["send_properties"].astype(bool).tolist()
        deactivate = rows["deactivate"].astype(bool).tolist()
        reactivate = rows["reactivate"].astype(bool).tolist()
        wanted, held = self._reactivation_consent(rows)
        documents = []
        for i, (external_id, action) in enumerate(zip(rows["external_id"].astype(str), rows["action"])):
            body: dict[str, Any] = {"email_address": emails[i]}
            if send[i]:
                body["merge_fields"] = {tag: column[i] for tag, column in values.items()}
            if action == "create":
                body["status_if_new"] = "cleaned" if deactivate[i] else "subscribed" if status[i] else "transactional"
            else:
                # Should the member be gone from Mailchimp (archived), the PUT makes it anew: never as subscribed.
                body["status_if_new"] = "transactional"
                if status[i] is not None:
                    body["status"] = "pending" if status[i] else "unsubscribed"
                elif reactivate[i]:
                    # R11: the new address of a cleaned member makes it mailable again; cleaned says nothing of
                    # consent, so the AFAS opt-in asks anew (pending), an opt-out that stands (C1) stays.
                    body["status"] = "pending" if wanted[i] and not held[i] else \
                        "unsubscribed" if held[i] else "transactional"
            member = keys.get(external_id)
            documents.append(MemberWrite(external_id, member or subscriber_hash(emails[i]), body,
                                         new=action == "create" and not member))
        return documents

    def _reactivation_consent(self, rows: pd.DataFrame) -> tuple[list[bool], list[bool]]:
        """Per row: AFAS's opt-in as the member should show it (off while blocked, R7), and whether C1 holds it."""
        if STATUS not in self._permission_keys:
            return [False] * len(rows), [False] * len(rows)
        wanted = rows[permission_column(STATUS)].fillna(False).astype(bool).tolist()
        held = rows[held_column(STATUS)].fillna(False).astype(bool).tolist()
        return wanted, held

    def resubscriptions(self, documents: list[MemberWrite], actions: list[str]) -> list[int]:
        return [i for i, (doc, action) in enumerate(zip(documents, actions))
                if action != "create" and doc.body.get("status") == "subscribed"]

    def write(self, client: MailchimpClient, documents: list[MemberWrite],
              on_batch: Callable[[list[MemberResult]], None]) -> None:
        client.put_members(documents, on_batch=on_batch)

    def erasure_ids(self, keys: Mapping[str, list[str]]) -> list[str]:
        # One record per AFAS contact; an audience of debtors is keyed by DebtorId, which no request names.
        return list(keys.get("contacts", [])) if self.mapping.base == "contact" else []

    def erase(self, client: MailchimpClient, external_id: str, destination_key: str | None) -> str:
        """`delete-permanent` of the member by its saved subscriber hash: Mailchimp forgets it for good, and its
        address can never be imported again. No saved hash: the sync never made a member for this contact."""
        if not destination_key:
            return ABSENT
        return ERASED if client.delete_permanent(destination_key) else ABSENT

    def write_counts(self, client: MailchimpClient) -> dict[str, int]:
        stats = client.stats
        with self._lock:
            left_out, self._left_out = self._left_out, 0
        return {"members_sent": stats.members_sent, "members_created_in_bulk": stats.members_created_in_bulk,
                "write_requests": stats.requests,
                "phones_left_out_unparseable": left_out}

    def refusal_reason(self, result: MemberResult) -> str:
        """Mailchimp's title and the merge fields it names; never its detail (it may quote the address)."""
        return f"{result.code}:{','.join(result.fields)}" if result.fields else result.code

    # -- Mailchimp -> AFAS --

    def changes(self, client: MailchimpClient, start: datetime, end: datetime) -> list[ContactChange]:
        members = client.members_changed(start, end, fields=("merge_fields", "status"))
        return [change for member in members if (change := self._change(member))]

    def change_pages(self, client: MailchimpClient, start: datetime, end: datetime) -> Iterator[FeedStates]:
        # Only what a feed state is made of is asked for: the external id's merge field, the status and the time of
        # the change (a whole member is some 1.2 kB of JSON, most of it read for nothing after a full sync's writes).
        wanted = (f"merge_fields.{self.id_tag}", "status", "last_changed")
        for page in client.members_changed_pages(start, end, fields=wanted):
            yield self.feed_states(page, page.server_time)

    def feed_states(self, members: list[dict], server_time: datetime | None = None) -> FeedStates:
        """Members of the change feed as `FeedStates`, what `FeedStates.of` makes of their changes (`_change`), built
        column by column: no object per member (the first read after a full sync holds every member it wrote) and
        every time parsed at once. A time that way cannot read makes the page read member by member."""
        ids = [self._external_id(member) for member in members]
        kept = [member for member, external_id in zip(members, ids) if external_id is not None]
        changed_at = _epoch_us([member.get("last_changed") for member in kept])
        if changed_at is None:
            return FeedStates.of((change for member in members if (change := self._change(member, fields=False))),
                                 server_time)
        statuses = [member.get("status") for member in kept]
        permissions = [STATUS_PERMISSION[status] if status in STATUS_PERMISSION else None for status in statuses]
        return FeedStates(
            external_ids=[external_id for external_id in ids if external_id is not None],
            changed_at=changed_at,
            mailable=np.array([status != "cleaned" for status in statuses], dtype=bool),
            off={STATUS: np.array([p is False for p in permissions], dtype=bool)}
            if any(p is not None for p in permissions) else {},
            server_time=server_time,
        )

    def bounces(self, client: MailchimpClient, start: datetime, end: datetime) -> list[Bounce]:
        """Cleaned members: Mailchimp cleans an address after a hard bounce (soft bounces leave the status)."""
        out = []
        # Read 24 hours back every 15 minutes: only the cleaned members, not every member changed that day.
        for member in client.members_changed(start, end, status="cleaned",
                                             fields=(f"merge_fields.{self.id_tag}", "email_address")):
            external_id = self._external_id(member)
            if external_id is None:
                continue
            address = normalise_email(member.get("email_address"))
            out.append(Bounce(external_id, mailchimp_time(member.get("last_changed")), hard=True,
                              email_hash=hash_key(address) if address else None))
        return out

    def current_fields(self, client: MailchimpClient,
                       keys: Mapping[str, str | None]) -> Mapping[str, Mapping[str, object] | None]:
        known = {i: k for i, k in keys.items() if k}
        with ThreadPoolExecutor(max_workers=max(1, client.max_concurrency)) as pool:
            members = dict(zip(known, pool.map(client.get_member, known.values())))
        out: dict[str, Mapping[str, object] | None] = dict.fromkeys(keys)
        for external_id, member in members.items():
            if member is not None and member.get("status") != "archived":
                out[external_id] = _plain_fields(member)
        return out

    def properties(self, client: MailchimpClient) -> list[dict]:
        """Merge fields by tag (ADDRESS also as its parts), the address, and the status as a permission set."""
        merge = client.merge_fields()
        props = [{"name": "EMAIL", "type": "email"}, {"name": STATUS, "type": "set", "entries": [{"id": STATUS}]}]
        for field in merge:
            props.append({"name": field["tag"], "type": field.get("type")})
            if field.get("type") == "address":
                props += [{"name": f"{field['tag']}.{part}", "type": "text"} for part in ADDRESS_PARTS]
        return props

    # -- helpers --

    def _change(self, member: dict, fields: bool = True) -> ContactChange | None:
        """The member as a change of the feed; `fields`: with its merge fields' values (R13's way back reads them)."""
        external_id = self._external_id(member)
        if external_id is None:
            return None  # not a member this pipeline made: not ours to judge
        status = member.get("status")
        permissions = {STATUS: STATUS_PERMISSION[status]} if status in STATUS_PERMISSION else {}
        return ContactChange(external_id=external_id, changed_at=mailchimp_time(member.get("last_changed")),
                             permissions=permissions, fields=_plain_fields(member) if fields else {},
                             mailable=status != "cleaned")

    def _external_id(self, member: dict) -> str | None:
        value = str((member.get("merge_fields") or {}).get(self.id_tag) or "").strip()
        return value or None

    def _column(self, tag: str, rows: pd.DataFrame) -> list[Any]:
        """A merge field's values; "" clears one (Mailchimp merges, and keeps an omitted field)."""
        column = rows[property_column(tag)]
        if self._types.get(tag) == "phone":
            values, left_out = phone_values(column)
            with self._lock:
                self._left_out += left_out
        else:
            values = typed_values(column, self._types.get(tag))
        # Merge values travel as text (a number in a text field too); "" clears one.
        return [str(v) if v is not None else "" for v in values]

    def _address_column(self, rows: pd.DataFrame) -> list[dict | None]:
        def part(name: str) -> pd.Series:
            tag = self._address.get(name)
            return rows[property_column(tag)] if tag else pd.Series([None] * len(rows), index=rows.index)

        nothing: list[dict | None] = [None] * len(rows)
        parts = address_values(*map(part, ADDRESS_FIELDS)) \
            if any(name in self._address for name in ADDRESS_FIELDS) else nothing
        lines = debtor_address_values(*map(part, ADDRESS_LINES)) \
            if any(name in self._address for name in ADDRESS_LINES) else nothing
        return [p if p is not None else line for p, line in zip(parts, lines)]


class MailchimpMailings:
    """Mailchimp's campaigns as the mailing feed (R17): the campaigns sent to the audience (`GET campaigns`), their
    recipients (`reports/{id}/sent-to`) and their opens, clicks and bounces (`reports/{id}/email-activity`).

    A report names a recipient by subscriber hash only; the members' merge field that carries the AFAS id
    (`id_tag`) finds the AFAS record back, read once per run and only when a report has rows. A campaign is
    listed once it is sent completely, stamped with the moment sending began: the mails of the campaigns sent
    in the last `SENT_LOOKBACK` are read every run (the sync state makes one dossier item of each, however
    often it is read), and interactions with the campaigns of the last `INTERACTION_LOOKBACK`.
    """

    SENT_LOOKBACK = timedelta(days=1)
    INTERACTION_LOOKBACK = timedelta(days=30)
    ACTIONS = {"opened": "open", "clicked": "click", "bounced": "bounce"}

    def __init__(self, id_tag: str):
        self.id_tag = id_tag
        self._ids: dict[str, str] | None = None
        self._campaigns: dict[tuple[datetime, datetime], list[dict]] = {}
        self._activity: dict[tuple[str, datetime], list[dict]] = {}

    def sent(self, client: MailchimpClient, *, change_start: datetime, change_end: datetime) -> list[MailingSent]:
        return self.sent_at(client, change_start - self.SENT_LOOKBACK, change_end)

    def sent_at(self, client: MailchimpClient, start: datetime, end: datetime) -> list[MailingSent]:
        out = []
        for campaign in self._sent(client, start, end):
            settings = campaign.get("settings") or {}
            at = mailchimp_time(campaign.get("send_time"))
            link = str(campaign.get("long_archive_url") or campaign.get("archive_url") or "")
            for row in client.sent_to(campaign["id"]):
                external_id = self._external_id(client, row)
                if external_id is not None:
                    out.append(MailingSent(str(campaign["id"]), external_id, at, name=str(settings.get("title") or ""),
                                           subject=str(settings.get("subject_line") or ""), link=link))
        return out

    def interactions(self, client: MailchimpClient, kind: str, *, change_start: datetime,
                     change_end: datetime) -> list[Interaction]:
        """Opens, clicks or bounces (`bounced:hard`, `bounced:soft`) that happened in the window."""
        action, out = self.ACTIONS[kind], []
        for campaign in self._sent(client, change_start - self.INTERACTION_LOOKBACK, change_end):
            key = (str(campaign["id"]), change_start)
            if key not in self._activity:  # one read per campaign serves the three kinds
                self._activity[key] = client.email_activity(key[0], change_start - timedelta(seconds=1))
            for row in self._activity[key]:
                external_id = self._external_id(client, row)
                for event in row.get("activity") or []:
                    at = mailchimp_time(event.get("timestamp"))
                    if event.get("action") != action or external_id is None or not change_start <= at < change_end:
                        continue
                    label = f"bounced:{'hard' if event.get('type') == 'hard' else 'soft'}" if kind == "bounced" else kind
                    out.append(Interaction(key[0], external_id, label, at))
        return out

    def campaign_ids(self, client: MailchimpClient, sent: list[MailingSent]) -> set[str]:
        """Mailchimp has no trend reports: the mapping may only ask for all mailings (`mailings: all`)."""
        return set()

    def _sent(self, client: MailchimpClient, start: datetime, end: datetime) -> list[dict]:
        if (start, end) not in self._campaigns:
            self._campaigns[(start, end)] = client.campaigns_sent(start, end)
        return self._campaigns[(start, end)]

    def _external_id(self, client: MailchimpClient, row: dict) -> str | None:
        if self._ids is None:
            self._ids = client.member_tags(self.id_tag)
        return self._ids.get(str(row.get("email_id") or ""))


def _plain_fields(member: dict) -> dict[str, object]:
    """The member's merge fields with a value, the ADDRESS object left out (it never flows back: R13)."""
    return {tag: value for tag, value in (member.get("merge_fields") or {}).items()
            if value not in ("", None) and not isinstance(value, dict)}


def _epoch_us(values: list) -> np.ndarray | None:
    """`epoch_us(mailchimp_time(v))` of each value, parsed at once (ISO 8601 text; none or "" is 0, the epoch); None
    when a value is something else, or not ISO 8601 text from the epoch on (then `mailchimp_time` reads each)."""
    given = [v for v in values if v]
    if not all(isinstance(v, str) for v in given):
        return None
    try:
        times = pd.to_datetime(pd.Series(given, dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    ns = times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    if len(ns) and (times.isna().any() or ns.min() < 0):
        return None
    out = np.zeros(len(values), dtype=np.int64)
    out[np.flatnonzero([bool(v) for v in values])] = ns // 1000
    return out


def mailchimp_time(value) -> datetime:
    """A Mailchimp time (ISO 8601 with offset) in UTC (naive means UTC); the epoch when there is none. Read by
    `datetime.fromisoformat` (a change feed holds one per member), by pandas when that cannot read it."""
    if not value:
        return datetime.fromtimestamp(0, tz=timezone.utc)
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None:
        when = pd.Timestamp(value).to_pydatetime()
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
