"""`campaign validate --format github` and `--format json`: what CI and other tools read."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from runner.errors import Diagnostic
from runner.output import github_annotation

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
EXPECT = re.compile(r"# expect: (\d+):(\d+) (.+)")
# ::error file=F,line=L,col=C::message  (GitHub's workflow command for an annotation)
ANNOTATION = re.compile(r"::(error|warning) (file=[^:]*?)::(.*)")


def validate(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", *args], stdout=out, stderr=err)
    assert err.getvalue() == ""
    return code, out.getvalue()


def annotations(text: str) -> list[tuple[str, dict[str, str], str]]:
    found = []
    for line in text.splitlines():
        match = ANNOTATION.fullmatch(line)
        if match:
            props = dict(p.split("=", 1) for p in match.group(2).split(","))
            found.append((match.group(1), props, match.group(3)))
    return found


@pytest.fixture(autouse=True)
def in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    # Annotations name files relative to the working folder: GitHub resolves them from the root.
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_example_is_annotated_on_its_line(path: Path) -> None:
    expect = EXPECT.match(path.read_text().splitlines()[0])
    assert expect, f"{path.name}: the first line must be '# expect: LINE:COL text'"
    line, col, text = expect.groups()

    code, out = validate("--format", "github", str(path.relative_to(ROOT)))

    assert code == 1
    wanted = {"file": f"tests/data/invalid/{path.name}", "line": line, "col": col}
    assert any(severity == "error" and props == wanted and text in message
               for severity, props, message in annotations(out)), out


def test_warnings_are_warning_annotations_and_summaries_stay_plain() -> None:
    code, out = validate("--format", "github", "campaigns/diwali-flash.yaml")
    assert code == 0
    warnings = [props for severity, props, _ in annotations(out) if severity == "warning"]
    assert {"file": "campaigns/data/diwali.csv", "line": "27"} in warnings
    assert out.splitlines()[-1] == "1 campaign checked: 0 errors, 3 warnings"


def test_file_names_with_commas_and_colons_are_escaped(tmp_path: Path) -> None:
    odd = tmp_path / "promo, v2: final.yaml"
    shutil.copy(ROOT / "tests/data/invalid/misspelt-key.yaml", odd)
    shutil.copytree(ROOT / "tests/data/invalid/data", tmp_path / "data")

    _, out = validate("--format", "github", str(odd))

    line = next(x for x in out.splitlines() if x.startswith("::error"))
    assert f"file={tmp_path}/promo%2C v2%3A final.yaml,line=7,col=3::" in line


@pytest.mark.parametrize(("message", "expected"), [
    ("50% off", "50%25 off"),
    ("line one\nline two", "line one%0Aline two"),
    ("a\r\nb", "a%0D%0Ab"),
    ("key: value, more", "key: value, more"),  # ':' and ',' need no escape in the message
])
def test_messages_are_escaped(message: str, expected: str) -> None:
    got = github_annotation(Diagnostic("error", message, "c.yaml", 3, 5))
    assert got == f"::error file=c.yaml,line=3,col=5::{expected}"
    assert "\n" not in got and "\r" not in got  # one annotation is always one line


def test_a_location_without_a_line_leaves_line_and_col_out() -> None:
    got = github_annotation(Diagnostic("warning", "2 of 30 rows are invalid", "a:b,c.csv"))
    assert got == "::warning file=a%3Ab%2Cc.csv::2 of 30 rows are invalid"


def test_json_is_one_document_with_files_errors_warnings_and_summaries() -> None:
    code, out = validate("--format", "json", "campaigns/diwali-flash.yaml",
                         "tests/data/invalid/misspelt-key.yaml")

    doc: dict[str, Any] = json.loads(out)  # the whole output is one JSON document
    assert code == 1
    assert (doc["ok"], doc["campaigns"], doc["errors"], doc["warnings"]) == (False, 2, 1, 3)
    good, bad = doc["files"]
    assert (good["file"], good["ok"], good["errors"]) == ("campaigns/diwali-flash.yaml", True, [])
    first = good["warnings"][0]
    assert (first["file"], first["line"], first["field"]) == ("campaigns/data/diwali.csv", 27,
                                                              "phone")
    assert "not a valid number" in first["message"]
    assert good["summary"]["valid"] == 26 and good["summary"]["batches"] == 1
    assert bad["ok"] is False and bad["summary"] is None
    [error] = bad["errors"]
    assert (error["file"], error["line"], error["col"]) == (
        "tests/data/invalid/misspelt-key.yaml", 7, 3)
    assert "did you mean 'sender'" in error["message"]


def test_every_code_in_the_source_is_documented() -> None:
    import re

    repo = Path(__file__).resolve().parents[2]
    source = "\n".join(p.read_text(encoding="utf-8") for p in (repo / "runner").glob("*.py"))
    used = set(re.findall(r'code="([a-z0-9-]+)"', source))
    from runner.schema import _CODES

    used |= set(_CODES.values())
    documented = set(re.findall(r"`([a-z0-9-]+)`", (repo / "docs" / "diagnostics.md")
                                .read_text(encoding="utf-8")))
    assert used and used <= documented, sorted(used - documented)


def test_json_diagnostics_have_a_version_and_a_code_for_every_invalid_example(
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    repo = Path(__file__).resolve().parents[2]
    main(["validate", "--format", "json", str(repo / "tests" / "data" / "invalid"),
          str(repo / "campaigns")])
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == 1
    found = [d for f in doc["files"] for d in f["errors"] + f["warnings"]]
    assert found and all(d["code"] not in ("error", "warning") for d in found), [
        (d["code"], d["message"]) for d in found if d["code"] in ("error", "warning")]
