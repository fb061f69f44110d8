"""The feedback loop destination -> AFAS as pure functions: which events a window holds, what AFAS should
hold because of them (R12-R16, C1).

An event is `external_id`, `kind` (`optout:<key>`, `optin:<key>`, `bounce:hard`, `bounce:soft`,
`field:<property>` for a two-way field changed in the destination, `reactivated` when the sync made a
hard-bounced contact mailable again after AFAS gave it a new address, R11), `event_at` (UTC ISO text),
for a bounce `email_hash` (the hash of the address the destination had, for R11) and, for a field,
`value` (the destination's value, in the form `field_value` gives). The ledger of the sync state keeps
only the first three. No e-mail address or name ever enters this module's output.

- `destination_events` tells a recipient's opt-out/opt-in, or an edit of a two-way field, from an echo
  of our own write: a permission differs from the value last sent, a field's hash from the hash last
  agreed (the sync state), only when someone changed it in the destination.
- `bounce_events` turns the destination's bounces into events.
The destination's feeds arrive as typed values (`afas_pipeline.sync.events`), read by its adapter.
- `desired_values` resolves a contact's events into AFAS field values: per permission the latest event
  wins and an opt-out wins a tie (C1); a switch-on is only written when no opt-out was seen after it;
  per field the latest edit wins; a reactivation clears the bounce detail (R11).
What AFAS should hold then becomes UpdateConnector calls on the AFAS side (`afas_pipeline.afas.updates`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from afas_pipeline.mapping.models import DestinationMapping
from afas_pipeline.sync.audience import field_hash, field_value
from afas_pipeline.sync.events import Bounce, ContactChange

EVENT_COLUMNS = ["external_id", "kind", "event_at", "email_hash", "value"]
#: The kind of event the sync records when it reactivates a hard-bounced contact (R11).
REACTIVATED = "reactivated"


def iso(value: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(value).tz_convert(timezone.utc).isoformat()


def empty_events() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in EVENT_COLUMNS})


def sent_value(entry) -> bool | None:
    """The value last sent for one permission of a state record (`{"sent": ...}`, or a bare bool)."""
    if isinstance(entry, dict):
        entry = entry.get("sent")
    return None if entry is None else bool(entry)


def value_text(value: str | bool | None) -> str | None:
    """A `field_value` as the text an event carries."""
    return None if value is None else ("yes" if value else "no") if isinstance(value, bool) else value


def destination_events(changes: Iterable[ContactChange], records: dict[str, dict], keys: Iterable,
                       two_way: Iterable[tuple[str, str]] = ()) -> tuple[pd.DataFrame, dict]:
    """Opt-outs, opt-ins and two-way field edits among the contacts of the destination's change feed.
    `records` holds per external id the state's `permissions` and `fields`. A permission equal to what we
    last sent, a field whose hash is the one last agreed, is an echo of our own write (or known already): no
    event. A contact we never sent is not ours to judge: counted, no event."""
    keys = [str(k) for k in keys]
    two_way = list(two_way)
    rows, counts = [], {"contacts": 0, "echoes": 0, "unknown": 0}
    for change in changes:
        counts["contacts"] += 1
        record = records.get(change.external_id)
        if record is None:
            counts["unknown"] += 1
            continue
        sent, agreed = record.get("permissions") or {}, record.get("fields") or {}
        when = iso(change.changed_at)
        changed = False
        for key, enabled in change.permissions.items():
            last = sent_value(sent.get(key))
            if key not in keys or last is None:
                continue
            if enabled != last:
                rows.append((change.external_id, f"{'optin' if enabled else 'optout'}:{key}", when, None, None))
                changed = True
        for name, kind in two_way:
            last_hash = agreed.get(name)
            if last_hash is None:
                continue  # never agreed on a value: not ours to judge
            value = change.fields.get(name)
            if field_hash(value, kind) != last_hash:
                rows.append((change.external_id, f"field:{name}", when, None, value_text(field_value(value, kind))))
                changed = True
        if not changed:
            counts["echoes"] += 1
    return _frame(rows), counts


def bounce_events(bounces: Iterable[Bounce]) -> pd.DataFrame:
    return _frame([(b.external_id, "bounce:hard" if b.hard else "bounce:soft", iso(b.at), b.email_hash, None)
                   for b in bounces])


def _frame(rows: list[tuple]) -> pd.DataFrame:
    if not rows:
        return empty_events()
    return pd.DataFrame(rows, columns=EVENT_COLUMNS).astype("string").drop_duplicates(
        ["external_id", "kind", "event_at"], keep="last").reset_index(drop=True)


def not_delivered(events: pd.DataFrame, ledger: pd.DataFrame) -> pd.DataFrame:
    """The events the ledger does not hold as delivered (or skipped)."""
    done = ledger[ledger["status"].isin(["delivered", "skipped"])]
    seen = set(zip(done["external_id"], done["kind"], done["event_at"]))
    keep = [(i, k, t) not in seen for i, k, t in zip(events["external_id"], events["kind"], events["event_at"])]
    return events[pd.Series(keep, index=events.index, dtype=bool)].reset_index(drop=True)


@dataclass
class Desired:
    """What AFAS should hold for one contact because of its events: AFAS column -> value."""

    values: dict[str, object] = field(default_factory=dict)
    permissions: dict[str, bool] = field(default_factory=dict)  # permission key -> value, for the sync state
    switched_at: dict[str, str] = field(default_factory=dict)  # permission key -> when (UTC ISO), for the sync state
    fields: dict[str, str] = field(default_factory=dict)  # two-way property -> hash of the value, for the sync state
    bounced_email_hash: str | None = None
    held: int = 0  # switch-ons not written because an opt-out came later (C1)


def desired_values(events: pd.DataFrame, mapping: DestinationMapping,
                   optouts: dict[tuple[str, str], pd.Timestamp],
                   afas_on_since: dict[tuple[str, str], pd.Timestamp] | None = None) -> dict[str, Desired]:
    """Per contact, the AFAS values its events call for. Per permission the latest event wins, an opt-out
    wins a tie, and a switch-on older than the latest opt-out seen is stale (C1). An opt-out older than
    AFAS's own switch-on (`afas_on_since`: since when the syncs have seen AFAS's field on) is stale too: the
    AFAS user gave consent again after it, and the sync sends that consent on (C1), so it is not undone here. The latest bounce sets
    date and type; a hard bounce also sets the hard-bounce flag (a later soft bounce never clears it); a
    later reactivation (R11) clears all three. Per two-way field the latest edit wins."""
    targets = {t.origin + ":" + str(t.source): t for t in mapping.write_backs()}
    out: dict[str, Desired] = {}
    ordered = events.assign(at_=pd.to_datetime(events["event_at"], utc=True, format="ISO8601"),
                            off_=events["kind"].str.startswith("optout")).sort_values(["at_", "off_"])
    for row in ordered.itertuples(index=False):
        d = out.setdefault(str(row.external_id), Desired())
        kind, _, detail = str(row.kind).partition(":")
        if kind in ("optout", "optin"):
            target = targets.get(f"permission:{detail}")
            if target is None:
                continue
            on = kind == "optin"
            later_optout = optouts.get((str(row.external_id), detail))
            if on and later_optout is not None and later_optout > row.at_:
                d.held += 1
                continue
            afas_on = (afas_on_since or {}).get((str(row.external_id), detail))
            if not on and afas_on is not None and afas_on > row.at_:
                d.held += 1
                continue
            d.values[target.column] = on
            d.permissions[detail] = on
            d.switched_at[detail] = iso(row.at_)
        elif kind == "field":
            target = targets.get(f"field:{detail}")
            if target is None:
                continue
            value = field_value(None if pd.isna(row.value) else row.value, target.type)
            if value is None and target.type == "yes_no":
                value = False  # an AFAS yes/no field is never empty
            d.values[target.column] = value
            d.fields[detail] = field_hash(value, target.type)
        elif kind == REACTIVATED:
            for part, cleared in (("date", None), ("type", None), ("hard", False)):
                target = targets.get(f"bounce:{part}")
                if target is not None:
                    d.values[target.column] = cleared
        elif kind == "bounce":
            for part, value in (("date", row.at_.tz_convert("Europe/Amsterdam").date().isoformat()), ("type", detail),
                                ("hard", True if detail == "hard" else None)):
                target = targets.get(f"bounce:{part}")
                if target is not None and value is not None:
                    d.values[target.column] = value
            if detail == "hard" and isinstance(row.email_hash, str):
                d.bounced_email_hash = row.email_hash
    return out


def feedback_lag_minutes(events: pd.DataFrame, delivered: set[str], written_at: datetime) -> pd.Series:
    """Per event of a contact whose write reached AFAS (`delivered`), the minutes from the event in the
    destination to `written_at`: how long an unsubscribe, bounce or edit took to arrive in AFAS. Reactivations
    are the sync's own, not the destination's, so they do not count. A destination clock ahead of ours counts
    as no lag rather than a negative one."""
    mine = events[events["external_id"].isin(delivered) & (events["kind"] != REACTIVATED)]
    at = pd.to_datetime(mine["event_at"], utc=True, format="ISO8601")
    return ((pd.Timestamp(written_at) - at).dt.total_seconds() / 60).clip(lower=0).reset_index(drop=True)
