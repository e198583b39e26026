"""What a campaign costs: billable parts, the estimated price, and the ``budget`` limit.

``plan_lines`` gives the dry-run plan's lines about cost; ``budget_diagnostics`` makes a campaign
over ``budget.max_parts`` invalid (exit 1) before anything is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.errors import Diagnostic, display_path, error
from runner.model import Campaign
from runner.yamlload import Marks

if TYPE_CHECKING:  # check imports this module
    from runner.checker import PlanSummary

__all__ = ["budget_diagnostics", "plan_lines"]


def plan_lines(campaign: Campaign, summary: PlanSummary) -> list[str]:
    """The plan's ``parts`` line, and ``cost`` when the budget gives a price."""
    parts = summary.segments
    per = (f"{summary.max_parts} a message" if summary.min_parts == summary.max_parts
           else f"{summary.min_parts}-{summary.max_parts} a message")
    lines = [f"  parts       {parts:,} billable ({per})"]
    budget = campaign.budget
    if budget is not None and budget.max_parts is not None:
        lines[0] += f", budget {budget.max_parts:,}"
    if budget is not None and budget.price_per_part is not None:
        total = parts * budget.price_per_part
        currency = f"{budget.currency} " if budget.currency else ""
        lines.append(f"  cost        about {currency}{total:,.2f} ({parts:,} parts at "
                     f"{budget.price_per_part:g} each)")
    return lines


def budget_diagnostics(campaign: Campaign, summary: PlanSummary, marks: Marks
                       ) -> list[Diagnostic]:
    budget = campaign.budget
    if budget is None or budget.max_parts is None or summary.segments <= budget.max_parts:
        return []
    key = ("budget", "max_parts")
    line, col = marks.at(key) or (None, None)
    price = ""
    if budget.price_per_part is not None:
        over = (summary.segments - budget.max_parts) * budget.price_per_part
        price = f", about {budget.currency + ' ' if budget.currency else ''}{over:,.2f} over"
    return [error(f"the campaign needs {summary.segments:,} billable parts, above "
                  f"budget.max_parts {budget.max_parts:,}{price}: nothing is sent",
                  display_path(campaign.path), line, col, "budget.max_parts")]
