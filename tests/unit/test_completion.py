"""`campaign completion bash|zsh`: scripts generated from the parser, so they know every command."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.cli import main

COMMANDS = ("validate", "send", "status", "sandbox", "schema", "completion")


def completion(shell: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert main(["completion", shell], stdout=out, stderr=err) == 0, err.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_script_knows_every_command_and_send_flags(shell: str) -> None:
    script = completion(shell)
    for command in COMMANDS:
        assert command in script, command
    for flag in ("--dry-run", "--resend-unknown", "--report"):
        assert flag in script


def test_the_zsh_script_is_a_compdef_for_campaign() -> None:
    assert completion("zsh").startswith("#compdef campaign")


def test_an_unknown_shell_is_a_usage_error() -> None:
    err = io.StringIO()
    assert main(["completion", "fish"], stdout=io.StringIO(), stderr=err) == 2
    assert "invalid choice: 'fish'" in err.getvalue()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_flags_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "campaign.bash"
    script.write_text(completion("bash"), encoding="utf-8")

    def complete(*words: str) -> list[str]:
        probe = (f"source {script}\n"
                 f"COMP_WORDS=(campaign {' '.join(words)})\n"
                 f"COMP_CWORD={len(words)}\n"
                 '_shtab_campaign\nprintf "%s\\n" "${COMPREPLY[@]}"\n')
        done = subprocess.run(["bash", "--norc", "--noprofile"], input=probe, text=True,
                              capture_output=True, timeout=30, check=True)
        return done.stdout.split()

    assert complete("s") == ["send", "status", "sandbox", "schema"]
    assert complete("send", "--dry") == ["--dry-run"]
    assert complete("validate", "--format", "''") == ["text", "json", "github"]
