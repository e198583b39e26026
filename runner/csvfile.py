"""Reading CSV files the way users write them: encodings, delimiters, headers, broken rows.

Files are read in the campaign's ``recipients.encoding`` (default UTF-8, read as ``utf-8-sig`` so
a BOM is fine; ``cp1252``, ``latin-1``, ``utf-16`` and any other Python codec name work too) with
``errors="surrogateescape"``: a byte the encoding cannot decode becomes a lone surrogate, so one bad
row is reported (``record_problem``) and the rest of the file is still read. When such bytes read
as Windows-1252 text (an Excel export: ``Jos\xe9``), the message names the setting that fixes it.
The delimiter (``,``, ``;`` or tab) is sniffed from the header line, outside quotes. Problems with
a whole file (missing, a folder, empty, UTF-16 read as UTF-8, binary, an undecodable header) come
back as a ``Diagnostic`` instead of an open file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import Diagnostic, error, quote, warning

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = [
    "DEFAULT_ENCODING",
    "SURROGATE",
    "OpenedCsv",
    "blank",
    "check_bytes",
    "clean_cell",
    "codec_problem",
    "csv_problem",
    "open_csv",
    "open_text",
    "plain_ascii",
    "record_problem",
    "sniff_delimiter",
]

_SNIFF_BYTES = 8192
_DELIMITERS = (",", ";", "\t")
SURROGATE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a non-UTF-8 byte
_QUOTED = re.compile(r'"[^"]*"')
DEFAULT_ENCODING = "utf-8"
# Undecodable bytes that read as these in Windows-1252 are most likely an Excel/Windows export.
_CP1252_TEXT = re.compile(r"[\w\u2018\u2019\u201c\u201d\u2013\u2014\u20ac\u2026\xa0-\xbf]+")


def codec_problem(encoding: str) -> str | None:
    """Why ``encoding`` cannot read CSVs (unknown, or not text), or None."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        return (f"unknown encoding '{encoding}' (Python codec names such as utf-8, cp1252, "
                "latin-1, utf-16)")
    if not getattr(info, "_is_text_encoding", True):
        return f"encoding '{encoding}' is not a text encoding"
    return None


def _python_codec(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def _wide(encoding: str) -> bool:
    """UTF-16/32: NUL bytes and a BOM are part of the text, not signs of a binary file."""
    return _python_codec(encoding).startswith(("utf-16", "utf-32"))


def open_text(path: Path, encoding: str = DEFAULT_ENCODING) -> io.TextIOWrapper:
    """``path`` opened for the csv module in ``encoding``, undecodable bytes as surrogates."""
    return open(path, encoding=_python_codec(encoding), errors="surrogateescape",
                newline="")


def _undecodable(text: str, at: int, encoding: str) -> str:
    """What to say about the undecodable byte at ``text[at]``: the byte, and what to do."""
    byte = ord(text[at]) - 0xDC00
    if _python_codec(encoding) != "utf-8-sig":
        return f"not {encoding} (byte 0x{byte:02x}): check recipients.encoding"
    said = f"not UTF-8 (byte 0x{byte:02x})"
    # Read as Windows-1252, do the bytes beyond ASCII make letters and quotes? Then say so.
    try:
        as_cp1252 = text.encode("utf-8", "surrogateescape").decode("cp1252")
    except UnicodeDecodeError:  # bytes that Windows-1252 leaves undefined
        as_cp1252 = ""
    wide = [c for c in as_cp1252 if not c.isascii()]
    if wide and all(_CP1252_TEXT.fullmatch(c) for c in wide):
        sample = re.search(r"\S*[^\x00-\x7f]\S*", as_cp1252)
        shown = f" ('{sample.group()[:30]}')" if sample else ""
        return (f"{said}; it reads as Windows-1252{shown}: set recipients.encoding: cp1252 "
                "in the campaign, or save the file as UTF-8")
    return f"{said}: save the file as UTF-8, or set recipients.encoding"


def blank(rec: list[str]) -> bool:
    return all(not cell.strip() for cell in rec)


def record_problem(rec: list[str], ncols: int, start: int, end: int,
                   encoding: str = DEFAULT_ENCODING) -> str | None:
    """Why a record cannot be read as a row, or None when it can."""
    text = "\x1f".join(rec)  # not a newline: newlines inside fields count lines below
    bad = SURROGATE.search(text)
    if bad is not None:
        line = start + text.count("\n", 0, bad.start())
        return f"line {line} is {_undecodable(text, bad.start(), encoding)}"
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
    encoding: str = DEFAULT_ENCODING  # as the campaign names it

    def bytes_read(self) -> int | None:
        """How far into the file the reader is, to within a read-ahead chunk."""
        buffer: Any = self.file.buffer
        try:
            return int(buffer.tell())
        except (AttributeError, OSError, ValueError):
            return None


class HashingReader(io.RawIOBase):
    """A file read through a digest: what was read can be proved to be what was checked."""

    def __init__(self, path: Path, digest: hashlib._Hash) -> None:
        self._raw = io.FileIO(path, "r")
        self.digest = digest

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.digest.update(memoryview(buffer)[:n])
        return n or 0

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_csv(path: Path, shown: str, *, what: str, encoding: str = DEFAULT_ENCODING,
             digest: hashlib._Hash | None = None) -> OpenedCsv | Diagnostic:
    """Open a CSV and read its header, or say what is wrong with the file; ``digest``, when
    given, sees every byte read."""
    problem = check_bytes(path, shown, what, encoding)
    if problem is not None:
        return problem
    if digest is None:
        f = open_text(path, encoding)
    else:
        f = io.TextIOWrapper(io.BufferedReader(HashingReader(path, digest)),
                             encoding=_python_codec(encoding), errors="surrogateescape",
                             newline="")
    try:
        opened = _read_header(f, shown, encoding)
    except BaseException:
        f.close()
        raise
    if isinstance(opened, Diagnostic):
        f.close()
    return opened


def plain_ascii(path: Path) -> bool:
    """True when the file is ASCII without NULs: then no row can hold undecodable bytes.

    (In an ASCII-compatible encoding; a UTF-16 file always holds NULs, so is never plain.)"""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                if not chunk.isascii() or b"\x00" in chunk:
                    return False
    except OSError:
        return False
    return True


def check_bytes(path: Path, shown: str, what: str,
                encoding: str = DEFAULT_ENCODING) -> Diagnostic | None:
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
    if not head.strip(b" \t\r\n\xef\xbb\xbf\xff\xfe\x00"):
        return error(f"{shown} is empty", shown, 1, code="csv-empty")
    if _wide(encoding):
        return None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return error(f"{shown} is UTF-16: set recipients.encoding: utf-16 in the campaign, or "
                     "save it as UTF-8 (CSV UTF-8)", shown, 1, code="csv-encoding")
    if b"\x00" in head:
        return error(f"{shown} is not a CSV file (it holds binary data); export it as CSV UTF-8",
                     shown, 1, code="csv-binary")
    return None


def _read_header(f: io.TextIOWrapper, shown: str, encoding: str) -> OpenedCsv | Diagnostic:
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
    bad = SURROGATE.search(text)
    if bad is not None:
        problem = _undecodable(text, bad.start(), encoding)
        return error(f"{shown}: the header (line {at}) is {problem}", shown, at,
                     code="csv-encoding")
    columns = tuple(c.strip() for c in header)
    return OpenedCsv(f, reader, columns, at, tuple(_header_warnings(columns, shown, at)),
                   os.fstat(f.fileno()).st_size, encoding)


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
            yield warning(f"column {quote(name)} appears twice (columns {seen[name]} and {i}); "
                          "placeholders see the last", shown, line, i, field=name,
                          code="duplicate-column")
        else:
            seen[name] = i
