"""The audience of debtors as plain DataFrame work: the join with the preferred delivery address, whatever types
the ids arrive in, and C4 (every debtor read is a member or excluded with its rule)."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import afas_pipeline.sync.audience as audience_module
from afas_pipeline.afas.sources import MAPPINGS_DIR, default_sources
from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.mapping.load import load_mapping
from afas_pipeline.sync.audience import (
    _content_hashes, _valid_domain, _valid_local_part, _validates, audience_columns, audience_members, build_audience,
    field_hash, field_hashes, is_valid_email, join_entities, normalise_email, normalise_emails, property_column, valid_emails,
)

DEBTORS = load_mapping(MAPPINGS_DIR / "mailchimp_debtors.yaml")


def _debtors(delivery_ids: list) -> pd.DataFrame:
    n = len(delivery_ids)
    return pd.DataFrame({
        "DebtorId": [str(20001 + i) for i in range(n)], "DeliveryAddressId": delivery_ids,
        "Email": [f"klant{i}@voorbeeld.nl" for i in range(n)], "DebtorName": [f"Klant {i}" for i in range(n)],
        "FirstName": None, "LastName": None, "TelNr": None, "AddressLine1": None, "AddressLine3": None,
        "AddressLine4": None, "Blocked": False,
        "DateModified": pd.Timestamp("2026-11-16 10:00", tz="UTC"),
    })


def _addresses() -> pd.DataFrame:
    return pd.DataFrame({"Adres_ID": [5, 6], "DebiteurID": ["20001", "20003"], "A_Straat": ["Kade", "Dijk"],
                         "A_Huisnummer": [1, 2], "A_Toev_Huisnr.": [None, "b"], "A_Postcode": ["1234 AB", "2345 BC"],
                         "A_Woonplaats": ["Hoorn", "Edam"], "A_Land": ["NL", "NL"]})


def test_a_debtor_gets_its_preferred_delivery_address_when_the_ids_arrive_as_floats():
    # A debtor without a preferred address makes pandas read the whole id column as floats (5.0, NaN, 6.0).
    debtors = _debtors([5.0, None, 6.0])
    audience = build_audience(debtors, {"delivery_address": _addresses()}, DEBTORS, modified=("DateModified",))
    members = audience.members.set_index("external_id")
    streets = members[property_column("ADDRESS.street")].astype("string").fillna("-").to_dict()
    assert streets == {"20001": "Kade", "20002": "-", "20003": "Dijk"}
    assert audience.input_rows == 3 and len(audience.rows) == 3 and audience.excluded.empty


def test_a_debtor_read_twice_is_one_member_and_c4_holds():
    debtors = _debtors([5, 6])
    later = debtors.iloc[[0]].assign(DebtorName="Klant nieuw", DateModified=pd.Timestamp("2026-11-16 10:05", tz="UTC"))
    audience = build_audience(pd.concat([debtors, later], ignore_index=True), {"delivery_address": _addresses()},
                              DEBTORS, modified=("DateModified",))
    assert audience.excluded_counts()["C2"] == 1 and len(audience.members) == 2
    assert audience.members.set_index("external_id").loc["20001", property_column("COMPANY")] == "Klant nieuw"



def test_the_join_holds_only_the_fields_the_mapping_uses_and_the_modified_dates():
    # A delta's rows read by key come with every field of the GetConnector; the join copies none it does not use.
    debtors = _debtors([5, 6]).assign(Unused="x")
    joined = join_entities(debtors, {"delivery_address": _addresses().assign(Unused=1)}, DEBTORS,
                           modified=("DateModified",))
    used = DEBTORS.columns()
    assert set(joined.columns) == {*(f"debtor.{c}" for c in [*used["debtor"], "DateModified"]),
                                   *(f"delivery_address.{c}" for c in used["delivery_address"])}
    assert "delivery_address.DebiteurID" not in joined and len(joined) == 2


def test_the_audience_lists_its_members_first_in_external_id_order_as_a_sort_of_the_whole_frame_does():
    # Debtors left out by each rule, read in no order; the audience moves its rows a column at a time.
    debtors = _debtors([5, 6, None, 5, 6, 5]).assign(DebtorId=["20006", "20002", "20005", "20001", "20004", "20003"])
    debtors.loc[[0, 3], "Email"] = [None, "geen adres"]
    rows = build_audience(debtors, {"delivery_address": _addresses()}, DEBTORS, modified=("DateModified",)).rows
    assert set(rows["excluded_by"].dropna()) == {"R3", "R3-syntax"}
    shuffled = rows.sample(frac=1, random_state=3).reset_index(drop=True)
    whole = shuffled.sort_values(["excluded_by", "external_id"], na_position="first", kind="stable")
    pd.testing.assert_frame_equal(audience_module._members_first(shuffled), whole.reset_index(drop=True))
    pd.testing.assert_frame_equal(rows, whole.reset_index(drop=True))
    # Its members are then its first rows; in any other order they are picked out, the same rows either way.
    picked = rows[rows["excluded_by"].isna()]
    assert len(picked) == 4
    pd.testing.assert_frame_equal(audience_members(rows), picked)
    shuffled = rows.sample(frac=1, random_state=3).reset_index(drop=True)  # (`_members_first` emptied the other)
    assert not shuffled["excluded_by"].iloc[:4].isna().all()
    pd.testing.assert_frame_equal(audience_members(shuffled), shuffled[shuffled["excluded_by"].isna()])


def test_a_delta_of_debtors_also_reads_the_debtor_a_delivery_address_names():
    # The delta completes its debtors with those whose delivery address changed (`_complete_delta`): DebiteurID.
    full, delta = (audience_columns(DEBTORS, default_sources(), delta=d) for d in (False, True))
    assert full["debtor"] == delta["debtor"] == [*DEBTORS.columns()["debtor"], "DateModified"]
    assert full["delivery_address"] == DEBTORS.columns()["delivery_address"]
    assert delta["delivery_address"] == [*DEBTORS.columns()["delivery_address"], "DebiteurID"]

# The local parts an e-mail check meets: plain ones, the characters email-validator treats apart (dots, quotes,
# backslashes, spaces, '@', Unicode), and lengths on both sides of its 254-character rule.
_LOCAL_CHARS = st.sampled_from([*"abcXYZ09._-+!#$%&'*/=?^`{|}~", '"', "\\", " ", "@", "é", "\u0301", "\u200b", "<", ">"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(_LOCAL_CHARS, max_size=20),
                 st.builds(lambda n, tail: "a" * n + tail, st.integers(230, 250), st.text(_LOCAL_CHARS, max_size=3))))
def test_the_plain_local_part_shortcut_gives_email_validators_verdict(local):
    assert _valid_local_part(local) == _validates(f"{local}@example.com")


_DOMAIN_CHARS = st.sampled_from([*"abcz0189-", ".", "A", "_", "é", "\u00ad", "\u3002"])
_SUFFIXES = st.sampled_from(["", ".nl", ".com", ".test", ".local", ".arpa", ".invalid", ".onion", ".localhost", ".c0m",
                             ".xn--p1ai", ".museum", "."])


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.builds(lambda body, suffix: body + suffix, st.text(_DOMAIN_CHARS, max_size=24), _SUFFIXES),
                 st.builds(lambda sizes, suffix: ".".join("d" * n for n in sizes) + suffix,
                           st.lists(st.integers(1, 70), min_size=1, max_size=5), _SUFFIXES)))
@example("ab--cd.nl")
@example("xn--zz.nl")
def test_the_plain_domain_shortcut_gives_email_validators_verdict(domain):
    assert _valid_domain(domain) == _validates(f"postmaster@{domain}")


# Addresses as AFAS holds them: around the plain shape (case, white space Python and Unicode disagree on, the
# special-use names, "--", lengths near the limits), missing ones, and Unicode.
_ADDRESS_PARTS = st.sampled_from([*"abXZ09._-+!#'~", "@", "@", ".nl", ".test", ".localhost", "--", " ", "\x1c", "\t",
                                  "\u00a0", "é", "İ", "ß", '"', "\u3002", "xn--", "d" * 63, "a" * 120])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(_ADDRESS_PARTS, max_size=8).map("".join)), max_size=12),
       st.sampled_from(["string[pyarrow]", "string[python]", "object"]))
@example(["  Jan@Voorbeeld.NL ", " \x1cA@B.NL\x1f", "İ@x.nl", "a--b@c--d.nl", "x@y.test", "", None], "object")
def test_the_column_wise_email_steps_give_the_verdicts_of_the_per_value_ones(values, dtype):
    column = pd.Series(values, dtype=dtype)
    normalised = normalise_emails(column)
    expected = column.map(normalise_email).astype("string")
    assert normalised.isna().tolist() == expected.isna().tolist()
    assert normalised.dropna().tolist() == expected.dropna().tolist()
    verdicts = [isinstance(e, str) and is_valid_email(e) for e in expected.astype(object).where(expected.notna(), None)]
    assert valid_emails(normalised).tolist() == verdicts


def test_content_hashes_computed_in_slices_are_those_of_the_whole(monkeypatch):
    debtors = _debtors([5, 6, None, 5, 6, None, 5])
    whole = build_audience(debtors, {"delivery_address": _addresses()}, DEBTORS, modified=("DateModified",)).rows
    monkeypatch.setattr(audience_module, "HASH_SLICE", 3)
    sliced = build_audience(debtors, {"delivery_address": _addresses()}, DEBTORS, modified=("DateModified",)).rows
    assert whole["content_hash"].nunique() == len(whole)  # each debtor's own name: a hash each
    assert sliced["content_hash"].tolist() == whole["content_hash"].tolist()


def test_only_members_are_hashed():
    """A member's hashes are what a sync compares with its state; an excluded row is sent nowhere and has none."""
    debtors = _debtors([5, 6, None])
    debtors.loc[1, "Email"] = "geen adres"  # R3-syntax
    rows = build_audience(debtors, {"delivery_address": _addresses()}, DEBTORS, modified=("DateModified",)).rows
    by_id = rows.set_index("external_id")
    assert by_id.loc["20002", "excluded_by"] == "R3-syntax"
    assert by_id[["email_hash", "content_hash"]].isna().loc["20002"].all()
    assert by_id[["email_hash", "content_hash"]].notna().loc[["20001", "20003"]].all().all()


def test_content_hashes_are_the_ones_the_sync_state_holds_for_every_kind_of_column():
    """The hash of a row is `hash_key` of the JSON text of its values, missing ones null, as state written by earlier
    releases holds it: a hash made another way would send every record again."""
    n = 6
    frame = pd.DataFrame({
        "email": pd.array(["a@x.nl", None, "c@x.nl", "d@x.nl", "e@x.nl", "f@x.nl"], dtype="string"),
        "prop:firstName": pd.array(["Jan", "Piet", None, "Ëlla", "Zoë", "O'Brien \"jr\""], dtype="string[pyarrow]"),
        "prop:afasPersonId": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
        "prop:score": [1.5, np.nan, 3.0, 4.25, np.nan, 6.0],
        "prop:count": np.arange(n),
        "prop:debtor": pd.array([True, None, False, True, None, False], dtype="boolean"),
        "prop:since": pd.to_datetime(["2026-01-01", None, "2026-03-01", "2026-04-01", None, "2026-06-01"], utc=True),
    })

    class Mapping:
        class email:
            property = "email"

        @staticmethod
        def two_way_fields():
            return []

        @staticmethod
        def properties():
            return [(None, "email"), *((None, c.removeprefix("prop:")) for c in frame.columns[1:])]

    stored = [hash_key(orjson.dumps(list(row), default=str).decode())
              for row in frame.astype(object).where(frame.notna(), None).to_numpy().tolist()]
    assert _content_hashes(frame, Mapping).tolist() == stored


@pytest.mark.parametrize("kind", ["text", "yes_no"])
def test_field_hashes_of_a_column_are_field_hash_of_each_value(kind):
    """Each distinct value is hashed once, and every row gets the hash `field_hash` gives its own value (what the
    sync state holds and the way back compares with), missing values of every kind included."""
    columns = [
        pd.array(["Manager", None, " Manager ", "manager", "Ëlla", "", "Manager"], dtype="string"),
        pd.array(["ja", None, "nee", "ja", "yes", "x", "no"], dtype="string[pyarrow]"),
        pd.array([True, None, False, True, None, False, True], dtype="boolean"),
        pd.array([1, None, 0, 1, 5, 0, None], dtype="Int64"),
        [1.0, np.nan, 0.0, 1.0, 2.5, np.nan, 0.0],
        np.array([True, 1, "1", None, 1.0, "True", False], dtype=object),  # pandas takes True and 1 for equal
    ]
    for values in columns:
        column = pd.Series(values, index=range(10, 17))
        hashes = field_hashes(column, kind)
        assert hashes.index.tolist() == column.index.tolist()
        assert hashes.tolist() == [field_hash(v, kind) for v in column.tolist()]
