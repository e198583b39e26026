"""`campaign sandbox`: the sandbox's command-line flags and running it in the foreground.

The fault flags are shared with `campaign send --sandbox`, which starts the same server
in-process (``runner.sandbox.SandboxThread``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, TextIO

from runner.errors import InputError
from runner.faults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    FAULT_KINDS,
    SANDBOX_API_KEY,
    SANDBOX_SID,
    Faults,
)
from runner.model import TYPES_BY_REGION

if TYPE_CHECKING:  # the server (aiohttp) is imported only to serve, not to parse flags
    from runner.sandbox import SandboxServer


def add_sandbox_arguments(parser: argparse.ArgumentParser, *, faults_only: bool = False) -> None:
    """The flags of ``campaign sandbox``; ``faults_only`` for commands that start it in-process."""
    if not faults_only:
        parser.add_argument("--host", default=DEFAULT_HOST,
                            help=f"address to listen on (default {DEFAULT_HOST})")
        parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                            help=f"port to listen on, 0 for any free one (default {DEFAULT_PORT})")
        parser.add_argument("--region", choices=sorted(TYPES_BY_REGION), default="IN",
                            help="the region whose route types are accepted (default IN)")
        parser.add_argument("--api-key", default=SANDBOX_API_KEY,
                            help=f"the key clients must send (default {SANDBOX_API_KEY})")
        parser.add_argument("--sid", default=SANDBOX_SID,
                            help=f"the account SID in the path (default {SANDBOX_SID})")
    group = parser.add_argument_group(
        "sandbox fault options", "trouble the sandbox injects, to rehearse a bad day "
        "(`campaign sandbox`, or `campaign send --sandbox`)")
    for kind in FAULT_KINDS:
        flag = kind.replace("_", "-")
        what = _WHAT.get(kind, f"HTTP {kind}")
        group.add_argument(f"--every-{flag}", dest=f"every_{kind}", type=_count, default=0,
                           metavar="N", help=f"answer every Nth request with {what}")
        group.add_argument(f"--rate-{flag}", dest=f"rate_{kind}", type=_probability,
                           default=0.0, metavar="P", help=f"answer with {what} with probability P")
    group.add_argument("--retry-after", type=_retry_after, default=1.0, metavar="S",
                       help="Retry-After seconds sent with 429, or 'none' (default 1)")
    group.add_argument("--retry-after-text", metavar="TEXT",
                       help="Retry-After sent verbatim with 429 and 503 (e.g. 999999, or an "
                       "HTTP date)")
    defaults = Faults()
    group.add_argument("--huge-bytes", type=_count, default=defaults.huge_bytes, metavar="N",
                       help=f"body size of --every-huge answers (default {defaults.huge_bytes})")
    group.add_argument("--trickle-interval", type=_nonnegative,
                       default=defaults.trickle_interval, metavar="S",
                       help="seconds between the bytes of a --every-trickle answer "
                       f"(default {defaults.trickle_interval:g})")
    group.add_argument("--keepalive", type=_positive, metavar="S",
                       help="a request on a connection idle S seconds is dropped unread (a "
                       "short keep-alive)")
    group.add_argument("--latency", type=_nonnegative, default=0.0, metavar="S",
                       help="seconds to wait before every answer")
    group.add_argument("--slow-every", type=_count, default=0, metavar="N",
                       help="every Nth request waits --slow-latency more")
    group.add_argument("--slow-latency", type=_nonnegative, default=0.0, metavar="S",
                       help="the extra seconds of --slow-every (default 0)")
    group.add_argument("--seed", type=int, default=0, help="seed for the --rate-* draws")


_WHAT = {
    "drop_before": "a dropped connection (drop-before)",
    "drop_after": "a dropped connection (drop-after)",
    "redirect": "a 307 redirect",
    "500_after": "HTTP 500 with E103 after accepting it",
    "502_after": "HTTP 502 after accepting it",
    "504_after": "HTTP 504 after accepting it",
    "huge": "a huge 200 after accepting it (--huge-bytes)",
    "trickle": "a 200 trickled out after accepting it (--trickle-interval)",
}


def faults_from_args(ns: argparse.Namespace) -> Faults:
    values = {f.name: getattr(ns, f.name) for f in fields(Faults) if hasattr(ns, f.name)}
    return Faults(**values)


def serve(host: str, port: int, *, faults: Faults, region: str, api_key: str, sid: str,
          out: TextIO | None = None) -> None:
    """Run in the foreground until Ctrl-C or SIGTERM. InputError if the port cannot be used."""
    stream = out if out is not None else sys.stdout
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        asyncio.run(_serve(host, port, faults=faults, region=region, api_key=api_key, sid=sid,
                           out=stream))
    print("sandbox stopped", file=stream, flush=True)


def serve_from_args(ns: argparse.Namespace) -> None:
    serve(ns.host, ns.port, faults=faults_from_args(ns), region=ns.region, api_key=ns.api_key,
          sid=ns.sid)


async def _serve(host: str, port: int, *, faults: Faults, region: str, api_key: str, sid: str,
                 out: TextIO) -> None:
    from runner.sandbox import SandboxServer

    server = SandboxServer(api_key=api_key, sid=sid, region=region, faults=faults)
    try:
        await server.start(host, port)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, non-main thread
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    for line in _banner(server, region, faults):
        print(line, file=out, flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def _banner(server: SandboxServer, region: str, faults: Faults) -> Iterator[str]:
    yield f"Kaleyra sandbox on {server.base_url} (region {region}, SID {server.sid})"
    yield "Point the runner at it with:"
    yield f"  export KALEYRA_BASE_URL={server.base_url}"
    yield f"  export KALEYRA_SID={server.sid}"
    yield f"  export KALEYRA_API_KEY={server.api_key}"
    active = [f"{f.name}={getattr(faults, f.name)}" for f in fields(Faults)
              if f.name not in ("retry_after", "seed", "huge_bytes", "trickle_interval")
              and getattr(faults, f.name)]
    if active:
        yield "Faults: " + ", ".join(active)
    yield "Press Ctrl-C to stop."


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _port(text: str) -> int:
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0-65535)")
    return value


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def _positive(text: str) -> float:
    value = _nonnegative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return value


def _probability(text: str) -> float:
    value = _nonnegative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability (0 to 1)")
    return value


def _retry_after(text: str) -> float | None:
    return None if text.strip().lower() == "none" else _nonnegative(text)
