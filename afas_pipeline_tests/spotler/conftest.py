"""A small world for the sync rules: both sandboxes, a fresh sync state, and the real chain run through Dagster."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest

from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.sources import AfasSources, default_sources
from afas_pipeline.chain import build_destination_assets
from afas_pipeline.definitions import assets as ALL_ASSETS
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_sandbox.server import Sandbox
from afas_pipeline.mapping.load import default_mapping
from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.spotler.adapter import SpotlerAdapter
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline.sync.state import SyncState, SyncStateResource

#: Small enough for a full sync in about a second, big enough for every edge case of the generator.
WORLD_CONTACTS = 300
FULL_PARTITION = "2026-11-22-06:00"


#: The way back (Spotler -> AFAS), run by `SyncWorld.feedback`, not by `sync`/`delta`.
FEEDBACK_ASSETS = frozenset({"spotler_optout_feedback", "spotler_bounce_feedback", "spotler_afas_write_back"})


#: The mailing history (R17), run by `SyncWorld.history`, not by `sync`/`delta`/`feedback`.
HISTORY_ASSETS = frozenset({"spotler_mailing_history"})


def spotler_assets(mapping: DestinationMapping | None = None,
                   sources: AfasSources | None = None) -> list[dg.AssetsDefinition]:
    """Spotler's chain built from another mapping or other AFAS sources than the shipped ones."""
    return build_destination_assets(SpotlerAdapter(mapping or default_mapping("spotler")), sources or default_sources())


def _feedback(asset) -> bool:
    return asset.key.to_user_string() in FEEDBACK_ASSETS


def _history(asset) -> bool:
    return asset.key.to_user_string() in HISTORY_ASSETS


def _full_assets(assets) -> list[dg.AssetsDefinition]:
    return [a for a in assets if not any(s in a.key.to_user_string() for s in ("_changes", "_delta")) and not _feedback(a)
            and not _history(a)]


def _delta_assets(assets) -> list[dg.AssetsDefinition]:
    return [a for a in assets if (any(s in a.key.to_user_string() for s in ("_changes", "_delta")) or a.partitions_def is None)
            and not _feedback(a) and not _history(a)]


@dataclass
class SyncWorld:
    sandbox: Sandbox
    root: Path
    assets: list = field(default_factory=lambda: list(ALL_ASSETS))
    afas_options: dict = field(default_factory=dict)
    spotler_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.state_path = self.root / "state.sqlite"
        self.storage = self.root / "storage"

    # -- running the chain --

    def resources(self) -> dict:
        sb = self.sandbox
        return {
            "afas": AfasClient(base_url=sb.afas_base_url, token=sb.afas_token, backoff_initial_s=0.01,
                               backoff_max_s=0.05, **self.afas_options),
            "spotler": SpotlerClient(base_url=sb.spotler_base_url, consumer_key=sb.spotler_consumer_key,
                                     consumer_secret=sb.spotler_consumer_secret, backoff_initial_s=0.01,
                                     backoff_max_s=0.05, **self.spotler_options),
            "sync_state": SyncStateResource(path=str(self.state_path)),
            "io_manager": ParquetIOManager(base_dir=str(self.storage)),
        }

    def sync(self, partition: str = FULL_PARTITION, *, delta: bool = False, dry_run: bool = False,
             tags: dict | None = None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        selection = _delta_assets(self.assets) if delta else _full_assets(self.assets)
        sync_name = "spotler_sync_delta" if delta else "spotler_sync"
        config = {"ops": {sync_name: {"config": {"dry_run": dry_run}}}} if dry_run else None
        return dg.materialize(
            selection,
            partition_key=None if tags else partition,
            resources=self.resources(),
            instance=self.instance,
            run_config=config,
            tags=tags,
            raise_on_error=raise_on_error,
        )

    def delta(self, partition: str, **kwargs) -> dg.ExecuteInProcessResult:
        return self.sync(partition, delta=True, **kwargs)

    def feedback(self, partition: str | None = None, *, tags: dict | None = None,
                 raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        """The way back for one 15-minute window (or a backfill range given as tags): spotler_optout_feedback, spotler_bounce_feedback ->
        afas_write_back."""
        return dg.materialize(
            [a for a in self.assets if _feedback(a)],
            partition_key=None if tags else partition,
            resources=self.resources(),
            instance=self.instance,
            tags=tags,
            raise_on_error=raise_on_error,
        )

    def history(self, partition: str | None = None, *, tags: dict | None = None,
                raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        """The mailing history (R17) for one 15-minute window (or a backfill range given as tags)."""
        return dg.materialize(
            [a for a in self.assets if _history(a)],
            partition_key=None if tags else partition,
            resources=self.resources(),
            instance=self.instance,
            tags=tags,
            raise_on_error=raise_on_error,
        )

    @staticmethod
    def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
        (event,) = [e for e in result.get_asset_materialization_events()
                    if e.materialization.asset_key.to_user_string() == asset][-1:]
        return {k: v.value for k, v in event.materialization.metadata.items()}

    def stored(self, asset: str, partition: str = FULL_PARTITION) -> pd.DataFrame:
        return pd.read_parquet(self.storage / asset / f"{partition}.parquet")

    def state(self) -> SyncState:
        return SyncState(self.state_path)

    # -- AFAS, as a user in AFAS would --

    def afas(self, method: str, path: str, **kwargs):
        response = httpx.request(method, f"{self.sandbox.afas_admin_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def afas_edit(self, table: str, key, at: str | None = None, **fields) -> dict:
        body = {"table": table, "key": str(key), "fields": fields}
        if at:
            body["at"] = at
        return self.afas("POST", "/edit", json=body)

    def afas_contacts(self) -> pd.DataFrame:
        return pd.DataFrame(self.afas("GET", "/records/contacts"))

    def pick(self, n: int = 1, *, in_spotler: bool | None = True, **conditions) -> list[dict]:
        """The first `n` AFAS contacts matching conditions (field -> value, or a callable); by default
        only contacts the last sync put in Spotler (valid address, person at organisation, ...)."""
        df = self.afas_contacts()
        if in_spotler is not None:
            present = df["ContactId"].astype(str).isin(set(self.spotler_contacts()))
            df = df[present if in_spotler else ~present]
        for name, wanted in conditions.items():
            df = df[df[name].map(wanted)] if callable(wanted) else df[df[name] == wanted]
        assert len(df) >= n, f"the dataset has only {len(df)} contacts with {conditions}"
        return df.head(n).to_dict("records")

    # -- Spotler, as a recipient or a Spotler user would --

    def spotler(self, method: str, path: str, **kwargs):
        response = httpx.request(method, f"{self.sandbox.spotler_admin_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def spotler_contact(self, external_id) -> dict | None:
        response = httpx.get(f"{self.sandbox.spotler_admin_url}/contacts/{external_id}", timeout=30)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def spotler_contacts(self) -> dict[str, dict]:
        return {str(c["externalId"]): c for c in self.spotler("GET", "/contacts")}

    def spotler_stats(self) -> dict:
        return self.spotler("GET", "/stats")

    def spotler_writes(self) -> int:
        """contact/list and contact writes the Spotler sandbox received since its stats were reset."""
        requests = self.spotler_stats()["requests"]
        return sum(n for route, n in requests.items() if route.split(" ")[0] in ("POST", "PUT"))


def permissions(contact: dict) -> dict[int, bool]:
    return {int(p["bit"]): bool(p["enabled"]) for p in contact["properties"].get("permissions", [])}


def email_active(contact: dict) -> bool:
    return any(c["name"] == "EMAIL" and c["value"] for c in contact.get("channels", []))


@pytest.fixture
def world(sandbox, afas_sandbox_clean, spotler_sandbox_clean, tmp_path) -> SyncWorld:
    httpx.post(f"{sandbox.afas_admin_url}/dataset/generate", json={"contacts": WORLD_CONTACTS, "seed": 7},
               timeout=60).raise_for_status()
    return SyncWorld(sandbox, tmp_path)
