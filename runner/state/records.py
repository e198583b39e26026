"""What every state store shares: the records, the interface, and the bits of logic both use.

A store holds one run: its meta (fingerprint, settings, creation time, run number), a record per
answered row, and the batches begun and not yet answered (whose rows read ``in_flight``). The
sqlite journal (``runner.state.sqlite``) and the PostgreSQL store (``runner.state.postgres``)
implement ``Store``; the engine uses its awaitable writes (``abegin_batch``...), which the sqlite
journal completes at once and the PostgreSQL store runs on its own writer thread, so a network
round trip never holds up the event loop.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

JournalStatus = Literal["in_flight", "sent", "failed", "unknown", "refused"]
DEFAULT_COMMIT_EVERY = 1000  # finished rows held before a commit of their own
IN_FLIGHT_ERROR = "no answer recorded: the run stopped while this request was in flight"
IN_FLIGHT_CODE = "IN_FLIGHT"

# A row as stored: row, phone, status, batch_id, message_id, error_code, error, attempts, sent_at.
JournalRow = tuple[int, str, str, str, str, str, str, int, str]

_SECRET_KEY = re.compile(r"(?i).*(api[-_ ]?key|secret|password|token)")


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


class Store(Protocol):
    """One run's durable state, as the send, the engine and `status` use it."""

    fingerprint: str
    settings: dict[str, object]
    run_number: int

    @property
    def where(self) -> str:
        """The store as a user should see it (a path, or a URL without its password)."""

    def begin_batch(self, batch_id: str, rows: Sequence[tuple[int, str]]) -> None: ...
    def finish_batch(self, outcomes: Sequence[RowOutcome]) -> None: ...
    def finish_rows(self, rows: Sequence[JournalRow]) -> None: ...
    def release_batch(self, batch_id: str) -> None: ...
    def flush(self) -> None: ...
    # The engine's writes: awaited, so that a store on the network never blocks the loop.
    async def abegin_batch(self, batch_id: str, rows: Sequence[tuple[int, str]]) -> None: ...
    async def afinish_rows(self, rows: Sequence[JournalRow]) -> None: ...
    async def arelease_batch(self, batch_id: str) -> None: ...
    async def aflush(self) -> None: ...
    def mark_in_flight_unknown(self) -> int: ...
    def settled_rows(self) -> set[int]: ...
    def rows_with_status(self, *statuses: str) -> set[int]: ...
    def settle(self, rows: AbstractSet[int]) -> None: ...
    def counts(self) -> Counter[str]: ...
    def outcome(self, row: int) -> RowOutcome | None: ...
    def outcomes_in_row_order(self) -> Iterator[RowOutcome]: ...
    def rows_in_row_order(self) -> Iterator[JournalRow]: ...
    def messages_counted(self, periods: Sequence[str]) -> list[int]: ...
    def count_messages(self, periods: Sequence[str], n: int) -> None: ...
    def close(self) -> None: ...


def check_settings(settings: Mapping[str, object]) -> dict[str, object]:
    for key in settings:
        if _SECRET_KEY.match(key) and not key.endswith("_env"):
            raise ValueError(f"refusing to store {key!r} in the journal: no secrets on disk")
    return dict(settings)


class SentBits:
    """A bit per row recorded sent: the already-sent check runs before every request.

    ``settled``: rows this run will not send, as read at its start (``Store.settle``); they
    stand for the store's sent rows (a superset of them) without a second read of the store.
    """

    __slots__ = ("_bits", "_settled")

    def __init__(self, rows: Iterable[int] = (), *,
                 settled: AbstractSet[int] = frozenset()) -> None:
        self._bits = bytearray()
        self._settled = settled
        self.mark(list(rows))

    def mark(self, rows: Sequence[int]) -> None:
        if not rows:
            return
        bits = self._bits
        top = max(rows) >> 3
        if top >= len(bits):
            bits.extend(bytes(top + 1 - len(bits) + len(bits) // 2))  # grow by half, amortised
        for row in rows:
            bits[row >> 3] |= 1 << (row & 7)

    def among(self, rows: Iterable[int]) -> list[int]:
        """The rows of ``rows`` marked sent, sorted."""
        bits, settled = self._bits, self._settled
        size = len(bits)
        return sorted(row for row in rows if row in settled
                      or ((row >> 3) < size and bits[row >> 3] & (1 << (row & 7))))


def already_sent_error(row: int) -> str:
    return f"row {row} was already sent in this run; refusing to send it again"


def in_flight_row(row: int, where: tuple[str, str]) -> JournalRow:
    return (row, where[0], "in_flight", where[1], "", "", "", 0, "")


def overlay_in_flight(chunks: Iterable[Sequence[JournalRow]],
                      in_flight: Mapping[int, tuple[str, str]]) -> Iterator[JournalRow]:
    """Rows in row order (``chunks`` of them, sorted), with the rows of open batches read as
    ``in_flight`` over whatever their records say (row -> (phone, batch id))."""
    overlay = sorted(in_flight.items())  # few: the batches open when a run stopped
    at = 0
    for chunk in chunks:
        if not overlay:  # the common case: a run that finished
            yield from chunk
            continue
        for found in chunk:
            row = found[0]
            while at < len(overlay) and overlay[at][0] <= row:
                yield in_flight_row(*overlay[at])
                at += 1
            if row not in in_flight:
                yield found
    for item in overlay[at:]:
        yield in_flight_row(*item)


def to_outcome(found: Sequence[Any]) -> RowOutcome:
    row, phone, status, batch_id, message_id, error_code, error, attempts, sent_at = found
    return RowOutcome(row, phone, cast(JournalStatus, status), batch_id, message_id, error_code,
                      error, attempts, sent_at)


def as_rows(outcomes: Sequence[RowOutcome]) -> list[JournalRow]:
    return [(o.row, o.phone, o.status, o.batch_id, o.message_id, o.error_code, o.error,
             o.attempts, o.sent_at) for o in outcomes]


def changed_campaign(where: str, other: str = "give the new campaign its own --report") -> str:
    return ("the campaign or its recipients changed since this run started (journal "
            f"{where}): to send the change to the rows not sent yet, put the campaign back "
            "and finish the run first; --fresh starts over and sends to every row again, "
            "including those already sent (the old journal is kept aside); or " + other)
