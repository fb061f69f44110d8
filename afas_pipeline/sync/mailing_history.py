"""Mailing history (R17), as pure functions: which sent mails get a dossier item (none from before the feature
was switched on; with `mailings: trend_reports`, only trend-report and campaign mails), and which
interactions become its dated reactions. What the item looks like in AFAS (the KnSubject calls) lives on
the AFAS side, `afas_pipeline.afas.dossier`.

An item is keyed by (mailing id, external id): Spotler's encrypted mailing id and the AFAS contact id. No
e-mail address or name of a person is ever part of this module's output: the name and subject are the
mailing's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import pandas as pd

from afas_pipeline.mapping.models import MailingHistoryMapping

ITEM_COLUMNS = ["mailing_id", "external_id", "sent_at", "name", "subject", "link", "trend_report_id"]
REACTION_COLUMNS = ["mailing_id", "external_id", "kind", "event_at"]


def ms_to_utc(ms) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def iso(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat()


def sent_items(sent: Iterable[dict], config: MailingHistoryMapping, campaign_ids: set[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The sent interactions that get a dossier item, one row per (mailing, contact), and counts of those
    left out: sent before `enabled_from` (R17: no invented history) or, with `mailings: trend_reports`,
    not tied to a trend report and not a campaign mail."""
    rows, counts = {}, {"before_enabled_from": 0, "not_a_trend_report": 0}
    for s in sent:
        mailing, external_id = str(s.get("encryptedMailingId") or ""), str(s.get("externalContactId") or "")
        if not mailing or not external_id or s.get("date") is None:
            continue
        sent_at = ms_to_utc(s["date"])
        if sent_at < config.enabled_from:
            counts["before_enabled_from"] += 1
            continue
        trend = s.get("trendReportId")
        if config.mailings == "trend_reports" and trend is None and mailing not in campaign_ids:
            counts["not_a_trend_report"] += 1
            continue
        rows.setdefault((mailing, external_id), {
            "mailing_id": mailing, "external_id": external_id, "sent_at": iso(sent_at),
            "name": str(s.get("name") or ""), "subject": str(s.get("subject") or ""),
            "link": str(s.get("onlineVersionLink") or ""), "trend_report_id": None if trend is None else str(trend),
        })
    return pd.DataFrame(list(rows.values()), columns=ITEM_COLUMNS).astype("string"), counts


def reactions(kind: str, interactions: Iterable[dict]) -> list[tuple[str, str, str, str]]:
    """(mailing_id, external_id, kind, event_at ISO) per interaction; a bounce's kind carries its type."""
    out = []
    for i in interactions:
        mailing, external_id = str(i.get("encryptedMailingId") or ""), str(i.get("externalContactId") or "")
        if not mailing or not external_id or i.get("date") is None:
            continue
        label = kind
        if kind == "bounced":
            label = "bounced:" + ("hard" if str(i.get("bounceType") or "").upper() == "HARD" else "soft")
        out.append((mailing, external_id, label, iso(ms_to_utc(i["date"]))))
    return sorted(set(out))
