"""The sqlite journal's file: where it lives, opening it exclusively, its schema, setting it aside.

``runner.state.sqlite`` keeps the run in it; this module knows the file: the path beside the
report, the pragmas (WAL, ``synchronous=NORMAL``, exclusive locking), what a damaged or foreign
file looks like, and how ``--fresh`` moves an old journal aside (WAL folded in first).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from runner.errors import JournalError, display_path
from runner.state.records import JournalMeta

SCHEMA_VERSION = 2  # 2 added the batches table

BATCHES = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    rows BLOB NOT NULL,
    phones TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 1
)"""
SCHEMA = """
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,
    created TEXT NOT NULL,
    run_number INTEGER NOT NULL
);
CREATE TABLE rows (
    row INTEGER PRIMARY KEY,
    phone TEXT NOT NULL,
    status TEXT NOT NULL,
    batch_id TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    error_code TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT NOT NULL DEFAULT ''
);
""" + BATCHES + ";"


def journal_path(report: Path) -> Path:
    """Where the journal of the run that writes ``report`` lives: beside it."""
    return report.with_name(report.name + ".journal")


# -- opening -------------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def _companions(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def explain(path: Path, exc: sqlite3.Error) -> JournalError:
    shown = display_path(path)
    text = str(exc)
    if "locked" in text or "busy" in text:
        return JournalError(f"{shown}: the journal is in use by another run (is another "
                            "`campaign send` writing the same report?)")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return JournalError(f"{shown}: not a run journal (not an SQLite database, or damaged: "
                            f"{text}); move it away, or rerun with --fresh to start a new run "
                            "(the file is kept aside; rows it recorded as sent may be sent again)")
    return JournalError(f"{shown}: cannot open the journal: {text}")


def _create_private(path: Path) -> None:
    """A new journal is created readable by its owner only (it holds phone numbers); SQLite
    gives its -wal and -shm files the same mode."""
    with contextlib.suppress(FileExistsError, OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: Path) -> sqlite3.Connection:
    _create_private(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    except sqlite3.Error as exc:
        raise explain(path, exc) from None
    try:
        # Exclusive first, so the WAL index lives in memory and the lock keeps other runs out.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Take the lock now, not at the first write halfway through a run.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        raise explain(path, exc) from None
    return conn


def set_aside(path: Path, now: datetime) -> Path:
    """Rename an existing journal (with its WAL) to ``<path>.<UTC stamp>.old``."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    aside = Path(f"{path}.{stamp}.old")
    n = 1
    while any(p.exists() for p in _companions(aside)):
        n += 1
        aside = Path(f"{path}.{stamp}-{n}.old")
    # Fold the WAL into the main file first so the set-aside copy is one self-contained file.
    # A journal that cannot be opened is damaged; it moves as it is (with any WAL beside it).
    try:
        conn = connect(path)
    except JournalError as exc:
        if "in use by another run" in str(exc):
            raise
    else:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    try:
        for src, dst in zip(_companions(path), _companions(aside), strict=True):
            if src.exists():
                src.rename(dst)
    except OSError as exc:
        raise JournalError(f"{display_path(path)}: cannot move the old journal aside: "
                           f"{exc.strerror or exc}") from None
    return aside


def read_stored_meta(conn: sqlite3.Connection, path: Path) -> JournalMeta | None:
    """The stored meta; None for an empty database (a journal whose creation never committed)."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    if not tables:
        return None
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise JournalError(f"{display_path(path)}: the journal was written by a newer version "
                           "of runner; upgrade to resume this run")
    if not {"meta", "rows"} <= tables:
        raise JournalError(f"{display_path(path)}: not a run journal (no meta/rows tables); "
                           "move it away or rerun with --fresh")
    found = conn.execute(
        "SELECT fingerprint, settings, created, run_number FROM meta WHERE id = 1").fetchone()
    if found is None:
        raise JournalError(f"{display_path(path)}: not a run journal (meta is empty); "
                           "move it away or rerun with --fresh")
    fp, settings, created, run_number = found
    return JournalMeta(fp, json.loads(settings), created, run_number)


def read_meta(path: Path) -> JournalMeta:
    """The fingerprint, settings, creation time and run count of a journal (for `status`)."""
    if not path.exists():
        raise JournalError(f"{display_path(path)}: no journal here (the report's run left none)")
    conn = connect(path)
    try:
        meta = read_stored_meta(conn, path)
    except sqlite3.Error as exc:
        raise explain(path, exc) from None
    finally:
        conn.close()
    if meta is None:
        raise JournalError(f"{display_path(path)}: the journal is empty")
    return meta

