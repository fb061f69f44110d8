"""Rules for AFAS time handling: fake-Z Amsterdam wall times, filter bounds and UTC windows."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afas_pipeline.lib.timewindows import (
    AMSTERDAM,
    afas_wall_to_utc,
    floor_to_step,
    format_afas_display,
    format_afas_filter_value,
    is_ambiguous_wall,
    is_nonexistent_wall,
    parse_afas_datetimes,
    select_window_rows,
    utc_to_afas_wall,
    utc_windows,
    window_filter_bounds,
)

UTC = timezone.utc
SPRING_FORWARD = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
FALL_BACK = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- parsing what AFAS displays -------------------------------------------------------------------


def test_fake_z_is_amsterdam_wall_time_in_summer_and_winter():
    parsed = parse_afas_datetimes(["2026-07-01T12:00:00Z", "2026-01-15T12:00:00Z"])
    assert list(parsed) == [pd.Timestamp("2026-07-01T10:00:00Z"), pd.Timestamp("2026-01-15T11:00:00Z")]
    assert str(parsed.dtype) == "datetime64[us, UTC]"


def test_repeated_autumn_hour_is_read_as_the_later_occurrence():
    parsed = parse_afas_datetimes(["2026-10-25T02:00:00Z", "2026-10-25T02:59:59Z", "2026-10-25T01:59:59Z"])
    assert list(parsed) == [
        pd.Timestamp("2026-10-25T01:00:00Z"),
        pd.Timestamp("2026-10-25T01:59:59Z"),
        pd.Timestamp("2026-10-24T23:59:59Z"),
    ]


def test_nonexistent_spring_time_shifts_forward_to_the_transition():
    parsed = parse_afas_datetimes(["2026-03-29T02:30:00Z", "2026-03-29T03:00:00Z", "2026-03-29T01:59:59Z"])
    assert list(parsed) == [
        pd.Timestamp("2026-03-29T01:00:00Z"),
        pd.Timestamp("2026-03-29T01:00:00Z"),
        pd.Timestamp("2026-03-29T00:59:59Z"),
    ]


def test_nulls_and_date_only_values():
    parsed = parse_afas_datetimes(pd.Series(["1980-05-04T00:00:00Z", None], dtype="object"))
    assert parsed.iloc[0] == pd.Timestamp("1980-05-03T22:00:00Z")
    assert pd.isna(parsed.iloc[1])
    assert parse_afas_datetimes([]).empty


def test_wall_to_utc_round_trips_outside_the_repeated_hour():
    for instant in (utc(2026, 3, 29, 0, 59, 59), SPRING_FORWARD, FALL_BACK, utc(2026, 10, 24, 23, 59, 59)):
        assert afas_wall_to_utc(utc_to_afas_wall(instant)) == instant
    first_occurrence = utc(2026, 10, 25, 0, 30)
    assert afas_wall_to_utc(utc_to_afas_wall(first_occurrence)) == first_occurrence + timedelta(hours=1)


def test_ambiguous_and_nonexistent_walls_are_recognised():
    assert is_ambiguous_wall(datetime(2026, 10, 25, 2, 30))
    assert not is_ambiguous_wall(datetime(2026, 10, 25, 3, 0))
    assert not is_ambiguous_wall(datetime(2026, 3, 29, 2, 30))
    assert is_nonexistent_wall(datetime(2026, 3, 29, 2, 30))
    assert not is_nonexistent_wall(datetime(2026, 3, 29, 3, 0))


# --- formatting filter values ---------------------------------------------------------------------


def test_filter_values_are_amsterdam_wall_time_without_z():
    assert format_afas_filter_value(utc(2026, 10, 25, 0, 30)) == "2026-10-25T02:30:00"
    assert format_afas_filter_value(utc(2026, 10, 25, 1, 30)) == "2026-10-25T02:30:00"
    assert format_afas_filter_value(utc(2026, 1, 2, 3, 4, 5, 999_000)) == "2026-01-02T04:04:05"
    assert format_afas_filter_value(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05"
    assert format_afas_filter_value(date(2026, 1, 2)) == "2026-01-02T00:00:00"


def test_display_rounds_to_the_nearest_second():
    assert format_afas_display(utc(2026, 1, 1, 11, 59, 59, 499_000)) == "2026-01-01T12:59:59Z"
    assert format_afas_display(utc(2026, 1, 1, 11, 59, 59, 500_000)) == "2026-01-01T13:00:00Z"


def test_naive_instants_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        window_filter_bounds(datetime(2026, 1, 1), utc(2026, 1, 2), timedelta(0))


# --- filter bounds --------------------------------------------------------------------------------


def test_bounds_of_an_ordinary_window_subtract_margin_and_a_rounding_second():
    lo, hi = window_filter_bounds(utc(2026, 6, 1, 10, 0), utc(2026, 6, 1, 10, 15), timedelta(minutes=5))
    assert (lo, hi) == (datetime(2026, 6, 1, 11, 54, 59), datetime(2026, 6, 1, 12, 15))


def test_bounds_inside_the_repeated_hour_step_out_of_it():
    # 00:45-01:00 UTC is the first 02:45-03:00; its local end (02:00, second occurrence) is earlier.
    lo, hi = window_filter_bounds(utc(2026, 10, 25, 0, 45), FALL_BACK, timedelta(minutes=5))
    assert lo <= datetime(2026, 10, 25, 1, 59, 59) and not is_ambiguous_wall(lo)
    assert hi >= datetime(2026, 10, 25, 3, 0) and not is_ambiguous_wall(hi)


def test_bounds_never_land_in_the_spring_gap():
    lo, hi = window_filter_bounds(SPRING_FORWARD, SPRING_FORWARD + QUARTER, timedelta(minutes=5))
    assert not is_nonexistent_wall(lo) and not is_nonexistent_wall(hi)
    assert lo <= datetime(2026, 3, 29, 1, 59, 59)
    assert hi == datetime(2026, 3, 29, 3, 15)


def test_empty_window_is_refused():
    with pytest.raises(ValueError, match="empty window"):
        window_filter_bounds(FALL_BACK, FALL_BACK, timedelta(0))


# --- the partition proof: consecutive 15-minute windows across both DST days --------------------


def _synthetic_instants(day_start: datetime, transition: datetime, seed: int) -> np.ndarray:
    """Millisecond-precision instants across a DST day, dense around the transition and around
    window boundaries, including values that display rounded up into the next window."""
    rng = np.random.default_rng(seed)
    span_ms = int(timedelta(hours=28).total_seconds() * 1000)
    spread = rng.integers(0, span_ms, size=20_000)
    dense_hour = rng.integers(-int(3.6e6), int(7.2e6), size=10_000)  # the hour before and two after
    boundary_offsets = np.array([-1500, -1000, -501, -500, -499, -1, 0, 1, 499, 500, 501, 999])
    boundaries = np.arange(0, span_ms, 15 * 60 * 1000)
    near_boundaries = (boundaries[:, None] + boundary_offsets[None, :]).ravel()
    base = np.datetime64(day_start.replace(tzinfo=None), "ms")
    trans = np.datetime64(transition.replace(tzinfo=None), "ms")
    stamps = np.concatenate(
        [base + spread.astype("timedelta64[ms]"), trans + dense_hour.astype("timedelta64[ms]"),
         base + near_boundaries.astype("timedelta64[ms]")]
    )
    return np.unique(stamps)


def _server_mask(stored_utc: pd.Series, stored_wall: pd.Series, lo: datetime, hi: datetime, mode: str) -> np.ndarray:
    """What a server returns for `field >= lo AND field < hi` when it compares wall times, or
    instants with either reading of an ambiguous bound."""
    if mode == "wall":
        return ((stored_wall >= pd.Timestamp(lo)) & (stored_wall < pd.Timestamp(hi))).to_numpy()
    fold = 0 if mode == "instant-earlier" else 1
    lo_i = pd.Timestamp(lo.replace(tzinfo=AMSTERDAM, fold=fold).astimezone(UTC))
    hi_i = pd.Timestamp(hi.replace(tzinfo=AMSTERDAM, fold=fold).astimezone(UTC))
    return ((stored_utc >= lo_i) & (stored_utc < hi_i)).to_numpy()


@pytest.mark.parametrize("mode", ["wall", "instant-earlier", "instant-later"])
@pytest.mark.parametrize(
    ("day_start", "transition"),
    [(utc(2026, 3, 28, 22), SPRING_FORWARD), (utc(2026, 10, 24, 22), FALL_BACK)],
    ids=["spring-forward", "fall-back"],
)
def test_consecutive_quarter_windows_assign_every_row_exactly_once(day_start, transition, mode):
    stored = pd.Series(_synthetic_instants(day_start, transition, seed=7)).dt.tz_localize("UTC")
    stored_wall = stored.dt.tz_convert("Europe/Amsterdam").dt.tz_localize(None)
    displayed = pd.Series([format_afas_display(t) for t in stored.dt.to_pydatetime()])
    frame = pd.DataFrame({"Id": np.arange(len(stored)), "Modified": parse_afas_datetimes(displayed)})
    assert frame["Modified"].notna().all()

    assigned_count = np.zeros(len(frame), dtype=int)
    window_end = np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[us]")
    # Windows start before the first row and run past the last one plus the DST hour.
    first = floor_to_step(day_start - timedelta(hours=1))
    for start, end in utc_windows(first, day_start + timedelta(hours=31)):
        lo, hi = window_filter_bounds(start, end, timedelta(minutes=5))
        returned = frame.loc[_server_mask(stored, stored_wall, lo, hi, mode)]
        selected = select_window_rows(returned, date_columns=["Modified"], key="Id", start=start, end=end)
        assigned_count[selected["Id"].to_numpy()] += 1
        window_end[selected["Id"].to_numpy()] = np.datetime64(end.replace(tzinfo=None), "us")

    assert (assigned_count == 1).all(), f"{(assigned_count == 0).sum()} lost, {(assigned_count > 1).sum()} doubled"
    # No row lands in a window that closed before the row was written.
    stored_naive = stored.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    assert (window_end > stored_naive).all()
    # The repeated hour was really exercised: some rows were assigned an hour after their instant.
    late = (window_end - stored_naive) > np.timedelta64(3600, "s")
    assert late.any() == (transition == FALL_BACK)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(2026, 3, 28), max_value=datetime(2026, 10, 26)),
    st.sampled_from([SPRING_FORWARD, FALL_BACK]),
    st.integers(min_value=-10_800_000, max_value=10_800_000),
)
def test_any_displayed_instant_falls_in_the_server_filter_of_its_window(_ignored, transition, offset_ms):
    stored = transition + timedelta(milliseconds=offset_ms)
    assigned = parse_afas_datetimes([format_afas_display(stored)]).iloc[0].to_pydatetime()
    start = floor_to_step(assigned)
    lo, hi = window_filter_bounds(start, start + QUARTER, timedelta(minutes=5))
    wall = utc_to_afas_wall(stored)
    assert lo <= wall < hi
    assert start + QUARTER > stored


# --- windows over several date fields -------------------------------------------------------------


def _two_date_frame() -> pd.DataFrame:
    def instants(values):
        return pd.to_datetime(values, utc=True, format="ISO8601")

    return pd.DataFrame(
        {
            "ContactId": [1, 2, 3, 3, 4, 5],
            "ContactModified": instants(
                ["2026-06-01T10:05Z", "2026-06-01T09:00Z", "2026-06-01T10:01Z", "2026-06-01T10:07Z", None, "2026-06-01T10:00Z"]
            ),
            "PersonModified": instants(
                ["2026-06-01T09:00Z", "2026-06-01T10:14:59Z", None, None, "2026-06-01T10:20Z", "2026-06-01T10:15Z"]
            ),
            "Version": ["a", "b", "old", "new", "c", "d"],
        }
    )


def test_a_row_is_in_every_window_holding_one_of_its_dates_once_per_key():
    kwargs = dict(date_columns=["ContactModified", "PersonModified"], key="ContactId")
    first = select_window_rows(_two_date_frame(), start=utc(2026, 6, 1, 10, 0), end=utc(2026, 6, 1, 10, 15), **kwargs)
    assert first["ContactId"].tolist() == [1, 2, 3, 5]
    assert first["Version"].tolist() == ["a", "b", "new", "d"]
    second = select_window_rows(_two_date_frame(), start=utc(2026, 6, 1, 10, 15), end=utc(2026, 6, 1, 10, 30), **kwargs)
    assert second["ContactId"].tolist() == [4, 5]


def test_latest_assignment_partitions_rows_with_several_date_fields():
    kwargs = dict(date_columns=["ContactModified", "PersonModified"], key="ContactId", assign="latest")
    first = select_window_rows(_two_date_frame(), start=utc(2026, 6, 1, 10, 0), end=utc(2026, 6, 1, 10, 15), **kwargs)
    second = select_window_rows(_two_date_frame(), start=utc(2026, 6, 1, 10, 15), end=utc(2026, 6, 1, 10, 30), **kwargs)
    assert first["ContactId"].tolist() == [1, 2, 3]
    assert second["ContactId"].tolist() == [4, 5]


def test_utc_windows_are_consecutive_and_half_open():
    windows = list(utc_windows(utc(2026, 1, 1), utc(2026, 1, 1, 0, 40)))
    assert windows == [
        (utc(2026, 1, 1), utc(2026, 1, 1, 0, 15)),
        (utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30)),
        (utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 0, 40)),
    ]
    assert floor_to_step(utc(2026, 1, 1, 0, 29, 59, 999_999)) == utc(2026, 1, 1, 0, 15)
