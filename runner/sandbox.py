"""A local Kaleyra-compatible server for trying the tool, integration tests and benchmarks.

INTERFACE (owned by the wire helper):

    @dataclass(frozen=True, slots=True)
    class Faults:                      # "every_N": the Nth, 2Nth, ... request gets it (0 = off);
        every_429: int = 0             # "rate_*": probability per request, drawn from Random(seed)
        every_500: int = 0
        every_502: int = 0
        every_503: int = 0
        every_drop_before: int = 0     # read the request, close the connection, accept nothing
        every_drop_after: int = 0      # accept the request, then close without answering
        rate_429: float = 0.0 ... (same set as rates)
        retry_after: float | None = 1.0    # Retry-After seconds sent with 429 (None: no header)
        latency: float = 0.0           # seconds before each answer
        slow_every: int = 0; slow_latency: float = 0.0
        seed: int = 0

    class SandboxRecord:               # what the server accepted, for exactly-once assertions
        accepted: list[AcceptedRequest]   # AcceptedRequest(at: float, numbers: tuple[str, ...],
                                           #   body, sender, type, flash, message_ids)
        requests: list[RequestLog]     # RequestLog(at: float, status: int, count: int)
        def deliveries() -> Counter[str]   # E.164 -> times accepted

    class SandboxServer:
        def __init__(self, *, api_key="sandbox-key", sid="SANDBOX", region="IN",
                     faults=Faults(), clock=time.monotonic) -> None
        async def start(self, host="127.0.0.1", port=0) -> None
        async def stop(self) -> None
        base_url: str                  # "http://127.0.0.1:<port>"
        record: SandboxRecord
    class SandboxThread:               # the same server on its own loop in a daemon thread
        context manager; .base_url; .record (read after stop, or via GET /_sandbox/record)

    Routes: POST /v1/{sid}/sms (JSON or form), GET /v1/{sid}/sms/status?message_ids=...,
            GET /_sandbox/record (JSON), POST /_sandbox/reset
"""
