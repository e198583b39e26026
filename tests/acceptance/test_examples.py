"""`campaign validate` on every shipped example (all valid) and on every invalid example."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from runner.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "campaigns").glob("*.yaml"))
INVALID = sorted((ROOT / "tests/data/invalid").glob("*.yaml"))
EXPECT = re.compile(r"# expect: (\d+):(\d+) (.+)")


def validate(*paths: Path | str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["validate", *map(str, paths)], stdout=out, stderr=out)
    return code, out.getvalue()


def test_there_are_examples_to_check() -> None:
    assert len(EXAMPLES) >= 4
    assert len(INVALID) >= 10


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_example_is_valid(example: Path) -> None:
    code, output = validate(example)
    assert code == 0, output
    assert "0 errors" in output
    first_line = example.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=../schemas/campaign.schema.json"


def test_the_examples_folder_is_valid_as_a_whole() -> None:
    code, output = validate(ROOT / "campaigns")
    assert code == 0, output
    assert f"{len(EXAMPLES)} campaigns checked: 0 errors" in output


@pytest.mark.parametrize("example", INVALID, ids=lambda p: p.name)
def test_every_invalid_example_is_reported_at_its_line(example: Path) -> None:
    found = EXPECT.match(example.read_text(encoding="utf-8").splitlines()[0])
    assert found, f"{example.name} lacks its '# expect: LINE:COL message' comment"
    line, col, message = found.groups()
    code, output = validate(example)
    assert code == 1
    assert f"{example.name}:{line}:{col}: error: " in output
    assert message in output
    assert "Traceback" not in output


def test_one_bad_file_does_not_hide_the_next() -> None:
    code, output = validate(*INVALID)
    assert code == 1
    for example in INVALID:
        assert f"{example.name}:" in output
    assert f"{len(INVALID)} campaigns checked: " in output


def test_a_missing_path_is_a_usage_error() -> None:
    code, output = validate(ROOT / "no-such-campaign.yaml")
    assert code == 2
    assert "no such file" in output


def test_a_lone_surrogate_in_a_key_is_reported_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    campaign = tmp_path / "c.yaml"
    campaign.write_text('version: 1\n"\\ud800x": 1\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "runner", "validate", str(campaign)],
                          capture_output=True, text=True, errors="replace", timeout=60,
                          check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "unknown key" in done.stdout
