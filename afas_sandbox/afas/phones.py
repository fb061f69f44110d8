"""Phone numbers as people type them into AFAS, for the synthetic dataset (see ``dataset``'s docstring for
the distribution per table).

A Dutch number is an area code without its 0 (``6`` for a mobile, ``10`` for Rotterdam, ``113`` for Goes)
and a subscriber number that makes 9 digits with it, so 10 with the leading 0. ``typed_phones`` draws one
per row and spells it in one of ``NL_PHONE_FORMS``; a row abroad gets its country's forms instead.
``type_crm_phones`` fills the phone columns of organisations, persons and contacts from a random stream of
their own (``PHONE_STREAM``) and lets some records share a number.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from afas_sandbox.afas.model import Columns

PHONE_STREAM = 0x7E1  # second seed word of the phone numbers' random stream ("tel")
# 32 real area codes: a power of two, so that drawing one consumes the same random numbers as drawing one
# of the first 16 did (the debtors' stream depends on it). From 010 Rotterdam to 0599 Stadskanaal.
NL_AREA_CODES = ["10", "20", "30", "40", "50", "70", "13", "15", "24", "26", "35", "38", "43", "53", "58", "72",
                 "23", "33", "36", "45", "55", "71", "73", "76", "113", "118", "172", "251", "314", "320", "475",
                 "599"]
# The first digit of a subscriber number, indexed by the drawn digit: mobiles are 06-1 to 06-5 (06-0, 06-7
# and 06-9 are not in use), a landline's subscriber number never starts with 0 or 1.
MOBILE_LEADS = "1234512345"
LANDLINE_LEADS = "2345678923"
_AREA_CODES, _AREA_LENGTHS = np.array(NL_AREA_CODES, dtype=object), np.array([len(a) for a in NL_AREA_CODES])
_MOBILE_LEADS, _LANDLINE_LEADS = (np.array([int(d) for d in leads]) for leads in (MOBILE_LEADS, LANDLINE_LEADS))


def _in_pairs(digits: str) -> str:
    """12 34 56 78, 123 45 67: pairs, an odd digit in the first group."""
    head = 2 + len(digits) % 2
    return " ".join([digits[:head]] + [digits[i:i + 2] for i in range(head, len(digits), 2)])


# How people type one Dutch number (area code without its 0, subscriber number): the forms a
# normaliser must read, the ones it must give up on (a digit short, the letter O for a zero, a foreign
# number without its +, words) and empty values. Rows abroad get their own country's forms (FOREIGN_PHONES).
NL_PHONE_FORMS: tuple[Callable[[str, str], str | None], ...] = (
    lambda a, s: f"0{a}-{s}",                        # 06-12345678, 020-1234567
    lambda a, s: f"+31 {a} {s[:-4]} {s[-4:]}",       # +31 6 1234 5678
    lambda a, s: f"0{a} {s[:-4]} {s[-4:]}",          # 020 123 4567
    lambda a, s: f"0031 {a} {s}",                    # 0031 20 1234567
    lambda a, s: f"(0{a}) {s}",                      # (020) 1234567
    lambda a, s: f"+31 (0){a} {s}",                  # +31 (0)20 1234567
    lambda a, s: f"0{a}{s}",                         # 0201234567
    lambda a, s: f"+31{a}{s}",                       # +31201234567
    lambda a, s: f"0{a}-{s} toestel {s[:2]}",        # with an extension (read once it is cut off)
    lambda a, s: f"0{a} {_in_pairs(s)}",              # 06 12 34 56 78, 010 123 45 67
    lambda a, s: f"0{a}-{s[:-1]}",                   # a digit short
    lambda a, s: f"0{a}-{s[:-1]}O",                  # the letter O typed for a zero
    lambda a, s: f"49 {a}{s[:2]} {s[2:]}",           # 49 2012 34567: a German number without its +
    lambda a, s: "onbekend",
    lambda a, s: "",
    lambda a, s: None,
)
# Every form at least once, on the first Dutch debtors.
PLANTED_PHONES = ["06-12345678", "+31 6 1234 5678", "020 123 4567", "0031 20 1234567", "(020) 1234567",
                  "+31 (0)20 1234567", "0201234567", "+31612345678", "020-1234567 toestel 12", "06 12 34 56 78",
                  "06-1234567", "06-1234567O", "49 2012 34567", "onbekend", "", None]
NL_PHONE_WEIGHTS = np.array([12, 10, 10, 5, 5, 4, 8, 3, 2, 5, 2, 2, 1, 2, 3, 12], dtype=float)
# For a field that is known to be filled: the same forms, never None.
FILLED_PHONE_WEIGHTS = np.where(np.arange(len(NL_PHONE_FORMS)) == len(NL_PHONE_FORMS) - 1, 0.0, NL_PHONE_WEIGHTS)
FORMS_IN_USE = int((FILLED_PHONE_WEIGHTS > 0).sum())
FOREIGN_PHONES = {
    "BE": (lambda d: f"+32 2 {d[:3]} {d[3:5]} {d[5:7]}", lambda d: f"0032 470 {d[:2]} {d[2:4]} {d[4:6]}",
           lambda d: f"02/{d[:3]}.{d[3:5]}.{d[5:7]}"),
    "DE": (lambda d: f"+49 30 {d[:8]}", lambda d: f"0049 (0)211 {d[:6]}", lambda d: f"030 {d[:7]}"),
    "GB": (lambda d: f"+44 20 {d[:4]} {d[4:8]}", lambda d: f"07700 {d[:6]}", lambda d: f"0044 161 {d[:3]} {d[3:7]}"),
}

# The share of mobiles per phone column. A landline in a mobile field, a mobile in a phone field: people
# type the number they have where there is room.
MOBILE_SHARE = {("organisations", "Phone"): 0.10, ("persons", "Phone"): 0.15, ("persons", "PhoneMobile"): 0.97,
                ("contacts", "Phone"): 0.25, ("contacts", "Mobile"): 0.97}
SWITCHBOARD_SHARE = 0.10  # contacts at an organisation with a phone that carry the organisation's number
FAMILY_SHARE = 0.04  # persons whose landline is also the next person's (pairs, never three)
OWN_MOBILE_SHARE = 0.10  # contacts whose mobile is their person's own mobile


def typed_phones(rng: np.random.Generator, country: np.ndarray, mobile_share: float = 0.4,
                 weights: np.ndarray = NL_PHONE_WEIGHTS, filled: np.ndarray | None = None,
                 every_form_at: np.ndarray | None = None) -> np.ndarray:
    """A typed number per row in that row's country (``NL`` or a key of ``FOREIGN_PHONES``), None where
    ``filled`` is false: in the Netherlands a mobile for ``mobile_share`` of the rows, otherwise a
    landline, in a form drawn with ``weights``. The Dutch rows ``every_form_at`` get the forms of non-zero
    weight in turn, so that every form is there however few rows there are.

    The draws depend only on the number of rows, never on the values: a stream continues after this the
    same whatever the numbers look like."""
    n = len(country)
    mobile = rng.random(n) < mobile_share
    code = rng.integers(0, len(NL_AREA_CODES), n)
    digits = rng.integers(0, 10**8, n)
    form = rng.choice(len(NL_PHONE_FORMS), n, p=weights / weights.sum())
    if every_form_at is not None:
        rows = every_form_at[: int((weights > 0).sum())]
        form[rows] = np.flatnonzero(weights > 0)[: len(rows)]
    foreign_form = rng.integers(0, 3, n)
    area = np.where(mobile, "6", _AREA_CODES[code])
    subscriber = _subscribers(np.where(mobile, 1, _AREA_LENGTHS[code]), digits, mobile)
    out = np.full(n, None, dtype=object)
    for i in range(n) if filled is None else np.flatnonzero(filled):
        c = country[i]
        if c in FOREIGN_PHONES:
            out[i] = FOREIGN_PHONES[c][foreign_form[i]](f"{digits[i]:08d}")
        else:
            out[i] = NL_PHONE_FORMS[form[i]](area[i], str(subscriber[i]))
    return out


def _subscribers(area_length: np.ndarray, digits: np.ndarray, mobile: np.ndarray) -> np.ndarray:
    """The subscriber numbers that make 9 digits with an area code of ``area_length`` digits: the last
    digits of 8 drawn ones, led by a digit in use (``MOBILE_LEADS``, ``LANDLINE_LEADS``)."""
    rest = 10 ** (8 - area_length)
    number = digits % (10 * rest)
    lead = np.where(mobile, _MOBILE_LEADS[number // rest], _LANDLINE_LEADS[number // rest])
    return lead * rest + number % rest


def type_crm_phones(tables: dict[str, Columns], seed: int) -> None:
    """Replace the phone columns of organisations, persons and contacts, which hold whether the field is
    filled (a boolean per row, drawn with the rest of the record), by typed numbers from the phone stream;
    then let some records share one number: the switchboard, a family's landline, a person's own mobile."""
    rng = np.random.default_rng([seed, PHONE_STREAM])
    orgs, persons, contacts = tables["organisations"], tables["persons"], tables["contacts"]
    org_pos = _positions(contacts["OrganisationId"], orgs["OrganisationId"])
    person_pos = _positions(contacts["PersonId"], persons["PersonId"])
    countries = {"organisations": orgs["Country"].astype(object),
                 "persons": np.full(len(persons["PersonId"]), "NL", dtype=object),
                 "contacts": np.where(org_pos >= 0, orgs["Country"][np.maximum(org_pos, 0)], "NL").astype(object)}
    planted: dict[tuple[str, str], np.ndarray] = {}
    for (table, column), mobile_share in MOBILE_SHARE.items():
        filled, country = tables[table][column].astype(bool), countries[table]
        planted[table, column] = np.flatnonzero(filled & (country == "NL"))[:FORMS_IN_USE]
        tables[table][column] = typed_phones(rng, country, mobile_share, FILLED_PHONE_WEIGHTS, filled,
                                             every_form_at=planted[table, column])

    org_phone = np.where(org_pos >= 0, orgs["Phone"][np.maximum(org_pos, 0)], None)
    _share(rng, contacts["Phone"], org_phone, SWITCHBOARD_SHARE, planted["contacts", "Phone"])
    own_mobile = np.where(person_pos >= 0, persons["PhoneMobile"][np.maximum(person_pos, 0)], None)
    _share(rng, contacts["Mobile"], own_mobile, OWN_MOBILE_SHARE, planted["contacts", "Mobile"])
    _share_with_next(rng, persons["Phone"], FAMILY_SHARE, planted["persons", "Phone"])


def _positions(keys: np.ndarray, table_keys: np.ndarray) -> np.ndarray:
    """The row of each key in ``table_keys``, -1 for None."""
    row = {k: i for i, k in enumerate(table_keys)}
    return np.array([row.get(k, -1) if k is not None else -1 for k in keys], dtype=np.int64)


def _share(rng: np.random.Generator, column: np.ndarray, source: np.ndarray, rate: float, keep: np.ndarray) -> None:
    """Give ``rate`` of the filled rows whose ``source`` is filled the source's number (the first such row
    always, so that small datasets share too); rows in ``keep`` keep theirs."""
    eligible = (column != None) & (source != None) & (source != "")  # noqa: E711
    eligible[keep] = False
    take = eligible & (rng.random(len(column)) < rate)
    first = np.flatnonzero(eligible)[:1]
    take[first] = True
    column[take] = source[take]


def _share_with_next(rng: np.random.Generator, column: np.ndarray, rate: float, keep: np.ndarray) -> None:
    """Copy the number of ``rate`` of the filled rows to the next filled row; pairs only."""
    filled = np.flatnonzero(column != None)  # noqa: E711
    filled = filled[~np.isin(filled, keep)]
    give = rng.random(len(filled)) < rate
    if len(give) > 1:
        give[0] = True
    give[-1:] = False
    give[1:] &= ~give[:-1]  # a row that receives a number gives none
    column[filled[1:][give[:-1]]] = column[filled[:-1][give[:-1]]]
