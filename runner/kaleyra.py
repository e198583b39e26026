"""The Kaleyra SMS API on the wire: request building and one attempt of each call.

``post_sms`` sends one batch and ``get_status`` asks about up to ``STATUS_BATCH`` message ids;
neither raises for network trouble. An answer is classified by ``runner.answers``; a failure to
get one by ``network_outcome`` here (connect errors are Transient: nothing was sent; a reset or a
timeout after sending is Ambiguous). Where to call and with which key comes from
``runner.endpoint``.

The API key lives in a ``Secret`` and only ``post_sms``/``get_status`` reveal it, into the header.
Every message we build is our own text (never ``str(exc)`` of an aiohttp error, which can carry
request details) and is scrubbed of the key once more before it leaves this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from runner import __version__
from runner.answers import (
    Accepted,
    Ambiguous,
    Outcome,
    Rejected,
    StatusAnswer,
    StatusOutcome,
    Transient,
    classify_response,
    classify_status,
)
from runner.endpoint import Endpoint
from runner.model import Campaign, Encoding

USER_AGENT: Final = f"runner/{__version__}"
STATUS_BATCH: Final = 100  # message ids per status request we recommend to callers
MAX_ANSWER_BYTES: Final = 1 << 20  # an answer body beyond this is not read (memory stays flat)
# Pooled connections idle longer than this are not reused. A server that closes an idle
# connection just as our request crosses it leaves the request unread, but the client sees what
# it sees when a server takes a request and dies: a disconnect, which must count as "may have
# been sent". Retrying it once on a fresh connection would resend the real ones, so instead we
# never offer the server a connection near its idle limit: 1 s is below the shortest keep-alive
# in common use (gunicorn 2 s, Node.js and Apache 5 s, nginx 75 s), and a connection busy at our
# rates (a request every few tenths of a second) is still reused.
KEEPALIVE_SECONDS: Final = 1.0
_CHUNK = 1 << 16

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
# What a request can fail with on the wire; anything else is a bug and should surface.
_NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


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
            raw = await read_capped(resp)
            status, resp_headers = resp.status, resp.headers
    except _NETWORK_ERRORS as exc:  # every network failure becomes an outcome
        outcome: Outcome = network_outcome(exc, endpoint)
    else:
        if raw is None:
            outcome = _too_big(status, resp_headers, numbers)
        else:
            outcome = classify_response(status, resp_headers, raw.decode("utf-8", "replace"),
                                        numbers)
    return _scrub(outcome, key)


def connector(limit: int) -> aiohttp.TCPConnector:
    """The connection pool of a run: ``limit`` connections, kept alive KEEPALIVE_SECONDS."""
    return aiohttp.TCPConnector(limit=limit, keepalive_timeout=KEEPALIVE_SECONDS)


async def read_capped(resp: aiohttp.ClientResponse, cap: int = MAX_ANSWER_BYTES) -> bytes | None:
    """The body, or None when it is longer than ``cap`` bytes: then it is not read further
    (the connection is closed, not reused) and memory holds at most ``cap`` of it."""
    if resp.content_length is not None and resp.content_length > cap:
        resp.close()
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(_CHUNK):
        size += len(chunk)
        if size > cap:
            resp.close()
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(status: int, headers: Mapping[str, str], numbers: Sequence[str]) -> Outcome:
    """An answer too long to read: its status alone decides, and a success is unknown (the
    message ids were in the part not read)."""
    if 200 <= status < 300:
        return Ambiguous("HUGE_ANSWER", f"the answer (HTTP {status}) was over "
                         f"{MAX_ANSWER_BYTES >> 20} MB and was not read: it may have been "
                         "processed", status)
    return classify_response(status, headers, "", numbers)


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
            raw = await read_capped(resp)
            status, resp_headers = resp.status, resp.headers
    except _NETWORK_ERRORS as exc:  # every network failure becomes an outcome
        failed = network_outcome(exc, endpoint)
        result: StatusOutcome = (
            failed if isinstance(failed, Rejected) else Transient(failed.code, failed.message)
        )
    else:
        if raw is None:  # asking again is safe, and a smaller answer may come
            result = Transient("HUGE_ANSWER", f"the status answer (HTTP {status}) was over "
                               f"{MAX_ANSWER_BYTES >> 20} MB and was not read", status)
        else:
            result = classify_status(status, resp_headers, raw.decode("utf-8", "replace"),
                                     message_ids)
    if isinstance(result, StatusAnswer) or len(key) < 4 or key not in result.message:
        return result
    return replace(result, message=result.message.replace(key, "***"))
