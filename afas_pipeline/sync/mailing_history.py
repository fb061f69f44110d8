"""Mailing history as AFAS dossier items (R17), as pure functions: which sent mails get an item, what the
KnSubject POST that makes it looks like, and how interactions are added to it as dated reactions.

An item is keyed by (mailing id, external id): Spotler's encrypted mailing id and the AFAS contact id.
Its text holds the mailing name, subject, send date, the link to the recipient's personal online version
and a marker line with the mailing id (so an item AFAS made for a POST whose answer was lost can be found
again); reactions are appended to that text, one dated line each. No e-mail address or name of a person
is ever part of an item or of this module's output: the name and subject are the mailing's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import pandas as pd

from afas_pipeline.lib.timewindows import utc_to_afas_wall
from afas_pipeline.mapping.models import MailingHistoryMapping

ITEM_COLUMNS = ["mailing_id", "external_id", "sent_at", "name", "subject", "link", "trend_report_id"]
REACTION_COLUMNS = ["mailing_id", "external_id", "kind", "event_at"]
#: AFAS limits: KnSubject.Ds (Onderwerp) 255 characters, KnSubject.SbTx (Toelichting) 4000.
DESCRIPTION_MAX = 255
TEXT_MAX = 4000
MARKER = "Spotler mailing id: "
REACTIONS_HEADER = "Reactions:"
LABELS = {"opened": "opened", "clicked": "clicked", "bounced:hard": "bounced (hard)", "bounced:soft": "bounced (soft)"}


def _text(value) -> str:
    """A value read from a DataFrame as text, "" when missing: pandas gives None, NaN or pd.NA for a missing
    string depending on its version and the column's dtype, and `bool(pd.NA)` raises."""
    return "" if value is None or pd.isna(value) else str(value)


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


def _wall(at: str | datetime) -> datetime:
    return utc_to_afas_wall(pd.Timestamp(at).tz_convert(timezone.utc).to_pydatetime())


def item_text(item: dict) -> str:
    lines = [f"Mailing: {item['name']}", f"Subject: {item['subject']}",
             f"Sent: {_wall(item['sent_at']):%Y-%m-%d %H:%M} (Amsterdam time)"]
    if _text(item.get("link")):
        lines.append(f"Online version: {item['link']}")
    lines += [f"{MARKER}{item['mailing_id']}", REACTIONS_HEADER]
    return "\n".join(lines)[:TEXT_MAX]


def subject_body(item: dict, contact: dict, subject_type: int) -> dict:
    """The KnSubject POST for one item, linked to the contact person (CdId, with its organisation)."""
    name = item["name"] or item["subject"] or item["mailing_id"]
    link = {"DoCRM": True, "ToBC": True, "CdId": int(contact["ContactId"])}
    organisation = _text(contact.get("OrganisationId"))
    if organisation:
        link["BcId"] = organisation
    return {"KnSubject": {"Element": {
        "Fields": {"StId": int(subject_type), "Ds": f"Mailing: {name}"[:DESCRIPTION_MAX], "SbTx": item_text(item),
                   "Da": f"{_wall(item['sent_at']):%Y-%m-%dT%H:%M:%S}"},
        "Objects": [{"KnSubjectLink": {"Element": {"Fields": link}}}],
    }}}


def find_item(subjects: pd.DataFrame, mailing_id: str, external_id: str, subject_type: int) -> str | None:
    """The SbId of an item AFAS already holds for (mailing, contact), found by its marker line."""
    if subjects.empty:
        return None
    marker = f"{MARKER}{mailing_id}"
    hit = subjects[(subjects["ContactId"].astype(str) == str(external_id))
                   & (subjects["SubjectTypeId"].astype(str) == str(subject_type))
                   & subjects["Text"].fillna("").str.split("\n").map(lambda lines: marker in lines)]
    return None if hit.empty else str(hit["SubjectId"].iloc[0])


def reaction_line(kind: str, event_at: str) -> str:
    return f"- {_wall(event_at):%Y-%m-%d %H:%M:%S} {LABELS.get(kind, kind)}"


def with_reactions(text: str | None, new: list[tuple[str, str]]) -> tuple[str, int, int]:
    """The item's text with reactions (kind, event_at) appended in time order, each line once. Returns the
    text, the lines added and the lines that did not fit in AFAS's 4000 characters (kept in Spotler)."""
    text = _text(text)
    present = set(text.split("\n"))
    added = dropped = 0
    for kind, at in sorted(new, key=lambda r: (r[1], r[0])):
        line = reaction_line(kind, at)
        if line in present:
            continue
        candidate = f"{text}\n{line}" if text else line
        if len(candidate) > TEXT_MAX:
            dropped += 1
            continue
        text, added = candidate, added + 1
        present.add(line)
    return text, added, dropped


def reaction_body(sbid: str, text: str) -> dict:
    """The KnSubject PUT that replaces the item's text (the reactions appended to what AFAS holds)."""
    return {"KnSubject": {"Element": {"@SbId": int(sbid), "Fields": {"SbTx": text}}}}
