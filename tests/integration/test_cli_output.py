"""What CI reads: --summary-json, -v request lines, -q, help that answers CI questions, and
what to do next after exit 3."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from runner.cli import main
from runner.faults import Faults
from tests.integration.helpers import TEST_API_KEY, make_campaign, sandbox, send_env


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_summary_json_of_a_send_with_retries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = make_campaign(tmp_path, 200, sending={"batch_size": 50, "concurrency": 1,
                                                   "requests_per_second": 1000})
    summary = tmp_path / "summary.json"
    with sandbox(faults=Faults(every_503=3)) as sb:
        for key, value in send_env(sb.base_url).items():
            monkeypatch.setenv(key, value)
        code, _, err = cli("send", str(files.yaml), "--report", str(files.report),
                           "--summary-json", str(summary))
    assert code == 0, err
    doc = json.loads(summary.read_text(encoding="utf-8"))
    assert doc["version"] == 1 and doc["command"] == "send" and doc["exit_code"] == 0
    assert doc["campaign"] == "crash-test" and doc["counts"] == {"sent": 200}
    assert doc["requests"] == 4 + doc["retries"]["total"] and doc["retries"]["total"] >= 1
    assert doc["retries"]["by_cause"] == {"HTTP503": doc["retries"]["total"]}
    assert doc["report"].endswith(files.report.name) and doc["dry_run"] is False
    assert TEST_API_KEY not in summary.read_text(encoding="utf-8")


def test_summary_json_of_an_invalid_campaign(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 3, sending={"batch_size": 250})
    summary = tmp_path / "summary.json"
    code, _, _ = cli("send", str(files.yaml), "--dry-run", "--summary-json", str(summary))
    doc = json.loads(summary.read_text(encoding="utf-8"))
    assert code == doc["exit_code"] == 1
    assert doc["counts"] == {} and doc["errors"] and doc["errors"][0]["line"]


def test_verbose_logs_a_line_a_request_and_quiet_prints_nothing(tmp_path: Path) -> None:
    files = make_campaign(tmp_path, 120, sending={"batch_size": 50})
    code, out, err = cli("send", str(files.yaml), "--sandbox", "-v", "--report",
                         str(tmp_path / "loud.csv"))
    assert code == 0
    lines = [line for line in err.splitlines() if ": 50 numbers, attempt 1: accepted" in line
             or ": 20 numbers, attempt 1: accepted" in line]
    assert len(lines) == 3, err
    code, out, err = cli("send", str(files.yaml), "--sandbox", "-q", "--report",
                         str(tmp_path / "quiet.csv"))
    assert (code, out, err) == (0, "", "")


def test_help_names_exit_codes_and_variables_and_keeps_faults_off_the_usage(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = cli("send", "--help")  # argparse prints help to the process's stdout
    out = capsys.readouterr().out
    assert code == 0
    usage = out.split("\n\n")[0]
    assert "--every-429" not in usage and "[sandbox fault options]" in usage
    assert "75  stopped early" in out and "KALEYRA_API_KEY" in out
    assert "sandbox fault options" in out


def test_after_exit_3_the_output_says_what_to_do_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = make_campaign(tmp_path, 100, sending={"batch_size": 50, "max_attempts": 1})
    with sandbox(faults=Faults(every_500=2)) as sb:
        for key, value in send_env(sb.base_url).items():
            monkeypatch.setenv(key, value)
        code, _, err = cli("send", str(files.yaml), "--report", str(files.report))
    assert code == 3, err
    assert "campaign status" in err and "--resend-unknown" in err
