"""The Xelion graph: AFAS -> Xelion's address book, the phone index, and Xelion's calls -> AFAS dossier items.

- `xelion_address_book` (6-hourly, R2) and `xelion_address_book_delta` (15-minute, R1): AFAS organisations and
  persons (with their employments) as addressables (X1), downstream of the AFAS reads every destination shares.
- `xelion_phone_index`: salted number hash -> the BcId an incoming call opens (X2), for `afas-pipeline
  call-lookup` and for matching calls; its metadata counts the numbers several records share.
- `xelion_call_reports` (15-minute): new finished calls from Xelion's communications feed as KnSubject items of
  the configured type, with the recording attached (X3, X4).
Keys, counts and hashes only in outputs and metadata; a number or a name never.
"""


from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from afas_pipeline.afas.assets import OWNERS
from afas_pipeline.afas.client import AfasClient
from afas_pipeline.afas.lookups import read_by_keys
from afas_pipeline.afas.partitions import (
    DELTA_BACKFILL, DELTA_POOL, FULL_BACKFILL, FULL_POOL, delta_partitions, full_partitions,
)
from afas_pipeline.afas.sources import AfasSources
from afas_pipeline.lib.failpoints import failpoint
from afas_pipeline.lib.phones import parse
from afas_pipeline.lib.privacy import hash_key, number_key
from afas_pipeline.retries import retry_transient_failures
from afas_pipeline.xelion import calls as call_items
from afas_pipeline.sync.erasure import marked, tombstone
from afas_pipeline.xelion.addressbook import ORGANISATION, PERSON, AddressBook, address_book, phone_index
from afas_pipeline.xelion.addressbook import external_id as record_key
from afas_pipeline.xelion.config import FIELDS, XelionSettings, xelion_drift
from afas_pipeline.xelion.errors import XelionRequestError
from afas_pipeline.xelion.sync import DESTINATION, find_report, post_report, sync_address_book

GROUP = "xelion"
KINDS = {"xelion", "pandas", "parquet"}
CALL_FEED = "communications"
#: Calls this much older than the newest one read are read once more next time (a long call can end, and
#: be logged, after a shorter one that started later); the callId ledger keeps them from being reported twice.
CALL_OVERLAP_S = 3600


class AddressBookConfig(dg.Config):
    dry_run: bool = False
    """Stop at the plan: write nothing to Xelion and change no sync state (the phone index is still refreshed)."""
    quarantine_after: int = 5
    """A record Xelion refuses this many runs in a row stops being retried until an operator acts."""


class PhoneIndexConfig(dg.Config):
    force: bool = False
    """Make the index again even when the sync state's numbers are as when it was last made."""


def build_xelion_assets(settings: XelionSettings, sources: AfasSources) -> list[dg.AssetsDefinition]:
    books = [_address_book(cadence, settings, sources) for cadence in ("full", "delta")]
    return [*books, _phone_index(), _call_reports(settings, sources)]


def _address_book(cadence: str, settings: XelionSettings, sources: AfasSources) -> dg.AssetsDefinition:
    full = cadence == "full"
    name = "xelion_address_book" if full else "xelion_address_book_delta"
    suffix = "" if full else "_changes"
    window = "every 6 hours (R2)" if full else "every 15 minutes (R1)"

    @dg.asset(
        name=name,
        group_name=GROUP,
        owners=OWNERS,
        kinds=KINDS,
        partitions_def=full_partitions if full else delta_partitions,
        backfill_policy=FULL_BACKFILL if full else DELTA_BACKFILL,
        pool=FULL_POOL if full else DELTA_POOL,
        # Only the fields the book reads are loaded: at 1,000,000 contacts the other columns held about 350 MB.
        ins={entity: dg.AssetIn(f"afas_{entity}{suffix}", metadata={"columns": _read_fields(entity, sources)})
             for entity in ("organisations", "persons", "contacts")},
        description=(
            f"AFAS organisations and persons (with their employments) in Xelion's address book, {window} (X1): "
            "numbers in E.164 (a number that does not parse is left out and counted), created once and then "
            "updated in place (AFAS key -> Xelion oid in the sync state), never deleted. Keys and outcomes only."
        ),
        check_specs=[dg.AssetCheckSpec(
            "c4_every_record_synced_or_rejected", asset=name,
            description="C4: organisations and persons read = created + updated + unchanged + rejected.")],
        required_resource_keys={"afas", "sync_state", "xelion"},
    )
    @retry_transient_failures
    def book(context: dg.AssetExecutionContext, config: AddressBookConfig, organisations: pd.DataFrame,
             persons: pd.DataFrame, contacts: pd.DataFrame):
        afas: AfasClient = context.resources.afas
        state = context.resources.sync_state.open()
        if not settings.sync_active:
            context.log.info(f"{name}: sync_active is off in mappings/xelion.yaml; nothing read or sent")
            yield dg.Output(pd.DataFrame(columns=["external_id", "kind", "action", "status", "reason"]),
                            metadata={"sync_active": False})
            yield dg.AssetCheckResult(check_name="c4_every_record_synced_or_rejected", passed=True)
            return
        for entity, fields in FIELDS.items():
            afas.require_fields(sources[entity].connector, fields, rule="X1")
        lookups = 0
        if not full:
            organisations, persons, contacts, lookups = _complete_delta(afas, sources, state, organisations,
                                                                        persons, contacts)
        book = address_book(organisations, persons, contacts, settings.phone_region)
        # P2: a person to be (or already) erased is left alone; the erasure job, not the sync, erases (R10).
        erasing = {record_key(PERSON, p) for p in marked(contacts, sources.contacts.erase_flag, "PersonId")}
        tombstoned = state.tombstones()
        book, left_alone = book.without(lambda key: key in erasing or tombstone(DESTINATION, key) in tombstoned)
        client = context.resources.xelion
        try:
            result = sync_address_book(client, state, book, quarantine_after=config.quarantine_after,
                                       dry_run=config.dry_run, verify=full)
            failpoint("xelion_address_book.synced")
        except Exception:  # Xelion out or refusing: the numbers come from AFAS, the index is refreshed all the same
            _refresh_phone_index(state, book, full)
            raise
        numbers_sent = _refresh_phone_index(state, book, full)
        if not config.dry_run:  # after their numbers are saved: a record found unchanged by its input has its rows
            state.save_input_hashes(DESTINATION, result.input_hashes())
        frame = result.frame()
        statuses = frame["status"].value_counts()
        metadata = {
            "dagster/row_count": len(frame),
            "organisations": book.count(ORGANISATION),
            "persons": book.count(PERSON),
            **{f"outcome/{k}": int(v) for k, v in sorted(result.counts.items())},
            "created": int(((frame["action"] == "create") & (frame["status"] == "ok")).sum()),
            "updated": int(((frame["action"] == "update") & (frame["status"] == "ok")).sum()),
            "unchanged": int(statuses.get("unchanged", 0)),
            "rejected": int(statuses.get("rejected", 0)),
            "quarantined": int(statuses.get("quarantined", 0)),
            **{f"numbers_left_out/{reason}": n for reason, n in sorted((book.left_out + result.left_out).items())},
            "numbers_sent": numbers_sent,
            "made_again": len(book) - result.not_made,
            "not_made_input_unchanged": result.not_made,
            "afas_lookups": lookups,
            "left_alone_by_erasure": left_alone,
            "dry_run": config.dry_run,
            **{f"xelion/{k}": v for k, v in client.stats.as_metadata().items()},
        }
        context.log.info(f"{name}: {metadata}")
        yield dg.Output(frame, metadata=metadata)  # record keys hashed
        accounted = len(frame)
        yield dg.AssetCheckResult(
            check_name="c4_every_record_synced_or_rejected", passed=accounted == len(book),
            description=f"{accounted} of {len(book)} organisations and persons accounted for",
            metadata={"records": len(book), "accounted": accounted})

    return book


def _read_fields(entity: str, sources: AfasSources) -> list[str]:
    """The fields of an AFAS read the address book uses: its own (X1) and, for contacts, the erasure flag (P2)."""
    flag = sources.contacts.erase_flag if entity == "contacts" else None
    return [*FIELDS[entity], *([flag] if flag else [])]


def _refresh_phone_index(state, book: AddressBook, full: bool) -> int:
    """Save the numbers of the records made for the phone index (a full read also drops those of records it no
    longer has); how many numbers the book's records have."""
    keys = book.keys()
    state.replace_phone_numbers(DESTINATION, book.phone_numbers(), every=keys if full else None)
    return state.phone_number_count(DESTINATION, None if full else keys.to_pylist())


def _complete_delta(afas: AfasClient, sources: AfasSources, state, organisations: pd.DataFrame,
                    persons: pd.DataFrame, contacts: pd.DataFrame):
    """A delta's records completed: the persons whose contacts changed (and every contact of each changed
    person, for its employments), and the records waiting for a retry, read from AFAS as they are now."""
    rejected = state.rejected(DESTINATION)
    retry = {kind: {i.split(":", 1)[1] for i in rejected["external_id"] if str(i).startswith(f"{kind}:")}
             for kind in (ORGANISATION, PERSON)}
    wanted_persons = set(_column(persons, "PersonId")) | set(_column(contacts, "PersonId")) | retry[PERSON]
    lookups = 0
    extra_orgs, calls = read_by_keys(afas, sources["organisations"], retry[ORGANISATION] - set(_column(organisations, "OrganisationId")))
    lookups += calls
    extra_persons, calls = read_by_keys(afas, sources["persons"], wanted_persons - set(_column(persons, "PersonId")))
    lookups += calls
    every_contact, calls = read_by_keys(afas, sources["contacts"], wanted_persons, field="PersonId")
    lookups += calls
    return _concat(organisations, extra_orgs), _concat(persons, extra_persons), every_contact, lookups


def _column(frame: pd.DataFrame, name: str) -> list[str]:
    if frame is None or name not in frame:
        return []
    return [str(v) for v in frame[name].dropna()]


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    if not len(b.columns):
        return a
    return pd.concat([a, b], ignore_index=True) if len(a.columns) else b


def _phone_index() -> dg.AssetsDefinition:
    @dg.asset(
        name="xelion_phone_index",
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pandas", "parquet"},
        deps=[dg.AssetDep("xelion_address_book", partition_mapping=dg.LastPartitionMapping()),
              dg.AssetDep("xelion_address_book_delta", partition_mapping=dg.LastPartitionMapping())],
        description=(
            "Every phone number of AFAS's organisations and persons -> the BcId of the card an incoming call opens "
            "(X2): keyed by a salted hash of the E.164 number, never the number. A number on several records "
            "resolves to an organisation before a person, then the lowest BcId; the shared ones are counted. "
            "Read by `afas-pipeline call-lookup` (reloaded when this asset is materialised). Made again only when "
            "the sync state's numbers changed since it was last made (a window whose edits kept every number "
            "leaves it as it is: no new materialisation), when its file is gone, or with config `force: true`."
        ),
        output_required=False,
        required_resource_keys={"sync_state", "io_manager"},
    )
    def xelion_phone_index(context: dg.AssetExecutionContext, config: PhoneIndexConfig):
        state = context.resources.sync_state.open()
        version = state.phone_index_version(DESTINATION)  # before the rows: a change meanwhile makes it again later
        if not config.force and version is not None and version == _last_version(context) and _stored(context):
            context.log.info("xelion_phone_index: the sync state's phone numbers are as when it was last made "
                             f"(version {version[:8]}); the stored index is kept")
            return
        table, counts = phone_index(state.phone_index(DESTINATION))
        context.log.info(f"xelion_phone_index: {counts}")
        yield dg.Output(table, metadata={"dagster/row_count": len(table), **counts, "state_version": version or ""})

    return xelion_phone_index


def _last_version(context: dg.AssetExecutionContext) -> str | None:
    """The sync state's phone index version the asset was last made from (its metadata `state_version`)."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    entry = event.asset_materialization.metadata.get("state_version") if event and event.asset_materialization else None
    return getattr(entry, "value", None)


def _stored(context: dg.AssetExecutionContext) -> bool:
    has_stored = getattr(context.resources.io_manager, "has_stored", None)  # another IO manager: made every time
    return bool(has_stored and has_stored(context.asset_key))


def _call_reports(settings: XelionSettings, sources: AfasSources) -> dg.AssetsDefinition:
    reports = settings.call_reports

    @dg.asset(
        name="xelion_call_reports",
        group_name=GROUP,
        owners=OWNERS,
        kinds={"xelion", "afas", "pandas", "parquet"},
        partitions_def=delta_partitions,
        backfill_policy=DELTA_BACKFILL,
        pool=DELTA_POOL,
        deps=[dg.AssetDep("xelion_address_book_delta")],
        description=(
            "Xelion's finished calls as AFAS dossier items (X3, X4), every 15 minutes after that window's address "
            "book: read from Xelion's communications feed by oid cursor (an hour of overlap, de-duplicated by "
            "callId), one KnSubject of the configured type per call on the matched organisation or person, the "
            "recording attached when 'sync MP3' is on. Idempotent by callId -> SbId; a call whose number no AFAS "
            "record has waits as rejected and is retried; never a create of anything but a dossier item."
        ),
        check_specs=[
            dg.AssetCheckSpec("dossier_item_type_exists", asset="xelion_call_reports", blocking=True,
                              description="X3: the configured dossier item type is one AFAS has."),
            dg.AssetCheckSpec("every_call_reported_skipped_or_waiting", asset="xelion_call_reports",
                              description="C4: calls read = reported + already reported + without content + "
                                          "waiting for a number AFAS knows."),
        ],
        required_resource_keys={"afas", "sync_state", "xelion"},
    )
    @retry_transient_failures
    def xelion_call_reports(context: dg.AssetExecutionContext):
        afas: AfasClient = context.resources.afas
        state = context.resources.sync_state.open()
        columns = ["call_key", "outcome", "sbid"]
        if not settings.uploads_reports:
            why = "sync_active is off" if not settings.sync_active else "call_reports.dossier_item_type is not set"
            context.log.info(f"xelion_call_reports: {why} in mappings/xelion.yaml; no report is uploaded")
            yield dg.Output(pd.DataFrame(columns=columns), metadata={"uploading": False, "why": why})
            yield dg.AssetCheckResult(check_name="dossier_item_type_exists", passed=True, description=why)
            yield dg.AssetCheckResult(check_name="every_call_reported_skipped_or_waiting", passed=True)
            return
        drift = [line for line in xelion_drift(afas, settings, sources) if ": X3: " in line]
        if drift:
            yield dg.AssetCheckResult(check_name="dossier_item_type_exists", passed=False, description=drift[0])
            raise dg.Failure(drift[0])
        yield dg.AssetCheckResult(check_name="dossier_item_type_exists", passed=True)
        client = context.resources.xelion
        read_from = state.cursor(DESTINATION, CALL_FEED)
        fresh = client.communications_after(read_from)
        calls = {c["callId"]: c for c in fresh if c.get("objectType", "CallLog") == "CallLog"}
        # Calls waiting for a number AFAS knows (and any POST whose answer was lost) are tried again.
        waiting = state.call_reports(DESTINATION, status="unmatched")
        posting = state.call_reports(DESTINATION, status="posting")
        for row in pd.concat([waiting, posting]).itertuples(index=False):
            if row.call_id not in calls:
                try:
                    calls[row.call_id] = client.communication(str(row.oid))
                except XelionRequestError:  # gone from Xelion's log: nothing left to report
                    state.save_call_reports(DESTINATION, [{"call_id": row.call_id, "oid": str(row.oid),
                                                           "status": "skipped", "reason": "no longer in Xelion"}])
        known_calls = state.call_reports(DESTINATION, list(calls))
        status = dict(zip(known_calls["call_id"], known_calls["status"]))
        outcomes: dict[str, tuple[str, str | None]] = {}
        todo = []
        for call_id, call in calls.items():
            if status.get(call_id) in ("made", "skipped"):
                outcomes[call_id] = ("already_reported", None)
            else:
                todo.append(call)
        numbers = {c["callId"]: parse(c["phone"], settings.phone_region)[0] if c.get("phone") else None for c in todo}
        index = state.phone_index(DESTINATION, [number_key(n) for n in numbers.values() if n])
        table, _ = phone_index(index)
        targets = dict(zip(table["number_key"], table["afas_id"]))
        for call in todo:
            outcome, sbid = _report(afas, client, state, call, numbers[call["callId"]], targets,
                                    prior=status.get(call["callId"]))
            outcomes[call["callId"]] = (outcome, sbid)
        if fresh:
            state.set_cursor(DESTINATION, CALL_FEED, _next_cursor(fresh, read_from))
        frame = pd.DataFrame([{"call_key": hash_key(k), "outcome": o, "sbid": s} for k, (o, s) in outcomes.items()],
                             columns=columns).astype("string")
        counts = frame["outcome"].value_counts()
        metadata = {"dagster/row_count": len(frame), "calls_read": len(fresh), "retried": len(calls) - len(fresh),
                    **{f"calls/{k}": int(v) for k, v in counts.items()},
                    "waiting_for_number_in_total": len(state.call_reports(DESTINATION, status="unmatched")),
                    "dossier_item_type": reports.dossier_item_type, "sync_mp3": reports.sync_mp3,
                    "always_sync": reports.always_sync}
        context.log.info(f"xelion_call_reports: {metadata}")
        yield dg.Output(frame, metadata=metadata)
        yield dg.AssetCheckResult(check_name="every_call_reported_skipped_or_waiting",
                                  passed=len(frame) == len(calls),
                                  metadata={"calls": len(calls), "accounted": len(frame)})

    def _report(afas: AfasClient, client, state, call: dict, number: str | None, targets: dict[str, str],
                prior: str | None) -> tuple[str, str | None]:
        call_id, oid = call["callId"], str(call["oid"])
        recording = client.audio(oid) if reports.sync_mp3 else None
        if not call_items.wanted(call, recording, always_sync=reports.always_sync):
            state.save_call_reports(DESTINATION, [{"call_id": call_id, "oid": oid, "status": "skipped",
                                                   "reason": "no note or recording"}])
            return "without_content", None
        afas_id = targets.get(number_key(number)) if number else None
        if afas_id is None:
            state.save_call_reports(DESTINATION, [{"call_id": call_id, "oid": oid, "status": "unmatched",
                                                   "reason": "number not in AFAS" if number else "no valid number",
                                                   "attempt": True}])
            return "waiting_for_number", None
        if prior == "posting":  # an earlier POST whose answer was lost: AFAS may hold the item
            sbid = find_report(afas, reports.dossier_item_type, call_id)
            if sbid is not None:
                state.save_call_reports(DESTINATION, [{"call_id": call_id, "oid": oid, "status": "made", "sbid": sbid}])
                return "found_in_afas", sbid
        state.save_call_reports(DESTINATION, [{"call_id": call_id, "oid": oid, "status": "posting", "attempt": True}])
        body = call_items.report_body(call, subject_type=reports.dossier_item_type,
                                      empty_subject=reports.empty_subject_text, afas_id=afas_id, recording=recording)
        sbid = post_report(afas, body)
        state.save_call_reports(DESTINATION, [{"call_id": call_id, "oid": oid, "status": "made", "sbid": sbid}])
        return ("reported_with_recording" if recording is not None else "reported"), sbid

    return xelion_call_reports


def _next_cursor(calls: list[dict], previous: str | None) -> str:
    """Where the next read starts: before the first call within `CALL_OVERLAP_S` of the newest one read."""
    def when(c: dict) -> float:
        text = c.get("date")
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() if text else 0.0

    newest = max(when(c) for c in calls)
    settled = [c for c in calls if when(c) < newest - CALL_OVERLAP_S]
    if not settled:
        return previous or "0"
    return str(max(int(c["oid"]) for c in settled))
