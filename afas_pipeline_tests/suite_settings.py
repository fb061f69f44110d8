"""The settings the whole suite runs with (conftest.py puts them in the environment first)."""

# Set by conftest.py before any afas_pipeline module reads them; the CLI's subprocesses inherit them. Fixtures that
# clear the machine's settings (`resources.SETTINGS`) keep these.
# - the partitions' horizons count back from a fixed moment, as far as they may, so the windows the tests name
#   (15-minute ones from the 2026-03-29 DST change on, 6-hour ones back to AFAS_PIPELINE_START) stay partitions
#   whatever day the suite runs (test_partitions.py covers the moving horizon itself);
# - no step retries: the outage tests expect the step to fail at once (test_retries.py turns them on).
SUITE_ENV = {
    "AFAS_PIPELINE_PARTITIONS_AS_OF": "2026-07-01T00:00:00Z",
    "AFAS_PIPELINE_DELTA_HORIZON_DAYS": "103",
    "AFAS_PIPELINE_FULL_HORIZON_DAYS": "400",
    "AFAS_PIPELINE_STEP_RETRIES": "0",
}
