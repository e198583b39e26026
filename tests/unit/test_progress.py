from __future__ import annotations

import io

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
