"""The destinations, declared as data: one folder each, with a defs.yaml naming its mapping and adapter
(`afas_pipeline.chain.component.DestinationComponent`). Dagster loads them (`dg.load_from_defs_folder`)."""

from pathlib import Path

#: The destinations' names, one per folder; each needs its `<name>.yaml` in the mappings folder.
DESTINATIONS = tuple(sorted(p.parent.name for p in Path(__file__).parent.glob("*/defs.yaml")))
#: The e-mail destinations: those built by the one e-mail chain (`DestinationComponent`); Xelion has its own graph.
EMAIL_DESTINATIONS = tuple(d for d in DESTINATIONS if "DestinationComponent" in
                           (Path(__file__).parent / d / "defs.yaml").read_text(encoding="utf-8"))
