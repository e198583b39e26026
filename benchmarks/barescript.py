"""The whole-process sending baseline: the script a user would write instead of `campaign send`.

It reads the recipients CSV with csv.DictReader, makes each number E.164 with phonenumbers
(parse, is_valid_number, format_number: the naive check of benchmarks/naive.py), keeps the first
row of each number, cuts the numbers into batches in that order and posts them with the bare
aiohttp loop of benchmarks/bareloop.py. No journal, no report, no rate limit, no retries. It is
timed from spawn to exit like `campaign send`, so process start, imports, reading the CSV and
posting count for both::

    python benchmarks/barescript.py RECIPIENTS.csv PAYLOAD.json BASE_URL CONCURRENCY BATCH_SIZE

PAYLOAD.json holds the request's fields but ``to`` (what the user would write in the script).
It prints one JSON line: requests and numbers accepted, and the seconds from process start to
the batches being ready and to the last answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

PROCESS_START = time.monotonic()

import bareloop  # noqa: E402  (imports aiohttp: part of the cost, after the clock starts)
import naive  # noqa: E402  (imports phonenumbers, likewise)


def main(argv: list[str]) -> int:
    source, payload_file, base_url = Path(argv[0]), Path(argv[1]), argv[2]
    concurrency, size = int(argv[3]), int(argv[4])
    payload = json.loads(payload_file.read_text(encoding="utf-8"))
    numbers = naive.valid_numbers(source)
    batches = [numbers[i:i + size] for i in range(0, len(numbers), size)]
    ready = time.monotonic()
    requests, accepted = asyncio.run(bareloop.post_all(
        base_url, os.environ["KALEYRA_SID"], os.environ["KALEYRA_API_KEY"], payload, batches,
        concurrency))
    done = time.monotonic()
    print(json.dumps({"requests": requests, "numbers": accepted,
                      "ready_seconds": ready - PROCESS_START,
                      "process_seconds": done - PROCESS_START}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
