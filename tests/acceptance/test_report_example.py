"""The GitHub example's Summary step, run as the workflow runs it: `campaign report --markdown`
appended to the step summary file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from runner.report import ReportRow, write_report

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "github-actions" / "send-campaign.yml"


def test_the_summary_step_writes_markdown_tables_to_the_step_summary(tmp_path: Path) -> None:
    steps = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["send"]["steps"]
    (summary_step,) = [s for s in steps if s.get("name") == "Summary"]
    state = tmp_path / "state" / "diwali-flash"
    state.mkdir(parents=True)
    write_report(state / "report.csv", [
        ReportRow(2, "+919820123456", "sent", message_id="m1", batch_id="r1-b000001",
                  attempts=1, sent_at="2026-12-02T09:00:01+00:00"),
        ReportRow(3, "12345", "invalid", error="'12345' is not a valid number for IN"),
    ])
    step_summary = tmp_path / "summary.md"
    step_summary.write_text("earlier steps' lines\n")
    env = {**os.environ, "STATE": str(state), "REPORT": str(state / "report.csv"),
           "CAMPAIGN": "diwali-flash",
           "GITHUB_STEP_SUMMARY": str(step_summary),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-e", "-c", summary_step["run"]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    text = step_summary.read_text(encoding="utf-8")
    assert text.startswith("earlier steps' lines\n### Delivery report")  # appended
    assert "| `sent` | 1 | 50% |" in text and "| `invalid` | 1 | 50% |" in text
