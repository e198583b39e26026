"""The PostgreSQL store's own promises, on a real server (tests/pgcluster.py): the schema is
versioned, runs are exclusive per key, an unreachable or lost database is its own error, the
engine's writes never hold up the event loop, and the password is never shown."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runner.engine import Engine, RetryPolicy
from runner.errors import InputError, JournalError, StateBusy, StateLost, StateUnavailable
from runner.kaleyra import Accepted, Outcome
from runner.limiter import RateLimiter
from runner.plan import Batch
from runner.state import Journal, RunKey, mask_url, open_store, read_state_meta, state_url
from runner.state.postgres import PostgresStore
from tests.pgcluster import PASSWORD
from tests.stores import KEY, Backend

# --- URLs, without a server ----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:s3cr3t@db.example:5432/campaigns",
     "postgresql://app:***@db.example:5432/campaigns"),
    ("postgres://app:p%40ss%3Aw0rd@10.0.0.5/c?sslmode=require",
     "postgres://app:***@10.0.0.5/c?sslmode=require"),
    ("postgresql://app@db/c?password=s3cr3t&sslmode=require",
     "postgresql://app@db/c?password=***&sslmode=require"),
    ("postgresql://db/c", "postgresql://db/c"),
])
def test_mask_url_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_the_flag_wins_over_the_environment_and_other_urls_are_refused() -> None:
    env = {"CAMPAIGN_STATE": "postgresql://a:envpw@h/db"}
    assert state_url("postgres://b:flagpw@h/db", env) == "postgres://b:flagpw@h/db"
    assert state_url(None, env) == "postgresql://a:envpw@h/db"
    assert state_url(None, {}) is None
    assert state_url(None, {"CAMPAIGN_STATE": "  "}) is None
    with pytest.raises(InputError) as info:
        state_url(None, {"CAMPAIGN_STATE": "mysql://u:hunter2@h/db"})
    assert "$CAMPAIGN_STATE" in str(info.value) and "hunter2" not in str(info.value)


def test_without_a_url_the_store_is_the_journal_beside_the_report(tmp_path: Path) -> None:
    with open_store(None, tmp_path / "r.csv", "fp") as store:
        assert isinstance(store, Journal)
    assert (tmp_path / "r.csv.journal").exists()


# --- a real server ------------------------------------------------------------------------------


@pytest.fixture
def pg(pg_url: str, tmp_path: Path) -> Backend:
    return Backend("postgres", tmp_path / "report.csv", pg_url)


def admin(pg_cluster: Any, url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(pg_cluster.admin_url(url.rsplit("/", 1)[1]), autocommit=True)


def test_the_schema_is_created_on_first_use_and_versioned(pg: Backend, pg_cluster: Any) -> None:
    pg.open("fp").close()
    from runner.state.pgschema import SCHEMA_VERSION

    versions = list(range(1, SCHEMA_VERSION + 1))
    assert [v for (v,) in pg.sql("SELECT version FROM campaign_schema_version")] == versions
    pg.open("fp").close()  # opening again applies nothing twice
    assert len(pg.sql("SELECT version FROM campaign_schema_version")) == SCHEMA_VERSION
    assert pg.url is not None
    with admin(pg_cluster, pg.url) as conn:
        conn.execute("INSERT INTO campaign_schema_version (version) VALUES (99)")
    with pytest.raises(JournalError, match="newer version of runner"):
        pg.open("fp")


def test_a_run_is_its_key_not_a_path(pg: Backend, tmp_path: Path) -> None:
    assert pg.url is not None
    with pg.open("fp") as store:
        store.begin_batch("b1", [(2, "+6591234567")])
        store.finish_rows([(2, "+6591234567", "sent", "b1", "m2", "", "", 1, "t")])
    elsewhere = open_store(pg.url, tmp_path / "other" / "report.csv", "fp", key=KEY)
    with elsewhere as store:
        assert store.run_number == 2 and store.settled_rows() == {2}
    other = RunKey(KEY.name, KEY.region, "HX2")  # another SID: another run, not locked
    with pg.open("fp"), open_store(pg.url, tmp_path / "r.csv", "fp", key=other) as store:
        assert store.run_number == 1


def test_the_run_s_meta_is_found_from_its_report_s_messages(pg: Backend) -> None:
    assert pg.url is not None
    with pg.open("fp", settings={"region": "IN", "sid": "HX1"}) as store:
        store.begin_batch("b1", [(2, "+6591234567"), (3, "+6591234568")])
        store.finish_rows([(2, "+6591234567", "sent", "b1", "m2", "", "", 1, "t"),
                           (3, "+6591234568", "sent", "b1", "m3", "", "", 1, "t")])
    meta = read_state_meta(pg.url, Path("report.csv"), [(2, "m2"), (3, "m3")])
    assert meta.settings == {"region": "IN", "sid": "HX1"} and meta.fingerprint == "fp"
    with pytest.raises(JournalError, match="no run in the state store") as info:
        read_state_meta(pg.url, Path("report.csv"), [(2, "m-other")])
    assert PASSWORD not in str(info.value)


def test_an_unreachable_database_is_state_unavailable_without_the_password(
        pg_cluster: Any, caplog: pytest.LogCaptureFixture) -> None:
    from tests.integration.helpers import free_port

    caplog.set_level(logging.DEBUG)
    url = f"postgresql://runner:{PASSWORD}@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(StateUnavailable) as info:
        open_store(url, Path("r.csv"), "fp", key=KEY)
    text = str(info.value)
    assert "cannot reach the state store postgresql://runner:***@127.0.0.1" in text
    assert PASSWORD not in text and PASSWORD not in caplog.text
    # A wrong password is refused by the server, and not shown either.
    wrong = pg_cluster.url(password="Wrong-pw-81d3")
    with pytest.raises(StateUnavailable) as info:
        open_store(wrong, Path("r.csv"), "fp", key=KEY)
    assert "password authentication failed" in str(info.value)
    assert "Wrong-pw-81d3" not in str(info.value) and "Wrong-pw-81d3" not in caplog.text


def test_a_second_process_on_the_run_is_busy_and_told_who_holds_it(
        pg: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runner.state.pgopen.LOCK_WAIT_MS", 100)  # not 2 s before the refusal
    with pg.open("fp"), pytest.raises(StateBusy) as info:
        pg.open("fp")
    text = str(info.value)
    assert str(KEY) in text and "nothing sent" in text and "campaign send on" in text
    assert PASSWORD not in text


def kill_session(pg_cluster: Any, url: str, store: Any) -> None:
    pid = store._conn.info.backend_pid
    with admin(pg_cluster, url) as conn:
        # Wait for it to be gone (PostgreSQL 14+), not just signalled.
        conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))


def test_a_database_lost_mid_run_is_state_lost_and_the_open_batch_comes_back_unknown(
        pg: Backend, pg_cluster: Any) -> None:
    assert pg.url is not None
    store = pg.open("fp")
    store.begin_batch("b1", [(2, "+6591234567")])
    kill_session(pg_cluster, pg.url, store)
    with pytest.raises(StateLost) as info:
        store.finish_rows([(2, "+6591234567", "sent", "b1", "m2", "", "", 1, "t")])
    assert "lost the state store postgresql://runner:***@" in str(info.value)
    assert PASSWORD not in str(info.value)
    with pytest.raises(StateLost):  # and stays lost: no new batch can be recorded
        store.begin_batch("b2", [(3, "+6591234568")])
    store.close()  # nothing left to flush; closing does not raise
    with pg.open("fp") as again:
        assert again.rows_with_status("in_flight") == {2}
        assert again.mark_in_flight_unknown() == 1


# --- the engine on PostgreSQL ---------------------------------------------------------------------


def make_batches(count: int, size: int = 3) -> list[Batch]:
    return [Batch(f"b{i:04d}", "hi", tuple(range(2 + i * size, 2 + (i + 1) * size)),
                  tuple(f"+9198{r:08d}" for r in range(2 + i * size, 2 + (i + 1) * size)))
            for i in range(count)]


def engine(store: Any, send: Any, concurrency: int = 4) -> Engine:
    return Engine(send=send, journal=store, limiter=RateLimiter(None), concurrency=concurrency,
                  retry=RetryPolicy(max_attempts=2, deadline=None))


async def test_the_engine_sends_every_batch_once_through_postgres(pg: Backend) -> None:
    sent: list[str] = []

    async def send(batch: Batch) -> Outcome:
        sent.append(batch.id)
        return Accepted({n: f"id{n}" for n in batch.numbers}, (), "r")

    with pg.open("fp") as store:
        result = await engine(store, send).run(make_batches(40))
        assert not result.stopped and sorted(sent) == [f"b{i:04d}" for i in range(40)]
        assert store.counts() == {"sent": 120}


async def test_losing_the_database_stops_the_engine_with_what_was_in_flight_open(
        pg: Backend, pg_cluster: Any) -> None:
    assert pg.url is not None
    sent: list[str] = []
    store = pg.open("fp")

    async def send(batch: Batch) -> Outcome:
        sent.append(batch.id)
        if len(sent) == 10:  # the database goes away while this request is out (blocking the
            kill_session(pg_cluster, pg.url, store)  # loop on purpose: no batch begins meanwhile)
        return Accepted({n: f"id{n}" for n in batch.numbers}, (), "r")

    with pytest.raises(StateLost):
        await engine(store, send).run(make_batches(100))
    store.close()
    # Stopped: only batches already begun when it was lost went out (one a worker at most).
    assert 10 <= len(sent) <= 10 + 3
    with pg.open("fp") as again:
        in_flight = again.rows_with_status("in_flight")
        answered = again.rows_with_status("sent")
        assert len(in_flight) <= 4 * 3  # at most a batch per worker
        begun = {row for b in make_batches(100) if b.id in sent for row in b.rows}
        assert in_flight | answered == begun  # everything sent is accounted for


@pytest.fixture
def table_locked(pg: Backend, pg_cluster: Any) -> Iterator[psycopg.Connection[Any]]:
    """A second session that will hold the batches table locked (the database being slow)."""
    assert pg.url is not None
    pg.open("fp").close()  # the schema exists
    conn = psycopg.connect(pg_cluster.admin_url(pg.url.rsplit("/", 1)[1]))
    yield conn
    conn.close()


async def test_a_slow_database_never_holds_up_the_event_loop(
        pg: Backend, table_locked: psycopg.Connection[Any]) -> None:
    table_locked.execute("LOCK TABLE campaign_batches IN ACCESS EXCLUSIVE MODE")
    # Should the write block the loop, this lets it through, and the test fails instead of hanging.
    safety = threading.Timer(10.0, table_locked.rollback)
    safety.start()
    with pg.open("fp") as store:
        assert isinstance(store, PostgresStore)
        begin = asyncio.ensure_future(store.abegin_batch("b1", [(2, "+6591234567")]))
        ticks = 0
        while ticks < 200:  # the loop keeps turning while the write waits on the database
            await asyncio.sleep(0)
            ticks += 1
        assert not begin.done()
        table_locked.rollback()  # the lock goes: the write completes
        safety.cancel()
        await begin
        assert store.rows_with_status("in_flight") == {2}


def test_message_counts_for_the_caps_survive_a_reopen(pg: Backend) -> None:
    periods = ("h:2026-12-02T10+05:30", "d:2026-12-02+05:30")
    with pg.open("fp") as store:
        assert store.messages_counted(periods) == [0, 0]
        store.count_messages(periods, 100)
        store.count_messages(periods[:1], -30)  # a batch proven unsent gives its count back
    with pg.open("fp") as store:
        assert store.messages_counted(periods) == [70, 100]
        store.count_messages(periods, -500)  # never below zero
        assert store.messages_counted(periods) == [0, 0]
