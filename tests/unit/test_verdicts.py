"""The check pass's verdicts: the dry-run report's fast merge, and the send's report built from
the verdicts, each byte for byte what the general way writes."""

from __future__ import annotations

import errno
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.checker import _each_seen, _triples, check_campaign
from runner.compose import Composer, composed
from runner.journal import Journal, RowOutcome
from runner.plan import plan_batches, plan_texts
from runner.preview import Preview
from runner.recipients import NO_FIELDS, Recipient, open_recipients
from runner.report import PREVIEW_COLUMNS, SENT_COLUMNS, ReportWriter, write_report
from runner.runreport import report_rows, write_checked_report
from runner.verdicts import CheckedRows, DryRunReport

# A row of each kind: valid numbers (some repeated), invalid cells, cells a spreadsheet would run.
CELLS = st.one_of(
    st.sampled_from([f"+6581234{n:03d}" for n in range(12)]),  # valid SG, repeats likely
    st.sampled_from(["12", "call me", "=cmd()", '"+65 8123, 4000"', "", "-5", "+65 8123 4001"]),
)


def campaign_file(folder: Path, cells: list[str], *, batch_size: int, body: str = "Hi") -> Path:
    (folder / "people.csv").write_text("phone,name\n" + "".join(f"{c},n{i}\n" for i, c in
                                                                enumerate(cells)),
                                       encoding="utf-8")
    (folder / "blocked.csv").write_text("phone\n+6581234007\n", encoding="utf-8")
    path = folder / "c.yaml"
    path.write_text(
        "version: 1\nname: v\naccount: {region: SG}\n"
        f"message: {{sender: ACME, type: DEFAULT, body: \"{body}\"}}\n"
        "recipients: {source: people.csv, default_country: SG, max_invalid_ratio: 1.0, "
        "exclude: [blocked.csv]}\n"
        f"sending: {{batch_size: {batch_size}}}\n",
        encoding="utf-8")
    return path


def dry_run_report(path: Path, report: Path, *, batch_size: int | None,
                   one_by_one: bool = False) -> bytes:
    """The dry-run report as the CLI writes it (batch_size given), or through the general
    merge, fed by the planner itself (batch_size None)."""
    observer = DryRunReport(ReportWriter(report, PREVIEW_COLUMNS), batch_size=batch_size,
                            preview=Preview(), fixed_text="Hi")
    if batch_size is not None and not one_by_one:
        check = check_campaign(path, observer=observer)
        assert check.summary is not None, check.diagnostics
    elif batch_size is not None:
        campaign = check_campaign(path).campaign
        assert campaign is not None
        for recipient in open_recipients(campaign.recipients, with_fields=False):
            observer.recipient(recipient)
    else:
        campaign = check_campaign(path).campaign
        assert campaign is not None
        stream = open_recipients(campaign.recipients, with_fields=False)
        pairs = composed(stream, Composer.for_campaign(campaign))
        for batch in plan_texts(_triples(_each_seen(pairs, observer)),
                                campaign.effective_batch_size):
            observer.batch(batch)
    observer.commit()
    return report.read_bytes()


@settings(max_examples=60, deadline=None)
@given(cells=st.lists(CELLS, min_size=1, max_size=40), batch_size=st.integers(1, 5))
def test_the_row_order_merge_writes_what_the_general_one_does(cells: list[str],
                                                              batch_size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = campaign_file(folder, cells, batch_size=batch_size)
        fast = dry_run_report(path, folder / "fast.csv", batch_size=batch_size)
        general = dry_run_report(path, folder / "general.csv", batch_size=None)
        by_row = dry_run_report(path, folder / "by-row.csv", batch_size=batch_size,
                                one_by_one=True)
    assert fast == general == by_row
    assert fast.count(b"\r\n") == 1 + len(cells)  # the header, then one line a source row


def test_a_dry_run_that_plans_nothing_still_reports_every_row(tmp_path: Path) -> None:
    path = campaign_file(tmp_path, ["12", "call me", "+6581234001", "=cmd()"], batch_size=2)
    text = dry_run_report(path, tmp_path / "r.csv", batch_size=2).decode()
    assert [line.split(",")[2] for line in text.splitlines()[1:]] == [
        "invalid", "invalid", "dry_run", "invalid"]
    assert "'=cmd()" in text  # neutralised for spreadsheets, as everywhere else


def checked(path: Path) -> CheckedRows:
    kept = CheckedRows()
    check = check_campaign(path, observer=kept)
    assert check.summary is not None, check.diagnostics
    return kept


def test_the_send_report_from_verdicts_is_the_report_from_reading_the_csv(tmp_path: Path) -> None:
    cells = ["+6581234001", "12", "+6581234002", "+6581234001", "=cmd()", "+6581234003",
             "+6581234004", "+6581234007", "+6581234005", "+6581234006", "call me"]
    path = campaign_file(tmp_path, cells, batch_size=2)
    kept = checked(path)
    assert len(list(kept.sendable_pairs())) == 6
    # Row numbers are CSV lines: the header is line 1.
    with Journal.open(tmp_path / "j.journal", "fp") as journal:
        journal.begin_batch("r1-b1", [(2, "+6581234001"), (4, "+6581234002")])
        journal.finish_batch([
            RowOutcome(2, "+6581234001", "sent", "r1-b1", message_id="abc-1:1", attempts=1,
                       sent_at="2026-11-25T10:00:00+00:00"),
            # An id that needs quoting and neutralising goes the careful way.
            RowOutcome(4, "+6581234002", "sent", "r1-b1", message_id="=1,\"2\"", attempts=2,
                       sent_at="2026-11-25T10:00:01+00:00")])
        journal.begin_batch("r1-b2", [(7, "+6581234003"), (8, "+6581234004")])
        journal.finish_batch([
            RowOutcome(7, "+6581234003", "failed", "r1-b2", error_code="E413",
                       error="bad sender,\nsee docs", attempts=1),
            RowOutcome(8, "+6581234004", "unknown", "r1-b2", error_code="TIMEOUT",
                       error="may or may not")])
        journal.begin_batch("r1-b3", [(10, "+6581234005")])  # left in flight; row 11 pending
        from_verdicts = write_checked_report(tmp_path / "a.csv", kept, journal, 1)
        campaign = check_campaign(path).campaign
        assert campaign is not None
        from_csv = write_report(tmp_path / "b.csv",
                                report_rows(campaign, journal.outcomes_in_row_order()),
                                SENT_COLUMNS)
    kept.close()
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert from_verdicts == from_csv == {"sent": 2, "failed": 1, "unknown": 2, "pending": 1,
                                         "invalid": 3, "duplicate": 1, "suppressed": 1}


def test_the_send_plans_from_verdicts_the_batches_the_planner_makes(tmp_path: Path) -> None:
    cells = [f"+6581234{n:03d}" for n in range(23)] + ["12", "+6581234001"]
    path = campaign_file(tmp_path, cells, batch_size=4)
    kept = checked(path)
    campaign = check_campaign(path).campaign
    assert campaign is not None
    skip = {3, 10, 11}  # rows a resume leaves out
    recipients = [Recipient(row, f"+{n}", f"+{n}", "ok", NO_FIELDS)
                  for row, n in kept.sendable_pairs()]
    expected = list(plan_batches(recipients, campaign, skip=skip, id_prefix="r2-b"))
    got = list(kept.batches(size=4, body=campaign.message.body, skip=skip, id_prefix="r2-b"))
    kept.close()
    assert got == expected
    assert sum(len(b.rows) for b in got) == 22 - len(skip)  # 23 valid, one suppressed


def test_a_full_disk_under_the_spill_is_a_clear_error_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FullDisk(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    made_in: list[object] = []

    def temporary_file(dir: object = None) -> FullDisk:
        made_in.append(dir)
        return FullDisk()

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    path = campaign_file(tmp_path, ["+6581234001", "12"], batch_size=2)
    code, _, err = run_cli(["send", str(path), "--sandbox", "--report",
                              str(tmp_path / "r.csv")])
    assert code == 1
    assert "No space left on device" in err and "free some room" in err
    assert "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()  # nothing sent, no report
    assert made_in == [tmp_path]  # beside the report, not in a temp folder that may be memory


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    from runner.cli import main

    out, err = io.StringIO(), io.StringIO()
    return main(argv, stdout=out, stderr=err), out.getvalue(), err.getvalue()


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_counted_batches_are_the_planned_ones(tmp_path: Path, batch_size: int) -> None:
    cells = [f"+6581234{n:03d}" for n in range(10)] + ["12", "+6581234001"]
    path = campaign_file(tmp_path, cells, batch_size=batch_size, body="Hello \u20ac " * 20)
    check = check_campaign(path)
    assert check.campaign is not None and check.summary is not None
    stream = open_recipients(check.campaign.recipients, with_fields=False)
    planned = list(plan_batches(stream, check.campaign))
    summary = check.summary
    assert summary.batches == summary.requests == len(planned) == -(-9 // batch_size)
    assert summary.valid == sum(len(b.rows) for b in planned) == 9
    assert summary.segments == 9 * summary.max_parts and summary.max_parts > 1
    assert summary.encoding == "GSM-7"  # the euro sign is in GSM-7's extension table
