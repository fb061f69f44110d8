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

from dataclasses import dataclass

from collections.abc import Mapping

import pandas as pd

from afas_pipeline.sync.audience import afas_permission_column, field_hash_column, permission_column

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
    switched a permission field, since when it is on moved, or the bounced address is new).

    `state.permissions` holds per key `{"sent": bool, "afas": bool, "on_since": ISO time}`.

    `two_way` names the properties that also flow back: each is compared on its own (`field_hash:<name>`
    against `state.fields`), outside the content hash, so that a value the write-back put into AFAS is not
    sent to the destination again."""
    hashes = [field_hash_column(name) for name in two_way]
    plan = members[["external_id", "content_hash", "email_hash", "afas_modified", "hard_bounced", *hashes]].copy()
    plan = plan.merge(
        state.rename(columns={"content_hash": "state_content_hash", "email_hash": "state_email_hash",
                              "permissions": "state_permissions", "bounced_email_hash": "state_bounced",
                              "fields": "state_fields"}).reindex(
            columns=["external_id", "state_content_hash", "state_email_hash", "state_permissions", "state_bounced",
                     "state_fields"]),
        on="external_id",
        how="left",
    )
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
        last = plan["state_fields"].map(lambda f, n=name: f.get(n) if isinstance(f, dict) else None)
        content_changed |= (plan[field_hash_column(name)].astype(object) != last.astype(object)).astype(bool)
    plan["bounced_email_hash"] = bounced_address.astype("string")

    last_optout = _last_optouts(optouts)
    any_permission_sent = pd.Series(False, index=plan.index)
    # What a record not sent still changes in its state row: the bounced address, AFAS's permission fields and
    # since when they are on (C1). Known here, where the state row is at hand, so the sync need not read it again.
    afas_side_changed = (plan["bounced_email_hash"].astype(object).fillna("")
                         != plan["state_bounced"].astype(object).fillna(""))
    modified = pd.to_datetime(plan["afas_modified"], utc=True)
    for key in permission_keys:
        previous = plan["state_permissions"].map(lambda p, k=str(key): p.get(k) if isinstance(p, dict) else None)
        last_sent = previous.map(lambda e: e.get("sent") if isinstance(e, dict) else None)
        was_on = previous.map(lambda e: isinstance(e, dict) and e.get("afas") is True).astype(bool)
        # Stored as ISO text, with or without fractions of a second (sync runs and write-backs both write it).
        since = pd.to_datetime(previous.map(lambda e: e.get("on_since") if isinstance(e, dict) else None),
                               utc=True, format="ISO8601")
        raw = pd.Series(members[afas_permission_column(key)].astype(bool).to_numpy(), index=plan.index)
        desired = pd.Series(members[permission_column(key)].astype(bool).to_numpy(), index=plan.index)
        # When AFAS switched its permission field on, as far as the syncs can tell: kept while it stays
        # on; else the AFAS edit that first showed it on (the switch happened at or before that edit).
        on_since = modified.where(raw & ~(was_on & since.notna()), since).where(raw, pd.NaT)
        differs = last_sent.isna() | (last_sent.astype(object) != desired.astype(object))
        send = differs & ~skip_bounced
        opted_out_at = pd.to_datetime(plan["external_id"].map(lambda i, k=str(key): last_optout.get((i, k))), utc=True)
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
        last_afas = previous.map(lambda e: e.get("afas") if isinstance(e, dict) else None)
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
    return plan[columns].reset_index(drop=True)


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


def _last_optouts(optouts: pd.DataFrame) -> dict[tuple[str, str], pd.Timestamp]:
    if optouts.empty:
        return {}
    return {
        (str(r.external_id), str(r.permission)): r.opted_out_at
        for r in optouts.itertuples(index=False)
    }
