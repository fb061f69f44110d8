"""Data-quality rules for what AFAS hands us, as plain functions over DataFrames.

Each returns a `CheckOutcome`: passed or not, and counts plus hashed keys of the offending rows,
never the rows themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from afas_pipeline.afas.sources import AfasSource, Entity
from afas_pipeline.lib.privacy import hashed_sample

#: AFAS contact kinds (ViKc): person at organisation, loose person, organisation, department,
#: delivery address.
KNOWN_CONTACT_KINDS = frozenset({"PRS", "PER", "ORG", "AFD", "AFL"})

#: Kinds that belong to an organisation and so must carry its id (R9).
KINDS_WITH_ORGANISATION = frozenset({"PRS", "AFD", "AFL", "ORG"})
#: Kinds that are a person and so must carry the person number (R9); a department has none.
KINDS_WITH_PERSON = frozenset({"PRS", "PER"})


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def required_ids_present(df: pd.DataFrame, entity: Entity, source: AfasSource) -> CheckOutcome:
    """R9: every row carries its own id; a contact also its person and organisation, where its kind has them."""
    missing = df[source.key].isna()
    if entity == "contacts":
        missing |= df["ContactKind"].isin(KINDS_WITH_PERSON) & df["PersonId"].isna()
        needs_org = df["ContactKind"].isin(KINDS_WITH_ORGANISATION)
        missing |= needs_org & df["OrganisationId"].isna()
    offenders = df.loc[missing, source.key]
    return CheckOutcome(
        passed=not missing.any(),
        description=f"{int(missing.sum())} of {len(df)} rows lack a required id",
        metadata={"rows_checked": len(df), "rows_missing_ids": int(missing.sum()), "offender_keys": hashed_sample(offenders)},
    )


def contact_kind_known(df: pd.DataFrame, source: AfasSource) -> CheckOutcome:
    """Every contact kind is one AFAS defines; an unknown kind means the connector changed."""
    unknown = ~df["ContactKind"].isin(KNOWN_CONTACT_KINDS)
    counts = df.loc[unknown, "ContactKind"].fillna("<empty>").value_counts()
    return CheckOutcome(
        passed=not unknown.any(),
        description=f"{int(unknown.sum())} of {len(df)} contacts have an unknown kind",
        metadata={
            "rows_checked": len(df),
            "rows_unknown_kind": int(unknown.sum()),
            # Kind codes are AFAS enumerations, not personal data.
            "unknown_kinds": {str(k): int(v) for k, v in counts.items()},
            "offender_keys": hashed_sample(df.loc[unknown, source.key]),
        },
    )


def unique_keys(df: pd.DataFrame, source: AfasSource) -> CheckOutcome:
    """One row per key: paging without a stable sort, or a join in the connector, shows up here."""
    duplicated = df[source.key].duplicated(keep=False) & df[source.key].notna()
    dupes = df.loc[duplicated, source.key].drop_duplicates()
    return CheckOutcome(
        passed=not duplicated.any(),
        description=f"{len(dupes)} keys occur more than once",
        metadata={"rows_checked": len(df), "duplicate_keys": len(dupes), "offender_keys": hashed_sample(dupes)},
    )
