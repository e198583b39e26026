"""docs/campaign-format.md is generated from the schema and kept current.

(That every property has a description is tested in test_schema.py; the generator refuses an
undocumented property as well, so the reference cannot have gaps.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.schema import load_schema
from runner.schemadoc import COMMAND, SchemaDocError, main, render

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "campaign-format.md"


def paths(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Every property's dotted path, branches and array items included (a walk of our own)."""
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        yield from paths(sub, path)
    for branch in [*schema.get("anyOf", ()), *schema.get("oneOf", ())]:
        yield from paths(branch, prefix)


def test_the_committed_reference_is_current() -> None:
    expected = render(load_schema())
    current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    assert current == expected, (
        f"docs/campaign-format.md is out of date with runner/campaign.schema.json: run "
        f"`{COMMAND}` and commit the result")


def test_every_property_has_its_own_section() -> None:
    text = render(load_schema())
    every = list(paths(load_schema()))
    assert "sending.window.timezone" in every and "recipients.exclude" in every
    missing = [p for p in every if f"# `{p}`\n" not in text]
    assert missing == []


def test_a_property_is_described_with_everything_the_schema_says() -> None:
    schema = {"properties": {"sending": {
        "description": "How fast.", "type": "object", "required": ["rate"],
        "properties": {
            "rate": {"description": "Requests a second <at most>.", "type": "number",
                     "exclusiveMinimum": 0, "maximum": 50, "default": 10, "examples": [5]},
            "mode": {"description": "How.", "enum": ["json", "form"], "default": "json"},
            "tag": {"description": "A tag.", "type": "string", "pattern": "^[a-z]+$",
                    "minLength": 1, "maxLength": 8, "examples": ["a", "b"]},
        }}}}

    text = render(schema)

    rate = text[text.index("# `sending.rate`"):text.index("# `sending.mode`")]
    assert "Requests a second &lt;at most&gt;." in rate  # shown as written, not eaten as HTML
    for line in ("- **Type:** number", "- **Required:** yes, in `sending`",
                 "- **Default:** `10`", "- **Bounds:** above 0, up to 50", "- **Example:** `5`"):
        assert line in rate
    assert '- **Allowed values:** `"json"`, `"form"`' in text
    assert "- **Pattern:** `^[a-z]+$`" in text and "1 to 8 characters" in text
    assert '- **Examples:** `"a"`, `"b"`' in text
    assert "| [`sending.mode`](#sending-mode) | string | no | `\"json\"` |" in text


@pytest.mark.parametrize("schema", [
    {"properties": {"name": {"type": "string"}}},
    {"properties": {"a": {"description": "A.", "type": "object",
                          "properties": {"name": {"type": "string", "description": ""}}}}},
])
def test_an_undocumented_property_cannot_be_rendered(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaDocError, match="name has no description"):
        render(schema)


def test_the_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "docs" / "format.md"
    assert main(["--check", "--output", str(target)]) == 1
    assert COMMAND in capsys.readouterr().err

    assert main(["--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render(load_schema())
    assert main(["--check", "--output", str(target)]) == 0

    target.write_text(target.read_text() + "hand edit\n")
    assert main(["--check", "--output", str(target)]) == 1
