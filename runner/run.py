"""Running a campaign: the real send with resume; its report is written by runner.runreport.

The caller (the CLI) has already checked the campaign, and kept what the check found
(``runner.verdicts.CheckedRows``): the verdicts, and for a body with placeholders the batches it
planned. The send sends those and nothing else (a caller without verdicts gets one pass made
before anything is sent), the journal remembers every answer, and the report merges the verdicts
with the journal, both in source-row order: the CSV is never read twice, so a CSV that grows or
changes during a run changes neither what is sent nor the report. The journal's fingerprint
covers the CSV's bytes as that pass read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from runner.answers import Outcome
from runner.checker import PlanSummary, summarise_recipients
from runner.compose import Composer
from runner.endpoint import Endpoint
from runner.engine import Engine, EngineStats, RetryPolicy
from runner.errors import (
    CampaignInvalid,
    JournalError,
    RunInterrupted,
    StateLost,
    display_path,
    has_errors,
)
from runner.fingerprint import fingerprint
from runner.kaleyra import build_payload, connector, post_sms
from runner.limiter import RateLimiter
from runner.model import Campaign, Window
from runner.observer import RunObserver
from runner.pacing import Pacing, expired_at, provider_limiter
from runner.plan import Batch, is_personalised, text_sizes
from runner.refusals import AccountWatch
from runner.results import RunOutcome
from runner.runreport import write_journal_report
from runner.signals import STOP_SIGNALS, held
from runner.state import (
    RunKey,
    Store,
    journal_path,
    open_store,
    read_meta,
)
from runner.state.recover import guard, recover_journal
from runner.verdicts import CheckedRows
from runner.window import ALWAYS_OPEN, window_state
from runner.zoneplan import zone_rows
from runner.zonerun import Sleep, ZoneRun
from runner.zones import per_recipient

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


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


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
        # A variable's name only: a key pasted there (a Campaign built by hand) is not kept.
        "api_key_env": key_env if _ENV_NAME.fullmatch(key_env := campaign.account.api_key_env)
        else None,
        "requests_per_second": campaign.sending.requests_per_second,
        "concurrency": campaign.sending.concurrency,
        "max_attempts": campaign.sending.max_attempts,
        "timeout": campaign.sending.timeout,
        "messages_per_second": campaign.sending.messages_per_second,
        "parts_per_second": campaign.sending.parts_per_second,
        "max_messages_per_hour": campaign.sending.max_messages_per_hour,
        "max_messages_per_day": campaign.sending.max_messages_per_day,
    }


def stored_summary(report: Path, campaign: Campaign, *, source_sha256: str | None = None
                   ) -> PlanSummary | None:
    """The recipient summary a run of this very campaign stored when it started, if any.

    The journal's fingerprint covers the bytes of the CSV (``source_sha256``: as a check pass
    read them) and suppression lists, so a match means the check made then still holds.
    """
    journal = journal_path(report)  # (PostgreSQL state: the check runs again)
    if not journal.exists():
        return None
    try:
        meta = read_meta(journal)
    except JournalError:
        return None  # opening it for the send says what is wrong
    if meta.fingerprint != fingerprint(campaign, source_sha256=source_sha256):
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
    """The rows this run does not send: one read of the store, which also guards every request
    with it (``Store.settle``)."""
    statuses = ("sent", *(() if options.retry_failed else ("failed",)),
                *(() if options.resend_unknown else ("unknown",)))
    skip = journal.rows_with_status(*statuses)
    journal.settle(skip)
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
    sleep: Sleep = asyncio.sleep,
) -> RunOutcome:
    """Send (or resume) the campaign and write its report. Blocks until done or stopped.

    With ``options.wait`` and the window closed, the observer is told when it opens, then the
    run waits for it; a signal meanwhile stops the run like any other (exit 75, full report).
    A window in the recipient's zone sends the rows whose zone is open (``runner.zonerun``).
    """
    observer = observer if observer is not None else RunObserver()
    if checked is None:  # nothing is sent that a pass made before sending did not read
        with read_checked(campaign, options.report.parent) as rows:
            return send_campaign(campaign, endpoint, options, to_send=to_send, summary=summary,
                                 checked=rows, now=now, observer=observer, sleep=sleep)
    window = None if options.ignore_window else campaign.sending.window
    started = time.monotonic()
    settings = journal_settings(campaign, summary, options.destination)
    # The fingerprint covers the CSV's bytes as the check pass read them: what is sent.
    fp = fingerprint(campaign, source_sha256=checked.source_sha256)
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
        limiter = provider_limiter(campaign.sending)
        pacing = Pacing(campaign.sending, limiter, counts=journal, wait=options.wait, now=now,
                        on_wait=observer.waiting_for_cap, ucs2=campaign.message.unicode == "1")
        watch = AccountWatch()
        # The clock is read only when there is an expiry to compare it with.
        expires = campaign.sending.expires is not None
        expired = expires and expired_at(campaign.sending, now())
        zoned = None
        if left > 0 and window is not None and per_recipient(window):
            zoned = ZoneRun(window, campaign.sending.fallback_timezone, now=now, sleep=sleep,
                            size=campaign.effective_batch_size, wait=options.wait,
                            expires=campaign.sending.expires, size_of=text_sizes(campaign))
        if left > 0 and not expired:  # a finished run need not wait: the window does not matter
            state = ALWAYS_OPEN if zoned else window_state(window, now())
            never = expired_at(campaign.sending, state.opens_at)  # it opens after the expiry
            if not state.open and not never and not options.wait:
                with held():
                    counts = write_journal_report(campaign, options.report, journal, checked)
                return RunOutcome(counts, options.report, stopped=True,
                                  closed_until=state.opens_at, run_number=journal.run_number,
                                  unknown_from_before=unknown_before)
            try:
                stats, stopped, rerun_after = asyncio.run(_under_signals(
                    lambda engines: _wait_then_send(campaign, endpoint, journal, skip, checked,
                                                    to_send=left, window=window, now=now,
                                                    observer=observer, engines=engines,
                                                    zoned=zoned, limiter=limiter,
                                                    pacing=pacing, watch=watch)))
            except StateLost:
                raise  # its message says what happened and what the rerun will do
            except JournalError as exc:  # mid-run: some batches may have gone out
                raise RunInterrupted(
                    f"{exc}. The run stopped; what was recorded is consistent: fix the cause "
                    "and rerun the same command to resume (requests in flight at the failure "
                    "are reported unknown)") from None
        expired = expired or pacing.expired or bool(zoned and zoned.expired) or (
            expires and expired_at(campaign.sending, now()))
        refused = (watch.refusal.line(campaign.account.api_key_env)
                   if watch.refusal is not None else "")
        unsent = ("expired", "not sent before sending.expires") if expired else (
            "pending", refused)
        with held():  # a stop now waits for the report: never the old one left in place
            counts = write_journal_report(campaign, options.report, journal, checked, unsent)
        capped = pacing.caps.limit_hit if pacing.caps is not None else ""
        return RunOutcome(counts, options.report, stopped=stopped, requests=stats.requests,
                          retries=stats.retries, retry_causes=stats.retry_causes,
                          elapsed=time.monotonic() - started,
                          rerun_after=None if rerun_after is None else now() + timedelta(
                              seconds=rerun_after),
                          run_number=journal.run_number, unknown_from_before=unknown_before,
                          next_opening=zoned.opening if zoned else None,
                          never_open=zoned.never if zoned else 0,
                          refused=refused, throttling=pacing.throttling(),
                          capped_until=pacing.capped_until if not expired else None,
                          cap=capped)
    finally:
        journal.close()


@contextlib.contextmanager
def read_checked(campaign: Campaign, folder: Path) -> Iterator[CheckedRows]:
    """The check pass's verdicts for a caller that has none: one read of the CSV, before
    anything is sent (an invalid campaign is an InputError)."""
    rows = CheckedRows.for_campaign(campaign, folder)
    try:
        summary, found = summarise_recipients(campaign, observer=rows)
        if summary is None or has_errors(found):
            raise CampaignInvalid(f"{display_path(campaign.path)}: invalid campaign, nothing "
                                  "sent", found)
        yield rows
    finally:
        rows.close()


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
    checked: CheckedRows,
    *,
    to_send: int,
    window: Window | None,
    now: Callable[[], datetime],
    observer: RunObserver,
    engines: list[Engine],
    zoned: ZoneRun | None = None,
    limiter: RateLimiter,
    pacing: Pacing,
    watch: AccountWatch,
) -> bool:
    sending = campaign.sending
    loop = asyncio.get_running_loop()
    state = ALWAYS_OPEN if zoned else window_state(window, now())
    if not state.open and expired_at(campaign.sending, state.opens_at):
        pacing.expired = True  # the window opens only after the campaign expires
        return True
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
            limiter=limiter,
            concurrency=sending.concurrency,
            retry=RetryPolicy(max_attempts=sending.max_attempts, deadline=sending.max_duration),
            on_ambiguous=sending.on_ambiguous,
            on_progress=observer.batch_done,
            on_wait=observer.waiting,
            pacing=pacing,
            watch=watch,
        )
        engines.append(engine)
        prefix = f"r{journal.run_number}-b"
        if zoned is not None:
            if sending.expires is not None:  # expiring stops taking batches, as below
                loop.call_later(max(0.0, (sending.expires - now()).total_seconds()), engine.stop)
            try:
                return await zoned.send(engine, lambda: zone_rows(campaign, checked), skip,
                                        id_prefix=prefix, observer=observer)
            finally:
                observer.sending_done()
        # Only what the check pass read is sent: its verdicts, and for personalised texts the
        # batches it planned (never a second read of a CSV that may have changed since).
        batches: Iterable[Batch]
        if is_personalised(campaign):
            batches = checked.planned_batches(skip=skip, id_prefix=prefix)
        else:  # the text as sent
            batches = checked.batches(size=campaign.effective_batch_size,
                                      body=Composer.for_campaign(campaign).fixed_text, skip=skip,
                                      id_prefix=prefix)
        closing = None
        ends = [t for t in (state.closes_at, sending.expires) if t is not None]
        if ends:  # the window closing, or the campaign expiring, stops taking batches
            delay = max(0.0, (min(ends) - now()).total_seconds())
            closing = loop.call_later(delay, engine.stop)
        try:
            result = await engine.run(batches)
        finally:
            if closing is not None:
                closing.cancel()
            observer.sending_done()
        return result.stopped


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
