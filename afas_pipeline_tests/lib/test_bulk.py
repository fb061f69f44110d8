"""The cycle collector paused for bulk work (`lib/bulk.py`): blocks of several threads overlap, and the collector
comes back as it was only when the last of them ends."""

import gc
import threading

import pytest

from afas_pipeline.lib.bulk import collector_paused


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_blocks_of_two_threads_keep_the_collector_off_until_the_last_one_ends(collector_on):
    entered, release, seen = threading.Event(), threading.Event(), {}

    def other():
        with collector_paused():
            entered.set()
            release.wait(timeout=30)
        seen["after_other"] = gc.isenabled()

    thread = threading.Thread(target=other)
    with collector_paused():
        assert not gc.isenabled()
        thread.start()
        assert entered.wait(timeout=30)
    assert not gc.isenabled()  # the other thread's block is still open
    release.set()
    thread.join(timeout=30)
    assert gc.isenabled()
    assert seen["after_other"] is True


def test_a_collector_that_was_off_stays_off(collector_on):
    gc.disable()
    with collector_paused():
        with collector_paused():
            pass
    assert not gc.isenabled()


def test_the_collector_comes_back_when_the_work_fails(collector_on):
    with pytest.raises(RuntimeError):
        with collector_paused():
            raise RuntimeError("bulk work failed")
    assert gc.isenabled()
