"""What a delivery report says, counted in one pass: the figures `campaign report` shows.

``summarise(path)`` reads the report once, row by row, and keeps counters only: rows by status,
failed and unknown rows by error code, sends by minute, delivery status by Kaleyra's word and by
how long it took, rows by country. Memory does not grow with the rows:

* error codes, Kaleyra's words and the wordings of each code are capped (past the cap they
  are counted under "other");
* countries are bounded by the world's (about 250);
* minutes are bounded by how long the run lasted; past ``MAX_BUCKETS`` (a week of minutes) the
  buckets are merged two by two, so a run spread over months still fits;
* requests are counted once a batch: a bitmap of batch numbers, one bit a batch (a 1M-row run
  of batches of 100 needs 1.3 kB).

Every figure is a count of rows of the CSV (or of distinct ``batch_id`` values), so anyone can
check it with a spreadsheet. The run's configured rate is not in the CSV: it is read from the
journal beside the report, when there is one.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import phonenumbers

from runner.errors import InputError, JournalError, display_path
from runner.report import restore
from runner.report_counters import Batches, Bucket, Timeline, parse_time
from runner.reportread import read_report_cells

# The statuses always listed, in the order a reader wants them: what happened, then what did not.
STATUSES: tuple[str, ...] = ("sent", "failed", "unknown", "invalid", "duplicate", "suppressed",
                             "pending", "expired")
KNOWN_STATUSES = frozenset((*STATUSES, "dry_run"))
PROBLEM_STATUSES = ("failed", "unknown")
MAX_CODES = 200  # distinct (status, error code) pairs; more are counted as "other"
MAX_WORDINGS = 8  # distinct error texts kept per code, to pick the commonest
MAX_WORDS = 50  # distinct delivery_status words
OTHER = "other"
NOT_A_NUMBER = ""  # the country of a row whose phone is not E.164 (invalid rows)
# Delivery time: from sent_at to the checked_at of the check that saw the row delivered.
DELIVERY_TIMES: tuple[tuple[str, float], ...] = (
    ("under 1 min", 60), ("1-5 min", 300), ("5-15 min", 900), ("15-60 min", 3600),
    ("1-6 h", 6 * 3600), ("6-24 h", 86400), ("over a day", float("inf")))


@dataclass(frozen=True, slots=True)
class Problem:
    """Failed or unknown rows with one error code."""

    status: str
    code: str  # "" when the row has none
    rows: int
    reason: str  # the commonest text in the `error` column for this code
    other_wordings: int  # rows of this code whose `error` says something else


@dataclass(frozen=True, slots=True)
class Country:
    region: str  # ISO 3166 alpha-2 as phonenumbers says; NOT_A_NUMBER, or "ZZ" when unplaced
    rows: int
    sent: int
    failed_or_unknown: int
    delivered: int


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    """What `campaign status` found about the sent rows."""

    sent: int
    verdicts: tuple[tuple[str, int], ...]  # delivered, not delivered, not final yet, not checked
    words: tuple[tuple[str, int], ...]  # Kaleyra's delivery_status -> rows, commonest first
    times: tuple[tuple[str, int], ...]  # DELIVERY_TIMES label -> delivered rows
    last_checked: datetime | None


@dataclass(frozen=True, slots=True)
class ReportSummary:
    report: Path
    campaign: str | None  # the campaign's name, from the journal
    rows: int
    statuses: tuple[tuple[str, int], ...]  # STATUSES, then any other status present
    problems: tuple[Problem, ...]  # most rows first
    bucket_minutes: int  # width of each timeline bucket (1 unless the run lasted over a week)
    timeline: tuple[Bucket, ...]  # the buckets with something in them, oldest first
    requests: int  # distinct batches answered
    retries: int  # requests beyond the first for those batches (attempts - 1)
    rate: float | None  # requests_per_second of the run, from its journal
    delivery: DeliverySummary | None  # None until `campaign status` has added its columns
    countries: tuple[Country, ...]  # most rows first

    def count(self, status: str) -> int:
        return dict(self.statuses).get(status, 0)


# --- the journal: the only place this module reads it -------------------------------------------


def run_settings(report: Path) -> tuple[float | None, str | None]:
    """``requests_per_second`` and the campaign's name, from the journal beside ``report``;
    (None, None) without a usable one: a dry run leaves none, and a page without the rate line
    is better than no page."""
    from runner.state import journal_path, read_meta  # the one import of the journal here

    journal = journal_path(report)
    if not journal.exists():
        return None, None
    try:
        settings = read_meta(journal).settings
    except JournalError:
        return None, None
    rate, name = settings.get("requests_per_second"), settings.get("name")
    ok = isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0
    return (float(rate) if ok else None,  # type: ignore[arg-type]
            name if isinstance(name, str) and name else None)


# --- countries -----------------------------------------------------------------------------------


_CALLING_CODES: dict[str, tuple[str, ...]] = {
    str(code): tuple(regions)
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
}
# "+91" -> "IN": the codes of one region need no parsing (calling codes are prefix-free, so at
# most one of a number's first 1-3 digits is a key).
_SINGLE_REGION: dict[str, str] = {
    f"+{code}": regions[0] for code, regions in _CALLING_CODES.items() if len(regions) == 1}


def region_of(phone: str) -> str:
    """The region phonenumbers gives an E.164 number; NOT_A_NUMBER when it is not E.164."""
    if not phone.startswith("+") or not phone[1:].isdigit():
        return NOT_A_NUMBER
    for n in (1, 2, 3):  # calling codes are prefix-free: the first match is the code
        regions = _CALLING_CODES.get(phone[1:1 + n])
        if regions is None:
            continue
        if len(regions) == 1:  # most codes: no need to parse
            return regions[0]
        try:  # +1, +44, +7, ...: the number's digits decide, as phonenumbers reads them
            region = phonenumbers.region_code_for_number(phonenumbers.parse(phone))
        except phonenumbers.NumberParseException:
            return "ZZ"
        return region or "ZZ"
    return "ZZ"


# --- the pass ------------------------------------------------------------------------------------


def summarise(path: Path, *, rate: float | None = None, read_journal: bool = True) -> ReportSummary:
    """Count everything ``campaign report`` shows, in one pass over ``path``.

    ``rate`` (requests a second) is read from the journal beside the report unless given or
    ``read_journal`` is false. Raises InputError, naming the file and, where one is to blame,
    the line, for a file that is missing, not a report, empty, truncated or holding cells no
    report holds.
    """
    shown = display_path(path)
    with contextlib.suppress(OSError):  # a missing file is read_report_cells' to explain
        if path.is_file() and path.stat().st_size == 0:
            raise InputError(f"{shown}: the file is empty (0 bytes): not a delivery report")
    header, rows = read_report_cells(path)
    complete = _ends_with_line_end(path)
    tally = _Tally(shown, header)
    if not complete:
        # A report always ends with CRLF: a last line without one was cut short (a copy that
        # stopped, a full disk), and its last cell may look whole ("2026-12-02T05:17").
        raise InputError(f"{shown}:{_last_line(path)}: the file ends in the middle of a line: "
                         "the report is truncated (a report always ends with a line end)")
    for line, cells in rows:
        tally.add(line, cells)
    if tally.rows == 0:
        raise InputError(f"{shown}: the report has a header but no rows: nothing to show")
    campaign = None
    if read_journal:
        found_rate, campaign = run_settings(path)
        rate = found_rate if rate is None else rate
    return tally.result(path, rate, campaign)


def _ends_with_line_end(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except OSError:  # read_report_cells could read it: only seeking failed (a pipe)
        return True


def _last_line(path: Path) -> int:
    lines = 1
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


class _Tally:
    """The counters of one pass; ``add`` is called once a row, so it keeps to plain lookups."""

    def __init__(self, shown: str, header: list[str]) -> None:
        self._has_delivery = "delivery_status" in header and "checked_at" in header
        if self._has_delivery:  # status.py brings aiohttp: only for reports that need it
            from runner.delivery import verdict  # Kaleyra's word -> delivered, undelivered, ...

            self._verdict = verdict
        self._verdicts: dict[str, str] = {}  # a cache of verdict()
        self._took: tuple[str, str, int] = ("", "", 0)  # the last sent_at, checked_at, bucket
        self._shown = shown
        self._i = {name: header.index(name) for name in (
            "phone", "status", "batch_id", "error_code", "error", "attempts", "sent_at")}
        if self._has_delivery:
            self._i |= {name: header.index(name) for name in ("delivery_status", "checked_at")}
        self.rows = self.requests = self.retries = 0
        self.statuses: Counter[str] = Counter()
        self.problems: dict[tuple[str, str], Counter[str]] = {}
        self.timeline, self.batches = Timeline(shown), Batches()
        self.countries: dict[str, list[int]] = {}  # region -> rows, sent, failed/unknown, delivered
        self.verdicts: Counter[str] = Counter()
        self.words: Counter[str] = Counter()
        self.times = [0] * len(DELIVERY_TIMES)
        self.last_checked: datetime | None = None
        self._checked: dict[str, datetime] = {}  # checked_at text -> time (a status run's few)

    def add(self, line: int, cells: list[str]) -> None:
        i = self._i
        self.rows += 1
        status = cells[i["status"]]
        if status not in KNOWN_STATUSES:
            raise InputError(f"{self._shown}:{line}: status {status[:40]!r} is not a report "
                             f"status ({', '.join(sorted(KNOWN_STATUSES))})")
        self.statuses[status] += 1
        phone = cells[i["phone"]]
        region = (_SINGLE_REGION.get(phone[:3]) or _SINGLE_REGION.get(phone[:4])
                  or _SINGLE_REGION.get(phone[:2]))
        if region is None or not phone[1:].isdigit():
            region = region_of(phone)
        counts = self.countries.get(region)
        if counts is None:
            counts = self.countries[region] = [0, 0, 0, 0]
        counts[0] += 1

        sent_at = cells[i["sent_at"]]
        if sent_at:
            batch = cells[i["batch_id"]]
            first = self.batches.first_sight(batch) if batch else True
            if first:
                self.requests += 1
                attempts = cells[i["attempts"]]
                if attempts not in ("1", "0", ""):
                    if not attempts.isdigit():
                        raise InputError(f"{self._shown}:{line}: attempts {attempts[:40]!r} is "
                                         "not a whole number")
                    self.retries += int(attempts) - 1
            self.timeline.add(sent_at, line, sent=status == "sent", request=first)

        if status == "sent":
            counts[1] += 1
            if self._has_delivery and self._delivered(line, cells, sent_at):
                counts[3] += 1
        elif status in PROBLEM_STATUSES:
            counts[2] += 1
            self._problem(status, restore(cells[i["error_code"]]), restore(cells[i["error"]]))

    def _delivered(self, line: int, cells: list[str], sent_at: str) -> bool:
        word, checked_at = cells[self._i["delivery_status"]], cells[self._i["checked_at"]]
        if not word and not checked_at:
            self.verdicts["not checked"] += 1
            return False
        judged = self._verdicts.get(word)
        if judged is None:
            judged = self._verdicts[word] = self._verdict(word)
            if len(self._verdicts) > MAX_WORDS:
                self._verdicts.clear()
        self.verdicts[judged] += 1
        if word:
            self.words[word if word in self.words or len(self.words) < MAX_WORDS else OTHER] += 1
        checked = self._checked_time(line, checked_at) if checked_at else None
        if judged != "delivered":
            return False
        if checked is not None and sent_at:
            last_sent, last_checked, bucket = self._took
            if sent_at != last_sent or checked_at != last_checked:  # a batch shares both
                sent_time = parse_time(sent_at, f"{self._shown}:{line}", "sent_at")
                seconds = (checked - sent_time).total_seconds()
                bucket = next(n for n, (_, edge) in enumerate(DELIVERY_TIMES) if seconds < edge)
                self._took = (sent_at, checked_at, bucket)
            self.times[bucket] += 1
        return True

    def _checked_time(self, line: int, text: str) -> datetime:
        checked = self._checked.get(text)
        if checked is None:
            if len(self._checked) > 1024:  # a cache, not a record
                self._checked.clear()
            checked = self._checked[text] = parse_time(text, f"{self._shown}:{line}",
                                                        "checked_at")
            if self.last_checked is None or checked > self.last_checked:
                self.last_checked = checked
        return checked

    def _problem(self, status: str, code: str, error: str) -> None:
        key = (status, code)
        wordings = self.problems.get(key)
        if wordings is None:
            if len(self.problems) >= MAX_CODES:
                key = (status, OTHER)
            wordings = self.problems.setdefault(key, Counter())
        wordings[error if error in wordings or len(wordings) < MAX_WORDINGS else OTHER] += 1

    def result(self, path: Path, rate: float | None, campaign: str | None) -> ReportSummary:
        sent = self.statuses["sent"]
        return ReportSummary(
            report=path,
            campaign=campaign,
            rows=self.rows,
            statuses=_ordered_statuses(self.statuses),
            problems=_problems(self.problems),
            bucket_minutes=self.timeline.width,
            timeline=self.timeline.result(),
            requests=self.requests,
            retries=self.retries,
            rate=rate,
            delivery=_delivery(sent, self.verdicts, self.words, self.times, self.last_checked)
            if self._has_delivery else None,
            countries=tuple(sorted(
                (Country(region, *counts) for region, counts in self.countries.items()),
                key=lambda c: (-c.rows, c.region))),
        )


def _ordered_statuses(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    listed = [(s, counts[s]) for s in STATUSES]
    listed += [(s, n) for s, n in sorted(counts.items()) if s not in STATUSES]
    return tuple(listed)


def _problems(found: dict[tuple[str, str], Counter[str]]) -> tuple[Problem, ...]:
    listed = []
    for (status, code), wordings in found.items():
        rows = sum(wordings.values())
        named = [(w, n) for w, n in wordings.items() if w != OTHER]  # the first are named
        reason, n = max(named, key=lambda kv: kv[1])
        listed.append(Problem(status, code, rows, reason, rows - n))
    return tuple(sorted(listed, key=lambda p: (-p.rows, p.status, p.code)))


def _delivery(sent: int, verdicts: Counter[str], words: Counter[str], times: list[int],
              last_checked: datetime | None) -> DeliverySummary:
    names = (("delivered", "delivered"), ("undelivered", "not delivered"),
             ("pending", "not final yet"), ("not checked", "not checked yet"))
    return DeliverySummary(
        sent=sent,
        verdicts=tuple((label, verdicts[key]) for key, label in names),
        words=tuple(sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))),
        times=tuple((label, n) for (label, _), n in zip(DELIVERY_TIMES, times, strict=True)),
        last_checked=last_checked,
    )
