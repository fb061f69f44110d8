"""The official ``mailchimp-marketing`` SDK against the sandbox, pointed at it by its host alone, as a user would."""

from __future__ import annotations

import json

import httpx
import mailchimp_marketing
import pytest
from mailchimp_marketing.api_client import ApiClientError

from afas_sandbox.server import Sandbox
from afas_pipeline_tests.sandbox.mailchimp.conftest import subscriber_hash


def sdk(sb: Sandbox, api_key: str | None = None) -> mailchimp_marketing.Client:
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": api_key or sb.mailchimp_api_key})
    client.api_client.host = sb.mailchimp_base_url  # instead of https://<dc>.api.mailchimp.com/3.0
    return client


def test_the_sdk_pings_reads_the_audience_and_upserts_a_member(mailchimp_sandbox_clean: Sandbox):
    sb = mailchimp_sandbox_clean
    client = sdk(sb)
    assert client.ping.get() == {"health_status": "Everything's Chimpy!"}
    audience = client.lists.get_list(sb.mailchimp_list_id)
    assert (audience["id"], audience["stats"]["member_count"]) == (sb.mailchimp_list_id, 0)
    email = "sdk@voorbeeld.example"
    created = client.lists.set_list_member(sb.mailchimp_list_id, subscriber_hash(email), {
        "email_address": email, "status_if_new": "subscribed", "merge_fields": {"FNAME": "Sanne"}})
    assert (created["id"], created["status"]) == (subscriber_hash(email), "subscribed")
    read = client.lists.get_list_member(sb.mailchimp_list_id, subscriber_hash(email))
    assert read["merge_fields"]["FNAME"] == "Sanne"
    page = client.lists.get_list_members_info(sb.mailchimp_list_id, count=1000, status="subscribed",
                                              fields=["members.email_address", "total_items"])
    assert page == {"members": [{"email_address": email}], "total_items": 1}
    batch = client.lists.batch_list_members(sb.mailchimp_list_id, {"members": [
        {"email_address": "tweede@voorbeeld.example", "status": "subscribed"}, {"email_address": "fout"}]})
    assert (batch["total_created"], batch["error_count"]) == (1, 1)


def test_a_refusal_raises_api_client_error_with_mailchimps_status_and_title(mailchimp_sandbox_clean: Sandbox):
    sb = mailchimp_sandbox_clean
    client = sdk(sb)
    email = "weg@voorbeeld.example"
    client.lists.set_list_member(sb.mailchimp_list_id, subscriber_hash(email),
                                 {"email_address": email, "status_if_new": "subscribed"})
    client.lists.update_list_member(sb.mailchimp_list_id, subscriber_hash(email), {"status": "unsubscribed"})
    with pytest.raises(ApiClientError) as refused:
        client.lists.set_list_member(sb.mailchimp_list_id, subscriber_hash(email),
                                     {"email_address": email, "status": "subscribed"})
    assert refused.value.status_code == 400
    assert json.loads(refused.value.text)["title"] == "Member In Compliance State"
    with pytest.raises(ApiClientError) as missing:
        client.lists.get_list_member(sb.mailchimp_list_id, subscriber_hash("niemand@voorbeeld.example"))
    assert missing.value.status_code == 404


def test_a_wrong_key_raises_401_rather_than_passing_silently(mailchimp_sandbox_clean: Sandbox):
    client = sdk(mailchimp_sandbox_clean, api_key="0" * 32 + "-us21")
    with pytest.raises(ApiClientError) as refused:
        client.ping.get()
    assert refused.value.status_code == 401
    assert json.loads(refused.value.text)["title"] == "API Key Invalid"


def test_the_sdk_reads_activity_and_campaign_reports(mailchimp_sandbox_clean: Sandbox):
    sb = mailchimp_sandbox_clean
    client = sdk(sb)
    email = "lezer@voorbeeld.example"
    client.lists.set_list_member(sb.mailchimp_list_id, subscriber_hash(email),
                                 {"email_address": email, "status_if_new": "subscribed"})
    with httpx.Client(base_url=sb.mailchimp_admin_url + "/") as admin:
        cid = admin.post("campaigns", json={"title": "Actie", "recipients": [email]}).json()["id"]
        admin.post(f"members/{email}/open", json={"campaign": cid}).raise_for_status()
    feed = client.lists.get_list_member_activity_feed(sb.mailchimp_list_id, subscriber_hash(email),
                                                      activity_filters=["open", "sent"])
    assert [a["activity_type"] for a in feed["activity"]] == ["open", "sent"]
    report = client.reports.get_email_activity_for_campaign(cid)
    assert [a["action"] for a in report["emails"][0]["activity"]] == ["open"]
    assert client.campaigns.get(cid)["settings"]["title"] == "Actie"
