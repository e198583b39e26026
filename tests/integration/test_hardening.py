"""The edges a hostile or unlucky user finds (DESIGN.md, "Hardening"): report links, a report
over a journal, leftovers of killed writers, file modes, signals outside the send loop, and a
journal that fails mid-run."""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main
from runner.reportread import read_report
from tests.integration.helpers import (
    assert_at_most_once,
    finish,
    make_campaign,
    sandbox,
    send_env,
    send_in_process,
    statuses,
    wait_until,
)

EXIT_STOPPED = 75


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_a_symlinked_report_resumes_the_run_it_points_at(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 60)
    with sandbox() as sb:
        assert send_in_process(files, sb.base_url).code == 0
        latest = tmp_path / "latest.csv"
        latest.symlink_to(files.report)
        again = send_in_process(files, sb.base_url, "--report", str(latest))
        got = assert_at_most_once(sb.record)
    assert again.code == 0, again.stderr
    assert sum(got.values()) == 60  # nobody twice: the link found the run's own journal
    assert not (tmp_path / "latest.csv.journal").exists()
    assert latest.is_symlink()


def test_a_hard_linked_report_is_refused(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 10)
    with sandbox() as sb:
        assert send_in_process(files, sb.base_url).code == 0
        linked = tmp_path / "copy.csv"
        os.link(files.report, linked)
        refused = send_in_process(files, sb.base_url, "--report", str(linked))
        assert sum(assert_at_most_once(sb.record).values()) == 10
    assert refused.code == 1 and "hard link" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_report_path_that_names_a_journal_is_refused(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 10)
    with sandbox() as sb:
        assert send_in_process(files, sb.base_url).code == 0
    before = files.journal.read_bytes()
    for target in (files.journal, tmp_path / "other.csv.journal"):
        code, _, err = cli("send", str(files.yaml), "--dry-run", "--report", str(target))
        assert code == 1 and "journal, not a report" in err, err
    plain = tmp_path / "renamed.db"
    plain.write_bytes(before)  # a journal under any name is still one
    code, _, err = cli("send", str(files.yaml), "--dry-run", "--report", str(plain))
    assert code == 1 and "journal, not a report" in err
    assert files.journal.read_bytes() == before


def test_reports_are_owner_only_and_leftovers_of_killed_writers_go(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 10)
    stale = tmp_path / f".{files.report.name}.deadbeef.tmp"  # a killed run's half report
    stale.write_text("row,phone\n2,+919876500000\n", encoding="utf-8")
    unrelated = tmp_path / ".other.csv.cafe0000.tmp"
    unrelated.write_text("keep", encoding="utf-8")
    old = os.umask(0o002)
    try:
        code, _, err = cli("send", str(files.yaml), "--dry-run", "--report", str(files.report))
    finally:
        os.umask(old)
    assert code == 0, err
    assert not stale.exists() and unrelated.exists()
    assert files.report.stat().st_mode & 0o777 == 0o600


def big_campaign(tmp_path: Path, rows: int) -> Path:
    files = make_campaign(tmp_path, 10)
    with files.csv.open("w", encoding="utf-8") as handle:
        handle.write("phone,name\n")
        handle.writelines(f"+91987{i:07d},p\n" for i in range(rows))
    return files.yaml


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_check_pass_exits_75_without_a_traceback(
        tmp_path: Path, sig: signal.Signals) -> None:
    yaml = big_campaign(tmp_path, 400_000)
    report = tmp_path / "dry.csv"
    proc = subprocess.Popen([sys.executable, "-m", "runner", "send", str(yaml), "--dry-run",
                             "--report", str(report)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The dry run writes its report while it checks: its temporary file means the pass is on.
    wait_until(lambda: any(tmp_path.glob(".dry.csv.*.tmp")), proc=proc, what="the check pass")
    proc.send_signal(sig)
    done = finish(proc)
    assert done.code == EXIT_STOPPED, done.stderr
    assert "Traceback" not in done.stderr and "stopped by a signal" in done.stderr
    assert not report.exists() and not list(tmp_path.glob(".dry.csv.*.tmp"))


def test_a_signal_during_start_up_exits_75(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Start-up is the import of the CLI: a signal there must not print a traceback either.
    import builtins

    from runner import entry

    real_import = builtins.__import__

    def interrupted(name: str, *args: object, **kwargs: object) -> object:
        if name == "runner.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", interrupted)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert entry.main() == EXIT_STOPPED
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "stopped by a signal" in capsys.readouterr().err


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (96 * 1024, 96 * 1024))


def test_a_journal_that_fills_the_disk_mid_run_stops_with_75(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 3000, sending={"batch_size": 10, "concurrency": 2,
                                                    "requests_per_second": 1000})
    with sandbox() as sb:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "send", str(files.yaml)], cwd=tmp_path, text=True,
            env=send_env(sb.base_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_limit_file_size)
        stopped = finish(proc, timeout=60)
        sent_before = sum(assert_at_most_once(sb.record).values())
        assert stopped.code == EXIT_STOPPED, stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert "rerun" in stopped.stderr and "nothing was sent" not in stopped.stderr
        assert 0 < sent_before < 3000
        rerun = send_in_process(files, sb.base_url, timeout=60)
        got = assert_at_most_once(sb.record)
    assert rerun.code in (0, 3), rerun.stderr
    counts = statuses(read_report(files.report))
    assert counts["sent"] + counts["unknown"] == 3000
    assert counts["unknown"] <= 2 * 10  # at most the batches in flight at the failure
    assert set(got) >= {r["phone"] for r in read_report(files.report) if r["status"] == "sent"}


def test_the_journal_is_owner_only(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 10)
    old = os.umask(0o000)
    try:
        with sandbox() as sb:
            assert send_in_process(files, sb.base_url).code == 0
    finally:
        os.umask(old)
    journals = [p for p in tmp_path.iterdir() if p.name.startswith(files.journal.name)]
    assert journals and all(p.stat().st_mode & 0o777 == 0o600 for p in journals), [
        (p.name, oct(p.stat().st_mode & 0o777)) for p in journals]


def test_a_dry_run_keeps_off_a_send_report_even_without_its_journal(tmp_path: Path) -> None:
    # A run whose state is in PostgreSQL has no journal beside its report: its rows tell.
    files = make_campaign(tmp_path, 10)
    with sandbox() as sb:
        assert send_in_process(files, sb.base_url).code == 0
    for path in tmp_path.glob(files.journal.name + "*"):
        path.unlink()
    before = files.report.read_bytes()
    code, _, err = cli("send", str(files.yaml), "--dry-run", "--report", str(files.report))
    assert code == 1 and "report of a send run" in err, err
    assert files.report.read_bytes() == before
