"""Deterministic synthetic Dutch CRM: organisations, persons and their contacts.

``generate(contacts, seed)`` returns the same tables for the same arguments on every machine and at any
wall-clock time. Random draws are vectorised with numpy; strings are assembled from small vocabularies,
so 1,000,000 contacts take seconds, not minutes.

The mix follows the spec: ~85% person-at-organisation contacts (``PRS``), ~10% loose persons (``PER``),
~5% department contacts (``AFD``, no person); one organisation per ~5 contacts; ~10% debtors; ~3%
blocked; each permission ~60% yes. The edge cases the pipeline must survive are planted at fixed
positions among the first contacts (so they exist even at 100 contacts) and sprinkled randomly:
no e-mail, malformed e-mail, upper case with surrounding spaces, one address on several contacts,
accents and other Unicode, ``,`` and ``;`` in names, values as long as the field allows, soft and
hard bounces, and modified dates clustered on both sides of both 2026 DST changes - including inside
the repeated hour 02:00-03:00 local on 2026-10-25 and on half-second boundaries.

Addresses use the reserved ``.example`` top-level domain so that no generated address can reach a
real mailbox.

Phone numbers (``phones``) are typed as Dutch CRM data has them. Whether a field is filled is drawn with
the record (organisations ~88%, persons ~48% ``Phone`` and ~67% ``PhoneMobile``, contacts ~58% ``Phone``
and ~48% ``Mobile``); the number itself comes from a random stream of its own (``phones.PHONE_STREAM``),
so every other column is the same whatever the numbers look like. A number is a landline with a real
area code (010, 020, ... 0113, 0599; 10 digits with it) or a mobile (06 and 8 digits, 06-1 to 06-5); the
share of mobiles is ~10% of organisations' ``Phone``, ~15% of persons' ``Phone``, ~25% of contacts'
``Phone`` and ~97% of both mobile fields. It is typed in one of ``phones.NL_PHONE_FORMS`` (``010-1234567``,
``06 12345678``, ``+31 (0)10 1234567``, ``0031 ...``, ``(010) ...``, in pairs, ...), every form on the
first Dutch rows of each column. ~4% of the filled fields hold an empty string; of the other values
~87% are valid numbers for libphonenumber and ~13% are not (a digit short, the letter O for a zero, a
German number without its +, ``onbekend``, an extension written ``toestel 12``). Organisations abroad,
and their contacts, get their country's forms. Some records share a number: ~10% of the contacts with a
phone at an organisation with one carry its switchboard number (so ~24% of the organisations' numbers
are on a contact too), ~4% of the persons with a phone pass it on to the next one (a family landline on
two persons, ~8% of the persons' numbers), ~10% of the contacts with a mobile carry their person's own
mobile.

Debtors (``debtors``, read through ``Profit_Debtor`` and ``Profit_Debtor_App``) are the organisations and
persons that carry ``IsDebtor``, with their delivery addresses (``delivery_addresses``,
``Profit_Deliveryaddress``). They come from a random stream of their own (``debtors``), so the tables
above are the same with or without them, and carry the edge cases a customer import meets: no e-mail,
one invoice address shared by several debtors (and one invoice mailbox), Belgian, German and British
addresses in their own postcode formats, phone numbers typed as above (~40% mobiles, ~15% without one,
every form on the first Dutch debtors, a delivery address's fax from a stream of its own), blocked
debtors, and modified dates around both DST changes.

Every dataset also holds the same small list of dossier item types (``SUBJECT_TYPES``, what KnSubject's
``StId`` refers to), whatever the seed: type 7 "Mailing" is the one ``mappings/spotler.yaml`` uses for the
mailing history (R17).
"""

from __future__ import annotations

import datetime as dt
import unicodedata

import numpy as np

from afas_sandbox.afas.model import NULL, Columns, empty_columns
from afas_sandbox.afas.phones import (FILLED_PHONE_WEIGHTS, FOREIGN_PHONES, PHONE_STREAM, PLANTED_PHONES,
                                      type_crm_phones, typed_phones)

FIELD_LENGTHS = {"Initials": 15, "FirstName": 50, "Prefix": 15, "LastName": 80, "Name": 255,
                 "Function": 80, "Street": 60, "City": 50, "MailWork": 255, "MailPrivate": 255}

FIRST_MALE = ["Jan", "Pieter", "Kees", "Henk", "Willem", "Daan", "Sem", "Lucas", "Bram", "Thijs", "Ruben",
              "Jeroen", "Mohammed", "Ahmet", "Jérôme", "Noël", "Stijn", "Gijs", "Maarten", "Bas"]
FIRST_FEMALE = ["Anna", "Emma", "Sophie", "Julia", "Zoë", "Fleur", "Sanne", "Lotte", "Anouk", "Inge",
                "Fatima", "Chloé", "Anaïs", "Marieke", "Eva", "Noor", "Femke", "Ilse", "Karin", "Lieke"]
PREFIXES = ["van", "de", "van de", "van der", "van den", "ter", "den", "in 't"]
LAST = ["Jansen", "Vries", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Vos", "Peters",
        "Hendriks", "Dekker", "Brouwer", "Dijkstra", "Wit", "Berg", "Dijk", "Leeuwen", "Kok", "Jacobs",
        "Çelik", "Ødegaard", "Ñúñez", "Yılmaz", "Nguyễn", "Öztürk", "Müller", "Schröder", "Boer", "Graaf"]
TRADES = ["Bakkerij", "Garage", "Kapsalon", "Drukkerij", "Hoveniersbedrijf", "Schildersbedrijf",
          "Accountantskantoor", "Tandartspraktijk", "Installatiebedrijf", "Transportbedrijf"]
SUFFIXES = ["B.V.", "Holding B.V.", "& Zonen", "Bouw", "Advies", "Groep", "N.V.", "V.O.F."]
STREETS = ["Kerkstraat", "Dorpsstraat", "Schoolstraat", "Molenweg", "Stationsweg", "Hoofdstraat",
           "Julianastraat", "Nieuwstraat", "Beatrixlaan", "Industrieweg", "Marktplein", "Kanaalweg"]
CITIES = ["Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Almere",
          "Breda", "Nijmegen", "Apeldoorn", "Haarlem", "Enschede", "Arnhem", "Zaanstad", "’s-Hertogenbosch",
          "Leeuwarden", "Maastricht", "Zwolle", "Delft"]
FUNCTIONS = ["Directeur", "Inkoper", "Office manager", "Financieel administrateur", "Eigenaar",
             "Marketingmanager", "Accountmanager", "HR-adviseur", "Bedrijfsleider", "Secretaresse"]
DEPARTMENTS = ["Verkoop", "Administratie", "Inkoop", "Klantenservice", "Personeelszaken"]
PROVIDERS = ["gmail", "hotmail", "ziggo", "kpnmail", "outlook", "xs4all"]
HOUSE_ADDITIONS = ["A", "B", "bis", "-1", "hs"]
MALFORMED = ["{l}@", "{f} at {l}.example", "{f}.{l}@@{d}", "{f}.{l}@{d}.", "@{d}", "{f} {l}@{d}"]
SHARED_MAIL = "administratie@gedeeld.example"

START_MS = int(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
END_MS = int(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
SPRING_DST_MS = int(dt.datetime(2026, 3, 29, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
AUTUMN_DST_MS = int(dt.datetime(2026, 10, 25, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
HOUR_MS = 3_600_000

# Instants every dataset contains (contacts 10..21): both sides of both DST changes, both occurrences
# of 02:30 local on 2026-10-25 (00:30Z and 01:30Z), and values that display rounded up or down.
PINNED_MODIFIED_MS = [SPRING_DST_MS - 400, SPRING_DST_MS, SPRING_DST_MS + HOUR_MS // 2,
                      AUTUMN_DST_MS - HOUR_MS // 2 + 250, AUTUMN_DST_MS + HOUR_MS // 2 + 250,
                      AUTUMN_DST_MS - 500, AUTUMN_DST_MS, AUTUMN_DST_MS + HOUR_MS - 1,
                      AUTUMN_DST_MS - HOUR_MS - 1, AUTUMN_DST_MS + HOUR_MS, AUTUMN_DST_MS - 499,
                      SPRING_DST_MS - HOUR_MS]
DEBTOR_STREAM = 0xDEB  # second seed word of the debtors' random stream
FIRST_DEBTOR_ID = 20001
FIRST_DELIVERY_ADDRESS_ID = 50001
SHARED_INVOICE_MAIL = "facturen@administratiekantoor-gedeeld.example"
INVOICE_MAILBOXES = ["facturen", "administratie", "crediteurenadministratie", "finance"]
DELIVERY_ADDITIONS = ["Magazijn", "Achteringang", "Laadperron 2", "t.a.v. expeditie"]
BANKS = ["INGB", "RABO", "ABNA", "SNSB", "TRIO", "ASNB", "KNAB", "BUNQ"]
# Addresses abroad in their own formats: streets, (postcode, city), house number additions.
FOREIGN_ADDRESSES = {
    "BE": (["Kerkstraat", "Stationsstraat", "Grote Markt", "Rue de la Station", "Avenue Louise", "Meir"],
           [("1000", "Brussel"), ("2000", "Antwerpen"), ("9000", "Gent"), ("3000", "Leuven"), ("8000", "Brugge"),
            ("4000", "Liège")], ["bus 2", "bus 11", "A"]),
    "DE": (["Hauptstraße", "Bahnhofstraße", "Schillerstraße", "Goethestraße", "Königsallee", "Lindenweg"],
           [("10115", "Berlin"), ("40213", "Düsseldorf"), ("50667", "Köln"), ("47533", "Kleve"),
            ("48143", "Münster"), ("80331", "München")], ["a", "b"]),
    "GB": (["High Street", "Station Road", "Church Lane", "Baker Street", "Victoria Road"],
           [("SW1A 2AA", "London"), ("M1 1AE", "Manchester"), ("B2 4QA", "Birmingham"), ("EH1 1YZ", "Edinburgh"),
            ("LS1 4DY", "Leeds")], ["A", "B"]),
}
PLANTED_COUNTRIES = {4: "BE", 5: "DE", 6: "GB"}  # debtor position -> country of its (foreign) address

ASCII_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ı": "i", "ß": "ss", "’": "", "'": ""})


#: Dossier item types as an AFAS administrator sets them up (Algemeen > Dossier > Typen dossieritems):
#: id, description, and the options (the boolean row keys of GetConnector Profit_SubjectTypes) that are
#: on; every other option is off. Not personal data.
SUBJECT_TYPES: tuple[tuple[int, str, frozenset[str]], ...] = tuple(
    (type_id, description, frozenset(on.split())) for type_id, description, on in (
        (1, "Notitie", "Comment LinkFile WithoutFeature VisibleInsite"),
        (2, "Telefoonnotitie", "Comment Responsible Completed DateCompleted WithoutFeature VisibleInsite"),
        (3, "E-mail", "Comment LinkFile WithoutFeature VisibleInsite"),
        (4, "Brief", "Comment LinkFile WithoutFeature VisibleInsite"),
        (5, "Afspraak", "Comment Responsible StartDate EndDate WithoutFeature VisibleInsite"),
        (6, "Klacht", "Comment SubjectText Responsible ResponsibleMandatory Completed DateCompleted "
                      "Confedential WithoutFeature"),
        (7, "Mailing", "Comment LinkFile WithoutFeature VisibleInsite"),
        (8, "Offerte", "Comment Responsible LinkFile UseFeatures WithoutFeature VisibleInsite"),
    ))


def subject_types() -> Columns:
    """The ``subject_types`` table: ``SUBJECT_TYPES`` in storage form (no numbering, so LastNumber 0)."""
    cols = empty_columns("subject_types", len(SUBJECT_TYPES))
    for i, (type_id, description, on) in enumerate(SUBJECT_TYPES):
        cols["SubjectTypeId"][i], cols["Description"][i], cols["LastNumber"][i] = type_id, description, 0
        for option in on:
            cols[option][i] = True
    return cols


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(ASCII_FOLD))
    return "".join(c for c in folded if c.isalnum() and ord(c) < 128).lower()


def _pick(rng: np.random.Generator, vocab: list[str], n: int) -> np.ndarray:
    return np.array(vocab, dtype=object)[rng.integers(0, len(vocab), n)]


def _modified(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform over 2025-01-01..2026-11-01 UTC with ~3% around each 2026 DST change."""
    ms = rng.integers(START_MS, END_MS, n)
    u = rng.random(n)
    around = rng.integers(-3 * HOUR_MS, 3 * HOUR_MS, n)
    ms = np.where(u < 0.03, SPRING_DST_MS + around, ms)
    return np.where((u >= 0.03) & (u < 0.06), AUTUMN_DST_MS + around, ms)


def _created(rng: np.random.Generator, modified: np.ndarray) -> np.ndarray:
    return modified - rng.integers(0, 5 * 365 * 24 * HOUR_MS, len(modified))


def _phone_filled(rng: np.random.Generator, n: int, empty_rate: float) -> np.ndarray:
    """Whether each row's phone field is filled; ``phones.type_crm_phones`` puts the number in later, from
    a stream of its own. Draws what the numbers drawn here once drew, so that this stream, and with it
    every other column, stays as it was."""
    _skip_former_phone_digits(rng, n)
    return rng.random(n) >= empty_rate


def _skip_former_phone_digits(rng: np.random.Generator, n: int) -> None:
    rng.integers(0, 10**8, n)


def _with_nulls(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    out = values.copy()
    out[rng.random(len(out)) < rate] = None
    return out


def _organisations(rng: np.random.Generator, n: int) -> Columns:
    last = _pick(rng, LAST, n)
    style = rng.integers(0, 2, n)
    trade = _pick(rng, TRADES, n)
    suffix = _pick(rng, SUFFIXES, n)
    names = np.array([f"{t} {ln}" if s else f"{ln} {x}" for s, t, ln, x in zip(style, trade, last, suffix)],
                     dtype=object)
    numbers = np.arange(n, dtype=np.int64) + 100000
    codes = np.array([str(c) for c in numbers], dtype=object)
    slugs = [f"{_ascii(nm)[:20]}{i}" for i, nm in enumerate(names)]
    zips = rng.integers(1000, 10000, n)
    letters = rng.integers(0, 26, (n, 2)) + ord("A")
    modified = _modified(rng, n)
    cols: Columns = {
        "OrganisationId": codes,
        "BcId": numbers,
        "Name": names,
        "ChamberOfCommerce": np.array([f"{k:08d}" for k in rng.integers(10**7, 10**8, n)], dtype=object),
        "FiscalNumber": np.full(n, None, dtype=object),
        "Street": _pick(rng, STREETS, n),
        "HouseNumber": rng.integers(1, 300, n).astype(np.int64),
        "HouseNumberAddition": np.where(rng.random(n) < 0.1, _pick(rng, HOUSE_ADDITIONS, n), None),
        "PostalCode": np.array([f"{z} {chr(a)}{chr(b)}" for z, (a, b) in zip(zips, letters)], dtype=object),
        "City": _pick(rng, CITIES, n),
        "Country": np.where(rng.random(n) < 0.95, "NL", _pick(rng, ["BE", "DE"], n)).astype(object),
        "Phone": _phone_filled(rng, n, 0.1),
        "MailWork": _with_nulls(rng, np.array([f"info@{s}.example" for s in slugs], dtype=object), 0.1),
        "IsDebtor": rng.random(n) < 0.10,
        "ModifiedDate": modified,
        "CreateDate": _created(rng, modified),
    }
    cols["_slug"] = np.array(slugs, dtype=object)
    # Planted edge cases (organisation 0 is a debtor in a city with a typographic apostrophe).
    cols["City"][0] = "’s-Hertogenbosch"
    cols["IsDebtor"][0] = True
    if n > 2:
        cols["Name"][1] = "Jansen, de Vries & Partners; Holding B.V."
        cols["Name"][2] = ("Coöperatieve Vereniging " * 11)[: FIELD_LENGTHS["Name"]]
    return cols


def _persons(rng: np.random.Generator, n: int, first_code: int) -> Columns:
    gender_u = rng.random(n)
    gender = np.where(gender_u < 0.48, "M", np.where(gender_u < 0.96, "V", np.where(gender_u < 0.98, "O", "X")))
    first = np.where(gender == "M", _pick(rng, FIRST_MALE, n), _pick(rng, FIRST_FEMALE, n)).astype(object)
    last = _pick(rng, LAST, n)
    prefix = np.where(rng.random(n) < 0.3, _pick(rng, PREFIXES, n), None).astype(object)
    numbers = np.arange(n, dtype=np.int64) + first_code
    birth = rng.integers((dt.date(1940, 1, 1) - dt.date(1970, 1, 1)).days,
                         (dt.date(2006, 1, 1) - dt.date(1970, 1, 1)).days, n).astype(np.int64)
    modified = _modified(rng, n)
    cols: Columns = {
        "PersonId": np.array([str(c) for c in numbers], dtype=object),
        "BcId": numbers,
        "FirstName": first, "Prefix": prefix, "LastName": last,
        "Gender": gender.astype(object),
        "BirthDate": np.where(rng.random(n) < 0.2, NULL, birth),
        "Bsn": np.full(n, None, dtype=object),
        "Phone": _phone_filled(rng, n, 0.5),
        "PhoneMobile": _phone_filled(rng, n, 0.3),
        "IsDebtor": np.zeros(n, dtype=bool),
        "ModifiedDate": modified,
        "CreateDate": _created(rng, modified),
    }
    # Planted Unicode and maximum-length names.
    planted = [("Zoë", "Çelik"), ("Søren", "Ødegaard"), ("Iñigo", "Ñúñez"), ("Anaïs", "Nguyễn")]
    for i, (given, family) in enumerate(planted[:n]):
        first[i], last[i] = given, family
    if n > 4:
        first[4] = ("Maria-Magdalena " * 4)[: FIELD_LENGTHS["FirstName"]]
        last[4] = ("Wijngaarden-Hoogstraten " * 4)[: FIELD_LENGTHS["LastName"]]
    cols["Initials"] = np.array([f"{f[0]}." for f in first], dtype=object)
    locals_ = [f"{_ascii(given)}.{_ascii(family)}" for given, family in zip(first, last)]
    provider = _pick(rng, PROVIDERS, n)
    cols["MailPrivate"] = _with_nulls(
        rng, np.array([f"{lp}{i % 97}@{p}.example" for i, (lp, p) in enumerate(zip(locals_, provider))],
                      dtype=object), 0.3)
    cols["_local"] = np.array(locals_, dtype=object)
    return cols


def generate(contacts: int, seed: int) -> dict[str, Columns]:
    """Tables (column name -> numpy array, see ``model.TABLES``) for ``contacts`` contacts."""
    if not 1 <= contacts <= 5_000_000:
        raise ValueError("contacts must be between 1 and 5,000,000")
    rng = np.random.default_rng(seed)
    n = contacts
    n_org = max(3, round(n / 5))
    u = rng.random(n)
    kind = np.where(u < 0.85, "PRS", np.where(u < 0.95, "PER", "AFD")).astype(object)
    planted_kinds = ["PRS"] * 30 + ["PER", "PER", "AFD"]
    kind[: min(n, len(planted_kinds))] = planted_kinds[:n]
    org_pos = rng.integers(0, n_org, n)
    org_pos[kind == "PER"] = -1

    # Persons: one per PRS/PER contact, except that ~2% of PRS contacts are the previous PRS contact's
    # person at another organisation (people work for several organisations). Pairs only, never chains,
    # so (organisation, person) stays unique.
    has_person = kind != "AFD"
    prs = np.flatnonzero(kind == "PRS")
    reuse = rng.random(len(prs)) < 0.02
    reuse[: min(len(reuse), 40)] = False
    reuse[1:] &= ~reuse[:-1]
    reuse[1:] &= org_pos[prs[1:]] != org_pos[prs[:-1]]
    new_person = has_person.copy()
    new_person[prs[reuse]] = False
    person_pos = np.full(n, -1, dtype=np.int64)
    person_pos[new_person] = np.arange(int(new_person.sum()))
    person_pos[prs[1:][reuse[1:]]] = person_pos[prs[:-1][reuse[1:]]]

    orgs = _organisations(rng, n_org)
    people = _persons(rng, int(new_person.sum()), first_code=100000 + n_org)

    contact_ids = np.arange(n, dtype=np.int64) + 10001
    modified = _modified(rng, n)
    pinned = max(0, min(n - 10, len(PINNED_MODIFIED_MS)))
    modified[10: 10 + pinned] = PINNED_MODIFIED_MS[:pinned]

    slug = np.where(org_pos >= 0, orgs["_slug"][np.maximum(org_pos, 0)], None)
    local = np.where(person_pos >= 0, people["_local"][np.maximum(person_pos, 0)], None)
    mail = np.array([f"{lp}@{s}.example" if lp is not None and s is not None else None
                     for lp, s in zip(local, slug)], dtype=object)
    afd = kind == "AFD"
    department = np.where(afd, _pick(rng, DEPARTMENTS, n), None).astype(object)
    mail[afd] = [f"{_ascii(d)}@{s}.example" for d, s in zip(department[afd], slug[afd])]
    mail = _with_nulls(rng, mail, 0.05)
    m = rng.random(n)
    bad = np.flatnonzero(m < 0.01)
    for i in bad:
        if local[i] is not None and slug[i] is not None:
            given, _, family = local[i].partition(".")
            mail[i] = MALFORMED[i % len(MALFORMED)].format(f=given, l=family or given, d=f"{slug[i]}.example")
    shout = np.flatnonzero((m >= 0.01) & (m < 0.03))
    mail[shout] = [f"  {v.upper()} " if v else v for v in mail[shout]]
    mail[(m >= 0.03) & (m < 0.04) & (kind == "PRS")] = SHARED_MAIL

    bounce = rng.random(n)
    bounce_type = np.where(bounce < 0.01, "hard", np.where(bounce < 0.03, "soft", None)).astype(object)
    bounce_date = np.where(bounce_type != None, (modified // 86_400_000) - rng.integers(0, 60, n), NULL)  # noqa: E711

    cols: Columns = {
        "ContactId": contact_ids,
        "PersonId": np.where(person_pos >= 0, people["PersonId"][np.maximum(person_pos, 0)], None).astype(object),
        "OrganisationId": np.where(org_pos >= 0, orgs["OrganisationId"][np.maximum(org_pos, 0)], None).astype(object),
        "ContactKind": kind,
        "MailWork": mail,
        "Phone": _phone_filled(rng, n, 0.4),
        "Mobile": _phone_filled(rng, n, 0.5),
        "Function": np.where(has_person & (rng.random(n) < 0.8), _pick(rng, FUNCTIONS, n), None).astype(object),
        "Department": department,
        "Blocked": rng.random(n) < 0.03,
        "PermissionNewsletter": rng.random(n) < 0.6,
        "PermissionEvents": rng.random(n) < 0.6,
        "BounceDate": bounce_date.astype(np.int64),
        "BounceType": bounce_type,
        "HardBounce": bounce_type == "hard",
        "EraseRequested": np.zeros(n, dtype=bool),
        "ModifiedDate": modified,
        "CreateDate": _created(rng, modified),
    }
    # Loose persons carry their e-mail and debtor status on the person itself.
    loose = person_pos[kind == "PER"]
    people["MailWork"] = np.full(len(people["PersonId"]), None, dtype=object)
    people["MailWork"][loose] = cols["MailWork"][kind == "PER"]
    people["IsDebtor"][loose] = rng.random(len(loose)) < 0.10
    _plant_contacts(cols, n)
    del orgs["_slug"], people["_local"]
    tables = {"organisations": orgs, "persons": people, "contacts": cols,
              "subjects": empty_columns("subjects"), "attachments": empty_columns("attachments"),
              "subject_types": subject_types(), **debtors(orgs, people, seed)}
    type_crm_phones(tables, seed)
    return tables


def _plant_contacts(cols: Columns, n: int) -> None:
    """Edge cases at fixed positions among the first (always PRS) contacts."""
    plant = {
        0: {"MailWork": None},
        1: {"MailWork": "jan.jansen@@voorbeeld.example"},
        2: {"MailWork": "  Zoe.Celik@Voorbeeld.EXAMPLE "},
        3: {"MailWork": SHARED_MAIL}, 4: {"MailWork": SHARED_MAIL}, 5: {"MailWork": SHARED_MAIL},
        6: {"BounceType": "hard", "HardBounce": True},
        7: {"BounceType": "soft", "HardBounce": False},
        8: {"Blocked": True},
        9: {"Function": ("Hoofd klantcontact; inkoop, logistiek en planning " * 2)[: 80]},
    }
    for i, fields in plant.items():
        if i >= n:
            break
        for name, value in fields.items():
            cols[name][i] = value
        if "BounceType" in fields:
            cols["BounceDate"][i] = cols["ModifiedDate"][i] // 86_400_000



# --- debtors -------------------------------------------------------------------------------------------

def debtors(orgs: Columns, persons: Columns, seed: int) -> dict[str, Columns]:
    """The ``debtors`` and ``delivery_addresses`` tables for the organisations and persons with
    ``IsDebtor`` (organisations first, then persons, each in table order), from their own random stream."""
    rng = np.random.default_rng([seed, DEBTOR_STREAM])
    fax_rng = np.random.default_rng([seed, DEBTOR_STREAM, PHONE_STREAM])
    org_pos, person_pos = np.flatnonzero(orgs["IsDebtor"]), np.flatnonzero(persons["IsDebtor"])
    n_org, n = len(org_pos), len(org_pos) + len(person_pos)
    cols = empty_columns("debtors", n)
    cols["DebtorId"][:] = [str(FIRST_DEBTOR_ID + i) for i in range(n)]
    cols["OrganisationId"][:n_org] = orgs["OrganisationId"][org_pos]
    cols["PersonId"][n_org:] = persons["PersonId"][person_pos]
    first, prefix, last = (persons[f][person_pos] for f in ("FirstName", "Prefix", "LastName"))
    cols["Name"][:n_org] = orgs["Name"][org_pos]
    cols["Name"][n_org:] = [" ".join(p for p in parts if p) for parts in zip(first, prefix, last)]
    cols["SearchName"][:] = [_ascii(str(name).split()[0])[:10].upper() or None for name in cols["Name"][:n_org]] + [
        _ascii(family)[:10].upper() or None for family in last]

    # The address: an organisation's own (a foreign one in its country's format), a person's drawn here.
    country = np.concatenate([orgs["Country"][org_pos].astype(object),
                              np.where(rng.random(len(person_pos)) < 0.94, "NL",
                                       _pick(rng, ["BE", "DE", "GB"], len(person_pos))).astype(object)])
    country[country == None] = "NL"  # noqa: E711
    for i, code in PLANTED_COUNTRIES.items():
        if i < n:
            country[i] = code
    drawn = _addresses(rng, country)
    dutch_org = np.zeros(n, dtype=bool)
    dutch_org[:n_org] = country[:n_org] == "NL"
    for field in ("Street", "HouseNumber", "HouseNumberAddition", "PostalCode", "City"):
        cols[field][:] = drawn[field]
        cols[field][:n_org][dutch_org[:n_org]] = orgs[field][org_pos][dutch_org[:n_org]]
    cols["Country"][:] = country

    work, private = persons["MailWork"][person_pos], persons["MailPrivate"][person_pos]
    cols["MailWork"][:] = np.concatenate([_invoice_mail(rng, orgs["MailWork"][org_pos]),
                                          np.where(work != None, work, private)])  # noqa: E711
    cols["Phone"][:] = typed_phones(rng, country)

    is_org = np.arange(n) < n_org
    foreign = country != "NL"
    cols["Iban"][:] = _with_nulls(rng, _ibans(rng, country), 0.15)
    vat_digits = rng.integers(10**8, 10**9, n)
    vat = np.array([f"NL{d}B01" if c == "NL" else f"{c}{'0' if c == 'BE' else ''}{d}"
                    for c, d in zip(country, vat_digits)], dtype=object)
    cols["VatNumber"][:] = np.where(is_org & (rng.random(n) < 0.9), vat, None)
    cols["CollectAccount"][:] = np.where(foreign, "1310", "1300")
    cols["PaymentCondition"][:] = _pick(rng, ["14", "30", "30", "30", "60"], n)
    # VAT duty codes as the sandbox numbers them (the OpenAPI description lists none): 1 liable, 4 within
    # the EU (reverse charged), 5 outside the EU.
    cols["VatDuty"][:] = np.where(country == "GB", "5", np.where(foreign & is_org, "4", "1"))
    cols["Blocked"][:] = rng.random(n) < 0.03
    limits = np.where(is_org, _pick(rng, [0, 1000, 2500, 5000, 10000, 25000], n), _pick(rng, [0, 500, 1000], n))
    cents = limits.astype(np.int64) * 100
    odd = rng.random(n) < 0.1
    cents[odd] = rng.integers(1, 5_000_000, int(odd.sum()))
    cols["CreditLimit"][:] = np.where(rng.random(n) < 0.15, NULL, cents)
    cols["Currency"][:] = np.where(country == "GB", "GBP", "EUR")
    cols["AutoPayment"][:] = (cols["Iban"] != None) & (rng.random(n) < 0.4)  # noqa: E711
    modified = _modified(rng, n)
    pinned = max(0, min(n - 10, len(PINNED_MODIFIED_MS)))
    modified[10: 10 + pinned] = PINNED_MODIFIED_MS[:pinned]
    cols["ModifiedDate"][:], cols["CreateDate"][:] = modified, _created(rng, modified)
    _plant_debtors(rng, cols)
    addresses = _delivery_addresses(rng, cols, fax_rng)
    return {"debtors": cols, "delivery_addresses": addresses}


def _plant_debtors(rng: np.random.Generator, cols: Columns) -> None:
    """Edge cases at fixed positions among the first debtors (when there are that many), plus a few
    random debtors that share the previous one's address."""
    n = len(cols["DebtorId"])
    address = ("Street", "HouseNumber", "HouseNumberAddition", "PostalCode", "City", "Country")
    share = np.flatnonzero(rng.random(n) < 0.03)
    for i in share[share >= 12]:
        for field in address:
            cols[field][i] = cols[field][i - 1]
    if n > 0:
        cols["MailWork"][0] = None
    for i in (2, 3):  # one building, one invoice address for several debtors
        if i < n:
            for field in address:
                cols[field][i] = cols[field][1]
    if n > 4:
        cols["Phone"][4] = FOREIGN_PHONES["BE"][1]("12345678")  # 0032 470 12 34 56
    if n > 7:
        cols["Blocked"][7] = True
    for i in (8, 9):  # one bookkeeper's mailbox receives the invoices of two debtors
        if i < n:
            cols["MailWork"][i] = SHARED_INVOICE_MAIL
    if n > 11:
        cols["MailWork"][11] = "  Facturen@Voorbeeld-Debiteur.EXAMPLE "
    dutch = np.flatnonzero(cols["Country"] == "NL")
    for i, typed in zip(dutch, PLANTED_PHONES):
        cols["Phone"][i] = typed


def _delivery_addresses(rng: np.random.Generator, debtor_cols: Columns, fax_rng: np.random.Generator) -> Columns:
    """0, 1 or 2 delivery addresses per debtor; the first is the debtor's default (``DeliveryAddressId``),
    often its own address with a note for the driver, the second elsewhere (across the border for some
    foreign debtors)."""
    n = len(debtor_cols["DebtorId"])
    per_debtor = np.searchsorted([0.45, 0.85], rng.random(n), side="right").astype(np.int64)
    if n > 0:
        per_debtor[0] = 2
    if n > 1:
        per_debtor[1] = 0
    owner = np.repeat(np.arange(n), per_debtor)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(per_debtor) - per_debtor, per_debtor)
    m = len(owner)
    cols = empty_columns("delivery_addresses", m)
    cols["AddressId"][:] = np.arange(m, dtype=np.int64) + FIRST_DELIVERY_ADDRESS_ID
    cols["DebtorId"][:] = debtor_cols["DebtorId"][owner]
    home = debtor_cols["Country"][owner]
    country = np.where((rank == 1) & (home != "NL") & (rng.random(m) < 0.5), "NL", home).astype(object)
    drawn = _addresses(rng, country)
    own = (rank == 0) & (rng.random(m) < 0.5)
    for field in ("Street", "HouseNumber", "HouseNumberAddition", "PostalCode", "City"):
        cols[field][:] = np.where(own, debtor_cols[field][owner], drawn[field])
    cols["Country"][:] = country
    cols["StreetAddition"][:] = np.where(rng.random(m) < 0.3, _pick(rng, DELIVERY_ADDITIONS, m), None)
    cols["Phone"][:] = np.where(rng.random(m) < 0.3, typed_phones(rng, country), None)
    has_fax = rng.random(m) < 0.05
    _skip_former_phone_digits(rng, m)
    cols["Fax"][:] = typed_phones(fax_rng, country, 0.0, FILLED_PHONE_WEIGHTS, filled=has_fax)
    domain = [None if mail is None or "@" not in mail else mail.strip().rsplit("@", 1)[1]
              for mail in debtor_cols["MailWork"][owner]]
    cols["MailWork"][:] = [f"magazijn@{d}" if d and u < 0.2 else None for d, u in zip(domain, rng.random(m))]
    modified = _modified(rng, m)
    cols["ModifiedDate"][:], cols["CreateDate"][:] = modified, _created(rng, modified)
    default = cols["AddressId"][rank == 0]
    debtor_cols["DeliveryAddressId"][:] = NULL
    debtor_cols["DeliveryAddressId"][owner[rank == 0]] = default
    return cols


def _addresses(rng: np.random.Generator, country: np.ndarray) -> Columns:
    """A drawn address per row in that row's country (``NL`` or a key of ``FOREIGN_ADDRESSES``)."""
    n = len(country)
    zips = rng.integers(1000, 10000, n)
    letters = rng.integers(0, 26, (n, 2)) + ord("A")
    out: Columns = {
        "Street": _pick(rng, STREETS, n),
        "HouseNumber": rng.integers(1, 300, n).astype(np.int64),
        "HouseNumberAddition": np.where(rng.random(n) < 0.1, _pick(rng, HOUSE_ADDITIONS, n), None).astype(object),
        "PostalCode": np.array([f"{z} {chr(a)}{chr(b)}" for z, (a, b) in zip(zips, letters)], dtype=object),
        "City": _pick(rng, CITIES, n),
    }
    for code, (streets, places, additions) in FOREIGN_ADDRESSES.items():
        rows = np.flatnonzero(country == code)
        place = rng.integers(0, len(places), len(rows))
        out["Street"][rows] = _pick(rng, streets, len(rows))
        out["HouseNumberAddition"][rows] = np.where(rng.random(len(rows)) < 0.2, _pick(rng, additions, len(rows)), None)
        out["PostalCode"][rows] = [places[k][0] for k in place]
        out["City"][rows] = [places[k][1] for k in place]
    return out


def _invoice_mail(rng: np.random.Generator, work: np.ndarray) -> np.ndarray:
    """The organisation's address, or for about a third the invoice mailbox at the same domain."""
    box = _pick(rng, INVOICE_MAILBOXES, len(work))
    other = rng.random(len(work)) < 0.3
    return np.array([f"{b}@{m.split('@', 1)[1]}" if m is not None and o and "@" in m else m
                     for m, b, o in zip(work, box, other)], dtype=object)


def _bban(country: str, a: int, b: int) -> str:
    """A national account number of the country's length from two random numbers."""
    if country == "BE":
        first = f"{a % 10**10:010d}"
        check = int(first) % 97 or 97
        return f"{first}{check:02d}"
    if country == "DE":
        return f"{b % 10**8:08d}{a % 10**10:010d}"
    if country == "GB":
        return f"{BANKS[a % len(BANKS)][:4]}{b % 10**6:06d}{a % 10**8:08d}"
    return f"{BANKS[b % len(BANKS)]}{a % 10**10:010d}"


def _iban(country: str, bban: str) -> str:
    """IBAN with valid check digits (ISO 13616: mod 97 of the rearranged digits)."""
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def _ibans(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    a, b = rng.integers(0, 10**10, len(country)), rng.integers(0, 10**8, len(country))
    return np.array([_iban(c, _bban(c, int(x), int(y))) for c, x, y in zip(country, a, b)], dtype=object)
