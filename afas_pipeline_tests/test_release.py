"""`afas-pipeline release`: an operator lets a quarantined record be tried again, in the sync state the pipeline
uses (AFAS_PIPELINE_STATE). In-process, on a state (a SQLite file, a Postgres database) written through its API; the
same path through a real sync is in afas_pipeline_tests/spotler/test_release.py."""

import socket

import pandas as pd
import pytest

from afas_pipeline.cli import main
from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.sync.state import SyncState

REFUSED = {"external_id": "20002", "reason": "PROPERTY_INVALID:function", "status_code": 200}


@pytest.fixture
def state(state_location, monkeypatch) -> SyncState:
    """A sync state at AFAS_PIPELINE_STATE: 20002 quarantined by Spotler (5 runs), 20003 refused once, and
    20004 refused for Mailchimp's consent reasons (kept, never retried)."""
    path = state_location
    monkeypatch.setenv("AFAS_PIPELINE_STATE", path)
    for run in range(1, 6):
        SyncState(path, run_id=f"run-{run}").record_rejections("spotler", [REFUSED], quarantine_after=5)
    SyncState(path, run_id="run-5").record_rejections("spotler", [{**REFUSED, "external_id": "20003"}], 5)
    SyncState(path, run_id="run-5").record_rejections(
        "mailchimp", [{"external_id": "20004", "reason": "consent:Member In Compliance State", "status_code": 400}], 1)
    return SyncState(path)


def _rejected(state: SyncState) -> dict[str, pd.DataFrame]:
    return {d: state.rejected(d) for d in ("spotler", "mailchimp", "xelion", "afas")}


def _unchanged(state: SyncState, before: dict[str, pd.DataFrame]) -> None:
    for d, frame in _rejected(state).items():
        pd.testing.assert_frame_equal(frame, before[d])


@pytest.mark.parametrize("key", ["20002", hash_key("20002")], ids=["external_id", "hash shown in the UI"])
def test_release_of_a_quarantined_record_says_released_and_the_next_run_may_send_it(state, key, capsys):
    assert main(["release", "--destination", "spotler", "--key", key]) == 0
    out = capsys.readouterr().out
    assert out == f"released: spotler {key} (PROPERTY_INVALID:function, 5 attempts); the next run sends it again\n"
    row = state.rejected("spotler").set_index("external_id").loc["20002"]
    assert not row["quarantined"] and row["attempts"] == 0


def test_release_of_a_record_that_is_not_quarantined_exits_1_and_changes_nothing(state, capsys):
    before = _rejected(state)
    assert main(["release", "--destination", "spotler", "--key", "20003"]) == 1
    assert capsys.readouterr().err.startswith("not quarantined: spotler 20003 (PROPERTY_INVALID:function, 1 attempts)")
    _unchanged(state, before)


def test_a_consent_refusal_is_not_released(state, capsys):
    """MC3: Mailchimp refuses a member who unsubscribed; sending again cannot change that, only the person can."""
    before = _rejected(state)
    assert main(["release", "--destination", "mailchimp", "--key", "20004"]) == 1
    assert capsys.readouterr().err.startswith(
        "not released: mailchimp 20004 (consent:Member In Compliance State, 1 attempts) is refused for mailchimp's "
        "own consent reasons")
    _unchanged(state, before)


@pytest.mark.parametrize("destination, key", [("spotler", "99999"), ("mailchimp", "20002"), ("afas", "20002")])
def test_release_of_an_unknown_key_exits_2_and_changes_nothing(state, destination, key, capsys):
    before = _rejected(state)
    assert main(["release", "--destination", destination, "--key", key]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"unknown key: {destination} has no rejected record {key} ") and err.count("\n") == 1
    _unchanged(state, before)


def test_release_without_a_sync_state_exits_2_and_creates_none(tmp_path, monkeypatch, capsys):
    path = tmp_path / "nowhere" / "sync_state.sqlite"
    monkeypatch.setenv("AFAS_PIPELINE_STATE", str(path))
    assert main(["release", "--destination", "spotler", "--key", "20002"]) == 2
    assert f"there is no sync state at {path}" in capsys.readouterr().err
    assert not path.exists() and not path.parent.exists()



def test_a_postgres_state_that_cannot_be_reached_is_one_line_naming_it_without_its_password(monkeypatch, capsys):
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("AFAS_PIPELINE_STATE", f"postgresql://afas:s3cret-pw@127.0.0.1:{port}/afas_state")
    assert main(["release", "--destination", "spotler", "--key", "20002"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot open the sync state postgresql://afas:***@127.0.0.1:{port}/afas_state: ")
    assert err.count("\n") == 1 and "s3cret" not in err
