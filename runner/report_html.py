"""A report summary as one self-contained HTML page: styles inline, charts drawn here as inline
SVG, no script and nothing fetched, so the file opens the same from a mail attachment, an
artifact download or a shared drive with no network.

Each figure carries a ``data-count`` attribute (and each status row ``id="status-<name>"``) so
that a test, or a curious reader, can match the page against the CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html import escape

from runner.report_counters import Bucket
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

COLOURS = {
    "sent": "#2e7d32", "failed": "#c62828", "unknown": "#ef6c00", "invalid": "#6d4c41",
    "duplicate": "#9e9e9e", "suppressed": "#6a1b9a", "pending": "#1565c0", "expired": "#ad1457",
    "dry_run": "#00838f", "delivered": "#2e7d32", "not delivered": "#c62828",
    "not final yet": "#1565c0", "not checked yet": "#9e9e9e",
}
MAX_COUNTRY_BARS = 12
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 color:#1f2328;background:#f6f8fa;margin:0}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 8px}
.sub{color:#57606a;margin:0 0 20px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;
 margin:0 0 18px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:0 0 18px}
.card{flex:1 1 110px;background:#fff;border:1px solid #d0d7de;border-radius:8px;
 padding:10px 12px;border-top:5px solid var(--c)}
.card b{display:block;font-size:22px}.card span{color:#57606a}
table{border-collapse:collapse;width:100%;margin:10px 0 0}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{color:#57606a;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.dot{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;
 background:var(--c)}
.note{color:#57606a;font-size:13px}svg{display:block;max-width:100%;height:auto}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}
details summary{cursor:pointer;color:#0969da;margin-top:8px}
code{background:#eff1f3;padding:1px 4px;border-radius:4px}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _num(n: int, name: str = "") -> str:
    """A figure as a table cell, its value in data-count."""
    key = f' data-name="{_e(name)}"' if name else ""
    return f'<td class="n" data-count="{n}"{key}>{count(n)}</td>'


# --- charts --------------------------------------------------------------------------------------


def hbar_chart(title: str, items: Sequence[tuple[str, int, str]], *, total: int) -> str:
    """Horizontal bars, one an item: (label, value, colour), scaled to the largest value."""
    label_w, bar_w, row_h = 190, 560, 26
    top = max((v for _, v, _ in items), default=0) or 1
    height = row_h * len(items) + 8
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {label_w + bar_w + 150} {height}" '
             f'width="{label_w + bar_w + 150}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>']
    for i, (full, value, colour) in enumerate(items):
        label = full if len(full) <= 28 else full[:27] + "\u2026"  # the label column's width
        y = 4 + i * row_h
        w = 0 if value == 0 else max(2, round(bar_w * value / top))
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{_e(label)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w}" height="{row_h - 8}" '
            f'rx="3" fill="{colour}" data-count="{value}"><title>{_e(full)}: '
            f'{count(value)}</title></rect>'
            f'<text x="{label_w + w + 6}" y="{y + 17}">{count(value)} '
            f'({share(value, total)})</text>')
    return "".join(parts) + "</svg>"


def stacked_bar(title: str, items: Sequence[tuple[str, int, str]]) -> str:
    """One bar split by share: everything at a glance."""
    width, height = 900, 34
    total = sum(v for _, v, _ in items) or 1
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>']
    x = 0.0
    for label, value, colour in items:
        if not value:
            continue
        w = width * value / total
        parts.append(f'<rect class="bar" x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" '
                     f'fill="{colour}" data-count="{value}"><title>{_e(label)}: {count(value)}'
                     '</title></rect>')
        x += w
    return "".join(parts) + "</svg>"


def _nice(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at or above ``value``: the axis's top."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def timeline_chart(buckets: Sequence[Bucket], width_minutes: int, limit: float | None) -> str:
    """Requests answered per bucket as columns, the configured limit as a dashed line."""
    left, plot_w, plot_h, bottom = 60, 820, 220, 40
    busiest = max([b.requests for b in buckets] + [1])
    # A limit far above what was sent would flatten every column: then it is said, not drawn.
    drawn = limit if limit and limit <= 3 * busiest else None
    top_value = _nice(max(busiest, drawn or 0))
    scale = plot_h / top_value
    n = max(len(buckets), 1)
    col_w = min(plot_w / n, 60)
    height = plot_h + bottom + 10
    parts = [f'<svg class="chart" id="timeline" role="img" viewBox="0 0 {left + plot_w + 20} '
             f'{height}" width="{left + plot_w + 20}" height="{height}" '
             'xmlns="http://www.w3.org/2000/svg"><title>Requests answered per '
             f'{_e(span(width_minutes))}</title>',
             f'<line x1="{left}" y1="{plot_h + 10}" x2="{left + plot_w}" y2="{plot_h + 10}" '
             'stroke="#8c959f"/>']
    for tick in (0, top_value // 2, top_value) if top_value % 2 == 0 else (0, top_value):
        y = plot_h + 10 - tick * scale
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>'
                     f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                     'stroke="#eaeef2"/>')
    for i, b in enumerate(buckets):
        h = b.requests * scale
        parts.append(
            f'<rect class="bar" x="{left + i * col_w + col_w * 0.1:.2f}" '
            f'y="{plot_h + 10 - h:.2f}" width="{max(col_w * 0.8, 1):.2f}" height="{h:.2f}" '
            f'fill="#2e7d32" data-count="{b.requests}"><title>{b.start:%H:%M}: '
            f'{plural(b.requests, "request")}, {plural(b.sent, "message")} sent</title></rect>')
    for i in sorted({0, n // 2, n - 1}) if buckets else ():
        x = left + i * col_w + col_w / 2
        fmt = "%H:%M" if width_minutes < 1440 else "%d %b"
        parts.append(f'<text x="{x:.1f}" y="{plot_h + 28}" text-anchor="middle">'
                     f'{buckets[i].start.strftime(fmt)}</text>')
    if limit and not drawn:
        parts.append(f'<text id="limit" x="{left + plot_w}" y="16" text-anchor="end" '
                     f'style="fill:#c62828">limit: {limit:,.0f} (far above, not drawn)</text>')
    if drawn:
        y = plot_h + 10 - drawn * scale
        parts.append(f'<line id="limit" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" '
                     f'y2="{y:.1f}" stroke="#c62828" stroke-width="2" stroke-dasharray="6 4"/>'
                     f'<text x="{left + plot_w}" y="{y - 6:.1f}" text-anchor="end" '
                     f'style="fill:#c62828">limit: {drawn:,.0f}</text>')
    return "".join(parts) + "</svg>"


# --- sections ------------------------------------------------------------------------------------


def _cards(s: ReportSummary) -> str:
    skipped = s.count("invalid") + s.count("duplicate") + s.count("suppressed")
    cards = [("rows", s.rows, "#57606a"), ("sent", s.count("sent"), COLOURS["sent"]),
             ("failed or unknown", s.count("failed") + s.count("unknown"), COLOURS["failed"]),
             ("skipped", skipped, COLOURS["duplicate"]),
             ("not sent yet", s.count("pending") + s.count("expired"), COLOURS["pending"])]
    if s.delivery is not None:
        cards.insert(2, ("delivered", dict(s.delivery.verdicts)["delivered"], "#1b5e20"))
    if s.count("dry_run"):
        cards.insert(1, ("dry run: would be sent", s.count("dry_run"), COLOURS["dry_run"]))
    return '<div class="cards">' + "".join(
        f'<div class="card" style="--c:{c}"><b data-count="{n}" data-name="{_e(label)}">'
        f'{count(n)}</b><span>{_e(label)}</span></div>' for label, n, c in cards) + "</div>"


def _statuses(s: ReportSummary) -> str:
    items = [(status, n, COLOURS.get(status, "#57606a")) for status, n in s.statuses]
    rows = "".join(
        f'<tr id="status-{_e(status)}"><td><span class="dot" style="--c:{c}"></span>'
        f'<code>{_e(status)}</code></td>{_num(n, status)}<td class="n">{share(n, s.rows)}</td>'
        f'<td>{_e(STATUS_MEANINGS.get(status, ""))}</td></tr>' for status, n, c in items)
    return ('<section id="statuses"><h2>What happened to each recipient</h2>'
            + stacked_bar("Rows by status", items)
            + hbar_chart("Rows by status", items, total=s.rows)
            + '<table><tr><th>status</th><th class="n">rows</th><th class="n">share</th>'
            f'<th>meaning</th></tr>{rows}<tr id="status-total"><th>total</th>'
            f'{_num(s.rows, "total")}<td class="n">100%</td><td></td></tr></table></section>')


def _problems(s: ReportSummary) -> str:
    problems = [p for p in s.problems if p.status in PROBLEM_STATUSES]
    head = '<section id="problems"><h2>Why messages failed, or may not have been sent</h2>'
    if not problems:
        return head + "<p>No row failed and none is unknown.</p></section>"
    items = [(f"{p.status} {p.code or '(no code)'}", p.rows, COLOURS[p.status])
             for p in problems]
    rows = "".join(
        f'<tr class="problem"><td><code>{_e(p.status)}</code></td>'
        f'<td><code>{_e(p.code or "(none)")}</code></td>{_num(p.rows, p.status + " " + p.code)}'
        f'<td>{_e(p.reason[:200])}'
        + (f' <span class="note">(and {count(p.other_wordings)} other wordings)</span>'
           if p.other_wordings else "")
        + f'</td><td>{_e(code_meaning(p.code))}</td></tr>' for p in problems)
    failed_or_unknown = s.count("failed") + s.count("unknown")
    return (head + hbar_chart("Failed and unknown rows by error code", items,
                              total=failed_or_unknown)
            + '<table><tr><th>status</th><th>code</th><th class="n">rows</th>'
            f'<th>reason given</th><th>what it means</th></tr>{rows}</table>'
            '<p class="note">A <code>failed</code> row was not sent: after fixing the cause, '
            '<code>campaign send --retry-failed</code> sends it. An <code>unknown</code> row '
            'may have been sent: <code>campaign status</code> asks Kaleyra, '
            '<code>--resend-unknown</code> sends it again.</p></section>')


def _timeline(s: ReportSummary) -> str:
    head = '<section id="over-time"><h2>Sending over time</h2>'
    if not s.timeline:
        return head + "<p>Nothing was sent (no row has a <code>sent_at</code>).</p></section>"
    width, buckets = bars(s)
    limit = limit_per_bar(s, width)
    end = s.timeline[-1].start + timedelta(minutes=s.bucket_minutes)
    text = (f"{plural(s.requests, 'request')} answered"
            + (f" (after {plural(s.retries, 'retry', 'retries')})" if s.retries else "")
            + f" from {when(s.timeline[0].start)} to {when(end)}, shown by {span(width)}. ")
    if s.rate is not None and limit is not None:
        busiest = max(b.requests for b in buckets)
        text += (f"The dashed line is the campaign's limit: {s.rate:g} requests a second, "
                 f"{limit:,.0f} a {span(width)}. " if limit <= 3 * busiest else
                 f"The campaign's limit, {s.rate:g} requests a second ({limit:,.0f} a "
                 f"{span(width)}), is far above what was sent. ")
    else:
        text += "The campaign's rate is unknown (no journal beside the report). "
    text += "Each request carries a batch of up to 100 messages."
    rows = "".join(
        f'<tr><td>{b.start:%Y-%m-%d %H:%M}</td>{_num(b.sent)}{_num(b.requests)}</tr>'
        for b in buckets if b.sent or b.requests)
    return (head + f"<p>{_e(text)}</p>" + timeline_chart(buckets, width, limit)
            + f"<details><summary>The figures, by {_e(span(width))}</summary><table><tr>"
            f'<th>from (UTC)</th><th class="n">messages sent</th><th class="n">requests</th>'
            f"</tr>{rows}</table></details></section>")


def _delivery(s: ReportSummary) -> str:
    d = s.delivery
    if d is None:
        return ('<section id="delivery"><h2>Delivery</h2><p>Not checked yet: '
                '<code>campaign status REPORT</code> asks Kaleyra whether each sent message '
                'arrived and adds it to the report.</p></section>')
    items = [(label, n, COLOURS[label]) for label, n in d.verdicts]
    rows = "".join(
        f'<tr id="delivery-{_e(label.replace(" ", "-"))}"><td><span class="dot" '
        f'style="--c:{c}"></span>{_e(label)}</td>{_num(n, label)}<td class="n">'
        f'{share(n, d.sent)}</td><td>{_e(DELIVERY_MEANINGS[label])}</td></tr>'
        for label, n, c in items)
    words = "".join(f"<tr><td><code>{_e(w)}</code></td>{_num(n, w)}</tr>" for w, n in d.words)
    checked = f" Last checked {when(d.last_checked)}." if d.last_checked else ""
    out = (f'<section id="delivery"><h2>Delivery</h2><p>What Kaleyra says about the '
           f'{count(d.sent)} sent messages.{_e(checked)}</p>'
           + hbar_chart("Sent rows by delivery status", items, total=d.sent)
           + '<table><tr><th>delivery</th><th class="n">rows</th><th class="n">share</th>'
           f'<th>meaning</th></tr>{rows}</table>')
    if words:
        out += ('<details><summary>Kaleyra\'s own words</summary><table><tr><th>'
                f'delivery_status</th><th class="n">rows</th></tr>{words}</table></details>')
    if any(n for _, n in d.times):
        times = [(label, n, COLOURS["delivered"]) for label, n in d.times]
        out += ('<h2 style="margin-top:16px">How long delivery took</h2><p class="note">Time '
                'from sending to the check that saw the message delivered: an upper bound, as '
                'good as the checks were frequent.</p>'
                + hbar_chart("Delivered rows by delivery time", times,
                             total=dict(d.verdicts)["delivered"]))
    return out + "</section>"


def _countries(s: ReportSummary) -> str:
    top = list(s.countries[:MAX_COUNTRY_BARS])
    rest = s.countries[MAX_COUNTRY_BARS:]
    items = [(country_name(c.region), c.rows, "#0969da") for c in top]
    if rest:
        items.append((f"{len(rest)} others", sum(c.rows for c in rest), "#8c959f"))
    delivered = s.delivery is not None
    rows = "".join(
        f'<tr class="country" data-region="{_e(c.region)}"><td>{_e(country_name(c.region))}'
        + (f' <span class="note">{_e(c.region)}</span>' if len(c.region) == 2 else "")
        + f"</td>{_num(c.rows)}{_num(c.sent)}{_num(c.failed_or_unknown)}"
        + (_num(c.delivered) if delivered else "") + "</tr>" for c in s.countries)
    return ('<section id="countries"><h2>Countries</h2><p class="note">From each phone '
            "number's country code (rows with an invalid number are counted apart).</p>"
            + hbar_chart("Rows by country", items, total=s.rows)
            + '<table><tr><th>country</th><th class="n">rows</th><th class="n">sent</th>'
            '<th class="n">failed or unknown</th>'
            + ('<th class="n">delivered</th>' if delivered else "")
            + f"</tr>{rows}</table></section>")


def render_html(summary: ReportSummary, *, now: datetime | None = None) -> str:
    s = summary
    made = (now or datetime.now(UTC)).astimezone(UTC)
    name = s.campaign or s.report.name
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>Delivery report: {_e(name)}</title><style>{STYLE}</style></head><body><main>"
        f"<h1>Delivery report: {_e(name)}</h1>"
        f'<p class="sub">{plural(s.rows, "recipient row")} in <code>{_e(s.report.name)}</code>'
        f"; page made {_e(when(made))}. Every figure here is a count of rows of that CSV.</p>"
        + _cards(s) + _statuses(s) + _problems(s) + _timeline(s) + _delivery(s)
        + _countries(s)
        + '<p class="note">Made by <code>campaign report</code>. The CSV has one row for each '
        "row of the recipient list, with the reason for every row that was not sent.</p>"
        "</main></body></html>\n")
