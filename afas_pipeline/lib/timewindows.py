"""AFAS time handling: Amsterdam wall times with a fake `Z`, and UTC windows over them.

AFAS writes date-times as Europe/Amsterdam wall time followed by a `Z` that means nothing, and it
expects filter values as wall time without the `Z`. Two DST facts make this delicate:

- In the autumn the hour 02:00-03:00 happens twice, so a wall time there names two instants. We take
  the LATER one (standard time). A row written during the first occurrence is then assigned to a
  window that closes an hour later than its true instant: it can be read late, never lost, because a
  row is never assigned to a window that closed before the row existed.
- In the spring 02:00-03:00 does not exist. AFAS never writes such a time; if one appears anyway it
  is shifted forward to 03:00 (the instant of the transition), like pandas' ``shift_forward``.

AFAS stores modification times below one second but displays them rounded to a whole second, and
its filter compares the precise stored value. A window filter therefore starts a margin earlier than
the window, and rows are assigned to windows by their displayed value, after the read.

Everything here is a pure function; no HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
AFAS_TZ_NAME = "Europe/Amsterdam"

# Largest difference between two UTC offsets of Europe/Amsterdam; widening by it is always enough.
_DST_SHIFT = timedelta(hours=1)
_AFAS_DISPLAY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_AFAS_FILTER_FORMAT = "%Y-%m-%dT%H:%M:%S"


def require_utc(value: datetime, name: str = "value") -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive datetime is refused (it is a bug waiting)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC); got a naive datetime")
    return value.astimezone(timezone.utc)


def utc_to_afas_wall(instant: datetime) -> datetime:
    """The naive Amsterdam wall time AFAS shows for an aware instant."""
    return require_utc(instant, "instant").astimezone(AMSTERDAM).replace(tzinfo=None)


def afas_wall_to_utc(wall: datetime) -> datetime:
    """The UTC instant for a naive Amsterdam wall time: the later occurrence when repeated, shifted
    forward when nonexistent. Monotonic non-decreasing in ``wall``."""
    if wall.tzinfo is not None:
        raise ValueError("an AFAS wall time is naive; got an aware datetime")
    ts = pd.Timestamp(wall).tz_localize(AFAS_TZ_NAME, ambiguous=False, nonexistent="shift_forward")
    return ts.tz_convert("UTC").to_pydatetime()


def is_ambiguous_wall(wall: datetime) -> bool:
    """True when the wall time happens twice (the autumn repeated hour)."""
    early = wall.replace(tzinfo=AMSTERDAM, fold=0).utcoffset()
    late = wall.replace(tzinfo=AMSTERDAM, fold=1).utcoffset()
    return early != late and _round_trips(wall)


def is_nonexistent_wall(wall: datetime) -> bool:
    """True when the wall time is skipped by the spring transition."""
    return not _round_trips(wall)


def _round_trips(wall: datetime) -> bool:
    aware = wall.replace(tzinfo=AMSTERDAM)
    return aware.astimezone(timezone.utc).astimezone(AMSTERDAM).replace(tzinfo=None) == wall


def parse_afas_datetimes(values: pd.Series | list | np.ndarray) -> pd.Series:
    """Fake-Z AFAS strings (``"2026-10-25T02:05:00Z"``) -> tz-aware UTC datetimes (NaT for null).

    Date-only AFAS values arrive as ``T00:00:00Z`` and go through the same rule (midnight local).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype="object")
    if len(series) == 0:
        return pd.Series([], dtype="datetime64[us, UTC]", index=series.index, name=series.name)
    text = series.astype("string").str.strip().str.removesuffix("Z").str.removesuffix("z")
    naive = pd.to_datetime(text, format="ISO8601")
    if isinstance(naive.dtype, pd.DatetimeTZDtype):  # an explicit offset; should not happen with AFAS
        return naive.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return afas_walls_to_utc(naive)


def afas_walls_to_utc(naive: pd.Series) -> pd.Series:
    """Naive Amsterdam wall times -> tz-aware UTC, by the same rule as ``afas_wall_to_utc``."""
    localised = naive.dt.tz_localize(
        AFAS_TZ_NAME, ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="shift_forward"
    )
    return localised.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def format_afas_filter_value(value: datetime | date) -> str:
    """A datetime or date as an AFAS filter value: Amsterdam wall time, no ``Z``, whole seconds.

    An aware datetime is converted to Amsterdam; a naive one is taken to be Amsterdam wall time
    already (that is what AFAS shows); a date means its local midnight.
    """
    if isinstance(value, datetime):
        wall = utc_to_afas_wall(value) if value.tzinfo is not None else value
        return wall.replace(microsecond=0).strftime(_AFAS_FILTER_FORMAT)
    return datetime(value.year, value.month, value.day).strftime(_AFAS_FILTER_FORMAT)


def format_afas_display(instant: datetime) -> str:
    """How AFAS would display an instant: wall time rounded to the nearest second, fake ``Z``."""
    wall = utc_to_afas_wall(instant)
    rounded = wall.replace(microsecond=0)
    if wall.microsecond >= 500_000:
        rounded += timedelta(seconds=1)
    return rounded.strftime(_AFAS_DISPLAY_FORMAT)


def window_filter_bounds(start: datetime, end: datetime, margin: timedelta) -> tuple[datetime, datetime]:
    """Naive Amsterdam wall bounds ``[lo, hi)`` for a server filter that returns every row whose
    displayed value falls in the UTC window ``[start, end)`` -- and a few more, trimmed after the read.

    Guarantees (whether the server compares wall times or instants, either fold):
    - ``lo`` is ``margin`` (plus rounding) below the window, so a row stored just before ``start``
      but displayed rounded up to ``start`` is returned;
    - a bound that falls in the repeated autumn hour or the spring gap is moved out of it, away from
      the window, so no DST reading of the bound can cut the window short;
    - ``lo <= hi``, whole seconds (``lo`` floored, ``hi`` ceiled).
    """
    start = require_utc(start, "start")
    end = require_utc(end, "end")
    if end <= start:
        raise ValueError(f"empty window: end {end.isoformat()} is not after start {start.isoformat()}")
    if margin < timedelta(0):
        raise ValueError("margin must not be negative")
    # One extra second because a stored value up to half a second below `start` displays as `start`.
    lo = utc_to_afas_wall(start) - margin - timedelta(seconds=1)
    # A wall time just below lo can map (later-occurrence rule) to an instant >= start inside a
    # repeated hour; step back until nothing below lo can belong to the window.
    while afas_wall_to_utc(lo - timedelta(microseconds=1)) >= start:
        lo -= _DST_SHIFT
    if is_ambiguous_wall(lo) or is_nonexistent_wall(lo):
        lo -= _DST_SHIFT
    hi = utc_to_afas_wall(end)
    if hi.microsecond:
        hi = hi.replace(microsecond=0) + timedelta(seconds=1)
    # A row displayed below `hi` (a whole second) was stored below it too, so `hi` needs no margin.
    # Move it out of a repeated or skipped hour so a server that compares instants cannot read it
    # as the earlier occurrence and cut the window short.
    if is_ambiguous_wall(hi) or is_nonexistent_wall(hi):
        hi += _DST_SHIFT
    lo = lo.replace(microsecond=0)
    return min(lo, hi), hi


def in_window(instants: pd.Series, start: datetime, end: datetime) -> pd.Series:
    """Boolean mask of UTC instants in the half-open window ``[start, end)`` (NaT -> False)."""
    start_ts = pd.Timestamp(require_utc(start, "start"))
    end_ts = pd.Timestamp(require_utc(end, "end"))
    return ((instants >= start_ts) & (instants < end_ts)).fillna(False).astype(bool)


def utc_windows(start: datetime, end: datetime, step: timedelta = timedelta(minutes=15)) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive half-open UTC windows from ``start`` to ``end`` (the last may be shorter)."""
    start = require_utc(start, "start")
    end = require_utc(end, "end")
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    current = start
    while current < end:
        nxt = min(current + step, end)
        yield current, nxt
        current = nxt


def floor_to_step(instant: datetime, step: timedelta = timedelta(minutes=15)) -> datetime:
    """The start of the UTC step-aligned window containing ``instant``."""
    instant = require_utc(instant, "instant")
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    steps = math.floor((instant - epoch) / step)
    return epoch + steps * step


def latest_instant(frame: pd.DataFrame, date_columns: list[str] | tuple[str, ...]) -> pd.Series:
    """Per row, the latest of the given UTC date columns (NaT where all are empty)."""
    if not date_columns:
        raise ValueError("at least one date column is needed")
    if len(date_columns) == 1:
        return frame[date_columns[0]]
    return frame[list(date_columns)].max(axis=1, skipna=True)


def select_window_rows(
    frame: pd.DataFrame,
    *,
    date_columns: list[str] | tuple[str, ...],
    key: str,
    start: datetime,
    end: datetime,
    assign: Literal["any", "latest"] = "any",
) -> pd.DataFrame:
    """Rows that belong to the UTC window ``[start, end)``, once per key (date columns in UTC).

    ``assign="any"``: a row belongs to every window that holds one of its dates -- a contact whose
    own change and whose person's change fall in different windows is delivered by both.
    ``assign="latest"``: a row belongs only to the window holding its latest date, so consecutive
    windows partition the rows at any moment even with several date fields.
    With a single date field the two are the same. Duplicates of a key (a row that moved between
    pages while they were read) keep the version with the latest date.
    """
    latest = latest_instant(frame, date_columns)
    if assign == "latest":
        mask = in_window(latest, start, end)
    elif assign == "any":
        mask = pd.Series(False, index=frame.index)
        for column in date_columns:
            mask |= in_window(frame[column], start, end)
    else:
        raise ValueError(f"assign must be 'any' or 'latest', not {assign!r}")
    kept = frame.loc[mask.to_numpy()]
    if kept.empty:
        return kept.reset_index(drop=True)
    order = latest.loc[mask.to_numpy()].reset_index(drop=True)
    kept = kept.reset_index(drop=True)
    by_recency = order.sort_values(kind="stable").index
    deduped = kept.loc[by_recency].drop_duplicates(subset=[key], keep="last")
    return deduped.sort_index().reset_index(drop=True)
