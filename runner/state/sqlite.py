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

The API key is never stored: ``settings`` refuses keys that look like one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import TracebackType

from runner.errors import JournalError, display_path
from runner.state import sqlitefile
from runner.state.records import (
    DEFAULT_COMMIT_EVERY,
    IN_FLIGHT_CODE,
    IN_FLIGHT_ERROR,
    JournalMeta,
    JournalRow,
    RowOutcome,
    SentBits,
    already_sent_error,
    as_rows,
    changed_campaign,
    check_settings,
    overlay_in_flight,
    to_outcome,
)
from runner.state.sqlitefile import (
    BATCHES,
    SCHEMA,
    SCHEMA_VERSION,
    explain,
    read_stored_meta,
    utc_now,
)

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
_COLUMNS = "row, phone, status, batch_id, message_id, error_code, error, attempts, sent_at"
_MESSAGE_COUNTS = """
CREATE TABLE IF NOT EXISTS message_counts (period TEXT PRIMARY KEY, messages INTEGER NOT NULL)"""


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
        self._sent: SentBits | None = None  # the rows recorded sent, loaded on first use
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
        clean = check_settings(settings or {})
        aside = sqlitefile.set_aside(path, utc_now()) if fresh and path.exists() else None
        conn = sqlitefile.connect(path)
        try:
            meta = read_stored_meta(conn, path)
            if meta is None:
                meta = JournalMeta(fingerprint, clean, utc_now().isoformat(timespec="seconds"), 1)
                # One transaction: a crash mid-creation leaves an empty file, seen as new.
                conn.execute("BEGIN")
                for statement in filter(str.strip, SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("INSERT INTO meta VALUES (1, ?, ?, ?, 1)",
                             (fingerprint, json.dumps(clean, default=str), meta.created))
                conn.execute("COMMIT")
            elif meta.fingerprint != fingerprint:
                raise JournalError(changed_campaign(display_path(path)))
            else:
                meta = JournalMeta(meta.fingerprint, meta.settings, meta.created,
                                   meta.run_number + 1)
                conn.execute("BEGIN")
                conn.execute(BATCHES)  # a journal of schema 1 gains the table it lacks
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("UPDATE meta SET run_number = ? WHERE id = 1", (meta.run_number,))
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise explain(path, exc) from None
        except BaseException:
            conn.close()
            raise
        journal = cls(conn, path, meta, max(commit_every, 1))
        journal.set_aside = aside
        return journal

    @property
    def where(self) -> str:
        return display_path(self.path)

    # -- writing (the engine awaits the a* forms, which complete here at once: a local commit
    # is cheaper than a trip to another thread) --

    async def abegin_batch(self, batch_id: str, rows: Sequence[tuple[int, str]]) -> None:
        self.begin_batch(batch_id, rows)

    async def afinish_rows(self, rows: Sequence[JournalRow]) -> None:
        self.finish_rows(rows)

    async def arelease_batch(self, batch_id: str) -> None:
        self.release_batch(batch_id)

    async def aflush(self) -> None:
        self.flush()

    def begin_batch(self, batch_id: str, rows: Sequence[tuple[int, str]]) -> None:
        """Record the batch open with its ``(row, phone)`` pairs, and commit (with any pending
        results): from here on its rows read as ``in_flight`` until it is finished."""
        try:
            already = self._sent_bits().among(row for row, _ in rows)
            if already:
                raise JournalError(already_sent_error(already[0]))
            self._begin()
            self._conn.execute(_BEGIN_BATCH, (
                batch_id, array("q", [row for row, _ in rows]).tobytes(),
                ",".join(phone for _, phone in rows)))
            self._commit()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def finish_batch(self, outcomes: Sequence[RowOutcome]) -> None:
        """Record answers; committed once enough are pending, or at the next begin/flush."""
        self.finish_rows(as_rows(outcomes))

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
                self._sent_bits().mark(sent)
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

    def settle(self, rows: AbstractSet[int]) -> None:
        """``rows``: what this run will not send, read at its start (``rows_to_skip``, every
        sent row among them); the check before each request starts from them."""
        if self._sent is None:
            self._sent = SentBits(settled=rows)

    def counts(self) -> Counter[str]:
        """Rows by status."""
        return Counter(row[2] for row in self.rows_in_row_order())

    def outcome(self, row: int) -> RowOutcome | None:
        in_flight = self._open_rows().get(row)
        if in_flight is not None:
            return RowOutcome(row, in_flight[0], "in_flight", in_flight[1])
        found = self._conn.execute(f"SELECT {_COLUMNS} FROM rows WHERE row = ?",
                                   (row,)).fetchone()
        return None if found is None else to_outcome(found)

    def outcomes_in_row_order(self) -> Iterator[RowOutcome]:
        """Every recorded row, by row number, streamed (do not write while iterating)."""
        for found in self.rows_in_row_order():
            yield to_outcome(found)

    def rows_in_row_order(self) -> Iterator[JournalRow]:
        """``outcomes_in_row_order`` as plain tuples: for the report, a million rows at a time."""
        cur = self._conn.execute(f"SELECT {_COLUMNS} FROM rows ORDER BY row")
        return overlay_in_flight(iter(lambda: cur.fetchmany(1000), []), self._open_rows())

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

    def _sent_bits(self) -> SentBits:
        if self._sent is None:
            self._sent = SentBits(row for (row,) in self._conn.execute(
                "SELECT row FROM rows WHERE status = 'sent'"))
        return self._sent

    def _failed(self, exc: sqlite3.Error) -> JournalError:
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        self._pending = 0
        return JournalError(f"{display_path(self.path)}: cannot write the journal: {exc}")
