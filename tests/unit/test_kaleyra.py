"""The Kaleyra client: endpoint resolution, request building and answer classification."""

from __future__ import annotations

import asyncio
import inspect
import pickle
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from yarl import URL

from runner.answers import (
    Accepted,
    Ambiguous,
    Delivery,
    Rejected,
    StatusAnswer,
    Transient,
    classify_response,
    parse_retry_after,
)
from runner.endpoint import Endpoint, Secret, resolve_endpoint
from runner.errors import InputError
from runner.kaleyra import build_payload, get_status, post_sms
from runner.model import Account, Campaign, MessageSpec, RecipientsSpec

KEY = "Akey-0123456789abcdef"
BASE = "https://api.in.kaleyra.io"
SMS_URL = f"{BASE}/v1/HXAP16XXXXXX97IN/sms"
STATUS_URL = f"{BASE}/v1/HXAP16XXXXXX97IN/sms/status"
NUMBERS = ("+919876543210", "+14155550123")


def campaign(*, region: str = "IN", sid: str | None = "HXAP16XXXXXX97IN", flash: bool = True,
             key_env: str = "KALEYRA_API_KEY", **message: Any) -> Campaign:
    spec: dict[str, Any] = {"sender": "KLRHXA", "type": "MKT", "flash": flash, "body": "Hi"}
    spec |= message
    return Campaign(
        path=Path("campaigns/diwali.yaml"),
        name="diwali-flash_2026",
        account=Account(region=region, sid=sid, api_key_env=key_env),  # type: ignore[arg-type]
        message=MessageSpec(**spec),
        recipients=RecipientsSpec(source=Path("data.csv")),
    )


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint(BASE, "HXAP16XXXXXX97IN", Secret(KEY))


_TAKES_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters


class _Response(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer``: supply a stub
    where aiohttp takes one (older releases refuse the argument)."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if _TAKES_STREAM_WRITER:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class _Mock(aioresponses):
    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _Response)
        super().add(*args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with _Mock() as m:
        yield m


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def sent(m: aioresponses, method: str = "POST", url: str = SMS_URL) -> dict[str, Any]:
    calls = m.requests[(method, URL(url))]
    assert len(calls) == 1
    kwargs: dict[str, Any] = calls[0].kwargs
    return kwargs


async def post(session: aiohttp.ClientSession, endpoint: Endpoint, *,
               encoding: str = "json", numbers: tuple[str, ...] = NUMBERS) -> Any:
    payload = build_payload(campaign(), numbers, "Hi")
    return await post_sms(session, endpoint, payload, encoding=encoding,  # type: ignore[arg-type]
                          timeout=5, numbers=numbers)


# --------------------------------------------------------------------------- secrets, endpoint


def test_secret_never_shows_the_key() -> None:
    secret = Secret(KEY)
    endpoint = Endpoint(BASE, "SID", secret)
    for text in (str(secret), repr(secret), repr(endpoint), f"{endpoint}"):
        assert KEY not in text
    assert secret.reveal() == KEY
    with pytest.raises(TypeError):
        pickle.dumps(endpoint)


def test_endpoint_urls() -> None:
    endpoint = Endpoint(BASE, "HXAP16XXXXXX97IN", Secret(KEY))
    assert endpoint.sms_url == SMS_URL
    assert endpoint.status_url == STATUS_URL


@pytest.mark.parametrize(("region", "domain"), [("IN", "api.in.kaleyra.io"),
                                                ("SG", "api.ap.kaleyra.io"),
                                                ("EU", "api.eu.kaleyra.io"),
                                                ("NA", "api.na.kaleyra.ai")])
def test_endpoint_from_region(region: str, domain: str) -> None:
    endpoint = resolve_endpoint(campaign(region=region), {"KALEYRA_API_KEY": KEY})
    assert endpoint.sms_url == f"https://{domain}/v1/HXAP16XXXXXX97IN/sms"
    assert endpoint.api_key.reveal() == KEY


def test_sid_from_environment_when_the_file_has_none() -> None:
    env = {"KALEYRA_API_KEY": KEY, "KALEYRA_SID": "ENVSID"}
    endpoint = resolve_endpoint(campaign(sid=None), env)
    assert endpoint.sid == "ENVSID"


def test_missing_sid_names_the_variable() -> None:
    with pytest.raises(InputError, match="KALEYRA_SID") as info:
        resolve_endpoint(campaign(sid=None), {"KALEYRA_API_KEY": KEY})
    assert info.value.diagnostics[0].field == "account.sid"


@pytest.mark.parametrize("env", [{}, {"KALEYRA_API_KEY": "  "}])
def test_missing_key_names_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(InputError, match="KALEYRA_API_KEY"):
        resolve_endpoint(campaign(), env)


def test_key_comes_from_the_variable_the_campaign_names() -> None:
    env = {"KALEYRA_API_KEY": "wrong-one", "PROMO_KEY": KEY}
    assert resolve_endpoint(campaign(key_env="PROMO_KEY"), env).api_key.reveal() == KEY
    with pytest.raises(InputError, match="PROMO_KEY"):
        resolve_endpoint(campaign(key_env="PROMO_KEY"), {"KALEYRA_API_KEY": KEY})


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.9.9.9:1/", "http://127.9.9.9:1"),
    ("http://localhost:8080/", "http://localhost:8080"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("https://proxy.example.com", "https://proxy.example.com"),
])
def test_base_url_override_keeps_the_path(url: str, expected: str) -> None:
    endpoint = resolve_endpoint(campaign(), {"KALEYRA_API_KEY": KEY, "KALEYRA_BASE_URL": url})
    assert endpoint.sms_url == f"{expected}/v1/HXAP16XXXXXX97IN/sms"


@pytest.mark.parametrize("url", ["http://api.in.kaleyra.io", "http://10.0.0.1:8080",
                                 "ftp://127.0.0.1", "https://user:pw@host.example",
                                 "https://h.example/?a=1", "not a url", "http://127.0.0.1:99999"])
def test_unsafe_or_bad_base_url_is_an_input_error(url: str) -> None:
    with pytest.raises(InputError, match="KALEYRA_BASE_URL") as info:
        resolve_endpoint(campaign(), {"KALEYRA_API_KEY": KEY, "KALEYRA_BASE_URL": url})
    assert KEY not in str(info.value)


# --------------------------------------------------------------------------- request building


def test_payload_fields() -> None:
    payload = build_payload(campaign(flash=True, template_id="1107161234567890123",
                                     entity_id="1201159100000000000", unicode="auto"),
                            ["+919876543210", "14155550123"], "Hi Asha")
    assert payload == {"to": "+919876543210,+14155550123", "sender": "KLRHXA", "type": "MKT",
                       "flash": "1", "body": "Hi Asha", "template_id": "1107161234567890123",
                       "entity_id": "1201159100000000000", "unicode": "auto",
                       "ref": "diwaliflash2026"}


def test_payload_without_flash_or_body() -> None:
    payload = build_payload(campaign(flash=False, body=None, template_id="110716123456"),
                            ["+919876543210"], None)
    assert payload["flash"] == "0"
    assert "body" not in payload and "unicode" not in payload


async def test_json_request(mocked: aioresponses, session: aiohttp.ClientSession,
                            endpoint: Endpoint) -> None:
    mocked.post(SMS_URL, payload={"id": "r1", "data": []})
    await post(session, endpoint)
    kwargs = sent(mocked)
    assert kwargs["headers"]["api-key"] == KEY
    assert kwargs["json"] == {"to": "+919876543210,+14155550123", "sender": "KLRHXA",
                              "type": "MKT", "flash": 1, "body": "Hi", "ref": "diwaliflash2026"}
    assert kwargs["data"] is None
    assert kwargs["allow_redirects"] is False


async def test_form_request(mocked: aioresponses, session: aiohttp.ClientSession,
                            endpoint: Endpoint) -> None:
    mocked.post(SMS_URL, payload={"id": "r1", "data": []})
    await post(session, endpoint, encoding="form")
    kwargs = sent(mocked)
    assert kwargs["json"] is None
    assert kwargs["data"]["to"] == "+919876543210,+14155550123"
    assert kwargs["data"]["flash"] == "1"


# --------------------------------------------------------------------------- answers


async def test_accepted_maps_ids_back_by_digits(mocked: aioresponses,
                                                session: aiohttp.ClientSession,
                                                endpoint: Endpoint) -> None:
    numbers = ("+919876543210", "+14155550123", "+447700900123")
    mocked.post(SMS_URL, status=202, payload={
        "id": "648a", "totalCount": 2, "error": {},
        # Out of order and without '+': position alone would mismatch them.
        "data": [{"message_id": "648a:2", "recipient": "14155550123"},
                 {"message_id": "648a:1", "recipient": "919876543210"}]})
    outcome = await post(session, endpoint, numbers=numbers)
    assert outcome == Accepted({"+14155550123": "648a:2", "+919876543210": "648a:1"},
                               ("+447700900123",), "648a")


@pytest.mark.parametrize("numbers", [("+919876543210", "+14155550123"),
                                     ("919876543210", "14155550123")])
@pytest.mark.parametrize(("data", "expected"), [
    # The usual answer: in order, digits only.
    ([{"message_id": "x:1", "recipient": "919876543210"},
      {"message_id": "x:2", "recipient": "14155550123"}], {0: "x:1", 1: "x:2"}),
    # As many items, but one names a number of ours twice: the other is not taken as sent.
    ([{"message_id": "x:1", "recipient": "919876543210"},
      {"message_id": "x:2", "recipient": "919876543210"}], {0: "x:1"}),
    # An item with no message id proves nothing for its number.
    ([{"message_id": "x:1", "recipient": "919876543210"},
      {"message_id": "", "recipient": "14155550123"}], {0: "x:1"}),
    # A recipient as a JSON number, and one with a '+'.
    ([{"message_id": "x:1", "recipient": 919876543210},
      {"message_id": "x:2", "recipient": "+14155550123"}], {0: "x:1", 1: "x:2"}),
])
def test_an_answer_in_order_or_not_maps_the_same_ids(
        numbers: tuple[str, str], data: list[dict[str, Any]], expected: dict[int, str]) -> None:
    import json
    outcome = classify_response(202, {}, json.dumps({"id": "x", "data": data}), numbers)
    assert outcome == Accepted({numbers[i]: mid for i, mid in expected.items()},
                               tuple(n for i, n in enumerate(numbers) if i not in expected), "x")


def test_recipient_without_country_code_still_matches() -> None:
    text = '{"id": "x", "data": [{"message_id": "x:1", "recipient": "9876543210"}]}'
    outcome = classify_response(200, {}, text, ["+919876543210", "+14155550123"])
    assert outcome == Accepted({"+919876543210": "x:1"}, ("+14155550123",), "x")


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, {"code": "E405", "message": "more than 100", "error": {"to": "x"}},
     Rejected("E405", "more than 100", 400)),
    (200, {"code": "E606", "message": "flash", "error": {}}, Rejected("E606", "flash", 200)),
    (200, {"code": "E103", "message": "internal", "error": {}},
     Ambiguous("E103", "internal", 200)),  # an internal error may have sent first
    (400, {"code": "E403", "message": "try again"}, Transient("E403", "try again", 400, None)),
    (422, {"error": {"code": "E413", "message": "validation"}},
     Rejected("E413", "validation", 422)),
    (400, {"code": "E404", "error": {"to": "OTP allows one number"}},
     Rejected("E404", "OTP allows one number", 400)),
    (200, {"code": "E101", "message": "campaign accepted"}, Accepted({}, NUMBERS, None)),
])
def test_error_codes(status: int, body: dict[str, Any], expected: object) -> None:
    import json
    assert classify_response(status, {}, json.dumps(body), NUMBERS) == expected


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_rejected_without_the_key(status: int) -> None:
    outcome = classify_response(status, {}, '{"code": "E403", "message": "Unauthorized"}', NUMBERS)
    assert isinstance(outcome, Rejected)
    assert outcome.code == f"HTTP{status}"
    assert "API key was refused" in outcome.message


@pytest.mark.parametrize("status", [429, 503])
def test_transient_statuses(status: int) -> None:
    outcome = classify_response(status, {"Retry-After": "7"}, "<html>busy</html>", NUMBERS)
    assert isinstance(outcome, Transient)
    assert (outcome.code, outcome.http_status, outcome.retry_after) == (f"HTTP{status}", status, 7)


def test_retry_after_as_http_date() -> None:
    now = 1_700_000_000.0
    header = formatdate(now + 30, usegmt=True)
    outcome = classify_response(429, {"Retry-After": header}, "", NUMBERS, now=now)
    assert isinstance(outcome, Transient)
    assert outcome.retry_after == 30


@pytest.mark.parametrize("status", [301, 302, 307, 308, 500, 502, 504, 505])
def test_answers_that_may_stand_for_a_processed_request_are_ambiguous(status: int) -> None:
    outcome = classify_response(status, {"Retry-After": "7", "Location": "http://x/"},
                                '{"code": "E403", "message": "try again"}', NUMBERS)
    assert isinstance(outcome, Ambiguous)  # a gateway or a redirect proves nothing unsent


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("soon", None), ("2.5", 2.5), ("-3", None), ("nan", None),
    ("inf", None), ("1e308", None), ("0x10", None), ("7 ", 7.0), ("999999", 999999.0),
    ("9" * 400, 1e10),  # digits without end: as much as we count, never an overflow
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: go now
    ("Thu, 01 Jan 2099 00:00:00 GMT", 4070908800.0 - 1_700_000_000.0),
    ("Fri, 31 Dec 9999 23:59:59 GMT", 1e10),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=1_700_000_000.0) == expected


@pytest.mark.parametrize(("status", "text", "expected_type", "code"), [
    (500, "Internal Server Error", Ambiguous, "HTTP500"),
    (200, "<html>ok</html>", Ambiguous, "BAD_RESPONSE"),
    (200, '{"id": "x"}', Ambiguous, "BAD_RESPONSE"),
    (200, "[1, 2]", Ambiguous, "BAD_RESPONSE"),
    (404, "<html>Not Found</html>", Rejected, "HTTP404"),
    (400, '{"code": "BAD_THING", "message": "no"}', Rejected, "BAD_THING"),
    (302, "", Ambiguous, "HTTP302"),
    (500, '{"code": "E103", "message": "internal"}', Ambiguous, "E103"),
    (400, '{"code": "E103", "message": "internal"}', Ambiguous, "E103"),
    (400, '{"code": "E403", "message": "try again"}', Transient, "E403"),
])
def test_odd_answers_by_status(status: int, text: str, expected_type: type,
                               code: str) -> None:
    outcome = classify_response(status, {}, text, NUMBERS)
    assert type(outcome) is expected_type
    assert outcome.code == code  # type: ignore[union-attr]


async def test_server_echoing_the_key_is_scrubbed(mocked: aioresponses,
                                                  session: aiohttp.ClientSession,
                                                  endpoint: Endpoint) -> None:
    mocked.post(SMS_URL, status=400, payload={"code": "E413", "message": f"bad key {KEY}"})
    outcome = await post(session, endpoint)
    assert isinstance(outcome, Rejected)
    assert KEY not in outcome.message and "***" in outcome.message


@pytest.mark.parametrize(("status", "expected_type", "code"), [
    (200, Ambiguous, "HUGE_ANSWER"),  # the ids were in the part not read: it may have gone
    (503, Transient, "HTTP503"), (400, Rejected, "HTTP400"), (502, Ambiguous, "HTTP502"),
])
def test_an_answer_too_big_to_read_is_judged_by_its_status(status: int, expected_type: type,
                                                            code: str) -> None:
    from runner.kaleyra import _too_big

    outcome = _too_big(status, {}, NUMBERS)
    assert (type(outcome), outcome.code) == (expected_type, code)  # type: ignore[union-attr]


# --------------------------------------------------------------------------- network trouble


def _connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    # Its fields grew over aiohttp releases (server_hostname in 3.10.something): name them.
    fields = {"host": "api.in.kaleyra.io", "port": 443, "is_ssl": True, "ssl": True}
    extra = [p for p in inspect.signature(ConnectionKey).parameters if p not in fields]
    key = ConnectionKey(**fields, **dict.fromkeys(extra))
    return aiohttp.ClientConnectorError(key, os_error)


@pytest.mark.parametrize(("exc", "expected_type", "code"), [
    (_connector_error(ConnectionRefusedError(111, "Connection refused")), Transient, "CONNECT"),
    (aiohttp.ConnectionTimeoutError(f"Connection timeout api-key={KEY}"), Transient,
     "CONNECT_TIMEOUT"),
    (aiohttp.ServerDisconnectedError(), Ambiguous, "DISCONNECTED"),
    (aiohttp.ClientOSError(104, f"Connection reset by peer {KEY}"), Ambiguous, "RESET"),
    (aiohttp.SocketTimeoutError(f"Timeout on reading data {KEY}"), Ambiguous, "TIMEOUT"),
    (TimeoutError(), Ambiguous, "TIMEOUT"),
    (aiohttp.ClientPayloadError(f"Response payload is not completed {KEY}"), Ambiguous,
     "PROTOCOL"),
])
async def test_network_failures(mocked: aioresponses, session: aiohttp.ClientSession,
                                endpoint: Endpoint, exc: Exception, expected_type: type,
                                code: str) -> None:
    mocked.post(SMS_URL, exception=exc)
    outcome = await post(session, endpoint)
    assert (type(outcome), outcome.code) == (expected_type, code)
    assert KEY not in outcome.message and KEY not in repr(outcome)
    assert "api.in.kaleyra.io" in outcome.message


async def test_cancellation_is_not_swallowed(mocked: aioresponses,
                                             session: aiohttp.ClientSession,
                                             endpoint: Endpoint) -> None:
    mocked.post(SMS_URL, exception=asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await post(session, endpoint)


# --------------------------------------------------------------------------- delivery status


async def test_status_request_and_answer(mocked: aioresponses, session: aiohttp.ClientSession,
                                         endpoint: Endpoint) -> None:
    url = f"{STATUS_URL}?message_ids=r:1,r:2,r:3"
    mocked.get(url, payload={"data": [
        {"message_id": "r:2", "status": "UnDelivered", "status_details": "MOB-OFF"},
        {"message_id": "r:1", "status": "Delivered", "status_details": "DELIVERED"},
        {"message_id": "other:9", "status": "Delivered"},
    ], "error": {}})
    outcome = await get_status(session, endpoint, ["r:1", "r:2", "r:3"], timeout=5)
    assert outcome == StatusAnswer({"r:1": Delivery("Delivered", "DELIVERED"),
                                    "r:2": Delivery("UnDelivered", "MOB-OFF")}, ("r:3",))
    assert sent(mocked, "GET", url)["headers"]["api-key"] == KEY


async def test_status_answer_without_ids_matches_by_order(mocked: aioresponses,
                                                          session: aiohttp.ClientSession,
                                                          endpoint: Endpoint) -> None:
    # The documented sample has no message_id in data[].
    mocked.get(f"{STATUS_URL}?message_ids=a,b", payload={"data": [
        {"campaign_id": "c", "status": "Delivered", "status_details": "DELIVERED"},
        {"campaign_id": "c", "status": "Failed", "status_details": "BLACKLIST"}], "error": {}})
    outcome = await get_status(session, endpoint, ["a", "b"], timeout=5)
    assert outcome == StatusAnswer({"a": Delivery("Delivered", "DELIVERED"),
                                    "b": Delivery("Failed", "BLACKLIST")}, ())


@pytest.mark.parametrize(("status", "body", "exc", "expected_type"), [
    (401, "{}", None, Rejected),
    (503, "", None, Transient),
    (500, "oops", None, Transient),  # a GET is safe to repeat
    (200, "garbage", None, Transient),
    (200, "", aiohttp.ServerDisconnectedError(), Transient),
])
async def test_status_failures(mocked: aioresponses, session: aiohttp.ClientSession,
                               endpoint: Endpoint, status: int, body: str,
                               exc: Exception | None, expected_type: type) -> None:
    mocked.get(f"{STATUS_URL}?message_ids=a", status=status, body=body, exception=exc)
    outcome = await get_status(session, endpoint, ["a"], timeout=5)
    assert type(outcome) is expected_type


async def test_status_of_nothing_makes_no_request(session: aiohttp.ClientSession,
                                                  endpoint: Endpoint) -> None:
    with aioresponses() as m:
        assert await get_status(session, endpoint, [], timeout=5) == StatusAnswer()
        assert not m.requests


def test_a_500_is_ambiguous_whatever_code_it_carries() -> None:
    outcome = classify_response(500, {}, '{"code": "E500", "message": "oops"}', ["+919812345678"])
    assert isinstance(outcome, Ambiguous)  # it may have sent before failing: never "failed"
    for code in ("E403", "E103"):  # not even Kaleyra's "try again": the 500 says it failed late
        assert isinstance(classify_response(500, {}, f'{{"code": "{code}"}}', ["+919812345678"]),
                          Ambiguous)


def test_a_key_with_a_stray_newline_is_refused_before_any_request() -> None:
    with pytest.raises(InputError, match="control or non-ASCII"):
        resolve_endpoint(campaign(), {"KALEYRA_API_KEY": "abc\nX-Injected: 1"})


def test_a_key_pasted_into_api_key_env_is_never_echoed() -> None:
    pasted = "A1b2C3d4E5f6SecretValue"
    with pytest.raises(InputError) as caught:
        resolve_endpoint(campaign(key_env=pasted), {})
    assert pasted not in str(caught.value)
    assert all(pasted not in d.message for d in caught.value.diagnostics)
