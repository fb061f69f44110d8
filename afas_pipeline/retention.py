"""Personal data is kept only as long as a configured retention (P1); logs and the sync state hold keys (P3).

Every asset says in its metadata whether what it stores holds personal data (`personal_data`, and what kind in
`personal_data_kinds`). The daily `personal_data_retention_job` runs the asset `personal_data_retention`, which
deletes:
- the stored files of every personal-data asset older than `AFAS_PIPELINE_RETENTION_DAYS` (default 7; 0: all),
  in a folder or on S3 (by the objects' last-modified time; afas_pipeline/lib/storage.py);
- delivered events of the feedback ledger and mailing reactions older than `AFAS_PIPELINE_LEDGER_RETENTION_DAYS`
  (default 90; events still pending delivery stay);
- finished Dagster runs (their event logs and compute logs) older than `AFAS_PIPELINE_RUN_RETENTION_DAYS`
  (default 30): Dagster OSS has no run retention of its own (dagster.yaml's `retention:` covers ticks only).
It records counts and bytes per asset, never content or keys. `AFAS_PIPELINE_PERSONAL_DATA=memory` keeps
personal data out of storage altogether (lib/parquet_io.py, by the same classification).
"""


import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from afas_pipeline.afas.partitions import DELTA, horizon_days
from afas_pipeline.lib.settings import whole_number
from afas_pipeline.lib.storage import Entry, Storage, open_storage, storage_location
from afas_pipeline.sync.state import SyncStateResource

RETENTION_SETTING = "AFAS_PIPELINE_RETENTION_DAYS"
LEDGER_SETTING = "AFAS_PIPELINE_LEDGER_RETENTION_DAYS"
RUN_SETTING = "AFAS_PIPELINE_RUN_RETENTION_DAYS"
SETTINGS = (RETENTION_SETTING, LEDGER_SETTING, RUN_SETTING)
MAX_DAYS = 3660

#: What each asset stores that is personal data, by the asset's whole name (first match wins).
PERSONAL_DATA = {
    r"afas_contacts(_changes)?": "e-mail addresses, phone numbers, job titles",
    r"afas_persons(_changes)?": "names, e-mail addresses, phone numbers, birth dates",
    r"afas_organisations(_changes)?": "names, addresses, e-mail addresses, phone numbers",
    r"afas_\w+": "names, addresses, e-mail addresses",  # the debtor reads
    r"\w+_audience(_delta)?": "names, e-mail addresses, addresses, job titles",
    # the new value of a two-way field (such as a job title) changed in the destination
    r"\w+_(optout|bounce)_feedback": "values of two-way fields (job titles)",
}
#: Assets that store keys, hashes, counts and outcomes only.
KEYS_AND_HASHES = (
    r"\w+_sync_plan(_delta)?", r"\w+_sync(_delta)?", r"\w+_rejected", r"\w+_afas_write_back",
    r"\w+_mailing_history", r"xelion_address_book(_delta)?", r"xelion_phone_index", r"xelion_call_reports",
    r"personal_data_retention", r"erasure_requests", r"erasure_audit",
)


def personal_data_kinds(asset_name: str) -> str | None:
    """What personal data the asset stores, or None when it stores keys and hashes only. An asset in neither
    list stops the code location loading: a new asset is classified here before it ships."""
    if any(re.fullmatch(p, asset_name) for p in KEYS_AND_HASHES):
        return None
    for pattern, kinds in PERSONAL_DATA.items():
        if re.fullmatch(pattern, asset_name):
            return kinds
    raise ValueError(f"asset {asset_name} is not classified in afas_pipeline/retention.py: add its name to "
                     "PERSONAL_DATA (what personal data it stores) or KEYS_AND_HASHES")


def with_personal_data(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets, each with metadata `personal_data` (and `personal_data_kinds` when true)."""

    def add(spec: dg.AssetSpec) -> dg.AssetSpec:
        kinds = personal_data_kinds(spec.key.to_user_string())
        metadata = {"personal_data": kinds is not None, **({"personal_data_kinds": kinds} if kinds else {})}
        return spec.merge_attributes(metadata=metadata)

    return dg.map_asset_specs(add, list(assets))


def retention_days(env: Mapping[str, str] = os.environ) -> dict[str, int]:
    """The three retentions in days, checked (one line naming the setting when one cannot work)."""
    # A delivered event pruned from the ledger would be delivered to AFAS again if its window were read again: keep
    # it as long as a delta window can be re-read (the delta horizon, plus the bounce feed's day of look-back).
    reread = horizon_days(DELTA, env) + 2
    return {
        "personal_data": whole_number(env, RETENTION_SETTING, 7, minimum=0, maximum=MAX_DAYS, unit=" days"),
        "ledger": whole_number(env, LEDGER_SETTING, max(90, reread), minimum=reread, maximum=MAX_DAYS,
                               unit=" days (at least the delta horizon plus 2: a window read again must not "
                                    "deliver an event again)"),
        "runs": whole_number(env, RUN_SETTING, 30, minimum=0, maximum=MAX_DAYS, unit=" days"),
    }


def asset_storage(instance: dg.DagsterInstance, env: Mapping[str, str] = os.environ) -> Storage:
    """Where the ParquetIOManager stores the assets (resources.build_resources): `$AFAS_PIPELINE_STORAGE` (a folder
    or s3://bucket/prefix), else the instance's storage folder."""
    return open_storage(storage_location(instance.storage_directory(), env), env)


def asset_files(storage: Storage, key: dg.AssetKey) -> list[Entry]:
    """The stored files of one asset: its partitions (`<key>/<partition>.parquet`, and leftovers of a crashed
    write), or its only file (`<key>.parquet`)."""
    return storage.entries(storage.path(*key.path), storage.path(*key.path[:-1], f"{key.path[-1]}.parquet"))


def delete_older(storage: Storage, key: dg.AssetKey, older_than_s: float) -> dict[str, int]:
    """Deletes the asset's files last written more than `older_than_s` seconds ago (0: every file); counts. On S3
    the time is the object's last-modified time."""
    cutoff = time.time() - older_than_s
    folder = storage.path(*key.path)
    counts = {"files": 0, "partitions": 0, "bytes": 0}
    seen = set()  # a snapshot hard-linked under several partitions is one file's bytes
    for entry in asset_files(storage, key):
        if older_than_s and entry.mtime > cutoff:
            continue
        storage.delete(entry.path)
        counts["files"] += 1
        counts["bytes"] += 0 if entry.identity in seen else entry.size
        seen.add(entry.identity)
        counts["partitions"] += entry.path.startswith(folder + "/") and entry.path.endswith(".parquet")
    return counts


def delete_runs(instance: dg.DagsterInstance, older_than: timedelta, keep: str) -> int:
    """Deletes finished runs (with their event logs and compute logs) that ended more than `older_than` ago,
    except `keep` (the retention's own run)."""
    cutoff = datetime.now(timezone.utc) - older_than
    records = instance.get_run_records(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]))
    deleted = 0
    for record in records:
        ended = record.end_time or record.update_timestamp.timestamp()
        if record.dagster_run.run_id == keep or ended > cutoff.timestamp():
            continue
        run_id = record.dagster_run.run_id
        instance.delete_run(run_id)
        # LocalComputeLogManager keeps a run's captured stdout/stderr in `<storage>/<run id>/`.
        shutil.rmtree(Path(instance.storage_directory()) / run_id, ignore_errors=True)
        deleted += 1
    return deleted


def build_retention(assets: Iterable[dg.AssetsDefinition]):
    """The asset `personal_data_retention` over every personal-data asset among `assets`, its job and its daily
    schedule. A retention setting that cannot work stops the code location loading."""
    retention_days()
    personal = sorted({key for a in assets for key in a.keys
                       if personal_data_kinds(key.to_user_string()) is not None}, key=lambda k: k.path)

    @dg.asset(description="Deletes stored personal data, old ledger events and old runs past their retention; "
                          "records counts only.")
    def personal_data_retention(context: dg.AssetExecutionContext,
                                sync_state: SyncStateResource) -> dg.MaterializeResult:
        days = retention_days()
        storage = asset_storage(context.instance)
        metadata: dict[str, object] = {f"retention_days_{k}": v for k, v in days.items()}
        totals = {"files": 0, "partitions": 0, "bytes": 0}
        for key in personal:
            counts = delete_older(storage, key, days["personal_data"] * 86400)
            for what, n in counts.items():
                totals[what] += n
            if counts["files"]:
                metadata[f"deleted:{key.to_user_string()}"] = dg.MetadataValue.json(counts)
        metadata.update({f"deleted_{what}": n for what, n in totals.items()})
        pruned = sync_state.open().prune_delivered(timedelta(days=days["ledger"]))
        metadata.update({f"pruned_{table}": n for table, n in pruned.items()})
        metadata["deleted_runs"] = delete_runs(context.instance, timedelta(days=days["runs"]), keep=context.run.run_id)
        context.log.info(f"deleted {totals['files']} files ({totals['bytes']} bytes) of personal data, "
                         f"{sum(pruned.values())} delivered ledger events, {metadata['deleted_runs']} runs")
        return dg.MaterializeResult(metadata=metadata)

    job = dg.define_asset_job("personal_data_retention_job", selection=[personal_data_retention],
                              description="Deletes what is past its retention (afas_pipeline/retention.py).")
    schedule = dg.ScheduleDefinition(job=job, cron_schedule="17 3 * * *", execution_timezone="UTC",
                                     default_status=dg.DefaultScheduleStatus.RUNNING)
    return personal_data_retention, job, schedule
