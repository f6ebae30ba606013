"""Client processes: split the orders, start together, merge what each measured.

One Python process can be the bottleneck of a load test, so drivers run in
``spawn``-ed processes that connect first, wait at a barrier, then run their share
of the orders with their share of the clients.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from typing import Any

from bench.workload import Order, Tally

START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 600.0

Start = Callable[[], Awaitable[None]]
"""Awaited by a client once it is connected: returns when every process is ready."""

Client = Callable[[list[Order], int, Start, Any], Coroutine[Any, Any, tuple[Tally, float, float]]]
"""A client process's work: (orders, concurrency, start, argument) -> (tally, start, end)."""


@dataclass(frozen=True, slots=True)
class Report:
    """What one client process measured; ``cpu_s`` is its own CPU time while driving."""

    tally: Tally
    start: float
    end: float
    cpu_s: float


def _child(
    client: Client,
    orders: list[Order],
    concurrency: int,
    argument: Any,
    barrier: Barrier,
    results: mp.Queue[Report | str],
) -> None:
    cpu: list[float] = []

    async def start() -> None:
        await asyncio.to_thread(barrier.wait, START_TIMEOUT_S)
        cpu.append(time.process_time())

    try:
        tally, t0, t1 = asyncio.run(client(orders, concurrency, start, argument))
        results.put(Report(tally, t0, t1, time.process_time() - cpu[0]))
    except BaseException as err:
        results.put(f"{type(err).__name__}: {err}")
        raise


async def run_clients(
    client: Client, orders: list[Order], clients: int, procs: int, argument: Any
) -> tuple[Tally, float, float]:
    """Run ``client`` in ``procs`` processes over ``orders`` with ``clients`` in all.

    Returns the merged tally, the wall time from the common start to the last
    finish, and the CPU seconds the client processes used while driving.
    """
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs + 1)
    results: mp.Queue[Report | str] = ctx.Queue()
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(
            target=_child,
            args=(client, orders[i::procs], shares[i], argument, barrier, results),
            daemon=True,
        )
        for i in range(procs)
    ]
    for w in workers:
        w.start()
    reports: list[Report] = []
    try:
        await asyncio.to_thread(barrier.wait, START_TIMEOUT_S)
        for _ in workers:
            item = await asyncio.to_thread(results.get, True, RUN_TIMEOUT_S)
            if isinstance(item, str):
                raise RuntimeError(f"a client process failed: {item}")
            reports.append(item)
    except BaseException:  # a client failed or timed out: stop the others
        for w in workers:
            w.kill()
        raise
    finally:
        for w in workers:
            await asyncio.to_thread(w.join, 30.0)
    tally = Tally()
    for r in reports:
        tally.merge(r.tally)
    elapsed = max(r.end for r in reports) - min(r.start for r in reports)
    return tally, elapsed, sum(r.cpu_s for r in reports)
