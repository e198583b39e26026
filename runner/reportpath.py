"""Where a run's report (and the journal beside it) goes, and what it may never overwrite.

Checked before anything is read or sent: a report path found wrong only after sending would end
the run with exit 1 and its journal somewhere unexpected.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from runner.errors import InputError, display_path
from runner.journal import journal_path
from runner.model import Campaign


def resolve_report(campaign: Campaign, report: str | os.PathLike[str] | None, *,
                   sandbox: bool) -> Path:
    """The report path: ``report`` when given (its folder must exist), else the campaign's
    ``report:`` key or ``reports/<name>.csv`` under the working folder (created), with
    ``.sandbox`` before the suffix for a sandbox rehearsal."""
    if report is not None:
        path = Path(report)
        if not path.parent.is_dir():
            raise InputError(f"--report {os.fspath(report)}: the folder "
                             f"{display_path(path.parent)} does not exist")
    else:
        path = campaign.default_report_path(Path.cwd())
        if sandbox:  # a rehearsal never shares a report (and journal) with the real run
            path = path.with_name(f"{path.stem}.sandbox{path.suffix}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the report folder {display_path(path.parent)}: "
                             f"{exc.strerror}") from None
    refuse_inputs_as_report(path, campaign)
    check_writable(path)
    return path


def refuse_inputs_as_report(report: Path, campaign: Campaign) -> None:
    """The report (and its journal) must not replace a file the campaign reads."""
    inputs = (campaign.path, campaign.recipients.source, *campaign.recipients.exclude)
    target = report.resolve()
    for path in inputs:
        if path.resolve() == target or Path(f"{path}.journal").resolve() == target:
            raise InputError(f"{display_path(report)}: the report would overwrite "
                             f"{display_path(path)}, which the campaign reads; give the report "
                             "its own path")


def check_writable(report: Path) -> None:
    """Refuse a report path that is a folder, or in a folder we cannot write, up front."""
    if report.is_dir():
        raise InputError(f"{display_path(report)}: is a folder; give the report a file name, "
                         f"e.g. {display_path(report / 'report.csv')}")
    try:
        fd, probe = tempfile.mkstemp(dir=report.parent, prefix=f".{report.name}.",
                                     suffix=".probe")
    except OSError as exc:
        raise InputError(f"{display_path(report)}: cannot write the report in "
                         f"{display_path(report.parent)}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def refuse_to_overwrite_a_run(report: Path) -> None:
    """A dry run keeps off the report of a real run: what `campaign status` and people read."""
    journal = journal_path(report)
    if journal.exists():
        raise InputError(f"{display_path(report)} is the report of a send run (its journal "
                         f"{display_path(journal)} is beside it): a dry run would overwrite it; "
                         "pass --report to write the dry run elsewhere")
