"""The file journal's lost-state guard and rebuilding a journal from a report."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import InputError
from runner.report import ReportRow, write_report
from runner.state import Journal, journal_path
from runner.state.recover import guard, recover_journal


def a_report(path: Path, *statuses: str) -> Path:
    write_report(path, iter([ReportRow(2 + i, f"+6591234{i:03d}", status,  # type: ignore[arg-type]
                                       message_id=f"m{i}" if status == "sent" else "",
                                       batch_id="r1-b1" if status != "pending" else "",
                                       attempts=1 if status != "pending" else 0)
                             for i, status in enumerate(statuses)]))
    return path


def test_a_send_s_report_without_its_journal_is_refused_naming_both_ways(tmp_path: Path) -> None:
    report = a_report(tmp_path / "r.csv", "sent", "failed", "pending")
    with pytest.raises(InputError) as info:
        guard(report, fresh=False, recover=False)
    text = str(info.value)
    assert "--recover-from-report" in text and "--fresh" in text and "Nothing sent" in text
    assert guard(report, fresh=False, recover=True) is True
    assert guard(report, fresh=True, recover=False) is False  # starting over is allowed


@pytest.mark.parametrize("statuses", [("dry_run", "invalid"), ("pending", "duplicate"), ()])
def test_reports_that_sent_nobody_and_missing_reports_pass(tmp_path: Path,
                                                           statuses: tuple[str, ...]) -> None:
    report = a_report(tmp_path / "r.csv", *statuses) if statuses else tmp_path / "none.csv"
    assert guard(report, fresh=False, recover=False) is False


def test_a_report_with_its_journal_passes(tmp_path: Path) -> None:
    report = a_report(tmp_path / "r.csv", "sent")
    Journal.open(journal_path(report), "fp").close()
    assert guard(report, fresh=False, recover=False) is False


def test_recovery_counts_sent_failed_and_unknown_as_answered(tmp_path: Path) -> None:
    report = a_report(tmp_path / "r.csv", "sent", "failed", "unknown", "pending", "invalid")
    assert recover_journal(report, "fp", {"name": "x"}) == 3
    with Journal.open(journal_path(report), "fp") as journal:
        assert journal.run_number == 2  # the recovered run, resumed
        assert journal.rows_with_status("sent") == {2}
        assert journal.rows_with_status("failed", "unknown") == {3, 4}
        sent = journal.outcome(2)
        assert sent is not None and sent.message_id == "m0"
        assert journal.settings == {"name": "x"}
    assert not list(tmp_path.glob("*.recovering*"))
