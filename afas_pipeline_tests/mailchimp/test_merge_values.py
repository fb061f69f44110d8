"""AFAS values as Mailchimp merge-field values (`afas_pipeline.mailchimp.merge_values`), and the sandbox
Mailchimp accepting what they produce."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest

from afas_pipeline.mailchimp.merge_values import (
    address_values,
    country_code,
    debtor_address_values,
    phone_values,
)
from afas_pipeline_tests.sandbox.mailchimp.conftest import put_member


def _phones(*values, region="NL"):
    return phone_values(pd.Series(list(values), dtype=object), region)


# --- phone numbers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, e164", [
    ("06-12345678", "+31612345678"),          # mobile, national format with a dash
    ("0612345678", "+31612345678"),
    ("06 12 34 56 78", "+31612345678"),       # spaces in pairs
    ("020 123 4567", "+31201234567"),         # landline, national format
    ("(020) 1234567", "+31201234567"),
    ("020-1234567", "+31201234567"),
    ("+31 6 1234 5678", "+31612345678"),      # +31
    ("+31 (0)20 1234567", "+31201234567"),    # +31 with the (0) people keep
    ("+31-20-123-4567", "+31201234567"),
    ("0031 20 1234567", "+31201234567"),      # 0031
    ("0031612345678", "+31612345678"),
    ("020-1234567 toestel 12", "+31201234567"),  # an extension is cut off, the number kept
    ("+32 470 12 34 56", "+32470123456"),     # Belgian mobile with +32
    ("+32 2 511 22 33", "+3225112233"),       # Brussels landline with +32
    ("0032 470 12 34 56", "+32470123456"),
])
def test_a_typed_number_becomes_e164(typed, e164):
    assert _phones(typed) == ([e164], 0)


@pytest.mark.parametrize("garbage", ["n.v.t.", "12", "abc", "onbekend", "06-1234567", "06-1234567O"])
def test_garbage_is_left_out_and_counted(garbage):
    assert _phones(garbage) == ([None], 1)


def test_empty_values_are_none_and_not_counted():
    values, left_out = _phones(None, np.nan, "", "   ", pd.NA, "06-12345678")
    assert values == [None, None, None, None, None, "+31612345678"]
    assert left_out == 0


def test_counts_every_row_left_out_and_keeps_the_order():
    values, left_out = _phones("n.v.t.", "06-12345678", None, "n.v.t.", "abc", "020 123 4567")
    assert values == [None, "+31612345678", None, None, None, "+31201234567"]
    assert left_out == 3


def test_a_region_per_row_reads_foreign_national_numbers():
    values, left_out = phone_values(pd.Series(["02/511.22.33", "030 1234567", "030 1234567", "06-12345678"]),
                                    pd.Series(["BE", "DE", "NL", None]))
    assert values == ["+3225112233", "+49301234567", "+31301234567", "+31612345678"]
    assert left_out == 0


def test_a_large_repetitive_column_is_converted_row_for_row():
    column = pd.Series(["06-12345678", "n.v.t.", None, "+31 20 123 4567"] * 25_000)
    values, left_out = phone_values(column)
    assert len(values) == 100_000 and left_out == 25_000
    assert values[:4] == ["+31612345678", None, None, "+31201234567"]
    assert values[-4:] == values[:4]


# --- addresses ------------------------------------------------------------------------------------------

def _addresses(*rows):
    street, number, addition, postal, city, country = (pd.Series(list(c), dtype=object) for c in zip(*rows))
    return address_values(street, number, addition, postal, city, country)


def test_a_complete_dutch_address():
    assert _addresses(("Kerkstraat", 12, None, "1234 AB", "Amsterdam", "NL")) == [
        {"addr1": "Kerkstraat 12", "addr2": "", "city": "Amsterdam", "state": "Amsterdam", "zip": "1234 AB",
         "country": "NL"}]


def test_an_empty_country_is_the_netherlands_and_the_postcode_gets_its_space():
    [address] = _addresses(("Molenweg", 7, None, "3511ab", "Utrecht", None))
    assert (address["zip"], address["country"]) == ("3511 AB", "NL")


@pytest.mark.parametrize("addition, addr1", [("A", "Kerkstraat 12 A"), ("bis", "Kerkstraat 12 bis"),
                                             ("-1", "Kerkstraat 12-1"), ("  hs ", "Kerkstraat 12 hs")])
def test_the_house_number_addition_follows_the_number(addition, addr1):
    assert _addresses(("Kerkstraat", 12, addition, "1234 AB", "Amsterdam", "NL"))[0]["addr1"] == addr1


def test_foreign_addresses_get_iso_countries():
    belgian, german, belgian_iso, british = _addresses(
        ("Rue de la Station", 5, "bus 2", "4000", "Liège", "B"),
        ("Hauptstraße", 10, "a", "10115", "Berlin", "D"),
        ("Grote Markt", 1, None, "2000", "Antwerpen", "BE"),
        ("High Street", 10, None, "SW1A 2AA", "London", "GB"))
    assert belgian == {"addr1": "Rue de la Station 5 bus 2", "addr2": "", "city": "Liège", "state": "Liège",
                       "zip": "4000", "country": "BE"}
    assert (german["addr1"], german["zip"], german["country"]) == ("Hauptstraße 10 a", "10115", "DE")
    assert belgian_iso["country"] == "BE"
    assert (british["addr1"], british["country"]) == ("10 High Street", "GB")


def test_house_numbers_from_a_float_column_are_whole():
    street, postal, city = pd.Series(["Kerkstraat"] * 2), pd.Series(["1234 AB"] * 2), pd.Series(["Delft"] * 2)
    values = address_values(street, pd.Series([12.0, np.nan]), pd.Series([None, None]), postal, city,
                            pd.Series(["NL", "NL"]))
    assert values[0]["addr1"] == "Kerkstraat 12" and values[1] is None


@pytest.mark.parametrize("row", [
    ("Kerkstraat", 12, None, None, "Amsterdam", "NL"),   # no postcode
    ("Kerkstraat", 12, None, "1234 AB", "", "NL"),       # no city
    ("", 12, None, "1234 AB", "Amsterdam", "NL"),        # no street
    ("Kerkstraat", None, None, "1234 AB", "Amsterdam", "NL"),  # no house number
    ("Kerkstraat", 12, None, "1234 AB", "Amsterdam", "Atlantis"),  # a country nobody knows
    (None, None, None, None, None, None),
])
def test_a_partial_address_is_none(row):
    assert _addresses(("Kerkstraat", 12, None, "1234 AB", "Amsterdam", "NL"), row)[1] is None


@pytest.mark.parametrize("value, code", [("NL", "NL"), ("B", "BE"), ("D", "DE"), ("usa", "US"), ("België", "BE"),
                                         (None, "NL"), ("Atlantis", None)])
def test_country_codes(value, code):
    assert country_code(value) == code


# --- debtor address lines -------------------------------------------------------------------------------

def _debtors(*rows):
    line1, line3, line4 = (pd.Series(list(c), dtype=object) for c in zip(*rows))
    return debtor_address_values(line1, line3, line4)


def test_dutch_debtor_lines_are_split():
    plain, addition, no_space, no_country = _debtors(("Kerkstraat 12", "1234 AB Amsterdam", "Nederland"),
                                                     ("Kerkstraat 12 A", "1234 AB Den Haag", "Nederland"),
                                                     ("Molenweg 7bis", "3511AB  Utrecht ", "NL"),
                                                     ("Dorpsstraat 3", "9711 AA Groningen", None))
    assert plain == {"addr1": "Kerkstraat 12", "addr2": "", "city": "Amsterdam", "state": "Amsterdam",
                     "zip": "1234 AB", "country": "NL"}
    assert (addition["addr1"], addition["city"]) == ("Kerkstraat 12 A", "Den Haag")
    assert (no_space["addr1"], no_space["zip"], no_space["city"]) == ("Molenweg 7bis", "3511 AB", "Utrecht")
    assert no_country["country"] == "NL"


@pytest.mark.parametrize("row", [
    ("Kerkstraat 12", "Amsterdam", "Nederland"),               # no postcode
    ("Kerkstraat 12", "1234 AB", "Nederland"),                 # no city
    ("Kerkstraat", "1234 AB Amsterdam", "Nederland"),          # no house number
    (None, "1234 AB Amsterdam", "Nederland"),                  # no line 1
    ("Grote Markt 1", "2000 Antwerpen", "België"),             # Belgian: not read
    ("Hauptstraße 10", "10115 Berlin", "Duitsland"),           # German: not read
    ("10 High Street", "London SW1A 2AA", "Verenigd Koninkrijk"),
    ("Kerkstraat 12", "1234 AB Amsterdam", "Duitsland"),       # a Dutch-looking line 3 abroad
    ("Kerkstraat 12", "1234 ab Amsterdam", "Nederland"),       # not the postcode pattern
    (None, None, None),
])
def test_unparseable_debtor_lines_are_none(row):
    assert _debtors(("Kerkstraat 12", "1234 AB Amsterdam", "Nederland"), row)[1] is None


# --- the sandbox Mailchimp accepts them -----------------------------------------------------------------

def _add_field(client: httpx.Client, list_id: str, **doc) -> dict:
    response = client.post(f"lists/{list_id}/merge-fields", json=doc)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_sandbox_accepts_the_addresses_and_phone_numbers(mailchimp: httpx.Client, mailchimp_sandbox_clean):
    list_id = mailchimp_sandbox_clean.mailchimp_list_id
    address_tag = _add_field(mailchimp, list_id, name="Bezoekadres", tag="BEZOEK", type="address")["tag"]
    phone_tag = _add_field(mailchimp, list_id, name="Mobiel", tag="MOBIEL", type="phone",
                           options={"phone_format": "International"})["tag"]
    addresses = _addresses(("Kerkstraat", 12, "A", "1234ab", "Amsterdam", "NL"),
                           ("Rue de la Station", 5, "bus 2", "4000", "Liège", "B"),
                           ("Hauptstraße", 10, None, "10115", "Berlin", "D"))
    addresses += _debtors(("Kerkstraat 12", "1234 AB Amsterdam", "Nederland"))
    phones, left_out = _phones("06-12345678", "+32 470 12 34 56", "0031 20 1234567", "+31 (0)20 1234567")
    assert left_out == 0 and None not in addresses
    members = f"lists/{list_id}/members"
    for i, (address, phone) in enumerate(zip(addresses, phones)):
        email = f"adres{i}@voorbeeld.example"
        doc = put_member(mailchimp, members, email, merge_fields={address_tag: address, phone_tag: phone})
        assert doc["merge_fields"][address_tag] == address
        assert doc["merge_fields"][phone_tag] == phone
        stored = mailchimp.get(f"{members}/{email}").json()["merge_fields"]
        assert (stored[address_tag], stored[phone_tag]) == (address, phone)


def test_the_sandbox_refuses_what_address_values_leaves_out(mailchimp: httpx.Client, mailchimp_sandbox_clean):
    """The reason partial addresses are None: the same parts as an object are refused."""
    members = f"lists/{mailchimp_sandbox_clean.mailchimp_list_id}/members"
    assert _addresses(("Kerkstraat", 12, None, None, "Amsterdam", "NL")) == [None]
    partial = {"addr1": "Kerkstraat 12", "addr2": "", "city": "Amsterdam", "state": "Amsterdam", "zip": "",
               "country": "NL"}
    refused = mailchimp.put(f"{members}/partial@voorbeeld.example",
                            json={"email_address": "partial@voorbeeld.example", "status_if_new": "subscribed",
                                  "merge_fields": {"ADDRESS": partial}})
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"field": "ADDRESS", "message": "Please enter a complete address"}]
