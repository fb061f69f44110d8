"""Mailing history (R17), as pure functions: which sent mails get a dossier item (none from before the feature
was switched on; with `mailings: trend_reports`, only trend-report and campaign mails), and which
interactions become its dated reactions. What the item looks like in AFAS (the KnSubject calls) lives on
the AFAS side, `afas_pipeline.afas.dossier`.

An item is keyed by (mailing id, external id): the destination's mailing id and the AFAS contact id. The
destination's feeds arrive as typed values (`afas_pipeline.sync.events`), read by its adapter. No e-mail
address or name of a person is ever part of this module's output: the name and subject are the mailing's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import pandas as pd

from afas_pipeline.mapping.models import MailingHistoryMapping
from afas_pipeline.sync.events import Interaction, MailingSent

ITEM_COLUMNS = ["mailing_id", "external_id", "sent_at", "name", "subject", "link", "trend_report_id"]
REACTION_COLUMNS = ["mailing_id", "external_id", "kind", "event_at"]


def iso(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat()


def sent_items(sent: Iterable[MailingSent], config: MailingHistoryMapping,
               campaign_ids: set[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The mails that get a dossier item, one row per (mailing, contact), and counts of those left out: sent
    before `enabled_from` (R17: no invented history) or, with `mailings: trend_reports`, not tied to a
    trend report and not a campaign mail."""
    rows, counts = {}, {"before_enabled_from": 0, "not_a_trend_report": 0}
    for mail in sent:
        if mail.at < config.enabled_from:
            counts["before_enabled_from"] += 1
            continue
        if config.mailings == "trend_reports" and mail.trend_report_id is None and mail.mailing_id not in campaign_ids:
            counts["not_a_trend_report"] += 1
            continue
        rows.setdefault((mail.mailing_id, mail.external_id), {
            "mailing_id": mail.mailing_id, "external_id": mail.external_id, "sent_at": iso(mail.at),
            "name": mail.name, "subject": mail.subject, "link": mail.link, "trend_report_id": mail.trend_report_id,
        })
    return pd.DataFrame(list(rows.values()), columns=ITEM_COLUMNS).astype("string"), counts


def reactions(interactions: Iterable[Interaction]) -> list[tuple[str, str, str, str]]:
    """(mailing_id, external_id, kind, event_at ISO) per interaction, each once."""
    return sorted({(i.mailing_id, i.external_id, i.kind, iso(i.at)) for i in interactions})
