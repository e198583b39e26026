"""Bounded counters for a report's pass: sends by minute, and which batches were counted.

Both stay small whatever the rows: the minutes by the run's length (merged two by two past
``MAX_BUCKETS``, a week of minutes), the batches at one bit each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from runner.errors import InputError

MAX_BUCKETS = 7 * 24 * 60
MAX_BATCH_NUMBER = 1 << 26  # a bitmap of 8 MB at most; batch ids past it are counted by change
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BATCH_ID = re.compile(r"r(\d+)-b(\d+)")  # what the runner writes: r<run>-b<number>


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime  # UTC
    sent: int  # rows `sent` whose answer came in this bucket
    requests: int  # batches answered in it (any status): one request each, retries not counted


def parse_time(text: str, where: str, column: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{where}: {column} {text[:40]!r} is not a date and time "
                         "(ISO 8601)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)






class Batches:
    """Which batches have been counted: one bit a batch number, per run."""

    def __init__(self) -> None:
        self._bits: dict[int, bytearray] = {}
        self._last = ""

    def first_sight(self, batch_id: str) -> bool:
        if batch_id == self._last:  # the rows of a batch mostly follow one another
            return False
        m = _BATCH_ID.fullmatch(batch_id)
        if m is None or int(m[2]) >= MAX_BATCH_NUMBER:
            # Not an id this runner writes: a run of rows with one id is one batch.
            new, self._last = batch_id != self._last, batch_id
            return new
        self._last = batch_id
        run, n = int(m[1]), int(m[2])
        bits = self._bits.get(run)
        if bits is None:
            bits = self._bits[run] = bytearray()
        byte, bit = divmod(n, 8)
        if byte >= len(bits):
            bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))  # grow by doubling
        if bits[byte] >> bit & 1:
            return False
        bits[byte] |= 1 << bit
        return True


class Timeline:
    """Rows sent and batches answered, by bucket of ``width`` minutes since the epoch."""

    def __init__(self, shown: str) -> None:
        self._shown = shown
        self.width = 1
        self.buckets: dict[int, list[int]] = {}  # bucket -> [sent, requests]
        self._minutes: dict[str, int] = {}  # sent_at's "YYYY-MM-DDTHH:MM" -> epoch minute
        self._last: tuple[str, int] = ("", 0)

    def add(self, sent_at: str, line: int, *, sent: bool, request: bool) -> None:
        last_text, minute = self._last
        if sent_at != last_text:  # a batch's rows share their sent_at
            minute = self._minute(sent_at, line)
            self._last = (sent_at, minute)
        key = minute // self.width
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self._widen()
                key = minute // self.width
            bucket = self.buckets.setdefault(key, [0, 0])
        bucket[0] += sent
        bucket[1] += request

    def _minute(self, sent_at: str, line: int) -> int:
        # What the runner writes: "2026-12-02T05:17:03+00:00"; the minute is its first 16
        # characters. Anything else is parsed in full.
        if len(sent_at) == 25 and sent_at.endswith("+00:00"):
            head = sent_at[:16]
            minute = self._minutes.get(head)
            if minute is not None and sent_at[16] == ":" and sent_at[17:19].isdigit():
                return minute
        when = parse_time(sent_at, f"{self._shown}:{line}", "sent_at")
        minute = int((when - EPOCH).total_seconds()) // 60
        if len(sent_at) == 25 and sent_at.endswith("+00:00"):
            if len(self._minutes) > 4096:  # a cache, not a record: keep it small
                self._minutes.clear()
            self._minutes[sent_at[:16]] = minute
        return minute

    def _widen(self) -> None:
        merged: dict[int, list[int]] = {}
        for key, (sent, requests) in self.buckets.items():
            into = merged.setdefault(key // 2, [0, 0])
            into[0] += sent
            into[1] += requests
        self.width *= 2
        self.buckets = merged

    def result(self) -> tuple[Bucket, ...]:
        return tuple(Bucket(EPOCH + timedelta(minutes=key * self.width), sent, requests)
                     for key, (sent, requests) in sorted(self.buckets.items()))
