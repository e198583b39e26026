"""Matching messages against a DLT template, the way operators scrub them.

A template's ``{#var#}`` (any ``{#...#}`` token, such as ``{#url#}`` or ``{#numeric#}``) stands
for 1 to ``max_variable_length`` characters of anything; any run of whitespace matches any run of
whitespace; everything else is literal, case and punctuation included. Whitespace at either end
does not count.

``Matcher`` is compiled once per template: ``matches(text)`` is one regular-expression match a row
(microseconds); ``explain(text)`` says why a text does not match, for the rows that do not.
``first_difference(pieces)`` decides whether a body (fixed text and placeholders) can match at
all, and when it cannot, where its fixed text first differs from the template's. A placeholder
stands for any text inside a variable (with the body's fixed text around it, within the
variable's length); the template's fixed text must be the body's fixed text, never a value's.
It is a search over (body position, template position, characters of the variable used),
scoring an alignment by the fixed characters it matches.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["WILD", "Difference", "Matcher"]

_VAR = re.compile(r"\{#[^#{}]{0,40}#\}")
_SPACE = re.compile(r"\s+")
WILD = None  # a placeholder in the pieces given to first_difference
_Token = str | None  # one character (" " for a whitespace run), or a variable / placeholder


@dataclass(frozen=True, slots=True)
class Difference:
    """Where a body's fixed text stops agreeing with the template."""

    offset: int | None  # index into the pieces of the body's first differing character
    body_text: str  # the body's text from there (to its next placeholder), "" at its end
    template_text: str  # the template's fixed text from there, "" at its end

    def describe(self, template_id: str) -> str:
        if not self.template_text:
            return (f"template {template_id} ends where the body goes on with "
                    f"'{self.body_text}'")
        if not self.body_text:
            return (f"the body ends where template {template_id} goes on with "
                    f"'{self.template_text}'")
        return (f"the body has '{self.body_text}' where template {template_id} has "
                f"'{self.template_text}'")


class Matcher:
    """One template's content, compiled."""

    def __init__(self, content: str, max_variable_length: int) -> None:
        self.content = content
        self.max_len = max_variable_length
        stripped = content.strip()
        self.literals = tuple(_SPACE.sub(" ", part) for part in _VAR.split(stripped))
        self.variables = len(self.literals) - 1
        # Fixed text between variables, and the variables before each piece: adjacent
        # variables become one run of 1..k characters each (the same language, fewer ways).
        pieces: list[str] = [self.literals[0]]  # the first may be "" (a variable starts it)
        runs: list[int] = [0]  # runs[k]: variables between pieces[k - 1] and pieces[k]
        run = 0
        for k, literal in enumerate(self.literals[1:], 1):
            run += 1
            if literal or k == self.variables:  # the last may be "" (a variable ends it)
                pieces.append(literal)
                runs.append(run)
                run = 0
        self._runs = runs
        self._pieces = [re.compile(_words(piece)) for piece in pieces]
        self._ends_in_space = [piece.endswith(" ") for piece in pieces]
        pattern = [_words(pieces[0])]
        for piece, n in zip(pieces[1:], runs[1:], strict=True):
            pattern.append(f".{{{n},{n * max_variable_length}}}{_words(piece)}")
        self._regex = re.compile(r"\s*" + "".join(pattern) + r"\s*", re.DOTALL)
        self._loose = re.compile(r"\s*" + "(.+?)".join(_words(lit) for lit in self.literals)
                                 + r"\s*", re.DOTALL)
        # Several variables apart by only spaces or punctuation (", ", " - ") would
        # let the regex try every split of a text that does not match: exponential in the
        # variables. Such templates are matched piece by piece instead (linear in the text).
        short = sum(1 for piece in pieces[1:-1] if not any(c.isalnum() for c in piece))
        self.risky = short >= 2
        self.matches = self._by_pieces if self.risky else self._fullmatch

    def _fullmatch(self, text: str) -> bool:
        return self._regex.fullmatch(text) is not None

    def _by_pieces(self, text: str) -> bool:
        """The same answer as the regex, by sets of positions: where each piece of fixed text
        may start, given where the previous one may end and the variables between."""
        limit, n = self.max_len, len(text)
        lead = n - len(text.lstrip())
        if not self.literals[0]:  # a variable first: it may start inside the leading spaces
            ends = set(range(lead + 1))
        else:
            first = self._pieces[0].match(text, lead)
            if first is None:
                return False
            ends = self._ends(first, 0, text)
        for k in range(1, len(self._pieces)):
            low, high = self._runs[k], self._runs[k] * limit
            if not ends:
                return False
            piece = self._pieces[k]
            reachable: set[int] = set()
            ordered = sorted(ends)
            last = k == len(self._pieces) - 1
            pos, stop = ordered[0] + low, min(ordered[-1] + high, n)
            while pos <= stop:
                found = piece.search(text, pos)  # the next place the piece starts
                if found is None or found.start() > stop:
                    break
                start = pos = found.start()
                pos += 1
                # some end e with low <= start - e <= high
                at = bisect_left(ordered, start - high)
                if at >= len(ordered) or ordered[at] > start - low:
                    continue
                if last and found.end() != n and not text[found.end():].isspace():
                    continue
                reachable |= self._ends(found, k, text)
            ends = reachable
            if last:
                return bool(ends)
        return any(e == n or text[e:].isspace() for e in ends)

    def _ends(self, found: re.Match[str], k: int, text: str) -> set[int]:
        end = found.end()
        if not self._ends_in_space[k]:
            return {end}
        # A run of whitespace may end early: the variable after it may start with spaces.
        start = len(text[: end].rstrip())
        return set(range(max(start + 1, found.start() + 1), end + 1))

    @property
    def fixed_share(self) -> float:
        """The fixed text's share of the longest message the template allows."""
        fixed = sum(len(literal) for literal in self.literals)
        total = fixed + self.variables * self.max_len
        return fixed / total if total else 1.0

    def explain(self, text: str, template_id: str, *, detailed: bool = True) -> str:
        """Why ``text`` does not match (call only when ``matches`` said no)."""
        loose = None if self.risky else self._loose.fullmatch(text)  # lazy groups: exponential
        if loose is not None:
            for k, value in enumerate(loose.groups(), 1):
                if len(value) > self.max_len:
                    shown = value if len(value) <= 40 else value[:37] + "..."
                    which = f"{{#var#}} {k}" if self.variables > 1 else "{#var#}"
                    return (f"'{shown}' ({len(value)} characters) stands for {which} of "
                            f"template {template_id}: at most {self.max_len} "
                            "(dlt.max_variable_length)")
        if not detailed:
            return f"the text does not match template {template_id}"
        found = self.first_difference(list(text))
        if found is None:  # cannot happen for a text the regex refused; say something true
            return f"the text does not match template {template_id}"
        return "the text does not match: " + found.describe(template_id).replace(
            "the body", "the text")

    def first_difference(self, pieces: Sequence[str | None]) -> Difference | None:
        """None when the body can match (``pieces``: its characters, WILD for a placeholder);
        else where its fixed text first differs, scored to prefer the alignment that keeps
        most fixed characters together."""
        body, where = _body_tokens(pieces)
        tmpl = _template_tokens(self.literals)
        nb, nt, limit = len(body), len(tmpl), self.max_len
        best: dict[tuple[int, int, int], int] = {(0, 0, 0): 0}
        heap = [(0, 0, 0)]
        dead: tuple[int, int, int, int] | None = None  # (score, j, -i, i) of the best dead end
        while heap:
            state = heapq.heappop(heap)
            i, j, k = state
            score = best[state]
            if i == nb and j == nt:
                return None
            b = body[i] if i < nb else ""
            t = tmpl[j] if j < nt else ""
            moves: list[tuple[tuple[int, int, int], int]] = []
            if b is None:
                moves.append(((i + 1, j, k), score))
            if t is None and k >= 1:
                moves.append(((i, j + 1, 0), score))
            if b and t:
                if b == t:
                    moves.append(((i + 1, j + 1, 0), score + 1))
                elif k == 0:
                    dead = _better(dead, score, i, j)
            elif b and t is None and k < limit:
                moves.append(((i + 1, j, k + 1), score))
            elif b is None and t is None and k < limit:
                moves.append(((i, j, k + 1), score))
            if (b == "" and t) or (t == "" and b):  # one side has ended
                dead = _better(dead, score, i, j)
            for nxt, value in moves:
                old = best.get(nxt)
                if old is None:
                    best[nxt] = value
                    heapq.heappush(heap, nxt)
                elif value > old:
                    best[nxt] = value
        if dead is None:
            return Difference(None, "", self.content[:30])
        _, j, _, i = dead
        # Back up to the start of the word both sides agree on so far.
        while i > 0 and j > 0 and body[i - 1] == tmpl[j - 1] and (body[i - 1] or "").isalnum():
            i -= 1
            j -= 1
        return Difference(where[i] if i < nb else None, _text(body, i), _text(tmpl, j))


def _words(literal: str) -> str:
    """A piece of fixed text as a pattern: each whitespace run matches any whitespace run."""
    return r"\s+".join(re.escape(word) for word in literal.split(" "))


def _better(dead: tuple[int, int, int, int] | None, score: int, i: int, j: int
            ) -> tuple[int, int, int, int]:
    candidate = (score, j, -i, i)
    return candidate if dead is None or candidate > dead else dead


def _body_tokens(pieces: Sequence[str | None]) -> tuple[list[_Token], list[int]]:
    """The body's characters with whitespace runs as one " ", and each one's index in pieces;
    whitespace at either end is dropped, as the matcher ignores it."""
    tokens: list[_Token] = []
    where: list[int] = []
    for index, piece in enumerate(pieces):
        if piece is not None and piece.isspace():
            if tokens and tokens[-1] != " ":
                tokens.append(" ")
                where.append(index)
            continue
        tokens.append(piece)
        where.append(index)
    if tokens and tokens[-1] == " ":
        tokens.pop()
        where.pop()
    return tokens, where


def _template_tokens(literals: Sequence[str]) -> list[_Token]:
    tokens: list[_Token] = []
    for k, literal in enumerate(literals):
        tokens.extend(literal)
        if k < len(literals) - 1:
            tokens.append(None)
    return tokens


def _text(tokens: Sequence[_Token], start: int, size: int = 30) -> str:
    out: list[str] = []
    for token in tokens[start:]:
        if token is None or len(out) >= size:
            break
        out.append(token)
    text = "".join(out).strip()
    return text + ("..." if len(out) >= size else "")
