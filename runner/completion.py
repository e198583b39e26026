"""`campaign completion bash|zsh`: a shell completion script generated from the parser (shtab).

Generated each time from ``runner.cliparser.build_parser``, so new commands and flags complete
without anyone editing a script. Install it once (see the README), or source it from the shell's
rc file.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

SHELLS = ("bash", "zsh")


def add_parser(commands: Any) -> None:
    """Add ``completion`` to the subcommands of ``campaign`` (``commands`` from add_subparsers)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "completion", help="print a shell completion script (bash or zsh)",
        description="Print a completion script for SHELL. bash: "
                    "`campaign completion bash > ~/.local/share/bash-completion/completions/"
                    "campaign`; zsh: `campaign completion zsh > \"${fpath[1]}/_campaign\"`.")
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash or zsh")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    import shtab  # only this command needs it

    from runner.cliparser import build_parser  # here, not at the top: it imports this module

    script: str = shtab.complete(build_parser(), shell=args.shell)
    out.write(script if script.endswith("\n") else script + "\n")
    return 0
