"""The delivery report: columns, streaming, atomic replace, formula safety, summary."""

from __future__ import annotations

import csv
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import InputError
from runner.report import (
    REPORT_COLUMNS,
    ReportRow,
    format_summary,
    neutralise,
    restore,
    write_report,
)
from runner.reportread import read_report


def rows_sample() -> list[ReportRow]:
    return [
        ReportRow(2, "+919812345678", "sent", message_id="abc:1", batch_id="b1", attempts=1,
                  sent_at="2026-11-04T10:42:23Z"),
        ReportRow(3, "+91 5012 345678", "invalid", error="not a valid number for IN"),
        ReportRow(4, "+919812345678", "duplicate", error="same number as row 2"),
        ReportRow(6, "=HYPERLINK(\"http://x\")", "invalid", error="-bad cell"),
    ]


def test_report_has_the_contract_columns_one_row_each_in_order(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    counts = write_report(path, rows_sample())
    with open(path, encoding="utf-8", newline="") as handle:
        raw = list(csv.reader(handle))
    assert tuple(raw[0]) == REPORT_COLUMNS
    assert [r[0] for r in raw[1:]] == ["2", "3", "4", "6"]
    assert counts == {"sent": 1, "invalid": 2, "duplicate": 1}
    back = list(read_report(path))
    assert back[0]["phone"] == "+919812345678" and back[0]["message_id"] == "abc:1"
    assert back[0]["attempts"] == "1" and back[1]["attempts"] == "0"


def test_phone_numbers_are_not_mangled_but_formulas_are_defused(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_report(path, rows_sample())
    raw = path.read_text(encoding="utf-8").splitlines()
    assert raw[1].startswith("2,+919812345678,sent,")  # E.164 stays as written
    assert raw[4].startswith("6,\"'=HYPERLINK(") or raw[4].startswith("6,'=HYPERLINK(")
    assert ",'-bad cell," in raw[4]
    back = list(read_report(path))
    assert back[3]["phone"] == "=HYPERLINK(\"http://x\")"
    assert back[3]["error"] == "-bad cell"
    assert back[1]["phone"] == "+91 5012 345678"


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("+919812345678", "+919812345678"),
        ("-5", "-5"),
        ("-1.5e3", "-1.5e3"),
        ("12", "12"),
        ("=1+1", "'=1+1"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("\tx", "'\tx"),
        ("\r=x", "'\r=x"),
        ("+91 98123 45678", "'+91 98123 45678"),
        ("'=x", "''=x"),  # already apostrophed: one more, so reading gives it back
        ("'hello", "'hello"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_neutralise_rule(cell: str, written: str) -> None:
    assert neutralise(cell) == written
    assert restore(written) == cell


@given(st.text())
def test_neutralise_is_reversible_and_never_leaves_a_formula(cell: str) -> None:
    out = neutralise(cell)
    assert restore(out) == cell
    if out.startswith(("=", "+", "-", "@", "\t", "\r")):
        # Only a plain number may still start like a formula.
        assert re.fullmatch(r"[+-][0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?", out), out


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_any_text_round_trips_through_a_report(texts: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.csv"
        rows = [ReportRow(i + 2, t, "failed", error=t, extra={"note": t})
                for i, t in enumerate(texts)]
        write_report(path, rows, extra_columns=("note",))
        back = list(read_report(path))
    assert [b["phone"] for b in back] == texts
    assert [b["note"] for b in back] == texts


def test_extra_columns_follow_the_contract_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    rows = [ReportRow(2, "+6591234567", "sent", extra={"delivery_status": "Delivered"}),
            ReportRow(3, "+6591234568", "sent")]
    write_report(path, rows, extra_columns=("delivery_status", "checked_at"))
    back = list(read_report(path))
    assert list(back[0]) == [*REPORT_COLUMNS, "delivery_status", "checked_at"]
    assert back[0]["delivery_status"] == "Delivered" and back[1]["delivery_status"] == ""


def test_extra_columns_cannot_shadow_contract_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="extra report columns"):
        write_report(tmp_path / "r.csv", [], extra_columns=("status",))


def test_rows_are_streamed_not_collected(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    written_before_the_end: list[int] = []

    def gen() -> Iterator[ReportRow]:
        for i in range(2, 5002):
            yield ReportRow(i, "+919812345678", "pending")
        # Still generating: the rows so far must already be on their way to disk.
        written_before_the_end.extend(p.stat().st_size for p in tmp_path.glob(".r.csv.*.tmp"))

    counts = write_report(path, gen())
    assert counts == {"pending": 5000}
    assert written_before_the_end and written_before_the_end[0] > 50_000
    assert not path.with_name("r.csv.tmp").exists()
    assert sum(1 for _ in read_report(path)) == 5000


def test_a_failed_write_leaves_the_old_report_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_report(path, rows_sample())
    before = path.read_bytes()

    def broken() -> Iterator[ReportRow]:
        yield ReportRow(2, "+919812345678", "sent")
        raise RuntimeError("the engine fell over")

    with pytest.raises(RuntimeError):
        write_report(path, broken())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_report_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # It holds phone numbers: 0600 whatever the umask (DESIGN.md, hardening).
    path = tmp_path / "r.csv"
    old = os.umask(0o000)
    try:
        write_report(path, rows_sample())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600


def test_missing_folder_is_an_input_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "r.csv"
    with pytest.raises(InputError, match=r"nowhere.*does not exist"):
        write_report(path, rows_sample())


def test_read_only_folder_is_an_input_error_naming_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def deny(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(InputError, match=r"r\.csv: cannot write the report in .*Permission denied"):
        write_report(tmp_path / "r.csv", rows_sample())


def test_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "reports").write_text("x")
    with pytest.raises(InputError, match="is not a folder"):
        write_report(tmp_path / "reports" / "r.csv", [])


def test_reading_a_missing_or_foreign_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.csv: cannot read the report"):
        read_report(tmp_path / "missing.csv")
    other = tmp_path / "other.csv"
    other.write_text("name,phone\nA,+911\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"other\.csv:1: not a delivery report: missing column"):
        read_report(other)


def test_ragged_or_undecodable_rows_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_report(path, rows_sample())
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("7,+919812345679,sent\n")
    with pytest.raises(InputError, match=r"r\.csv:6: 3 cells where the header has 9"):
        list(read_report(path))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(",".join(REPORT_COLUMNS).encode() + b"\n2,\xff\xfe,sent,,,,,0,\n")
    with pytest.raises(InputError, match=r"bad\.csv:2: not UTF-8"):
        list(read_report(bad))


def test_summary_lists_statuses_in_a_fixed_order_with_rate() -> None:
    text = format_summary({"suppressed": 45, "duplicate": 60, "sent": 2200, "invalid": 40,
                           "failed": 0},
                          requests=23, retries=1, elapsed=3.2)
    rows_line, req_line = text.splitlines()
    assert rows_line == "rows      2,345: 2,200 sent, 40 invalid, 60 duplicate, 45 suppressed"
    assert req_line == "requests  23 (1 retry) in 3.2 s: 7.2 a second"


def test_summary_of_a_long_run_and_of_nothing() -> None:
    text = format_summary({"sent": 1_000_000, "unknown": 3}, requests=10_003, retries=17,
                          elapsed=3725.0)
    assert "1,000,000 sent, 3 unknown" in text
    assert "10,003 (17 retries) in 1 h 2 min: 2.7 a second" in text
    empty = format_summary({}, requests=0, retries=0, elapsed=0.0)
    assert empty.splitlines() == ["rows      0", "requests  0 (0 retries) in 0.0 s"]


def test_write_unsent_matches_write_for_the_same_row(tmp_path: Path) -> None:
    from runner.report import ReportRow, ReportWriter

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    rows = [(2, "+919812345678", "dry_run", "b1", ""), (3, "=cmd()", "invalid", "", "'=x' bad"),
            (4, "-5", "duplicate", "", "@first")]
    with ReportWriter(a) as wa, ReportWriter(b) as wb:
        for row, phone, status, batch, err in rows:
            wa.write(ReportRow(row, phone, status, batch_id=batch, error=err))  # type: ignore[arg-type]
            wb.write_unsent(row, phone, status, batch_id=batch, error=err)
        assert wa.commit() == wb.commit()
    assert a.read_bytes() == b.read_bytes()
