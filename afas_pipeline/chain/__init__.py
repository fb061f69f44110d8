"""One chain for any destination: AFAS -> destination -> AFAS, built from its mapping and adapter.

`build_destination_assets` is what `afas_pipeline.chain.component.DestinationComponent` calls for each
destination folder under `afas_pipeline/defs/`; nothing in this package names a vendor.
"""

import dagster as dg

from afas_pipeline.afas.sources import AfasSources, default_sources
from afas_pipeline.chain.feedback import build_feedback_assets
from afas_pipeline.chain.mailing_history import build_mailing_history_asset
from afas_pipeline.chain.sync import build_sync_assets
from afas_pipeline.sync.destination import Destination


def build_destination_assets(destination: Destination, sources: AfasSources | None = None) -> list[dg.AssetsDefinition]:
    """The destination's whole graph: both cadences' syncs, its rejected records, the way back to AFAS
    (opt-out and bounce feedback, the write-back) and, when its mapping switches it on, the mailing history."""
    sources = sources or default_sources()
    # The way back runs after the 15-minute sync of its window: AFAS -> destination -> AFAS is one graph.
    after = dg.AssetKey(f"{destination.name}_sync_delta")
    return [
        *build_sync_assets(destination, sources),
        *build_feedback_assets(destination, sources, after=after),
        *build_mailing_history_asset(destination, sources, after=after),
    ]
