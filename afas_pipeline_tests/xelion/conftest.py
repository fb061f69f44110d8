"""The Xelion sandbox fixtures of `afas_pipeline_tests.sandbox.xelion` (the session sandbox with its Xelion tenant
reset around each test, and a client of its admin API), shared with this folder."""

from __future__ import annotations

from afas_pipeline_tests.sandbox.xelion.conftest import (
    xelion_admin,
    xelion_sandbox_clean,
)

__all__ = ["xelion_admin", "xelion_sandbox_clean"]
