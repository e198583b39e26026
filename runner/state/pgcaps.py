"""The hour and day caps' message counts in PostgreSQL (``campaign_message_counts``).

Read once a period, then kept in memory: the run's advisory lock makes its process the only
writer, so a batch never waits on a round trip for them; writes are queued on the store's writer
thread, in order with the batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class MessageCounts:
    """Mixed into ``PostgresStore``, which provides the connection, run, writer and queue."""

    _conn: Any
    _run: int
    _tally: dict[str, int]
    _unrecorded: list[Future[Any]]
    _writer: Any

    def _call(self, fn: Callable[..., T], *args: Any) -> T:  # PostgresStore's
        raise NotImplementedError

    def _commit(self) -> None:  # PostgresStore's
        raise NotImplementedError

    def messages_counted(self, periods: Sequence[str]) -> list[int]:
        """Messages counted in each of ``periods``: read once a period, then kept in memory
        (the run's lock makes this process the only writer), so a batch makes no round trip."""
        missing = [p for p in periods if p not in self._tally]
        if missing:
            def read() -> dict[str, int]:
                return dict(self._conn.execute(
                    "SELECT period, messages FROM campaign_message_counts WHERE run_id = %s "
                    "AND period = ANY(%s)", (self._run, missing)).fetchall())
            found = self._call(read)
            self._tally.update({p: int(found.get(p, 0)) for p in missing})
        return [self._tally[p] for p in periods]

    def count_messages(self, periods: Sequence[str], n: int) -> None:
        """Add ``n`` (negative: give back) to each period: at once in memory, queued for the
        database (written and committed in order with the batches; a failure shows next)."""
        self.messages_counted(periods)
        for p in periods:
            self._tally[p] = max(0, self._tally[p] + n)
        rows = [(self._run, p, n, n) for p in periods]

        def write() -> None:
            self._conn.cursor().executemany(
                "INSERT INTO campaign_message_counts (run_id, period, messages) "
                "VALUES (%s, %s, GREATEST(0, %s)) ON CONFLICT (run_id, period) DO UPDATE "
                "SET messages = GREATEST(0, campaign_message_counts.messages + %s)", rows)
            self._commit()
        self._unrecorded.append(self._writer.submit("call", write))
