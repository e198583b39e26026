"""What the benchmark steps share: the run's context, the table, and small helpers."""

from __future__ import annotations

import csv
import re
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:  # the sibling modules, however this file is started
    sys.path.insert(0, str(HERE))

import measure  # noqa: E402
import naive  # noqa: E402
import sandboxproc  # noqa: E402
from measure import RUNNER, Child, Profiler, Ran  # noqa: E402

T = TypeVar("T")

__all__ = ["HERE", "REPO", "RUNNER", "Child", "Ran"]

SEND_ROWS = 100_000
SEND_CONCURRENCY = 8
RATE_CONCURRENCY = 16
UNLIMITED_RATE = 10000  # the schema's ceiling: no limit in practice

# --------------------------------------------------------------------------- the table


@dataclass
class Section:
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Target:
    number: int  # issue 16's numbering: 1 stop, 2 engine cost, 3 ten million rows, 4 resume,
    # 5 rate, 6 per-row cost of the new work
    what: str
    measured: str
    met: bool | None  # None: not measured in this run at the size the target names
    measured_only: bool = False  # a figure the issue asks for, with no limit to meet

    def row(self) -> list[str]:
        verdict = "measured" if self.measured_only else (
            "n/a" if self.met is None else ("met" if self.met else "**missed**"))
        return [str(self.number), self.what, self.measured, verdict]


@dataclass
class Context:
    quick: bool
    sizes: tuple[int, ...]
    sizes_given: bool  # --sizes on the command line: every step keeps to them (small checks)
    data: Path
    work: Path
    profiler: Profiler
    sandbox_log: Path
    sections: list[Section] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    profiles: list[Path] = field(default_factory=list)
    dry_runs: dict[int, Ran] = field(default_factory=dict)  # rows -> a dry-run subprocess
    valid: dict[int, int] = field(default_factory=dict)  # rows -> valid (sendable) rows
    numbers: dict[Path, list[str]] = field(default_factory=dict)  # CSV -> its valid E.164s
    bare_per_request: float | None = None  # seconds, from the send step
    _sandbox: sandboxproc.SandboxProcess | None = None

    def sandbox(self) -> sandboxproc.SandboxProcess:
        if self._sandbox is None:
            self._sandbox = sandboxproc.SandboxProcess(log=self.sandbox_log)
            self._sandbox.start()
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None

    def rows_for(self, full: int, quick: int | None = None) -> int:
        """A step's size: ``full``, ``quick`` under --quick, at most the largest of --sizes."""
        if self.sizes_given:
            return min(full, max(self.sizes))
        return quick if self.quick and quick is not None else full

    def repeats(self, rows: int) -> int:
        if rows >= 1_000_000:
            return 1
        if self.quick:
            return 3 if rows <= 20_000 else 1
        return 3

    def add(self, section: Section) -> None:
        self.sections.append(section)
        print(section.markdown(), flush=True)

    def logs(self, label: str) -> Path:
        return self.work / "logs" / label

    def run(self, label: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
            timeout: float = 1800.0) -> Ran:
        ran = measure.run(argv, env=env, cwd=self.work, logs=self.logs(label), timeout=timeout,
                          profiler=self.profiler, label=label)
        if ran.profile is not None:
            self.profiles.append(ran.profile)
        return ran

    def start(self, label: str, argv: Sequence[str], *, env: dict[str, str] | None = None
              ) -> Child:
        wrapped, profile = self.profiler.wrap(label, argv)
        if profile is not None:
            self.profiles.append(profile)
        return Child(wrapped, env=env, cwd=self.work, logs=self.logs(label), profile=profile)


# --------------------------------------------------------------------------- helpers


def fmt(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 100 else f"{seconds:.0f}"


def per_row(seconds: float, rows: int) -> str:
    return f"{seconds / rows * 1e6:.1f}"


def mb(n: int) -> str:
    return f"{n / 2**20:.0f}"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def forget_journal(report: Path) -> None:
    """Remove a report's journal (and WAL, shared memory, and copies kept aside), the report
    itself (a send's report without its journal is refused: the lost-state guard) and the
    verdicts kept for a rerun, so that a run starts from nothing."""
    for path in report.parent.glob(report.name + ".journal*"):
        path.unlink()
    report.unlink(missing_ok=True)
    report.with_name(report.name + ".checked").unlink(missing_ok=True)  # the kept check pass


def journal_counts(report: Path) -> dict[str, int]:
    path = report.with_name(report.name + ".journal")
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT status, count(*) FROM rows GROUP BY status").fetchall())
    finally:
        conn.close()


def sent_phones(report: Path) -> set[str]:
    """The numbers the journal says were sent."""
    path = report.with_name(report.name + ".journal")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {phone for (phone,) in conn.execute("SELECT phone FROM rows WHERE status = 'sent'")}
    finally:
        conn.close()


_PLAN_LINE = re.compile(r"recipients\s+([\d,]+) rows: ([\d,]+) to send, ([\d,]+) duplicates, "
                        r"([\d,]+) suppressed, ([\d,]+) invalid")


def dry_run_counts(stdout: str) -> naive.Verdicts | None:
    found = _PLAN_LINE.search(stdout)
    if found is None:
        return None
    _total, send, dup, _supp, invalid = (int(g.replace(",", "")) for g in found.groups())
    return naive.Verdicts(send, invalid, dup)


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise SystemExit(f"benchmark check failed: {message}")


def stopped(ran: Ran) -> bool:
    """Exit 75 (stopped early); under py-spy, whose own exit code is 0, the message says so."""
    if ran.profile is not None:
        return "stopped early" in ran.stderr
    return ran.code == 75


def send_argv(campaign: Path, report: Path, *extra: str) -> list[str]:
    return [*RUNNER, "send", str(campaign), "--report", str(report), *extra]


def dry_run(ctx: Context, label: str, campaign: Path, report: Path, *, fresh: bool = True,
            env: dict[str, str] | None = None, timeout: float = 1800.0) -> Ran:
    """`campaign send --dry-run`, exit 0 expected; ``fresh``: with no earlier report at
    ``report`` (a dry run over one reads it through first, to make sure it is not a send's:
    a cost of its own, measured once by step validate)."""
    if fresh:
        report.unlink(missing_ok=True)
    ran = ctx.run(label, send_argv(campaign, report, "--dry-run"), env=env, timeout=timeout)
    expect(ran.code == 0, f"dry run {label} exited {ran.code}: {ran.stderr[-2000:]}")
    return ran


@dataclass(frozen=True, slots=True)
class ReportCheck:
    """What a finished report holds: its rows by status, and whether it has every row once."""

    rows: int
    statuses: Counter[str]
    complete: bool  # rows 2 .. N + 1 (the source's line numbers), each exactly once


def read_report(report: Path, expected_rows: int) -> ReportCheck:
    """Count a report's rows by status in one pass (the row and status columns only)."""
    statuses: Counter[str] = Counter()
    seen = bytearray(expected_rows + 2)
    complete = True
    with report.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        at_row, at_status = header.index("row"), header.index("status")
        for cells in reader:
            statuses[cells[at_status]] += 1
            row = int(cells[at_row])
            if not 2 <= row <= expected_rows + 1 or seen[row]:
                complete = False
            else:
                seen[row] = 1
    rows = sum(statuses.values())
    return ReportCheck(rows, statuses, complete and rows == expected_rows)


def statuses_text(counts: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
