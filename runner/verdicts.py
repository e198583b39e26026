"""What the check pass finds, kept for what follows it, so that no run reads the CSV twice.

The check pass reads and normalises every row once (``runner.check``). Two observers of that
pass keep what comes after it needs:

* ``DryRunReport`` writes the dry run's report during the pass itself;
* ``CheckedRows`` keeps what a real send needs: the sendable rows as (row, number) pairs
  (16 bytes a row) to plan from, and the finished report lines of the rows that will not be
  sent, spilled to a temporary file. The report at the end merges the two with the journal.
"""

from __future__ import annotations

import tempfile
from array import array
from collections import Counter, deque
from collections.abc import Container, Iterator
from typing import IO

from runner.errors import InputError
from runner.plan import Batch
from runner.recipients import Recipient
from runner.report import LineFormatter, ReportWriter


class DryRunReport:
    """Writes the dry-run report during the check pass: one read of the CSV, not two.

    Rows are written in source order as soon as their fate is known: a row that will not be
    sent at once, a sendable row once the planner has put it in a batch. Rows wait in a queue
    until then, which the planner's bounded open groups keep small.

    ``in_row_order`` (a campaign without placeholders: one open group) says that batches come
    in row order, which allows a cheaper merge than the general one.
    """

    def __init__(self, writer: ReportWriter, *, in_row_order: bool = False) -> None:
        self.writer = writer
        self._in_row_order = in_row_order
        self._waiting: deque[Recipient] = deque()  # general: rows behind an unplanned one
        self._batch_of: dict[int, str] = {}
        self._skipped: deque[Recipient] = deque()  # in row order: unsent rows behind a held one
        self._holding = False  # in row order: a sendable row is in the planner's open group

    def recipient(self, recipient: Recipient) -> None:
        if self._in_row_order:
            if recipient.status == "ok":
                self._holding = True
            elif self._holding:
                self._skipped.append(recipient)
            else:
                self._write(recipient, "")
        elif self._waiting or recipient.status == "ok":
            self._waiting.append(recipient)
        else:
            self._write(recipient, "")

    def batch(self, batch: Batch) -> None:
        if self._in_row_order:
            self._merge(batch)
            return
        for row in batch.rows:
            self._batch_of[row] = batch.id
        waiting, batch_of = self._waiting, self._batch_of
        planned: list[tuple[int, str]] = []  # consecutive rows of this batch, written at once
        while waiting and (waiting[0].status != "ok" or waiting[0].row in batch_of):
            head = waiting.popleft()
            if head.status == "ok" and batch_of[head.row] == batch.id and head.phone:
                del batch_of[head.row]
                planned.append((head.row, head.phone))
                continue
            self._flush(planned, batch.id)
            self._write(head, batch_of.pop(head.row, ""))
        self._flush(planned, batch.id)

    def _merge(self, batch: Batch) -> None:
        # The batch holds every sendable row read since the last one, so every skipped row
        # waiting is written here, each before the first member that follows it.
        skipped = self._skipped
        planned: list[tuple[int, str]] = []
        for row, phone in zip(batch.rows, batch.numbers, strict=True):
            while skipped and skipped[0].row < row:
                self._flush(planned, batch.id)
                self._write(skipped.popleft(), "")
            planned.append((row, phone))
        self._flush(planned, batch.id)
        while skipped:
            self._write(skipped.popleft(), "")
        self._holding = False

    def _flush(self, planned: list[tuple[int, str]], batch_id: str) -> None:
        if planned:
            self.writer.write_planned(planned, "dry_run", batch_id)
            planned.clear()

    def _write(self, r: Recipient, batch_id: str) -> None:
        if r.status == "ok":
            self.writer.write_unsent(r.row, r.phone or r.raw_phone, "dry_run", batch_id=batch_id)
        else:
            self.writer.write_unsent(r.row, r.phone or r.raw_phone, r.status, error=r.reason)

    def commit(self) -> Counter[str]:
        if self._waiting or self._holding:  # every sendable row is planned by the end
            raise RuntimeError("dry run: some sendable rows were never planned")
        while self._skipped:
            self._write(self._skipped.popleft(), "")
        return self.writer.commit()


class CheckedRows:
    """The check pass's verdicts, kept for the send: sendable rows and the others' report lines.

    Sendable rows are (row, number) pairs in two int arrays: for a body without placeholders
    that is all the send needs to plan, so it does not read and normalise the CSV again. Rows
    not sent (invalid, duplicate, suppressed) have their final report line formatted now and
    spilled to a temporary file, so memory stays flat whatever their number.
    """

    def __init__(self) -> None:
        self._rows = array("q")
        self._numbers = array("q")
        self._unsent_rows = array("q")
        self._unsent_sizes = array("q")  # bytes of each line in the spill file
        try:
            self._spill: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (see close())
        except OSError as exc:
            raise _spill_error(exc) from None
        self._format = LineFormatter()
        self.unsent_counts: Counter[str] = Counter()

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
            raise _spill_error(exc) from None
        self._unsent_rows.append(recipient.row)
        self._unsent_sizes.append(len(line))
        self.unsent_counts[recipient.status] += 1

    def batch(self, batch: Batch) -> None:
        pass

    @property
    def sendable(self) -> int:
        return len(self._rows)

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
            raise _spill_error(exc) from None

    def close(self) -> None:
        self._spill.close()


def _spill_error(exc: OSError) -> InputError:
    return InputError(f"cannot keep the skipped rows' report lines in a temporary file in "
                      f"{tempfile.gettempdir()}: {exc.strerror or exc} (set TMPDIR to a folder "
                      "with room); the journal keeps what was sent, so a rerun resumes")
