"""The synthetic CRM's phone numbers (issue 10): valid Dutch landlines and mobiles in the ways people type
them, some invalid, some shared by several records, from a random stream of their own. Validity is
libphonenumber's, the notations are written out here apart from the generator's own forms."""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

import numpy as np
import phonenumbers
import pytest

from afas_sandbox.afas import dataset, phones
from afas_sandbox.afas.dataset import generate

CRM_PHONES = [("organisations", "Phone"), ("persons", "Phone"), ("persons", "PhoneMobile"),
              ("contacts", "Phone"), ("contacts", "Mobile")]
ALL_PHONES = CRM_PHONES + [("debtors", "Phone"), ("delivery_addresses", "Phone"), ("delivery_addresses", "Fax")]
MOBILE_FIELDS = {("persons", "PhoneMobile"), ("contacts", "Mobile")}

# (pattern, valid for libphonenumber): how a Dutch number is typed, and the ways it goes wrong.
NOTATIONS = {
    "010-1234567": (r"0\d{1,3}-\d{6,8}", True),
    "+31 10 123 4567": (r"\+31 \d{1,3} \d{2,4} \d{4}", True),
    "010 123 4567": (r"0\d{1,3} \d{2,4} \d{4}", True),
    "0031 10 1234567": (r"0031 \d{1,3} \d{6,8}", True),
    "(010) 1234567": (r"\(0\d{1,3}\) \d{6,8}", True),
    "+31 (0)10 1234567": (r"\+31 \(0\)\d{1,3} \d{6,8}", True),
    "0101234567": (r"0\d{9}", True),
    "+31101234567": (r"\+31\d{9}", True),
    "010 123 45 67": (r"0\d{1,3} \d{2,3}( \d\d){2,3}", True),
    "010-1234567 toestel 12": (r"0\d{1,3}-\d{6,8} toestel \d\d", False),
    "a digit short": (r"0\d{1,3}-\d{5,7}", False),
    "the letter O for a 0": (r"0\d{1,3}-\d{5,7}O", False),
    "a foreign number without +": (r"49 \d{3,5} \d{4,6}", False),
    "a word": (r"onbekend", False),
    "empty": (r"", False),
}


@cache
def _number(typed: str, region: str = "NL") -> phonenumbers.PhoneNumber | None:
    """The number libphonenumber reads in ``typed``, None when it reads none or an invalid one."""
    try:
        number = phonenumbers.parse(typed, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def _e164(typed: str | None, region: str = "NL") -> str | None:
    number = _number(typed, region) if typed else None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if number else None


def _regions(data: dict, table: str) -> list[str]:
    """The country a number without + is read in: the organisation's, the (delivery) address's, else NL."""
    if table in ("organisations", "debtors", "delivery_addresses"):
        return list(data[table]["Country"])
    if table == "contacts":
        country = dict(zip(data["organisations"]["OrganisationId"], data["organisations"]["Country"]))
        return [country.get(org, "NL") for org in data["contacts"]["OrganisationId"]]
    return ["NL"] * len(data[table]["PersonId"])


@pytest.fixture(scope="module")
def data():
    return generate(3000, 7)


@pytest.fixture(scope="module")
def large():
    return generate(20000, 11)


@pytest.mark.parametrize("table,column", CRM_PHONES)
def test_most_filled_numbers_are_valid_dutch_numbers_a_small_share_is_not(data, table, column):
    typed = [v for v, region in zip(data[table][column], _regions(data, table)) if v and region == "NL"]
    valid = [number for number in map(_number, typed) if number]
    assert 0.80 <= len(valid) / len(typed) <= 0.93, (table, column, len(valid) / len(typed))
    for number in valid:
        assert number.country_code == 31 and len(phonenumbers.national_significant_number(number)) == 9
    kinds = Counter(phonenumbers.number_type(number) for number in valid)
    assert set(kinds) <= {phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE}, kinds
    mobiles = kinds[phonenumbers.PhoneNumberType.MOBILE] / len(valid)
    assert mobiles > 0.9 if (table, column) in MOBILE_FIELDS else 0.05 < mobiles < 0.35, (table, column, mobiles)


def test_landlines_carry_real_area_codes_short_and_long(data):
    areas = Counter()
    for table, column in CRM_PHONES:
        for number in filter(None, map(_number, filter(None, data[table][column]))):
            if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE:
                digits = phonenumbers.national_significant_number(number)
                areas[digits[:phonenumbers.length_of_geographical_area_code(number)]] += 1
    assert {"10", "20", "30", "40", "50", "70", "113", "599"} <= set(areas), sorted(areas)
    assert "" not in areas, "every landline has an area code libphonenumber knows"


@pytest.mark.parametrize("contacts", [100, 3000])
@pytest.mark.parametrize("table,column", CRM_PHONES)
def test_every_notation_is_in_every_phone_column_however_small_the_dataset(table, column, contacts):
    values = [v for v in generate(contacts, 7)[table][column] if v is not None]
    for name, (pattern, valid) in NOTATIONS.items():
        assert any(re.fullmatch(pattern, v) and bool(_number(v)) == valid for v in values), (table, column, name)


def test_a_switchboard_number_is_on_contacts_of_its_organisation(data):
    orgs, contacts = data["organisations"], data["contacts"]
    switchboard = dict(zip(orgs["OrganisationId"], map(_e164, orgs["Phone"])))
    on_contact = [_e164(phone) for phone, org in zip(contacts["Phone"], contacts["OrganisationId"])
                  if org is not None and _e164(phone) and _e164(phone) == switchboard[org]]
    numbers = [n for n in switchboard.values() if n]
    assert 0.1 < len(set(on_contact)) / len(numbers) < 0.4, len(set(on_contact)) / len(numbers)


def test_a_family_landline_is_on_two_persons_never_three(data):
    counts = Counter(filter(None, map(_e164, data["persons"]["Phone"])))
    pairs = sum(n == 2 for n in counts.values())
    assert pairs / len(counts) > 0.02 and max(counts.values()) == 2


def test_a_contact_can_carry_its_persons_own_mobile(data):
    persons, contacts = data["persons"], data["contacts"]
    own = dict(zip(persons["PersonId"], map(_e164, persons["PhoneMobile"])))
    same = [m for m, p in zip(map(_e164, contacts["Mobile"]), contacts["PersonId"]) if m and p and m == own[p]]
    assert 0.03 < len(same) / sum(1 for m in contacts["Mobile"] if _e164(m)) < 0.2


def test_small_datasets_share_numbers_too():
    data = generate(100, 7)
    counts = Counter(n for table, column in CRM_PHONES for n in map(_e164, data[table][column]) if n)
    assert sum(n >= 2 for n in counts.values()) >= 3


def test_foreign_organisations_and_addresses_have_their_countrys_numbers(data):
    for table, column in [("organisations", "Phone"), ("debtors", "Phone"), ("delivery_addresses", "Phone")]:
        abroad = [(v, r) for v, r in zip(data[table][column], _regions(data, table)) if v and r != "NL"]
        assert abroad and all(_number(v, r) is None or _number(v, r).country_code != 31 for v, r in abroad), table
        assert any(_number(v, r) for v, r in abroad), table


def test_delivery_address_fax_numbers_are_typed_dutch_landlines(large):
    addresses = large["delivery_addresses"]
    faxes = [(v, r) for v, r in zip(addresses["Fax"], addresses["Country"]) if v]
    valid = [_number(v, r) for v, r in faxes if r == "NL" and _number(v, r)]
    dutch = sum(r == "NL" for _, r in faxes)
    assert dutch >= 20 and 0.7 <= len(valid) / dutch <= 0.95, (dutch, len(valid) / dutch)
    assert all(phonenumbers.number_type(n) == phonenumbers.PhoneNumberType.FIXED_LINE for n in valid)


def test_same_seed_same_numbers_other_seed_other_numbers():
    first, second, other = generate(500, 3), generate(500, 3), generate(500, 4)
    for table, column in ALL_PHONES:
        assert list(first[table][column]) == list(second[table][column]), (table, column)
    for table, column in CRM_PHONES:
        assert list(first[table][column]) != list(other[table][column]), (table, column)


def test_the_numbers_have_a_stream_of_their_own_every_other_column_is_the_same(monkeypatch, large):
    first = large
    monkeypatch.setattr(phones, "PHONE_STREAM", phones.PHONE_STREAM + 1)
    monkeypatch.setattr(dataset, "PHONE_STREAM", phones.PHONE_STREAM)
    redrawn = generate(20000, 11)
    for table, columns in first.items():
        for name, values in columns.items():
            if (table, name) in ALL_PHONES:
                assert np.array_equal(values == None, redrawn[table][name] == None), (table, name)  # noqa: E711
            else:
                assert np.array_equal(values, redrawn[table][name]), (table, name)
    for table, column in CRM_PHONES + [("delivery_addresses", "Fax")]:
        assert list(first[table][column]) != list(redrawn[table][column]), (table, column)
