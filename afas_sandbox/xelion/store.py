"""The Xelion tenant held in memory: the sandbox user's sessions, the address book (addressables) and the call
log (communications).

Plain Python guarded by one lock. Instants are epoch seconds; on the wire they are Xelion's
``"2026-10-25 02:05:00"``: Europe/Amsterdam local time without a zone (the reference gives no zone; a Dutch
PBX shows its own). Every object gets an ``oid`` from one counter (a string of digits), so oids grow with
time across addressables, sub-objects and calls, which is what makes them cursors.

Sessions (reference §C1): ``login`` needs the sandbox user's name and password and a ``userSpace``; any
``userSpace`` may log in once: a second login with the same user and ``userSpace`` while its token is valid
is refused (10005). A token is valid ``token_lifetime_s`` (settable through the admin API, like the clock
offset); after that it is refused with 10000, and ``renew`` with the renewal token (or the password, with the
old token in ``Authorization``) gives the session a new token and renewal token; the old ones are dead. Once
a token has expired, a new login with the same ``userSpace`` replaces that session. ``logout`` ends it.

Address book (§C3): ``Person`` (with ``employments`` at an ``Organisation``), ``Organisation`` and
``UnknownAddressable`` (made for a caller whose number nobody has). Sub-objects (``telecomAddresses``,
``addresses``, ``employments``) carry ``oid``, ``objectType`` and, on every read, ``changeType: Unmodified``.

- Create (``POST addressables``): sub-objects are new (``oid`` empty or absent, ``changeType`` absent or
  ``Created``). A Person with only ``familyName`` holding a full name gets it split: ``"Jan de Jager"`` ->
  givenName Jan, namePrefix de, familyName Jager.
- Update (``PUT addressables/<oid>``): the object read, edited and written back. Every sub-object sent must
  say ``changeType`` (``Created`` with ``oid: ""``, ``Modified``, ``Removed`` or ``Unmodified`` with the oid
  it has); a missing or unknown change type is 400 (10202), an oid the object does not have 400 (10203).
  What is ``Unmodified`` is kept as stored, even when the body differs (an edit sent without
  ``Modified`` is lost); a sub-object not sent at all is kept too. The object itself says its
  ``changeType`` as well: a read object says ``Unmodified``, so its own fields change only when the client
  sets ``Modified``; then the top-level fields sent replace the stored ones. The read-only ones (``oid``, ``objectType``, ``commonName``) are ignored, except
  that a body naming another oid or type is 400 (10203).
- Phone numbers (every telecom address type but ``Email`` and ``URL``) are stored in E.164
  (``+31152511411``), parsed with ``phonenumbers`` in the NL region; a number that is not a valid number
  is refused (400, 10202) rather than stored raw.
- Lists are ordered by oid. ``where`` (repeatable, ``field=value``, ``*`` a wildcard, case-insensitive):
  ``obj_type``, ``name`` (commonName), ``phone`` (any phone address, in E.164: send ``+`` as ``%2B``), ``email``.
  A list item is the summary (``oid``, ``objectType``, ``commonName``) plus the fields ``include`` names
  (comma-separated, e.g. ``include=telecomAddresses,employments``); the full object is ``GET addressables/<oid>``.
- ``join`` merges an UnknownAddressable into a Person or Organisation: its numbers move over, its calls
  point at the contact, the unknown one is gone.

Call log (§C4): ``CallLog`` objects, placed through the admin API. Listed newest first (``order=descending``,
the default; ``ascending`` oldest first); ``after``/``before`` take an oid and mean after/before it *in that
order*, so ``after=<meta.paging.nextId>`` is the next page either way, and polling for new calls is
``order=ascending&after=<last oid seen>``. A recording exists only for an answered call (with
``recording``) or a voicemail; it is an MP3 of the call's length (a voicemail's: the message's length, while
the missed call itself lasts 0 s).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import secrets
import threading
import uuid
from bisect import bisect_right
from zoneinfo import ZoneInfo

import phonenumbers

from afas_pipeline.lib.bulk import collector_paused
from afas_sandbox.xelion.errors import (
    ALREADY_LOGGED_IN,
    EMPTY_PAYLOAD,
    NO_PASSWORD,
    NO_USER,
    WRONG_CREDENTIALS,
    XelionError,
    bad_id,
    bad_request,
    not_authenticated,
    not_found,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
UTC = dt.timezone.utc
#: The sandbox account: documented constants, not secrets.
USER_NAME = "afas-pipeline"
PASSWORD = "sandbox-xelion-3c9e51d2"
USER_COMMON_NAME = "AFAS Pipeline Sandbox"
#: The sandbox user's own line: the local party of every call.
LOCAL_NUMBER = "+31202400100"
TENANT = "master"
DEFAULT_TOKEN_LIFETIME_S = 3600
DEFAULT_LIMIT = 15
MAX_LIMIT = 1000
FIRST_OID = 1000

CHANGE_TYPES = ("Created", "Modified", "Removed", "Unmodified")
PHONE_TYPES = ("Telephone", "Mobile", "Telephone_and_SMS", "Fax")
TELECOM_TYPES = (*PHONE_TYPES, "Email", "URL")
PERSON_FIELDS = ("givenName", "familyName", "namePrefix", "nameSuffix", "initials", "title", "gender",
                 "communicationLanguage", "dateOfBirth", "comment")
ORGANISATION_FIELDS = ("name", "fieldOfBusiness", "btwNumber", "kvkNumber", "comment")
ADDRESS_FIELDS = ("street", "streetNumber", "zipCode", "city", "state", "country", "addressType")
SUB_COLLECTIONS = {"Person": ("telecomAddresses", "addresses", "employments"),
                   "Organisation": ("telecomAddresses", "addresses"),
                   "UnknownAddressable": ("telecomAddresses",)}
NAME_PREFIXES = {"van", "de", "der", "den", "het", "'t", "te", "ten", "ter", "in", "op", "aan", "bij", "la", "le",
                 "du", "da", "von", "zu"}


def now_s() -> float:
    return dt.datetime.now(UTC).timestamp()


def xelion_time(ts: float | None) -> str | None:
    """``2026-10-25 02:05:00``: Amsterdam local time, no zone."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, AMSTERDAM).strftime("%Y-%m-%d %H:%M:%S")


def e164(raw: str) -> str | None:
    """The number in E.164 (``+31101234567``), read in the NL region; None when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, "NL")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def split_full_name(full: str) -> dict:
    """``"Jan de Jager"`` -> givenName Jan, namePrefix de, familyName Jager (Xelion splits a full name)."""
    words = full.split()
    if len(words) < 2:
        return {"familyName": full.strip()}
    given, rest = words[0], words[1:]
    prefix = []
    while len(rest) > 1 and rest[0].lower() in NAME_PREFIXES:
        prefix.append(rest.pop(0))
    return {"givenName": given, "namePrefix": " ".join(prefix) or None, "familyName": " ".join(rest)}


def _text(value, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise bad_request(f"{where} must be a string")


def _wildcard(pattern: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


class Session:
    __slots__ = ("user", "space", "app_key", "token", "renewal", "valid_until")

    def __init__(self, user: str, space: str, app_key: str | None, valid_until: float):
        self.user, self.space, self.app_key, self.valid_until = user, space, app_key, valid_until
        self.token, self.renewal = secrets.token_urlsafe(24), secrets.token_urlsafe(24)


def _phone_numbers(stored: dict) -> set[str]:
    return {t["address"] for t in stored.get("telecomAddresses") or () if t["addressType"] in PHONE_TYPES}


class IndexedAddressables(dict):
    """The addressables by oid, with an index of their phone numbers (``numbers``: E.164 -> oids) kept up to date
    on every assignment and deletion, so that placing a call finds its party without scanning the whole book.
    A stored object is replaced, never edited in place, so the index always matches; ``update``, ``pop`` and the
    other bulk methods of ``dict`` are not used on it (they would bypass the index)."""

    def __init__(self, items: dict[int, dict] | None = None) -> None:
        super().__init__()
        self.numbers: dict[str, set[int]] = {}
        self.version = 0  # moves on every assignment and deletion (`Tenant._in_order` keeps an order per version)
        for oid, stored in (items or {}).items():
            self[oid] = stored

    def __setitem__(self, oid: int, stored: dict) -> None:
        if oid in self:
            self._unindex(oid, self[oid])
        super().__setitem__(oid, stored)
        self.version += 1
        for number in _phone_numbers(stored):
            self.numbers.setdefault(number, set()).add(oid)

    def __delitem__(self, oid: int) -> None:
        self._unindex(oid, self[oid])
        super().__delitem__(oid)
        self.version += 1

    def _unindex(self, oid: int, stored: dict) -> None:
        for number in _phone_numbers(stored):
            oids = self.numbers.get(number)
            if oids is not None:
                oids.discard(oid)
                if not oids:
                    del self.numbers[number]


class Tenant:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.clock_offset_s = 0.0
            self.token_lifetime_s = DEFAULT_TOKEN_LIFETIME_S
            self.sessions: dict[str, Session] = {}          # token -> session
            self.addressables = IndexedAddressables()       # oid -> stored object (no changeType)
            self._order: tuple | None = None                 # `_in_order`: the book, its version, a condition, rows, oids
            self.calls: dict[int, dict] = {}                # oid -> stored CallLog (with _ fields)
            self.next_oid = FIRST_OID

    def now(self) -> float:
        """The tenant's clock: the real time, moved by ``clock_offset_s`` (set through the admin API)."""
        return now_s() + self.clock_offset_s

    def _oid(self) -> int:
        oid, self.next_oid = self.next_oid, self.next_oid + 1
        return oid

    # --- sessions --------------------------------------------------------------------------------------
    def login(self, doc) -> dict:
        if doc is None or doc == {}:
            raise bad_request("empty payload", EMPTY_PAYLOAD)
        if not isinstance(doc, dict):
            raise bad_request("the login credentials are a JSON object")
        user, password, space = doc.get("userName"), doc.get("password"), doc.get("userSpace")
        if not isinstance(user, str) or not user:
            raise bad_request("no user name given", NO_USER)
        if not isinstance(password, str) or not password:
            raise bad_request("no password given", NO_PASSWORD)
        if not isinstance(space, str) or not space.strip():
            raise bad_request("userSpace is required: a stable name of its own per integration")
        if (user, password) != (USER_NAME, PASSWORD):
            raise XelionError(401, WRONG_CREDENTIALS, "wrong user name or password")
        with self.lock:
            now = self.now()
            for token, session in list(self.sessions.items()):
                if (session.user, session.space) == (user, space):
                    if session.valid_until > now:
                        raise XelionError(401, ALREADY_LOGGED_IN,
                                          f"user {user} is already logged in with userSpace {space}")
                    del self.sessions[token]
            session = Session(user, space, doc.get("appKey"), now + self.token_lifetime_s)
            self.sessions[session.token] = session
            return self._login_response(session)

    def renew(self, doc, authorization: str | None) -> dict:
        if not isinstance(doc, str) or not doc:
            raise bad_request("the body of me/renew is the renewal token (or the password) as a JSON string")
        with self.lock:
            session = next((s for s in self.sessions.values() if s.renewal == doc), None)
            if session is None and doc == PASSWORD:
                session = self.sessions.get(_token(authorization) or "")
            if session is None:
                raise XelionError(401, WRONG_CREDENTIALS, "unknown renewal token")
            del self.sessions[session.token]
            fresh = Session(session.user, session.space, session.app_key, self.now() + self.token_lifetime_s)
            self.sessions[fresh.token] = fresh
            return self._login_response(fresh)

    def logout(self, session: Session) -> None:
        with self.lock:
            self.sessions.pop(session.token, None)

    def authenticate(self, authorization: str | None) -> Session:
        if not authorization:
            raise not_authenticated("not authenticated: no Authorization header (Authorization: xelion <token>)")
        token = _token(authorization)
        if token is None:
            raise XelionError(401, 10020, "invalid authentication: the scheme is 'xelion <token>'")
        with self.lock:
            session = self.sessions.get(token)
            if session is None:
                raise not_authenticated("not authenticated: unknown token")
            if session.valid_until <= self.now():
                raise not_authenticated("not authenticated: the token has expired, renew it or log in again")
            return session

    def _login_response(self, s: Session) -> dict:
        return {"authentication": s.token, "renewalToken": s.renewal, "validUntil": xelion_time(s.valid_until),
                "version": "v1", "serverVersion": "8.4.0 (sandbox)", "buildNumber": "84000",
                "brand": "Xelion", "host": "xelion-sandbox", "tenant": TENANT, "userName": s.user}

    def session_rows(self) -> list[dict]:
        with self.lock:
            now = self.now()
            return [{"userName": s.user, "userSpace": s.space, "appKey": s.app_key,
                     "validUntil": xelion_time(s.valid_until), "expired": s.valid_until <= now}
                    for s in self.sessions.values()]

    # --- address book ----------------------------------------------------------------------------------
    def create(self, doc) -> dict:
        doc = _object_body(doc)
        kind = doc.get("objectType")
        if kind not in ("Person", "Organisation"):
            raise bad_id(f"objectType must be Person or Organisation, not {kind!r}")
        with self.lock:
            stored = {"objectType": kind}
            self._set_fields(stored, doc)
            if kind == "Person" and not stored.get("givenName") and stored.get("familyName"):
                stored.update(split_full_name(stored["familyName"]))
            if not _common_name(stored):
                raise bad_request("a Person needs a familyName or givenName, an Organisation a name")
            stored["oid"] = self._oid()
            stored.update({name: self._apply_subs(name, [], doc.get(name, []), creating=True)
                           for name in SUB_COLLECTIONS[kind]})
            stored["lastModified"] = self.now()
            self.addressables[stored["oid"]] = stored
            return self.addressable_json(stored)

    def update(self, oid: str, doc) -> dict:
        doc = _object_body(doc)
        with self.lock:
            stored = self._addressable(oid)
            if doc.get("oid") not in (None, "", oid):
                raise bad_id(f"the body names oid {doc['oid']!r}, the path {oid}")
            if doc.get("objectType") not in (None, stored["objectType"]):
                raise bad_id(f"addressable {oid} is a {stored['objectType']}, not a {doc['objectType']}")
            if doc.get("changeType") not in (None, *CHANGE_TYPES):
                raise bad_request(f"changeType must be one of {', '.join(CHANGE_TYPES)}")
            if stored["objectType"] == "UnknownAddressable":
                raise bad_id(f"addressable {oid} is an UnknownAddressable: join it to a Person or Organisation")
            updated = dict(stored)
            if doc.get("changeType") != "Unmodified":
                self._set_fields(updated, doc)
                if not _common_name(updated):
                    raise bad_request("a Person needs a familyName or givenName, an Organisation a name")
            for name in SUB_COLLECTIONS[stored["objectType"]]:
                if name in doc:
                    updated[name] = self._apply_subs(name, stored[name], doc[name], creating=False)
            if updated != stored:
                updated["lastModified"] = self.now()
            self.addressables[updated["oid"]] = updated
            return self.addressable_json(updated)

    def remove(self, oid: str) -> None:
        """``DELETE addressables/<oid>`` [I]: the object is gone; a person's employment of a removed organisation
        then names no organisation (as `_reference` shows a reference to an unknown oid)."""
        with self.lock:
            del self.addressables[self._addressable(oid)["oid"]]

    @staticmethod
    def _set_fields(stored: dict, doc: dict) -> None:
        fields = PERSON_FIELDS if stored["objectType"] == "Person" else ORGANISATION_FIELDS
        for name in fields:
            if name in doc:
                stored[name] = _text(doc[name], name)

    def _apply_subs(self, name: str, current: list[dict], sent, *, creating: bool) -> list[dict]:
        """The sub-collection ``name`` after the sub-objects ``sent``, every one checked before any is applied."""
        if not isinstance(sent, list):
            raise bad_request(f"{name} must be a list")
        result = [dict(s) for s in current]
        by_oid = {str(s["oid"]): i for i, s in enumerate(result)}
        removed = set()
        for i, item in enumerate(sent):
            where = f"{name}[{i}]"
            if not isinstance(item, dict):
                raise bad_request(f"{where} must be an object")
            change = item.get("changeType", "Created" if creating else None)
            if change not in CHANGE_TYPES or (creating and change != "Created"):
                allowed = "Created" if creating else ", ".join(CHANGE_TYPES)
                raise bad_request(f"{where}.changeType must be {allowed}, not {change!r}")
            oid = str(item.get("oid") or "")
            if change == "Created":
                if oid:
                    raise bad_id(f"{where} is Created, so its oid is \"\" (not {oid})")
                result.append({"oid": None, **self._sub_object(name, item, where)})
                continue
            if oid not in by_oid:
                raise bad_id(f"{where}: this object has no {name} with oid {oid!r}")
            if change == "Modified":
                result[by_oid[oid]] = {**result[by_oid[oid]], **self._sub_object(name, item, where)}
            elif change == "Removed":
                removed.add(oid)
        result = [s for s in result if str(s["oid"]) not in removed]
        for s in result:
            if s["oid"] is None:
                s["oid"] = self._oid()
        return result

    def _sub_object(self, name: str, item: dict, where: str) -> dict:
        if name == "telecomAddresses":
            kind = item.get("addressType")
            if kind not in TELECOM_TYPES:
                raise bad_request(f"{where}.addressType must be one of {', '.join(TELECOM_TYPES)}")
            address = item.get("address")
            if not isinstance(address, str) or not address.strip():
                raise bad_request(f"{where}.address is required")
            if kind in PHONE_TYPES:
                normalised = e164(address)
                if normalised is None:
                    raise bad_request(f"{where}.address {address!r} is not a valid phone number")
                address = normalised
            order = item.get("orderNumber", 0)
            if isinstance(order, bool) or not isinstance(order, int):
                raise bad_request(f"{where}.orderNumber must be a whole number")
            return {"objectType": "TelecomAddress", "addressType": kind, "address": address.strip(),
                    "label": _text(item.get("label"), f"{where}.label"), "orderNumber": order}
        if name == "addresses":
            return {"objectType": "DeliveryAddress",
                    **{f: _text(item.get(f), f"{where}.{f}") for f in ADDRESS_FIELDS}}
        organisation = item.get("organisation")
        org_oid = str(organisation.get("oid") or "") if isinstance(organisation, dict) else ""
        found = self.addressables.get(int(org_oid)) if org_oid.isdigit() else None
        if found is None or found["objectType"] != "Organisation":
            raise bad_id(f"{where}.organisation must name an Organisation by its oid (not {org_oid!r})")
        return {"objectType": "Employment", "organisation": found["oid"],
                "jobTitle": _text(item.get("jobTitle"), f"{where}.jobTitle")}

    def _addressable(self, oid: str) -> dict:
        found = self.addressables.get(int(oid)) if oid.isdigit() else None
        if found is None:
            raise not_found(f"addressable {oid}")
        return found

    def get(self, oid: str) -> dict:
        with self.lock:
            return self.addressable_json(self._addressable(oid))

    def addressable_json(self, stored: dict) -> dict:
        doc = {"oid": str(stored["oid"]), "objectType": stored["objectType"], "commonName": _common_name(stored),
               "changeType": "Unmodified"}
        fields = PERSON_FIELDS if stored["objectType"] == "Person" else ORGANISATION_FIELDS
        if stored["objectType"] != "UnknownAddressable":
            doc.update({f: stored.get(f) for f in fields})
        for name in SUB_COLLECTIONS[stored["objectType"]]:
            doc[name] = [self._sub_json(s) for s in stored[name]]
        doc["lastModified"] = xelion_time(stored["lastModified"])
        return doc

    def _sub_json(self, sub: dict) -> dict:
        doc = {**sub, "oid": str(sub["oid"]), "changeType": "Unmodified"}
        if sub["objectType"] == "Employment":
            doc["organisation"] = self._reference(sub["organisation"])
        return doc

    def _reference(self, oid: int) -> dict | None:
        found = self.addressables.get(oid)
        if found is None:
            return None
        return {"oid": str(oid), "objectType": found["objectType"], "commonName": _common_name(found)}

    def addressables_page(self, params) -> tuple[list[dict], bool]:
        where = _where(params, {"obj_type", "name", "phone", "email"})
        include = {f.strip() for f in (params.get("include") or "").split(",") if f.strip()}
        with self.lock, collector_paused():  # a page of fresh objects, freed by reference counting
            rows, oids = self._in_order(where)
            page, more = _page(rows, params, lambda a: a["oid"], descending=False, oids=oids)
            out = []
            for a in page:
                full = self.addressable_json(a)
                out.append({k: v for k, v in full.items()
                            if k in ("oid", "objectType", "commonName") or k in include})
            return out, more

    def _in_order(self, where: list[tuple[str, str]]) -> tuple[list[dict], list[int]]:
        """The addressables ``where`` matches, by oid, and their oids: made once per version of the address book and
        condition, so that paging through it costs a page per page, not a pass over the whole book."""
        book, cached = self.addressables, self._order
        if cached is None or cached[0] is not book or cached[1:3] != (book.version, where):
            rows = [a for _, a in sorted(book.items()) if _addressable_matches(a, where)]
            cached = self._order = (book, book.version, where, rows, [a["oid"] for a in rows])
        return cached[3], cached[4]

    def find_by_number(self, number: str) -> dict | None:
        """The first addressable (lowest oid) with this E.164 number: a contact before an unknown caller."""
        found = [self.addressables[oid] for oid in sorted(self.addressables.numbers.get(number, ()))]
        found.sort(key=lambda a: a["objectType"] == "UnknownAddressable")
        return found[0] if found else None

    def join(self, unknown_oid: str, doc) -> dict:
        if not isinstance(doc, str) or not doc:
            raise bad_request("the body of join is the oid of the Person or Organisation as a JSON string")
        with self.lock:
            unknown, target = self._addressable(unknown_oid), self._addressable(doc)
            if unknown["objectType"] != "UnknownAddressable":
                raise bad_id(f"addressable {unknown_oid} is a {unknown['objectType']}, not an UnknownAddressable")
            if target["objectType"] not in ("Person", "Organisation"):
                raise bad_id(f"addressable {doc} is not a Person or Organisation")
            target = dict(target)
            known = {t["address"] for t in target["telecomAddresses"]}
            moved = [{**t, "oid": self._oid()} for t in unknown["telecomAddresses"] if t["address"] not in known]
            target["telecomAddresses"] = target["telecomAddresses"] + moved
            target["lastModified"] = self.now()
            self.addressables[target["oid"]] = target
            del self.addressables[unknown["oid"]]
            for call in self.calls.values():
                if call["_remote"] == unknown["oid"]:
                    call["_remote"] = target["oid"]
            return self.addressable_json(target)

    # --- call log --------------------------------------------------------------------------------------
    def place_call(self, *, number: str, incoming: bool, answered: bool, duration_s: int, at: float,
                   note: str | None, subject: str | None, recording: bool, voicemail: bool) -> dict:
        """A finished call with the party at ``number`` (E.164), as the PBX logs it."""
        with self.lock:
            remote = self.find_by_number(number)
            if remote is None:
                remote = {"oid": self._oid(), "objectType": "UnknownAddressable", "commonName": number,
                          "telecomAddresses": [{"oid": self._oid(), "objectType": "TelecomAddress",
                                                "addressType": "Telephone", "address": number, "label": None,
                                                "orderNumber": 0}],
                          "lastModified": at}
                self.addressables[remote["oid"]] = remote
            oid = self._oid()
            talked = duration_s if answered else 0
            call = {"oid": oid, "objectType": "CallLog", "date": at, "incoming": incoming, "durationSec": talked,
                    "callAnswerTime": at if answered else None, "callEndTime": at + talked,
                    "callId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"xelion-sandbox:call:{oid}")),
                    "status": "answered" if answered else "missed", "phone": number, "voicemail": voicemail,
                    "subject": subject, "contents": note, "retrieved": False, "displayed": False, "flagged": False,
                    "_remote": remote["oid"], "_recording": recording, "_recording_s": duration_s}
            self.calls[oid] = call
            return self.call_json(call)

    def call_json(self, c: dict) -> dict:
        remote = self._reference(c["_remote"])
        local = {"oid": "1", "objectType": "X1Object", "commonName": USER_COMMON_NAME}
        ends = [{"address": c["phone"], "addressable": remote}, {"address": LOCAL_NUMBER, "addressable": local}]
        if not c["incoming"]:
            ends.reverse()
        return {"oid": str(c["oid"]), "objectType": "CallLog", "changeType": "Unmodified",
                "commonName": (remote or {}).get("commonName") or c["phone"],
                "date": xelion_time(c["date"]), "incoming": c["incoming"], "durationSec": c["durationSec"],
                "callAnswerTime": xelion_time(c["callAnswerTime"]), "callEndTime": xelion_time(c["callEndTime"]),
                "callId": c["callId"], "status": c["status"], "phone": c["phone"], "trunk": "sandbox-trunk",
                "phoneLine": {"oid": "2", "objectType": "PhoneLine", "commonName": f"{USER_COMMON_NAME} (lijn 1)"},
                "participants": [{"role": role, **end} for role, end in zip(("rtFrom", "rtTo"), ends)],
                "voicemail": c["voicemail"], "retrieved": c["retrieved"], "displayed": c["displayed"],
                "flagged": c["flagged"], "subject": c["subject"], "contents": c["contents"],
                "_audio": self.has_recording(c)}

    def has_recording(self, c: dict) -> bool:
        return c["_recording"] and (c["status"] == "answered" or c["voicemail"])

    def call(self, key: str) -> dict:
        with self.lock:
            if key.isdigit() and int(key) in self.calls:
                return self.calls[int(key)]
            started = key.removeprefix("caller_")
            for c in self.calls.values():
                if c["callId"] == key or (key.startswith("caller_") and not c["incoming"] and c["callId"] == started):
                    return c
            raise not_found(f"communication {key}")

    def calls_page(self, params) -> tuple[list[dict], bool]:
        where = _where(params, {"obj_type", "incoming", "voicemail", "retrieved", "displayed", "flagged", "callId",
                                "callFlowId", "phoneLine", "search"})
        order = params.get("order") or "descending"
        if order not in ("ascending", "descending"):
            raise bad_request("order must be ascending or descending")
        missed = (params.get("only_missed_calls") or "false").lower() == "true"
        with_oid = params.get("with")
        with self.lock:
            rows = [c for _, c in sorted(self.calls.items(), reverse=order == "descending")
                    if _call_matches(self, c, where) and (not missed or c["status"] == "missed")
                    and (with_oid is None or str(c["_remote"]) == with_oid)]
            page, more = _page(rows, params, lambda c: c["oid"], descending=order == "descending")
            return [self.call_json(c) for c in page], more

    # --- admin reads, dataset -------------------------------------------------------------------------
    def counts(self) -> dict:
        with self.lock:
            kinds = [a["objectType"] for a in self.addressables.values()]
            return {"addressables": len(kinds), **{k: kinds.count(k) for k in SUB_COLLECTIONS},
                    "communications": len(self.calls),
                    "recordings": sum(1 for c in self.calls.values() if self.has_recording(c)),
                    "sessions": len(self.sessions)}

    def export(self) -> dict:
        with self.lock:
            return {"addressables": copy.deepcopy([a for _, a in sorted(self.addressables.items())]),
                    "communications": copy.deepcopy([c for _, c in sorted(self.calls.items())]),
                    "next_oid": self.next_oid}

    def load(self, doc: dict) -> None:
        addressables = {int(a["oid"]): dict(a) for a in doc["addressables"]}
        for a in addressables.values():
            a["oid"] = int(a["oid"])
            for name in SUB_COLLECTIONS[a["objectType"]]:
                a[name] = [dict(s) for s in a[name]]
        calls = {int(c["oid"]): dict(c) for c in doc.get("communications") or []}
        oids = [*addressables, *calls, *(int(s["oid"]) for a in addressables.values()
                                         for name in SUB_COLLECTIONS[a["objectType"]] for s in a[name])]
        with self.lock:
            self.addressables, self.calls, self.sessions = IndexedAddressables(addressables), calls, {}
            self.next_oid = max(int(doc.get("next_oid") or FIRST_OID), max(oids, default=FIRST_OID - 1) + 1)


def _token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "xelion" else None


def _object_body(doc) -> dict:
    if doc is None:
        raise bad_request("empty payload", EMPTY_PAYLOAD)
    if not isinstance(doc, dict):
        raise bad_request("the body is a JSON object")
    return doc


def _common_name(a: dict) -> str:
    if a["objectType"] == "Person":
        return " ".join(p for p in (a.get("givenName"), a.get("namePrefix"), a.get("familyName")) if p)
    if a["objectType"] == "Organisation":
        return a.get("name") or ""
    return a.get("commonName") or ""


def _where(params, allowed: set[str]) -> list[tuple[str, str]]:
    conditions = []
    for clause in params.getlist("where"):
        name, sep, value = clause.partition("=")
        if not sep or name.strip() not in allowed:
            raise bad_request(f"where takes field=value with a field of {', '.join(sorted(allowed))} "
                              f"(not {clause!r})")
        conditions.append((name.strip(), value.strip()))
    return conditions


def _addressable_matches(a: dict, where: list[tuple[str, str]]) -> bool:
    for name, value in where:
        pattern = _wildcard(value)
        if name == "obj_type":
            values = [a["objectType"]]
        elif name == "name":
            values = [_common_name(a)]
        else:
            types = PHONE_TYPES if name == "phone" else ("Email",)
            values = [t["address"] for t in a["telecomAddresses"] if t["addressType"] in types]
        if not any(pattern.fullmatch(v) for v in values):
            return False
    return True


def _call_matches(tenant: Tenant, c: dict, where: list[tuple[str, str]]) -> bool:
    for name, value in where:
        if name in ("incoming", "voicemail", "retrieved", "displayed", "flagged"):
            if value.lower() not in ("true", "false"):
                raise bad_request(f"where {name} takes true or false")
            if c[name] != (value.lower() == "true"):
                return False
        elif name == "obj_type":
            if not _wildcard(value).fullmatch("CallLog"):
                return False
        elif name == "callId":
            if c["callId"] != value:
                return False
        elif name == "callFlowId":
            return False  # the sandbox has no call flows
        elif name == "phoneLine":
            if value not in ("2", tenant.call_json(c)["phoneLine"]["commonName"]):
                return False
        else:
            text = " ".join(str(v) for v in (c["phone"], c["subject"], c["contents"],
                                              tenant.call_json(c)["commonName"]) if v)
            if value.lower().replace("*", "") not in text.lower():
                return False
    return True


def _page(rows: list, params, oid_of, *, descending: bool, oids: list[int] | None = None) -> tuple[list, bool]:
    """One page of ``rows`` (already in list order): ``limit``, and ``after``/``before`` an oid in that order.
    ``oids``: the rows' oids, ascending (then ``after`` is found by bisection)."""
    raw = params.get("limit") or str(DEFAULT_LIMIT)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    limit = int(raw)
    after, before = params.get("after"), params.get("before")
    for name, value in (("after", after), ("before", before)):
        if value is not None and not value.isdigit():
            raise bad_request(f"{name} takes an oid")

    def later(oid: int, cursor: str) -> bool:
        return oid < int(cursor) if descending else oid > int(cursor)

    if after is not None and oids is not None and not descending:
        rows = rows[bisect_right(oids, int(after)):]
    elif after is not None:
        rows = [r for r in rows if later(oid_of(r), after)]
    if before is not None:
        rows = [r for r in rows if later(int(before), str(oid_of(r)))]
        return rows[-limit:], len(rows) > limit
    return rows[:limit], len(rows) > limit
