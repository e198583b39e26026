from __future__ import annotations

import io

import pytest

from runner.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ci_logs_get_a_plain_line_every_interval_not_every_batch() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(1000, stream=out, clock=clock, interval=5.0, tty=False)
    for done in range(100, 1001, 100):
        clock.now += 1.0
        progress.update(done, requests=done // 100, retries=1)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "progress: 500 of 1,000 rows (50%), 5 requests, 1 retries",
        "progress: 1,000 of 1,000 rows (100%), 10 requests, 1 retries",
    ]


def test_a_terminal_gets_a_bar() -> None:
    out = io.StringIO()
    progress = Progress(200, stream=out, tty=True)
    progress.update(100)
    progress.close()
    assert "0/200 [" in out.getvalue()  # tqdm's bar, redrawn in place with \r
    assert "progress:" not in out.getvalue()


def test_a_wait_says_why_in_a_log_and_on_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bar on a StringIO is as wide as $COLUMNS says (pytest-xdist's workers have 80); tqdm
    # 4.66 cuts it there, and the rate of an instant update takes up most of 80 columns.
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("LINES", "50")
    out = io.StringIO()
    progress = Progress(1000, stream=out, clock=Clock(), tty=False)
    progress.update(300)
    progress.waiting("Kaleyra asked to wait (HTTP429, Retry-After)", 42.0)
    progress.waiting("retrying after HTTP503", 0.3)  # over before anyone reads it
    assert out.getvalue().splitlines() == [
        "progress: 300 of 1,000 rows, waiting 42 s: Kaleyra asked to wait (HTTP429, Retry-After)"]

    bar_out = io.StringIO()
    bar = Progress(200, stream=bar_out, tty=True)
    bar.update(50)
    bar.waiting("retrying after HTTP503", 2.5)
    assert "waiting 2.5 s: retrying after HTTP503" in bar_out.getvalue()
    bar.close()


def test_the_rerun_line_says_when() -> None:
    from datetime import UTC, datetime, timedelta

    from runner.render import rerun_after_line

    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    line = rerun_after_line(now + timedelta(seconds=999999), now)
    assert line == ("stopped: Kaleyra asked to wait 12 days (Retry-After); rerun the same "
                    "command after 2026-12-13 19:46 UTC to resume")
