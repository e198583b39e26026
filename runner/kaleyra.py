"""The Kaleyra SMS API: endpoint resolution, request building, one attempt, answer classification.

Every answer (or failure to get one) becomes one of four outcomes the engine acts on:

    Accepted    2xx with ``data[]``: message ids mapped back to our numbers by their digits
    Rejected    permanent: other 4xx, E4xx/E6xx codes, 401/403 (the key was refused)
    Transient   nothing was processed, try again: connection refused, connect timeout, 429,
                502/503/504, E103/E403
    Ambiguous   it may have been delivered: 500, a reset, disconnect or read timeout after the
                request was sent, a 2xx body we cannot read

A connection dropped by the server before it answered looks the same on the wire whether the
server had accepted the request or not, so both are Ambiguous; only a refused connection (or a
connect timeout) proves nothing was sent.

The API key lives in a ``Secret`` and only ``post_sms``/``get_status`` reveal it, into the header.
Every message we build is our own text (never ``str(exc)`` of an aiohttp error, which can carry
request details) and is scrubbed of the key once more before it leaves this module.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from runner import __version__
from runner.errors import InputError, display_path, error
from runner.model import API_DOMAINS, Account, Campaign, Encoding

SID_ENV: Final = "KALEYRA_SID"
BASE_URL_ENV: Final = "KALEYRA_BASE_URL"
USER_AGENT: Final = f"runner/{__version__}"

TRANSIENT_CODES: Final = frozenset({"E103", "E403"})
SUCCESS_CODES: Final = frozenset({"E100", "E101"})  # "submitted", "campaign accepted"
TRANSIENT_HTTP: Final = frozenset({429, 502, 503, 504})
STATUS_BATCH: Final = 100  # message ids per status request we recommend to callers

_SID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")  # how environment variables are named
_ECODE_RE = re.compile(r"E\d{3}")
_NON_DIGITS = re.compile(r"\D+")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_SNIPPET = 200  # characters of an unreadable body quoted in a message
# What a request can fail with on the wire; anything else is a bug and should surface.
_NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class Secret:
    """The API key. Printing, logging or repr() shows ``***``; only ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the key to disk; nobody should need it.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str  # "https://api.in.kaleyra.io" or $KALEYRA_BASE_URL, no trailing slash
    sid: str
    api_key: Secret

    @property
    def sms_url(self) -> str:
        return f"{self.base_url}/v1/{self.sid}/sms"

    @property
    def status_url(self) -> str:
        return f"{self.base_url}/v1/{self.sid}/sms/status"


# --------------------------------------------------------------------------- outcomes


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


# --------------------------------------------------------------------------- endpoint


def resolve_endpoint(campaign: Campaign, env: Mapping[str, str]) -> Endpoint:
    """Where and how to call: raises InputError naming what is missing or unsafe."""
    return resolve_account_endpoint(campaign.account, display_path(campaign.path), env)


def resolve_account_endpoint(account: Account, path: str, env: Mapping[str, str]) -> Endpoint:
    """``resolve_endpoint`` from the account alone (`campaign status` has only the journal's
    settings); ``path`` is the campaign file as shown in messages."""
    sid = account.sid or env.get(SID_ENV, "").strip()
    if not sid:
        msg = f"no account SID: set account.sid in the campaign or the {SID_ENV} variable"
        raise InputError(f"{path}: {msg}", [error(msg, path, field="account.sid")])
    if not _SID_RE.fullmatch(sid):
        msg = f"account SID {sid!r} is not valid (letters, digits, '_' and '-' only)"
        raise InputError(f"{path}: {msg}", [error(msg, path, field="account.sid")])
    var = account.api_key_env
    key = env.get(var, "").strip()
    if not key:
        # Name the variable only when it looks like one: a key pasted there must not be echoed.
        named = var if _ENV_NAME_RE.fullmatch(var) else "named by account.api_key_env"
        msg = f"the API key variable {named} is not set (or empty)"
        raise InputError(f"{path}: {msg}", [error(msg, path, field="account.api_key_env")])
    if not key.isprintable() or not key.isascii():
        msg = (f"the API key in {var if _ENV_NAME_RE.fullmatch(var) else 'its variable'} holds "
               "a control or non-ASCII character (a stray newline?); set it again")
        raise InputError(f"{path}: {msg}", [error(msg, path, field="account.api_key_env")])
    base = env.get(BASE_URL_ENV, "").strip()
    base_url = check_base_url(base) if base else f"https://{API_DOMAINS[account.region]}"
    return Endpoint(base_url=base_url, sid=sid, api_key=Secret(key))


def check_base_url(url: str) -> str:
    """A safe base URL without trailing slash; http:// only for loopback hosts."""
    where = f"{BASE_URL_ENV}={url!r}"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise InputError(f"{where} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InputError(f"{where} must be an http(s) URL such as https://api.in.kaleyra.io")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{BASE_URL_ENV} must not contain a user name or password")
    if parts.query or parts.fragment:
        raise InputError(f"{where} must not have a query or fragment")
    if parts.scheme == "http" and not is_loopback(host):
        raise InputError(
            f"{where} uses plain http:// for a host that is not loopback; "
            "use https:// (http is accepted only for 127.0.0.1, ::1 and localhost)"
        )
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- request


def build_payload(campaign: Campaign, numbers: Sequence[str], body: str | None) -> dict[str, str]:
    """The request fields; ``body`` is the rendered text for these numbers (None: template only)."""
    msg = campaign.message
    payload = {
        "to": ",".join(n if n.startswith("+") else f"+{n}" for n in numbers),
        "sender": msg.sender,
        "type": msg.type,
        "flash": "1" if msg.flash else "0",
    }
    if body is not None:
        payload["body"] = body
    if msg.template_id:
        payload["template_id"] = msg.template_id
    if msg.entity_id:
        payload["entity_id"] = msg.entity_id
    if msg.unicode is not None:
        payload["unicode"] = msg.unicode
    ref = _NON_ALNUM.sub("", campaign.name)[:150]  # Kaleyra: refs are alphanumeric (E607-E610)
    if ref:
        payload["ref"] = ref
    return payload


def _json_fields(payload: Mapping[str, str]) -> dict[str, object]:
    fields: dict[str, object] = dict(payload)
    if "flash" in fields:
        fields["flash"] = int(payload["flash"])  # the seed documents flash as an Integer
    return fields


def _client_timeout(timeout: float) -> aiohttp.ClientTimeout:
    # Connecting gets its own budget so that a timeout while connecting (nothing sent, Transient)
    # is never reported by the overall timer (which would be Ambiguous).
    return aiohttp.ClientTimeout(
        total=2 * timeout, connect=timeout, sock_connect=timeout, sock_read=timeout
    )


async def post_sms(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    payload: Mapping[str, str],
    *,
    encoding: Encoding,
    timeout: float,
    numbers: Sequence[str],
) -> Outcome:
    """One attempt. Never raises for network trouble; cancellation propagates."""
    key = endpoint.api_key.reveal()
    headers = {"api-key": key, "Accept": "application/json", "User-Agent": USER_AGENT}
    if encoding == "form":
        form, fields = dict(payload), None
    else:
        form, fields = None, _json_fields(payload)
    try:
        async with session.post(
            endpoint.sms_url,
            data=form,
            json=fields,
            headers=headers,
            timeout=_client_timeout(timeout),
            allow_redirects=False,  # a redirected POST may be replayed as GET elsewhere
        ) as resp:
            raw = await resp.read()
            status, resp_headers = resp.status, resp.headers
    except _NETWORK_ERRORS as exc:  # every network failure becomes an outcome
        outcome: Outcome = network_outcome(exc, endpoint)
    else:
        text = raw.decode("utf-8", errors="replace")
        outcome = classify_response(status, resp_headers, text, numbers)
    return _scrub(outcome, key)


def network_outcome(exc: BaseException, endpoint: Endpoint) -> Transient | Ambiguous | Rejected:
    """What a failure to get an answer means for delivery. Messages are our own words."""
    where = _host_of(endpoint.base_url)
    # Order matters: connect errors subclass ClientOSError, timeouts subclass TimeoutError.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Transient("CONNECT_TIMEOUT", f"timed out connecting to {where}")
    if isinstance(exc, aiohttp.ClientSSLError):
        return Transient("TLS", f"TLS handshake with {where} failed (certificate or protocol)")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return Transient("CONNECT", f"could not connect to {where}: {reason}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Ambiguous("DISCONNECTED", f"{where} closed the connection before answering")
    if isinstance(exc, TimeoutError):  # SocketTimeoutError, total timeout
        return Ambiguous("TIMEOUT", f"no answer from {where} in time after sending")
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return Ambiguous("RESET", f"the connection to {where} was reset after sending")
    if isinstance(exc, aiohttp.InvalidURL):
        return Rejected("BAD_URL", f"the API URL for {where} is not valid")
    return Ambiguous("PROTOCOL", f"unreadable answer from {where} ({type(exc).__name__})")


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


# --------------------------------------------------------------------------- classification


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
    if http_status >= 500 and code not in ("E103", "E403"):
        # The server failed part way: whatever code it adds, it may have sent first.
        return Ambiguous(code or f"HTTP{http_status}", message or _http_text(http_status, text),
                         http_status)
    if _ECODE_RE.fullmatch(code) or (code and 400 <= http_status < 500):
        return _by_code(code, message, http_status)
    if 300 <= http_status < 500:
        return Rejected(f"HTTP{http_status}", _http_text(http_status, text), http_status)
    # 500 and anything else: the server may have sent before failing.
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


def _by_code(code: str, message: str, status: int) -> Rejected | Transient:
    text = message or f"Kaleyra error {code}"
    if code in TRANSIENT_CODES:
        return Transient(code, text, status, None)
    return Rejected(code, text, status)


def match_recipients(data: Sequence[object], numbers: Sequence[str],
                     request_id: str | None) -> Accepted:
    """Map data[] back to our numbers by digits (Kaleyra drops the '+'; order is not promised)."""
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


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN/inf
        return None
    return max(0.0, seconds)


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


def _scrub(outcome: Outcome, key: str) -> Outcome:
    # A server that echoes the key back must not put it in our report.
    if isinstance(outcome, Accepted) or len(key) < 4 or key not in outcome.message:
        return outcome
    return replace(outcome, message=outcome.message.replace(key, "***"))


# --------------------------------------------------------------------------- delivery status


async def get_status(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    message_ids: Sequence[str],
    *,
    timeout: float,
) -> StatusOutcome:
    """GET status_url?message_ids=a,b. Safe to repeat, so unclear failures are Transient."""
    if not message_ids:
        return StatusAnswer()
    key = endpoint.api_key.reveal()
    headers = {"api-key": key, "Accept": "application/json", "User-Agent": USER_AGENT}
    try:
        async with session.get(
            endpoint.status_url,
            params={"message_ids": ",".join(message_ids)},
            headers=headers,
            timeout=_client_timeout(timeout),
            allow_redirects=False,
        ) as resp:
            raw = await resp.read()
            status, resp_headers = resp.status, resp.headers
    except _NETWORK_ERRORS as exc:  # every network failure becomes an outcome
        failed = network_outcome(exc, endpoint)
        result: StatusOutcome = (
            failed if isinstance(failed, Rejected) else Transient(failed.code, failed.message)
        )
    else:
        result = classify_status(status, resp_headers, raw.decode("utf-8", errors="replace"),
                                 message_ids)
    if isinstance(result, StatusAnswer) or len(key) < 4 or key not in result.message:
        return result
    return replace(result, message=result.message.replace(key, "***"))


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
