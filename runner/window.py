"""Send windows: is a campaign allowed to send now, and when does that change?

A window is a daily [start, end) in an IANA time zone. Rules where the spec is silent:

* start > end runs across midnight (22:00-06:00 is open from 22:00 until 06:00 the next day);
* start == end means open around the clock (a zero-length window would never send, which is
  never what someone writing one means);
* the window is half-open: open at exactly ``start``, closed at exactly ``end``;
* DST is zoneinfo's: a start that falls in a spring-forward gap opens when the clock resumes
  (02:30 on a day that skips 02:00-03:00 opens at 03:30), and a wall time that occurs twice on a
  fall-back day means its first occurrence. Durations are real elapsed time, so a window can be
  an hour shorter or longer on those days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runner.model import Window


@dataclass(frozen=True, slots=True)
class WindowState:
    open: bool
    closes_at: datetime | None  # when open: when it closes (None: never); in the window's zone
    opens_at: datetime | None  # when closed: when it next opens; in the window's zone


ALWAYS_OPEN = WindowState(True, None, None)


@lru_cache(maxsize=1024)
def valid_timezone(name: str) -> bool:
    """True when ``name`` is an IANA zone zoneinfo knows (for campaign checks). Cached: the
    zone census asks once a number prefix, and zoneinfo's own cache keeps only 8 zones
    strongly, so a mix of countries read their files again and again."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _zone(window: Window) -> ZoneInfo:
    try:
        return ZoneInfo(window.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {window.timezone!r}") from None


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # Wall time on a day, as a UTC instant: aware datetimes in one zone compare by wall time,
    # not by instant, so all arithmetic below is done in UTC.
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _intervals(window: Window, zone: ZoneInfo, around: date) -> list[tuple[datetime, datetime]]:
    crosses = window.start > window.end
    spans = []
    for offset in (-1, 0, 1, 2):
        day = around + timedelta(days=offset)
        start = _at(day, window.start, zone)
        end = _at(day + timedelta(days=1) if crosses else day, window.end, zone)
        if start < end:  # a DST gap can swallow a tiny window on one day
            spans.append((start, end))
    return spans


def window_state(window: Window | None, now: datetime) -> WindowState:
    """Whether ``window`` is open at ``now`` (timezone-aware), and when that next changes."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if window is None or window.start == window.end:
        return ALWAYS_OPEN
    zone = _zone(window)
    instant = now.astimezone(UTC)
    spans = _intervals(window, zone, instant.astimezone(zone).date())
    for start, end in spans:
        if start <= instant < end:
            return WindowState(True, end.astimezone(zone), None)
    upcoming = min(start for start, _ in spans if start > instant)
    return WindowState(False, None, upcoming.astimezone(zone))


def format_clock(t: time) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def format_wait(delta: timedelta) -> str:
    """'2 h 10 min', '2 h', '45 min', 'under 1 min' (whole minutes, rounded down)."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under 1 min"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _until(when: datetime, now: datetime) -> timedelta:
    # In UTC: subtracting two datetimes of one zone would give wall-clock, not elapsed, time.
    return when.astimezone(UTC) - now.astimezone(UTC)


def describe(window: Window | None, now: datetime) -> str:
    """One line for plans and errors, e.g.
    '09:00-21:00 Asia/Kolkata, open now (closes in 2 h 10 min)'."""
    if window is None:
        return "always open"
    label = f"{format_clock(window.start)}-{format_clock(window.end)} {window.timezone}"
    if window.timezone == "recipient":  # runner.zones: each number's own zones
        label = (f"{format_clock(window.start)}-{format_clock(window.end)} in each "
                 "recipient's time zone")
        return label + (f" ({window.preset})" if window.preset else "")
    if window.preset:
        label += f" ({window.preset})"
    if window.implied:
        label += " (TRAI hours, the default for IN MKT)"
    state = window_state(window, now)
    if state.closes_at is not None:
        return f"{label}, open now (closes in {format_wait(_until(state.closes_at, now))})"
    if state.opens_at is not None:
        at = format_clock(state.opens_at.time())
        return (f"{label}, closed (opens in {format_wait(_until(state.opens_at, now))}, "
                f"at {at} {window.timezone})")
    return f"{label}, open all day"
