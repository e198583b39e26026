"""A throwaway PostgreSQL cluster for the tests (and the benchmarks): initdb, pg_ctl, removed after.

The server binaries are found in $PG_BINDIR, else the newest /usr/lib/postgresql/*/bin (Debian),
else on PATH. PostgreSQL refuses to run as root, so as root the cluster belongs to an
unprivileged user (``postgres`` when the package made one, else ``nobody``) and every command
runs through ``runuser``. The data folder and the unix socket live in one temporary folder; the
server listens on 127.0.0.1 at a free port, with password (SCRAM) authentication over TCP, so
the URLs the tests use carry a real password that the server checks.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "runner"
PASSWORD = "pg-Secret-4c1e9a"  # distinctive, to search output for leaks


def find_bindir() -> Path | None:
    configured = os.environ.get("PG_BINDIR")
    if configured:
        return Path(configured) if (Path(configured) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class PgCluster:
    """``start()`` makes and starts it, ``stop()``/``start_server()`` for outages, ``remove()``."""

    def __init__(self, bindir: Path, *, fsync: bool = False) -> None:
        self.bindir = bindir
        self.fsync = fsync
        self.user: str | None = None  # the OS user that runs the server, when we are root
        if os.geteuid() == 0:
            self.user = _unprivileged_user()
        self.folder = Path(tempfile.mkdtemp(prefix="campaign-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.started_in = 0.0

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def admin_url(self, database: str = "postgres") -> str:
        """Over the unix socket, where the superuser is trusted (for fixtures only)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.folder}&port={self.port}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n"
                               f"{self._log_tail()}")
        return done

    def start(self) -> PgCluster:
        began = time.monotonic()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        pwfile = self.folder / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.user is not None:
            os.chown(pwfile, pwd.getpwnam(self.user).pw_uid, -1)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")
        pwfile.unlink()
        for attempt in range(5):
            try:
                self.start_server()
                break
            except RuntimeError as failure:
                # The port was free when picked, but another process (a second pytest-xdist
                # worker starting its own cluster) may have taken it since: pick another.
                if attempt == 4 or "could not bind" not in str(failure):
                    raise
                self.port = _free_port()
        self.started_in = time.monotonic() - began
        return self

    def start_server(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=60")
        if not self.fsync:  # commits still reach the server's WAL: only an OS crash loses them
            options += " -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "log"), "-w", "-t", "30", "start")

    def stop_server(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if (self.data / "postmaster.pid").exists():
                self.stop_server("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return "\n".join((self.folder / "log").read_text().splitlines()[-10:])
        except OSError:
            return ""

    def create_database(self, name: str) -> str:
        """A new, empty database: its URL (with the password)."""
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY = FILE_COPY')
        return self.url(name)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "campaign-pg"], check=True)
    return "campaign-pg"
