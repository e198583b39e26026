"""`campaign` with the journal's durability changed, for measuring what durable commits cost.

    BENCH_JOURNAL_SYNC=OFF|NORMAL|FULL python benchmarks/patched_cli.py send CAMPAIGN ...

The runner opens its journal in WAL mode with ``synchronous=NORMAL`` (a commit survives the
process dying, not a power cut). This wraps ``runner.state.sqlitefile.connect`` to set another level
after it: ``OFF`` never syncs, ``FULL`` syncs the WAL at every commit (every batch begins with
one). Nothing else changes.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import runner.state.sqlitefile
from runner.cli import main

LEVELS = ("OFF", "NORMAL", "FULL")


def patch_sync(level: str) -> None:
    if level not in LEVELS:
        raise SystemExit(f"BENCH_JOURNAL_SYNC must be one of {', '.join(LEVELS)}, not {level!r}")
    original = runner.state.sqlitefile.connect

    def connect(path: Path) -> sqlite3.Connection:
        conn = original(path)
        conn.execute(f"PRAGMA synchronous = {level}")
        return conn

    runner.state.sqlitefile.connect = connect


if __name__ == "__main__":
    patch_sync(os.environ.get("BENCH_JOURNAL_SYNC", "NORMAL"))
    sys.exit(main(sys.argv[1:]))
