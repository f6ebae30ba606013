"""The baseline: a row lock per reservation, as most order management systems do it.

Each reservation is one PostgreSQL transaction: ``SELECT … FOR UPDATE`` the stock
rows (in SKU order, so two-SKU orders cannot deadlock), check availability, update
``reserved``, insert the reservation and its lines, commit. The rows written are the
same ones OrderHub persists, so the database's books are checked the same way.
Clients share a fixed pool of psycopg 3 async connections.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import cast

import psycopg

from bench.drive import Outcome, drive, open_loop
from bench.procs import Start, run_clients
from bench.workload import WAREHOUSE_ID, Order, Result, Tally, Workload

TTL = timedelta(seconds=900)

_LOCK = (
    "SELECT sku, on_hand - reserved - coalesce(safety_stock, 0) FROM stock_levels "
    "WHERE warehouse_id = %s AND sku = ANY(%s) ORDER BY sku FOR UPDATE"
)
_TAKE = "UPDATE stock_levels SET reserved = reserved + 1 WHERE warehouse_id = %s AND sku = ANY(%s)"
_RESERVATION = (
    "INSERT INTO reservations (order_id, reservation_id, status, primary_sku, lines, "
    "expires_at, created_at) VALUES (%s, %s, 'HELD', %s, %s, %s, %s)"
)
_LINE_VALUES = "(%s, %s, %s, %s, %s, 1, 'HELD', %s, %s, %s)"
_LINES = {
    n: "INSERT INTO reservation_lines (order_id, line_no, reservation_id, sku, warehouse_id, "
    "quantity, status, primary_sku, expires_at, created_at) VALUES " + ", ".join([_LINE_VALUES] * n)
    for n in (1, 2, 3, 4)
}


Conn = psycopg.AsyncConnection[tuple[object, ...]]


class ConnectionPool:
    """A fixed set of open connections, handed to waiting clients first come, first served."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._size = size
        self._idle: list[Conn] = []
        self._waiting: deque[asyncio.Future[Conn]] = deque()
        self._all: list[Conn] = []

    async def open(self) -> None:
        """Open every connection up front (not timed)."""
        for _ in range(self._size):
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            self._all.append(conn)
            self._idle.append(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """Borrow a connection until the block ends (waiting in line if none is idle)."""
        if self._idle and not self._waiting:
            conn = self._idle.pop()
        else:
            turn: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            conn = await turn
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _give_back(self, conn: Conn) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(conn)  # straight to the longest waiter: no overtaking
                return
        self._idle.append(conn)

    async def close(self) -> None:
        """Close every connection."""
        for conn in self._all:
            await conn.close()


async def reserve(pool: ConnectionPool, order: Order) -> Outcome:
    """Hold one unit of each SKU of the order, or nothing."""
    skus = sorted(order.skus)
    now = datetime.now(UTC).replace(tzinfo=None)
    expires = now + TTL
    reservation_id = "rsv_" + uuid.uuid4().hex[:24]
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(_LOCK, (WAREHOUSE_ID, skus))
        rows = cast(list[tuple[str, int]], await cur.fetchall())
        if len(rows) != len(skus) or any(available < 1 for _, available in rows):
            raise _Refused  # leaving the block rolls the transaction back
        await conn.execute(_TAKE, (WAREHOUSE_ID, skus))
        lines = [[n, sku, WAREHOUSE_ID, 1] for n, sku in enumerate(order.skus, start=1)]
        await conn.execute(
            _RESERVATION,
            (
                order.order_id,
                reservation_id,
                skus[0],
                json.dumps(lines, separators=(",", ":")),
                expires,
                now,
            ),
        )
        params: list[object] = []
        for n, sku in enumerate(order.skus, start=1):
            params += [order.order_id, n, reservation_id, sku, WAREHOUSE_ID, skus[0], expires, now]
        await conn.execute(_LINES[len(order.skus)], params)
    return len(order.skus)


class _Refused(Exception):
    """Not enough stock: the transaction rolls back."""


async def baseline_client(
    orders: list[Order], concurrency: int, start: Start, setup: tuple[str, int, float | None]
) -> tuple[Tally, float, float]:
    """One client process: ``concurrency`` clients sharing a pool of connections."""
    conninfo, pool_size, rate = setup
    pool = ConnectionPool(conninfo, pool_size)
    await pool.open()

    async def attempt(order: Order) -> Outcome:
        try:
            return await reserve(pool, order)
        except _Refused:
            return None

    try:
        await start()
        return await drive(orders, concurrency, attempt, rate)
    finally:
        await pool.close()


async def run(
    conninfo: str,
    workload: Workload,
    clients: int,
    pool_size: int,
    procs: int,
    rate: float | None = None,
) -> Result:
    """Run one workload against PostgreSQL row locks from ``procs`` client processes."""
    per_proc = max(1, pool_size // procs)
    setup = (conninfo, per_proc, rate / procs if rate else None)
    tally, elapsed, cpu_s = await run_clients(
        baseline_client, workload.orders, clients, procs, setup
    )
    note = (
        f"{clients} clients in {procs} process(es){open_loop(rate)}, "
        f"{per_proc * procs} psycopg connections ({per_proc} per process), "
        f"client CPU {cpu_s:.1f}s"
    )
    return Result("baseline (PG row lock)", workload, elapsed, tally, note)
