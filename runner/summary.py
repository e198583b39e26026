"""`campaign send --summary-json PATH`: the run as a versioned JSON document for dashboards.

Version 1 (keys are only ever added; a change of meaning bumps ``version``)::

    {"version": 1, "command": "send", "campaign": "diwali-flash-2026", "file": "...",
     "dry_run": false, "exit_code": 3, "report": "reports/diwali.csv",
     "counts": {"sent": 2200, "failed": 3, ...},      # report rows by status
     "requests": 23, "retries": {"total": 2, "by_cause": {"HTTP429": 2}},
     "throttling": {"throttled": false},
     "elapsed_seconds": 3.2, "started_at": "...", "finished_at": "...",
     "errors": []}                                     # diagnostics when the campaign is invalid

plus ``"rerun_after": "<ISO time>"`` when a Retry-After of more than 5 minutes stopped the run.

Written atomically (a temporary file, then a rename), never with the key or a password.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from runner.errors import Diagnostic, InputError, display_path
from runner.results import RunOutcome

SUMMARY_VERSION = 1


def run_summary(outcome: RunOutcome, *, started_at: datetime, file: str) -> dict[str, object]:
    check = outcome.check
    campaign = check.campaign if check is not None else None
    document = _document(
        file=file, campaign=campaign.name if campaign is not None else None,
        dry_run=outcome.dry_run, exit_code=outcome.exit_code, report=outcome.report,
        counts=outcome.counts, requests=outcome.requests,
        retries={"total": outcome.retries, "by_cause": dict(sorted(
            outcome.retry_causes.items()))},
        elapsed=outcome.elapsed, started_at=started_at,
        errors=check.diagnostics if check is not None else ())
    if outcome.rerun_after is not None:  # a Retry-After of more than 5 minutes stopped the run
        document["rerun_after"] = outcome.rerun_after.isoformat(timespec="seconds")
    return document


def failed_summary(*, file: str, exit_code: int, started_at: datetime,
                   diagnostics: Sequence[Diagnostic] = (), message: str = "",
                   dry_run: bool = False) -> dict[str, object]:
    """The summary of a send that ended without a run (invalid campaign, refused input)."""
    errors = list(diagnostics)
    if message and not errors:
        errors.append(Diagnostic("error", message, file, code="send-refused"))
    return _document(file=file, campaign=None, dry_run=dry_run, exit_code=exit_code, report=None,
                     counts={}, requests=0, retries={"total": 0, "by_cause": {}}, elapsed=0.0,
                     started_at=started_at, errors=errors)


def _document(*, file: str, campaign: str | None, dry_run: bool, exit_code: int,
              report: Path | None, counts: Mapping[str, int], requests: int,
              retries: dict[str, object], elapsed: float, started_at: datetime,
              errors: Sequence[Diagnostic]) -> dict[str, object]:
    return {
        "version": SUMMARY_VERSION,
        "command": "send",
        "campaign": campaign,
        "file": file,
        "dry_run": dry_run,
        "exit_code": exit_code,
        "report": display_path(report) if report is not None else None,
        "counts": dict(sorted((k, v) for k, v in counts.items() if v)),
        "requests": requests,
        "retries": retries,
        "throttling": {"throttled": False},
        "elapsed_seconds": round(elapsed, 3),
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "errors": [d.to_json() for d in errors if d.severity == "error"],
        "warnings": sum(1 for d in errors if d.severity == "warning"),
    }


def write_summary(path: Path, document: Mapping[str, object]) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"--summary-json {display_path(path)}: cannot write it: "
                         f"{exc.strerror or exc}") from None
