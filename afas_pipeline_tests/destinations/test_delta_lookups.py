"""How large a full read of each AFAS connector would be, for a delta choosing between look-ups by key and a full
read (`afas.lookups.lookup_limit`): the row count of each snapshot's last materialisation, none before the first."""

import dagster as dg

from afas_pipeline.afas.sources import default_sources
from afas_pipeline.chain.sync import _table_rows


def test_the_size_of_each_connector_is_its_last_full_reads_row_count():
    instance = dg.DagsterInstance.ephemeral()
    assert _table_rows(instance, default_sources()) == {}  # no full read yet: the default limit

    instance.report_runless_asset_event(dg.AssetMaterialization("afas_persons", partition="2026-11-22-06:00",
                                                                metadata={"dagster/row_count": 1_000}))
    instance.report_runless_asset_event(dg.AssetMaterialization("afas_persons", partition="2026-11-22-12:00",
                                                                metadata={"dagster/row_count": 1_200_000}))
    instance.report_runless_asset_event(dg.AssetMaterialization("afas_organisations"))  # no row count said

    assert _table_rows(instance, default_sources()) == {"persons": 1_200_000}
