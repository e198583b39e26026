"""What the sandbox accepts on POST /sms and what it answers: its rules, apart from the server.

Rules of POST /sms, checked in this order after fault injection (the first two by the server,
``runner.sandbox``, before it reads the body; the rest by ``SmsRules.accept``):

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
number is "Delivered" ("DELIVERED").

No aiohttp here: the rules take the body's bytes and give an ``AcceptedRequest`` or raise
``Refusal``, which the server turns into an HTTP answer.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from runner.model import MAX_BATCH, TYPES_BY_REGION

_NUMBER_RE = re.compile(r"\+?[1-9][0-9]{6,14}")
_TEMPLATE_RE = re.compile(r"[0-9]{12,30}")
_REF_RE = re.compile(r"[A-Za-z0-9]{1,150}")


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


class Refusal(Exception):
    """A request the rules turn down: becomes an HTTP error answer."""

    def __init__(self, status: int, code: str, message: str, count: int = 0) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.count = status, code, message, count


@dataclass(frozen=True, slots=True)
class SmsRules:
    """The body checks of POST /sms for one region (see the module doc for the order)."""

    region: str
    types: tuple[str, ...]  # the SMS types the region allows
    default_type: str  # when the request names none

    @classmethod
    def for_region(cls, region: str) -> SmsRules:
        if region not in TYPES_BY_REGION:
            raise ValueError(f"unknown region {region!r}")
        return cls(region, TYPES_BY_REGION[region], "MKT" if region == "IN" else "DEFAULT")

    def accept(self, raw: bytes, at: float) -> AcceptedRequest:
        """The request this body asks for, with fresh message ids; raises Refusal."""
        values = _fields(raw)
        numbers = _numbers(values.get("to", ""))
        count = len(numbers)
        sms_type = values.get("type") or self.default_type
        flash = values.get("flash", "0")
        body = values.get("body") or None
        template_id = values.get("template_id") or None
        for failed, status, code, message in (
            (count > MAX_BATCH, 400, "E405",
             f"If Type is {sms_type} then mobile numbers should not be more than 100."),
            (sms_type not in self.types, 400, "E615",
             f"Invalid type {sms_type!r}: {self.region} allows {', '.join(self.types)}"),
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
                raise Refusal(status, code, message, count)
        request_id = str(uuid.uuid4())
        ids = tuple(f"{request_id}:{i}" for i in range(1, count + 1))
        return AcceptedRequest(at, numbers, body, values["sender"], sms_type, flash == "1", ids,
                               request_id, template_id)


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
            raise Refusal(400, "E407", "Request body is not valid JSON") from None
        values: dict[str, str] = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float | None):
                raise Refusal(400, "E407", f"Invalid JSON value for {key!r}")
            if value is not None:
                values[key] = value if isinstance(value, str) else str(value)
        return values
    return dict(parse_qsl(text, keep_blank_values=True))


def _numbers(to: str) -> tuple[str, ...]:
    # A literal '+' in a form body decodes to a space: strip and put it back.
    parts = [p.strip() for p in to.split(",") if p.strip()]
    if not parts:
        raise Refusal(400, "E406", "No valid mobile numbers in 'to'")
    for part in parts:
        if not _NUMBER_RE.fullmatch(part):
            raise Refusal(400, "E413", f"Invalid mobile number {part!r}", len(parts))
    return tuple(p if p.startswith("+") else f"+{p}" for p in parts)


def success_body(accepted: AcceptedRequest) -> dict[str, object]:
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
