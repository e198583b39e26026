"""Reading CSV files the way users write them: encodings, delimiters, headers, broken rows.

Files are read as ``utf-8-sig`` with ``errors="surrogateescape"``: a byte that is not UTF-8
becomes a lone surrogate, so one bad row is reported (``record_problem``) and the rest of the file
is still read. The delimiter (``,``, ``;`` or tab) is sniffed from the header line, outside quotes.
Problems with a whole file (missing, a folder, empty, UTF-16, binary, a header that is not UTF-8)
come back as a ``Diagnostic`` instead of an open file.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import Diagnostic, error, warning

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = [
    "SURROGATE",
    "OpenedCsv",
    "blank",
    "check_bytes",
    "clean_cell",
    "csv_problem",
    "open_csv",
    "plain_ascii",
    "record_problem",
    "sniff_delimiter",
]

_SNIFF_BYTES = 8192
_DELIMITERS = (",", ";", "\t")
SURROGATE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a non-UTF-8 byte
_QUOTED = re.compile(r'"[^"]*"')


def blank(rec: list[str]) -> bool:
    return all(not cell.strip() for cell in rec)


def record_problem(rec: list[str], ncols: int, start: int, end: int) -> str | None:
    """Why a record cannot be read as a row, or None when it can."""
    text = "\x1f".join(rec)  # not a newline: newlines inside fields count lines below
    bad = SURROGATE.search(text)
    if bad is not None:
        line = start + text.count("\n", 0, bad.start())
        byte = ord(bad.group()) - 0xDC00
        return f"line {line} is not UTF-8 (byte 0x{byte:02x}): save the file as UTF-8"
    if "\x00" in text:
        return f"line {start} holds a NUL byte: is this a binary file?"
    if len(rec) != ncols:
        span = f" (lines {start}-{end}: an unclosed quote?)" if end > start else ""
        fields = "1 field" if len(rec) == 1 else f"{len(rec)} fields"
        return f"row has {fields}, the header has {ncols}{span}"
    return None


def csv_problem(exc: csv.Error, start: int, end: int) -> str:
    where = f"lines {start}-{end}" if end > start else f"line {start}"
    if "field larger than field limit" in str(exc):
        return (f"{where}: a field is longer than {csv.field_size_limit():,} characters "
                "(an unclosed quote?); the rest of that line was not read")
    return f"{where}: {exc}"


def clean_cell(cell: str) -> str:
    # Undecodable bytes come in as surrogates; show them as U+FFFD so reports stay UTF-8.
    if cell.isascii() or not SURROGATE.search(cell):
        return cell
    return cell.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class OpenedCsv:
    file: io.TextIOWrapper
    reader: CsvReader  # positioned after the header
    columns: tuple[str, ...]
    header_end: int  # the line the header ends on
    warnings: tuple[Diagnostic, ...]
    size: int  # bytes in the file

    def bytes_read(self) -> int | None:
        """How far into the file the reader is, to within a read-ahead chunk."""
        buffer: Any = self.file.buffer
        try:
            return int(buffer.tell())
        except (AttributeError, OSError, ValueError):
            return None


def open_csv(path: Path, shown: str, *, what: str) -> OpenedCsv | Diagnostic:
    """Open a CSV and read its header, or say what is wrong with the file."""
    problem = check_bytes(path, shown, what)
    if problem is not None:
        return problem
    f = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115
    try:
        opened = _read_header(f, shown)
    except BaseException:
        f.close()
        raise
    if isinstance(opened, Diagnostic):
        f.close()
    return opened


def plain_ascii(path: Path) -> bool:
    """True when the file is ASCII without NULs: then no row can hold undecodable bytes."""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                if not chunk.isascii() or b"\x00" in chunk:
                    return False
    except OSError:
        return False
    return True


def check_bytes(path: Path, shown: str, what: str) -> Diagnostic | None:
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except FileNotFoundError:
        return error(f"{what} not found: {shown}", shown, code="file-missing")
    except IsADirectoryError:
        return error(f"{what} {shown} is a folder, not a CSV file", shown, code="file-missing")
    except OSError as exc:
        return error(f"cannot read {what} {shown}: {exc.strerror}", shown,
                     code="file-unreadable")
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        return error(f"{shown} is empty", shown, 1, code="csv-empty")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return error(f"{shown} is UTF-16: save it as UTF-8 (CSV UTF-8)", shown, 1,
                     code="csv-encoding")
    if b"\x00" in head:
        return error(f"{shown} is not a CSV file (it holds binary data); export it as CSV UTF-8",
                     shown, 1, code="csv-binary")
    return None


def _read_header(f: io.TextIOWrapper, shown: str) -> OpenedCsv | Diagnostic:
    skipped: list[str] = []
    line = f.readline()
    while line and not line.strip():  # blank lines before the header
        skipped.append(line)
        line = f.readline()
    delimiter = sniff_delimiter(line)
    reader = csv.reader(itertools.chain(skipped, [line], f), delimiter=delimiter)
    header: list[str] = []
    try:
        while not header or blank(header):
            header = next(reader)
    except StopIteration:
        return error(f"{shown} is empty", shown, 1, code="csv-empty")
    except csv.Error as exc:
        return error(f"{shown}: cannot read the header: {exc}", shown, reader.line_num,
                     code="csv-header")
    at = reader.line_num
    text = "".join(header)
    if SURROGATE.search(text):
        return error(f"{shown}: the header (line {at}) is not UTF-8; save the file as UTF-8",
                     shown, at, code="csv-encoding")
    columns = tuple(c.strip() for c in header)
    return OpenedCsv(f, reader, columns, at, tuple(_header_warnings(columns, shown, at)),
                   os.fstat(f.fileno()).st_size)


def sniff_delimiter(line: str) -> str:
    # Count candidates outside quotes; ties and a single column fall back to a comma.
    bare = _QUOTED.sub("", line)
    counts = [(bare.count(d), -i, d) for i, d in enumerate(_DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] > 0 else ","


def _header_warnings(columns: tuple[str, ...], shown: str, line: int) -> Iterator[Diagnostic]:
    seen: dict[str, int] = {}
    for i, name in enumerate(columns, 1):
        if name in seen:
            yield warning(f"column '{name}' appears twice (columns {seen[name]} and {i}); "
                          "placeholders see the last", shown, line, i, field=name,
                          code="duplicate-column")
        else:
            seen[name] = i
