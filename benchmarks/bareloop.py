"""The sending baseline: a bare aiohttp loop that posts prepared batches, nothing else.

No validation, no journal, no report, no rate limit, no retries: ``concurrency`` workers take
the next batch, post it as the runner would (same JSON fields, same headers), read and parse
the answer. Run as a script so that it has a process (and a core) of its own, like
`campaign send`::

    python benchmarks/bareloop.py BATCHES.json BASE_URL CONCURRENCY

BATCHES.json holds ``{"payload": {...fields but "to"...}, "batches": [[e164, ...], ...]}``. It
prints one JSON line: the seconds from the first request to the last answer, the requests and
numbers accepted, and the seconds the whole process took up to then.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

PROCESS_START = time.monotonic()

import aiohttp  # noqa: E402  (imported after the clock starts: its import is part of the cost)


async def post_all(base_url: str, sid: str, api_key: str, payload: dict[str, Any],
                   batches: list[list[str]], concurrency: int) -> tuple[int, int]:
    url = f"{base_url}/v1/{sid}/sms"
    headers = {"api-key": api_key, "Accept": "application/json"}
    pending = iter(batches)
    accepted = [0, 0]

    async def worker(session: aiohttp.ClientSession) -> None:
        for numbers in pending:
            fields = dict(payload, to=",".join(numbers))
            async with session.post(url, json=fields, headers=headers) as resp:
                body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {body[:200]!r}")
            answer = json.loads(body)
            accepted[0] += 1
            accepted[1] += len(answer["data"])

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return accepted[0], accepted[1]


def main(argv: list[str]) -> int:
    batches_file, base_url, concurrency = Path(argv[0]), argv[1], int(argv[2])
    spec = json.loads(batches_file.read_text(encoding="utf-8"))
    sid = os.environ["KALEYRA_SID"]
    key = os.environ["KALEYRA_API_KEY"]
    started = time.monotonic()
    requests, numbers = asyncio.run(
        post_all(base_url, sid, key, spec["payload"], spec["batches"], concurrency))
    done = time.monotonic()
    print(json.dumps({"seconds": done - started, "requests": requests, "numbers": numbers,
                      "process_seconds": done - PROCESS_START}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
