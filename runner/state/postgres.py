"""The run's state in PostgreSQL (psycopg 3), for machines that do not keep files: CI runners.

The guarantees are the file journal's (``runner.state.sqlite``): a batch is recorded open and
committed before its request leaves; answers close it; rows of batches left open read
``in_flight`` and become ``unknown`` at the rerun. What differs:

- the run is keyed by campaign name, region and SID (``RunKey``), not by a path;
- a session-level advisory lock per run key keeps a second process off it (``StateBusy``);
- one connection, used only by the store's writer thread (``runner.state.pgwriter``, with
  group commit): the engine awaits its writes (``abegin_batch``...), so a round trip to the
  database never holds up the event loop;
- a connection lost mid-run makes every later call raise ``StateLost``: the engine takes no new
  batches, and batches whose answers were not recorded stay open, ``unknown`` at the rerun;
- the URL's password is never shown: messages carry ``mask_url(url)``, and driver messages are
  scrubbed of it (``scrub``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Json

from runner.errors import JournalError, StateBusy, StateLost, StateUnavailable
from runner.state import pgschema
from runner.state.pgcaps import MessageCounts
from runner.state.pgopen import (
    connect,
    ensure_schema,
    first_line,
    holder,
    lock_run,
    open_run,
)
from runner.state.pgschema import COLUMNS, RunKey
from runner.state.pgwriter import Op, Writer
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
    check_settings,
    overlay_in_flight,
    to_outcome,
)
from runner.state.url import mask_url, scrub

T = TypeVar("T")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class PostgresStore(MessageCounts):
    """One run's durable state in PostgreSQL. Use ``PostgresStore.open``; close it when done."""

    def __init__(self, conn: psycopg.Connection[Any], url: str, key: RunKey, run_id: int,
                 meta: JournalMeta, commit_every: int) -> None:
        self._conn = conn
        self._url = url
        self.key = key
        self._run = run_id
        self.fingerprint = meta.fingerprint
        self.settings = meta.settings
        self.created = meta.created
        self.run_number = meta.run_number
        self._commit_every = commit_every
        self._pending = 0
        self._sent: SentBits | None = None
        self._lost: StateLost | None = None
        self._compacted = False  # answers written since the last fold into rows
        self._unrecorded: list[Future[Any]] = []  # answers queued and not yet known written
        self._tally: dict[str, int] = {}  # message counts by period, for the caps
        self._closed = False
        self._writer = Writer(lambda group: self._guarded(self._group, group),
                              name="campaign-state")
        self.set_aside: str | None = None  # what --fresh archived, as a user should see it

    @property
    def where(self) -> str:
        return f"{mask_url(self._url)} (run {self.key})"

    @classmethod
    def open(cls, url: str, key: RunKey, fingerprint: str, *, fresh: bool = False,
             settings: Mapping[str, object] | None = None,
             commit_every: int = DEFAULT_COMMIT_EVERY) -> PostgresStore:
        """Lock the run ``key``, then create it, resume it, or (``fresh``) archive it and start
        over. ``StateUnavailable`` if the database cannot be reached, ``StateBusy`` if another
        process holds the run, ``JournalError`` if the campaign changed since the run began."""
        clean = check_settings(settings or {})
        conn = connect(url)
        try:
            if not lock_run(conn, key):
                raise StateBusy(f"campaign {key} is being sent by another process right now "
                                f"(state {mask_url(url)}){holder(conn, key)}: nothing sent; "
                                "rerun when it has finished (a process that died lets go "
                                "within about a minute)")
            ensure_schema(conn, url)
            with conn.transaction():
                run_id, meta, aside = open_run(conn, url, key, fingerprint, fresh, clean)
        except psycopg.Error as exc:
            conn.close()
            raise StateUnavailable(f"the state store {mask_url(url)} failed while opening the "
                                   f"run: {first_line(scrub(str(exc), url))}") from None
        except BaseException:
            conn.close()
            raise
        store = cls(conn, url, key, run_id, meta, max(commit_every, 1))
        store.set_aside = aside
        return store

    # -- writing: every call runs on the writer thread; the a* forms are awaited by the engine

    def begin_batch(self, batch_id: str, rows: Sequence[tuple[int, str]]) -> None:
        self._check_unsent(self._call(self._sent_bits), rows)
        self._writer.submit("begin", (batch_id, rows)).result()

    def finish_batch(self, outcomes: Sequence[RowOutcome]) -> None:
        self.finish_rows(as_rows(outcomes))

    def finish_rows(self, rows: Sequence[JournalRow]) -> None:
        self._writer.submit("finish", rows).result()

    def release_batch(self, batch_id: str) -> None:
        self._call(self._release_batch, batch_id)

    def flush(self) -> None:
        self._call(self._commit)

    async def abegin_batch(self, batch_id: str, rows: Sequence[tuple[int, str]]) -> None:
        self._raise_unrecorded()
        sent = self._sent if self._sent is not None else await self._acall(self._sent_bits)
        self._check_unsent(sent, rows)
        await asyncio.wrap_future(self._writer.submit("begin", (batch_id, rows)))

    async def afinish_rows(self, rows: Sequence[JournalRow]) -> None:
        """Queued, not awaited: an answer needs no commit of its own (like the sqlite journal's,
        it is durable with the next begin), so the worker goes straight on to its next batch,
        whose begin then shares a round trip with it. A failure shows at the next call."""
        self._raise_unrecorded()
        self._unrecorded.append(self._writer.submit("finish", rows))

    async def arelease_batch(self, batch_id: str) -> None:
        await self._acall(self._release_batch, batch_id)

    async def aflush(self) -> None:
        await self._acall(self._commit)
        self._raise_unrecorded()

    def _raise_unrecorded(self) -> None:
        """Raise what a queued answer failed with (the store was lost, say); forget the rest."""
        done = [f for f in self._unrecorded if f.done()]
        self._unrecorded = [f for f in self._unrecorded if not f.done()]
        for future in done:
            error = future.exception()
            if error is not None:
                raise error

    def mark_in_flight_unknown(self) -> int:
        return self._call(self._mark_in_flight_unknown)

    # -- reading (the connection sees its own uncommitted writes) --

    def settled_rows(self) -> set[int]:
        return self.rows_with_status("sent", "failed")

    def rows_with_status(self, *statuses: str) -> set[int]:
        def read() -> set[int]:
            self._compact()
            cur = self._conn.execute(
                "SELECT rowno FROM campaign_rows WHERE run_id = %s AND status = ANY(%s)",
                (self._run, list(statuses)))
            found = {row for (row,) in cur}
            in_flight = self._open_rows()
            found.difference_update(in_flight)
            if "in_flight" in statuses:
                found.update(in_flight)
            return found
        return self._call(read)


    def settle(self, rows: AbstractSet[int]) -> None:
        """``rows``: what this run will not send, read at its start (``rows_to_skip``, every
        sent row among them); the check before each request starts from them."""
        if self._sent is None:
            self._sent = SentBits(settled=rows)
    def counts(self) -> Counter[str]:
        return Counter(row[2] for row in self.rows_in_row_order())

    def outcome(self, row: int) -> RowOutcome | None:
        def read() -> RowOutcome | None:
            self._compact()
            in_flight = self._open_rows().get(row)
            if in_flight is not None:
                return RowOutcome(row, in_flight[0], "in_flight", in_flight[1])
            found = self._conn.execute(f"SELECT {COLUMNS} FROM campaign_rows "
                                       "WHERE run_id = %s AND rowno = %s",
                                       (self._run, row)).fetchone()
            return None if found is None else to_outcome(found)
        return self._call(read)

    def outcomes_in_row_order(self) -> Iterator[RowOutcome]:
        for found in self.rows_in_row_order():
            yield to_outcome(found)

    def rows_in_row_order(self) -> Iterator[JournalRow]:
        """Every recorded row by row number, streamed through a server-side cursor."""
        self._call(self._compact)
        in_flight = self._call(self._open_rows)
        cursor = self._call(self._conn.cursor, "campaign_report")
        self._call(cursor.execute, f"SELECT {COLUMNS} FROM campaign_rows WHERE run_id = %s "
                   "ORDER BY rowno", (self._run,))

        def chunks() -> Iterator[Sequence[JournalRow]]:
            try:
                while chunk := self._call(cursor.fetchmany, 5000):
                    yield chunk
            finally:
                self._call(cursor.close)
        return overlay_in_flight(chunks(), in_flight)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._lost is None:
                self._call(self._compact)  # what `campaign status` reads is folded in
                self.flush()
        finally:
            self._writer.stop()  # what is still queued runs (or fails, the store being lost)
            self._end_session()  # here: the writer thread has ended

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- on the writer thread --

    def _group(self, group: Sequence[Op]) -> None:
        """A group of queued ops: consecutive begins in one statement, consecutive answers in
        one record, calls in order, and one commit if any batch began."""
        begun: list[tuple[str, Sequence[tuple[int, str]]]] = []
        answers: list[JournalRow] = []
        commit = False
        for op in group:
            if op.kind == "begin":
                self._write_answers(answers)
                begun.append(op.payload)
                commit = True
            elif op.kind == "finish":
                self._write_begun(begun)
                answers.extend(op.payload)
            else:
                self._write_answers(answers)
                self._write_begun(begun)
                op.future.set_result(op.payload())
        self._write_answers(answers)
        self._write_begun(begun)
        if commit or self._pending >= self._commit_every:
            self._commit()  # the requests of the batches begun leave only once this is durable

    def _write_begun(self, begun: list[tuple[str, Sequence[tuple[int, str]]]]) -> None:
        if begun:
            self._conn.execute(pgschema.BEGIN_BATCHES, {
                "run": self._run, "begun": Json(begun, dumps=_dumps)}, prepare=True)
            begun.clear()

    def _write_answers(self, rows: list[JournalRow]) -> None:
        if not rows:
            return
        self._conn.execute(pgschema.FINISH_ROWS, {
            "run": self._run, "batches": list({r[3] for r in rows}),
            "answer": Json(rows, dumps=_dumps)}, prepare=True)
        self._compacted = False
        sent = [r[0] for r in rows if r[2] == "sent"]
        if sent:
            self._sent_bits().mark(sent)
        self._pending += len(rows)
        rows.clear()

    @staticmethod
    def _check_unsent(sent: SentBits, rows: Sequence[tuple[int, str]]) -> None:
        already = sent.among(row for row, _ in rows)
        if already:
            raise JournalError(already_sent_error(already[0]))

    def _release_batch(self, batch_id: str) -> None:
        self._conn.execute("UPDATE campaign_batches SET open = FALSE WHERE run_id = %s AND id = %s",
                           (self._run, batch_id))
        self._pending += 1
        if self._pending >= self._commit_every:
            self._commit()

    def _compact(self) -> None:
        """Fold the answers recorded since the last read into the row records."""
        if not self._compacted:
            self._conn.execute(pgschema.COMPACT, {"run": self._run})
            self._compacted = True

    def _mark_in_flight_unknown(self) -> int:
        self._compact()
        in_flight = self._open_rows()
        items = sorted(in_flight.items())
        self._conn.execute(pgschema.UNKNOWN_ROWS, {
            "run": self._run, "code": IN_FLIGHT_CODE, "error": IN_FLIGHT_ERROR,
            "rows": [r for r, _ in items], "phones": [w[0] for _, w in items],
            "batch_ids": [w[1] for _, w in items]})
        self._conn.execute("UPDATE campaign_batches SET open = FALSE WHERE run_id = %s AND open",
                           (self._run,))
        self._commit()
        return len(items)

    def _end_session(self) -> None:
        """Let go of the run now: closing alone frees the lock only once the server notices."""
        with contextlib.suppress(psycopg.Error):
            if self._lost is None and not self._conn.broken:
                self._conn.rollback()
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key.lock_id(),))
                self._conn.commit()
        self._conn.close()

    def _commit(self) -> None:
        self._conn.commit()
        self._pending = 0

    def _open_rows(self) -> dict[int, tuple[str, str]]:
        found: dict[int, tuple[str, str]] = {}
        for batch_id, members in self._conn.execute(
                "SELECT id, members FROM campaign_batches WHERE run_id = %s AND open",
                (self._run,)):
            try:
                for row, phone in members:
                    found[int(row)] = (str(phone), batch_id)
            except (TypeError, ValueError):
                raise JournalError(f"the state store {mask_url(self._url)}: batch {batch_id} "
                                   "is damaged (its members are not [row, phone] pairs)") from None
        return found

    def _sent_bits(self) -> SentBits:
        if self._sent is None:
            self._compact()
            self._sent = SentBits(row for (row,) in self._conn.execute(
                "SELECT rowno FROM campaign_rows WHERE run_id = %s AND status = 'sent'",
                (self._run,)))
        return self._sent

    # -- calling the writer thread --

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        if self._lost is not None:
            raise self._lost
        try:
            return fn(*args)
        except psycopg.Error as exc:
            self._pending = 0
            self._compacted = False  # a rollback undid any fold
            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) or \
                    self._conn.broken or self._conn.closed:
                self._lost = StateLost(
                    f"lost the state store {mask_url(self._url)} during the run: "
                    f"{first_line(scrub(str(exc), self._url))}; no new batches were sent, and "
                    "batches whose answers could not be recorded will be reported unknown; "
                    "rerun when the database is back")
                raise self._lost from None
            with contextlib.suppress(psycopg.Error):
                self._conn.rollback()
            raise JournalError(f"the state store {mask_url(self._url)}: "
                               f"{first_line(scrub(str(exc), self._url))}") from None

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = self._writer.submit("call", lambda: fn(*args)).result()
        return result

    async def _acall(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await asyncio.wrap_future(self._writer.submit("call", lambda: fn(*args)))
        return result
