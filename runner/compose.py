"""The text each recipient would get, exactly as it would be sent, and the rows that get none.

``Composer.for_campaign(campaign)`` is built once a run: the parsed body, ``smart_encoding``,
the ``unicode`` flag and, with ``dlt.templates``, the template's compiled matcher. For a row it
renders the placeholders (a blank cell takes its fallback; without one the row is ``invalid``,
"column name is blank"), makes the text GSM-7 where ``smart_encoding`` asks, and checks it
against the template (a text that does not match is ``invalid`` with the reason).

``ComposedRows`` wraps a recipient stream for a body with placeholders: it yields
``(recipient, text)`` pairs, turning ``ok`` rows whose message cannot be composed into
``invalid`` ones, and counts them so the campaign's ``max_invalid_ratio`` sees them. The first
row of a number decides its fate only when it is sent: a later row of the same number takes the
place of one whose message failed. A body without placeholders has one text (``fixed_text``),
checked once by the rules, so its rows pass through untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from runner.dlt import load_templates
from runner.dltmatch import Matcher
from runner.errors import Diagnostic, warning
from runner.message import Body, Segments, count_segments, parse_body, smart_gsm
from runner.model import DEFAULT_MAX_PARTS, Campaign
from runner.recipients import MAX_ROW_DIAGNOSTICS, Recipient, RecipientStats, RecipientStream
from runner.safetext import message_problem, needs_judging

__all__ = ["ComposedRows", "Composer", "composed", "matcher_for", "template_matcher"]

_EXPLAINED = 100  # rows told in full why they do not match; the rest more briefly (cheaper)


def template_matcher(campaign: Campaign) -> Matcher | None:
    """The compiled template the campaign's messages must match, when it names one."""
    dlt, template_id = campaign.dlt, campaign.message.template_id
    if dlt is None or template_id is None:
        return None
    template = load_templates(dlt.templates).templates.get(template_id)
    if template is None:
        return None  # the rules report it
    return matcher_for(template.content, dlt.max_variable_length)


_MATCHERS: dict[tuple[str, int], Matcher] = {}


def matcher_for(content: str, max_len: int) -> Matcher:
    """The template's compiled matcher, compiled once a process."""
    key = (content, max_len)
    found = _MATCHERS.get(key)
    if found is None:
        found = _MATCHERS[key] = Matcher(content, max_len)
    return found


class Composer:
    """Texts for rows of one campaign (see the module doc)."""

    def __init__(self, body: str | None, *, smart: bool = False, ucs2: bool = False,
                 matcher: Matcher | None = None, template_id: str = "",
                 max_parts: int = DEFAULT_MAX_PARTS) -> None:
        self.body: Body | None = parse_body(body) if body is not None else None
        self.max_parts = max_parts
        self.smart = smart
        self.ucs2 = ucs2
        self.matcher = matcher
        self.template_id = template_id
        self.explained = 0

    @classmethod
    def for_campaign(cls, campaign: Campaign) -> Composer:
        m = campaign.message
        return cls(m.body, smart=m.smart_encoding, ucs2=m.unicode == "1",
                   matcher=template_matcher(campaign), template_id=m.template_id or "",
                   max_parts=m.max_parts)

    @property
    def personalised(self) -> bool:
        return self.body is not None and bool(self.body.names)

    @property
    def fixed_text(self) -> str | None:
        """The one text of a body without placeholders (None: template_id alone, or a body
        with placeholders, whose texts are the rows')."""
        if self.body is None or self.body.names:
            return None
        text = self.body.literals[0]
        return smart_gsm(text) if self.smart else text

    def estimate(self) -> str:
        """The text with each placeholder shown as its own name (a length before rows)."""
        if self.body is None:
            return ""
        b = self.body
        parts = [b.literals[0]]
        for k, name in enumerate(b.names):
            parts += [b.fallbacks[k] or name, b.literals[k + 1]]
        text = "".join(parts)
        return smart_gsm(text) if self.smart else text

    def segments(self, text: str) -> Segments:
        return count_segments(text, ucs2=self.ucs2)

    def compose(self, fields: Mapping[str, str]) -> tuple[str | None, str]:
        """(text, "") for a row, or (None, why not)."""
        b = self.body
        if b is None:
            return None, ""
        literals, names, fallbacks = b.literals, b.names, b.fallbacks
        out = [literals[0]]
        for k, name in enumerate(names):
            value = fields.get(name, "")
            if not value or value.isspace():
                fallback = fallbacks[k]
                if fallback is None:
                    return None, f"column {name} is blank (give a fallback: {{{name}|...}})"
                value = fallback
            out.append(value)
            out.append(literals[k + 1])
        text = "".join(out)
        if self.smart and not text.isascii():
            text = smart_gsm(text)
        if needs_judging(text, self.max_parts):  # rare: a control character, or very long
            problem = message_problem(text, self.max_parts, ucs2=self.ucs2)
            if problem is not None:
                return None, problem
        matcher = self.matcher
        if matcher is not None and not matcher.matches(text):
            self.explained += 1
            return None, matcher.explain(text, self.template_id,
                                         detailed=self.explained <= _EXPLAINED)
        return text, ""


class RowSource(Protocol):
    """What ComposedRows reads: a RecipientStream, or anything that iterates like one."""

    source_display: str

    def __iter__(self) -> Iterator[Recipient]: ...

    @property
    def stats(self) -> RecipientStats: ...


@dataclass(slots=True)
class _Counts:
    failed: int = 0  # ok rows whose message failed
    promoted: int = 0  # duplicates sent in place of a failed first row
    failed_duplicates: int = 0  # duplicates of a failed row whose own message failed too


class ComposedRows:
    """(recipient, text) for each row of ``stream``; see the module doc."""

    def __init__(self, stream: RowSource, composer: Composer, *, flash: bool = False) -> None:
        self.stream = stream
        self.composer = composer
        self.flash = flash
        self.diagnostics: list[Diagnostic] = []
        self._counts = _Counts()
        self._first_failed: list[int] = []
        self._long_flash = 0
        self._long_flash_first = 0
        self._long_parts = 0

    def __iter__(self) -> Iterator[tuple[Recipient, str | None]]:
        compose = self.composer.compose
        failed: dict[str | None, int] = {}  # number -> the row whose message failed
        counts = self._counts
        for r in self.stream:
            status = r.status
            if status == "ok":
                text, reason = compose(r.fields)
                if text is not None:
                    yield r, text
                    continue
                failed[r.phone] = r.row
                counts.failed += 1
                yield self._fail(r, reason), None
            elif status == "duplicate" and failed and r.phone in failed:
                text, reason = compose(r.fields)
                if text is None:
                    counts.failed_duplicates += 1
                    yield self._fail(r, reason), None
                    continue
                del failed[r.phone]
                counts.promoted += 1
                yield dataclasses.replace(r, status="ok", reason=""), text
            else:
                yield r, None
        self._finish()

    def _fail(self, r: Recipient, reason: str) -> Recipient:
        shown = self.stream.source_display
        n = self._counts.failed + self._counts.failed_duplicates
        if len(self._first_failed) < 5:
            self._first_failed.append(r.row)
        if n <= MAX_ROW_DIAGNOSTICS:
            self.diagnostics.append(warning(f"{reason} (row skipped)", shown, r.row,
                                            field="message.body"))
        return dataclasses.replace(r, status="invalid", reason=reason)

    def _finish(self) -> None:
        n = self._counts.failed + self._counts.failed_duplicates
        if n > MAX_ROW_DIAGNOSTICS:
            self.diagnostics.append(warning(
                f"{n - MAX_ROW_DIAGNOSTICS:,} more rows whose message cannot be sent (not shown)",
                self.stream.source_display))

    def note_parts(self, rows: int, first_row: int, segments: Segments) -> None:
        """Batches as planned: a flash message past one part is counted by rows."""
        if self.flash and segments.parts > 1:
            if not self._long_flash:
                self._long_flash_first = first_row
            self._long_flash += rows
            self._long_parts = max(self._long_parts, segments.parts)

    def flash_diagnostics(self) -> list[Diagnostic]:
        if not self._long_flash:
            return []
        rows = f"{self._long_flash:,} row" + ("s" if self._long_flash != 1 else "")
        return [warning(f"a flash message should fit in one part: for {rows} the text needs "
                        f"more (up to {self._long_parts} parts; row {self._long_flash_first} is "
                        "one)", self.stream.source_display, field="message.flash")]

    @property
    def stats(self) -> RecipientStats:
        """The stream's stats with the rows whose message failed counted as invalid."""
        s, c = self.stream.stats, self._counts
        moved = c.failed + c.failed_duplicates
        first = tuple(sorted({*s.first_invalid_rows, *self._first_failed}))[:5]
        return RecipientStats(total=s.total, ok=s.ok - c.failed + c.promoted,
                              invalid=s.invalid + moved,
                              duplicate=s.duplicate - c.promoted - c.failed_duplicates,
                              suppressed=s.suppressed, first_invalid_rows=first)


def composed(rows: Iterable[Recipient], composer: Composer) -> Iterator[tuple[Recipient,
                                                                          str | None]]:
    """(recipient, text) for rows read elsewhere (a resume's report, the send's second read),
    with the same verdicts as ComposedRows gives the check pass."""
    if not composer.personalised:
        fixed = composer.fixed_text
        for r in rows:
            yield r, fixed if r.status == "ok" else None
        return
    if isinstance(rows, RecipientStream):
        yield from ComposedRows(rows, composer)
        return
    yield from ComposedRows(_Listed(rows), composer)


class _Listed:
    """A plain iterable of recipients dressed as a stream (for tests and callers with lists)."""

    def __init__(self, rows: Iterable[Recipient]) -> None:
        self._rows = rows
        self.source_display = ""

    def __iter__(self) -> Iterator[Recipient]:
        return iter(self._rows)

    @property
    def stats(self) -> RecipientStats:
        return RecipientStats()
