"""`campaign schema`: print the campaign JSON Schema, for editors and check-jsonschema.

The schema is draft-07, the draft yaml-language-server reads. Users keep a copy in their own
repository (``campaign schema > schemas/campaign.schema.json``) and point their campaign files at
it; printing it needs no jsonschema import and no network.
"""

from __future__ import annotations

import argparse
from importlib import resources
from typing import Any, TextIO

SCHEMA_RESOURCE = "campaign.schema.json"  # runner/campaign.schema.json, packaged


def schema_text() -> str:
    """The schema file as shipped, byte for byte."""
    return resources.files("runner").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")


def add_parser(commands: Any) -> None:
    """Add ``schema`` to the subcommands of ``campaign`` (``commands`` from add_subparsers)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "schema", help="print the campaign JSON Schema (draft-07, for editors)",
        description="Print the campaign JSON Schema (draft-07). Keep it in your campaigns "
                    "repository, e.g. `campaign schema > schemas/campaign.schema.json`, and start "
                    "each campaign file with `# yaml-language-server: "
                    "$schema=../schemas/campaign.schema.json`.")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    out.write(schema_text())
    return 0
