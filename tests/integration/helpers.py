"""Shared helpers for integration tests that run `campaign send` for real.

A test makes a campaign and a CSV of N numbers in its tmp_path (``make_campaign``), starts a
sandbox (``SandboxThread`` in the test process, on 127.0.0.1, with a distinctive API key so
that leaks can be searched for), and runs ``python -m runner send`` in a subprocess pointed at it
through ``KALEYRA_BASE_URL`` (``start_send``/``run_send``), or, where the process boundary is
not what is tested, the same command in this process (``send_in_process``). Waiting is always a
poll with a deadline (``wait_until``), never a fixed sleep.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.reportread import read_report
from runner.sandbox import SANDBOX_SID, SandboxRecord
from runner.sandbox_thread import SandboxThread

# Not the sandbox's default key: a value that cannot appear anywhere by accident.
TEST_API_KEY = "kl-test-9f3b27c4e1d8a6055b"
REPO = Path(__file__).resolve().parents[2]


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid Indian mobile numbers in E.164."""
    return [f"+9198765{start + i:05d}" for i in range(count)]


@dataclass(frozen=True, slots=True)
class CampaignFiles:
    yaml: Path
    csv: Path
    report: Path
    phones: tuple[str, ...]  # the CSV's data rows, in order

    @property
    def journal(self) -> Path:
        return self.report.with_name(self.report.name + ".journal")


def make_campaign(
    folder: Path,
    rows: int,
    *,
    name: str = "crash-test",
    body: str = "Hello, your order has shipped.",
    sending: Mapping[str, Any] | None = None,
    extra_lines: Sequence[str] = (),
) -> CampaignFiles:
    """A valid IN/TXN campaign (no implied window) with ``rows`` recipients, report beside it.

    ``sending`` overrides the defaults below; ``extra_lines`` are appended verbatim to the CSV
    after the generated rows (for invalid or duplicate rows).
    """
    folder.mkdir(parents=True, exist_ok=True)
    phones = numbers(rows)
    source = folder / "recipients.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "name"])
        writer.writerows([phone, f"person{i}"] for i, phone in enumerate(phones))
        for line in extra_lines:
            handle.write(line + "\n")
    settings: dict[str, Any] = {"batch_size": 50, "requests_per_second": 50, "concurrency": 4,
                                "max_attempts": 5, "window": "always"}
    settings.update(sending or {})
    lines = [
        "version: 1",
        f"name: {name}",
        "account:",
        "  region: IN",
        "message:",
        "  sender: KLRHXA",
        "  type: TXN",
        f'  body: "{body}"',
        '  template_id: "1107161234567890123"',
        '  entity_id: "1101456789012345678"',
        "recipients:",
        "  source: recipients.csv",
        "  default_country: IN",
        "sending:",
        *(f"  {key}: {_yaml_value(value)}" for key, value in settings.items()),
        "report: report.csv",
    ]
    path = folder / "campaign.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return CampaignFiles(path, source, folder / "report.csv", tuple(phones))


def _yaml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and ":" in value:
        return f'"{value}"'
    return str(value)


# --------------------------------------------------------------------------- sandbox


def sandbox(**kwargs: Any) -> SandboxThread:
    """A sandbox thread (not started) that wants TEST_API_KEY."""
    return SandboxThread(api_key=TEST_API_KEY, sid=SANDBOX_SID, **kwargs)


def free_port() -> int:
    """A loopback port that was free a moment ago (for a server that starts later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def answer_at_once(sb: SandboxThread) -> None:
    """From now on the sandbox answers without its latency (the requests already waiting keep
    theirs): a run held alive by slow answers, while a test does something beside it, then
    finishes without waiting them all out."""
    sb.server.faults = dataclasses.replace(sb.server.faults, latency=0.0)


def accepted_requests(record: SandboxRecord) -> int:
    return len(list(record.accepted))


def deliveries(record: SandboxRecord) -> Counter[str]:
    return record.deliveries()


# --------------------------------------------------------------------------- subprocesses


def send_env(base_url: str, *, api_key: str = TEST_API_KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KALEYRA_")}
    env.update({"KALEYRA_BASE_URL": base_url, "KALEYRA_SID": SANDBOX_SID,
                "KALEYRA_API_KEY": api_key, "PYTHONUNBUFFERED": "1"})
    return env


def start_send(files: CampaignFiles, base_url: str, *args: str,
               env: Mapping[str, str] | None = None,
               stderr_to: Path | None = None) -> subprocess.Popen[str]:
    """``python -m runner send CAMPAIGN ARGS`` in the campaign's folder, output captured.

    ``stderr_to``: write stderr to this file instead of a pipe, so a test can watch it while the
    process runs (``finish`` then reads it back).
    """
    stderr: Any = subprocess.PIPE
    if stderr_to is not None:
        stderr = stderr_to.open("w", encoding="utf-8")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "send", str(files.yaml), *args],
            cwd=files.yaml.parent,
            env=dict(env) if env is not None else send_env(base_url),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    finally:
        if stderr_to is not None:
            stderr.close()  # the child has its own copy
    proc.stderr_path = stderr_to  # type: ignore[attr-defined]
    return proc


@dataclass(frozen=True, slots=True)
class Finished:
    code: int
    stdout: str
    stderr: str
    seconds: float  # from the call that waited (not from process start)


def finish(proc: subprocess.Popen[str], timeout: float = 15.0) -> Finished:
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"`campaign send` did not finish in {timeout} s\n{err}") from None
    path: Path | None = getattr(proc, "stderr_path", None)
    if path is not None:
        err = path.read_text(encoding="utf-8")
    return Finished(proc.returncode, out, err or "", time.monotonic() - started)


def run_send(files: CampaignFiles, base_url: str, *args: str, timeout: float = 15.0,
             env: Mapping[str, str] | None = None) -> Finished:
    return finish(start_send(files, base_url, *args, env=env), timeout)


def send_in_process(files: CampaignFiles, base_url: str, *args: str, timeout: float = 15.0,
                    api_key: str = TEST_API_KEY) -> Finished:
    """``campaign send CAMPAIGN ARGS`` through ``runner.cli.main`` in this process, in the
    campaign's folder with the ``KALEYRA_*`` variables ``start_send`` gives the child: what a
    run does against a server, without the interpreter's start-up (over half a second of CPU
    a run). For what is not about the process boundary: signals, kills and a second process on
    the same run need ``start_send``/``run_send``.

    The run has a thread of its own so that a hang fails after ``timeout`` as ``run_send``'s
    does (off the main thread the run installs no signal handlers, which only a signal would
    notice). ``seconds`` is the whole run.
    """
    import io
    import threading

    import pytest

    from runner.cli import main

    out, err = io.StringIO(), io.StringIO()
    result: list[int] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(main(["send", str(files.yaml), *args], stdout=out, stderr=err))
        except BaseException as exc:  # cli.main returns codes; anything else is the test's
            failure.append(exc)

    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("KALEYRA_")]:
            patch.delenv(name)
        for name, value in send_env(base_url, api_key=api_key).items():
            if name.startswith("KALEYRA_"):
                patch.setenv(name, value)
        patch.chdir(files.yaml.parent)
        started = time.monotonic()
        thread = threading.Thread(target=run, name="campaign-send", daemon=True)
        thread.start()
        thread.join(timeout)
        seconds = time.monotonic() - started
        if thread.is_alive():
            raise AssertionError(f"`campaign send` did not finish in {timeout} s\n"
                                 f"{err.getvalue()}")
    if failure:
        raise failure[0]
    return Finished(result[0], out.getvalue(), err.getvalue(), seconds)


def wait_until(condition: Callable[[], bool], *, timeout: float = 8.0, what: str = "",
               proc: subprocess.Popen[str] | None = None) -> None:
    """Poll ``condition`` every 10 ms; fail after ``timeout`` or if ``proc`` ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"`campaign send` ended (exit {proc.returncode}) before "
                                 f"{what or 'the condition'}\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or 'condition'}")
        time.sleep(0.01)


# --------------------------------------------------------------------------- checks


def report_rows(files: CampaignFiles) -> list[dict[str, str]]:
    return list(read_report(files.report))


def statuses(rows: Iterable[Mapping[str, str]]) -> Counter[str]:
    return Counter(r["status"] for r in rows)


def assert_accounted(files: CampaignFiles, rows: Sequence[Mapping[str, str]]) -> None:
    """One report row per data row of the CSV, in order, each for the right phone."""
    with files.csv.open(newline="", encoding="utf-8") as handle:
        data_rows = sum(1 for _ in csv.reader(handle)) - 1
    assert len(rows) == data_rows, f"{len(rows)} report rows for {data_rows} data rows"
    assert [int(r["row"]) for r in rows] == list(range(2, data_rows + 2))
    for row, phone in zip(rows, files.phones, strict=False):
        assert row["phone"] == phone, row


def assert_at_most_once(record: SandboxRecord) -> Counter[str]:
    """Nobody got two messages; returns the deliveries for further checks."""
    got = deliveries(record)
    twice = {n: c for n, c in got.items() if c > 1}
    assert not twice, f"{len(twice)} numbers received more than one message: " \
                      f"{sorted(twice)[:5]}"
    return got


def assert_sent_rows_match(rows: Sequence[Mapping[str, str]], got: Counter[str]) -> None:
    """Every row reported sent was accepted by the server; nothing else was, except unknown."""
    sent = {r["phone"] for r in rows if r["status"] == "sent"}
    unknown = {r["phone"] for r in rows if r["status"] == "unknown"}
    assert sent <= set(got), f"{len(sent - set(got))} rows reported sent never reached the server"
    stray = set(got) - sent - unknown
    assert not stray, f"{len(stray)} numbers reached the server but are reported neither sent " \
                      f"nor unknown: {sorted(stray)[:5]}"


def assert_no_secret(*texts: str, folder: Path | None = None,
                     secret: str = TEST_API_KEY) -> None:
    """The key appears in none of the texts, nor in any file below ``folder`` (bytes)."""
    for text in texts:
        assert secret not in text
    if folder is not None:
        needle = secret.encode()
        for path in folder.rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), f"the API key is in {path}"


def env_without_kaleyra() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KALEYRA_")}
