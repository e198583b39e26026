"""The rate limiter on virtual time: nothing here sleeps for real."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.limiter import RateLimiter, limits, min_duration
from runner.pacing import GUARD


class VirtualTime:
    """A fake clock whose sleeps resolve only when the test (or ``run``) moves time on."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(delay, 0.0), next(self._seq), fut))
        await fut

    @staticmethod
    async def settle() -> None:
        # Enough turns of the loop for lock hand-offs and task wake-ups to play out.
        for _ in range(20):
            await asyncio.sleep(0)

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def advance(self, dt: float) -> None:
        target = self.now + dt
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            self.now = max(self.now, self._sleepers[0][0])
            self._wake_due()
            await self.settle()
        self.now = target
        await self.settle()

    async def run(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Jump from one wake-up to the next until every task is done."""
        await self.settle()
        while not all(t.done() for t in tasks):
            live = [s for s in self._sleepers if not s[2].done()]
            assert live, "deadlock: tasks wait but nobody sleeps"
            self.now = max(self.now, min(s[0] for s in live))
            self._wake_due()
            await self.settle()


async def acquire_at(vt: VirtualTime, limiter: RateLimiter, at: float, log: list[tuple[int, float]],
                     ident: int) -> None:
    if at > vt.now:
        await vt.sleep(at - vt.now)
    await limiter.acquire()
    log.append((ident, vt.now))


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def assert_window(times: list[float], per: int, period: float) -> None:
    times = sorted(times)
    for i in range(len(times) - per):
        # Same inequality as the guarantee: a window [t, t + period) holds at most `per`.
        assert times[i + per] - times[i] >= period, (i, times[i], times[i + per])


# -- rate mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(10, (10, 1.0)), (10.0, (10, 1.0)), (2.5, (2, 1.0)), (1, (1, 1.0)), (0.5, (1, 2.0)),
     (0.25, (1, 4.0))],
)
def test_rate_maps_to_admissions_per_period_never_above_the_rate(
        rate: float, expected: tuple[int, float]) -> None:
    assert limits(rate) == expected


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_nonsense_rates_are_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate)


def test_min_duration_for_a_plan() -> None:
    assert min_duration(10, 22) == 2.0  # 10 at t=0, 10 at t=1, 2 at t=2
    assert min_duration(10, 10) == 0.0
    assert min_duration(0.5, 3) == 4.0
    assert min_duration(None, 1000) == 0.0
    assert min_duration(10, 0) == 0.0


# -- the window guarantee and a full rate ------------------------------------------------------

arrivals = st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(rate=st.sampled_from([1, 3, 7.9, 0.5]), at=arrivals)
def test_no_window_holds_more_than_n_and_each_admission_is_as_early_as_allowed(
        rate: float, at: list[float]) -> None:
    per, period = limits(rate) or (0, 0.0)
    log: list[tuple[int, float]] = []

    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(rate, clock=vt.clock, sleep=vt.sleep)
        tasks = [asyncio.create_task(acquire_at(vt, limiter, t, log, i)) for i, t in enumerate(at)]
        await vt.run(tasks)
        assert limiter.admitted == len(at)

    run(main)
    times = [t for _, t in log]
    assert_window(times, per, period)

    # Full rate: FIFO by arrival (ties by creation order), each admitted at the earliest moment
    # the rule allows, never later.
    order = sorted(range(len(at)), key=lambda i: (at[i], i))
    assert [i for i, _ in log] == order
    expected: list[float] = []
    for i in order:
        t = at[i]
        if expected:
            t = max(t, expected[-1])
        if len(expected) >= per:
            t = max(t, expected[-per] + period)
        expected.append(t)
    assert times == pytest.approx(expected, abs=1e-5)


def test_a_burst_of_n_goes_at_once_and_the_next_waits_a_full_period() -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(10, clock=vt.clock, sleep=vt.sleep)
        log: list[tuple[int, float]] = []
        tasks = [asyncio.create_task(acquire_at(vt, limiter, 0.0, log, i)) for i in range(25)]
        await vt.run(tasks)
        times = [t for _, t in log]
        assert times == [0.0] * 10 + [1.0] * 10 + [2.0] * 5

    run(main)


def test_a_steady_stream_is_not_slowed_below_the_rate() -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(4, clock=vt.clock, sleep=vt.sleep)
        log: list[tuple[int, float]] = []
        # 40 arrivals evenly spread at exactly the rate: nobody should wait at all.
        tasks = [asyncio.create_task(acquire_at(vt, limiter, i * 0.25, log, i)) for i in range(40)]
        await vt.run(tasks)
        assert [t for _, t in log] == pytest.approx([i * 0.25 for i in range(40)])
        assert vt.now == pytest.approx(39 * 0.25)

    run(main)


def test_no_limit_admits_everything_at_once() -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(None, clock=vt.clock, sleep=vt.sleep)
        for _ in range(1000):
            await limiter.acquire()
        assert limiter.admitted == 1000
        assert vt.now == 0.0 and vt.sleeps == []

    run(main)


# -- pause_until -------------------------------------------------------------------------------


def test_pause_until_holds_every_admission_and_cannot_be_shortened() -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(100, clock=vt.clock, sleep=vt.sleep)
        await limiter.acquire()
        limiter.pause_until(5.0)
        limiter.pause_until(2.0)  # an earlier Retry-After must not cut the pause short
        log: list[tuple[int, float]] = []
        tasks = [asyncio.create_task(acquire_at(vt, limiter, 0.0, log, i)) for i in range(3)]
        await vt.advance(4.999)
        assert log == []
        await vt.run(tasks)
        assert [t for _, t in log] == [5.0, 5.0, 5.0]

    run(main)


def test_pause_added_while_waiting_for_a_slot_is_honoured() -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(1, clock=vt.clock, sleep=vt.sleep)
        await limiter.acquire()
        log: list[tuple[int, float]] = []
        task = asyncio.create_task(acquire_at(vt, limiter, 0.0, log, 0))
        await vt.advance(0.5)  # the waiter sleeps until t=1 for its slot ...
        limiter.pause_until(3.0)  # ... when a 429 says "come back at 3"
        await vt.run([task])
        assert log == [(0, 3.0)]

    run(main)


def test_pause_applies_even_without_a_rate() -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(None, clock=vt.clock, sleep=vt.sleep)
        limiter.pause_until(2.5)
        log: list[tuple[int, float]] = []
        await vt.run([asyncio.create_task(acquire_at(vt, limiter, 0.0, log, 0))])
        assert log == [(0, 2.5)]

    run(main)


# -- fairness and cancellation -----------------------------------------------------------------


def test_waiters_are_served_in_arrival_order() -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(2, clock=vt.clock, sleep=vt.sleep)
        log: list[tuple[int, float]] = []
        tasks = []
        for i in range(9):
            tasks.append(asyncio.create_task(acquire_at(vt, limiter, 0.0, log, i)))
            await asyncio.sleep(0)  # each one reaches the queue before the next is made
        await vt.run(tasks)
        assert [i for i, _ in log] == list(range(9))
        assert [t for _, t in log] == [0, 0, 1, 1, 2, 2, 3, 3, 4]

    run(main)


@pytest.mark.parametrize("position", ["head", "queued"])
def test_a_cancelled_waiter_takes_no_slot(position: str) -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(1, clock=vt.clock, sleep=vt.sleep)
        await limiter.acquire()  # the slot for [0, 1) is gone
        log: list[tuple[int, float]] = []
        waiters = [asyncio.create_task(acquire_at(vt, limiter, 0.0, log, i)) for i in range(3)]
        await vt.advance(0.5)
        victim = waiters[0] if position == "head" else waiters[1]
        victim.cancel()
        await vt.run([w for w in waiters if w is not victim])
        assert victim.cancelled()
        # The survivors get the slots at 1 and 2: the cancelled one left no gap and no slot.
        assert [t for _, t in log] == [1.0, 2.0]
        assert limiter.admitted == 3  # the first acquire plus the two survivors

    run(main)


def test_limiter_works_on_the_real_clock_for_a_short_burst() -> None:
    # Defaults (time.monotonic, asyncio.sleep) with no waiting needed: 5 slots at rate 5.
    async def main() -> None:
        limiter = RateLimiter(5)
        async with limiter:
            pass
        for _ in range(4):
            await limiter.acquire()
        assert limiter.admitted == 5
        assert limiter.delay() > 0.5  # a sixth would have to wait for the window to move

    run(main)


# -- pacing and guard (what the provider sees) ----------------------------------------------


def test_paced_bursts_spread_a_window_instead_of_sending_it_at_once() -> None:
    async def main() -> None:
        vt = VirtualTime()
        limiter = RateLimiter(100, clock=vt.clock, sleep=vt.sleep, burst=5)
        log: list[tuple[int, float]] = []
        tasks = [asyncio.create_task(acquire_at(vt, limiter, 0.0, log, i)) for i in range(30)]
        await vt.run(tasks)
        times = [t for _, t in log]
        assert times[:5] == [0.0] * 5  # the burst
        gaps = [b - a for a, b in itertools.pairwise(times[5:])]
        assert gaps == pytest.approx([0.01] * len(gaps))  # then one every 1/rate

    run(main)


@pytest.mark.parametrize("rate", [50, 166, 500, 1000])
def test_guarded_window_holds_and_keeps_98_percent_of_the_rate(rate: int) -> None:
    """The provider's limiter as shipped (runner.pacing): bursts of a twentieth, GUARD slack."""
    burst, guard = rate // 20, GUARD
    class BurstyTime(VirtualTime):
        @staticmethod
        async def settle() -> None:  # a burst of 25 takes more loop turns than the default
            for _ in range(400):
                await asyncio.sleep(0)

    async def main() -> None:
        vt = BurstyTime()
        limiter = RateLimiter(rate, clock=vt.clock, sleep=vt.sleep, burst=burst, guard=guard)
        times: list[float] = []
        n = rate * 3

        async def worker() -> None:  # four callers, as the engine's workers are
            while len(times) < n:
                await limiter.acquire()
                times.append(vt.now)

        await vt.run([asyncio.create_task(worker()) for _ in range(4)])
        times = times[:n]
        # No window of 1 s plus the guard holds more than the rate: jitter up to the guard
        # between two requests cannot put more than `rate` into one second at the far end.
        assert_window(times, rate, 1.0 + guard)
        # As the provider sees it once running: request i + rate comes how long after i.
        gaps = [times[i + rate] - times[i] for i in range(n - rate)]
        achieved = rate / (sum(gaps) / len(gaps))
        assert achieved >= 0.98 * rate  # the window assert above is the upper bound

    run(main)


def test_burst_and_guard_are_checked() -> None:
    with pytest.raises(ValueError):
        RateLimiter(10, burst=0)
    with pytest.raises(ValueError):
        RateLimiter(10, guard=-0.1)


@pytest.mark.parametrize(("per_second", "expected_size"), [(166, 83), (250, 83), (1000, 100)])
def test_messages_a_second_are_kept_full_by_the_shipped_batches(
        per_second: int, expected_size: int) -> None:
    """The campaign's batches (runner.model) under the provider's limiter (runner.pacing):
    the messages a second, as the provider counts them, reach 98% and never exceed it."""
    from runner.model import Account, Campaign, MessageSpec, RecipientsSpec, SendingSpec
    from runner.pacing import provider_limiter

    sending = SendingSpec(batch_size=100, requests_per_second=100,
                          messages_per_second=per_second)
    campaign = Campaign(Path("c.yaml"), "c", Account("IN"), MessageSpec("KLRHXA", "TXN"),
                        RecipientsSpec(Path("r.csv")), sending)
    size = campaign.effective_batch_size
    assert size == expected_size

    async def main() -> None:
        vt = VirtualTime()
        limiter = provider_limiter(sending, clock=vt.clock, sleep=vt.sleep)
        times: list[float] = []
        batches = 8 * per_second // size  # eight seconds of sending

        async def worker() -> None:
            while len(times) < batches:
                await limiter.acquire((size, size))
                times.append(vt.now)

        await vt.run([asyncio.create_task(worker()) for _ in range(4)])
        sent = [t for t in times[:batches] for _ in range(size)]  # a time a message
        assert_window(sent, per_second, 1.0)
        gaps = [sent[i + per_second] - sent[i] for i in range(len(sent) - per_second)]
        assert per_second / (sum(gaps) / len(gaps)) >= 0.98 * per_second

    run(main)
