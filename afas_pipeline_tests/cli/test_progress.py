"""Progress on a terminal: a line per asset, drawn from the run's own events (rows read, records sent); nothing
drawn when the output is not a terminal (cron, CI)."""

from __future__ import annotations

import io
import re
import uuid

import dagster as dg
from rich.console import Console

from afas_pipeline.lib.progress import counts_text, run_progress


# As `afas-pipeline sync` runs on a terminal: the progress lines stand for Dagster's log.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


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
        result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False, run_config=QUIET)
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


@dg.multi_asset(outs={"people_read": dg.AssetOut(is_required=False), "firms_read": dg.AssetOut(is_required=False)},
                can_subset=True)
def both_reads():
    yield dg.Output(None, output_name="people_read", metadata={"dagster/row_count": 70})
    yield dg.Output(None, output_name="firms_read", metadata={"dagster/row_count": 30})


@dg.asset(deps=["people_read", "firms_read"])
def joined() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 65})


def test_a_step_of_several_assets_shows_a_line_per_asset():
    screen = io.StringIO()
    assets = ["people_read", "firms_read", "joined"]
    progress = run_progress(assets, "afas_full_job 2026-11-22-06:00",
                            console=Console(file=screen, force_terminal=True, width=140),
                            step_assets={"both_reads": ["people_read", "firms_read"], "joined": ["joined"]})
    instance = dg.DagsterInstance.ephemeral()
    job = dg.define_asset_job("job").resolve(asset_graph=dg.Definitions(assets=[both_reads, joined]).resolve_asset_graph())
    run_id = str(uuid.uuid4())
    with progress:
        instance.add_event_listener(run_id, progress.on_event)
        assert job.execute_in_process(instance=instance, run_id=run_id, run_config=QUIET).success
    lines = _plain(screen.getvalue()).splitlines()
    last = {asset: [line for line in lines if f" {asset} " in line][-1] for asset in assets}
    assert "70 rows" in last["people_read"] and "30 rows" in last["firms_read"] and "65 rows" in last["joined"]
    assert not any(" both_reads " in line for line in lines)  # no line of its own for the step
    assert "3/3" in lines[-len(assets) - 1]


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
