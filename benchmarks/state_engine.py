"""Engine cost with the PostgreSQL store on loopback against the sqlite journal (issue 11).

The engine runs BATCHES batches of SIZE rows at concurrency 8, no rate limit, against an answer
that comes back at once (``LATENCY`` seconds later, 0 by default): what is left is the engine and
its store, begin (committed) and finish for every batch. PostgreSQL runs in a throwaway cluster
(tests/pgcluster.py) with fsync on, as a real server would; the sqlite journal is the shipped
one (WAL, synchronous=NORMAL). Prints seconds, ms a batch, and the ratio (target <= 1.5).

    python benchmarks/state_engine.py [--batches 1000] [--size 100] [--repeat 3] [--latency 0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from runner.answers import Accepted, Outcome  # noqa: E402
from runner.engine import Engine, RetryPolicy  # noqa: E402
from runner.limiter import RateLimiter  # noqa: E402
from runner.plan import Batch  # noqa: E402
from runner.state import RunKey, Store, open_store  # noqa: E402
from tests.pgcluster import PgCluster, find_bindir  # noqa: E402


def make_batches(count: int, size: int) -> list[Batch]:
    out = []
    for i in range(count):
        rows = tuple(range(2 + i * size, 2 + (i + 1) * size))
        out.append(Batch(f"b{i:06d}", "hi", rows, tuple(f"+9198{r:08d}" for r in rows)))
    return out


async def run_engine(store: Store, batches: list[Batch], latency: float
                     ) -> tuple[float, float]:
    async def send(batch: Batch) -> Outcome:
        await asyncio.sleep(latency)
        return Accepted({n: f"id{n}" for n in batch.numbers}, (), "r")

    engine = Engine(send=send, journal=store, limiter=RateLimiter(None), concurrency=8,
                    retry=RetryPolicy(max_attempts=1, deadline=None))
    began, cpu = time.perf_counter(), time.thread_time()
    await engine.run(batches)
    return time.perf_counter() - began, time.thread_time() - cpu


def measure(url: str | None, folder: Path, batches: list[Batch], latency: float,
            n: int) -> tuple[float, float]:
    store = open_store(url, folder / f"r{n}.csv", "bench", key=RunKey(f"bench{n}", "IN", "X"))
    try:
        return asyncio.run(run_engine(store, batches, latency))
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--no-fsync", action="store_true",
                        help="the server without fsync (to see what the disk costs)")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL server binaries found (set PG_BINDIR)", file=sys.stderr)
        return 1
    batches = make_batches(args.batches, args.size)
    cluster = PgCluster(bindir, fsync=not args.no_fsync).start()
    try:
        url = cluster.create_database("bench")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            times: dict[str, list[tuple[float, float]]] = {"sqlite": [], "postgres": []}
            for n in range(args.repeat):  # interleaved, so machine noise hits both alike
                times["sqlite"].append(measure(None, folder, batches, args.latency, n))
                times["postgres"].append(measure(url, folder, batches, args.latency, n))
    finally:
        cluster.remove()
    wall = {name: min(t for t, _ in values) for name, values in times.items()}
    loop = {name: min(c for _, c in values) for name, values in times.items()}
    per = 1000 / args.batches
    print(f"engine, {args.batches:,} batches of {args.size}, concurrency 8, answers after "
          f"{args.latency * 1000:g} ms, best of {args.repeat}")
    for name in wall:
        print(f"  {name:9} wall {wall[name] * per:6.3f} ms a batch, event-loop CPU "
              f"{loop[name] * per:6.3f} ms a batch (wall s: "
              f"{', '.join(f'{t:.3f}' for t, _ in times[name])})")
    print(f"  ratio postgres / sqlite: wall {wall['postgres'] / wall['sqlite']:.2f}x, event-loop "
          f"CPU {loop['postgres'] / loop['sqlite']:.2f}x (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
