"""The sandbox's names and its injected faults: what the command line needs without the server.

Kept apart from ``runner.sandbox`` so that parsing `campaign` flags never imports aiohttp.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final

SANDBOX_API_KEY: Final = "sandbox-key"
SANDBOX_SID: Final = "SANDBOX"
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080

# In precedence order. The first seven answer before anything is accepted; the rest accept
# (and record) the numbers first: then a 500 with E103, a 502 or 504 from a gateway that timed
# out waiting, a huge answer, or one trickled out a byte at a time.
FAULT_KINDS: Final = ("drop_before", "redirect", "429", "502", "503", "504", "500", "drop_after",
                      "500_after", "502_after", "504_after", "huge", "trickle")


@dataclass(frozen=True, slots=True)
class Faults:
    """Injected trouble. every_N: the Nth, 2Nth, ... request (0 = off); rate_*: probability."""

    every_429: int = 0
    every_500: int = 0
    every_502: int = 0
    every_503: int = 0
    every_504: int = 0
    every_drop_before: int = 0  # read the request, close the connection, accept nothing
    every_drop_after: int = 0  # accept the request, then close without answering
    every_redirect: int = 0  # 307 elsewhere, accept nothing
    every_500_after: int = 0  # accept, then 500 with E103 ("internal error")
    every_502_after: int = 0  # accept, then 502
    every_504_after: int = 0  # accept, then 504
    every_huge: int = 0  # accept, then a 200 of huge_bytes (chunked)
    every_trickle: int = 0  # accept, then the 200 a byte every trickle_interval seconds
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_502: float = 0.0
    rate_503: float = 0.0
    rate_504: float = 0.0
    rate_drop_before: float = 0.0
    rate_drop_after: float = 0.0
    rate_redirect: float = 0.0
    rate_500_after: float = 0.0
    rate_502_after: float = 0.0
    rate_504_after: float = 0.0
    rate_huge: float = 0.0
    rate_trickle: float = 0.0
    retry_after: float | None = 1.0  # Retry-After seconds sent with 429 (None: no header)
    # Retry-After sent verbatim with 429 and 503 instead ("999999", "1e308", an HTTP date).
    retry_after_text: str | None = None
    huge_bytes: int = 64 << 20
    trickle_interval: float = 0.2
    # A request on a connection idle this long is dropped unread, as when it crosses the
    # server's close of an idle keep-alive connection on the wire (None: connections never go
    # stale).
    keepalive: float | None = None
    latency: float = 0.0  # seconds before each answer
    slow_every: int = 0
    slow_latency: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("rate_") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be between 0 and 1, not {value}")
            if f.name.startswith(("every_", "slow_every")) and value < 0:
                raise ValueError(f"{f.name} must be 0 or more, not {value}")
        if self.latency < 0 or self.slow_latency < 0 or self.trickle_interval < 0:
            raise ValueError("latencies must be 0 or more")
        if self.huge_bytes < 0:
            raise ValueError(f"huge_bytes must be 0 or more, not {self.huge_bytes}")
        if self.keepalive is not None and not self.keepalive > 0:
            raise ValueError(f"keepalive must be above 0, not {self.keepalive}")

    def active(self, prefix: str) -> list[tuple[str, Any]]:
        """(kind, value) of the every_* or rate_* faults that are on, in precedence order."""
        pairs = ((kind, getattr(self, f"{prefix}_{kind}")) for kind in FAULT_KINDS)
        return [(kind, value) for kind, value in pairs if value]
