"""Streaming recipient rows: CSV reading, phone normalisation, dedup and suppression.

INTERFACE (owned by the recipients helper; other modules rely on exactly this):

    RowStatus = Literal["ok", "invalid", "duplicate", "suppressed"]

    @dataclass(frozen=True, slots=True)
    class Recipient:
        row: int                 # line number where the record starts in the source CSV
        raw_phone: str           # the cell as written
        phone: str | None        # E.164 ("+919812345678") when valid, else None
        status: RowStatus
        fields: Mapping[str, str]  # the CSV record by column name (for placeholders)
        reason: str = ""         # why invalid / suppressed / duplicate (human words)

    class RecipientStream:
        # Iterating yields one Recipient per data row of the source CSV, in order, streaming.
        # Problems with the file as a whole (missing phone column, unreadable file, empty file)
        # are Diagnostics in .diagnostics and the stream yields nothing; per-row problems
        # (ragged rows, undecodable bytes, invalid numbers) yield an "invalid" Recipient and
        # are counted.
        columns: tuple[str, ...]          # header, available once iteration has started
        diagnostics: list[Diagnostic]
        stats: RecipientStats             # counts, filled while iterating

    def open_recipients(spec: RecipientsSpec, *, display_root: Path | None = None) -> RecipientStream
    def read_columns(spec) -> tuple[tuple[str, ...], list[Diagnostic]]   # header only, cheap
"""
