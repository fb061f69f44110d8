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

Every dataset also holds the same small list of dossier item types (``SUBJECT_TYPES``, what KnSubject's
``StId`` refers to), whatever the seed: type 7 "Mailing" is the one ``mappings/spotler.yaml`` uses for the
mailing history (R17).
"""

from __future__ import annotations

import datetime as dt
import unicodedata

import numpy as np

from afas_sandbox.afas.model import NULL, Columns, empty_columns

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


def _phone(rng: np.random.Generator, n: int, prefix: str) -> np.ndarray:
    digits = rng.integers(0, 10**8, n)
    return np.array([f"{prefix}{d:08d}" for d in digits], dtype=object)


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
        "Phone": _with_nulls(rng, _phone(rng, n, "0"), 0.1),
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
        "Phone": _with_nulls(rng, _phone(rng, n, "0"), 0.5),
        "PhoneMobile": _with_nulls(rng, _phone(rng, n, "06"), 0.3),
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
        "Phone": _with_nulls(rng, _phone(rng, n, "0"), 0.4),
        "Mobile": _with_nulls(rng, _phone(rng, n, "06"), 0.5),
        "Function": np.where(has_person & (rng.random(n) < 0.8), _pick(rng, FUNCTIONS, n), None).astype(object),
        "Department": department,
        "Blocked": rng.random(n) < 0.03,
        "PermissionNewsletter": rng.random(n) < 0.6,
        "PermissionEvents": rng.random(n) < 0.6,
        "BounceDate": bounce_date.astype(np.int64),
        "BounceType": bounce_type,
        "HardBounce": bounce_type == "hard",
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
    return {"organisations": orgs, "persons": people, "contacts": cols,
            "subjects": empty_columns("subjects"), "attachments": empty_columns("attachments"),
            "subject_types": subject_types()}


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

