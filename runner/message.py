"""Message bodies: {column} placeholders and GSM-7 / UCS-2 segment counting.

INTERFACE (owned by the recipients helper):

    class TemplateError(ValueError)   # .column: int (0-based offset in body), message
    def placeholders(body: str) -> tuple[str, ...]     # unique, in order; raises TemplateError
    def render(body: str, fields: Mapping[str, str]) -> str   # "{{" -> "{", "}}" -> "}"

    @dataclass(frozen=True, slots=True)
    class Segments:
        encoding: Literal["GSM-7", "UCS-2"]
        units: int      # characters counted (extension chars count 2 in GSM-7)
        parts: int      # 1 if it fits in one part (160 / 70) else ceil(units/153 or 67)
        limit: int      # the single-part limit for this encoding (160 or 70)

    def count_segments(text: str) -> Segments
"""
