"""Async sending: the rate limiter, bounded concurrency, retries, and journal updates.

The engine knows nothing of HTTP: it takes a ``send`` callable that makes one attempt for a batch
and returns a classified outcome (``runner.answers``), so tests drive it with fakes and a fake
clock.

For each batch a worker:
1. waits for the rate limiter (which a 429 with Retry-After pauses for everybody),
2. records the batch in flight in the journal (committed before the request leaves; the store's
   writes are awaited, so one on the network never holds up the loop),
3. makes the attempt, and retries transient answers with capped exponential backoff and jitter,
   up to ``max_attempts`` and a deadline,
4. records the answer per row: ``sent``, ``failed``, or ``unknown`` when the request may or may
   not have been delivered.
A stop (signal, send window closing) lets the batches in flight finish and takes no new ones.

Waiting has limits. Between attempts a batch whose answers all proved it unsent is released in
the journal (a kill then leaves it pending, not unknown) and begun again before the next one. A
wait (backoff or Retry-After) longer than what is left of the batch's deadline ends its retries,
its rows pending; a Retry-After above ``LONG_RETRY_AFTER`` stops the run (``rerun_after``).
``runner.pacing`` gives each request its costs in the limiter's lanes (messages, parts), may
stop the run before a batch (expiry, an hour or day cap) and hears every answer (the adaptive
rate); ``runner.refusals`` turns account refusals into rows ``refused`` and a stop.

Losing the state store (``StateLost``) stops at once: no answer could be recorded any more, so
the batches in flight are left open in the store (``unknown`` at the rerun) and ``run`` raises.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.wait import wait_random_exponential

from runner.answers import Accepted, Ambiguous, Outcome, Rejected, Transient
from runner.errors import StateLost
from runner.limiter import RateLimiter
from runner.model import OnAmbiguous
from runner.pacing import STOP, Pacing
from runner.plan import Batch
from runner.refusals import AccountWatch
from runner.retrying import StopBeforeDeadline, Tries, last_answer
from runner.state import JournalRow, Store

log = logging.getLogger("runner.requests")  # `campaign send -v`: one line a request

LONG_RETRY_AFTER = 300.0  # seconds: a Retry-After beyond this stops the run (rerun later)

SendAttempt = Callable[[Batch], Awaitable[Outcome]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
OnWait = Callable[[str, float], None]  # (why, seconds): the run waits that long


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base: float = 0.5  # seconds; the first retry waits up to this, then doubles
    backoff_cap: float = 30.0
    deadline: float | None = 300.0  # seconds from a batch's first attempt; None: no deadline


@dataclass(slots=True)
class EngineStats:
    batches: int = 0
    requests: int = 0
    retries: int = 0
    rows_done: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    retry_causes: Counter[str] = field(default_factory=Counter)  # the answer each retry followed

    def count(self, status: str, n: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + n
        self.rows_done += n


@dataclass(frozen=True, slots=True)
class EngineResult:
    stats: EngineStats
    stopped: bool  # True when a stop cut the run short: some rows were never attempted
    rerun_after: float | None = None  # seconds: Kaleyra asked to wait this long, which stopped it


def _answer(outcome: Outcome) -> str:
    """An answer in a few words for the request log (never the request or the key)."""
    if isinstance(outcome, Accepted):
        return f"accepted ({len(outcome.message_ids)} ids)"
    kind = type(outcome).__name__.lower()
    return f"{kind} {outcome.code}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Engine:
    def __init__(
        self,
        *,
        send: SendAttempt,
        journal: Store,
        limiter: RateLimiter,
        concurrency: int,
        retry: RetryPolicy,
        on_ambiguous: OnAmbiguous = "mark_unknown",
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Callable[[], str] = _now_iso,
        on_progress: Callable[[EngineStats], None] | None = None,
        on_wait: OnWait | None = None,
        pacing: Pacing | None = None,
        watch: AccountWatch | None = None,
    ) -> None:
        self._send = send
        self._journal = journal
        self._limiter = limiter
        self._concurrency = max(1, concurrency)
        self._retry = retry
        self._on_ambiguous = on_ambiguous
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._on_progress = on_progress
        self._on_wait = on_wait
        self.pacing = pacing  # costs, caps, expiry and the adaptive rate (runner.pacing)
        self.watch = watch  # account refusals stop the run (runner.refusals)
        self.stop_event = asyncio.Event()
        self.stats = EngineStats()
        self.rerun_after: float | None = None  # a Retry-After too long to wait out stopped us

    def stop(self) -> None:
        """Take no new batches; batches in flight finish (the caller bounds how long)."""
        self.stop_event.set()

    async def run(self, batches: Iterable[Batch]) -> EngineResult:
        source = iter(batches)
        exhausted = False

        def next_batch() -> Batch | None:
            nonlocal exhausted
            if self.stop_event.is_set() or exhausted:
                return None
            batch = next(source, None)
            if batch is None:
                exhausted = True
            return batch

        workers = [asyncio.create_task(self._worker(next_batch)) for _ in range(self._concurrency)]
        lost = False
        try:
            await asyncio.gather(*workers)
        except StateLost:
            lost = True
            self.stop()  # nothing more can be recorded: what is in flight stays open
            raise
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if not lost:
                await self._journal.aflush()
        return EngineResult(self.stats, stopped=not exhausted, rerun_after=self.rerun_after)

    async def _worker(self, next_batch: Callable[[], Batch | None]) -> None:
        while (batch := next_batch()) is not None:
            await self._send_batch(batch)

    async def _send_batch(self, batch: Batch) -> None:
        started = self._clock()
        tries = Tries()

        async def attempt() -> Outcome | None:
            if not await self._acquire(batch, first=not tries.counted) or \
                    self.stop_event.is_set():
                # Stopped before this attempt left: nothing goes out after a stop. A batch never
                # sent stays pending; one waiting to retry keeps its last answer.
                return tries.last
            tries.counted = True
            if not tries.began:
                await self._journal.abegin_batch(batch.id, list(zip(batch.rows, batch.numbers,
                                                                    strict=True)))
                tries.began = True
            tries.attempts += 1
            self.stats.requests += 1
            last = tries.last
            if tries.attempts > 1:
                self.stats.retries += 1
                self.stats.retry_causes[last.code if last is not None and not isinstance(
                    last, Accepted) else "unknown"] += 1
            sent_at = self._clock()
            outcome = tries.last = await self._send(batch)
            if log.isEnabledFor(logging.INFO):
                log.info("batch %s: %d numbers, attempt %d: %s in %.3f s", batch.id,
                         len(batch.rows), tries.attempts, _answer(outcome),
                         self._clock() - sent_at)
            if isinstance(outcome, Ambiguous):
                tries.maybe_sent = outcome
            elif isinstance(outcome, Transient) and outcome.retry_after:
                self._asked_to_wait(outcome.code, outcome.retry_after)
            if self.pacing is not None:
                self.pacing.answered(outcome)
            return outcome

        outcome = await attempt()
        if self._should_retry(outcome):
            # Tenacity only for batches that need it: building it costs a tenth of a millisecond,
            # as much as a request. Its first attempt replays the answer already in hand.
            first: list[Outcome | None] = [outcome]

            async def replay_then_attempt() -> Outcome | None:
                return first.pop() if first else await attempt()

            async def pause(seconds: float) -> None:
                await self._between_attempts(batch, tries, seconds)

            retrying = AsyncRetrying(
                stop=stop_after_attempt(self._retry.max_attempts) | StopBeforeDeadline(
                    self._clock, started, self._retry.deadline, tries),
                wait=self._wait,
                retry=retry_if_result(self._should_retry),
                sleep=pause,
                retry_error_callback=last_answer,
                reraise=True,
            )
            outcome = await retrying(replay_then_attempt)
        self.stats.batches += 1
        if isinstance(outcome, Transient) and tries.maybe_sent is not None:
            outcome = tries.maybe_sent  # an earlier answer said it may have gone: unknown
        if self.pacing is not None and tries.counted:  # an ambiguous answer keeps its count
            self.pacing.settled(batch, outcome if not self.stop_event.is_set()
                                or not isinstance(outcome, Transient) else None)
        if outcome is None or (isinstance(outcome, Transient) and (
                self.stop_event.is_set() or tries.out_of_time)):
            # Stopped, or out of time, between attempts: every answer so far proved nothing was
            # sent, so the rows are pending (a rerun sends them).
            if tries.began:
                await self._journal.arelease_batch(batch.id)
            if tries.out_of_time:
                self._say_why_we_wait(outcome)
            return
        outcomes = self._row_outcomes(batch, outcome, tries.attempts)
        outcomes = self._account_check(outcome, outcomes)
        await self._journal.afinish_rows(outcomes)
        for status, n in Counter(row[2] for row in outcomes).items():
            self.stats.count(status, n)
        if self._on_progress is not None:
            self._on_progress(self.stats)

    def _asked_to_wait(self, code: str, seconds: float) -> None:
        """A Retry-After: everybody waits, or, when it is too long to wait out, the run stops."""
        if seconds > LONG_RETRY_AFTER:
            self.rerun_after = max(self.rerun_after or 0.0, seconds)
            self.stop()
            return
        self._limiter.pause_until(self._clock() + seconds)

    async def _between_attempts(self, batch: Batch, tries: Tries, seconds: float) -> None:
        """The wait before a retry. A batch proven unsent so far is not in flight meanwhile: it is
        released (committed), and begun again when its next attempt leaves."""
        if tries.began and tries.maybe_sent is None:
            await self._journal.arelease_batch(batch.id)
            await self._journal.aflush()
            tries.began = False
        self._say_why_we_wait(tries.last, seconds)
        await self._pause(seconds)

    def _say_why_we_wait(self, last: Outcome | None, seconds: float | None = None) -> None:
        if self._on_wait is None or last is None or isinstance(last, Accepted):
            return
        if isinstance(last, Transient) and last.retry_after:
            pause = self._limiter.paused_until - self._clock()
            self._on_wait(f"Kaleyra asked to wait ({last.code}, Retry-After)",
                          max(pause, seconds or 0.0))
        elif seconds is not None:
            self._on_wait(f"retrying after {last.code}", seconds)

    async def _acquire(self, batch: Batch, *, first: bool = True) -> bool:
        """A slot from the rate limiter, unless a stop comes first (then False); then the
        pacing's gate: expiry or a cap may stop the run (False), a cap with --wait waits."""
        costs = self.pacing.costs(batch) if self.pacing is not None else ()
        while True:
            if self._limiter.delay(costs) == 0.0 and not self.stop_event.is_set():
                await self._limiter.acquire(costs)  # the common case: no wait, no extra tasks
            elif not await self._unless_stopped(lambda: self._limiter.acquire(costs)):
                return False
            if self.stop_event.is_set():
                return False  # a stop while the limiter made us wait: take nothing from a cap
            gate = self.pacing.gate(batch, first=first) if self.pacing is not None else None
            if gate is None:
                return True
            if gate == STOP:
                self.stop()
                return False
            if not await self._unless_stopped(functools.partial(self._sleep, gate)):
                return False

    def _account_check(self, outcome: Outcome, rows: list[JournalRow]) -> list[JournalRow]:
        """Rows as recorded; an account refusal turns them (and a streak's) ``refused``, and
        stops the run: no new batch, those in flight finish."""
        if self.watch is None:
            return rows
        refused = self.watch.settle(outcome, rows)
        if refused is None:
            return rows
        if self.watch.refusal is not None:
            self.stop()
        if len(refused) > len(rows):  # the streak's earlier batches were counted failed
            self.stats.count("failed", len(rows) - len(refused))
        return refused

    async def _pause(self, seconds: float) -> None:
        """The wait between attempts (backoff, Retry-After), cut short by a stop."""
        await self._unless_stopped(lambda: self._sleep(seconds))

    async def _unless_stopped(self, wait: Callable[[], Awaitable[None]]) -> bool:
        """Await ``wait()`` unless a stop comes first, which cancels it. True if it finished.

        A stop must not wait out a long Retry-After pause or backoff: the grace period after a
        signal would run out and turn batches proven unsent into ``unknown``.
        """
        if self.stop_event.is_set():
            return False
        task = asyncio.ensure_future(wait())
        stopped = asyncio.ensure_future(self.stop_event.wait())
        try:
            await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()  # a limiter waiter cancelled takes no slot
        if not task.done() or task.cancelled():
            return False
        task.result()  # re-raise what the wait raised, if anything
        return True

    def _should_retry(self, outcome: Outcome | None) -> bool:
        if outcome is None or self.stop_event.is_set():
            return False
        if isinstance(outcome, Transient):
            return True
        return isinstance(outcome, Ambiguous) and self._on_ambiguous == "retry"

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(
            multiplier=self._retry.backoff_base, max=self._retry.backoff_cap
        )(state)
        outcome = state.outcome.result() if state.outcome is not None else None
        if isinstance(outcome, Transient) and outcome.retry_after:
            return max(backoff, outcome.retry_after)
        return backoff

    def _row_outcomes(self, batch: Batch, outcome: Outcome, attempts: int) -> list[JournalRow]:
        """The journal rows an answer makes, as plain tuples: this runs for every recipient."""
        sent_at, batch_id = self._wall_clock(), batch.id
        people = zip(batch.rows, batch.numbers, strict=True)
        if isinstance(outcome, Accepted):
            ids = outcome.message_ids
            return [(row, phone, "sent", batch_id, ids[phone], "", "", attempts, sent_at)
                    if phone in ids else
                    (row, phone, "unknown", batch_id, "", "NO_ID",
                     "accepted, but the answer had no message id for it", attempts, sent_at)
                    for row, phone in people]
        if isinstance(outcome, Rejected):
            status, error = "failed", outcome.message
        elif isinstance(outcome, Transient):
            status, error = "failed", f"gave up after {attempts} attempts: {outcome.message}"
        else:
            status, error = "unknown", f"may or may not have been delivered: {outcome.message}"
        return [(row, phone, status, batch_id, "", outcome.code, error, attempts, sent_at)
                for row, phone in people]
