"""Recipient-local send windows: a number's time zones, and when a window is open in all of them.

A number's zones are libphonenumber's (``phonenumbers.timezone.time_zones_for_number``), found
the way it finds them but cheaply for lists of valid numbers:

* the geographic answer depends only on the longest of the number's first 9 digits that the
  data holds, and the country-level answer only on the country code: both are dictionary
  lookups;
* when the two agree (India, most single-zone countries) the number's type cannot change the
  answer, so it is not computed; only where they differ (North America: a geographic number
  has its area's zone, a toll-free one all 42 of the plan's) does the library decide, by type.

The answer for a number without one (``Etc/Unknown``) is the campaign's ``fallback_timezone``,
else the empty set: such a number is never sent (it stays ``pending``).

A set of zones is open when the window is open in every one of them; it next opens at the first
instant all of them are open at once, which this module finds by jumping from opening to opening
(no zone that is closed can open before its own next opening). Some sets never open together
(a 13-hour window cannot be open on both sides of the date line at once): their rows stay
pending, and the dry run and the end of a run say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

import phonenumbers
from phonenumbers import timezone as _tz
from phonenumbers.phonenumberutil import is_number_type_geographical, number_type

from runner.model import Window
from runner.window import WindowState, window_state

RECIPIENT: Final = "recipient"
UNKNOWN_ZONE: Final = _tz.UNKNOWN_TIMEZONE  # "Etc/Unknown"
_DATA: Final[dict[str, tuple[str, ...]]] = _tz.TIMEZONE_DATA  # type: ignore[attr-defined]
_LONGEST: Final[int] = _tz.TIMEZONE_LONGEST_PREFIX  # type: ignore[attr-defined]
_HORIZON: Final = timedelta(days=8)  # a set not open together within a week never is

Zones = tuple[str, ...]  # sorted zone names; () is "no known zone"


def per_recipient(window: Window | None) -> bool:
    """True when ``window`` is kept in each recipient's own time zone."""
    return window is not None and window.timezone == RECIPIENT


def _prefix_zones(digits: str, upto: int) -> Zones:
    for length in range(min(upto, len(digits)), 0, -1):
        found = _DATA.get(digits[:length])
        if found is not None:
            return tuple(found)
    return (UNKNOWN_ZONE,)


def number_zones(digits: str) -> Zones:
    """libphonenumber's zones of a valid number in E.164 without the ``+`` (the reference)."""
    num = phonenumbers.parse("+" + digits)
    return tuple(_tz.time_zones_for_number(num))


class ZoneLookup:
    """A number's zone set as a small integer (an index into ``sets``), cached.

    ``index(digits)`` takes a valid number in E.164 without ``+``. Sets are interned, so a
    run keeps one tuple per distinct set whatever the number of rows.
    """

    def __init__(self, fallback: str | None = None) -> None:
        self.fallback = fallback
        self.sets: list[Zones] = []
        self._ids: dict[Zones, int] = {}
        # first 9 digits -> (their set, whether the type matters, the country code)
        self._geo: dict[str, tuple[int, bool, int]] = {}
        self._country: dict[str, Zones] = {}

    def _intern(self, zones: Zones) -> int:
        if zones == (UNKNOWN_ZONE,):
            zones = (self.fallback,) if self.fallback else ()
        zones = tuple(sorted(set(zones)))
        found = self._ids.get(zones)
        if found is None:
            found = self._ids[zones] = len(self.sets)
            self.sets.append(zones)
        return found

    def index(self, digits: str) -> int:
        key = digits[:_LONGEST]
        cached = self._geo.get(key)
        if cached is None:
            geo = _prefix_zones(digits, _LONGEST)
            code = phonenumbers.parse("+" + digits).country_code or 0
            country = self._country.get(str(code))
            if country is None:
                country = self._country[str(code)] = _prefix_zones(str(code), _LONGEST)
            cached = self._geo[key] = (self._intern(geo), geo != country, code)
        zone_set, type_matters, code = cached
        if not type_matters:
            return zone_set
        # Geographic and country answers differ: the number's type decides, as in the library.
        national = digits[len(str(code)):]
        if national.startswith("0"):  # leading zeros need the parser's bookkeeping
            num = phonenumbers.parse("+" + digits)
        else:
            num = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
        if is_number_type_geographical(number_type(num), code):
            return zone_set
        return self._intern(self._country[str(code)])

    def zones(self, digits: str) -> Zones:
        return self.sets[self.index(digits)]


# --- the window over a set of zones ----------------------------------------------------------


def zone_window(window: Window, zone: str) -> Window:
    return replace(window, timezone=zone, implied=False)


def set_state(window: Window, zones: Sequence[str], now: datetime) -> WindowState:
    """Open when ``window`` is open in every zone of ``zones`` at ``now``; instants in UTC.

    ``closes_at`` is the first closing among them; ``opens_at`` the first instant all are open,
    None when that never happens (no zones at all, or zones that are never open together).
    """
    if not zones:
        return WindowState(False, None, None)
    states = [window_state(zone_window(window, z), now) for z in zones]
    if all(s.open for s in states):
        closes = [s.closes_at.astimezone(UTC) for s in states if s.closes_at is not None]
        return WindowState(True, min(closes) if closes else None, None)
    at = now.astimezone(UTC)
    limit = at + _HORIZON
    while at <= limit:
        closed = [s.opens_at for s in states if not s.open and s.opens_at is not None]
        if not closed:
            return WindowState(False, None, at)
        at = max(t.astimezone(UTC) for t in closed)
        states = [window_state(zone_window(window, z), at) for z in zones]
    return WindowState(False, None, None)


class ZoneClock:
    """``set_state`` per zone set, remembered until it can next change (a closing or an
    opening): asking for every batch, or every row, costs a comparison."""

    def __init__(self, window: Window, sets: list[Zones]) -> None:
        self.window = window
        self.sets = sets  # ZoneLookup.sets: grows as numbers are looked up
        self._states: dict[int, tuple[WindowState, datetime | None, datetime]] = {}

    def state(self, index: int, now: datetime) -> WindowState:
        found = self._states.get(index)
        if found is not None:
            state, until, since = found
            if since <= now and (until is None or now < until):
                return state
        state = set_state(self.window, self.sets[index], now)
        until = state.closes_at if state.open else state.opens_at
        self._states[index] = (state, until, now)
        return state

    def is_open(self, index: int, now: datetime) -> bool:
        return self.state(index, now).open


@dataclass(frozen=True, slots=True)
class ZoneRows:
    """How many sendable rows one zone set has (for the dry run and validate)."""

    zones: Zones  # () when the number's zone is unknown and there is no fallback
    rows: int


def label(zones: Zones) -> str:
    """'America/New_York', 'Europe/Jersey + 3 more', or 'no known time zone'."""
    if not zones:
        return "no known time zone"
    if len(zones) <= 2:
        return " + ".join(zones)
    return f"{zones[0]} + {len(zones) - 1} more"
