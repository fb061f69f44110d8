"""The synthetic CRM: deterministic, the specified mix, and every edge case present even when small."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pytest

from afas_sandbox.afas.dataset import FIELD_LENGTHS, generate
from afas_sandbox.afas.model import NULL, TABLES, utc_ms_to_local_ms

AUTUMN_DST = dt.datetime(2026, 10, 25, 1, tzinfo=dt.timezone.utc)
SPRING_DST = dt.datetime(2026, 3, 29, 1, tzinfo=dt.timezone.utc)


def _ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def test_same_arguments_give_identical_tables():
    first, second = generate(500, 3), generate(500, 3)
    for table, columns in first.items():
        for name, values in columns.items():
            assert np.array_equal(values, second[table][name]), (table, name)


def test_other_seed_gives_other_data():
    assert not np.array_equal(generate(500, 3)["contacts"]["MailWork"], generate(500, 4)["contacts"]["MailWork"])


@pytest.mark.parametrize("contacts", [100, 3000])
def test_every_table_has_its_schema_and_unique_keys(contacts):
    data = generate(contacts, 7)
    for table, schema in TABLES.items():
        assert set(data[table]) == set(schema), table
    assert len(data["contacts"]["ContactId"]) == contacts
    codes = list(data["organisations"]["OrganisationId"]) + list(data["persons"]["PersonId"])
    assert len(set(codes)) == len(codes), "organisations and persons share one number space"
    assert len(set(data["contacts"]["ContactId"].tolist())) == contacts


def test_mix_matches_the_spec():
    data = generate(20000, 11)
    c = data["contacts"]
    kinds = Counter(c["ContactKind"])
    assert 0.82 < kinds["PRS"] / 20000 < 0.88
    assert 0.08 < kinds["PER"] / 20000 < 0.12
    assert 0.03 < kinds["AFD"] / 20000 < 0.07
    assert 3500 < len(data["organisations"]["OrganisationId"]) < 4500
    assert 0.07 < data["organisations"]["IsDebtor"].mean() < 0.13
    assert 0.02 < c["Blocked"].mean() < 0.045
    assert 0.55 < c["PermissionNewsletter"].mean() < 0.65
    loose = c["ContactKind"] == "PER"
    assert all(org is None for org in c["OrganisationId"][loose])
    assert all(person is None for person in c["PersonId"][c["ContactKind"] == "AFD"])
    pairs = [(o, p) for o, p, k in zip(c["OrganisationId"], c["PersonId"], c["ContactKind"]) if k == "PRS"]
    assert len(set(pairs)) == len(pairs), "a person is at most one contact per organisation"
    assert len({p for o, p in pairs}) < len(pairs), "some persons work for several organisations"


@pytest.mark.parametrize("contacts", [100, 3000])
def test_edge_cases_are_present(contacts):
    data = generate(contacts, 7)
    c, p, o = data["contacts"], data["persons"], data["organisations"]
    mails = [m for m in c["MailWork"]]
    assert any(m is None for m in mails)
    assert any(m is not None and m.count("@") != 1 for m in mails), "malformed address"
    assert any(m is not None and m != m.strip() and m.strip() != m.strip().lower() for m in mails)
    assert max(Counter(m for m in mails if m).values()) >= 3, "one address on several contacts"
    names = set(p["FirstName"]) | set(p["LastName"])
    assert {"Zoë", "Çelik", "Ødegaard", "Ñúñez"} <= names
    assert "’s-Hertogenbosch" in set(o["City"])
    assert any("," in n and ";" in n for n in o["Name"])
    assert max(len(n) for n in o["Name"]) == FIELD_LENGTHS["Name"]
    assert max(len(n) for n in p["FirstName"]) == FIELD_LENGTHS["FirstName"]
    assert set(c["BounceType"]) >= {"hard", "soft"}
    bounced = c["BounceType"] != None  # noqa: E711
    assert (c["BounceDate"][bounced] != NULL).all() and (c["BounceDate"][~bounced] == NULL).all()
    assert (c["HardBounce"] == (c["BounceType"] == "hard")).all()
    assert c["Blocked"].any()


@pytest.mark.parametrize("contacts", [100, 3000])
def test_modified_dates_straddle_both_dst_changes(contacts):
    modified = generate(contacts, 7)["contacts"]["ModifiedDate"]
    autumn, spring, hour = _ms(AUTUMN_DST), _ms(SPRING_DST), 3_600_000
    assert ((modified >= spring - hour) & (modified < spring)).any()
    assert ((modified >= spring) & (modified < spring + hour)).any()
    first_pass = (modified >= autumn - hour) & (modified < autumn)  # 02:00-03:00 CEST
    second_pass = (modified >= autumn) & (modified < autumn + hour)  # 02:00-03:00 CET again
    assert first_pass.any() and second_pass.any()
    local = utc_ms_to_local_ms(modified[first_pass | second_pass])
    wall = local.astype("datetime64[ms]").astype(object)
    assert all(w.date() == dt.date(2026, 10, 25) and w.hour == 2 for w in wall)
    assert ((modified % 1000) == 500).any(), "a value exactly on the half second (display rounding)"


def test_modified_dates_stay_in_range_and_do_not_follow_the_clock():
    modified = generate(3000, 7)["contacts"]["ModifiedDate"]
    assert modified.min() >= _ms(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)) - 3 * 3_600_000
    assert modified.max() < _ms(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc))
    created = generate(3000, 7)["contacts"]["CreateDate"]
    assert (created <= modified).all()
