"""C4 and the operator: a record Spotler refuses run after run is quarantined; once released with
`afas-pipeline release`, the next delta reads it back from AFAS and sends it again."""

from __future__ import annotations

import re

from afas_pipeline.cli import main
from afas_pipeline.sync.state import SyncState

# A quiet window after the synthetic CRM's last modified date (2026-11-01): only our edits are in it.
WINDOW = "2026-11-16-10:00"
IN_WINDOW = "2026-11-16T10:05:00Z"


def _quarantined_keys_shown(world, result) -> list[str]:
    """The hashed keys `spotler_rejected`'s metadata table marks as quarantined, as the Dagster UI shows them."""
    table = world.metadata(result, "spotler_rejected")["records"]
    return re.findall(r"^\| ([0-9a-f]{12}) \|.*\| yes \|[^|]*\|$", table, flags=re.MULTILINE)


def test_c4_a_released_record_is_sent_again_by_the_next_delta(world, monkeypatch, capsys):
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS", Blocked=False, HardBounce=False)
    external_id = str(contact["ContactId"])
    world.afas_edit("contacts", external_id, at="2026-11-15T10:05:00Z", Function="y" * 300)
    world.sync()  # refused: PROPERTY_INVALID:function
    refused = world.state().rejected("spotler").set_index("external_id").loc[external_id]
    for run in range(2, 6):  # four more runs refuse it: quarantined
        SyncState(world.state_path, run_id=f"earlier-{run}").record_rejections(
            "spotler", [{"external_id": external_id, "reason": refused["reason"], "status_code": 200}], 5)
    world.spotler("POST", "/stats/reset")

    waiting = world.delta(WINDOW)
    assert world.spotler_writes() == 0  # quarantined: not read back, not sent
    [key] = _quarantined_keys_shown(world, waiting)

    monkeypatch.setenv("AFAS_PIPELINE_STATE", str(world.state_path))
    assert main(["release", "--destination", "spotler", "--key", key]) == 0
    assert capsys.readouterr().out.startswith(f"released: spotler {key} ")

    again = world.delta(WINDOW)  # AFAS is unchanged: Spotler refuses it once more, the first of 5 new attempts
    assert world.metadata(again, "spotler_sync_delta")["rejected"] == 1
    row = world.state().rejected("spotler").set_index("external_id").loc[external_id]
    assert row["attempts"] == 1 and not row["quarantined"]

    world.afas_edit("contacts", external_id, at=IN_WINDOW, Function="Kort genoeg")
    world.delta(WINDOW)
    assert world.spotler_contact(external_id)["properties"]["function"] == "Kort genoeg"
    assert world.state().rejected("spotler").empty
