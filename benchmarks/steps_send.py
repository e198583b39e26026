"""Steps send, state and journal: what the engine costs beyond the dry run, against a bare
aiohttp script (whole processes) and a bare loop (in process); the PostgreSQL store against the
sqlite journal; the journal's durability."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gendata
import naive
from common import (
    HERE,
    SEND_CONCURRENCY,
    SEND_ROWS,
    UNLIMITED_RATE,
    Context,
    Ran,
    Section,
    Target,
    dry_run,
    expect,
    fmt,
    forget_journal,
    mb,
    send_argv,
)
from patched_cli import LEVELS
from sandboxproc import SandboxProcess


@dataclass(frozen=True, slots=True)
class BareInputs:
    """What the baselines post: the batches (bare loop) and the request's fields (bare script)."""

    batches_file: Path
    payload_file: Path
    batches: int
    numbers: int
    size: int


def bare_inputs(ctx: Context, source: Path, campaign_yaml: Path) -> BareInputs:
    """The batches a send of ``campaign_yaml`` would post, and its fields, for the baselines."""
    from runner.campaign import load_campaign
    from runner.kaleyra import build_payload

    loaded = load_campaign(campaign_yaml)
    assert loaded.campaign is not None
    payload: dict[str, Any] = dict(build_payload(loaded.campaign, [],
                                                 loaded.campaign.message.body))
    payload.pop("to")
    payload["flash"] = int(payload["flash"])  # as post_sms sends it in JSON
    numbers = ctx.numbers.get(source)
    if numbers is None:  # the naive pass: seconds a 100k rows, so once a run
        numbers = ctx.numbers[source] = naive.valid_numbers(source)
    size = loaded.campaign.effective_batch_size
    batches = [numbers[i:i + size] for i in range(0, len(numbers), size)]
    path = ctx.work / f"batches-{source.stem}.json"
    path.write_text(json.dumps({"payload": payload, "batches": batches}), encoding="utf-8")
    fields = ctx.work / f"payload-{source.stem}.json"
    fields.write_text(json.dumps(payload), encoding="utf-8")
    return BareInputs(path, fields, len(batches), len(numbers), size)


def expect_sent_once(sb: SandboxProcess, bare: BareInputs, who: str) -> None:
    """The sandbox accepted every batch, and every number exactly once."""
    record = sb.record()
    deliveries = record["deliveries"]
    expect(len(record["accepted"]) == bare.batches and len(deliveries) == bare.numbers
           and all(n == 1 for n in deliveries.values()),
           f"{who} posted {len(record['accepted'])} requests for {len(deliveries)} numbers; "
           f"expected {bare.batches} and {bare.numbers}, each once")


def _last_json(ran: Ran, who: str) -> dict[str, Any]:
    expect(ran.code == 0, f"{who} exited {ran.code}: {ran.stderr[-2000:]}")
    found: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    return found


def run_bare_loop(ctx: Context, bare: BareInputs, label: str) -> float:
    """Seconds from the bare loop's first request to its last answer."""
    sb = ctx.sandbox()
    sb.reset()
    ran = ctx.run(label, [sys.executable, str(HERE / "bareloop.py"), str(bare.batches_file),
                          sb.base_url, str(SEND_CONCURRENCY)], env=sb.env())
    result = _last_json(ran, "bare loop")
    expect(result["requests"] == bare.batches and result["numbers"] == bare.numbers,
           f"bare loop sent {result}, expected {bare.batches} requests, {bare.numbers} numbers")
    return float(result["seconds"])


def run_bare_script(ctx: Context, bare: BareInputs, source: Path, label: str
                    ) -> tuple[float, float, float]:
    """Seconds of the bare script, which reads the CSV itself: from spawn to exit, from its
    start until its batches were ready, and from then to its last answer."""
    sb = ctx.sandbox()
    sb.reset()
    ran = ctx.run(label, [sys.executable, str(HERE / "barescript.py"), str(source),
                          str(bare.payload_file), sb.base_url, str(SEND_CONCURRENCY),
                          str(bare.size)], env=sb.env())
    result = _last_json(ran, "bare script")
    expect_sent_once(sb, bare, "the bare script")
    ready = float(result["ready_seconds"])
    return ran.seconds, ready, float(result["process_seconds"]) - ready


@dataclass
class Best:
    """The least of each figure over the repeats (what noise on a shared machine adds is
    never negative)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.seconds[name] = min(self.seconds.get(name, math.inf), value)

    def __getitem__(self, name: str) -> float:
        return self.seconds[name]


def step_send(ctx: Context) -> None:
    rows = ctx.rows_for(SEND_ROWS)
    source = gendata.recipients_csv(ctx.data, rows)
    files = gendata.write_campaign(ctx.work, f"send-{rows}", source, sending={
        "requests_per_second": UNLIMITED_RATE, "concurrency": SEND_CONCURRENCY})
    report = ctx.work / f"send-{rows}.report.csv"
    dry_report = ctx.work / f"send-{rows}.dry-run.csv"  # a dry run refuses a send's report
    bare = bare_inputs(ctx, source, files.yaml)
    sb = ctx.sandbox()
    best = Best()
    send_rss = 0
    repeats = 1 if ctx.quick else 3
    for i in range(repeats):  # interleaved, so that the machine's noise hits every figure
        best.add("loop", run_bare_loop(ctx, bare, f"bare-loop-{i}"))
        whole, ready, posting = run_bare_script(ctx, bare, source, f"bare-script-{i}")
        best.add("script", whole)
        best.add("script ready", ready)
        best.add("script posting", posting)
        dry = dry_run(ctx, f"send-dry-run-{i}", files.yaml, dry_report, env=sb.env())
        best.add("dry", dry.seconds)
        forget_journal(report)
        sb.reset()
        sent = ctx.run(f"send-{i}", send_argv(files.yaml, report), env=sb.env())
        expect(sent.code == 0, f"send exited {sent.code}: {sent.stderr[-2000:]}")
        expect_sent_once(sb, bare, "send")
        best.add("send", sent.seconds)
        send_rss = max(send_rss, sent.max_rss)
    engine = best["send"] - best["dry"]
    ctx.bare_per_request = best["loop"] / bare.batches
    ctx.add(_send_section(rows, bare, best, engine, repeats, send_rss))
    for baseline, what in (("script", "a bare aiohttp script, whole processes"),
                           ("loop", "the bare loop's first request to last answer (stricter)")):
        ratio = engine / best[baseline]
        ctx.targets.append(Target(2, f"`send` - `send --dry-run` within 1.2x of {what} "
                                  f"({rows:,} rows, no rate limit)", f"{ratio:.2f}x",
                                  ratio <= 1.2))


def _send_section(rows: int, bare: BareInputs, best: Best, engine: float, repeats: int,
                  send_rss: int) -> Section:
    section = Section(
        f"Sending {rows:,} rows ({bare.numbers:,} numbers, {bare.batches:,} requests of up to "
        f"{bare.size}), concurrency {SEND_CONCURRENCY}, no rate limit",
        ["what", "s", "requests/s", "engine cost (send - dry run) / this (target <= 1.2)"])

    def line(what: str, seconds: float, ratio: bool = False, rate: bool = False) -> None:
        section.rows.append([what, fmt(seconds),
                             f"{bare.batches / seconds:.0f}" if rate and seconds > 0 else "",
                             f"{engine / seconds:.2f}x" if ratio else ""])

    line("`campaign send --dry-run`, whole process", best["dry"])
    line("`campaign send`, whole process", best["send"])
    line("engine cost: `send` - `send --dry-run`", engine, rate=True)
    line("bare script, whole process (csv + phonenumbers + aiohttp)", best["script"],
         ratio=True, rate=True)
    line("bare script: start until its batches are ready", best["script ready"])
    line("bare script: batches ready to last answer", best["script posting"], ratio=True,
         rate=True)
    line("bare loop: first request to last answer (in process)", best["loop"], ratio=True,
         rate=True)
    section.notes.append(
        "bare script (benchmarks/barescript.py): reads the same CSV with csv.DictReader, makes "
        "the numbers E.164 with phonenumbers, keeps the first row of each, posts the same "
        "batches with the same fields and headers; timed from spawn to exit like `campaign "
        "send`. Bare loop (benchmarks/bareloop.py): the same batches prepared beforehand, "
        "timed from its first request to its last answer (JSON parsed). The script's whole "
        "process is mostly its phonenumbers pass, which the engine cost has none of (the dry "
        "run's check pass is subtracted): its posting part alone is the closer match")
    section.notes.append(
        f"best of {repeats}, interleaved; same sandbox; every number reached the sandbox exactly "
        f"once (checked for `send` and the bare script); `send` peak RSS {mb(send_rss)} MB")
    return section


def _journal_writes(path: Path, level: str, batches: int, size: int) -> float:
    """Seconds for ``batches`` begin_batch + finish_rows pairs of ``size`` rows each, the
    engine's calls."""
    from patched_cli import patch_sync

    import runner.state.sqlitefile as journal_module
    from runner.state import Journal

    original = journal_module.connect
    patch_sync(level)
    try:
        forget_journal(path.with_name(path.name.removesuffix(".journal")))
        journal = Journal.open(path, "bench", settings={})
        started = time.perf_counter()
        for b in range(batches):
            rows = [(b * size + i, f"+91{9_000_000_000 + b * size + i}") for i in range(size)]
            journal.begin_batch(f"b{b:06d}", rows)
            journal.finish_rows([
                (row, phone, "sent", f"b{b:06d}", f"id-{row}:1", "", "", 1,
                 "2026-11-25T12:00:00+00:00") for row, phone in rows])
        journal.close()
        return time.perf_counter() - started
    finally:
        journal_module.connect = original


def step_journal(ctx: Context) -> None:
    rows = ctx.rows_for(SEND_ROWS)
    source = gendata.recipients_csv(ctx.data, rows)
    files = gendata.write_campaign(ctx.work, f"journal-{rows}", source, sending={
        "requests_per_second": UNLIMITED_RATE, "concurrency": SEND_CONCURRENCY})
    report = ctx.work / f"journal-{rows}.report.csv"
    batches = math.ceil(ctx.valid.get(rows, int(rows * 0.907)) / 100)
    sb = ctx.sandbox()
    env = sb.env()
    writes: dict[str, float] = {}
    sends: dict[str, float] = {}
    repeats = 1 if ctx.quick else 2
    for _ in range(repeats):
        for level in LEVELS:
            seconds = _journal_writes(ctx.work / "micro.report.csv.journal", level, batches, 100)
            writes[level] = min(writes.get(level, math.inf), seconds)
            forget_journal(report)
            sb.reset()
            ran = ctx.run(f"journal-{level}", [sys.executable, str(HERE / "patched_cli.py"),
                                               "send", str(files.yaml), "--report", str(report)],
                          env={**env, "BENCH_JOURNAL_SYNC": level})
            expect(ran.code == 0, f"send with synchronous={level} exited {ran.code}: "
                   f"{ran.stderr[-2000:]}")
            sends[level] = min(sends.get(level, math.inf), ran.seconds)
    section = Section(
        f"Cost of the journal ({rows:,} rows, {batches:,} batches of 100)",
        ["PRAGMA synchronous", "journal writes alone s", "ms per batch", "vs OFF",
         "`send` s", "vs OFF"])
    for level in LEVELS:
        label = f"{level} (shipped)" if level == "NORMAL" else level
        section.rows.append([
            label, fmt(writes[level]), f"{writes[level] / batches * 1000:.2f}",
            f"{writes[level] / writes['OFF']:.2f}x", fmt(sends[level]),
            f"{sends[level] / sends['OFF']:.2f}x"])
    section.notes.append(
        "journal writes alone: begin_batch (commits) + finish_rows per batch, in this process; "
        "`send`: the whole run against the sandbox with the level patched in "
        "(benchmarks/patched_cli.py); WAL mode throughout")
    if ctx.bare_per_request is not None:
        section.notes.append(
            f"for scale: the bare loop spends {ctx.bare_per_request * 1000:.2f} ms per request")
    ctx.add(section)

