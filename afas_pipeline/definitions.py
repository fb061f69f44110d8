"""The afas-pipeline code location: a table of contents."""

import dagster as dg

from afas_pipeline.afas.assets import build_afas_assets
from afas_pipeline.resources import build_resources
from afas_pipeline.schedules import build_jobs_and_schedules
from afas_pipeline.spotler.assets import build_spotler_assets

assets = [*build_afas_assets(), *build_spotler_assets()]
jobs, schedules = build_jobs_and_schedules(assets)

defs = dg.Definitions(
    assets=dg.with_source_code_references(assets),
    jobs=jobs,
    schedules=schedules,
    resources=build_resources(),
    # One process per run: a subprocess per step costs ~2 s each on a 2-core machine.
    executor=dg.in_process_executor,
)
