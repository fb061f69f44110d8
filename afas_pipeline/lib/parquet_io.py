"""Parquet storage for DataFrame assets, one file per partition.

Dagster's default IO manager pickles, which is slow and opaque for a million rows. Parquet keeps
the types (tz-aware datetimes, nullable booleans) and can be read by any tool an engineer has.

A run may cover several partitions (a backfill under a BackfillPolicy). The asset then returns
either a dict of partition key -> DataFrame (each partition gets its own rows), or one DataFrame
that holds for every partition in the run (a snapshot): that one is written once, and each further key gets a hard
link to it (or, on S3, a copy made on the server).
The files live in a local folder or on S3 (`AFAS_PIPELINE_STORAGE`, afas_pipeline/lib/storage.py).

An input whose metadata names `columns` (`dg.AssetIn(key, metadata={"columns": [...]})`) gets only those columns:
the others are never read from the file. One the file does not have is left out, as a field AFAS did not return.

With `personal_data="memory"` (AFAS_PIPELINE_PERSONAL_DATA=memory) the outputs of assets that hold personal data
(afas_pipeline/retention.py, the same classification as their metadata `personal_data`) are never written: they are held in memory for the run (one IO manager per run, the in-process
executor) and only keys and hashes reach the disk. A step that needs such an output from another run (a
re-execution from failure, one asset materialised alone) fails with a line saying so.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from afas_pipeline.lib.frames import only_columns
from afas_pipeline.lib.storage import Storage, open_storage
from afas_pipeline.retention import personal_data_kinds


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores DataFrames as `<base_dir>/<asset key path>/<partition key>.parquet`."""

    base_dir: str | None = None
    """A folder or `s3://bucket/prefix`; defaults to the Dagster instance's storage directory
    (`$DAGSTER_HOME/storage`)."""
    personal_data: str = "disk"
    """`disk`: every output is a parquet file; `memory`: personal-data outputs stay in memory for the run."""

    def create_io_manager(self, context: dg.InitResourceContext) -> _ParquetStore:
        location = self.base_dir or context.instance.storage_directory()
        return _ParquetStore(open_storage(location), in_memory=self.personal_data == "memory")


def _personal(context: dg.OutputContext) -> bool:
    return personal_data_kinds(context.asset_key.to_user_string()) is not None


def _columns(context: dg.InputContext) -> list[str] | None:
    """The columns the input asks for (its metadata's `columns`), or None for all."""
    columns = (context.definition_metadata or {}).get("columns")
    return None if columns is None else list(columns)


class _ParquetStore(dg.IOManager):
    def __init__(self, storage: Storage, in_memory: bool = False):
        self.storage = storage
        self.in_memory = in_memory
        #: Personal-data outputs of this run (in memory mode), by asset key.
        self.held: dict[dg.AssetKey, pd.DataFrame | dict[str, pd.DataFrame]] = {}

    def has_stored(self, asset_key: dg.AssetKey, partition_key: str | None = None) -> bool:
        """Whether the asset's file (of this partition) is in the storage."""
        return self.storage.identity(self._path(asset_key, partition_key)) is not None

    def _path(self, asset_key: dg.AssetKey, partition_key: str | None) -> str:
        if partition_key is None:
            return self.storage.path(*asset_key.path[:-1], f"{asset_key.path[-1]}.parquet")
        return self.storage.path(*asset_key.path, f"{partition_key}.parquet")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | dict[str, pd.DataFrame] | None) -> None:
        if obj is None:
            return
        if self.in_memory and _personal(context):
            self.held[context.asset_key] = obj
            context.add_output_metadata({"stored": "in memory for this run only (AFAS_PIPELINE_PERSONAL_DATA=memory)"})
            return
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        if isinstance(obj, dict):
            missing = set(keys) - set(obj)
            if missing:
                raise ValueError(
                    f"{context.asset_key.to_user_string()}: no DataFrame returned for partitions {sorted(missing)}"
                )
            written = [self._write(obj[key], self._path(context.asset_key, key)) for key in keys]
        else:
            first = self._write(obj, self._path(context.asset_key, keys[0]))
            written = [first]
            for key in keys[1:]:
                written.append(self._path(context.asset_key, key))
                self.storage.link(first, written[-1])
        shown = written[0] if len(written) == 1 else written[0].rsplit("/", 1)[0]
        context.add_output_metadata({"path": dg.MetadataValue.path(self.storage.url(shown))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        asset_key = context.asset_key
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        columns = _columns(context)
        if self.in_memory and _personal(context.upstream_output):
            return self._held(context, keys, columns)
        frames, seen = [], set()
        for key in keys:
            path = self._path(asset_key, key)
            identity = self.storage.identity(path)
            if identity is None:
                where = f"partition {key}" if key else "its only output"
                raise FileNotFoundError(f"{asset_key.to_user_string()} has no stored data for {where} "
                                        f"({self.storage.url(path)}); materialise it first")
            # A snapshot written once for a range of partitions is one file (or its copies) under each key:
            # read it once, or a range would hold every row once per partition.
            if identity not in seen:
                seen.add(identity)
                frames.append(self.storage.read_parquet(path, columns))
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _held(self, context: dg.InputContext, keys: list[str | None], columns: list[str] | None) -> pd.DataFrame:
        name = context.asset_key.to_user_string()
        if context.asset_key not in self.held:
            raise FileNotFoundError(
                f"{name} holds personal data, which AFAS_PIPELINE_PERSONAL_DATA=memory keeps in memory for the run "
                f"that made it only: materialise {name} in the same run as the step that reads it (a re-execution "
                "from failure or a step run alone cannot read it; launch the whole window again)")
        value = self.held[context.asset_key]
        if isinstance(value, dict):
            frames = [only_columns(value[key], columns) for key in keys if key in value]
            return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return only_columns(value, columns)

    def _write(self, df: pd.DataFrame, path: str) -> str:
        self.storage.write_parquet(path, df)
        return path
