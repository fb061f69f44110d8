"""Errors raised by the Mailchimp Marketing API v3 client.

Member writes do not raise for what Mailchimp refuses member by member (Member In Compliance State, Forgotten
Email Not Subscribed, Invalid Resource, ...): a refusal comes back as data, a ``MemberResult``. These errors are
for what no member can get past (a wrong API key), for reads that cannot be answered, and for writes that got
no answer at all (``MailchimpWriteIncomplete``: an outage is not a refusal). Every error names the endpoint
(a route template, never a subscriber hash), the HTTP status and Mailchimp's problem ``title``; none ever
carries the API key. Text Mailchimp wrote (``title``, ``detail``) is kept with control characters escaped
(`lib.text.printable`), so an error can be logged or printed as it is; ``detail`` may quote an address.
"""

from __future__ import annotations

from afas_pipeline.lib.errors import ServiceError


class MailchimpError(ServiceError):
    """A call to Mailchimp failed."""

    service = "Mailchimp"
    details = (("title", "title"), ("detail", None))


class MailchimpConfigError(MailchimpError, ValueError):
    """The client's configuration cannot work: an API key that is not ``<32 hex>-<dc>``, a base URL without
    http(s). Raised before any request; the message names the setting, never its value."""


class MailchimpAuthError(MailchimpError):
    """401, or 403 with a problem body: Mailchimp does not accept the API key (a wrong key, a revoked key,
    or the right key at another data centre). No request can succeed, so writes raise instead of reporting
    per member."""


class MailchimpRequestError(MailchimpError):
    """A 4xx refusal of a read (unknown list, bad parameter): retrying cannot help. ``field_errors`` holds
    Mailchimp's ``errors`` list (``{field, message}``, escaped) when it sent one."""

    field_errors: list[dict]


class MailchimpUnavailable(MailchimpError):
    """No answer after the retries: 5xx, 429, a bare 403 without body (Mailchimp over its connection limit)
    or network failures; or a Retry-After beyond ``max_retry_after_s``."""


class MailchimpWriteIncomplete(MailchimpUnavailable):
    """Some member writes got no answer after the retries. None of those members was refused, so none counts
    as a failure of its data; ``results`` holds the results of the members that were answered (already
    handed to ``on_batch``), ``unanswered`` the external ids of the others, in input order."""

    results: list
    unanswered: list[str]
