"""The embedded NATS server `orderhub up` starts: port races and clear failures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hub.embedded import EmbeddedNats


def test_a_port_taken_after_it_was_picked_is_given_up_for_another(
    tmp_path: Path, taken_port: int
) -> None:
    server = EmbeddedNats(tmp_path)
    server.port = taken_port  # as if another program bound it between pick and start
    server.start()
    try:
        assert server.port != taken_port
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
            assert s.recv(4) == b"INFO"
        # Restarts keep the port clients were given.
        port = server.port
        server.stop()
        server.start()
        assert server.port == port
    finally:
        server.stop()


def test_a_port_the_operator_chose_is_not_changed_and_the_failure_says_why(
    tmp_path: Path, taken_port: int
) -> None:
    server = EmbeddedNats(tmp_path, port=taken_port)
    with pytest.raises(RuntimeError, match="address already in use"):
        server.start()
    assert server.port == taken_port
