"""Text that is safe to send: no control characters, no lone surrogates, a bounded length.

A body, or a message rendered for one row, is refused when it holds a control character other
than newline and tab (NUL and carriage return included), or a lone surrogate (half of a UTF-16
pair, or an undecodable byte kept by ``surrogateescape``), or when it needs more than
``message.max_parts`` SMS parts. For the body these are errors at its line and column
(``runner.rules``); for a rendered row the row is ``invalid`` with the reason, and counts towards
``max_invalid_ratio`` (``RenderedRows``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from runner.errors import Diagnostic, warning
from runner.message import count_segments, render
from runner.recipients import (
    FIRST_INVALID_KEPT,
    MAX_ROW_DIAGNOSTICS,
    Recipient,
    RecipientStats,
)

# C0 but tab and newline, DEL, C1, and every surrogate code point (paired ones never reach a str).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMES = {"\x00": "NUL", "\r": "carriage return", "\x1b": "escape", "\x7f": "delete",
          "\x0b": "vertical tab", "\x0c": "form feed", "\x08": "backspace", "\x07": "bell"}


def unsafe_character(text: str) -> tuple[int, str] | None:
    """The offset of the first character that must not be sent, and its description."""
    found = _UNSAFE.search(text)
    if found is None:
        return None
    char = found.group()
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        what = "a lone surrogate (half a character, or a byte that is not UTF-8)"
    else:
        name = _NAMES.get(char) or unicodedata.name(char, "") or "a control character"
        what = f"the control character {name}"
    return found.start(), f"U+{code:04X}, {what}"


def parts_problem(text: str, max_parts: int) -> str | None:
    """Why ``text`` is too long to send, or None."""
    # A part holds 66 units at least and a character takes 2 at most: short texts need no count.
    if 2 * len(text) <= 66 * max_parts:
        return None
    seg = count_segments(text)
    if seg.parts <= max_parts:
        return None
    return (f"needs {seg.parts} SMS parts ({seg.units:,} {seg.encoding} characters), more than "
            f"message.max_parts {max_parts}")


def message_problem(text: str, max_parts: int) -> str | None:
    """Why a rendered message must not be sent (for its row's ``invalid`` reason), or None."""
    bad = unsafe_character(text)
    if bad is not None:
        return f"the message for this row holds {bad[1]} (at character {bad[0] + 1})"
    too_long = parts_problem(text, max_parts)
    return f"the message for this row {too_long}" if too_long is not None else None


class RenderedRows:
    """Renders each sendable row's message once and judges it; a bad one makes its row invalid.

    ``rows(stream, seen)`` calls ``seen`` with every row (as judged) in order and yields what the
    planner needs: (row, number, text) for a row to send, (row, None, None) for any other.
    """

    def __init__(self, body: str, max_parts: int, source_display: str) -> None:
        self.body = body
        self.max_parts = max_parts
        self.source_display = source_display
        self.invalid = 0
        self.first_invalid: list[int] = []
        self.diagnostics: list[Diagnostic] = []

    def rows(self, stream: Iterable[Recipient], seen: Callable[[Recipient], None] | None
             ) -> Iterator[tuple[int, str | None, str | None]]:
        body, max_parts = self.body, self.max_parts
        for r in stream:
            if r.status == "ok" and r.phone is not None:
                text = render(body, r.fields)
                if _UNSAFE.search(text) is None and 2 * len(text) <= 66 * max_parts:
                    if seen is not None:
                        seen(r)
                    yield r.row, r.phone, text  # the common case: nothing to judge
                    continue
                problem = message_problem(text, max_parts)
                if problem is None:
                    if seen is not None:
                        seen(r)
                    yield r.row, r.phone, text
                    continue
                r = self._invalid(r, problem)
            if seen is not None:
                seen(r)
            yield r.row, None, None

    def _invalid(self, r: Recipient, reason: str) -> Recipient:
        self.invalid += 1
        if len(self.first_invalid) < FIRST_INVALID_KEPT:
            self.first_invalid.append(r.row)
        if self.invalid <= MAX_ROW_DIAGNOSTICS:
            self.diagnostics.append(warning(f"{reason} (row skipped)", self.source_display,
                                            r.row, field="message.body"))
        return replace(r, status="invalid", reason=reason)

    def all_diagnostics(self) -> list[Diagnostic]:
        """The rows' warnings, the first ``MAX_ROW_DIAGNOSTICS``, then a count of the rest."""
        rest = self.invalid - MAX_ROW_DIAGNOSTICS
        if rest <= 0:
            return list(self.diagnostics)
        return [*self.diagnostics, warning(f"{rest:,} more rows whose message cannot be sent "
                                           "(not shown)", self.source_display)]

    def stats(self, stats: RecipientStats) -> RecipientStats:
        """The stream's counts with the rows judged here moved from ok to invalid."""
        if not self.invalid:
            return stats
        first = tuple(sorted((*stats.first_invalid_rows, *self.first_invalid))[
            :FIRST_INVALID_KEPT])
        return replace(stats, ok=stats.ok - self.invalid, invalid=stats.invalid + self.invalid,
                       first_invalid_rows=first)

