"""The Xelion sandbox admin API (``{url}/xelion/_admin``): JSON in, JSON out, no auth, but only for clients on
this machine (others get 403) unless the sandbox runs with ``--allow-remote-admin``.

Acting as the phone system and its callers. Objects are returned in their REST form (the ``object`` of
``GET communications/{oid}`` or ``GET addressables/{oid}``); a call also says whether it has a ``recording``.

- ``POST /calls`` ``{"number", "direction": "incoming"|"outgoing", "answered": true, "duration_s": 60,
  "note": "...", "subject": "...", "recording": false, "voicemail": false, "at"}``: a finished call with the
  party at ``number`` (any notation; stored in E.164), started at ``at`` (a UTC instant, default: the
  tenant's clock minus the duration), logged as a CallLog with ``contents`` = the note. A number nobody in
  the address book has gets an UnknownAddressable. A recording needs an answered call or a voicemail (a
  missed incoming call); a missed call lasts 0 s.
- ``GET /calls`` -> every call, newest first; ``GET /addressables`` -> the whole address book by oid (full
  objects); ``GET /addressables/{oid}`` -> one (404).
- ``GET /sessions`` -> the sessions (user, userSpace, appKey, validUntil, expired; never a token).
- ``GET|PUT /settings`` ``{"token_lifetime_s": 3600}``: how long a token from login or renew is valid.
- ``GET|PUT /clock`` ``{"offset_s": 7200}`` -> ``{"offset_s", "now"}``: moves the tenant's clock (token expiry,
  call times, ``lastModified``), so a test expires a token without waiting.
- ``GET /state`` -> counts (addressables per type, communications, recordings, sessions).
- ``GET /dataset`` -> address book and call log; ``POST /dataset`` with that document replaces them (and ends
  every session) -> state.
- ``POST /reset`` -> an empty tenant, no sessions, default token lifetime, faults off, stats zeroed, real time.
- ``GET|PUT /faults`` (``afas_sandbox.faults`` plus ``max_session_concurrency`` and ``error_429_rate``),
  ``GET /stats``, ``POST /stats/reset``.

Invalid requests get 400 (404 for an unknown addressable) with ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.routing import Route

from afas_sandbox.admin_common import AdminError, account_routes, admin_endpoint, at_instant, clock_offset_s
from afas_sandbox.faults import fault_admin_routes
from afas_sandbox.xelion.errors import XelionError
from afas_sandbox.xelion.store import e164, xelion_time

if TYPE_CHECKING:
    from afas_sandbox.xelion.app import XelionEmulator

DEFAULT_DURATION_S = 60


def _flag(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise AdminError(f"{name} is true or false")
    return value


def _optional_text(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"{name} is a string or null")
    return value


def _whole(body: dict, name: str, default: int, least: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise AdminError(f"{name} is a whole number of at least {least}")
    return value


def rest_form(obj: dict) -> dict:
    """An object as the REST API shows it, plus ``recording`` for a call."""
    doc = {k: v for k, v in obj.items() if not k.startswith("_")}
    if "_audio" in obj:
        doc["recording"] = obj["_audio"]
    return doc


def admin_routes(emulator: "XelionEmulator") -> list[Route]:
    tenant = emulator.tenant

    def refusal(exc: Exception) -> tuple[int, dict] | None:
        if isinstance(exc, XelionError):
            return exc.status, {"error": exc.message}
        return None

    def endpoint(work):
        return admin_endpoint(work, refusal)

    def place_call(request: Request, body: dict):
        raw = body.get("number")
        if not isinstance(raw, str) or not raw.strip():
            raise AdminError("number is the other party's phone number, in any notation")
        number = e164(raw)
        if number is None:
            raise AdminError(f"number {raw!r} is not a valid phone number")
        direction = body.get("direction", "incoming")
        if direction not in ("incoming", "outgoing"):
            raise AdminError("direction is 'incoming' or 'outgoing'")
        answered, recording = _flag(body, "answered", True), _flag(body, "recording", False)
        voicemail = _flag(body, "voicemail", False)
        if voicemail and (answered or direction == "outgoing"):
            raise AdminError("a voicemail is left on a missed incoming call")
        if recording and not (answered or voicemail):
            raise AdminError("a recording exists only for an answered call or a voicemail")
        duration = _whole(body, "duration_s", DEFAULT_DURATION_S if answered or voicemail else 0, 0)
        at = at_instant(body, int(tenant.now()) - duration)
        call = tenant.place_call(number=number, incoming=direction == "incoming", answered=answered,
                                 duration_s=duration, at=at, note=_optional_text(body, "note"),
                                 subject=_optional_text(body, "subject"), recording=recording, voicemail=voicemail)
        return rest_form(call)

    def calls(request: Request, body: dict):
        with tenant.lock:
            return [rest_form(tenant.call_json(c)) for _, c in sorted(tenant.calls.items(), reverse=True)]

    def addressables(request: Request, body: dict):
        with tenant.lock:
            return [tenant.addressable_json(a) for _, a in sorted(tenant.addressables.items())]

    def addressable(request: Request, body: dict):
        try:
            return tenant.get(request.path_params["oid"])
        except XelionError:
            raise LookupError(f"no addressable {request.path_params['oid']}") from None

    def settings(request: Request, body: dict):
        if request.method == "PUT":
            tenant.token_lifetime_s = _whole(body, "token_lifetime_s", tenant.token_lifetime_s, 1)
        return {"token_lifetime_s": tenant.token_lifetime_s}

    def clock(request: Request, body: dict):
        if request.method == "PUT":
            tenant.clock_offset_s = clock_offset_s(body)
        return {"offset_s": tenant.clock_offset_s, "now": xelion_time(tenant.now())}

    return [
        Route("/calls", endpoint(place_call), methods=["POST"]),
        Route("/calls", endpoint(calls), methods=["GET"]),
        Route("/addressables", endpoint(addressables), methods=["GET"]),
        Route("/addressables/{oid}", endpoint(addressable), methods=["GET"]),
        Route("/sessions", endpoint(lambda r, b: tenant.session_rows()), methods=["GET"]),
        Route("/settings", endpoint(settings), methods=["GET", "PUT"]),
        Route("/clock", endpoint(clock), methods=["GET", "PUT"]),
        *account_routes(endpoint, emulator, tenant, "addressables"),
        *fault_admin_routes(emulator.faults),
    ]
