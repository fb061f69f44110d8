"""The afas-pipeline code location: a table of contents."""

from pathlib import Path

import dagster as dg

from afas_pipeline.afas.assets import build_afas_assets
from afas_pipeline.afas.sources import CRM_ENTITIES, CUSTOMER_ENTITIES
from afas_pipeline.alerts import alert_sensors, freshness_checks
from afas_pipeline.erasure import build_erasure, erasable_destinations
from afas_pipeline.resources import build_resources
from afas_pipeline.retention import build_retention, with_personal_data
from afas_pipeline.runbook import with_runbooks
from afas_pipeline.schedules import build_jobs_and_schedules

# One folder per destination under afas_pipeline/defs/, each a defs.yaml naming its mapping and adapter.
destinations = list(dg.load_from_defs_folder(path_within_project=Path(__file__).parent).assets)
# AFAS's CRM is always read; its debtors only when a destination's audience is made of them.
upstream = {key.to_user_string() for a in destinations for key in a.dependency_keys}
customers = tuple(e for e in CUSTOMER_ENTITIES if f"afas_{e}" in upstream)
assets = [*build_afas_assets(entities=(*CRM_ENTITIES, *customers)), *destinations]
jobs, schedules = build_jobs_and_schedules(assets)
# Daily: stored personal data, old ledger events and old runs past their retention are deleted (P1, P3).
retention, retention_job, retention_schedule = build_retention(assets)
# Every 15 minutes: erasure requests (GDPR article 17) carried out in every destination and audited (P2).
erasure, erasure_job, erasure_schedule = build_erasure(erasable_destinations())
# A failed run, or a 15-minute asset with no success for 45 minutes, notifies the alert targets.
checks = freshness_checks(assets)

defs = dg.Definitions(
    assets=with_personal_data(with_runbooks(dg.with_source_code_references([*assets, retention, *erasure]))),
    jobs=[*jobs, retention_job, erasure_job],
    schedules=[*schedules, retention_schedule, erasure_schedule],
    asset_checks=checks,
    sensors=alert_sensors(checks),
    resources=build_resources(),
    # One process per run: a subprocess per step costs ~2 s each on a 2-core machine.
    executor=dg.in_process_executor,
)
