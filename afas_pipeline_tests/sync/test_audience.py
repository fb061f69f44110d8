"""The audience of debtors as plain DataFrame work: the join with the preferred delivery address, whatever types
the ids arrive in, and C4 (every debtor read is a member or excluded with its rule)."""

from __future__ import annotations

import pandas as pd

from afas_pipeline.afas.sources import MAPPINGS_DIR
from afas_pipeline.mapping.load import load_mapping
from afas_pipeline.sync.audience import build_audience, property_column

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
