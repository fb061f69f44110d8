"""afas-pipeline: AFAS Profit CRM kept in sync with e-mail marketing and telephony, as a Dagster code location."""

from afas_pipeline.lib.memory import choose_pool

choose_pool()
