"""The Ray head `orderhub up` starts: a port taken before the head binds it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from hub.embedded import EmbeddedRay

pytestmark = pytest.mark.slow


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_a_head_that_could_not_bind_starts_again_on_another_port(
    tmp_path: Path, taken_port: int
) -> None:
    head = EmbeddedRay(tmp_path, num_cpus=1)
    head.port = taken_port  # as if another program bound it between pick and start
    head.start()
    try:
        deadline = time.monotonic() + 120
        # What the hub does while it tries to join: check, and read the address again.
        while not (head.port != taken_port and _accepts(head.port)):
            assert time.monotonic() < deadline, "the head never came up on another port"
            head.check()
            time.sleep(0.2)  # polling a child process: there is no event to await
        assert head.address == f"127.0.0.1:{head.port}"
    finally:
        head.stop()
