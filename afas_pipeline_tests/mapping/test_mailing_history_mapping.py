"""The optional `mailing_history:` section of a mapping (R17): the shipped one loads, and every mistake a
newcomer can make in it is refused with a message naming the file, the setting and the rule."""

from __future__ import annotations

import copy
from datetime import date, datetime, timezone

import pytest
import yaml

from afas_pipeline.mapping.load import default_mapping, load_mapping
from afas_pipeline_tests.mapping.test_load import SHIPPED_RAW, assert_names, broken


def test_r17_shipped_mailing_history_section_loads():
    history = default_mapping("spotler").mailing_history
    assert history is not None
    assert history.enabled_from == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert history.mailings == "all"
    assert history.interactions == ("opened", "clicked", "bounced")
    assert history.subject_type >= 1


def test_r17_mailing_history_is_optional(tmp_path):
    raw = copy.deepcopy(SHIPPED_RAW)
    del raw["mailing_history"]
    path = tmp_path / "spotler.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    assert load_mapping(path).mailing_history is None


def test_r17_enabled_from_accepts_an_offset_and_keeps_it_in_utc(tmp_path):
    raw = copy.deepcopy(SHIPPED_RAW)
    raw["mailing_history"]["enabled_from"] = "2026-11-01T01:00:00+01:00"
    raw["mailing_history"]["mailings"] = "trend_reports"
    raw["mailing_history"]["interactions"] = []
    path = tmp_path / "spotler.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    history = load_mapping(path).mailing_history
    assert history.enabled_from == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert history.enabled_from.tzinfo == timezone.utc
    assert history.mailings == "trend_reports" and history.interactions == ()


@pytest.mark.parametrize("value, says", [
    (datetime(2026, 11, 1), "has no time zone"),
    (date(2026, 11, 1), "is a date"),
    ("next monday", "is not a UTC date-time"),
    ("2026-11-01T00:00:00", "is not a UTC date-time"),
])
def test_r17_enabled_from_must_be_a_utc_date_time(tmp_path, value, says):
    path, message = broken(tmp_path, lambda raw: raw["mailing_history"].update(enabled_from=value))
    assert_names(path, message, "mailing_history.enabled_from", "R17")
    assert says in message and "enabled_from: 2026-11-01T00:00:00Z" in message


def test_r17_mailings_is_all_or_trend_reports(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["mailing_history"].update(mailings="campaigns"))
    assert_names(path, message, "mailing_history.mailings", "M2")
    assert "'all' or 'trend_reports'" in message


def test_r17_interactions_are_opened_clicked_or_bounced(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["mailing_history"].update(interactions=["opened", "replied"]))
    assert_names(path, message, "mailing_history.interactions[1]", "M2")
    assert "'opened', 'clicked' or 'bounced'" in message


def test_r17_an_interaction_is_named_once(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["mailing_history"].update(interactions=["opened", "opened"]))
    assert_names(path, message, "mailing_history.interactions", "R17")
    assert "opened listed twice" in message


@pytest.mark.parametrize("value", ["7", 0, None])
def test_r17_subject_type_is_a_positive_whole_number(tmp_path, value):
    path, message = broken(tmp_path, lambda raw: raw["mailing_history"].update(subject_type=value))
    assert_names(path, message, "mailing_history.subject_type", "M2")


def test_r17_subject_type_is_required(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["mailing_history"].pop("subject_type"))
    assert_names(path, message, "mailing_history.subject_type", "M2")
    assert "required setting is missing" in message


def test_r17_an_unknown_mailing_history_setting_lists_the_known_ones(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["mailing_history"].update(enabled_since="2026-11-01T00:00:00Z"))
    assert_names(path, message, "mailing_history.enabled_since", "M2")
    assert "enabled_from, mailings, interactions, subject_type" in message
