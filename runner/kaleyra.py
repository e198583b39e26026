"""The Kaleyra SMS API: endpoint resolution, request building, one attempt, answer classification.

INTERFACE (owned by the wire helper; the engine relies on exactly this):

    class Secret:                      # wraps the API key; str()/repr() give "***"
        def __init__(self, value: str) -> None
        def reveal(self) -> str

    @dataclass(frozen=True, slots=True)
    class Endpoint:
        base_url: str                  # "https://api.in.kaleyra.io" or $KALEYRA_BASE_URL
        sid: str
        api_key: Secret
        @property sms_url -> str       # f"{base_url}/v1/{sid}/sms"
        @property status_url -> str    # f"{base_url}/v1/{sid}/sms/status"

    def resolve_endpoint(campaign: Campaign, env: Mapping[str, str]) -> Endpoint
        # raises InputError naming the missing variable (key, SID) or a non-loopback http:// URL

    def build_payload(campaign: Campaign, numbers: Sequence[str], body: str | None) -> dict[str, str]
        # to = comma-separated E.164 with "+", sender, type, flash "0"/"1", body and/or template_id,
        # entity_id, unicode when set; ref = campaign name (alphanumeric only)

    Outcome = Accepted | Rejected | Transient | Ambiguous     (frozen slotted dataclasses)
      Accepted(message_ids: Mapping[str, str], unmatched: tuple[str, ...], request_id: str | None)
          # message_ids: E.164 -> message_id, matched by digits (data[].recipient drops "+")
      Rejected(code: str, message: str, http_status: int | None)         # permanent
      Transient(code: str, message: str, http_status: int | None, retry_after: float | None)
      Ambiguous(code: str, message: str, http_status: int | None)       # may have been delivered

    def classify_response(http_status: int, headers: Mapping[str, str], text: str,
                          numbers: Sequence[str]) -> Outcome
    async def post_sms(session: aiohttp.ClientSession, endpoint: Endpoint,
                       payload: Mapping[str, str], *, encoding: Encoding, timeout: float,
                       numbers: Sequence[str]) -> Outcome
        # never raises for network trouble: connection refused / connect timeout -> Transient,
        # reset or timeout after the request was sent -> Ambiguous
"""
