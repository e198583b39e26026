"""`campaign report` on a large report: wall time and peak memory, for the README.

    python benchmarks/report_html.py                 # 1M rows (1k and 100k: memory stays flat)
    python benchmarks/report_html.py --sizes 10000   # a quick look

Generates a delivery report as `campaign send` and `campaign status` would leave it (mostly
sent and delivered, some failed, unknown, invalid, duplicate, suppressed and pending rows,
numbers from a few countries, sent over about 17 minutes at 10 requests a second), then runs
`campaign report REPORT --html PAGE --markdown` in its own process under GNU time. Not part of the
test suite: it takes a minute.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import run  # noqa: E402  (benchmarks/ is not a package)

from runner.journal import Journal, journal_path  # noqa: E402

COLUMNS = ("row", "phone", "status", "message_id", "batch_id", "error_code", "error", "attempts",
           "sent_at", "delivery_status", "delivery_detail", "checked_at")
# (status, weight); sent rows are the rest.
OTHERS = (("failed", 0.02), ("unknown", 0.01), ("invalid", 0.03), ("duplicate", 0.02),
          ("suppressed", 0.01), ("pending", 0.01))
FAILURES = (("E619", "Invalid sender"), ("E623", "Route not enabled for the account"),
            ("HTTP401", "the API key was refused (HTTP 401)"))
# (prefix, random digits after it, share of the rows): numbers phonenumbers finds valid.
COUNTRIES = (("+9198", 8, 0.9), ("+447400", 6, 0.03), ("+1202", 7, 0.03), ("+6591", 6, 0.02),
             ("+97150", 7, 0.02))


def _phone(rng: random.Random) -> str:
    pick, total = rng.random(), 0.0
    prefix, digits = COUNTRIES[-1][:2]
    for country in COUNTRIES:
        total += country[2]
        if pick < total:
            prefix, digits = country[:2]
            break
    tail = str(rng.randrange(2, 10)) + "".join(rng.choice("0123456789") for _ in range(digits - 1))
    return prefix + tail


def write_report(path: Path, rows: int, seed: int = 20261202) -> None:
    """A report of ``rows`` rows, 100 to a batch, 10 batches a second."""
    rng = random.Random(seed)
    start = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    checked = (start + timedelta(hours=1)).isoformat()
    batch, in_batch = 0, 100
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in range(2, rows + 2):
            pick, total, status = rng.random(), 0.0, "sent"
            for name, weight in OTHERS:
                total += weight
                if pick < total:
                    status = name
                    break
            phone = _phone(rng)
            if status == "invalid":
                writer.writerow((row, "12345", status, "", "", "", "'12345' is not a valid "
                                 "number for IN", 0, "", "", "", ""))
                continue
            if status in ("duplicate", "suppressed", "pending"):
                error = {"duplicate": f"same number as row {row - 1}",
                         "suppressed": "on the exclude list", "pending": ""}[status]
                writer.writerow((row, phone, status, "", "", "", error, 0, "", "", "", ""))
                continue
            if in_batch == 100:
                batch, in_batch = batch + 1, 0
            in_batch += 1
            sent_at = (start + timedelta(seconds=batch / 10)).isoformat(timespec="seconds")
            bid = f"r1-b{batch:06d}"
            if status == "sent":
                word = "Delivered" if rng.random() < 0.95 else "UnDelivered"
                writer.writerow((row, phone, status, f"m{row}:1", bid, "", "", 1, sent_at,
                                 word, word.upper(), checked))
            else:
                code, error = (rng.choice(FAILURES) if status == "failed"
                               else ("TIMEOUT", "no answer in time after sending"))
                writer.writerow((row, phone, status, "", bid, code, error, 1, sent_at,
                                 "", "", ""))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000",
                        help="comma-separated row counts (default: 1000,100000,1000000)")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs ({_cpu()})")
    print("| rows | report size | generate | `campaign report --html --markdown` | peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        report = args.data_dir / f"report-{size}.csv"
        began, generated = time.perf_counter(), "cached"
        if not report.exists():
            write_report(report, size)
            # The journal a send leaves beside its report: the page reads the rate from it.
            with Journal.open(journal_path(report), fingerprint="benchmark",
                              settings={"requests_per_second": 10, "name": f"benchmark-{size}"}):
                pass
            generated = f"{time.perf_counter() - began:.1f} s"
        page = args.data_dir / f"report-{size}.html"
        ran = run([sys.executable, "-m", "runner", "report", str(report), "--html", str(page),
                   "--markdown"], cwd=HERE.parent, logs=args.data_dir)
        if ran.code != 0:
            print(ran.stderr, file=sys.stderr)
            return 1
        print(f"| {size:,} | {report.stat().st_size / 1e6:.1f} MB | {generated} | "
              f"{ran.seconds:.2f} s | {ran.max_rss / 1e6:.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
