"""Text that is safe to send: no control characters, no lone surrogates, a bounded length.

A body, or a message rendered for one row, is refused when it holds a control character other
than newline and tab (NUL and carriage return included), or a lone surrogate (half of a UTF-16
pair, or an undecodable byte kept by ``surrogateescape``), or when it needs more than
``message.max_parts`` SMS parts. For the body these are errors at its line and column
(``runner.rules``); for a rendered row the row is ``invalid`` with the reason, and counts towards
``max_invalid_ratio`` (``runner.compose``, which composes each row's text).
"""

from __future__ import annotations

import re
import unicodedata

from runner.message import count_segments

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


def parts_problem(text: str, max_parts: int, *, ucs2: bool = False) -> str | None:
    """Why ``text`` is too long to send, or None (``ucs2``: counted as UCS-2, unicode "1")."""
    # A part holds 66 units at least and a character takes 2 at most: short texts need no count.
    if 2 * len(text) <= 66 * max_parts:
        return None
    seg = count_segments(text, ucs2=ucs2)
    if seg.parts <= max_parts:
        return None
    return (f"needs {seg.parts} SMS parts ({seg.units:,} {seg.encoding} characters), more than "
            f"message.max_parts {max_parts}")


def needs_judging(text: str, max_parts: int) -> bool:
    """False for the common text: no unsafe character, too short to pass ``max_parts``."""
    return _UNSAFE.search(text) is not None or 2 * len(text) > 66 * max_parts


def message_problem(text: str, max_parts: int, *, ucs2: bool = False) -> str | None:
    """Why a rendered message must not be sent (for its row's ``invalid`` reason), or None."""
    bad = unsafe_character(text)
    if bad is not None:
        return f"the message for this row holds {bad[1]} (at character {bad[0] + 1})"
    too_long = parts_problem(text, max_parts, ucs2=ucs2)
    return f"the message for this row {too_long}" if too_long is not None else None
