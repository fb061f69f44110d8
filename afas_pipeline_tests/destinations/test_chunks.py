"""A sync carried out in many chunks (`chain/writer.py`: documents and state rows chunk by chunk, the state rows
as saved before read per chunk): with chunks of a few records, each chunk must find its own records' rows. A chunk
given another chunk's rows would lose what was sent (the permissions a document did not switch), and the next
sync would write those records again (C3)."""

from __future__ import annotations

import pytest

from afas_pipeline.chain import writer


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(writer, "SEND_CHUNK", 7)
    monkeypatch.setattr(writer, "UNSENT_CHUNK", 11)


def test_an_edit_sync_in_small_chunks_writes_the_edits_only_and_the_next_sync_nothing(destination, small_chunks):
    world, probe = destination
    world.sync()
    present = set(probe.records())
    state_before = world.state().records(world.destination).set_index("external_id")
    # Every fifth record the destination holds: spread over the chunks, between records left unchanged.
    edited = [str(c["ContactId"]) for c in world.pick_among(len(present), present, True)][::5]
    for n, external_id in enumerate(edited):
        world.afas_edit("contacts", external_id, Function=f"Functie {n}")
    probe.reset_writes()

    world.sync()
    assert probe.writes() >= 1 and {i for i, r in probe.records().items() if (probe.job_title(r) or "").startswith(
        "Functie ")} == set(edited)
    state = world.state().records(world.destination).set_index("external_id")
    # What was sent of the permissions is kept for every record, edited or not.
    assert state["permissions"].to_dict() == state_before["permissions"].to_dict()
    probe.reset_writes()

    world.sync()
    assert probe.writes() == 0  # C3
