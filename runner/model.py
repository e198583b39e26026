"""The Campaign model: frozen records built from a validated campaign file.

Loading and checking live in ``runner.campaign`` (YAML with marks) and ``runner.schema``; this
module only holds the records every later stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Literal

Region = Literal["IN", "SG", "EU", "NA"]
OnAmbiguous = Literal["mark_unknown", "retry"]
Encoding = Literal["json", "form"]

API_DOMAINS: dict[str, str] = {
    "IN": "api.in.kaleyra.io",
    "SG": "api.ap.kaleyra.io",
    "EU": "api.eu.kaleyra.io",
    "NA": "api.na.kaleyra.ai",
}
TYPES_BY_REGION: dict[str, tuple[str, ...]] = {
    "IN": ("OTP", "TXN", "TXND", "MKT"),
    "SG": ("OTP", "DEFAULT"),
    "EU": ("OTP", "DEFAULT"),
    "NA": ("OTP", "DEFAULT"),
}
MAX_BATCH = 100
DEFAULT_VARIABLE_LENGTH = 30  # DLT: characters one {#var#} may stand for
DEFAULT_MAX_PARTS = 10  # SMS parts one message may need unless message.max_parts says otherwise


@dataclass(frozen=True, slots=True)
class Account:
    region: Region
    sid: str | None = None  # else $KALEYRA_SID
    api_key_env: str = "KALEYRA_API_KEY"


@dataclass(frozen=True, slots=True)
class MessageSpec:
    sender: str
    type: str
    flash: bool = False
    body: str | None = None
    template_id: str | None = None
    entity_id: str | None = None  # DLT principal-entity ID (India)
    unicode: str | None = None  # "0" | "1" | "auto"; None lets Kaleyra decide
    smart_encoding: bool = False  # typographic quotes, dashes, ... become GSM-7 look-alikes
    max_parts: int = DEFAULT_MAX_PARTS  # parts any one message may need (body, or a row's)


@dataclass(frozen=True, slots=True)
class RecipientsSpec:
    source: Path  # resolved against the campaign file's folder
    phone_column: str = "phone"
    default_country: str | None = None
    exclude: tuple[Path, ...] = ()
    max_invalid_ratio: float = 0.10
    encoding: str = "utf-8"  # of the source and the suppression lists (a Python codec name)


@dataclass(frozen=True, slots=True)
class Window:
    start: time
    end: time  # start > end means the window runs across midnight
    timezone: str  # IANA name, or "recipient": each number's own zones (runner.zones)
    implied: bool = False  # True when added by default (IN + MKT, TRAI hours)
    preset: str | None = None  # "us-tcpa" or "in-trai" when written as a preset


@dataclass(frozen=True, slots=True)
class SendingSpec:
    batch_size: int = 100
    requests_per_second: float = 10.0
    concurrency: int = 4
    max_attempts: int = 5
    on_ambiguous: OnAmbiguous = "mark_unknown"
    window: Window | None = None  # None: always open
    fallback_timezone: str | None = None  # for numbers whose zone is unknown (recipient windows)
    timeout: float = 30.0  # seconds per request
    max_duration: float = 300.0  # seconds one batch may take, its retries and waits included
    encoding: Encoding = "json"
    messages_per_second: float | None = None  # numbers a second (a request of 100 counts 100)
    parts_per_second: float | None = None  # billable parts a second (numbers x parts)
    max_messages_per_hour: int | None = None  # counted across reruns, in the window's zone
    max_messages_per_day: int | None = None
    adaptive: bool = True  # slow down when the API throttles (AIMD)
    expires: datetime | None = None  # aware; nothing is sent after it


@dataclass(frozen=True, slots=True)
class DltSpec:
    templates: Path  # the DLT portal's template export, resolved against the campaign's folder
    max_variable_length: int = DEFAULT_VARIABLE_LENGTH  # characters one {#var#} may stand for


@dataclass(frozen=True, slots=True)
class Budget:
    max_parts: int | None = None  # more billable parts than this makes the campaign invalid
    price_per_part: float | None = None
    currency: str = ""


@dataclass(frozen=True, slots=True)
class Campaign:
    path: Path  # the campaign file
    name: str
    account: Account
    message: MessageSpec
    recipients: RecipientsSpec
    sending: SendingSpec = field(default_factory=SendingSpec)
    report: Path | None = None  # resolved against the campaign file's folder; None: default
    dlt: DltSpec | None = None
    budget: Budget | None = None

    @property
    def api_domain(self) -> str:
        return API_DOMAINS[self.account.region]

    @property
    def effective_batch_size(self) -> int:
        # OTP is sent one number a request whatever the file says.
        if self.message.type == "OTP":
            return 1
        return min(self.sending.batch_size, MAX_BATCH, *self.batch_limits().values())

    def batch_limits(self) -> dict[str, int]:
        """The sending limits that cap a batch below batch_size: what one second (or a cap)
        allows, by the name of the setting. Parts count the body with each placeholder
        standing for its own name (personalised batches are split again by their text)."""
        from runner.message import count_segments, placeholders, render

        s = self.sending
        size = min(s.batch_size, MAX_BATCH)
        found: dict[str, int] = {}
        if s.messages_per_second is not None:
            found["messages_per_second"] = _tiling(max(1, int(s.messages_per_second)), size)
        if s.parts_per_second is not None:
            body = self.message.body
            parts = 1
            if body:
                names = placeholders(body)
                parts = count_segments(render(body, {n: n for n in names}),
                                       ucs2=self.message.unicode == "1").parts
            found["parts_per_second"] = _tiling(max(1, int(s.parts_per_second) // parts), size)
        for name in ("max_messages_per_hour", "max_messages_per_day"):
            cap = getattr(s, name)
            if cap is not None:
                found[name] = max(1, cap)
        return {k: v for k, v in found.items() if v < size}

    def default_report_path(self, cwd: Path) -> Path:
        return self.report if self.report is not None else cwd / "reports" / f"{self.name}.csv"


def _tiling(per_second: int, size: int) -> int:
    """The largest batch, at most ``size``, of which a whole number fills ``per_second``: at
    166 a second, batches of 83 (two a second), not 100 (one a second: 60% of the limit)."""
    return per_second // -(-per_second // size)
