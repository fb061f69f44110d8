"""X1/X2 as pure functions: AFAS rows -> Xelion documents, numbers in E.164, the phone index's tie-break."""

from __future__ import annotations

import hashlib

import orjson
import pandas as pd
import phonenumbers

from afas_pipeline.lib import privacy
from afas_pipeline.lib.privacy import number_key
from afas_pipeline.xelion import addressbook
from afas_pipeline.xelion.addressbook import (
    DOCUMENT_VERSION, ORGANISATION, PERSON, address_book, content_hash, phone_index, resolve_employments,
)
from afas_pipeline.xelion.calls import MARKER, report_body, wanted

ORGS = pd.DataFrame([
    {"OrganisationId": "100", "BcId": 100, "Name": "Jansen B.V.", "ChamberOfCommerce": "12345678", "Street": "Markt",
     "HouseNumber": 12, "HouseNumberAddition": "a", "PostalCode": "3011 AB", "City": "Rotterdam", "Country": "NL",
     "Phone": "010-1234567", "MailWork": "info@jansen.example"},
    {"OrganisationId": "101", "BcId": 101, "Name": "Leeg", "ChamberOfCommerce": None, "Street": None,
     "HouseNumber": None, "HouseNumberAddition": None, "PostalCode": None, "City": None, "Country": None,
     "Phone": "n.v.t.", "MailWork": None},
])
PERSONS = pd.DataFrame([
    {"PersonId": "200", "BcId": 200, "Initials": "J.", "FirstName": "Jan", "Prefix": "de", "LastName": "Vries",
     "Gender": "M", "MailWork": "jan@jansen.example", "Phone": "+31 (0)10 123 4567", "PhoneMobile": "06 12345678"},
    {"PersonId": "201", "BcId": 201, "Initials": None, "FirstName": "Els", "Prefix": None, "LastName": "Bos",
     "Gender": "V", "MailWork": None, "Phone": "0101234567", "PhoneMobile": "06-1234567"},  # a digit short
])
CONTACTS = pd.DataFrame([
    {"ContactId": 1, "PersonId": "200", "OrganisationId": "100", "ContactKind": "PRS", "Function": "Inkoper",
     "Phone": "010 123 4567", "Mobile": "0031 6 12345678"},
    {"ContactId": 2, "PersonId": "201", "OrganisationId": None, "ContactKind": "PER", "Function": None,
     "Phone": None, "Mobile": None},
])


def _made(book, size: int = 5000) -> tuple[list, list]:
    """The book's organisations and persons, made `size` at a time."""
    return ([e for chunk in book.chunks(ORGANISATION, size) for e in chunk],
            [e for chunk in book.chunks(PERSON, size) for e in chunk])


def test_x1_numbers_are_e164_once_per_record_and_unreadable_ones_are_left_out_and_counted():
    book = address_book(ORGS, PERSONS, CONTACTS)
    (org, empty), (jan, els) = _made(book)
    assert [t["address"] for t in org.document["telecomAddresses"] if t["addressType"] != "Email"] == ["+31101234567"]
    assert empty.document["telecomAddresses"] == [] and empty.numbers == []
    # Jan's work phone, his contact's phone (the same number typed otherwise) and both mobiles: two numbers.
    assert jan.numbers == ["+31101234567", "+31612345678"]
    assert els.numbers == ["+31101234567"]
    assert book.left_out == {"not_a_number": 1, "invalid_number": 1}
    assert all("n.v.t." not in str(e.document) for e in (org, empty, jan, els))


def test_x1_a_person_at_an_organisation_has_an_employment_a_loose_person_none():
    jan, els = _made(address_book(ORGS, PERSONS, CONTACTS))[1]
    assert jan.document["employments"] == [{"organisation": {"afas": "organisation:100"}, "jobTitle": "Inkoper"}]
    assert els.document["employments"] == []
    resolved, waiting = resolve_employments(jan.document, {"organisation:100": "1234"})
    assert resolved["employments"] == [{"organisation": {"oid": "1234"}, "jobTitle": "Inkoper"}] and waiting == 0
    resolved, waiting = resolve_employments(jan.document, {})
    assert resolved["employments"] == [] and waiting == 1
    assert content_hash(resolved) != content_hash(resolve_employments(jan.document, {"organisation:100": "1"})[0])


def test_x1_documents_carry_the_afas_key_marker_and_the_address():
    org = _made(address_book(ORGS, PERSONS, CONTACTS))[0][0]
    assert org.document["comment"] == "AFAS organisatie 100"
    assert org.document["addresses"] == [{"street": "Markt", "streetNumber": "12 a", "zipCode": "3011 AB",
                                          "city": "Rotterdam", "country": "NL", "addressType": "Visit"}]
    assert org.bcid == "100" and org.number_keys == [number_key("+31101234567")]


def test_x2_a_shared_number_resolves_to_the_organisation_then_the_lowest_bcid_and_is_counted():
    organisations, persons = _made(address_book(ORGS, PERSONS, CONTACTS))
    rows = pd.DataFrame([{"external_id": e.external_id, "number_key": k, "bcid": e.bcid, "afas_id": e.afas_id,
                          "kind": e.kind} for e in organisations + persons for k in e.number_keys])
    table, counts = phone_index(rows)
    shared = table.set_index("number_key").loc[number_key("+31101234567")]
    assert (shared["bcid"], shared["kind"], shared["candidates"]) == ("100", "organisation", 3)
    mobile = table.set_index("number_key").loc[number_key("+31612345678")]
    assert (mobile["bcid"], mobile["candidates"]) == ("200", 1)
    assert counts == {"numbers": 2, "records": 3, "ambiguous_numbers": 1}
    # Persons only: the lowest BcId wins, whatever the order of the rows.
    persons = rows[rows["kind"] == "person"].iloc[::-1]
    assert phone_index(persons)[0].set_index("number_key").loc[number_key("+31101234567"), "bcid"] == "200"


CALL = {"oid": "5000", "callId": "0f8c2a6e-1111-2222-3333-444455556666", "date": "2026-11-30 14:05:00",
        "incoming": True, "durationSec": 185, "status": "answered", "phone": "+31101234567",
        "subject": None, "contents": None}


def test_x3_the_empty_subject_text_the_marker_line_and_the_link():
    body = report_body(CALL, subject_type=2, empty_subject="Telefoongesprek", afas_id="100", recording=None)
    fields = body["KnSubject"]["Element"]["Fields"]
    assert fields["Ds"] == "Telefoongesprek" and fields["StId"] == 2 and fields["Da"] == "2026-11-30T14:05:00"
    assert fields["SbTx"].split("\n")[-1] == MARKER + CALL["callId"]
    assert "Duur: 3:05" in fields["SbTx"] and "Richting: inkomend" in fields["SbTx"]
    assert body["KnSubject"]["Element"]["Objects"] == [
        {"KnSubjectLink": {"Element": {"Fields": {"DoCRM": True, "ToBC": True, "BcId": "100"}}}}]


def test_x4_the_recording_is_attached_in_the_same_post_and_a_long_note_keeps_its_marker():
    call = {**CALL, "subject": "Offerte", "contents": "x" * 5000}
    body = report_body(call, subject_type=2, empty_subject="-", afas_id="100", recording=b"\xff\xfb\x90\x00")
    fields = body["KnSubject"]["Element"]["Fields"]
    assert fields["Ds"] == "Offerte" and len(fields["SbTx"]) <= 4000
    assert fields["SbTx"].endswith(MARKER + CALL["callId"])
    attachment = body["KnSubject"]["Element"]["Objects"][1]["KnSubjectAttachment"]["Element"][0]["Fields"]
    assert attachment["FileName"].endswith(".mp3") and attachment["FileStream"] == "//uQAA=="


def test_x3_which_calls_get_a_report():
    assert not wanted(CALL, None, always_sync=False)
    assert wanted(CALL, None, always_sync=True)
    assert wanted({**CALL, "contents": "terugbellen"}, None, always_sync=False)
    assert wanted(CALL, b"mp3", always_sync=False)


def _crowd() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """12 organisations and 30 persons (ids that sort otherwise as text than as numbers: "10" before "9"), most
    persons at one to three organisations, one person and one contact read twice (an edit in a later window)."""
    orgs = pd.DataFrame([{"OrganisationId": str(o), "BcId": o, "Name": f"Org {o}", "Phone": f"010-{1000000 + o}",
                          "MailWork": None} for o in range(1, 13)])
    persons = pd.DataFrame([{"PersonId": str(p), "BcId": 100 + p, "FirstName": f"P{p}", "LastName": "Bos",
                             "Phone": "0101000003" if p % 5 == 0 else None, "PhoneMobile": f"06-{20000000 + p}"}
                            for p in range(1, 31)]
                           + [{"PersonId": "9", "BcId": 109, "FirstName": "Negen", "LastName": "Bos", "Phone": None,
                               "PhoneMobile": "06 30000009"}])
    contacts = pd.DataFrame([{"ContactId": 1000 + 10 * p + k, "PersonId": str(p), "OrganisationId": str(1 + (p + k) % 12),
                              "ContactKind": "PRS", "Function": f"F{k}", "Phone": None, "Mobile": f"06-{40000000 + p}"}
                             for p in range(1, 31) for k in range(p % 4)]
                            + [{"ContactId": 1091, "PersonId": "9", "OrganisationId": "3", "ContactKind": "PRS",
                                "Function": "Baas", "Phone": None, "Mobile": None},
                               {"ContactId": 1, "PersonId": "7", "OrganisationId": None, "ContactKind": "PER",
                                "Function": None, "Phone": None, "Mobile": None}])
    return orgs, persons, contacts


def test_x1_the_book_made_a_few_at_a_time_is_the_book_made_at_once():
    """The sync makes the book 5,000 records at a time (at 1,000,000 contacts every entry at once held 2.8 GB): every
    chunk size gives the same entries in the same order, with each person's employments (read from a slice of the
    contacts) and the same numbers for the phone index. A record read twice counts once, as last read."""
    whole = address_book(*_crowd())
    orgs, persons = _made(whole)
    assert [e.afas_id for e in persons][:3] == ["1", "10", "11"] and len(persons) == 30
    nine = next(e for e in persons if e.afas_id == "9")
    assert nine.document["givenName"] == "Negen" and [j["jobTitle"] for j in nine.document["employments"]][-1] == "Baas"
    assert sum(len(e.document["employments"]) for e in persons) == sum(p % 4 for p in range(1, 31)) + 1
    for size in (1, 2, 7):
        book = address_book(*_crowd())
        assert [(e.external_id, e.document, e.numbers) for e in sum(_made(book, size), [])] == [
            (e.external_id, e.document, e.numbers) for e in orgs + persons]
        assert book.phone_numbers().equals(whole.phone_numbers()) and book.left_out == whole.left_out
    assert len(whole) == 42 and whole.count(PERSON) == 30


def test_x2_a_book_not_made_to_its_end_still_gives_every_number_and_leaves_erased_persons_out():
    """The sync stopped early (Xelion refused the login midway): the phone index still gets every record's numbers.
    A person to be erased is left out of both (P2)."""
    book, left_alone = address_book(*_crowd()).without(lambda key: key == "person:9")
    assert left_alone == 1 and book.count(PERSON) == 29
    next(book.chunks(PERSON, 2))  # two persons made, then the sync stops
    rows = book.phone_numbers().to_pandas()
    assert rows["external_id"].nunique() == 12 + 29 and "person:9" not in set(rows["external_id"])
    assert rows.loc[rows["external_id"] == "person:5", "number_key"].tolist() == [
        number_key("+31101000003"), number_key("+31620000005"), number_key("+31640000005")]


def _fingerprints(book, oids: dict[str, str], size: int = 5000) -> dict[str, str]:
    return {key: fingerprint for kind in (ORGANISATION, PERSON) for part in book.parts(kind, size)
            for key, fingerprint in zip(part.keys, part.fingerprints(oids))}


def test_x1_a_record_s_fingerprint_changes_with_what_its_entry_is_made_from_and_only_then(monkeypatch):
    """A rerun skips making a record whose fingerprint is as saved (at 1,000,000 contacts making every record again
    took 267 s), so a fingerprint must change with anything its document or numbers are made from: its row, an
    employment's contact, the oid its organisation has in Xelion, the region. And with nothing else."""
    orgs, persons, contacts = _crowd()
    oids = {f"organisation:{o}": str(500 + o) for o in range(1, 13)}
    base = _fingerprints(address_book(orgs, persons, contacts), oids)
    assert len(base) == 42 and len(set(base.values())) == 42
    assert all(_fingerprints(address_book(orgs, persons, contacts), oids, size) == base for size in (1, 7))

    def changed(orgs=orgs, persons=persons, contacts=contacts, oids=oids, region="NL") -> set[str]:
        now = _fingerprints(address_book(orgs, persons, contacts, region), oids)
        return {key for key in base if now[key] != base[key]}

    assert changed(persons=persons.assign(FirstName=persons["FirstName"].where(persons["PersonId"] != "5", "Vijf"))) \
        == {"person:5"}
    assert changed(orgs=orgs.assign(Name=orgs["Name"].where(orgs["OrganisationId"] != "3", "Drie"))) \
        == {"organisation:3"}  # a person names its organisation by oid only
    at_three = {f"person:{p}" for p in contacts.loc[contacts["OrganisationId"] == "3", "PersonId"]}
    assert changed(oids={**oids, "organisation:3": "999"}) == at_three and len(at_three) >= 2
    assert changed(contacts=contacts.assign(Function=contacts["Function"].where(contacts["ContactId"] != 1091, "Chef"))) \
        == {"person:9"}
    new_job = pd.DataFrame([{"ContactId": 5000, "PersonId": "4", "OrganisationId": "1", "ContactKind": "PRS",
                             "Function": None, "Phone": None, "Mobile": None}])
    assert changed(contacts=pd.concat([contacts, new_job], ignore_index=True)) == {"person:4"}
    assert changed(region="BE") == set(base)
    # A value typed as the words pandas writes for a missing one is a value (a Python object column hashes the two
    # alike); a missing value is missing however it was read (None before, NaN after).
    without = persons.assign(Prefix=None)
    before = _fingerprints(address_book(orgs, without, contacts), oids)
    typed = _fingerprints(address_book(orgs, without.assign(
        Prefix=without["PersonId"].map({"3": "None", "4": "nan"})), contacts), oids)
    assert {key for key in before if typed[key] != before[key]} == {"person:3", "person:4"}
    assert changed(persons=persons.assign(DateModified="2026-12-04")) == set()  # a column the book does not read
    # Which numbers are valid is libphonenumber's metadata; the number keys are salted per installation.
    for module, name, value in ((phonenumbers, "__version__", "0.0.1"), (privacy, "_SALT", b"another salt")):
        with monkeypatch.context() as patch:
            patch.setattr(module, name, value)
            addressbook._seed.cache_clear()
            assert changed() == set(base)
        addressbook._seed.cache_clear()
    assert changed() == set()


def test_x1_documents_made_from_a_fixed_input_are_pinned():
    """Records whose input is unchanged are not made again, so a change to how documents or numbers are made must
    raise DOCUMENT_VERSION, or Xelion keeps the old documents of every record AFAS does not edit. When this fails:
    raise DOCUMENT_VERSION and pin both figures anew."""
    oids = {f"organisation:{o}": str(500 + o) for o in range(1, 13)} | {"organisation:100": "600"}
    made = []
    for rows in (_crowd(), (ORGS, PERSONS, CONTACTS)):
        book = address_book(*rows)
        for entry in sum(_made(book), []):
            made.append((entry.external_id, content_hash(resolve_employments(entry.document, oids)[0]),
                         entry.numbers, dict(entry.left_out)))
    digest = hashlib.sha256(orjson.dumps(made, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    assert (DOCUMENT_VERSION, digest) == (1, "a85faf9476c1130d")
