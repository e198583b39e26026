"""The sandbox over real loopback sockets, and the client against it."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runner.answers import Accepted, Ambiguous, Delivery, Rejected, StatusAnswer, Transient
from runner.endpoint import Endpoint, Secret
from runner.errors import InputError
from runner.kaleyra import get_status, post_sms
from runner.sandbox import (
    SANDBOX_API_KEY,
    SANDBOX_SID,
    Faults,
    SandboxRecord,
    SandboxServer,
)
from runner.sandbox_cli import add_sandbox_arguments, faults_from_args, serve
from runner.sandbox_thread import SandboxThread

HEADERS = {"api-key": SANDBOX_API_KEY}


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+9198765{start + i:05d}" for i in range(count)]


def fields(to: list[str], **extra: Any) -> dict[str, Any]:
    return {"to": ",".join(to), "sender": "KLRHXA", "type": "MKT", "flash": 1,
            "body": "Hello"} | extra


class Ticks:
    """An injected clock: 100.0, 100.5, 101.0, ..."""

    def __init__(self) -> None:
        self.now = 99.5

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


async def start(**kwargs: Any) -> SandboxServer:
    server = SandboxServer(**kwargs)
    await server.start()
    return server


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(clock=Ticks()) as s:
        yield s


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def call(session: aiohttp.ClientSession, server: SandboxServer, body: Any, *,
               headers: dict[str, str] | None = None, form: bool = False) -> tuple[int, Any]:
    url = f"{server.base_url}/v1/{SANDBOX_SID}/sms"
    hdrs = HEADERS if headers is None else headers
    kw: dict[str, Any] = {"data": body} if form else {"json": body}
    async with session.post(url, headers=hdrs, **kw) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text.startswith("{") else text


def endpoint_of(server: SandboxServer | SandboxThread) -> Endpoint:
    return Endpoint(server.base_url, SANDBOX_SID, Secret(SANDBOX_API_KEY))


async def send(session: aiohttp.ClientSession, server: SandboxServer, to: list[str],
               **extra: str) -> Any:
    payload = {"to": ",".join(to), "sender": "KLRHXA", "type": "MKT", "flash": "1",
               "body": "Hello"} | extra
    return await post_sms(session, endpoint_of(server), payload, encoding="json", timeout=5,
                          numbers=to)


# --------------------------------------------------------------------------- the rules


async def test_success_has_the_seed_shape(server: SandboxServer,
                                          session: aiohttp.ClientSession) -> None:
    status, body = await call(session, server, fields(["+14155550123", "+919876543210"]))
    assert status == 200
    assert body["totalCount"] == 2 and body["flash"] == 1 and body["type"] == "MKT"
    assert body["error"] == {} and body["dlrurl"] is None
    assert [d["recipient"] for d in body["data"]] == ["14155550123", "919876543210"]
    assert [d["message_id"] for d in body["data"]] == [f"{body['id']}:1", f"{body['id']}:2"]


async def test_client_maps_the_answer(server: SandboxServer,
                                      session: aiohttp.ClientSession) -> None:
    to = numbers(100)
    outcome = await send(session, server, to)
    assert isinstance(outcome, Accepted)
    assert sorted(outcome.message_ids) == sorted(to) and outcome.unmatched == ()
    assert server.record.deliveries() == dict.fromkeys(to, 1)


@pytest.mark.parametrize(("extra", "count", "code"), [
    ({}, 101, "E405"),
    ({"type": "OTP"}, 2, "E404"),
    ({"type": "DEFAULT"}, 1, "E615"),
    ({"flash": 2}, 1, "E606"),
    ({"flash": "yes"}, 1, "E606"),
    ({"body": None}, 1, "E413"),
    ({"sender": ""}, 1, "E619"),
    ({"template_id": "12ab"}, 1, "E413"),
    ({"unicode": "2"}, 1, "E604"),
])
async def test_rules(server: SandboxServer, session: aiohttp.ClientSession,
                     extra: dict[str, Any], count: int, code: str) -> None:
    status, body = await call(session, server, fields(numbers(count), **extra))
    assert (status, body["code"]) == (400, code)
    assert server.record.accepted == []


async def test_too_many_numbers_is_rejected_by_the_client(server: SandboxServer,
                                                          session: aiohttp.ClientSession) -> None:
    outcome = await send(session, server, numbers(101))
    assert isinstance(outcome, Rejected)
    assert (outcome.code, outcome.http_status) == ("E405", 400)
    assert "100" in outcome.message


@pytest.mark.parametrize("to", [["+91abc"], ["12"], ["+919876543210", "0919"], []])
async def test_bad_numbers(server: SandboxServer, session: aiohttp.ClientSession,
                           to: list[str]) -> None:
    status, body = await call(session, server, fields(to))
    assert status == 400 and body["code"] in ("E406", "E413")


async def test_otp_with_one_number_and_template_only(server: SandboxServer,
                                                     session: aiohttp.ClientSession) -> None:
    status, _ = await call(session, server, fields(numbers(1), type="OTP"))
    assert status == 200
    status, _ = await call(session, server,
                           fields(numbers(1), body=None, template_id="1107161234567890123"))
    assert status == 200


async def test_route_types_follow_the_region(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(region="SG") as sg:
        status, body = await call(session, sg, fields(numbers(1), type="MKT"))
        assert (status, body["code"]) == (400, "E615")
        status, body = await call(session, sg, fields(numbers(1), type="DEFAULT"))
        assert status == 200


@pytest.mark.parametrize("headers", [{}, {"api-key": "wrong"}])
async def test_api_key_is_checked(server: SandboxServer, session: aiohttp.ClientSession,
                                  headers: dict[str, str]) -> None:
    status, body = await call(session, server, fields(numbers(1)), headers=headers)
    assert status == 401 and body["message"]
    outcome = await post_sms(session, Endpoint(server.base_url, SANDBOX_SID, Secret("wrong-key")),
                             {"to": "+919876543210", "sender": "KLRHXA", "body": "x"},
                             encoding="json", timeout=5, numbers=["+919876543210"])
    assert isinstance(outcome, Rejected) and outcome.code == "HTTP401"
    assert "wrong-key" not in outcome.message


async def test_form_bodies_like_the_seeds_curl(server: SandboxServer,
                                               session: aiohttp.ClientSession) -> None:
    # The seed's curl sends form fields with a JSON content type and an unescaped '+'.
    url = f"{server.base_url}/v1/{SANDBOX_SID}/sms"
    raw = "to=+919876543210&sender=KLRHXA&type=MKT&body=Hello&flash=1"
    async with session.post(url, data=raw, headers=HEADERS | {
            "Content-Type": "application/json"}) as resp:
        assert resp.status == 200
    status, _ = await call(session, server, fields(["+14155550123"], flash="0"), form=True)
    assert status == 200
    assert server.record.deliveries() == {"+919876543210": 1, "+14155550123": 1}
    assert [a.flash for a in server.record.accepted] == [True, False]


async def test_malformed_json(server: SandboxServer, session: aiohttp.ClientSession) -> None:
    url = f"{server.base_url}/v1/{SANDBOX_SID}/sms"
    async with session.post(url, data='{"to": ', headers=HEADERS) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == "E407"


# --------------------------------------------------------------------------- faults


async def test_every_third_request_gets_429_with_retry_after(
        session: aiohttp.ClientSession) -> None:
    async with SandboxServer(faults=Faults(every_429=3, retry_after=2)) as server:
        outcomes = [await send(session, server, numbers(1, i)) for i in range(6)]
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["Accepted", "Accepted", "Transient"] * 2
    assert outcomes[2] == Transient("HTTP429", "Too many requests", 429, 2.0)
    assert [r.status for r in server.record.requests] == [200, 200, 429] * 2
    assert len(server.record.accepted) == 4


@pytest.mark.parametrize(("faults", "expected"), [
    (Faults(every_502=2), Ambiguous), (Faults(every_503=2), Transient),
    (Faults(every_504=2), Ambiguous), (Faults(every_500=2), Ambiguous),
    (Faults(every_redirect=2), Ambiguous),
])
async def test_server_errors(session: aiohttp.ClientSession, faults: Faults,
                             expected: type) -> None:
    async with SandboxServer(faults=faults) as server:
        first = await send(session, server, numbers(1))
        second = await send(session, server, numbers(1, 1))
    assert isinstance(first, Accepted) and type(second) is expected
    assert len(server.record.accepted) == 1  # answered before accepting anything


@pytest.mark.parametrize(("faults", "status", "code"), [
    (Faults(every_500_after=1), 500, "E103"), (Faults(every_502_after=1), 502, "HTTP502"),
    (Faults(every_504_after=1), 504, "HTTP504"),
])
async def test_errors_after_processing_accept_the_numbers_first(
        session: aiohttp.ClientSession, faults: Faults, status: int, code: str) -> None:
    async with SandboxServer(faults=faults) as server:
        outcome = await send(session, server, numbers(2))
    assert isinstance(outcome, Ambiguous) and (outcome.http_status, outcome.code) == (status, code)
    assert server.record.deliveries() == dict.fromkeys(numbers(2), 1)  # it was processed


async def test_retry_after_text_goes_out_verbatim_with_429_and_503(
        session: aiohttp.ClientSession) -> None:
    faults = Faults(every_429=2, every_503=3, retry_after_text="Thu, 01 Jan 2099 00:00:00 GMT")
    async with SandboxServer(faults=faults) as server:
        outcomes = [await send(session, server, numbers(1, i)) for i in range(3)]
    assert [type(o) for o in outcomes] == [Accepted, Transient, Transient]
    for o in outcomes[1:]:
        assert isinstance(o, Transient) and o.retry_after is not None and o.retry_after > 2e9


async def test_429_without_retry_after(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(faults=Faults(every_429=1, retry_after=None)) as server:
        outcome = await send(session, server, numbers(1))
    assert isinstance(outcome, Transient) and outcome.retry_after is None


async def test_drop_before_and_after_are_both_ambiguous(session: aiohttp.ClientSession) -> None:
    # On the wire both are "connection closed without an answer": only the server knows.
    async with SandboxServer(faults=Faults(every_drop_before=1)) as server:
        before = await send(session, server, numbers(2))
    async with SandboxServer(faults=Faults(every_drop_after=1)) as server2:
        after = await send(session, server2, numbers(2))
    assert isinstance(before, Ambiguous) and isinstance(after, Ambiguous)
    assert before.code == after.code == "DISCONNECTED"
    assert server.record.accepted == [] and server.record.requests[0].fault == "drop_before"
    assert server2.record.deliveries() == dict.fromkeys(numbers(2), 1)


async def test_connection_refused_is_transient(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = Endpoint(f"http://127.0.0.1:{port}", SANDBOX_SID, Secret(SANDBOX_API_KEY))
    outcome = await post_sms(session, endpoint, {"to": "+919876543210"}, encoding="json",
                             timeout=5, numbers=["+919876543210"])
    assert isinstance(outcome, Transient) and outcome.code == "CONNECT"


async def test_timeout_after_sending_is_ambiguous_and_was_accepted(
        session: aiohttp.ClientSession) -> None:
    async with SandboxServer(faults=Faults(slow_every=1, slow_latency=0.25)) as server:
        payload = {"to": "+919876543210", "sender": "KLRHXA", "type": "MKT", "body": "x"}
        outcome = await post_sms(session, endpoint_of(server), payload, encoding="json",
                                 timeout=0.05, numbers=["+919876543210"])
        assert isinstance(outcome, Ambiguous) and outcome.code == "TIMEOUT"
        assert server.record.deliveries() == {"+919876543210": 1}


async def test_rate_faults_are_reproducible_from_the_seed(session: aiohttp.ClientSession) -> None:
    runs = []
    for _ in range(2):
        async with SandboxServer(faults=Faults(rate_503=0.5, seed=7)) as server:
            for i in range(20):
                await send(session, server, numbers(1, i))
        runs.append([r.status for r in server.record.requests])
    assert runs[0] == runs[1]
    assert 200 in runs[0] and 503 in runs[0]


# --------------------------------------------------------------------------- record, status


async def test_record_has_arrival_times_from_the_clock(server: SandboxServer,
                                                       session: aiohttp.ClientSession) -> None:
    await call(session, server, fields(numbers(3), body="Hi {name}"))
    await call(session, server, fields(numbers(101)))  # refused: logged, not accepted
    await call(session, server, fields(numbers(1, 50), flash=0))
    record = server.record
    assert [(r.at, r.status, r.count) for r in record.requests] == [
        (100.0, 200, 3), (100.5, 400, 101), (101.0, 200, 1)]
    first = record.accepted[0]
    assert (first.at, first.numbers, first.body, first.sender, first.type, first.flash) == (
        100.0, tuple(numbers(3)), "Hi {name}", "KLRHXA", "MKT", True)
    assert len(first.message_ids) == 3


async def test_record_and_reset_over_http(server: SandboxServer,
                                          session: aiohttp.ClientSession) -> None:
    await call(session, server, fields(numbers(2)))
    async with session.get(f"{server.base_url}/_sandbox/record") as resp:
        fetched = SandboxRecord.from_json(await resp.json())
    assert fetched == server.record and fetched.deliveries() == dict.fromkeys(numbers(2), 1)
    async with session.post(f"{server.base_url}/_sandbox/reset") as resp:
        assert resp.status == 200
    assert server.record.accepted == [] and server.record.requests == []


async def test_delivery_status(server: SandboxServer, session: aiohttp.ClientSession) -> None:
    to = ["+919876543210", "+919876543217"]
    accepted = await send(session, server, to)
    assert isinstance(accepted, Accepted)
    ids = [accepted.message_ids[n] for n in to]
    answer = await get_status(session, endpoint_of(server), [*ids, "nope:1", f"{ids[0]}9"],
                              timeout=5)
    assert answer == StatusAnswer({ids[0]: Delivery("Delivered", "DELIVERED"),
                                   ids[1]: Delivery("UnDelivered", "MOB-OFF")},
                                  ("nope:1", f"{ids[0]}9"))


async def test_delivery_status_needs_the_key(server: SandboxServer,
                                             session: aiohttp.ClientSession) -> None:
    endpoint = Endpoint(server.base_url, SANDBOX_SID, Secret("bad-key"))
    outcome = await get_status(session, endpoint, ["x:1"], timeout=5)
    assert isinstance(outcome, Rejected) and outcome.code == "HTTP401"


# --------------------------------------------------------------------------- thread, CLI


def _post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers=HEADERS | {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def test_thread_serves_and_stops_cleanly() -> None:
    with SandboxThread(region="EU", faults=Faults(every_503=2)) as sandbox:
        url = f"{sandbox.base_url}/v1/{SANDBOX_SID}/sms"
        statuses = [_post(url, fields(numbers(1, i), type="DEFAULT")) for i in range(3)]
    assert statuses == [200, 503, 200]
    assert sandbox.record.deliveries() == {numbers(1, 0)[0]: 1, numbers(1, 2)[0]: 1}


def test_thread_reports_a_port_in_use() -> None:
    with SandboxThread() as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            SandboxThread(port=port).start()


def test_arguments_to_faults() -> None:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    ns = parser.parse_args(["--port", "0", "--every-429", "5", "--rate-drop-after", "0.1",
                            "--retry-after", "none", "--latency", "0.2", "--seed", "3",
                            "--every-502-after", "4", "--every-huge", "6", "--huge-bytes", "9",
                            "--every-redirect", "7", "--rate-trickle", "0.5",
                            "--trickle-interval", "1.5", "--keepalive", "2",
                            "--retry-after-text", "999999"])
    assert (ns.port, ns.host, ns.region) == (0, "127.0.0.1", "IN")
    assert faults_from_args(ns) == Faults(every_429=5, rate_drop_after=0.1, retry_after=None,
                                          latency=0.2, seed=3, every_502_after=4, every_huge=6,
                                          huge_bytes=9, every_redirect=7, rate_trickle=0.5,
                                          trickle_interval=1.5, keepalive=2.0,
                                          retry_after_text="999999")


@pytest.mark.parametrize("argv", [["--every-429", "-1"], ["--rate-503", "2"],
                                  ["--port", "70000"], ["--latency", "soon"]])
def test_bad_fault_flags_are_usage_errors(argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_serve_reports_a_port_in_use() -> None:
    with SandboxThread() as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        with pytest.raises(InputError, match=f"127.0.0.1:{port}"):
            serve("127.0.0.1", port, faults=Faults(), region="IN", api_key="k", sid="S")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_in_the_foreground_until_signalled(sig: signal.Signals) -> None:
    code = ("from runner.sandbox import *; from runner.sandbox_cli import serve; "
            "serve('127.0.0.1', 0, faults=Faults(), "
            "region='IN', api_key=SANDBOX_API_KEY, sid=SANDBOX_SID)")
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        base = lines[0].split()[3]
        assert f"  export KALEYRA_BASE_URL={base}\n" in lines
        assert _post(f"{base}/v1/{SANDBOX_SID}/sms", fields(numbers(1))) == 200
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "sandbox stopped" in out and "Traceback" not in err


def test_thread_record_is_stable_after_stop() -> None:
    sandbox = SandboxThread(clock=Ticks())
    sandbox.start()
    _post(f"{sandbox.base_url}/v1/{SANDBOX_SID}/sms", fields(numbers(2)))
    sandbox.stop()
    sandbox.stop()  # twice is harmless
    assert [(a.at, a.numbers) for a in sandbox.record.accepted] == [(100.0, tuple(numbers(2)))]


async def test_an_answer_longer_than_the_cap_is_not_read(session: aiohttp.ClientSession) -> None:
    from runner.kaleyra import read_capped

    async with SandboxServer() as server:
        url = f"{server.base_url}/v1/{SANDBOX_SID}/sms"
        payload = {"to": "+919876543210", "sender": "KLRHXA", "type": "MKT", "body": "x"}
        async with session.post(url, json=payload, headers=HEADERS) as resp:
            assert resp.content_length is not None and resp.content_length > 100
            assert await read_capped(resp, cap=100) is None  # known from Content-Length
        async with session.post(url, json=payload, headers=HEADERS) as resp:
            body = await read_capped(resp)
            assert body is not None and b"message_id" in body
    async with SandboxServer(faults=Faults(every_huge=1, huge_bytes=3 << 20)) as server:
        url = f"{server.base_url}/v1/{SANDBOX_SID}/sms"
        async with session.post(url, json=payload, headers=HEADERS) as resp:
            assert resp.content_length is None  # chunked: counted as it comes
            assert await read_capped(resp) is None
