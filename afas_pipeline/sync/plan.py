"""The sync plan: what a run will create, update, leave alone, and which permissions it switches.

`plan_sync` compares the audience with the sync state (what was last sent) and the opt-outs seen in
the destination. It is the only place that decides; the sync step carries the plan out to the letter,
so a dry run shows exactly what a real run would do. The one exception: a plan sent later than it was made
loses the switch-ons an opt-out seen since forbids (`hold_late_optouts`, C1).

Consent (C1) is kept by construction: a permission is only sent when AFAS's value differs from the
value last acted on, so an opt-out made in the destination survives any unrelated AFAS edit; and a
switch-on is held back when the destination saw an opt-out later than AFAS's last edit of the contact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from afas_pipeline.lib.frames import large_texts, texts_in
from afas_pipeline.sync.audience import afas_permission_column, field_hash_column, permission_column
from afas_pipeline.sync.state import IN_DOUBT

ACTIONS = ("create", "update", "unchanged", "skip_hard_bounce", "quarantined", "skip_shared_address")


def set_column(key: int | str) -> str:
    return f"set:{key}"


def held_column(key: int | str) -> str:
    return f"held:{key}"


def afas_column(key: int | str) -> str:
    return f"afas:{key}"


def since_column(key: int | str) -> str:
    return f"on_since:{key}"


@dataclass(frozen=True)
class PlanSummary:
    create: int
    update: int
    unchanged: int
    skip_hard_bounce: int
    quarantined: int
    permissions_on: int
    permissions_off: int
    held_by_consent: int
    reactivate: int
    skip_shared_address: int = 0

    def as_metadata(self) -> dict[str, int]:
        return {f"plan/{k}": v for k, v in self.__dict__.items()}


def planned_columns(permission_keys: list[int | str], two_way: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The columns of an audience `plan_sync` reads (its members' keys, hashes, dates and permissions): the plan step
    loads only these, none of the values sent (`prop:<name>`, `email`), which it does not need."""
    return ["external_id", "excluded_by", "content_hash", "email_hash", "afas_modified", "hard_bounced",
            *(field_hash_column(name) for name in two_way),
            *(c for key in permission_keys for c in (afas_permission_column(key), permission_column(key)))]


def plan_sync(
    members: pd.DataFrame,
    state: pd.DataFrame,
    optouts: pd.DataFrame,
    permission_keys: list[int | str],
    quarantined: frozenset[str] = frozenset(),
    two_way: list[str] | tuple[str, ...] = (),
) -> pd.DataFrame:
    """One row per audience member: `external_id`, `action`, `send_properties`, `reactivate` (R11: a new
    address after a hard bounce), `deactivate` (created already hard-bounced), and per
    permission `set:<key>` (True/False to send, NA to leave), `held:<key>` (a switch-on held by C1),
    `afas:<key>` (AFAS's own field) and `on_since:<key>` (since when AFAS has it on, as far as seen). What the plan
    knew of the state, so a sync that sends it at once need not read the state again: `in_state` (the state holds
    a row the destination accepted) and `state_changed` (that row changes even if the record is not sent: AFAS
    switched a permission field, since when it is on moved, or the bounced address is new); and the state row it
    was made against (`compared_state_columns`: hashes, permissions as sent, no personal data), by which a sync that
    sends it later tells the rows the state has moved on from since (`superseded`).

    `state`: the sync state's records (`SyncState.records`), `state.permissions` holding per key `{"sent": bool,
    "afas": bool, "on_since": ISO time}`; or the columns `state_columns` made of them (a caller that needed them
    before).

    `two_way` names the properties that also flow back: each is compared on its own (`field_hash:<name>`
    against `state.fields`), outside the content hash, so that a value the write-back put into AFAS is not
    sent to the destination again."""
    hashes = [field_hash_column(name) for name in two_way]
    plan = members[["external_id", "content_hash", "email_hash", "afas_modified", "hard_bounced", *hashes]].copy()
    compared = state if STATE_CONTENT in state.columns else state_columns(state, permission_keys, two_way)
    plan = _beside(plan, compared)
    known = plan["state_content_hash"].notna()
    hard = plan["hard_bounced"].astype(bool)
    # R11: the address that hard-bounced, once known (from Spotler's change feed, or AFAS's flag when
    # the record's address was the one the destination had), stays known: the record is inactive
    # while that is its address, and a new address reactivates it.
    bounced_address = plan["state_bounced"].copy()
    bounced_address = bounced_address.fillna(plan["state_email_hash"].where(hard & known, pd.NA))
    # A contact AFAS already flags as hard-bounced when it is first sent is created inactive.
    create_inactive = ~known & hard
    bounced_address = bounced_address.fillna(plan["email_hash"].where(create_inactive, pd.NA))
    inactive = known & (bounced_address == plan["email_hash"]).fillna(False).astype(bool)
    skip_bounced = inactive
    email_changed = known & (plan["email_hash"] != plan["state_email_hash"]).fillna(True).astype(bool)
    reactivate = bounced_address.notna() & ~inactive & email_changed
    content_changed = ~known | (plan["content_hash"] != plan["state_content_hash"]).fillna(True).astype(bool)
    for name in two_way:
        last = plan[state_field_column(name)]
        content_changed |= (plan[field_hash_column(name)].astype(object) != last.astype(object)).astype(bool)
    plan["bounced_email_hash"] = bounced_address.astype("string")

    any_permission_sent = pd.Series(False, index=plan.index)
    # What a record not sent still changes in its state row: the bounced address, AFAS's permission fields and
    # since when they are on (C1). Known here, where the state row is at hand, so the sync need not read it again.
    afas_side_changed = (plan["bounced_email_hash"].astype(object).fillna("")
                         != plan["state_bounced"].astype(object).fillna(""))
    modified = pd.to_datetime(plan["afas_modified"], utc=True)
    for key in permission_keys:
        last_sent, last_afas = plan[state_sent_column(key)], plan[state_afas_column(key)]
        was_on = last_afas.fillna(False).astype(bool)
        since = plan[state_since_column(key)]
        raw = pd.Series(members[afas_permission_column(key)].astype(bool).to_numpy(), index=plan.index)
        desired = pd.Series(members[permission_column(key)].astype(bool).to_numpy(), index=plan.index)
        # When AFAS switched its permission field on, as far as the syncs can tell: kept while it stays
        # on; else the AFAS edit that first showed it on (the switch happened at or before that edit).
        on_since = modified.where(raw & ~(was_on & since.notna()), since).where(raw, pd.NaT)
        differs = last_sent.isna() | (last_sent.astype(object) != desired.astype(object))
        send = differs & ~skip_bounced
        opted_out_at = _optout_column(plan["external_id"], optouts, key)
        # C1: the destination saw an opt-out after AFAS last switched the permission on (unblocking
        # a contact is not switching its permission on). Also judged for a record a new address reactivates
        # (R11): a destination that must then restate its consent (Mailchimp) must not ask an opted-out person.
        judged = send | (reactivate & ~skip_bounced)
        held = judged & desired & opted_out_at.notna() & (opted_out_at > on_since).fillna(True).astype(bool)
        value = desired.astype("boolean")
        value[~send | held] = pd.NA
        plan[set_column(key)] = value
        plan[held_column(key)] = held
        plan[afas_column(key)] = raw
        plan[since_column(key)] = on_since
        any_permission_sent |= value.notna()
        same_since = (on_since == since).fillna(False).astype(bool) | (on_since.isna() & since.isna())
        afas_side_changed |= (last_afas.astype(object) != raw.astype(object)) | ~same_since

    send_properties = (content_changed | reactivate) & ~skip_bounced
    action = pd.Series("unchanged", index=plan.index, dtype="string")
    action[known & (send_properties | any_permission_sent)] = "update"
    action[~known] = "create"
    action[skip_bounced] = "skip_hard_bounce"
    # C4: a record the destination refused too often waits for an operator instead of being retried.
    action[plan["external_id"].isin(quarantined) & action.isin(["create", "update"])] = "quarantined"
    plan["action"] = action
    plan["send_properties"] = send_properties | ~known
    plan["reactivate"] = reactivate & send_properties
    plan["deactivate"] = create_inactive
    plan["in_state"] = known
    plan["state_changed"] = known & afas_side_changed.astype(bool)
    columns = ["external_id", "action", "send_properties", "reactivate", "deactivate", "in_state", "state_changed",
               "content_hash", "email_hash", "bounced_email_hash", "afas_modified", *hashes]
    columns += [c for key in permission_keys
                for c in (set_column(key), held_column(key), afas_column(key), since_column(key))]
    columns += compared_state_columns(permission_keys, two_way)
    return plan[columns].reset_index(drop=True)


def plan_again(plan: pd.DataFrame, external_ids: set[str], members: pd.DataFrame, state: pd.DataFrame,
               optouts: pd.DataFrame, permission_keys: list[int | str], quarantined: frozenset[str] = frozenset(),
               two_way: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """`plan` (`plan_sync` of `members`) with the rows of `external_ids` planned again from `state` and `optouts`:
    the plan `plan_sync` makes of them now, when only those records' state, opt-outs or quarantine changed since
    `plan` was made (each row of a plan is made from its own record's alone). In the order of `members`."""
    if not external_ids or plan.empty:
        return plan
    again = texts_in(plan["external_id"], pd.Series(sorted(external_ids), dtype="string"))
    if not again.any():
        return plan
    fresh = plan_sync(members.iloc[np.flatnonzero(again)], state, optouts, permission_keys, quarantined=quarantined,
                      two_way=two_way).set_axis(plan.index[again])
    return pd.concat([plan[~again], fresh]).sort_index().reset_index(drop=True)


def state_sent_column(key: int | str) -> str:
    return f"state_sent:{key}"


def state_afas_column(key: int | str) -> str:
    return f"state_afas:{key}"


def state_since_column(key: int | str) -> str:
    return f"state_on_since:{key}"


def state_field_column(name: str) -> str:
    return f"state_field:{name}"


#: The column of `state_columns` with the content hash the state holds.
STATE_CONTENT = "state_content_hash"

#: The columns of `SyncState.records` the planner compares (`state_columns`): a full sync reads them for every record.
STATE_COLUMNS = ("content_hash", "email_hash", "bounced_email_hash", "permissions", "fields")


def state_columns(state: pd.DataFrame, permission_keys: list[int | str],
                  two_way: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """The sync state as the planner compares it, one column per value: `external_id`, `state_content_hash`,
    `state_email_hash`, `state_bounced`, per permission `state_sent:<key>`, `state_afas:<key>` (booleans, NA when the
    row has no entry) and `state_on_since:<key>` (UTC times: stored as ISO text, with or without fractions of a second
    and an offset, as sync runs and write-backs write them), per two-way property `state_field:<name>`.

    `state` has the columns of `SyncState.records`, its `permissions` and `fields` as JSON text (as stored, read with
    `parsed=False`) or as dicts. The text is parsed by Arrow, column by column, into only the values asked for: at
    1,000,000 records that is a fraction of a second and no Python object per value."""
    keys = [str(k) for k in permission_keys]
    state = state.reset_index(drop=True)
    entry = pa.struct([("sent", pa.bool_()), ("afas", pa.bool_()), ("on_since", pa.timestamp("ns", tz="UTC"))])
    out = pd.DataFrame({
        "external_id": state["external_id"],
        **{f"state_{name}": state[column].astype("string") if column in state else pd.NA
           for name, column in (("content_hash", "content_hash"), ("email_hash", "email_hash"),
                                ("bounced", "bounced_email_hash"))},
    })
    permissions = _json_columns(state.get("permissions"), len(state), pa.schema([(k, entry) for k in keys])).flatten()
    fields = _json_columns(state.get("fields"), len(state), pa.schema([(n, pa.string()) for n in two_way]))

    def column(table: pa.Table, name: str, dtype: str) -> pd.Series:
        return pd.Series(table.column(name).to_pandas(types_mapper=pd.ArrowDtype), index=out.index).astype(dtype)

    for key in keys:
        out[state_sent_column(key)] = column(permissions, f"{key}.sent", "boolean")
        out[state_afas_column(key)] = column(permissions, f"{key}.afas", "boolean")
        out[state_since_column(key)] = pd.Series(permissions.column(f"{key}.on_since").to_pandas(), index=out.index)
    for name in two_way:
        out[state_field_column(name)] = column(fields, name, "string")
    return out


def compared_state_columns(permission_keys: list[int | str], two_way: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The columns of `state_columns` the planner compares, as a plan keeps them (the state row it was made
    against)."""
    return [STATE_CONTENT, "state_email_hash", "state_bounced",
            *(c for key in permission_keys
              for c in (state_sent_column(key), state_afas_column(key), state_since_column(key))),
            *(state_field_column(name) for name in two_way)]


def superseded(plan: pd.DataFrame, state: pd.DataFrame, permission_keys: list[int | str],
               two_way: list[str] | tuple[str, ...] = ()) -> pd.Series:
    """Which rows of a plan made earlier the state has moved on from since (`state`: the state's rows now, as
    `SyncState.records` reads them): their state row is not the one the plan was made against (accepted by an
    earlier attempt, marked hard-bounced or inactive by the destination's feed, written by another run, purged by
    an erasure). Sent or saved now, their row would put back what the plan knew. A row in doubt (an earlier attempt
    sent it and its answer is not known) is the plan's to send again. A plan that does not hold the state rows it
    was made against (made before plans kept them): every row."""
    columns = compared_state_columns(permission_keys, two_way)
    if not set(columns) <= set(plan.columns):
        return pd.Series(True, index=plan.index)
    now = _beside(plan[["external_id"]], state_columns(state, permission_keys, two_way))
    moved = np.zeros(len(plan), dtype=bool)
    for column in columns:
        then, current = plan[column].reset_index(drop=True), now[column]
        same = (then == current).fillna(False).to_numpy(dtype=bool) | (then.isna() & current.isna()).to_numpy()
        moved |= ~same
    in_doubt = (now[STATE_CONTENT] == IN_DOUBT).fillna(False).to_numpy(dtype=bool)
    return pd.Series(moved & ~in_doubt, index=plan.index)


def _json_columns(values: pd.Series | None, rows: int, schema: pa.Schema) -> pa.Table:
    """JSON objects (text or dicts; missing as `{}`) parsed by Arrow into the fields of `schema`, one row each."""
    if not len(schema) or not rows:
        return pa.table({f.name: pa.nulls(rows, f.type) for f in schema})
    if values is None:
        values = pd.Series([None] * rows)
    if isinstance(values.dtype, pd.StringDtype):  # the stored text (`SyncState.records(parsed=False)`): joined by Arrow
        texts = pc.fill_null(large_texts(values), "{}")
        text = pc.binary_join(pa.LargeListArray.from_arrays(pa.array([0, len(texts)], pa.int64()), texts),
                              pa.scalar("\n", pa.large_string()))[0]
        text = text.as_buffer()
    else:
        text = "\n".join(v if isinstance(v, str) else orjson.dumps(v).decode() if isinstance(v, dict) else "{}"
                         for v in values.tolist()).encode()
    table = pa_json.read_json(pa.BufferReader(text), parse_options=pa_json.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False))
    if table.num_rows != rows:
        raise ValueError(f"the sync state's JSON gave {table.num_rows} rows for {rows} records")
    return table


def _beside(members: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """`members` with the columns of their rows of `state` (`state_columns`) beside them, NA where a record has none:
    a left join on `external_id`, the rows found by Arrow's hash look-up and taken by position."""
    ids, known = large_texts(members["external_id"]), large_texts(state["external_id"])
    at = pc.fill_null(pc.index_in(ids, value_set=known), -1).to_numpy()
    taken = {c: pd.Series(state[c].array.take(at, allow_fill=True)) for c in state.columns if c != "external_id"}
    return pd.concat([members.reset_index(drop=True), pd.DataFrame(taken)], axis=1)


def summarise(plan: pd.DataFrame, permission_keys: list[int | str]) -> PlanSummary:
    counts = plan["action"].value_counts()
    on = sum(int((plan[set_column(k)] == True).sum()) for k in permission_keys)  # noqa: E712
    off = sum(int((plan[set_column(k)] == False).sum()) for k in permission_keys)  # noqa: E712
    return PlanSummary(
        create=int(counts.get("create", 0)),
        update=int(counts.get("update", 0)),
        unchanged=int(counts.get("unchanged", 0)),
        skip_hard_bounce=int(counts.get("skip_hard_bounce", 0)),
        quarantined=int(counts.get("quarantined", 0)),
        skip_shared_address=int(counts.get("skip_shared_address", 0)),
        permissions_on=on,
        permissions_off=off,
        held_by_consent=sum(int(plan[held_column(k)].sum()) for k in permission_keys),
        reactivate=int(plan["reactivate"].sum()),
    )


def skip_shared_addresses(plan: pd.DataFrame, owners: Mapping[str, str]) -> pd.DataFrame:
    """One address, one record (C2), for a destination that knows a record by its address (Mailchimp): two AFAS
    contacts with one address would otherwise overwrite one member in turn. Of the records to be sent with the
    same address, the one the sync state says holds it (`owners`: email hash -> external id) keeps it, else the
    lowest external id; the others are skipped (`skip_shared_address`) until AFAS gives them an address of their
    own."""
    sending = plan["action"].isin(["create", "update"]) & plan["email_hash"].notna()
    if not sending.any():
        return plan
    candidates = plan.loc[sending, ["external_id", "email_hash"]].astype(str)
    order = candidates["external_id"].map(lambda i: (len(i), i))
    first = candidates.assign(order=order).sort_values("order").drop_duplicates("email_hash")
    keeper = dict(zip(first["email_hash"], first["external_id"]))
    keeper.update({h: owner for h, owner in owners.items() if h in keeper})
    losing = sending & (plan["email_hash"].astype(str).map(keeper) != plan["external_id"].astype(str))
    if not losing.any():
        return plan
    plan = plan.copy()
    plan.loc[losing, "action"] = "skip_shared_address"
    return plan


def consent_violations(plan: pd.DataFrame, optouts: pd.DataFrame, permission_keys: list[int | str]) -> pd.DataFrame:
    """C1, checked independently of the planner: planned switch-ons for a permission the destination
    saw switched off after AFAS last switched it on. Must be empty before anything is written."""
    offenders = []
    latest = optouts.groupby(["external_id", "permission"], as_index=False)["opted_out_at"].max()
    for key in permission_keys:
        switching_on = plan.loc[(plan[set_column(key)] == True).fillna(False), ["external_id", since_column(key)]]  # noqa: E712
        joined = switching_on.merge(latest[latest["permission"] == str(key)], on="external_id", how="inner")
        on_since = pd.to_datetime(joined[since_column(key)], utc=True)
        undone = joined[(joined["opted_out_at"] > on_since).fillna(True).astype(bool)]
        offenders.append(undone[["external_id", "permission"]])
    return pd.concat(offenders, ignore_index=True) if offenders else pd.DataFrame(columns=["external_id", "permission"])


def hold_late_optouts(plan: pd.DataFrame, optouts: pd.DataFrame,
                      permission_keys: list[int | str]) -> tuple[pd.DataFrame, int]:
    """C1 when a plan is sent later than it was made: the switch-ons `consent_violations` finds against the
    opt-outs seen since, held back as the planner holds them (`set:<key>` NA, `held:<key>` True); an update
    left with nothing to send becomes `unchanged`. Returns the plan and the number of switch-ons held."""
    late = consent_violations(plan, optouts, permission_keys)
    if late.empty:
        return plan, 0
    plan = plan.copy()
    for key in permission_keys:
        held = plan["external_id"].isin(late.loc[late["permission"] == str(key), "external_id"])
        plan.loc[held, set_column(key)] = pd.NA
        plan.loc[held, held_column(key)] = True
    sends_a_permission = pd.concat([plan[set_column(k)].notna() for k in permission_keys], axis=1).any(axis=1)
    idle = (plan["action"] == "update") & ~plan["send_properties"].astype(bool) & ~sends_a_permission
    plan.loc[idle, "action"] = "unchanged"
    return plan, len(late)


def _optout_column(external_ids: pd.Series, optouts: pd.DataFrame, key: int | str) -> pd.Series:
    """Per record of `external_ids` when the destination saw permission `key` switched off (NaT: not seen). The few
    records with an opt-out are found by Arrow's hash look-up and only they are mapped: a map of every id took
    0.37 s at 1,000,000 records, for each permission."""
    times = _optout_times(optouts, key)
    out = pd.Series(pd.NaT, index=external_ids.index, dtype="datetime64[ns, UTC]")
    if not times.empty:
        found = texts_in(external_ids, pd.Index(times.index, dtype="string"))
        out[found] = pd.to_datetime(external_ids[found].astype(str).map(times), utc=True)
    return out


def _optout_times(optouts: pd.DataFrame, key: int | str) -> pd.Series:
    """External id -> when the destination saw permission `key` switched off (the last row of an id wins)."""
    rows = optouts.loc[optouts["permission"].astype(str) == str(key), ["external_id", "opted_out_at"]]
    rows = rows.assign(external_id=rows["external_id"].astype(str)).drop_duplicates("external_id", keep="last")
    return pd.Series(rows["opted_out_at"].to_numpy(), index=rows["external_id"].to_numpy(), dtype=object)
