"""The Spotler Mail+ account held in memory: contacts keyed by externalId, bounces, mailings, interactions.

Everything is plain Python (dicts, lists) guarded by one lock; a batch of 1000 contacts is a loop of
dictionary merges, and the updates feed keeps the contacts sorted by lastChanged per version so paging through
100,000 contacts does not re-sort per page.

Instants are epoch milliseconds (UTC). ``version`` grows with every change; ``changes`` is the change log
(one entry per change: ``{"at", "externalId", "change", "source"}`` with source ``api``, ``recipient``
or ``user``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from operator import attrgetter
from zoneinfo import ZoneInfo

import orjson

from afas_pipeline.lib.bulk import collector_paused

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
UTC = dt.timezone.utc
MAX_BATCH = 1000
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10000
MAX_STRING = 255
EMAIL_SYNTAX = re.compile(r"[^@\s\"(),:;<>\[\\\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}")
GENDERS = ("M", "F")
CHANNELS = ("EMAIL", "SMS")
#: Top-level contact fields a client may send back as it read them; they are not writable.
READ_ONLY = {"encryptedId", "created", "lastChanged", "testGroup", "temporary"}
ONLINE_BASE = "https://sandbox.mailplus.invalid"

#: The account's contact properties, as ``GET contact/properties/list`` returns them.
PROPERTIES: list[dict] = [
    {"name": "email", "description": "E-mailadres", "type": "email"},
    {"name": "firstName", "description": "Voornaam", "type": "string"},
    {"name": "infix", "description": "Tussenvoegsel", "type": "string"},
    {"name": "lastName", "description": "Achternaam", "type": "string"},
    {"name": "initials", "description": "Voorletters", "type": "string"},
    {"name": "organisation", "description": "Organisatie", "type": "string"},
    {"name": "function", "description": "Functie", "type": "string"},
    {"name": "city", "description": "Plaats", "type": "string"},
    {"name": "country", "description": "Land", "type": "string"},
    {"name": "gender", "description": "Geslacht", "type": "gender"},
    {"name": "afasPersonId", "description": "AFAS persoonnummer", "type": "string"},
    {"name": "afasOrganisationId", "description": "AFAS organisatienummer", "type": "string"},
    {"name": "debtor", "description": "Debiteur", "type": "string"},
    {"name": "permissions", "description": "Permissies", "type": "set",
     "entries": [{"bit": 1, "description": "Nieuwsbrief", "rank": 1},
                 {"bit": 2, "description": "Evenementen", "rank": 2}]},
]
PROPERTY_TYPES = {p["name"]: p["type"] for p in PROPERTIES}
PERMISSION_ENTRIES = sorted(PROPERTIES[-1]["entries"], key=lambda e: e["rank"])
PERMISSION_BITS = {e["bit"]: e["description"] for e in PERMISSION_ENTRIES}
INTERACTION_KINDS = ("sent", "opened", "clicked", "bounced")
#: The permission entries and the channels of contacts' documents, per combination of their values (booleans), made
#: once and shared by the documents of a change-feed page (`Contact.feed_document`).
_PERMISSION_ENTRIES: dict[tuple[bool, ...], list[dict]] = {}
_CHANNEL_ENTRIES: dict[tuple[tuple[str, bool], ...], list[dict]] = {}
_BITS, _NOT_GIVEN = tuple(PERMISSION_BITS), (False,) * len(PERMISSION_BITS)  # a bit a contact does not hold is off


def _permission_entries(values: tuple) -> list[dict]:
    return [{"bit": bit, "enabled": enabled, "description": description}
            for (bit, description), enabled in zip(PERMISSION_BITS.items(), values)]


def _channel_entries(channels) -> list[dict]:
    return [{"name": name, "value": value} for name, value in channels]


class Invalid(Exception):
    """A contact in a write is refused; ``code`` is the contact/list result code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def now_ms() -> int:
    return int(dt.datetime.now(UTC).timestamp() * 1000)


def parse_date(text: str) -> int:
    """A query date -> epoch ms. ISO-8601; an offset (or Z) is honoured, a naive value is Amsterdam local
    time (an ambiguous autumn time is the earlier occurrence and a skipped spring time moves forward, as
    Java's ``ZonedDateTime`` resolves them); a date alone is local midnight; all digits is epoch ms."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=AMSTERDAM, fold=0)
    return round(value.timestamp() * 1000)


def encrypted_id(kind: str, key: str) -> str:
    return hashlib.sha256(f"spotler-sandbox:{kind}:{key}".encode()).hexdigest()[:40]


@dataclass(slots=True)
class Contact:
    external_id: str
    encrypted_id: str
    created: int
    last_changed: int
    properties: dict = field(default_factory=dict)   # every property but the permission set
    permissions: dict = field(default_factory=dict)  # bit -> enabled (missing: off)
    channels: dict = field(default_factory=lambda: {"EMAIL": True})
    test_group: bool = False
    temporary: bool = False

    def feed_document(self) -> dict:
        """`to_json()`, with its permission entries and channels shared with other contacts that hold the same values:
        only for serialising a change-feed page at once (`Account.updates`), never to be changed. The feed after a
        large write shows every contact written: a page of 10,000 takes 35-40 ms so (7 of them in `orjson.dumps`),
        42-44 ms as documents serialised one by one and joined (orjson allocates a buffer per call)."""
        values = tuple(map(self.permissions.get, _BITS, _NOT_GIVEN))
        channels = tuple(self.channels.items())
        if not {*map(type, values), *map(type, self.channels.values())} <= {bool}:
            return self.to_json()  # 1 is not True in the document, though they are the same key
        entries = _PERMISSION_ENTRIES.get(values)
        if entries is None:
            entries = _PERMISSION_ENTRIES.setdefault(values, _permission_entries(values))
        channel_entries = _CHANNEL_ENTRIES.get(channels)
        if channel_entries is None:
            channel_entries = _CHANNEL_ENTRIES.setdefault(channels, _channel_entries(channels))
        return self._document(entries, channel_entries)

    def to_json(self) -> dict:
        return self._document(_permission_entries(tuple(map(self.permissions.get, _BITS, _NOT_GIVEN))),
                              _channel_entries(self.channels.items()))

    def _document(self, permission_entries: list[dict], channel_entries: list[dict]) -> dict:
        return {"externalId": self.external_id, "encryptedId": self.encrypted_id, "created": self.created,
                "lastChanged": self.last_changed, "testGroup": self.test_group, "temporary": self.temporary,
                "properties": {**self.properties, "permissions": permission_entries}, "channels": channel_entries}

    @classmethod
    def from_json(cls, doc: dict) -> "Contact":
        props = dict(doc.get("properties") or {})
        perms = {int(p["bit"]): bool(p["enabled"]) for p in props.pop("permissions", None) or []}
        return cls(str(doc["externalId"]), doc.get("encryptedId") or encrypted_id("contact", doc["externalId"]),
                   int(doc["created"]), int(doc["lastChanged"]), props, perms,
                   {c["name"]: bool(c["value"]) for c in doc.get("channels") or [{"name": "EMAIL", "value": True}]},
                   bool(doc.get("testGroup", False)), bool(doc.get("temporary", False)))


@dataclass(slots=True)
class Write:
    """One validated contact from a write request."""

    external_id: str
    properties: dict      # name -> value (None: clear)
    permissions: dict     # bit -> enabled
    channels: dict        # name -> value


def _string(name: str, value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid("PROPERTY_INVALID", f"property '{name}' must be a string")
    value = str(value)
    if len(value) > MAX_STRING:
        raise Invalid("PROPERTY_INVALID", f"property '{name}' is longer than {MAX_STRING} characters")
    return value


def _email(value) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Invalid("PROPERTY_INVALID", "property 'email' must be a string")
    value = value.strip()
    if len(value) > MAX_STRING or not EMAIL_SYNTAX.fullmatch(value):
        raise Invalid("PROPERTY_INVALID", "property 'email' is not a valid e-mail address")
    return value


def _permissions(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise Invalid("PROPERTY_INVALID", "property 'permissions' must be a list of {bit, enabled}")
    result = {}
    for entry in value:
        bit = entry.get("bit") if isinstance(entry, dict) else None
        if isinstance(bit, bool) or not isinstance(bit, int) or not isinstance(entry.get("enabled"), bool):
            raise Invalid("PROPERTY_INVALID", "property 'permissions' entries are {bit: int, enabled: bool}")
        if bit not in PERMISSION_BITS:
            raise Invalid("PROPERTY_INVALID", f"property 'permissions' has no bit {bit}")
        result[bit] = entry["enabled"]
    return result


def validate(doc, external_id: str | None = None) -> Write:
    """A contact document from a write -> ``Write``; ``Invalid`` names the first problem."""
    if not isinstance(doc, dict):
        raise Invalid("ERROR", "a contact is a JSON object")
    unknown = set(doc) - READ_ONLY - {"externalId", "properties", "channels"}
    if unknown:
        raise Invalid("ERROR", f"unknown contact field '{sorted(unknown)[0]}'")
    ext = doc.get("externalId", external_id)
    if external_id is not None and ext != external_id:
        raise Invalid("ERROR", "externalId in the body differs from the one in the path")
    if isinstance(ext, int) and not isinstance(ext, bool):
        ext = str(ext)
    if not isinstance(ext, str) or not ext.strip():
        raise Invalid("ERROR", "externalId is required")
    raw = doc.get("properties") or {}
    if not isinstance(raw, dict):
        raise Invalid("PROPERTY_INVALID", "properties must be an object")
    properties, permissions = {}, {}
    for name, value in raw.items():
        kind = PROPERTY_TYPES.get(name)
        if kind is None:
            raise Invalid("PROPERTY_INVALID", f"unknown property '{name}'")
        if kind == "set":
            permissions = _permissions(value)
        elif kind == "email":
            properties[name] = _email(value)
        elif kind == "gender":
            if value not in (None, *GENDERS):
                raise Invalid("PROPERTY_INVALID", f"property '{name}' must be one of {', '.join(GENDERS)}")
            properties[name] = value
        else:
            properties[name] = _string(name, value)
    channels = {}
    for channel in doc.get("channels") or []:
        if not isinstance(channel, dict) or channel.get("name") not in CHANNELS \
                or not isinstance(channel.get("value"), bool):
            raise Invalid("ERROR", "channels entries are {name: EMAIL|SMS, value: bool}")
        channels[channel["name"]] = channel["value"]
    return Write(ext, properties, permissions, channels)


def _window(items, key, start: int | None, end: int | None):
    return [i for i in items if (start is None or key(i) >= start) and (end is None or key(i) < end)]


class Account:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.contacts: dict[str, Contact] = {}
            self.bounces: list[dict] = []          # {date, type, externalId, encryptedActId, mailing}
            self.mailings: dict[str, dict] = {}    # encryptedId -> stored mailing
            self.interactions: dict[str, list[dict]] = {k: [] for k in INTERACTION_KINDS}
            self.changes: list[dict] = []
            self.next_id = 1
            self.version = 0
            self._by_change: tuple | None = None  # (version, contacts by lastChanged, their stamps)
            self.clock_offset_ms = 0

    def now(self) -> int:
        """The account's clock: the real time, moved by ``clock_offset_ms`` (set through the admin API)."""
        return now_ms() + self.clock_offset_ms

    # --- writes ------------------------------------------------------------------------------
    def _changed(self, contact: Contact, at: int, change: str, source: str) -> None:
        contact.last_changed = at
        self.version += 1
        self.changes.append({"at": at, "externalId": contact.external_id, "change": change, "source": source})

    def apply(self, write: Write, *, update: bool, purge: bool, at: int, create: bool = True,
              source: str = "api") -> str:
        """Insert or merge one validated contact; returns the result code (``OK``) or raises ``Invalid``."""
        contact = self.contacts.get(write.external_id)
        if contact is None:
            if not create:
                raise Invalid("CONTACT_UNKNOWN", f"contact '{write.external_id}' does not exist")
            contact = Contact(write.external_id, encrypted_id("contact", write.external_id), at, at)
            contact.properties = {k: v for k, v in write.properties.items() if v is not None}
            contact.permissions = dict(write.permissions)
            contact.channels.update(write.channels)
            self.contacts[write.external_id] = contact
            self._changed(contact, at, "created", "api")
            return "OK"
        if not update:
            raise Invalid("CONTACT_ALREADY_EXISTS", f"contact '{write.external_id}' already exists")
        before = (dict(contact.properties), dict(contact.permissions), dict(contact.channels))
        if purge:
            contact.properties = {k: v for k, v in write.properties.items() if v is not None}
            contact.permissions = dict(write.permissions)
        else:
            for name, value in write.properties.items():
                if value is None:
                    contact.properties.pop(name, None)
                else:
                    contact.properties[name] = value
            contact.permissions.update(write.permissions)
        contact.channels.update(write.channels)
        if (contact.properties, contact.permissions, contact.channels) != before:
            self._changed(contact, at, "purged" if purge else "updated", source)
        return "OK"

    def write_one(self, write: Write, *, update: bool, purge: bool, create: bool = True) -> str:
        with self.lock:
            return self.apply(write, update=update, purge=purge, at=self.now(), create=create)

    def write_many(self, docs: list, *, update: bool, purge: bool) -> list[dict]:
        results = []
        with self.lock:
            at = self.now()
            for doc in docs:
                ext = doc.get("externalId") if isinstance(doc, dict) else None
                try:
                    code = self.apply(validate(doc), update=update, purge=purge, at=at)
                    results.append({"externalId": ext, "code": code, "message": None})
                except Invalid as exc:
                    results.append({"externalId": ext, "code": exc.code, "message": exc.message})
        return results

    def get(self, external_id: str) -> Contact | None:
        return self.contacts.get(external_id)

    def all_contacts(self) -> list[dict]:
        with self.lock:
            return [c.to_json() for c in self.contacts.values()]

    def inactivate(self, external_id: str, at: int | None = None, source: str = "api") -> Contact | None:
        with self.lock:
            contact = self.contacts.get(external_id)
            if contact is not None and any(contact.channels.values()):
                contact.channels = {name: False for name in contact.channels}
                self._changed(contact, self.now() if at is None else at, "inactivated", source)
            return contact

    def anonymize(self, external_id: str) -> Contact | None:
        with self.lock:
            contact = self.contacts.get(external_id)
            if contact is not None:
                contact.properties, contact.permissions = {}, {}
                contact.channels = {name: False for name in contact.channels}
                self._changed(contact, self.now(), "anonymized", "api")
            return contact

    # --- a recipient or a Spotler user acting ------------------------------------------------
    def set_permission(self, external_id: str, bit: int, enabled: bool, at: int) -> Contact:
        with self.lock:
            contact = self._require(external_id)
            if bit not in PERMISSION_BITS:
                raise KeyError(f"the account has no permission bit {bit}")
            if contact.permissions.get(bit, False) != enabled:
                contact.permissions[bit] = enabled
                self._changed(contact, at, f"{'subscribe' if enabled else 'unsubscribe'} bit {bit}", "recipient")
            return contact

    def edit(self, external_id: str, properties: dict, at: int) -> Contact:
        """A Spotler user edits a contact's properties in the UI (merge; null clears a property)."""
        with self.lock:
            contact = self._require(external_id)
            self.apply(validate({"externalId": external_id, "properties": properties}), update=True, purge=False,
                       at=at, create=False, source="user")
            return contact

    def bounce(self, external_id: str, hard: bool, at: int, mailing: str | None) -> dict:
        with self.lock:
            contact = self._require(external_id)
            if mailing is not None:
                self._require_mailing(mailing)
            record = {"date": at, "type": "HARDBOUNCE" if hard else "SOFTBOUNCE", "externalId": external_id,
                      "encryptedActId": encrypted_id("act", f"{len(self.bounces)}:{external_id}:{at}"),
                      "mailing": mailing}
            self.bounces.append(record)
            if hard and contact.channels.get("EMAIL", False):
                contact.channels["EMAIL"] = False
                self._changed(contact, at, "hard bounce", "recipient")
            else:
                self.version += 1
            if mailing is not None:
                self._interaction("bounced", contact, self.mailings[mailing], at, bounceType="HARD" if hard else "SOFT")
            return record

    def interact(self, kind: str, external_id: str, mailing: str, at: int) -> dict:
        with self.lock:
            contact = self._require(external_id)
            return self._interaction(kind, contact, self._require_mailing(mailing), at)

    def send_mailing(self, *, name: str, subject: str, recipients: list[str] | None, bit: int,
                     trend_report_id: int | None, campaign: bool, at: int) -> dict:
        with self.lock:
            if recipients is None:
                chosen = [c for c in self.contacts.values() if c.permissions.get(bit, False)]
            else:
                chosen = [self._require(ext) for ext in recipients]
            enc = encrypted_id("mailing", f"{len(self.mailings)}:{name}:{at}")
            mailing = {"encryptedId": enc, "name": name, "subject": subject, "scheduledStartDate": at,
                       "type": "EMAIL", "archiveLink": f"{ONLINE_BASE}/archive/{enc}", "sentCount": 0,
                       "campaign": campaign, "trendReportId": trend_report_id, "bit": bit}
            self.mailings[enc] = mailing
            sent, skipped = [], []
            for contact in chosen:
                if contact.channels.get("EMAIL", False) and contact.properties.get("email"):
                    sent.append(self._interaction("sent", contact, mailing, at, name=name, subject=subject,
                                                  onlineVersionLink=f"{ONLINE_BASE}/online/{enc}/"
                                                                    f"{contact.encrypted_id}"))
                else:
                    skipped.append(contact.external_id)
            mailing["sentCount"] = len(sent)
            return {**mailing_detail(mailing), "sent": sent, "skipped": skipped}

    def _interaction(self, kind: str, contact: Contact, mailing: dict, at: int, **extra) -> dict:
        item = {"id": self.next_id, "externalContactId": contact.external_id,
                "encryptedMailingId": mailing["encryptedId"], "date": at, "changeDate": at,
                "trendReportId": mailing["trendReportId"], **extra}
        self.next_id += 1
        self.version += 1
        self.interactions[kind].append(item)
        return item

    def _require(self, external_id: str) -> Contact:
        contact = self.contacts.get(external_id)
        if contact is None:
            raise LookupError(f"no contact with externalId {external_id!r}")
        return contact

    def _require_mailing(self, enc: str) -> dict:
        if enc not in self.mailings:
            raise LookupError(f"no mailing {enc!r}")
        return self.mailings[enc]

    # --- reads -------------------------------------------------------------------------------
    def updates(self, start: int, end: int, after: int, size: int) -> bytes:
        """A page of ``contact/updates/list``, as its JSON body."""
        with self.lock, collector_paused():  # a page of fresh objects, freed by reference counting
            if self._by_change is None or self._by_change[0] != self.version:
                # By (lastChanged, externalId): by id, then stably by time, which is 3-4x faster than sorting by the
                # pair (after a large write every contact is on the feed: 80,000 of them in 37 against 145 ms).
                rows = sorted(self.contacts.values(), key=attrgetter("external_id"))
                rows.sort(key=attrgetter("last_changed"))
                self._by_change = (self.version, rows, [c.last_changed for c in rows])
            _, rows, stamps = self._by_change
            first, stop = bisect_left(stamps, start), bisect_left(stamps, end)
            return orjson.dumps([c.feed_document() for c in rows[first + after: min(stop, first + after + size)]])

    def bounce_list(self, start: int, end: int, after: int, size: int) -> list[dict]:
        with self.lock, collector_paused():
            rows = sorted(_window(self.bounces, lambda b: b["date"], start, end), key=lambda b: b["date"])
            return [{"date": b["date"], "type": b["type"], "contact": self.contacts[b["externalId"]].to_json(),
                     "encryptedActId": b["encryptedActId"]} for b in rows[after: after + size]]

    def mailing_list(self, start: int | None, end: int | None) -> list[dict]:
        with self.lock:
            rows = _window((m for m in self.mailings.values() if not m["campaign"]),
                           lambda m: m["scheduledStartDate"], start, end)
            return [mailing_summary(m) for m in sorted(rows, key=lambda m: m["scheduledStartDate"])]

    def mailing(self, enc: str, campaign: bool) -> dict | None:
        with self.lock:
            m = self.mailings.get(enc)
            return mailing_detail(m) if m is not None and m["campaign"] == campaign else None

    def interaction_list(self, kind: str, *, start, end, change_start, change_end, trend_report_ids,
                         after: int, size: int) -> tuple[list[dict], bool]:
        with self.lock:
            rows = _window(self.interactions[kind], lambda i: i["date"], start, end)
            rows = _window(rows, lambda i: i["changeDate"], change_start, change_end)
            if trend_report_ids is not None:
                rows = [i for i in rows if i["trendReportId"] in trend_report_ids]
            return [dict(i) for i in rows[after: after + size]], after + size < len(rows)

    # --- dataset -----------------------------------------------------------------------------
    def export(self) -> dict:
        with self.lock:
            return {"contacts": [c.to_json() for c in self.contacts.values()], "bounces": list(self.bounces),
                    "mailings": [dict(m) for m in self.mailings.values()],
                    "interactions": {k: list(v) for k, v in self.interactions.items()},
                    "changes": list(self.changes), "next_id": self.next_id}

    def load(self, doc: dict) -> None:
        contacts = {c.external_id: c for c in map(Contact.from_json, doc.get("contacts") or [])}
        mailings = {m["encryptedId"]: dict(m) for m in doc.get("mailings") or []}
        interactions = {k: list((doc.get("interactions") or {}).get(k) or []) for k in INTERACTION_KINDS}
        with self.lock:
            self.reset()
            self.contacts, self.mailings, self.interactions = contacts, mailings, interactions
            self.bounces = list(doc.get("bounces") or [])
            self.changes = list(doc.get("changes") or [])
            self.next_id = int(doc.get("next_id") or 1 + sum(len(v) for v in interactions.values()))
            self.version += 1

    def counts(self) -> dict:
        with self.lock:
            return {"contacts": len(self.contacts), "bounces": len(self.bounces), "mailings": len(self.mailings),
                    **{f"interactions_{k}": len(v) for k, v in self.interactions.items()},
                    "changes": len(self.changes)}


def mailing_summary(m: dict) -> dict:
    return {key: m[key] for key in ("encryptedId", "name", "scheduledStartDate", "type", "archiveLink",
                                    "sentCount")}


def mailing_detail(m: dict) -> dict:
    return {**mailing_summary(m), "sender": "Sandbox <nieuwsbrief@sandbox.mailplus.invalid>",
            "targetGroup": f"Permissie {m['bit']}",
            "message": {"subject": m["subject"], "fromName": "Sandbox",
                        "fromAddress": "nieuwsbrief@sandbox.mailplus.invalid"},
            "links": [{"url": m["archiveLink"], "type": "ARCHIVE"}]}
