"""A destination declared as data: one `defs.yaml` per destination folder under `afas_pipeline/defs/` names its
mapping file and its adapter, and this component builds the destination's whole chain from them.

    type: afas_pipeline.chain.component.DestinationComponent
    attributes:
      name: spotler                       # asset-key prefix, group, resource key of its client
      mapping: spotler.yaml               # in the mappings folder (AFAS_PIPELINE_MAPPINGS)
      adapter: afas_pipeline.spotler.adapter:SpotlerAdapter
"""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

import dagster as dg

from afas_pipeline.afas.sources import MAPPINGS_DIR, default_sources
from afas_pipeline.chain import build_destination_assets
from afas_pipeline.mapping.load import load_mapping
from afas_pipeline.sync.destination import Destination


class DestinationComponent(dg.Component, dg.Resolvable, dg.Model):
    """One destination of AFAS's contacts: its sync (full and delta), rejected records, feedback to AFAS and
    mailing history, built by `afas_pipeline.chain` from a mapping file and an adapter."""

    name: str
    """The destination's name: prefix of its asset keys and its group, and the resource key of its client."""
    mapping: str
    """The mapping file, in the mappings folder (AFAS_PIPELINE_MAPPINGS, default the project's mappings/)."""
    adapter: str
    """The adapter class, as `module:Class`; it is built with the mapping and the name."""

    def destination(self) -> Destination:
        module, _, attribute = self.adapter.partition(":")
        adapter = getattr(importlib.import_module(module), attribute)
        sources = default_sources()
        mapping = load_mapping(MAPPINGS_DIR / self.mapping, sources=sources)
        return adapter(mapping, name=self.name)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return dg.Definitions(assets=build_destination_assets(self.destination(), default_sources()))



#: The folder of the destinations' declarations: one sub-folder with a defs.yaml per destination.
DEFS_FOLDER = Path(__file__).resolve().parents[1] / "defs"


def declared_destinations() -> list[DestinationComponent]:
    """The destinations declared under `afas_pipeline/defs/`, in name order (for the CLI, which reaches every
    destination without building the Dagster definitions)."""
    found = []
    for path in sorted(DEFS_FOLDER.glob("*/defs.yaml")):
        declaration = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if str(declaration.get("type", "")).endswith("DestinationComponent"):
            found.append(DestinationComponent(**declaration.get("attributes") or {}))
    return found
