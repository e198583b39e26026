"""Shared fixtures. The autouse guard makes sure no test ever reaches the internet or Kaleyra."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest


def _is_loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def block_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise NetworkBlocked(f"test tried to reach {address!r}: only loopback is allowed")
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise NetworkBlocked(f"test tried to reach {address!r}: only loopback is allowed")
        return real_connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # Name lookups would leave the machine too; loopback names and literals are fine.
        if host not in (None, "localhost") and not _is_loopback((host, 0)):
            raise NetworkBlocked(f"test tried to resolve {host!r}: only loopback is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield


@pytest.fixture(autouse=True)
def clean_kaleyra_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see a developer's real credentials or base URL."""
    for name in ("KALEYRA_API_KEY", "KALEYRA_SID", "KALEYRA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


# --- a real PostgreSQL for the state store's tests ------------------------------------------------

REQUIRE_POSTGRES = "CAMPAIGN_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A throwaway cluster for the session; skipped (with the reason) where the server binaries
    or psycopg are missing, unless $CAMPAIGN_REQUIRE_POSTGRES=1 (CI), where that is a failure."""
    import os

    from tests.pgcluster import PgCluster, find_bindir

    required = os.environ.get(REQUIRE_POSTGRES) == "1"
    bindir = find_bindir()
    missing = None
    if bindir is None:
        missing = ("no PostgreSQL server binaries (initdb, pg_ctl) found: install the "
                   "postgresql package, or set PG_BINDIR")
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing = "psycopg is not installed: pip install -e '.[test]'"
    if missing is not None:
        if required:
            pytest.fail(f"{REQUIRE_POSTGRES}=1 but {missing}", pytrace=False)
        pytest.skip(missing)
    assert bindir is not None
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(pg_cluster: Any, request: pytest.FixtureRequest) -> str:
    """The URL (with its password) of a new, empty database for this test."""
    import re
    import uuid

    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    url: str = pg_cluster.create_database(name)
    return url
