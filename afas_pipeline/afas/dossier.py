"""AFAS dossier items (KnSubject), the AFAS side of the mailing history (R17) and, later, of call reports.

An item's text holds the mailing name, subject, send date, the link to the recipient's personal online
version and a marker line with the mailing id, so an item AFAS made for a POST whose answer was lost can be
found again (`find_item`); reactions are appended to that text, one dated line each, never twice and never
past AFAS's 4000 characters. Dates are written as AFAS's Amsterdam wall times.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from afas_pipeline.lib.timewindows import utc_to_afas_wall

#: AFAS limits: KnSubject.Ds (Onderwerp) 255 characters, KnSubject.SbTx (Toelichting) 4000.
DESCRIPTION_MAX = 255
TEXT_MAX = 4000
#: The marker line of an item made for Spotler's mailings; each destination names its own (`dossier_marker`).
MARKER = "Spotler mailing id: "
REACTIONS_HEADER = "Reactions:"
LABELS = {"opened": "opened", "clicked": "clicked", "bounced:hard": "bounced (hard)", "bounced:soft": "bounced (soft)"}


def _text(value) -> str:
    """A value read from a DataFrame as text, "" when missing (None, NaN or pd.NA, whatever pandas made it)."""
    return "" if value is None or pd.isna(value) else str(value)


def _wall(at: str | datetime) -> datetime:
    return utc_to_afas_wall(pd.Timestamp(at).tz_convert(timezone.utc).to_pydatetime())


def item_text(item: dict, marker: str = MARKER) -> str:
    lines = [f"Mailing: {item['name']}", f"Subject: {item['subject']}",
             f"Sent: {_wall(item['sent_at']):%Y-%m-%d %H:%M} (Amsterdam time)"]
    if _text(item.get("link")):
        lines.append(f"Online version: {item['link']}")
    lines += [f"{marker}{item['mailing_id']}", REACTIONS_HEADER]
    return "\n".join(lines)[:TEXT_MAX]


def subject_body(item: dict, contact: dict, subject_type: int, marker: str = MARKER) -> dict:
    """The KnSubject POST for one item, linked to the contact person (CdId, with its organisation)."""
    name = item["name"] or item["subject"] or item["mailing_id"]
    link = {"DoCRM": True, "ToBC": True, "CdId": int(contact["ContactId"])}
    organisation = _text(contact.get("OrganisationId"))
    if organisation:
        link["BcId"] = organisation
    return {"KnSubject": {"Element": {
        "Fields": {"StId": int(subject_type), "Ds": f"Mailing: {name}"[:DESCRIPTION_MAX], "SbTx": item_text(item, marker),
                   "Da": f"{_wall(item['sent_at']):%Y-%m-%dT%H:%M:%S}"},
        "Objects": [{"KnSubjectLink": {"Element": {"Fields": link}}}],
    }}}


def find_item(subjects: pd.DataFrame, mailing_id: str, external_id: str, subject_type: int,
              marker: str = MARKER) -> str | None:
    """The SbId of an item AFAS already holds for (mailing, contact), found by its marker line."""
    if subjects.empty:
        return None
    marker = f"{marker}{mailing_id}"
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
