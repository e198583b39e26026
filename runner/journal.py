"""The durable state of a run: sqlite3 in WAL mode beside the report, and resume.

INTERFACE (owned by the state helper):

    JournalStatus = Literal["in_flight", "sent", "failed", "unknown"]

    @dataclass(frozen=True, slots=True)
    class RowOutcome:
        row: int; phone: str; status: JournalStatus; batch_id: str
        message_id: str = ""; error_code: str = ""; error: str = ""
        attempts: int = 0; sent_at: str = ""      # ISO 8601 UTC

    def fingerprint(campaign: Campaign) -> str
        # sha256 over message (sender, type, flash, body, template_id, entity_id), region, sid,
        # batch settings that change what is sent, and the bytes of the source CSV and exclude files

    class Journal:
        @classmethod
        def open(cls, path: Path, fingerprint: str, *, fresh: bool = False,
                 settings: Mapping[str, object] | None = None) -> Journal
            # new file or matching fingerprint: opens; mismatch: JournalError explaining --fresh;
            # fresh=True: renames an existing journal aside to "<path>.<UTC stamp>.old" first
        run_number: int                      # 1 for a new journal, +1 for each resume
        settings: dict[str, object]          # stored at creation (for `campaign status`)
        def begin_batch(self, batch_id: str, rows: Sequence[tuple[int, str]]) -> None
            # marks rows in flight and COMMITS before returning (a request must never go out
            # unrecorded); also commits any finished results still pending
        def finish_batch(self, outcomes: Sequence[RowOutcome]) -> None
            # records answers; commits are grouped (at the latest at the next begin_batch/flush)
        def flush(self) -> None
        def settled_rows(self) -> set[int]   # rows whose request was answered (sent/failed)
        def outcomes_in_row_order(self) -> Iterator[RowOutcome]  # for a streaming merge
        def mark_in_flight_unknown(self) -> int  # at resume: in_flight -> unknown; returns count
        def close(self) -> None
"""
