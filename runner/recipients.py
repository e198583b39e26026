"""Streaming recipient rows: CSV reading, phone normalisation, dedup and suppression.

``open_recipients(spec)`` gives a ``RecipientStream``; iterating it reads the CSV one record at a
time and yields one ``Recipient`` per data row, in source order, each with a status:

- ``invalid``: the row has more or fewer fields than the header, holds bytes that are not UTF-8
  or a NUL, or its number is not valid (``reason`` says which, in words);
- ``duplicate``: an earlier row has the same number once normalised (the first row wins);
- ``suppressed``: the first row of a number that is on a suppression list;
- ``ok``: to be sent.

The file is read by ``runner.csvfile`` (``utf-8-sig``, the delimiter sniffed from the header
line, undecodable bytes kept to the row they spoil). ``row`` is the line where a record starts
(the header is line 1; quoted fields may span lines). Blank lines are not data rows, nor are
rows whose cells are all empty.

Problems with a file as a whole (missing, empty, binary, no phone column, no data rows) are
error ``Diagnostic``s in ``stream.diagnostics`` and the stream yields nothing. The first
``MAX_ROW_DIAGNOSTICS`` invalid rows also get a warning each, then one line with the rest's count.

Memory stays flat: rows are never kept; numbers seen are held as integers (E.164 digits) in
``runner.dedup.FirstRows``, an open-addressing table over two flat arrays, not a dict of strings.
Suppression lists are read by ``runner.suppression``.
"""

from __future__ import annotations

import csv
import difflib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from runner.csvfile import (
    OpenedCsv,
    blank,
    clean_cell,
    csv_problem,
    open_csv,
    plain_ascii,
    record_problem,
)
from runner.dedup import GOLDEN, FirstRows
from runner.errors import Diagnostic, display_path, error, warning
from runner.model import RecipientsSpec
from runner.phones import explain, normaliser
from runner.suppression import Suppression, load_suppression

__all__ = [
    "MAX_ROW_DIAGNOSTICS",
    "Recipient",
    "RecipientStats",
    "RecipientStream",
    "RowStatus",
    "open_recipients",
    "read_columns",
    "stats_diagnostics",
]

RowStatus = Literal["ok", "invalid", "duplicate", "suppressed"]
MAX_ROW_DIAGNOSTICS = 20  # per-row warnings before a summary line
FIRST_INVALID_KEPT = 5  # invalid line numbers quoted in the stats
_LONG_RECORD = 3  # a record running over more lines than this gets a warning


@dataclass(frozen=True, slots=True)
class Recipient:
    row: int  # line number where the record starts in the source CSV
    raw_phone: str  # the cell as written
    phone: str | None  # E.164 ("+919812345678") when valid, else None
    status: RowStatus
    fields: Mapping[str, str]  # the CSV record by column name (for placeholders)
    reason: str = ""  # why invalid / suppressed / duplicate (human words)


def _recipient_factory() -> Callable[..., Recipient]:
    # Recipient(...) sets each field through the frozen guard's generic setattr; setting the
    # slots directly builds the same object in half the time, which shows at a million rows.
    setters = [Recipient.__dict__[name].__set__
               for name in ("row", "raw_phone", "phone", "status", "fields", "reason")]
    s_row, s_raw, s_phone, s_status, s_fields, s_reason = setters
    new = object.__new__

    def make(row: int, raw_phone: str, phone: str | None, status: RowStatus,
             fields: Mapping[str, str], reason: str = "") -> Recipient:
        made: Recipient = new(Recipient)
        s_row(made, row)
        s_raw(made, raw_phone)
        s_phone(made, phone)
        s_status(made, status)
        s_fields(made, fields)
        s_reason(made, reason)
        return made

    return make


_recipient = _recipient_factory()
NO_FIELDS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RecipientStats:
    total: int = 0
    ok: int = 0
    invalid: int = 0
    duplicate: int = 0
    suppressed: int = 0
    first_invalid_rows: tuple[int, ...] = ()  # the first few invalid rows' line numbers

    @property
    def by_status(self) -> dict[str, int]:
        return {"ok": self.ok, "invalid": self.invalid, "duplicate": self.duplicate,
                "suppressed": self.suppressed}

    @property
    def invalid_ratio(self) -> float:
        return self.invalid / self.total if self.total else 0.0


def open_recipients(spec: RecipientsSpec, *, display_root: Path | None = None,
                    with_fields: bool = True) -> RecipientStream:
    """A stream over the recipients of ``spec``; nothing is read until it is iterated.

    ``with_fields=False`` leaves ``Recipient.fields`` empty: only placeholders need the other
    columns, and building a dict per row costs a tenth of the pass.
    """
    return RecipientStream(spec, display_root=display_root, with_fields=with_fields)


def read_columns(spec: RecipientsSpec) -> tuple[tuple[str, ...], list[Diagnostic]]:
    """The header of the recipients CSV, and what is wrong with the file as a whole.

    Cheap: reads the first lines only. Reports a file that is missing, empty, binary or not
    UTF-8, and header warnings (duplicate column names). It does not judge the phone column
    (the caller knows where that setting lives) nor whether data rows follow.
    """
    shown = display_path(spec.source)
    opened = open_csv(spec.source, shown, what="recipients file")
    if isinstance(opened, Diagnostic):
        return (), [opened]
    with opened.file:
        return opened.columns, list(opened.warnings)


def stats_diagnostics(stats: RecipientStats, spec: RecipientsSpec,
                      source_display: str) -> list[Diagnostic]:
    """The campaign-level verdict on the recipients once the stream has been read."""
    if stats.total == 0:
        return []  # the stream already said why (empty file, no data rows)
    if stats.ok == 0:
        return [error(f"no recipients left to send to: {_breakdown(stats)}", source_display,
                      field="recipients.source", code="no-recipients")]
    if stats.invalid == 0:
        return []
    lines = ", ".join(str(n) for n in stats.first_invalid_rows)
    more = ", ..." if stats.invalid > len(stats.first_invalid_rows) else ""
    share = f"{stats.invalid:,} of {stats.total:,} rows are invalid ({stats.invalid_ratio:.1%})"
    if stats.invalid_ratio > spec.max_invalid_ratio:
        return [error(f"{share}, above max_invalid_ratio {spec.max_invalid_ratio:.0%} "
                      f"(lines {lines}{more})", source_display,
                      field="recipients.max_invalid_ratio", code="too-many-invalid")]
    return [warning(f"{share}: they will be skipped (lines {lines}{more})", source_display,
                    code="invalid-rows")]


def _breakdown(stats: RecipientStats) -> str:
    parts = [f"{stats.total:,} rows"]
    for label, count in (("invalid", stats.invalid), ("duplicate", stats.duplicate),
                         ("suppressed", stats.suppressed)):
        if count:
            parts.append(f"{count:,} {label}")
    return ", ".join(parts)


class RecipientStream:
    """Iterating yields one Recipient per data row, in order, streaming (see the module doc)."""

    def __init__(self, spec: RecipientsSpec, *, display_root: Path | None = None,
                 with_fields: bool = True) -> None:
        self.spec = spec
        self.with_fields = with_fields
        self.display_root = display_root
        self.source_display = self._show(spec.source)
        self.columns: tuple[str, ...] = ()
        self.diagnostics: list[Diagnostic] = []
        self._counts = [0, 0, 0, 0]  # ok, invalid, duplicate, suppressed
        self._first_invalid: list[int] = []
        self._long_records = 0

    @property
    def stats(self) -> RecipientStats:
        ok, invalid, duplicate, suppressed = self._counts
        return RecipientStats(ok + invalid + duplicate + suppressed, ok, invalid, duplicate,
                              suppressed, tuple(self._first_invalid))

    def _show(self, path: Path) -> str:
        if self.display_root is None:
            return display_path(path)
        return os.path.relpath(path, self.display_root)

    def __iter__(self) -> Iterator[Recipient]:
        self.diagnostics = []
        self._counts = [0, 0, 0, 0]
        self._first_invalid = []
        self._long_records = 0
        spec, shown = self.spec, self.source_display
        opened = open_csv(spec.source, shown, what="recipients file")
        if isinstance(opened, Diagnostic):
            self.diagnostics.append(opened)
            return
        with opened.file:
            self.columns = opened.columns
            if spec.phone_column not in opened.columns:
                self.diagnostics.append(_no_phone_column(spec.phone_column, opened.columns, shown))
                return
            suppression = self._load_suppression()
            if suppression is None:
                return
            yield from self._rows(opened, suppression)
        if sum(self._counts) == 0:
            self.diagnostics.append(error(f"{shown} has no data rows", shown, 1,
                                          field="recipients.source", code="csv-no-rows"))
        elif self._counts[1] > MAX_ROW_DIAGNOSTICS:
            rest = self._counts[1] - MAX_ROW_DIAGNOSTICS
            self.diagnostics.append(warning(f"{rest:,} more invalid rows (not shown)", shown,
                                            code="invalid-row"))

    def _load_suppression(self) -> Suppression | None:
        lists, found = load_suppression(self.spec, self._show)
        self.diagnostics += found
        return lists

    def _rows(self, opened: OpenedCsv, suppression: Suppression) -> Iterator[Recipient]:
        # The hot loop: everything it touches is a local.
        columns, ncols = opened.columns, len(opened.columns)
        phone_at = columns.index(self.spec.phone_column)
        country = self.spec.default_country
        to_e164 = normaliser(country)
        counts = self._counts
        seen = FirstRows()
        keys, rows, mask = seen.keys, seen.rows, seen.mask
        blocked = suppression.numbers
        reader = opened.reader
        prev_end = opened.header_end
        dirty = not plain_ascii(self.spec.source)
        with_fields = self.with_fields
        while True:
            try:
                for rec in reader:
                    start, prev_end = prev_end + 1, reader.line_num
                    # Only a file with bytes beyond ASCII (or a NUL) needs each row decoded-checked.
                    if len(rec) != ncols or (
                        dirty and (not (joined := "".join(rec)).isascii() or "\x00" in joined)
                    ):
                        if not rec or blank(rec):
                            continue
                        bad = record_problem(rec, ncols, start, prev_end)
                        if bad is not None:
                            counts[1] += 1
                            yield self._invalid(start, rec, columns, phone_at, bad, None)
                            continue
                    if prev_end != start:
                        bad = self._spanning(rec, start, prev_end)
                        if bad is not None:
                            counts[1] += 1
                            yield self._invalid(start, rec, columns, phone_at, bad, None)
                            continue
                    raw = rec[phone_at]
                    e164 = to_e164(raw)
                    if e164 is None:
                        if not raw.strip() and blank(rec):
                            continue
                        counts[1] += 1
                        yield self._invalid(start, rec, columns, phone_at, explain(raw, country),
                                            self.spec.phone_column)
                        continue
                    key = int(e164[1:])
                    fields = dict(zip(columns, rec, strict=False)) if with_fields else NO_FIELDS
                    # FirstRows.first_row, inlined.
                    slot = ((key * GOLDEN) >> 20) & mask
                    while True:
                        found = keys[slot]
                        if found == key or not found:
                            break
                        slot = (slot + 1) & mask
                    if found:
                        counts[2] += 1
                        yield _recipient(start, raw, e164, "duplicate", fields,
                                         f"same number as row {rows[slot]}")
                        continue
                    keys[slot] = key
                    rows[slot] = start
                    seen.size += 1
                    if seen.size * 2 > mask:
                        seen.grow(_expected_numbers(opened, sum(counts), seen.size))
                        keys, rows, mask = seen.keys, seen.rows, seen.mask
                    if key in blocked:
                        counts[3] += 1
                        yield _recipient(start, raw, e164, "suppressed", fields,
                                        f"on suppression list {suppression.name_of(key)}")
                    else:
                        counts[0] += 1
                        yield _recipient(start, raw, e164, "ok", fields)
                return
            except csv.Error as exc:
                # The reader drops the rest of the failing line and carries on with the next.
                start, prev_end = prev_end + 1, reader.line_num
                counts[1] += 1
                yield self._invalid(start, [], columns, phone_at,
                                    csv_problem(exc, start, prev_end), None)

    def _invalid(self, row: int, rec: list[str], columns: tuple[str, ...], phone_at: int,
                 reason: str, field: str | None) -> Recipient:
        cells = [clean_cell(cell) for cell in rec]
        raw = cells[phone_at] if phone_at < len(cells) else ""
        if len(self._first_invalid) < FIRST_INVALID_KEPT:
            self._first_invalid.append(row)
        if self._counts[1] <= MAX_ROW_DIAGNOSTICS:
            self.diagnostics.append(warning(f"{reason} (row skipped)", self.source_display, row,
                                            field=field, code="invalid-row"))
        return Recipient(row, raw, None, "invalid", dict(zip(columns, cells, strict=False)), reason)

    def _spanning(self, rec: list[str], start: int, end: int) -> str | None:
        """A record over several lines: legal, but it may be an unclosed quote eating rows."""
        if any(cell.endswith(("\n", "\r")) for cell in rec):
            # Only a quote left open to the end of the file leaves a field ending in a newline.
            return (f"a quoted field opened on line {start} is never closed: lines {start}-{end} "
                    "were read as this one row")
        if end - start >= _LONG_RECORD:
            self._long_records += 1
            if self._long_records <= 5:
                self.diagnostics.append(warning(
                    f"row {start} runs over lines {start}-{end} (a quoted field holds line "
                    "breaks): check for an unclosed quote", self.source_display, start,
                    code="csv-long-record"))
        return None


def _expected_numbers(opened: OpenedCsv, rows: int, distinct: int) -> int:
    """Distinct numbers the whole file will hold, guessed from how far we have read."""
    done = opened.bytes_read()
    if not done or opened.size <= done:
        return distinct
    return distinct + (opened.size - done) * max(rows, 1) // done


def _no_phone_column(name: str, columns: tuple[str, ...], shown: str) -> Diagnostic:
    listing = ", ".join(repr(c) for c in columns[:20]) + (", ..." if len(columns) > 20 else "")
    near = difflib.get_close_matches(name.lower(), [c.lower() for c in columns], n=1)
    hint = ""
    if near:
        actual = next(c for c in columns if c.lower() == near[0])
        hint = f" (did you mean '{actual}'?)"
    return error(f"{shown} has no column '{name}'{hint}; its columns are {listing}", shown, 1,
                 field="recipients.phone_column", code="no-phone-column")
