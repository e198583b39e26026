"""A run under a recipient-local window: send what is open, then stop or wait zone by zone.

``ZoneRun.send`` drives the engine pass after pass (``runner.zoneplan.ZoneBatcher``): each pass
sends the rows whose zone set is open. Without ``wait`` the run ends after one pass and
``opening`` says when the next zone set with rows left opens (the run then exits 75). With
``wait`` it sleeps until that opening (cut short by a stop) and sends those rows, until no row
is left or only rows that never open are (no known time zone and no fallback).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Container, Iterable
from datetime import datetime

from runner.engine import Engine
from runner.model import Window
from runner.observer import RunObserver
from runner.zoneplan import Opening, Row, ZoneBatcher
from runner.zones import zone_window

Sleep = Callable[[float], Awaitable[None]]


class ZoneRun:
    def __init__(self, window: Window, fallback: str | None, *, size: int,
                 now: Callable[[], datetime], wait: bool, sleep: Sleep = asyncio.sleep,
                 expires: datetime | None = None,
                 size_of: Callable[[str | None], int] | None = None) -> None:
        self.window = window
        self._now = now
        self._wait = wait
        self._sleep = sleep
        self._fallback = fallback
        self._size = size
        self._size_of = size_of  # a text's own batch size (parts_per_second)
        self._expires = expires
        self.expired = False  # the next zone opens only after the campaign expires
        self.opening: Opening | None = None  # set when the run ends with rows left to open
        self.never = 0  # rows left that no wait would send

    async def send(self, engine: Engine, rows: Callable[[], Iterable[Row]],
                   skip: Container[int], *, id_prefix: str, observer: RunObserver) -> bool:
        """Passes until done, stopped, or (without ``wait``) rows are left: True if stopped."""
        batcher = ZoneBatcher(self.window, self._fallback, size=self._size, now=self._now,
                              id_prefix=id_prefix, size_of=self._size_of)
        while True:
            result = await engine.run(batcher.batches(rows(), skip))
            if result.stopped:
                return True
            now = self._now()
            self.never = batcher.never(now)
            self.opening = batcher.next_opening(now)
            if self.opening is not None and self._expires is not None and (
                    self.opening.at >= self._expires):
                self.expired = True  # what is left can never go: it is expired, not pending
                self.opening = None
            if self.opening is None or not self._wait:
                return False
            if self.opening.at > now:
                zones = self.opening.zones
                shown = zone_window(self.window, zones[0]) if len(zones) == 1 else self.window
                observer.waiting_for_window(shown, self.opening.at)
                if not await self._pause((self.opening.at - now).total_seconds(), engine):
                    return True

    async def _pause(self, seconds: float, engine: Engine) -> bool:
        """Sleep ``seconds`` unless the engine is stopped first (then False)."""
        sleeping = asyncio.ensure_future(self._sleep(max(0.05, seconds)))
        stopping = asyncio.ensure_future(engine.stop_event.wait())
        try:
            await asyncio.wait((sleeping, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeping, stopping):
                task.cancel()
        return not engine.stop_event.is_set()
