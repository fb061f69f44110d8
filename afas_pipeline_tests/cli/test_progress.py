"""Progress on a terminal: a line per asset, drawn from the run's own events (rows read, records sent); nothing
drawn when the output is not a terminal (cron, CI)."""

from __future__ import annotations

import io
import re
import uuid

import dagster as dg
from rich.console import Console

from afas_pipeline.lib.progress import counts_text, run_progress


@dg.asset
def afas_contacts_read() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 1234})


@dg.asset(deps=[afas_contacts_read])
def contacts_sent() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 900, "created": 12, "updated": 3, "rejected": 1})


@dg.asset(deps=[contacts_sent])
def write_back() -> None:
    raise RuntimeError("AFAS went away")


@dg.asset(deps=[write_back])
def after_write_back() -> None:
    pass


def test_a_terminal_shows_each_asset_with_its_counts_and_what_failed_or_did_not_run():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140)
    steps = ["afas_contacts_read", "contacts_sent", "write_back", "after_write_back"]
    progress = run_progress(steps, "afas_delta_job 2026-11-22-06:00", console=console)
    assert progress is not None
    instance = dg.DagsterInstance.ephemeral()
    job = dg.define_asset_job("job").resolve(asset_graph=dg.Definitions(
        assets=[afas_contacts_read, contacts_sent, write_back, after_write_back]).resolve_asset_graph())
    run_id = str(uuid.uuid4())
    with progress:
        instance.add_event_listener(run_id, progress.on_event)
        # As `afas-pipeline sync` runs on a terminal: the progress lines stand for Dagster's log.
        result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False,
                                        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    assert not result.success
    shown = screen.getvalue()
    assert "\x1b[" in shown  # drawn for a terminal: colours and cursor movement
    # The last frame drawn of each step's line (a spinner may stand before the name of one that never ended).
    last = {step: [line for line in _plain(shown).splitlines() if f" {step} " in line][-1] for step in steps}
    assert "1,234 rows" in last["afas_contacts_read"]
    assert "900 rows, 12 created, 3 updated, 1 rejected" in last["contacts_sent"]
    assert "FAILED" in last["write_back"]
    assert "not run" in last["after_write_back"]
    assert "3/4" in _plain(shown).splitlines()[-len(steps) - 1]  # the run's line: three steps ended


def test_without_a_terminal_nothing_is_drawn():
    plain = Console(file=io.StringIO())  # a file, as under cron or in CI
    assert run_progress(["afas_contacts"], "afas_full_job", console=plain) is None


def test_counts_read_from_metadata_values_or_plain_numbers():
    assert counts_text({"dagster/row_count": dg.MetadataValue.int(300), "created": 2, "dry_run": True}) == \
        "300 rows, 2 created"
    assert counts_text({"plan/create": 5, "plan/update": 0}) == "5 to create, 0 to update"
    assert counts_text({}) == ""


def _plain(text: str) -> str:
    """The screen's text without escape sequences, one line per line drawn (later frames after earlier ones)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n")
