"""Messages as they would be sent: fallbacks, blank cells, smart encoding, UCS-2 characters, DLT
templates checked by validate, budgets, and the defects a new user found."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from runner.checker import CampaignCheck, check_campaign
from runner.cli import main
from runner.compose import Composer
from runner.message import count_segments, render, smart_gsm
from runner.reportread import read_report
from runner.schema import load_schema

TEMPLATES = ("Template ID,Template Type,Header,Template Content,Status\n"
             "110716000000000001,Service Implicit,KLRHXA,"
             '"Hi {#var#}, your order {#var#} has shipped. - KLRHXA",Approved\n'
             "110716000000000002,Promotional,KLRHXA,"
             '"Sale: {#var#} off today only at {#var#}",Approved\n'
             "110716000000000003,Service Implicit,KLRHXA,\"Code {#var#}\",Approved\n")


def campaign(folder: Path, body: str, rows: list[tuple[str, ...]], *,
             header: str = "phone,name,order", message: str = "", top: str = "",
             kind: str = "TXN", ratio: float = 0.5) -> Path:
    (folder / "people.csv").write_text(
        header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "templates.csv").write_text(TEMPLATES, encoding="utf-8")
    path = folder / "c.yaml"
    path.write_text(
        "version: 1\nname: m\naccount: {region: IN}\nmessage:\n  sender: KLRHXA\n"
        f"  type: {kind}\n  body: {json.dumps(body, ensure_ascii=False)}\n{message}"
        f"recipients: {{source: people.csv, default_country: IN, max_invalid_ratio: {ratio}}}\n"
        f"sending: {{window: always}}\n{top}", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # diagnostics name files as the user would see them


def phones(n: int) -> list[str]:
    return [f"+9198765{i:05d}" for i in range(n)]


def problems(check: CampaignCheck, severity: str = "error") -> list[str]:
    return [d.format_text() for d in check.diagnostics if d.severity == severity]


def dry_run(path: Path, tmp_path: Path) -> tuple[int, str, str, list[dict[str, str]]]:
    out, err = io.StringIO(), io.StringIO()
    report = tmp_path / "dry.csv"
    code = main(["send", str(path), "--dry-run", "--report", str(report)], stdout=out,
                stderr=err)
    rows = list(read_report(report)) if report.exists() else []
    return code, out.getvalue(), err.getvalue(), rows


# --- placeholders: fallbacks and blank cells ---------------------------------------------------

def test_a_fallback_fills_a_blank_cell() -> None:
    assert render("Hi {name|there}!", {"name": "  "}) == "Hi there!"
    assert render("Hi {name|there}!", {"name": "Asha"}) == "Hi Asha!"
    composer = Composer("Hi {name|there}, {city|}.")
    assert composer.compose({"name": "", "city": ""}) == ("Hi there, .", "")


def test_a_blank_cell_without_a_fallback_makes_the_row_invalid(tmp_path: Path) -> None:
    [a, b, c] = phones(3)
    path = campaign(tmp_path, "Hi {name}, order {order}", [(a, "Asha", "1"), (b, "", "2"),
                                                          (c, "Ravi", "3")])
    code, _, err, rows = dry_run(path, tmp_path)
    assert code == 0, err
    assert [r["status"] for r in rows] == ["dry_run", "invalid", "dry_run"]
    assert rows[1]["error"].startswith("column name is blank")
    assert "people.csv:3: warning: column name is blank" in err


def test_rows_whose_message_fails_count_towards_max_invalid_ratio(tmp_path: Path) -> None:
    rows = [(p, "", "1") for p in phones(3)] + [(p, "Asha", "1") for p in phones(5)[3:]]
    check = check_campaign(campaign(tmp_path, "Hi {name}", rows, ratio=0.5))
    assert any("3 of 5 rows are invalid (60.0%), above max_invalid_ratio" in e
               for e in problems(check))


def test_a_later_row_of_a_number_takes_the_place_of_one_whose_message_failed(
        tmp_path: Path) -> None:
    [a] = phones(1)
    path = campaign(tmp_path, "Hi {name}", [(a, "", "1"), (a, "Asha", "2"), (a, "Ravi", "3")])
    code, _, err, rows = dry_run(path, tmp_path)
    assert code == 0, err
    assert [r["status"] for r in rows] == ["invalid", "dry_run", "duplicate"]
    assert rows[1]["text"] == "Hi Asha"


# --- preview and cost ------------------------------------------------------------------------

def test_the_dry_run_report_shows_each_recipients_text_parts_and_encoding(tmp_path: Path) -> None:
    [a, b] = phones(2)
    path = campaign(tmp_path, "Hi {name}, order {order} =ok", [(a, "Asha", "1"),
                                                               (b, "Ravi" * 40, "2")])
    code, _, err, rows = dry_run(path, tmp_path)
    assert code == 0, err
    header = (tmp_path / "dry.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith("sent_at,parts,encoding,text")
    assert [(r["parts"], r["encoding"], r["text"]) for r in rows] == [
        ("1", "GSM-7", "Hi Asha, order 1 =ok"), ("2", "GSM-7", f"Hi {'Ravi' * 40}, order 2 =ok")]


def test_the_plan_prints_billable_parts_and_the_cost(tmp_path: Path) -> None:
    rows = [(p, "Asha", "1") for p in phones(3)] + [(phones(4)[3], "Ravi" * 40, "2")]
    path = campaign(tmp_path, "Hi {name}", rows,
                    top="budget: {max_parts: 10, price_per_part: 0.12, currency: INR}\n")
    code, out, err, _ = dry_run(path, tmp_path)
    assert code == 0, err
    assert "  parts       5 billable (1-2 a message), budget 10" in out
    assert "  cost        about INR 0.60 (5 parts at 0.12 each)" in out


def test_a_campaign_over_its_budget_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    path = campaign(tmp_path, "Hi {name}", [(p, "Asha", "1") for p in phones(4)],
                    top="budget:\n  max_parts: 3\n  price_per_part: 0.5\n")
    code, _, err, _ = dry_run(path, tmp_path)
    assert code == 1
    assert ("c.yaml:11:14: error: the campaign needs 4 billable parts, above budget.max_parts 3,"
            " about 0.50 over: nothing is sent") in err
    assert not (tmp_path / "dry.csv").exists()


# --- encoding --------------------------------------------------------------------------------

def test_validate_names_each_character_that_forces_ucs2_with_what_it_costs(
        tmp_path: Path) -> None:
    body = "Don\u2019t miss it: " + "x" * 60 + " \u2014 see {name}"
    check = check_campaign(campaign(tmp_path, body, [(phones(1)[0], "Asha", "1")]))
    warnings = problems(check, "warning")
    assert ("c.yaml:7:13: warning: \u2019 (right single quotation mark) at 7:13 forces UCS-2: "
            "2 parts instead of 1; smart_encoding: true would send \"'\" instead") in warnings
    assert any(w.startswith("c.yaml:7:86: warning: \u2014 (em dash) at 7:86") for w in warnings)


def test_smart_encoding_sends_counts_and_previews_the_replaced_text(tmp_path: Path) -> None:
    [a] = phones(1)
    body = "Don\u2019t miss \u201cit\u201d \u2013 {name}\u2026"
    path = campaign(tmp_path, body, [(a, "Asha\u00a0K", "1")],
                    message="  smart_encoding: true\n")
    code, _, err, rows = dry_run(path, tmp_path)
    assert code == 0, err
    assert "forces UCS-2" not in err
    assert rows[0]["text"] == "Don't miss \"it\" - Asha K..."
    assert rows[0]["encoding"] == "GSM-7"
    assert smart_gsm("\u2018a\u2019 \u2026") == "'a' ..."


def test_unicode_1_counts_a_plain_text_as_ucs2(tmp_path: Path) -> None:
    # Defect: the flag sends UCS-2, so 71 plain characters are two parts, not one.
    [a] = phones(1)
    path = campaign(tmp_path, "x" * 71, [(a, "Asha", "1")], message="  unicode: 1\n")
    code, out, err, rows = dry_run(path, tmp_path)
    assert code == 0, err
    assert "UCS-2, 2 parts" in out
    assert (rows[0]["parts"], rows[0]["encoding"]) == ("2", "UCS-2")
    assert count_segments("x" * 71, ucs2=True).parts == 2


# --- the defects a new user found ------------------------------------------------------------

def test_a_body_without_placeholders_is_counted_with_its_escapes_collapsed(
        tmp_path: Path) -> None:
    # 158 characters as sent: '{{' and '}}' are one brace each (two septets, as GSM escapes).
    body = "Use code {{SAVE10}} today " + "x" * (160 - 26 - 2)
    path = campaign(tmp_path, body, [(phones(1)[0], "Asha", "1")], message="  flash: true\n")
    check = check_campaign(path)
    assert not [w for w in problems(check, "warning") if "flash" in w]
    assert check.summary is not None and check.summary.max_parts == 1
    code, _, err, rows = dry_run(path, tmp_path)
    assert code == 0, err
    assert rows[0]["text"].startswith("Use code {SAVE10} today ")
    assert rows[0]["parts"] == "1"


def test_a_personalised_flash_message_that_grows_past_one_part_is_warned(tmp_path: Path) -> None:
    rows = [(p, "Asha", "1") for p in phones(3)] + [(phones(5)[3], "R" * 170, "2"),
                                                    (phones(5)[4], "S" * 170, "3")]
    check = check_campaign(campaign(tmp_path, "Hi {name}", rows, message="  flash: true\n"))
    [warned] = [w for w in problems(check, "warning") if "flash" in w]
    assert "for 2 rows the text needs more (up to 2 parts; row 5 is one)" in warned


def test_an_unquoted_19_digit_template_id_is_valid_for_validate_and_the_schema(
        tmp_path: Path) -> None:
    path = campaign(tmp_path, "Hi {name}", [(phones(1)[0], "Asha", "1")],
                    message="  template_id: 1107161234567890123\n  entity_id: '1101'\n")
    check = check_campaign(path)
    assert check.ok, problems(check)
    assert check.campaign is not None
    assert check.campaign.message.template_id == "1107161234567890123"
    # An editor reads the file as YAML and checks it against the schema as it is.
    validator = Draft202012Validator(load_schema())
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data["message"]["template_id"], int)
    assert list(validator.iter_errors(data)) == []
    # And both refuse a number with too few digits.
    data["message"]["template_id"] = 12345
    assert list(validator.iter_errors(data))
    short = campaign(tmp_path, "Hi {name}", [(phones(1)[0], "Asha", "1")],
                     message="  template_id: 12345\n")
    assert any("template_id '12345' must be 12 to 30 digits" in e
               for e in problems(check_campaign(short)))


# --- DLT templates, as validate checks them -----------------------------------------------------

DLT = "dlt: {templates: templates.csv}\n"


def test_a_body_that_differs_from_its_template_by_one_word_is_refused_at_its_line(
        tmp_path: Path) -> None:
    path = campaign(tmp_path, "Hi {name}, your parcel {order} has shipped. - KLRHXA",
                    [(phones(1)[0], "Asha", "1")],
                    message="  template_id: '110716000000000001'\n", top=DLT)
    [found] = problems(check_campaign(path))
    assert found == ("c.yaml:7:26: error: the body differs from its DLT template, so no message "
                     "can match it: the body has 'parcel' where template 110716000000000001 has "
                     "'order'")


def test_a_value_too_long_for_its_variable_makes_the_row_invalid_and_the_rest_go(
        tmp_path: Path) -> None:
    [a, b, c] = phones(3)
    path = campaign(tmp_path, "Hi {name}, your order {order} has shipped. - KLRHXA",
                    [(a, "Asha", "1"), (b, "Ravi", "X" * 31), (c, "Mira", "3")],
                    message="  template_id: '110716000000000001'\n", top=DLT)
    code, _, err, rows = dry_run(path, tmp_path)
    assert code == 0, err
    assert [r["status"] for r in rows] == ["dry_run", "invalid", "dry_run"]
    assert "(31 characters) stands for {#var#} 2" in rows[1]["error"]


@pytest.mark.parametrize(("message", "kind", "expected"), [
    ("  template_id: '110716000000000009'\n", "TXN",
     "8:16: error: template 110716000000000009 is not in templates.csv (3 templates)"),
    ("  template_id: '110716000000000002'\n", "TXN",
     "6:9: error: template 110716000000000002 is Promotional (templates.csv:3): it may go only "
     "as type MKT, not TXN"),
    ("  template_id: '110716000000000001'\n", "MKT",
     "6:9: error: type MKT needs a Promotional template; 110716000000000001 is Service Implicit"),
])
def test_the_template_must_exist_and_fit_the_route(tmp_path: Path, message: str, kind: str,
                                                    expected: str) -> None:
    path = campaign(tmp_path, "Hi {name}, your order {order} has shipped. - KLRHXA",
                    [(phones(1)[0], "Asha", "1")], message=message, kind=kind, top=DLT)
    assert any(e.startswith(f"c.yaml:{expected}") for e in problems(check_campaign(path))), \
        problems(check_campaign(path))


def test_the_sender_must_be_one_of_the_templates_headers(tmp_path: Path) -> None:
    path = campaign(tmp_path, "Code {name}", [(phones(1)[0], "Asha", "1")],
                    message="  template_id: '110716000000000003'\n", top=DLT)
    path.write_text(path.read_text().replace("sender: KLRHXA", "sender: OTHERS"))
    assert any("sender OTHERS is not a header of template 110716000000000003 (its headers: "
               "KLRHXA" in e for e in problems(check_campaign(path)))


def test_a_template_mostly_variable_is_warned(tmp_path: Path) -> None:
    path = campaign(tmp_path, "Code {name}", [(phones(1)[0], "Asha", "1")],
                    message="  template_id: '110716000000000003'\n", top=DLT)
    check = check_campaign(path)
    assert check.ok, problems(check)
    assert any("fixed text is 14% of the longest message it allows" in w and "TRAI" in w
               for w in problems(check, "warning"))


def test_a_missing_templates_file_is_named_at_its_key(tmp_path: Path) -> None:
    path = campaign(tmp_path, "Hi {name}", [(phones(1)[0], "Asha", "1")],
                    message="  template_id: '110716000000000003'\n",
                    top="dlt:\n  templates: nowhere.csv\n")
    assert any(e.startswith("c.yaml:12:14: error: DLT templates file not found: ")
               for e in problems(check_campaign(path)))


def test_the_report_may_not_overwrite_the_templates_file(tmp_path: Path) -> None:
    path = campaign(tmp_path, "Code {name}", [(phones(1)[0], "Asha", "1")],
                    message="  template_id: '110716000000000003'\n", top=DLT)
    err = io.StringIO()
    code = main(["send", str(path), "--dry-run", "--report", "templates.csv"],
                stdout=io.StringIO(), stderr=err)
    assert code == 1
    assert "the report would overwrite templates.csv" in err.getvalue()
    assert (tmp_path / "templates.csv").read_text(encoding="utf-8") == TEMPLATES


def test_unicode_1_counts_as_ucs2_against_max_parts(tmp_path: Path) -> None:
    # 180 plain characters: 2 parts in GSM-7 but 3 in UCS-2, which unicode "1" sends.
    [a] = phones(1)
    path = campaign(tmp_path, "Hi {name}", [(a, "x" * 180, "1")],
                    message="  unicode: 1\n  max_parts: 2\n", ratio=1.0)
    check = check_campaign(path)
    assert check.summary is not None and check.summary.valid == 0, problems(check, "warning")
    assert any("max_parts" in d.message for d in check.diagnostics)
