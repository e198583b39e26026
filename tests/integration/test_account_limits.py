"""Account limits through `campaign` and the API, against the in-process sandbox: expiry, caps
counted across reruns, account-level refusals, and what validate and the dry run say. Each run
is a few batches: nothing here waits for a rate."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import runner
from runner.cli import main
from runner.faults import Faults
from runner.pacing import periods_at
from runner.reportread import read_report
from tests.integration.helpers import make_campaign


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def counts(report: Path) -> Counter[str]:
    return Counter(r["status"] for r in read_report(report))


def iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def test_an_expired_campaign_sends_nothing_and_reports_expired(tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    files = make_campaign(tmp_path, 40, sending={"expires": iso(past)})
    code, out, err = cli("validate", str(files.yaml))
    assert code == 0 and "warning: expires" in out + err and "has passed" in out + err
    code, _, err = cli("send", str(files.yaml), "--sandbox", "--report", str(files.report),
                       "--summary-json", str(tmp_path / "s.json"))
    assert code == 3
    assert counts(files.report) == {"expired": 40}
    assert "40 expired" in err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["requests"] == 0 and summary["counts"] == {"expired": 40}


def test_the_dry_run_warns_when_the_run_would_outlast_its_expiry(tmp_path: Path) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=2)  # 30 requests at 0.1 a second: 290 s
    files = make_campaign(tmp_path, 3000, sending={"expires": iso(soon), "batch_size": 100,
                                                   "requests_per_second": 0.1})
    code, out, _ = cli("send", str(files.yaml), "--dry-run", "--report",
                       str(tmp_path / "dry.csv"))
    assert code == 0
    assert "outlast sending.expires" in out


def test_the_dry_run_estimate_uses_the_tightest_limit(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 3000, sending={"batch_size": 100, "requests_per_second": 50,
                                                   "messages_per_second": 100})
    code, out, _ = cli("send", str(files.yaml), "--dry-run", "--report",
                       str(tmp_path / "dry.csv"))
    assert code == 0
    # 30 requests at 50 a second would be 1 s; 3,000 numbers at 100 a second take 29 s
    # from the first request to the last.
    assert "about 29 s (held by messages_per_second)" in out


def test_validate_says_when_a_per_second_limit_shrinks_the_batches(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 10, sending={"batch_size": 100, "messages_per_second": 40})
    code, out, err = cli("validate", str(files.yaml))
    assert code == 0
    assert "batches shrink from 100 to 40 numbers to fit messages_per_second" in out + err
    plan = runner.send(files.yaml, dry_run=True, report=tmp_path / "dry.csv")
    assert plan.check is not None and plan.check.campaign is not None
    assert plan.check.campaign.effective_batch_size == 40


@pytest.mark.parametrize(("sending", "size"), [
    ({"messages_per_second": 166}, 83),  # two batches a second, not one of 100 (60%)
    ({"messages_per_second": 250}, 83),
    ({"messages_per_second": 5000}, 100),
    ({"parts_per_second": 199}, 99),
])
def test_batches_tile_each_second_of_a_per_second_limit(
        tmp_path: Path, sending: dict[str, int], size: int) -> None:
    files = make_campaign(tmp_path, 10, sending={"batch_size": 100, **sending})
    code, out, err = cli("validate", str(files.yaml))
    assert code == 0
    shrunk = f"batches shrink from 100 to {size} numbers" in out + err
    assert shrunk == (size < 100)
    plan = runner.send(files.yaml, dry_run=True, report=tmp_path / "dry.csv")
    assert plan.check is not None and plan.check.campaign is not None
    assert plan.check.campaign.effective_batch_size == size


def test_an_account_code_stops_the_run_and_a_rerun_after_the_fix_sends_everyone(
        tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 400, sending={"batch_size": 20, "concurrency": 1})
    refused = runner.send(files.yaml, sandbox=True, faults=Faults(ecode="E619"))
    assert refused.exit_code == 78
    assert refused.requests == 3  # three batches in a row, then no more
    assert "E619" in refused.refused and "message.sender" in refused.refused
    rows = list(read_report(refused.report))
    assert Counter(r["status"] for r in rows) == {"pending": 400}
    assert {r["error_code"] for r in rows[:60]} == {"E619"}
    assert all("E619" in r["error_code"] + r["error"] for r in rows)  # never-tried ones too
    again = runner.send(files.yaml, sandbox=True)
    assert again.exit_code == 0 and again.counts == {"sent": 400}
    assert again.requests == 20  # each row once


def test_the_command_line_names_the_refusal_and_its_fix(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 60, sending={"batch_size": 20, "concurrency": 1})
    code, _, err = cli("send", str(files.yaml), "--sandbox", "--ecode", "E623",
                       "--report", str(files.report))
    assert code == 78
    assert "refused 3 batches in a row with E623" in err and "route" in err


def test_a_day_cap_counts_across_reruns(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 250, sending={"batch_size": 50,
                                                  "max_messages_per_day": 100})
    day = periods_at(datetime.now(UTC), UTC)[1].key
    first = runner.send(files.yaml, sandbox=True)
    assert first.exit_code == 75
    assert first.counts == {"sent": 100, "pending": 150}
    assert first.capped_until is not None and first.capped_until > datetime.now(UTC)
    code, _, err = cli("send", str(files.yaml), "--sandbox")
    if periods_at(datetime.now(UTC), UTC)[1].key != day:
        pytest.skip("the day changed between the two runs")
    assert code == 75
    assert "max_messages_per_day (100) reached" in err and "--wait" in err
    assert counts(first.report) == {"sent": 100, "pending": 150}  # the rerun sent nothing
