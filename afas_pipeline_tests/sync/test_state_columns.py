"""The state as the planner reads it: `SyncState.records(parsed=False)` keeps the stored JSON text, and
`plan.state_columns` parses only the values the plan compares, column by column. Whatever a state row holds, that
must give the values the parsed dicts give, on both backends; and a plan made from the text must equal the plan
made from the dicts. A full sync plans before its read of the change feed is judged and plans again what that
changed (`plan_again`): that must equal the plan made after it."""

from itertools import product

import pandas as pd

from afas_pipeline.sync.plan import plan_again, plan_sync, state_columns
from afas_pipeline.sync.state import SyncState

KEYS = [1, 2]
T0 = pd.Timestamp("2026-10-01T10:00:00Z")
T1 = pd.Timestamp("2026-11-01T10:00:00.250000Z")
ENTRIES = [
    None,
    {"sent": True, "afas": True, "on_since": T0.isoformat()},
    {"sent": False, "afas": False, "on_since": None},
    {"sent": True, "afas": True, "on_since": "2026-11-22T20:59:49.284000+00:00"},  # a write-back's stamp
    {"sent": None, "afas": True, "on_since": T0.isoformat()},  # a write in doubt
    {"sent": True},  # an entry from before AFAS's side was kept
    {"sent": False, "afas": True, "on_since": T0.isoformat(), "later": [1, {"x": "é"}]},  # a field not known here
    {"sent": True, "afas": True, "on_since": "2026-10-01T12:00:00.000001+02:00"},  # another offset: the same UTC time
]
FIELDS = [{}, {"function": "2da0162be411"}, {"function": None}, {"other": "x"}]
NO_OPTOUTS = pd.DataFrame(columns=["external_id", "permission", "opted_out_at"])


def _rows():
    rows = []
    for n, (first, second, fields, bounced) in enumerate(product(ENTRIES, ENTRIES[:3], FIELDS, [None, "e0"])):
        permissions = {key: entry for key, entry in (("1", first), ("2", second)) if entry is not None}
        permissions["unasked"] = {"sent": True}
        rows.append({"external_id": str(10000 + n), "content_hash": f"c{n % 3}", "email_hash": f"e{n % 2}",
                     "permissions": permissions, "bounced_email_hash": bounced, "fields": fields})
    return rows


def test_the_stored_text_gives_the_values_of_the_parsed_dicts_on_both_backends(state_location):
    state = SyncState(state_location)
    rows = _rows()
    assert state.save_records("spotler", rows) == len(rows)

    text = state.records("spotler", parsed=False)
    parsed = state.records("spotler")
    assert isinstance(text.loc[0, "permissions"], str)
    from_text = state_columns(text, KEYS, ["function"]).sort_values("external_id", ignore_index=True)
    from_dicts = state_columns(parsed, KEYS, ["function"]).sort_values("external_id", ignore_index=True)
    pd.testing.assert_frame_equal(from_text, from_dicts)

    # And the values are the stored ones (the times as UTC times), NA where a row has no entry or no field.
    by_id = from_text.set_index("external_id")
    for row in rows:
        got = by_id.loc[row["external_id"]]
        for key in ("1", "2"):
            entry = row["permissions"].get(key) or {}
            for name, column in (("sent", f"state_sent:{key}"), ("afas", f"state_afas:{key}"),
                                 ("on_since", f"state_on_since:{key}")):
                stored = entry.get(name)
                if name == "on_since" and stored is not None:  # a UTC time
                    stored = pd.Timestamp(stored).tz_convert("UTC")
                assert (None if pd.isna(got[column]) else got[column]) == stored, (row, column)
        assert (None if pd.isna(got["state_field:function"]) else got["state_field:function"]) == \
            row["fields"].get("function")
        assert (None if pd.isna(got["state_bounced"]) else got["state_bounced"]) == row["bounced_email_hash"]


def _members(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([
        {"external_id": r["external_id"], "content_hash": "c1", "email_hash": f"e{n % 3}", "afas_modified": T1,
         "hard_bounced": n % 5 == 0, "perm:1": n % 2 == 0, "afas_perm:1": n % 2 == 0, "perm:2": n % 3 == 0,
         "afas_perm:2": n % 3 == 0, "field_hash:function": "2da0162be411" if n % 4 else None}
        for n, r in enumerate(rows)] + [
        {"external_id": "99999", "content_hash": "c1", "email_hash": "e9", "afas_modified": T1, "hard_bounced": False,
         "perm:1": True, "afas_perm:1": True, "perm:2": False, "afas_perm:2": False, "field_hash:function": None}])


def test_a_plan_made_from_the_stored_text_equals_the_plan_made_from_the_dicts(tmp_path):
    state = SyncState(tmp_path / "state.sqlite")
    rows = _rows()
    state.save_records("spotler", rows)
    members = _members(rows)
    optouts = pd.DataFrame([{"external_id": rows[1]["external_id"], "permission": "1", "opted_out_at": T1},
                            {"external_id": rows[2]["external_id"], "permission": "2", "opted_out_at": T0}])

    from_text = plan_sync(members, state.records("spotler", parsed=False), optouts, KEYS, two_way=["function"])
    from_dicts = plan_sync(members, state.records("spotler"), optouts, KEYS, two_way=["function"])
    # A full sync's plan makes the columns it compares before it plans (while the feed is read), and hands those over.
    compared = state_columns(state.records("spotler", parsed=False), KEYS, ["function"])
    from_columns = plan_sync(members, compared, optouts, KEYS, two_way=["function"])

    pd.testing.assert_frame_equal(from_text, from_dicts)
    pd.testing.assert_frame_equal(from_text, from_columns)
    # The world is varied enough for the equality to mean something.
    assert set(from_text["action"]) >= {"create", "update", "unchanged", "skip_hard_bounce"}
    assert from_text["state_changed"].any() and not from_text["state_changed"].all()


def test_an_empty_state_and_a_state_without_fields_give_typed_empty_columns():
    empty = state_columns(pd.DataFrame(columns=["external_id", "content_hash", "email_hash", "permissions",
                                                "bounced_email_hash", "fields"]), KEYS, ["function"])
    assert len(empty) == 0
    assert str(empty["state_sent:1"].dtype) == "boolean"
    no_fields = state_columns(pd.DataFrame([{"external_id": "1", "content_hash": "c", "email_hash": "e",
                                             "permissions": {"1": {"sent": True}}}]), KEYS, ["function"])
    assert no_fields.loc[0, "state_sent:1"] == True  # noqa: E712
    assert pd.isna(no_fields.loc[0, "state_sent:2"]) and pd.isna(no_fields.loc[0, "state_field:function"])


def test_a_plan_made_again_for_the_records_that_changed_equals_the_plan_made_after_the_change(tmp_path):
    state = SyncState(tmp_path / "state.sqlite")
    rows = _rows()
    state.save_records("spotler", rows)
    members = _members(rows)
    optouts = pd.DataFrame([{"external_id": rows[2]["external_id"], "permission": "2", "opted_out_at": T0}])
    then = state_columns(state.records("spotler", parsed=False), KEYS, ["function"])
    early = plan_sync(members, then, optouts, KEYS, two_way=["function"])

    # What a read of the feed changes: a record made inactive (its bounced address), a new opt-out, and a record
    # quarantined meanwhile (by another run).
    bounced, opted_out = rows[1], rows[4]
    updated = set(early.loc[early["action"] == "update", "external_id"])
    quarantined = next(r for r in rows[5:] if r["external_id"] in updated)
    state.save_records("spotler", [{**bounced, "bounced_email_hash": bounced["email_hash"]}])
    later = pd.concat([optouts, pd.DataFrame([{"external_id": opted_out["external_id"], "permission": "1",
                                               "opted_out_at": T1 + pd.Timedelta(minutes=1)}])], ignore_index=True)
    now = state_columns(state.records("spotler", parsed=False), KEYS, ["function"])
    after = plan_sync(members, now, later, KEYS, quarantined=frozenset({quarantined["external_id"]}),
                      two_way=["function"])
    changed = {bounced["external_id"], opted_out["external_id"], quarantined["external_id"]}

    again = plan_again(early, changed, members, now, later, KEYS, quarantined=frozenset({quarantined["external_id"]}),
                       two_way=["function"])

    for external_id in changed:  # each change changes its record's row of the plan
        row = early["external_id"] == external_id
        assert not early[row].reset_index(drop=True).equals(after[row].reset_index(drop=True)), external_id
    pd.testing.assert_frame_equal(again, after)
    assert plan_again(early, set(), members, now, later, KEYS, two_way=["function"]) is early
