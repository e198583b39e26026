"""Pacing a run the way the account is limited: the limiter's lanes, adaptive request rate
(AIMD), hour and day message caps kept in the journal, and the campaign's expiry.

The engine asks ``Pacing`` three things about each attempt: what it costs in each lane of the
limiter (``costs``), whether it may go now (``gate``: go, wait, or stop the run), and it reports
every answer (``answered``), which drives the adaptive rate and gives back the cap of a request
that proved unsent. Everything here runs on injected clocks.

Adaptive pacing (``sending.adaptive``), as TCP and the AWS SDKs' adaptive mode do it: a 429
without Retry-After, or three 429s within a second, halves the request rate, at most once a
second (the provider counts over a second: the 429s that follow a cut within it were earned
before the cut); every clean answer raises the rate by a hundredth of the configured rate per
second of clean answers, back up to the configured rate, never above it, and never below a
fiftieth of it (or 1 a second).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from runner.answers import Outcome, Rejected, Transient
from runner.limiter import Clock, Lane, RateLimiter, Sleep, limits
from runner.message import count_segments
from runner.model import SendingSpec
from runner.plan import Batch

CUT = 0.5  # the multiplicative decrease
COOLDOWN = 1.0  # seconds between two cuts
CLOSE_429S = 3  # this many 429s within COOLDOWN seconds is throttling even with Retry-After


@lru_cache(maxsize=4096)
def parts_of(body: str | None, ucs2: bool = False) -> int:
    """Billable parts of one message (a template sent by id counts one; ``ucs2``: unicode "1")."""
    return count_segments(body, ucs2=ucs2).parts if body else 1


# Slack added to each limit's window for latency jitter between two requests: the provider
# counts arrivals, not our sends. 15 ms a second costs 1.5% of the rate; 20 ms (2%) left the
# achieved rate under 98%, and loopback and a real API's jitter stay well inside 15 ms.
GUARD = 0.015


def _paced_lane(rate: float | None, name: str) -> Lane:
    """A limit as the provider sees it: bursts of a twentieth, GUARD of slack per window."""
    lim = limits(rate)
    if lim is None:
        return Lane(None, name=name)
    return Lane(rate, burst=max(1, lim[0] // 20), guard=GUARD * lim[1], name=name)


def provider_limiter(sending: SendingSpec, *, clock: Clock = time.monotonic,
                     sleep: Sleep = asyncio.sleep) -> RateLimiter:
    """The limiter for Kaleyra: requests, and messages and parts a second when given, each
    paced in bursts of a twentieth of its rate with 15 ms of slack per second, so that latency
    jitter cannot push two windows into one second at the provider's end (costs 1.5% of a
    rate)."""
    rate = sending.requests_per_second
    lim = limits(rate)
    return RateLimiter(rate, clock=clock, sleep=sleep,
                       burst=max(1, lim[0] // 20) if lim is not None else None,
                       guard=GUARD * lim[1] if lim is not None else 0.0,
                       lanes=[_paced_lane(sending.messages_per_second, "messages"),
                              _paced_lane(sending.parts_per_second, "parts")])


def batch_costs(batch: Batch, ucs2: bool = False) -> tuple[int, int]:
    """(messages, parts) of one request: its numbers, and its numbers times their parts."""
    n = len(batch.numbers)
    return n, n * parts_of(batch.body, ucs2)


# --- adaptive request rate ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throttling:
    """What adaptive pacing did in a run: for the summary."""

    throttled: bool = False
    lowest_rate: float | None = None  # requests a second at the lowest point
    seconds: float = 0.0  # time spent below the configured rate
    cuts: int = 0

    def to_json(self) -> dict[str, object]:
        if not self.throttled:
            return {"throttled": False}
        return {"throttled": True, "lowest_rate": round(self.lowest_rate or 0.0, 2),
                "seconds_below_rate": round(self.seconds, 1), "rate_cuts": self.cuts}

    def describe(self) -> str:
        """'throttled: down to 18/s for 40 s' (empty when not throttled)."""
        if not self.throttled or self.lowest_rate is None:
            return ""
        rate = self.lowest_rate
        shown = f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}"
        return (f"throttled: down to {shown}/s for {max(1, round(self.seconds))} s "
                f"({self.cuts} slow-down{'s' if self.cuts != 1 else ''})")


class Aimd:
    """Additive increase, multiplicative decrease of the limiter's request rate."""

    def __init__(self, limiter: RateLimiter, rate: float, *, clock: Clock = time.monotonic
                 ) -> None:
        self._limiter, self._clock = limiter, clock
        self.configured = self.rate = rate
        # A floor of a fiftieth: a server that refuses a share of requests whatever the rate
        # (a fault, not a limit) must not bring the run to a crawl.
        self._floor = min(rate, max(1.0, rate / 50))
        self._step = max(rate / 100, 0.05)  # requests a second gained per second of clean answers
        self._last_cut = -math.inf
        self._recent_429s: deque[float] = deque(maxlen=CLOSE_429S)
        self._since: float | None = None  # when the rate first went below the configured one
        self._below = 0.0
        self._lowest: float | None = None
        self._cuts = 0

    def answered(self, outcome: Outcome) -> None:
        now = self._clock()
        if isinstance(outcome, Transient) and outcome.http_status == 429:
            self._recent_429s.append(now)
            close = (len(self._recent_429s) == CLOSE_429S
                     and now - self._recent_429s[0] <= COOLDOWN)
            if outcome.retry_after is None or close:
                self._cut(now)
            return
        if self.rate < self.configured:
            self.rate = min(self.configured, self.rate + self._step / self.rate)
            self._limiter.set_rate(self.rate)
            if self.rate >= self.configured and self._since is not None:
                self._below += now - self._since
                self._since = None

    def _cut(self, now: float) -> None:
        if now - self._last_cut < COOLDOWN:
            return
        self._last_cut = now
        self.rate = max(self._floor, self.rate * CUT)
        self._limiter.set_rate(self.rate)
        self._cuts += 1
        self._lowest = self.rate if self._lowest is None else min(self._lowest, self.rate)
        if self._since is None:
            self._since = now

    def summary(self) -> Throttling:
        if not self._cuts:
            return Throttling()
        below = self._below + (self._clock() - self._since if self._since is not None else 0.0)
        return Throttling(True, self._lowest, below, self._cuts)


# --- hour and day caps ----------------------------------------------------------------------


class MessageCounts(Protocol):
    """Where caps are counted across reruns: the run's journal."""

    def messages_counted(self, periods: Sequence[str]) -> list[int]: ...

    def count_messages(self, periods: Sequence[str], n: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Period:
    key: str  # "h:2026-12-02T10+05:30", "d:2026-12-02"
    ends: datetime  # when the next period begins (UTC)


def periods_at(now: datetime, zone: tzinfo) -> tuple[Period, Period]:
    """The hour and the day ``now`` falls in, on the clock of ``zone``."""
    local = now.astimezone(zone)
    hour = local.replace(minute=0, second=0, microsecond=0)
    day_end = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
    offset = hour.strftime("%z")
    return (Period(f"h:{hour:%Y-%m-%dT%H}{offset}", hour.astimezone(UTC) + timedelta(hours=1)),
            Period(f"d:{local:%Y-%m-%d}", day_end.astimezone(UTC)))


class Caps:
    """``max_messages_per_hour`` / ``_per_day``: messages are counted when their request
    leaves, and given back when the answer proves they were not sent."""

    def __init__(self, hour: int | None, day: int | None, zone: tzinfo,
                 counts: MessageCounts) -> None:
        self.hour, self.day, self._zone, self._counts = hour, day, zone, counts
        self._held: dict[str, tuple[str, ...]] = {}  # batch id -> the periods it counted in
        self.limit_hit = ""  # "max_messages_per_hour (1,000)" once one stopped the run

    @property
    def active(self) -> bool:
        return self.hour is not None or self.day is not None

    def take(self, batch: Batch, now: datetime) -> datetime | None:
        """Count the batch and return None, or the time it may go when it does not fit."""
        n = len(batch.numbers)
        hour, day = periods_at(now, self._zone)
        used_hour, used_day = self._counts.messages_counted((hour.key, day.key))
        if self.day is not None and used_day + n > self.day:
            self.limit_hit = f"max_messages_per_day ({self.day:,})"
            return day.ends
        if self.hour is not None and used_hour + n > self.hour:
            self.limit_hit = f"max_messages_per_hour ({self.hour:,})"
            return hour.ends
        keys = (hour.key, day.key)
        self._counts.count_messages(keys, n)
        self._held[batch.id] = keys
        return None

    def give_back(self, batch: Batch) -> None:
        keys = self._held.pop(batch.id, None)
        if keys is not None:
            self._counts.count_messages(keys, -len(batch.numbers))


def expired_at(sending: SendingSpec, when: datetime | None) -> bool:
    """Whether the campaign has expired at ``when`` (never when either is None)."""
    return when is not None and sending.expires is not None and when >= sending.expires


# --- the engine's questions -----------------------------------------------------------------

STOP = -1.0  # gate(): stop the run


class Pacing:
    """What the engine asks before and after each attempt (see the module docstring)."""

    def __init__(self, sending: SendingSpec, limiter: RateLimiter, *,
                 counts: MessageCounts | None = None, wait: bool = False,
                 clock: Clock = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 on_wait: Callable[[str, datetime], None] | None = None,
                 ucs2: bool = False) -> None:
        self._sending, self._wait, self._now, self._on_wait = sending, wait, now, on_wait
        self.ucs2 = ucs2  # unicode "1": every text is counted as UCS-2
        # Caps count hours and days in the window's zone; a recipient-local window has none.
        window = sending.window
        zone: tzinfo = (ZoneInfo(window.timezone) if window and window.timezone != "recipient"
                        else UTC)
        self.caps = Caps(sending.max_messages_per_hour, sending.max_messages_per_day, zone,
                         counts) if counts is not None else None
        self.aimd = (Aimd(limiter, sending.requests_per_second, clock=clock)
                     if sending.adaptive else None)
        self.weighted = any(not lane.unlimited for lane in limiter.lanes)
        self.capped_until: datetime | None = None  # a cap stopped the run until then
        self.expired = False  # the campaign's expiry stopped the run

    def costs(self, batch: Batch) -> Sequence[int]:
        return batch_costs(batch, self.ucs2) if self.weighted else ()

    def gate(self, batch: Batch, *, first: bool) -> float | None:
        """None: send now; STOP: stop the run; else seconds to wait (a cap with --wait)."""
        expires = self._sending.expires
        capped = first and self.caps is not None and self.caps.active
        if expires is None and not capped:
            return None  # the common case: no clock to read
        now = self._now()
        if expires is not None and now >= expires:
            self.expired = True
            return STOP
        if not capped or self.caps is None:
            return None  # a retry was counted with its first attempt
        until = self.caps.take(batch, now)
        if until is None:
            return None
        if expires is not None and until >= expires:
            self.expired = True  # the cap resets only after the campaign expires
            return STOP
        if not self._wait:
            self.capped_until = until
            return STOP
        if self._on_wait is not None:
            self._on_wait(self.caps.limit_hit, until)
        return max(0.05, (until - now).total_seconds())

    def answered(self, outcome: Outcome) -> None:
        """Every answer (retries included): the adaptive rate."""
        if self.aimd is not None:
            self.aimd.answered(outcome)

    def settled(self, batch: Batch, outcome: Outcome | None) -> None:
        """A batch's last word: give back the cap of a request proven unsent."""
        if self.caps is not None and (outcome is None or isinstance(outcome,
                                                                    Rejected | Transient)):
            self.caps.give_back(batch)  # the provider did not count it either

    def throttling(self) -> Throttling:
        return self.aimd.summary() if self.aimd is not None else Throttling()
