"""A local Kaleyra-compatible server for trying the tool, integration tests and benchmarks.

Routes:

    POST /v1/{sid}/sms            the seed's endpoint; JSON or form body (sniffed, as the seed's
                                  own curl sends form fields under a JSON content type)
    GET  /v1/{sid}/sms/status     ?message_ids=a,b: delivery status of ids this server issued
    GET  /_sandbox/record         what was accepted and every request's answer, as JSON
    POST /_sandbox/reset          forget everything (record, issued ids, fault counters)

Rules of POST /sms, checked in this order after fault injection:

    api-key header missing/wrong      401 {"code": "UNAUTHORIZED", ...}
    SID in the path not ours          404 {"code": "NOT_FOUND", ...}
    unreadable JSON / bad value type  400 E407
    ``to`` missing or empty           400 E406; a malformed number: 400 E413 (whole request)
    more than 100 numbers             400 E405 (the seed's message)
    ``type`` not for the region       400 E615 (IN: OTP TXN TXND MKT; SG EU NA: OTP DEFAULT;
                                      absent: MKT in IN, DEFAULT elsewhere)
    OTP with more than one number     400 E404
    ``flash`` other than 0/1          400 E606; ``unicode`` other than 0/1/auto: 400 E604
    no ``sender``                     400 E619; neither ``body`` nor ``template_id``: 400 E413
    ``template_id`` not 12-30 digits  400 E413; ``ref`` not alphanumeric up to 150: 400 E608
    otherwise                         200 with the seed's success shape, one data[] entry per
                                      number: message_id "<id>:<n>", recipient without '+'

Delivery status: final at once. A number ending in 7 is "UnDelivered" ("MOB-OFF"); every other
number is "Delivered" ("DELIVERED"). Ids this server did not issue are left out of data[].

Faults (``Faults``) apply to POST /sms only, counted from 1 over every such request. When several
pick the same request the first in this order wins: drop_before, 429, 502, 503, 504, 500,
drop_after. ``drop_before`` reads the request and closes the connection without accepting it;
``drop_after`` accepts (and records) it, then closes without answering: the client cannot tell
the two apart. ``latency`` (and ``slow_latency`` on every ``slow_every``-th request) delays every
answer after the request was recorded, so a client timeout then is a real "sent but unanswered".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from runner.faults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    FAULT_KINDS,
    SANDBOX_API_KEY,
    SANDBOX_SID,
    Faults,
)
from runner.model import MAX_BATCH, TYPES_BY_REGION

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "FAULT_KINDS", "SANDBOX_API_KEY", "SANDBOX_SID",
           "Faults", "SandboxRecord", "SandboxServer", "SandboxThread"]

_NUMBER_RE = re.compile(r"\+?[1-9][0-9]{6,14}")
_TEMPLATE_RE = re.compile(r"[0-9]{12,30}")
_REF_RE = re.compile(r"[A-Za-z0-9]{1,150}")
_JSON: Final = "application/json"


@dataclass(frozen=True, slots=True)
class AcceptedRequest:
    at: float  # the server's clock when the request arrived
    numbers: tuple[str, ...]  # E.164 with '+'
    body: str | None
    sender: str
    type: str
    flash: bool
    message_ids: tuple[str, ...]
    request_id: str = ""
    template_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"at": self.at, "numbers": list(self.numbers), "body": self.body,
                "sender": self.sender, "type": self.type, "flash": self.flash,
                "message_ids": list(self.message_ids), "request_id": self.request_id,
                "template_id": self.template_id}


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

    def deliveries(self) -> Counter[str]:
        """E.164 -> times accepted (exactly-once means every value is 1)."""
        counts: Counter[str] = Counter()
        for req in list(self.accepted):
            counts.update(req.numbers)
        return counts

    def to_json(self) -> dict[str, object]:
        return {"accepted": [a.to_json() for a in list(self.accepted)],
                "requests": [r.to_json() for r in list(self.requests)],
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
        return cls(accepted, requests)


class _Refusal(Exception):
    """A request the rules turn down: becomes an HTTP error answer."""

    def __init__(self, status: int, code: str, message: str, count: int = 0) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.count = status, code, message, count


class SandboxServer:
    """The server on the caller's event loop: ``await start()`` ... ``await stop()``."""

    def __init__(self, *, api_key: str = SANDBOX_API_KEY, sid: str = SANDBOX_SID,
                 region: str = "IN", faults: Faults | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if region not in TYPES_BY_REGION:
            raise ValueError(f"unknown region {region!r}")
        self.api_key, self.sid, self.region = api_key, sid, region
        self.faults = faults if faults is not None else Faults()
        self.record = SandboxRecord()
        self.base_url = ""
        self._clock = clock
        self._types = TYPES_BY_REGION[region]
        self._default_type = "MKT" if region == "IN" else "DEFAULT"
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
        self._count += 1
        number = self._count
        fault = self._pick_fault(number)
        if fault == "drop_before":
            await request.read()
            self.record.requests.append(RequestLog(at, 0, 0, fault))
            return _drop(request)
        if fault is not None and fault != "drop_after":
            await request.read()
            await self._delay(number)
            return self._fault_answer(at, fault)
        try:
            accepted = await self._accept(request, at)
        except _Refusal as refusal:
            self.record.requests.append(RequestLog(at, refusal.status, refusal.count))
            await self._delay(number)
            return _error(refusal.status, refusal.code, refusal.message)
        self.record.accepted.append(accepted)
        self._issued[accepted.request_id] = accepted
        if fault == "drop_after":
            self.record.requests.append(RequestLog(at, 0, len(accepted.numbers), fault))
            return _drop(request)
        self.record.requests.append(RequestLog(at, 200, len(accepted.numbers)))
        await self._delay(number)
        return web.Response(body=json.dumps(_success(accepted)).encode(), content_type=_JSON)

    def _pick_fault(self, number: int) -> str | None:
        hit = next((kind for kind, every in self._every if number % every == 0), None)
        if self._rates:
            # Draw for every rate on every request so one rate does not shift another's sequence.
            drawn = [kind for kind, rate in self._rates if self._rng.random() < rate]
            if hit is None and drawn:
                hit = drawn[0]
        return hit

    def _fault_answer(self, at: float, fault: str) -> web.Response:
        status = int(fault)
        self.record.requests.append(RequestLog(at, status, 0, fault))
        if status == 429:
            headers = {}
            if self.faults.retry_after is not None:
                headers["Retry-After"] = _seconds(self.faults.retry_after)
            return _error(429, "HTTP429", "Too many requests", headers)
        if status == 500:
            return web.Response(status=500, text="Internal Server Error")
        reasons = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        return web.Response(status=status, text=reasons[status])

    async def _delay(self, number: int) -> None:
        f = self.faults
        delay = f.latency + (f.slow_latency if f.slow_every and number % f.slow_every == 0 else 0)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _accept(self, request: web.Request, at: float) -> AcceptedRequest:
        if request.headers.get("api-key") != self.api_key:
            raise _Refusal(401, "UNAUTHORIZED", "Invalid or missing api-key header")
        if request.match_info["sid"] != self.sid:
            raise _Refusal(404, "NOT_FOUND", "Unknown account SID")
        values = _fields(await request.read())
        numbers = _numbers(values.get("to", ""))
        count = len(numbers)
        sms_type = values.get("type") or self._default_type
        flash = values.get("flash", "0")
        body = values.get("body") or None
        template_id = values.get("template_id") or None
        for failed, status, code, message in (
            (count > MAX_BATCH, 400, "E405",
             f"If Type is {sms_type} then mobile numbers should not be more than 100."),
            (sms_type not in self._types, 400, "E615",
             f"Invalid type {sms_type!r}: {self.region} allows {', '.join(self._types)}"),
            (sms_type == "OTP" and count > 1, 400, "E404", "OTP allows one number only"),
            (flash not in ("0", "1"), 400, "E606", "flash must be 0 or 1"),
            (values.get("unicode", "0") not in ("0", "1", "auto"), 400, "E604",
             "unicode must be 0, 1 or auto"),
            (not values.get("sender"), 400, "E619", "sender is required"),
            (body is None and template_id is None, 400, "E413",
             "body is required when template_id is not given"),
            (template_id is not None and not _TEMPLATE_RE.fullmatch(template_id), 400, "E413",
             "template_id must be 12 to 30 digits"),
            ("ref" in values and not _REF_RE.fullmatch(values["ref"]), 400, "E608",
             "ref must be alphanumeric, up to 150 characters"),
        ):
            if failed:
                raise _Refusal(status, code, message, count)
        request_id = str(uuid.uuid4())
        ids = tuple(f"{request_id}:{i}" for i in range(1, count + 1))
        return AcceptedRequest(at, numbers, body, values["sender"], sms_type, flash == "1", ids,
                               request_id, template_id)

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


def delivery_of(number: str) -> tuple[str, str]:
    """The sandbox's deterministic verdict: numbers ending in 7 are not delivered."""
    return ("UnDelivered", "MOB-OFF") if number.endswith("7") else ("Delivered", "DELIVERED")


def _fields(raw: bytes) -> dict[str, str]:
    """The request's fields, JSON object or form, values as strings; E407 when unreadable."""
    text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise _Refusal(400, "E407", "Request body is not valid JSON") from None
        values: dict[str, str] = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float | None):
                raise _Refusal(400, "E407", f"Invalid JSON value for {key!r}")
            if value is not None:
                values[key] = value if isinstance(value, str) else str(value)
        return values
    return dict(parse_qsl(text, keep_blank_values=True))


def _numbers(to: str) -> tuple[str, ...]:
    # A literal '+' in a form body decodes to a space: strip and put it back.
    parts = [p.strip() for p in to.split(",") if p.strip()]
    if not parts:
        raise _Refusal(400, "E406", "No valid mobile numbers in 'to'")
    for part in parts:
        if not _NUMBER_RE.fullmatch(part):
            raise _Refusal(400, "E413", f"Invalid mobile number {part!r}", len(parts))
    return tuple(p if p.startswith("+") else f"+{p}" for p in parts)


def _success(accepted: AcceptedRequest) -> dict[str, object]:
    return {
        "id": accepted.request_id,
        "sender": accepted.sender,
        "type": accepted.type,
        "flash": int(accepted.flash),
        "body": accepted.body,
        "createdDateTime": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00"),
        "totalCount": len(accepted.numbers),
        "data": [{"message_id": mid, "recipient": n[1:]}
                 for mid, n in zip(accepted.message_ids, accepted.numbers, strict=True)],
        "dlrurl": None,
        "error": {},
    }


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


# --------------------------------------------------------------------------- thread


class SandboxThread:
    """The server on its own event loop in a daemon thread; a context manager.

    ``record`` is live while running (lists only grow); read it after ``stop()`` or fetch
    GET /_sandbox/record for a consistent copy.
    """

    def __init__(self, *, host: str = DEFAULT_HOST, port: int = 0,
                 api_key: str = SANDBOX_API_KEY, sid: str = SANDBOX_SID, region: str = "IN",
                 faults: Faults | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server = SandboxServer(api_key=api_key, sid=sid, region=region, faults=faults,
                                    clock=clock)
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def record(self) -> SandboxRecord:
        return self.server.record

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="kaleyra-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the sandbox did not start in time")
        if self._failure is not None:
            self._thread.join()
            failure, self._failure = self._failure, None
            raise failure

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self.server.start(self._host, self._port))
            except BaseException as exc:  # reported to start() in the caller's thread
                self._failure = exc
                return
            self._loop = loop
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._ready.set()
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
