"""Reading a delivery report back (`campaign status`, `campaign report`, tests): its cells as
written, formula escapes undone, with a clear error naming the file and line for anything that
is not a report."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from runner.errors import InputError, display_path
from runner.report import REPORT_COLUMNS, restore


def read_report(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a report as dicts by column, with neutralised cells restored.

    A missing or unreadable file, or one that is not a report, raises InputError at once
    (naming the file); bad encoding or a row with the wrong number of cells raises InputError
    naming the line while iterating.
    """
    header = _read_header(path)
    return _read_rows(path, header)


_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


def _check_text(path: Path, line: int, cells: list[str]) -> None:
    if any(_UNDECODED.search(c) for c in cells):
        raise InputError(f"{display_path(path)}:{line}: not UTF-8 text")


def _open_for_reading(path: Path) -> TextIO:
    # surrogateescape defers bad bytes to the row that holds them, so errors can name the line.
    try:
        return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise InputError(f"{display_path(path)}: cannot read the report: "
                         f"{exc.strerror or exc}") from None


def _read_header(path: Path) -> list[str]:
    shown = display_path(path)
    with _open_for_reading(path) as handle:
        try:
            header = next(csv.reader(handle), None)
        except csv.Error:
            header = None
    if header is None:
        raise InputError(f"{shown}:1: not a delivery report: no header row")
    _check_text(path, 1, header)
    missing = [c for c in REPORT_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{shown}:1: not a delivery report: missing column(s) "
                         f"{', '.join(missing)}")
    return header


def _read_rows(path: Path, header: list[str]) -> Iterator[dict[str, str]]:
    shown = display_path(path)
    with _open_for_reading(path) as handle:
        reader = csv.reader(handle)
        try:
            next(reader)  # the header, checked already
            for cells in reader:
                if len(cells) != len(header):
                    raise InputError(f"{shown}:{reader.line_num}: {len(cells)} cells where the "
                                     f"header has {len(header)}")
                _check_text(path, reader.line_num, cells)
                yield {name: restore(cell) for name, cell in zip(header, cells, strict=True)}
        except csv.Error as exc:
            raise InputError(f"{shown}:{reader.line_num}: malformed CSV: {exc}") from None


def read_report_cells(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header, and each row as ``(line, cells)`` with cells as written (not restored), for a
    pass that reads a few columns of a million rows: ``restore`` only the cells it shows.

    The same checks as ``read_report``: the header at once, bad encoding and ragged rows while
    iterating, each an InputError naming the file and line.
    """
    header = _read_header(path)
    return header, _read_cells(path, len(header))


def _read_cells(path: Path, width: int) -> Iterator[tuple[int, list[str]]]:
    shown = display_path(path)
    with _open_for_reading(path) as handle:
        reader = csv.reader(handle)
        try:
            next(reader)
            for cells in reader:
                if len(cells) != width:
                    raise InputError(f"{shown}:{reader.line_num}: {len(cells)} cells where the "
                                     f"header has {width}")
                if _UNDECODED.search(",".join(cells)):  # one search a row, not one a cell
                    raise InputError(f"{shown}:{reader.line_num}: not UTF-8 text")
                yield reader.line_num, cells
        except csv.Error as exc:
            raise InputError(f"{shown}:{reader.line_num}: malformed CSV: {exc}") from None


# -- the summary ---------------------------------------------------------------------------------
