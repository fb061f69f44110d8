"""Reading AFAS rows by key: a delta's persons and organisations, records waiting for a retry, the contacts a
write-back or a dossier item goes to. Every destination's chain reads AFAS through here."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from afas_pipeline.afas.client import AfasClient, Condition, Filter, Op
from afas_pipeline.afas.sources import AfasSource

#: Ids per AFAS lookup call, well inside AFAS's 2049-character query limit.
LOOKUP_CHUNK = 50
#: Past this many ids a delta reads the whole connector once instead of many filtered calls.
LOOKUP_FULL_READ = 250


def read_by_keys(afas: AfasClient, source: AfasSource, keys: Iterable[str],
                 field: str | None = None) -> tuple[pd.DataFrame, int]:
    """Rows of a GetConnector by key (or by another `field`: every contact of some persons): `LOOKUP_CHUNK`
    keys per call (an OR filter), calls side by side up to the client's concurrency cap; past
    `LOOKUP_FULL_READ` keys one full read is cheaper."""
    field = field or source.key
    keys = sorted({str(k) for k in keys if pd.notna(k)})
    if not keys:
        return pd.DataFrame(), 0
    if len(keys) > LOOKUP_FULL_READ:
        frame, stats = afas.read(source.connector, order_by=list(source.order_by))
        return frame[frame[field].astype(str).isin(keys)].reset_index(drop=True), stats.pages

    def lookup(chunk: list[str]) -> pd.DataFrame:
        afas_filter = Filter.any_of(*(Condition(field, Op.EQ, k) for k in chunk))
        return afas.read(source.connector, filters=afas_filter, order_by=list(source.order_by))[0]

    chunks = [keys[i : i + LOOKUP_CHUNK] for i in range(0, len(keys), LOOKUP_CHUNK)]
    with ThreadPoolExecutor(max_workers=max(1, afas.max_concurrency)) as pool:
        frames = list(pool.map(lookup, chunks))
    return pd.concat(frames, ignore_index=True), len(chunks)


def complete_by_keys(afas: AfasClient, source: AfasSource, have: pd.DataFrame,
                     wanted: pd.Series) -> tuple[pd.DataFrame, int]:
    """`have` plus the rows of `wanted` keys it lacks, read from AFAS by key; and the calls that took."""
    present = set(have[source.key].astype(str)) if len(have.columns) else set()
    missing = {str(k) for k in wanted.dropna()} - present
    extra, calls = read_by_keys(afas, source, missing)
    if not len(extra):
        return have, calls
    return (pd.concat([have, extra], ignore_index=True) if len(have.columns) else extra), calls
