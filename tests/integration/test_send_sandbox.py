"""`campaign send` end to end against the sandbox over loopback: exactly once, every row kept."""

from __future__ import annotations

import asyncio
import functools
import io
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner import run as send_module
from runner.cli import main
from runner.engine import Engine
from runner.reportread import read_report
from runner.sandbox import Faults
from runner.sandbox_thread import SandboxThread

SID = "HXTEST00000001IN"
KEY = "k3y-that-must-never-leak-0123456789"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries wait on virtual time: the engine's sleep records the wait and yields at once."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(send_module, "Engine", functools.partial(Engine, sleep=sleep))
    return waits


def mobile(i: int) -> str:
    return f"+9198{i:08d}"


def write_campaign(tmp_path: Path, rows: int) -> tuple[Path, dict[int, str]]:
    """A campaign of ``rows`` data rows with invalid, duplicate and suppressed numbers.

    Returns the file and the status each data row (by line number) must end with.
    """
    expected: dict[int, str] = {}
    lines = ["phone,name"]
    for i in range(rows):
        line = i + 2
        if i % 50 == 7:
            lines.append(f"98{i:03d},Bad{i}")  # too short: invalid
            expected[line] = "invalid"
        elif i % 40 == 9:
            lines.append(f"0{mobile(i - 1)[3:]},Dup{i}")  # the row before, written nationally
            expected[line] = "duplicate" if expected.get(line - 1) in ("sent", "suppressed") \
                else "sent"
        elif i % 97 == 3:
            lines.append(f"{mobile(i)},Opted{i}")
            expected[line] = "suppressed"
        else:
            lines.append(f"{mobile(i)},Name{i}")
            expected[line] = "sent"
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    optouts = [mobile(i) for i in range(rows) if i % 97 == 3 and i % 50 != 7 and i % 40 != 9]
    (tmp_path / "optouts.txt").write_text("\n".join(optouts) + "\n", encoding="utf-8")
    campaign = tmp_path / "big.yaml"
    campaign.write_text(
        "version: 1\n"
        "name: big-test\n"
        "account: {region: IN}\n"
        "message:\n"
        "  sender: KLRHXA\n"
        "  type: TXN\n"
        '  body: "Your parcel is on its way."\n'
        '  template_id: "1107161234567890123"\n'
        "recipients:\n"
        "  source: people.csv\n"
        "  default_country: IN\n"
        "  exclude: [optouts.txt]\n"
        "sending:\n"
        "  requests_per_second: 10000\n"
        "  concurrency: 8\n"
        "  max_attempts: 6\n",
        encoding="utf-8",
    )
    return campaign, expected


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def point_at(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxThread) -> None:
    monkeypatch.setenv("KALEYRA_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("KALEYRA_SID", SID)
    monkeypatch.setenv("KALEYRA_API_KEY", KEY)


def test_shipped_example_sends_to_the_in_process_sandbox(tmp_path: Path) -> None:
    report = tmp_path / "order-shipped.csv"
    code, out, err = run_cli("send", str(ROOT / "campaigns/dlt-template.yaml"), "--sandbox",
                             "--report", str(report))
    assert code == 0, err
    rows = list(read_report(report))
    source_rows = (ROOT / "campaigns/data/orders.csv").read_text().strip().count("\n")
    assert len(rows) == source_rows
    assert {r["status"] for r in rows} == {"sent"}
    assert all(r["message_id"] for r in rows)
    assert "report:" in out


def test_thousands_of_rows_through_429s_and_503s_arrive_exactly_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_backoff: list[float]) -> None:
    campaign, expected = write_campaign(tmp_path, 3000)
    faults = Faults(every_429=7, every_503=11, retry_after=None)
    report = tmp_path / "report.csv"
    with SandboxThread(api_key=KEY, sid=SID, region="IN", faults=faults) as sandbox:
        point_at(monkeypatch, sandbox)
        code, _, err = run_cli("send", str(campaign), "--report", str(report))
        record = sandbox.record

    assert code == 0, err
    assert no_backoff, "some requests were retried"
    deliveries = record.deliveries()
    assert max(deliveries.values()) == 1  # nobody got two messages
    rows = list(read_report(report))
    assert [int(r["row"]) for r in rows] == sorted(expected)  # every input row, in order
    assert {int(r["row"]): r["status"] for r in rows} == expected
    sent = {r["phone"] for r in rows if r["status"] == "sent"}
    assert set(deliveries) == sent
    assert all(len(a.numbers) <= 100 for a in record.accepted)
    faulted = Counter(log.status for log in record.requests if log.fault)
    assert faulted[429] > 0 and faulted[503] > 0


def test_dry_run_sends_nothing_and_needs_no_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign, expected = write_campaign(tmp_path, 300)
    report = tmp_path / "dry.csv"
    with SandboxThread(api_key=KEY, sid=SID) as sandbox:
        monkeypatch.setenv("KALEYRA_BASE_URL", sandbox.base_url)
        code, out, err = run_cli("send", str(campaign), "--dry-run", "--report", str(report))
        assert sandbox.record.requests == []
    assert code == 0, err
    statuses = {int(r["row"]): r["status"] for r in read_report(report)}
    assert statuses == {row: "dry_run" if s == "sent" else s for row, s in expected.items()}
    assert "nothing sent" in out
    sendable = sum(1 for s in expected.values() if s == "sent")
    assert f"{sendable:,} to send" in out


def test_the_api_key_appears_in_no_output_report_or_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_backoff: list[float]) -> None:
    campaign, _ = write_campaign(tmp_path, 120)
    report = tmp_path / "r.csv"
    faults = Faults(every_500=3, every_429=4, retry_after=None)
    with SandboxThread(api_key=KEY, sid=SID, faults=faults) as sandbox:
        point_at(monkeypatch, sandbox)
        code, out, err = run_cli("send", str(campaign), "--report", str(report))
    assert code in (0, 3)
    files = [report, report.with_name("r.csv.journal")]
    for text in (out, err, *(p.read_bytes().decode("latin-1") for p in files)):
        assert KEY not in text


def test_a_refused_key_stops_at_one_request_a_worker_and_the_rerun_sends_everyone_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign, expected = write_campaign(tmp_path, 1050)  # 11 batches, 8 workers
    report = tmp_path / "r.csv"
    to_send = sum(1 for s in expected.values() if s == "sent")
    with SandboxThread(api_key="the-right-key", sid=SID) as sandbox:
        point_at(monkeypatch, sandbox)
        code, out, err = run_cli("send", str(campaign), "--report", str(report))
        assert sandbox.record.accepted == []
        assert len(sandbox.record.requests) <= 8  # at most one request a worker
    assert code == 78
    assert "API key" in err and "KALEYRA_API_KEY" in err
    rows = read_report(report)
    pending = [r for r in rows if r["status"] == "pending"]
    assert len(pending) == to_send  # nobody failed: the answer proved nothing was sent
    assert all("refused" in r["error"] for r in pending)
    assert any(r["error_code"] == "HTTP401" for r in pending)
    assert KEY not in out + err + report.read_text()
    with SandboxThread(api_key=KEY, sid=SID) as sandbox:  # the key fixed: a plain rerun
        point_at(monkeypatch, sandbox)
        code, _, _ = run_cli("send", str(campaign), "--report", str(report))
        deliveries = sandbox.record.deliveries()
    assert code == 0
    assert len(deliveries) == to_send and set(deliveries.values()) == {1}
    assert Counter(r["status"] for r in read_report(report))["sent"] == to_send


def test_a_dry_run_never_overwrites_the_report_of_a_real_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign, _ = write_campaign(tmp_path, 30)
    report = tmp_path / "r.csv"
    with SandboxThread(api_key=KEY, sid=SID) as sandbox:
        point_at(monkeypatch, sandbox)
        assert run_cli("send", str(campaign), "--report", str(report))[0] == 0
    before = report.read_bytes()
    code, _, err = run_cli("send", str(campaign), "--dry-run", "--report", str(report))
    assert code == 1
    assert "would overwrite it" in err and "--report" in err
    assert report.read_bytes() == before


def test_a_resume_trusts_the_check_made_when_the_run_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign, expected = write_campaign(tmp_path, 400)
    hour = datetime.now(UTC).hour  # a window that opens two hours from now is closed now
    start, end = f"{(hour + 2) % 24:02d}:00", f"{(hour + 3) % 24:02d}:00"
    window = f'{{start: "{start}", end: "{end}", timezone: UTC}}'
    original = campaign.read_text()
    campaign.write_text(original + f"  window: {window}\n", encoding="utf-8")
    report = tmp_path / "r.csv"
    with SandboxThread(api_key=KEY, sid=SID) as sandbox:
        point_at(monkeypatch, sandbox)
        first = run_cli("send", str(campaign), "--report", str(report))
        # The window only decides when: changing it keeps the run (and its checked recipients).
        campaign.write_text(original + "  window: always\n", encoding="utf-8")
        code, _, err = run_cli("send", str(campaign), "--report", str(report))
        deliveries = sandbox.record.deliveries()
    assert first[0] == 75, first[2]
    assert code == 0, err
    assert "resuming: the recipients were checked when this run started" in err
    statuses = {int(r["row"]): r["status"] for r in read_report(report)}
    assert statuses == expected
    assert max(deliveries.values()) == 1
    assert len(deliveries) == sum(1 for s in expected.values() if s == "sent")


def test_changed_recipients_are_checked_again_and_the_resume_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign, _ = write_campaign(tmp_path, 50)
    report = tmp_path / "r.csv"
    with SandboxThread(api_key=KEY, sid=SID) as sandbox:
        point_at(monkeypatch, sandbox)
        assert run_cli("send", str(campaign), "--report", str(report))[0] == 0
        with (tmp_path / "people.csv").open("a", encoding="utf-8") as f:
            f.write("+919800000999,Late\n")
        code, _, err = run_cli("send", str(campaign), "--report", str(report))
    assert code == 1
    assert "resuming" not in err
    assert "changed since this run started" in err


def test_a_sandbox_rehearsal_keeps_its_own_report_and_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("send", str(ROOT / "campaigns/dlt-template.yaml"), "--sandbox")
    assert code == 0, err
    assert (tmp_path / "reports/order-shipped.sandbox.csv").is_file()
    assert not (tmp_path / "reports/order-shipped.csv").exists()  # the real run's stays free


def test_a_run_never_resumes_against_another_destination(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign, _ = write_campaign(tmp_path, 40)
    report = tmp_path / "r.csv"
    assert run_cli("send", str(campaign), "--sandbox", "--report", str(report))[0] == 0
    with SandboxThread(api_key=KEY, sid=SID) as real:
        point_at(monkeypatch, real)
        code, _, err = run_cli("send", str(campaign), "--report", str(report))
        assert real.record.requests == []
    assert code == 1
    assert "was sending to the built-in sandbox" in err


def test_fault_flags_without_sandbox_are_a_usage_error(tmp_path: Path) -> None:
    campaign, _ = write_campaign(tmp_path, 10)
    code, _, err = run_cli("send", str(campaign), "--every-500", "1")
    assert code == 2
    assert "need --sandbox" in err


def test_a_report_over_the_recipients_file_is_refused(tmp_path: Path) -> None:
    campaign, _ = write_campaign(tmp_path, 10)
    before = (tmp_path / "people.csv").read_bytes()
    code, _, err = run_cli("send", str(campaign), "--dry-run", "--report",
                           str(tmp_path / "people.csv"))
    assert code == 1
    assert "the report would overwrite" in err and "people.csv" in err
    assert (tmp_path / "people.csv").read_bytes() == before


def test_a_finished_run_rerun_outside_its_window_is_still_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign, _ = write_campaign(tmp_path, 30)
    original = campaign.read_text()
    report = tmp_path / "r.csv"
    with SandboxThread(api_key=KEY, sid=SID) as sandbox:
        point_at(monkeypatch, sandbox)
        assert run_cli("send", str(campaign), "--report", str(report))[0] == 0
        hour = datetime.now(UTC).hour
        start, end = f"{(hour + 2) % 24:02d}:00", f"{(hour + 3) % 24:02d}:00"
        campaign.write_text(original + f'  window: {{start: "{start}", end: "{end}", '
                            "timezone: UTC}\n", encoding="utf-8")
        code, _, err = run_cli("send", str(campaign), "--report", str(report))
    assert code == 0, err  # nothing left to send: the closed window does not matter
    assert "window is closed" not in err


def test_a_tightened_invalid_ratio_is_checked_again_on_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign, _ = write_campaign(tmp_path, 200)  # 2% of its rows are invalid
    report = tmp_path / "r.csv"
    with SandboxThread(api_key=KEY, sid=SID) as sandbox:
        point_at(monkeypatch, sandbox)
        assert run_cli("send", str(campaign), "--report", str(report))[0] == 0
        text = campaign.read_text().replace("  default_country: IN\n",
                                            "  default_country: IN\n  max_invalid_ratio: 0.01\n")
        campaign.write_text(text, encoding="utf-8")
        code, _, err = run_cli("send", str(campaign), "--report", str(report))
    assert code == 1
    assert "above max_invalid_ratio" in err
    assert "resuming" not in err
