"""The durable state of a run: sqlite3 in WAL mode beside the report, and resume.

A run is its journal (``<report>.journal``). Before a batch's request goes out the batch is
recorded open, with its rows, and committed (``begin_batch``: one record, not one per row, since
this commit is on every request's path); its answer turns its rows ``sent``, ``failed`` or
``unknown`` and closes it (``finish_batch``). Reads see the rows of a batch still open as
``in_flight``, over their earlier records, which stay as they were. A run that dies and is rerun
finds every answered row settled and every batch that was in flight still open, whose rows
``mark_in_flight_unknown`` turns ``unknown``: those may have been delivered and are not resent
unless the user asks.

Durability: WAL with ``synchronous=NORMAL``. A commit survives the process dying in any way,
SIGKILL included (it is in the WAL file, which the next open replays); a power cut or OS crash
may lose the last few commits, which is the price of not fsyncing every batch. Rows whose
``begin_batch`` was lost that way would be sent again: the only case where "at most once" leans
on the machine staying up.

The journal is opened in SQLite's exclusive locking mode, so a second run on the same report
fails at once instead of sending the same recipients in parallel.

Tables::

    meta (id = 1, fingerprint, settings JSON, created, run_number)
    rows (row INTEGER PRIMARY KEY, phone, status, batch_id, message_id, error_code, error,
          attempts, sent_at)
    batches (id PRIMARY KEY, rows BLOB of int64, phones comma-separated, open 1/0)
    message_counts (period PRIMARY KEY, messages): for the hour and day caps, made when used

The API key is never stored: ``settings`` refuses keys that look like one.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

from runner.errors import JournalError, display_path

# refused: the account refused the request (nothing sent): reported pending, a rerun sends it
JournalStatus = Literal["in_flight", "sent", "failed", "unknown", "refused"]
SCHEMA_VERSION = 2  # 2 added the batches table
DEFAULT_COMMIT_EVERY = 1000  # finished rows held before a commit of their own
IN_FLIGHT_ERROR = "no answer recorded: the run stopped while this request was in flight"
IN_FLIGHT_CODE = "IN_FLIGHT"

_BATCHES = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    rows BLOB NOT NULL,
    phones TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 1
)"""
_SCHEMA = """
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
""" + _BATCHES + ";"
_BEGIN_BATCH = """
INSERT INTO batches (id, rows, phones, open) VALUES (?, ?, ?, 1)
ON CONFLICT (id) DO UPDATE SET rows = excluded.rows, phones = excluded.phones, open = 1
"""
_UNKNOWN_ROW = """
INSERT INTO rows (row, phone, status, batch_id, error_code, error) VALUES (?, ?, 'unknown', ?, ?, ?)
ON CONFLICT (row) DO UPDATE SET phone = excluded.phone, status = 'unknown',
    batch_id = excluded.batch_id, message_id = '', error_code = excluded.error_code,
    error = excluded.error, sent_at = ''
"""
_FINISH_ROW = """
INSERT INTO rows (row, phone, status, batch_id, message_id, error_code, error, attempts, sent_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (row) DO UPDATE SET phone = excluded.phone, status = excluded.status,
    batch_id = excluded.batch_id, message_id = excluded.message_id,
    error_code = excluded.error_code, error = excluded.error, attempts = excluded.attempts,
    sent_at = excluded.sent_at
"""
_MESSAGE_COUNTS = """
CREATE TABLE IF NOT EXISTS message_counts (period TEXT PRIMARY KEY, messages INTEGER NOT NULL)"""
_COLUMNS = "row, phone, status, batch_id, message_id, error_code, error, attempts, sent_at"
_SECRET_KEY = re.compile(r"(?i).*(api[-_ ]?key|secret|password|token)")


def journal_path(report: Path) -> Path:
    """Where the journal of the run that writes ``report`` lives: beside it."""
    return report.with_name(report.name + ".journal")


# A row as stored: row, phone, status, batch_id, message_id, error_code, error, attempts, sent_at.
JournalRow = tuple[int, str, str, str, str, str, str, int, str]


@dataclass(frozen=True, slots=True)
class RowOutcome:
    row: int
    phone: str
    status: JournalStatus
    batch_id: str
    message_id: str = ""
    error_code: str = ""
    error: str = ""
    attempts: int = 0
    sent_at: str = ""  # ISO 8601 UTC


@dataclass(frozen=True, slots=True)
class JournalMeta:
    fingerprint: str
    settings: dict[str, object]
    created: str
    run_number: int


# -- opening -------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _companions(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def _explain(path: Path, exc: sqlite3.Error) -> JournalError:
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


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    except sqlite3.Error as exc:
        raise _explain(path, exc) from None
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
        raise _explain(path, exc) from None
    return conn


def _set_aside(path: Path, now: datetime) -> Path:
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
        conn = _connect(path)
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


def _check_settings(settings: Mapping[str, object]) -> dict[str, object]:
    for key in settings:
        if _SECRET_KEY.match(key) and not key.endswith("_env"):
            raise ValueError(f"refusing to store {key!r} in the journal: no secrets on disk")
    return dict(settings)


def _read_meta(conn: sqlite3.Connection, path: Path) -> JournalMeta | None:
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
    conn = _connect(path)
    try:
        meta = _read_meta(conn, path)
    except sqlite3.Error as exc:
        raise _explain(path, exc) from None
    finally:
        conn.close()
    if meta is None:
        raise JournalError(f"{display_path(path)}: the journal is empty")
    return meta


# -- the journal ---------------------------------------------------------------------------------


class Journal:
    """One run's durable state. Use ``Journal.open``; close it (or use ``with``) when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path, meta: JournalMeta,
                 commit_every: int) -> None:
        self._conn = conn
        self.path = path
        self.fingerprint = meta.fingerprint
        self.settings = meta.settings
        self.created = meta.created
        self.run_number = meta.run_number
        self._commit_every = commit_every
        self._pending = 0  # finished rows not yet committed
        self._sent: bytearray | None = None  # a bit per row recorded sent, loaded on first use
        self._closed = False
        self.set_aside: Path | None = None  # where --fresh moved the old journal

    @classmethod
    def open(cls, path: Path, fingerprint: str, *, fresh: bool = False,
             settings: Mapping[str, object] | None = None,
             commit_every: int = DEFAULT_COMMIT_EVERY) -> Journal:
        """Create or resume the journal at ``path``.

        A new file (or ``fresh=True``, which first renames an existing journal to
        ``<path>.<UTC stamp>.old``) starts run 1 with ``settings``; an existing one with the same
        fingerprint resumes with ``run_number + 1`` and its stored settings; a different
        fingerprint is a JournalError that says to use --fresh.
        """
        path = Path(path)
        clean = _check_settings(settings or {})
        aside = _set_aside(path, _utc_now()) if fresh and path.exists() else None
        conn = _connect(path)
        try:
            meta = _read_meta(conn, path)
            if meta is None:
                meta = JournalMeta(fingerprint, clean, _utc_now().isoformat(timespec="seconds"), 1)
                # One transaction: a crash mid-creation leaves an empty file, seen as new.
                conn.execute("BEGIN")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("INSERT INTO meta VALUES (1, ?, ?, ?, 1)",
                             (fingerprint, json.dumps(clean, default=str), meta.created))
                conn.execute("COMMIT")
            elif meta.fingerprint != fingerprint:
                raise JournalError(
                    "the campaign or its recipients changed since this run started (journal "
                    f"{display_path(path)}): to send the change to the rows not sent yet, "
                    "put the campaign back and finish the run first; --fresh starts over and "
                    "sends to every row again, including those already sent (the old journal "
                    "is kept aside); or give the new campaign its own --report")
            else:
                meta = JournalMeta(meta.fingerprint, meta.settings, meta.created,
                                   meta.run_number + 1)
                conn.execute("BEGIN")
                conn.execute(_BATCHES)  # a journal of schema 1 gains the table it lacks
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("UPDATE meta SET run_number = ? WHERE id = 1", (meta.run_number,))
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise _explain(path, exc) from None
        except BaseException:
            conn.close()
            raise
        journal = cls(conn, path, meta, max(commit_every, 1))
        journal.set_aside = aside
        return journal

    # -- writing --

    def begin_batch(self, batch_id: str, rows: Sequence[tuple[int, str]]) -> None:
        """Record the batch open with its ``(row, phone)`` pairs, and commit (with any pending
        results): from here on its rows read as ``in_flight`` until it is finished."""
        try:
            already = self._already_sent([row for row, _ in rows])
            if already:
                raise JournalError(f"row {already[0]} was already sent in this run; refusing to "
                                   "send it again")
            self._begin()
            self._conn.execute(_BEGIN_BATCH, (
                batch_id, array("q", [row for row, _ in rows]).tobytes(),
                ",".join(phone for _, phone in rows)))
            self._commit()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def finish_batch(self, outcomes: Sequence[RowOutcome]) -> None:
        """Record answers; committed once enough are pending, or at the next begin/flush."""
        self.finish_rows([(o.row, o.phone, o.status, o.batch_id, o.message_id, o.error_code,
                           o.error, o.attempts, o.sent_at) for o in outcomes])

    def finish_rows(self, rows: Sequence[JournalRow]) -> None:
        """``finish_batch`` for rows as plain tuples (the engine's path: no object a row).

        The batches the rows belong to are closed in the same transaction, so a crash leaves
        a batch either open (its rows read unknown) or answered, never half of each."""
        try:
            self._begin()
            self._conn.executemany(_FINISH_ROW, rows)
            self._conn.executemany("UPDATE batches SET open = 0 WHERE id = ?",
                                   [(batch_id,) for batch_id in {r[3] for r in rows}])
            sent = [r[0] for r in rows if r[2] == "sent"]
            if sent:
                self._mark_sent(sent)
            self._pending += len(rows)
            if self._pending >= self._commit_every:
                self._commit()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def release_batch(self, batch_id: str) -> None:
        """Close a batch begun but proven unsent (every answer said so, then the run stopped).

        Its rows go back to what they were before it began: a row never answered is "not
        attempted" again (``pending`` in the report, a rerun sends it); a row retried from an
        earlier run keeps that run's answer (``failed``, or ``unknown``, which a plain rerun
        leaves alone). Not committed at once: if the release is lost, the batch stays open and
        its rows turn ``unknown``, which never sends twice.
        """
        try:
            self._begin()
            self._conn.execute("UPDATE batches SET open = 0 WHERE id = ?", (batch_id,))
            self._pending += 1
            if self._pending >= self._commit_every:
                self._commit()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._commit()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def mark_in_flight_unknown(self) -> int:
        """At resume: rows left in flight by a run that stopped become ``unknown``."""
        try:
            in_flight = self._open_rows()
            self._begin()
            self._conn.executemany(_UNKNOWN_ROW, [
                (row, phone, batch_id, IN_FLIGHT_CODE, IN_FLIGHT_ERROR)
                for row, (phone, batch_id) in in_flight.items()])
            self._conn.execute("UPDATE batches SET open = 0 WHERE open = 1")
            # Rows a schema-1 journal recorded in flight one by one.
            cur = self._conn.execute(
                "UPDATE rows SET status = 'unknown', "
                "error_code = CASE WHEN error_code = '' THEN ? ELSE error_code END, "
                "error = CASE WHEN error = '' THEN ? ELSE error END WHERE status = 'in_flight'",
                (IN_FLIGHT_CODE, IN_FLIGHT_ERROR))
            self._commit()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return len(in_flight) + cur.rowcount

    # -- message caps (max_messages_per_hour/_per_day), counted across reruns --

    def messages_counted(self, periods: Sequence[str]) -> list[int]:
        """Messages counted in each of ``periods`` (keys such as "h:2026-12-02T10+05:30")."""
        try:
            self._conn.execute(_MESSAGE_COUNTS)
            found = dict(self._conn.execute(
                f"SELECT period, messages FROM message_counts WHERE period IN "
                f"({', '.join('?' * len(periods))})", tuple(periods)).fetchall())
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return [int(found.get(p, 0)) for p in periods]

    def count_messages(self, periods: Sequence[str], n: int) -> None:
        """Add ``n`` (negative: give back) to each period; committed with the next batch."""
        try:
            self._begin()
            self._conn.execute(_MESSAGE_COUNTS)
            self._conn.executemany(
                "INSERT INTO message_counts (period, messages) VALUES (?, ?) ON CONFLICT "
                "(period) DO UPDATE SET messages = max(0, messages + excluded.messages)",
                [(p, n) for p in periods])
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    # -- reading (a connection sees its own uncommitted writes, so no flush is needed). The rows
    # of open batches read as ``in_flight``, over whatever their row records say: those records
    # are kept, so that a released batch leaves them as they were. --

    def settled_rows(self) -> set[int]:
        """Rows whose request was answered (sent or failed)."""
        return self.rows_with_status("sent", "failed")

    def rows_with_status(self, *statuses: str) -> set[int]:
        marks = ", ".join("?" * len(statuses))
        cur = self._conn.execute(f"SELECT row FROM rows WHERE status IN ({marks})", statuses)
        found = {row for (row,) in cur}
        in_flight = self._open_rows()
        found.difference_update(in_flight)
        if "in_flight" in statuses:
            found.update(in_flight)
        return found

    def counts(self) -> Counter[str]:
        """Rows by status."""
        return Counter(row[2] for row in self.rows_in_row_order())

    def outcome(self, row: int) -> RowOutcome | None:
        in_flight = self._open_rows().get(row)
        if in_flight is not None:
            return RowOutcome(row, in_flight[0], "in_flight", in_flight[1])
        found = self._conn.execute(f"SELECT {_COLUMNS} FROM rows WHERE row = ?",
                                   (row,)).fetchone()
        return None if found is None else _outcome(found)

    def outcomes_in_row_order(self) -> Iterator[RowOutcome]:
        """Every recorded row, by row number, streamed (do not write while iterating)."""
        for found in self.rows_in_row_order():
            yield _outcome(found)

    def rows_in_row_order(self) -> Iterator[JournalRow]:
        """``outcomes_in_row_order`` as plain tuples: for the report, a million rows at a time."""
        in_flight = self._open_rows()
        overlay = sorted(in_flight.items())  # few: the batches open when a run stopped
        at = 0
        cur = self._conn.execute(f"SELECT {_COLUMNS} FROM rows ORDER BY row")
        while chunk := cur.fetchmany(1000):
            if not overlay:  # the common case: a run that finished
                yield from chunk
                continue
            for found in chunk:
                row = found[0]
                while at < len(overlay) and overlay[at][0] <= row:
                    yield _in_flight_row(*overlay[at])
                    at += 1
                if row not in in_flight:
                    yield found
        for item in overlay[at:]:
            yield _in_flight_row(*item)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- internals --

    def _begin(self) -> None:
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN")

    def _commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
        self._pending = 0

    def _open_rows(self) -> dict[int, tuple[str, str]]:
        """row -> (phone, batch id) for the rows of batches still open."""
        found: dict[int, tuple[str, str]] = {}
        for batch_id, blob, phones in self._conn.execute(
                "SELECT id, rows, phones FROM batches WHERE open = 1"):
            rows = array("q")
            rows.frombytes(blob)
            numbers = phones.split(",")
            if len(rows) != len(numbers):
                raise JournalError(f"{display_path(self.path)}: batch {batch_id} is damaged "
                                   "(its rows and numbers differ in count); move the journal "
                                   "away or rerun with --fresh")
            for row, phone in zip(rows, numbers, strict=True):
                found[row] = (phone, batch_id)
        return found

    def _sent_bits(self) -> bytearray:
        if self._sent is None:
            self._sent = bytearray()
            self._mark_sent([row for (row,) in self._conn.execute(
                "SELECT row FROM rows WHERE status = 'sent'")])
        return self._sent

    def _mark_sent(self, rows: Sequence[int]) -> None:
        bits = self._sent_bits()
        if not rows:
            return
        top = max(rows) >> 3
        if top >= len(bits):
            bits.extend(bytes(top + 1 - len(bits) + len(bits) // 2))  # grow by half, amortised
        for row in rows:
            bits[row >> 3] |= 1 << (row & 7)

    def _already_sent(self, rows: list[int]) -> list[int]:
        """Rows of ``rows`` recorded sent (a bit a row in memory: this check runs per request)."""
        bits = self._sent_bits()
        size = len(bits)
        return sorted(row for row in rows
                      if (row >> 3) < size and bits[row >> 3] & (1 << (row & 7)))

    def _failed(self, exc: sqlite3.Error) -> JournalError:
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        self._pending = 0
        return JournalError(f"{display_path(self.path)}: cannot write the journal: {exc}")


def _in_flight_row(row: int, where: tuple[str, str]) -> JournalRow:
    return (row, where[0], "in_flight", where[1], "", "", "", 0, "")


def _outcome(found: Sequence[Any]) -> RowOutcome:
    row, phone, status, batch_id, message_id, error_code, error, attempts, sent_at = found
    return RowOutcome(row, phone, cast(JournalStatus, status), batch_id, message_id, error_code,
                      error, attempts, sent_at)
