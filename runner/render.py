"""Text for people: the dry run's plan, the end of a send, and what a run says while it runs.

Only the CLI prints; these build the words from the API's results and observer hooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from runner.checker import CampaignCheck
from runner.cost import plan_lines
from runner.errors import display_path
from runner.exitcodes import EXIT_INCOMPLETE
from runner.limiter import min_duration
from runner.model import Window
from runner.progress import ProgressObserver
from runner.report import format_summary
from runner.results import RunOutcome
from runner.window import describe


def describe_plan(check: CampaignCheck, report: Path) -> str:
    assert check.campaign is not None and check.summary is not None
    c, s = check.campaign, check.summary
    m = c.message
    route = ", ".join([c.account.region, m.type] + (["flash"] if m.flash else []))
    rate = c.sending.requests_per_second
    seconds = min_duration(rate, s.requests)
    parts = f"{s.max_parts} part" + ("s" if s.max_parts != 1 else "")
    if s.min_parts != s.max_parts:
        parts = f"{s.min_parts}-{s.max_parts} parts"
    lines = [
        f"{c.name}: {route}, sender {m.sender}",
        f"  recipients  {s.recipients:,} rows: {s.valid:,} to send, {s.duplicates:,} duplicates, "
        f"{s.suppressed:,} suppressed, {s.invalid:,} invalid",
        f"  message     {s.encoding}, {parts} (longest {s.max_units} of {s.part_limit} "
        "characters)" + (f", template {m.template_id}" if m.template_id else ""),
        f"  requests    {_batches(s.batches)} of up to {c.effective_batch_size}, at {rate:g} a "
        f"second: about {_duration(seconds)}",
        *plan_lines(c, s),  # billable parts and the estimated cost
        f"  window      {describe(c.sending.window, datetime.now(UTC))}",
        f"  report      {display_path(report)} (dry run: nothing sent)",
    ]
    return "\n".join(lines)


def send_lines(outcome: RunOutcome, *, quiet: bool = False) -> tuple[list[str], list[str]]:
    """(lines for stdout, lines for stderr) at the end of a send; ``quiet``: the reason a run
    did not finish well, nothing else."""
    err: list[str] = []
    if outcome.unknown_from_before:
        err.append(f"resumed: {outcome.unknown_from_before:,} rows were in flight when the last "
                   "run stopped; they are reported unknown (rerun with --resend-unknown to send "
                   "them again)")
    err.append(format_summary(outcome.counts, requests=outcome.requests,
                              retries=outcome.retries, elapsed=outcome.elapsed))
    if quiet:
        err.clear()
    shown = display_path(outcome.report)
    if outcome.closed_until is not None:
        window = outcome.check.campaign.sending.window if outcome.check and \
            outcome.check.campaign else None
        err.append(f"nothing sent: the send window is closed "
                   f"({describe(window, datetime.now(UTC))}); rerun then, or pass --wait")
    elif outcome.rerun_after is not None:
        err.append(rerun_after_line(outcome.rerun_after))
    elif outcome.counts.get("pending", 0):
        err.append("stopped early: rerun the same command to resume")
    elif outcome.exit_code == EXIT_INCOMPLETE:
        err += next_steps(outcome.counts, shown)
    return ([] if quiet else [f"report: {shown}"]), err


def rerun_after_line(when: datetime, now: datetime | None = None) -> str:
    """e.g. 'stopped: Kaleyra asked to wait 2.0 h (Retry-After); rerun the same command after
    2026-12-02 09:15 UTC to resume'."""
    left = (when - (now or datetime.now(UTC))).total_seconds()
    at = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"stopped: Kaleyra asked to wait {_duration(left)} (Retry-After); rerun the same "
            f"command after {at} to resume")


def next_steps(counts: Mapping[str, int], report: str) -> list[str]:
    """What to do after a run that finished with rows not sent (exit 3)."""
    lines = ["next:"]
    if counts.get("failed", 0):
        lines.append(f"  {counts['failed']:,} failed: see error_code and error in {report}; "
                     "after fixing the cause, rerun with --retry-failed")
    if counts.get("unknown", 0):
        lines.append(f"  {counts['unknown']:,} unknown (may have been delivered): "
                     f"`campaign status {report}` tells which arrived; --resend-unknown sends "
                     "them again (some may get it twice)")
    if counts.get("expired", 0):
        lines.append(f"  {counts['expired']:,} expired: not sent before sending.expires")
    return lines


class ConsoleObserver(ProgressObserver):
    """What `campaign send` says while it runs: warnings, where it sends, waits, progress."""

    def __init__(self, err: TextIO, *, quiet: bool = False) -> None:
        super().__init__(stream=err, enabled=not quiet)
        self._err = err
        self._quiet = quiet

    def checked(self, check: CampaignCheck, *, reused: bool) -> None:
        if self._quiet:
            return
        if reused:
            self._say("resuming: the recipients were checked when this run started and have "
                      "not changed; not reading them again")
        for d in check.diagnostics:
            self._say(d.format_text())

    def sandbox_started(self, base_url: str, *, window_ignored: bool) -> None:
        if self._quiet:
            return
        self._say(f"sandbox: sending to the local Kaleyra-compatible server at {base_url}")
        if window_ignored:
            self._say("sandbox: the send window does not apply to a rehearsal "
                      "(--respect-window keeps to it)")

    def waiting_for_window(self, window: Window | None, opens_at: datetime) -> None:
        if self._quiet:
            return
        self._say(f"waiting for the send window: {describe(window, datetime.now(UTC))} "
                  "(Ctrl-C or SIGTERM stops; rerun to resume)")

    def _say(self, line: str) -> None:
        print(line, file=self._err, flush=True)


def _batches(n: int) -> str:
    return f"{n:,} batch" if n == 1 else f"{n:,} batches"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"
