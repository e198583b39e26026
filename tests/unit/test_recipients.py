from __future__ import annotations

import random
from pathlib import Path

import pytest

from runner.dedup import FirstRows
from runner.errors import Diagnostic
from runner.model import RecipientsSpec
from runner.recipients import (
    MAX_ROW_DIAGNOSTICS,
    Recipient,
    RecipientStats,
    RecipientStream,
    open_recipients,
    read_columns,
    stats_diagnostics,
)

# --- helpers ------------------------------------------------------------------------------


def write(tmp_path: Path, data: str | bytes, name: str = "people.csv") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def spec(path: Path, **kw: object) -> RecipientsSpec:
    kw.setdefault("default_country", "IN")
    return RecipientsSpec(source=path, **kw)  # type: ignore[arg-type]


def read(
    tmp_path: Path, data: str | bytes, **kw: object
) -> tuple[list[Recipient], RecipientStream]:
    stream = open_recipients(spec(write(tmp_path, data), **kw), display_root=tmp_path)
    return list(stream), stream


def errors(stream: RecipientStream) -> list[str]:
    return [d.message for d in stream.diagnostics if d.severity == "error"]


def summary(rows: list[Recipient]) -> list[tuple[int, str | None, str]]:
    return [(r.row, r.phone, r.status) for r in rows]


# --- reading CSV --------------------------------------------------------------------------


def test_plain_file_rows_start_on_line_two(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, "name,phone\nAsha,+91 98123 45678\nRavi,9812345679\n")
    assert summary(rows) == [(2, "+919812345678", "ok"), (3, "+919812345679", "ok")]
    assert rows[0].raw_phone == "+91 98123 45678"
    assert rows[0].fields == {"name": "Asha", "phone": "+91 98123 45678"}
    assert stream.columns == ("name", "phone")
    assert stream.diagnostics == []


def test_bom_and_crlf(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfphone,name\r\n9812345678,Asha\r\n9812345679,Ravi\r\n"
    rows, stream = read(tmp_path, data)
    assert stream.columns == ("phone", "name")  # no BOM glued to the first column
    assert summary(rows) == [(2, "+919812345678", "ok"), (3, "+919812345679", "ok")]
    assert rows[1].fields["name"] == "Ravi"


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_are_sniffed(tmp_path: Path, sep: str) -> None:
    text = f"name{sep}phone{sep}note\nAsha{sep}9812345678{sep}a, b\n"
    rows, _ = read(tmp_path, text)
    assert rows[0].fields == {"name": "Asha", "phone": "9812345678", "note": "a, b"}
    assert rows[0].status == "ok"


def test_delimiters_inside_quotes_do_not_fool_the_sniffer(tmp_path: Path) -> None:
    rows, _ = read(tmp_path, '"a;b;c",phone\n"x;y",9812345678\n')
    assert rows[0].fields == {"a;b;c": "x;y", "phone": "9812345678"}


def test_quoted_comma_stays_in_its_field(tmp_path: Path) -> None:
    rows, _ = read(tmp_path, 'name,phone,city\n"Rao, Asha",9812345678,"Pune, MH"\n')
    assert rows[0].fields["name"] == "Rao, Asha"
    assert rows[0].fields["city"] == "Pune, MH"
    assert rows[0].status == "ok"


def test_quoted_newlines_keep_row_numbers_true_to_the_file(tmp_path: Path) -> None:
    text = 'name,phone,address\nAsha,9812345678,"1 Main St\nPune"\nRavi,9812345679,x\n'
    rows, _ = read(tmp_path, text)
    assert [r.row for r in rows] == [2, 4]
    assert rows[0].fields["address"] == "1 Main St\nPune"


def test_blank_lines_are_not_data_rows(tmp_path: Path) -> None:
    text = "name,phone\n\nAsha,9812345678\n   \n,\n\nRavi,9812345679\n\n"
    rows, stream = read(tmp_path, text)
    assert [r.row for r in rows] == [3, 7]
    assert stream.stats.total == 2


def test_ragged_rows_are_invalid_with_the_counts(tmp_path: Path) -> None:
    text = "name,phone\nAsha,9812345678,extra\nRavi\nSita,9812345679\n"
    rows, stream = read(tmp_path, text)
    assert summary(rows) == [(2, None, "invalid"), (3, None, "invalid"),
                             (4, "+919812345679", "ok")]
    assert rows[0].reason == "row has 3 fields, the header has 2"
    assert rows[1].reason == "row has 1 field, the header has 2"
    assert rows[0].raw_phone == "9812345678"  # the report still shows what was written
    assert [d.line for d in stream.diagnostics] == [2, 3]


def test_latin1_bytes_make_that_row_invalid_and_lose_nothing(tmp_path: Path) -> None:
    data = b"name,phone\nAsha,9812345678\n" + b"Jos\xe9,9812345679\n" + b"Ravi,9812345680\n"
    rows, stream = read(tmp_path, data)
    assert summary(rows) == [(2, "+919812345678", "ok"), (3, None, "invalid"),
                             (4, "+919812345680", "ok")]
    assert "line 3 is not UTF-8" in rows[1].reason
    assert "0xe9" in rows[1].reason
    assert rows[1].fields["name"] == "Jos\ufffd"  # printable, so the report stays UTF-8
    assert rows[1].raw_phone == "9812345679"
    assert stream.diagnostics[0].line == 3


def test_undecodable_byte_in_a_multiline_record_names_its_own_line(tmp_path: Path) -> None:
    data = b'name,phone,address\nAsha,9812345678,"1 Main St\nPune \xe9"\nRavi,9812345679,x\n'
    rows, _ = read(tmp_path, data)
    assert [r.status for r in rows] == ["invalid", "ok"]
    assert rows[0].row == 2
    assert rows[0].reason.startswith("line 3 is not UTF-8")


def test_utf8_names_are_fine(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, "name,phone\nJosé Müller,9812345678\nनमस्ते,9812345679\n")
    assert [r.status for r in rows] == ["ok", "ok"]
    assert rows[1].fields["name"] == "नमस्ते"
    assert stream.diagnostics == []


def test_empty_file(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, b"")
    assert rows == []
    assert errors(stream) == ["people.csv is empty"]


def test_header_only(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, "name,phone\n\n")
    assert rows == []
    assert errors(stream) == ["people.csv has no data rows"]


def test_missing_phone_column_names_the_columns(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, "name,Phone,city\nAsha,9812345678,Pune\n")
    assert rows == []
    [message] = errors(stream)
    assert "no column 'phone'" in message
    assert "did you mean 'Phone'" in message
    assert "'name', 'Phone', 'city'" in message


def test_custom_phone_column(tmp_path: Path) -> None:
    rows, _ = read(tmp_path, "name,mobile\nAsha,9812345678\n", phone_column="mobile")
    assert rows[0].phone == "+919812345678"


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, b"PK\x03\x04\x14\x00\x00\x00\x08\x00 not a csv")
    assert rows == []
    assert "is not a CSV file" in errors(stream)[0]


def test_utf16_file_is_a_clear_error(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, "phone\n9812345678\n".encode("utf-16"))
    assert rows == []
    assert "UTF-16" in errors(stream)[0]


def test_missing_file(tmp_path: Path) -> None:
    stream = open_recipients(spec(tmp_path / "nope.csv"), display_root=tmp_path)
    assert list(stream) == []
    assert errors(stream) == ["recipients file not found: nope.csv"]


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    stream = open_recipients(spec(tmp_path / "dir.csv"), display_root=tmp_path)
    assert list(stream) == []
    assert "is a folder" in errors(stream)[0]


def test_huge_field_is_reported_and_reading_goes_on(tmp_path: Path) -> None:
    text = "name,phone\nAsha,9812345678\n" + "x" * 300_000 + ",9812345679\nRavi,9812345680\n"
    rows, _ = read(tmp_path, text)
    assert summary(rows) == [(2, "+919812345678", "ok"), (3, None, "invalid"),
                             (4, "+919812345680", "ok")]
    assert "longer than" in rows[1].reason


def test_unclosed_quote_is_pointed_out(tmp_path: Path) -> None:
    lines = [f"P{i},98123456{i:02d}" for i in range(10)]
    text = 'name,phone,note\nAsha,9812345678,"oops\n' + "\n".join(lines) + "\n"
    rows, stream = read(tmp_path, text)
    assert len(rows) == 1  # everything after the quote became one field...
    assert rows[0].status == "invalid"  # ...so that row is not sent, and the reason says why
    assert rows[0].reason == ("a quoted field opened on line 2 is never closed: lines 2-12 "
                              "were read as this one row")
    assert stream.diagnostics[0].line == 2


def test_stray_quote_closed_later_makes_a_ragged_row(tmp_path: Path) -> None:
    text = 'name,phone\nAsha,"9812345678\nRavi,9812345679\nSita",x,y\nGita,9812345680\n'
    rows, _ = read(tmp_path, text)
    assert summary(rows) == [(2, None, "invalid"), (5, "+919812345680", "ok")]
    assert rows[0].reason == "row has 4 fields, the header has 2 (lines 2-4: an unclosed quote?)"


def test_long_multiline_record_gets_a_warning_even_when_valid(tmp_path: Path) -> None:
    text = 'phone,note\n9812345678,"a\nb\nc\nd\ne"\n9812345679,x\n'
    rows, stream = read(tmp_path, text)
    assert [r.status for r in rows] == ["ok", "ok"]
    assert [r.row for r in rows] == [2, 7]
    assert any("unclosed quote" in d.message and d.line == 2 for d in stream.diagnostics)


def test_nul_in_a_row_after_a_clean_start(tmp_path: Path) -> None:
    good = "".join(f"P{i},98123{i:05d}\n" for i in range(1000))  # past the 8 KiB sniff
    rows, _ = read(tmp_path, "name,phone\n" + good + "Bad\x00,9812399999\n")
    assert rows[-1].status == "invalid"
    assert "NUL" in rows[-1].reason


def test_read_columns_reads_only_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "name;phone;name\nAsha;9812345678;x\n")
    columns, found = read_columns(spec(path))
    assert columns == ("name", "phone", "name")
    assert [d.severity for d in found] == ["warning"]
    assert "appears twice" in found[0].message


def test_read_columns_of_a_missing_or_empty_file(tmp_path: Path) -> None:
    assert read_columns(spec(tmp_path / "nope.csv"))[0] == ()
    assert read_columns(spec(tmp_path / "nope.csv"))[1][0].severity == "error"
    columns, found = read_columns(spec(write(tmp_path, "")))
    assert columns == ()
    assert "is empty" in found[0].message


def test_stream_can_be_read_twice(tmp_path: Path) -> None:
    stream = open_recipients(spec(write(tmp_path, "phone\n9812345678\n9812345678\n")))
    first = summary(list(stream))
    assert summary(list(stream)) == first
    assert stream.stats.total == 2


# --- numbers: validity, duplicates, suppression ---------------------------------------------


def test_invalid_numbers_say_why(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, "phone\n+91 5012 345678\nn/a\n\"\"\n9812345678\n")
    reasons = [r.reason for r in rows]
    assert reasons[0] == "'+91 5012 345678' is not a valid number for IN"
    assert reasons[1] == "'n/a' is not a phone number"
    assert rows[0].raw_phone == "+91 5012 345678"
    assert rows[0].phone is None
    text = stream.diagnostics[0].format_text()
    assert text == ("people.csv:2: warning: '+91 5012 345678' is not a valid number for IN "
                    "(row skipped)")


def test_no_default_country_needs_a_plus(tmp_path: Path) -> None:
    rows, _ = read(tmp_path, "phone\n9812345678\n+919812345679\n0091 9812345680\n",
                   default_country=None)
    assert [r.status for r in rows] == ["invalid", "ok", "ok"]
    assert "has no country code" in rows[0].reason


def test_duplicates_after_normalisation_first_row_wins(tmp_path: Path) -> None:
    text = "phone\n+91 98123 45678\n09812345678\n9812345679\n98123-45678\n"
    rows, stream = read(tmp_path, text)
    assert summary(rows) == [(2, "+919812345678", "ok"), (3, "+919812345678", "duplicate"),
                             (4, "+919812345679", "ok"), (5, "+919812345678", "duplicate")]
    assert rows[1].reason == "same number as row 2"
    assert rows[3].reason == "same number as row 2"
    assert stream.stats.duplicate == 2


def test_suppression_list_with_header(tmp_path: Path) -> None:
    write(tmp_path, "phone,date\n+919812345679,2026-01-01\n", "optouts.csv")
    rows, stream = read(tmp_path, "phone\n9812345678\n9812345679\n09812345679\n",
                        exclude=(tmp_path / "optouts.csv",))
    # The first row of a number decides; later rows of it are duplicates.
    assert [r.status for r in rows] == ["ok", "suppressed", "duplicate"]
    assert rows[1].reason == "on suppression list optouts.csv"
    assert stream.stats.suppressed == 1


def test_suppression_list_uses_the_campaign_phone_column(tmp_path: Path) -> None:
    write(tmp_path, "name;mobile\nx;98123 45678\n", "optouts.csv")
    rows, _ = read(tmp_path, "mobile\n9812345678\n", phone_column="mobile",
                   exclude=(tmp_path / "optouts.csv",))
    assert rows[0].status == "suppressed"


def test_plain_suppression_list_one_number_a_line(tmp_path: Path) -> None:
    write(tmp_path, "+91 98123 45678\n\n09812345679\nnot a number\n", "stop.txt")
    rows, stream = read(tmp_path, "phone\n9812345678\n9812345679\n9812345680\n",
                        exclude=(tmp_path / "stop.txt",))
    assert [r.status for r in rows] == ["suppressed", "suppressed", "ok"]
    [bad] = stream.diagnostics
    assert (bad.severity, bad.path, bad.line) == ("warning", "stop.txt", 4)


def test_two_suppression_lists_name_the_first_that_has_the_number(tmp_path: Path) -> None:
    write(tmp_path, "9812345678\n", "a.txt")
    write(tmp_path, "9812345678\n9812345679\n", "b.txt")
    rows, _ = read(tmp_path, "phone\n9812345678\n9812345679\n",
                   exclude=(tmp_path / "a.txt", tmp_path / "b.txt"))
    assert [r.reason for r in rows] == ["on suppression list a.txt", "on suppression list b.txt"]


def test_empty_suppression_list_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "", "optouts.csv")
    rows, stream = read(tmp_path, "phone\n9812345678\n", exclude=(tmp_path / "optouts.csv",))
    assert rows == []
    assert [d.severity for d in stream.diagnostics] == ["error"]
    assert "suppression list optouts.csv is empty" in stream.diagnostics[0].message


def test_a_suppression_list_with_only_its_header_suppresses_nobody(tmp_path: Path) -> None:
    write(tmp_path, "phone\n", "optouts.csv")
    rows, stream = read(tmp_path, "phone\n9812345678\n", exclude=(tmp_path / "optouts.csv",))
    assert [r.status for r in rows] == ["ok"]
    assert not [d for d in stream.diagnostics if d.severity == "error"]


def test_missing_suppression_list_is_an_error_and_nothing_is_read(tmp_path: Path) -> None:
    rows, stream = read(tmp_path, "phone\n9812345678\n", exclude=(tmp_path / "gone.csv",))
    assert rows == []
    assert errors(stream) == ["suppression list not found: gone.csv"]


# --- stats and diagnostics ------------------------------------------------------------------


def test_stats_count_every_status(tmp_path: Path) -> None:
    write(tmp_path, "9812345670\n", "stop.txt")
    text = "phone\n9812345678\nbad\n9812345678\n9812345670\nworse\n" + "".join(
        f"x{i}\n" for i in range(5))
    _, stream = read(tmp_path, text, exclude=(tmp_path / "stop.txt",))
    stats = stream.stats
    assert stats == RecipientStats(total=10, ok=1, invalid=7, duplicate=1, suppressed=1,
                                   first_invalid_rows=(3, 6, 7, 8, 9))
    assert stats.by_status == {"ok": 1, "invalid": 7, "duplicate": 1, "suppressed": 1}


def test_per_row_warnings_stop_after_a_few_then_summarise(tmp_path: Path) -> None:
    text = "phone\n" + "".join(f"bad{i}\n" for i in range(MAX_ROW_DIAGNOSTICS + 7))
    _, stream = read(tmp_path, text)
    found = stream.diagnostics
    assert len(found) == MAX_ROW_DIAGNOSTICS + 1
    assert all(d.line is not None for d in found[:-1])
    assert found[-1].message == "7 more invalid rows (not shown)"


def verdict(total: int, ok: int, invalid: int, ratio: float = 0.10) -> list[Diagnostic]:
    stats = RecipientStats(total, ok, invalid, total - ok - invalid, 0, (2, 5, 9))
    return stats_diagnostics(stats, spec(Path("x.csv"), max_invalid_ratio=ratio), "data/x.csv")


def test_stats_diagnostics_no_one_to_send_to() -> None:
    [found] = verdict(total=3, ok=0, invalid=1)
    assert found.severity == "error"
    assert "no recipients left to send to: 3 rows, 1 invalid, 2 duplicate" in found.message


def test_stats_diagnostics_too_many_invalid() -> None:
    [found] = verdict(total=20, ok=17, invalid=3)
    assert found.severity == "error"
    assert "3 of 20 rows are invalid (15.0%), above max_invalid_ratio 10%" in found.message
    assert "lines 2, 5, 9" in found.message
    assert found.path == "data/x.csv"


def test_stats_diagnostics_a_few_invalid_is_a_warning() -> None:
    [found] = verdict(total=100, ok=97, invalid=3)
    assert found.severity == "warning"
    assert verdict(total=100, ok=97, invalid=3, ratio=0.5)[0].severity == "warning"


def test_stats_diagnostics_all_good_or_nothing_read() -> None:
    assert verdict(total=10, ok=10, invalid=0) == []
    assert verdict(total=0, ok=0, invalid=0) == []


# --- the table of numbers seen ---------------------------------------------------------------


def test_first_rows_table_grows_and_remembers() -> None:
    table = FirstRows(capacity=8)
    rnd = random.Random(5)
    reference: dict[int, int] = {}
    for row in range(2, 5000):
        key = 910_000_000_000 + rnd.randrange(3000)
        assert table.first_row(key, row) == reference.setdefault(key, row)


def test_many_rows_dedup_like_a_dict(tmp_path: Path) -> None:
    # Enough distinct numbers to make the stream's own table grow several times.
    rnd = random.Random(3)
    numbers = [f"+9198{rnd.randrange(10**8):08d}" for _ in range(40_000)]
    numbers += rnd.sample(numbers, 3000)
    rnd.shuffle(numbers)
    rows, stream = read(tmp_path, "phone\n" + "\n".join(numbers) + "\n")
    first: dict[str, int] = {}
    expected = [("ok" if first.setdefault(n, i) == i else "duplicate") for i, n in
                enumerate(numbers, 2)]
    assert [r.status for r in rows] == expected
    assert stream.stats.duplicate == len(numbers) - len(first)


def test_a_suppression_list_without_our_phone_column_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "mobile,name\n+919812345678,a\n", "optouts.csv")
    rows, stream = read(tmp_path, "phone\n9812345678\n", exclude=(tmp_path / "optouts.csv",))
    assert rows == []  # never a send that silently ignores the opt-outs
    assert [d.severity for d in stream.diagnostics] == ["error"]
    assert "has no column 'phone'" in stream.diagnostics[0].message
    assert "mobile, name" in stream.diagnostics[0].message


def test_a_suppression_list_with_no_valid_number_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "not a number\nnor this\n", "optouts.txt")
    rows, stream = read(tmp_path, "phone\n9812345678\n", exclude=(tmp_path / "optouts.txt",))
    assert rows == []
    assert "none of its 2 entries is a valid number" in stream.diagnostics[0].message
