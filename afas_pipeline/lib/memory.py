"""Arrow's memory pool for this process: jemalloc, where pyarrow is built with it (its Linux and macOS wheels are).

pyarrow's default pool is mimalloc, which keeps the memory a step frees for its own later use rather than give it
back. A sync frees and allocates page after page and chunk after chunk, and with mimalloc the process grew past
what it held: a full sync of 100,000 contacts to Spotler peaked at 543 MB with mimalloc, 432 MB with jemalloc
(300,000: 697 against 539 MB), in the same time or less; the AFAS extraction's growth went from 3.8x to 1.7x
the DataFrame it makes (`bench/bench_sync.py --full-only`, `bench/bench_extract.py`).

An operator who sets `ARROW_DEFAULT_MEMORY_POOL` (jemalloc, mimalloc or system) keeps that choice.
"""

from __future__ import annotations

import os

import pyarrow as pa

POOL_SETTING = "ARROW_DEFAULT_MEMORY_POOL"


def choose_pool() -> str:
    """Make jemalloc Arrow's pool unless `ARROW_DEFAULT_MEMORY_POOL` names one; the name of the pool in use."""
    if not os.environ.get(POOL_SETTING):
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        except NotImplementedError:  # a pyarrow built without jemalloc (Windows): its default stays
            pass
    return pa.default_memory_pool().backend_name
