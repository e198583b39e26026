"""Asking Kaleyra for the delivery status of message ids: the polling half of `campaign status`.

The ids are asked for up to 100 a request (``GET /v1/<SID>/sms/status``) under the run's rate
limit by ``concurrency`` workers; transient answers are retried with capped exponential backoff
and jitter as the engine does (a Retry-After pauses every worker). A permanent refusal (a wrong
key, an unknown SID) stops the run: every other request would be refused too, so the chunks not
yet asked are marked unchecked instead.

Waits have the engine's limits: a chunk whose next wait (backoff or Retry-After) would end past
its deadline (``RetryPolicy.deadline``) is left unchecked, and a Retry-After above five minutes
stops the polling: every chunk not yet answered is unchecked, and ``rerun_after`` says how long
Kaleyra asked to wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from runner.answers import Delivery, Rejected, StatusAnswer, StatusOutcome, Transient
from runner.endpoint import Endpoint
from runner.engine import LONG_RETRY_AFTER, RetryPolicy
from runner.kaleyra import STATUS_BATCH, connector, get_status
from runner.limiter import RateLimiter
from runner.model import Account

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StatusSettings:
    campaign: str  # the campaign file, as shown in messages
    account: Account
    requests_per_second: float | None
    concurrency: int
    max_attempts: int
    timeout: float


@dataclass(slots=True)
class PollResult:
    deliveries: dict[str, Delivery] = field(default_factory=dict)  # message_id -> answer
    missing: set[str] = field(default_factory=set)  # asked, answered, but not mentioned
    unchecked: dict[str, str] = field(default_factory=dict)  # message_id -> why not
    refused: Rejected | None = None
    requests: int = 0
    retries: int = 0
    rerun_after: float | None = None  # seconds: a Retry-After too long to wait out stopped it


class _StopBefore(stop_base):
    """Stop when the next wait would end past ``deadline`` seconds from ``started``."""

    def __init__(self, clock: Clock, started: float, deadline: float | None) -> None:
        self._clock, self._started, self._deadline = clock, started, deadline
        self.hit = False

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._deadline is None:
            return False
        left = self._deadline - (self._clock() - self._started)
        self.hit = left <= 0 or retry_state.upcoming_sleep > left
        return self.hit


class Poller:
    """Asks for ids in chunks: a rate limiter, ``concurrency`` workers, tenacity retries."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: Endpoint,
                 settings: StatusSettings, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, retry: RetryPolicy | None = None) -> None:
        self._session, self._endpoint, self._settings = session, endpoint, settings
        self._clock, self._sleep = clock, sleep
        self._retry = retry or RetryPolicy(max_attempts=settings.max_attempts)
        self._limiter = RateLimiter(settings.requests_per_second, clock=clock, sleep=sleep)
        self.result = PollResult()

    async def run(self, message_ids: Sequence[str]) -> PollResult:
        chunks = iter([message_ids[i:i + STATUS_BATCH]
                       for i in range(0, len(message_ids), STATUS_BATCH)])
        workers = [self._worker(chunks) for _ in range(self._settings.concurrency)]
        await asyncio.gather(*workers)
        return self.result

    async def _worker(self, chunks: Iterator[Sequence[str]]) -> None:
        for chunk in chunks:  # workers share the iterator: each chunk is taken once
            if self.result.refused is not None:
                self._unchecked(chunk, "not asked: an earlier status request was refused")
                continue
            if self.result.rerun_after is not None:
                self._unchecked(chunk, self._asked_to_wait())
                continue
            self._record(chunk, await self._ask(chunk))

    async def _ask(self, chunk: Sequence[str]) -> StatusOutcome:
        attempts = 0
        deadline = _StopBefore(self._clock, self._clock(), self._retry.deadline)

        async def attempt() -> StatusOutcome:
            nonlocal attempts
            await self._limiter.acquire()
            attempts += 1
            self.result.requests += 1
            if attempts > 1:
                self.result.retries += 1
            outcome = await get_status(self._session, self._endpoint, chunk,
                                       timeout=self._settings.timeout)
            if isinstance(outcome, Transient) and outcome.retry_after:
                if outcome.retry_after > LONG_RETRY_AFTER:  # not worth waiting: stop asking
                    self.result.rerun_after = max(self.result.rerun_after or 0.0,
                                                  outcome.retry_after)
                else:
                    self._limiter.pause_until(self._clock() + outcome.retry_after)  # everybody
            return outcome

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.max_attempts) | deadline,
            wait=self._wait,
            retry=retry_if_result(lambda o: isinstance(o, Transient)
                                  and self.result.rerun_after is None),
            sleep=self._sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            reraise=True,
        )
        outcome: StatusOutcome = await retrying(attempt)
        if isinstance(outcome, Transient) and self.result.rerun_after is not None:
            return Transient(outcome.code, self._asked_to_wait(), outcome.http_status)
        if isinstance(outcome, Transient) and deadline.hit:
            return Transient(outcome.code, f"not checked: the next wait would have gone past "
                             f"{self._retry.deadline:g} s ({outcome.message})",
                             outcome.http_status)
        return outcome

    def _asked_to_wait(self) -> str:
        return (f"not checked: Kaleyra asked to wait {self.result.rerun_after:,.0f} s "
                "(Retry-After)")

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(multiplier=self._retry.backoff_base,
                                          max=self._retry.backoff_cap)(state)
        outcome = state.outcome.result() if state.outcome is not None else None
        if isinstance(outcome, Transient) and outcome.retry_after:
            return max(backoff, outcome.retry_after)
        return backoff

    def _record(self, chunk: Sequence[str], outcome: StatusOutcome) -> None:
        if isinstance(outcome, StatusAnswer):
            self.result.deliveries.update(outcome.deliveries)
            self.result.missing.update(outcome.missing)
        elif isinstance(outcome, Rejected):
            self.result.refused = self.result.refused or outcome
            self._unchecked(chunk, f"status request refused: {outcome.message}")
        elif outcome.message.startswith("not checked"):
            self._unchecked(chunk, outcome.message)
        else:
            self._unchecked(chunk, f"not checked after {self._retry.max_attempts} attempts: "
                                   f"{outcome.message}")

    def _unchecked(self, chunk: Sequence[str], why: str) -> None:
        self.result.unchecked.update(dict.fromkeys(chunk, why))


async def poll(endpoint: Endpoint, settings: StatusSettings, message_ids: Sequence[str], *,
               clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep,
               retry: RetryPolicy | None = None) -> PollResult:
    async with aiohttp.ClientSession(connector=connector(settings.concurrency)) as session:
        poller = Poller(session, endpoint, settings, clock=clock, sleep=sleep, retry=retry)
        return await poller.run(message_ids)
