"""Actors wait for the database at start instead of failing for good."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from actors.layout import when_reachable


def test_a_load_is_retried_while_the_database_cannot_be_reached() -> None:
    attempts: list[int] = []
    waits: list[float] = []

    def load() -> str:
        attempts.append(1)
        if len(attempts) < 5:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
        return "loaded"

    assert when_reachable(load, "shard 0/2", sleep=waits.append) == "loaded"
    assert waits == [0.5, 1.0, 2.0, 4.0]  # doubling, capped at 5 s


def test_other_errors_are_raised_at_once() -> None:
    def load() -> str:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        when_reachable(load, "shard 0/2", sleep=lambda s: pytest.fail("must not wait"))
