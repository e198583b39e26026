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
        self._waiting = False
        self._last_line = clock()
        is_tty = self._stream.isatty() if tty is None else tty
        self._bar = (
            tqdm(total=total, unit="row", file=self._stream, dynamic_ncols=True, leave=False)
            if is_tty
            else None
        )

    def update(self, done: int, *, requests: int = 0, retries: int = 0) -> None:
        if self._bar is not None:
            if self._waiting:  # moving again: the reason for the wait is over
                self._bar.set_postfix_str("", refresh=False)
                self._waiting = False
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

    def waiting(self, reason: str, seconds: float) -> None:
        """Say why nothing moves: on the bar until the next update; in a log, a line for each
        wait of a second or more (shorter ones are over before anyone reads them)."""
        text = f"waiting {_seconds(seconds)}: {reason}"
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)
            self._waiting = True
        elif seconds >= 1.0:
            print(f"progress: {self._done:,} of {self._total:,} rows, {text}", file=self._stream,
                  flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{round(seconds)} s"
    return f"{seconds / 60:.1f} min"


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

    def waiting(self, reason: str, seconds: float) -> None:
        if self._progress is not None:
            self._progress.waiting(reason, seconds)

    def sending_done(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
