"""What ``runner.send`` returns: the counts, the report, and the exit code they mean."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from runner.exitcodes import EXIT_INCOMPLETE, EXIT_OK, EXIT_STOPPED

if TYPE_CHECKING:
    from runner.checker import CampaignCheck


@dataclass(frozen=True, slots=True)
class RunOutcome:
    counts: Counter[str]  # report rows by status
    report: Path
    stopped: bool = False  # cut short (signal, window closed): rerun to resume
    closed_until: datetime | None = None  # the window was closed at start; it opens then
    requests: int = 0
    retries: int = 0
    retry_causes: Counter[str] = field(default_factory=Counter)  # e.g. HTTP429, E103
    elapsed: float = 0.0
    run_number: int = 1
    unknown_from_before: int = 0  # rows found in flight from an earlier run that died
    # Kaleyra asked to wait until then (a Retry-After over 5 minutes), which stopped the run
    rerun_after: datetime | None = None
    dry_run: bool = False
    check: CampaignCheck | None = field(default=None, compare=False)  # the check it sent from

    @property
    def exit_code(self) -> int:
        if self.dry_run:
            return EXIT_OK
        if self.closed_until is not None:
            return EXIT_STOPPED
        # Stopped early means rows are left to send: a stop that came when the last batches
        # were already in flight, and let them finish, leaves a finished run.
        if self.counts.get("pending", 0):
            return EXIT_STOPPED
        if self.counts.get("failed", 0) or self.counts.get("unknown", 0):
            return EXIT_INCOMPLETE
        return EXIT_OK
