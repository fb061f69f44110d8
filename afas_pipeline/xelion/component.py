"""Xelion declared as data (`afas_pipeline/defs/xelion/defs.yaml`): its settings file, and this component builds
its graph (`afas_pipeline.xelion.assets`). Xelion is not an e-mail audience, so it does not go through the
e-mail chain of `afas_pipeline.chain`: it shares the AFAS reads, the sync state and the cadences, not the rules
R3-R17 that are about e-mail addresses and permissions."""

from __future__ import annotations

import os

import dagster as dg

from afas_pipeline.afas.sources import MAPPINGS_DIR, default_sources
from afas_pipeline.xelion.assets import build_xelion_assets
from afas_pipeline.xelion.config import load_settings


class XelionComponent(dg.Component, dg.Resolvable, dg.Model):
    """Xelion's address book filled from AFAS (X1), the phone index for incoming calls (X2) and call reports as
    AFAS dossier items (X3, X4)."""

    settings: str = "xelion.yaml"
    """The settings file, in the mappings folder (AFAS_PIPELINE_MAPPINGS, default the project's mappings/)."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        sources = default_sources()
        settings = load_settings(MAPPINGS_DIR / self.settings, sources=sources, env=os.environ)
        return dg.Definitions(assets=build_xelion_assets(settings, sources))
