"""Erasure (P2), the destination-neutral part: what a request covers, which records the syncs leave alone, and how
late a request may be. Free of Dagster and HTTP; `afas_pipeline.erasure` wires it to the destinations.

A request names a person by AFAS keys: `contacts` (ContactIds, the records of the e-mail destinations) and
`persons` (PersonIds, Xelion's address book). Each destination says which of its record keys those are
(`Erasable.erasure_ids`). The salted hashes of those record keys, with their destination, are the request's
tombstones: from the moment a request is queued, no ordinary sync sends those records again (the audiences exclude
them by rule P2), so an erasure is never undone by the next sync while AFAS still holds the person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

import pandas as pd

from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.sync.audience import Audience
from afas_pipeline.sync.destination import Erasable

#: The rule an audience names for a record left out because its person is to be (or was) erased.
ERASURE_RULE = "P2"
#: A request's status: waiting for (another) attempt, done in every destination, or done and its tombstones lifted.
PENDING, ERASED, LIFTED = "pending", "erased", "lifted"


def request_keys(contacts: Iterable[object] = (), persons: Iterable[object] = ()) -> dict[str, list[str]]:
    """The AFAS keys of a request, as text, sorted, without blanks."""
    def clean(values: Iterable[object]) -> list[str]:
        return sorted({str(v).strip() for v in values if v is not None and not pd.isna(v) and str(v).strip()})

    return {"contacts": clean(contacts), "persons": clean(persons)}


def tombstone(destination: str, external_id: object) -> str:
    """The hash a record key is tombstoned by: per destination, so that contact 20002 in one destination never
    stands for debtor 20002, another person, in a destination whose audience is made of debtors."""
    return hash_key(f"{destination}:{external_id}")


def tombstones(keys: Mapping[str, list[str]], destinations: Iterable[Erasable]) -> set[str]:
    """The tombstones of every record key the request covers, in every destination."""
    return {tombstone(d.name, i) for d in destinations for i in d.erasure_ids(keys)}


def marked(rows: pd.DataFrame, flag: str | None, column: str) -> set[str]:
    """`column` (ContactId, PersonId) of the rows of an AFAS contacts read whose erasure flag is on; none when no flag
    is configured or read."""
    if not flag or flag not in rows or column not in rows:
        return set()
    return set(rows.loc[rows[flag].fillna(False).astype(bool), column].dropna().astype(str))


def tombstoned_ids(external_ids: pd.Series, destination: str, tombstoned: set[str]) -> pd.Series:
    """Per record key of `destination`, whether it has a tombstone among `tombstoned` (all False when there are none)."""
    if not tombstoned:
        return pd.Series(False, index=external_ids.index)
    return external_ids.astype(str).map(lambda i: tombstone(destination, i) in tombstoned).astype(bool)


def exclude_erased(audience: Audience, destination: str, tombstoned: set[str],
                   flagged: Iterable[object] = ()) -> Audience:
    """The audience of `destination` with every member whose record key has a tombstone, or whose AFAS contact is
    marked for erasure, excluded by rule P2: the sync neither sends nor changes it (R10 stays: nothing is erased
    here)."""
    rows = audience.rows
    flagged = {str(m) for m in flagged}
    if not (tombstoned or flagged):
        return audience
    hit = rows["excluded_by"].isna() & (rows["external_id"].astype(str).isin(flagged)
                                        | tombstoned_ids(rows["external_id"], destination, tombstoned))
    if not hit.any():
        return audience
    rows = rows.copy()
    rows.loc[hit, "excluded_by"] = ERASURE_RULE
    rows = rows.sort_values(["excluded_by", "external_id"], na_position="first", kind="stable").reset_index(drop=True)
    return replace(audience, rows=rows)


def overdue(requests: pd.DataFrame, now: datetime, deadline: timedelta) -> pd.DataFrame:
    """The pending requests older than the deadline."""
    pending = requests[requests["status"] == PENDING]
    asked = pd.to_datetime(pending["requested_at"], utc=True, format="ISO8601")
    return pending[asked < pd.Timestamp(now) - deadline]
