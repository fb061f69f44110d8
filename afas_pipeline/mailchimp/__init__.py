"""Mailchimp Marketing API v3: the REST client, merge-field values (`merge_values`) and the adapter (the sandbox
emulator lives apart, in ``afas_sandbox.mailchimp``)."""

from afas_pipeline.mailchimp.client import (
    MailchimpClient,
    MemberResult,
    MemberWrite,
    WriteStats,
    api_root_for_key,
    subscriber_hash,
)
from afas_pipeline.mailchimp.errors import (
    MailchimpAuthError,
    MailchimpConfigError,
    MailchimpError,
    MailchimpRequestError,
    MailchimpUnavailable,
    MailchimpWriteIncomplete,
)

__all__ = [
    "MailchimpAuthError",
    "MailchimpClient",
    "MailchimpConfigError",
    "MailchimpError",
    "MailchimpRequestError",
    "MailchimpUnavailable",
    "MailchimpWriteIncomplete",
    "MemberResult",
    "MemberWrite",
    "WriteStats",
    "api_root_for_key",
    "subscriber_hash",
]
