"""The Campaign model: frozen records built from a validated campaign file.

Loading and checking live in ``runner.campaign`` (YAML with marks) and ``runner.schema``; this
module only holds the records every later stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
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


@dataclass(frozen=True, slots=True)
class RecipientsSpec:
    source: Path  # resolved against the campaign file's folder
    phone_column: str = "phone"
    default_country: str | None = None
    exclude: tuple[Path, ...] = ()
    max_invalid_ratio: float = 0.10


@dataclass(frozen=True, slots=True)
class Window:
    start: time
    end: time  # start > end means the window runs across midnight
    timezone: str  # IANA name
    implied: bool = False  # True when added by default (IN + MKT, TRAI hours)


@dataclass(frozen=True, slots=True)
class SendingSpec:
    batch_size: int = 100
    requests_per_second: float = 10.0
    concurrency: int = 4
    max_attempts: int = 5
    on_ambiguous: OnAmbiguous = "mark_unknown"
    window: Window | None = None  # None: always open
    timeout: float = 30.0  # seconds per request
    max_duration: float = 300.0  # seconds one batch may take, its retries and waits included
    encoding: Encoding = "json"


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
        return 1 if self.message.type == "OTP" else min(self.sending.batch_size, MAX_BATCH)

    def default_report_path(self, cwd: Path) -> Path:
        return self.report if self.report is not None else cwd / "reports" / f"{self.name}.csv"
