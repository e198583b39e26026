"""Suppression lists (``recipients.exclude``): numbers that must not be sent to.

A list is a CSV with the campaign's phone column (or one named ``phone``), or one number a line
with no header; entries are normalised like recipients, with the campaign's default country,
and kept as integers (E.164 digits) with the list each came from first. A 0-byte list, a list
with several columns but no phone column, or one where no entry is a valid number is an error
(more likely a failed export or the wrong file than "nobody opted out"); a few bad entries are
warnings, the first five quoted.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from runner.csvfile import SURROGATE, check_bytes, clean_cell, sniff_delimiter
from runner.errors import Diagnostic, error, warning
from runner.model import RecipientsSpec
from runner.phones import explain, normalise


class Suppression:
    """Numbers on the suppression lists, as integers, with the list each came from first."""

    def __init__(self) -> None:
        self.numbers: dict[int, int] = {}
        self.names: list[str] = []

    def name_of(self, key: int) -> str:
        return self.names[self.numbers[key]]


def load_suppression(spec: RecipientsSpec, show: Callable[[Path], str]
                     ) -> tuple[Suppression | None, list[Diagnostic]]:
    """Every list of ``spec.exclude``, in order; None (with the diagnostics) at the first error."""
    lists = Suppression()
    diagnostics: list[Diagnostic] = []
    for index, path in enumerate(spec.exclude):
        found = read_suppression(path, show(path), spec, lists, index)
        diagnostics += found
        if any(d.severity == "error" for d in found):
            return None, diagnostics
    return lists, diagnostics


def read_suppression(path: Path, shown: str, spec: RecipientsSpec, into: Suppression,
                     index: int) -> list[Diagnostic]:
    """Add one list's numbers; a CSV with the phone column, or one number a line."""
    into.names.append(shown)
    problem = check_bytes(path, shown, "suppression list")
    if problem is not None:
        if problem.message.endswith("is empty"):
            # A 0-byte list is more often a failed export than "nobody opted out": sending
            # would reach everyone who did. A list with only its header is fine.
            return [error(f"suppression list {shown} is empty (not even a header): if nobody "
                          "has opted out, give it just the header line 'phone', or remove it "
                          "from recipients.exclude", shown, code="suppression-empty")]
        return [problem]
    found: list[Diagnostic] = []
    bad = good = 0
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        try:
            for line, raw in _suppression_entries(f, spec.phone_column):
                e164 = normalise(raw, spec.default_country) if not SURROGATE.search(raw) else None
                if e164 is not None:
                    into.numbers.setdefault(int(e164[1:]), index)
                    good += 1
                    continue
                bad += 1
                if bad <= 5:
                    found.append(warning(f"{explain(clean_cell(raw), spec.default_country)} "
                                         "(entry ignored)", shown, line,
                                         code="suppression-entry"))
        except _NoPhoneColumn as exc:
            return [error(f"suppression list {shown} has no column {spec.phone_column!r} or "
                          f"'phone' (columns: {exc}): name its number column so, or give one "
                          "number a line with no header", shown, 1,
                          code="no-phone-column")]
    if bad and not good:
        # Nothing usable at all: more likely the wrong file or format than a list of typos.
        return [error(f"suppression list {shown}: none of its {bad:,} entries is a valid "
                      "number, so it would suppress nobody", shown,
                      code="suppression-unusable")]
    if bad > 5:
        found.append(warning(f"{bad - 5:,} more entries that are not valid numbers", shown,
                             code="suppression-entry"))
    return found


class _NoPhoneColumn(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def _suppression_entries(f: IO[str], column: str) -> Iterator[tuple[int, str]]:
    first = f.readline()
    delimiter = sniff_delimiter(first)
    names = [c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter), [])]
    wanted = next((n for n in (column.lower(), "phone") if n in names), None)
    if wanted is None and len(names) > 1:
        # Several columns but not ours: reading each line as a number would suppress nobody.
        raise _NoPhoneColumn(names)
    if wanted is None:
        # No header: every non-blank line is a number.
        for line, text in enumerate(itertools.chain([first], f), 1):
            if text.strip():
                yield line, text.strip()
        return
    at = names.index(wanted)
    reader = csv.reader(f, delimiter=delimiter)
    prev_end = 1
    for rec in reader:
        start, prev_end = prev_end + 1, reader.line_num + 1
        if at < len(rec) and rec[at].strip():
            yield start, rec[at]
