"""recipients.encoding: CSVs exported as Windows-1252, Latin-1 or UTF-16 are read with one key."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from runner.cli import main
from runner.model import RecipientsSpec
from runner.recipients import open_recipients

ROWS = [("+919876543210", "José"), ("+919876543211", "Zoë"), ("+919876543212", "Ana")]


def write_csv(path: Path, encoding: str, rows: list[tuple[str, str]] = ROWS,
              header: str = "phone,name") -> Path:
    lines = [header, *(f"{phone},{name}" for phone, name in rows)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def read(spec: RecipientsSpec) -> tuple[list[tuple[str, str]], list[str]]:
    stream = open_recipients(spec)
    got = [(r.status, r.fields.get("name", "")) for r in stream]
    return got, [d.message for d in stream.diagnostics]


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16", "utf-8"])
def test_the_named_encoding_reads_every_row_with_its_accents(tmp_path: Path,
                                                             encoding: str) -> None:
    source = write_csv(tmp_path / "r.csv", encoding)
    got, problems = read(RecipientsSpec(source=source, encoding=encoding))
    assert got == [("ok", "José"), ("ok", "Zoë"), ("ok", "Ana")]
    assert problems == []


def test_a_windows_1252_file_read_as_utf_8_names_the_setting_that_fixes_it(
        tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", "cp1252")
    got, problems = read(RecipientsSpec(source=source))
    assert [status for status, _ in got] == ["invalid", "invalid", "ok"]
    assert len(problems) >= 2
    first = problems[0]
    assert "line 2 is not UTF-8 (byte 0xe9)" in first
    assert "Windows-1252 ('José')" in first
    assert "recipients.encoding: cp1252" in first


def test_bytes_that_are_not_windows_1252_text_get_no_such_hint(tmp_path: Path) -> None:
    source = tmp_path / "r.csv"
    source.write_bytes(b"phone,name\r\n+919876543210,\x81\x8d\r\n+919876543211,Ana\r\n")
    _, problems = read(RecipientsSpec(source=source))
    assert "not UTF-8 (byte 0x81)" in problems[0]
    assert "Windows-1252" not in problems[0]
    assert "recipients.encoding" in problems[0]  # still says where encodings are set


def test_a_utf_16_file_read_as_utf_8_names_the_setting(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "r.csv", "utf-16")
    got, problems = read(RecipientsSpec(source=source))
    assert got == []
    assert len(problems) == 1 and "recipients.encoding: utf-16" in problems[0]


def test_bytes_the_named_encoding_cannot_decode_spoil_only_their_row(tmp_path: Path) -> None:
    source = tmp_path / "r.csv"
    # 0x81 is undefined in Windows-1252.
    source.write_bytes(b"phone,name\r\n+919876543210,Jos\xe9\r\n+919876543211,\x81\r\n")
    got, problems = read(RecipientsSpec(source=source, encoding="cp1252"))
    assert [status for status, _ in got] == ["ok", "invalid"]
    assert "line 3 is not cp1252 (byte 0x81): check recipients.encoding" in problems[0]


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16"])
def test_suppression_lists_are_read_in_the_same_encoding(tmp_path: Path, encoding: str) -> None:
    source = write_csv(tmp_path / "r.csv", encoding)
    optouts = write_csv(tmp_path / "optouts.csv", encoding, [("+919876543211", "Zoë")])
    got, problems = read(RecipientsSpec(source=source, exclude=(optouts,), encoding=encoding))
    assert got == [("ok", "José"), ("suppressed", "Zoë"), ("ok", "Ana")]
    assert problems == []


CAMPAIGN = """\
version: 1
name: accents
account:
  region: SG
message:
  sender: ACME
  type: DEFAULT
  body: "Hi {name}"
recipients:
  source: r.csv
  exclude: optouts.csv
"""


def validate(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["validate", str(path)], stdout=out, stderr=out)
    return code, out.getvalue()


def test_one_key_makes_an_excel_export_valid(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", "cp1252")
    write_csv(tmp_path / "optouts.csv", "cp1252", [("+919876543211", "Zoë")])
    campaign = tmp_path / "c.yaml"
    campaign.write_text(CAMPAIGN, encoding="utf-8")
    code, output = validate(campaign)
    assert code == 1, output  # 2 of 3 rows unreadable: above max_invalid_ratio
    assert "recipients.encoding: cp1252" in output

    campaign.write_text(CAMPAIGN + "  encoding: cp1252\n", encoding="utf-8")
    code, output = validate(campaign)
    assert code == 0, output
    assert "0 errors, 0 warnings" in output


def test_an_unknown_encoding_is_an_error_at_its_line(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", "utf-8")
    write_csv(tmp_path / "optouts.csv", "utf-8", [])
    campaign = tmp_path / "c.yaml"
    campaign.write_text(CAMPAIGN + "  encoding: windows-1252x\n", encoding="utf-8")
    code, output = validate(campaign)
    assert code == 1
    assert f"{campaign}:12:13: error: unknown encoding 'windows-1252x'" in output
