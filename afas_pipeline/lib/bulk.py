"""Work that makes millions of small Python objects at once (a sync's chunks of documents, the state's records).

Python's cycle collector runs a full pass over every object alive each time the long-lived objects have grown by a
quarter. Work that keeps a large share of what it makes (parsed rows, the records it keeps) then pays that pass
again and again: reading 800,000 records of a change feed as objects took about 4x its time with the collector on
(the feed is now read as columns, `FeedStates`). What is made there holds no reference cycles, so reference
counting frees it; the collector is paused for the work only.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0  # how many `collector_paused` blocks are open, in any thread
_was_enabled = False


def collect_young() -> None:
    """What the work in a `collector_paused` block has made and dropped in reference cycles (pandas makes some per
    frame), freed: a pass over the objects made since the last pass, never over the long-lived ones. Surviving
    objects move on to the oldest generation, where only a full pass looks at them again."""
    gc.collect(1)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off for the block, and back as it was when the last open block (of any thread) ends."""
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()
