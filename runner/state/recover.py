"""The lost-state guard of the file journal, and rebuilding a journal from a report.

A report that records a send (rows ``sent``, ``failed`` or ``unknown``) with no journal beside
it means the run's memory is gone (a CI runner's workspace, a deleted file): sending again would
send to everybody a second time. ``guard`` refuses, naming the two ways on: ``--recover-from-
report`` rebuilds the journal from that report, its ``sent``, ``failed`` and ``unknown`` rows
counting as answered (``unknown`` stays unknown: not resent unless asked), and the run carries
on; ``--fresh`` starts over and sends to every row again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from runner.errors import InputError, display_path
from runner.reportread import read_report, read_report_cells
from runner.state.records import JournalRow
from runner.state.sqlite import Journal
from runner.state.sqlitefile import journal_path

ANSWERED = frozenset({"sent", "failed", "unknown"})


def records_a_send(report: Path) -> bool:
    """Whether ``report`` is the report of a send that reached somebody (or may have)."""
    if not report.is_file():
        return False
    try:
        header, rows = read_report_cells(report)
        if "text" in header or "status" not in header:
            return False  # a dry run's preview (a send's report never holds the texts)
        at = header.index("status")  # a word, never neutralised: the cells as written
        return any(cells[at] in ANSWERED for _, cells in rows)
    except InputError:
        return False  # not a report: the report path checks say so, if it matters


def guard(report: Path, *, fresh: bool, recover: bool) -> bool:
    """Refuse a send whose report says it already sent but whose journal is gone.

    True when the journal must be rebuilt from the report (``recover``); ``fresh`` passes."""
    if fresh or journal_path(report).exists() or not records_a_send(report):
        return False
    if recover:
        return True
    raise InputError(
        f"{display_path(report)} is the report of a send run, but its journal "
        f"{display_path(journal_path(report))} is missing: sending now would send to everyone "
        "again. Nothing sent. Rerun with --recover-from-report to rebuild the journal from this "
        "report (its sent, failed and unknown rows count as answered) and carry on, or with "
        "--fresh to send to every row again. In CI, keep the state in a database: --state "
        "postgresql://... (or $CAMPAIGN_STATE)")


def _answered(report: Path) -> Iterator[JournalRow]:
    shown = display_path(report)
    for line, row in enumerate(read_report(report), start=2):
        if row.get("status") not in ANSWERED:
            continue
        try:
            number, attempts = int(row["row"]), int(row.get("attempts") or 0)
        except ValueError:
            raise InputError(f"{shown}:{line}: row or attempts is not a whole number; cannot "
                             "recover the journal from this report") from None
        yield (number, row["phone"], row["status"], row.get("batch_id", ""),
               row.get("message_id", ""), row.get("error_code", ""), row.get("error", ""),
               attempts, row.get("sent_at", ""))


def recover_journal(report: Path, fingerprint: str,
                    settings: Mapping[str, object] | None = None) -> int:
    """Write the journal beside ``report`` from its answered rows (committed at once, so a crash
    mid-recovery leaves no half journal: the guard would refuse again). Rows recovered."""
    path = journal_path(report)
    rows = list(_answered(report))
    partial = Path(f"{path}.recovering")
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        leftover.unlink(missing_ok=True)
    with Journal.open(partial, fingerprint, settings=settings) as journal:
        for start in range(0, len(rows), 1000):
            journal.finish_rows(rows[start:start + 1000])
        journal.flush()
    partial.rename(path)
    return len(rows)
