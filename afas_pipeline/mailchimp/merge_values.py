"""AFAS values as Mailchimp merge-field values: pure functions from pandas columns to JSON-ready values.

No HTTP and no Dagster here: a Mailchimp adapter (like `afas_pipeline.spotler.adapter`) calls these column
by column and puts the results into the member documents it sends.

Two merge-field types need more than a string cast (reference §B3, "Merge fields"):

- ``phone``: people type Dutch numbers in a dozen ways ("06-12345678", "+31 (0)20 1234567", "0031 20 ...").
  `phone_values` reads them with Google's libphonenumber (the ``phonenumbers`` package) and sends one
  canonical form, or nothing: a number that does not parse or is not a valid number is left out and counted,
  never sent raw (a raw "n.v.t." would be stored as the member's phone number and trusted by whoever dials it).
- ``address``: Mailchimp refuses an ADDRESS object unless ``addr1``, ``city``, ``state`` and ``zip`` are all
  filled ("Please enter a complete address", and a member write with it fails as a whole), and an object
  without ``country`` is read as a US address. `address_values` and `debtor_address_values` therefore build
  the object only for an address that is complete and whose country is known, and give None otherwise, so
  that the adapter can send what there is as plain text fields instead (reference: "Use text fields for
  partial NL addresses").
"""

from __future__ import annotations

import re

import pandas as pd

from afas_pipeline.lib.phones import e164

# --- phone numbers --------------------------------------------------------------------------------------


def phone_values(column: pd.Series, region: str | pd.Series = "NL") -> tuple[list[str | None], int]:
    """Each phone number in E.164 (``+31612345678``), None for an empty value and None for one that does
    not parse or is not a valid number; and how many numbers were left out that way.

    ``region`` is the country a number without ``+``/``00`` prefix is read in: one ISO 3166 alpha-2 code for
    the whole column ("NL" for an AFAS administration in the Netherlands), or a Series of them aligned with
    ``column`` (the debtor's country, so that a Belgian "02/511.22.33" is read as Belgian); an empty region
    falls back to "NL".

    Why E.164 and not libphonenumber's INTERNATIONAL format (``+31 6 12345678``): a ``phone`` merge field
    whose ``phone_format`` is not "US" takes free text (the emulator, `afas_sandbox.mailchimp.validation`,
    checks only the US format), so both are accepted. E.164 is the one canonical spelling of a number: it
    is what Mailchimp's SMS and phone matching expect, it has no spaces or brackets that a form or export
    could mangle, and it does not depend on libphonenumber's grouping metadata, which changes between
    releases. That matters for a sync that compares what it sends with what it sent last time: with the
    INTERNATIONAL format a ``phonenumbers`` upgrade that regroups a number range would re-send every
    member in it.

    Parsing is cached per distinct (value, region): CRM columns repeat values (empty strings, shared
    switchboard numbers, the same typed forms), so 100,000 rows cost one parse per distinct value.
    """
    values = column.to_numpy(dtype=object, na_value=None)
    if isinstance(region, pd.Series):
        regions = region.to_numpy(dtype=object, na_value=None)
    else:
        regions = [region] * len(values)
    out: list[str | None] = []
    left_out = 0
    for value, where in zip(values, regions):
        if _blank(value):
            out.append(None)
            continue
        formatted = e164(str(value), str(where).strip().upper() if not _blank(where) else "NL")
        if formatted is None:
            left_out += 1
        out.append(formatted)
    return out, left_out


def _blank(value) -> bool:
    """None, NaN/NA/NaT, or a string of only whitespace: no value (not a bad one)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --- addresses ------------------------------------------------------------------------------------------

#: AFAS country codes (Profit's ``CoId``: mostly the international vehicle registration codes) that are
#: not ISO 3166 alpha-2, mapped to it. Mailchimp's ``country`` is alpha-2; an alpha-2 code passes as it is
#: (the sandbox already writes BE, DE, GB). "B" is Belgium and "D" Germany in AFAS, never Bangladesh/...
AFAS_COUNTRIES = {
    "B": "BE", "D": "DE", "F": "FR", "L": "LU", "A": "AT", "I": "IT", "E": "ES", "P": "PT", "S": "SE",
    "N": "NO", "H": "HU", "FIN": "FI", "IRL": "IE", "USA": "US", "CDN": "CA", "GBZ": "GI", "FL": "LI",
    "M": "MT", "MC": "MC", "RSM": "SM", "V": "VA", "AUS": "AU", "NZ": "NZ", "ZA": "ZA", "J": "JP",
    "NLD": "NL", "BEL": "BE", "DEU": "DE", "GBR": "GB", "FRA": "FR",
}
#: Country names as AFAS prints them in a debtor's address line 4 (Dutch), and in English, to alpha-2.
COUNTRY_NAMES = {
    "nederland": "NL", "the netherlands": "NL", "netherlands": "NL", "holland": "NL",
    "belgië": "BE", "belgie": "BE", "belgium": "BE", "belgique": "BE",
    "duitsland": "DE", "germany": "DE", "deutschland": "DE",
    "verenigd koninkrijk": "GB", "united kingdom": "GB", "groot-brittannië": "GB", "engeland": "GB",
    "frankrijk": "FR", "france": "FR", "luxemburg": "LU", "luxembourg": "LU", "oostenrijk": "AT",
    "zwitserland": "CH", "spanje": "ES", "italië": "IT", "denemarken": "DK", "zweden": "SE", "noorwegen": "NO",
}
#: The country of an address whose country field is empty: AFAS leaves it empty for the administration's
#: own country, and this pipeline serves Dutch administrations.
HOME_COUNTRY = "NL"
#: Countries that write the house number before the street ("10 Downing Street", "12 rue de la Paix").
NUMBER_FIRST = frozenset({"GB", "IE", "US", "CA", "AU", "NZ", "FR", "LU"})
#: A Dutch postcode: four digits (no leading zero) and two capitals, with or without the space.
DUTCH_POSTCODE = re.compile(r"([1-9]\d{3}) ?([A-Z]{2})")
#: Debtor address line 3 of a Dutch address: postcode, then the city.
DUTCH_LINE3 = re.compile(r"\s*([1-9]\d{3}) ?([A-Z]{2})\s+(\S.*?)\s*")
#: Debtor address line 1 that reliably holds a street and a house number: letters somewhere, and a number
#: that follows a space ("Kerkstraat 12", "Kerkstraat 12 A", "1e Jan Steenstraat 5-2", "Hoofdstraat 7bis").
STREET_AND_NUMBER = re.compile(r"(?=.*[^\W\d_]).*\S\s+\d+\S*(?:\s+\S.*)?")


def country_code(value) -> str | None:
    """An AFAS country (code such as "NL", "B", "D", "USA", or a name such as "België") as ISO 3166 alpha-2;
    an empty value is the home country (NL); None for a value this table does not know."""
    if _blank(value):
        return HOME_COUNTRY
    text = str(value).strip()
    upper = text.upper()
    if upper in AFAS_COUNTRIES:
        return AFAS_COUNTRIES[upper]
    if re.fullmatch(r"[A-Z]{2}", upper):
        return upper
    return COUNTRY_NAMES.get(text.lower())


def address_values(street: pd.Series, house_number: pd.Series, addition: pd.Series, postal_code: pd.Series,
                   city: pd.Series, country: pd.Series) -> list[dict | None]:
    """One Mailchimp ADDRESS object per row of an AFAS organisation or person address, or None.

    Complete means street, house number, postcode and city filled and a country `country_code` knows (an
    empty AFAS country is NL). ``addr1`` is street, house number and addition ("Kerkstraat 12 A"; an
    addition starting with "-" or "/" is glued on: "12-1"), the number first for countries that write it
    first (GB, FR, ...). A Dutch postcode is written the standard way ("1234 AB").

    ``state``: Mailchimp wants one, the emulator refuses an address without it, and AFAS has no province for
    an organisation or person; the reference names no value for a Dutch address. The city is used: it is a
    real region name, not an invented placeholder, and segmenting on "state" then still groups members by
    place. ``addr2`` stays empty.

    Anything less than complete is None (not a half-filled object that Mailchimp would refuse with "Please
    enter a complete address", failing the member's whole write): the adapter sends the parts as text.
    """
    streets = _texts(street)
    numbers = _house_numbers(house_number)
    additions = _texts(addition)
    zips = _texts(postal_code)
    cities = _texts(city)
    countries = [country_code(c) for c in country.to_numpy(dtype=object, na_value=None)]
    out: list[dict | None] = []
    for s, n, a, z, y, k in zip(streets, numbers, additions, zips, cities, countries):
        if not (s and n and z and y and k):
            out.append(None)
            continue
        house = n + (a if a[:1] in ("-", "/") else f" {a}") if a else n
        addr1 = f"{house} {s}" if k in NUMBER_FIRST else f"{s} {house}"
        out.append(_address(addr1, y, _postcode(z, k), k))
    return out


def debtor_address_values(line1: pd.Series, line3: pd.Series, line4: pd.Series) -> list[dict | None]:
    """One Mailchimp ADDRESS object per row of AFAS debtor address lines (Profit_Debtor_App ``AddressLine1``
    "Kerkstraat 12", ``AddressLine3`` "1234 AB Amsterdam", ``AddressLine4`` the country, usually its Dutch
    name "Nederland"), or None.

    Only Dutch addresses are read, because only they can be split reliably: line 3 of a Dutch address is a
    Dutch postcode (``\\d{4} ?[A-Z]{2}``) followed by the city. Abroad the order and the postcode's shape
    vary (a British line 3 is "London SW1A 2AA", a Belgian or German postcode is just four or five digits,
    indistinguishable from a house number), so a foreign debtor gets None and the adapter sends its lines as
    text. Line 1 must hold a street followed by a house number. Line 4 must be empty or name the Netherlands.
    ``state`` is the city, as in `address_values`.
    """
    first = _texts(line1)
    third = _texts(line3)
    countries = [country_code(c) for c in line4.to_numpy(dtype=object, na_value=None)]
    out: list[dict | None] = []
    for l1, l3, k in zip(first, third, countries):
        match = DUTCH_LINE3.fullmatch(l3) if l3 else None
        if k != "NL" or match is None or not STREET_AND_NUMBER.fullmatch(l1):
            out.append(None)
            continue
        digits, letters, city = match.groups()
        out.append(_address(" ".join(l1.split()), city, f"{digits} {letters}", "NL"))
    return out


def _address(addr1: str, city: str, zip_code: str, country: str) -> dict:
    return {"addr1": addr1, "addr2": "", "city": city, "state": city, "zip": zip_code, "country": country}


def _postcode(value: str, country: str) -> str:
    """A Dutch postcode as "1234 AB" (AFAS accepts "1234AB" and "1234 ab"); others as typed."""
    if country == "NL":
        match = DUTCH_POSTCODE.fullmatch(value.upper())
        if match:
            return f"{match.group(1)} {match.group(2)}"
    return value


def _texts(column: pd.Series) -> list[str]:
    """A column as stripped strings, "" for every kind of missing value."""
    return column.astype("string").str.strip().fillna("").tolist()


def _house_numbers(column: pd.Series) -> list[str]:
    """House numbers as text: AFAS sends an int, but a column with a missing number arrives as floats
    (12.0) and must not be written "12.0"; a text column is kept as typed."""
    numbers = pd.to_numeric(column, errors="coerce")
    present = column.notna()
    if (numbers[present].notna() & (numbers[present] % 1 == 0)).all():
        return numbers.astype("Int64").astype("string").fillna("").tolist()
    return _texts(column)
