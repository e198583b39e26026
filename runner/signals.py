"""Stopping on a signal at any moment: SIGTERM behaves like Ctrl-C (``Stopped`` is a
``KeyboardInterrupt``), so start-up, the check pass and the report write all stop the same way:
exit 75, one line, no traceback.

While requests are in flight the send loop installs its own handlers (``runner.run``): a first
signal lets them finish, a second stops at once. Around the report at the end of a run a signal
is held (``held``) until the report is complete, so a stop never leaves the old report in place.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGTERM) arrived: stop where we are; a rerun resumes."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def install() -> None:
    """SIGTERM raises ``Stopped``, as SIGINT raises KeyboardInterrupt (the process's main
    thread only: a library caller keeps its own handlers unless it calls this)."""
    signal.signal(signal.SIGTERM, _raise_stopped)


@contextmanager
def held() -> Iterator[None]:
    """Hold a first stop signal until the block is done, then stop; a second stops at once."""
    seen: list[int] = []
    try:
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    except ValueError:  # not the main thread: nothing to hold
        yield
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        if len(seen) > 1:
            raise Stopped(signal.Signals(signum).name)

    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, hold)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if seen:
        raise Stopped(signal.Signals(seen[0]).name)
