"""Both state stores behind one helper, so one test suite runs against each (tests/unit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.state import DEFAULT_COMMIT_EVERY, JournalMeta, RunKey, Store, open_store, read_meta

KEY = RunKey("diwali", "IN", "HX1")


@dataclass(frozen=True, slots=True)
class Backend:
    name: str  # "sqlite" or "postgres"
    report: Path  # the report the run writes (the sqlite journal lives beside it)
    url: str | None = None  # the PostgreSQL URL, for "postgres"

    def open(self, fingerprint: str, *, fresh: bool = False,
             settings: dict[str, object] | None = None,
             commit_every: int = DEFAULT_COMMIT_EVERY) -> Store:
        return open_store(self.url, self.report, fingerprint, fresh=fresh, settings=settings,
                          key=KEY, commit_every=commit_every)

    def meta(self) -> JournalMeta:
        if self.url is None:
            return read_meta(self.report.with_name(self.report.name + ".journal"))
        import psycopg

        with psycopg.connect(self.url) as conn:
            found = conn.execute(
                "SELECT fingerprint, settings, created, run_number FROM campaign_runs "
                "WHERE name = %s AND region = %s AND sid = %s AND archived IS NULL",
                (KEY.name, KEY.region, KEY.sid)).fetchone()
        assert found is not None
        return JournalMeta(found[0], dict(found[1]), found[2], found[3])

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the PostgreSQL store directly (what another machine would see)."""
        import psycopg

        assert self.url is not None
        with psycopg.connect(self.url) as conn:
            return conn.execute(query, args).fetchall()
