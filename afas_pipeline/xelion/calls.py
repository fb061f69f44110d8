"""Xelion calls as AFAS dossier items (X3, X4): pure functions from a CallLog to the KnSubject POST. No HTTP
and no Dagster here.

An item's subject is the call's subject, or the configured text for an empty subject (AFAS requires one); its
text holds the note, the date, the direction, the duration, the other party's number and a marker line with
Xelion's callId, so an item AFAS made for a POST whose answer was lost is found again instead of made twice.
The recording, when there is one and "sync MP3" is on, goes in the same POST (KnSubjectAttachment), so an
item never exists without the attachment it was meant to have.
"""

from __future__ import annotations

import base64
from datetime import datetime

from afas_pipeline.afas.dossier import DESCRIPTION_MAX, TEXT_MAX

MARKER = "Xelion call id: "
DIRECTIONS = {True: "inkomend", False: "uitgaand"}


def call_time(call: dict) -> datetime | None:
    """The call's start as Xelion writes it (Amsterdam local time without zone), naive: AFAS wants the same
    wall time."""
    text = call.get("date")
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S") if text else None


def other_party(call: dict) -> str | None:
    """The other party's number (E.164 as Xelion keeps it)."""
    return call.get("phone") or None


def has_content(call: dict) -> bool:
    """A note (subject or text) was written for the call."""
    return bool((call.get("subject") or "").strip() or (call.get("contents") or "").strip())


def wanted(call: dict, recording: bytes | None, *, always_sync: bool) -> bool:
    """X3: every call when "always sync" is on; otherwise a call with a note, or with a recording to attach."""
    return always_sync or has_content(call) or recording is not None


def _duration(seconds: int | None) -> str:
    seconds = int(seconds or 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


def report_text(call: dict) -> str:
    when = call_time(call)
    lines = []
    note = (call.get("contents") or "").strip()
    if note:
        lines += [note, ""]
    lines += [f"Datum: {when:%Y-%m-%d %H:%M}" if when else "Datum: onbekend",
              f"Richting: {DIRECTIONS[bool(call.get('incoming'))]}",
              f"Duur: {_duration(call.get('durationSec'))}" + ("" if call.get("status") != "missed" else " (gemist)"),
              f"Nummer: {other_party(call) or 'onbekend'}",
              f"{MARKER}{call['callId']}"]
    text = "\n".join(lines)
    if len(text) > TEXT_MAX:  # the note is cut, never the marker line
        tail = "\n".join(lines[-5:])
        text = note[: TEXT_MAX - len(tail) - 3] + "\n\n" + tail
    return text


def report_body(call: dict, *, subject_type: int, empty_subject: str, afas_id: str,
                recording: bytes | None) -> dict:
    """The KnSubject POST of one call: linked to the organisation or person (`afas_id`, its number in AFAS),
    with the recording attached when given."""
    when = call_time(call)
    subject = (call.get("subject") or "").strip() or empty_subject
    fields = {"StId": int(subject_type), "Ds": subject[:DESCRIPTION_MAX], "SbTx": report_text(call)}
    if when is not None:
        fields["Da"] = f"{when:%Y-%m-%dT%H:%M:%S}"
    objects: list[dict] = [{"KnSubjectLink": {"Element": {"Fields": {"DoCRM": True, "ToBC": True,
                                                                      "BcId": str(afas_id)}}}}]
    if recording is not None:
        stamp = f"{when:%Y%m%d-%H%M%S}" if when else "onbekend"
        objects.append({"KnSubjectAttachment": {"Element": [{"Fields": {
            "FileName": f"gesprek-{stamp}-{call['callId'][:8]}.mp3",
            "FileStream": base64.b64encode(recording).decode("ascii")}}]}})
    return {"KnSubject": {"Element": {"Fields": fields, "Objects": objects}}}
