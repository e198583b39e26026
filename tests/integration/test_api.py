"""The Python API: a script dry-runs, sends (to the sandbox) and polls a campaign, and gets the
same exit codes and counts as the command line."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from pathlib import Path

import pytest

import runner
from runner.cli import main
from runner.reportread import read_report
from tests.integration.helpers import (
    make_campaign,
    sandbox,
    send_env,
    statuses,
)

REPO = Path(__file__).resolve().parents[2]


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "campaigns", tmp_path / "campaigns")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "campaigns"


def test_check_gives_what_validate_exits_with(examples: Path) -> None:
    for path in sorted(examples.glob("*.yaml")):
        result = runner.check(path)
        assert result.exit_code == cli("validate", str(path))[0] == 0
        assert result.report is None
        assert sum(result.counts.values()) == result.summary.recipients if result.summary else 0
    broken = examples / "broken.yaml"
    broken.write_text("version: 1\nname: x\n", encoding="utf-8")
    assert runner.check(broken).exit_code == cli("validate", str(broken))[0] == 1


def test_dry_run_send_and_rerun_match_the_cli(examples: Path) -> None:
    campaign = examples / "dlt-template.yaml"
    plan = runner.send(campaign, dry_run=True)
    code, out, _ = cli("send", str(campaign), "--dry-run", "--report", "cli-dry.csv")
    assert (plan.exit_code, code) == (0, 0)
    assert plan.counts == statuses(read_report(Path("cli-dry.csv"))) == Counter(dry_run=8)
    assert plan.counts == statuses(read_report(plan.report))

    sent = runner.send(campaign, sandbox=True)
    assert sent.exit_code == 0 and sent.counts == Counter(sent=8)
    assert statuses(read_report(sent.report)) == sent.counts
    again = runner.send(campaign, sandbox=True)  # a finished run sends nothing more
    assert again.exit_code == 0 and again.requests == 0 and again.counts == sent.counts
    code, out, _ = cli("send", str(campaign), "--sandbox")
    assert code == 0 and f"report: {Path('reports/order-shipped.sandbox.csv')}" in out


def test_send_and_status_against_a_sandbox(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 120, sending={"batch_size": 50})
    with sandbox() as sb:
        env = send_env(sb.base_url)
        outcome = runner.send(files.yaml, report=files.report, env=env)
        assert outcome.exit_code == 0 and outcome.counts == Counter(sent=120)
        assert outcome.requests == 3 and outcome.report == files.report
        polled = runner.status(files.report, env=env)
    assert polled.report == files.report
    assert sum(polled.counts.values()) == 120
    expected = 3 if polled.counts["undelivered"] or polled.counts["pending"] else 0
    assert polled.exit_code == expected


def test_an_invalid_campaign_raises_with_every_diagnostic(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 3, sending={"batch_size": 250})
    with pytest.raises(runner.CampaignInvalid) as caught:
        runner.send(files.yaml, dry_run=True)
    assert any("batch_size" in d.message or "250" in d.message
               for d in caught.value.diagnostics)
    assert isinstance(caught.value, runner.RunnerError)


def test_bad_arguments_raise_usage_errors(tmp_path: Path) -> None:
    from runner.faults import Faults

    with pytest.raises(runner.UsageError):
        runner.send(tmp_path / "missing.yaml", dry_run=True)
    files = make_campaign(tmp_path, 3)
    with pytest.raises(runner.UsageError, match="need --sandbox"):
        runner.send(files.yaml, faults=Faults(every_429=2))


def test_an_observer_sees_the_run(tmp_path: Path) -> None:
    seen: list[str] = []

    class Watcher(runner.RunObserver):
        def checked(self, check: runner.CampaignCheck, *, reused: bool) -> None:
            seen.append(f"checked reused={reused}")

        def sandbox_started(self, base_url: str, *, window_ignored: bool) -> None:
            seen.append("sandbox")

        def sending(self, rows: int) -> None:
            seen.append(f"sending {rows}")

        def batch_done(self, stats: object) -> None:
            seen.append("batch")

        def sending_done(self) -> None:
            seen.append("done")

    files = make_campaign(tmp_path, 120, sending={"batch_size": 50, "concurrency": 1})
    runner.send(files.yaml, report=files.report, sandbox=True, observer=Watcher())
    assert seen == ["checked reused=False", "sandbox", "sending 120", "batch", "batch", "batch",
                    "done"]


def test_a_rehearsal_ignores_the_send_window_unless_asked(tmp_path: Path) -> None:
    # A window that is closed whenever the test runs: one minute a day, a minute from now.
    from datetime import UTC, datetime, timedelta

    soon = datetime.now(UTC) + timedelta(minutes=2)
    window = {"start": soon.strftime("%H:%M"), "end": (soon + timedelta(minutes=1))
              .strftime("%H:%M"), "timezone": "UTC"}
    files = make_campaign(tmp_path, 5, sending={"window": window})
    code, _, err = cli("send", str(files.yaml), "--report", str(files.report), "--sandbox")
    assert code == 0, err
    assert "send window does not apply to a rehearsal" in err
    other = tmp_path / "respecting.csv"
    code, _, err = cli("send", str(files.yaml), "--report", str(other), "--sandbox",
                       "--respect-window")
    assert code == 75 and "window is closed" in err
    assert statuses(read_report(other)) == Counter(pending=5)
    code, _, err = cli("send", str(files.yaml), "--respect-window")
    assert code == 2 and "--respect-window is for --sandbox" in err
