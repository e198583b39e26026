"""The sandbox server on its own event loop in a daemon thread, for tests, benchmarks and
`campaign send --sandbox`: ``with SandboxThread() as sandbox: ... sandbox.base_url``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from runner.faults import DEFAULT_HOST, SANDBOX_API_KEY, SANDBOX_SID, Faults
from runner.sandbox import SandboxRecord, SandboxServer


class SandboxThread:
    """The server on its own event loop in a daemon thread; a context manager.

    ``record`` is live while running (lists only grow); read it after ``stop()`` or fetch
    GET /_sandbox/record for a consistent copy.
    """

    def __init__(self, *, host: str = DEFAULT_HOST, port: int = 0,
                 api_key: str = SANDBOX_API_KEY, sid: str = SANDBOX_SID, region: str = "IN",
                 faults: Faults | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.server = SandboxServer(api_key=api_key, sid=sid, region=region, faults=faults,
                                    clock=clock)
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def record(self) -> SandboxRecord:
        return self.server.record

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="kaleyra-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the sandbox did not start in time")
        if self._failure is not None:
            self._thread.join()
            failure, self._failure = self._failure, None
            raise failure

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self.server.start(self._host, self._port))
            except BaseException as exc:  # reported to start() in the caller's thread
                self._failure = exc
                return
            self._loop = loop
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._ready.set()
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
