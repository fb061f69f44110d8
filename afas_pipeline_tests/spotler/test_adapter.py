"""The Spotler adapter: Spotler's JSON in, the typed values of the core out (no HTTP)."""

from datetime import datetime, timezone

from afas_pipeline.lib.privacy import hash_key
from afas_pipeline.spotler.adapter import bounces, contact_changes, spotler_time


def test_a_contact_of_the_updates_feed_becomes_a_change_with_permissions_by_bit_and_its_mailable_state():
    (change,) = contact_changes([{
        "externalId": 10001, "lastChanged": 1763287500123,
        "properties": {"email": "a@b.example", "function": "Inkoper",
                       "permissions": [{"bit": 1, "enabled": False}, {"bit": 2, "enabled": True}]},
        "channels": [{"name": "EMAIL", "value": False}],
    }])
    assert change.external_id == "10001"
    assert change.changed_at == datetime(2025, 11, 16, 10, 5, 0, 123000, tzinfo=timezone.utc)
    assert change.permissions == {"1": False, "2": True}
    assert change.fields == {"email": "a@b.example", "function": "Inkoper"}  # no permissions among the fields
    assert change.mailable is False  # EMAIL off: inactive after a hard bounce (R11)


def test_a_bounce_carries_the_hash_of_the_address_never_the_address():
    (hard, soft) = bounces([
        {"date": "2026-11-16T11:05:00", "type": "HARDBOUNCE", "contact": {"externalId": "7", "properties": {"email": " X@Y.example "}}},
        {"date": 1763287500000, "type": "SOFTBOUNCE", "contact": {"externalId": "8", "properties": {}}},
        {"date": 1763287500000, "type": "SOFTBOUNCE", "contact": {}},  # no contact: nothing to write back
    ])
    assert (hard.external_id, hard.hard, hard.email_hash) == ("7", True, hash_key("x@y.example"))
    assert hard.at == datetime(2026, 11, 16, 10, 5, tzinfo=timezone.utc)  # naive means Amsterdam local
    assert (soft.external_id, soft.hard, soft.email_hash) == ("8", False, None)


def test_spotler_times_in_both_forms_are_utc():
    assert spotler_time("1763287500000") == spotler_time(1763287500000) == datetime(2025, 11, 16, 10, 5, tzinfo=timezone.utc)
    assert spotler_time("2026-07-01T12:00:00").utcoffset().total_seconds() == 0


def test_mailing_interactions_become_mails_sent_and_reactions_and_rows_without_ids_are_left_out():
    from afas_pipeline.spotler.adapter import interactions, mails_sent

    (mail,) = mails_sent([
        {"encryptedMailingId": "M1", "externalContactId": 10001, "date": 1763287500000, "name": "Nieuwsbrief",
         "subject": "Nieuws", "onlineVersionLink": "https://x.example/v/1", "trendReportId": 7},
        {"encryptedMailingId": "M1", "externalContactId": None, "date": 1763287500000},
    ])
    assert (mail.mailing_id, mail.external_id, mail.trend_report_id, mail.link) == ("M1", "10001", "7", "https://x.example/v/1")
    assert mail.at == datetime(2025, 11, 16, 10, 5, tzinfo=timezone.utc)
    bounced = interactions("bounced", [
        {"encryptedMailingId": "M1", "externalContactId": "10001", "date": 1763287600000, "bounceType": "HARD"},
        {"encryptedMailingId": "M1", "externalContactId": "10002", "date": 1763287600000, "bounceType": "SOFT"},
    ])
    assert [(i.external_id, i.kind) for i in bounced] == [("10001", "bounced:hard"), ("10002", "bounced:soft")]
