"""The engine with a fake attempt function, the real journal and limiter, on virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.answers import Accepted, Ambiguous, Outcome, Rejected, Transient
from runner.engine import Engine, RetryPolicy
from runner.journal import Journal
from runner.limiter import RateLimiter
from runner.plan import Batch
from runner.recipients import Recipient


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def recipient(row: int) -> Recipient:
    phone = f"+9198{row:08d}"
    return Recipient(row=row, raw_phone=phone, phone=phone, status="ok", fields={})


def batches(count: int, size: int = 3) -> list[Batch]:
    out = []
    row = 2
    for i in range(count):
        members = [recipient(row + j) for j in range(size)]
        row += size
        out.append(Batch(f"b{i + 1:06d}", "hello", tuple(r.row for r in members),
                         tuple(r.phone or "" for r in members)))
    return out


def accept(batch: Batch) -> Accepted:
    return Accepted({n: f"id-{n}" for n in batch.numbers}, (), "req")


Script = Callable[[Batch, int], Outcome]


def make_engine(tmp_path: Path, script: Script, *, vt: VirtualTime, rate: float | None = None,
                concurrency: int = 2, max_attempts: int = 5, on_ambiguous: str = "mark_unknown",
                deadline: float | None = None,
                on_wait: Callable[[str, float], None] | None = None,
                ) -> tuple[Engine, Journal, dict[str, int]]:
    journal = Journal.open(tmp_path / "r.csv.journal", "fp")
    calls: dict[str, int] = {}

    async def send(batch: Batch) -> Outcome:
        calls[batch.id] = calls.get(batch.id, 0) + 1
        await asyncio.sleep(0)
        return script(batch, calls[batch.id])

    engine = Engine(
        send=send, journal=journal,
        limiter=RateLimiter(rate, clock=vt.clock, sleep=vt.sleep),
        concurrency=concurrency,
        retry=RetryPolicy(max_attempts=max_attempts, backoff_base=0.5, backoff_cap=8.0,
                          deadline=deadline),
        on_ambiguous=on_ambiguous,  # type: ignore[arg-type]
        clock=vt.clock, sleep=vt.sleep, wall_clock=lambda: "2026-11-25T10:00:00+00:00",
        **({"on_wait": on_wait} if on_wait is not None else {}),
    )
    return engine, journal, calls


def statuses(journal: Journal) -> dict[int, str]:
    return {o.row: o.status for o in journal.outcomes_in_row_order()}


async def test_every_row_of_every_batch_is_sent_once(tmp_path: Path) -> None:
    vt = VirtualTime()
    engine, journal, calls = make_engine(tmp_path, lambda b, n: accept(b), vt=vt)
    result = await engine.run(batches(5))
    assert not result.stopped
    assert calls == {f"b{i:06d}": 1 for i in range(1, 6)}
    assert set(statuses(journal).values()) == {"sent"}
    assert len(statuses(journal)) == 15
    assert result.stats.requests == 5 and result.stats.retries == 0


async def test_transient_answers_are_retried_with_backoff_then_sent(tmp_path: Path) -> None:
    vt = VirtualTime()

    def script(batch: Batch, attempt: int) -> Outcome:
        return Transient("HTTP503", "busy", 503, None) if attempt < 3 else accept(batch)

    engine, journal, calls = make_engine(tmp_path, script, vt=vt, concurrency=1)
    result = await engine.run(batches(1))
    assert calls == {"b000001": 3}
    assert result.stats.retries == 2
    assert set(statuses(journal).values()) == {"sent"}
    outcome = next(journal.outcomes_in_row_order())
    assert outcome.attempts == 3
    backoffs = [s for s in vt.sleeps if s > 0]
    # Capped exponential with full jitter: up to 0.5 s after the first answer, 1 s after the second.
    assert len(backoffs) == 2 and 0 <= backoffs[0] <= 0.5 and 0 <= backoffs[1] <= 1.0


async def test_retry_after_pauses_every_batch_not_just_the_one_that_got_429(
        tmp_path: Path) -> None:
    vt = VirtualTime()
    sent_at: dict[str, list[float]] = {}

    def script(batch: Batch, attempt: int) -> Outcome:
        sent_at.setdefault(batch.id, []).append(vt.now)
        if batch.id == "b000001" and attempt == 1:
            return Transient("HTTP429", "slow down", 429, 7.0)
        return accept(batch)

    engine, journal, _ = make_engine(tmp_path, script, vt=vt, rate=1000, concurrency=1)
    await engine.run(batches(3))
    assert sent_at["b000001"][1] >= 7.0  # the retry honoured Retry-After
    assert sent_at["b000002"][0] >= 7.0  # and the next batch waited too
    assert set(statuses(journal).values()) == {"sent"}


async def test_permanent_rejection_is_not_retried_and_keeps_the_code(tmp_path: Path) -> None:
    vt = VirtualTime()
    engine, journal, calls = make_engine(
        tmp_path, lambda b, n: Rejected("E615", "type not allowed", 400), vt=vt)
    await engine.run(batches(2))
    assert calls == {"b000001": 1, "b000002": 1}
    outcomes = list(journal.outcomes_in_row_order())
    assert {o.status for o in outcomes} == {"failed"}
    assert {o.error_code for o in outcomes} == {"E615"}


async def test_exhausted_transient_answers_fail_the_rows(tmp_path: Path) -> None:
    vt = VirtualTime()
    engine, journal, calls = make_engine(
        tmp_path, lambda b, n: Transient("HTTP503", "busy", 503, None), vt=vt, max_attempts=4)
    await engine.run(batches(1))
    assert calls == {"b000001": 4}
    outcome = next(journal.outcomes_in_row_order())
    assert outcome.status == "failed" and "4 attempts" in outcome.error


@pytest.mark.parametrize(("policy", "expected_calls", "expected"),
                         [("mark_unknown", 1, "unknown"), ("retry", 2, "sent")])
async def test_ambiguous_answers_follow_on_ambiguous(
        tmp_path: Path, policy: str, expected_calls: int, expected: str) -> None:
    vt = VirtualTime()

    def script(batch: Batch, attempt: int) -> Outcome:
        return Ambiguous("TIMEOUT", "no answer", None) if attempt == 1 else accept(batch)

    engine, journal, calls = make_engine(tmp_path, script, vt=vt, on_ambiguous=policy)
    await engine.run(batches(1))
    assert calls == {"b000001": expected_calls}
    assert set(statuses(journal).values()) == {expected}


async def test_a_number_missing_from_the_answer_is_unknown_not_sent(tmp_path: Path) -> None:
    vt = VirtualTime()

    def script(batch: Batch, attempt: int) -> Outcome:
        first, *rest = batch.numbers
        return Accepted({n: f"id-{n}" for n in rest}, (first,), "req")

    engine, journal, _ = make_engine(tmp_path, script, vt=vt)
    await engine.run(batches(1))
    assert list(statuses(journal).values()) == ["unknown", "sent", "sent"]


async def test_stop_takes_no_new_batches_and_leaves_the_rest_unattempted(
        tmp_path: Path) -> None:
    vt = VirtualTime()
    holder: list[Engine] = []

    def script(batch: Batch, attempt: int) -> Outcome:
        if batch.id == "b000002":
            holder[0].stop()
        return accept(batch)

    engine, journal, calls = make_engine(tmp_path, script, vt=vt, concurrency=1)
    holder.append(engine)
    result = await engine.run(batches(5))
    assert result.stopped
    assert sorted(calls) == ["b000001", "b000002"]  # the batch in flight finished
    assert len(statuses(journal)) == 6  # rows of batches 3..5 never entered the journal


async def test_stop_during_retries_leaves_the_rows_pending(tmp_path: Path) -> None:
    vt = VirtualTime()
    holder: list[Engine] = []

    def script(batch: Batch, attempt: int) -> Outcome:
        holder[0].stop()
        return Transient("HTTP503", "busy", 503, None)

    engine, journal, calls = make_engine(tmp_path, script, vt=vt, concurrency=1)
    holder.append(engine)
    await engine.run(batches(2))
    assert calls == {"b000001": 1}
    assert statuses(journal) == {}  # a 503 proves nothing was sent: the rows stay pending


async def test_no_more_than_concurrency_requests_in_flight(tmp_path: Path) -> None:
    vt = VirtualTime()
    in_flight = 0
    peak = 0

    journal = Journal.open(tmp_path / "r.csv.journal", "fp")

    async def send(batch: Batch) -> Outcome:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1
        return accept(batch)

    engine = Engine(send=send, journal=journal, limiter=RateLimiter(None), concurrency=3,
                    retry=RetryPolicy(), clock=vt.clock, sleep=vt.sleep)
    await engine.run(batches(20, size=1))
    assert peak == 3
    assert len(statuses(journal)) == 20




# --------------------------------------------------------------------------- waits have limits


def in_flight_if_killed(journal: Journal) -> int:
    """Rows in flight as a rerun after a kill now would find them: nothing is left uncommitted
    (so what the journal's connection sees is what is on disk)."""
    assert not journal._conn.in_transaction, "the journal has uncommitted changes"
    return len(journal.rows_with_status("in_flight"))


async def test_a_retry_after_longer_than_the_deadline_leaves_the_batch_pending_at_once(
        tmp_path: Path) -> None:
    vt = VirtualTime()

    def script(batch: Batch, attempt: int) -> Outcome:
        if batch.id == "b000001":
            return Transient("HTTP429", "slow down", 429, 200.0)
        return accept(batch)

    engine, journal, calls = make_engine(tmp_path, script, vt=vt, concurrency=1, deadline=120)
    result = await engine.run(batches(2))
    assert calls["b000001"] == 1  # not retried after a wait past its deadline
    assert [s for s in vt.sleeps if s > 100] == [200.0]  # the limiter's pause, for the next batch
    rows = statuses(journal)
    assert set(rows.values()) == {"sent"} and len(rows) == 3  # batch 1 pending: not in the journal
    assert not result.stopped


async def test_a_backoff_past_what_is_left_of_the_deadline_ends_the_retries_pending(
        tmp_path: Path) -> None:
    vt = VirtualTime()

    def script(batch: Batch, attempt: int) -> Outcome:
        vt.now += 9.0  # each answer takes 9 s
        return Transient("HTTP503", "busy", 503, None)

    engine, journal, calls = make_engine(tmp_path, script, vt=vt, concurrency=1, deadline=10,
                                         max_attempts=50)
    await engine.run(batches(1))
    assert calls == {"b000001": 2}  # 9 s, a backoff of up to 0.5 s, 9 s: the deadline is gone
    assert statuses(journal) == {}  # pending: every answer proved nothing was sent
    assert journal.rows_with_status("in_flight") == set()


@pytest.mark.parametrize("retry_after", [300.5, 999999.0, 1e10])
async def test_a_retry_after_of_more_than_five_minutes_stops_the_run(
        tmp_path: Path, retry_after: float) -> None:
    vt = VirtualTime()

    def script(batch: Batch, attempt: int) -> Outcome:
        if batch.id == "b000002":
            return Transient("HTTP503", "down for maintenance", 503, retry_after)
        return accept(batch)

    engine, journal, calls = make_engine(tmp_path, script, vt=vt, rate=1000, concurrency=1,
                                         deadline=300)
    result = await engine.run(batches(4))
    assert result.stopped and result.rerun_after == retry_after
    assert sorted(calls) == ["b000001", "b000002"]  # nothing after the answer that said wait
    assert max(vt.sleeps, default=0.0) < 1.0  # it did not wait it out
    assert len(statuses(journal)) == 3 and set(statuses(journal).values()) == {"sent"}
    assert journal.rows_with_status("in_flight") == set()


async def test_a_batch_waiting_between_attempts_is_not_in_flight(tmp_path: Path) -> None:
    vt = VirtualTime()
    seen_while_waiting: list[int] = []
    seen_while_sending: list[int] = []

    async def sleep(seconds: float) -> None:
        seen_while_waiting.append(in_flight_if_killed(journal))
        await vt.sleep(seconds)

    def script(batch: Batch, attempt: int) -> Outcome:
        seen_while_sending.append(in_flight_if_killed(journal))
        if attempt == 1:
            return Transient("HTTP429", "slow down", 429, 3.0)
        return Transient("E403", "try again", 200, None) if attempt == 2 else accept(batch)

    engine, journal, calls = make_engine(tmp_path, script, vt=vt, concurrency=1)
    engine._sleep = sleep  # the engine's own waits between attempts
    await engine.run(batches(1))
    assert calls == {"b000001": 3}
    assert seen_while_sending == [3, 3, 3]  # in flight (committed) whenever a request leaves
    assert seen_while_waiting == [0, 0]  # a kill while it waits leaves it pending, not unknown
    assert set(statuses(journal).values()) == {"sent"}


async def test_a_batch_that_may_have_been_sent_stays_in_flight_and_ends_unknown(
        tmp_path: Path) -> None:
    vt = VirtualTime()
    seen_while_waiting: list[int] = []

    async def sleep(seconds: float) -> None:
        seen_while_waiting.append(len(journal.rows_with_status("in_flight")))
        await vt.sleep(seconds)

    def script(batch: Batch, attempt: int) -> Outcome:
        if attempt == 1:
            return Ambiguous("HTTP502", "bad gateway", 502)
        return Transient("HTTP503", "busy", 503, None)

    engine, journal, _ = make_engine(tmp_path, script, vt=vt, concurrency=1, max_attempts=3,
                                     on_ambiguous="retry")
    engine._sleep = sleep
    await engine.run(batches(1))
    assert seen_while_waiting == [3, 3]
    outcome = next(journal.outcomes_in_row_order())
    assert (outcome.status, outcome.error_code) == ("unknown", "HTTP502")  # not "failed"


async def test_the_run_says_why_it_waits(tmp_path: Path) -> None:
    vt = VirtualTime()
    waits: list[tuple[str, float]] = []

    def script(batch: Batch, attempt: int) -> Outcome:
        if attempt == 1:
            return Transient("HTTP429", "slow down", 429, 30.0)
        return Transient("HTTP503", "busy", 503, None) if attempt == 2 else accept(batch)

    engine, _, _ = make_engine(tmp_path, script, vt=vt, concurrency=1,
                               on_wait=lambda why, s: waits.append((why, s)))
    await engine.run(batches(1))
    assert [w[0] for w in waits] == ["Kaleyra asked to wait (HTTP429, Retry-After)",
                                     "retrying after HTTP503"]
    assert waits[0][1] == 30.0 and 0 <= waits[1][1] <= 1.0
