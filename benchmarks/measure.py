"""Running a command in its own process: wall time, exit code, peak RSS, optional py-spy profile."""

from __future__ import annotations

import collections
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RUNNER = (sys.executable, "-m", "runner")
# A child's ru_maxrss counts the parent's resident pages at fork time (exec takes the old mm's
# high-water mark), so wait4 on a child of this (large) process overstates small runs. GNU time
# is a small parent: the peak it reports for its own child is that child's.
GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True, slots=True)
class Ran:
    code: int
    seconds: float  # wall time from spawn to exit
    max_rss: int  # bytes: the child's peak resident set (GNU time's %M, else wait4's rusage)
    stdout: str
    stderr: str
    profile: Path | None = None


class Profiler:
    """Wraps commands in ``py-spy record`` when a folder for profiles is given."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if folder is not None:
            if not Path(self.py_spy).exists():
                raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
            folder.mkdir(parents=True, exist_ok=True)

    def wrap(self, label: str | None, argv: Sequence[str]) -> tuple[list[str], Path | None]:
        if self.folder is None or label is None:
            return list(argv), None
        out = self.folder / f"{label}.txt"
        return [self.py_spy, "record", "--nonblocking", "-r", "250", "-f", "raw", "-o",
                str(out), "--", *argv], out


class Child:
    """A started command; ``wait()`` reaps it and reads its peak RSS.

    With ``rss=True`` the command runs under GNU time (when installed) for an exact peak; a
    child that will be signalled should not be (SIGTERM would stop time, not the command).
    """

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None, cwd: Path,
                 logs: Path, profile: Path | None = None, rss: bool = False) -> None:
        logs.parent.mkdir(parents=True, exist_ok=True)
        self._out_path = logs.with_suffix(".out")
        self._err_path = logs.with_suffix(".err")
        self._rss_path: Path | None = None
        if rss and Path(GNU_TIME).exists():
            self._rss_path = logs.with_suffix(".rss")
            self._rss_path.unlink(missing_ok=True)
            argv = [GNU_TIME, "-q", "-f", "%M", "-o", str(self._rss_path), *argv]
        self.profile = profile
        self.started = time.monotonic()
        with self._out_path.open("wb") as out, self._err_path.open("wb") as err:
            self.proc = subprocess.Popen(list(argv), env=dict(env) if env is not None else None,
                                         cwd=cwd, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        if self.proc.returncode is not None:
            return False
        pid, _status, _usage = _peek(self.proc.pid)
        return pid == 0

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Signal the command itself: under py-spy, that is py-spy's child."""
        if self.proc.returncode is None:
            os.kill(_leaf(self.proc.pid) if self.profile is not None else self.proc.pid, sig)

    def stderr_text(self) -> str:
        return self._err_path.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float = 1800.0) -> Ran:
        deadline = self.started + timeout
        while True:
            pid, status, usage = _peek(self.proc.pid)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                pid, status, usage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        peak_kb = usage.ru_maxrss
        if self._rss_path is not None:
            with contextlib.suppress(OSError, ValueError):
                peak_kb = int(self._rss_path.read_text().split()[-1])
        return Ran(self.proc.returncode, seconds, peak_kb * 1024,
                   self._out_path.read_text(encoding="utf-8", errors="replace"),
                   self.stderr_text(), self.profile)


def _leaf(pid: int) -> int:
    """The last descendant of ``pid`` (py-spy -> python), or ``pid`` itself."""
    while True:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return pid
        if not children:
            return pid
        pid = int(children[-1])


def _peek(pid: int) -> tuple[int, int, resource.struct_rusage]:
    found_pid, status, usage = os.wait4(pid, os.WNOHANG)
    return found_pid, status, usage


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path, logs: Path,
        timeout: float = 1800.0, profiler: Profiler | None = None,
        label: str | None = None) -> Ran:
    wrapped, profile = (profiler.wrap(label, argv) if profiler is not None
                        else (list(argv), None))
    return Child(wrapped, env=env, cwd=cwd, logs=logs, profile=profile, rss=True).wait(timeout)


def poll(condition: Callable[[], bool], *, timeout: float, every: float = 0.01,
         child: Child | None = None) -> bool:
    """Poll until ``condition()``; False on timeout or when ``child`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or (child is not None and not child.running()):
            return False
        time.sleep(every)
    return True


def summarise_profile(path: Path, top: int = 14) -> list[str]:
    """The runner functions with the most samples in a py-spy raw profile (inclusive)."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        names = {frame.rsplit(":", 1)[0] for frame in stack.split(";")
                 if "runner/" in frame or "tenacity" in frame or "aiohttp/client" in frame}
        for name in names:
            inclusive[name] += n
    if not total:
        return [f"{path.name}: no samples"]
    lines = [f"{path.name}: {total} samples (inclusive share, runner frames)"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return lines
