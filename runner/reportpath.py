"""Where a run's report (and the journal beside it) goes, and what it may never overwrite.

Checked before anything is read or sent: a report path found wrong only after sending would end
the run with exit 1 and its journal somewhere unexpected.
"""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
from pathlib import Path

from runner.errors import InputError, display_path
from runner.model import Campaign
from runner.report import is_locked
from runner.state import journal_path


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
    path = real_report_path(path)
    refuse_inputs_as_report(path, campaign)
    check_writable(path)
    remove_leftovers(path)
    return path


def real_report_path(path: Path) -> Path:
    """The report's real path: a symlink is followed, so that its journal is the run's own
    (``latest.csv`` pointing at a finished run's report must resume that run, not start
    another). A hard link, or a path that names a journal, is refused."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
        if not path.parent.is_dir():
            raise InputError(f"{display_path(path)}: the report's link points into a folder "
                             "that does not exist")
    if path.name.endswith(".journal") or ".journal." in path.name or _is_sqlite(path):
        raise InputError(f"{display_path(path)}: this is a run's journal, not a report; a report "
                         "written here would destroy the run's record. Give the report its own "
                         "path (the journal is kept beside it as <report>.journal)")
    with contextlib.suppress(FileNotFoundError):
        found = path.stat()
        if stat.S_ISREG(found.st_mode) and found.st_nlink > 1:
            raise InputError(f"{display_path(path)}: the report is a hard link to another file; "
                             "a run's journal is found by the report's path, so linked reports "
                             "could send twice. Give the report a path of its own")
    return path


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def remove_leftovers(report: Path) -> None:
    """Remove the temporary files of earlier runs that were killed while writing this report
    (they hold phone numbers). A file still locked belongs to a writer that is alive."""
    for tmp in report.parent.glob(f".{glob.escape(report.name)}.*.tmp"):
        if not is_locked(tmp):
            with contextlib.suppress(OSError):
                tmp.unlink()


def refuse_inputs_as_report(report: Path, campaign: Campaign) -> None:
    """The report (and its journal) must not replace a file the campaign reads."""
    inputs = (campaign.path, campaign.recipients.source, *campaign.recipients.exclude,
              *((campaign.dlt.templates,) if campaign.dlt is not None else ()))
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
    """A dry run keeps off the report of a real run: what `campaign status` and people read
    (found by its journal, or, for a run whose state is in PostgreSQL, by its rows)."""
    from runner.state.recover import records_a_send

    journal = journal_path(report)
    if journal.exists():
        raise InputError(f"{display_path(report)} is the report of a send run (its journal "
                         f"{display_path(journal)} is beside it): a dry run would overwrite it; "
                         "pass --report to write the dry run elsewhere")
    if records_a_send(report):
        raise InputError(f"{display_path(report)} is the report of a send run (it has sent, "
                         "failed or unknown rows): a dry run would overwrite it; pass --report "
                         "to write the dry run elsewhere")
