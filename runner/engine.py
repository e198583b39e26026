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
Losing the state store (``StateLost``) stops at once: no answer could be recorded any more, so
the batches in flight are left open in the store (``unknown`` at the rerun) and ``run`` raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from runner.answers import Accepted, Ambiguous, Outcome, Rejected, Transient
from runner.errors import StateLost
from runner.limiter import RateLimiter
from runner.model import OnAmbiguous
from runner.plan import Batch
from runner.state import JournalRow, Store

log = logging.getLogger("runner.requests")  # `campaign send -v`: one line a request

SendAttempt = Callable[[Batch], Awaitable[Outcome]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


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


class _StopAfterClock(stop_base):
    """Stop retrying once the injected clock says the batch's deadline has passed."""

    def __init__(self, clock: Clock, started: float, deadline: float | None) -> None:
        self._clock, self._started, self._deadline = clock, started, deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._deadline is not None and self._clock() - self._started >= self._deadline


def _last_answer(state: RetryCallState) -> Outcome | None:
    """When retries run out, the batch ends with its last answer (not tenacity's RetryError)."""
    return state.outcome.result() if state.outcome else None


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
        self.stop_event = asyncio.Event()
        self.stats = EngineStats()

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
        return EngineResult(self.stats, stopped=not exhausted)

    async def _worker(self, next_batch: Callable[[], Batch | None]) -> None:
        while (batch := next_batch()) is not None:
            await self._send_batch(batch)

    async def _send_batch(self, batch: Batch) -> None:
        started = self._clock()
        attempts = 0
        began = False

        last: Outcome | None = None  # the answer to the previous attempt

        async def attempt() -> Outcome | None:
            nonlocal attempts, began, last
            if not await self._acquire() or self.stop_event.is_set():
                # Stopped before this attempt left: nothing goes out after a stop. A batch never
                # sent stays pending; one waiting to retry keeps its last answer.
                return last
            if not began:
                await self._journal.abegin_batch(batch.id, list(zip(batch.rows, batch.numbers,
                                                                    strict=True)))
                began = True
            attempts += 1
            self.stats.requests += 1
            if attempts > 1:
                self.stats.retries += 1
                self.stats.retry_causes[last.code if last is not None and not isinstance(
                    last, Accepted) else "unknown"] += 1
            sent_at = self._clock()
            outcome = last = await self._send(batch)
            if log.isEnabledFor(logging.INFO):
                log.info("batch %s: %d numbers, attempt %d: %s in %.3f s", batch.id,
                         len(batch.rows), attempts, _answer(outcome), self._clock() - sent_at)
            if isinstance(outcome, Transient) and outcome.retry_after:
                self._limiter.pause_until(self._clock() + outcome.retry_after)
            return outcome

        outcome = await attempt()
        if self._should_retry(outcome):
            # Tenacity only for batches that need it: building it costs a tenth of a millisecond,
            # as much as a request. Its first attempt replays the answer already in hand.
            first: list[Outcome | None] = [outcome]

            async def replay_then_attempt() -> Outcome | None:
                return first.pop() if first else await attempt()

            retrying = AsyncRetrying(
                stop=stop_after_attempt(self._retry.max_attempts) | self._past_deadline(started),
                wait=self._wait,
                retry=retry_if_result(self._should_retry),
                sleep=self._pause,
                retry_error_callback=_last_answer,
                reraise=True,
            )
            outcome = await retrying(replay_then_attempt)
        self.stats.batches += 1
        if outcome is None or (isinstance(outcome, Transient) and self.stop_event.is_set()):
            if began:  # stopped between attempts: every answer so far proved nothing was sent
                await self._journal.arelease_batch(batch.id)
            return
        outcomes = self._row_outcomes(batch, outcome, attempts)
        await self._journal.afinish_rows(outcomes)
        for status, n in Counter(row[2] for row in outcomes).items():
            self.stats.count(status, n)
        if self._on_progress is not None:
            self._on_progress(self.stats)

    async def _acquire(self) -> bool:
        """A slot from the rate limiter, unless a stop comes first (then False)."""
        if self._limiter.delay() == 0.0 and not self.stop_event.is_set():
            await self._limiter.acquire()  # the common case: no wait, no extra tasks
            return True
        return await self._unless_stopped(self._limiter.acquire)

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

    def _past_deadline(self, started: float) -> stop_base:
        return _StopAfterClock(self._clock, started, self._retry.deadline)

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
