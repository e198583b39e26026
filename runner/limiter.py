"""A sliding-window rate limiter: at most N admissions (or N units of cost) in any window.

Token buckets and leaky buckets either allow a burst of 2N across a window edge or drain the rate
below what was configured. This limiter keeps the times (and costs) of the admissions still in
the window and admits a new one when its cost fits beside them, the oldest falling out once it is
at least one period old. That is exactly the condition for "no half-open window [t, t + period)
holds more than N", and it admits as early as that rule allows, so the configured rate is reached
(bursts of up to N are allowed).

Rates map to (N, period) like this, never exceeding the configured rate:

    rate >= 1      N = floor(rate) per 1 s        (10 -> 10/s, 2.5 -> 2/s)
    0 < rate < 1   1 per 1/rate seconds           (0.5 -> 1 every 2 s)
    None           no limit (pause_until still applies)

A limiter holds one limit on requests (every admission costs 1) and any number of weighted
``Lane``s (messages a second, parts a second): an admission passes when it fits in every one of
them at the same instant, and is recorded in all of them at that instant, so each limit holds on
its own and all of them together. A cost above a lane's N is admitted alone into an empty window
(otherwise it would wait for ever); the planner keeps batches below that.

Two options protect the provider's own count, which sees arrival times, not ours:

* ``burst``: admissions are also paced by GCRA (a token bucket of ``burst`` units refilled at
  N per period), so a full window arrives spread out, not as N requests at once that the network
  and the server's queue then bunch up against the next window's;
* ``guard``: the window is ``period + guard`` long, leaving that much slack for the difference
  in latency between two requests. It costs ``guard / period`` of the rate.

``set_rate`` changes the request rate while running (adaptive pacing lowers and raises it).
Waiters are served first come, first served; a waiter that is cancelled while it waits takes no
slot. ``pause_until`` (for a 429 with Retry-After) holds every admission until a clock time.
The clock and the sleep are injected so tests run on virtual time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

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
    """Least seconds from the first to the last of ``requests`` admissions (for plans); with a
    rate in units a second and ``requests`` units, the same for a weighted limit."""
    lim = limits(rate)
    if lim is None or requests <= 0:
        return 0.0
    per, period = lim
    return (math.ceil(requests / per) - 1) * period


class Lane:
    """One limit: at most N units of cost in any window of ``period + guard`` seconds."""

    def __init__(self, rate: float | None, *, burst: int | None = None, guard: float = 0.0,
                 name: str = "") -> None:
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if guard < 0:
            raise ValueError(f"guard must not be negative, not {guard!r}")
        self.name = name
        self._burst, self._guard = burst, guard
        self._recent: deque[tuple[float, int]] = deque()  # (time, cost) still in the window
        self._used = 0  # the costs in _recent
        self._tat = -math.inf  # GCRA: the theoretical arrival time of the next admission
        self.set_rate(rate)

    def set_rate(self, rate: float | None) -> None:
        self.rate = rate
        lim = limits(rate)
        self.unlimited = lim is None
        self.per, self._period = lim if lim is not None else (0, 0.0)
        self._window = self._period + self._guard
        self._interval = self._period / self.per if self.per else 0.0
        # burst=None (or >= N) leaves only the window rule.
        paced = self._burst is not None and self._burst < self.per
        self._tolerance = ((self._burst - 1) * self._interval
                           if paced and self._burst is not None else None)

    def _expire(self, now: float) -> None:
        # "The oldest is at least a window old", the very inequality the window guarantee
        # needs, so float rounding cannot let an admission slip in early.
        while self._recent and now - self._recent[0][0] >= self._window:
            self._used -= self._recent.popleft()[1]

    def wait(self, now: float, cost: int) -> float:
        """Seconds until ``cost`` fits (0.0: it fits now)."""
        if self.unlimited or cost <= 0:
            return 0.0
        self._expire(now)
        wait = 0.0
        if self._tolerance is not None and now < self._tat - self._tolerance:
            wait = max(self._tat - self._tolerance - now, _MIN_SLEEP)
        need = self._used + min(cost, self.per) - self.per  # units that must leave the window
        if need > 0:
            freed = 0
            for at, spent in self._recent:
                freed += spent
                if freed >= need:
                    # Not ready: never a zero wait, however the subtraction rounds.
                    wait = max(wait, at + self._window - now, _MIN_SLEEP)
                    break
        return wait

    def take(self, now: float, cost: int) -> None:
        if self.unlimited or cost <= 0:
            return
        self._recent.append((now, cost))
        self._used += cost
        self._tat = max(self._tat, now) + cost * self._interval


class RateLimiter:
    """At most N requests in any window of one period, and every extra lane's limit; FIFO;
    cancellation-safe."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        burst: int | None = None,
        guard: float = 0.0,
        lanes: Sequence[Lane] = (),
    ) -> None:
        self.requests = Lane(rate, burst=burst, guard=guard, name="requests")
        self.lanes = tuple(lanes)
        self._clock = clock
        self._sleep = sleep
        self._paused_until = -math.inf
        # asyncio.Lock hands itself to waiters in arrival order, and a waiter cancelled while
        # queued simply leaves the queue: that gives FIFO and cancellation safety for free.
        self._lock = asyncio.Lock()
        self.admitted = 0

    @property
    def rate(self) -> float | None:
        return self.requests.rate

    def set_rate(self, rate: float | None) -> None:
        """A new request rate from now on (admissions already made keep their places)."""
        self.requests.set_rate(rate)

    @property
    def paused_until(self) -> float:
        """Clock time before which nothing is admitted (-inf when not paused)."""
        return self._paused_until

    def pause_until(self, t: float) -> None:
        """Admit nothing before clock time ``t``; an earlier ``t`` never shortens a pause."""
        if t > self._paused_until:
            self._paused_until = t

    def _wait(self, now: float, costs: Sequence[int]) -> float:
        wait = max(self._paused_until - now, self.requests.wait(now, 1))
        for lane, cost in zip(self.lanes, costs, strict=False):
            wait = max(wait, lane.wait(now, cost))
        if wait <= 0.0:
            return 0.0
        # Never ask for a zero sleep when not ready (rounding could make the gap look like 0).
        return max(wait, _MIN_SLEEP)

    def delay(self, costs: Sequence[int] = ()) -> float:
        """Seconds until an admission of ``costs`` could happen (0.0 when it could now)."""
        return self._wait(self._clock(), costs)

    async def acquire(self, costs: Sequence[int] = ()) -> None:
        """Wait for a slot and take it; ``costs``: one per lane, in order (missing ones: 0)."""
        async with self._lock:
            # Re-check after every sleep: a pause may have been added meanwhile, and a real
            # event loop may wake us a hair early.
            while (wait := self._wait(now := self._clock(), costs)) > 0.0:
                await self._sleep(wait)
            # Nothing awaits between the check and the record, so a cancellation can only
            # land before a slot is taken, never after.
            self.requests.take(now, 1)
            for lane, cost in zip(self.lanes, costs, strict=False):
                lane.take(now, cost)
            self.admitted += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        return None
