"""Text for people: the dry run's plan, the end of a send, and what a run says while it runs.

Only the CLI prints; these build the words from the API's results and observer hooks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from runner.checker import CampaignCheck
from runner.errors import display_path
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
        f"  window      {describe(c.sending.window, datetime.now(UTC))}",
        f"  report      {display_path(report)} (dry run: nothing sent)",
    ]
    return "\n".join(lines)


def send_lines(outcome: RunOutcome) -> tuple[list[str], list[str]]:
    """(lines for stdout, lines for stderr) at the end of a send."""
    err: list[str] = []
    if outcome.unknown_from_before:
        err.append(f"resumed: {outcome.unknown_from_before:,} rows were in flight when the last "
                   "run stopped; they are reported unknown (rerun with --resend-unknown to send "
                   "them again)")
    err.append(format_summary(outcome.counts, requests=outcome.requests,
                              retries=outcome.retries, elapsed=outcome.elapsed))
    if outcome.closed_until is not None:
        window = outcome.check.campaign.sending.window if outcome.check and \
            outcome.check.campaign else None
        err.append(f"nothing sent: the send window is closed "
                   f"({describe(window, datetime.now(UTC))}); rerun then, or pass --wait")
    elif outcome.counts.get("pending", 0):
        err.append("stopped early: rerun the same command to resume")
    return [f"report: {display_path(outcome.report)}"], err


class ConsoleObserver(ProgressObserver):
    """What `campaign send` says while it runs: warnings, where it sends, waits, progress."""

    def __init__(self, err: TextIO) -> None:
        super().__init__(stream=err)
        self._err = err

    def checked(self, check: CampaignCheck, *, reused: bool) -> None:
        if reused:
            self._say("resuming: the recipients were checked when this run started and have "
                      "not changed; not reading them again")
        for d in check.diagnostics:
            self._say(d.format_text())

    def sandbox_started(self, base_url: str, *, window_ignored: bool) -> None:
        self._say(f"sandbox: sending to the local Kaleyra-compatible server at {base_url}")
        if window_ignored:
            self._say("sandbox: the send window does not apply to a rehearsal "
                      "(--respect-window keeps to it)")

    def waiting_for_window(self, window: Window | None, opens_at: datetime) -> None:
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
    return f"{seconds / 3600:.1f} h"
