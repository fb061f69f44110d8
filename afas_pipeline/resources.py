"""Every resource, chosen in one place: the sandbox by default, production when AFAS is configured.

Production AFAS is selected by setting `AFAS_TOKEN` together with `AFAS_ENVIRONMENT_ID` (and optionally
`AFAS_ENVIRONMENT=test|accept`) or an explicit `AFAS_BASE_URL`; production Spotler by setting
`SPOTLER_CONSUMER_KEY` and `SPOTLER_CONSUMER_SECRET` (and optionally `SPOTLER_BASE_URL`). Secrets are
only ever read through `dg.EnvVar`, so they never land in the run config that the Dagster UI shows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from afas_pipeline.afas.client import AfasClient
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_pipeline.sandbox.server import SANDBOX_AFAS_TOKEN, SANDBOX_SPOTLER_KEY, SANDBOX_SPOTLER_SECRET
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline.sync.state import SyncStateResource

#: Where `afas-pipeline sandbox` listens unless told otherwise.
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8765"


class ConfigurationError(RuntimeError):
    """The environment asks for production but leaves out what production needs."""


def afas_mode(env: Mapping[str, str] = os.environ) -> str:
    """`production` when AFAS credentials are configured, else `sandbox`."""
    wants_production = any(env.get(name) for name in ("AFAS_TOKEN", "AFAS_ENVIRONMENT_ID", "AFAS_BASE_URL"))
    if not wants_production:
        return "sandbox"
    if not env.get("AFAS_TOKEN"):
        raise ConfigurationError("AFAS_ENVIRONMENT_ID or AFAS_BASE_URL is set but AFAS_TOKEN is not")
    if not (env.get("AFAS_ENVIRONMENT_ID") or env.get("AFAS_BASE_URL")):
        raise ConfigurationError("AFAS_TOKEN is set but neither AFAS_ENVIRONMENT_ID nor AFAS_BASE_URL is")
    return "production"


def afas_client(env: Mapping[str, str] = os.environ) -> AfasClient:
    if afas_mode(env) == "sandbox":
        sandbox_url = env.get("AFAS_PIPELINE_SANDBOX_URL", DEFAULT_SANDBOX_URL).rstrip("/")
        return AfasClient(base_url=f"{sandbox_url}/afas/ProfitRestServices", token=SANDBOX_AFAS_TOKEN)
    environment = env.get("AFAS_ENVIRONMENT", "production")
    if environment not in ("production", "test", "accept"):
        raise ConfigurationError(f"AFAS_ENVIRONMENT is {environment!r}; use production, test or accept")
    return AfasClient(
        environment_id=env.get("AFAS_ENVIRONMENT_ID") or None,
        environment=environment,
        base_url=env.get("AFAS_BASE_URL") or None,
        token=dg.EnvVar("AFAS_TOKEN"),
        integration_id=dg.EnvVar("AFAS_INTEGRATION_ID") if env.get("AFAS_INTEGRATION_ID") else None,
    )


def spotler_client(env: Mapping[str, str] = os.environ) -> SpotlerClient:
    key, secret = env.get("SPOTLER_CONSUMER_KEY"), env.get("SPOTLER_CONSUMER_SECRET")
    if not key and not secret:
        sandbox_url = env.get("AFAS_PIPELINE_SANDBOX_URL", DEFAULT_SANDBOX_URL).rstrip("/")
        return SpotlerClient(
            base_url=f"{sandbox_url}/spotler/integrationservice-1.1.0",
            consumer_key=SANDBOX_SPOTLER_KEY,
            consumer_secret=SANDBOX_SPOTLER_SECRET,
        )
    if not (key and secret):
        raise ConfigurationError("set both SPOTLER_CONSUMER_KEY and SPOTLER_CONSUMER_SECRET, or neither (sandbox)")
    options = {"base_url": env["SPOTLER_BASE_URL"]} if env.get("SPOTLER_BASE_URL") else {}
    return SpotlerClient(
        consumer_key=dg.EnvVar("SPOTLER_CONSUMER_KEY"), consumer_secret=dg.EnvVar("SPOTLER_CONSUMER_SECRET"), **options
    )


def build_resources(env: Mapping[str, str] = os.environ) -> dict[str, object]:
    return {
        "afas": afas_client(env),
        "spotler": spotler_client(env),
        "sync_state": SyncStateResource(path=env.get("AFAS_PIPELINE_STATE") or None),
        "io_manager": ParquetIOManager(base_dir=env.get("AFAS_PIPELINE_STORAGE") or None),
    }
