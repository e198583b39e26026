"""Recipient rows -> batches: at most ``batch_size`` numbers, one rendered body each, OTP alone.

A personalised text longer than the body's estimate gets smaller batches of its own, so that no
request carries more parts than ``parts_per_second`` allows.

Planning streams: a batch leaves as soon as it is full. A personalised body groups only identical
texts, so the planner keeps one open group per distinct text; past ``max_open_groups`` the oldest
group leaves early (smaller batches, never more memory than that bound).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass

from runner.message import count_segments, placeholders, render
from runner.model import Campaign
from runner.recipients import Recipient


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
    max_open_groups: int = 1000,
) -> Iterator[Batch]:
    """Batches of the sendable rows (status ``ok``, not in ``skip``), in a deterministic order."""
    size = campaign.effective_batch_size
    body = campaign.message.body
    personalised = is_personalised(campaign)
    groups: dict[str | None, list[Recipient]] = {}
    sizes: dict[str | None, int] = {}  # a text's own batch size, under parts_per_second
    parts_per_second = campaign.sending.parts_per_second
    seq = 0

    def emit(text: str | None, members: list[Recipient]) -> Batch:
        nonlocal seq
        seq += 1
        return Batch(f"{id_prefix}{seq:06d}", text, tuple(r.row for r in members),
                     tuple(r.phone or "" for r in members))

    for recipient in recipients:
        if recipient.status != "ok" or recipient.row in skip:
            continue
        text = render(body, recipient.fields) if personalised and body is not None else body
        group = groups.get(text)
        if group is None:
            if len(groups) >= max_open_groups:
                oldest = next(iter(groups))
                yield emit(oldest, groups.pop(oldest))
            group = groups[text] = []
            if personalised and parts_per_second is not None:
                parts = count_segments(text).parts if text else 1
                sizes[text] = max(1, min(size, int(parts_per_second) // parts))
        group.append(recipient)
        if len(group) >= sizes.get(text, size):
            del groups[text]
            sizes.pop(text, None)
            yield emit(text, group)
    for text, group in groups.items():
        yield emit(text, group)
