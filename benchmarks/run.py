"""Benchmarks for runner: the figures issue 16 asks for, each against a baseline run beside it.

    python benchmarks/run.py            # the full run (10k, 100k, 1M rows, and 10M in step big)
    python benchmarks/run.py --quick    # 10k and 100k rows, short runs, big at 100k rows
    python benchmarks/run.py --steps validate --sizes 2000   # one step, one small size

How long it takes, on this 2-core machine shared with other work (2026-12-02, when it ran the
naive loop at 55-70 µs a row, three times slower than for benchmarks/results.md): --quick 141 s
(every step at 100k rows at most, big included); the full run about 20 minutes, half of it step
big (595 s measured: 30 s to generate the 10M-row CSV the first time, 55 s the naive loop over
1M rows, 138 s the 10M-row dry run, 365 s the 10M-row send), the other steps about 11 minutes
(estimated from their sizes, not run together: the full run was not run for this change).

Every figure is a ratio against a baseline measured side by side in the same run, since
absolute times on shared machines drift. Steps, and issue 16's target each one measures:

- validate: ``runner.checker.check_campaign`` and `campaign send --dry-run` (end to end, which
  also writes the report) against the naive baseline (csv.DictReader + phonenumbers.parse +
  is_valid_number + a set), with the verdict counts asserted equal (3, at 1M);
- rss: peak RSS of `campaign send --dry-run` per size (3, at 1M);
- send: `campaign send` beyond `campaign send --dry-run` of the same campaign, against a bare
  aiohttp script timed as a whole process like them (benchmarks/barescript.py: reads the CSV,
  phonenumbers, posts) and, stricter, a bare loop's first request to last answer
  (benchmarks/bareloop.py) (2);
- state: the same with `--state postgresql://` on a throwaway loopback cluster against the
  sqlite journal (2);
- rate: achieved requests and messages a second against the limit, from the sandbox's own
  arrival times and counts (5);
- journal: the same send with the journal's commits synced never (OFF), as shipped (NORMAL)
  and at every commit (FULL);
- resume: a campaign stopped by SIGTERM about half way, then rerun: seconds from the start of
  the rerun until its first request reaches the sandbox (4);
- stop: SIGTERM, then SIGINT, half way through the largest campaign: seconds to exit 75, and
  the report checked complete (1);
- messages: DLT matching, recipient time zones and preview columns, per row, used and unused
  (6);
- big: 10M rows: a dry run against the naive loop (timed on 1M, scaled) and its peak RSS, and
  a whole send to the sandbox and its peak RSS (3).

The sandbox runs in a process of its own (`python -m runner sandbox`), so that client and server
do not share one core. Generated CSVs, campaigns, reports, logs and profiles go under
benchmarks/data/ (git-ignored); the table is printed and written to benchmarks/results.md.
``--profile`` records every runner subprocess with py-spy and prints where its time went.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the sibling modules, however this file is started
    sys.path.insert(0, str(HERE))

import measure  # noqa: E402
from common import REPO, Context, Section  # noqa: E402
from measure import Profiler  # noqa: E402
from steps_big import step_big  # noqa: E402
from steps_check import step_rss, step_validate  # noqa: E402
from steps_messages import step_messages  # noqa: E402
from steps_rate import step_rate  # noqa: E402
from steps_send import step_journal, step_send  # noqa: E402
from steps_state import step_state  # noqa: E402
from steps_stop import step_resume, step_stop  # noqa: E402

STEPS: dict[str, Callable[[Context], None]] = {
    "validate": step_validate, "rss": step_rss, "send": step_send, "state": step_state,
    "rate": step_rate, "journal": step_journal, "resume": step_resume, "stop": step_stop,
    "messages": step_messages, "big": step_big}
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)


# --------------------------------------------------------------------------- the run


def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "runner"], cwd=REPO,
                               check=True, capture_output=True, text=True).stdout.strip()
        if dirty:
            commit += " + uncommitted changes in runner/"
    return [
        f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {os.cpu_count()} CPUs (nproc), {model}, {platform.system()} "
        f"{platform.release()}",
        f"python: {platform.python_version()} ({platform.python_implementation()}); "
        f"phonenumbers {version('phonenumbers')}, aiohttp {version('aiohttp')}",
        f"runner: {commit}",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="10k and 100k rows, short rate and stop runs, big at 100k rows")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"comma-separated steps to run (default: all of {', '.join(STEPS)})")
    parser.add_argument("--sizes", help="comma-separated row counts for validate, rss, resume "
                        "and stop; the other steps then keep to the largest (to try them small)")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data",
                        help="where generated files go (default benchmarks/data)")
    parser.add_argument("--out", type=Path, default=HERE / "results.md",
                        help="the markdown table (default benchmarks/results.md); '-' for none")
    parser.add_argument("--profile", action="store_true",
                        help="record every runner subprocess with py-spy (under the data dir)")
    args = parser.parse_args(argv)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    args.steps = steps
    args.sizes_given = bool(args.sizes)
    if args.sizes:
        args.sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(","))
    else:
        args.sizes = QUICK_SIZES if args.quick else FULL_SIZES
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = args.data_dir.resolve()
    work = data / "work"
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(quick=args.quick, sizes=tuple(sorted(args.sizes)),
                  sizes_given=args.sizes_given, data=data, work=work,
                  profiler=Profiler(data / "profiles" if args.profile else None),
                  sandbox_log=work / "logs" / "sandbox.log")
    header = machine()
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print("\n".join([*header, f"command: {command.strip()}", ""]), flush=True)
    started = time.monotonic()
    took: list[list[str]] = []
    try:
        for name, step in STEPS.items():
            if name in args.steps:
                began = time.monotonic()
                step(ctx)
                took.append([name, f"{time.monotonic() - began:.0f}"])
    finally:
        ctx.close()
    elapsed = time.monotonic() - started
    if ctx.targets:
        ctx.add(targets_section(ctx))
    ctx.add(Section("Time each step took", ["step", "s"], took))
    for profile in ctx.profiles:
        if profile.exists():
            print("\n".join(measure.summarise_profile(profile)), "\n", flush=True)
    print(f"benchmarks took {elapsed:.0f} s", flush=True)
    if str(args.out) != "-":
        lines = ["# Benchmark results", "", *(f"- {line}" for line in header),
                 f"- command: `{command.strip()}` ({elapsed:.0f} s)", ""]
        lines += [section.markdown() for section in ctx.sections]
        args.out.write_text("\n".join(lines), encoding="utf-8")
        print(f"wrote {display(args.out)}", flush=True)
    return 0


def targets_section(ctx: Context) -> Section:
    section = Section("Targets (issue 16)", ["#", "target", "measured", "verdict"])
    section.rows = [t.row() for t in sorted(ctx.targets, key=lambda t: t.number)]
    section.notes.append("1 stop, 2 engine cost, 3 ten million rows, 4 resume, 5 rate, 6 the "
                         "new per-row work; n/a: measured at a smaller size than the target "
                         "names (the full run measures it); measured: a figure with no limit")
    return section


def display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
