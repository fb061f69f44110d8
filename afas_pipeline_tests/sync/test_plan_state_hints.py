"""What the plan tells the sync about the state, so a sync that sends a plan its run has just made need not read
every state row again: `in_state` (the state holds a row the destination accepted) and `state_changed` (the row
changes even when the record is not sent). `state_changed` must be True exactly when the writer, judging the record
against its state row, would save one: a record it missed would lose AFAS's side of consent (C1: since when a
permission is on) or a bounced address (R11)."""

from itertools import product

import pandas as pd

from afas_pipeline.chain.writer import _state_columns, _state_rows
from afas_pipeline.sync.plan import plan_sync

KEYS = [1, 2]
T0 = pd.Timestamp("2026-10-01T10:00:00Z")
T1 = pd.Timestamp("2026-11-01T10:00:00.250000Z")
ENTRIES = {
    "missing": None,
    "sent-on": {"sent": True, "afas": True, "on_since": T0.isoformat()},
    "sent-off": {"sent": False, "afas": False, "on_since": None},
    "on-since-unknown": {"sent": True, "afas": True, "on_since": None},
    "afas-on-not-sent": {"sent": None, "afas": True, "on_since": T0.isoformat()},
}
NO_OPTOUTS = pd.DataFrame(columns=["external_id", "permission", "opted_out_at"])


def _world():
    """Every combination of a permission's state entry, AFAS's field, the bounced address and AFAS's hard-bounce
    flag, for a record the state knows; and one it does not."""
    members, state = [], []
    for n, (entry, afas_on, bounced, hard, email) in enumerate(product(
            ENTRIES, [True, False], [None, "e1", "e0"], [False, True], ["e1", "e2"])):
        external_id = str(10000 + n)
        members.append({"external_id": external_id, "content_hash": "c1", "email_hash": email, "afas_modified": T1,
                        "hard_bounced": hard, "perm:1": afas_on, "afas_perm:1": afas_on, "perm:2": False,
                        "afas_perm:2": False})
        permissions = {"2": {"sent": False, "afas": False, "on_since": None}}
        if ENTRIES[entry] is not None:
            permissions["1"] = ENTRIES[entry]
        state.append({"external_id": external_id, "content_hash": "c1", "email_hash": "e1", "permissions": permissions,
                      "bounced_email_hash": bounced, "fields": {}, "destination_key": None})
    members.append({**members[0], "external_id": "99999"})
    return pd.DataFrame(members), pd.DataFrame(state)


def test_state_changed_is_true_exactly_for_the_records_whose_state_row_a_sync_saves_unsent():
    members, state = _world()
    plan = plan_sync(members, state, NO_OPTOUTS, KEYS)
    previous = {r["external_id"]: r for r in state.to_dict("records")}
    saved = _state_rows(_state_columns(plan, KEYS, []), previous, accepted=False)

    assert plan["in_state"].tolist() == [i in previous for i in plan["external_id"]]
    changed = set(plan.loc[plan["state_changed"], "external_id"])
    assert changed == set(saved)
    # The world holds both kinds, so the equality above can fail either way.
    assert 0 < len(changed) < len(previous)
