"""The Mailchimp sandbox admin API (``{url}/mailchimp/_admin``): JSON in, JSON out, no auth, but only for clients
on this machine (others get 403) unless the sandbox runs with ``--allow-remote-admin``.

Acting as a member, as Mailchimp or as a Mailchimp user. ``{member}`` is an address, a subscriber hash or a
contact id; ``list_id`` (body or query) defaults to the sandbox audience. ``at`` is an optional UTC instant
(``2026-10-25T00:05:00Z``; naive means UTC), default the account's clock; members are returned in their REST
form (``GET lists/{list_id}/members/{hash}``).

- ``POST /members/{member}/unsubscribe`` ``{"reason", "campaign", "at"}``: the member unsubscribes (from a
  campaign's link when ``campaign`` is given): status ``unsubscribed``, an ``unsub`` activity, ``last_changed``.
- ``POST /members/{member}/clean`` ``{"campaign", "at"}``: Mailchimp cleans the address (a hard bounce; with
  ``campaign`` a ``bounce`` activity of type hard on that campaign).
- ``POST /members/{member}/bounce`` ``{"type": "hard"|"soft", "campaign", "at"}``: a bounce on a campaign the
  member was sent; hard cleans, soft leaves the status alone.
- ``POST /members/{member}/open`` ``{"campaign", "at"}`` and ``.../click`` ``{"campaign", "url", "at"}``.
- ``POST /members/{member}/profile`` ``{"merge_fields": {"FNAME": ...}, "at"}``: the member edits their profile
  (validated as the API validates merge fields).
- ``POST /members/{member}/upemail`` ``{"new_email", "at"}``: the member changes their address (new hash).
- ``POST /members/{member}/confirm`` ``{"at"}``: a pending member confirms the opt-in e-mail (-> subscribed).
- ``POST /campaigns`` ``{"title", "subject_line", "recipients": [member, ...] | null, "list_id", "at"}``: send a
  campaign -> the campaign (``GET campaigns/{id}`` form) plus ``sent`` (subscriber hashes) and ``skipped``
  (named recipients who are not subscribed). ``recipients: null``: every subscribed member.
- ``GET /members`` -> every member of the audience (archived too); ``GET /members/{member}`` -> one (404).
- ``GET /changes`` -> the change log; ``GET /state`` -> counts per status, campaigns, activity, changes.
- ``GET /dataset`` -> the whole account; ``POST /dataset`` with that document replaces it (-> state).
- ``POST /reset`` -> the start-up account (the sandbox audience, no members), faults off, stats zeroed, clock
  back to real time.
- ``GET|PUT /clock`` ``{"offset_s": -900}`` -> ``{"offset_s", "now"}``: moves the account's clock (the stamp of
  API writes, ``last_changed``, and the default ``at``), e.g. behind the real time so that what happens now
  falls in a 15-minute window that has already closed.
- ``GET|PUT /faults`` (``afas_sandbox.faults`` plus ``error_429_rate`` and ``bare_403_rate``; ``max_concurrency``
  10), ``GET /stats``, ``POST /stats/reset``.

Invalid requests get 400 (404 for an unknown member, campaign or audience, 409 for confirming a member who is
not pending) with ``{"error": "..."}``; a profile
edit Mailchimp would refuse also carries its ``errors`` list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.routing import Route

from afas_sandbox.admin_common import AdminError, account_routes, admin_endpoint, at_instant, clock_offset_s
from afas_sandbox.faults import fault_admin_routes
from afas_sandbox.mailchimp.errors import Problem
from afas_sandbox.mailchimp.store import SANDBOX_LIST_ID, ActionRefused, iso

if TYPE_CHECKING:
    from afas_sandbox.mailchimp.app import MailchimpEmulator

MEMBER_ACTIONS = ("unsubscribe", "clean", "bounce", "open", "click", "profile", "upemail", "confirm")


def _string(body: dict, name: str, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise AdminError(f"{name} is {'a required' if required else 'an optional'} non-empty string")
    return value


def admin_routes(emulator: "MailchimpEmulator") -> list[Route]:
    account = emulator.account

    def refusal(exc: Exception) -> tuple[int, dict] | None:
        if isinstance(exc, ActionRefused):
            return 409, {"error": exc.args[0]}
        if isinstance(exc, Problem):
            error = {"error": f"{exc.title}: {exc.detail}"}
            if exc.errors is not None:
                error["errors"] = exc.errors
            return exc.status, error
        return None

    def endpoint(work):
        return admin_endpoint(work, refusal)

    def list_id(request: Request, body: dict) -> str:
        chosen = body.get("list_id") or request.query_params.get("list_id") or SANDBOX_LIST_ID
        if chosen not in account.lists:
            raise AdminError(f"no audience {chosen!r}", 404)
        return chosen

    def member_action(request: Request, body: dict):
        key, action = request.path_params["member"], request.path_params["action"]
        audience, at = list_id(request, body), at_instant(body, account.now())
        if action == "unsubscribe":
            return account.member_unsubscribes(audience, key, at, _string(body, "reason", False),
                                               _string(body, "campaign", False))
        if action == "clean":
            return account.cleaned(audience, key, at, _string(body, "campaign", False))
        if action == "bounce":
            kind = body.get("type")
            if kind not in ("hard", "soft"):
                raise AdminError("type must be 'hard' or 'soft'")
            return account.interaction(audience, key, "bounce", _string(body, "campaign", True), at, bounce_type=kind)
        if action == "open":
            return account.interaction(audience, key, "open", _string(body, "campaign", True), at)
        if action == "click":
            return account.interaction(audience, key, "click", _string(body, "campaign", True), at,
                                       url=_string(body, "url", False) or "https://www.example.nl/")
        if action == "profile":
            values = body.get("merge_fields")
            if not isinstance(values, dict) or not values:
                raise AdminError("merge_fields is a non-empty object of merge tag -> value")
            return account.edit_profile(audience, key, values, at)
        if action == "upemail":
            return account.change_address(audience, key, _string(body, "new_email", True), at)
        if action == "confirm":
            return account.confirm(audience, key, at)
        raise AdminError(f"unknown action {action!r}: {', '.join(MEMBER_ACTIONS)}", 404)

    def campaigns(request: Request, body: dict):
        title, subject = _string(body, "title", True), _string(body, "subject_line", False) or body.get("title")
        recipients = body.get("recipients")
        if recipients is not None and (not isinstance(recipients, list)
                                       or not all(isinstance(r, str) for r in recipients)):
            raise AdminError("recipients is a list of addresses (or subscriber hashes) or null")
        return account.send_campaign(list_id(request, body), title=title, subject_line=subject,
                                     recipients=recipients, at=at_instant(body, account.now()))

    def member(request: Request, body: dict):
        return account.get_member(list_id(request, body), request.path_params["member"])

    def clock(request: Request, body: dict):
        if request.method == "PUT":
            account.clock_offset_s = int(clock_offset_s(body))
        return {"offset_s": account.clock_offset_s, "now": iso(account.now())}

    return [
        Route("/members/{member}/{action}", endpoint(member_action), methods=["POST"]),
        Route("/campaigns", endpoint(campaigns), methods=["POST"]),
        Route("/members", endpoint(lambda r, b: account.all_members(list_id(r, b))), methods=["GET"]),
        Route("/members/{member}", endpoint(member), methods=["GET"]),
        Route("/changes", endpoint(lambda r, b: list(account.changes)), methods=["GET"]),
        *account_routes(endpoint, emulator, account, "lists"),
        Route("/clock", endpoint(clock), methods=["GET", "PUT"]),
        *fault_admin_routes(emulator.faults),
    ]
