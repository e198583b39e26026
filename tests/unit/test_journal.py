"""The run journal: create, resume, refuse a changed campaign, survive a killed process.

The tests that take ``store`` run against both stores: the sqlite journal beside the report and
PostgreSQL (a real server, tests/pgcluster.py). The rest are about the sqlite file itself.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import InputError, JournalError, StateBusy
from runner.fingerprint import fingerprint
from runner.model import Account, Campaign, MessageSpec, RecipientsSpec, SendingSpec
from runner.state import IN_FLIGHT_ERROR, Journal, RowOutcome
from tests.stores import KEY, Backend

REPO = Path(__file__).resolve().parents[2]


def sent(row: int, phone: str, batch: str = "b1") -> RowOutcome:
    return RowOutcome(row, phone, "sent", batch, message_id=f"m{row}", attempts=1,
                      sent_at="2026-11-04T10:42:23Z")


def failed(row: int, phone: str, batch: str = "b1") -> RowOutcome:
    return RowOutcome(row, phone, "failed", batch, error_code="E606", error="flash must be 0/1",
                      attempts=1)


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / "report.csv.journal"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    report = tmp_path / "report.csv"
    if request.param == "sqlite":
        return Backend("sqlite", report)
    return Backend("postgres", report, request.getfixturevalue("pg_url"))


def test_a_new_journal_is_run_1_and_a_reopen_resumes_it(store: Backend) -> None:
    with store.open("fp1", settings={"region": "IN", "sid": "HX1"}) as j:
        assert j.run_number == 1
        j.begin_batch("b1", [(2, "+919812345678"), (3, "+919812345679")])
        j.finish_batch([sent(2, "+919812345678"), failed(3, "+919812345679")])
    with store.open("fp1", settings={"region": "SG"}) as j:
        assert j.run_number == 2
        assert j.settings == {"region": "IN", "sid": "HX1"}  # what the run started with
        assert j.settled_rows() == {2, 3}
        assert j.counts() == {"sent": 1, "failed": 1}
        assert j.outcome(2) == sent(2, "+919812345678")
    assert store.meta().run_number == 2


def test_a_changed_campaign_is_refused_with_what_to_do(store: Backend) -> None:
    store.open("fp1").close()
    with pytest.raises(JournalError) as info:
        store.open("fp2")
    text = str(info.value)
    assert "the campaign or its recipients changed since this run started" in text
    assert "--fresh" in text and "kept aside" in text
    if store.url is None:
        assert "report.csv.journal" in text
    else:  # the run is named, and where it is, without the password
        assert str(KEY) in text and "127.0.0.1" in text and "***" in text
        assert "pg-Secret" not in text


def test_fresh_keeps_the_old_journal_aside_and_starts_over(jpath: Path) -> None:
    with Journal.open(jpath, "fp1") as j:
        j.begin_batch("b1", [(2, "+6591234567")])
        j.finish_batch([sent(2, "+6591234567")])
    with Journal.open(jpath, "fp2", fresh=True) as j:
        assert j.run_number == 1 and j.settled_rows() == set()
        aside = j.set_aside
    assert aside is not None and aside.name.startswith("report.csv.journal.")
    assert aside.name.endswith(".old")
    # The old run is intact and self-contained (its WAL was folded in before the move).
    assert not Path(f"{aside}-wal").exists()
    with Journal.open(aside, "fp1") as old:
        assert old.settled_rows() == {2}
    # A second --fresh in the same second does not overwrite the first one set aside.
    with Journal.open(jpath, "fp3", fresh=True) as j:
        assert j.set_aside is not None and j.set_aside != aside
    assert aside.exists()


def test_fresh_starts_over_and_keeps_the_old_run(store: Backend) -> None:
    with store.open("fp1") as j:
        j.begin_batch("b1", [(2, "+6591234567")])
        j.finish_batch([sent(2, "+6591234567")])
    with store.open("fp2", fresh=True) as j:
        assert j.run_number == 1 and j.settled_rows() == set()
        assert j.fingerprint == "fp2"
    with store.open("fp2") as j:
        assert j.run_number == 2
    if store.url is not None:  # the old run is archived with its rows, not deleted
        assert store.sql("SELECT r.fingerprint, count(w.*) FROM campaign_runs r JOIN "
                         "campaign_rows w ON w.run_id = r.id WHERE r.archived IS NOT NULL "
                         "GROUP BY r.fingerprint") == [("fp1", 1)]


def test_rows_in_flight_at_a_stop_become_unknown_at_resume(store: Backend) -> None:
    with store.open("fp") as j:
        j.begin_batch("b1", [(2, "+6591234567"), (3, "+6591234568")])
        j.finish_batch([sent(2, "+6591234567"), sent(3, "+6591234568")])
        j.begin_batch("b2", [(4, "+6591234569"), (5, "+6591234570")])
    with store.open("fp") as j:
        assert j.rows_with_status("in_flight") == {4, 5}
        assert j.mark_in_flight_unknown() == 2
        assert j.rows_with_status("unknown") == {4, 5}
        assert j.settled_rows() == {2, 3}  # unknown is not settled: the user decides
        unknown = j.outcome(4)
        assert unknown is not None and unknown.error == IN_FLIGHT_ERROR
        assert unknown.error_code == "IN_FLIGHT"  # as the crashed run's own report said
        assert unknown.batch_id == "b2" and unknown.phone == "+6591234569"
        assert j.mark_in_flight_unknown() == 0


def test_outcomes_come_back_in_row_order_whatever_the_finish_order(store: Backend) -> None:
    rows = [(r, f"+65912345{r:02d}") for r in (9, 2, 40, 7, 3)]
    with store.open("fp") as j:
        j.begin_batch("b1", rows[:3])
        j.begin_batch("b2", rows[3:])
        j.finish_batch([sent(r, p, "b2") for r, p in rows[3:]])
        j.finish_batch([failed(r, p) for r, p in rows[:3]])
        got = list(j.outcomes_in_row_order())
    assert [o.row for o in got] == [2, 3, 7, 9, 40]
    assert [o.status for o in got] == ["failed", "sent", "sent", "failed", "failed"]


def test_a_row_already_sent_is_never_begun_again(store: Backend) -> None:
    with store.open("fp") as j:
        j.begin_batch("b1", [(2, "+6591234567"), (3, "+6591234568")])
        j.finish_batch([sent(2, "+6591234567"), failed(3, "+6591234568")])
        with pytest.raises(JournalError, match="row 2 was already sent"):
            j.begin_batch("b9", [(3, "+6591234568"), (2, "+6591234567")])
        j.begin_batch("b9", [(3, "+6591234568")])  # a failed row may be retried (--retry-failed)
        assert j.rows_with_status("in_flight") == {3}


def test_the_rows_a_resume_settles_guard_every_request(store: Backend) -> None:
    """A rerun reads the rows it skips once; the check before each request starts from them
    and still catches the rows this run sends."""
    with store.open("fp") as j:
        j.begin_batch("b1", [(2, "+6591234567"), (3, "+6591234568")])
        j.finish_batch([sent(2, "+6591234567"), failed(3, "+6591234568")])
    with store.open("fp") as j:
        j.settle(j.rows_with_status("sent", "failed"))
        for row, phone in ((2, "+6591234567"), (3, "+6591234568")):
            with pytest.raises(JournalError, match=f"row {row} was already sent"):
                j.begin_batch("r2-b1", [(row, phone)])
        j.begin_batch("r2-b2", [(4, "+6591234569")])
        j.finish_batch([sent(4, "+6591234569", "r2-b2")])
        with pytest.raises(JournalError, match="row 4 was already sent"):
            j.begin_batch("r2-b3", [(4, "+6591234569")])


def test_a_released_batch_goes_back_to_not_attempted(store: Backend) -> None:
    with store.open("fp") as j:
        j.begin_batch("b1", [(2, "+6591234567")])
        j.finish_batch([sent(2, "+6591234567")])
        j.begin_batch("b2", [(3, "+6591234568"), (4, "+6591234569")])
        j.release_batch("b2")
        assert j.outcome(3) is None and j.outcome(4) is None
        assert j.settled_rows() == {2}
    with store.open("fp") as j:
        assert j.mark_in_flight_unknown() == 0  # the release was kept at close
        assert [o.row for o in j.outcomes_in_row_order()] == [2]


def test_a_second_run_on_the_same_journal_is_refused(store: Backend,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # PostgreSQL waits LOCK_WAIT_MS (2 s) for the run's lock before it refuses; how long it
    # waits is not what is tested here.
    monkeypatch.setattr("runner.state.pgopen.LOCK_WAIT_MS", 100)
    refused: type[Exception] = JournalError if store.url is None else StateBusy
    said = "in use by another run" if store.url is None else "being sent by another process"
    with store.open("fp"):
        with pytest.raises(refused, match=said):
            store.open("fp")
        with pytest.raises(refused, match=said):
            store.open("fp", fresh=True)
    store.open("fp").close()  # free again once the first run is closed


def test_a_file_that_is_not_a_journal_gets_a_clear_error(jpath: Path) -> None:
    jpath.write_text("row,phone\n2,+6591234567\n" * 50)
    with pytest.raises(JournalError, match=r"report\.csv\.journal: not a run journal"):
        Journal.open(jpath, "fp")
    other = jpath.with_name("other.db")
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(JournalError, match=r"other\.db: not a run journal"):
        Journal.open(other, "fp")
    # --fresh moves the damaged file aside and starts over.
    with Journal.open(jpath, "fp", fresh=True) as j:
        assert j.run_number == 1 and j.set_aside is not None
    assert j.set_aside.read_text().startswith("row,phone")


def test_a_journal_that_cannot_be_opened_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match=r"nowhere.*report\.csv\.journal: cannot open"):
        Journal.open(tmp_path / "nowhere" / "report.csv.journal", "fp")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions and a non-root user")
def test_a_read_only_folder_is_a_journal_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(JournalError, match=r"ro.*report\.csv\.journal"):
            Journal.open(folder / "report.csv.journal", "fp")
    finally:
        folder.chmod(0o700)


def test_secrets_are_refused_in_settings(store: Backend, jpath: Path) -> None:
    with pytest.raises(ValueError, match="no secrets"):
        store.open("fp", settings={"api_key": "s3cr3t"})
    assert not jpath.exists()
    store.open("fp", settings={"api_key_env": "KALEYRA_API_KEY"}).close()
    assert store.meta().settings == {"api_key_env": "KALEYRA_API_KEY"}


CRASH = """
import os, sys
from pathlib import Path
from runner.state import RowOutcome
from tests.stores import Backend
j = Backend("crash", Path(sys.argv[1]), sys.argv[3] or None).open(
    "fp", commit_every=int(sys.argv[2]))
j.begin_batch("b1", [(2, "+6591234567"), (3, "+6591234568")])
j.finish_batch([RowOutcome(2, "+6591234567", "sent", "b1", "m2", attempts=1),
                RowOutcome(3, "+6591234568", "failed", "b1", error_code="E606", attempts=1)])
j.begin_batch("b2", [(4, "+6591234569"), (5, "+6591234570")])
j.finish_batch([RowOutcome(4, "+6591234569", "sent", "b2", "m4", attempts=1),
                RowOutcome(5, "+6591234570", "sent", "b2", "m5", attempts=1)])
os._exit(9)  # like SIGKILL: no flush, no close, no atexit
"""


def crash(store: Backend, commit_every: int) -> None:
    done = subprocess.run([sys.executable, "-c", CRASH, str(store.report), str(commit_every),
                           store.url or ""],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 9, done.stderr


def test_a_killed_run_leaves_answered_rows_settled_and_the_rest_in_flight(
        store: Backend) -> None:
    crash(store, commit_every=1000)
    with store.open("fp") as j:
        assert j.run_number == 2
        assert j.settled_rows() == {2, 3}  # committed by the begin of b2
        assert j.rows_with_status("in_flight") == {4, 5}  # answered, but never committed
        assert j.mark_in_flight_unknown() == 2


def test_results_are_committed_once_enough_are_pending(store: Backend) -> None:
    crash(store, commit_every=2)
    with store.open("fp") as j:
        assert j.settled_rows() == {2, 3, 4, 5}
        assert j.rows_with_status("in_flight") == set()


# -- fingerprint -------------------------------------------------------------------------------


def make_campaign(tmp_path: Path) -> Campaign:
    source = tmp_path / "people.csv"
    if not source.exists():
        source.write_text("phone,name\n+919812345678,Asha\n", encoding="utf-8")
        (tmp_path / "stop1.csv").write_text("+919812345670\n", encoding="utf-8")
        (tmp_path / "stop2.csv").write_text("+919812345671\n", encoding="utf-8")
    return Campaign(
        path=tmp_path / "c.yaml", name="diwali", account=Account("IN", "HX1"),
        message=MessageSpec("KLRHXA", "MKT", True, "Hi {name}"),
        recipients=RecipientsSpec(source, default_country="IN",
                                  exclude=(tmp_path / "stop1.csv", tmp_path / "stop2.csv")),
    )


def test_fingerprint_follows_what_is_sent_and_to_whom(tmp_path: Path) -> None:
    base = make_campaign(tmp_path)
    fp = fingerprint(base)
    assert fp == fingerprint(make_campaign(tmp_path))
    # Changing how fast or when it is sent keeps the run resumable ...
    calmer = dataclasses.replace(base, sending=SendingSpec(requests_per_second=2, concurrency=1))
    assert fingerprint(calmer) == fp
    swapped = dataclasses.replace(base, recipients=dataclasses.replace(
        base.recipients, exclude=tuple(reversed(base.recipients.exclude))))
    assert fingerprint(swapped) == fp
    # ... changing the message, the sender or the recipients does not.
    reworded = dataclasses.replace(base, message=dataclasses.replace(base.message, body="Hey"))
    assert fingerprint(reworded) != fp
    smaller = dataclasses.replace(base, sending=SendingSpec(batch_size=10))
    assert fingerprint(smaller) != fp
    (tmp_path / "people.csv").write_text("phone,name\n+919812345679,Asha\n", encoding="utf-8")
    assert fingerprint(base) != fp


def test_fingerprint_of_a_missing_csv_is_an_input_error(tmp_path: Path) -> None:
    campaign = make_campaign(tmp_path)
    (tmp_path / "stop2.csv").unlink()
    with pytest.raises(InputError, match=r"stop2\.csv: cannot read"):
        fingerprint(campaign)


def test_a_failed_row_resent_and_left_in_flight_reads_unknown_not_failed(
        store: Backend) -> None:
    with store.open("fp") as j:
        j.begin_batch("r1-b1", [(2, "+6591234567"), (3, "+6591234568")])
        j.finish_batch([failed(2, "+6591234567", "r1-b1"), sent(3, "+6591234568", "r1-b1")])
    with store.open("fp") as j:  # --retry-failed: row 2 goes out again, then a crash
        j.begin_batch("r2-b1", [(2, "+6591234567")])
        assert j.rows_with_status("in_flight") == {2}
    with store.open("fp") as j:
        assert j.mark_in_flight_unknown() == 1
        got = j.outcome(2)
        assert got is not None and (got.status, got.batch_id) == ("unknown", "r2-b1")
        assert j.counts() == {"unknown": 1, "sent": 1}
    with store.open("fp") as j:  # the batch was closed: a later read keeps "unknown"
        assert j.mark_in_flight_unknown() == 0
        assert j.counts() == {"unknown": 1, "sent": 1}


def test_a_journal_of_schema_1_is_resumed(jpath: Path) -> None:
    import sqlite3

    with Journal.open(jpath, "fp") as j:
        j.begin_batch("b1", [(2, "+6591234567")])
        j.finish_batch([sent(2, "+6591234567")])
    conn = sqlite3.connect(jpath, isolation_level=None)  # as the first release wrote it
    conn.execute("DROP TABLE batches")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with Journal.open(jpath, "fp") as j:
        assert j.run_number == 2
        j.begin_batch("r2-b1", [(3, "+6591234568")])
        assert j.rows_with_status("sent", "in_flight") == {2, 3}
        with pytest.raises(JournalError, match="row 2 was already sent"):
            j.begin_batch("r2-b2", [(2, "+6591234567")])


@pytest.mark.parametrize("read_first", [False, True])
def test_a_released_retry_leaves_the_earlier_answer_as_it_was(store: Backend,
                                                               read_first: bool) -> None:
    with store.open("fp") as j:
        j.begin_batch("r1-b1", [(2, "+6591234567")])
        j.finish_batch([failed(2, "+6591234567", "r1-b1")])
    with store.open("fp") as j:  # --retry-failed, stopped while backing off
        j.begin_batch("r2-b1", [(2, "+6591234567")])
        if read_first:  # a read in between must not change what the release leaves
            assert j.rows_with_status("in_flight") == {2}
            assert j.counts() == {"in_flight": 1}
        j.release_batch("r2-b1")
        got = j.outcome(2)
        assert got is not None and (got.status, got.batch_id) == ("failed", "r1-b1")
    with store.open("fp") as j:
        assert j.mark_in_flight_unknown() == 0
        assert j.rows_with_status("failed") == {2}
