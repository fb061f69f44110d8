"""A small world for the sync rules of any destination: the sandboxes, a fresh sync state, and the real chain of
one destination run through Dagster. Each destination's test folder adds how its users act (`SpotlerWorld`,
`MailchimpWorld`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd

from afas_pipeline.afas.client import AfasClient
from afas_pipeline.definitions import assets as ALL_ASSETS
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_pipeline.mailchimp.client import MailchimpClient
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline.sync.state import SyncState, SyncStateResource
from afas_sandbox.server import Sandbox

#: Small enough for a full sync in about a second, big enough for every edge case of the generator.
WORLD_CONTACTS = 300
FULL_PARTITION = "2026-11-22-06:00"


def holding(assets, *names: str) -> list[dg.AssetsDefinition]:
    """The definitions among `assets` that materialise any of the assets `names`. One may materialise more than
    those (`afas_snapshots` holds every full AFAS read): select a subset with `dg.materialize(selection=...)`."""
    return [a for a in assets if any(key.to_user_string() in names for key in a.keys)]


def _name(asset) -> str:
    # The step's name: an asset's own, or `afas_snapshots` for the full AFAS reads, which are one step.
    return asset.node_def.name


def _of(destination: str, asset) -> bool:
    """The AFAS reads and the assets of one destination."""
    return _name(asset).startswith(("afas_", f"{destination}_")) and not _name(asset).startswith("afas_write")


def _way_back(destination: str, asset) -> bool:
    return _name(asset) in (f"{destination}_optout_feedback", f"{destination}_bounce_feedback",
                            f"{destination}_afas_write_back")


def _history(destination: str, asset) -> bool:
    return _name(asset) == f"{destination}_mailing_history"


def _delta(asset) -> bool:
    return any(s in _name(asset) for s in ("_changes", "_delta"))


@dataclass
class SyncWorld:
    """One destination's chain (`destination`) with the AFAS reads, against the session sandbox."""

    sandbox: Sandbox
    root: Path
    destination: str = "spotler"
    assets: list = field(default_factory=lambda: list(ALL_ASSETS))
    afas_options: dict = field(default_factory=dict)
    spotler_options: dict = field(default_factory=dict)
    mailchimp_options: dict = field(default_factory=dict)
    #: A Postgres sync state's URL; by default the state is the SQLite file `state_path`.
    state_url: str | None = None

    def __post_init__(self) -> None:
        self.instance = dg.DagsterInstance.ephemeral()
        self.state_path = self.root / "state.sqlite"
        self.storage = self.root / "storage"

    @property
    def state_location(self) -> str:
        """AFAS_PIPELINE_STATE of this world."""
        return self.state_url or str(self.state_path)

    # -- running the chain --

    def resources(self) -> dict:
        sb = self.sandbox
        fast = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}
        return {
            "afas": AfasClient(base_url=sb.afas_base_url, token=sb.afas_token, **fast, **self.afas_options),
            "spotler": SpotlerClient(base_url=sb.spotler_base_url, consumer_key=sb.spotler_consumer_key,
                                     consumer_secret=sb.spotler_consumer_secret, **fast, **self.spotler_options),
            "mailchimp": MailchimpClient(base_url=sb.mailchimp_base_url, api_key=sb.mailchimp_api_key,
                                         list_id=sb.mailchimp_list_id, **fast, **self.mailchimp_options),
            "sync_state": SyncStateResource(path=self.state_location),
            "io_manager": ParquetIOManager(base_dir=str(self.storage)),
        }

    def _chain(self) -> list[dg.AssetsDefinition]:
        d = self.destination
        return [a for a in self.assets if _of(d, a) and not _way_back(d, a) and not _history(d, a)]

    def sync(self, partition: str = FULL_PARTITION, *, delta: bool = False, dry_run: bool = False,
             tags: dict | None = None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        # The rejected records (not partitioned) are refreshed by either cadence.
        selection = [a for a in self._chain() if _delta(a) == delta or a.partitions_def is None]
        sync_name = f"{self.destination}_sync_delta" if delta else f"{self.destination}_sync"
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

    def send(self, partition: str, *, delta: bool = False, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        """Only `<d>_sync` (`<d>_sync_delta`) of a window, its audience and plan read from storage, as a re-execution
        from failure or a materialization of that asset alone runs it."""
        name = f"{self.destination}_sync_delta" if delta else f"{self.destination}_sync"
        return dg.materialize(self._chain(), selection=[name], partition_key=partition, resources=self.resources(),
                              instance=self.instance, raise_on_error=raise_on_error)

    def feedback(self, partition: str | None = None, *, tags: dict | None = None,
                 raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        """The way back for one 15-minute window (or a backfill range given as tags): `<d>_optout_feedback` and
        `<d>_bounce_feedback` -> `<d>_afas_write_back`."""
        return self._run([a for a in self.assets if _way_back(self.destination, a)], partition, tags, raise_on_error)

    def history(self, partition: str | None = None, *, tags: dict | None = None,
                raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        """The mailing history (R17) for one 15-minute window (or a backfill range given as tags)."""
        return self._run([a for a in self.assets if _history(self.destination, a)], partition, tags, raise_on_error)

    def _run(self, selection, partition, tags, raise_on_error) -> dg.ExecuteInProcessResult:
        return dg.materialize(selection, partition_key=None if tags else partition, resources=self.resources(),
                              instance=self.instance, tags=tags, raise_on_error=raise_on_error)

    @staticmethod
    def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
        (event,) = [e for e in result.get_asset_materialization_events()
                    if e.materialization.asset_key.to_user_string() == asset][-1:]
        return {k: v.value for k, v in event.materialization.metadata.items()}

    def stored(self, asset: str, partition: str = FULL_PARTITION) -> pd.DataFrame:
        return pd.read_parquet(self.storage / asset / f"{partition}.parquet")

    def state(self) -> SyncState:
        return SyncState(self.state_location)

    # -- AFAS, as a user in AFAS would --

    @staticmethod
    def admin_call(admin_url: str, method: str, path: str, **kwargs):
        """One call to a sandbox's admin API; its JSON answer (None when empty)."""
        response = httpx.request(method, f"{admin_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def afas(self, method: str, path: str, **kwargs):
        return self.admin_call(self.sandbox.afas_admin_url, method, path, **kwargs)

    def afas_edit(self, table: str, key, at: str | None = None, **fields) -> dict:
        body = {"table": table, "key": str(key), "fields": fields}
        if at:
            body["at"] = at
        return self.afas("POST", "/edit", json=body)

    def afas_contacts(self) -> pd.DataFrame:
        return pd.DataFrame(self.afas("GET", "/records/contacts"))

    def pick_among(self, n: int, present: set[str] | None, wanted: bool | None, **conditions) -> list[dict]:
        """The first `n` AFAS contacts matching conditions (field -> value, or a callable) that are (`wanted` True)
        or are not (False) among `present`, the external ids the destination holds; any when `wanted` is None."""
        df = self.afas_contacts()
        if wanted is not None:
            inside = df["ContactId"].astype(str).isin(present or set())
            df = df[inside if wanted else ~inside]
        for name, value in conditions.items():
            df = df[df[name].map(value)] if callable(value) else df[df[name] == value]
        assert len(df) >= n, f"the dataset has only {len(df)} contacts with {conditions}"
        return df.head(n).to_dict("records")
