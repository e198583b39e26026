"""A report summary as GitHub-flavoured markdown tables, for CI step summaries
(``campaign report REPORT --markdown >> "$GITHUB_STEP_SUMMARY"``): the figures of the HTML page."""

from __future__ import annotations

from collections.abc import Container, Sequence
from datetime import timedelta

from runner.report_summary import PROBLEM_STATUSES, ReportSummary
from runner.report_words import (
    DELIVERY_MEANINGS,
    STATUS_MEANINGS,
    bars,
    code_meaning,
    count,
    country_name,
    limit_per_bar,
    plural,
    share,
    span,
    when,
)

MAX_BARS = 60  # the per-minute table stays short enough to read in a step summary


def cell(text: str) -> str:
    """Text safe in a table cell: no pipe, newline or HTML tag breaks the table."""
    text = " ".join(text.split())
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("`", "'"))


def table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]],
          right: Container[int] = ()) -> list[str]:
    """``right``: the indexes of the columns that hold numbers (aligned right)."""
    align = ["---:" if i in right else "---" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def render_markdown(summary: ReportSummary) -> str:
    s = summary
    title = cell(s.campaign) if s.campaign else f"`{cell(s.report.name)}`"
    sent = s.count("sent")
    out = [f"### Delivery report: {title}", "",
           f"{count(s.rows)} rows in `{cell(s.report.name)}`: {count(sent)} sent "
           f"({share(sent, s.rows)}).", ""]
    rows = [(f"`{status}`", count(n), share(n, s.rows), cell(STATUS_MEANINGS.get(status, "")))
            for status, n in s.statuses]
    rows.append(("**total**", f"**{count(s.rows)}**", "100%", ""))
    out += table(("status", "rows", "share", "meaning"), rows, right=(1, 2))

    problems = [p for p in s.problems if p.status in PROBLEM_STATUSES]
    out += ["", "#### Failed and unknown rows, by error code", ""]
    if problems:
        out += table(("status", "code", "rows", "reason given", "what it means"), [
            (f"`{p.status}`", f"`{cell(p.code)}`" if p.code else "(none)", count(p.rows),
             cell(p.reason[:160]) + (f" (and {count(p.other_wordings)} other wordings)"
                                     if p.other_wordings else ""),
             cell(code_meaning(p.code)))
            for p in problems], right=(2,))
    else:
        out.append("None: no row failed and none is unknown.")

    out += ["", "#### Sending over time", ""]
    out += _timeline(s)
    if s.delivery is not None:
        out += ["", "#### Delivery (`campaign status`)", ""]
        out += _delivery(s)
    out += ["", "#### Countries", ""]
    out += table(("country", "rows", "sent", "failed or unknown")
                 + (("delivered",) if s.delivery is not None else ()), [
        (cell(country_name(c.region)) + (f" ({c.region})" if len(c.region) == 2 else ""),
         count(c.rows), count(c.sent), count(c.failed_or_unknown))
        + ((count(c.delivered),) if s.delivery is not None else ())
        for c in s.countries], right=(1, 2, 3, 4))
    return "\n".join(out) + "\n"


def _timeline(s: ReportSummary) -> list[str]:
    if not s.timeline:
        return ["Nothing was sent (no row has a `sent_at`)."]
    width, buckets = bars(s, MAX_BARS)
    limit = limit_per_bar(s, width)
    first, last = s.timeline[0].start, s.timeline[-1].start
    end = last + timedelta(minutes=s.bucket_minutes)
    line = (f"{plural(s.requests, 'request')} answered"
            + (f" (after {plural(s.retries, 'retry', 'retries')})" if s.retries else "")
            + f" from {when(first)} to {when(end)}")
    if s.rate is not None:
        line += f", at a limit of {s.rate:g} requests a second ({s.rate * 60:,.0f} a minute)"
    out = [line + ".", "", f"<details><summary>By {span(width)}</summary>", ""]
    head = (f"{span(width)} from (UTC)", "messages sent", "requests") + (
        ("limit",) if limit is not None else ())
    out += table(head, [
        (b.start.strftime("%Y-%m-%d %H:%M"), count(b.sent), count(b.requests))
        + ((f"{limit:,.0f}",) if limit is not None else ())
        for b in buckets if b.sent or b.requests], right=(1, 2, 3))
    return [*out, "", "</details>"]


def _delivery(s: ReportSummary) -> list[str]:
    d = s.delivery
    assert d is not None
    out = []
    if d.last_checked is not None:
        out += [f"Last checked {when(d.last_checked)}.", ""]
    out += table(("delivery", "sent rows", "share", "meaning"), [
        (label, count(n), share(n, d.sent), DELIVERY_MEANINGS.get(label, ""))
        for label, n in d.verdicts], right=(1, 2))
    if d.words:
        words = [(f"`{cell(word)}`", count(n)) for word, n in d.words]
        out += ["", *table(("Kaleyra's status", "rows"), words, right=(1,))]
    if any(n for _, n in d.times):
        out += ["", "Delivered rows, by the time from sending to the check that saw them "
                "delivered (an upper bound on the delivery time):", ""]
        out += table(("time", "rows"), [(label, count(n)) for label, n in d.times if n],
                     right=(1,))
    return out
