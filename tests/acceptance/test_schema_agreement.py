"""`campaign validate` and check-jsonschema (with the schema `campaign schema` prints) agree.

Every example campaign, every invalid case and a few files that test how YAML's number reading
meets the schema are run through both. Where the schema can say it, they give the same verdict.
What only `campaign validate` can see is listed in ``VALIDATE_ONLY`` with the reason: the schema
checks one file's shape, not the CSVs it names nor the world's time zones.

`campaign validate` reads YAML 1.1 (PyYAML), check-jsonschema and editors YAML 1.2. Booleans
agree: ``flash: yes`` (or on/off/no) is kept as the text it is to YAML 1.2, and both refuse it.
Known and left as they are: ``1_000`` is a number to validate and text to YAML 1.2; ``010`` is 8
to validate and 10 to YAML 1.2. Write plain decimal numbers and both agree.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "runner" / "campaign.schema.json"
EXAMPLES = sorted((ROOT / "campaigns").glob("*.yaml"))
INVALID = sorted((ROOT / "tests/data/invalid").glob("*.yaml"))

# Invalid only for reasons outside the file's shape; the schema rightly accepts them.
VALIDATE_ONLY = {
    "bad-timezone.yaml": "time zones are checked against the IANA database, not a schema enum",
    "bad-fallback-timezone.yaml": "so is sending.fallback_timezone",
    "csv-without-phone-column.yaml": "the phone column is a column of the CSV the file names",
    "placeholder-not-a-column.yaml": "placeholders are checked against the CSV's header",
}

# Written the way people write YAML: numbers where text is meant. Both must accept these.
NUMBERS_AS_WRITTEN = {
    "template-id-unquoted.yaml": ('template_id: "1107169876543210987"',
                                  "template_id: 1107169876543210987"),
    "entity-id-unquoted.yaml": ('entity_id: "1101456789012345678"',
                                "entity_id: 1101456789012345678"),
    "numeric-sender.yaml": ("sender: KLRHXA", "sender: 567890"),
    "numeric-name.yaml": ("name: order-shipped", "name: 2026"),
    "unicode-as-a-number.yaml": ("sender: KLRHXA", "sender: KLRHXA\n  unicode: 1"),
}
# ... and both must refuse these.
NUMBERS_REFUSED = {
    "template-id-too-short.yaml": ('template_id: "1107169876543210987"',
                                   "template_id: 11071698765"),
    "numeric-sender-too-long.yaml": ("sender: KLRHXA", "sender: 1234567890123456"),
    "unicode-out-of-range.yaml": ("sender: KLRHXA", "sender: KLRHXA\n  unicode: 2"),
    # YAML 1.1's booleans: text to YAML 1.2 (editors), and so to validate too.
    "flash-yes.yaml": ("sender: KLRHXA", "sender: KLRHXA\n  flash: yes"),
}


def validate_accepts(path: Path) -> bool:
    out = io.StringIO()
    code = main(["validate", str(path)], stdout=out, stderr=out)
    assert code in (0, 1), out.getvalue()
    return code == 0


def schema_rejected(paths: list[Path]) -> set[str]:
    """The files check-jsonschema refuses (schema errors or YAML it cannot parse), one run."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA),
         "-o", "json", *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    result = json.loads(done.stdout)
    found = result.get("errors", []) + result.get("parse_errors", [])
    return {Path(e["filename"]).name for e in found}


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("variants")
    for sub in ("data", "dlt"):  # what the example campaign reads
        shutil.copytree(ROOT / "campaigns" / sub, folder / sub)
    base = (ROOT / "campaigns" / "dlt-template.yaml").read_text(encoding="utf-8")
    # Without its templates file: a numeric sender is no header of the example's template.
    base = re.sub(r"^dlt:\n(?:  .*\n)+", "", base, flags=re.MULTILINE)
    made = {}
    for name, (old, new) in {**NUMBERS_AS_WRITTEN, **NUMBERS_REFUSED}.items():
        assert old in base
        made[name] = folder / name
        made[name].write_text(base.replace(old, new), encoding="utf-8")
    return made


@pytest.fixture(scope="module")
def rejected(variants: dict[str, Path]) -> set[str]:
    return schema_rejected([*EXAMPLES, *INVALID, *variants.values()])


def test_the_cases_are_there() -> None:
    assert len(EXAMPLES) >= 4 and len(INVALID) >= 10
    assert set(VALIDATE_ONLY) <= {p.name for p in INVALID}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_both_accept_every_example(example: Path, rejected: set[str]) -> None:
    assert validate_accepts(example)
    assert example.name not in rejected


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.name)
def test_both_refuse_every_invalid_case_the_schema_can_express(case: Path,
                                                               rejected: set[str]) -> None:
    assert not validate_accepts(case)
    if case.name in VALIDATE_ONLY:
        assert case.name not in rejected, "now caught by the schema too: drop it from the list"
    else:
        assert case.name in rejected


@pytest.mark.parametrize("name", sorted(NUMBERS_AS_WRITTEN))
def test_numbers_written_bare_are_accepted_by_both(name: str, variants: dict[str, Path],
                                                   rejected: set[str]) -> None:
    assert validate_accepts(variants[name])
    assert name not in rejected


@pytest.mark.parametrize("name", sorted(NUMBERS_REFUSED))
def test_numbers_out_of_bounds_are_refused_by_both(name: str, variants: dict[str, Path],
                                                   rejected: set[str]) -> None:
    assert not validate_accepts(variants[name])
    assert name in rejected
