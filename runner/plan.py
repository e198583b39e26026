"""Recipient rows -> batches: at most ``batch_size`` numbers, one rendered body each, OTP alone.

A personalised text longer than the body's estimate gets smaller batches of its own, so that no
request carries more parts than ``parts_per_second`` allows.

Planning streams: a batch leaves as soon as it is full. A personalised body groups only identical
texts, so the planner keeps one open group per distinct text; past ``max_open_groups`` the oldest
group leaves early, and so does a group that has waited ``max_wait`` rows (smaller batches, never
more memory than those bounds).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass

from runner.compose import Composer, composed
from runner.message import count_segments, placeholders
from runner.model import Campaign
from runner.recipients import Recipient

MAX_OPEN_GROUPS = 1000  # distinct texts waiting for their batch to fill
MAX_WAIT_ROWS = 10_000  # rows a batch's first row may wait behind the stream before it leaves


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    body: str | None  # the rendered text; None when the campaign sends a template_id alone
    rows: tuple[int, ...]  # source rows, in order
    numbers: tuple[str, ...]  # their E.164 numbers, in the same order


def is_personalised(campaign: Campaign) -> bool:
    """True when the body has placeholders: then recipients need their other columns."""
    body = campaign.message.body
    return body is not None and bool(placeholders(body))


def plan_batches(
    recipients: Iterable[Recipient],
    campaign: Campaign,
    *,
    skip: Container[int] = frozenset(),
    id_prefix: str = "b",
    max_open_groups: int = MAX_OPEN_GROUPS,
    max_wait: int = MAX_WAIT_ROWS,
) -> Iterator[Batch]:
    """Batches of the sendable rows (status ``ok``, not in ``skip``), in a deterministic order.

    Each batch carries the text exactly as it is sent (``runner.compose``); a row whose message
    cannot be composed is not sendable.
    """
    texts = (
        (r.row, r.phone if r.status == "ok" and r.row not in skip else None, text)
        for r, text in composed(recipients, Composer.for_campaign(campaign))
    )
    return plan_texts(texts, campaign.effective_batch_size, id_prefix=id_prefix,
                      max_open_groups=max_open_groups, max_wait=max_wait,
                      size_of=text_sizes(campaign))


def text_sizes(campaign: Campaign) -> Callable[[str | None], int] | None:
    """Under parts_per_second a personalised text's batch holds what one second allows of
    its own parts; None when every text's batch is ``effective_batch_size``."""
    per_second = campaign.sending.parts_per_second
    if per_second is None or not is_personalised(campaign):
        return None
    size = campaign.effective_batch_size
    ucs2 = campaign.message.unicode == "1"

    def size_of(text: str | None) -> int:
        parts = count_segments(text, ucs2=ucs2).parts if text else 1
        return max(1, min(size, int(per_second) // parts))

    return size_of


def plan_texts(
    rows: Iterable[tuple[int, str | None, str | None]],
    size: int,
    *,
    id_prefix: str = "b",
    max_open_groups: int = MAX_OPEN_GROUPS,
    max_wait: int = MAX_WAIT_ROWS,
    size_of: Callable[[str | None], int] | None = None,
) -> Iterator[Batch]:
    """Batches of (row, number, text), fed in row order: at most ``size`` rows of one text
    (``size_of(text)`` when given: a text's own size).

    A row whose number is None is not sent: it only tells the planner how far the stream is.
    A group leaves when it is full; past ``max_open_groups`` the oldest leaves early; and a group
    whose first row is ``max_wait`` rows behind the stream leaves too, so that whoever
    follows the batches in row order (the dry run's report) holds at most that many rows,
    whatever the texts (one rare text among a million rows included).
    """
    groups: dict[str | None, tuple[list[int], list[str]]] = {}
    sizes: dict[str | None, int] = {}  # the open groups' own sizes, with size_of
    seq = 0

    def emit(text: str | None) -> Batch:
        nonlocal seq
        seq += 1
        rows_of, numbers = groups.pop(text)
        sizes.pop(text, None)
        return Batch(f"{id_prefix}{seq:06d}", text, tuple(rows_of), tuple(numbers))

    for row, number, text in rows:
        # Groups open in stream order, so the oldest is the dict's first.
        while groups and row - groups[oldest := next(iter(groups))][0][0] >= max_wait:
            yield emit(oldest)
        if number is None:
            continue
        group = groups.get(text)
        if group is None:
            if len(groups) >= max_open_groups:
                yield emit(next(iter(groups)))
            group = groups[text] = ([], [])
            if size_of is not None:
                sizes[text] = size_of(text)
        group[0].append(row)
        group[1].append(number)
        if len(group[0]) >= sizes.get(text, size):
            yield emit(text)
    while groups:
        yield emit(next(iter(groups)))
