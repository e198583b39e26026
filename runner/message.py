"""Message bodies: ``{column}`` placeholders and GSM-7 / UCS-2 segment counting.

Placeholders name a CSV column in braces: ``{name}``. A name is one or more letters, digits,
``_`` or ``-`` (Unicode letters and digits count). ``{{`` and ``}}`` are literal braces. An
unclosed ``{``, an empty ``{}``, a name with other characters in it, or a lone ``}`` is a
``TemplateError`` that carries the 0-based offset of the brace in the body.

Segment counting follows GSM 03.38: a body made only of characters from the basic set and the
extension table (``^{}\\[~]|€`` and form feed, each counting two septets) is GSM-7, sent in one
part up to 160 septets and in parts of 153 beyond. Any other character makes the whole body
UCS-2, counted in UTF-16 code units (an emoji outside the BMP counts two): 70 in one part, 67 per
part beyond. Neither an escape pair nor a surrogate pair is ever split across two parts, so a
long body may need one part more than ``ceil(units / 153)`` would say.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = [
    "GSM_BASIC",
    "GSM_EXTENSION",
    "Segments",
    "TemplateError",
    "count_segments",
    "placeholders",
    "render",
]

# GSM 03.38 default alphabet (the escape 0x1B itself is not a character anyone can type).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters reached through the escape: each costs two septets.
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM_ALL = GSM_BASIC | GSM_EXTENSION

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

_NAME = re.compile(r"[\w-]+")


class TemplateError(ValueError):
    """A malformed body; ``column`` is the 0-based offset of the offending brace."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True, slots=True)
class Segments:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets (GSM-7, extension chars count 2) or UTF-16 code units (UCS-2)
    parts: int
    limit: int  # the single-part limit for this encoding (160 or 70)


# A parsed body: literal text and placeholder names, alternating (names at odd indexes).
_Parsed = tuple[str, ...]


@lru_cache(maxsize=256)
def _parse(body: str) -> _Parsed:
    pieces: list[str] = []
    literal: list[str] = []
    i, n = 0, len(body)
    while i < n:
        # Jump to the next brace: most of a body is plain text.
        j = _next_brace(body, i)
        literal.append(body[i:j])
        if j >= n:
            break
        ch = body[j]
        if j + 1 < n and body[j + 1] == ch:  # "{{" or "}}"
            literal.append(ch)
            i = j + 2
            continue
        if ch == "}":
            raise TemplateError("single '}' (write '}}' for a literal brace)", j)
        close = body.find("}", j + 1)
        if close < 0:
            raise TemplateError("'{' is never closed (write '{{' for a literal brace)", j)
        name = body[j + 1 : close]
        if not name:
            raise TemplateError("empty placeholder '{}' (write '{{}}' for literal braces)", j)
        if not _NAME.fullmatch(name):
            raise TemplateError(
                f"placeholder '{{{name}}}': names may hold only letters, digits, _ and -", j
            )
        pieces.append("".join(literal))
        pieces.append(name)
        literal = []
        i = close + 1
    pieces.append("".join(literal))
    return tuple(pieces)


def _next_brace(body: str, start: int) -> int:
    a, b = body.find("{", start), body.find("}", start)
    if a < 0:
        return b if b >= 0 else len(body)
    return a if b < 0 else min(a, b)


def placeholders(body: str) -> tuple[str, ...]:
    """The column names the body refers to, each once, in order of first use."""
    return tuple(dict.fromkeys(_parse(body)[1::2]))


def render(body: str, fields: Mapping[str, str]) -> str:
    """The body with every placeholder replaced by its field; TemplateError when one is missing."""
    parsed = _parse(body)
    if len(parsed) == 1:
        return parsed[0]
    out = list(parsed)
    for k in range(1, len(out), 2):
        try:
            out[k] = fields[out[k]]
        except KeyError:
            name = out[k]
            raise TemplateError(
                f"no column '{name}' for placeholder '{{{name}}}'", _offset_of(body, name)
            ) from None
    return "".join(out)


def _offset_of(body: str, name: str) -> int:
    found = body.find("{" + name + "}")
    return max(found, 0)


def count_segments(text: str) -> Segments:
    """How the text is encoded and how many SMS parts it takes."""
    chars = set(text)
    if chars <= _GSM_ALL:
        ext = chars & GSM_EXTENSION
        units = len(text) + (sum(text.count(c) for c in ext) if ext else 0)
        if units <= GSM_SINGLE:
            return Segments("GSM-7", units, 1, GSM_SINGLE)
        parts = -(-units // GSM_PART) if not ext else _pack(text, GSM_PART, _gsm_width)
        return Segments("GSM-7", units, parts, GSM_SINGLE)
    astral = sum(1 for c in chars if ord(c) > 0xFFFF)
    units = len(text) + (sum(text.count(c) for c in chars if ord(c) > 0xFFFF) if astral else 0)
    if units <= UCS2_SINGLE:
        return Segments("UCS-2", units, 1, UCS2_SINGLE)
    parts = -(-units // UCS2_PART) if not astral else _pack(text, UCS2_PART, _utf16_width)
    return Segments("UCS-2", units, parts, UCS2_SINGLE)


def _gsm_width(c: str) -> int:
    return 2 if c in GSM_EXTENSION else 1


def _utf16_width(c: str) -> int:
    return 2 if ord(c) > 0xFFFF else 1


def _pack(text: str, size: int, width: Callable[[str], int]) -> int:
    # Greedy fill: a two-unit character that does not fit starts the next part.
    parts, used = 1, 0
    for c in text:
        w = width(c)
        if used + w > size:
            parts += 1
            used = 0
        used += w
    return parts
