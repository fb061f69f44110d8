"""The Spotler sandbox admin API (``{url}/spotler/_admin``): JSON in, JSON out, no auth, but only for clients on
this machine (others get 403) unless the sandbox runs with ``--allow-remote-admin``.

Acting as a recipient or as a Spotler user. ``at`` is an optional UTC instant (``2026-10-25T00:05:00.250Z``;
naive means UTC), default now; contacts are returned in their full REST form (§A3).

- ``POST /recipients/{externalId}/unsubscribe`` ``{"bit": 1, "at"}`` -> the contact. The permission bit goes
  off and ``lastChanged`` becomes ``at`` (if it was on), so ``contact/updates/list`` shows it.
- ``POST /recipients/{externalId}/subscribe`` ``{"bit": 1, "at"}`` -> the contact (bit on, stamped likewise).
- ``POST /recipients/{externalId}/bounce`` ``{"type": "hard"|"soft", "at", "mailing": encryptedId?}`` -> the
  bounce ``{date, type, externalId, encryptedActId, mailing}``. Listed by ``contact/bounces/list``; a hard
  bounce also turns the EMAIL channel off (stamping ``lastChanged``); with ``mailing`` a ``bounced``
  interaction (bounceType HARD|SOFT) is recorded too.
- ``POST /recipients/{externalId}/open`` ``{"mailing", "at"}`` and ``.../click`` -> the interaction (a click
  does not imply an open).
- ``POST /mailings`` ``{"name", "subject", "recipients": [externalId, ...] | null, "bit": 1,
  "trend_report_id": null, "campaign": false, "at"}`` -> the mailing (``GET mailing/{id}`` form) plus
  ``"sent"`` (its sent interactions) and ``"skipped"`` (recipients without an active EMAIL channel or
  e-mail). ``recipients: null`` means every contact with permission ``bit`` on.
- ``GET /contacts`` -> every contact; ``GET /contacts/{externalId}`` -> one (404 if unknown).
- ``POST /contacts/{externalId}`` ``{"properties": {"function": "Directeur", ...}, "at"}`` -> the contact: a
  Spotler user editing properties in the UI (merged; null clears one; not permissions: use the recipient
  actions). ``lastChanged`` becomes ``at`` if anything changed, so ``contact/updates/list`` shows it.
- ``GET /changes`` -> the change log ``[{"at", "externalId", "change", "source"}]``.
- ``GET /state`` -> counts of contacts, bounces, mailings, interactions and changes.
- ``GET /dataset`` -> the whole account; ``POST /dataset`` with that document replaces it (-> state).
- ``POST /reset`` -> an empty account, faults off, stats zeroed, nonces forgotten, clock back to real time.
- ``GET|PUT /clock`` ``{"offset_s": -900}`` -> ``{"offset_s", "now"}``: moves the account's clock (the stamp
  of API writes and the default ``at``), e.g. behind the real time so that what happens now falls in a
  15-minute window that has already closed (a test can then run that window's feedback at once).
- ``GET|PUT /faults`` (``afas_sandbox.faults`` plus ``error_429_rate``), ``GET /stats``,
  ``POST /stats/reset``.

Invalid requests get 400 (404 for an unknown contact or mailing) with ``{"error": "<what is wrong>"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.routing import Route

from afas_sandbox.admin_common import AdminError, account_routes, admin_endpoint, at_instant, clock_offset_s
from afas_sandbox.faults import fault_admin_routes
from afas_sandbox.spotler.store import Invalid

if TYPE_CHECKING:
    from afas_sandbox.spotler.app import SpotlerEmulator


def _bit(body: dict) -> int:
    bit = body.get("bit", 1)
    if isinstance(bit, bool) or not isinstance(bit, int):
        raise AdminError("bit must be an integer")
    return bit


def _mailing(body: dict, required: bool) -> str | None:
    mailing = body.get("mailing")
    if mailing is None and not required:
        return None
    if not isinstance(mailing, str):
        raise AdminError("mailing must be the mailing's encryptedId")
    return mailing


def admin_routes(emulator: "SpotlerEmulator") -> list[Route]:
    account = emulator.account

    endpoint = admin_endpoint

    def recipient(request: Request, body: dict):
        external_id, action = request.path_params["external_id"], request.path_params["action"]
        at = at_instant(body, account.now(), per_second=1000)
        if action in ("unsubscribe", "subscribe"):
            bit = _bit(body)
            try:
                return account.set_permission(external_id, bit, action == "subscribe", at).to_json()
            except KeyError as exc:
                raise AdminError(exc.args[0]) from None
        if action == "bounce":
            kind = body.get("type")
            if kind not in ("hard", "soft"):
                raise AdminError("type must be 'hard' or 'soft'")
            return account.bounce(external_id, kind == "hard", at, _mailing(body, False))
        if action in ("open", "click"):
            kind = "opened" if action == "open" else "clicked"
            return account.interact(kind, external_id, _mailing(body, True), at)
        raise AdminError(f"unknown action {action!r}: unsubscribe, subscribe, bounce, open or click", 404)

    def mailings(request: Request, body: dict):
        name, subject = body.get("name"), body.get("subject")
        if not isinstance(name, str) or not name or not isinstance(subject, str):
            raise AdminError("name and subject are required strings")
        recipients = body.get("recipients")
        if recipients is not None and (not isinstance(recipients, list)
                                       or not all(isinstance(r, str) for r in recipients)):
            raise AdminError("recipients is a list of externalIds or null")
        trend = body.get("trend_report_id")
        if trend is not None and (isinstance(trend, bool) or not isinstance(trend, int)):
            raise AdminError("trend_report_id must be an integer or null")
        campaign = body.get("campaign", False)
        if not isinstance(campaign, bool):
            raise AdminError("campaign must be true or false")
        return account.send_mailing(name=name, subject=subject, recipients=recipients, bit=_bit(body),
                                    trend_report_id=trend, campaign=campaign, at=at_instant(body, account.now(), per_second=1000))

    def contact(request: Request, body: dict):
        found = account.get(request.path_params["external_id"])
        if found is None:
            raise AdminError(f"no contact with externalId {request.path_params['external_id']!r}", 404)
        return found.to_json()

    def edit(request: Request, body: dict):
        properties = body.get("properties")
        if not isinstance(properties, dict) or not properties:
            raise AdminError("properties is a non-empty object of property -> value")
        if "permissions" in properties:
            raise AdminError("permissions change through /recipients/{externalId}/subscribe|unsubscribe")
        try:
            return account.edit(request.path_params["external_id"], properties, at_instant(body, account.now(), per_second=1000)).to_json()
        except Invalid as exc:
            raise AdminError(exc.message) from None

    def clock(request: Request, body: dict):
        if request.method == "PUT":
            account.clock_offset_ms = int(clock_offset_s(body) * 1000)
        return {"offset_s": account.clock_offset_ms / 1000, "now": account.now()}

    return [
        Route("/recipients/{external_id}/{action}", endpoint(recipient), methods=["POST"]),
        Route("/mailings", endpoint(mailings), methods=["POST"]),
        Route("/contacts", endpoint(lambda r, b: account.all_contacts()),
              methods=["GET"]),
        Route("/contacts/{external_id}", endpoint(contact), methods=["GET"]),
        Route("/contacts/{external_id}", endpoint(edit), methods=["POST"]),
        Route("/changes", endpoint(lambda r, b: list(account.changes)), methods=["GET"]),
        *account_routes(endpoint, emulator, account, "contacts"),
        Route("/clock", endpoint(clock), methods=["GET", "PUT"]),
        *fault_admin_routes(emulator.faults),
    ]
