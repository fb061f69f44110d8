"""Reading AFAS rows by key: a delta's persons and organisations, records waiting for a retry, the contacts a
write-back or a dossier item goes to. Every destination's chain reads AFAS through here."""

from __future__ import annotations

import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from afas_pipeline.afas.client import AfasClient, Condition, Filter, Op
from afas_pipeline.afas.sources import AfasSource

#: Ids per AFAS lookup call, well inside AFAS's 2049-character query limit.
LOOKUP_CHUNK = 50
#: Past this many ids a delta reads the whole connector once instead of many filtered calls, when the size of the
#: connector is not known; with it, never fewer (`lookup_limit`).
LOOKUP_FULL_READ = 250


def lookup_limit(table_rows: int | None, page_size: int) -> int:
    """The most keys read by look-ups before one full read is cheaper: a look-up call reads `LOOKUP_CHUNK` keys, a
    full read a page of `page_size` rows per call, so look-ups win while they take fewer calls than the full read
    has pages (at 1,000,000 rows in pages of 5,000: 10,000 keys). `LOOKUP_FULL_READ` when the size is not known,
    and never less."""
    if not table_rows:
        return LOOKUP_FULL_READ
    return max(LOOKUP_FULL_READ, LOOKUP_CHUNK * math.ceil(table_rows / page_size))


def read_by_keys(afas: AfasClient, source: AfasSource, keys: Iterable[str],
                 field: str | None = None, *, table_rows: int | None = None) -> tuple[pd.DataFrame, int]:
    """Rows of a GetConnector by key (or by another `field`: every contact of some persons): `LOOKUP_CHUNK`
    keys per call (an OR filter), calls side by side up to the client's concurrency cap; past `lookup_limit` keys
    (with `table_rows`, the connector's rows at its last full read, if known) one full read is cheaper."""
    field = field or source.key
    keys = sorted({str(k) for k in keys if pd.notna(k)})
    if not keys:
        return pd.DataFrame(), 0
    if len(keys) > lookup_limit(table_rows, afas.page_size):
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
                     wanted: pd.Series, *, table_rows: int | None = None) -> tuple[pd.DataFrame, int]:
    """`have` plus the rows of `wanted` keys it lacks, read from AFAS by key; and the calls that took."""
    present = set(have[source.key].astype(str)) if len(have.columns) else set()
    missing = {str(k) for k in wanted.dropna()} - present
    extra, calls = read_by_keys(afas, source, missing, table_rows=table_rows)
    if not len(extra):
        return have, calls
    return (pd.concat([have, extra], ignore_index=True) if len(have.columns) else extra), calls
