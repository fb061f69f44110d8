"""The AFAS source assets: what AFAS Profit holds, read through its GetConnectors.

For each entity (contacts, persons, organisations; debtors and their delivery addresses when a destination's
audience is AFAS's customers) there are two assets:
- `afas_<entity>`: the full read, a snapshot every 6 hours (R2);
- `afas_<entity>_changes`: what changed in a 15-minute window, by modified date (R1; for contacts
  also by the person's and organisation's own dates, so card edits reach the delta, R2).

The snapshots are one step, `afas_snapshots`: the code location runs a run's steps one after another (in-process
executor), and a full read spends most of its time waiting on AFAS, so the step reads every selected connector at
once, one thread each. It stores all of them or none: a read that fails fails the step before any is stored.
"""


import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from afas_pipeline.afas import checks
from afas_pipeline.afas.client import AfasClient, ReadStats, ReadStopped
from afas_pipeline.afas.partitions import (
    DELTA_BACKFILL, DELTA_POOL, FULL_BACKFILL, FULL_POOL, delta_partitions, full_partitions,
)
from afas_pipeline.afas.sources import CRM_ENTITIES, AfasSource, AfasSources, Entity, default_sources
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.text import one_line
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


def _check_results(df: pd.DataFrame, entity: Entity, source: AfasSource,
                   asset_name: str | None = None) -> Iterator[dg.AssetCheckResult]:
    outcomes = {
        "required_ids_present": checks.required_ids_present(df, entity, source),
        "unique_keys": checks.unique_keys(df, source),
    }
    if entity == "contacts":
        outcomes["contact_kind_known"] = checks.contact_kind_known(df, source)
    for name, outcome in outcomes.items():
        yield dg.AssetCheckResult(
            asset_key=asset_name,
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


SNAPSHOTS_STEP = "afas_snapshots"


def _common(source: AfasSource) -> dict:
    return dict(group_name=GROUP, owners=OWNERS, kinds=KINDS,
                metadata={"afas/connector": source.connector, "afas/key": source.key})


def _snapshot_spec(entity: Entity, source: AfasSource) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=f"afas_{entity}",
        description=f"{_DESCRIPTIONS[entity]} Full read of GetConnector `{source.connector}`, every 6 hours (R2).",
        **_common(source),
    )


def build_snapshot_assets(sources: Mapping[Entity, AfasSource]) -> dg.AssetsDefinition:
    """The full reads of `sources` as one step that reads the selected connectors side by side. Each is its own
    asset with its own checks; materialising some of them (a rerun of one that failed, a backfill of one) reads
    only their connectors."""
    entities = {f"afas_{entity}": (entity, source) for entity, source in sources.items()}

    # Outs made from the specs, not `specs=`: an out of `specs=` has Dagster type Nothing and stores no value.
    @dg.multi_asset(
        name=SNAPSHOTS_STEP,
        outs={f"afas_{entity}": dg.AssetOut.from_spec(_snapshot_spec(entity, source), is_required=False)
              for entity, source in sources.items()},
        partitions_def=full_partitions,
        check_specs=[spec for name, (entity, _) in entities.items() for spec in _check_specs(name, entity)],
        can_subset=True,
        backfill_policy=FULL_BACKFILL,
        pool=FULL_POOL,
    )
    @retry_transient_failures
    def afas_snapshots(context: dg.AssetExecutionContext, afas: AfasClient):
        assets_chosen, checks_chosen = context.selected_asset_keys, context.selected_asset_check_keys
        # A check run on its own (the UI's "Execute" of one check) reads its connector too, and stores nothing.
        chosen = {name: entities[name] for name in entities
                  if dg.AssetKey(name) in assets_chosen or any(c.asset_key == dg.AssetKey(name) for c in checks_chosen)}
        reads = read_side_by_side(afas, {name: source for name, (_, source) in chosen.items()}, context.log)
        for name, (entity, source) in chosen.items():
            df, stats = reads.pop(name)  # let go of each frame once it is stored
            context.log.info(f"read {len(df)} rows from {source.connector} in {stats.pages} pages")
            if dg.AssetKey(name) in assets_chosen:
                yield dg.Output(df, output_name=name, metadata=_read_metadata(df, stats, source))
            yield from (result for result in _check_results(df, entity, source, name)
                        if dg.AssetCheckKey(dg.AssetKey(name), result.check_name) in checks_chosen)

    return afas_snapshots


def read_side_by_side(afas: AfasClient, sources: Mapping[str, AfasSource],
                      log: logging.Logger | dg.DagsterLogManager) -> dict[str, tuple[pd.DataFrame, ReadStats]]:
    """The full read of each source, each in its own thread, by name. The first read to fail stops the others at
    their next page, and is raised as it is (the AFAS client's message names the connector) once no read runs any
    more; another read's own failure is logged on `log`, never mixed into it. An interrupt (Ctrl-C, a run
    terminated) stops them the same way."""
    stop = threading.Event()

    def read(source: AfasSource) -> tuple[pd.DataFrame, ReadStats]:
        afas.require_fields(source.connector, source.fields_needed, rule="R9")
        return afas.read(source.connector, order_by=list(source.order_by), stop=stop)

    failures: list[BaseException] = []
    reads: dict[str, tuple[pd.DataFrame, ReadStats]] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(sources)), thread_name_prefix="afas-read") as pool:
        futures = {pool.submit(read, source): name for name, source in sources.items()}
        try:
            for future in as_completed(futures):
                error = future.exception()
                if error is None:
                    reads[futures[future]] = future.result()
                elif not isinstance(error, ReadStopped):
                    failures.append(error)
                    stop.set()
                    failpoint("afas.read_failed")
        finally:
            stop.set()  # a no-op when every read ended; otherwise the reads stop before the pool is left
    if failures:
        for later in failures[1:]:
            log.error(f"another AFAS read failed too: {one_line(later)}")
        raise failures[0]
    return reads


def build_changes_asset(entity: Entity, source: AfasSource) -> dg.AssetsDefinition:
    changes_name = f"afas_{entity}_changes"

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
        **_common(source),
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

    return changes


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def build_afas_assets(sources: AfasSources | None = None,
                      entities: tuple[Entity, ...] = CRM_ENTITIES) -> list[dg.AssetsDefinition]:
    """The reads of `entities`: the CRM always, the customers only when a destination's audience needs them."""
    sources = sources or default_sources()
    return [build_snapshot_assets({entity: sources[entity] for entity in entities}),
            *(build_changes_asset(entity, sources[entity]) for entity in entities)]
