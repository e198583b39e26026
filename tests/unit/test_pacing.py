"""Pacing on virtual time: weighted lanes, adaptive rate, caps across reruns, expiry, refusals."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from runner.answers import Accepted, Outcome, Rejected, Transient
from runner.engine import Engine, RetryPolicy
from runner.journal import Journal
from runner.limiter import Lane, RateLimiter
from runner.model import SendingSpec, Window
from runner.pacing import STOP, Aimd, Pacing, periods_at, provider_limiter
from runner.plan import Batch
from tests.unit.test_engine import VirtualTime as StepTime
from tests.unit.test_engine import batches, statuses
from tests.unit.test_limiter import VirtualTime


def assert_weighted_window(admissions: list[tuple[float, int]], per: int, period: float) -> None:
    """No half-open window [t, t + period) carries more than ``per`` units of cost."""
    admissions = sorted(admissions)
    for i, (start, _) in enumerate(admissions):
        carried = sum(cost for at, cost in admissions[i:] if at < start + period)
        assert carried <= per, (start, carried)


# -- the weighted limiter ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_every_lane_holds_on_its_own_and_all_together_under_concurrency(seed: int) -> None:
    rng = random.Random(seed)
    jobs = [rng.choice([1, 7, 30, 100]) for _ in range(150)]  # numbers per request
    parts = rng.choice([1, 2, 3])

    async def main() -> list[tuple[float, int]]:
        vt = VirtualTime()
        limiter = RateLimiter(20, clock=vt.clock, sleep=vt.sleep, burst=4, guard=0.0,
                              lanes=[Lane(500, burst=50, name="messages"),
                                     Lane(800, name="parts")])
        done: list[tuple[float, int]] = []
        queue = list(jobs)

        async def worker() -> None:
            while queue:
                n = queue.pop()
                await limiter.acquire((n, n * parts))
                done.append((vt.now, n))
                await vt.sleep(rng.random() * 0.05)  # an answer takes a while

        await vt.run([asyncio.create_task(worker()) for _ in range(4)])
        return done

    done = asyncio.run(main())
    assert len(done) == len(jobs)
    assert_weighted_window([(t, 1) for t, _ in done], 20, 1.0)
    assert_weighted_window(done, 500, 1.0)
    assert_weighted_window([(t, n * parts) for t, n in done], 800, 1.0)
    # Each limit is a bound, not a brake: the run takes about what the tightest one needs.
    total = sum(jobs)
    need = max(len(jobs) / 20, total / 500, total * parts / 800)
    assert max(t for t, _ in done) <= need * 1.25 + 2.0


def test_a_request_heavier_than_the_window_goes_alone_into_an_empty_one() -> None:
    async def main() -> list[float]:
        vt = VirtualTime()
        limiter = RateLimiter(None, clock=vt.clock, sleep=vt.sleep, lanes=[Lane(50)])
        times: list[float] = []

        async def one(n: int) -> None:
            await limiter.acquire((n,))
            times.append(vt.now)

        tasks = []
        for n in (10, 80, 10):
            tasks.append(asyncio.create_task(one(n)))
            await asyncio.sleep(0)
        await vt.run(tasks)
        return times

    assert asyncio.run(main()) == [0.0, 1.0, 2.0]


def test_lowering_the_rate_takes_effect_at_once() -> None:
    async def main() -> list[float]:
        vt = VirtualTime()
        limiter = RateLimiter(10, clock=vt.clock, sleep=vt.sleep)
        times: list[float] = []

        async def take() -> None:
            for i in range(14):
                if i == 10:
                    limiter.set_rate(2)
                await limiter.acquire()
                times.append(vt.now)

        await vt.run([asyncio.create_task(take())])
        return times

    # 10 in the first second; then at most 2 in any second: the window still holds the 10.
    assert asyncio.run(main())[10:] == [1.0, 1.0, 2.0, 2.0]


def test_the_provider_limiter_has_a_lane_for_each_limit_given() -> None:
    spec = SendingSpec(requests_per_second=10, messages_per_second=500, parts_per_second=None)
    limiter = provider_limiter(spec)
    assert limiter.rate == 10
    assert [(lane.name, lane.rate) for lane in limiter.lanes] == [("messages", 500),
                                                                  ("parts", None)]


# -- adaptive pacing -----------------------------------------------------------------------

THROTTLED = Transient("HTTP429", "slow down", 429, None)
THROTTLED_RA = Transient("HTTP429", "slow down", 429, 1.0)
CLEAN = Accepted({}, (), None)


def test_a_429_without_retry_after_halves_the_rate_at_most_once_a_second() -> None:
    now = [0.0]
    limiter = RateLimiter(100)
    aimd = Aimd(limiter, 100, clock=lambda: now[0])
    aimd.answered(THROTTLED)
    aimd.answered(THROTTLED)  # the same overload: earned before the cut
    assert limiter.rate == 50
    now[0] = 1.0
    aimd.answered(THROTTLED)
    assert limiter.rate == 25


def test_one_429_with_retry_after_pauses_but_three_close_together_slow_down() -> None:
    now = [0.0]
    limiter = RateLimiter(100)
    aimd = Aimd(limiter, 100, clock=lambda: now[0])
    aimd.answered(THROTTLED_RA)
    now[0] = 5.0
    aimd.answered(THROTTLED_RA)
    now[0] = 5.3
    aimd.answered(THROTTLED_RA)  # three, but not within a second
    assert limiter.rate == 100
    now[0] = 5.6
    aimd.answered(THROTTLED_RA)
    assert limiter.rate == 50


def test_clean_answers_climb_back_to_the_configured_rate_and_no_further() -> None:
    now = [0.0]
    limiter = RateLimiter(40)
    aimd = Aimd(limiter, 40, clock=lambda: now[0])
    aimd.answered(THROTTLED)
    assert limiter.rate == 20
    now[0] = 1.0
    for _ in range(100_000):
        now[0] += 1 / (limiter.rate or 1)  # answers come at the rate requests go
        aimd.answered(CLEAN)
        if limiter.rate == 40:
            break
    assert limiter.rate == 40
    # The climb is gradual: a hundredth of the configured rate per second of clean answers.
    assert 45 <= now[0] <= 56
    summary = aimd.summary()
    assert summary.throttled and summary.lowest_rate == 20 and summary.cuts == 1
    assert summary.describe().startswith("throttled: down to 20/s for ")


# -- caps across reruns --------------------------------------------------------------------


def batch_of(n: int, name: str = "b1") -> Batch:
    return Batch(name, "hi", tuple(range(2, 2 + n)), tuple(f"+9198{i:08d}" for i in range(n)))


def test_hours_and_days_are_those_of_the_window_zone() -> None:
    at = datetime(2026, 12, 2, 5, 40, tzinfo=UTC)  # 11:10 in Kolkata
    hour, day = periods_at(at, ZoneInfo("Asia/Kolkata"))
    assert hour.key == "h:2026-12-02T11+0530"
    assert hour.ends == datetime(2026, 12, 2, 6, 30, tzinfo=UTC)  # 12:00 IST
    assert day.ends == datetime(2026, 12, 2, 18, 30, tzinfo=UTC)  # midnight IST


def test_the_hour_cap_counts_across_reruns_and_says_when_the_run_may_go_on(
        tmp_path: Path) -> None:
    spec = SendingSpec(max_messages_per_hour=250)
    at = datetime(2026, 12, 2, 10, 15, tzinfo=UTC)
    path = tmp_path / "r.csv.journal"
    with Journal.open(path, "fp") as journal:
        pacing = Pacing(spec, RateLimiter(None), counts=journal, now=lambda: at)
        assert pacing.gate(batch_of(100, "b1"), first=True) is None
        assert pacing.gate(batch_of(100, "b2"), first=True) is None
        pacing.settled(batch_of(100, "b2"), Rejected("E413", "bad", 400))  # never sent
    with Journal.open(path, "fp") as journal:  # the rerun counts what the first run sent
        pacing = Pacing(spec, RateLimiter(None), counts=journal, now=lambda: at)
        assert pacing.gate(batch_of(100, "b3"), first=True) is None
        assert pacing.gate(batch_of(100, "b4"), first=True) == STOP
        assert pacing.capped_until == datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
        assert pacing.caps is not None and "max_messages_per_hour" in pacing.caps.limit_hit
        later = Pacing(spec, RateLimiter(None), counts=journal,
                       now=lambda: at + timedelta(hours=1))
        assert later.gate(batch_of(100, "b4"), first=True) is None  # a new hour


def test_with_wait_a_cap_waits_until_the_next_period(tmp_path: Path) -> None:
    spec = SendingSpec(max_messages_per_day=100,
                       window=Window(datetime.min.time(), datetime.min.time(), "Europe/Berlin"))
    at = datetime(2026, 12, 2, 22, 0, tzinfo=UTC)  # 23:00 in Berlin
    told: list[tuple[str, datetime]] = []
    with Journal.open(tmp_path / "r.csv.journal", "fp") as journal:
        pacing = Pacing(spec, RateLimiter(None), counts=journal, wait=True, now=lambda: at,
                        on_wait=lambda cap, until: told.append((cap, until)))
        assert pacing.gate(batch_of(100), first=True) is None
        assert pacing.gate(batch_of(1, "b2"), first=True) == pytest.approx(3600.0)
    assert told == [("max_messages_per_day (100)", datetime(2026, 12, 2, 23, 0, tzinfo=UTC))]


def test_past_expiry_the_gate_stops_the_run() -> None:
    at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    spec = SendingSpec(expires=at)
    pacing = Pacing(spec, RateLimiter(None), now=lambda: at - timedelta(seconds=1))
    assert pacing.gate(batch_of(1), first=True) is None
    pacing = Pacing(spec, RateLimiter(None), now=lambda: at)
    assert pacing.gate(batch_of(1), first=True) == STOP and pacing.expired


# -- the engine: refusals and expiry ------------------------------------------------------


def engine_with(tmp_path: Path, script: dict[str, Outcome] | None, default: Outcome, *,
                concurrency: int = 1, pacing: Pacing | None = None, vt: StepTime | None = None,
                ) -> tuple[Engine, Journal, list[str]]:
    from runner.refusals import AccountWatch

    vt = vt if vt is not None else StepTime()
    journal = Journal.open(tmp_path / "r.csv.journal", "fp")
    calls: list[str] = []

    async def send(batch: Batch) -> Outcome:
        calls.append(batch.id)
        await asyncio.sleep(0)
        outcome = (script or {}).get(batch.id, default)
        if isinstance(outcome, Accepted):
            return Accepted({n: f"id-{n}" for n in batch.numbers}, (), "req")
        return outcome

    engine = Engine(send=send, journal=journal, limiter=RateLimiter(None),
                    concurrency=concurrency, retry=RetryPolicy(deadline=None),
                    clock=vt.clock, sleep=vt.sleep, pacing=pacing, watch=AccountWatch())
    return engine, journal, calls


async def test_a_refused_key_stops_at_once_and_costs_one_request_a_worker(tmp_path: Path) -> None:
    refused = Rejected("HTTP401", "the API key was refused (HTTP 401)", 401)
    engine, journal, calls = engine_with(tmp_path, None, refused, concurrency=4)
    result = await engine.run(batches(30))
    assert result.stopped and len(calls) <= 4
    assert set(statuses(journal).values()) == {"refused"}  # reported pending, sent on rerun
    assert engine.watch is not None and engine.watch.refusal is not None
    assert "KALEYRA_API_KEY" in engine.watch.refusal.line()


async def test_the_same_account_code_on_three_batches_in_a_row_stops_the_run(
        tmp_path: Path) -> None:
    code = Rejected("E619", "sender not allowed", 400)
    engine, journal, calls = engine_with(tmp_path, None, code)
    result = await engine.run(batches(10))
    assert result.stopped and calls == ["b000001", "b000002", "b000003"]
    assert list(statuses(journal).values()) == ["refused"] * 9  # all three batches' rows
    assert engine.watch is not None and engine.watch.refusal is not None
    assert "E619" in engine.watch.refusal.line() and "sender" in engine.watch.refusal.line()


async def test_an_account_code_that_other_answers_interrupt_stays_failed(tmp_path: Path) -> None:
    code = Rejected("E623", "route not enabled", 400)
    ok = Accepted({}, (), None)
    script: dict[str, Outcome] = {"b000001": code, "b000002": code, "b000003": ok,
                                  "b000004": code, "b000005": code}
    engine, journal, calls = engine_with(tmp_path, script, ok)
    result = await engine.run(batches(6))
    assert not result.stopped and len(calls) == 6
    assert sorted(set(statuses(journal).values())) == ["failed", "sent"]


async def test_a_campaign_expiring_mid_run_takes_no_more_batches(tmp_path: Path) -> None:
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    ticks = iter(range(1000))
    pacing = Pacing(SendingSpec(expires=start + timedelta(seconds=3)), RateLimiter(None),
                    now=lambda: start + timedelta(seconds=next(ticks)))
    engine, journal, calls = engine_with(tmp_path, None, Accepted({}, (), None), pacing=pacing)
    result = await engine.run(batches(10))
    assert result.stopped and pacing.expired
    assert calls == ["b000001", "b000002", "b000003"]
    assert len(statuses(journal)) == 9  # the other rows were never tried: reported expired


async def test_with_wait_the_engine_sleeps_until_the_cap_allows_and_carries_on(
        tmp_path: Path) -> None:
    base = datetime(2026, 12, 2, 23, 59, 0, tzinfo=UTC)
    vt = StepTime()

    def wall() -> datetime:
        return base + timedelta(seconds=vt.now)

    journal_path = tmp_path / "caps"
    journal_path.mkdir()
    with Journal.open(journal_path / "c.journal", "fp") as counts:
        pacing = Pacing(SendingSpec(max_messages_per_day=6), RateLimiter(None), counts=counts,
                        wait=True, now=wall)
        engine, journal, calls = engine_with(tmp_path, None, Accepted({}, (), None),
                                             pacing=pacing, vt=vt)
        result = await engine.run(batches(4))
    assert not result.stopped and len(calls) == 4
    assert set(statuses(journal).values()) == {"sent"}
    assert any(s == pytest.approx(60.0) for s in vt.sleeps)  # until midnight UTC


def test_the_summary_and_the_end_of_a_send_say_how_far_the_rate_went_down(
        tmp_path: Path) -> None:
    from collections import Counter

    from runner.pacing import Throttling
    from runner.render import send_lines
    from runner.results import RunOutcome
    from runner.summary import run_summary

    outcome = RunOutcome(Counter({"sent": 10}), tmp_path / "r.csv", requests=12,
                         throttling=Throttling(True, 18.0, 40.2, 3))
    _, err = send_lines(outcome)
    assert "throttled: down to 18/s for 40 s (3 slow-downs)" in err
    doc = run_summary(outcome, started_at=datetime.now(UTC), file="c.yaml")
    assert doc["throttling"] == {"throttled": True, "lowest_rate": 18.0,
                                 "seconds_below_rate": 40.2, "rate_cuts": 3}
    assert outcome.exit_code == 0
    refused = RunOutcome(Counter({"pending": 10}), tmp_path / "r.csv", refused="stopped: ...")
    assert refused.exit_code == 78
    assert RunOutcome(Counter({"sent": 1, "expired": 9}), tmp_path / "r.csv").exit_code == 3


def test_the_rate_never_falls_below_a_fiftieth_of_the_configured_one() -> None:
    now = [0.0]
    limiter = RateLimiter(1000)
    aimd = Aimd(limiter, 1000, clock=lambda: now[0])
    for second in range(30):  # refusals whatever the rate: a fault, not a limit
        now[0] = float(second)
        aimd.answered(THROTTLED)
    assert limiter.rate == 20


async def test_an_ambiguous_answer_keeps_its_count_against_the_hour_cap(tmp_path: Path) -> None:
    # 500 (it may have gone) then 503 until the attempts run out: the rows are unknown, and
    # the provider may have counted them, so the cap keeps them counted.
    from runner.answers import Ambiguous

    at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    spec = SendingSpec(max_messages_per_hour=100, on_ambiguous="retry")
    journal = Journal.open(tmp_path / "caps.csv.journal", "fp")
    pacing = Pacing(spec, RateLimiter(None), counts=journal, now=lambda: at)
    answers = iter([Ambiguous("HTTP500", "internal error"),
                    *[Transient("HTTP503", "busy", 503)] * 10])

    async def send(batch: Batch) -> Outcome:
        await asyncio.sleep(0)
        return next(answers)

    vt = StepTime()
    engine = Engine(send=send, journal=journal, limiter=RateLimiter(None), concurrency=1,
                    retry=RetryPolicy(max_attempts=3, deadline=None), on_ambiguous="retry",
                    clock=vt.clock, sleep=vt.sleep, pacing=pacing)
    await engine.run([batch_of(3)])
    assert set(statuses(journal).values()) == {"unknown"}
    assert journal.messages_counted([p.key for p in periods_at(at, UTC)]) == [3, 3]
    journal.close()


def test_a_cap_that_resets_only_after_the_expiry_expires_the_run() -> None:
    at = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)

    class Full:
        def messages_counted(self, periods: object) -> list[int]:
            return [10, 10]

        def count_messages(self, periods: object, n: int) -> None:
            raise AssertionError("nothing may be taken from a full cap")

    spec = SendingSpec(max_messages_per_hour=10, expires=at + timedelta(minutes=10))
    pacing = Pacing(spec, RateLimiter(None), counts=Full(), now=lambda: at)  # type: ignore[arg-type]
    assert pacing.gate(batch_of(3), first=True) == STOP
    assert pacing.expired and pacing.capped_until is None
