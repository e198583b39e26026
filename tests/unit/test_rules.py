"""Campaign rules beyond the schema, and the invalid example campaigns of tests/data/invalid."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import recipients
from runner.campaign import load_campaign, validate_campaign
from runner.errors import Diagnostic
from runner.model import RecipientsSpec
from runner.rules import check_rules

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "campaigns").glob("*.yaml"))

BASE = """\
version: 1
name: rules
account:
  region: SG
message:
  sender: ACME
  type: DEFAULT
  body: "Hi {name}, news from ACME"
recipients:
  source: r.csv
"""


@pytest.fixture(autouse=True)
def header_reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Stand in for recipients.read_columns only while that module does not have it yet."""
    if not hasattr(recipients, "read_columns"):
        def read_columns(spec: RecipientsSpec) -> tuple[tuple[str, ...], list[Diagnostic]]:
            with spec.source.open(encoding="utf-8-sig", newline="") as f:
                return tuple(next(csv.reader(f), [])), []
        monkeypatch.setattr(recipients, "read_columns", read_columns, raising=False)
    yield


def rules_of(tmp_path: Path, text: str, csv_text: str = "phone,name\n+6581234567,Wei\n"
             ) -> list[Diagnostic]:
    (tmp_path / "r.csv").write_text(csv_text, encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = load_campaign(path)
    assert loaded.campaign is not None, loaded.diagnostics
    return check_rules(loaded.campaign, loaded.marks)


def found(diagnostics: list[Diagnostic]) -> list[tuple[str, int | None, int | None, str]]:
    return [(d.severity, d.line, d.col, d.message) for d in diagnostics]


def india(text: str, kind: str = "TXN") -> str:
    return (text.replace("region: SG", "region: IN").replace("type: DEFAULT", f"type: {kind}")
            .replace('  body: "Hi {name}, news from ACME"',
                     '  body: "Hi {name}, news from ACME"\n'
                     '  template_id: "1107161234567890123"\n  entity_id: "1101456789012345678"'))


def test_a_clean_campaign_has_no_rule_diagnostics(tmp_path: Path) -> None:
    assert rules_of(tmp_path, BASE) == []
    assert rules_of(tmp_path, india(BASE)) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_example_passes_the_rules_without_warnings(path: Path) -> None:
    result = validate_campaign(path)
    assert result.diagnostics == []
    assert result.campaign is not None


# --- route type ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("region", "kind", "allowed"), [
    ("EU", "MKT", "OTP, DEFAULT"),
    ("NA", "TXN", "OTP, DEFAULT"),
    ("IN", "DEFAULT", "OTP, TXN, TXND, MKT"),
])
def test_a_type_the_region_does_not_offer_is_an_error_at_the_type(
        tmp_path: Path, region: str, kind: str, allowed: str) -> None:
    text = BASE.replace("region: SG", f"region: {region}").replace("type: DEFAULT",
                                                                   f"type: {kind}")
    errors = [d for d in rules_of(tmp_path, text) if d.severity == "error"]
    assert found(errors) == [("error", 7, 9, f"type {kind} is not offered in region {region} "
                                             f"(use one of: {allowed})")]
    assert errors[0].field == "message.type"


def test_otp_with_a_batch_size_is_valid_with_a_note(tmp_path: Path) -> None:
    text = BASE.replace("type: DEFAULT", "type: OTP")
    assert rules_of(tmp_path, text) == []
    noted = rules_of(tmp_path, text + "sending:\n  batch_size: 100\n")
    assert found(noted) == [("warning", 12, 15,
                             "OTP is sent one number a request: batch_size 100 is not used")]


# --- windows -------------------------------------------------------------------------------------

def test_india_mkt_sending_always_is_warned_about_trai(tmp_path: Path) -> None:
    text = india(BASE, "MKT") + "sending:\n  window: always\n"
    [diagnostic] = rules_of(tmp_path, text)
    assert (diagnostic.severity, diagnostic.line, diagnostic.col) == ("warning", 14, 11)
    assert "TRAI" in diagnostic.message
    assert rules_of(tmp_path, BASE + "sending:\n  window: always\n") == []


def test_a_window_that_starts_when_it_ends_is_warned_as_open_all_day(tmp_path: Path) -> None:
    text = BASE + "sending:\n  window: {start: '09:00', end: '09:00', timezone: UTC}\n"
    assert found(rules_of(tmp_path, text)) == [
        ("warning", 12, 11, "window starts and ends at 09:00, which means open around the "
                            "clock: write 'window: always' if that is meant")]
    in_india = india(BASE, "MKT") + "sending:\n  window: {start: '09:00', end: '09:00', " \
                                    "timezone: Asia/Kolkata}\n"
    assert any("TRAI" in d.message for d in rules_of(tmp_path, in_india))


def test_a_window_across_midnight_is_fine(tmp_path: Path) -> None:
    text = BASE + "sending:\n  window: {start: '22:00', end: '06:00', timezone: UTC}\n"
    assert rules_of(tmp_path, text) == []


# --- India and DLT -------------------------------------------------------------------------------

def test_india_without_a_dlt_template_is_warned(tmp_path: Path) -> None:
    text = BASE.replace("region: SG", "region: IN").replace("type: DEFAULT", "type: TXN")
    assert found(rules_of(tmp_path, text)) == [
        ("warning", 5, 1, "Indian traffic needs a DLT template: add message.template_id "
                          "(and message.entity_id)")]


def test_india_with_a_template_but_no_entity_is_warned(tmp_path: Path) -> None:
    text = india(BASE).replace('\n  entity_id: "1101456789012345678"', "")
    [diagnostic] = rules_of(tmp_path, text)
    assert diagnostic.severity == "warning"
    assert "entity_id" in diagnostic.message
    assert diagnostic.field == "message.template_id"


# --- files and columns ---------------------------------------------------------------------------

def test_a_missing_recipients_file_is_an_error_at_source(tmp_path: Path) -> None:
    text = BASE.replace("source: r.csv", "source: nowhere.csv")
    [diagnostic] = rules_of(tmp_path, text)
    assert (diagnostic.severity, diagnostic.line, diagnostic.col) == ("error", 10, 11)
    assert diagnostic.message.startswith("recipients file not found: ")
    assert diagnostic.message.endswith("nowhere.csv")


def test_a_missing_suppression_list_is_an_error_at_its_item(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("phone\n", encoding="utf-8")
    text = BASE + "  exclude: [a.csv, b.csv]\n"
    [diagnostic] = rules_of(tmp_path, text)
    assert (diagnostic.line, diagnostic.col, diagnostic.field) == (11, 20,
                                                                   "recipients.exclude[1]")
    assert diagnostic.message.startswith("suppression list not found: ")


def test_a_csv_without_the_phone_column_is_an_error_at_phone_column(tmp_path: Path) -> None:
    text = BASE + "  phone_column: mobile_no\n"
    [diagnostic] = rules_of(tmp_path, text)
    assert (diagnostic.severity, diagnostic.line, diagnostic.col) == ("error", 11, 17)
    assert "has no column 'mobile_no' (it has 2 columns)" in diagnostic.message


def test_a_csv_without_the_default_phone_column_is_an_error_at_source(tmp_path: Path) -> None:
    [diagnostic] = rules_of(tmp_path, BASE, csv_text="mobile,name\n+6581234567,Wei\n")
    assert (diagnostic.line, diagnostic.col) == (10, 11)
    assert "has no column 'phone'" in diagnostic.message
    assert "recipients.phone_column" in diagnostic.message


# --- body ----------------------------------------------------------------------------------------

def test_a_placeholder_that_is_not_a_column_is_an_error_at_the_placeholder(
        tmp_path: Path) -> None:
    text = BASE.replace("Hi {name}", "Hi {nmae}")
    [diagnostic] = rules_of(tmp_path, text)
    assert (diagnostic.severity, diagnostic.line, diagnostic.col) == ("error", 8, 13)
    assert diagnostic.message.endswith("(did you mean {name}?)")


def test_a_far_off_placeholder_counts_the_columns_without_quoting_them(tmp_path: Path) -> None:
    [diagnostic] = rules_of(tmp_path, BASE.replace("Hi {name}", "Hi {voucher}"))
    assert diagnostic.message.endswith("(it has 2 columns)")


def test_escaped_braces_are_not_placeholders(tmp_path: Path) -> None:
    text = BASE.replace("Hi {name}", "Hi {{code}} {name}")
    assert rules_of(tmp_path, text) == []


def test_a_broken_placeholder_is_an_error_at_its_brace(tmp_path: Path) -> None:
    [diagnostic] = rules_of(tmp_path, BASE.replace("Hi {name}", "Hi {name"))
    assert (diagnostic.severity, diagnostic.line, diagnostic.col) == ("error", 8, 13)
    assert diagnostic.message.startswith("body: ")


def test_a_flash_message_longer_than_one_part_is_warned(tmp_path: Path) -> None:
    long_body = "x" * 170
    text = BASE.replace("Hi {name}, news from ACME", long_body).replace(
        "  type: DEFAULT", "  type: DEFAULT\n  flash: true")
    [diagnostic] = rules_of(tmp_path, text)
    assert diagnostic.severity == "warning"
    assert diagnostic.message == ("a flash message should fit in one part: this body needs 2 "
                                  "(170 of 160 GSM-7 characters)")
    not_flash = text.replace("  flash: true", "  flash: false")
    assert rules_of(tmp_path, not_flash) == []


def test_unicode_0_with_non_gsm_characters_is_warned(tmp_path: Path) -> None:
    text = BASE.replace("news from ACME", "नमस्ते").replace(
        "  type: DEFAULT", "  type: DEFAULT\n  unicode: 0")
    [diagnostic] = rules_of(tmp_path, text)
    assert (diagnostic.severity, diagnostic.field) == ("warning", "message.unicode")


def test_template_only_campaigns_skip_body_checks(tmp_path: Path) -> None:
    text = india(BASE).replace('  body: "Hi {name}, news from ACME"\n', "")
    assert rules_of(tmp_path, text) == []


# --- the invalid examples ------------------------------------------------------------------------

EXPECT = re.compile(r"# expect: (\d+):(\d+) (.+)")


def test_there_is_an_invalid_example_for_each_mistake() -> None:
    assert len(INVALID) >= 11


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_each_invalid_example_reports_its_error_where_its_comment_says(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = EXPECT.fullmatch(first)
    assert match, f"{path.name}: first line must be '# expect: LINE:COL MESSAGE'"
    line, col, text = int(match[1]), int(match[2]), match[3]
    result = validate_campaign(path)
    assert result.campaign is None
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert [(d.line, d.col) for d in errors] == [(line, col)], errors
    assert text in errors[0].message
    assert "A1b2C3d4E5f6G7h8" not in repr(result)  # the secret example's value
