"""A sliding-window rate limiter: at most N admissions in any one-second window.

Token buckets and leaky buckets either allow a burst of 2N across a window edge or drain the rate
below what was configured. This limiter keeps the times of the last N admissions and admits a new
one when fewer than N are recorded or the oldest is at least one period old. That is exactly the
condition for "no half-open window [t, t + period) holds more than N admissions", and it admits
as early as that rule allows, so the configured rate is reached (bursts of up to N are allowed).

Rates map to (N, period) like this, never exceeding the configured rate:

    rate >= 1      N = floor(rate) per 1 s        (10 -> 10/s, 2.5 -> 2/s)
    0 < rate < 1   1 per 1/rate seconds           (0.5 -> 1 every 2 s)
    None           no limit (pause_until still applies)

Two options protect the provider's own count, which sees arrival times, not ours:

* ``burst``: admissions are also paced by GCRA (a token bucket of ``burst`` tokens refilled at
  N per period), so a full window arrives spread out, not as N requests at once that the network
  and the server's queue then bunch up against the next window's;
* ``guard``: the window is ``period + guard`` long, leaving that much slack for the difference
  in latency between two requests. It costs ``guard / period`` of the rate.

Waiters are served first come, first served; a waiter that is cancelled while it waits takes no
slot. ``pause_until`` (for a 429 with Retry-After) holds every admission until a clock time.
The clock and the sleep are injected so tests run on virtual time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_MIN_SLEEP = 1e-6  # seconds; a floor for sleeps so a waiter always makes progress


def limits(rate: float | None) -> tuple[int, float] | None:
    """(N, period in seconds) for a rate in requests a second; None for no limit."""
    if rate is None:
        return None
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate must be a positive number or None, not {rate!r}")
    if rate < 1:
        return 1, 1.0 / rate
    return math.floor(rate), 1.0


def min_duration(rate: float | None, requests: int) -> float:
    """Least seconds from the first to the last of ``requests`` admissions (for plans)."""
    lim = limits(rate)
    if lim is None or requests <= 0:
        return 0.0
    per, period = lim
    return (math.ceil(requests / per) - 1) * period


class RateLimiter:
    """At most N admissions in any window of one period; FIFO; cancellation-safe."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        burst: int | None = None,
        guard: float = 0.0,
    ) -> None:
        self.rate = rate
        lim = limits(rate)
        self._per, self._period = lim if lim is not None else (0, 0.0)
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if guard < 0:
            raise ValueError(f"guard must not be negative, not {guard!r}")
        self._window = self._period + guard
        # GCRA: the theoretical arrival time of the next admission, and how far ahead of it a
        # burst may run. burst=None (or >= N) leaves only the window rule.
        self._interval = self._period / self._per if self._per else 0.0
        paced = burst is not None and burst < self._per
        self._tolerance = (burst - 1) * self._interval if paced and burst is not None else None
        self._tat = -math.inf
        self._unlimited = lim is None
        self._clock = clock
        self._sleep = sleep
        self._recent: deque[float] = deque(maxlen=max(self._per, 1))
        self._paused_until = -math.inf
        # asyncio.Lock hands itself to waiters in arrival order, and a waiter cancelled while
        # queued simply leaves the queue: that gives FIFO and cancellation safety for free.
        self._lock = asyncio.Lock()
        self.admitted = 0

    @property
    def paused_until(self) -> float:
        """Clock time before which nothing is admitted (-inf when not paused)."""
        return self._paused_until

    def pause_until(self, t: float) -> None:
        """Admit nothing before clock time ``t``; an earlier ``t`` never shortens a pause."""
        if t > self._paused_until:
            self._paused_until = t

    def _ready(self, now: float) -> bool:
        # Written as "the oldest is at least a period old", the very inequality the window
        # guarantee needs, so float rounding cannot let an admission slip in early.
        if now < self._paused_until:
            return False
        if self._tolerance is not None and now < self._tat - self._tolerance:
            return False
        return (self._unlimited or len(self._recent) < self._per
                or now - self._recent[0] >= self._window)

    def _wait(self, now: float) -> float:
        if self._ready(now):
            return 0.0
        wait = self._paused_until - now
        if self._tolerance is not None:
            wait = max(wait, self._tat - self._tolerance - now)
        if not self._unlimited and len(self._recent) >= self._per:
            wait = max(wait, self._recent[0] + self._window - now)
        # Never ask for a zero sleep when not ready (rounding could make the gap look like 0).
        return max(wait, _MIN_SLEEP)

    def delay(self) -> float:
        """Seconds until the next admission could happen (0.0 when one could happen now)."""
        return self._wait(self._clock())

    async def acquire(self) -> None:
        """Wait for a slot and take it."""
        async with self._lock:
            # Re-check after every sleep: a pause may have been added meanwhile, and a real
            # event loop may wake us a hair early.
            while (wait := self._wait(now := self._clock())) > 0.0:
                await self._sleep(wait)
            # Nothing awaits between the check and the record, so a cancellation can only
            # land before a slot is taken, never after.
            if not self._unlimited:
                self._recent.append(now)
                self._tat = max(self._tat, now) + self._interval
            self.admitted += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        return None
