"""The report of a send: the check pass's verdicts merged with the journal, one row for each
source row, in source order (``write_checked_report``); ``report_rows`` is the same merged
with a new read of the CSV, for callers that kept no verdicts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from runner.compose import Composer, composed
from runner.model import Campaign
from runner.preview import Preview
from runner.recipients import open_recipients
from runner.report import SENT_COLUMNS, LineFormatter, ReportRow, ReportStatus, ReportWriter
from runner.state import IN_FLIGHT_CODE, IN_FLIGHT_ERROR, JournalRow, RowOutcome, Store
from runner.verdicts import CheckedRows

# --- the report --------------------------------------------------------------------------------


def report_rows(campaign: Campaign, outcomes: Iterator[RowOutcome], *,
                unsent: tuple[str, str] = ("pending", "")) -> Iterator[ReportRow]:
    """One report row per source row, in source order: the stream merged with the journal.
    ``unsent``: (status, error) of the rows not sent (``expired`` past sending.expires; the
    reason the account refused the run)."""
    upcoming = next(outcomes, None)
    unsent_status = cast(ReportStatus, unsent[0])
    composer = Composer.for_campaign(campaign)  # the rows' texts: their verdicts and parts
    preview = Preview(composer.segments)
    stream = open_recipients(campaign.recipients, with_fields=composer.personalised)
    for recipient, text in composed(stream, composer):
        while upcoming is not None and upcoming.row < recipient.row:
            upcoming = next(outcomes, None)
        phone = recipient.phone or recipient.raw_phone
        parts = {"parts": str(preview.parts(text))} if text is not None else {}
        if recipient.status != "ok":
            yield ReportRow(recipient.row, phone, recipient.status, error=recipient.reason)
        elif upcoming is not None and upcoming.row == recipient.row:
            o = upcoming
            if o.status == "in_flight":  # this run stopped while it was on its way
                yield ReportRow(recipient.row, phone, "unknown", batch_id=o.batch_id,
                                error_code=IN_FLIGHT_CODE, error=IN_FLIGHT_ERROR,
                                attempts=o.attempts, sent_at=o.sent_at, extra=parts)
            else:
                status = unsent_status if o.status == "refused" else o.status
                yield ReportRow(recipient.row, phone, status, message_id=o.message_id,
                                batch_id=o.batch_id, error_code=o.error_code, error=o.error,
                                attempts=o.attempts, sent_at=o.sent_at, extra=parts)
        else:
            yield ReportRow(recipient.row, phone, unsent_status, error=unsent[1], extra=parts)


_SAFE_ID = re.compile(r"[0-9A-Za-z_][0-9A-Za-z_.:/-]*")  # needs no quoting nor neutralising


def write_checked_report(path: Path, checked: CheckedRows, journal: Store,
                         fixed_parts: int = 0, unsent: tuple[str, str] = ("pending", "")
                         ) -> Counter[str]:
    """The report from the check pass's verdicts and the journal: no second read of the CSV,
    with SENT_COLUMNS (each row's parts: as planned, else ``fixed_parts``, the parts of every
    row of a body without placeholders). ``unsent``: (status, error) of the rows not sent
    (``expired`` past sending.expires; the reason the account refused the run).

    One loop with its state in locals: it runs once a row, and a stopped run of a million rows
    must write its report within the few seconds CI gives between SIGTERM and SIGKILL.
    """
    counts: Counter[str] = Counter(checked.unsent_counts)
    end = 1 << 62
    spilled = checked.unsent_lines()
    answered = journal.rows_in_row_order()
    lines = LineFormatter(SENT_COLUMNS)
    safe = _SAFE_ID.fullmatch
    pending = 0
    not_sent, reason = unsent  # the verdict of the rows not sent
    plain = unsent == ("pending", "")  # the common line needs no csv module
    with ReportWriter(path, SENT_COLUMNS) as writer:
        out: list[str] = []
        next_unsent = next(spilled, None)
        unsent_row = next_unsent[0] if next_unsent is not None else end
        upcoming = next(answered, None)
        answered_row = upcoming[0] if upcoming is not None else end
        for (row, number), n in zip(checked.sendable_pairs(),
                                    checked.sendable_parts(fixed_parts), strict=True):
            while unsent_row < row:
                out.append(next_unsent[1])  # type: ignore[index]
                next_unsent = next(spilled, None)
                unsent_row = next_unsent[0] if next_unsent is not None else end
            while answered_row < row:
                upcoming = next(answered, None)
                answered_row = upcoming[0] if upcoming is not None else end
            if answered_row != row:
                # An E.164 number needs no quoting nor neutralising: the csv module's line.
                out.append(f"{row},+{number},pending,,,,,0,,{n or ''}\r\n" if plain else
                           lines.unsent(row, f"+{number}", not_sent, reason,
                                        extra=(str(n) if n else "",)))
                pending += 1
            else:
                assert upcoming is not None
                status = upcoming[2]
                if status == "refused":  # the account refused it: nothing was sent
                    upcoming = (*upcoming[:2], not_sent, *upcoming[3:])
                    status = not_sent
                out.append(_answered_line(upcoming, f"+{number}", str(n) if n else "", lines,
                                          safe))
                counts["unknown" if status == "in_flight" else status] += 1
            if len(out) >= 4096:
                writer.write_text("".join(out), {})
                out.clear()
        while next_unsent is not None:
            out.append(next_unsent[1])
            next_unsent = next(spilled, None)
        counts[not_sent] += pending
        writer.write_text("".join(out), +counts)
        return writer.commit()


def _answered_line(found: JournalRow, phone: str, parts: str, lines: LineFormatter,
                   safe: Callable[[str], object]) -> str:
    row, _, status, batch_id, message_id, error_code, error, attempts, sent_at = found
    if status == "sent" and safe(message_id) and safe(batch_id):
        return f"{row},{phone},sent,{message_id},{batch_id},,,{attempts},{sent_at},{parts}\r\n"
    if status == "in_flight":  # this run stopped while it was on its way
        return lines.row(ReportRow(row, phone, "unknown", batch_id=batch_id,
                                   error_code=IN_FLIGHT_CODE, error=IN_FLIGHT_ERROR,
                                   attempts=attempts, sent_at=sent_at, extra={"parts": parts}))
    return lines.row(ReportRow(row, phone, cast(ReportStatus, status), message_id=message_id,
                               batch_id=batch_id, error_code=error_code, error=error,
                               attempts=attempts, sent_at=sent_at, extra={"parts": parts}))



def write_journal_report(campaign: Campaign, report: Path, journal: Store,
                          checked: CheckedRows,
                          unsent: tuple[str, str] = ("pending", "")) -> Counter[str]:
    journal.flush()
    composer = Composer.for_campaign(campaign)
    fixed = composer.fixed_text if not composer.personalised else None
    parts = Preview(composer.segments).parts(fixed) if fixed is not None else 0
    return write_checked_report(report, checked, journal, parts, unsent)
