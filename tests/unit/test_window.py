"""Send windows: open or closed, when that changes, and how it reads."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.model import Window
from runner.window import WindowState, describe, valid_timezone, window_state

IST = ZoneInfo("Asia/Kolkata")
NY = ZoneInfo("America/New_York")
TRAI = Window(time(9), time(21), "Asia/Kolkata")


def ist(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=IST)


def test_open_inside_the_window_with_its_closing_time() -> None:
    now = ist(2026, 11, 4, 18, 50)
    assert window_state(TRAI, now) == WindowState(True, ist(2026, 11, 4, 21, 0), None)
    assert describe(TRAI, now) == "09:00-21:00 Asia/Kolkata, open now (closes in 2 h 10 min)"


def test_closed_after_hours_with_the_next_opening() -> None:
    now = ist(2026, 11, 4, 23, 55)
    state = window_state(TRAI, now)
    assert state == WindowState(False, None, ist(2026, 11, 5, 9, 0))
    assert describe(TRAI, now) == (
        "09:00-21:00 Asia/Kolkata, closed (opens in 9 h 5 min, at 09:00 Asia/Kolkata)")
    early = ist(2026, 11, 4, 8, 15)
    assert window_state(TRAI, early).opens_at == ist(2026, 11, 4, 9, 0)
    assert describe(TRAI, early).endswith("closed (opens in 45 min, at 09:00 Asia/Kolkata)")


def test_the_window_is_half_open() -> None:
    assert window_state(TRAI, ist(2026, 11, 4, 9, 0)).open
    assert not window_state(TRAI, ist(2026, 11, 4, 21, 0)).open
    assert window_state(TRAI, ist(2026, 11, 4, 20, 59, 59)).open
    assert "closes in under 1 min" in describe(TRAI, ist(2026, 11, 4, 20, 59, 59))


def test_the_clock_of_the_caller_does_not_matter() -> None:
    # 13:20 UTC is 18:50 in Kolkata.
    now = datetime(2026, 11, 4, 13, 20, tzinfo=UTC)
    state = window_state(TRAI, now)
    assert state.open and state.closes_at == ist(2026, 11, 4, 21, 0)
    assert state.closes_at is not None and state.closes_at.tzinfo == IST


def test_a_window_across_midnight() -> None:
    night = Window(time(22), time(6), "UTC")

    def at(h: int, m: int = 0, d: int = 4) -> datetime:
        return datetime(2026, 11, d, h, m, tzinfo=UTC)

    assert window_state(night, at(23)) == WindowState(True, at(6, d=5), None)
    assert window_state(night, at(3)) == WindowState(True, at(6), None)
    assert window_state(night, at(12)) == WindowState(False, None, at(22))
    assert not window_state(night, at(6)).open and window_state(night, at(22)).open
    assert describe(night, at(5, 30)) == "22:00-06:00 UTC, open now (closes in 30 min)"


def test_start_equal_to_end_is_open_around_the_clock_and_none_is_always_open() -> None:
    allday = Window(time(9), time(9), "Asia/Kolkata")
    now = ist(2026, 11, 4, 3, 0)
    assert window_state(allday, now) == WindowState(True, None, None)
    assert describe(allday, now) == "09:00-09:00 Asia/Kolkata, open all day"
    assert window_state(None, now) == WindowState(True, None, None)
    assert describe(None, now) == "always open"


def test_implied_trai_window_says_so() -> None:
    implied = Window(time(9), time(21), "Asia/Kolkata", implied=True)
    assert describe(implied, ist(2026, 11, 4, 10, 0)).startswith(
        "09:00-21:00 Asia/Kolkata (TRAI hours, the default for IN MKT), open now")


def test_seconds_show_only_when_set() -> None:
    odd = Window(time(9, 0, 30), time(21), "Asia/Kolkata")
    assert describe(odd, ist(2026, 11, 4, 8, 0)).startswith("09:00:30-21:00 Asia/Kolkata, closed")


def test_spring_forward_day_durations_are_real_time() -> None:
    # 2026-03-08: New York skips 02:00-03:00. 01:00-05:00 lasts three real hours that day.
    w = Window(time(1), time(5), "America/New_York")
    now = datetime(2026, 3, 8, 1, 30, tzinfo=NY)
    state = window_state(w, now)
    assert state.open and state.closes_at == datetime(2026, 3, 8, 5, 0, tzinfo=NY)
    assert describe(w, now).endswith("open now (closes in 2 h 30 min)")


def test_a_start_inside_the_spring_gap_opens_when_the_clock_resumes() -> None:
    w = Window(time(2, 30), time(4), "America/New_York")
    now = datetime(2026, 3, 8, 1, 0, tzinfo=NY)
    state = window_state(w, now)
    assert not state.open and state.opens_at is not None
    assert state.opens_at.astimezone(UTC) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert describe(w, now).endswith("closed (opens in 1 h 30 min, at 03:30 America/New_York)")


def test_fall_back_day_is_an_hour_longer() -> None:
    # 2026-11-01: New York repeats 01:00-02:00. 00:00-03:00 lasts four real hours.
    w = Window(time(0), time(3), "America/New_York")
    now = datetime(2026, 11, 1, 0, 30, tzinfo=NY)
    assert describe(w, now).endswith("open now (closes in 3 h 30 min)")


def test_naive_now_and_unknown_zones_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_state(TRAI, datetime(2026, 11, 4, 10, 0))
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        window_state(Window(time(9), time(21), "Mars/Olympus"), ist(2026, 11, 4, 10, 0))
    assert valid_timezone("Asia/Kolkata") and not valid_timezone("Mars/Olympus")
    assert not valid_timezone("../etc/passwd")


zones = st.sampled_from(["Asia/Kolkata", "America/New_York", "Europe/London",
                         "Australia/Lord_Howe", "UTC"])
clock_times = st.times().map(lambda t: t.replace(microsecond=0))
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC))


@given(zone=zones, start=clock_times, end=clock_times, now=instants)
def test_state_changes_exactly_at_the_times_it_announces(zone: str, start: time, end: time,
                                                         now: datetime) -> None:
    w = Window(start, end, zone)
    state = window_state(w, now)
    tick = timedelta(seconds=1)
    if state.open:
        assert state.opens_at is None
        if state.closes_at is not None:
            assert now < state.closes_at <= now + timedelta(days=1, hours=2)
            assert window_state(w, state.closes_at - tick).open
            assert not window_state(w, state.closes_at).open
    else:
        assert state.closes_at is None and state.opens_at is not None
        assert now < state.opens_at <= now + timedelta(days=1, hours=2)
        assert not window_state(w, state.opens_at - tick).open
        assert window_state(w, state.opens_at).open


@given(start=clock_times, end=clock_times, now=instants)
def test_without_dst_open_means_the_wall_clock_is_inside(start: time, end: time,
                                                         now: datetime) -> None:
    w = Window(start, end, "Asia/Kolkata")
    wall = now.astimezone(IST).time()
    if start < end:
        inside = start <= wall < end
    elif start > end:
        inside = wall >= start or wall < end
    else:
        inside = True
    assert window_state(w, now).open == inside
