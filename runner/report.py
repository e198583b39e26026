"""The CSV delivery report and the run summary.

The report is written in one stream to a temporary file beside the final one, fsynced and moved
into place with ``os.replace``: a reader sees the old report or the new one, never half of one.
It is UTF-8 (no BOM), comma-separated, with CRLF line ends as RFC 4180 says (so a cell holding
a bare CR or LF is always quoted), and one row per source data row.

Spreadsheet formulas are neutralised. A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return would be run as a formula by Excel or LibreOffice, so it gets a leading
apostrophe, the convention spreadsheets themselves use for "text". Two details:

* a plain number (an optional sign, ASCII digits, an optional decimal part and exponent, nothing
  else) is left alone: ``+919812345678`` and ``-5`` cannot call anything, and the phone
  column is full of them;
* the rule looks past leading apostrophes, so a cell that already starts with one (``'=x``) gets
  one more and ``read_report`` gives back exactly what was written: escaping is reversible.

Phones written with spaces or dashes (``+91 98123 45678``, the raw text of an invalid row) do get
the apostrophe: a spreadsheet would parse them as arithmetic.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from runner.errors import InputError, display_path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; leftovers are not cleaned up there
    fcntl = None  # type: ignore[assignment]

REPORT_COLUMNS: tuple[str, ...] = (
    "row", "phone", "status", "message_id", "batch_id", "error_code", "error", "attempts",
    "sent_at",
)
# After the fixed columns: what the send bills for a row, and what the dry run would send.
SENT_COLUMNS: tuple[str, ...] = ("parts",)
PREVIEW_COLUMNS: tuple[str, ...] = ("parts", "encoding", "text")
ReportStatus = Literal["sent", "failed", "unknown", "invalid", "duplicate", "suppressed",
                       "pending", "expired", "dry_run"]
# The order statuses are listed in, in summaries: what was sent first, then what was not.
STATUS_ORDER: tuple[str, ...] = ("sent", "failed", "unknown", "pending", "expired", "dry_run",
                                 "invalid", "duplicate", "suppressed")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ReportRow:
    row: int
    phone: str
    status: ReportStatus
    message_id: str = ""
    batch_id: str = ""
    error_code: str = ""
    error: str = ""
    attempts: int = 0
    sent_at: str = ""
    extra: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # e.g. delivery_status


# -- formula neutralisation ----------------------------------------------------------------------


def _is_formula_like(text: str) -> bool:
    bare = text.lstrip("'")
    if not bare.startswith(_FORMULA_START):
        return False
    digits = bare[1:]
    if bare[0] in "+-" and digits.isascii() and digits.isdigit():
        return False  # E.164 and signed integers, the common case, without the regex
    return _PLAIN_NUMBER.fullmatch(bare) is None


def neutralise(cell: str) -> str:
    """The cell as it is safe to put in a CSV that may be opened by a spreadsheet."""
    return "'" + cell if _is_formula_like(cell) else cell


def restore(cell: str) -> str:
    """Undo ``neutralise``: ``restore(neutralise(x)) == x`` for every string."""
    return cell[1:] if cell.startswith("'") and _is_formula_like(cell) else cell


# -- writing -------------------------------------------------------------------------------------


_RISKY_FIRST = frozenset("=+-@\t\r'")  # cells starting otherwise never need the check


def _cells(r: ReportRow, extra_columns: Sequence[str]) -> list[str]:
    cells = [str(r.row), r.phone, r.status, r.message_id, r.batch_id, r.error_code, r.error,
             str(r.attempts), r.sent_at]
    # Columns the caller did not declare are not written: the header is fixed before streaming.
    cells.extend(r.extra.get(name, "") for name in extra_columns)
    # Most cells are empty or plain words: test the first character before the full rule.
    return [neutralise(c) if c[:1] in _RISKY_FIRST else c for c in cells]


def unsent_cells(row: int, phone: str, status: str, *, batch_id: str = "", error: str = "",
                 blank_extra: tuple[str, ...] = ()) -> tuple[object, ...]:
    """The cells of a row with no answer to report (dry run, invalid, pending, ...)."""
    if phone[:1] in _RISKY_FIRST:
        phone = neutralise(phone)
    if error[:1] in _RISKY_FIRST:
        error = neutralise(error)
    return (row, phone, status, "", batch_id, "", error, 0, "", *blank_extra)


class LineFormatter:
    """Report rows as CSV text one line at a time, exactly as ReportWriter writes them: for
    lines made early and merged into a report later."""

    def __init__(self, extra_columns: Sequence[str] = ()) -> None:
        self._extra = tuple(extra_columns)
        self._blank_extra = ("",) * len(self._extra)
        self._text = ""
        self._writer = csv.writer(self, lineterminator="\r\n")

    def write(self, text: str) -> None:  # the csv.writer's file: keeps the line just made
        self._text = text

    def unsent(self, row: int, phone: str, status: str, error: str = "",
               extra: tuple[str, ...] | None = None) -> str:
        """``extra``: the extra columns' cells (blank when not given)."""
        self._writer.writerow(unsent_cells(row, phone, status, error=error,
                                           blank_extra=self._blank_extra if extra is None
                                           else extra))
        return self._text

    def row(self, row: ReportRow) -> str:
        self._writer.writerow(_cells(row, self._extra))
        return self._text


def _open_temp(path: Path) -> tuple[Path, int]:
    """A new temporary file in the report's folder (same file system, so os.replace is atomic)."""
    folder = path.parent
    shown = display_path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise InputError(f"{display_path(path)}: cannot write the report: {shown} {what}")
    for _ in range(100):
        tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            # Owner only: a report holds phone numbers. Locked while written, so a later run
            # can tell the leftover of a killed writer (unlocked) from a live one.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"{display_path(path)}: cannot write the report in {shown}: "
                             f"{exc.strerror or exc}") from None
        _lock(fd)
        return tmp, fd
    raise InputError(f"{display_path(path)}: cannot create a temporary file in {shown}")


def _lock(fd: int) -> None:
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def is_locked(path: Path) -> bool:
    """Whether a live writer holds ``path`` (its temporary report); True whenever we cannot
    tell (no locks on this platform, a file we cannot open), so nothing live is removed."""
    if fcntl is None:
        return True  # cannot tell: leave it
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, so best effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ReportWriter:
    """Writes a report row by row; ``commit()`` moves it into place, anything else discards it.

    For producers that push rows as they learn them (the dry run writes while it checks);
    ``write_report`` is the same for an iterable.
    """

    def __init__(self, path: Path, extra_columns: Sequence[str] = ()) -> None:
        self.path = path
        self._extra = tuple(extra_columns)
        clash = set(self._extra) & set(REPORT_COLUMNS)
        if clash or len(set(self._extra)) != len(self._extra):
            raise ValueError(f"extra report columns must be new and distinct: {self._extra}")
        self._tmp, fd = _open_temp(path)
        self.counts: Counter[str] = Counter()
        try:
            self._handle = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except BaseException:  # a signal right now must not leave the file behind
            os.close(fd)
            self._tmp.unlink(missing_ok=True)
            raise
        self._writer = csv.writer(self._handle, lineterminator="\r\n")
        self._done = False
        self._blank_extra = ("",) * len(self._extra)
        self._guard(self._writer.writerow, REPORT_COLUMNS + self._extra)

    @property
    def extra_columns(self) -> tuple[str, ...]:
        return self._extra

    def write(self, row: ReportRow) -> None:
        self._guard(self._writer.writerow, _cells(row, self._extra))
        self.counts[row.status] += 1

    def write_unsent(self, row: int, phone: str, status: str, *, batch_id: str = "",
                     error: str = "") -> None:
        """A row with no answer to report (dry run, invalid, ...): ``write`` without the record,
        for the dry run's million-row path."""
        try:
            self._writer.writerow(unsent_cells(row, phone, status, batch_id=batch_id, error=error,
                                               blank_extra=self._blank_extra))
        except OSError as exc:
            self.discard()
            raise InputError(f"{display_path(self.path)}: cannot write the report: "
                             f"{exc.strerror or exc}") from None
        self.counts[status] += 1

    def write_planned(self, rows: Sequence[tuple[int, str]], status: str, batch_id: str,
                      extra: str | None = None) -> None:
        """Rows put in a batch and not sent (the dry run), each ``(row, e164)``, in one write.

        E.164 numbers, statuses and batch ids never need quoting or neutralising, so these lines
        skip the csv module: at a million rows that is a second saved. ``extra``: the extra
        columns' cells, formatted (each after a comma), the same for every row; blank if None.
        """
        suffix = extra if extra is not None else "," * len(self._extra)
        tail = f",{status},,{batch_id},,,0,{suffix}\r\n"
        self._guard(self._handle.write, "".join([f"{row},{phone}{tail}" for row, phone in rows]))
        self.counts[status] += len(rows)

    def write_text(self, text: str, counts: Mapping[str, int]) -> None:
        """Lines already formatted as the other writes would (LineFormatter, or E.164 rows as
        write_planned makes them), and the statuses they add to the counts."""
        self._guard(self._handle.write, text)
        self.counts.update(counts)

    def commit(self) -> Counter[str]:
        def finish() -> None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self._tmp, self.path)

        self._guard(finish)
        self._done = True
        _fsync_folder(self.path.parent)
        return self.counts

    def discard(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def _guard(self, action: Callable[..., object], *args: object) -> None:
        try:
            action(*args)
        except OSError as exc:
            self.discard()
            raise InputError(f"{display_path(self.path)}: cannot write the report: "
                             f"{exc.strerror or exc}") from None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()  # a no-op after commit()


def write_report(path: Path, rows: Iterable[ReportRow],
                 extra_columns: Sequence[str] = ()) -> Counter[str]:
    """Stream ``rows`` to ``path`` atomically; return the count of rows by status."""
    with ReportWriter(path, extra_columns) as writer:
        for r in rows:
            writer.write(r)
        return writer.commit()


# -- reading -------------------------------------------------------------------------------------


def format_count(n: int) -> str:
    return f"{n:,}"


def format_duration(seconds: float) -> str:
    """'0.4 s', '12.3 s', '2 min 5 s', '1 h 2 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def format_summary(counts: Mapping[str, int], *, requests: int, retries: int,
                   elapsed: float) -> str:
    """Two lines for stderr at the end of a run, e.g.::

        rows      2,345: 2,200 sent, 40 invalid, 60 duplicate, 45 suppressed
        requests  23 (1 retry) in 3.2 s: 7.2 a second
    """
    ordered = [s for s in STATUS_ORDER if counts.get(s, 0)]
    ordered += sorted(s for s in counts if s not in STATUS_ORDER and counts[s])
    total = sum(counts.values())
    parts = ", ".join(f"{format_count(counts[s])} {s.replace('_', ' ')}" for s in ordered)
    rows_line = f"rows      {format_count(total)}" + (f": {parts}" if parts else "")
    retry_word = "retry" if retries == 1 else "retries"
    req_line = (f"requests  {format_count(requests)} ({format_count(retries)} {retry_word}) "
                f"in {format_duration(max(elapsed, 0.0))}")
    if elapsed > 0 and math.isfinite(elapsed) and requests:
        req_line += f": {requests / elapsed:,.1f} a second"
    return f"{rows_line}\n{req_line}"
