"""Arrow's memory pool: jemalloc once the package is imported, unless the operator named one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW_POOL = "import afas_pipeline, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def _pool(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | env
    out = subprocess.run([sys.executable, "-c", SHOW_POOL], capture_output=True, text=True, env=environment,
                         check=True, timeout=120)
    return out.stdout.strip()


def test_importing_the_package_makes_jemalloc_arrows_pool():
    assert _pool() == "jemalloc"


@pytest.mark.parametrize("chosen", ["system", "mimalloc"])
def test_a_pool_the_operator_named_is_kept(chosen):
    assert _pool(ARROW_DEFAULT_MEMORY_POOL=chosen) == chosen
