"""The report's view of a message: parts, encoding and the exact text, formatted once a text.

The dry-run report ends each sendable row with ``parts,encoding,text`` (``PREVIEW_COLUMNS``);
the sent report with ``parts`` (``SENT_COLUMNS``). Rows of one batch share their text, and a body
without placeholders has one text, so each distinct text is formatted once and its cells reused.
"""

from __future__ import annotations

import csv
from collections.abc import Callable

from runner.message import Segments, count_segments
from runner.report import neutralise

__all__ = ["Preview"]

_CACHED = 10_000  # distinct texts kept formatted (personalised texts rarely repeat past this)


class Preview:
    """Formatted preview cells of texts, for one campaign's way of counting parts."""

    def __init__(self, segments: Callable[[str], Segments] = count_segments) -> None:
        self._segments = segments
        self._cells: dict[str | None, str] = {}
        self._parts: dict[str | None, int] = {}
        self._line = ""
        self._writer = csv.writer(self, lineterminator="")

    def write(self, text: str) -> None:  # the csv.writer's file
        self._line = text

    def cells(self, text: str | None) -> str:
        """``,parts,encoding,text`` for a text (``,,,`` for none: a template sent alone)."""
        found = self._cells.get(text)
        if found is not None:
            return found
        if text is None:
            found = ",,,"
        else:
            seg = self._segments(text)
            self._writer.writerow((seg.parts, seg.encoding, neutralise(text)))
            found = "," + self._line
        if len(self._cells) < _CACHED:
            self._cells[text] = found
        return found

    def parts(self, text: str | None) -> int:
        """The parts a text is billed as (0 for none)."""
        found = self._parts.get(text)
        if found is None:
            found = self._segments(text).parts if text is not None else 0
            if len(self._parts) < _CACHED:
                self._parts[text] = found
        return found
