"""Fixtures of the Mailchimp client's tests: the session sandbox (``sandbox``, from the top conftest) with its
Mailchimp account reset around each test, reused from the emulator's own tests."""

from afas_pipeline_tests.sandbox.mailchimp.conftest import mailchimp_sandbox_clean

__all__ = ["mailchimp_sandbox_clean"]
