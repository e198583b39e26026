"""Step state: the engine's cost with the PostgreSQL state store against the sqlite journal.

The same campaign is sent three ways, interleaved: `send --dry-run`, `send` (the journal beside
the report, as shipped) and `send --state postgresql://...` to a throwaway cluster on loopback
(tests/pgcluster.py, fsync on as a real server has it). Each figure is the send's seconds beyond
the dry run's, the engine's cost; the target is PostgreSQL within 1.5x of sqlite.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gendata
from common import (
    REPO,
    SEND_CONCURRENCY,
    SEND_ROWS,
    UNLIMITED_RATE,
    Context,
    Section,
    Target,
    dry_run,
    expect,
    fmt,
    forget_journal,
    send_argv,
)
from steps_send import BareInputs, Best, bare_inputs, expect_sent_once

if str(REPO) not in sys.path:  # tests/pgcluster.py: how the tests start their server
    sys.path.insert(0, str(REPO))

from tests.pgcluster import PgCluster, find_bindir


@contextmanager
def pg_cluster() -> Iterator[PgCluster | None]:
    """A started throwaway cluster, removed after; None when no server binaries are found."""
    bindir = find_bindir()
    if bindir is None:
        yield None
        return
    cluster = PgCluster(bindir, fsync=True).start()
    try:
        yield cluster
    finally:
        cluster.remove()


def step_state(ctx: Context) -> None:
    with pg_cluster() as cluster:
        if cluster is None:
            ctx.targets.append(Target(2, "engine cost with --state postgresql:// within 1.5x of "
                                      "the sqlite journal's", "no PostgreSQL server binaries "
                                      "(set PG_BINDIR)", None))
            return
        _measure(ctx, cluster)


def _measure(ctx: Context, cluster: PgCluster) -> None:
    rows = ctx.rows_for(SEND_ROWS)
    source = gendata.recipients_csv(ctx.data, rows)
    files = gendata.write_campaign(ctx.work, f"state-{rows}", source, sending={
        "requests_per_second": UNLIMITED_RATE, "concurrency": SEND_CONCURRENCY})
    report = ctx.work / f"state-{rows}.report.csv"
    dry_report = ctx.work / f"state-{rows}.dry-run.csv"
    bare = bare_inputs(ctx, source, files.yaml)  # for the check of what reached the sandbox
    best = Best()
    repeats = 1 if ctx.quick else 3
    settings = (True,) if ctx.quick else (True, False)
    for fsync in settings:  # on: as a real server; off: what is left without the disk
        if cluster.fsync != fsync:
            cluster.stop_server()
            cluster.fsync = fsync
            cluster.start_server()
        for i in range(repeats):
            _round(ctx, cluster, files.yaml, report, dry_report, bare, best,
                   f"{i}-fsync-{'on' if fsync else 'off'}")
    stores = ("sqlite", "postgres-fsync-on", "postgres-fsync-off")[:1 + len(settings)]
    engine = {store: best[store] - best["dry"] for store in stores}
    ratio = engine["postgres-fsync-on"] / engine["sqlite"]
    section = Section(
        f"The state store: {rows:,} rows ({bare.batches:,} requests), concurrency "
        f"{SEND_CONCURRENCY}, no rate limit",
        ["state", "`send` s", "engine cost: send - dry run s", "ms a request",
         "vs the sqlite journal (target <= 1.5)"])
    for store, label in zip(stores, ("sqlite journal beside the report (shipped default)",
                                     "`--state postgresql://` on loopback, fsync on",
                                     "the same, the server's fsync off"), strict=False):
        section.rows.append([label, fmt(best[store]), fmt(engine[store]),
                             f"{engine[store] / bare.batches * 1000:.2f}",
                             f"{engine[store] / engine['sqlite']:.2f}x"])
    section.notes.append(
        f"`send --dry-run` {fmt(best['dry'])} s; best of {repeats} a server setting, "
        "interleaved (dry run, sqlite, PostgreSQL), dry run and sqlite best of all; PostgreSQL "
        f"{cluster.bindir.parent.name} in a throwaway cluster (tests/pgcluster.py), a new "
        "database each run; every number reached the sandbox exactly once, both ways")
    ctx.add(section)
    ctx.targets.append(Target(2, "engine cost with `--state postgresql://` (loopback, fsync "
                              f"on) within 1.5x of the sqlite journal's ({rows:,} rows)",
                              f"{ratio:.2f}x", ratio <= 1.5))


def _round(ctx: Context, cluster: PgCluster, campaign: Path, report: Path, dry_report: Path,
           bare: BareInputs, best: Best, tag: str) -> None:
    """One dry run, one send with the sqlite journal, one with PostgreSQL (a new database:
    the run is keyed by campaign, region and SID)."""
    sb = ctx.sandbox()
    dry = dry_run(ctx, f"state-dry-run-{tag}", campaign, dry_report, env=sb.env())
    best.add("dry", dry.seconds)
    url = cluster.create_database(f"bench_{tag.replace('-', '_')}")
    pg = f"postgres-fsync-{'on' if cluster.fsync else 'off'}"
    for store, extra in (("sqlite", ()), (pg, ("--state", url))):
        forget_journal(report)
        sb.reset()
        ran = ctx.run(f"state-{store}-{tag}", send_argv(campaign, report, *extra), env=sb.env())
        expect(ran.code == 0, f"send ({store}) exited {ran.code}: "
               f"{ran.stderr[-2000:].replace(url, '<url>')}")
        expect_sent_once(sb, bare, f"send ({store})")
        best.add(store, ran.seconds)
