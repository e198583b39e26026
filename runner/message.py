"""Message bodies: ``{column}`` placeholders and GSM-7 / UCS-2 segment counting.

Placeholders name a CSV column in braces: ``{name}``. A name is one or more letters, digits,
``_`` or ``-`` (Unicode letters and digits count). ``{name|there}`` gives a fallback, used when
the cell is blank (empty or only spaces); ``{name|}`` lets a blank cell stay blank. ``{{`` and
``}}`` are literal braces. An unclosed ``{``, an empty ``{}``, a name with other characters in
it, a fallback holding a brace, or a lone ``}`` is a ``TemplateError`` that carries the 0-based
offset of the brace in the body.

``smart_gsm`` replaces typographic quotes, dashes, ellipses and the Unicode spaces with their
GSM-7 look-alikes (``message.smart_encoding``), so one pasted apostrophe does not double the cost.

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
    "Body",
    "Segments",
    "TemplateError",
    "count_segments",
    "is_gsm",
    "parse_body",
    "placeholders",
    "render",
    "smart_gsm",
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


@dataclass(frozen=True, slots=True)
class Body:
    """A parsed body: ``literals[k]`` precedes placeholder ``k`` and the last follows them all."""

    literals: tuple[str, ...]  # escapes collapsed; one more than there are placeholders
    names: tuple[str, ...]
    fallbacks: tuple[str | None, ...]  # per placeholder; None: a blank cell is a problem
    offsets: tuple[int, ...]  # per placeholder: the offset of its '{' in the body as written
    spans: tuple[tuple[int, str], ...]  # the fixed text as (offset in the body, text) pieces


@lru_cache(maxsize=256)
def parse_body(body: str) -> Body:
    """The body's fixed text and placeholders; TemplateError when it is malformed."""
    literals: list[str] = []
    names: list[str] = []
    fallbacks: list[str | None] = []
    offsets: list[int] = []
    spans: list[tuple[int, str]] = []
    literal: list[str] = []
    i, n = 0, len(body)
    while i < n:
        # Jump to the next brace: most of a body is plain text.
        j = _next_brace(body, i)
        if j > i:
            literal.append(body[i:j])
            spans.append((i, body[i:j]))
        if j >= n:
            break
        ch = body[j]
        if j + 1 < n and body[j + 1] == ch:  # "{{" or "}}"
            literal.append(ch)
            spans.append((j, ch))
            i = j + 2
            continue
        if ch == "}":
            raise TemplateError("single '}' (write '}}' for a literal brace)", j)
        close = body.find("}", j + 1)
        if close < 0:
            raise TemplateError("'{' is never closed (write '{{' for a literal brace)", j)
        inside = body[j + 1 : close]
        name, bar, fallback = inside.partition("|")
        if not inside:
            raise TemplateError("empty placeholder '{}' (write '{{}}' for literal braces)", j)
        if not _NAME.fullmatch(name):
            raise TemplateError(
                f"placeholder '{{{inside}}}': names may hold only letters, digits, _ and -"
                " (a fallback follows a |, as in {name|there})", j
            )
        if "{" in fallback:
            raise TemplateError(f"placeholder '{{{inside}}}': a fallback cannot hold a brace", j)
        literals.append("".join(literal))
        names.append(name)
        fallbacks.append(fallback if bar else None)
        offsets.append(j)
        literal = []
        i = close + 1
    literals.append("".join(literal))
    return Body(tuple(literals), tuple(names), tuple(fallbacks), tuple(offsets), tuple(spans))


def _next_brace(body: str, start: int) -> int:
    a, b = body.find("{", start), body.find("}", start)
    if a < 0:
        return b if b >= 0 else len(body)
    return a if b < 0 else min(a, b)


def placeholders(body: str) -> tuple[str, ...]:
    """The column names the body refers to, each once, in order of first use."""
    return tuple(dict.fromkeys(parse_body(body).names))


def render(body: str, fields: Mapping[str, str]) -> str:
    """The body with every placeholder replaced by its field (a blank field by its fallback,
    when it has one); TemplateError when a column is missing."""
    parsed = parse_body(body)
    if not parsed.names:
        return parsed.literals[0]
    out = [parsed.literals[0]]
    for k, name in enumerate(parsed.names):
        try:
            value = fields[name]
        except KeyError:
            raise TemplateError(
                f"no column '{name}' for placeholder '{{{name}}}'", parsed.offsets[k]
            ) from None
        fallback = parsed.fallbacks[k]
        if fallback is not None and (not value or value.isspace()):
            value = fallback
        out.append(value)
        out.append(parsed.literals[k + 1])
    return "".join(out)


# Typographic characters and their GSM-7 look-alikes (message.smart_encoding).
_SMART: dict[int, str] = {
    **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032"), "'"),
    **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033"), '"'),
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-"),
    ord("\u2026"): "...",
    **dict.fromkeys(map(ord, "\u00a0\u2007\u202f\u2002\u2003\u2009\u200a\u2008\u205f"), " "),
}


def smart_gsm(text: str) -> str:
    """``text`` with typographic quotes, dashes, ellipses and Unicode spaces made GSM-7."""
    return text if text.isascii() else text.translate(_SMART)


def smart_replacement(char: str) -> str | None:
    """What ``smart_gsm`` puts in place of ``char``, or None when it keeps it."""
    return _SMART.get(ord(char))


def is_gsm(char: str) -> bool:
    return char in _GSM_ALL


def count_segments(text: str, *, ucs2: bool = False) -> Segments:
    """How the text is encoded and how many SMS parts it takes; ``ucs2`` (``unicode: "1"``)
    sends even a GSM-7 text as UCS-2."""
    chars = set(text)
    if not ucs2 and chars <= _GSM_ALL:
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
