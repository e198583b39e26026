"""Pacing against the sandbox over loopback HTTP, on virtual time: the engine, its limiter and the
sandbox share one fake clock that moves only when nobody has work to do and no request is on
the wire, so seconds of sending take a fraction of a second and nothing sleeps for real."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from runner.answers import Outcome
from runner.campaign import load_campaign
from runner.endpoint import Endpoint, Secret
from runner.engine import Engine, RetryPolicy
from runner.faults import Faults
from runner.journal import Journal
from runner.kaleyra import build_payload, post_sms
from runner.model import Campaign
from runner.pacing import Pacing, provider_limiter
from runner.plan import Batch
from runner.refusals import AccountWatch
from runner.sandbox import SandboxServer
from tests.integration.helpers import TEST_API_KEY, make_campaign, numbers


class WireTime:
    """A fake clock for code that also talks HTTP: time jumps to the next sleeper's wake-up
    only when no request is in flight and the loop has settled."""

    def __init__(self) -> None:
        self.now = 0.0
        self.in_flight = 0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(delay, 0.0), next(self._seq), fut))
        await fut

    async def drive(self, main: asyncio.Task[Any]) -> None:
        while not main.done():
            for _ in range(30):
                await asyncio.sleep(0)
            live = [s for s in self._sleepers if not s[2].done()]
            if self.in_flight or not live:
                await asyncio.sleep(0.0002)  # a request is on the wire: real time must pass
                continue
            self._sleepers = live
            heapq.heapify(self._sleepers)
            at, _, fut = heapq.heappop(self._sleepers)
            self.now = max(self.now, at)
            fut.set_result(None)


def campaign_in(tmp_path: Path, **sending: Any) -> Campaign:
    files = make_campaign(tmp_path, 1)
    loaded = load_campaign(files.yaml)
    assert loaded.campaign is not None
    c = loaded.campaign
    return replace(c, sending=replace(c.sending, **sending))


def plan(count: int, size: int) -> list[Batch]:
    phones = numbers(count)
    return [Batch(f"b{i // size:06d}", "Hello, your order has shipped.",
                  tuple(range(i + 2, i + 2 + len(phones[i:i + size]))),
                  tuple(phones[i:i + size])) for i in range(0, count, size)]


async def run_paced(tmp_path: Path, campaign: Campaign, faults: Faults, batches: list[Batch],
                    *, concurrency: int = 4) -> tuple[SandboxServer, Engine]:
    vt = WireTime()
    server = SandboxServer(api_key=TEST_API_KEY, sid="SANDBOX", faults=faults, clock=vt.clock)
    await server.start()
    journal = Journal.open(tmp_path / "r.csv.journal", "fp")
    endpoint = Endpoint(server.base_url, "SANDBOX", Secret(TEST_API_KEY))
    try:
        async with aiohttp.ClientSession() as session:

            async def attempt(batch: Batch) -> Outcome:
                vt.in_flight += 1
                try:
                    payload = build_payload(campaign, batch.numbers, batch.body)
                    return await post_sms(session, endpoint, payload, encoding="json",
                                          timeout=30, numbers=batch.numbers)
                finally:
                    vt.in_flight -= 1

            limiter = provider_limiter(campaign.sending, clock=vt.clock, sleep=vt.sleep)
            engine = Engine(send=attempt, journal=journal, limiter=limiter,
                            concurrency=concurrency,
                            retry=RetryPolicy(max_attempts=20, backoff_base=0.1,
                                              backoff_cap=2.0, deadline=None),
                            clock=vt.clock, sleep=vt.sleep,
                            pacing=Pacing(campaign.sending, limiter, clock=vt.clock),
                            watch=AccountWatch())
            main = asyncio.ensure_future(engine.run(batches))
            await vt.drive(main)
            await main
    finally:
        journal.close()
        await server.stop()
    return server, engine


def refused_share_in_second_half(server: SandboxServer) -> float:
    requests = server.record.requests
    start, end = requests[0].at, requests[-1].at
    late = [r for r in requests if r.at >= (start + end) / 2]
    return sum(r.status == 429 for r in late) / len(late)


async def test_adaptive_pacing_settles_under_a_hidden_rate_limit(tmp_path: Path) -> None:
    # Configured 100 a second, the account takes 20: the rate comes down and stays near 20.
    campaign = campaign_in(tmp_path, requests_per_second=100.0, batch_size=1)
    server, engine = await run_paced(tmp_path, campaign, Faults(limit_rps=20),
                                     plan(700, 1))
    assert len(server.record.deliveries()) == 700  # everyone, through the 429s
    assert set(server.record.deliveries().values()) == {1}
    assert refused_share_in_second_half(server) < 0.15
    assert engine.pacing is not None
    throttling = engine.pacing.throttling()
    assert throttling.throttled and throttling.lowest_rate is not None
    assert throttling.lowest_rate <= 25
    assert "throttled: down to" in throttling.describe()


async def test_without_adaptive_pacing_the_hidden_limit_keeps_refusing(tmp_path: Path) -> None:
    campaign = campaign_in(tmp_path, requests_per_second=100.0, batch_size=1, adaptive=False)
    server, engine = await run_paced(tmp_path, campaign, Faults(limit_rps=20), plan(300, 1))
    assert refused_share_in_second_half(server) > 0.2  # what adaptive pacing is for (~30%)
    assert engine.pacing is not None and not engine.pacing.throttling().throttled


async def test_messages_per_second_holds_at_the_server_and_keeps_97_percent(
        tmp_path: Path) -> None:
    campaign = campaign_in(tmp_path, requests_per_second=100.0, batch_size=100,
                           messages_per_second=1000.0)
    server, _ = await run_paced(tmp_path, campaign, Faults(), plan(6000, 100))
    accepted = server.record.accepted
    assert sum(len(a.numbers) for a in accepted) == 6000
    times = [a.at for a in accepted]
    for i, start in enumerate(times):  # every window [t, t + 1 s) at the server
        in_window = sum(len(a.numbers) for a in accepted[i:] if a.at < start + 1.0)
        assert in_window <= 1000, (start, in_window)
    rate = (6000 - len(accepted[-1].numbers)) / (times[-1] - times[0])
    assert rate >= 970, rate
