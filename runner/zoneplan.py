"""Rows -> batches under a recipient-local window, and the count of rows by zone set.

``ZoneBatcher.batches`` makes one pass over the sendable rows: a row goes into a batch only
while its zone set's window is open, and a batch holds rows of one zone set (and, as
``runner.plan``, one text). Whether a zone set is open is asked when its first row is seen and
again when each of its batches is taken by the engine (the generator runs lazily), so a zone
whose window closes mid-run stops getting batches; its remaining rows stay ``pending``, counted
in ``left`` so that the run can say when the next zone opens.

``ZoneCensus`` watches the check pass (a ``PlanObserver`` around another) and counts sendable
rows by zone set: the dry run lists them, validate warns about numbers with no known zone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from runner.errors import Diagnostic, display_path, warning
from runner.model import Campaign, Window
from runner.plan import Batch
from runner.zones import ZoneClock, ZoneLookup, ZoneRows, Zones, label, per_recipient

if TYPE_CHECKING:
    from runner.checker import PlanObserver
    from runner.recipients import Recipient
    from runner.verdicts import CheckedRows

Row = tuple[int, str, str | None]  # source row, number in E.164 without '+', its text


def zone_rows(campaign: Campaign, checked: CheckedRows) -> Iterator[Row]:
    """(row, number without '+', text) of each sendable row, from the check pass's verdicts:
    its sendable rows for a body without placeholders, else the batches it planned (never a
    second read of a CSV that may have changed since)."""
    from runner.compose import Composer
    from runner.plan import is_personalised

    if not is_personalised(campaign):
        text = Composer.for_campaign(campaign).fixed_text  # the text as sent
        return ((row, str(number), text) for row, number in checked.sendable_pairs())
    return ((row, number[1:], batch.body)
            for batch in checked.planned_batches(skip=(), id_prefix="")
            for row, number in zip(batch.rows, batch.numbers, strict=True))


@dataclass(frozen=True, slots=True)
class Opening:
    """When rows left pending by a pass can next go: ``at`` (UTC), the zone set that opens."""

    at: datetime
    zones: Zones
    rows: int  # rows of that zone set left


class ZoneBatcher:
    """Batches of sendable rows whose zone set is open, pass after pass (``--wait``)."""

    def __init__(self, window: Window, fallback: str | None, *, size: int,
                 now: Callable[[], datetime], id_prefix: str, max_open_groups: int = 1000,
                 size_of: Callable[[str | None], int] | None = None) -> None:
        self.window = window
        self.lookup = ZoneLookup(fallback)
        self.clock = ZoneClock(window, self.lookup.sets)
        self._size = size
        self._size_of = size_of  # a text's own size, as the check pass planned it
        self._now = now
        self._prefix = id_prefix
        self._max_groups = max_open_groups
        self._seq = 0
        self.taken: set[int] = set()  # rows put in a batch by this run (never twice)
        self.left: Counter[int] = Counter()  # zone set -> rows the last pass left pending

    def batches(self, rows: Iterable[Row], skip: Container[int] = frozenset()
                ) -> Iterator[Batch]:
        """One pass: batches of the rows (not in ``skip``) whose zone set is open."""
        index, is_open, now, taken = self.lookup.index, self.clock.is_open, self._now, self.taken
        size, left = self._size, self.left
        left.clear()
        opened: set[int] = set()
        closed: set[int] = set()
        groups: dict[tuple[int, str | None], tuple[list[int], list[str]]] = {}
        sizes: dict[str | None, int] = {}
        size_of = self._size_of
        for row, digits, text in rows:
            if row in skip or row in taken:
                continue
            zone = index(digits)
            if zone in closed:
                left[zone] += 1
                continue
            if zone not in opened:
                if not is_open(zone, now()):
                    closed.add(zone)
                    left[zone] += 1
                    continue
                opened.add(zone)
            key = (zone, text)
            group = groups.get(key)
            if group is None:
                if len(groups) >= self._max_groups:
                    oldest = next(iter(groups))
                    yield from self._emit(oldest, groups.pop(oldest), closed)
                group = groups[key] = ([], [])
            group[0].append(row)
            group[1].append("+" + digits)
            limit = size if size_of is None else sizes.setdefault(text, size_of(text))
            if len(group[0]) >= limit:
                del groups[key]
                yield from self._emit(key, group, closed)
        for key, group in groups.items():
            yield from self._emit(key, group, closed)

    def _emit(self, key: tuple[int, str | None], group: tuple[list[int], list[str]],
              closed: set[int]) -> Iterator[Batch]:
        zone, text = key
        # Asked when the engine takes the batch: a window that closed since stops the zone.
        if zone in closed or not self.clock.is_open(zone, self._now()):
            closed.add(zone)
            self.left[zone] += len(group[0])
            return
        self._seq += 1
        self.taken.update(group[0])
        yield Batch(f"{self._prefix}{self._seq:06d}", text, tuple(group[0]), tuple(group[1]))

    def next_opening(self, now: datetime) -> Opening | None:
        """The first zone set with rows left that opens (``at`` may be now); None if none
        ever will."""
        best: Opening | None = None
        for zone, rows in self.left.items():
            state = self.clock.state(zone, now)
            at = now if state.open else state.opens_at
            if at is not None and (best is None or at < best.at):
                best = Opening(at, self.lookup.sets[zone], rows)
        return best

    def never(self, now: datetime) -> int:
        """Rows left whose zone set never opens (no known zone, or zones never open at once)."""
        return sum(rows for zone, rows in self.left.items()
                   if not (s := self.clock.state(zone, now)).open and s.opens_at is None)


@dataclass(frozen=True, slots=True)
class ZoneCounts:
    """Sendable rows by zone set, most rows first."""

    window: Window
    zones: tuple[ZoneRows, ...]

    @property
    def unknown(self) -> int:
        return sum(z.rows for z in self.zones if not z.zones)


class ZoneCensus:
    """A PlanObserver that counts sendable rows by zone set and passes every call on."""

    def __init__(self, campaign: Campaign, inner: PlanObserver | None = None) -> None:
        assert campaign.sending.window is not None
        self.campaign = campaign
        self.window = campaign.sending.window
        self.inner = inner
        self.lookup = ZoneLookup(campaign.sending.fallback_timezone)
        self.counts: Counter[int] = Counter()

    @classmethod
    def watching(cls, campaign: Campaign, inner: PlanObserver | None) -> ZoneCensus | None:
        """A census of ``campaign``'s rows when its window is per recipient, else None."""
        return cls(campaign, inner) if per_recipient(campaign.sending.window) else None

    def recipient(self, recipient: Recipient) -> None:
        if recipient.status == "ok" and recipient.phone:
            self.counts[self.lookup.index(recipient.phone[1:])] += 1
        if self.inner is not None:
            self.inner.recipient(recipient)

    def recipients(self, rows: Iterable[Recipient]) -> None:
        if self.inner is not None:
            self.inner.recipients(self._counted(rows))
        else:
            for _ in self._counted(rows):
                pass

    def _counted(self, rows: Iterable[Recipient]) -> Iterator[Recipient]:
        index, counts = self.lookup.index, self.counts
        for r in rows:
            if r.status == "ok" and r.phone:
                counts[index(r.phone[1:])] += 1
            yield r

    def batch(self, batch: Batch) -> None:
        if self.inner is not None:
            self.inner.batch(batch)

    def result(self) -> ZoneCounts:
        sets = self.lookup.sets
        # Most rows first; numbers with no known zone last.
        ordered = sorted(self.counts.items(),
                         key=lambda item: (not sets[item[0]], -item[1], sets[item[0]]))
        return ZoneCounts(self.window, tuple(ZoneRows(sets[z], n) for z, n in ordered))

    def diagnostics(self) -> list[Diagnostic]:
        """A warning for numbers that will stay pending for want of a known time zone."""
        unknown = self.result().unknown
        if not unknown:
            return []
        source = display_path(self.campaign.recipients.source)
        noun = "number has" if unknown == 1 else "numbers have"
        return [warning(f"{unknown:,} {noun} no known time zone for the recipient's send "
                        "window: they stay pending (set sending.fallback_timezone to send them)",
                        source, code="unknown-zone")]


def describe_zones(counts: ZoneCounts, now: datetime, *, limit: int = 12) -> list[str]:
    """Lines for the dry run: each zone set, its rows, and whether it is open or when it opens."""
    from runner.window import format_clock, format_wait
    from runner.zones import set_state

    lines = []
    width = max((len(label(z.zones)) for z in counts.zones[:limit]), default=0)
    for z in counts.zones[:limit]:
        state = set_state(counts.window, z.zones, now) if z.zones else None
        if state is None:
            when = "never (no known time zone: set sending.fallback_timezone)"
        elif state.open:
            when = "open now" + (f" (closes in {format_wait(state.closes_at - now)})"
                                 if state.closes_at is not None else "")
        elif state.opens_at is not None:
            local = state.opens_at.astimezone(ZoneInfo(z.zones[0]))
            when = (f"closed (opens in {format_wait(state.opens_at - now)}, at "
                    f"{format_clock(local.time())} {z.zones[0]})")
        else:
            when = "never open in all of its zones at once"
        rows = f"{z.rows:,} row" + ("" if z.rows == 1 else "s")
        lines.append(f"    {label(z.zones):<{width}}  {rows:>12}  {when}")
    rest = counts.zones[limit:]
    if rest:
        lines.append(f"    ... {len(rest):,} more zone sets, {sum(z.rows for z in rest):,} rows")
    return lines

