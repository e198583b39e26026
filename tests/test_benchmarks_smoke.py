"""The benchmark script starts and its smallest step runs (no timings are asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "run.py"


def test_benchmark_script_runs_its_smallest_step(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", "validate", "--sizes", "500",
         "--data-dir", str(tmp_path / "data"), "--out", str(out)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "| 500 |" in done.stdout
    assert "same verdicts" in done.stdout
    table = out.read_text(encoding="utf-8")
    assert table.startswith("# Benchmark results")
    assert "nproc" in table and "python:" in table


def test_benchmark_script_help() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                          text=True, timeout=30, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout


def test_zone_benchmark_runs_on_a_few_rows() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "zones.py"), "--rows", "200"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "| US (25 area codes) |" in done.stdout
