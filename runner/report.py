"""The CSV delivery report and the run summary.

INTERFACE (owned by the state helper):

    REPORT_COLUMNS = ("row", "phone", "status", "message_id", "batch_id", "error_code", "error",
                      "attempts", "sent_at")
    ReportStatus = Literal["sent", "failed", "unknown", "invalid", "duplicate", "suppressed",
                           "pending", "dry_run"]

    @dataclass(frozen=True, slots=True)
    class ReportRow:
        row: int; phone: str; status: ReportStatus
        message_id: str = ""; batch_id: str = ""; error_code: str = ""; error: str = ""
        attempts: int = 0; sent_at: str = ""
        extra: Mapping[str, str] = {}       # further columns, e.g. delivery_status

    def write_report(path: Path, rows: Iterable[ReportRow],
                     extra_columns: Sequence[str] = ()) -> Counter[str]
        # streams to a temp file in the same folder, fsyncs, os.replace()s; neutralises cells a
        # spreadsheet would run as formulas; returns counts by status; InputError for a missing
        # or read-only folder (message names the path)
    def read_report(path: Path) -> Iterator[dict[str, str]]   # un-neutralised values
"""
