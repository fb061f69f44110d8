"""The AFAS client against the sandbox emulator over real HTTP (no mocks of our own code)."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import pandas as pd
import pytest

from afas_pipeline.afas.client import AfasClient, ReadStats
from afas_pipeline.afas.errors import (
    AfasAuthError,
    AfasConfigError,
    AfasNotFound,
    AfasOutcomeUnknown,
    AfasQueryTooLong,
    AfasServerError,
    AfasUnavailable,
)
from afas_pipeline.afas.filters import Condition, Filter, Op
from afas_pipeline.afas.lookups import (
    LOOKUP_CHUNK,
    LOOKUP_FULL_READ,
    lookup_limit,
    read_by_keys,
)
from afas_pipeline.afas.sources import default_sources
from afas_pipeline.lib.timewindows import parse_afas_datetimes, utc_windows

UTC = timezone.utc
DEFAULT_FAULTS = {
    "latency_ms": 0, "jitter_ms": 0, "error_503_rate": 0.0, "retry_after": 1, "error_500_rate": 0.0,
    "drop_rate": 0.0, "slow_page_ms": 0, "max_concurrency": 8, "seed": 0,
}
CONTACT_IDS = ["ContactId", "PersonId", "OrganisationId"]


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def admin(sandbox):
    with httpx.Client(base_url=sandbox.afas_admin_url + "/", timeout=60) as http:
        http.put("faults", json=DEFAULT_FAULTS).raise_for_status()
        http.post("stats/reset").raise_for_status()
        yield http
        http.put("faults", json=DEFAULT_FAULTS).raise_for_status()


def make_client(sandbox, **overrides) -> AfasClient:
    config = dict(
        base_url=sandbox.afas_base_url, token=sandbox.afas_token, page_size=500,
        backoff_initial_s=0.001, backoff_max_s=0.01, max_attempts=10, timeout_s=20,
    )
    config.update(overrides)
    return AfasClient(**config)


@pytest.fixture
def afas(sandbox, admin):
    with make_client(sandbox) as client:
        yield client


@pytest.fixture
def restore_dataset(admin):
    """Edits change the shared session dataset; put it back exactly as it was."""
    snapshot = admin.get("dataset")
    snapshot.raise_for_status()
    yield
    admin.post("dataset", content=snapshot.content, headers={"Content-Type": "application/json"}).raise_for_status()


def faults(admin, **values) -> None:
    admin.put("faults", json={**DEFAULT_FAULTS, **values}).raise_for_status()


def stats(admin) -> dict:
    response = admin.get("stats")
    response.raise_for_status()
    return response.json()


def requests_matching(admin_stats: dict, prefix: str) -> int:
    return sum(n for name, n in admin_stats["requests"].items() if name.startswith(prefix))


def raw_all_rows(client: AfasClient, connector: str) -> list[dict]:
    """The whole connector in one unpaged call (skip=-1), bypassing the client's paging."""
    response = httpx.get(
        f"{client.resolved_base_url()}/connectors/{connector}",
        params={"skip": "-1", "take": "-1"},
        headers={"Authorization": client._auth_header()},
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["rows"]


@pytest.fixture(scope="module")
def contacts_reference(sandbox):
    """Sync_Contacts as one unpaged read, typed like the client types it (the oracle for filters)."""
    with make_client(sandbox) as client:
        frame, _ = client.read("Sync_Contacts", order_by=["ContactId"], page_size=100_000)
    return frame


# --- auth and configuration -----------------------------------------------------------------------


def test_profit_version_is_reported(afas):
    assert re.fullmatch(r"\d+\.\d+\.\d+", afas.profit_version())


def test_wrong_token_is_an_auth_error_naming_the_connector_without_the_token(sandbox, admin, caplog):
    wrong = "f" * 64
    caplog.set_level(logging.DEBUG)
    with make_client(sandbox, token=wrong) as client:
        with pytest.raises(AfasAuthError) as caught:
            client.read("Sync_Contacts", order_by=["ContactId"])
        header = client._auth_header().split(" ", 1)[1]
    error = caught.value
    text = str(error)
    assert error.status_code == 401 and error.connector == "Sync_Contacts"
    assert "Sync_Contacts" in text and "token" in text and "App Connector" in text
    assert re.fullmatch(r"[0-9A-Fa-f]{32}", error.profit_log_reference or "")
    assert error.profit_log_reference in text
    for secret in (wrong, header):
        assert secret not in text and secret not in repr(error) and secret not in caplog.text


def test_connector_outside_the_app_connector_whitelist_is_an_auth_error(sandbox, admin):
    with make_client(sandbox, token=sandbox.afas_limited_token) as client:
        persons, _ = client.read("Sync_Persons", order_by=["PersonId"])
        assert len(persons) > 0
        with pytest.raises(AfasAuthError, match="Sync_Contacts"):
            client.read("Sync_Contacts", order_by=["ContactId"])


def test_unknown_connector_is_a_clear_error_naming_it(afas):
    with pytest.raises(AfasAuthError) as caught:
        afas.read("Sync_Contacts_Typo", order_by=["ContactId"])
    assert "Sync_Contacts_Typo" in str(caught.value) and "App Connector" in str(caught.value)


def test_wrong_base_url_is_not_found(sandbox, admin):
    with make_client(sandbox, base_url=sandbox.url + "/not-afas/ProfitRestServices") as client:
        with pytest.raises(AfasNotFound, match="base URL"):
            client.profit_version()


def test_r9_connector_lacking_id_fields_is_refused_naming_connector_fields_and_rule(afas):
    assert "ContactId" in afas.require_fields("Sync_Contacts", CONTACT_IDS).field_ids
    with pytest.raises(AfasConfigError) as caught:
        afas.require_fields("Sync_Persons", CONTACT_IDS, rule="R9")
    error = caught.value
    assert set(error.missing_fields) == {"ContactId", "OrganisationId"}
    for part in ("Sync_Persons", "ContactId", "OrganisationId", "R9"):
        assert part in str(error)
    assert "PersonId" not in error.missing_fields


def test_sort_or_filter_on_an_unknown_field_is_refused_before_reading(afas, admin):
    with pytest.raises(AfasConfigError, match="Nonsense"):
        afas.read("Sync_Persons", order_by=["Nonsense"])
    with pytest.raises(AfasConfigError, match="Nonsense"):
        afas.read("Sync_Persons", order_by=["PersonId"], filters=Condition("Nonsense", Op.EQ, 1))
    assert requests_matching(stats(admin), "GET connectors/") == 0


def test_query_string_over_2049_characters_is_refused_before_sending(afas, admin):
    too_many = Filter.any_of(*(Condition("PersonId", Op.EQ, f"{n:08d}") for n in range(120)))
    with pytest.raises(AfasQueryTooLong, match="2049"):
        afas.read("Sync_Persons", order_by=["PersonId"], filters=too_many)
    assert requests_matching(stats(admin), "GET connectors/") == 0


def test_a_filter_just_under_the_query_limit_is_read(afas, contacts_reference):
    ids = [int(i) for i in contacts_reference["ContactId"]]
    conditions = [Condition("ContactId", Op.EQ, i) for i in ids[:40]]
    while True:
        candidate = Filter.any_of(*conditions, Condition("ContactId", Op.EQ, ids[len(conditions)]))
        query = httpx.URL("http://x/", params={**candidate.to_params(), "orderbyfieldids": "ContactId",
                                               "skip": "9" * 7, "take": "500"}).query
        if len(query) > 2049:
            break
        conditions.append(Condition("ContactId", Op.EQ, ids[len(conditions)]))
    frame, _ = afas.read("Sync_Contacts", order_by=["ContactId"], filters=Filter.any_of(*conditions))
    assert frame["ContactId"].tolist() == ids[: len(conditions)]
    with pytest.raises(AfasQueryTooLong):
        afas.read("Sync_Contacts", order_by=["ContactId"], filters=candidate)


# --- paging and typing ----------------------------------------------------------------------------


def test_paging_over_many_pages_loses_and_doubles_nothing(afas, contacts_reference):
    frame, read_stats = afas.read("Sync_Contacts", order_by=["ContactId"], page_size=700)
    everything = raw_all_rows(afas, "Sync_Contacts")
    assert len(frame) == len(everything) > 2 * 700
    assert frame["ContactId"].is_unique
    assert frame["ContactId"].tolist() == sorted(row["ContactId"] for row in everything)
    assert read_stats.pages == len(frame) // 700 + 1
    assert read_stats.rows == len(frame) and read_stats.bytes > 0 and read_stats.retries == 0
    by_id = {row["ContactId"]: row for row in everything}
    for column in ("MailWork", "OrganisationId", "ContactKind"):
        expected = [by_id[i][column] for i in frame["ContactId"]]
        assert [None if pd.isna(v) else v for v in frame[column]] == expected
    expected_modified = parse_afas_datetimes([by_id[i]["ContactModified"] for i in frame["ContactId"]])
    assert (frame["ContactModified"].to_numpy() == expected_modified.to_numpy()).all()
    pd.testing.assert_frame_equal(frame, contacts_reference)


def test_descending_sort_is_honoured(afas):
    frame, _ = afas.read("Sync_Persons", order_by=["-PersonId"], page_size=300)
    assert frame["PersonId"].tolist() == sorted(frame["PersonId"].tolist(), key=str.lower, reverse=True)


def test_columns_are_typed_from_metainfo(contacts_reference):
    dtypes = contacts_reference.dtypes
    assert str(dtypes["ContactId"]) == "Int64"
    assert str(dtypes["Blocked"]) == "boolean"
    assert isinstance(dtypes["MailWork"], pd.StringDtype)
    assert isinstance(dtypes["ContactModified"], pd.DatetimeTZDtype) and str(dtypes["ContactModified"].tz) == "UTC"
    assert contacts_reference["ContactModified"].notna().all()


def test_empty_result_keeps_typed_columns(afas):
    frame, read_stats = afas.read("Sync_Contacts", order_by=["ContactId"], filters=Condition("ContactId", Op.LT, -1))
    assert frame.empty and read_stats.pages == 1
    assert str(frame.dtypes["ContactId"]) == "Int64"
    assert isinstance(frame.dtypes["ContactModified"], pd.DatetimeTZDtype)


# --- filters: every operator, OR, filterjson ------------------------------------------------------


def _text(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v).lower() for v in series.astype("object")]


def _expected(frame: pd.DataFrame, field: str, op: Op, value) -> pd.Series:
    """The sandbox's documented semantics: text is case-insensitive, an empty value satisfies none
    of the positive operators and all of the negations."""
    column = frame[field]
    empty = column.isna() | (column.astype("object") == "")
    if op in (Op.EMPTY, Op.NOT_EMPTY):
        return empty if op is Op.EMPTY else ~empty
    if op in (Op.CONTAINS, Op.NOT_CONTAINS, Op.STARTS_WITH, Op.NOT_STARTS_WITH, Op.ENDS_WITH, Op.NOT_ENDS_WITH, Op.QUICK, Op.NE):
        text = _text(column)
        needle = str(value).lower()
        test = {
            Op.CONTAINS: lambda s: needle in s, Op.QUICK: lambda s: needle in s, Op.NOT_CONTAINS: lambda s: needle in s,
            Op.STARTS_WITH: lambda s: s.startswith(needle), Op.NOT_STARTS_WITH: lambda s: s.startswith(needle),
            Op.ENDS_WITH: lambda s: s.endswith(needle), Op.NOT_ENDS_WITH: lambda s: s.endswith(needle),
            Op.NE: lambda s: s == needle,
        }[op]
        hit = pd.Series([s is not None and test(s) for s in text], index=frame.index)
        return ~hit if op in (Op.NOT_CONTAINS, Op.NOT_STARTS_WITH, Op.NOT_ENDS_WITH, Op.NE) else hit
    if isinstance(value, str):
        values, target = _text(column), value.lower()
    else:
        values, target = [None if pd.isna(v) else v for v in column.astype("object")], value
    compare = {Op.EQ: "__eq__", Op.GE: "__ge__", Op.LE: "__le__", Op.GT: "__gt__", Op.LT: "__lt__"}[op]
    return pd.Series([v is not None and getattr(v, compare)(target) is True for v in values], index=frame.index)


def _cases(reference: pd.DataFrame):
    median_id = int(reference["ContactId"].median())
    instant = reference["ContactModified"].sort_values().iloc[len(reference) // 3]
    mail_domain = "." + str(reference["MailWork"].dropna().iloc[0]).rsplit(".", 1)[-1].upper()
    function = str(reference["Function"].dropna().iloc[0])
    return [
        ("ContactKind", Op.EQ, "prs"),
        ("ContactId", Op.GE, median_id),
        ("ContactId", Op.LE, median_id),
        ("ContactId", Op.GT, median_id),
        ("ContactId", Op.LT, median_id),
        ("MailWork", Op.CONTAINS, "@"),
        ("ContactKind", Op.NE, "PRS"),
        ("MailWork", Op.EMPTY, None),
        ("OrganisationId", Op.NOT_EMPTY, None),
        ("Function", Op.STARTS_WITH, function[:3]),
        ("MailWork", Op.NOT_CONTAINS, "@"),
        ("Function", Op.NOT_STARTS_WITH, function[:3]),
        ("MailWork", Op.ENDS_WITH, mail_domain),
        ("MailWork", Op.NOT_ENDS_WITH, mail_domain),
        ("Function", Op.QUICK, function[1:4]),
        ("Blocked", Op.EQ, True),
        ("ContactModified", Op.GE, instant.to_pydatetime()),
    ]


def test_every_operator_code_selects_what_afas_would(afas, contacts_reference):
    cases = _cases(contacts_reference)
    assert {op for _, op, _ in cases} == set(Op)
    for field, op, value in cases:
        frame, _ = afas.read("Sync_Contacts", order_by=["ContactId"], filters=Condition(field, op, value))
        expected = contacts_reference.loc[_expected(contacts_reference, field, op, value).to_numpy(), "ContactId"]
        assert frame["ContactId"].tolist() == expected.tolist(), f"{field} {op.name} {value!r}"
        assert 0 < len(frame) < len(contacts_reference), f"{field} {op.name} {value!r} selects nothing or all"


def test_or_filter_combines_and_groups(afas, contacts_reference):
    flt = Filter.all_of(Condition("ContactKind", Op.EQ, "PER"), Condition("Blocked", Op.EQ, True)) | Condition(
        "ContactKind", Op.EQ, "AFD"
    )
    frame, _ = afas.read("Sync_Contacts", order_by=["ContactId"], filters=flt)
    ref = contacts_reference
    mask = ((ref["ContactKind"] == "PER") & ref["Blocked"]) | (ref["ContactKind"] == "AFD")
    assert frame["ContactId"].tolist() == ref.loc[mask.fillna(False).to_numpy(), "ContactId"].tolist()
    assert len(frame) > 0


def test_values_with_comma_or_semicolon_go_through_filterjson(afas):
    organisations, _ = afas.read("Sync_Organisations", order_by=["OrganisationId"])
    names = organisations["Name"].dropna()
    tricky = names[names.str.contains(",") | names.str.contains(";")]
    assert len(tricky) > 0, "the dataset promises names with , and ;"
    name = str(tricky.iloc[0])
    frame, _ = afas.read(
        "Sync_Organisations", order_by=["OrganisationId"],
        filters=Condition("Name", Op.EQ, name) | Condition("OrganisationId", Op.EQ, organisations["OrganisationId"].iloc[0]),
    )
    expected = organisations.loc[
        (organisations["Name"].str.lower() == name.lower()).fillna(False).to_numpy()
        | (organisations.index == 0),
        "OrganisationId",
    ]
    assert frame["OrganisationId"].tolist() == expected.tolist()


# --- windows over real HTTP across both DST changes -----------------------------------------------

EDITS = {
    # spring forward 2026-03-29 01:00 UTC (02:00 local -> 03:00 local)
    "spring": [
        "2026-03-29T00:44:59.600Z", "2026-03-29T00:59:59.499Z", "2026-03-29T00:59:59.600Z",
        "2026-03-29T01:00:00.000Z", "2026-03-29T01:00:00.400Z", "2026-03-29T01:14:59.999Z",
        "2026-03-29T01:29:59.500Z", "2026-03-29T00:15:00.250Z",
    ],
    # fall back 2026-10-25 01:00 UTC (03:00 local -> 02:00 local; 02:00-03:00 happens twice)
    "fall": [
        "2026-10-25T00:00:00.000Z", "2026-10-25T00:14:59.700Z", "2026-10-25T00:30:00.250Z",
        "2026-10-25T00:59:59.600Z", "2026-10-25T01:00:00.000Z", "2026-10-25T01:30:00.700Z",
        "2026-10-25T01:59:59.500Z", "2026-10-24T23:59:59.500Z", "2026-10-25T02:00:00.100Z",
    ],
}
RANGES = {
    "spring": (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), datetime(2026, 3, 29, 3, 0, tzinfo=UTC)),
    "fall": (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 10, 25, 3, 0, tzinfo=UTC)),
}


def _expected_window_start(at: str) -> datetime:
    """Where a row edited at ``at`` must land: its displayed (rounded) wall time, later occurrence."""
    instant = pd.Timestamp(at)
    wall = instant.tz_convert("Europe/Amsterdam").tz_localize(None).round("s")
    shown = parse_afas_datetimes([wall.strftime("%Y-%m-%dT%H:%M:%SZ")]).iloc[0]
    return shown.floor("15min").to_pydatetime()


@pytest.mark.parametrize("season", ["spring", "fall"])
def test_quarter_windows_across_dst_assign_every_contact_exactly_once(afas, admin, restore_dataset, contacts_reference, season):
    edited_ids = [int(i) for i in contacts_reference["ContactId"].iloc[7 : 7 + len(EDITS[season])]]
    for contact_id, at in zip(edited_ids, EDITS[season]):
        edit = admin.post(
            "edit", json={"table": "contacts", "key": str(contact_id), "fields": {"Function": "dst"}, "at": at}
        )
        edit.raise_for_status()

    first, last = RANGES[season]
    seen: Counter[int] = Counter()
    landed: dict[int, datetime] = {}
    requests = 0
    for start, end in utc_windows(first, last):
        window, read_stats = afas.read_window(
            "Sync_Contacts", key="ContactId", date_fields=["ContactModified"], start=start, end=end
        )
        requests += read_stats.requests
        assert window["ContactModified"].between(start, end, inclusive="left").all()
        for contact_id in window["ContactId"]:
            seen[int(contact_id)] += 1
            landed[int(contact_id)] = start

    full, _ = afas.read("Sync_Contacts", order_by=["ContactId"], page_size=5000)
    in_range = full.loc[full["ContactModified"].between(first, last, inclusive="left").to_numpy(), "ContactId"]
    assert sorted(seen) == sorted(int(i) for i in in_range), "lost or extra rows"
    assert set(seen.values()) == {1}, "doubled rows"
    assert len(seen) > len(EDITS[season])  # the dataset's own DST clusters take part too
    for contact_id, at in zip(edited_ids, EDITS[season]):
        assert landed[contact_id] == _expected_window_start(at), at
        assert landed[contact_id] + timedelta(minutes=15) > pd.Timestamp(at).to_pydatetime()


def test_window_over_several_date_fields_with_latest_assignment_partitions(afas):
    first, last = RANGES["fall"]
    fields = ["ContactModified", "PersonModified", "OrganisationModified"]
    seen_any: Counter[int] = Counter()
    seen_latest: Counter[int] = Counter()
    for start, end in utc_windows(first, last, timedelta(minutes=30)):
        any_rows, _ = afas.read_window("Sync_Contacts", key="ContactId", date_fields=fields, start=start, end=end)
        latest_rows, _ = afas.read_window(
            "Sync_Contacts", key="ContactId", date_fields=fields, start=start, end=end, assign="latest"
        )
        assert any_rows["ContactId"].is_unique and latest_rows["ContactId"].is_unique
        seen_any.update(int(i) for i in any_rows["ContactId"])
        seen_latest.update(int(i) for i in latest_rows["ContactId"])
    full, _ = afas.read("Sync_Contacts", order_by=["ContactId"], page_size=5000)
    hit = np.zeros(len(full), dtype=bool)
    for field in fields:
        hit |= full[field].between(first, last, inclusive="left").fillna(False).to_numpy(dtype=bool)
    latest = full[fields].max(axis=1)
    latest_in = latest.between(first, last, inclusive="left").fillna(False).to_numpy(dtype=bool)
    assert set(seen_any) == {int(i) for i in full.loc[hit, "ContactId"]}
    assert sorted(seen_latest) == sorted(int(i) for i in full.loc[latest_in, "ContactId"])
    assert set(seen_latest.values()) == {1}


# --- retries, faults and the concurrency cap ------------------------------------------------------


def test_reads_survive_503s_and_dropped_connections_exactly(sandbox, admin, contacts_reference):
    faults(admin, error_503_rate=0.25, drop_rate=0.2, retry_after=0, seed=11)
    # Pages read side by side draw faults in no fixed order: 20 attempts (0.45 ** 20 per page).
    with make_client(sandbox, max_attempts=20) as client:
        frame, read_stats = client.read("Sync_Contacts", order_by=["ContactId"], page_size=400)
    injected = stats(admin)["faults"]
    assert injected["503"] > 0 and injected["drop"] > 0
    assert read_stats.retries == injected["503"] + injected["drop"]
    # pages + metainfo + the look-ahead request past the last page + retries
    assert read_stats.requests == read_stats.pages + 1 + 1 + read_stats.retries
    pd.testing.assert_frame_equal(frame, contacts_reference)


def test_persistent_503_ends_in_afas_unavailable_after_max_attempts(sandbox, admin):
    faults(admin, error_503_rate=1.0, retry_after=0)
    with make_client(sandbox, max_attempts=3) as client:
        with pytest.raises(AfasUnavailable) as caught:
            client.read("Sync_Persons", order_by=["PersonId"])
    assert caught.value.status_code == 503 and "3 attempt" in str(caught.value)
    assert stats(admin)["faults"]["503"] == 3


def test_a_read_is_retried_on_500_like_on_503_and_loses_or_doubles_nothing(sandbox, admin, contacts_reference):
    faults(admin, error_500_rate=0.25, seed=11)
    with make_client(sandbox) as client:
        frame, read_stats = client.read("Sync_Contacts", order_by=["ContactId"], page_size=400)
    injected = stats(admin)["faults"]
    assert injected["500"] > 0
    assert read_stats.retries == injected["500"]
    assert read_stats.requests == read_stats.pages + 1 + 1 + read_stats.retries
    pd.testing.assert_frame_equal(frame, contacts_reference)


def test_a_read_that_keeps_failing_with_500_ends_in_afas_error_and_a_put_500_is_not_repeated(
        sandbox, admin, restore_dataset, contacts_reference):
    person_id = str(contacts_reference["PersonId"].dropna().iloc[0])
    with make_client(sandbox, max_attempts=3) as client:
        subject_id = client.insert("KnSubject", _subject_body(person_id, "refused put"))["results"]["KnSubject"]["SbId"]
        faults(admin, error_500_rate=1.0)
        with pytest.raises(AfasServerError) as caught:
            client.read("Sync_Persons", order_by=["PersonId"])
        assert caught.value.status_code == 500 and caught.value.profit_log_reference  # AFAS's own error, to look up
        assert stats(admin)["faults"]["500"] == 3
        with pytest.raises(AfasServerError):
            client.update("KnSubject", {"KnSubject": {"Element": {"@SbId": subject_id, "Fields": {"Ds": "x"}}}})
    assert stats(admin)["faults"]["500"] == 4 and requests_matching(stats(admin), "PUT ") == 1


def test_retry_after_beyond_the_limit_fails_fast(sandbox, admin):
    faults(admin, error_503_rate=1.0, retry_after=7200)
    with make_client(sandbox, max_retry_after_s=60) as client:
        with pytest.raises(AfasUnavailable, match="7200"):
            client.profit_version()
    assert stats(admin)["faults"]["503"] == 1


def test_a_timed_out_request_is_repeated(sandbox, admin):
    with make_client(sandbox, timeout_s=0.6) as client:
        expected = sorted(row["PersonId"] for row in raw_all_rows(client, "Sync_Persons"))
        # seed 0: the first request waits 758 ms (beyond the 600 ms timeout), the next two 259 and 405 ms.
        faults(admin, jitter_ms=1000, seed=0)
        frame, read_stats = client.read("Sync_Persons", order_by=["PersonId"], page_size=100_000)
    assert read_stats.retries == 1 and read_stats.requests == 3
    assert sorted(frame["PersonId"]) == expected


def test_concurrency_cap_is_never_exceeded(sandbox, admin):
    faults(admin, latency_ms=40)
    clients = [make_client(sandbox, max_concurrency=4) for _ in range(3)]
    results: list[int] = []
    errors: list[BaseException] = []

    def work(client: AfasClient) -> None:
        try:
            frame, _ = client.read("Sync_Organisations", order_by=["OrganisationId"], page_size=200)
            results.append(len(frame))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(clients[n % 3],)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert not errors
    observed = stats(admin)
    assert len(results) == 12 and len(set(results)) == 1
    assert 2 <= observed["peak_concurrency"] <= 4
    assert observed["rejected_concurrency"] == 0


def test_one_client_read_from_several_threads_keeps_each_reads_rows_and_counts(sandbox, admin):
    """As the full reads use it (`afas_snapshots`): one client, a connector per thread, each read its own."""
    faults(admin, latency_ms=5)
    reads = {"Sync_Contacts": ["ContactId"], "Sync_Persons": ["PersonId"], "Sync_Organisations": ["OrganisationId"]}
    with make_client(sandbox, page_size=300, max_concurrency=2) as client:
        for connector in reads:
            client.metainfo(connector)  # cached from here on: every read below costs only its pages
        alone = {c: client.read(c, order_by=order) for c, order in reads.items()}
        admin.post("stats/reset").raise_for_status()
        with ThreadPoolExecutor(max_workers=len(reads)) as pool:
            together = dict(zip(reads, pool.map(lambda c: client.read(c, order_by=reads[c]), reads)))
    for connector, (frame, counts) in together.items():
        pd.testing.assert_frame_equal(frame, alone[connector][0])
        assert (counts.pages, counts.requests, counts.rows, counts.bytes) == (
            alone[connector][1].pages, alone[connector][1].requests, alone[connector][1].rows, alone[connector][1].bytes)
    observed = stats(admin)
    assert observed["total"] == sum(counts.requests for _, counts in together.values())
    assert observed["peak_concurrency"] <= 2 and observed["rejected_concurrency"] == 0


# --- update connectors ----------------------------------------------------------------------------


def _subject_body(person_id: str, description: str) -> dict:
    return {
        "KnSubject": {
            "Element": {
                "Fields": {"StId": "2", "Ds": description},
                "Objects": {"KnSubjectLink": {"Element": {"Fields": {"SfTp": "3", "SfId": person_id}}}},
            }
        }
    }


def _subjects(client: AfasClient, description: str) -> pd.DataFrame:
    frame, _ = client.read(
        "ProfitSubjects", order_by=["SubjectId"], filters=Condition("Description", Op.EQ, description)
    )
    return frame


def test_insert_update_delete_round_trip(afas, restore_dataset, contacts_reference):
    person_id = str(contacts_reference["PersonId"].dropna().iloc[0])
    created = afas.insert("KnSubject", _subject_body(person_id, "client round trip"))
    subject_id = int(created["results"]["KnSubject"]["SbId"])
    assert _subjects(afas, "client round trip")["SubjectId"].tolist() == [subject_id]
    assert afas.update("KnSubject", {"KnSubject": {"Element": {"@SbId": str(subject_id), "Fields": {"Ds": "renamed"}}}}) == {}
    assert _subjects(afas, "renamed")["SubjectId"].tolist() == [subject_id]
    afas.delete("KnSubject", f"KnSubject/@SbId/{subject_id}")
    assert _subjects(afas, "renamed").empty


def test_post_is_not_retried_on_500(afas, admin, contacts_reference):
    person_id = str(contacts_reference["PersonId"].dropna().iloc[0])
    faults(admin, error_500_rate=1.0)
    with pytest.raises(AfasServerError) as caught:
        afas.insert("KnSubject", _subject_body(person_id, "never twice"))
    assert caught.value.status_code == 500 and "KnSubject" in str(caught.value)
    assert requests_matching(stats(admin), "POST ") == 1


def test_post_is_not_repeated_after_a_dropped_connection(afas, admin, restore_dataset, contacts_reference):
    person_id = str(contacts_reference["PersonId"].dropna().iloc[0])
    faults(admin, drop_rate=1.0)
    with pytest.raises(AfasOutcomeUnknown, match="not repeated"):
        afas.insert("KnSubject", _subject_body(person_id, "maybe processed"))
    assert requests_matching(stats(admin), "POST ") == 1


def test_post_is_retried_on_503_and_inserts_exactly_once(afas, admin, restore_dataset, contacts_reference):
    person_id = str(contacts_reference["PersonId"].dropna().iloc[0])
    faults(admin, error_503_rate=0.6, retry_after=0, seed=1)  # seed 1: the first draw faults
    afas.insert("KnSubject", _subject_body(person_id, "exactly once"))
    assert stats(admin)["faults"]["503"] > 0
    faults(admin)
    assert len(_subjects(afas, "exactly once")) == 1


def test_put_is_retried_after_dropped_connections(afas, admin, restore_dataset, contacts_reference):
    person_id = str(contacts_reference["PersonId"].dropna().iloc[0])
    created = afas.insert("KnSubject", _subject_body(person_id, "put retry"))
    subject_id = str(created["results"]["KnSubject"]["SbId"])
    faults(admin, drop_rate=0.6, seed=1)  # seed 1: the first draw faults
    afas.update("KnSubject", {"KnSubject": {"Element": {"@SbId": subject_id, "Fields": {"Ds": "put retried"}}}})
    assert stats(admin)["faults"]["drop"] > 0
    faults(admin)
    assert len(_subjects(afas, "put retried")) == 1


# --- secrets and metadata -------------------------------------------------------------------------


def test_token_and_filter_values_stay_out_of_logs_and_stats(sandbox, admin, caplog):
    caplog.set_level(logging.DEBUG)
    faults(admin, error_503_rate=0.5, retry_after=0, seed=1)
    with make_client(sandbox) as client:
        header = client._auth_header().split(" ", 1)[1]
        _, read_stats = client.read(
            "Sync_Contacts", order_by=["ContactId"], filters=Condition("MailWork", Op.CONTAINS, "secret-needle@example")
        )
        text = caplog.text
        assert sandbox.afas_token not in text and header not in text and sandbox.afas_token not in repr(client)
    assert "secret-needle" not in text
    assert read_stats.retries > 0 and "retry" in text
    metadata = ReadStats.as_metadata(read_stats)
    assert all(isinstance(v, (int, float)) and not math.isnan(v) for v in metadata.values())


def test_a_one_page_read_costs_one_request_and_a_paged_read_one_look_ahead(afas, admin):
    afas.metainfo("Sync_Persons")  # cached from here on
    _, one_page = afas.read("Sync_Persons", order_by=["PersonId"], page_size=100_000)
    assert (one_page.pages, one_page.requests) == (1, 1)
    _, paged = afas.read("Sync_Persons", order_by=["PersonId"], page_size=1000)
    assert paged.pages == 3 and paged.requests == 4  # the next page is fetched while one is parsed
    assert paged.rows == one_page.rows


# --- reading by key (afas.lookups) ----------------------------------------------------------------


def test_the_limit_follows_the_pages_of_a_full_read_and_never_falls_below_the_default():
    assert lookup_limit(None, 5000) == LOOKUP_FULL_READ
    assert lookup_limit(1_000_000, 5000) == 200 * LOOKUP_CHUNK  # 200 pages: 10,000 keys in 200 look-ups
    assert lookup_limit(100_000, 5000) == 20 * LOOKUP_CHUNK
    assert lookup_limit(3_000, 5000) == LOOKUP_FULL_READ  # one page: never fewer look-ups than the default


@pytest.mark.parametrize("table_rows", [None, 1_000_000])
def test_past_the_default_a_known_large_connector_is_looked_up_and_an_unknown_one_read_whole(sandbox, admin,
                                                                                             table_rows):
    source = default_sources().persons
    with make_client(sandbox, page_size=500) as afas:
        every_id = sorted({str(r[source.key]) for r in raw_all_rows(afas, source.connector)})
        keys = every_id[: LOOKUP_FULL_READ + 50]
        admin.post("stats/reset").raise_for_status()
        rows, calls = read_by_keys(afas, source, keys, table_rows=table_rows)
        read = requests_matching(stats(admin), f"GET connectors/{source.connector}")

    assert sorted(rows[source.key].astype(str)) == keys  # the same rows either way
    if table_rows is None:  # the pages of one full read (and at most the one page it reads ahead)
        assert calls == math.ceil((len(every_id) + 1) / 500) and read in (calls, calls + 1)
    else:
        assert calls == read == math.ceil(len(keys) / LOOKUP_CHUNK)
