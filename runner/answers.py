"""Kaleyra's answers, classified: what one HTTP answer means for delivery.

Every answer to ``POST /sms`` (or failure to get one, see ``runner.kaleyra.network_outcome``)
becomes one of four outcomes the engine acts on:

    Accepted    2xx with ``data[]``: message ids mapped back to our numbers by their digits
    Rejected    permanent: other 4xx, E4xx/E6xx codes, 401/403 (the key was refused)
    Transient   nothing was processed, try again: connection refused, connect timeout, 429,
                503, E403 (Kaleyra's "try again") on any status but a 5xx
    Ambiguous   it may have been delivered: 3xx, 500 (whatever its code), 502, 504 and every
                other 5xx, E103 ("internal error"), a reset, disconnect or read timeout after the
                request was sent, a 2xx body we cannot read or that was too big to read

A gateway (502, 504) or a redirect (3xx) may stand in front of a server that had already taken
the request, so none of them proves that nothing was sent.

A connection dropped by the server before it answered looks the same on the wire whether the
server had accepted the request or not, so both are Ambiguous; only a refused connection (or a
connect timeout) proves nothing was sent.

An answer to ``GET /sms/status`` becomes a ``StatusAnswer`` (a ``Delivery`` per message id),
``Rejected`` or ``Transient``: asking again is safe, so nothing there is Ambiguous.

Every message is our own words plus a short snippet of the body; nothing here raises on a
malformed answer. Pure functions of (status, headers, text): no network, no key.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Final

TRANSIENT_CODES: Final = frozenset({"E403"})  # "something went wrong, try again"
AMBIGUOUS_CODES: Final = frozenset({"E103"})  # "internal error": it may have sent first
SUCCESS_CODES: Final = frozenset({"E100", "E101"})  # "submitted", "campaign accepted"
TRANSIENT_HTTP: Final = frozenset({429, 503})
# Retry-After beyond this many seconds is taken as "much later" (a date in 2099, 10**30): the
# run stops either way, and a time this far off still fits a datetime.
MAX_RETRY_AFTER: Final = 1e10
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")

_ECODE_RE = re.compile(r"E\d{3}")
_NON_DIGITS = re.compile(r"\D+")
_SNIPPET = 200  # characters of an unreadable body quoted in a message


@dataclass(frozen=True, slots=True)
class Accepted:
    message_ids: Mapping[str, str]  # E.164 -> message_id
    unmatched: tuple[str, ...] = ()  # numbers sent but absent from data[]
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    code: str
    message: str
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class Transient:
    code: str
    message: str
    http_status: int | None = None
    retry_after: float | None = None  # seconds, from Retry-After


@dataclass(frozen=True, slots=True)
class Ambiguous:
    code: str
    message: str
    http_status: int | None = None


Outcome = Accepted | Rejected | Transient | Ambiguous


@dataclass(frozen=True, slots=True)
class Delivery:
    """Kaleyra's word on one message: ``status`` e.g. Delivered, ``detail`` e.g. DELIVERED."""

    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    deliveries: Mapping[str, Delivery] = field(default_factory=dict)  # message_id -> Delivery
    missing: tuple[str, ...] = ()  # ids asked for that the answer did not mention


StatusOutcome = StatusAnswer | Rejected | Transient


# --------------------------------------------------------------------------- sms answers


def classify_response(
    http_status: int,
    headers: Mapping[str, str],
    text: str,
    numbers: Sequence[str],
    *,
    now: float | None = None,
) -> Outcome:
    """Turn one HTTP answer into an outcome. ``now`` (epoch seconds) is for Retry-After dates."""
    body = _json_object(text)
    code, message = _error_of(body)
    if http_status in TRANSIENT_HTTP:
        retry_after = parse_retry_after(headers.get("Retry-After"), now=now)
        return Transient(code or f"HTTP{http_status}",
                         message or _http_text(http_status, text), http_status, retry_after)
    if http_status in (401, 403):
        detail = f" ({message})" if message else ""
        return Rejected(f"HTTP{http_status}",
                        f"the API key was refused (HTTP {http_status}){detail}", http_status)
    if 200 <= http_status < 300:
        return _classify_success(http_status, body, code, message, numbers, text)
    if http_status >= 500 or 300 <= http_status < 400:
        # The server failed part way, or something in front of it answered: whatever code it
        # adds, it may have sent first.
        return Ambiguous(code or f"HTTP{http_status}", message or _http_text(http_status, text),
                         http_status)
    if _ECODE_RE.fullmatch(code) or (code and 400 <= http_status < 500):
        return _by_code(code, message, http_status)
    if 400 <= http_status < 500:
        return Rejected(f"HTTP{http_status}", _http_text(http_status, text), http_status)
    # 1xx and anything else: we cannot tell what happened.
    return Ambiguous(code or f"HTTP{http_status}", message or _http_text(http_status, text),
                     http_status)


def _classify_success(status: int, body: dict[str, object] | None, code: str, message: str,
                      numbers: Sequence[str], text: str) -> Outcome:
    request_id = _str(body.get("id")) if body else ""
    data = body.get("data") if body else None
    if isinstance(data, list):
        return match_recipients(data, numbers, request_id or None)
    if code in SUCCESS_CODES:
        return Accepted({}, tuple(numbers), request_id or None)
    if _ECODE_RE.fullmatch(code):
        return _by_code(code, message, status)
    # Garbage with a 2xx: Kaleyra may well have taken it.
    return Ambiguous("BAD_RESPONSE", f"unexpected answer with HTTP {status}: {_snippet(text)}",
                     status)


def _by_code(code: str, message: str, status: int) -> Rejected | Transient | Ambiguous:
    text = message or f"Kaleyra error {code}"
    if code in TRANSIENT_CODES:
        return Transient(code, text, status, None)
    if code in AMBIGUOUS_CODES:
        return Ambiguous(code, text, status)
    return Rejected(code, text, status)


def match_recipients(data: Sequence[object], numbers: Sequence[str],
                     request_id: str | None) -> Accepted:
    """Map data[] back to our numbers by digits (Kaleyra drops the '+'; order is not promised)."""
    in_order = _in_order(data, numbers)
    if in_order is not None:
        return Accepted(in_order, (), request_id)
    by_digits = {_digits(n): n for n in numbers}
    ids: dict[str, str] = {}
    leftovers: list[tuple[str, str]] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        mid, digits = _str(item.get("message_id")), _digits(_str(item.get("recipient")))
        if not mid:
            continue
        number = by_digits.get(digits)
        if number is not None and number not in ids:
            ids[number] = mid
        elif digits:
            leftovers.append((digits, mid))
    # A recipient written without its country code still matches one number's national tail.
    for digits, mid in leftovers:
        if len(digits) < 7:
            continue
        tails = [n for d, n in by_digits.items() if d.endswith(digits) and n not in ids]
        if len(tails) == 1:
            ids[tails[0]] = mid
    unmatched = tuple(n for n in numbers if n not in ids)
    return Accepted(ids, unmatched, request_id)


def _in_order(data: Sequence[object], numbers: Sequence[str]) -> dict[str, str] | None:
    """The usual answer, checked in one loop: an item a number, in our order, each the
    number's digits (no '+') with a message id. None for anything else (the general match)."""
    if len(data) != len(numbers):
        return None
    ids: dict[str, str] = {}
    for item, number in zip(data, numbers, strict=True):
        if type(item) is not dict:
            return None
        mid = item.get("message_id")
        digits = number[1:] if number[:1] == "+" else number
        if type(mid) is not str or not mid or item.get("recipient") != digits:
            return None
        ids[number] = mid
    return ids if len(ids) == len(numbers) else None  # a number twice: the general match


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or not
    one of those (``-3``, ``1e308``, ``soon``: the server's words carry no wait we can trust).
    A date in the past is 0; anything beyond ``MAX_RETRY_AFTER`` is that."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _json_object(text: str) -> dict[str, object] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error_of(body: dict[str, object] | None) -> tuple[str, str]:
    """(code, message) from {"code", "message", "error": {...}} or {"error": {"code", ...}}."""
    if body is None:
        return "", ""
    err = body.get("error")
    code = _str(body.get("code"))
    message = _str(body.get("message"))
    if isinstance(err, dict):
        code = code or _str(err.get("code"))
        message = message or _str(err.get("message"))
        if not message:
            message = next((_str(v) for v in err.values() if _str(v)), "")
    return code.strip(), " ".join(message.split())[:500]


def _str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _digits(text: str) -> str:
    if text.isascii() and text.isdigit():
        return text  # the common case, a recipient or an E.164 number less its '+'
    if text[:1] == "+" and text[1:].isascii() and text[1:].isdigit():
        return text[1:]
    return _NON_DIGITS.sub("", text)


def _http_text(status: int, text: str) -> str:
    snippet = _snippet(text)
    return f"HTTP {status}" + (f": {snippet}" if snippet else "")


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "..."


# --------------------------------------------------------------------------- status answers


def classify_status(http_status: int, headers: Mapping[str, str], text: str,
                    message_ids: Sequence[str], *, now: float | None = None) -> StatusOutcome:
    body = _json_object(text)
    data = body.get("data") if body else None
    if 200 <= http_status < 300 and isinstance(data, list):
        return _deliveries(data, message_ids)
    sms = classify_response(http_status, headers, text, (), now=now)
    if isinstance(sms, Rejected | Transient):
        return sms
    if isinstance(sms, Ambiguous):
        return Transient(sms.code, sms.message, sms.http_status, None)
    return Transient("BAD_RESPONSE", f"unexpected status answer: {_snippet(text)}", http_status)


def _deliveries(data: Sequence[object], message_ids: Sequence[str]) -> StatusAnswer:
    items = [item for item in data if isinstance(item, dict)]
    found: dict[str, Delivery] = {}
    keyed = [item for item in items if _str(item.get("message_id"))]
    if keyed:
        wanted = set(message_ids)
        for item in keyed:
            mid = _str(item.get("message_id"))
            if mid in wanted:
                found[mid] = _delivery(item)
    elif len(items) == len(message_ids):
        # The documented sample carries no message_id: then only the order can match them.
        found = {mid: _delivery(item) for mid, item in zip(message_ids, items, strict=True)}
    missing = tuple(mid for mid in message_ids if mid not in found)
    return StatusAnswer(found, missing)


def _delivery(item: Mapping[str, object]) -> Delivery:
    detail = _str(item.get("status_details")) or _str(item.get("status_detail"))
    return Delivery(_str(item.get("status")) or "Unknown", detail)
