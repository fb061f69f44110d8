"""The two cadences of the AFAS read (R1, R2).

Partitions are UTC windows on purpose. AFAS itself speaks Amsterdam local time, where the autumn
DST change repeats the hour 02:00-03:00: Amsterdam-local partition keys would be ambiguous there.
The conversion to Amsterdam local time happens once, in the AFAS client's window filter.
"""

from __future__ import annotations

import dagster as dg

PARTITIONS_START = "2026-01-01-00:00"

#: R1: new and changed contacts every 15 minutes.
delta_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="*/15 * * * *",
    start=PARTITIONS_START,
    fmt="%Y-%m-%d-%H:%M",
    timezone="UTC",
)

#: R2: a full read every 6 hours repairs whatever the deltas missed.
full_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 */6 * * *",
    start=PARTITIONS_START,
    fmt="%Y-%m-%d-%H:%M",
    timezone="UTC",
)

#: A day of deltas per run: backfilling a week costs 7 runs, not 672.
DELTA_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=96)
#: A full read is a snapshot of AFAS as it is now; a backfill over many 6-hour partitions reads
#: AFAS once and records that one snapshot for each of them.
FULL_BACKFILL = dg.BackfillPolicy.single_run()
