from __future__ import annotations

import socket

import pytest

from tests.conftest import NetworkBlocked


def test_guard_refuses_a_public_address() -> None:
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect(("93.184.216.34", 443))


def test_guard_refuses_name_lookups_of_kaleyra() -> None:
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("api.in.kaleyra.io", 443)


def test_guard_lets_loopback_through() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())
