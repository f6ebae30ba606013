"""Concurrent calls made one: items queued while a round runs travel together."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from hub.batching import Batcher


async def test_items_queued_during_a_round_travel_in_the_next_one() -> None:
    gate = threading.Event()
    rounds: list[list[int]] = []

    def work(items: Sequence[int]) -> list[int | BaseException]:
        if not rounds:
            gate.wait(5)  # hold the first round until the others have queued
        rounds.append(list(items))
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(work, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0)  # let the first round start
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 0
    answers = await asyncio.gather(*rest, return_exceptions=True)
    assert [a if isinstance(a, int) else str(a) for a in answers] == [
        "odd 1",
        20,
        "odd 3",
        40,
        "odd 5",
    ]
    assert rounds == [[0], [1, 2, 3, 4, 5]]


async def test_a_failed_round_fails_each_of_its_items() -> None:
    def work(items: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("database away")

    batcher: Batcher[int, int] = Batcher(work)
    with pytest.raises(ConnectionError):
        await batcher.submit(1)
    # The batcher is still usable afterwards.
    with pytest.raises(ConnectionError):
        await batcher.submit(2)
