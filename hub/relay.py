"""Hub → NATS: the outbox relay.

Every change that others must hear of is written to the ``outbox`` table in the same
transaction as the change itself. The relay publishes those rows to JetStream in order,
each with its stored id as ``Nats-Msg-Id``, and deletes a row only once the stream has
acknowledged it. A crash between publish and delete republishes the message with the
same id, which the stream drops as a duplicate (within its duplicate window; consumers
that keep messages longer can also de-duplicate on ``msg_id`` in the body).

With several hub processes on PostgreSQL, one relay at a time holds an advisory lock
and publishes; the others wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from sqlalchemy import Connection, Engine, delete, func, select, text

from hub.store import schema
from hub.streams import ensure_stream

log = logging.getLogger("orderhub.relay")

SUBJECTS = ["oms.>"]
#: Any fixed number identifies the relay's advisory lock on PostgreSQL.
RELAY_LOCK = 0x0DE7_0B0C


@dataclass(frozen=True, slots=True)
class Pending:
    """An outbox row waiting to be published."""

    seq: int
    subject: str
    msg_id: str
    payload: bytes


def pending(engine: Engine, limit: int) -> list[Pending]:
    """The oldest outbox rows."""
    t = schema.outbox
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.seq, t.c.subject, t.c.msg_id, t.c.payload).order_by(t.c.seq).limit(limit)
        )
        return [Pending(int(r.seq), r.subject, r.msg_id, bytes(r.payload)) for r in rows]


def forget(engine: Engine, seqs: Sequence[int]) -> None:
    """Delete published rows."""
    if seqs:
        with engine.begin() as conn:
            conn.execute(delete(schema.outbox).where(schema.outbox.c.seq.in_(list(seqs))))


def backlog(engine: Engine) -> int:
    """How many messages wait to be published."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.outbox)).scalar() or 0)


def backlog_age(engine: Engine) -> tuple[int, datetime | None]:
    """How many messages wait to be published, and when the oldest of them was written."""
    t = schema.outbox
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), func.min(t.c.created_at))).one()
    return int(row[0] or 0), row[1]


class OutboxRelay:
    """Publishes the outbox to JetStream until stopped."""

    def __init__(
        self,
        nc: NatsClient,
        engine: Engine,
        *,
        stream: str = "OMS",
        batch: int = 500,
        idle_s: float = 0.05,
    ) -> None:
        self._js = nc.jetstream()
        self.engine = engine
        self._engine = engine
        self.stream = stream
        self._batch = batch
        self._idle_s = idle_s
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock_conn: Connection | None = None
        self._empty_passes = 0  # passes that found nothing to publish
        self._passed = asyncio.Condition()
        self.published = 0
        #: Told of every batch once it is published and removed from the outbox (metrics).
        self.on_published: Callable[[Sequence[Pending]], None] | None = None

    async def start(self) -> None:
        """Find or create the stream for ``oms.>`` and start relaying."""
        self.stream = await ensure_stream(self._js, self.stream, SUBJECTS)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Publish what is waiting (briefly), then stop; the rest goes out on the next start."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            await asyncio.to_thread(conn.close)

    def wake(self) -> None:
        """Look at the outbox now rather than at the next idle tick."""
        self._wake.set()

    async def drained(self, timeout_s: float = 10.0) -> None:
        """Wait until a pass that began after this call found the outbox empty."""
        target = self._empty_passes + 2  # the pass under way may have begun before
        self.wake()
        async with self._passed:
            await asyncio.wait_for(
                self._passed.wait_for(lambda: self._empty_passes >= target), timeout_s
            )

    async def _run(self) -> None:
        failures = 0
        while True:
            stopping = self._stopping.is_set()
            try:
                if not await asyncio.to_thread(self._leading):
                    if stopping:
                        return
                    await self._idle(1.0)
                    continue
                sent = await self.relay_once()
                failures = 0
                if not sent:
                    async with self._passed:
                        self._empty_passes += 1
                        self._passed.notify_all()
            except Exception as err:  # NATS or the database is away: keep the rows, retry
                failures += 1
                log.warning("outbox relay failed (%d): %s", failures, err)
                if stopping:
                    return
                await self._idle(min(0.1 * 2**failures, 5.0))
                continue
            if stopping and sent < self._batch:
                return
            if sent < self._batch:
                await self._idle(self._idle_s)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def _leading(self) -> bool:
        """Whether this relay may publish (always, except another holds the PG lock)."""
        if self._engine.dialect.name != "postgresql":
            return True
        if self._lock_conn is not None:
            return True
        conn = self._engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK}).scalar()
        conn.commit()
        if got:
            self._lock_conn = conn  # the lock lives as long as this session
            return True
        conn.close()
        return False

    async def relay_once(self) -> int:
        """Publish one batch of the outbox; returns how many messages went out."""
        rows = await asyncio.to_thread(pending, self._engine, self._batch)
        if not rows:
            return 0
        acks: list[Any] = await asyncio.gather(
            *(
                self._js.publish(
                    row.subject,
                    row.payload,
                    headers={"Nats-Msg-Id": row.msg_id, "Content-Type": "application/json"},
                    timeout=5.0,
                )
                for row in rows
            ),
            return_exceptions=True,
        )
        done = [
            row.seq for row, ack in zip(rows, acks, strict=True) if not isinstance(ack, Exception)
        ]
        await asyncio.to_thread(forget, self._engine, done)
        self.published += len(done)
        if self.on_published is not None and done:
            sent = set(done)
            self.on_published([row for row in rows if row.seq in sent])
        failed = [ack for ack in acks if isinstance(ack, Exception)]
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {len(rows)} messages not acknowledged: {failed[0]}"
            )
        return len(done)
