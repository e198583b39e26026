"""Progress while sending: a bar on a terminal, a plain line every few seconds in CI logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from runner.observer import RunObserver

if TYPE_CHECKING:
    from runner.engine import EngineStats


class Progress:
    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 5.0,
        tty: bool | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._interval = interval
        self._total = total
        self._done = 0
        self._last_line = clock()
        is_tty = self._stream.isatty() if tty is None else tty
        self._bar = (
            tqdm(total=total, unit="row", file=self._stream, dynamic_ncols=True, leave=False)
            if is_tty
            else None
        )

    def update(self, done: int, *, requests: int = 0, retries: int = 0) -> None:
        if self._bar is not None:
            self._bar.update(done - self._done)
            self._done = done
            return
        self._done = done
        now = self._clock()
        if now - self._last_line >= self._interval:
            self._last_line = now
            share = f" ({100 * done // self._total}%)" if self._total else ""
            print(
                f"progress: {done:,} of {self._total:,} rows{share}, "
                f"{requests:,} requests, {retries:,} retries",
                file=self._stream,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class ProgressObserver(RunObserver):
    """The progress bar (or CI line) of a send, fed by the run's observer hooks."""

    def __init__(self, *, enabled: bool = True, **options: Any) -> None:
        self._options = options
        self._enabled = enabled
        self._progress: Progress | None = None

    def sending(self, rows: int) -> None:
        if self._enabled:
            self._progress = Progress(rows, **self._options)

    def batch_done(self, stats: EngineStats) -> None:
        if self._progress is not None:
            self._progress.update(stats.rows_done, requests=stats.requests, retries=stats.retries)

    def sending_done(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
