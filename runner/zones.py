"""Recipient-local send windows: a number's time zones, and when a window is open in all of them.

A number's zones are libphonenumber's (``phonenumbers.timezone.time_zones_for_number``), found
the way it finds them but cheaply for lists of valid numbers:

* the geographic answer depends only on the longest of the number's first 9 digits that the
  data holds, and the country-level answer only on the country code: both are dictionary
  lookups;
* when the two agree (India, most single-zone countries) the number's type cannot change the
  answer, so it is not computed; where they differ (North America: a geographic number has its
  area's zone, a toll-free one all 42 of the plan's) the type decides: whether the number is
  geographic, tested with the country's own type patterns compiled once (``geographic_test``),
  a replay of the library's own steps; a hypothesis-free test holds the two to the same answers
  for thousands of numbers of every type and region.

The answer for a number without one (``Etc/Unknown``) is the campaign's ``fallback_timezone``,
else the empty set: such a number is never sent (it stays ``pending``).

A set of zones is open when the window is open in every one of them; it next opens at the first
instant all of them are open at once, which this module finds by jumping from opening to opening
(no zone that is closed can open before its own next opening). Some sets never open together
(a 13-hour window cannot be open on both sides of the date line at once): their rows stay
pending, and the dry run and the end of a run say so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers import timezone as _tz
from phonenumbers.phonenumberutil import (
    _GEO_MOBILE_COUNTRIES,
    is_number_type_geographical,
    number_type,
)

from runner.model import Window
from runner.window import WindowState, valid_timezone, window_state

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


_NON_GEO_DESCS: Final = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
                         "pager", "uan", "voicemail")
_Desc = tuple[tuple[int, ...], "re.Pattern[str] | None"]


def _desc(metadata: Any, name: str) -> tuple[tuple[int, ...], str | None] | None:
    desc = getattr(metadata, name)
    if desc is None:
        return None
    return tuple(desc.possible_length), desc.national_number_pattern or None


def _matches(nsn: str, desc: _Desc | None) -> bool:
    # As phonenumbers' _is_number_matching_desc: lengths first, then the whole pattern.
    if desc is None:
        return False
    lengths, pattern = desc
    if lengths and len(nsn) not in lengths:
        return False
    return pattern is not None and pattern.fullmatch(nsn) is not None


def _compiled(desc: tuple[tuple[int, ...], str | None] | None) -> _Desc | None:
    if desc is None:
        return None
    return desc[0], re.compile(desc[1]) if desc[1] else None


@dataclass(frozen=True, slots=True)
class _RegionTypes:
    """One region's type patterns, compiled: ``_number_type_helper`` without its overhead."""

    leading: re.Pattern[str] | None
    general: _Desc | None
    non_geo: tuple[_Desc, ...]
    fixed: _Desc | None
    mobile: _Desc | None
    same_fixed_and_mobile: bool

    @classmethod
    def of(cls, metadata: Any) -> _RegionTypes:
        non_geo = (_compiled(_desc(metadata, name)) for name in _NON_GEO_DESCS)
        return cls(re.compile(metadata.leading_digits) if metadata.leading_digits else None,
                   _compiled(_desc(metadata, "general_desc")),
                   tuple(d for d in non_geo if d is not None),
                   _compiled(_desc(metadata, "fixed_line")),
                   _compiled(_desc(metadata, "mobile")),
                   bool(metadata.same_mobile_and_fixed_line_pattern))

    def kind(self, nsn: str) -> str:
        """'unknown', 'other' (a non-geographic type), 'fixed' (or fixed or mobile), 'mobile'."""
        if not _matches(nsn, self.general):
            return "unknown"
        if any(_matches(nsn, d) for d in self.non_geo):
            return "other"
        if _matches(nsn, self.fixed):
            return "fixed"
        if not self.same_fixed_and_mobile and _matches(nsn, self.mobile):
            return "mobile"
        return "unknown"


def geographic_test(code: int) -> Callable[[str], bool | None] | None:
    """Whether a valid number of country code ``code`` is geographic, from its national
    number: libphonenumber's ``is_number_type_geographical(number_type(n))``, with the region
    found as ``region_code_for_number`` finds it, on patterns compiled once. The test answers
    None where it cannot tell (then the library decides); None for a code without metadata."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    metas = [PhoneMetadata.metadata_for_region_or_calling_code(code, r) for r in regions]
    if not metas or any(m is None for m in metas):
        return None
    types = [_RegionTypes.of(m) for m in metas]
    geo_mobile = code in _GEO_MOBILE_COUNTRIES

    def geographic(nsn: str) -> bool | None:
        kind = "unknown"
        if len(types) == 1:
            kind = types[0].kind(nsn)
        else:
            for region in types:
                if region.leading is not None:
                    if region.leading.match(nsn):
                        kind = region.kind(nsn)
                        break
                elif (kind := region.kind(nsn)) != "unknown":
                    break
        if kind == "unknown":
            return None
        return kind == "fixed" or (kind == "mobile" and geo_mobile)

    return geographic


class ZoneLookup:
    """A number's zone set as a small integer (an index into ``sets``), cached.

    ``index(digits)`` takes a valid number in E.164 without ``+``. Sets are interned, so a
    run keeps one tuple per distinct set whatever the number of rows. The cache is keyed by
    the number's first digits, as many as the longest time-zone prefix of its country code:
    the geographic answer cannot depend on more.
    """

    def __init__(self, fallback: str | None = None) -> None:
        self.fallback = fallback
        self.sets: list[Zones] = []
        self._ids: dict[Zones, int] = {}
        self._codes: dict[str, tuple[int, int]] = {}  # first 3 digits -> (code, prefix length)
        # those first digits -> (geographic set, country set, or -1 when they agree, code)
        self._prefixes: dict[str, tuple[int, int, int]] = {}
        self._geographic: dict[int, Callable[[str], bool | None] | None] = {}

    def _intern(self, zones: Zones) -> int:
        # A name this system's zone database lacks (an old tzdata) cannot be kept to: such a
        # number is one of unknown zone, as libphonenumber's Etc/Unknown.
        zones = tuple(z for z in zones if z != UNKNOWN_ZONE and valid_timezone(z))
        if not zones:
            zones = (self.fallback,) if self.fallback else ()
        zones = tuple(sorted(set(zones)))
        found = self._ids.get(zones)
        if found is None:
            found = self._ids[zones] = len(self.sets)
            self.sets.append(zones)
        return found

    def _code(self, digits: str) -> tuple[int, int]:
        code = phonenumbers.parse("+" + digits).country_code or 0
        cc = str(code)
        longest = max((len(k) for k in _DATA if k.startswith(cc)), default=len(cc))
        found = self._codes[digits[:3]] = (code, max(len(cc), longest))
        return found

    def _prefix(self, key: str, digits: str, code: int) -> tuple[int, int, int]:
        geo = _prefix_zones(digits, _LONGEST)
        country = _prefix_zones(str(code), _LONGEST)
        found = self._prefixes[key] = (self._intern(geo),
                                       -1 if geo == country else self._intern(country), code)
        return found

    def index(self, digits: str) -> int:
        code_len = self._codes.get(digits[:3]) or self._code(digits)
        key = digits[:code_len[1]]
        geo, country, code = self._prefixes.get(key) or self._prefix(key, digits, code_len[0])
        if country < 0:  # both answers agree: the number's type cannot matter
            return geo
        # They differ: geographic types get the area's zones, others the country's.
        national = digits[len(str(code)):]
        test = self._geographic.get(code, _MISSING)
        if test is _MISSING:
            test = self._geographic[code] = geographic_test(code)
        verdict = test(national) if test is not None and not national.startswith("0") else None
        if verdict is not None:
            return geo if verdict else country
        num = phonenumbers.parse("+" + digits)  # leading zeros, or regions that differ
        return geo if is_number_type_geographical(number_type(num), code) else country

    def zones(self, digits: str) -> Zones:
        return self.sets[self.index(digits)]


_MISSING: Any = object()


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
