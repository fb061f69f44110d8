"""The Mailchimp admin API (members acting, campaigns with opens, clicks and bounces, dataset, reset, clock),
fault injection with Mailchimp's answers, and the limit of 10 simultaneous connections."""

from __future__ import annotations

import datetime as dt
import threading

import httpx
import pytest

from afas_sandbox.server import Sandbox
from afas_pipeline_tests.sandbox.mailchimp.conftest import mailchimp_client, problem, put_member, subscriber_hash
from afas_pipeline_tests.waiting import wait_until
from afas_pipeline_tests.sandbox.conftest import set_faults


def test_faults_default_off_with_mailchimps_10_connections(mailchimp_admin: httpx.Client):
    assert mailchimp_admin.get("faults").json() == {
        "latency_ms": 0, "jitter_ms": 0, "error_503_rate": 0.0, "retry_after": 1, "error_500_rate": 0.0,
        "drop_rate": 0.0, "slow_page_ms": 0, "max_concurrency": 10, "methods": [], "seed": 0,
        "error_429_rate": 0.0, "bare_403_rate": 0.0}
    assert mailchimp_admin.put("faults", json={"bare_403_rate": 2}).status_code == 400


@pytest.mark.parametrize("fault, status, title", [("error_503_rate", 503, "Service Unavailable"),
                                                  ("error_429_rate", 429, "Too Many Requests"),
                                                  ("error_500_rate", 500, "Internal Server Error")])
def test_injected_faults_answer_like_mailchimp(mailchimp: httpx.Client, mailchimp_admin: httpx.Client, fault,
                                               status, title):
    set_faults(mailchimp_admin, **{fault: 1.0})
    response = mailchimp.get("ping")
    problem(response, status, title)
    assert "Retry-After" not in response.headers, "Mailchimp sends no rate-limit headers"
    assert mailchimp_admin.get("state").status_code == 200, "the admin API is never faulted"
    assert mailchimp_admin.get("stats").json()["faults"][str(status)] == 1


def test_a_dropped_write_breaks_the_connection_after_it_was_applied(mailchimp: httpx.Client,
                                                                    mailchimp_admin: httpx.Client, members: str):
    set_faults(mailchimp_admin, drop_rate=1.0, methods=["PUT"])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        mailchimp.put(f"{members}/{subscriber_hash('drop@voorbeeld.example')}",
                      json={"email_address": "drop@voorbeeld.example", "status_if_new": "subscribed"})
    assert mailchimp.get(f"{members}/drop@voorbeeld.example").json()["status"] == "subscribed"


def _hold(sb: Sandbox, n: int) -> tuple[list[threading.Thread], list[httpx.Response]]:
    """`n` pings held in flight by the injected latency, each on a connection of its own."""
    answers: list[httpx.Response] = []

    def call() -> None:
        with mailchimp_client(sb) as client:
            answers.append(client.get("ping"))

    threads = [threading.Thread(target=call) for _ in range(n)]
    for thread in threads:
        thread.start()
    wait_until(lambda: sb.mailchimp.faults.in_flight >= n, what=f"{n} requests in flight")
    return threads, answers


def test_the_eleventh_simultaneous_request_gets_429(mailchimp_sandbox_clean: Sandbox, mailchimp_admin: httpx.Client):
    sb = mailchimp_sandbox_clean
    set_faults(mailchimp_admin, latency_ms=3000)
    threads, answers = _hold(sb, 10)
    with mailchimp_client(sb) as client:
        refused = client.get("ping")
    for thread in threads:
        thread.join()
    body = problem(refused, 429, "Too Many Requests")
    assert "10 simultaneous connections" in body["detail"]
    assert [a.status_code for a in answers] == [200] * 10
    stats = mailchimp_admin.get("stats").json()
    assert (stats["peak_concurrency"], stats["rejected_concurrency"]) == (10, 1)


def test_over_the_limit_can_be_a_bare_403_without_body(mailchimp_sandbox_clean: Sandbox,
                                                       mailchimp_admin: httpx.Client):
    sb = mailchimp_sandbox_clean
    set_faults(mailchimp_admin, latency_ms=3000, max_concurrency=1, bare_403_rate=1.0)
    threads, answers = _hold(sb, 1)
    with mailchimp_client(sb) as client:
        refused = client.get("ping")
    threads[0].join()
    assert refused.status_code == 403 and refused.content == b""
    assert "content-type" not in refused.headers
    assert answers[0].status_code == 200


def test_stats_count_requests_per_route(mailchimp: httpx.Client, mailchimp_admin: httpx.Client, members: str):
    put_member(mailchimp, members, "a@voorbeeld.example")
    mailchimp.get(f"{members}/a@voorbeeld.example")
    mailchimp.get(f"{members}/b@voorbeeld.example")
    mailchimp.get(members)
    mailchimp.post(members.rsplit("/", 1)[0], json={"members": []})
    stats = mailchimp_admin.get("stats").json()
    assert stats["requests"] == {"PUT lists/{list_id}/members/{subscriber_hash}": 1,
                                 "GET lists/{list_id}/members/{subscriber_hash}": 2,
                                 "GET lists/{list_id}/members": 1, "POST lists/{list_id}": 1}
    assert mailchimp_admin.post("stats/reset").json()["total"] == 0


def test_member_actions_show_in_the_api_with_last_changed(mailchimp: httpx.Client, mailchimp_admin: httpx.Client,
                                                         members: str):
    for name in ("uit", "bounce", "profiel", "verhuisd", "wacht"):
        put_member(mailchimp, members, f"{name}@voorbeeld.example", status_if_new="pending" if name == "wacht"
                   else "subscribed", merge_fields={"FNAME": name})
    mailchimp_admin.put("clock", json={"offset_s": 3600}).raise_for_status()
    unsub = mailchimp_admin.post("members/uit@voorbeeld.example/unsubscribe", json={"reason": "Te veel mail"})
    assert (unsub.json()["status"], unsub.json()["unsubscribe_reason"]) == ("unsubscribed", "Te veel mail")
    cleaned = mailchimp_admin.post("members/bounce@voorbeeld.example/clean", json={}).json()
    edited = mailchimp_admin.post("members/profiel@voorbeeld.example/profile",
                                  json={"merge_fields": {"FNAME": "Petra", "COMPANY": "Eigen Zaak"}}).json()
    moved = mailchimp_admin.post("members/verhuisd@voorbeeld.example/upemail",
                                 json={"new_email": "nieuw-adres@voorbeeld.example"}).json()
    confirmed = mailchimp_admin.post("members/wacht@voorbeeld.example/confirm", json={}).json()
    assert cleaned["status"] == "cleaned" and confirmed["status"] == "subscribed"
    assert (edited["merge_fields"]["FNAME"], edited["merge_fields"]["COMPANY"]) == ("Petra", "Eigen Zaak")
    assert moved["id"] == subscriber_hash("nieuw-adres@voorbeeld.example")
    problem(mailchimp.get(f"{members}/verhuisd@voorbeeld.example"), 404, "Resource Not Found")
    now = dt.datetime.fromisoformat(mailchimp_admin.get("clock").json()["now"])
    since = (now - dt.timedelta(minutes=30)).isoformat()  # after the creations, made an hour of clock earlier
    changed = mailchimp.get(members, params={"since_last_changed": since}).json()
    assert changed["total_items"] == 5
    changes = mailchimp_admin.get("changes").json()[5:]
    assert [(c["change"], c["source"]) for c in changes] == [
        ("unsubscribed", "member"), ("cleaned", "admin"), ("updated", "member"), ("updated", "member"),
        ("updated", "member")]
    feed = mailchimp.get(f"{members}/uit@voorbeeld.example/activity-feed").json()["activity"]
    assert feed[0]["activity_type"] == "unsub" and feed[0]["is_admin_unsubscribed"] is False


def test_a_campaign_with_opens_clicks_and_bounces_shows_in_activity_feed_and_email_activity(
        mailchimp: httpx.Client, mailchimp_admin: httpx.Client, members: str):
    for name in ("lezer", "klikker", "stuiter", "zacht", "afgemeld"):
        put_member(mailchimp, members, f"{name}@voorbeeld.example")
    mailchimp_admin.post("members/afgemeld@voorbeeld.example/unsubscribe", json={}).raise_for_status()
    sent = mailchimp_admin.post("campaigns", json={"title": "Nieuwsbrief december", "subject_line": "Nieuws",
                                                   "recipients": None, "at": "2026-12-01T09:00:00Z"})
    assert sent.status_code == 200, sent.text
    campaign = sent.json()
    cid = campaign["id"]
    assert campaign["emails_sent"] == 4 and subscriber_hash("afgemeld@voorbeeld.example") not in campaign["sent"]
    for action, name, extra in [("open", "lezer", {}), ("open", "klikker", {}),
                                ("click", "klikker", {"url": "https://www.voorbeeld.example/actie"}),
                                ("bounce", "stuiter", {"type": "hard"}), ("bounce", "zacht", {"type": "soft"})]:
        response = mailchimp_admin.post(f"members/{name}@voorbeeld.example/{action}",
                                        json={"campaign": cid, "at": "2026-12-01T10:00:00Z", **extra})
        assert response.status_code == 200, response.text
    assert mailchimp.get(f"{members}/stuiter@voorbeeld.example").json()["status"] == "cleaned"
    assert mailchimp.get(f"{members}/zacht@voorbeeld.example").json()["status"] == "subscribed"

    feed = mailchimp.get(f"{members}/klikker@voorbeeld.example/activity-feed",
                         params={"activity_filters": "open,click"}).json()
    assert [(a["activity_type"], a["campaign_id"], a["campaign_title"]) for a in feed["activity"]] == [
        ("click", cid, "Nieuwsbrief december"), ("open", cid, "Nieuwsbrief december")]
    assert feed["activity"][0]["link_clicked"] == "https://www.voorbeeld.example/actie"
    bounce = mailchimp.get(f"{members}/stuiter@voorbeeld.example/activity-feed").json()["activity"][0]
    assert (bounce["activity_type"], bounce["bounce_type"]) == ("bounce", "hard")
    legacy = mailchimp.get(f"{members}/klikker@voorbeeld.example/activity").json()["activity"]
    assert [a["action"] for a in legacy] == ["click", "open", "sent"]

    report = mailchimp.get(f"reports/{cid}/email-activity").json()
    actions = {e["email_address"].split("@")[0]: [(a["action"], a.get("type")) for a in e["activity"]]
               for e in report["emails"]}
    assert actions == {"lezer": [("open", None)], "klikker": [("open", None), ("click", None)],
                       "stuiter": [("bounce", "hard")], "zacht": [("bounce", "soft")]}
    one = mailchimp.get(f"reports/{cid}/email-activity/{subscriber_hash('klikker@voorbeeld.example')}").json()
    assert one["activity"][1]["url"] == "https://www.voorbeeld.example/actie"
    sent_to = {r["email_address"].split("@")[0]: r["status"] for r in
               mailchimp.get(f"reports/{cid}/sent-to").json()["sent_to"]}
    assert sent_to == {"lezer": "sent", "klikker": "sent", "stuiter": "hard", "zacht": "soft"}
    listed = mailchimp.get("campaigns", params={"since_send_time": "2026-12-01T00:00:00+00:00"}).json()
    assert [c["settings"]["title"] for c in listed["campaigns"]] == ["Nieuwsbrief december"]
    assert mailchimp.get(f"campaigns/{cid}").json()["report_summary"]["unique_opens"] == 2
    problem(mailchimp.get("reports/0000000000/email-activity"), 404, "Resource Not Found")


def test_dataset_round_trip_and_reset(mailchimp: httpx.Client, mailchimp_admin: httpx.Client, members: str):
    for name in ("x", "y", "z"):
        put_member(mailchimp, members, f"{name}@voorbeeld.example", merge_fields={"FNAME": name.upper()})
    mailchimp.post(f"{members}/z@voorbeeld.example/actions/delete-permanent").raise_for_status()
    mailchimp_admin.post("campaigns", json={"title": "T", "recipients": ["x@voorbeeld.example"]}).raise_for_status()
    before = mailchimp_admin.get("members").json()
    dataset = mailchimp_admin.get("dataset").json()

    counts = mailchimp_admin.post("reset").json()
    assert (counts["members"], counts["campaigns"], counts["forgotten"]) == (0, 0, 0)
    problem(mailchimp.get(f"{members}/x@voorbeeld.example"), 404, "Resource Not Found")

    assert mailchimp_admin.post("dataset", json=dataset).json()["members"] == 2
    assert mailchimp_admin.get("dataset").json() == dataset
    assert mailchimp_admin.get("members").json() == before
    problem(mailchimp.put(f"{members}/{subscriber_hash('z@voorbeeld.example')}",
                          json={"email_address": "z@voorbeeld.example", "status_if_new": "pending"}), 400,
            "Forgotten Email Not Subscribed")
    assert put_member(mailchimp, members, "new@voorbeeld.example")["contact_id"] not in {m["contact_id"]
                                                                                         for m in before}


def test_reset_turns_faults_off_and_other_resets_leave_mailchimp_alone(mailchimp_sandbox_clean: Sandbox,
                                                                       mailchimp: httpx.Client,
                                                                       mailchimp_admin: httpx.Client, members: str):
    put_member(mailchimp, members, "blijft@voorbeeld.example")
    httpx.post(mailchimp_sandbox_clean.spotler_admin_url + "/reset", timeout=60).raise_for_status()
    assert mailchimp.get(f"{members}/blijft@voorbeeld.example").status_code == 200
    set_faults(mailchimp_admin, error_503_rate=1.0)
    mailchimp_admin.put("clock", json={"offset_s": -900}).raise_for_status()
    mailchimp_admin.post("reset").raise_for_status()
    assert mailchimp_admin.get("faults").json()["error_503_rate"] == 0.0
    assert mailchimp_admin.get("clock").json()["offset_s"] == 0
    assert mailchimp.get("ping").status_code == 200


@pytest.mark.parametrize("path, body, status", [
    ("members/nobody@voorbeeld.example/unsubscribe", {}, 404),
    ("members/a@voorbeeld.example/bounce", {"type": "medium", "campaign": "x"}, 400),
    ("members/a@voorbeeld.example/open", {}, 400),
    ("members/a@voorbeeld.example/open", {"campaign": "nope"}, 404),
    ("members/a@voorbeeld.example/wave", {}, 404),
    ("members/a@voorbeeld.example/confirm", {}, 409),
    ("members/a@voorbeeld.example/profile", {"merge_fields": {"ADDRESS": {"addr1": "Straat 1"}}}, 400),
    ("members/a@voorbeeld.example/upemail", {"new_email": "geen adres"}, 400),
    ("members/a@voorbeeld.example/unsubscribe", {"at": "tomorrow"}, 400),
    ("members/a@voorbeeld.example/unsubscribe", {"list_id": "0000000000"}, 404),
    ("campaigns", {"subject_line": "S"}, 400),
    ("campaigns", {"title": "T", "recipients": ["nobody@voorbeeld.example"]}, 404),
    ("dataset", {"nothing": []}, 400),
])
def test_invalid_admin_requests_say_what_is_wrong(mailchimp: httpx.Client, mailchimp_admin: httpx.Client,
                                                  members: str, path, body, status):
    put_member(mailchimp, members, "a@voorbeeld.example")
    response = mailchimp_admin.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]
