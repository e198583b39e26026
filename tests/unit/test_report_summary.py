"""`campaign report`: the one-pass summary, its markdown, its page, and its errors on bad input."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
import pytest

import runner.report_counters
from runner.cli import main
from runner.errors import InputError
from runner.journal import Journal, journal_path
from runner.report import ReportRow, write_report
from runner.report_command import render
from runner.report_html import render_html
from runner.report_summary import NOT_A_NUMBER, region_of, summarise
from runner.report_words import bars

DELIVERY = ("delivery_status", "delivery_detail", "checked_at")
CHECKED = "2026-12-02T10:30:00+00:00"


def sent(row: int, phone: str, batch: int, at: str, word: str = "") -> ReportRow:
    extra = {"delivery_status": word, "delivery_detail": word.upper(),
             "checked_at": CHECKED if word else ""}
    return ReportRow(row, phone, "sent", message_id=f"m{row}", batch_id=f"r1-b{batch:06d}",
                     attempts=1, sent_at=at, extra=extra)


def sample() -> list[ReportRow]:
    """Every status, three minutes of sending, two countries and an invalid number."""
    t = "2026-12-02T10:0{}:{:02d}+00:00"
    return [
        sent(2, "+6591000001", 1, t.format(0, 5), "Delivered"),
        sent(3, "+6591000002", 1, t.format(0, 5), "Delivered"),
        sent(4, "+919820123456", 2, t.format(0, 40), "UnDelivered"),
        sent(5, "+919820123457", 3, t.format(2, 1), "Sent"),
        sent(6, "+919820123458", 3, t.format(2, 1)),  # not checked yet
        ReportRow(7, "+6591000003", "failed", batch_id="r1-b000004", error_code="E619",
                  error="Invalid sender", attempts=1, sent_at=t.format(2, 3)),
        ReportRow(8, "+6591000004", "failed", batch_id="r1-b000004", error_code="E619",
                  error="Sender not approved", attempts=1, sent_at=t.format(2, 3)),
        ReportRow(9, "+6591000005", "unknown", batch_id="r1-b000005", error_code="HTTP500",
                  error="<b>boom</b> | Internal error", attempts=3, sent_at=t.format(2, 9)),
        ReportRow(10, "12345", "invalid", error="'12345' is not a valid number for SG"),
        ReportRow(11, "+6591000001", "duplicate", error="same number as row 2"),
        ReportRow(12, "+6591000009", "suppressed", error="on data/optouts.csv"),
        ReportRow(13, "+6591000010", "pending", batch_id="r1-b000006"),
    ]


def make(tmp_path: Path, rows: Sequence[ReportRow], extra: tuple[str, ...] = DELIVERY) -> Path:
    path = tmp_path / "report.csv"
    write_report(path, rows, extra_columns=extra)
    return path


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# --- the counts ----------------------------------------------------------------------------------


def test_counts_match_the_csv(tmp_path: Path) -> None:
    report = make(tmp_path, sample())
    s = summarise(report)
    rows = csv_rows(report)
    by_status = Counter(r["status"] for r in rows)
    assert dict(s.statuses) == {status: by_status.get(status, 0) for status in
                                ("sent", "failed", "unknown", "invalid", "duplicate",
                                 "suppressed", "pending", "expired")}
    assert s.rows == len(rows) == 12
    answered = {r["batch_id"] for r in rows if r["sent_at"]}
    assert s.requests == len(answered) == 5
    assert s.retries == 2  # the unknown batch took 3 attempts
    assert s.rate is None and s.campaign is None  # no journal beside this report


def test_failures_by_code_keep_the_commonest_wording(tmp_path: Path) -> None:
    s = summarise(make(tmp_path, sample()))
    found = {(p.status, p.code): (p.rows, p.other_wordings) for p in s.problems}
    assert found == {("failed", "E619"): (2, 1), ("unknown", "HTTP500"): (1, 0)}


def test_sends_by_minute_and_the_rate_from_the_journal(tmp_path: Path) -> None:
    report = make(tmp_path, sample())
    with Journal.open(journal_path(report), fingerprint="f",
                      settings={"requests_per_second": 25, "name": "xmas"}):
        pass
    s = summarise(report)
    assert s.rate == 25.0 and s.campaign == "xmas"
    width, buckets = bars(s)
    assert width == 1
    assert [(b.start.minute, b.sent, b.requests) for b in buckets] == [
        (0, 3, 2), (1, 0, 0), (2, 2, 3)]


def test_delivery_status_and_time(tmp_path: Path) -> None:
    d = summarise(make(tmp_path, sample())).delivery
    assert d is not None
    assert dict(d.verdicts) == {"delivered": 2, "not delivered": 1, "not final yet": 1,
                                "not checked yet": 1}
    assert dict(d.words) == {"Delivered": 2, "UnDelivered": 1, "Sent": 1}
    assert dict(d.times)["15-60 min"] == 2  # sent 10:00:05, seen delivered at 10:30
    assert d.last_checked == datetime(2026, 12, 2, 10, 30, tzinfo=UTC)


def test_no_delivery_section_before_campaign_status(tmp_path: Path) -> None:
    rows = [ReportRow(r.row, r.phone, r.status, r.message_id, r.batch_id, r.error_code,
                      r.error, r.attempts, r.sent_at) for r in sample()]
    assert summarise(make(tmp_path, rows, extra=())).delivery is None


def test_countries_are_phonenumbers_regions(tmp_path: Path) -> None:
    phones = ["+6591000001", "+919820123456", "+12025550143", "+14165550143", "+447400123456",
              "+441481256789", "12345"]
    rows = [ReportRow(i + 2, p, "invalid" if p == "12345" else "pending")
            for i, p in enumerate(phones)]
    s = summarise(make(tmp_path, rows, extra=()))
    expected = Counter(
        NOT_A_NUMBER if not p.startswith("+")
        else phonenumbers.region_code_for_number(phonenumbers.parse(p)) for p in phones)
    assert {c.region: c.rows for c in s.countries} == dict(expected)
    assert {"US", "CA", "GB", "GG"} <= set(expected)  # the shared codes were told apart


@pytest.mark.parametrize("phone", ["+6591000001", "+919820123456", "+447400123456",
                                   "+79161234567", "+80012345678", "+9", "", "'+91 98"])
def test_region_of_agrees_with_phonenumbers(phone: str) -> None:
    try:
        want = phonenumbers.region_code_for_number(phonenumbers.parse(phone)) or "ZZ"
    except phonenumbers.NumberParseException:
        want = "ZZ"
    if not phone.startswith("+") or not phone[1:].isdigit():
        want = NOT_A_NUMBER
    assert region_of(phone) == want


# --- bounded memory ------------------------------------------------------------------------------


def test_minutes_merge_past_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.report_counters, "MAX_BUCKETS", 4)
    rows = [sent(i + 2, "+6591000001", i + 1, f"2026-12-02T10:{i:02d}:00+00:00")
            for i in range(10)]
    s = summarise(make(tmp_path, rows))
    assert len(s.timeline) <= 4 and s.bucket_minutes == 4
    assert sum(b.sent for b in s.timeline) == 10 and sum(b.requests for b in s.timeline) == 10


def test_error_wordings_are_capped(tmp_path: Path) -> None:
    rows = [ReportRow(i + 2, "+6591000001", "failed", batch_id=f"r1-b{i:06d}",
                      error_code="E413", error=f"field {i} is bad", attempts=1,
                      sent_at="2026-12-02T10:00:00+00:00") for i in range(50)]
    (problem,) = summarise(make(tmp_path, rows)).problems
    assert problem.rows == 50 and problem.other_wordings == 49


def test_batch_ids_of_other_tools_are_counted_by_change(tmp_path: Path) -> None:
    rows = [ReportRow(i + 2, "+6591000001", "sent", batch_id=f"x{i // 3}", attempts=1,
                      sent_at="2026-12-02T10:00:00+00:00") for i in range(9)]
    assert summarise(make(tmp_path, rows, extra=())).requests == 3


# --- what people read ----------------------------------------------------------------------------


def test_markdown_lists_the_same_figures(tmp_path: Path) -> None:
    report = make(tmp_path, sample())
    code, out, err = cli("report", str(report), "--markdown")
    assert code == 0, err
    assert "| `sent` | 5 | 41.7% |" in out
    assert "| `failed` | `E619` | 2 | Invalid sender (and 1 other wordings) |" in out
    assert "&lt;b&gt;boom&lt;/b&gt; \\| Internal error" in out  # the table is not broken
    assert "| delivered | 2 | 40% |" in out
    assert "| Singapore (SG) | 8 | 2 | 3 | 2 |" in out
    assert "| 2026-12-02 10:02 | 2 | 3 |" in out


def test_page_escapes_what_the_csv_holds(tmp_path: Path) -> None:
    page = render_html(summarise(make(tmp_path, sample())))
    assert "<b>boom</b>" not in page and "&lt;b&gt;boom&lt;/b&gt;" in page
    assert not re.search(r"<script|https?://(?!www\.w3\.org/2000/svg)", page)  # nothing fetched
    assert re.search(r'id="status-sent".*?data-count="5"', page)


def test_html_and_markdown_in_one_run(tmp_path: Path) -> None:
    report = make(tmp_path, sample())
    code, out, err = cli("report", str(report), "--html", str(tmp_path / "p.html"),
                         "--markdown")
    assert code == 0, err
    assert out.startswith("### Delivery report") and "p.html" in err
    assert (tmp_path / "p.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    view = render(report, html=tmp_path / "q.html")
    assert view.exit_code == 0 and view.report == report and view.markdown is None


# --- bad input -----------------------------------------------------------------------------------


HEADER = "row,phone,status,message_id,batch_id,error_code,error,attempts,sent_at\r\n"
GOOD = "2,+6591000001,sent,m1,r1-b000001,,,1,2026-12-02T10:00:05+00:00\r\n"


@pytest.mark.parametrize(("content", "message"), [
    (None, "report.csv: cannot read the report: No such file or directory"),
    ("", "report.csv: the file is empty (0 bytes): not a delivery report"),
    (HEADER, "report.csv: the report has a header but no rows"),
    ("phone,name\r\n+6591000001,Ann\r\n", "report.csv:1: not a delivery report: missing column"),
    (HEADER + GOOD + GOOD[:20] + "\r\n", "report.csv:3: 4 cells where the header has 9"),
    (HEADER + GOOD + GOOD[:-13], "report.csv:3: the file ends in the middle of a line"),
    (HEADER + GOOD.replace("sent,", "sennt,", 1), "report.csv:2: status 'sennt' is not a rep"),
    (HEADER + GOOD.replace("2026-12-02T10:00:05", "yesterday"), "report.csv:2: sent_at 'yest"),
    (HEADER + GOOD.replace(",1,2026", ",x,2026"), "report.csv:2: attempts 'x' is not a whole"),
    (HEADER + GOOD.replace("m1", "m\udcff1"), "report.csv:2: not UTF-8 text"),
])
def test_bad_input_is_an_error_naming_file_and_line(tmp_path: Path, content: str | None,
                                                   message: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if content is not None:
        Path("report.csv").write_bytes(content.encode("utf-8", "surrogateescape"))
    code, out, err = cli("report", "report.csv", "--markdown", "--html", "page.html")
    assert code == 1 and out == ""
    assert err.startswith("error: " + message), err
    assert "Traceback" not in err and not Path("page.html").exists()
    with pytest.raises(InputError):
        summarise(Path("report.csv"))


def test_the_page_may_not_replace_the_report(tmp_path: Path) -> None:
    report = make(tmp_path, sample())
    before = report.read_bytes()
    code, _, err = cli("report", str(report), "--html", str(report))
    assert code == 1 and "which the page is made from" in err
    assert report.read_bytes() == before


def test_a_flag_is_needed(tmp_path: Path) -> None:
    code, _, err = cli("report", str(make(tmp_path, sample())))
    assert code == 2 and "--html PATH, --markdown, or both" in err
