"""Phone numbers as people type them into AFAS, read with Google's libphonenumber (the ``phonenumbers``
package) into E.164 (``+31612345678``): the one canonical spelling of a number, which every destination
(Mailchimp's phone merge fields, Xelion's address book and caller lookup) compares and stores.

A number that does not parse, or parses but is not a valid number (a digit short, a letter typed for a
digit, an unassigned range such as today's ``0`` + 8-digit "landlines"), gives no E.164 and a reason; it is
never sent raw. Parsing is cached per distinct (value, region): CRM columns repeat values (shared
switchboard numbers, the same typed forms).
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

#: A trailing extension the way Dutch offices type it ("020-1234567 toestel 12", "tst. 12", "ext 12", "x12").
#: libphonenumber knows "ext"/"x" but not "toestel", and with it the whole string is "too long"; the extension
#: is cut off before parsing (E.164 has no room for one anyway).
EXTENSION = re.compile(r"\s*[,;]?\s*(?:toestel|toest\.?|tst\.?|ext\.?|extension|x)\s*\d{1,6}\s*$", re.IGNORECASE)

#: Why a typed number gave no E.164 (counted in asset metadata, never with the number).
NOT_A_NUMBER = "not_a_number"
INVALID_NUMBER = "invalid_number"


def e164(value: str, region: str = "NL") -> str | None:
    """One typed number in E.164, or None when libphonenumber cannot read it or finds it invalid."""
    return parse(value, region)[0]


@lru_cache(maxsize=262_144)
def parse(value: str, region: str = "NL") -> tuple[str | None, str | None]:
    """(E.164, None) for a number libphonenumber reads as valid; (None, reason) otherwise, the reason
    `NOT_A_NUMBER` (it does not parse) or `INVALID_NUMBER` (it parses, but no such number exists)."""
    text = EXTENSION.sub("", value.strip())
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None, NOT_A_NUMBER
    if not phonenumbers.is_valid_number(number):
        return None, INVALID_NUMBER
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None
