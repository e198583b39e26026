"""Campaign rules the schema cannot say, checked on a built ``Campaign``.

``check_rules(campaign, marks)`` returns Diagnostics located in the campaign file with ``marks``
(from ``load_campaign``); problems of a CSV as a whole come from ``runner.recipients``. It reads
only CSV headers, never every row: per-row checks belong to the recipients pass.

Errors: a route type the region does not offer; a recipients file or suppression list that is
missing; a phone column the CSV lacks; a body that is not a valid template, or a placeholder that
is not a column.
Warnings: a flash message longer than one part; unicode "0" with characters outside GSM-7;
OTP with a batch_size (OTP goes one number a request); a window that starts when it ends (open
around the clock); a fallback_timezone without a window in the recipient's zone; India + MKT
sending at any hour (TRAI); India without a DLT template or entity ID; batches that a
per-second limit or a cap shrinks below batch_size; an expiry that has passed.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from runner import recipients
from runner.compose import Composer
from runner.errors import Diagnostic, display_path, error, quote, warning
from runner.message import TemplateError, parse_body, placeholders, smart_gsm
from runner.message_rules import message_rules
from runner.model import TYPES_BY_REGION, Campaign
from runner.safetext import parts_problem, unsafe_character
from runner.yamlload import KeyPath, Marks, dotted

_BODY: KeyPath = ("message", "body")


class _Found:
    """Diagnostics for one campaign file, placed with its marks."""

    def __init__(self, campaign: Campaign, marks: Marks) -> None:
        self.path = display_path(campaign.path)
        self.marks = marks
        self.items: list[Diagnostic] = []

    def error(self, message: str, key_path: KeyPath, *, code: str, at_key: bool = False
              ) -> None:
        line, col = self._place(key_path, at_key)
        self.items.append(error(message, self.path, line, col, dotted(key_path), code=code))

    def warning(self, message: str, key_path: KeyPath, *, code: str, at_key: bool = False
                ) -> None:
        line, col = self._place(key_path, at_key)
        self.items.append(warning(message, self.path, line, col, dotted(key_path), code=code))

    def in_body(self, severity: str, message: str, offset: int, *, code: str) -> None:
        line, col = self.marks.offset_at(_BODY, offset) or (1, 1)
        make = error if severity == "error" else warning
        self.items.append(make(message, self.path, line, col, dotted(_BODY), code=code))

    def _place(self, key_path: KeyPath, at_key: bool) -> tuple[int, int]:
        found = self.marks.key_at(key_path) if at_key else self.marks.at(key_path)
        return found or (1, 1)


def check_rules(campaign: Campaign, marks: Marks) -> list[Diagnostic]:
    """Every rule problem of ``campaign``, errors and warnings, in file order."""
    found = _Found(campaign, marks)
    _route(campaign, found)
    _window(campaign, found)
    columns = _files(campaign, found)
    _body(campaign, columns, found)
    found.items.extend(message_rules(campaign, marks))  # DLT template, UCS-2 characters
    _safe_body(campaign, found)
    _india(campaign, found)
    _pacing(campaign, found)
    return sorted(found.items, key=lambda d: (d.path != found.path, d.path, d.line or 0,
                                              d.col or 0))


def _route(campaign: Campaign, found: _Found) -> None:
    region, kind = campaign.account.region, campaign.message.type
    allowed = TYPES_BY_REGION[region]
    if kind not in allowed:
        found.error(f"type {kind} is not offered in region {region} "
                    f"(use one of: {', '.join(allowed)})", ("message", "type"),
                    code="type-not-in-region")
    size_given = ("sending", "batch_size") in found.marks
    if kind == "OTP" and size_given and campaign.sending.batch_size > 1:
        found.warning(f"OTP is sent one number a request: batch_size {campaign.sending.batch_size}"
                      " is not used", ("sending", "batch_size"), code="otp-batch-size")


def _window(campaign: Campaign, found: _Found) -> None:
    window = campaign.sending.window
    key_path: KeyPath = ("sending", "window")
    # runner.window reads start == end as open around the clock: say so, it is rarely meant.
    all_day = window is not None and window.start == window.end
    if window is not None and all_day:
        found.warning(f"window starts and ends at {window.start:%H:%M}, which means open around "
                      "the clock: write 'window: always' if that is meant", key_path,
                      code="window-all-day")
    fallback: KeyPath = ("sending", "fallback_timezone")
    if fallback in found.marks and (window is None or window.timezone != "recipient"):
        found.warning("fallback_timezone is used only with a window in the recipient's time "
                      "zone (timezone: recipient, or window: us-tcpa)", fallback,
                      code="fallback-unused")
    india_mkt = campaign.account.region == "IN" and campaign.message.type == "MKT"
    if india_mkt and key_path in found.marks and (window is None or all_day):
        found.warning("promotional (MKT) messages would go out at any hour; in India TRAI "
                      "allows them only from 09:00 to 21:00 IST", key_path,
                      code="trai-hours")


def _files(campaign: Campaign, found: _Found) -> tuple[str, ...] | None:
    """Check the recipients file and suppression lists; the CSV's columns when readable."""
    spec = campaign.recipients
    for i, path in enumerate(spec.exclude):
        if not path.is_file():
            found.error(_missing("suppression list", path), ("recipients", "exclude", i),
                        code="file-missing")
    source: KeyPath = ("recipients", "source")
    if not spec.source.is_file():
        found.error(_missing("recipients file", spec.source), source, code="file-missing")
        return None
    columns, problems = recipients.read_columns(spec)
    found.items.extend(problems)
    if not columns:
        return None
    if spec.phone_column not in columns:
        given: KeyPath = ("recipients", "phone_column")
        hint = "" if given in found.marks else "; name it with recipients.phone_column"
        found.error(f"{display_path(spec.source)} has no column {quote(spec.phone_column)} "
                    f"({_columns_hint(spec.phone_column, columns)}){hint}",
                    given if given in found.marks else source, code="no-phone-column")
    return columns


def _missing(what: str, path: Path) -> str:
    if path.is_dir():
        return f"{what} {display_path(path)} is a folder, not a CSV file"
    return f"{what} not found: {display_path(path)}"


def _columns_hint(name: str, columns: Sequence[str]) -> str:
    """The column nearest ``name``, else how many there are: never the header line itself (the
    file may be something else than a CSV; diagnostics quote at most one cell)."""
    near = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    if not near:
        lowered = {c.lower(): c for c in columns}
        near = [lowered[n] for n in difflib.get_close_matches(name.lower(), list(lowered), n=1)]
    if near:
        return f"did you mean {quote(near[0])}?"
    return f"it has {len(columns)} column" + ("s" if len(columns) != 1 else "")


def _body(campaign: Campaign, columns: tuple[str, ...] | None, found: _Found) -> None:
    message = campaign.message
    if message.body is None:
        return
    try:
        names = placeholders(message.body)
    except TemplateError as exc:
        found.in_body("error", f"body: {exc.message}", exc.column, code="bad-placeholder")
        return
    if columns is not None:
        for name in names:
            if name not in columns:
                found.in_body("error", _not_a_column(name, columns, campaign),
                              _placeholder_offset(message.body, name), code="unknown-column")
    # The text as sent (escapes collapsed, smart_encoding applied); placeholders filled with
    # their own names: a rough length until rows are read.
    composer = Composer.for_campaign(campaign)
    segments = composer.segments(composer.estimate())
    if message.flash and segments.parts > 1:
        found.warning(f"a flash message should fit in one part: this body needs {segments.parts}"
                      f" ({segments.units} of {segments.limit} {segments.encoding} characters)",
                      _BODY, code="flash-parts")
    if message.unicode == "0" and segments.encoding == "UCS-2":
        found.warning("unicode is \"0\" but the body has characters outside GSM-7: they may "
                      "not arrive as written", ("message", "unicode"), code="unicode-off")


def _safe_body(campaign: Campaign, found: _Found) -> None:
    """Control characters, lone surrogates and too many parts (``runner.safetext``)."""
    body = campaign.message.body
    if body is None:
        return
    bad = unsafe_character(body)
    if bad is not None:
        found.in_body("error", f"body holds {bad[1]}: it cannot be sent (write a newline as a "
                      "line break, not \\r)" if body[bad[0]] == "\r" else
                      f"body holds {bad[1]}: it cannot be sent", bad[0], code="unsafe-character")
    try:
        # The fixed text alone (placeholders empty): what every row's message needs at least.
        fixed = "".join(parse_body(body).literals)
    except TemplateError:
        return  # _body said why
    if campaign.message.smart_encoding:
        fixed = smart_gsm(fixed)  # what is sent
    too_long = parts_problem(fixed, campaign.message.max_parts,
                             ucs2=campaign.message.unicode == "1")
    if too_long is not None:
        where: KeyPath = ("message", "max_parts")
        found.error(f"body {too_long}" + ("" if where in found.marks else
                                          " (the default; raise it if that is meant)"), _BODY,
                    code="too-many-parts")


def _not_a_column(name: str, columns: Sequence[str], campaign: Campaign) -> str:
    text = f"placeholder {{{name}}} is not a column of {display_path(campaign.recipients.source)}"
    near = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    if near:
        return text + f" (did you mean {{{near[0][:40]}}}?)"
    return text + f" ({_columns_hint(name, columns)})"


def _placeholder_offset(body: str, name: str) -> int:
    """Offset of the first real ``{name}`` (not one inside ``{{...}}``)."""
    needle = "{" + name + "}"
    start = body.find(needle)
    while start >= 0:
        run = len(body[:start]) - len(body[:start].rstrip("{"))
        if run % 2 == 0:
            return start
        start = body.find(needle, start + 1)
    return 0


def _india(campaign: Campaign, found: _Found) -> None:
    if campaign.account.region != "IN":
        return
    message = campaign.message
    if message.template_id is None:
        found.warning("Indian traffic needs a DLT template: add message.template_id "
                      "(and message.entity_id)", ("message",), at_key=True,
                      code="dlt-template-missing")
    elif message.entity_id is None:
        found.warning("Indian traffic needs the DLT principal-entity ID: add message.entity_id",
                      ("message", "template_id"), code="dlt-entity-missing")


def _pacing(campaign: Campaign, found: _Found) -> None:
    """Batches shrunk by a per-second limit or a cap; an expiry already past."""
    sending = campaign.sending
    if campaign.message.type != "OTP":
        limits = campaign.batch_limits()
        if limits:
            name, size = min(limits.items(), key=lambda item: item[1])
            found.warning(f"batches shrink from {min(sending.batch_size, 100)} to {size} numbers "
                          f"to fit {name} ({getattr(sending, name):g}): whole batches fill each "
                          "second, and none carries more than that allows", ("sending", name),
                          code="batch-shrunk")
    if sending.expires is not None and sending.expires <= datetime.now(UTC):
        found.warning(f"expires {sending.expires.isoformat()} has passed: a send would send "
                      "nothing and report every row expired", ("sending", "expires"),
                      code="expired")
