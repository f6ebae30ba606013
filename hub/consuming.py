"""A durable JetStream pull consumer: fetch in batches, hand each batch over, keep poison.

Subclasses say what a batch means (:meth:`DurableConsumer.handle`); this class finds or
creates the stream and the consumer, fetches, retries after failures, stores messages
that can never be applied as dead letters and terminates them, so they neither block the
stream nor get lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from hub.store.dead_letters import DeadLetters, NewLetter
from hub.streams import ensure_stream

log = logging.getLogger("orderhub.consuming")

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Poison:
    """Why a message can never be applied as it is."""

    code: str
    reason: str
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a durable consumer stands in its stream."""

    connected: bool
    #: Messages not yet delivered, and delivered but not yet acknowledged.
    pending: int
    ack_pending: int
    #: When the oldest message not yet acknowledged reached the stream; None when none waits.
    oldest_waiting_at: datetime | None


class DurableConsumer(Generic[C]):
    """Consumes one subject filter of a stream through a durable pull consumer."""

    #: The ``source`` of the dead letters this consumer keeps.
    source = ""
    #: What the consumer is for, shown in the stream's consumer list.
    description = ""

    def __init__(
        self,
        nc: NatsClient,
        dead_letters: DeadLetters,
        counters: C,
        *,
        stream: str,
        subjects: list[str],
        consumer: str,
        deliver_new: bool = False,
        batch: int = 500,
        ack_wait_s: float = 10.0,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._dead = dead_letters
        self.counters = counters
        self.stream = stream
        self.subjects = subjects
        self.consumer = consumer
        self._deliver_new = deliver_new
        self._batch = batch
        self._ack_wait_s = ack_wait_s
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._progress = asyncio.Condition()

    async def start(self) -> None:
        """Find or create the stream and the durable consumer, then start consuming."""
        self.stream = await ensure_stream(self._js, self.stream, self.subjects)
        await self._ensure_consumer()
        self._sub = await self._js.pull_subscribe_bind(
            durable=self.consumer, stream=self.stream, name=self.consumer
        )
        self._task = asyncio.get_running_loop().create_task(self._run())
        where = {"stream": self.stream, "consumer": self.consumer}
        log.info("consuming %s", self.subjects[0], extra=where)

    async def _ensure_consumer(self) -> None:
        """Create the durable consumer, or bring an existing one's delivery limits up to date.

        At most one batch is ever unacknowledged (``max_ack_pending``): after a crash the
        stream redelivers that batch before anything newer, so messages are still applied
        in the order they were published.
        """
        try:
            info = await self._js.consumer_info(self.stream, self.consumer)
        except NotFoundError:
            config = ConsumerConfig(
                durable_name=self.consumer,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self._ack_wait_s,
                max_ack_pending=self._batch,
                deliver_policy=DeliverPolicy.NEW if self._deliver_new else DeliverPolicy.ALL,
                filter_subject=self.subjects[0],
                max_deliver=-1,
                description=self.description,
            )
            await self._js.add_consumer(self.stream, config)
            return
        current = info.config
        if current.ack_wait != self._ack_wait_s or current.max_ack_pending != self._batch:
            current.ack_wait = self._ack_wait_s
            current.max_ack_pending = self._batch
            try:
                await self._js.add_consumer(self.stream, current)
            except Exception as err:
                log.warning("could not update consumer %s: %s", self.consumer, err)

    async def stop(self) -> None:
        """Finish the batch in hand, then stop (the consumer stays for the next start)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as err:  # the connection may be gone already
                log.info("unsubscribe: %s", err)

    async def wait_until(self, predicate: Callable[[C], bool], timeout_s: float = 10.0) -> C:
        """Wait until the counters satisfy ``predicate`` (checked after every batch)."""
        async with self._progress:
            await asyncio.wait_for(
                self._progress.wait_for(lambda: predicate(self.counters)), timeout_s
            )
        return self.counters

    async def _tell_progress(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def status(self) -> dict[str, Any]:
        """Consumer position."""
        pending = ack_pending = 0
        try:
            info = await self._js.consumer_info(self.stream, self.consumer, timeout=2.0)
            pending, ack_pending = int(info.num_pending or 0), int(info.num_ack_pending or 0)
        except Exception as err:
            log.info("consumer info unavailable: %s", err)
        return {
            "stream": self.stream,
            "consumer": self.consumer,
            "connected": self._nc.is_connected,
            "pending": pending,
            "ack_pending": ack_pending,
        }

    async def position(self) -> Position:
        """How far behind the consumer is: its backlog and the age of its oldest message.

        Messages are acknowledged in stream order, so the oldest one waiting is the first of
        the consumer's subjects after its acknowledgement floor. Raises when NATS is away.
        """
        info = await self._js.consumer_info(self.stream, self.consumer, timeout=2.0)
        pending, ack_pending = int(info.num_pending or 0), int(info.num_ack_pending or 0)
        oldest: datetime | None = None
        if pending or ack_pending:
            floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
            first = await self._js.get_msg(
                self.stream, seq=floor + 1, subject=self.subjects[0], next=True
            )
            oldest = first.time
        return Position(self._nc.is_connected, pending, ack_pending, oldest)

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Apply one fetched batch: ack what is durable, :meth:`keep` what is poison."""
        raise NotImplementedError

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                msgs = await self._sub.fetch(self._batch, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception as err:  # disconnected, or the server is restarting
                failures += 1
                log.warning("fetching %s failed (%d): %s", self.subjects[0], failures, err)
                await self.pause(min(0.1 * 2**failures, 2.0))
                continue
            failures = 0
            try:
                await self.handle(msgs)
                await self._tell_progress()
            except Exception:
                # Nothing unacked is lost: JetStream redelivers it after ack_wait.
                log.exception("a batch of %s failed; it will be redelivered", self.subjects[0])
                await self.pause(1.0)

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the consumer is being stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def keep(self, poison: Sequence[tuple[Msg, Poison]]) -> None:
        """Store poison messages as dead letters, then terminate them."""
        letters = [
            NewLetter(
                source=self.source,
                subject=msg.subject,
                stream=msg.metadata.stream,
                stream_seq=msg.metadata.sequence.stream,
                event_id=p.event_id,
                headers=dict(msg.headers or {}),
                payload=msg.data,
                error=p.code,
                reason=p.reason,
            )
            for msg, p in poison
        ]
        await asyncio.to_thread(self._dead.keep, letters)
        for msg, p in poison:
            log.warning(
                "message kept as a dead letter",
                extra={"subject": msg.subject, "error": p.code, "reason": p.reason},
            )
            await msg.term()
