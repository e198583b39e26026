"""A corpus of bad inputs: each gets a clear message, the right exit code and never a traceback.

Most cases go through ``runner.cli.main`` in-process (an exception escaping it fails the test);
a few run ``python -m runner`` in a subprocess to see exactly what a user's terminal shows. The API
key is set to a distinctive value in every case and must appear in no output and no file.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.cli import main
from runner.sandbox import SANDBOX_SID
from tests.integration.helpers import (
    TEST_API_KEY,
    CampaignFiles,
    assert_no_secret,
    env_without_kaleyra,
    make_campaign,
    report_rows,
    sandbox,
)

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CampaignFiles:
    """A valid 20-row campaign in tmp_path, the working folder, with credentials set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KALEYRA_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("KALEYRA_SID", SANDBOX_SID)
    monkeypatch.setenv("KALEYRA_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    return make_campaign(tmp_path, 20)


def cli(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


def assert_refused(result: Result, code: int, *says: str, folder: Path | None = None) -> None:
    """Exit ``code``, no traceback, the message says each of ``says``, the key shown nowhere."""
    text = result.out + result.err
    assert result.code == code, text
    assert "Traceback" not in text
    for words in says:
        assert words in text, f"{words!r} not in:\n{text}"
    assert_no_secret(result.out, result.err, folder=folder)


# --------------------------------------------------------------------------- the campaign file


def test_a_yaml_cut_off_inside_a_quoted_string_is_a_located_syntax_error(
        files: CampaignFiles) -> None:
    text = files.yaml.read_text(encoding="utf-8")
    files.yaml.write_text(text[: text.index("Hello") + 3], encoding="utf-8")
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "campaign.yaml:8:", "YAML syntax error", "nothing sent",
                   folder=files.yaml.parent)
    assert not files.report.exists()


def test_a_yaml_cut_off_after_a_key_names_the_line(files: CampaignFiles) -> None:
    text = files.yaml.read_text(encoding="utf-8")
    files.yaml.write_text(text[: text.index("recipients:") + len("recipients:\n  source")],
                          encoding="utf-8")
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "campaign.yaml:", "recipients", "nothing sent")


def test_a_yaml_cut_off_anywhere_never_gives_a_traceback(files: CampaignFiles) -> None:
    text = files.yaml.read_text(encoding="utf-8")
    codes = set()
    for end in range(0, len(text), 5):
        files.yaml.write_text(text[:end], encoding="utf-8")
        result = cli("validate", str(files.yaml))
        codes.add(result.code)
        assert result.code in (EXIT_OK, EXIT_INVALID), (end, result)
        if result.code == EXIT_INVALID:
            assert "campaign.yaml" in result.out, (end, result.out)
        assert "Traceback" not in result.out + result.err
    assert EXIT_INVALID in codes


def test_a_campaign_file_that_does_not_exist(files: CampaignFiles) -> None:
    result = cli("send", "nope.yaml")
    assert_refused(result, EXIT_USAGE, "nope.yaml", "no such campaign file")


# --------------------------------------------------------------------------- the CSV


def test_a_binary_csv_is_refused_naming_the_file(files: CampaignFiles) -> None:
    files.csv.write_bytes(random.Random(4).randbytes(8000))
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "recipients.csv", "binary", "nothing sent")
    assert not files.report.exists()


def test_nul_bytes_in_an_otherwise_text_csv_are_refused(files: CampaignFiles) -> None:
    files.csv.write_bytes(b"phone,name\n+919876500001,a\x00b\n")
    result = cli("send", str(files.yaml), "--dry-run")
    assert_refused(result, EXIT_INVALID, "recipients.csv")


def test_a_csv_that_is_not_utf8_names_the_file(files: CampaignFiles) -> None:
    files.csv.write_bytes("phone,name\n+919876500001,Jos\xe9\n".encode("latin-1"))
    result = cli("send", str(files.yaml), "--dry-run")
    assert_refused(result, EXIT_INVALID, "recipients.csv", "UTF-8")


def _write_50mb_line(path: Path, head: bytes, tail: bytes = b"\n") -> None:
    chunk = b"x" * (1 << 20)
    with path.open("wb") as handle:
        handle.write(head)
        for _ in range(50):
            handle.write(chunk)
        handle.write(tail)


def test_a_50mb_line_is_pointed_at_quickly(files: CampaignFiles) -> None:
    _write_50mb_line(files.csv, b"phone,name\n+919876500001,")
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "recipients.csv:2", "longer than", "nothing sent")


def test_a_50mb_header_line_with_no_end_is_refused(files: CampaignFiles) -> None:
    _write_50mb_line(files.csv, b"phone,", tail=b"")
    result = cli("send", str(files.yaml), "--dry-run")
    assert_refused(result, EXIT_INVALID, "recipients.csv:1", "header", "nothing sent")


def test_numbers_with_letters_are_invalid_rows_named_by_line(files: CampaignFiles) -> None:
    files.csv.write_text("phone,name\n+91 98765 0000A,a\nCALL-ME-NOW,b\n+919876500001,c\n",
                         encoding="utf-8")
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "recipients.csv:2:", "recipients.csv:3:",
                   "max_invalid_ratio", "nothing sent")


def test_letters_are_never_read_as_keypad_digits(files: CampaignFiles) -> None:
    files.csv.write_text("phone,name\n98765abcde,a\n+91 98765 oooo1,b\n" + "".join(
        f"+9198765{i:05d},n\n" for i in range(20)), encoding="utf-8")
    result = cli("send", str(files.yaml), "--dry-run")
    assert result.code == EXIT_OK, result.err
    assert "recipients.csv:2:" in result.err and "recipients.csv:3:" in result.err
    rows = report_rows(files)
    assert [(r["status"], r["phone"]) for r in rows[:2]] == [
        ("invalid", "98765abcde"), ("invalid", "+91 98765 oooo1")]


def _with_exclude(files: CampaignFiles, name: str) -> None:
    text = files.yaml.read_text(encoding="utf-8")
    files.yaml.write_text(text.replace("  default_country: IN\n",
                                       f"  default_country: IN\n  exclude: [{name}]\n"),
                          encoding="utf-8")


def test_an_empty_exclude_file_is_refused(files: CampaignFiles) -> None:
    (files.yaml.parent / "optouts.csv").write_bytes(b"")
    _with_exclude(files, "optouts.csv")
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "optouts.csv", "empty")


def test_an_empty_exclude_file_is_named_by_validate(files: CampaignFiles) -> None:
    (files.yaml.parent / "optouts.csv").write_bytes(b"")
    _with_exclude(files, "optouts.csv")
    result = cli("validate", str(files.yaml))
    assert "Traceback" not in result.out + result.err
    assert "optouts.csv" in result.out and "empty" in result.out


def test_a_missing_exclude_file_is_refused(files: CampaignFiles) -> None:
    _with_exclude(files, "gone.csv")
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "gone.csv", "nothing sent")


# --------------------------------------------------------------------------- the report path


def test_a_report_in_a_missing_folder_is_refused_before_sending(files: CampaignFiles) -> None:
    result = cli("send", str(files.yaml), "--report", "no/such/folder/report.csv")
    assert_refused(result, EXIT_INVALID, "no/such/folder", "does not exist")
    assert not Path("no").exists()


def test_a_report_path_under_a_file_is_refused(files: CampaignFiles) -> None:
    result = cli("send", str(files.yaml), "--report", "recipients.csv/report.csv")
    assert_refused(result, EXIT_INVALID, "recipients.csv")


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable even for root (chattr +i), or skip when that cannot be done."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)],
                                        capture_output=True).returncode != 0:
        pytest.skip("running as root, which ignores permissions, and chattr +i is not "
                    "available here to make a folder read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


@pytest.mark.parametrize("dry_run", [False, True], ids=["send", "dry-run"])
def test_a_report_in_a_read_only_folder_is_refused_before_sending(
        files: CampaignFiles, dry_run: bool) -> None:
    locked = files.yaml.parent / "locked"
    locked.mkdir()
    extra = ["--dry-run"] if dry_run else []
    with sandbox() as sb, read_only(locked):
        os.environ["KALEYRA_BASE_URL"] = sb.base_url  # restored by the fixture's monkeypatch
        result = cli("send", str(files.yaml), "--report", "locked/report.csv", *extra)
        assert sb.record.requests == []
    assert_refused(result, EXIT_INVALID, "locked", "cannot write")
    assert list(locked.iterdir()) == []


def test_a_report_path_that_is_a_folder_is_refused_before_sending(files: CampaignFiles) -> None:
    folder = files.yaml.parent / "reports"
    folder.mkdir()
    with sandbox() as sb:
        os.environ["KALEYRA_BASE_URL"] = sb.base_url
        result = cli("send", str(files.yaml), "--report", "reports")
        assert sb.record.requests == []  # before the fix: all sent, then "cannot write", exit 1
    assert_refused(result, EXIT_INVALID, "reports", "folder")


def test_a_damaged_journal_is_refused_with_the_way_out(files: CampaignFiles) -> None:
    files.journal.write_bytes(b"this is not a database\n" * 100)
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "report.csv.journal", "--fresh")


# --------------------------------------------------------------------------- credentials


def test_a_missing_api_key_names_the_variable_and_the_file(
        files: CampaignFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KALEYRA_API_KEY")
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "KALEYRA_API_KEY", "campaign.yaml")
    assert result.err.count("KALEYRA_API_KEY") == 1  # said once, not twice


@pytest.mark.parametrize("url", ["http://api.in.kaleyra.io", "http://10.0.0.8:8080",
                                 "http://127.0.0.1.example.com"])
def test_a_plain_http_base_url_that_is_not_loopback_is_refused(
        files: CampaignFiles, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("KALEYRA_BASE_URL", url)
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "KALEYRA_BASE_URL", "https://")


def test_a_base_url_with_credentials_does_not_echo_them(
        files: CampaignFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALEYRA_BASE_URL", f"https://me:{TEST_API_KEY}@api.in.kaleyra.io")
    result = cli("send", str(files.yaml))
    assert_refused(result, EXIT_INVALID, "KALEYRA_BASE_URL")


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize("argv", [["send"], ["send", "x.yaml", "--bogus"], ["launch"], [],
                                  ["validate"]])
def test_usage_errors_exit_2(files: CampaignFiles, argv: list[str]) -> None:
    result = cli(*argv)
    assert_refused(result, EXIT_USAGE, "campaign")


# --------------------------------------------------------------------------- a real terminal


@pytest.mark.parametrize("case", ["binary-csv", "missing-key", "http-url", "truncated-yaml"])
def test_what_a_terminal_shows(files: CampaignFiles, case: str) -> None:
    env = env_without_kaleyra() | {"KALEYRA_API_KEY": TEST_API_KEY, "KALEYRA_SID": SANDBOX_SID}
    if case == "binary-csv":
        files.csv.write_bytes(bytes(range(256)) * 20)
    elif case == "missing-key":
        del env["KALEYRA_API_KEY"]
    elif case == "http-url":
        env["KALEYRA_BASE_URL"] = "http://203.0.113.5"
    else:
        files.yaml.write_text(files.yaml.read_text(encoding="utf-8")[:60], encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "runner", "send", str(files.yaml)],
                          cwd=files.yaml.parent, env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == EXIT_INVALID, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip()  # something to read
    assert_no_secret(proc.stdout, proc.stderr, folder=files.yaml.parent)
