"""The Xelion graph run through Dagster against the session sandbox, and Xelion and AFAS as their users see them."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from afas_pipeline.xelion.client import XelionClient
from afas_pipeline_tests.world import FULL_PARTITION, SyncWorld, holding

__all__ = ["FULL_PARTITION", "XelionWorld"]

#: A delta window after the full one, and the next.
WINDOW = "2026-11-22-12:00"
NEXT_WINDOW = "2026-11-22-12:15"


@dataclass
class XelionWorld(SyncWorld):
    destination: str = "xelion"
    xelion_options: dict = field(default_factory=dict)

    def resources(self) -> dict:
        sb = self.sandbox
        return {**super().resources(),
                "xelion": XelionClient(base_url=sb.xelion_base_url, user_name=sb.xelion_user, password=sb.xelion_password,
                                       backoff_initial_s=0.01, backoff_max_s=0.05, **self.xelion_options)}

    def _named(self, *names: str) -> list[dg.AssetsDefinition]:
        return holding(self.assets, *names)

    def sync(self, partition: str = FULL_PARTITION, *, delta: bool = False, dry_run: bool = False,
             tags: dict | None = None, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        """The address book of one window (full or delta) with its AFAS reads, and the phone index."""
        suffix = "_changes" if delta else ""
        book = "xelion_address_book_delta" if delta else "xelion_address_book"
        selection = self._named(*(f"afas_{e}{suffix}" for e in ("organisations", "persons", "contacts")), book,
                                "xelion_phone_index")
        config = {"ops": {book: {"config": {"dry_run": True}}}} if dry_run else None
        return dg.materialize(selection, partition_key=None if tags else partition, resources=self.resources(),
                              instance=self.instance, run_config=config, tags=tags, raise_on_error=raise_on_error)

    def reports(self, partition: str = WINDOW, *, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return dg.materialize(self._named("xelion_call_reports"), partition_key=partition, resources=self.resources(),
                              instance=self.instance, raise_on_error=raise_on_error)

    # -- Xelion, as its users see it --

    def x(self, method: str, path: str, **kwargs):
        return self.admin_call(self.sandbox.xelion_admin_url, method, path, **kwargs)

    def addressables(self) -> list[dict]:
        return [a for a in self.x("GET", "/addressables") if a["objectType"] in ("Person", "Organisation")]

    def by_afas_key(self) -> dict[str, dict]:
        """Addressables by the AFAS key in their marker (`organisation:100`, `person:200`)."""
        out = {}
        for a in self.addressables():
            words = (a.get("comment") or "").split()
            if len(words) == 3 and words[0] == "AFAS":
                kind = {"organisatie": "organisation", "persoon": "person"}[words[1]]
                out[f"{kind}:{words[2]}"] = a
        return out

    def place_call(self, **body) -> dict:
        return self.x("POST", "/calls", json=body)

    # -- AFAS --

    def afas_rows(self, table: str) -> pd.DataFrame:
        return pd.DataFrame(self.afas("GET", f"/records/{table}"))

    def dossier_items(self, subject_type: int | None = None) -> pd.DataFrame:
        items = self.afas_rows("subjects")
        if subject_type is not None and len(items):
            items = items[items["SubjectTypeId"] == subject_type]
        return items
