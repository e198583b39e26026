"""Recipient rows -> batches: at most ``batch_size`` numbers, one rendered body each, OTP alone.

Planning streams: a batch leaves as soon as it is full. A personalised body groups only identical
texts, so the planner keeps one open group per distinct text; past ``max_open_groups`` the oldest
group leaves early (smaller batches, never more memory than that bound).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass

from runner.compose import Composer, composed
from runner.message import placeholders
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
    """Batches of the sendable rows (status ``ok``, not in ``skip``), in a deterministic order.

    Each batch carries the text exactly as it is sent (``runner.compose``); a row whose message
    cannot be composed is not sendable.
    """
    pairs = composed(recipients, Composer.for_campaign(campaign))
    return plan_texts(pairs, campaign, skip=skip, id_prefix=id_prefix,
                      max_open_groups=max_open_groups)


def plan_texts(
    pairs: Iterable[tuple[Recipient, str | None]],
    campaign: Campaign,
    *,
    skip: Container[int] = frozenset(),
    id_prefix: str = "b",
    max_open_groups: int = 1000,
) -> Iterator[Batch]:
    """``plan_batches`` for rows whose texts are composed already (``runner.compose``)."""
    size = campaign.effective_batch_size
    groups: dict[str | None, list[Recipient]] = {}
    seq = 0

    def emit(text: str | None, members: list[Recipient]) -> Batch:
        nonlocal seq
        seq += 1
        return Batch(f"{id_prefix}{seq:06d}", text, tuple(r.row for r in members),
                     tuple(r.phone or "" for r in members))

    for recipient, text in pairs:
        if recipient.status != "ok" or recipient.row in skip:
            continue
        group = groups.get(text)
        if group is None:
            if len(groups) >= max_open_groups:
                oldest = next(iter(groups))
                yield emit(oldest, groups.pop(oldest))
            group = groups[text] = []
        group.append(recipient)
        if len(group) >= size:
            del groups[text]
            yield emit(text, group)
    for text, group in groups.items():
        yield emit(text, group)
