"""Checking a campaign end to end without the network: file, schema, rules, recipients, plan.

Returns a ``CampaignCheck`` value, which carries its exit code; the CLI turns it into text, JSON
or GitHub annotations. Every problem found is collected, so one bad field does not hide the next.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from runner.campaign import load_campaign
from runner.compose import ComposedRows, Composer
from runner.cost import budget_diagnostics
from runner.errors import Diagnostic, display_path, has_errors
from runner.exitcodes import EXIT_INVALID, EXIT_OK
from runner.message import Segments
from runner.model import Campaign
from runner.plan import Batch, is_personalised, plan_texts, text_sizes
from runner.recipients import Recipient, open_recipients, stats_diagnostics
from runner.rules import check_rules
from runner.verdicts import CheckedRows
from runner.yamlload import Marks
from runner.zoneplan import ZoneCensus, ZoneCounts


class PlanObserver(Protocol):
    """Sees every recipient row as it is read, and every batch as the planner makes it.

    Batches are planned only for personalised texts; without placeholders they are the
    sendable rows in order, ``effective_batch_size`` at a time, and ``batch`` is not called.
    """

    def recipient(self, recipient: Recipient) -> None: ...

    def recipients(self, rows: Iterable[Recipient]) -> None:
        """``recipient`` for each row (without placeholders, where no batch is planned)."""

    def batch(self, batch: Batch) -> None: ...


@dataclass(frozen=True, slots=True)
class PlanSummary:
    recipients: int  # data rows in the source CSV
    valid: int  # rows that will be sent
    invalid: int
    duplicates: int
    suppressed: int
    batches: int
    requests: int
    segments: int  # message parts over all valid recipients (what Kaleyra bills)
    min_parts: int
    max_parts: int
    encoding: str  # "GSM-7", "UCS-2", or "mixed" when personalised texts differ
    max_units: int  # the longest text, in characters as counted for its encoding
    part_limit: int  # characters in one part for the longest text's encoding

    def to_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: object) -> PlanSummary | None:
        """The summary stored by ``to_json``, or None when ``data`` is not one."""
        if not isinstance(data, dict) or set(data) != set(cls.__slots__):
            return None
        try:
            return cls(**data)
        except TypeError:
            return None


@dataclass(frozen=True, slots=True)
class CampaignCheck:
    path: str
    campaign: Campaign | None
    diagnostics: tuple[Diagnostic, ...]
    summary: PlanSummary | None
    marks: Marks | None = field(default=None, compare=False, repr=False)  # for later checks
    zones: ZoneCounts | None = None  # sendable rows by zone set, for a recipient-local window

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_INVALID

    @property
    def counts(self) -> Counter[str]:
        """Rows by verdict (``valid`` ones would be sent); empty when the file failed."""
        s = self.summary
        if s is None:
            return Counter()
        return Counter({"valid": s.valid, "invalid": s.invalid, "duplicate": s.duplicates,
                        "suppressed": s.suppressed})

    @property
    def report(self) -> None:
        """A check writes no report (a result's ``.report``, as the others have)."""
        return None


def check_campaign(path: Path, *, observer: PlanObserver | None = None) -> CampaignCheck:
    """Check a campaign file end to end; ``observer`` may watch the pass over its recipients."""
    return check_recipients(check_file(path), observer=observer)


def check_file(path: Path) -> CampaignCheck:
    """The campaign file alone: YAML, schema and rules (``summary`` is None)."""
    loaded = load_campaign(path)
    diagnostics = list(loaded.diagnostics)
    if loaded.campaign is not None:
        diagnostics += check_rules(loaded.campaign, loaded.marks)
    return CampaignCheck(display_path(path), loaded.campaign, tuple(diagnostics), None,
                         loaded.marks)


def check_recipients(check: CampaignCheck, *, observer: PlanObserver | None = None
                     ) -> CampaignCheck:
    """``check`` with the pass over its recipients, unless the file already failed."""
    if not check.ok or check.campaign is None:
        return check
    census = ZoneCensus.watching(check.campaign, observer)
    summary, found = summarise_recipients(check.campaign, observer=census or observer)
    if census is not None and summary is not None:
        found += census.diagnostics()
    if summary is not None and check.marks is not None:
        found += budget_diagnostics(check.campaign, summary, check.marks)
    return replace(check, diagnostics=check.diagnostics + tuple(found), summary=summary,
                   zones=census.result() if census is not None and summary else None)


def with_earlier_pass(check: CampaignCheck, summary: PlanSummary,
                      found: tuple[Diagnostic, ...]) -> CampaignCheck:
    """``check`` completed by what an earlier pass over the same bytes found
    (runner.checkcache); the budget is judged again, on the campaign as written now."""
    assert check.campaign is not None and check.marks is not None
    found += tuple(budget_diagnostics(check.campaign, summary, check.marks))
    return replace(check, diagnostics=check.diagnostics + found, summary=summary)


def summarise_recipients(
    campaign: Campaign, *, observer: PlanObserver | None = None
) -> tuple[PlanSummary | None, list[Diagnostic]]:
    """One streaming pass over the recipients: their verdicts, the batches and the segments."""
    personalised = is_personalised(campaign)
    composer = Composer.for_campaign(campaign)
    stream = open_recipients(campaign.recipients, with_fields=personalised)
    rows = ComposedRows(stream, composer, flash=campaign.message.flash)
    batches = segments = 0
    min_seg: Segments | None = None
    max_seg: Segments | None = None
    encodings: set[str] = set()
    if not personalised:
        # One text, so batches are the sendable rows in order, size by size: counted, not
        # planned (a second a million rows). The send and the dry run chunk them the same way.
        if observer is None:
            deque(stream, maxlen=0)
        else:
            observer.recipients(stream)
        valid, size = stream.stats.ok, campaign.effective_batch_size
        batches = -(-valid // size)
        if valid:
            min_seg = max_seg = composer.segments(composer.fixed_text or "")
            segments = max_seg.parts * valid
            encodings.add(max_seg.encoding)
    else:
        cache: dict[str | None, Segments] = {}
        for batch in plan_texts(_triples(_watched(rows, observer)),
                                campaign.effective_batch_size, size_of=text_sizes(campaign)):
            batches += 1
            if observer is not None:
                observer.batch(batch)
            seg = cache.get(batch.body)
            if seg is None:
                seg = composer.segments(batch.body or "")
                if len(cache) < 10_000:
                    cache[batch.body] = seg
            rows.note_parts(len(batch.rows), batch.rows[0], seg)
            segments += seg.parts * len(batch.rows)
            encodings.add(seg.encoding)
            if min_seg is None or seg.parts < min_seg.parts:
                min_seg = seg
            if max_seg is None or (seg.parts, seg.units) > (max_seg.parts, max_seg.units):
                max_seg = seg
    requests = batches
    kept = observer.inner if isinstance(observer, ZoneCensus) else observer
    if isinstance(kept, CheckedRows):  # the send proves it sends what this pass read
        kept.source_sha256 = stream.source_sha256
    found = list(stream.diagnostics)
    if has_errors(found):
        return None, found
    found += rows.diagnostics + rows.flash_diagnostics()  # rows whose message fails; flash
    stats = rows.stats if personalised else stream.stats
    found += stats_diagnostics(stats, campaign.recipients, display_path(campaign.recipients.source))
    if max_seg is None:
        max_seg = composer.segments(composer.estimate())
    summary = PlanSummary(
        recipients=stats.total,
        valid=stats.ok,
        invalid=stats.invalid,
        duplicates=stats.duplicate,
        suppressed=stats.suppressed,
        batches=batches,
        requests=requests,
        segments=segments,
        min_parts=min_seg.parts if min_seg else max_seg.parts,
        max_parts=max_seg.parts,
        encoding=encodings.pop() if len(encodings) == 1 else ("mixed" if encodings else
                                                              max_seg.encoding),
        max_units=max_seg.units,
        part_limit=max_seg.limit,
    )
    return summary, found


_Pairs = Iterable[tuple[Recipient, str | None]]  # rows with the text each would be sent


def _watched(rows: _Pairs, observer: PlanObserver | None) -> _Pairs:
    if observer is None:
        return rows
    return _each_seen(rows, observer)


def _each_seen(rows: _Pairs, observer: PlanObserver) -> Iterator[tuple[Recipient, str | None]]:
    for pair in rows:
        observer.recipient(pair[0])
        yield pair


def _triples(pairs: _Pairs) -> Iterator[tuple[int, str | None, str | None]]:
    """What the planner takes: (row, number, text), the number None for a row not sent."""
    for r, text in pairs:
        yield r.row, (r.phone if r.status == "ok" else None), text
