"""What the check pass finds, kept for what follows it, so that no run reads the CSV twice.

The check pass reads and normalises every row once (``runner.checker``). Two observers of that
pass keep what comes after it needs:

* ``DryRunReport`` writes the dry run's report during the pass itself;
* ``CheckedRows`` keeps what a real send needs: the sendable rows as (row, number) pairs
  (16 bytes a row) to plan from, and the finished report lines of the rows that will not be
  sent, spilled to a temporary file. The report at the end merges the two with the journal.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from array import array
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Container, Iterable, Iterator
from pathlib import Path
from typing import IO

from runner.compose import Composer
from runner.errors import InputError, display_path
from runner.message import Segments
from runner.model import Campaign
from runner.plan import Batch
from runner.preview import Preview
from runner.recipients import Recipient
from runner.report import PREVIEW_COLUMNS, SENT_COLUMNS, LineFormatter, ReportWriter


class DryRunReport:
    """Writes the dry-run report during the check pass: one read of the CSV, not two.

    Rows are written in source order as soon as their fate is known.

    With ``batch_size`` (a body without placeholders: one group, filled in row order) a
    sendable row's batch is known the moment it is read, the n-th going to batch n // size + 1,
    so every row is written at once and memory holds one batch at most. Otherwise (personalised
    texts, grouped by text) a row waits in a queue until the planner has put it in a batch, and
    the rows behind it wait too; the planner's bounded open groups keep that queue small.
    """

    def __init__(self, writer: ReportWriter, *, batch_size: int | None = None,
                 preview: Preview | None = None, fixed_text: str | None = None) -> None:
        """``preview`` fills the writer's PREVIEW_COLUMNS; ``fixed_text`` is the one text of
        a body without placeholders (with ``batch_size``)."""
        self.writer = writer
        self._size = batch_size
        self._preview = preview
        self._fixed_cells = (preview.cells(fixed_text) if preview is not None
                             else "," * len(writer.extra_columns))
        self._waiting: deque[Recipient] = deque()  # general: rows behind an unplanned one
        self._batch_of: dict[int, tuple[str, str | None]] = {}  # row -> batch id, its cells
        # In row order: finished lines, written a few thousand at a time, and their statuses.
        self._lines: list[str] = []
        self._counts: Counter[str] = Counter()
        self._sendable = 0  # in row order: sendable rows read
        self._batched = 0  # in row order: rows in the batches a planner reported

    @classmethod
    def for_campaign(cls, campaign: Campaign, report: Path) -> DryRunReport:
        """The dry run's report of ``campaign`` at ``report``, with its preview columns."""
        composer = Composer.for_campaign(campaign)
        size = None if composer.personalised else campaign.effective_batch_size
        return cls(ReportWriter(report, PREVIEW_COLUMNS), batch_size=size,
                   preview=Preview(composer.segments), fixed_text=composer.fixed_text)

    def recipient(self, recipient: Recipient) -> None:
        if self._size is not None:
            self.recipients((recipient,))
        elif self._waiting or recipient.status == "ok":
            self._waiting.append(recipient)
        else:
            self._write(recipient, ("", None))

    def recipients(self, rows: Iterable[Recipient]) -> None:
        """``recipient`` for every row of a stream; with ``batch_size``, one loop with its state
        in locals, as it runs a million times for a million rows."""
        if self._size is None:
            for r in rows:
                self.recipient(r)
            return
        size, lines, counts = self._size, self._lines, self._counts
        unsent = LineFormatter(self.writer.extra_columns).unsent
        sendable, cells = self._sendable, self._fixed_cells
        tail = f",dry_run,,{_batch_id(sendable // size + 1)},,,0,{cells}\r\n"
        for r in rows:
            if r.status == "ok" and r.phone:
                if sendable % size == 0:  # the first row of the next batch
                    tail = f",dry_run,,{_batch_id(sendable // size + 1)},,,0,{cells}\r\n"
                sendable += 1
                # An E.164 number and a batch id never need quoting or neutralising.
                lines.append(f"{r.row},{r.phone}{tail}")
            else:
                lines.append(unsent(r.row, r.phone or r.raw_phone, r.status, r.reason))
                counts[r.status] += 1
            if len(lines) >= 4096:
                self._write_lines()
        self._sendable = sendable

    def _write_lines(self) -> None:
        self.writer.write_text("".join(self._lines), {})
        self._lines.clear()

    def batch(self, batch: Batch) -> None:
        if self._size is not None:  # only a planner would call: it must agree with the count
            self._batched += len(batch.rows)
            expected = _batch_id(-(-self._batched // self._size))
            if batch.id != expected or self._batched != self._sendable:
                raise RuntimeError(f"dry run: the planner made {batch.id} of {len(batch.rows)} "
                                   f"rows, not {expected} as counted")
            return
        cells = self._preview.cells(batch.body) if self._preview is not None else None
        mine = (batch.id, cells)
        for row in batch.rows:
            self._batch_of[row] = mine
        waiting, batch_of = self._waiting, self._batch_of
        planned: list[tuple[int, str]] = []  # consecutive rows of this batch, written at once
        while waiting and (waiting[0].status != "ok" or waiting[0].row in batch_of):
            head = waiting.popleft()
            if head.status == "ok" and batch_of[head.row][0] == batch.id and head.phone:
                del batch_of[head.row]
                planned.append((head.row, head.phone))
                continue
            self._flush(planned, batch.id, cells)
            self._write(head, batch_of.pop(head.row, ("", None)))
        self._flush(planned, batch.id, cells)

    def _flush(self, planned: list[tuple[int, str]], batch_id: str, cells: str | None) -> None:
        if planned:
            self.writer.write_planned(planned, "dry_run", batch_id, cells)
            planned.clear()

    def _write(self, r: Recipient, batch: tuple[str, str | None]) -> None:
        if r.status == "ok" and r.phone:
            self.writer.write_planned([(r.row, r.phone)], "dry_run", batch[0], batch[1])
        elif r.status == "ok":
            self.writer.write_unsent(r.row, r.raw_phone, "dry_run", batch_id=batch[0])
        else:
            self.writer.write_unsent(r.row, r.phone or r.raw_phone, r.status, error=r.reason)

    def commit(self) -> Counter[str]:
        if self._size is not None:
            self._counts["dry_run"] += self._sendable
            self._write_lines()
            self.writer.write_text("", self._counts)
        if self._waiting:  # every row waiting for the planner was planned by the end
            raise RuntimeError("dry run: some sendable rows were never planned")
        return self.writer.commit()


def _batch_id(seq: int) -> str:
    return f"b{seq:06d}"  # as plan_batches names the batches of a check


class CheckedRows:
    """The check pass's verdicts, kept for the send: sendable rows and the others' report lines.

    Sendable rows are (row, number) pairs in two int arrays: for a body without placeholders
    that is all the send needs to plan, so it does not read and normalise the CSV again. Rows
    not sent (invalid, duplicate, suppressed) have their final report line formatted now and
    spilled to a temporary file beside the report (``folder``: not the system's temp folder,
    which may be memory), so memory stays flat whatever their number.
    """

    def __init__(self, folder: Path | None = None, *,
                 segments: Callable[[str], Segments] | None = None) -> None:
        """``segments`` counts the parts of a planned batch's text (personalised texts)."""
        self._folder = folder
        self._rows = array("q")
        self._numbers = array("q")
        self._parts = array("H")  # by sendable row, filled only when batches are planned
        self._preview = Preview(segments) if segments is not None else Preview()
        self._unsent_rows = array("q")
        self._unsent_sizes = array("q")  # bytes of each line in the spill file
        try:
            self._spill: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115
        except OSError as exc:
            raise _spill_error(exc, folder) from None
        self._format = LineFormatter(SENT_COLUMNS)
        self.unsent_counts: Counter[str] = Counter()
        self._planned: IO[bytes] | None = None  # personalised: the batches the check planned
        self.source_sha256: str | None = None  # the source's bytes as the check read them

    @classmethod
    def for_campaign(cls, campaign: Campaign, folder: Path | None) -> CheckedRows:
        return cls(folder, segments=Composer.for_campaign(campaign).segments)

    def recipient(self, recipient: Recipient) -> None:
        if recipient.status == "ok" and recipient.phone is not None:
            self._rows.append(recipient.row)
            self._numbers.append(int(recipient.phone[1:]))  # E.164 never starts with +0
            return
        line = self._format.unsent(recipient.row, recipient.phone or recipient.raw_phone,
                                   recipient.status, recipient.reason).encode()
        try:
            self._spill.write(line)
        except OSError as exc:
            raise _spill_error(exc, self._folder) from None
        self._unsent_rows.append(recipient.row)
        self._unsent_sizes.append(len(line))
        self.unsent_counts[recipient.status] += 1

    def recipients(self, rows: Iterable[Recipient]) -> None:
        for r in rows:
            self.recipient(r)

    def batch(self, batch: Batch) -> None:
        """A batch the check planned (personalised texts): its rows' parts, for the report,
        and the batch itself kept for the send, which sends these, never what a second read
        of the CSV would find. One line a batch, in a file beside the report: memory holds one
        batch whatever the texts."""
        rows, parts = self._rows, self._parts
        if len(parts) < len(rows):
            parts.frombytes(bytes(parts.itemsize * (len(rows) - len(parts))))
        n = min(self._preview.parts(batch.body), 0xFFFF)
        for row in batch.rows:
            at = bisect_left(rows, row)
            if at < len(rows) and rows[at] == row:
                parts[at] = n
        record = json.dumps([batch.body, batch.rows, [int(n[1:]) for n in batch.numbers]],
                            separators=(",", ":")).encode() + b"\n"
        try:
            if self._planned is None:
                self._planned = tempfile.TemporaryFile(dir=self._folder)  # noqa: SIM115
            self._planned.write(record)
        except OSError as exc:
            raise _spill_error(exc, self._folder, _PLANNED) from None

    def sendable_parts(self, fixed: int) -> Iterator[int]:
        """The parts of each sendable row, in row order: as planned, else ``fixed``."""
        parts = self._parts
        known = len(parts)
        for index in range(len(self._rows)):
            yield (parts[index] or fixed) if index < known else fixed

    def planned_batches(self, *, skip: Container[int], id_prefix: str) -> Iterator[Batch]:
        """The batches the check planned, in its order, without the rows in ``skip``."""
        if self._planned is None:
            return
        seq = 0
        try:
            self._planned.flush()
            self._planned.seek(0)
            for line in self._planned:
                body, rows, numbers = json.loads(line)
                kept = [(row, n) for row, n in zip(rows, numbers, strict=True) if row not in skip]
                if kept:
                    seq += 1
                    yield Batch(f"{id_prefix}{seq:06d}", body, tuple(r for r, _ in kept),
                                tuple(f"+{n}" for _, n in kept))
        except OSError as exc:
            raise _spill_error(exc, self._folder, _PLANNED) from None

    def batches(self, *, size: int, body: str | None, skip: Container[int],
                id_prefix: str) -> Iterator[Batch]:
        """The batches ``plan_batches`` makes of these rows for a body without placeholders
        (one group, filled in row order), without a Recipient a row."""
        rows: list[int] = []
        numbers: list[str] = []
        seq = 0
        for row, number in zip(self._rows, self._numbers, strict=True):
            if row in skip:
                continue
            rows.append(row)
            numbers.append(f"+{number}")
            if len(rows) >= size:
                seq += 1
                yield Batch(f"{id_prefix}{seq:06d}", body, tuple(rows), tuple(numbers))
                rows.clear()
                numbers.clear()
        if rows:
            yield Batch(f"{id_prefix}{seq + 1:06d}", body, tuple(rows), tuple(numbers))

    def sendable_pairs(self) -> Iterator[tuple[int, int]]:
        """(row, number) for each sendable row, in row order."""
        return zip(self._rows, self._numbers, strict=True)

    def unsent_lines(self) -> Iterator[tuple[int, str]]:
        """(row, finished report line) for each row not sent, in row order."""
        spill = self._spill
        try:
            spill.flush()
            spill.seek(0)
            for row, size in zip(self._unsent_rows, self._unsent_sizes, strict=True):
                yield row, spill.read(size).decode()
        except OSError as exc:
            raise _spill_error(exc, self._folder) from None

    # -- kept for a rerun of the same bytes (runner.checkcache) ---------------------------------

    def describe(self) -> dict[str, object]:
        """What ``load`` needs besides the bytes ``dump`` writes: sizes, counts, the digest."""
        files = [self._spill, self._planned]
        return {"arrays": [len(a) for a in self._arrays()],
                "files": [_size(f) if f is not None else -1 for f in files],
                "unsent_counts": dict(self.unsent_counts), "source_sha256": self.source_sha256}

    def dump(self, out: IO[bytes]) -> None:
        """Write the verdicts to ``out``: the arrays, then the spilled lines and planned
        batches, as ``describe`` sized them."""
        for values in self._arrays():
            values.tofile(out)
        for f in (self._spill, self._planned):
            if f is not None:
                _copy_all(f, out)

    def _arrays(self) -> list[array[int]]:
        return [self._rows, self._numbers, self._parts, self._unsent_rows, self._unsent_sizes]

    @classmethod
    def load(cls, handle: IO[bytes], header: dict[str, object], campaign: Campaign,
             folder: Path | None) -> CheckedRows:
        """The verdicts ``dump`` wrote, read from ``handle`` (ValueError, EOFError or OSError
        when they do not read back whole)."""
        rows = cls.for_campaign(campaign, folder)
        try:
            lengths, sizes = header["arrays"], header["files"]
            if not isinstance(lengths, list) or not isinstance(sizes, list) or len(
                    lengths) != 5 or len(sizes) != 2:
                raise ValueError("the kept verdicts' sizes are not as written")
            for values, n in zip(rows._arrays(), lengths, strict=True):
                values.fromfile(handle, int(n))
            _copy_part(handle, rows._spill, int(sizes[0]))
            if int(sizes[1]) >= 0:
                rows._planned = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115
                _copy_part(handle, rows._planned, int(sizes[1]))
            counts = header["unsent_counts"]
            if not isinstance(counts, dict):
                raise ValueError("the kept verdicts' counts are not as written")
            rows.unsent_counts.update({str(k): int(v) for k, v in counts.items()})
            sha = header["source_sha256"]
            rows.source_sha256 = sha if isinstance(sha, str) else None
            if len(rows._rows) != len(rows._numbers) or handle.read(1):
                raise ValueError("the kept verdicts are not as written")
        except BaseException:
            rows.close()
            raise
        return rows

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a temporary file: the system removes it regardless
            self._spill.close()
            if self._planned is not None:
                self._planned.close()


def _size(spill: IO[bytes]) -> int:
    spill.flush()
    return spill.seek(0, 2)


def _copy_all(source: IO[bytes], out: IO[bytes]) -> None:
    """Copy the whole of ``source`` (a spill file) to ``out``."""
    source.flush()
    source.seek(0)
    while chunk := source.read(1 << 20):
        out.write(chunk)
    source.seek(0, 2)  # back at the end, where the next line is appended


def _copy_part(handle: IO[bytes], out: IO[bytes], size: int) -> None:
    """Copy the next ``size`` bytes of ``handle`` to ``out``."""
    while size > 0:
        chunk = handle.read(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the kept verdicts end early")
        out.write(chunk)
        size -= len(chunk)


_SKIPPED = "the skipped rows' report lines"
_PLANNED = "the batches the check planned"


def _spill_error(exc: OSError, folder: Path | None, what: str = _SKIPPED) -> InputError:
    where = display_path(folder) if folder is not None else tempfile.gettempdir()
    return InputError(f"cannot keep {what} in a temporary file in "
                      f"{where}: {exc.strerror or exc}; free some room there (the journal keeps "
                      "what was sent, so a rerun resumes)")
