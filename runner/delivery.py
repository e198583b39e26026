"""`campaign status REPORT`: ask Kaleyra what became of a report's sent messages.

The report says which rows were ``sent`` and their message ids; the journal beside it
(``<report>.journal``) holds the settings of the run that wrote it: region, SID, the variable
that holds the key, the rate limit, concurrency, attempts and timeout. The ids still pending
are asked for by ``runner.poller`` under that rate limit, and the report is rewritten atomically
with three more columns: ``delivery_status`` (Kaleyra's word), ``delivery_detail`` and
``checked_at``.

Kaleyra's statuses, as this module reads them (case, spaces and punctuation ignored)::

    delivered     Delivered                             final
    undelivered   UnDelivered, Failed, NotSent          final
    pending       Sent and anything else, or no answer  ask again later

A row whose status is already final is not asked for again (``--recheck`` asks anyway), so a
status run repeated from cron only costs requests for what is still pending. A permanent refusal
(a wrong key, an unknown SID) stops the run: every other request would be refused too.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO, cast, get_args

from runner.answers import Rejected
from runner.endpoint import resolve_account_endpoint
from runner.engine import RetryPolicy
from runner.errors import InputError, JournalError, display_path
from runner.exitcodes import EXIT_INCOMPLETE, EXIT_INVALID, EXIT_OK
from runner.model import API_DOMAINS, Account, Region, SendingSpec
from runner.poller import Clock, PollResult, Sleep, StatusSettings, poll
from runner.report import REPORT_COLUMNS, ReportRow, ReportStatus, write_report
from runner.reportread import read_report
from runner.state import JournalMeta, journal_path, mask_url, read_meta, read_state_meta

DELIVERY_COLUMNS: tuple[str, ...] = ("delivery_status", "delivery_detail", "checked_at")
NOT_IN_ANSWER = "not in Kaleyra's answer yet"

Verdict = Literal["delivered", "undelivered", "pending"]

_FINAL: Mapping[str, Verdict] = {
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "undelivered",
    "notsent": "undelivered",
}
_NOT_LETTERS = re.compile(r"[^a-z]+")
_REPORT_STATUSES = frozenset(get_args(ReportStatus))


def verdict(delivery_status: str) -> Verdict:
    """What a Kaleyra status means here: 'Not Sent', 'NOTSENT' and 'NotSent' are one word."""
    return _FINAL.get(_NOT_LETTERS.sub("", delivery_status.lower()), "pending")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- settings from the journal -----------------------------------------------------------------


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def settings_from_meta(meta: JournalMeta, journal: Path | str) -> StatusSettings:
    """The run's settings, checked: a journal from elsewhere must not give a traceback.
    ``journal``: its path, or (a str) the state store as shown to users."""
    s, spec = meta.settings, SendingSpec()
    shown = journal if isinstance(journal, str) else display_path(journal)

    def bad(key: str, want: str) -> JournalError:
        return JournalError(f"{shown}: the journal's setting {key!r} is {s.get(key)!r}, not "
                            f"{want} (was it written by another version of runner?)")

    region = s.get("region")
    if region not in API_DOMAINS:
        raise bad("region", "one of " + ", ".join(API_DOMAINS))
    sid = s.get("sid")
    if sid is not None and not isinstance(sid, str):
        raise bad("sid", "a SID or null")
    key_env = s.get("api_key_env", Account.__dataclass_fields__["api_key_env"].default)
    if not isinstance(key_env, str) or not key_env:
        raise bad("api_key_env", "the name of a variable")
    rate = s.get("requests_per_second", spec.requests_per_second)
    if rate is not None and not (_number(rate) and cast(float, rate) > 0):
        raise bad("requests_per_second", "a number above 0")
    ints = {k: s.get(k, getattr(spec, k)) for k in ("concurrency", "max_attempts")}
    for key, value in ints.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise bad(key, "a whole number of at least 1")
    timeout = s.get("timeout", spec.timeout)
    if not (_number(timeout) and cast(float, timeout) > 0):
        raise bad("timeout", "a number of seconds above 0")
    campaign = s.get("campaign")
    return StatusSettings(
        campaign=display_path(campaign) if isinstance(campaign, str) and campaign else shown,
        account=Account(region=cast(Region, region), sid=sid or None, api_key_env=key_env),
        requests_per_second=None if rate is None else float(cast(float, rate)),
        concurrency=cast(int, ints["concurrency"]),
        max_attempts=cast(int, ints["max_attempts"]),
        timeout=float(cast(float, timeout)),
    )


def load_settings(report: Path, state: str | None = None,
                  sent: Sequence[tuple[int, str]] = ()) -> StatusSettings:
    """The settings of the run that wrote ``report``: from its journal, or from the PostgreSQL
    ``state``, where the run is the one whose records hold the report's ``sent`` messages."""
    if state is not None:
        return settings_from_meta(read_state_meta(state, report, sent), mask_url(state))
    journal = journal_path(report)
    if not journal.exists():
        raise JournalError(f"{display_path(report)}: no journal beside it "
                           f"({display_path(journal)}): `campaign status` needs a report written "
                           "by `campaign send` (not --dry-run), with its journal")
    return settings_from_meta(read_meta(journal), journal)


# --- reading the report ------------------------------------------------------------------------


def _whole(value: str, name: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{where}: {name} {value!r} is not a whole number") from None


def report_rows(report: Path) -> Iterator[ReportRow]:
    """The report's rows as records; a cell that is not what a report holds is an InputError."""
    shown = display_path(report)
    for line, cells in enumerate(read_report(report), start=2):
        where = f"{shown}:{line}"
        status = cells["status"]
        if status not in _REPORT_STATUSES:
            raise InputError(f"{where}: status {status!r} is not a report status "
                             f"({', '.join(sorted(_REPORT_STATUSES))})")
        extra = {k: v for k, v in cells.items() if k not in REPORT_COLUMNS}
        yield ReportRow(
            row=_whole(cells["row"], "row", where), phone=cells["phone"],
            status=cast(ReportStatus, status), message_id=cells["message_id"],
            batch_id=cells["batch_id"], error_code=cells["error_code"], error=cells["error"],
            attempts=_whole(cells["attempts"] or "0", "attempts", where),
            sent_at=cells["sent_at"], extra=extra)


@dataclass(slots=True)
class ReportScan:
    extra_columns: tuple[str, ...] = ()  # the report's own extra columns, in order
    to_ask: list[str] = field(default_factory=list)  # message ids, each once, in report order
    sent: int = 0
    already_final: int = 0
    samples: list[tuple[int, str]] = field(default_factory=list)  # a few (row, message id)


def scan(report: Path, *, recheck: bool) -> ReportScan:
    """One pass over the report: which ids to ask for (and a check of every row before asking)."""
    found = ReportScan()
    seen: set[str] = set()
    for i, r in enumerate(report_rows(report)):
        if i == 0:
            found.extra_columns = tuple(r.extra)
        if r.status != "sent":
            continue
        found.sent += 1
        if r.message_id and len(found.samples) < 20:  # to find the run in a state store
            found.samples.append((r.row, r.message_id))
        if not recheck and verdict(r.extra.get("delivery_status", "")) != "pending":
            found.already_final += 1
        elif r.message_id and r.message_id not in seen:
            seen.add(r.message_id)
            found.to_ask.append(r.message_id)
    return found


# --- the whole check ---------------------------------------------------------------------------


@dataclass(slots=True)
class StatusResult:
    report: Path
    sent: int = 0  # sent rows in the report
    asked: int = 0  # message ids asked for in this run
    already_final: int = 0  # sent rows left alone: final at an earlier check
    verdicts: Counter[str] = field(default_factory=Counter)  # sent rows: delivered, ...
    statuses: Counter[str] = field(default_factory=Counter)  # sent rows by Kaleyra's word
    unchecked: int = 0  # ids asked for that got no answer (transient trouble, refusal)
    refused: Rejected | None = None
    requests: int = 0
    retries: int = 0
    written: bool = False  # the report was rewritten
    rerun_after: float | None = None  # seconds Kaleyra asked to wait (it stopped the polling)

    @property
    def counts(self) -> Counter[str]:
        """Sent rows by verdict: delivered, undelivered, pending."""
        return self.verdicts

    @property
    def exit_code(self) -> int:
        """0 when every sent row is delivered (or none was sent); 3 when some are undelivered
        or still pending; 1 when Kaleyra refused the status request."""
        if self.refused is not None:
            return EXIT_INVALID
        if self.sent == 0:
            return EXIT_OK
        pending = self.verdicts["undelivered"] or self.verdicts["pending"]
        return EXIT_INCOMPLETE if pending else EXIT_OK


def updated(r: ReportRow, polled: PollResult, checked_at: str) -> ReportRow:
    """The row with what this check learnt; rows not asked about keep their columns."""
    mid = r.message_id
    if r.status != "sent" or not mid or mid in polled.unchecked:
        return r
    extra = dict(r.extra)
    answer = polled.deliveries.get(mid)
    if answer is not None:
        extra.update(delivery_status=answer.status, delivery_detail=answer.detail)
    elif mid in polled.missing:
        extra["delivery_detail"] = NOT_IN_ANSWER
    else:
        return r  # not asked (final already)
    extra["checked_at"] = checked_at
    return ReportRow(r.row, r.phone, r.status, r.message_id, r.batch_id, r.error_code, r.error,
                     r.attempts, r.sent_at, extra)


def check_delivery(report: Path, env: Mapping[str, str], *, recheck: bool = False,
                   clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep,
                   now: Callable[[], str] = _now_iso,
                   retry: RetryPolicy | None = None, state: str | None = None) -> StatusResult:
    """Poll the delivery status of ``report``'s sent rows and rewrite it with what was learnt.

    ``state``: the PostgreSQL URL the report was sent with (else the journal beside it)."""
    found = scan(report, recheck=recheck)  # the report first: its errors are the likelier ones
    # A state store finds the run from the report's messages: none to ask about, none needed.
    settings = (load_settings(report, state, found.samples)
                if state is None or found.to_ask else None)
    result = StatusResult(report, sent=found.sent, asked=len(found.to_ask),
                          already_final=found.already_final)
    polled = PollResult()
    if found.to_ask:
        assert settings is not None
        endpoint = resolve_account_endpoint(settings.account, settings.campaign, env)
        polled = asyncio.run(poll(endpoint, settings, found.to_ask, clock=clock, sleep=sleep,
                                  retry=retry))
        result.requests, result.retries = polled.requests, polled.retries
        result.unchecked, result.refused = len(polled.unchecked), polled.refused
        result.rerun_after = polled.rerun_after
    checked_at = now()
    rows: Iterator[ReportRow] = (updated(r, polled, checked_at) for r in report_rows(report))
    if found.to_ask and len(polled.unchecked) < len(found.to_ask):  # something was learnt
        columns = found.extra_columns + tuple(c for c in DELIVERY_COLUMNS
                                              if c not in found.extra_columns)
        rows = _counting(rows, result)
        write_report(report, rows, extra_columns=columns)
        result.written = True
    else:
        for _ in _counting(rows, result):
            pass
    return result


def _counting(rows: Iterator[ReportRow], result: StatusResult) -> Iterator[ReportRow]:
    for r in rows:
        if r.status == "sent":
            word = r.extra.get("delivery_status", "")
            result.verdicts[verdict(word)] += 1
            result.statuses[word or "(no status yet)"] += 1
        yield r


# --- the command -------------------------------------------------------------------------------


def summary(result: StatusResult) -> str:
    """e.g. 'delivery  26 sent rows: 24 Delivered, 2 UnDelivered (26 ids asked in 1 request)'."""
    words = sorted(result.statuses.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = ", ".join(f"{n:,} {word}" for word, n in words)
    line = f"delivery  {result.sent:,} sent row{'s' if result.sent != 1 else ''}"
    line += f": {parts}" if parts else ""
    if result.asked:
        asked = f"{result.asked:,} id{'s' if result.asked != 1 else ''} asked in "
        asked += f"{result.requests:,} request{'s' if result.requests != 1 else ''}"
        if result.retries:
            asked += f" ({result.retries:,} {'retry' if result.retries == 1 else 'retries'})"
    else:
        asked = "nothing asked"
    if result.already_final:
        asked += f"; {result.already_final:,} already final"
    return f"{line} ({asked})"


def finish_status(result: StatusResult, out: TextIO, err: TextIO) -> int:
    print(summary(result), file=err)
    if result.written:
        print(f"report: {display_path(result.report)}", file=out)
    if result.refused is not None:
        print(f"error: Kaleyra refused the status request ({result.refused.code}): "
              f"{result.refused.message}", file=err)
        return result.exit_code
    if result.sent == 0:
        print("no sent rows: nothing to check", file=err)
        return result.exit_code
    if result.unchecked and result.rerun_after is not None:
        print(f"{result.unchecked:,} ids not checked: Kaleyra asked to wait "
              f"{result.rerun_after / 60:,.0f} min (Retry-After); run `campaign status` again "
              "after that", file=err)
    elif result.unchecked:
        print(f"{result.unchecked:,} ids could not be checked (the API kept failing); run "
              "`campaign status` again later", file=err)
    undelivered, pending = result.verdicts["undelivered"], result.verdicts["pending"]
    if pending:
        print(f"{pending:,} not final yet: run `campaign status` again later", file=err)
    if undelivered:
        print(f"{undelivered:,} not delivered: see delivery_status and delivery_detail in the "
              "report", file=err)
    return result.exit_code
