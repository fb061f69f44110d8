"""The planner as a pure function: no Dagster, no HTTP."""

import pandas as pd

from afas_pipeline.sync.plan import consent_violations, hold_late_optouts, plan_sync, set_column, summarise

KEYS = [1, 2]
T0 = pd.Timestamp("2026-11-01T10:00:00Z")


def _members(**overrides):
    row = {"external_id": "10001", "content_hash": "c1", "email_hash": "e1", "afas_modified": T0,
           "hard_bounced": False, "perm:1": True, "perm:2": False, "afas_perm:1": True, "afas_perm:2": False}
    row.update(overrides)
    return pd.DataFrame([row])


def _state(**overrides):
    row = {"external_id": "10001", "content_hash": "c1", "email_hash": "e1",
           "permissions": {"1": _bit(True), "2": _bit(False)}, "bounced_email_hash": None}
    row.update(overrides)
    return pd.DataFrame([row])


def _bit(value, since=T0 - pd.Timedelta(days=30)):
    return {"sent": value, "afas": value, "on_since": since.isoformat() if value else None}


NO_OPTOUTS = pd.DataFrame(columns=["external_id", "permission", "opted_out_at"])


def _optout(when):
    return pd.DataFrame([{"external_id": "10001", "permission": "1", "opted_out_at": when}])


def test_c3_nothing_changed_means_nothing_to_send():
    plan = plan_sync(_members(), _state(), NO_OPTOUTS, KEYS)
    assert plan.loc[0, "action"] == "unchanged"
    assert plan[[set_column(k) for k in KEYS]].isna().all().all()


def test_a_new_contact_is_created_with_every_permission():
    plan = plan_sync(_members(), _state().iloc[0:0], NO_OPTOUTS, KEYS)
    assert plan.loc[0, "action"] == "create" and plan.loc[0, "send_properties"]
    assert plan.loc[0, set_column(1)] == True and plan.loc[0, set_column(2)] == False  # noqa: E712


def test_c1_an_unchanged_permission_is_not_resent_whatever_spotler_did():
    plan = plan_sync(_members(content_hash="c2"), _state(), _optout(T0 + pd.Timedelta(hours=1)), KEYS)
    assert plan.loc[0, "action"] == "update" and pd.isna(plan.loc[0, set_column(1)])


def test_c1_a_switch_on_older_than_the_opt_out_is_held():
    # The state lost the permission (e.g. a restored backup): AFAS says on, but its edit predates the opt-out.
    plan = plan_sync(_members(), _state(permissions={}), _optout(T0 + pd.Timedelta(hours=1)), KEYS)
    assert pd.isna(plan.loc[0, set_column(1)]) and plan.loc[0, "held:1"]
    assert summarise(plan, KEYS).held_by_consent == 1
    assert consent_violations(plan, _optout(T0 + pd.Timedelta(hours=1)), KEYS).empty


def test_c1_a_switch_on_after_the_opt_out_is_sent():
    plan = plan_sync(_members(afas_modified=T0 + pd.Timedelta(hours=2)), _state(permissions={"1": _bit(False)}),
                     _optout(T0 + pd.Timedelta(hours=1)), KEYS)
    assert plan.loc[0, set_column(1)] == True  # noqa: E712


def test_c1_the_check_catches_a_plan_that_would_undo_an_opt_out():
    plan = plan_sync(_members(), _state(permissions={"1": _bit(False)}), NO_OPTOUTS, KEYS)
    assert plan.loc[0, set_column(1)] == True  # noqa: E712  (no opt-out known to the planner)
    violations = consent_violations(plan, _optout(T0 + pd.Timedelta(hours=1)), KEYS)
    assert list(violations["external_id"]) == ["10001"]


def test_c1_a_plan_sent_after_an_opt_out_it_did_not_see_holds_the_switch_on():
    # Made before the opt-out: the switch-on of 1 was the only thing to send; switching 2 off still goes.
    plan = plan_sync(_members(), _state(permissions={"1": _bit(False), "2": _bit(True)}), NO_OPTOUTS, KEYS)
    later = _optout(T0 + pd.Timedelta(hours=1))

    sent, held = hold_late_optouts(plan, later, KEYS)

    assert held == 1 and pd.isna(sent.loc[0, set_column(1)]) and sent.loc[0, "held:1"]
    assert sent.loc[0, set_column(2)] == False and sent.loc[0, "action"] == "update"  # noqa: E712
    assert consent_violations(sent, later, KEYS).empty
    assert plan.loc[0, set_column(1)] == True  # noqa: E712  (the plan given is left as it was)


def test_c1_a_held_switch_on_that_was_all_an_update_sent_leaves_it_unchanged():
    plan = plan_sync(_members(), _state(permissions={"1": _bit(False), "2": _bit(False)}), NO_OPTOUTS, KEYS)
    assert plan.loc[0, "action"] == "update" and not plan.loc[0, "send_properties"]
    sent, held = hold_late_optouts(plan, _optout(T0 + pd.Timedelta(hours=1)), KEYS)
    assert (held, sent.loc[0, "action"]) == (1, "unchanged")
    # An opt-out older than AFAS's switch-on, or none at all, holds nothing.
    assert hold_late_optouts(plan, _optout(T0 - pd.Timedelta(hours=1)), KEYS)[1] == 0
    assert hold_late_optouts(plan, NO_OPTOUTS, KEYS) == (plan, 0)


def test_r11_the_bounced_address_is_skipped_and_a_new_one_reactivates():
    skipped = plan_sync(_members(hard_bounced=True, content_hash="c2"), _state(), NO_OPTOUTS, KEYS)
    assert skipped.loc[0, "action"] == "skip_hard_bounce" and skipped.loc[0, "bounced_email_hash"] == "e1"
    moved = plan_sync(_members(hard_bounced=False, email_hash="e2", content_hash="c2"),
                      _state(bounced_email_hash="e1"), NO_OPTOUTS, KEYS)
    assert moved.loc[0, "action"] == "update" and moved.loc[0, "reactivate"]
    settled = plan_sync(_members(hard_bounced=True, email_hash="e2", content_hash="c2"),
                        _state(email_hash="e2", content_hash="c2", bounced_email_hash="e1"), NO_OPTOUTS, KEYS)
    assert settled.loc[0, "action"] == "unchanged"


def test_c1_an_opt_out_holds_for_a_record_a_new_address_reactivates():
    # Opted out, then hard-bounced; AFAS now gives a new address while its permission field stays on.
    plan = plan_sync(_members(email_hash="e2", content_hash="c2"), _state(bounced_email_hash="e1"),
                     _optout(T0 + pd.Timedelta(hours=1)), KEYS)
    assert plan.loc[0, "reactivate"] and plan.loc[0, "held:1"]
    assert pd.isna(plan.loc[0, set_column(1)])


def test_c1_unblocking_a_contact_does_not_undo_an_opt_out():
    # AFAS has had the permission on for a month; Spotler saw an opt-out while the contact was blocked.
    blocked_state = _state(permissions={"1": {"sent": False, "afas": True, "on_since": (T0 - pd.Timedelta(days=30)).isoformat()}})
    plan = plan_sync(_members(afas_modified=T0 + pd.Timedelta(hours=2)), blocked_state,
                     _optout(T0 + pd.Timedelta(hours=1)), KEYS)
    assert pd.isna(plan.loc[0, set_column(1)]) and plan.loc[0, "held:1"]


def test_a_quarantined_record_waits_for_an_operator():
    plan = plan_sync(_members(content_hash="c2"), _state(), NO_OPTOUTS, KEYS, quarantined=frozenset({"10001"}))
    assert plan.loc[0, "action"] == "quarantined"


def test_switch_on_times_stored_with_and_without_fractions_of_a_second_are_both_read():
    # A sync stores "...T10:00:00+00:00", a write-back "...T10:00:00.284000+00:00": found by the loop model.
    state = pd.concat([_state(), _state(external_id="10002", permissions={
        "1": {"sent": True, "afas": True, "on_since": "2026-11-22T20:59:49.284000+00:00"}, "2": _bit(False)})])
    members = pd.concat([_members(), _members(external_id="10002")])
    plan = plan_sync(members, state, NO_OPTOUTS, KEYS)
    assert list(plan["action"]) == ["unchanged", "unchanged"]
    assert plan.loc[1, "on_since:1"] == pd.Timestamp("2026-11-22T20:59:49.284Z")
