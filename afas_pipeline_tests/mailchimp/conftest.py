"""The Mailchimp sandbox fixtures of `afas_pipeline_tests.sandbox.mailchimp` (the session sandbox with its Mailchimp
account reset around each test), shared with this folder."""

from __future__ import annotations

from afas_pipeline_tests.sandbox.mailchimp.conftest import (
    mailchimp,
    mailchimp_sandbox_clean,
)

__all__ = ["mailchimp", "mailchimp_sandbox_clean"]
