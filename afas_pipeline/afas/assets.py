"""The AFAS source assets: what AFAS Profit holds, read through its GetConnectors.

For each entity (contacts, persons, organisations; debtors and their delivery addresses when a destination's
audience is AFAS's customers) there are two assets:
- `afas_<entity>`: the full read, a snapshot every 6 hours (R2);
- `afas_<entity>_changes`: what changed in a 15-minute window, by modified date (R1; for contacts
  also by the person's and organisation's own dates, so card edits reach the delta, R2).
"""


from collections.abc import Iterator
from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from afas_pipeline.afas import checks
from afas_pipeline.afas.client import AfasClient, ReadStats
from afas_pipeline.afas.partitions import (
    DELTA_BACKFILL, DELTA_POOL, FULL_BACKFILL, FULL_POOL, delta_partitions, full_partitions,
)
from afas_pipeline.afas.sources import CRM_ENTITIES, AfasSource, AfasSources, Entity, default_sources
from afas_pipeline.retries import retry_transient_failures

GROUP = "afas"
OWNERS = ["team:data-engineering"]
KINDS = {"afas", "pandas", "parquet"}

_DESCRIPTIONS: dict[Entity, str] = {
    "contacts": "Contact persons: one row per contact (person at organisation, loose person, ...), "
    "with e-mail, blocked flag, permissions and bounce fields.",
    "persons": "Persons: the person cards the contacts point to.",
    "organisations": "Organisations: the organisation cards the contacts point to.",
    "debtors": "Debtors: AFAS's customers (an organisation or a person as sales relation), with name, address, "
    "phone, e-mail and blocked flag as the debtor card shows them.",
    "delivery_addresses": "Delivery addresses: the debtors' addresses, one row per address, each naming its debtor.",
}


def _check_specs(asset_name: str, entity: Entity) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            "required_ids_present",
            asset=asset_name,
            blocking=True,
            description="R9: every row carries its id; contacts also their person and (unless loose) organisation.",
        ),
        dg.AssetCheckSpec(
            "unique_keys", asset=asset_name, blocking=True, description="One row per key; C2 builds on it."
        ),
    ]
    if entity == "contacts":
        specs.append(
            dg.AssetCheckSpec(
                "contact_kind_known",
                asset=asset_name,
                blocking=False,
                description="Every contact kind is one AFAS defines (PRS, PER, ORG, AFD, AFL).",
            )
        )
    return specs


def _check_results(df: pd.DataFrame, entity: Entity, source: AfasSource) -> Iterator[dg.AssetCheckResult]:
    outcomes = {
        "required_ids_present": checks.required_ids_present(df, entity, source),
        "unique_keys": checks.unique_keys(df, source),
    }
    if entity == "contacts":
        outcomes["contact_kind_known"] = checks.contact_kind_known(df, source)
    for name, outcome in outcomes.items():
        yield dg.AssetCheckResult(
            check_name=name,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR if name != "contact_kind_known" else dg.AssetCheckSeverity.WARN,
            description=outcome.description,
            metadata=outcome.metadata,
        )


def _read_metadata(df: pd.DataFrame, stats: ReadStats, source: AfasSource) -> dict[str, object]:
    return {
        "dagster/row_count": len(df),
        "afas/connector": source.connector,
        "afas/pages": stats.pages,
        "afas/requests": stats.requests,
        "afas/retries": stats.retries,
        "afas/bytes": stats.bytes,
        "afas/duration_s": round(stats.duration_s, 3),
        "rows_per_s": round(len(df) / stats.duration_s, 1) if stats.duration_s > 0 else 0.0,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()]
        ),
    }


def split_by_partition(
    df: pd.DataFrame, date_fields: tuple[str, ...], partition_keys: list[str], fmt: str = "%Y-%m-%d-%H:%M"
) -> dict[str, pd.DataFrame]:
    """Give each 15-minute partition the rows with any modified date inside its window.

    A contact whose own date and whose person's date fall in different windows belongs to both,
    exactly as if the partitions had been read one by one.
    """
    hits = {key: pd.Series(False, index=df.index) for key in partition_keys}
    for name in date_fields:
        window_keys = df[name].dt.floor("15min").dt.strftime(fmt)
        for key in partition_keys:
            hits[key] |= (window_keys == key).fillna(False).astype(bool)
    return {key: df.loc[mask].reset_index(drop=True) for key, mask in hits.items()}


def build_source_assets(entity: Entity, source: AfasSource) -> list[dg.AssetsDefinition]:
    snapshot_name = f"afas_{entity}"
    changes_name = f"afas_{entity}_changes"
    common = dict(
        group_name=GROUP,
        owners=OWNERS,
        kinds=KINDS,
        metadata={"afas/connector": source.connector, "afas/key": source.key},
    )

    @dg.asset(
        name=snapshot_name,
        description=f"{_DESCRIPTIONS[entity]} Full read of GetConnector `{source.connector}`, every 6 hours (R2).",
        partitions_def=full_partitions,
        backfill_policy=FULL_BACKFILL,
        pool=FULL_POOL,
        check_specs=_check_specs(snapshot_name, entity),
        **common,
    )
    @retry_transient_failures
    def snapshot(context: dg.AssetExecutionContext, afas: AfasClient):
        afas.require_fields(source.connector, source.fields_needed, rule="R9")
        df, stats = afas.read(source.connector, order_by=list(source.order_by))
        context.log.info(f"read {len(df)} rows from {source.connector} in {stats.pages} pages")
        yield dg.Output(df, metadata=_read_metadata(df, stats, source))
        yield from _check_results(df, entity, source)

    @dg.asset(
        name=changes_name,
        description=(
            f"{_DESCRIPTIONS[entity]} Rows of `{source.connector}` whose "
            f"{', '.join(source.modified)} fall in the 15-minute window (R1)."
        ),
        partitions_def=delta_partitions,
        backfill_policy=DELTA_BACKFILL,
        pool=DELTA_POOL,
        check_specs=_check_specs(changes_name, entity),
        **common,
    )
    @retry_transient_failures
    def changes(context: dg.AssetExecutionContext, afas: AfasClient):
        window = context.partition_time_window
        start, end = _utc(window.start), _utc(window.end)
        afas.require_fields(source.connector, source.fields_needed, rule="R9")
        df, stats = afas.read_window(
            source.connector, key=source.key, date_fields=list(source.modified), start=start, end=end
        )
        keys = context.partition_keys
        context.log.info(f"{len(df)} changed rows in {source.connector} over {len(keys)} window(s)")
        metadata = {**_read_metadata(df, stats, source), "windows": len(keys)}
        value = split_by_partition(df, source.modified, keys) if len(keys) > 1 else df
        yield dg.Output(value, metadata=metadata)
        yield from _check_results(df, entity, source)

    return [snapshot, changes]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def build_afas_assets(sources: AfasSources | None = None,
                      entities: tuple[Entity, ...] = CRM_ENTITIES) -> list[dg.AssetsDefinition]:
    """The reads of `entities`: the CRM always, the customers only when a destination's audience needs them."""
    sources = sources or default_sources()
    return [asset for entity in entities for asset in build_source_assets(entity, sources[entity])]
