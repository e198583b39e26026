"""The sandbox in its own process (``python -m runner sandbox``), and talking to it over loopback.

Client and server each get a core of their own this way: in one process they would share one
event loop and every figure would measure both.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from runner.sandbox import SANDBOX_SID

BENCH_API_KEY = "bench-key-3c1f0a"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


class SandboxProcess:
    """``with SandboxProcess() as sb:`` starts the server and waits until it answers."""

    def __init__(self, *, region: str = "IN", log: Path | None = None) -> None:
        self.port = free_port()
        self.region = region
        self.base_url = f"http://{HOST}:{self.port}"
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout: float = 15.0) -> None:
        out: Any = subprocess.DEVNULL
        if self._log is not None:
            self._log.parent.mkdir(parents=True, exist_ok=True)
            out = self._log.open("wb")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "runner", "sandbox", "--host", HOST,
                 "--port", str(self.port), "--region", self.region,
                 "--api-key", BENCH_API_KEY, "--sid", SANDBOX_SID],
                stdout=out, stderr=subprocess.STDOUT, env=clean_env(),
            )
        finally:
            if self._log is not None:
                out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited at start (code {self._proc.returncode})")
            try:
                self.reset()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the sandbox did not answer in time") from None
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- control endpoints --

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.base_url}/_sandbox/reset", data=b"",
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()

    def record(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/_sandbox/record", timeout=120) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def arrivals(self) -> list[float]:
        """Arrival times (the sandbox's monotonic clock) of every POST /sms, in order."""
        return [float(r["at"]) for r in self.record()["requests"]]

    def env(self) -> dict[str, str]:
        """Environment for a `campaign send` pointed at this sandbox."""
        env = clean_env()
        env.update({"KALEYRA_BASE_URL": self.base_url, "KALEYRA_SID": SANDBOX_SID,
                    "KALEYRA_API_KEY": BENCH_API_KEY})
        return env


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KALEYRA_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env
