"""The PostgreSQL store's writer thread: one connection, one thread, and group commit.

Every call on the store's connection goes through here, so the connection is only ever used by
one thread, and the event loop only waits on a future. Whatever is queued when the thread takes
work is done together: consecutive batch begins become one INSERT, consecutive answers one
answer record, and the group ends in at most one COMMIT, after which every begin in it is
durable. With several workers sending at once this turns N round trips and N commits into a
few, which is what keeps a database on the network close to a local file.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

# Op kinds: "begin" (payload: [batch_id, [[row, phone], ...]]), "finish" (payload: journal
# rows), "call" (payload: a function to run in order).


@dataclass(slots=True)
class Op:
    kind: str
    payload: Any
    future: Future[Any] = field(default_factory=Future)


class Writer:
    """Runs ``Op``s in order on its own thread; ``execute_group`` does a group's database work."""

    def __init__(self, execute_group: Callable[[Sequence[Op]], None], *, name: str) -> None:
        self._execute_group = execute_group
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, kind: str, payload: Any) -> Future[Any]:
        op = Op(kind, payload)
        self._queue.put(op)
        return op.future

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stopping = False
            while True:  # take whatever else is waiting: it shares the round trips and commit
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            self._do(group)
            if stopping:
                return

    def _do(self, group: list[Op]) -> None:
        try:
            self._execute_group(group)
        except BaseException as exc:  # every op of the group failed with it (rolled back)
            for op in group:
                if not op.future.done():
                    op.future.set_exception(exc)
            return
        for op in group:
            if not op.future.done():
                op.future.set_result(None)
