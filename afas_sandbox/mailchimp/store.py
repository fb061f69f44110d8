"""The Mailchimp account held in memory: audiences (lists) with merge fields and members, campaigns, and each
member's activity (sent, open, click, bounce, unsub).

Plain Python guarded by one lock. Instants are epoch seconds (Mailchimp's times have whole seconds), written as
``2026-10-25T00:05:00+00:00``. ``version`` grows with every change, so a ``GET members`` paged through a
large audience filters it once per version, not once per page. ``changes`` is the change log, one entry per
change: ``{"at", "list_id", "email_id", "email_address", "change", "source"}`` with source ``api`` (a REST call),
``member`` (the person, e.g. an unsubscribe link) or ``admin`` (Mailchimp cleaning an address).

Member rules (reference §B3), where the reference is silent the most demanding reading:

- A member is found by ``subscriber_hash`` (md5 of the trimmed, lower-cased address), by the address itself or
  by its ``contact_id``. ``email_address`` keeps the case it was written with.
- Create (``POST members``, ``PUT`` of an unknown member, batch): the status is ``status_if_new`` (PUT; else
  ``status``) and is required. ``PUT`` creates the member of the body's address, whatever hash the path named;
  when that address already is a member the answer is "Member Exists". An address that was deleted
  permanently is refused with "Forgotten Email Not Subscribed", whatever the status (pending too).
- Update (``PUT``/``PATCH``, batch with ``update_existing``): ``status_if_new`` is ignored; ``status`` is applied
  only when sent. ``subscribed`` for a member who is ``unsubscribed`` or ``cleaned`` is refused with "Member In
  Compliance State"; ``pending`` is allowed (the double opt-in way back). Merge fields merge (an empty string
  clears one). A body address other than the member's renames it: its hash changes, the old hash is 404 from
  then on, and an address that already is a member is "Member Exists".
- ``last_changed`` is stamped only when a write changes something; an identical write is answered 200 and
  leaves it (and the change log) alone.
- ``DELETE`` archives (status ``archived``, 204); an archived member is found by GET and listed, and a write
  brings it back as if new, except that an archived member who had unsubscribed or was cleaned still cannot
  be re-subscribed. ``DELETE`` of an archived or unknown member is 404.
- ``actions/delete-permanent`` removes the member and its activity for good (204); its address is remembered
  only as a hash.
- Only subscribed members receive a campaign. A soft bounce leaves the status alone; a hard bounce cleans.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import hashlib
import threading
from dataclasses import asdict, dataclass, field

from afas_pipeline.lib.bulk import collector_paused
from afas_sandbox.mailchimp import validation as check
from afas_sandbox.mailchimp.errors import (
    Problem,
    compliance_state,
    field_error,
    forgotten,
    invalid,
    member_exists,
    not_found,
)

UTC = dt.timezone.utc
#: The sandbox's audience, there from the start: a documented constant.
SANDBOX_LIST_ID = "f3768f3c95"
SANDBOX_LIST_NAME = "AFAS pipeline sandbox"
MAX_BATCH = 500
ACTIVITY_TYPES = ("sent", "open", "click", "bounce", "unsub")
ARCHIVE_BASE = "https://us21.campaign-archive.sandbox.invalid"
API_UNSUBSCRIBE_REASON = "N/A (Unsubscribed by an admin)"
MEMBER_UNSUBSCRIBE_REASON = "N/A (Unsubscribed by the contact)"

#: A new audience's merge fields (FNAME, LNAME, ADDRESS, PHONE) plus COMPANY, a text field.
DEFAULT_MERGE_FIELDS: list[dict] = [
    {"merge_id": 1, "tag": "FNAME", "name": "First Name", "type": "text", "options": {"size": 25}},
    {"merge_id": 2, "tag": "LNAME", "name": "Last Name", "type": "text", "options": {"size": 25}},
    {"merge_id": 3, "tag": "ADDRESS", "name": "Address", "type": "address", "options": {"default_country": 164}},
    {"merge_id": 4, "tag": "PHONE", "name": "Phone Number", "type": "phone", "options": {"phone_format": "none"}},
    {"merge_id": 5, "tag": "COMPANY", "name": "Company", "type": "text", "options": {"size": 25}},
]
#: What the sandbox audience has besides, as a Mailchimp user linking AFAS would set it up: the AFAS contact id each
#: member carries (the pipeline's key of a member), and the contact's job title (a field that flows both ways).
SANDBOX_MERGE_FIELDS: list[dict] = [
    {"merge_id": 6, "tag": "AFASID", "name": "AFAS contact id", "type": "text", "options": {"size": 25}},
    {"merge_id": 7, "tag": "JOBTITLE", "name": "Job title", "type": "text", "options": {"size": 25}},
]


class ActionRefused(Exception):
    """An admin action the member's state does not allow (e.g. confirming a member who is not pending)."""


def now_s() -> int:
    return int(dt.datetime.now(UTC).timestamp())


@functools.lru_cache(maxsize=1 << 16)
def iso(ts: int | None) -> str:
    """A time as Mailchimp writes it. Remembered: a page of members changed by one large write shares a few
    seconds, and formatting each member's time was a third of the time such a page took."""
    return "" if ts is None else dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _hex(kind: str, n: int, length: int) -> str:
    return hashlib.md5(f"mailchimp-sandbox:{kind}:{n}".encode()).hexdigest()[:length]


def _merge_field(doc: dict, display_order: int) -> dict:
    return {"merge_id": doc["merge_id"], "tag": doc["tag"], "name": doc["name"], "type": doc["type"],
            "required": doc.get("required", False), "default_value": doc.get("default_value", ""),
            "public": doc.get("public", False), "display_order": doc.get("display_order", display_order),
            "options": dict(doc.get("options") or {}), "help_text": doc.get("help_text", "")}


@dataclass(slots=True)
class Member:
    seq: int
    email_address: str
    status: str
    contact_id: str
    unique_email_id: str
    web_id: int
    last_changed: int
    merge_fields: dict = field(default_factory=dict)   # tag -> value; missing means empty
    email_type: str = "html"
    language: str = ""
    vip: bool = False
    tags: dict = field(default_factory=dict)           # name -> epoch s added
    unsubscribe_reason: str = ""
    ip_signup: str = ""
    timestamp_signup: str = ""
    ip_opt: str = ""
    timestamp_opt: str = ""
    status_before_archive: str | None = None
    activity: list = field(default_factory=list)       # {"type", "at", "campaign_id", ...}, oldest first

    @property
    def id(self) -> str:
        return subscriber_hash(self.email_address)

    def state(self) -> tuple:
        return (self.email_address, self.status, dict(self.merge_fields), self.email_type, self.language, self.vip,
                self.ip_signup, self.timestamp_signup, self.ip_opt, self.timestamp_opt)


@dataclass
class Audience:
    id: str
    web_id: int
    name: str
    date_created: int
    merge_fields: list[dict]
    members: dict[str, Member] = field(default_factory=dict)   # subscriber_hash -> member
    forgotten: set[str] = field(default_factory=set)           # hashes deleted permanently
    tag_ids: dict[str, int] = field(default_factory=dict)
    by_contact: dict[str, str] = field(default_factory=dict)   # contact_id -> subscriber_hash

    def find(self, key: str) -> Member | None:
        if "@" in key:
            return self.members.get(subscriber_hash(key))
        found = self.members.get(key.lower())
        if found is None and key in self.by_contact:
            found = self.members.get(self.by_contact[key])
        return found

    def merge_json(self, merge: dict) -> dict:
        return {**merge, "options": dict(merge["options"]), "list_id": self.id}

    def member_json(self, m: Member, only: frozenset[str] | None = None) -> dict:
        """The member as the API shows it; `only`: just these of its keys, when each is in `MEMBER_PARTS` (a
        page asked for with `fields` is then not built whole to be cut down)."""
        if only is not None and only <= MEMBER_PARTS.keys():
            return {key: MEMBER_PARTS[key](self, m) for key in only}
        values = self.merge_values(m)
        sent = sum(1 for a in m.activity if a["type"] == "sent")
        opened = len({a["campaign_id"] for a in m.activity if a["type"] == "open"})
        clicked = len({a["campaign_id"] for a in m.activity if a["type"] == "click"})
        doc = {"id": m.id, "email_address": m.email_address, "unique_email_id": m.unique_email_id,
               "contact_id": m.contact_id,
               "full_name": f"{values.get('FNAME', '')} {values.get('LNAME', '')}".strip(),
               "web_id": m.web_id, "email_type": m.email_type, "status": m.status,
               "consents_to_one_to_one_messaging": True, "merge_fields": values, "interests": {},
               "stats": {"avg_open_rate": round(opened / sent, 4) if sent else 0,
                         "avg_click_rate": round(clicked / sent, 4) if sent else 0},
               "ip_signup": m.ip_signup, "timestamp_signup": m.timestamp_signup, "ip_opt": m.ip_opt,
               "timestamp_opt": m.timestamp_opt, "member_rating": 2, "last_changed": iso(m.last_changed),
               "language": m.language, "vip": m.vip, "email_client": "",
               "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "",
                            "timezone": "", "region": ""},
               "source": "API - Generic", "tags_count": len(m.tags),
               "tags": [{"id": self.tag_ids[name], "name": name} for name in m.tags], "list_id": self.id}
        if m.status == "unsubscribed":
            doc["unsubscribe_reason"] = m.unsubscribe_reason
        return doc

    def merge_values(self, m: Member) -> dict:
        values = {f["tag"]: m.merge_fields.get(f["tag"], "") for f in self.merge_fields}
        return {tag: (dict(v) if isinstance(v, dict) else v) for tag, v in values.items()}


#: Keys of a member made on their own, as `Audience.member_json` makes them.
MEMBER_PARTS = {
    "id": lambda aud, m: m.id,
    "email_address": lambda aud, m: m.email_address,
    "contact_id": lambda aud, m: m.contact_id,
    "status": lambda aud, m: m.status,
    "last_changed": lambda aud, m: iso(m.last_changed),
    "merge_fields": Audience.merge_values,
    "list_id": lambda aud, m: aud.id,
}


def _default_audience(at: int) -> Audience:
    return Audience(SANDBOX_LIST_ID, 100001, SANDBOX_LIST_NAME, at,
                    [_merge_field(f, i + 2) for i, f in enumerate(DEFAULT_MERGE_FIELDS + SANDBOX_MERGE_FIELDS)])


class Account:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock_offset_s = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.clock_offset_s = 0
            self.lists: dict[str, Audience] = {SANDBOX_LIST_ID: _default_audience(self.now())}
            self.campaigns: dict[str, dict] = {}
            self.changes: list[dict] = []
            self.next_seq = 1
            self.version = 0
            self._query: tuple | None = None   # (version, list id, filters, matching members)

    def now(self) -> int:
        """The account's clock: the real time, moved by ``clock_offset_s`` (set through the admin API)."""
        return now_s() + self.clock_offset_s

    def audience(self, list_id: str) -> Audience:
        aud = self.lists.get(list_id)
        if aud is None:
            raise not_found()
        return aud

    def member(self, list_id: str, key: str) -> Member:
        found = self.audience(list_id).find(key)
        if found is None:
            raise not_found()
        return found

    def _log(self, aud: Audience, m: Member, change: str, source: str, at: int) -> None:
        self.version += 1
        self.changes.append({"at": iso(at), "list_id": aud.id, "email_id": m.id, "email_address": m.email_address,
                             "change": change, "source": source})

    # --- member writes ---------------------------------------------------------------------------------
    def put_member(self, list_id: str, key: str, doc, *, skip: bool, patch: bool = False) -> dict:
        if not isinstance(doc, dict):
            raise field_error("", "Schema describes object, " + type(doc).__name__ + " found instead")
        with self.lock:
            aud, at = self.audience(list_id), self.now()
            member = aud.find(key)
            if patch and member is None:
                raise not_found()
            if patch and "email_address" not in doc:
                email = member.email_address
            else:
                email = check.email_address(doc.get("email_address"))
            if member is None or member.status == "archived":
                if member is None:
                    member = aud.members.get(subscriber_hash(email))
                    if member is not None and member.status != "archived":
                        raise member_exists(email)
                status = check.status(doc.get("status_if_new"), "status_if_new") or check.status(doc.get("status"),
                                                                                               "status")
                return aud.member_json(self._create(aud, email, status, doc, at, skip, member,
                                                    "status" if patch else "status_if_new"))
            self._update(aud, member, doc, check.status(doc.get("status"), "status"), email, at, skip, "api")
            return aud.member_json(member)

    def post_member(self, list_id: str, doc, *, skip: bool) -> dict:
        if not isinstance(doc, dict):
            raise field_error("", "Schema describes object, " + type(doc).__name__ + " found instead")
        with self.lock:
            aud, at = self.audience(list_id), self.now()
            email = check.email_address(doc.get("email_address"))
            member = aud.members.get(subscriber_hash(email))
            if member is not None and member.status != "archived":
                raise member_exists(email)
            status = check.status(doc.get("status"), "status")
            return aud.member_json(self._create(aud, email, status, doc, at, skip, member, "status"))

    def batch_subscribe(self, list_id: str, doc, *, skip: bool) -> dict:
        if not isinstance(doc, dict) or not isinstance(doc.get("members"), list):
            raise field_error("members", "This value should be a list of members.")
        if len(doc["members"]) > MAX_BATCH:
            raise field_error("members", f"A batch holds at most {MAX_BATCH} members, not {len(doc['members'])}.")
        update_existing = check.flag(doc.get("update_existing"), "update_existing")
        created, updated, errors = [], [], []
        with self.lock:
            aud, at = self.audience(list_id), self.now()
            for item in doc["members"]:
                raw = item.get("email_address") if isinstance(item, dict) else None
                try:
                    if not isinstance(item, dict):
                        raise field_error("members", "Each member is an object.")
                    email = check.email_address(raw)
                    status = check.status(item.get("status"), "status")
                    member = aud.members.get(subscriber_hash(email))
                    if member is not None and member.status != "archived":
                        if not update_existing:
                            raise member_exists(email)
                        self._update(aud, member, item, status, None, at, skip, "api")
                        updated.append(aud.member_json(member))
                    else:
                        created.append(aud.member_json(self._create(aud, email, status, item, at, skip, member,
                                                                    "status")))
                except Problem as problem:
                    errors.append(_batch_error(raw, problem))
        return {"new_members": created, "updated_members": updated, "errors": errors,
                "total_created": len(created), "total_updated": len(updated), "error_count": len(errors)}

    def _create(self, aud: Audience, email: str, status: str | None, doc: dict, at: int, skip: bool,
                archived: Member | None, status_field: str) -> Member:
        """A new member (or an archived one back), after every check has passed."""
        h = subscriber_hash(email)
        if archived is None and h in aud.forgotten:
            raise forgotten(email)
        if archived is not None and h != archived.id:
            if h in aud.members:
                raise member_exists(email)
            if h in aud.forgotten:
                raise forgotten(email)
        if status is None:
            raise field_error(status_field, "This value should not be blank.")
        if archived is not None and status == "subscribed" and archived.status_before_archive in ("unsubscribed",
                                                                                               "cleaned"):
            raise compliance_state(email)
        values = check.merge_values(aud.merge_fields, doc.get("merge_fields"), current=None, skip_required=skip)
        attributes = _attributes(doc)
        tags = _tags(doc.get("tags"))
        if archived is None:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
            member = Member(seq, email, status, _hex("contact", seq, 32), _hex("ueid", seq, 10), 100000000 + seq, at)
            aud.members[h] = member
            aud.by_contact[member.contact_id] = h
        else:
            member = archived
            self._rename(aud, member, email)
            member.status, member.status_before_archive = status, None
            member.merge_fields = {}
        member.merge_fields.update({tag: v for tag, v in values.items() if v != ""})
        for name, value in attributes.items():
            setattr(member, name, value)
        for name in tags:
            self._tag(aud, member, name, True, at)
        self._status_effects(member, status, attributes, at)
        member.last_changed = at
        self._log(aud, member, "created" if archived is None else "restored", "api", at)
        return member

    def _update(self, aud: Audience, member: Member, doc: dict, status: str | None, email: str | None, at: int,
                skip: bool, source: str) -> bool:
        """Apply a write to an existing member, all checks first; whether anything changed."""
        if status == "subscribed" and member.status in ("unsubscribed", "cleaned"):
            raise compliance_state(member.email_address)
        values = check.merge_values(aud.merge_fields, doc.get("merge_fields"), current=member.merge_fields,
                                    skip_required=skip)
        attributes = _attributes(doc)
        new_hash = subscriber_hash(email) if email is not None else member.id
        if new_hash != member.id:
            if new_hash in aud.members:
                raise member_exists(email)
            if new_hash in aud.forgotten:
                raise forgotten(email)
        before = member.state()
        if email is not None:
            self._rename(aud, member, email)
        for tag, value in values.items():
            if value == "":
                member.merge_fields.pop(tag, None)
            else:
                member.merge_fields[tag] = value
        for name, value in attributes.items():
            setattr(member, name, value)
        if status is not None and status != member.status:
            member.status = status
            self._status_effects(member, status, attributes, at)
        if member.state() == before:
            return False
        member.last_changed = at
        self._log(aud, member, "updated", source, at)
        return True

    @staticmethod
    def _rename(aud: Audience, member: Member, email: str) -> None:
        old = member.id
        member.email_address = email
        if member.id != old:
            del aud.members[old]
            aud.members[member.id] = member
            aud.by_contact[member.contact_id] = member.id

    @staticmethod
    def _status_effects(member: Member, status: str, attributes: dict, at: int) -> None:
        """What a status written through the API brings along (the member's own unsubscribe is
        ``member_unsubscribes``)."""
        if status == "subscribed" and "timestamp_opt" not in attributes:
            member.timestamp_opt = iso(at)
        if status == "unsubscribed":
            member.unsubscribe_reason = API_UNSUBSCRIBE_REASON
            member.activity.append({"type": "unsub", "at": at, "campaign_id": None, "is_admin_unsubscribed": True,
                                    "unsubscribe_reason": API_UNSUBSCRIBE_REASON})
        else:
            member.unsubscribe_reason = ""

    def archive(self, list_id: str, key: str) -> None:
        with self.lock:
            aud, at = self.audience(list_id), self.now()
            member = aud.find(key)
            if member is None or member.status == "archived":
                raise not_found()
            member.status_before_archive, member.status = member.status, "archived"
            member.last_changed = at
            self._log(aud, member, "archived", "api", at)

    def delete_permanent(self, list_id: str, key: str) -> None:
        with self.lock:
            aud, at = self.audience(list_id), self.now()
            member = aud.find(key)
            if member is None:
                raise not_found()
            self._log(aud, member, "deleted permanently", "api", at)
            del aud.members[member.id]
            del aud.by_contact[member.contact_id]
            aud.forgotten.add(member.id)

    def set_tags(self, list_id: str, key: str, doc) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("tags"), list):
            raise field_error("tags", "This value should be a list of {name, status}.")
        changes = []
        for item in doc["tags"]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip() \
                    or item.get("status") not in ("active", "inactive"):
                raise field_error("tags", 'Each tag is {"name": "...", "status": "active" | "inactive"}.')
            changes.append((item["name"].strip(), item["status"] == "active"))
        with self.lock:
            aud, at = self.audience(list_id), self.now()
            member = self.member(list_id, key)
            for name, active in changes:
                self._tag(aud, member, name, active, at)
            self.version += 1

    @staticmethod
    def _tag(aud: Audience, member: Member, name: str, active: bool, at: int) -> None:
        if active:
            aud.tag_ids.setdefault(name, len(aud.tag_ids) + 1)
            member.tags.setdefault(name, at)
        else:
            member.tags.pop(name, None)

    # --- the person, or Mailchimp, acting (admin API) --------------------------------------------------
    def member_unsubscribes(self, list_id: str, key: str, at: int, reason: str | None,
                            campaign: str | None) -> dict:
        with self.lock:
            aud, member = self.audience(list_id), self._acting(list_id, key)
            if campaign is not None:
                self._campaign(campaign)
            if member.status != "unsubscribed":
                member.status = "unsubscribed"
                member.unsubscribe_reason = reason or MEMBER_UNSUBSCRIBE_REASON
                member.activity.append({"type": "unsub", "at": at, "campaign_id": campaign,
                                        "is_admin_unsubscribed": False,
                                        "unsubscribe_reason": member.unsubscribe_reason})
                member.last_changed = at
                self._log(aud, member, "unsubscribed", "member", at)
            return aud.member_json(member)

    def cleaned(self, list_id: str, key: str, at: int, campaign: str | None) -> dict:
        """Mailchimp cleans the address (a hard bounce, with the campaign it bounced on when given)."""
        with self.lock:
            aud, member = self.audience(list_id), self._acting(list_id, key)
            if campaign is not None:
                self._received(member, campaign)
                member.activity.append({"type": "bounce", "at": at, "campaign_id": campaign, "bounce_type": "hard"})
                self.version += 1
            if member.status != "cleaned":
                member.status, member.unsubscribe_reason = "cleaned", ""
                member.last_changed = at
                self._log(aud, member, "cleaned", "admin", at)
            return aud.member_json(member)

    def interaction(self, list_id: str, key: str, kind: str, campaign: str, at: int, **extra) -> dict:
        with self.lock:
            aud, member = self.audience(list_id), self._acting(list_id, key)
            self._received(member, campaign)
            if kind == "bounce" and extra.get("bounce_type") == "hard":
                return self.cleaned(list_id, key, at, campaign)
            member.activity.append({"type": kind, "at": at, "campaign_id": campaign, **extra})
            self.version += 1
            return aud.member_json(member)

    def edit_profile(self, list_id: str, key: str, values, at: int) -> dict:
        """The member edits their profile (the update-profile form): merge fields, validated as for the API."""
        with self.lock:
            aud, member = self.audience(list_id), self._acting(list_id, key)
            self._update(aud, member, {"merge_fields": values}, None, None, at, False, "member")
            return aud.member_json(member)

    def change_address(self, list_id: str, key: str, new_email, at: int) -> dict:
        """The member changes their address (``upemail``): a new hash, the old one no longer found."""
        with self.lock:
            aud, member = self.audience(list_id), self._acting(list_id, key)
            email = check.email_address(new_email)
            self._update(aud, member, {}, None, email, at, True, "member")
            return aud.member_json(member)

    def confirm(self, list_id: str, key: str, at: int) -> dict:
        """A pending member clicks the confirmation link of the double opt-in e-mail."""
        with self.lock:
            aud, member = self.audience(list_id), self._acting(list_id, key)
            if member.status != "pending":
                raise ActionRefused(f"{member.email_address} is {member.status}, not pending: nothing to confirm")
            self._update(aud, member, {}, "subscribed", None, at, True, "member")
            return aud.member_json(member)

    def send_campaign(self, list_id: str, *, title: str, subject_line: str, recipients: list[str] | None,
                      at: int) -> dict:
        with self.lock:
            aud = self.audience(list_id)
            if recipients is None:
                chosen = sorted(aud.members.values(), key=lambda m: m.seq)
            else:
                chosen = [self._acting(list_id, key) for key in recipients]
            n = len(self.campaigns) + 1
            cid = _hex("campaign", n, 10)
            sent = [m for m in chosen if m.status == "subscribed"]
            skipped = [m.email_address for m in chosen if m.status != "subscribed"] if recipients is not None else []
            for m in sent:
                m.activity.append({"type": "sent", "at": at, "campaign_id": cid})
            self.campaigns[cid] = {"id": cid, "web_id": 200000 + n, "list_id": aud.id, "title": title,
                                   "subject_line": subject_line, "create_time": at, "send_time": at,
                                   "recipients": [m.contact_id for m in sent]}
            self.version += 1
            return {**self.campaign_json(cid), "sent": [m.id for m in sent], "skipped": skipped}

    def _acting(self, list_id: str, key: str) -> Member:
        member = self.audience(list_id).find(key)
        if member is None or member.status == "archived":
            raise LookupError(f"no member {key!r} in audience {list_id}")
        return member

    def _campaign(self, cid: str) -> dict:
        if cid not in self.campaigns:
            raise LookupError(f"no campaign {cid!r}")
        return self.campaigns[cid]

    def _received(self, member: Member, cid: str) -> None:
        if member.contact_id not in self._campaign(cid)["recipients"]:
            raise LookupError(f"campaign {cid} was not sent to {member.email_address}")

    # --- reads ------------------------------------------------------------------------------------------
    def get_member(self, list_id: str, key: str) -> dict:
        with self.lock:
            aud = self.audience(list_id)
            return aud.member_json(self.member(list_id, key))

    def members_page(self, list_id: str, params) -> dict:
        with self.lock, collector_paused():  # a page of fresh objects, freed by reference counting
            aud = self.audience(list_id)
            paging = check.Paging(params)
            rows = self._matching(aud, _MemberFilter(params))
            only = check.wanted_keys(params, "members")
            return {"members": [aud.member_json(m, only) for m in paging.page(rows)], "list_id": aud.id,
                    "total_items": len(rows)}

    def _matching(self, aud: Audience, flt: "_MemberFilter") -> list[Member]:
        cached = self._query
        if cached is not None and cached[:3] == (self.version, aud.id, flt.key):
            return cached[3]
        rows = [m for m in aud.members.values() if flt.matches(m)]
        rows.sort(key=flt.sort_key, reverse=flt.descending)
        self._query = (self.version, aud.id, flt.key, rows)
        return rows

    def member_tags(self, list_id: str, key: str) -> dict:
        with self.lock:
            aud, member = self.audience(list_id), self.member(list_id, key)
            return {"tags": [{"id": aud.tag_ids[n], "name": n, "date_added": iso(at)} for n, at in member.tags.items()],
                    "total_items": len(member.tags)}

    def activity_feed(self, list_id: str, key: str, params) -> dict:
        wanted = {f.strip() for f in (params.get("activity_filters") or "").split(",") if f.strip()}
        paging = check.Paging(params)
        with self.lock:
            aud, member = self.audience(list_id), self.member(list_id, key)
            rows = [self._feed_item(a, member.activity) for a in reversed(member.activity)
                    if not wanted or a["type"] in wanted]
            return {"activity": paging.page(rows), "email_id": member.id, "list_id": aud.id, "total_items": len(rows)}

    def _feed_item(self, a: dict, history: list[dict]) -> dict:
        campaign = self.campaigns.get(a["campaign_id"] or "")
        item = {"activity_type": a["type"], "created_at_timestamp": iso(a["at"]), "campaign_id": a["campaign_id"] or "",
                "campaign_title": campaign["title"] if campaign else ""}
        if a["type"] == "click":
            item["link_clicked"] = a.get("url", "")
        elif a["type"] == "bounce":
            item["bounce_type"] = a["bounce_type"]
            item["bounce_has_open_activity"] = any(
                b["type"] == "open" and b["campaign_id"] == a["campaign_id"] for b in history)
        elif a["type"] == "unsub":
            item["is_admin_unsubscribed"] = a.get("is_admin_unsubscribed", False)
            item["unsubscribe_reason"] = a.get("unsubscribe_reason", "")
        return item

    def activity(self, list_id: str, key: str) -> dict:
        with self.lock:
            aud, member = self.audience(list_id), self.member(list_id, key)
            rows = []
            for a in list(reversed(member.activity))[:50]:
                campaign = self.campaigns.get(a["campaign_id"] or "")
                row = {"action": a["type"], "timestamp": iso(a["at"]), "campaign_id": a["campaign_id"] or "",
                       "title": campaign["title"] if campaign else "", "parent_campaign": ""}
                if a["type"] == "click":
                    row["url"] = a.get("url", "")
                if a["type"] == "bounce":
                    row["type"] = a["bounce_type"]
                rows.append(row)
            return {"activity": rows, "email_id": member.id, "list_id": aud.id, "total_items": len(rows)}

    def campaign_json(self, cid: str) -> dict:
        c = self.campaigns.get(cid)
        if c is None:
            raise not_found()
        aud = self.lists.get(c["list_id"])
        members = [self._recipient(c, contact) for contact in c["recipients"]]
        opened = [m for m in members if m and _did(m, "open", cid)]
        clicked = [m for m in members if m and _did(m, "click", cid)]
        sent = len(c["recipients"])
        return {"id": cid, "web_id": c["web_id"], "type": "regular", "create_time": iso(c["create_time"]),
                "archive_url": f"{ARCHIVE_BASE}/?id={cid}", "long_archive_url": f"{ARCHIVE_BASE}/?u=sandbox&id={cid}",
                "status": "sent", "emails_sent": sent, "send_time": iso(c["send_time"]), "content_type": "template",
                "recipients": {"list_id": c["list_id"], "list_is_active": aud is not None,
                               "list_name": aud.name if aud else "", "segment_text": "", "recipient_count": sent},
                "settings": {"subject_line": c["subject_line"], "preview_text": "", "title": c["title"],
                             "from_name": "AFAS pipeline sandbox", "reply_to": "nieuwsbrief@sandbox.invalid"},
                "tracking": {"opens": True, "html_clicks": True, "text_clicks": False},
                "report_summary": {"opens": len(opened), "unique_opens": len(opened),
                                   "open_rate": round(len(opened) / sent, 4) if sent else 0,
                                   "clicks": len(clicked), "subscriber_clicks": len(clicked),
                                   "click_rate": round(len(clicked) / sent, 4) if sent else 0}}

    def _recipient(self, campaign: dict, contact_id: str) -> Member | None:
        aud = self.lists.get(campaign["list_id"])
        if aud is None or contact_id not in aud.by_contact:
            return None
        return aud.members.get(aud.by_contact[contact_id])

    def campaigns_page(self, params) -> dict:
        paging = check.Paging(params)
        since, before = check.instant(params, "since_send_time"), check.instant(params, "before_send_time")
        list_id, status = params.get("list_id"), params.get("status")
        with self.lock:
            rows = [c for c in sorted(self.campaigns.values(), key=lambda c: (c["send_time"], c["web_id"]))
                    if (since is None or c["send_time"] >= since) and (before is None or c["send_time"] < before)
                    and (not list_id or c["list_id"] == list_id) and (not status or status == "sent")]
            return {"campaigns": [self.campaign_json(c["id"]) for c in paging.page(rows)], "total_items": len(rows)}

    def get_campaign(self, cid: str) -> dict:
        with self.lock:
            return self.campaign_json(cid)

    def email_activity(self, cid: str, params, key: str | None = None) -> dict:
        since = check.instant(params, "since")
        with self.lock:
            campaign = self.campaigns.get(cid)
            if campaign is None:
                raise not_found()
            aud = self.lists.get(campaign["list_id"])
            members = [m for m in (self._recipient(campaign, c) for c in campaign["recipients"]) if m is not None]
            rows = []
            for m in members:
                actions = [_email_action(a) for a in m.activity if a["campaign_id"] == cid
                           and a["type"] in ("open", "click", "bounce") and (since is None or a["at"] > since)]
                if since is None or actions:
                    rows.append({"campaign_id": cid, "list_id": campaign["list_id"], "list_is_active": aud is not None,
                                 "email_id": m.id, "email_address": m.email_address, "activity": actions})
            if key is not None:
                wanted = subscriber_hash(key) if "@" in key else key.lower()
                row = next((r for r in rows if r["email_id"] == wanted), None)
                if row is None:
                    raise not_found()
                return row
            paging = check.Paging(params)
            return {"emails": paging.page(rows), "campaign_id": cid, "total_items": len(rows)}

    def sent_to(self, cid: str, params) -> dict:
        paging = check.Paging(params)
        with self.lock:
            campaign = self.campaigns.get(cid)
            if campaign is None:
                raise not_found()
            rows = []
            for m in (self._recipient(campaign, c) for c in campaign["recipients"]):
                if m is None:
                    continue
                mine = [a for a in m.activity if a["campaign_id"] == cid]
                bounce = next((a["bounce_type"] for a in mine if a["type"] == "bounce"), None)
                opens = [a["at"] for a in mine if a["type"] == "open"]
                rows.append({"email_id": m.id, "email_address": m.email_address, "status": bounce or "sent",
                             "open_count": len(opens), "last_open": iso(max(opens)) if opens else "",
                             "absplit_group": "", "gmt_offset": 0, "campaign_id": cid,
                             "list_id": campaign["list_id"], "list_is_active": True})
            return {"sent_to": paging.page(rows), "campaign_id": cid, "total_items": len(rows)}

    def lists_page(self, params) -> dict:
        paging = check.Paging(params)
        with self.lock:
            rows = [self.list_json(aud) for aud in self.lists.values()]
            return {"lists": paging.page(rows), "total_items": len(rows)}

    def get_list(self, list_id: str) -> dict:
        with self.lock:
            return self.list_json(self.audience(list_id))

    def list_json(self, aud: Audience) -> dict:
        members = aud.members.values()
        by_status = {s: sum(1 for m in members if m.status == s) for s in check.READ_STATUSES}
        sent = [c["send_time"] for c in self.campaigns.values() if c["list_id"] == aud.id]
        return {"id": aud.id, "web_id": aud.web_id, "name": aud.name,
                "contact": {"company": "AFAS pipeline sandbox", "address1": "Sandboxstraat 1", "address2": "",
                            "city": "Amsterdam", "state": "NH", "zip": "1011 AA", "country": "NL", "phone": ""},
                "permission_reminder": "You receive this because you are a customer of ours.",
                "use_archive_bar": True,
                "campaign_defaults": {"from_name": "AFAS pipeline sandbox", "from_email": "nieuwsbrief@sandbox.invalid",
                                      "subject": "", "language": "nl"},
                "notify_on_subscribe": "", "notify_on_unsubscribe": "", "date_created": iso(aud.date_created),
                "list_rating": 0, "email_type_option": False, "subscribe_url_short": "", "subscribe_url_long": "",
                "beamer_address": "", "visibility": "prv", "double_optin": False, "has_welcome": False,
                "marketing_permissions": False, "modules": [],
                "stats": {"member_count": by_status["subscribed"],
                          "total_contacts": len(aud.members) - by_status["archived"],
                          "unsubscribe_count": by_status["unsubscribed"], "cleaned_count": by_status["cleaned"],
                          "member_count_since_send": 0, "unsubscribe_count_since_send": 0,
                          "cleaned_count_since_send": 0, "campaign_count": len(sent),
                          "campaign_last_sent": iso(max(sent)) if sent else "",
                          "merge_field_count": len(aud.merge_fields),
                          "avg_sub_rate": 0, "avg_unsub_rate": 0, "target_sub_rate": 0, "open_rate": 0, "click_rate": 0,
                          "last_sub_date": "", "last_unsub_date": ""}}

    def merge_fields_page(self, list_id: str, params) -> dict:
        paging = check.Paging(params)
        kind, required = params.get("type"), params.get("required")
        with self.lock:
            aud = self.audience(list_id)
            rows = [aud.merge_json(f) for f in aud.merge_fields
                    if (not kind or f["type"] == kind)
                    and (required is None or f["required"] == check.flag(required, "required"))]
            return {"merge_fields": paging.page(rows), "list_id": aud.id, "total_items": len(rows)}

    def merge_field(self, list_id: str, merge_id: str) -> dict:
        with self.lock:
            aud = self.audience(list_id)
            found = next((f for f in aud.merge_fields if str(f["merge_id"]) == merge_id), None)
            if found is None:
                raise not_found()
            return aud.merge_json(found)

    def add_merge_field(self, list_id: str, doc) -> dict:
        with self.lock:
            aud = self.audience(list_id)
            next_id = max((f["merge_id"] for f in aud.merge_fields), default=0) + 1
            merge = check.merge_field_definition(doc, {f["tag"] for f in aud.merge_fields}, next_id)
            aud.merge_fields.append(merge)
            self.version += 1
            return aud.merge_json(merge)

    def delete_merge_field(self, list_id: str, merge_id: str) -> None:
        with self.lock:
            aud = self.audience(list_id)
            found = next((f for f in aud.merge_fields if str(f["merge_id"]) == merge_id), None)
            if found is None:
                raise not_found()
            aud.merge_fields.remove(found)
            for m in aud.members.values():
                m.merge_fields.pop(found["tag"], None)
            self.version += 1

    # --- admin reads, dataset -----------------------------------------------------------------------------
    def all_members(self, list_id: str) -> list[dict]:
        with self.lock:
            aud = self.audience(list_id)
            return [aud.member_json(m) for m in sorted(aud.members.values(), key=lambda m: m.seq)]

    def counts(self) -> dict:
        with self.lock:
            members = [m for aud in self.lists.values() for m in aud.members.values()]
            return {"lists": len(self.lists), "members": len(members),
                    **{s: sum(1 for m in members if m.status == s) for s in check.READ_STATUSES},
                    "forgotten": sum(len(aud.forgotten) for aud in self.lists.values()),
                    "campaigns": len(self.campaigns), "activity": sum(len(m.activity) for m in members),
                    "changes": len(self.changes)}

    def export(self) -> dict:
        with self.lock:
            return {"lists": [{"id": aud.id, "web_id": aud.web_id, "name": aud.name,
                               "date_created": aud.date_created, "merge_fields": copy.deepcopy(aud.merge_fields),
                               "members": [asdict(m) for m in sorted(aud.members.values(), key=lambda m: m.seq)],
                               "forgotten": sorted(aud.forgotten), "tag_ids": dict(aud.tag_ids)}
                              for aud in self.lists.values()],
                    "campaigns": copy.deepcopy(list(self.campaigns.values())), "changes": list(self.changes),
                    "next_seq": self.next_seq}

    def load(self, doc: dict) -> None:
        lists = {}
        for raw in doc["lists"]:
            aud = Audience(str(raw["id"]), int(raw["web_id"]), str(raw["name"]), int(raw["date_created"]),
                           [_merge_field(f, i + 2) for i, f in enumerate(raw["merge_fields"])],
                           forgotten=set(raw.get("forgotten") or []), tag_ids=dict(raw.get("tag_ids") or {}))
            for m in map(lambda d: Member(**d), raw.get("members") or []):
                aud.members[m.id] = m
                aud.by_contact[m.contact_id] = m.id
            lists[aud.id] = aud
        campaigns = {c["id"]: dict(c) for c in doc.get("campaigns") or []}
        members = [m for aud in lists.values() for m in aud.members.values()]
        with self.lock:
            offset = self.clock_offset_s
            self.reset()
            self.clock_offset_s = offset
            self.lists, self.campaigns = lists, campaigns
            self.changes = list(doc.get("changes") or [])
            self.next_seq = int(doc.get("next_seq") or 1 + max((m.seq for m in members), default=0))
            self.version += 1


class _MemberFilter:
    """The filters and order of ``GET members``."""

    SORT_FIELDS = ("timestamp_opt", "timestamp_signup", "last_changed")

    def __init__(self, params):
        status = params.get("status") or None
        if status is not None and status not in check.READ_STATUSES:
            raise field_error("status", f"status must be one of {', '.join(check.READ_STATUSES)}")
        self.status = status
        self.since_changed = check.instant(params, "since_last_changed")
        self.before_changed = check.instant(params, "before_last_changed")
        self.unsubscribed_since = check.instant(params, "unsubscribed_since")
        if self.unsubscribed_since is not None and status != "unsubscribed":
            raise field_error("unsubscribed_since", "unsubscribed_since can only be used with status=unsubscribed")
        self.since_opt = check.instant(params, "since_timestamp_opt")
        self.before_opt = check.instant(params, "before_timestamp_opt")
        self.email_type = params.get("email_type") or None
        self.vip_only = check.flag(params.get("vip_only"), "vip_only")
        self.sort_field = params.get("sort_field") or None
        if self.sort_field is not None and self.sort_field not in self.SORT_FIELDS:
            raise field_error("sort_field", f"sort_field must be one of {', '.join(self.SORT_FIELDS)}")
        sort_dir = (params.get("sort_dir") or "ASC").upper()
        if sort_dir not in ("ASC", "DESC"):
            raise field_error("sort_dir", "sort_dir must be ASC or DESC")
        self.descending = sort_dir == "DESC" and self.sort_field is not None
        self.key = (status, self.since_changed, self.before_changed, self.unsubscribed_since, self.since_opt,
                    self.before_opt, self.email_type, self.vip_only, self.sort_field, self.descending)

    def matches(self, m: Member) -> bool:
        if self.status is not None and m.status != self.status:
            return False
        if self.since_changed is not None and m.last_changed < self.since_changed:
            return False
        if self.before_changed is not None and m.last_changed >= self.before_changed:
            return False
        if self.unsubscribed_since is not None and _last_unsub(m) < self.unsubscribed_since:
            return False
        if self.since_opt is not None or self.before_opt is not None:
            opt = _seconds(m.timestamp_opt)
            if opt is None or (self.since_opt is not None and opt < self.since_opt) \
                    or (self.before_opt is not None and opt >= self.before_opt):
                return False
        if self.email_type is not None and m.email_type != self.email_type:
            return False
        return not self.vip_only or m.vip

    def sort_key(self, m: Member):
        if self.sort_field == "last_changed":
            return (m.last_changed, m.seq)
        if self.sort_field is not None:
            return (_seconds(getattr(m, self.sort_field)) or 0, m.seq)
        return (m.seq,)


def _did(m: Member, kind: str, cid: str) -> bool:
    return any(a["type"] == kind and a["campaign_id"] == cid for a in m.activity)


def _last_unsub(m: Member) -> int:
    return max((a["at"] for a in m.activity if a["type"] == "unsub"), default=m.last_changed)


def _seconds(text: str) -> int | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())


def _attributes(doc: dict) -> dict:
    """The member attributes of a write besides status, address and merge fields, checked."""
    out = {}
    if "email_type" in doc:
        if doc["email_type"] not in ("html", "text"):
            raise field_error("email_type", "email_type must be html or text")
        out["email_type"] = doc["email_type"]
    if "language" in doc:
        out["language"] = check.text(doc["language"], "language")
    if "vip" in doc:
        out["vip"] = check.flag(doc["vip"], "vip")
    for name in ("ip_signup", "timestamp_signup", "ip_opt", "timestamp_opt"):
        if name in doc:
            out[name] = check.text(doc[name], name)
    interests = doc.get("interests")
    if interests is not None and not isinstance(interests, dict):
        raise field_error("interests", "Schema describes object")
    if interests:
        raise invalid([{"field": "interests", "message": f"Invalid interest ID: '{next(iter(interests))}'"}])
    return out


def _tags(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise field_error("tags", "tags is a list of tag names")
    return [t.strip() for t in value if t.strip()]


def _email_action(a: dict) -> dict:
    row = {"action": a["type"], "timestamp": iso(a["at"]), "ip": ""}
    if a["type"] == "click":
        row["url"] = a.get("url", "")
    if a["type"] == "bounce":
        row["type"] = a["bounce_type"]
    return row


def _batch_error(raw, problem: Problem) -> dict:
    """One entry of a batch subscribe's ``errors``: Mailchimp's ``error_code`` and the first field problem."""
    first = (problem.errors or [{}])[0]
    return {"email_address": raw if isinstance(raw, str) else "", "error": problem.detail,
            "error_code": "ERROR_CONTACT_EXISTS" if problem.title == "Member Exists" else "ERROR_GENERIC",
            "field": first.get("field", ""), "field_message": first.get("message", "")}
