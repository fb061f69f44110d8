"""The Spotler world: the chain to Spotler through Dagster (`afas_pipeline_tests.world`), and Spotler as its
recipients and users see it."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import httpx
import pytest

from afas_pipeline.afas.sources import AfasSources, default_sources
from afas_pipeline.chain import build_destination_assets
from afas_pipeline.mapping.load import default_mapping
from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.spotler.adapter import SpotlerAdapter
from afas_pipeline_tests.world import FULL_PARTITION, WORLD_CONTACTS
from afas_pipeline_tests.world import SyncWorld as BaseWorld

__all__ = ["FULL_PARTITION", "WORLD_CONTACTS", "SyncWorld", "email_active", "permissions", "spotler_assets"]


def spotler_assets(mapping: DestinationMapping | None = None,
                   sources: AfasSources | None = None) -> list[dg.AssetsDefinition]:
    """Spotler's chain built from another mapping or other AFAS sources than the shipped ones."""
    return build_destination_assets(SpotlerAdapter(mapping or default_mapping("spotler")), sources or default_sources())


@dataclass
class SyncWorld(BaseWorld):
    """The Spotler chain, and Spotler as its recipients and users see it."""

    destination: str = "spotler"

    def pick(self, n: int = 1, *, in_spotler: bool | None = True, **conditions) -> list[dict]:
        """The first `n` AFAS contacts matching conditions (field -> value, or a callable); by default
        only contacts the last sync put in Spotler (valid address, person at organisation, ...)."""
        present = set(self.spotler_contacts()) if in_spotler is not None else None
        return self.pick_among(n, present, in_spotler, **conditions)

    # -- Spotler, as a recipient or a Spotler user would --

    def spotler(self, method: str, path: str, **kwargs):
        return self.admin_call(self.sandbox.spotler_admin_url, method, path, **kwargs)

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
