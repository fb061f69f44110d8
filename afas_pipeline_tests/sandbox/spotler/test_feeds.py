"""Incremental feeds: contact updates, bounces, mailings and mailing interactions, with time windows and paging."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from afas_pipeline_tests.sandbox.spotler.conftest import permissions, upsert

UTC = dt.timezone.utc


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def unsubscribe(admin: httpx.Client, external_id: str, at: str, bit: int = 1) -> dict:
    response = admin.post(f"recipients/{external_id}/unsubscribe", json={"bit": bit, "at": at})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def ten(spotler: httpx.Client) -> httpx.Client:
    upsert(spotler, *({"externalId": f"C{i}", "properties": {"email": f"c{i}@example.nl",
                                                            "permissions": [{"bit": 1, "enabled": True}]}}
                      for i in range(10)))
    return spotler


def test_updates_window_is_half_open_on_last_changed(ten: httpx.Client, spotler_admin: httpx.Client):
    unsubscribe(spotler_admin, "C1", "2026-03-01T10:00:00Z")
    unsubscribe(spotler_admin, "C2", "2026-03-01T10:59:59.999Z")
    unsubscribe(spotler_admin, "C3", "2026-03-01T11:00:00Z")
    rows = ten.get("contact/updates/list", params={"fromDate": "2026-03-01T10:00:00Z",
                                                   "toDate": "2026-03-01T11:00:00Z"}).json()
    assert isinstance(rows, list)
    assert [r["externalId"] for r in rows] == ["C1", "C2"]
    assert permissions(rows[0]) == {1: False, 2: False}  # current state, the recipient's opt-out included


def test_updates_include_api_writes_and_recipient_changes(ten: httpx.Client, spotler_admin: httpx.Client):
    start = ten.get("contact/C0").json()["lastChanged"]
    unsubscribe(spotler_admin, "C5", "2099-01-01T00:00:00Z")
    rows = ten.get("contact/updates/list", params={"fromDate": str(start), "toDate": "2100-01-01T00:00:00Z"}).json()
    assert {r["externalId"] for r in rows} == {f"C{i}" for i in range(10)}
    assert rows[-1]["externalId"] == "C5"  # ordered by lastChanged


def test_dates_with_an_offset_are_honoured_and_naive_ones_are_amsterdam_local(ten: httpx.Client,
                                                                              spotler_admin: httpx.Client):
    unsubscribe(spotler_admin, "C1", "2026-10-25T00:30:00Z")  # 02:30 CEST, the first 02:30 local
    unsubscribe(spotler_admin, "C2", "2026-10-25T01:30:00Z")  # 02:30 CET, the repeated hour
    unsubscribe(spotler_admin, "C3", "2026-07-01T10:00:00Z")  # 12:00 CEST
    def ids(**params):
        return [r["externalId"] for r in ten.get("contact/updates/list", params=params).json()]
    assert ids(fromDate="2026-07-01T12:00:00", toDate="2026-07-01T12:00:01") == ["C3"]
    assert ids(fromDate="2026-07-01T10:00:00Z", toDate="2026-07-01T10:00:01Z") == ["C3"]
    assert ids(fromDate="2026-07-01T12:00:00+02:00", toDate="2026-07-01T12:00:01+02:00") == ["C3"]
    assert ids(fromDate="2026-07-01T10:00:00", toDate="2026-07-01T11:00:00") == []  # naive is not UTC
    # an ambiguous local time is its earlier occurrence (CEST), as Java resolves it
    assert ids(fromDate="2026-10-25T02:30:00", toDate="2026-10-25T02:30:01") == ["C1"]
    assert ids(fromDate="2026-10-25T02:30:00+01:00", toDate="2026-10-25T02:30:01+01:00") == ["C2"]


def test_updates_paging_with_after_and_page_size(ten: httpx.Client):
    params = {"fromDate": "2020-01-01T00:00:00Z"}
    everything = [r["externalId"] for r in ten.get("contact/updates/list", params=params).json()]
    pages = [[r["externalId"] for r in ten.get("contact/updates/list",
                                                params={**params, "after": after, "pageSize": 4}).json()]
             for after in (0, 4, 8, 12)]
    assert [len(p) for p in pages] == [4, 4, 2, 0]
    assert sum(pages, []) == everything and len(set(everything)) == 10


@pytest.mark.parametrize("params", [{}, {"fromDate": "yesterday"}, {"fromDate": "2026-01-01", "pageSize": 10001},
                                    {"fromDate": "2026-01-01", "pageSize": 0}, {"fromDate": "2026-01-01", "after": -1}])
def test_invalid_feed_parameters_are_invalid_params(spotler: httpx.Client, params):
    response = spotler.get("contact/updates/list", params=params)
    assert response.status_code == 400 and response.json()["errorType"] == "INVALID_PARAMS"


def test_bounces_list_filters_on_the_bounce_date(ten: httpx.Client, spotler_admin: httpx.Client):
    for external_id, kind, at in (("C1", "hard", "2026-05-01T08:00:00Z"), ("C2", "soft", "2026-05-01T09:00:00Z"),
                                  ("C3", "hard", "2026-05-02T08:00:00Z")):
        spotler_admin.post(f"recipients/{external_id}/bounce", json={"type": kind, "at": at}).raise_for_status()
    rows = ten.get("contact/bounces/list", params={"fromDate": "2026-05-01T00:00:00Z",
                                                   "toDate": "2026-05-02T00:00:00Z"}).json()
    assert [(r["contact"]["externalId"], r["type"], r["date"]) for r in rows] == [
        ("C1", "HARDBOUNCE", ms("2026-05-01T08:00:00+00:00")), ("C2", "SOFTBOUNCE", ms("2026-05-01T09:00:00+00:00"))]
    assert set(rows[0]) == {"date", "type", "contact", "encryptedActId"} and rows[0]["encryptedActId"]
    assert rows[0]["contact"]["channels"] == [{"name": "EMAIL", "value": False}]
    assert len(ten.get("contact/bounces/list", params={"fromDate": "2026-05-01T00:00:00Z", "pageSize": 1,
                                                       "after": 2}).json()) == 1


def send(admin: httpx.Client, **body) -> dict:
    response = admin.post("mailings", json={"name": "Nieuwsbrief mei", "subject": "Het nieuws", **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_mailing_goes_to_active_contacts_with_the_permission(ten: httpx.Client, spotler_admin: httpx.Client):
    unsubscribe(spotler_admin, "C1", "2026-05-01T00:00:00Z")
    spotler_admin.post("recipients/C2/bounce", json={"type": "hard"}).raise_for_status()
    mailing = send(spotler_admin, recipients=None, bit=1, at="2026-05-10T08:00:00Z", trend_report_id=42)
    assert sorted(s["externalContactId"] for s in mailing["sent"]) == sorted(f"C{i}" for i in (0, 3, 4, 5, 6, 7, 8, 9))
    assert mailing["sentCount"] == 8
    listed = ten.get("mailing", params={"fromDate": "2026-05-10T00:00:00Z", "toDate": "2026-05-11T00:00:00Z"}).json()
    assert listed == [{k: mailing[k] for k in ("encryptedId", "name", "scheduledStartDate", "type", "archiveLink",
                                               "sentCount")}]
    detail = ten.get(f"mailing/{mailing['encryptedId']}").json()
    assert detail["message"]["subject"] == "Het nieuws" and detail["scheduledStartDate"] == ms("2026-05-10T08:00:00+00:00")
    assert ten.get("mailing/nope").json()["errorType"] == "MAILING_NOTFOUND"


def test_interaction_feeds_with_dates_trend_reports_and_paging(ten: httpx.Client, spotler_admin: httpx.Client):
    news = send(spotler_admin, recipients=["C0", "C1", "C2"], at="2026-05-10T08:00:00Z", trend_report_id=42)
    other = send(spotler_admin, name="Actie", recipients=["C0"], at="2026-05-11T08:00:00Z")
    campaign = send(spotler_admin, name="Welkom", recipients=["C3"], campaign=True, at="2026-05-11T09:00:00Z")
    enc = news["encryptedId"]
    spotler_admin.post("recipients/C0/open", json={"mailing": enc, "at": "2026-05-10T09:00:00Z"}).raise_for_status()
    spotler_admin.post("recipients/C0/click", json={"mailing": enc, "at": "2026-05-10T09:01:00Z"}).raise_for_status()
    spotler_admin.post("recipients/C1/bounce", json={"type": "hard", "mailing": enc,
                                                     "at": "2026-05-10T08:05:00Z"}).raise_for_status()

    def feed(kind, **params):
        response = ten.get(f"mailing-interaction/{kind}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    sent = feed("sent", fromDate="2026-05-01T00:00:00Z")
    assert len(sent["interactions"]) == 5 and sent["paging"] == {"next": None, "after": 5}
    item = sent["interactions"][0]
    assert set(item) == {"id", "externalContactId", "encryptedMailingId", "date", "changeDate", "trendReportId",
                         "name", "subject", "onlineVersionLink"}
    assert (item["encryptedMailingId"], item["trendReportId"], item["name"]) == (enc, 42, "Nieuwsbrief mei")
    assert item["date"] == ms("2026-05-10T08:00:00+00:00")
    assert [i["externalContactId"] for i in feed("sent", trendReportIds="42")["interactions"]] == ["C0", "C1", "C2"]
    assert [i["encryptedMailingId"] for i in feed("sent", fromDate="2026-05-11T00:00:00Z")["interactions"]] == [
        other["encryptedId"], campaign["encryptedId"]]
    assert feed("sent", fromChangeDate="2026-05-11T08:30:00Z")["interactions"][0]["externalContactId"] == "C3"
    bounced = feed("bounced")["interactions"]
    assert [(b["externalContactId"], b["bounceType"]) for b in bounced] == [("C1", "HARD")]
    assert [o["externalContactId"] for o in feed("opened")["interactions"]] == ["C0"]
    assert [c["date"] for c in feed("clicked")["interactions"]] == [ms("2026-05-10T09:01:00+00:00")]

    first = feed("sent", pageSize=2)
    assert [i["id"] for i in first["interactions"]] == [i["id"] for i in sent["interactions"][:2]]
    assert first["paging"]["after"] == 2
    following = ten.get(first["paging"]["next"]).json()  # the next link is a signed-again, usable URL
    assert [i["id"] for i in following["interactions"]] == [i["id"] for i in sent["interactions"][2:4]]

    # campaign mailings are not in the mailing list, but readable as campaign-mailing
    listed = [m["encryptedId"] for m in ten.get("mailing", params={"fromDate": "2026-05-01T00:00:00Z"}).json()]
    assert listed == [enc, other["encryptedId"]]
    assert ten.get(f"campaign-mailing/{campaign['encryptedId']}").json()["name"] == "Welkom"


def test_unknown_interaction_kind_is_404(spotler: httpx.Client):
    assert spotler.get("mailing-interaction/forwarded").status_code == 404
