"""Running a campaign: the dry run, the real send with resume, and the report that follows both.

The caller (the CLI) has already checked the campaign. Here the recipients are streamed again into
the planner and the engine, the journal remembers every answer, and the report is rebuilt by
merging the recipient stream with the journal, both in source-row order, so memory stays flat.
"""

from __future__ import annotations

import asyncio
import signal
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from runner.check import PlanSummary
from runner.engine import Engine, EngineStats, RetryPolicy
from runner.errors import JournalError, display_path
from runner.fingerprint import fingerprint
from runner.journal import (
    IN_FLIGHT_CODE,
    IN_FLIGHT_ERROR,
    Journal,
    RowOutcome,
    read_meta,
)
from runner.kaleyra import Endpoint, Outcome, build_payload, post_sms
from runner.limiter import RateLimiter, limits
from runner.model import Campaign
from runner.plan import Batch, is_personalised, plan_batches
from runner.progress import Progress
from runner.recipients import NO_FIELDS, Recipient, open_recipients
from runner.report import ReportRow, ReportWriter, write_report
from runner.window import window_state

STOP_GRACE_SECONDS = 5.0  # how long requests in flight may finish after a stop


@dataclass(frozen=True, slots=True)
class SendOptions:
    report: Path
    resend_unknown: bool = False
    retry_failed: bool = False
    fresh: bool = False
    wait: bool = False
    destination: str = ""  # where messages go (an URL, or the sandbox); a run keeps to one


@dataclass(frozen=True, slots=True)
class RunOutcome:
    counts: Counter[str]  # report rows by status
    report: Path
    stopped: bool = False  # cut short (signal, window closed): rerun to resume
    closed_until: datetime | None = None  # the window was closed at start; it opens then
    requests: int = 0
    retries: int = 0
    elapsed: float = 0.0
    run_number: int = 1
    unknown_from_before: int = 0  # rows found in flight from an earlier run that died


def journal_path(report: Path) -> Path:
    return report.with_name(report.name + ".journal")


# --- dry run -----------------------------------------------------------------------------------


class DryRunReport:
    """Writes the dry-run report during the check pass itself: one read of the CSV, not two.

    Rows are written in source order as soon as their fate is known: a row that will not be sent
    at once, a sendable row once the planner has put it in a batch. Rows wait in a queue until
    then, which the planner's bounded open groups keep small.
    """

    def __init__(self, writer: ReportWriter) -> None:
        self.writer = writer
        self._waiting: deque[Recipient] = deque()
        self._batch_of: dict[int, str] = {}

    def recipient(self, recipient: Recipient) -> None:
        if self._waiting or recipient.status == "ok":
            self._waiting.append(recipient)
        else:
            self._write(recipient, "")

    def batch(self, batch: Batch) -> None:
        for recipient in batch.recipients:
            self._batch_of[recipient.row] = batch.id
        waiting, batch_of = self._waiting, self._batch_of
        while waiting and (waiting[0].status != "ok" or waiting[0].row in batch_of):
            head = waiting.popleft()
            self._write(head, batch_of.pop(head.row, ""))

    def _write(self, r: Recipient, batch_id: str) -> None:
        if r.status == "ok":
            self.writer.write_unsent(r.row, r.phone or r.raw_phone, "dry_run", batch_id=batch_id)
        else:
            self.writer.write_unsent(r.row, r.phone or r.raw_phone, r.status, error=r.reason)

    def commit(self) -> Counter[str]:
        if self._waiting:  # every sendable row is planned by the end of the pass
            raise RuntimeError(f"dry run: {len(self._waiting)} rows were never planned")
        return self.writer.commit()


class SendableRows:
    """The rows the check pass found sendable, as (row, number) pairs in two int arrays.

    For a body without placeholders this is all the send pass needs, so it plans from here
    instead of reading and normalising the CSV a second time (16 bytes a sendable row).
    """

    def __init__(self) -> None:
        self._rows = array("q")
        self._numbers = array("q")

    def recipient(self, recipient: Recipient) -> None:
        if recipient.status == "ok" and recipient.phone is not None:
            self._rows.append(recipient.row)
            self._numbers.append(int(recipient.phone[1:]))  # E.164 never starts with +0

    def batch(self, batch: Batch) -> None:
        pass

    def __iter__(self) -> Iterator[Recipient]:
        for row, number in zip(self._rows, self._numbers, strict=True):
            phone = f"+{number}"
            yield Recipient(row, phone, phone, "ok", NO_FIELDS)


# --- the report --------------------------------------------------------------------------------


def report_rows(campaign: Campaign, outcomes: Iterator[RowOutcome]) -> Iterator[ReportRow]:
    """One report row per source row, in source order: the stream merged with the journal."""
    upcoming = next(outcomes, None)
    for recipient in open_recipients(campaign.recipients, with_fields=False):
        while upcoming is not None and upcoming.row < recipient.row:
            upcoming = next(outcomes, None)
        phone = recipient.phone or recipient.raw_phone
        if recipient.status != "ok":
            yield ReportRow(recipient.row, phone, recipient.status, error=recipient.reason)
        elif upcoming is not None and upcoming.row == recipient.row:
            o = upcoming
            if o.status == "in_flight":  # this run stopped while it was on its way
                yield ReportRow(recipient.row, phone, "unknown", batch_id=o.batch_id,
                                error_code=IN_FLIGHT_CODE, error=IN_FLIGHT_ERROR,
                                attempts=o.attempts, sent_at=o.sent_at)
            else:
                yield ReportRow(recipient.row, phone, o.status, message_id=o.message_id,
                                batch_id=o.batch_id, error_code=o.error_code, error=o.error,
                                attempts=o.attempts, sent_at=o.sent_at)
        else:
            yield ReportRow(recipient.row, phone, "pending")


# --- the real send -----------------------------------------------------------------------------


def journal_settings(campaign: Campaign, summary: PlanSummary | None = None,
                     destination: str = "") -> dict[str, object]:
    """What `campaign status` and a resume need later; never the key itself."""
    return {
        "summary": summary.to_json() if summary is not None else None,
        "destination": destination,
        "campaign": str(campaign.path.resolve()),
        "name": campaign.name,
        "region": campaign.account.region,
        "sid": campaign.account.sid,
        "api_key_env": campaign.account.api_key_env,
        "requests_per_second": campaign.sending.requests_per_second,
        "concurrency": campaign.sending.concurrency,
        "max_attempts": campaign.sending.max_attempts,
        "timeout": campaign.sending.timeout,
    }


def stored_summary(report: Path, campaign: Campaign) -> PlanSummary | None:
    """The recipient summary a run of this very campaign stored when it started, if any.

    The journal's fingerprint covers the bytes of the CSV and suppression lists, so a match
    means the check made then still holds: a resume need not read a million rows again.
    """
    journal = journal_path(report)
    if not journal.exists():
        return None
    try:
        meta = read_meta(journal)
    except JournalError:
        return None  # opening it for the send says what is wrong
    if meta.fingerprint != fingerprint(campaign):
        return None
    summary = PlanSummary.from_json(meta.settings.get("summary"))
    if summary is not None and summary.invalid > campaign.recipients.max_invalid_ratio * (
            summary.recipients):
        return None  # max_invalid_ratio was tightened since: check again, and say so
    return summary


def check_destination(journal: Journal, options: SendOptions) -> None:
    """A run sends to one place: resuming a sandbox run against Kaleyra (or the other way, or
    after KALEYRA_BASE_URL or the SID changed) would skip people who never got the message."""
    first = journal.settings.get("destination")
    if first and options.destination and first != options.destination:
        raise JournalError(
            f"{display_path(options.report)}: this run was sending to {first}, not "
            f"{options.destination}; keep the same target to resume it, or give the new run "
            "its own --report (--fresh would start over and send to every row again)")


def rows_to_skip(journal: Journal, options: SendOptions) -> set[int]:
    skip = journal.rows_with_status("sent")
    if not options.retry_failed:
        skip |= journal.rows_with_status("failed")
    if not options.resend_unknown:
        skip |= journal.rows_with_status("unknown")
    return skip


def send_campaign(
    campaign: Campaign,
    endpoint: Endpoint,
    options: SendOptions,
    *,
    to_send: int,
    summary: PlanSummary | None = None,
    sendable: SendableRows | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_wait: Callable[[datetime], None] | None = None,
) -> RunOutcome:
    """Send (or resume) the campaign and write its report. Blocks until done or stopped.

    With ``options.wait`` and the window closed, ``on_wait`` is told when it opens, then the run
    waits for it; a signal meanwhile stops the run like any other (exit 75, full report).
    """
    started = time.monotonic()
    journal = Journal.open(journal_path(options.report), fingerprint(campaign),
                           fresh=options.fresh,
                           settings=journal_settings(campaign, summary, options.destination))
    try:
        check_destination(journal, options)
        unknown_before = journal.mark_in_flight_unknown()
        skip = rows_to_skip(journal, options)
        left = to_send - len(skip)  # settled rows are all sendable ones
        stats, stopped = EngineStats(), False
        if left > 0:  # a finished run has nothing to wait for: the window does not matter
            state = window_state(campaign.sending.window, now())
            if not state.open and not options.wait:
                counts = _write_journal_report(campaign, options.report, journal)
                return RunOutcome(counts, options.report, stopped=True,
                                  closed_until=state.opens_at, run_number=journal.run_number,
                                  unknown_from_before=unknown_before)
            stats, stopped = asyncio.run(_under_signals(
                lambda engines: _wait_then_send(campaign, endpoint, journal, skip, sendable,
                                                to_send=left, now=now, on_wait=on_wait,
                                                engines=engines)))
        counts = _write_journal_report(campaign, options.report, journal)
        return RunOutcome(counts, options.report, stopped=stopped, requests=stats.requests,
                          retries=stats.retries, elapsed=time.monotonic() - started,
                          run_number=journal.run_number, unknown_from_before=unknown_before)
    finally:
        journal.close()


def _write_journal_report(campaign: Campaign, report: Path, journal: Journal) -> Counter[str]:
    journal.flush()
    return write_report(report, report_rows(campaign, journal.outcomes_in_row_order()))


async def _under_signals(start: Callable[[list[Engine]], Coroutine[Any, Any, bool]]
                         ) -> tuple[EngineStats, bool]:
    """Run ``start`` (which puts its engine in the list it is given) under the signal handlers:
    (stats, whether the run was cut short).

    The handlers are in place before anything else, the wait for the window included. A first
    signal stops the engine (requests in flight get STOP_GRACE_SECONDS to finish); a signal
    while waiting for the window, or a second one, stops at once.
    """
    loop = asyncio.get_running_loop()
    engines: list[Engine] = []  # the engine, once waiting for the window is over
    main = asyncio.ensure_future(start(engines))
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1 and engines:
            engines[0].stop()
            loop.call_later(STOP_GRACE_SECONDS, main.cancel)
        else:
            main.cancel()  # nothing in flight yet, or a second Ctrl-C: the journal keeps the rest

    handled = _install_signal_handlers(loop, on_signal)
    try:
        stopped = await main
    except asyncio.CancelledError:
        stopped = True
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return (engines[0].stats if engines else EngineStats()), stopped


async def _wait_then_send(
    campaign: Campaign,
    endpoint: Endpoint,
    journal: Journal,
    skip: set[int],
    sendable: SendableRows | None,
    *,
    to_send: int,
    now: Callable[[], datetime],
    on_wait: Callable[[datetime], None] | None,
    engines: list[Engine],
) -> bool:
    sending = campaign.sending
    loop = asyncio.get_running_loop()
    state = window_state(sending.window, now())
    while not state.open and state.opens_at is not None:  # --wait (a sleep may end early)
        if on_wait is not None:
            on_wait(state.opens_at)
        await asyncio.sleep(max(0.05, (state.opens_at - now()).total_seconds()))
        state = window_state(sending.window, now())

    progress = Progress(to_send)
    connector = aiohttp.TCPConnector(limit=sending.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def attempt(batch: Batch) -> Outcome:
            numbers = batch.numbers
            payload = build_payload(campaign, numbers, batch.body)
            return await post_sms(session, endpoint, payload, encoding=sending.encoding,
                                  timeout=sending.timeout, numbers=numbers)

        engine = Engine(
            send=attempt,
            journal=journal,
            limiter=provider_limiter(sending.requests_per_second),
            concurrency=sending.concurrency,
            retry=RetryPolicy(max_attempts=sending.max_attempts,
                              deadline=sending.max_duration or 300.0),
            on_ambiguous=sending.on_ambiguous,
            on_progress=lambda s: progress.update(s.rows_done, requests=s.requests,
                                                  retries=s.retries),
        )
        engines.append(engine)
        rows: Iterable[Recipient] = (
            sendable if sendable is not None
            else open_recipients(campaign.recipients, with_fields=is_personalised(campaign)))
        batches = plan_batches(rows, campaign, skip=skip,
                               id_prefix=f"r{journal.run_number}-b")
        closing = None
        if state.closes_at is not None:
            delay = max(0.0, (state.closes_at - now()).total_seconds())
            closing = loop.call_later(delay, engine.stop)
        try:
            result = await engine.run(batches)
        finally:
            if closing is not None:
                closing.cancel()
            progress.close()
        return result.stopped


def provider_limiter(rate: float | None) -> RateLimiter:
    """The limiter for Kaleyra: paced in bursts of a twentieth of the rate, with 20 ms of slack
    per window so that latency jitter cannot push two windows' requests into one second at the
    provider's end. Costs 2% of the configured rate."""
    lim = limits(rate)
    burst = max(1, lim[0] // 20) if lim is not None else None
    return RateLimiter(rate, burst=burst, guard=0.02 * lim[1] if lim is not None else 0.0)


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]
                             ) -> list[int]:
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
            pass
    return installed
