"""Step big: ten million rows. A dry run against the naive loop, and a whole send to the sandbox.

The naive loop would take minutes at 10M rows: it is measured on at most 1M rows and scaled
linearly (its cost a row is flat: csv, phonenumbers and a set, no state that grows but the
set). Both runner figures are whole `campaign` processes, peak RSS from GNU time.
"""

from __future__ import annotations

from functools import partial

import gendata
import naive
from common import (
    SEND_CONCURRENCY,
    UNLIMITED_RATE,
    Context,
    Ran,
    Section,
    Target,
    dry_run,
    dry_run_counts,
    expect,
    fmt,
    forget_journal,
    journal_counts,
    mb,
    per_row,
    send_argv,
    timed,
)

BIG_ROWS = 10_000_000
QUICK_ROWS = 100_000
NAIVE_ROWS = 1_000_000  # the most rows the naive loop is timed on
DRY_RSS_LIMIT = 500 * 2**20
SEND_RSS_LIMIT = 800 * 2**20


def _naive_per_row(ctx: Context, rows: int) -> tuple[float, int]:
    """(seconds a row, rows timed) of the naive loop, warmed up, on min(rows, NAIVE_ROWS)."""
    naive.naive_verdicts(gendata.recipients_csv(ctx.data, 2_000))  # phonenumbers' metadata
    timed_rows = min(rows, NAIVE_ROWS)
    seconds, _ = timed(partial(naive.naive_verdicts, gendata.recipients_csv(ctx.data,
                                                                           timed_rows)))
    return seconds / timed_rows, timed_rows


def _send(ctx: Context, rows: int, valid: int) -> Ran:
    source = gendata.recipients_csv(ctx.data, rows)
    files = gendata.write_campaign(ctx.work, f"big-{rows}", source, sending={
        "requests_per_second": UNLIMITED_RATE, "concurrency": SEND_CONCURRENCY})
    report = ctx.work / f"big-{rows}.report.csv"
    forget_journal(report)
    sb = ctx.sandbox()
    sb.reset()
    sent = ctx.run(f"big-send-{rows}", send_argv(files.yaml, report), env=sb.env(),
                   timeout=3600)
    expect(sent.code == 0, f"send of {rows:,} rows exited {sent.code}: {sent.stderr[-2000:]}")
    counts = journal_counts(report)
    expect(counts.get("sent", 0) == valid, f"the journal has {counts} after the send, "
           f"not {valid:,} sent")
    sb.reset()  # the sandbox's record of millions of numbers is not needed any more
    return sent


def step_big(ctx: Context) -> None:
    rows = ctx.rows_for(BIG_ROWS, quick=QUICK_ROWS)
    generated, source = timed(partial(gendata.recipients_csv, ctx.data, rows))
    naive_row, naive_rows = _naive_per_row(ctx, rows)
    files = gendata.write_campaign(ctx.work, f"big-dry-{rows}", source)
    dry = dry_run(ctx, f"big-dry-run-{rows}", files.yaml,
                  ctx.work / f"big-dry-{rows}.report.csv", timeout=3600)
    counts = dry_run_counts(dry.stdout)
    expect(counts is not None and counts.total == rows, f"dry run counted {counts}")
    assert counts is not None
    sent = _send(ctx, rows, counts.valid)
    speedup = naive_row * rows / dry.seconds
    section = Section(f"Ten million rows: {rows:,} (dry run and send, whole processes)",
                      ["run", "s", "µs a row", "vs naive loop", "peak RSS MB", "limit MB"])
    section.rows.append([f"naive loop ({naive_rows:,} rows timed, scaled x{rows / naive_rows:g})",
                         fmt(naive_row * rows), f"{naive_row * 1e6:.1f}", "1.00x", "", ""])
    section.rows.append(["`campaign send --dry-run`", fmt(dry.seconds),
                         per_row(dry.seconds, rows), f"{speedup:.2f}x faster", mb(dry.max_rss),
                         mb(DRY_RSS_LIMIT)])
    section.rows.append([f"`campaign send` to the sandbox ({counts.valid:,} numbers)",
                         fmt(sent.seconds), per_row(sent.seconds, rows), "", mb(sent.max_rss),
                         mb(SEND_RSS_LIMIT)])
    section.notes.append(
        f"the CSV ({source.stat().st_size / 2**20:.0f} MB) took {fmt(generated)} s to get "
        "(generated once, then cached under benchmarks/data); the dry run writes its full "
        "report (with the preview columns); the send: no rate limit, concurrency "
        f"{SEND_CONCURRENCY}, every sendable row sent (the journal's count); "
        f"{counts.valid:,} to send, {counts.invalid:,} invalid, {counts.duplicate:,} duplicates")
    ctx.add(section)
    at_size = rows >= BIG_ROWS
    ctx.targets.append(Target(3, f"dry run of {rows:,} rows >= 4x faster than the naive loop "
                              f"(timed on {naive_rows:,} rows, scaled linearly)",
                              f"{speedup:.2f}x", speedup >= 4 if at_size else None))
    ctx.targets.append(Target(3, f"peak RSS of the {rows:,}-row dry run < 500 MB",
                              f"{mb(dry.max_rss)} MB", dry.max_rss < DRY_RSS_LIMIT
                              if at_size else None))
    ctx.targets.append(Target(3, f"a {rows:,}-row send to the sandbox completes, peak RSS "
                              "< 800 MB", f"done in {fmt(sent.seconds)} s, {mb(sent.max_rss)} MB",
                              sent.max_rss < SEND_RSS_LIMIT if at_size else None))
