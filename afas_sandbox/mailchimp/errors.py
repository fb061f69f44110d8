"""Mailchimp's refusals as problem+json (reference §B2): ``{type, title, status, detail, instance[, errors]}``.

The titles and details are Mailchimp's own words where the reference quotes them (Member Exists, Member In
Compliance State, Forgotten Email Not Subscribed, Invalid Resource, Resource Not Found, API Key Invalid ...).
A body is never empty: the official SDK treats an empty error body as a success.
"""

from __future__ import annotations

import uuid

import orjson
from starlette.responses import Response

ERROR_DOCS = "https://mailchimp.com/developer/marketing/docs/errors/"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
VALIDATION_DETAIL = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
MERGE_DETAIL = "Your merge fields were invalid."


class Problem(Exception):
    """A refusal, answered as problem+json with ``status``; ``errors`` is the field list of Invalid Resource."""

    def __init__(self, status: int, title: str, detail: str, errors: list[dict] | None = None,
                 headers: dict | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors, self.headers = status, title, detail, errors, headers

    def body(self) -> dict:
        doc = {"type": ERROR_DOCS, "title": self.title, "status": self.status, "detail": self.detail,
               "instance": str(uuid.uuid4())}
        if self.errors is not None:
            doc["errors"] = self.errors
        return doc

    def response(self) -> Response:
        return Response(orjson.dumps(self.body()), status_code=self.status, headers=self.headers,
                        media_type=PROBLEM_JSON)


def invalid(errors: list[dict], detail: str = VALIDATION_DETAIL) -> Problem:
    return Problem(400, "Invalid Resource", detail, errors)


def field_error(field: str, message: str, detail: str = VALIDATION_DETAIL) -> Problem:
    return invalid([{"field": field, "message": message}], detail)


def not_found() -> Problem:
    return Problem(404, "Resource Not Found", "The requested resource could not be found.")


def member_exists(email: str) -> Problem:
    return Problem(400, "Member Exists",
                   f"{email} is already a list member. Use PUT to insert or update list members.")


def compliance_state(email: str) -> Problem:
    return Problem(400, "Member In Compliance State",
                   f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot "
                   f"be subscribed.")


def forgotten(email: str) -> Problem:
    return Problem(400, "Forgotten Email Not Subscribed",
                   f"{email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to "
                   f"get back on the list.")


def method_not_allowed(allowed: list[str]) -> Problem:
    return Problem(405, "Method Not Allowed", "The requested method and resource are not compatible. See the Allow "
                   "header for this resource's available methods.", headers={"Allow": ", ".join(allowed)})


def bad_json() -> Problem:
    return Problem(400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error.")
