"""Running a campaign: the real send with resume, and the report that follows it.

The caller (the CLI) has already checked the campaign, and kept what the check found
(``runner.verdicts.CheckedRows``). The send plans from those verdicts (a body with placeholders
reads the CSV again for its other columns), the journal remembers every answer, and the report
merges the verdicts with the journal, both in source-row order. A resume that trusts the check
made when the run started has no verdicts: its report merges a new read of the CSV instead.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp

from runner.answers import Outcome
from runner.checker import PlanSummary
from runner.compose import Composer, composed
from runner.endpoint import Endpoint
from runner.engine import Engine, EngineStats, RetryPolicy
from runner.errors import JournalError, RunInterrupted, StateLost, display_path
from runner.fingerprint import fingerprint
from runner.kaleyra import build_payload, connector, post_sms
from runner.limiter import RateLimiter, limits
from runner.model import Campaign, Window
from runner.observer import RunObserver
from runner.plan import Batch, is_personalised, plan_batches
from runner.preview import Preview
from runner.recipients import open_recipients
from runner.report import (
    SENT_COLUMNS,
    LineFormatter,
    ReportRow,
    ReportStatus,
    ReportWriter,
    write_report,
)
from runner.results import RunOutcome
from runner.signals import STOP_SIGNALS, held
from runner.state import (
    IN_FLIGHT_CODE,
    IN_FLIGHT_ERROR,
    JournalRow,
    RowOutcome,
    RunKey,
    Store,
    journal_path,
    open_store,
    read_meta,
)
from runner.state.recover import guard, recover_journal
from runner.verdicts import CheckedRows
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
    ignore_window: bool = False  # a sandbox rehearsal may run outside the send window
    state: str | None = None  # a PostgreSQL URL for the run's state; None: the journal file
    recover_from_report: bool = False  # no journal beside a send's report: rebuild it from that


# --- the report --------------------------------------------------------------------------------


def report_rows(campaign: Campaign, outcomes: Iterator[RowOutcome]) -> Iterator[ReportRow]:
    """One report row per source row, in source order: the stream merged with the journal."""
    upcoming = next(outcomes, None)
    composer = Composer.for_campaign(campaign)  # the rows' texts: their verdicts and parts
    preview = Preview(composer.segments)
    stream = open_recipients(campaign.recipients, with_fields=composer.personalised)
    for recipient, text in composed(stream, composer):
        while upcoming is not None and upcoming.row < recipient.row:
            upcoming = next(outcomes, None)
        phone = recipient.phone or recipient.raw_phone
        parts = {"parts": str(preview.parts(text))} if text is not None else {}
        if recipient.status != "ok":
            yield ReportRow(recipient.row, phone, recipient.status, error=recipient.reason)
        elif upcoming is not None and upcoming.row == recipient.row:
            o = upcoming
            if o.status == "in_flight":  # this run stopped while it was on its way
                yield ReportRow(recipient.row, phone, "unknown", batch_id=o.batch_id,
                                error_code=IN_FLIGHT_CODE, error=IN_FLIGHT_ERROR,
                                attempts=o.attempts, sent_at=o.sent_at, extra=parts)
            else:
                yield ReportRow(recipient.row, phone, o.status, message_id=o.message_id,
                                batch_id=o.batch_id, error_code=o.error_code, error=o.error,
                                attempts=o.attempts, sent_at=o.sent_at, extra=parts)
        else:
            yield ReportRow(recipient.row, phone, "pending", extra=parts)


_SAFE_ID = re.compile(r"[0-9A-Za-z_][0-9A-Za-z_.:/-]*")  # needs no quoting nor neutralising


def write_checked_report(path: Path, checked: CheckedRows, journal: Store,
                         fixed_parts: int = 0) -> Counter[str]:
    """The report from the check pass's verdicts and the journal: no second read of the CSV,
    with SENT_COLUMNS (each row's parts: as planned, else ``fixed_parts``, the parts of every
    row of a body without placeholders).

    One loop with its state in locals: it runs once a row, and a stopped run of a million rows
    must write its report within the few seconds CI gives between SIGTERM and SIGKILL.
    """
    counts: Counter[str] = Counter(checked.unsent_counts)
    end = 1 << 62
    unsent = checked.unsent_lines()
    answered = journal.rows_in_row_order()
    lines = LineFormatter(SENT_COLUMNS)
    safe = _SAFE_ID.fullmatch
    pending = 0
    with ReportWriter(path, SENT_COLUMNS) as writer:
        out: list[str] = []
        next_unsent = next(unsent, None)
        unsent_row = next_unsent[0] if next_unsent is not None else end
        upcoming = next(answered, None)
        answered_row = upcoming[0] if upcoming is not None else end
        for (row, number), n in zip(checked.sendable_pairs(),
                                    checked.sendable_parts(fixed_parts), strict=True):
            while unsent_row < row:
                out.append(next_unsent[1])  # type: ignore[index]
                next_unsent = next(unsent, None)
                unsent_row = next_unsent[0] if next_unsent is not None else end
            while answered_row < row:
                upcoming = next(answered, None)
                answered_row = upcoming[0] if upcoming is not None else end
            if answered_row != row:
                # An E.164 number needs no quoting nor neutralising: the csv module's line.
                out.append(f"{row},+{number},pending,,,,,0,,{n or ''}\r\n")
                pending += 1
            else:
                assert upcoming is not None
                out.append(_answered_line(upcoming, f"+{number}", str(n) if n else "", lines,
                                          safe))
                counts["unknown" if upcoming[2] == "in_flight" else upcoming[2]] += 1
            if len(out) >= 4096:
                writer.write_text("".join(out), {})
                out.clear()
        while next_unsent is not None:
            out.append(next_unsent[1])
            next_unsent = next(unsent, None)
        counts["pending"] += pending
        writer.write_text("".join(out), +counts)
        return writer.commit()


def _answered_line(found: JournalRow, phone: str, parts: str, lines: LineFormatter,
                   safe: Callable[[str], object]) -> str:
    row, _, status, batch_id, message_id, error_code, error, attempts, sent_at = found
    if status == "sent" and safe(message_id) and safe(batch_id):
        return f"{row},{phone},sent,{message_id},{batch_id},,,{attempts},{sent_at},{parts}\r\n"
    if status == "in_flight":  # this run stopped while it was on its way
        return lines.row(ReportRow(row, phone, "unknown", batch_id=batch_id,
                                   error_code=IN_FLIGHT_CODE, error=IN_FLIGHT_ERROR,
                                   attempts=attempts, sent_at=sent_at, extra={"parts": parts}))
    return lines.row(ReportRow(row, phone, cast(ReportStatus, status), message_id=message_id,
                               batch_id=batch_id, error_code=error_code, error=error,
                               attempts=attempts, sent_at=sent_at, extra={"parts": parts}))


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
    journal = journal_path(report)  # (PostgreSQL state: the check runs again)
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


def check_destination(journal: Store, options: SendOptions) -> None:
    """A run sends to one place: resuming a sandbox run against Kaleyra (or the other way, or
    after KALEYRA_BASE_URL or the SID changed) would skip people who never got the message."""
    first = journal.settings.get("destination")
    if first and options.destination and first != options.destination:
        raise JournalError(
            f"{display_path(options.report)}: this run was sending to {first}, not "
            f"{options.destination}; keep the same target to resume it, or give the new run "
            "its own --report (--fresh would start over and send to every row again)")


def rows_to_skip(journal: Store, options: SendOptions) -> set[int]:
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
    checked: CheckedRows | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    observer: RunObserver | None = None,
) -> RunOutcome:
    """Send (or resume) the campaign and write its report. Blocks until done or stopped.

    With ``options.wait`` and the window closed, the observer is told when it opens, then the
    run waits for it; a signal meanwhile stops the run like any other (exit 75, full report).
    """
    observer = observer if observer is not None else RunObserver()
    window = None if options.ignore_window else campaign.sending.window
    started = time.monotonic()
    settings = journal_settings(campaign, summary, options.destination)
    fp = fingerprint(campaign)
    if options.state is None and guard(options.report, fresh=options.fresh,
                                       recover=options.recover_from_report):
        recover_journal(options.report, fp, settings)
    # In PostgreSQL the run is the campaign's name, region and SID: any machine resumes it.
    key = RunKey(campaign.name, campaign.account.region, endpoint.sid)
    journal = open_store(options.state, options.report, fp, fresh=options.fresh,
                         settings=settings, key=key)
    try:
        check_destination(journal, options)
        unknown_before = journal.mark_in_flight_unknown()
        skip = rows_to_skip(journal, options)
        left = to_send - len(skip)  # settled rows are all sendable ones
        stats, stopped, rerun_after = EngineStats(), False, None
        if left > 0:  # a finished run has nothing to wait for: the window does not matter
            state = window_state(window, now())
            if not state.open and not options.wait:
                with held():
                    counts = _write_journal_report(campaign, options.report, journal, checked)
                return RunOutcome(counts, options.report, stopped=True,
                                  closed_until=state.opens_at, run_number=journal.run_number,
                                  unknown_from_before=unknown_before)
            try:
                stats, stopped, rerun_after = asyncio.run(_under_signals(
                    lambda engines: _wait_then_send(campaign, endpoint, journal, skip, checked,
                                                    to_send=left, window=window, now=now,
                                                    observer=observer, engines=engines)))
            except StateLost:
                raise  # its message says what happened and what the rerun will do
            except JournalError as exc:  # mid-run: some batches may have gone out
                raise RunInterrupted(
                    f"{exc}. The run stopped; what was recorded is consistent: fix the cause "
                    "and rerun the same command to resume (requests in flight at the failure "
                    "are reported unknown)") from None
        with held():  # a stop now waits for the report: never the old one left in place
            counts = _write_journal_report(campaign, options.report, journal, checked)
        return RunOutcome(counts, options.report, stopped=stopped, requests=stats.requests,
                          retries=stats.retries, retry_causes=stats.retry_causes,
                          elapsed=time.monotonic() - started,
                          rerun_after=None if rerun_after is None else now() + timedelta(
                              seconds=rerun_after),
                          run_number=journal.run_number, unknown_from_before=unknown_before)
    finally:
        journal.close()


def _write_journal_report(campaign: Campaign, report: Path, journal: Store,
                          checked: CheckedRows | None) -> Counter[str]:
    journal.flush()
    if checked is not None:
        composer = Composer.for_campaign(campaign)
        fixed = composer.fixed_text if not composer.personalised else None
        parts = Preview(composer.segments).parts(fixed) if fixed is not None else 0
        return write_checked_report(report, checked, journal, parts)
    return write_report(report, report_rows(campaign, journal.outcomes_in_row_order()),
                        SENT_COLUMNS)


async def _under_signals(start: Callable[[list[Engine]], Coroutine[Any, Any, bool]]
                         ) -> tuple[EngineStats, bool, float | None]:
    """Run ``start`` (which puts its engine in the list it is given) under the signal handlers:
    (stats, whether the run was cut short, the Retry-After in seconds that stopped it if one
    did).

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

    before = {int(sig): signal.getsignal(sig) for sig in STOP_SIGNALS}
    handled = _install_signal_handlers(loop, on_signal)
    try:
        stopped = await main
    except asyncio.CancelledError:
        stopped = True
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
            signal.signal(sig, before[sig])  # asyncio leaves the default behind, not ours
    if not engines:
        return EngineStats(), stopped, None
    return engines[0].stats, stopped, engines[0].rerun_after


async def _wait_then_send(
    campaign: Campaign,
    endpoint: Endpoint,
    journal: Store,
    skip: set[int],
    checked: CheckedRows | None,
    *,
    to_send: int,
    window: Window | None,
    now: Callable[[], datetime],
    observer: RunObserver,
    engines: list[Engine],
) -> bool:
    sending = campaign.sending
    loop = asyncio.get_running_loop()
    state = window_state(window, now())
    while not state.open and state.opens_at is not None:  # --wait (a sleep may end early)
        observer.waiting_for_window(window, state.opens_at)
        await asyncio.sleep(max(0.05, (state.opens_at - now()).total_seconds()))
        state = window_state(window, now())

    observer.sending(to_send)
    async with aiohttp.ClientSession(connector=connector(sending.concurrency)) as session:

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
            retry=RetryPolicy(max_attempts=sending.max_attempts, deadline=sending.max_duration),
            on_ambiguous=sending.on_ambiguous,
            on_progress=observer.batch_done,
            on_wait=observer.waiting,
        )
        engines.append(engine)
        prefix = f"r{journal.run_number}-b"
        batches: Iterable[Batch]
        if checked is not None and not is_personalised(campaign):
            batches = checked.batches(size=campaign.effective_batch_size,  # the text as sent
                                      body=Composer.for_campaign(campaign).fixed_text, skip=skip,
                                      id_prefix=prefix)
        else:  # placeholders need the other columns: read the CSV again
            batches = plan_batches(
                open_recipients(campaign.recipients, with_fields=is_personalised(campaign)),
                campaign, skip=skip, id_prefix=prefix)
        closing = None
        if state.closes_at is not None:
            delay = max(0.0, (state.closes_at - now()).total_seconds())
            closing = loop.call_later(delay, engine.stop)
        try:
            result = await engine.run(batches)
        finally:
            if closing is not None:
                closing.cancel()
            observer.sending_done()
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
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
            pass
    return installed
