"""A local Kaleyra-compatible server for trying the tool, integration tests and benchmarks.

Routes:

    POST /v1/{sid}/sms            the seed's endpoint; JSON or form body (sniffed, as the seed's
                                  own curl sends form fields under a JSON content type)
    GET  /v1/{sid}/sms/status     ?message_ids=a,b: delivery status of ids this server issued
    GET  /_sandbox/record         what was accepted and every request's answer, as JSON
    POST /_sandbox/reset          forget everything (record, issued ids, fault counters)

What POST /sms accepts and how it answers (its rules, in order, and the delivery verdicts) is
``runner.sandbox_rules``; ids this server did not issue are left out of a status answer's data[].
``runner.sandbox_thread`` runs the server in a thread of its own.

Faults (``Faults``) apply to POST /sms only, counted from 1 over every such request. When several
pick the same request the first in ``FAULT_KINDS`` order wins: drop_before, redirect, 429, 502,
503, 504, 500 answer without accepting anything; drop_after, 500_after (E103), 502_after,
504_after, huge and trickle accept (and record) the request first. ``drop_before`` reads the
request and closes the connection without accepting it; ``drop_after`` accepts it, then closes
without answering: the client cannot tell the two apart. ``huge`` answers 200 with
``huge_bytes`` of body (chunked, made as it is written, so the server holds none of it;
``SandboxRecord.streamed`` says how much went out before the client hung up); ``trickle`` writes
the success answer a byte every ``trickle_interval`` seconds. ``retry_after_text`` is sent
verbatim as Retry-After with 429 and 503. ``keepalive``: a request on a connection idle that
long is dropped unread (what a server's close of an idle connection does to a request that
crosses it on the wire). ``latency`` (and ``slow_latency`` on every ``slow_every``-th request)
delays every answer after the request was recorded, so a client timeout then is a real "sent but
unanswered".
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any, Final

from aiohttp import web

from runner.faults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    FAULT_KINDS,
    SANDBOX_API_KEY,
    SANDBOX_SID,
    Faults,
)
from runner.sandbox_rules import AcceptedRequest, Refusal, SmsRules, delivery_of, success_body

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "FAULT_KINDS", "SANDBOX_API_KEY", "SANDBOX_SID",
           "Faults", "SandboxRecord", "SandboxServer"]

_JSON: Final = "application/json"
_BEFORE: Final = frozenset({"redirect", "429", "502", "503", "504", "500"})
_AFTER: Final = {"500_after": (500, "E103", "Internal error"),
                 "502_after": (502, "", "Bad Gateway"), "504_after": (504, "", "Gateway Timeout")}


@dataclass(frozen=True, slots=True)
class RequestLog:
    at: float
    status: int  # 0: connection dropped without an answer
    count: int  # numbers in the request (0 when not read)
    fault: str | None = None  # the injected fault, if any

    def to_json(self) -> dict[str, object]:
        return {"at": self.at, "status": self.status, "count": self.count, "fault": self.fault}


@dataclass(slots=True)
class SandboxRecord:
    """What the server accepted and answered, in arrival order."""

    accepted: list[AcceptedRequest] = field(default_factory=list)
    requests: list[RequestLog] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)  # bytes of each huge answer written

    def deliveries(self) -> Counter[str]:
        """E.164 -> times accepted (exactly-once means every value is 1)."""
        counts: Counter[str] = Counter()
        for req in list(self.accepted):
            counts.update(req.numbers)
        return counts

    def to_json(self) -> dict[str, object]:
        return {"accepted": [a.to_json() for a in list(self.accepted)],
                "requests": [r.to_json() for r in list(self.requests)],
                "streamed": list(self.streamed),
                "deliveries": dict(self.deliveries())}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SandboxRecord:
        """Rebuild a record fetched from GET /_sandbox/record."""
        accepted = [AcceptedRequest(at=a["at"], numbers=tuple(a["numbers"]), body=a["body"],
                                    sender=a["sender"], type=a["type"], flash=a["flash"],
                                    message_ids=tuple(a["message_ids"]),
                                    request_id=a.get("request_id", ""),
                                    template_id=a.get("template_id"))
                    for a in data.get("accepted", ())]
        requests = [RequestLog(r["at"], r["status"], r["count"], r.get("fault"))
                    for r in data.get("requests", ())]
        return cls(accepted, requests, list(data.get("streamed", ())))


class SandboxServer:
    """The server on the caller's event loop: ``await start()`` ... ``await stop()``."""

    def __init__(self, *, api_key: str = SANDBOX_API_KEY, sid: str = SANDBOX_SID,
                 region: str = "IN", faults: Faults | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rules = SmsRules.for_region(region)  # ValueError for an unknown region
        self.api_key, self.sid, self.region = api_key, sid, region
        self.faults = faults if faults is not None else Faults()
        self.record = SandboxRecord()
        self.base_url = ""
        self._clock = clock
        self._runner: web.AppRunner | None = None
        # Looked up once: the handler runs hundreds of times a second in benchmarks.
        self._every = self.faults.active("every")
        self._rates = self.faults.active("rate")
        self._reset_state()

    def _reset_state(self) -> None:
        self.record = SandboxRecord()
        self._count = 0
        self._rng = Random(self.faults.seed)
        self._issued: dict[str, AcceptedRequest] = {}  # request id -> what it accepted
        # connection -> when its last answer went out (for the keepalive fault)
        self._idle_since: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()

    async def start(self, host: str = DEFAULT_HOST, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/v1/{sid}/sms", self._sms)
        app.router.add_get("/v1/{sid}/sms/status", self._status)
        app.router.add_get("/_sandbox/record", self._get_record)
        app.router.add_post("/_sandbox/reset", self._reset)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        bound_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"http://{bound_host}:{bound[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- POST /sms

    async def _sms(self, request: web.Request) -> web.StreamResponse:
        at = self._clock()
        if self._stale(request, at):
            self.record.requests.append(RequestLog(at, 0, 0, "stale_connection"))
            return _drop(request)  # not counted: the request never reached "the server"
        try:
            return await self._answer_sms(request, at)
        finally:
            if self.faults.keepalive is not None and request.transport is not None:
                self._idle_since[request.transport] = self._clock()

    def _stale(self, request: web.Request, at: float) -> bool:
        keepalive, transport = self.faults.keepalive, request.transport
        if keepalive is None or transport is None:
            return False
        since = self._idle_since.get(transport)
        return since is not None and at - since >= keepalive

    async def _answer_sms(self, request: web.Request, at: float) -> web.StreamResponse:
        self._count += 1
        number = self._count
        fault = self._pick_fault(number)
        if fault == "drop_before":
            await request.read()
            self.record.requests.append(RequestLog(at, 0, 0, fault))
            return _drop(request)
        if fault in _BEFORE:
            await request.read()
            await self._delay(number)
            return self._fault_answer(at, fault)
        try:
            accepted = await self._accept(request, at)
        except Refusal as refusal:
            self.record.requests.append(RequestLog(at, refusal.status, refusal.count))
            await self._delay(number)
            return _error(refusal.status, refusal.code, refusal.message)
        self.record.accepted.append(accepted)
        self._issued[accepted.request_id] = accepted
        count = len(accepted.numbers)
        if fault == "drop_after":
            self.record.requests.append(RequestLog(at, 0, count, fault))
            return _drop(request)
        if fault in _AFTER:
            status, code, text = _AFTER[fault]
            self.record.requests.append(RequestLog(at, status, count, fault))
            await self._delay(number)
            if code:
                return _error(status, code, text)
            return web.Response(status=status, text=text)
        self.record.requests.append(RequestLog(at, 200, count, fault))
        await self._delay(number)
        body = json.dumps(success_body(accepted)).encode()
        if fault == "huge":
            return await self._huge(request)
        if fault == "trickle":
            return await self._trickle(request, body)
        return web.Response(body=body, content_type=_JSON)

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": _JSON})
        resp.enable_chunked_encoding()
        chunk = b" " * (1 << 16)  # JSON allows any amount of white space before the value
        written = 0
        try:
            await resp.prepare(request)
            while written < self.faults.huge_bytes:
                piece = chunk[:self.faults.huge_bytes - written]
                await resp.write(piece)
                written += len(piece)
            await resp.write(b"{}")
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what we wanted to see
        self.record.streamed.append(written)
        return resp

    async def _trickle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": _JSON})
        resp.content_length = len(body)
        try:
            await resp.prepare(request)
            for i in range(len(body)):
                await resp.write(body[i:i + 1])
                await asyncio.sleep(self.faults.trickle_interval)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return resp

    def _pick_fault(self, number: int) -> str | None:
        hit = next((kind for kind, every in self._every if number % every == 0), None)
        if self._rates:
            # Draw for every rate on every request so one rate does not shift another's sequence.
            drawn = [kind for kind, rate in self._rates if self._rng.random() < rate]
            if hit is None and drawn:
                hit = drawn[0]
        return hit

    def _fault_answer(self, at: float, fault: str) -> web.Response:
        if fault == "redirect":
            self.record.requests.append(RequestLog(at, 307, 0, fault))
            return web.Response(status=307, headers={"Location": "/elsewhere/sms"},
                                text="Temporary Redirect")
        status = int(fault)
        self.record.requests.append(RequestLog(at, status, 0, fault))
        headers = {}
        if self.faults.retry_after_text is not None and status in (429, 503):
            headers["Retry-After"] = self.faults.retry_after_text
        elif self.faults.retry_after is not None and status == 429:
            headers["Retry-After"] = _seconds(self.faults.retry_after)
        if status == 429:
            return _error(429, "HTTP429", "Too many requests", headers)
        if status == 500:
            return web.Response(status=500, text="Internal Server Error")
        reasons = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        return web.Response(status=status, text=reasons[status], headers=headers)

    async def _delay(self, number: int) -> None:
        f = self.faults
        delay = f.latency + (f.slow_latency if f.slow_every and number % f.slow_every == 0 else 0)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _accept(self, request: web.Request, at: float) -> AcceptedRequest:
        if request.headers.get("api-key") != self.api_key:
            raise Refusal(401, "UNAUTHORIZED", "Invalid or missing api-key header")
        if request.match_info["sid"] != self.sid:
            raise Refusal(404, "NOT_FOUND", "Unknown account SID")
        return self._rules.accept(await request.read(), at)

    # ----------------------------------------------------------------- status and control

    async def _status(self, request: web.Request) -> web.Response:
        if request.headers.get("api-key") != self.api_key:
            return _error(401, "UNAUTHORIZED", "Invalid or missing api-key header")
        if request.match_info["sid"] != self.sid:
            return _error(404, "NOT_FOUND", "Unknown account SID")
        wanted = [m.strip() for m in request.query.get("message_ids", "").split(",") if m.strip()]
        if not wanted:
            return _error(400, "E413", "message_ids is required")
        data = [entry for mid in wanted if (entry := self._delivery(mid)) is not None]
        return web.json_response({"data": data, "error": {}})

    def _delivery(self, message_id: str) -> dict[str, object] | None:
        request_id, _, index = message_id.rpartition(":")
        accepted = self._issued.get(request_id)
        if accepted is None or not index.isdigit() or not 1 <= int(index) <= len(accepted.numbers):
            return None
        number = accepted.numbers[int(index) - 1]
        status, detail = delivery_of(number)
        return {"message_id": message_id, "campaign_id": request_id,
                "recipient": number.lstrip("+"), "status": status, "status_details": detail}

    async def _get_record(self, request: web.Request) -> web.Response:
        return web.json_response(self.record.to_json())

    async def _reset(self, request: web.Request) -> web.Response:
        self._reset_state()
        return web.json_response({"reset": True})


def _error(status: int, code: str, message: str,
           headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"code": code, "message": message, "error": {"error": message}}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=_JSON,
                        headers=headers)


def _drop(request: web.Request) -> web.Response:
    # Close the socket under aiohttp: it then ignores the answer we return ("client gone").
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
