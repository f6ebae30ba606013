"""Concurrent calls made one: many requests, one database round.

A request joins the queue; when no round is running (or fewer than ``max_in_flight``), the
queue goes to the database as one call in a worker thread. While it runs, new requests
gather for the next one. Under load a round carries many requests, so the fixed cost of a
transaction (a connection, a commit, a round trip per statement) is paid once for all of
them; when idle a request goes at once, alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    """Runs ``work(items) -> answers`` (blocking, in a thread) for queued items at once.

    ``work`` answers each item in order with its result, or with an exception instance
    that is raised to that item's caller alone; an exception raised by ``work`` itself
    fails every item of the round.
    """

    def __init__(
        self,
        work: Callable[[Sequence[In]], Sequence[Out | BaseException]],
        *,
        max_batch: int = 500,
        max_in_flight: int = 2,
    ) -> None:
        self._work = work
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._in_flight = 0
        self.rounds = 0
        self.items = 0

    async def submit(self, item: In) -> Out:
        """Queue one item and wait for its answer."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._in_flight += 1
            self.rounds += 1
            self.items += len(batch)
            asyncio.get_running_loop().create_task(self._round(batch))

    async def _round(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            answers = await asyncio.to_thread(self._work, [item for item, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for {len(batch)} requests")
        except BaseException as err:  # the round failed as a whole: so does every item
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            if not isinstance(err, Exception):
                raise
        else:
            for (_, future), answer in zip(batch, answers, strict=True):
                if future.done():
                    continue
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
        finally:
            self._in_flight -= 1
            self._kick()
