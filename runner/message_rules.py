"""Rules about the message itself: its DLT template, and the characters that make it UCS-2.

``message_rules(campaign, marks)`` returns Diagnostics located in the campaign file (and in the
templates file for problems of the file). Called by ``runner.rules.check_rules`` on a body that
parses; reads the templates file, never the recipients.

DLT (``dlt.templates``): the file must be readable and hold ``message.template_id``, usable
(Approved or Active); the sender must be one of its headers when they are listed; a Promotional
template goes with MKT only, and MKT only with a Promotional template. A body that can match no
row is an error at the body's first character that differs. A template whose fixed text is under
30% of the longest message it allows gets a warning (TRAI's 2023 direction on variable parts).

Encoding: each character of the body's fixed text (or of a fallback) outside GSM-7 gets a
warning at its place, with what it costs in parts; with ``smart_encoding`` the look-alikes it
replaces no longer count. Not with ``unicode: "1"`` (UCS-2 anyway) nor "0" (GSM-7 anyway).
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterator

from runner.compose import Composer, matcher_for
from runner.dlt import DltTemplate, load_templates
from runner.dltmatch import WILD
from runner.errors import Diagnostic, display_path, error, warning
from runner.message import TemplateError, is_gsm, parse_body, smart_gsm, smart_replacement
from runner.model import Campaign
from runner.yamlload import KeyPath, Marks, dotted

__all__ = ["message_rules"]

MIN_FIXED_SHARE = 0.30  # TRAI, 2023: templates must not be mostly variable
_BODY: KeyPath = ("message", "body")
_SHOWN_CHARS = 5  # distinct UCS-2 characters told one by one; then one line for the rest


class _Place:
    def __init__(self, campaign: Campaign, marks: Marks) -> None:
        self.path = display_path(campaign.path)
        self.marks = marks

    def at(self, key_path: KeyPath, *, at_key: bool = False) -> tuple[int, int]:
        found = self.marks.key_at(key_path) if at_key else self.marks.at(key_path)
        return found or (1, 1)

    def error(self, message: str, key_path: KeyPath, *, at_key: bool = False) -> Diagnostic:
        return error(message, self.path, *self.at(key_path, at_key=at_key), dotted(key_path))

    def warning(self, message: str, key_path: KeyPath) -> Diagnostic:
        return warning(message, self.path, *self.at(key_path), dotted(key_path))

    def in_body(self, offset: int) -> tuple[int, int]:
        return self.marks.offset_at(_BODY, offset) or (1, 1)


def message_rules(campaign: Campaign, marks: Marks) -> list[Diagnostic]:
    if campaign.message.body is not None:
        try:
            parse_body(campaign.message.body)
        except TemplateError:
            return []  # runner.rules reports a malformed body
    place = _Place(campaign, marks)
    found = list(_dlt(campaign, place))
    found += _encoding(campaign, place)
    return found


# --- DLT ----------------------------------------------------------------------------------------

def _dlt(campaign: Campaign, place: _Place) -> Iterator[Diagnostic]:
    dlt, message = campaign.dlt, campaign.message
    if dlt is None:
        return
    key: KeyPath = ("dlt", "templates")
    if not dlt.templates.is_file():
        what = "is a folder, not a CSV file" if dlt.templates.is_dir() else "not found"
        yield place.error(f"DLT templates file {what}: {display_path(dlt.templates)}", key)
        return
    loaded = load_templates(dlt.templates)
    yield from loaded.diagnostics
    if not loaded.templates:
        if not any(d.severity == "error" for d in loaded.diagnostics):
            yield place.error(f"{loaded.shown} holds no templates", key)
        return
    if message.template_id is None:
        yield place.error("with dlt.templates the message needs its template_id (the DLT "
                          "template the body is registered as)", ("message",), at_key=True)
        return
    template = loaded.templates.get(message.template_id)
    id_key: KeyPath = ("message", "template_id")
    if template is None:
        near = difflib.get_close_matches(message.template_id, list(loaded.templates), n=1,
                                         cutoff=0.8)
        hint = f" (did you mean {near[0]}?)" if near else ""
        yield place.error(f"template {message.template_id} is not in {loaded.shown} "
                          f"({len(loaded.templates):,} templates){hint}", id_key)
        return
    yield from loaded.row_problems.get(template.id, ())
    where = f"{loaded.shown}:{template.line}"
    if not template.usable:
        yield place.error(f"template {template.id} is '{template.status}' ({where}): only "
                          "Approved or Active templates can be used", id_key)
    headers = {h.upper() for h in template.headers}
    if headers and message.sender.upper() not in headers:
        yield place.error(f"sender {message.sender} is not a header of template {template.id} "
                          f"(its headers: {', '.join(template.headers)}; {where})",
                          ("message", "sender"))
    yield from _category(template, message.type, where, place)
    yield from _fixed_text(campaign, template, place)


def _category(template: DltTemplate, route: str, where: str, place: _Place
              ) -> Iterator[Diagnostic]:
    if not template.category:
        return
    key: KeyPath = ("message", "type")
    if template.category == "Promotional" and route != "MKT":
        yield place.error(f"template {template.id} is Promotional ({where}): it may go only as "
                          f"type MKT, not {route}", key)
    elif route == "MKT" and template.category != "Promotional":
        yield place.error(f"type MKT needs a Promotional template; {template.id} is "
                          f"{template.category} ({where})", key)


def _fixed_text(campaign: Campaign, template: DltTemplate, place: _Place
                ) -> Iterator[Diagnostic]:
    assert campaign.dlt is not None
    matcher = matcher_for(template.content, campaign.dlt.max_variable_length)
    if matcher.variables and matcher.fixed_share < MIN_FIXED_SHARE:
        yield place.warning(
            f"template {template.id}'s fixed text is {matcher.fixed_share:.0%} of the longest "
            f"message it allows ({matcher.variables} {{#var#}} of up to "
            f"{matcher.max_len} characters): TRAI expects at least 30%", ("message", "template_id"))
    body = campaign.message.body
    if body is None:
        return
    parsed = parse_body(body)
    smart = campaign.message.smart_encoding
    # The body as characters (with their offsets in the body as written) and placeholders.
    pieces: list[str | None] = []
    offsets: list[int] = []
    spans = iter(parsed.spans)
    span = next(spans, None)
    for k in range(len(parsed.names) + 1):
        end = parsed.offsets[k] if k < len(parsed.names) else len(body) + 1
        while span is not None and span[0] < end:
            at, text = span
            for n, ch in enumerate(text):
                for out in (smart_gsm(ch) if smart else ch):
                    pieces.append(out)
                    offsets.append(at + n)
            span = next(spans, None)
        if k < len(parsed.names):
            pieces.append(WILD)
            offsets.append(parsed.offsets[k])
    difference = matcher.first_difference(pieces)
    if difference is None:
        return
    offset = offsets[difference.offset] if difference.offset is not None else len(body) - 1
    line, col = place.in_body(max(offset, 0))
    kind = "no message can match it" if parsed.names else "it does not match"
    yield error(f"the body differs from its DLT template, so {kind}: "
                f"{difference.describe(template.id)}", place.path, line, col, dotted(_BODY))


# --- encoding -----------------------------------------------------------------------------------

def _encoding(campaign: Campaign, place: _Place) -> list[Diagnostic]:
    message = campaign.message
    if message.body is None or message.unicode in ("0", "1"):  # "0": warned in runner.rules
        return []
    parsed = parse_body(message.body)
    smart = message.smart_encoding
    seen: dict[str, list[int]] = {}
    pieces = list(parsed.spans)
    for k, fallback in enumerate(parsed.fallbacks):
        if fallback:
            start = parsed.offsets[k] + len(parsed.names[k]) + 2  # past "{name|"
            pieces.append((start, fallback))
    for at, text in sorted(pieces):
        for n, ch in enumerate(text):
            if is_gsm(ch) or (smart and smart_replacement(ch) is not None):
                continue
            seen.setdefault(ch, []).append(at + n)
    if not seen:
        return []
    composer = Composer.for_campaign(campaign)
    estimate = composer.estimate()
    now = composer.segments(estimate)
    plain = "".join(ch if ch not in seen else (smart_replacement(ch) or "?") for ch in estimate)
    instead = composer.segments(plain)
    cost = (f"{_parts(now.parts)} instead of {instead.parts}" if now.parts != instead.parts
            else f"still {_parts(now.parts)}, but 70 characters a part instead of 160")
    found: list[Diagnostic] = []
    for ch, offsets in list(seen.items())[:_SHOWN_CHARS]:
        places = [place.in_body(o) for o in offsets]
        shown = ", ".join(f"{line}:{col}" for line, col in places[:3])
        if len(places) > 3:
            shown += f" and {len(places) - 3} more"
        hint = ""
        if smart_replacement(ch) is not None:
            hint = f"; smart_encoding: true would send {smart_replacement(ch)!r} instead"
        name = unicodedata.name(ch, f"U+{ord(ch):04X}").lower()
        found.append(warning(f"{ch} ({name}) at {shown} forces UCS-2: {cost}{hint}",
                             place.path, *places[0], dotted(_BODY)))
    rest = len(seen) - _SHOWN_CHARS
    if rest > 0:
        found.append(warning(f"{rest} more characters outside GSM-7 in the body (not shown)",
                             place.path, *place.at(_BODY), dotted(_BODY)))
    return found


def _parts(n: int) -> str:
    return f"{n} part" + ("s" if n != 1 else "")
