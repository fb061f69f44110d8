"""R17 for Mailchimp, over real HTTP against both sandboxes: a campaign sent to the audience becomes one AFAS
dossier item per recipient (found back through the member's AFASID), its opens, clicks and bounces are added
later to the same item, and reading a window again makes no second item."""

from __future__ import annotations

import pandas as pd

from afas_pipeline.afas.dossier import MARKER
from afas_pipeline.mapping.load import default_mapping
from afas_pipeline_tests.mailchimp.conftest import MailchimpWorld

WINDOW = "2026-11-16-10:00"
NEXT = "2026-11-16-10:15"
SUBJECT_TYPE = default_mapping("mailchimp").mailing_history.subject_type
CAMPAIGN_MARKER = "Mailchimp campaign id: "


def _subscribed(world: MailchimpWorld, n: int) -> list[dict]:
    world.sync()
    members = [m for m in world.members().values() if m["status"] == "subscribed"]
    assert len(members) >= n
    return members[:n]


def _send(world: MailchimpWorld, members: list[dict], at: str) -> dict:
    return world.mc("POST", "/campaigns", json={"title": "Nieuwsbrief november", "subject_line": "Het nieuws",
                                                 "recipients": [m["id"] for m in members], "at": at})


def _items(world: MailchimpWorld) -> pd.DataFrame:
    frame, _ = world.resources()["afas"].read("ProfitSubjects", order_by=["SubjectId"])
    return frame


def _posts(world: MailchimpWorld) -> int:
    return sum(n for route, n in world.afas("GET", "/stats")["requests"].items() if route.startswith("POST"))


def test_r17_a_campaign_becomes_one_dossier_item_per_recipient_and_a_rerun_makes_none(mc_world):
    members = _subscribed(mc_world, 3)
    campaign = _send(mc_world, members, "2026-11-16T10:05:00Z")

    result = mc_world.history(WINDOW)

    items = _items(mc_world)
    assert sorted(items["ContactId"].astype(str)) == sorted(m["merge_fields"]["AFASID"] for m in members)
    for item in items.to_dict("records"):
        assert item["SubjectTypeId"] == SUBJECT_TYPE and item["Description"] == "Mailing: Nieuwsbrief november"
        lines = item["Text"].split("\n")
        assert "Subject: Het nieuws" in lines and "Sent: 2026-11-16 11:05 (Amsterdam time)" in lines
        assert f"{CAMPAIGN_MARKER}{campaign['id']}" in lines and not any(line.startswith(MARKER) for line in lines)
        assert f"Online version: {campaign['long_archive_url']}" in lines
    assert mc_world.metadata(result, "mailchimp_mailing_history")["items/created"] == 3

    mc_world.afas("POST", "/stats/reset")
    again = mc_world.history(WINDOW)
    assert len(_items(mc_world)) == 3 and _posts(mc_world) == 0
    assert mc_world.metadata(again, "mailchimp_mailing_history")["posts_sent"] == 0


def test_r17_opens_clicks_and_bounces_are_added_to_the_recipients_item(mc_world):
    first, second = _subscribed(mc_world, 2)
    campaign = _send(mc_world, [first, second], "2026-11-16T10:05:00Z")["id"]
    mc_world.history(WINDOW)
    mc_world.mc("POST", f"/members/{first['id']}/open", json={"campaign": campaign, "at": "2026-11-16T10:20:00Z"})
    mc_world.mc("POST", f"/members/{first['id']}/click", json={"campaign": campaign, "at": "2026-11-16T10:21:30Z"})
    mc_world.mc("POST", f"/members/{second['id']}/bounce",
                json={"type": "soft", "campaign": campaign, "at": "2026-11-16T10:25:00Z"})
    # Stamped in the previous window after its run: the next window's overlap still reads it, once.
    mc_world.mc("POST", f"/members/{second['id']}/open", json={"campaign": campaign, "at": "2026-11-16T10:10:00Z"})

    mc_world.history(NEXT)

    items = _items(mc_world).set_index(_items(mc_world)["ContactId"].astype(str))
    first_lines = items.loc[first["merge_fields"]["AFASID"], "Text"].split("\n")
    second_lines = items.loc[second["merge_fields"]["AFASID"], "Text"].split("\n")
    assert "- 2026-11-16 11:20:00 opened" in first_lines and "- 2026-11-16 11:21:30 clicked" in first_lines
    assert "- 2026-11-16 11:25:00 bounced (soft)" in second_lines
    assert [line for line in second_lines if line.endswith("opened")] == ["- 2026-11-16 11:10:00 opened"]
    assert not any(line.endswith("clicked") for line in second_lines)
    assert len(items) == 2
