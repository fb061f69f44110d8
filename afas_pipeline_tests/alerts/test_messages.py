"""What an alert may carry: one line per error, capped, control characters escaped; the run's window; whose runs."""

import dagster as dg

from afas_pipeline.alerts.messages import MAX_ERROR_CHARS, FailedStep, error_line, run_failure_alert
from afas_pipeline.alerts.sensors import ours, partition_of


def test_an_error_is_cut_to_its_first_line_capped_and_escaped():
    text = "\n  AfasError: refused\x1b[2J " + "x" * 1000 + "\nsecond line with jan@example.com\n"

    line = error_line(text)

    assert line.startswith("AfasError: refused\\x1b[2J xxx") and len(line) == MAX_ERROR_CHARS
    assert "\n" not in line and "\x1b" not in line and "example.com" not in line


def test_a_backfill_run_names_its_range_and_a_run_without_a_partition_none():
    assert partition_of({"dagster/partition": "2026-12-01-10:00"}) == "2026-12-01-10:00"
    assert partition_of({"dagster/asset_partition_range_start": "2026-12-01-00:00",
                         "dagster/asset_partition_range_end": "2026-12-01-23:45"}) == "2026-12-01-00:00...2026-12-01-23:45"
    assert partition_of({}) is None


def test_a_run_that_failed_before_any_step_says_why_in_one_line():
    alert = run_failure_alert(job="afas_full_job", run_id="r-2", partition=None, steps=[],
                              run_error="Run worker died\nTraceback ...", run_url="http://ui/runs/r-2")

    assert alert.text == "afas-pipeline: afas_full_job failed: Run worker died | http://ui/runs/r-2"
    assert alert.webhook_payload()["error"] == "Run worker died"


def test_several_failed_steps_are_named_in_the_mail_and_counted_in_the_line():
    steps = [FailedStep(f"step_{i}", f"E{i}: boom") for i in range(3)]
    alert = run_failure_alert(job="afas_delta_job", run_id="r", partition="p", steps=steps, run_error=None,
                              run_url="u")

    assert alert.text == "afas-pipeline: afas_delta_job failed for partition p: step step_0 (+2 more failed steps): E0: boom | u"
    assert alert.lines[-4:] == ("  step_0: E0: boom", "  step_1: E1: boom", "  step_2: E2: boom", "Open the run: u")


def test_runs_of_this_code_location_are_ours_however_launched_and_another_location_s_are_not():
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

    def launched_from(location: str) -> dg.DagsterRun:
        origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(location), "__repository__"),
                                 "afas_delta_job")
        return dg.DagsterRun(job_name="afas_delta_job", remote_job_origin=origin)

    assert ours(launched_from("afas_pipeline"))
    assert ours(dg.DagsterRun(job_name="afas_delta_job"))  # `afas-pipeline sync`: in-process, no location
    assert not ours(launched_from("another_team"))
