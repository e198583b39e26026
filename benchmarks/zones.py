"""What a recipient-local window costs a row: zone lookup, and one planning pass over the rows.

    python benchmarks/zones.py [--rows 100000]

Measures, in microseconds a row, for lists of distinct numbers of a few kinds:
* ``lookup``: ``ZoneLookup.index`` (the cached lookup) for every number;
* ``reference``: ``phonenumbers.timezone.time_zones_for_number`` after ``parse`` (no cache), the
  cost the cache avoids;
* ``batches``: a full ``ZoneBatcher`` pass (lookup, the zone's window, grouping into batches).
A window that is not per recipient never calls any of this: it costs nothing there.
Results of one run: benchmarks/zones.md.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from datetime import time as clock

import phonenumbers
from phonenumbers import timezone as tz

from runner.model import Window
from runner.zoneplan import ZoneBatcher
from runner.zones import ZoneLookup

# 25 US area codes spread over the four mainland zones, and Indian mobiles.
US_AREAS = [212, 646, 718, 202, 305, 404, 617, 215, 312, 713, 214, 512, 615, 612, 314, 303,
            602, 801, 505, 213, 415, 206, 503, 702, 808]
KINDS: dict[str, Callable[[random.Random], str]] = {
    "US (25 area codes)":
        lambda r: f"1{r.choice(US_AREAS)}{r.randint(2, 9)}{r.randrange(10**6):06d}",
    "India (mobiles)": lambda r: f"91{r.choice('6789')}{r.randrange(10**9):09d}",
    "UK (mobiles)": lambda r: f"447{r.choice('45789')}{r.randrange(10**8):08d}",
}
TCPA = Window(clock(8), clock(21), "recipient")


def _numbers(make: Callable[[random.Random], str], rows: int) -> list[str]:
    rng = random.Random(7)
    found: set[str] = set()
    while len(found) < rows:
        digits = make(rng)
        if phonenumbers.is_valid_number(phonenumbers.parse("+" + digits)):
            found.add(digits)
    return sorted(found)


def _per_row(seconds: float, rows: int) -> str:
    return f"{seconds / rows * 1e6:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    rows = args.rows
    print(f"| numbers ({rows:,} distinct) | lookup µs/row | reference µs/row | "
          "batches µs/row | zone sets |")
    print("| --- | ---: | ---: | ---: | ---: |")
    at = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)  # open in every mainland US zone
    for name, make in KINDS.items():
        numbers = _numbers(make, rows)
        lookup = ZoneLookup()
        started = time.perf_counter()
        deque(map(lookup.index, numbers), maxlen=0)
        looked = time.perf_counter() - started

        sample = numbers[: max(1, rows // 10)]  # the reference is slow: a tenth will do
        started = time.perf_counter()
        for digits in sample:
            tz.time_zones_for_number(phonenumbers.parse("+" + digits))
        reference = (time.perf_counter() - started) / len(sample) * rows

        batcher = ZoneBatcher(TCPA, None, size=100, now=lambda: at, id_prefix="b")
        pairs = [(i + 2, digits, "hello") for i, digits in enumerate(numbers)]
        started = time.perf_counter()
        deque(batcher.batches(pairs), maxlen=0)
        planned = time.perf_counter() - started
        print(f"| {name} | {_per_row(looked, rows)} | {_per_row(reference, rows)} | "
              f"{_per_row(planned, rows)} | {len(batcher.lookup.sets)} |")


if __name__ == "__main__":
    main()
