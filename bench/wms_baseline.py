"""The baseline WMS consumer: one PostgreSQL transaction per event, as most OMSs do it.

A durable JetStream pull consumer fetches batches; every message is then handled in its
own transaction: ``INSERT`` its ``event_id`` into a table of processed events (a repeat
conflicts and changes nothing), ``SELECT … FOR UPDATE`` the stock row, compute the new
on hand (clamped at 0; a count is absolute), ``UPDATE`` it, ``INSERT`` a ledger row,
commit, and only then ack the message.

``workers`` connections work in parallel. Each SKU belongs to one worker (by a hash of
the SKU), so a SKU's events are applied in stream order like the hub applies them (with
any worker taking any message, a count could be overtaken by an older delta). The
consumer runs in its own process, like a service would; it reports what it did through
shared counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import nats
import psycopg
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from orderhub.v1 import wms_pb2

SUBJECT_PREFIX = "wmsbase.events"
STREAM = "WMSBASE"
CONSUMER = "bench-baseline"
START_TIMEOUT_S = 120.0

SCHEMA = """
CREATE TABLE wms_baseline_stock (
    sku varchar(64) NOT NULL,
    warehouse_id varchar(64) NOT NULL,
    on_hand bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, warehouse_id)
);
CREATE TABLE wms_baseline_processed (
    event_id varchar(128) PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE wms_baseline_ledger (
    entry_id bigserial PRIMARY KEY,
    event_id varchar(128) NOT NULL,
    sku varchar(64) NOT NULL,
    warehouse_id varchar(64) NOT NULL,
    kind varchar(16) NOT NULL,
    on_hand_delta bigint NOT NULL,
    on_hand_after bigint NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX ix_wms_baseline_ledger_level ON wms_baseline_ledger (sku, warehouse_id);
"""

_MARK = (
    "INSERT INTO wms_baseline_processed (event_id) VALUES (%s) ON CONFLICT (event_id) DO NOTHING"
)
_LOCK = "SELECT on_hand FROM wms_baseline_stock WHERE sku = %s AND warehouse_id = %s FOR UPDATE"
_SET = (
    "UPDATE wms_baseline_stock SET on_hand = %s, updated_at = now() "
    "WHERE sku = %s AND warehouse_id = %s"
)
_LEDGER = (
    "INSERT INTO wms_baseline_ledger (event_id, sku, warehouse_id, kind, on_hand_delta, "
    "on_hand_after, occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_KIND = {
    wms_pb2.WMS_EVENT_TYPE_INBOUND: ("INBOUND", 1),
    wms_pb2.WMS_EVENT_TYPE_OUTBOUND: ("OUTBOUND", -1),
    wms_pb2.WMS_EVENT_TYPE_TRANSFER_IN: ("TRANSFER_IN", 1),
    wms_pb2.WMS_EVENT_TYPE_TRANSFER_OUT: ("TRANSFER_OUT", -1),
    wms_pb2.WMS_EVENT_TYPE_DAMAGE: ("DAMAGE", -1),
    wms_pb2.WMS_EVENT_TYPE_COUNT: ("COUNT", 0),
}

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


def create_tables(conninfo: str, stock: dict[tuple[str, str], int]) -> None:
    """(Re)create the baseline's tables and its starting stock."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "DROP TABLE IF EXISTS wms_baseline_stock, wms_baseline_processed, wms_baseline_ledger"
        )
        conn.execute(SCHEMA)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO wms_baseline_stock (sku, warehouse_id, on_hand) VALUES (%s, %s, %s)",
                [(sku, wh, n) for (sku, wh), n in stock.items()],
            )


@dataclass
class Shared:
    """Counters the consumer process updates and the benchmark reads."""

    applied: Synchronized[int]
    duplicates: Synchronized[int]
    errors: Synchronized[int]
    last_applied_wall: Synchronized[float]
    cpu_s: Synchronized[float]

    @classmethod
    def create(cls) -> Shared:
        """Counters in shared memory (one writer, so no locks)."""
        ctx = mp.get_context("spawn")
        return cls(
            ctx.Value("q", 0, lock=False),
            ctx.Value("q", 0, lock=False),
            ctx.Value("q", 0, lock=False),
            ctx.Value("d", 0.0, lock=False),
            ctx.Value("d", 0.0, lock=False),
        )


class _Unknown(Exception):
    """No stock row for the event's SKU and warehouse."""


async def _handle(conn: Conn, event: wms_pb2.WmsEvent) -> bool:
    """Apply one event in its own transaction; False when it was a repeat."""
    kind, sign = _KIND[event.type]
    async with conn.transaction():
        marked = await conn.execute(_MARK, (event.event_id,))
        if marked.rowcount == 0:
            return False
        row = await (await conn.execute(_LOCK, (event.sku, event.warehouse_id))).fetchone()
        if row is None:
            raise _Unknown(f"{event.sku}@{event.warehouse_id}")
        before = int(row[0])
        after = event.quantity if sign == 0 else max(0, before + sign * event.quantity)
        await conn.execute(_SET, (after, event.sku, event.warehouse_id))
        await conn.execute(
            _LEDGER,
            (
                event.event_id,
                event.sku,
                event.warehouse_id,
                kind,
                after - before,
                after,
                event.occurred_at.ToDatetime(tzinfo=UTC),
            ),
        )
    return True


async def _worker(
    conninfo: str, queue: asyncio.Queue[tuple[Msg, wms_pb2.WmsEvent] | None], shared: Shared
) -> None:
    conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    try:
        while (item := await queue.get()) is not None:
            msg, event = item
            try:
                fresh = await _handle(conn, event)
            except _Unknown:
                shared.errors.value += 1
                await msg.term()
                continue
            await msg.ack()
            if fresh:
                shared.applied.value += 1
                shared.last_applied_wall.value = time.time()
            else:
                shared.duplicates.value += 1
    finally:
        await conn.close()


async def _consume(
    nats_url: str,
    conninfo: str,
    workers: int,
    fetch: int,
    shared: Shared,
    ready: MpEvent,
    stop: MpEvent,
) -> None:
    nc = await nats.connect(nats_url, name="bench-wms-baseline")
    js = nc.jetstream()
    config = ConsumerConfig(
        durable_name=CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=120.0,
        max_ack_pending=20_000,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=f"{SUBJECT_PREFIX}.>",
        max_deliver=-1,
    )
    sub = await js.pull_subscribe(
        f"{SUBJECT_PREFIX}.>", durable=CONSUMER, stream=STREAM, config=config
    )
    queues: list[asyncio.Queue[tuple[Msg, wms_pb2.WmsEvent] | None]] = [
        asyncio.Queue(maxsize=4 * fetch // workers + 16) for _ in range(workers)
    ]
    tasks = [asyncio.create_task(_worker(conninfo, q, shared)) for q in queues]
    ready.set()
    cpu0 = time.process_time()
    try:
        while not stop.is_set():
            try:
                msgs: Sequence[Msg] = await sub.fetch(fetch, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                shared.cpu_s.value = time.process_time() - cpu0
                continue
            for msg in msgs:
                event = wms_pb2.WmsEvent.FromString(msg.data)
                queue = queues[zlib.crc32(event.sku.encode()) % workers]
                await queue.put((msg, event))
            shared.cpu_s.value = time.process_time() - cpu0
            for t in tasks:
                if t.done():
                    t.result()  # a worker died: raise its error
    finally:
        for q in queues:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        await asyncio.gather(*tasks, return_exceptions=True)
        shared.cpu_s.value = time.process_time() - cpu0
        await nc.close()


def _consumer_main(
    nats_url: str,
    conninfo: str,
    workers: int,
    fetch: int,
    shared: Shared,
    ready: MpEvent,
    stop: MpEvent,
) -> None:
    asyncio.run(_consume(nats_url, conninfo, workers, fetch, shared, ready, stop))


class BaselineConsumer:
    """The baseline consumer's process."""

    def __init__(self, nats_url: str, conninfo: str, workers: int, fetch: int) -> None:
        ctx = mp.get_context("spawn")
        self.shared = Shared.create()
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self.workers = workers
        self.fetch = fetch
        self._proc = ctx.Process(
            target=_consumer_main,
            args=(nats_url, conninfo, workers, fetch, self.shared, self._ready, self._stop),
            daemon=True,
            name="bench-wms-baseline",
        )

    async def start(self) -> None:
        """Start the process and wait until its consumer and connections are up."""
        self._proc.start()
        if not await asyncio.to_thread(self._ready.wait, START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("the baseline consumer did not start")

    def check(self) -> None:
        """Raise if the process died."""
        if not self._proc.is_alive():
            raise RuntimeError(f"the baseline consumer exited with {self._proc.exitcode}")

    def stop(self) -> None:
        """Ask it to finish and wait; kill it if it does not."""
        self._stop.set()
        self._proc.join(30.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10.0)
