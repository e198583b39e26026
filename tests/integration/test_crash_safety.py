"""Fault injection: `campaign send` killed, stopped, or talking to a misbehaving server.

Every test runs the real command against a sandbox on 127.0.0.1 and checks, from the sandbox's
own record, that nobody received two messages, and from the report, that every row of the CSV is
accounted for, once and in order. What is killed, stopped by a signal or raced by a second run is
a real `python -m runner send` subprocess; the rest (a misbehaving server, a rerun after a kill)
runs the same command in the test process (``send_in_process``), which spares the interpreter's
start-up but still goes through the CLI, its exit codes and its messages.

Timing bounds leave out the child's start-up (interpreter, imports, reading the campaign: over a
second on a busy machine): they are measured from the signal the test sends, or from the first
request the sandbox saw, and they sit between what the code should take and what a wrong run
would take (the server's slow answers, the grace period), with room for a loaded machine.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner.sandbox import Faults
from tests.integration.helpers import (
    CampaignFiles,
    accepted_requests,
    answer_at_once,
    assert_accounted,
    assert_at_most_once,
    assert_no_secret,
    assert_sent_rows_match,
    deliveries,
    finish,
    free_port,
    make_campaign,
    report_rows,
    run_send,
    sandbox,
    send_in_process,
    start_send,
    statuses,
    wait_until,
)

EXIT_OK, EXIT_INVALID, EXIT_INCOMPLETE, EXIT_STOPPED = 0, 1, 3, 75


def _check_run(files: CampaignFiles, record_deliveries: Counter[str]) -> list[dict[str, str]]:
    rows = report_rows(files)
    assert_accounted(files, rows)
    assert_sent_rows_match(rows, record_deliveries)
    return rows


# --------------------------------------------------------------------------- killed


def test_sigkill_mid_run_then_rerun_sends_nobody_twice(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 2000, sending={"batch_size": 50, "concurrency": 4,
                                                    "requests_per_second": 40})
    with sandbox(faults=Faults(latency=0.15)) as sb:
        proc = start_send(files, sb.base_url)
        wait_until(lambda: accepted_requests(sb.record) >= 12, proc=proc,
                   what="12 requests accepted")
        proc.send_signal(signal.SIGKILL)
        killed = finish(proc)
        assert killed.code == -signal.SIGKILL
        before = Counter(deliveries(sb.record))
        assert 0 < sum(before.values()) < 2000  # really killed half way

        rerun = run_send(files, sb.base_url)
        assert rerun.code == EXIT_INCOMPLETE, rerun.stderr
        assert "--resend-unknown" in rerun.stderr
        got = assert_at_most_once(sb.record)
        rows = _check_run(files, got)
        counts = statuses(rows)
        # Only the batches in flight at the kill are unknown: at most `concurrency` of them.
        assert 0 < counts["unknown"] <= 4 * 50, counts
        assert counts["unknown"] % 50 == 0, counts  # whole batches, never part of one
        assert counts["sent"] + counts["unknown"] == 2000, counts
        unknown = {r["phone"] for r in rows if r["status"] == "unknown"}
        assert unknown <= set(before)  # in flight when killed: only rows of the first run

        # Rerunning again does not touch the unknown rows.
        again = run_send(files, sb.base_url)
        assert again.code == EXIT_INCOMPLETE
        assert deliveries(sb.record) == got

        resend = run_send(files, sb.base_url, "--resend-unknown")
        assert resend.code == EXIT_OK, resend.stderr
        final = deliveries(sb.record)
        rows = report_rows(files)
        assert_accounted(files, rows)
        assert statuses(rows) == Counter(sent=2000)
        assert set(final) == set(files.phones)
        # Asked for explicitly: only rows that were unknown may have a second message.
        assert {n for n, c in final.items() if c > 1} <= unknown
        assert max(final.values()) <= 2
    assert_no_secret(killed.stderr, rerun.stdout, rerun.stderr, resend.stdout, resend.stderr,
                     folder=tmp_path)


# --------------------------------------------------------------------------- clean stops


def test_sigterm_stops_within_seconds_with_a_full_report_and_the_rerun_finishes(
        tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 2000, sending={"batch_size": 50, "concurrency": 4,
                                                    "requests_per_second": 40})
    with sandbox(faults=Faults(latency=0.3)) as sb:
        proc = start_send(files, sb.base_url)
        wait_until(lambda: accepted_requests(sb.record) >= 8, proc=proc, what="8 requests")
        proc.send_signal(signal.SIGTERM)
        stopped = finish(proc, timeout=10)
        assert stopped.code == EXIT_STOPPED, stopped.stderr
        # From the signal: in-flight requests take 0.3 s; not the 5 s grace, nor the ~50 s left.
        assert stopped.seconds < 4.0
        assert "rerun" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        got = assert_at_most_once(sb.record)
        rows = _check_run(files, got)
        counts = statuses(rows)
        # Requests in flight were let finish: nothing is unknown, the rest is pending.
        assert counts["unknown"] == 0, counts
        assert counts["pending"] > 0 and counts["sent"] > 0, counts
        assert counts["sent"] == sum(got.values()), counts
        assert set(counts) == {"sent", "pending"}

        answer_at_once(sb)  # the slow answers made the stop's point; the rerun needs none
        rerun = run_send(files, sb.base_url)
        assert rerun.code == EXIT_OK, rerun.stderr
        got = assert_at_most_once(sb.record)
        rows = _check_run(files, got)
        assert statuses(rows) == Counter(sent=2000)
        assert set(got) == set(files.phones)
    assert_no_secret(stopped.stdout, stopped.stderr, rerun.stdout, rerun.stderr,
                     folder=tmp_path)


def test_a_second_sigint_stops_at_once_and_loses_nothing(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 600, sending={"batch_size": 50, "concurrency": 4})
    # Answers take 10 s: longer than the test is willing to wait for the first Ctrl-C alone.
    with sandbox(faults=Faults(latency=10.0)) as slow:
        proc = start_send(files, slow.base_url)
        wait_until(lambda: accepted_requests(slow.record) >= 4, proc=proc,
                   what="4 requests in flight")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)  # the first Ctrl-C has been handled: the run is draining
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        stopped = finish(proc, timeout=10)
        first = Counter(deliveries(slow.record))
    assert stopped.code == EXIT_STOPPED, stopped.stderr
    assert stopped.seconds < 4.0  # from the 2nd Ctrl-C: not the 5 s grace, not the 10 s answers
    assert "Traceback" not in stopped.stderr
    rows = _check_run(files, first)
    counts = statuses(rows)
    # The 4 requests were accepted but never answered: unknown, whole batches; the rest pending.
    assert counts == Counter(unknown=200, pending=400), counts

    with sandbox() as fast:  # the same campaign, to a server that answers at once
        rerun = send_in_process(files, fast.base_url)
        second = deliveries(fast.record)
    assert rerun.code == EXIT_INCOMPLETE, rerun.stderr
    assert not set(first) & set(second)  # the unknown rows were not sent again
    assert max((first + second).values()) == 1
    rows = _check_run(files, first + second)
    assert statuses(rows) == Counter(sent=400, unknown=200)


# --------------------------------------------------------------------------- a bad server


def test_connections_dropped_after_the_request_was_read_are_unknown_never_resent(
        tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 1000, sending={"batch_size": 50, "concurrency": 4})
    with sandbox(faults=Faults(every_drop_after=3)) as sb:
        first = send_in_process(files, sb.base_url)
        assert first.code == EXIT_INCOMPLETE, first.stderr
        got = assert_at_most_once(sb.record)
        rows = _check_run(files, got)
        counts = statuses(rows)
        dropped = sum(1 for r in sb.record.requests if r.fault == "drop_after")
        assert dropped == 20 // 3
        assert counts == Counter(sent=1000 - 50 * dropped, unknown=50 * dropped), counts
        # The server accepted every request, dropped ones included: each number exactly once.
        assert set(got) == set(files.phones)

        again = send_in_process(files, sb.base_url)
        assert again.code == EXIT_INCOMPLETE
        assert deliveries(sb.record) == got
        assert statuses(report_rows(files)) == counts
    assert_no_secret(first.stdout, first.stderr, folder=tmp_path)


def test_connections_dropped_before_accepting_are_unknown_until_resent(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 1000, sending={"batch_size": 50, "concurrency": 4})
    with sandbox(faults=Faults(every_drop_before=4)) as sb:
        first = send_in_process(files, sb.base_url)
        assert first.code == EXIT_INCOMPLETE, first.stderr
        got = assert_at_most_once(sb.record)
        rows = _check_run(files, got)
        counts = statuses(rows)
        assert counts == Counter(sent=1000 - 5 * 50, unknown=5 * 50), counts
        unknown = {r["phone"] for r in rows if r["status"] == "unknown"}
        assert not unknown & set(got)  # the client cannot tell, but these never arrived

        # Four batches to resend; the sandbox's 24th request (the 4th resend) is dropped again.
        resend = send_in_process(files, sb.base_url, "--resend-unknown")
        got = assert_at_most_once(sb.record)
        rows = _check_run(files, got)
        assert statuses(rows) == Counter(sent=1000 - 50, unknown=50)
        assert resend.code == EXIT_INCOMPLETE, resend.stderr


def test_a_429_storm_is_waited_out_honouring_retry_after(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 300, sending={"batch_size": 50, "concurrency": 1,
                                                   "requests_per_second": 100,
                                                   "max_attempts": 3})
    with sandbox(faults=Faults(every_429=2, retry_after=0.4)) as sb:
        done = send_in_process(files, sb.base_url)
        log = list(sb.record.requests)
        got = assert_at_most_once(sb.record)
    assert done.code == EXIT_OK, done.stderr
    rows = _check_run(files, got)
    assert statuses(rows) == Counter(sent=300)
    assert set(got) == set(files.phones)
    refused = [i for i, r in enumerate(log) if r.status == 429]
    assert len(refused) == 5
    for i in refused:  # nothing went out before the server's Retry-After had passed
        assert log[i + 1].at - log[i].at >= 0.4 - 0.02, (log[i], log[i + 1])
    assert {r["attempts"] for r in rows} == {"1", "2"}


def test_answers_slower_than_the_timeout_are_unknown_and_never_resent(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 500, sending={"batch_size": 50, "concurrency": 4,
                                                   "timeout": 0.3})
    with sandbox(faults=Faults(slow_every=4, slow_latency=5.0)) as sb:
        first = send_in_process(files, sb.base_url)
        ended = time.monotonic()  # the sandbox's clock (same process)
        assert first.code == EXIT_INCOMPLETE, first.stderr
        # The client gave up after 0.3 s: it was gone before any slow answer (5 s) could come.
        # From the first request's arrival, so the child's start-up is left out.
        assert ended - min(r.at for r in sb.record.requests) < 5.0
        got = assert_at_most_once(sb.record)
        rows = _check_run(files, got)
        assert statuses(rows) == Counter(sent=400, unknown=100)
        assert set(got) == set(files.phones)  # the slow requests were accepted all the same
        assert {r["error_code"] for r in rows if r["status"] == "unknown"} == {"TIMEOUT"}

        again = send_in_process(files, sb.base_url)
        assert again.code == EXIT_INCOMPLETE
        assert deliveries(sb.record) == got  # never resent
    assert_no_secret(first.stdout, first.stderr, folder=tmp_path)


def test_a_server_that_is_down_at_start_and_comes_back(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 400, sending={"batch_size": 50, "concurrency": 2,
                                                   "max_attempts": 20})
    port = free_port()
    proc = start_send(files, f"http://127.0.0.1:{port}")
    wait_until(files.journal.exists, proc=proc, what="the run to start")
    time.sleep(0.6)  # the outage: connections are refused meanwhile
    assert proc.poll() is None  # still trying
    with sandbox(port=port) as sb:
        done = finish(proc, timeout=12)
        got = assert_at_most_once(sb.record)
    assert done.code == EXIT_OK, done.stderr
    rows = _check_run(files, got)
    assert statuses(rows) == Counter(sent=400)
    assert set(got) == set(files.phones)
    assert max(int(r["attempts"]) for r in rows) > 1  # the refused attempts were retried


# --------------------------------------------------------------------------- resume rules


def test_a_changed_campaign_is_refused_and_fresh_starts_over(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 1000, sending={"batch_size": 50, "concurrency": 2,
                                                    "requests_per_second": 20})
    with sandbox(faults=Faults(latency=0.1)) as sb:
        proc = start_send(files, sb.base_url)
        wait_until(lambda: accepted_requests(sb.record) >= 3, proc=proc, what="3 requests")
        proc.send_signal(signal.SIGTERM)
        assert finish(proc).code == EXIT_STOPPED
        partial = Counter(deliveries(sb.record))
        report_before = files.report.read_bytes()

        text = files.yaml.read_text(encoding="utf-8")
        files.yaml.write_text(text.replace("has shipped", "is on its way"), encoding="utf-8")
        refused = send_in_process(files, sb.base_url)
        assert refused.code == EXIT_INVALID
        assert "changed" in refused.stderr and "--fresh" in refused.stderr
        assert "report.csv.journal" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert deliveries(sb.record) == partial  # nothing sent
        assert files.report.read_bytes() == report_before  # the report is left as it was

        fresh = send_in_process(files, sb.base_url, "--fresh")
        assert fresh.code == EXIT_OK, fresh.stderr
        rows = report_rows(files)
        assert_accounted(files, rows)
        assert statuses(rows) == Counter(sent=1000)
        after = deliveries(sb.record)
        # Starting over sends the new message to everybody, once.
        assert after - partial == Counter(dict.fromkeys(files.phones, 1))
    aside = list(tmp_path.glob("report.csv.journal.*.old"))
    assert len(aside) == 1
    with sqlite3.connect(aside[0]) as old:
        (sent,) = old.execute("SELECT count(*) FROM rows WHERE status = 'sent'").fetchone()
    assert sent == sum(partial.values())  # the old run's record is kept, not deleted


def test_outside_the_window_nothing_is_sent_and_it_exits_75(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    window = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "timezone": "UTC"}
    files = make_campaign(tmp_path, 300, sending={"window": window})
    with sandbox() as sb:
        closed = send_in_process(files, sb.base_url)
        assert closed.code == EXIT_STOPPED, closed.stderr
        assert sb.record.requests == []  # not a single request
    assert "window" in closed.stderr and window["start"] in closed.stderr
    assert "Traceback" not in closed.stderr
    rows = report_rows(files)
    assert_accounted(files, rows)
    assert statuses(rows) == Counter(pending=300)


def test_sigterm_during_a_retry_after_wait_stops_at_once_and_keeps_the_batch_pending(
        tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 300, sending={"batch_size": 50, "concurrency": 1,
                                                   "requests_per_second": 100})
    # The 2nd request is told to come back in 30 s: that batch is proven unsent meanwhile.
    with sandbox(faults=Faults(every_429=2, retry_after=30)) as sb:
        proc = start_send(files, sb.base_url)
        wait_until(lambda: any(r.status == 429 for r in list(sb.record.requests)), proc=proc,
                   what="a 429")
        proc.send_signal(signal.SIGTERM)
        stopped = finish(proc, timeout=10)
        first = Counter(deliveries(sb.record))
    assert stopped.code == EXIT_STOPPED, stopped.stderr
    assert stopped.seconds < 4.0  # from the signal: not the 30 s Retry-After, nor the 5 s grace
    rows = _check_run(files, first)
    assert statuses(rows) == Counter(sent=50, pending=250)  # the refused batch is not unknown

    with sandbox() as sb:
        rerun = send_in_process(files, sb.base_url)
        second = deliveries(sb.record)
    assert rerun.code == EXIT_OK, rerun.stderr
    assert max((first + second).values()) == 1
    assert statuses(report_rows(files)) == Counter(sent=300)


def test_a_signal_while_waiting_for_the_window_stops_cleanly_with_exit_75(
        tmp_path: Path) -> None:
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    window = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "timezone": "UTC"}
    files = make_campaign(tmp_path, 300, sending={"window": window})
    log = tmp_path / "stderr.txt"
    with sandbox() as sb:
        proc = start_send(files, sb.base_url, "--wait", stderr_to=log)
        # --wait says what it waits for, so someone watching a CI log knows why nothing moves.
        wait_until(lambda: "waiting" in log.read_text(encoding="utf-8"), proc=proc,
                   what="the waiting message")
        assert window["start"] in log.read_text(encoding="utf-8")
        proc.send_signal(signal.SIGTERM)
        stopped = finish(proc, timeout=10)
        assert sb.record.requests == []
    assert stopped.code == EXIT_STOPPED, stopped.stderr
    assert stopped.seconds < 4.0  # from the signal: not the hours to the window, nor the grace
    assert "Traceback" not in stopped.stderr
    rows = report_rows(files)
    assert_accounted(files, rows)
    assert statuses(rows) == Counter(pending=300)


def test_a_stop_that_lets_the_last_batches_finish_is_a_finished_run(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 100, sending={"batch_size": 50, "concurrency": 2})
    with sandbox(faults=Faults(latency=0.8)) as sb:
        proc = start_send(files, sb.base_url)
        wait_until(lambda: accepted_requests(sb.record) >= 2, proc=proc,
                   what="both batches in flight")
        proc.send_signal(signal.SIGTERM)  # nothing left to stop: both batches are in flight
        done = finish(proc, timeout=10)
        got = assert_at_most_once(sb.record)
    rows = _check_run(files, got)
    assert statuses(rows) == Counter(sent=100)
    # Everything was sent: not 75 with "rerun to resume", which a CI job would obey for nothing.
    assert done.code == EXIT_OK, done.stderr
    assert "rerun" not in done.stderr


def test_requests_that_outlast_the_grace_period_are_cut_off_and_reported_unknown(
        tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 300, sending={"batch_size": 50, "concurrency": 2})
    with sandbox(faults=Faults(latency=20.0)) as slow:
        proc = start_send(files, slow.base_url)
        wait_until(lambda: accepted_requests(slow.record) >= 2, proc=proc,
                   what="2 requests in flight")
        proc.send_signal(signal.SIGTERM)
        stopped = finish(proc, timeout=15)
        first = Counter(deliveries(slow.record))
    assert stopped.code == EXIT_STOPPED, stopped.stderr
    # From the signal: the grace period (5 s), not the 20 s answers.
    assert 4.5 < stopped.seconds < 12.0
    rows = _check_run(files, first)
    assert statuses(rows) == Counter(unknown=100, pending=200)

    with sandbox() as fast:
        rerun = send_in_process(files, fast.base_url)
        second = deliveries(fast.record)
    assert rerun.code == EXIT_INCOMPLETE, rerun.stderr
    assert max((first + second).values()) == 1
    assert statuses(report_rows(files)) == Counter(sent=200, unknown=100)


def test_a_second_run_on_the_same_report_is_refused_while_the_first_runs(
        tmp_path: Path) -> None:
    # Two batches at a time, each answered after 1 s: the first run would take 6 s, so it is
    # still in progress when the second has started up, even on a loaded machine (start-up
    # alone can take 2 s there). Once the second is refused, the answers come at once.
    files = make_campaign(tmp_path, 600, sending={"batch_size": 50, "concurrency": 2})
    with sandbox(faults=Faults(latency=1.0)) as sb:
        first = start_send(files, sb.base_url)
        wait_until(lambda: accepted_requests(sb.record) >= 1, proc=first, what="a request")
        second = run_send(files, sb.base_url)
        assert first.poll() is None, "the first run ended before the second was refused"
        answer_at_once(sb)
        assert second.code == EXIT_INVALID, second.stderr
        assert "in use by another run" in second.stderr
        assert "Traceback" not in second.stderr
        done = finish(first)
        got = assert_at_most_once(sb.record)
    assert done.code == EXIT_OK, done.stderr
    rows = _check_run(files, got)
    assert statuses(rows) == Counter(sent=600)


def test_the_window_closing_mid_run_stops_like_sigterm(tmp_path: Path) -> None:
    # In-process, to put the window's end one second into the run: its clock is injected.
    from runner.checker import check_campaign
    from runner.endpoint import Endpoint, Secret
    from runner.run import SendOptions, send_campaign
    from tests.integration.helpers import TEST_API_KEY

    files = make_campaign(tmp_path, 2000, sending={
        "batch_size": 50, "concurrency": 2, "requests_per_second": 10,
        "window": {"start": "09:00", "end": "10:01", "timezone": "UTC"}})
    check = check_campaign(files.yaml)
    assert check.campaign is not None and check.summary is not None
    started = time.monotonic()
    base = datetime(2026, 11, 25, 10, 0, 59, tzinfo=UTC)  # the window closes in 1 s

    def now() -> datetime:
        return base + timedelta(seconds=time.monotonic() - started)

    with sandbox(faults=Faults(latency=0.1)) as sb:
        endpoint = Endpoint(sb.base_url, "SANDBOX", Secret(TEST_API_KEY))
        outcome = send_campaign(check.campaign, endpoint, SendOptions(report=files.report),
                                to_send=check.summary.valid, now=now)
        got = assert_at_most_once(sb.record)
        last = max(r.at for r in sb.record.requests)
    assert outcome.stopped
    # Nothing went after the window closed at 1 s (but what was in flight); the whole run at
    # 10 a second would have taken 4 s.
    assert last - started < 2.5
    rows = _check_run(files, got)
    counts = statuses(rows)
    assert counts["unknown"] == 0 and counts["sent"] > 0 and counts["pending"] > 0, counts
    assert counts["sent"] == sum(got.values())


# --------------------------------------------------------------------------- ambiguous answers


def test_errors_after_processing_are_unknown_and_nobody_gets_two(tmp_path: Path) -> None:
    # The sandbox accepts the numbers, then answers 500 (E103), 502 or 504, as a gateway that
    # timed out waiting for a server that had done the work.
    files = make_campaign(tmp_path, 1000, sending={"batch_size": 50, "concurrency": 4,
                                                    "on_ambiguous": "mark_unknown"})
    faults = Faults(every_500_after=7, every_502_after=3, every_504_after=5)
    with sandbox(faults=faults) as sb:
        first = send_in_process(files, sb.base_url)
        got = assert_at_most_once(sb.record)  # none of them was retried
        hit = [r for r in sb.record.requests if r.fault]
        assert {r.status for r in hit} == {500, 502, 504}
        rows = _check_run(files, got)
        assert statuses(rows) == Counter(sent=1000 - 50 * len(hit), unknown=50 * len(hit))
        assert set(got) == set(files.phones)  # every number arrived, once
        assert {r["error_code"] for r in rows if r["status"] == "unknown"} == {
            "E103", "HTTP502", "HTTP504"}
        assert first.code == EXIT_INCOMPLETE, first.stderr
        assert "--resend-unknown" in first.stderr

        again = send_in_process(files, sb.base_url)
        assert deliveries(sb.record) == got  # a rerun leaves them alone
        assert again.code == EXIT_INCOMPLETE
    assert_no_secret(first.stdout, first.stderr, folder=tmp_path)


def test_a_redirect_is_not_followed_and_its_batch_is_unknown(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 500, sending={"batch_size": 50, "concurrency": 2})
    with sandbox(faults=Faults(every_redirect=4)) as sb:
        done = send_in_process(files, sb.base_url)
        got = assert_at_most_once(sb.record)
        redirected = [r for r in sb.record.requests if r.fault == "redirect"]
        assert len(redirected) == 2 and len(sb.record.requests) == 10  # nothing followed it
    assert done.code == EXIT_INCOMPLETE, done.stderr
    rows = _check_run(files, got)
    assert statuses(rows) == Counter(sent=400, unknown=100)
    assert {r["error_code"] for r in rows if r["status"] == "unknown"} == {"HTTP307"}


# --------------------------------------------------------------------------- answers without end


def test_a_huge_answer_is_not_read_and_its_batch_is_unknown(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 300, sending={"batch_size": 50, "concurrency": 2})
    huge = 512 << 20
    with sandbox(faults=Faults(every_huge=3, huge_bytes=huge)) as sb:
        done = send_in_process(files, sb.base_url, timeout=30)
        got = assert_at_most_once(sb.record)
        streamed = list(sb.record.streamed)
    assert done.code == EXIT_INCOMPLETE, done.stderr
    assert len(streamed) == 2 and max(streamed) < huge // 8  # the client hung up early
    rows = _check_run(files, got)
    assert statuses(rows) == Counter(sent=200, unknown=100)
    assert {r["error_code"] for r in rows if r["status"] == "unknown"} == {"HUGE_ANSWER"}
    assert set(got) == set(files.phones)  # they were processed: unknown, never failed


async def test_a_huge_answer_leaves_the_clients_memory_flat() -> None:
    import tracemalloc

    import aiohttp

    from runner.endpoint import Endpoint, Secret
    from runner.kaleyra import post_sms
    from runner.sandbox import SandboxServer
    from tests.integration.helpers import TEST_API_KEY

    huge = 64 << 20
    async with SandboxServer(api_key=TEST_API_KEY, faults=Faults(every_huge=1,
                                                                 huge_bytes=huge)) as server:
        endpoint = Endpoint(server.base_url, server.sid, Secret(TEST_API_KEY))
        number = "+919876500001"
        payload = {"to": number, "sender": "KLRHXA", "type": "TXN", "body": "hi"}
        async with aiohttp.ClientSession() as session:
            tracemalloc.start()
            try:
                outcome = await post_sms(session, endpoint, payload, encoding="json",
                                         timeout=10, numbers=[number])
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert outcome.code == "HUGE_ANSWER"  # type: ignore[union-attr]
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MB at the peak"  # the answer was 64 MB
    assert server.record.streamed[0] < huge // 4


def test_an_answer_trickled_out_byte_by_byte_is_cut_off_and_unknown(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 200, sending={"batch_size": 50, "concurrency": 2,
                                                   "timeout": 0.4})
    with sandbox(faults=Faults(every_trickle=2, trickle_interval=0.05)) as sb:
        done = send_in_process(files, sb.base_url)
        got = assert_at_most_once(sb.record)
    # Each byte comes well within the read timeout; the answer as a whole does not.
    assert done.seconds < 4.0, done.stderr
    assert done.code == EXIT_INCOMPLETE, done.stderr
    rows = _check_run(files, got)
    assert statuses(rows) == Counter(sent=100, unknown=100)
    assert {r["error_code"] for r in rows if r["status"] == "unknown"} == {"TIMEOUT"}


def test_a_short_server_keep_alive_turns_no_unsent_request_unknown(tmp_path: Path) -> None:
    # One request every 2 s on a server whose idle connections go stale after 1.5 s: a client
    # reusing them would see each later request dropped unread and have to call it unknown.
    files = make_campaign(tmp_path, 150, sending={"batch_size": 50, "concurrency": 1,
                                                   "requests_per_second": 0.5})
    with sandbox(faults=Faults(keepalive=1.5)) as sb:
        done = send_in_process(files, sb.base_url)
        got = assert_at_most_once(sb.record)
        stale = [r for r in sb.record.requests if r.fault == "stale_connection"]
    assert stale == []
    assert done.code == EXIT_OK, done.stderr
    assert statuses(_check_run(files, got)) == Counter(sent=150)


# --------------------------------------------------------------------------- waits with limits


def test_sigkill_while_a_batch_waits_out_a_429_leaves_it_pending_not_unknown(
        tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 150, sending={"batch_size": 50, "concurrency": 1,
                                                   "requests_per_second": 100})
    log = tmp_path / "stderr.txt"
    with sandbox(faults=Faults(every_429=2, retry_after=60)) as sb:
        proc = start_send(files, sb.base_url, stderr_to=log)
        # The progress line says why nothing moves; by then the batch is out of the journal.
        wait_until(lambda: "Kaleyra asked to wait" in log.read_text(encoding="utf-8"),
                   proc=proc, what="the waiting line")
        assert "waiting 60 s" in log.read_text(encoding="utf-8")
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        first = Counter(deliveries(sb.record))
    assert sum(first.values()) == 50

    with sandbox() as sb:
        rerun = send_in_process(files, sb.base_url)
        second = deliveries(sb.record)
    assert rerun.code == EXIT_OK, rerun.stderr  # nothing unknown: the waiting batch was pending
    assert "were in flight" not in rerun.stderr
    assert max((first + second).values()) == 1
    assert statuses(report_rows(files)) == Counter(sent=150)


@pytest.mark.parametrize("retry_after", ["999999", "86400", "Thu, 01 Jan 2099 00:00:00 GMT"])
def test_a_retry_after_of_hours_stops_the_run_and_says_when_to_rerun(
        tmp_path: Path, retry_after: str) -> None:
    files = make_campaign(tmp_path, 200, sending={"batch_size": 50, "concurrency": 1,
                                                   "requests_per_second": 100})
    summary = tmp_path / "summary.json"
    with sandbox(faults=Faults(every_503=2, retry_after_text=retry_after)) as sb:
        stopped = send_in_process(files, sb.base_url, "--summary-json", str(summary))
        first = assert_at_most_once(sb.record)
        asked = len(sb.record.requests)
    assert stopped.code == EXIT_STOPPED, stopped.stderr
    assert stopped.seconds < 5.0
    assert asked == 2  # nothing after the answer that said to wait
    assert "Kaleyra asked to wait" in stopped.stderr and "rerun the same command after" in \
        stopped.stderr
    year = "2099" if "2099" in retry_after else str(datetime.now(UTC).year)
    assert year in stopped.stderr or str(datetime.now(UTC).year + 1) in stopped.stderr
    assert "Traceback" not in stopped.stderr
    document = json.loads(summary.read_text(encoding="utf-8"))
    assert document["exit_code"] == EXIT_STOPPED
    rerun_after = datetime.fromisoformat(document["rerun_after"])
    assert rerun_after - datetime.now(UTC) > timedelta(hours=23)
    rows = _check_run(files, first)
    assert statuses(rows) == Counter(sent=50, pending=150)  # the 503 proved nothing was sent

    with sandbox() as sb:
        rerun = send_in_process(files, sb.base_url)
        second = deliveries(sb.record)
    assert rerun.code == EXIT_OK, rerun.stderr
    assert max((first + second).values()) == 1


@pytest.mark.parametrize("retry_after", ["1e308", "-5", "soon"])
def test_a_retry_after_that_is_not_a_wait_falls_back_to_backoff(tmp_path: Path,
                                                                retry_after: str) -> None:
    files = make_campaign(tmp_path, 200, sending={"batch_size": 50, "concurrency": 1})
    with sandbox(faults=Faults(every_429=2, retry_after_text=retry_after)) as sb:
        done = send_in_process(files, sb.base_url)
        got = assert_at_most_once(sb.record)
    assert done.code == EXIT_OK, done.stderr
    assert done.seconds < 5.0
    assert statuses(_check_run(files, got)) == Counter(sent=200)


def test_a_retry_after_past_max_duration_leaves_the_batch_pending(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 50, sending={"batch_size": 50, "max_duration": 5})
    with sandbox(faults=Faults(every_429=1, retry_after=120)) as sb:
        done = send_in_process(files, sb.base_url)
        assert len(sb.record.requests) == 1
    assert done.code == EXIT_STOPPED, done.stderr
    assert done.seconds < 5.0  # not the 120 s
    assert "rerun" in done.stderr
    assert statuses(report_rows(files)) == Counter(pending=50)
