"""Load from N concurrent clients: closed loop, or open loop at a fixed arrival rate.

Closed loop: each client sends its next order as soon as its previous one is answered,
so the offered load adapts to the engine. Open loop (``rate``): order ``n`` is due at
``start + n / rate`` and is sent then by a free client (at most ``clients`` in flight);
its latency counts from when it was due, so time spent waiting for a free client when
the engine falls behind is included rather than hidden.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from bench.workload import Order, Tally

Outcome = int | None
"""Units granted by one attempt; None when refused for lack of stock."""


async def drive(
    orders: Iterable[Order],
    clients: int,
    attempt: Callable[[Order], Awaitable[Outcome]],
    rate: float | None = None,
) -> tuple[Tally, float, float]:
    """Run ``attempt`` for every order from ``clients`` concurrent tasks.

    Returns the tally and the monotonic start and end times (seconds). Latency is
    measured around each attempt (from its due time in an open loop), so it includes
    any wait for a pooled resource.
    """
    tally = Tally()
    source: Iterator[tuple[int, Order]] = iter(enumerate(orders))
    start = time.monotonic()

    async def client() -> None:
        clock = time.monotonic
        for n, order in source:
            if rate:
                t0 = start + n / rate
                if (delay := t0 - clock()) > 0:
                    await asyncio.sleep(delay)
            else:
                t0 = clock()
            try:
                units = await attempt(order)
            except Exception as err:  # counted and reported; the run goes on
                tally.latencies_ms.append((clock() - t0) * 1000)
                tally.errors[type(err).__name__] += 1
                continue
            tally.latencies_ms.append((clock() - t0) * 1000)
            if units is None:
                tally.insufficient += 1
            else:
                tally.reserved += 1
                tally.granted_units += units

    await asyncio.gather(*(client() for _ in range(clients)))
    return tally, start, time.monotonic()


def open_loop(rate: float | None) -> str:
    """How a result note says the load was open loop (empty for a closed loop)."""
    return f", open loop at {rate:,.0f} requests/s offered" if rate else ""
