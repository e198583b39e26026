"""Shared state: `campaign send --state postgresql://...` for real against the sandbox and a
throwaway PostgreSQL (tests/pgcluster.py); and the file journal's lost-state guard. The runs that
are killed, stopped or raced are subprocesses; the reruns after them, and runs that stand alone,
go through the same CLI in the test process (``send_in_process``).

The run lives in the database, keyed by campaign name, region and SID: a rerun from another,
empty folder that holds only the campaign and its CSV resumes it. From the sandbox's own record,
nobody ever gets two messages; the database's password never appears anywhere.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from runner.sandbox import Faults
from tests.integration.helpers import (
    REPO,
    CampaignFiles,
    accepted_requests,
    answer_at_once,
    assert_accounted,
    assert_at_most_once,
    assert_no_secret,
    deliveries,
    finish,
    make_campaign,
    report_rows,
    run_send,
    sandbox,
    send_env,
    send_in_process,
    start_send,
    statuses,
    wait_until,
)
from tests.pgcluster import PASSWORD

EXIT_OK, EXIT_INVALID, EXIT_INCOMPLETE, EXIT_STOPPED = 0, 1, 3, 75


def moved(files: CampaignFiles, folder: Path) -> CampaignFiles:
    """The campaign and its CSV alone in a new folder (a fresh CI runner's checkout)."""
    folder.mkdir(parents=True)
    shutil.copy(files.yaml, folder / files.yaml.name)
    shutil.copy(files.csv, folder / files.csv.name)
    return CampaignFiles(folder / files.yaml.name, folder / files.csv.name,
                         folder / files.report.name, files.phones)


def no_password(*texts: str, folders: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert PASSWORD not in text
    for folder in folders:
        assert_no_secret(folder=folder, secret=PASSWORD)


def test_sigkill_then_a_rerun_from_an_empty_folder_resumes_and_sends_nobody_twice(
        tmp_path: Path, pg_url: str) -> None:
    files = make_campaign(tmp_path / "runner-1", 2000, sending={
        "batch_size": 50, "concurrency": 4, "requests_per_second": 40})
    with sandbox(faults=Faults(latency=0.15)) as sb:
        proc = start_send(files, sb.base_url, "--state", pg_url)
        wait_until(lambda: accepted_requests(sb.record) >= 12, proc=proc,
                   what="12 requests accepted")
        proc.send_signal(signal.SIGKILL)
        killed = finish(proc)
        assert killed.code == -signal.SIGKILL
        before = Counter(deliveries(sb.record))
        assert 0 < sum(before.values()) < 2000

        elsewhere = moved(files, tmp_path / "runner-2")  # no report, no journal: only the state
        rerun = send_in_process(elsewhere, sb.base_url, "--state", pg_url, timeout=60)
        assert rerun.code == EXIT_INCOMPLETE, rerun.stderr
        got = assert_at_most_once(sb.record)
        rows = report_rows(elsewhere)
        assert_accounted(elsewhere, rows)
        counts = statuses(rows)
        assert 0 < counts["unknown"] <= 4 * 50, counts  # at most the batches in flight
        assert counts["unknown"] % 50 == 0, counts
        assert counts["sent"] + counts["unknown"] == 2000, counts
        assert {r["phone"] for r in rows if r["status"] == "unknown"} <= set(before)
        assert set(got) == set(files.phones)
        assert not elsewhere.journal.exists()  # the state is in the database, not beside it

        again = send_in_process(moved(files, tmp_path / "runner-3"), sb.base_url, "--state", pg_url)
        assert again.code == EXIT_INCOMPLETE, again.stderr  # a finished run: nothing sent
        assert deliveries(sb.record) == got
    no_password(killed.stderr, rerun.stdout, rerun.stderr, again.stdout, again.stderr,
                folders=(tmp_path,))


def test_a_second_concurrent_send_sends_nothing_and_exits_75(tmp_path: Path,
                                                             pg_url: str) -> None:
    files = make_campaign(tmp_path / "a", 2000, sending={"batch_size": 50, "concurrency": 2})
    other = moved(files, tmp_path / "b")
    # Answers after 1 s hold the first run for 20 s, whatever the second's start-up takes; once
    # the second is refused they come at once.
    with sandbox(faults=Faults(latency=1.0)) as sb:
        first = start_send(files, sb.base_url, "--state", pg_url)
        wait_until(lambda: accepted_requests(sb.record) >= 1, proc=first, what="a request")
        env = send_env(sb.base_url) | {"CAMPAIGN_STATE": pg_url}  # the variable, this time
        second = run_send(other, sb.base_url, env=env)
        assert first.poll() is None, "the first run ended before the second was refused"
        answer_at_once(sb)
        assert second.code == EXIT_STOPPED, second.stderr
        assert "being sent by another process" in second.stderr
        assert "nothing sent" in second.stderr and "Traceback" not in second.stderr
        done = finish(first, timeout=60)
        got = assert_at_most_once(sb.record)
    assert done.code == EXIT_OK, done.stderr
    assert statuses(report_rows(files)) == Counter(sent=2000)
    assert set(got) == set(files.phones)  # each once: the second run added nobody
    assert not other.report.exists()
    no_password(second.stdout, second.stderr, done.stderr, folders=(tmp_path,))


def test_the_database_stopped_mid_run_stops_it_with_75_and_a_rerun_finishes(
        tmp_path: Path, pg_url: str, pg_cluster: Any) -> None:
    files = make_campaign(tmp_path, 2000, sending={"batch_size": 50, "concurrency": 4,
                                                   "requests_per_second": 40})
    with sandbox(faults=Faults(latency=0.1)) as sb:
        proc = start_send(files, sb.base_url, "--state", pg_url)
        wait_until(lambda: accepted_requests(sb.record) >= 8, proc=proc, what="8 requests")
        pg_cluster.stop_server("fast")
        try:
            stopped = finish(proc, timeout=30)
            sent_then = Counter(deliveries(sb.record))
        finally:
            pg_cluster.start_server()
        assert stopped.code == EXIT_STOPPED, stopped.stderr
        assert "lost the state store" in stopped.stderr and "rerun" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert sum(sent_then.values()) < 2000  # it stopped: no new batches after the loss

        rerun = send_in_process(files, sb.base_url, "--state", pg_url, timeout=60)
        assert rerun.code in (EXIT_OK, EXIT_INCOMPLETE), rerun.stderr
        got = assert_at_most_once(sb.record)
        rows = report_rows(files)
        assert_accounted(files, rows)
        counts = statuses(rows)
        assert counts["unknown"] <= 4 * 50, counts  # only what was in flight at the loss
        assert counts["sent"] + counts["unknown"] == 2000, counts
        assert set(got) == set(files.phones)
    no_password(stopped.stdout, stopped.stderr, rerun.stdout, rerun.stderr,
                folders=(tmp_path,))


def test_an_unreachable_database_sends_nothing_and_exits_75(tmp_path: Path,
                                                            pg_cluster: Any) -> None:
    from tests.integration.helpers import free_port

    files = make_campaign(tmp_path, 100)
    url = f"postgresql://runner:{PASSWORD}@127.0.0.1:{free_port()}/campaigns"
    with sandbox() as sb:
        done = send_in_process(files, sb.base_url, "--state", url)
        assert sb.record.requests == []
    assert done.code == EXIT_STOPPED, done.stderr
    assert "cannot reach the state store postgresql://runner:***@127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr
    no_password(done.stdout, done.stderr, folders=(tmp_path,))


def test_status_reads_the_run_s_settings_from_the_state(tmp_path: Path, pg_url: str) -> None:
    files = make_campaign(tmp_path / "a", 120)
    with sandbox() as sb:
        sent = send_in_process(files, sb.base_url, "--state", pg_url)
        assert sent.code == EXIT_OK, sent.stderr
        report = tmp_path / "elsewhere" / "report.csv"
        report.parent.mkdir()
        shutil.copy(files.report, report)  # the report alone, no journal beside it
        done = subprocess.run(
            [sys.executable, "-m", "runner", "status", str(report), "--state", pg_url],
            cwd=REPO, env=send_env(sb.base_url), capture_output=True, text=True, timeout=60,
            check=False)
    assert done.returncode in (EXIT_OK, EXIT_INCOMPLETE), done.stderr
    assert "delivery  120 sent rows" in done.stderr
    assert {"delivery_status"} <= set(report_rows_at(report)[0])
    no_password(done.stdout, done.stderr, folders=(tmp_path,))


def report_rows_at(report: Path) -> list[dict[str, str]]:
    from runner.reportread import read_report

    return list(read_report(report))


# --------------------------------------------------------------------------- the file journal


def test_a_report_without_its_journal_is_refused_and_can_be_recovered(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 2000, sending={"batch_size": 50, "concurrency": 2,
                                                   "requests_per_second": 20})
    with sandbox(faults=Faults(latency=0.1)) as sb:
        proc = start_send(files, sb.base_url)
        wait_until(lambda: accepted_requests(sb.record) >= 3, proc=proc, what="3 requests")
        proc.send_signal(signal.SIGTERM)
        assert finish(proc).code == EXIT_STOPPED
        first = Counter(deliveries(sb.record))
        files.journal.unlink()  # a CI runner's workspace, gone
        report_before = files.report.read_bytes()

        refused = send_in_process(files, sb.base_url)
        assert refused.code == EXIT_INVALID, refused.stderr
        assert "--recover-from-report" in refused.stderr and "--fresh" in refused.stderr
        assert "Nothing sent" in refused.stderr and "Traceback" not in refused.stderr
        assert deliveries(sb.record) == first
        assert files.report.read_bytes() == report_before

        recovered = send_in_process(files, sb.base_url, "--recover-from-report", timeout=60)
        assert recovered.code == EXIT_OK, recovered.stderr
        got = assert_at_most_once(sb.record)
        rows = report_rows(files)
        assert_accounted(files, rows)
        assert statuses(rows) == Counter(sent=2000)
        assert set(got) == set(files.phones)
