"""Asking Kaleyra for the delivery status of message ids: the polling half of `campaign status`.

The ids are asked for up to 100 a request (``GET /v1/<SID>/sms/status``) under the run's rate
limit by ``concurrency`` workers; transient answers are retried with capped exponential backoff
and jitter as the engine does (a Retry-After pauses every worker). A permanent refusal (a wrong
key, an unknown SID) stops the run: every other request would be refused too, so the chunks not
yet asked are marked unchecked instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.wait import wait_random_exponential

from runner.answers import Delivery, Rejected, StatusAnswer, StatusOutcome, Transient
from runner.endpoint import Endpoint
from runner.engine import RetryPolicy
from runner.kaleyra import STATUS_BATCH, get_status
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
            self._record(chunk, await self._ask(chunk))

    async def _ask(self, chunk: Sequence[str]) -> StatusOutcome:
        attempts = 0

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
                self._limiter.pause_until(self._clock() + outcome.retry_after)  # for everybody
            return outcome

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.max_attempts),
            wait=self._wait,
            retry=retry_if_result(lambda o: isinstance(o, Transient)),
            sleep=self._sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            reraise=True,
        )
        outcome: StatusOutcome = await retrying(attempt)
        return outcome

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
        else:
            self._unchecked(chunk, f"not checked after {self._retry.max_attempts} attempts: "
                                   f"{outcome.message}")

    def _unchecked(self, chunk: Sequence[str], why: str) -> None:
        self.result.unchecked.update(dict.fromkeys(chunk, why))


async def poll(endpoint: Endpoint, settings: StatusSettings, message_ids: Sequence[str], *,
               clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep,
               retry: RetryPolicy | None = None) -> PollResult:
    connector = aiohttp.TCPConnector(limit=settings.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        poller = Poller(session, endpoint, settings, clock=clock, sleep=sleep, retry=retry)
        return await poller.run(message_ids)
