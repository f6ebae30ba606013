"""WMS → hub: stock movements from JetStream applied exactly once, poison kept aside.

A durable pull consumer on ``wms.events.>`` fetches events in batches. Each batch is
decoded, handed to the inventory shards (which apply each movement once: its
``event_id`` is recorded in the same transaction as the stock change) and acked only
after the shards answered, i.e. after the change is durable. A crash anywhere before the
ack means a redelivery, which the shards recognise and skip.

A message that can never be applied (undecodable, unknown type, SKU or warehouse, bad
quantity) is stored as a dead letter with the reason and then terminated, so it neither
blocks the stream nor gets lost; :meth:`WmsSync.replay` applies it later. A shard that is
restarting is waited for: the batch is retried in order (telling JetStream the work is in
progress) until it is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from adapters.wms import Codes, PoisonEvent, decode
from hub.domain.inventory import InvalidRequest, InventoryError, UnknownSku, UnknownWarehouse
from hub.domain.movements import MovementResult, StockMovement
from hub.inventory import Inventory
from hub.store.dead_letters import DeadLetters, Letter, LetterStatus, NewLetter, ReplayOutcome
from hub.streams import ensure_stream

log = logging.getLogger("orderhub.wms")

SUBJECTS = ["wms.events.>"]
SOURCE = "wms"


def poison_code(err: InventoryError) -> Codes:
    """The dead-letter code for a refusal by the inventory."""
    if isinstance(err, UnknownSku):
        return Codes.UNKNOWN_SKU
    if isinstance(err, UnknownWarehouse):
        return Codes.UNKNOWN_WAREHOUSE
    if isinstance(err, InvalidRequest) and err.field == "quantity":
        return Codes.INVALID_QUANTITY
    return Codes.REJECTED


@dataclass(slots=True)
class SyncCounters:
    """What this process has done since it started."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    last_applied_at: datetime | None = None
    batches: int = 0


@dataclass(slots=True)
class _Batch:
    """One fetched batch on its way through."""

    ok: list[Msg] = field(default_factory=list)
    poison: list[tuple[Msg, PoisonEvent]] = field(default_factory=list)


class WmsSync:
    """Consumes ``wms.events.>`` into the inventory."""

    def __init__(
        self,
        nc: NatsClient,
        inventory: Inventory,
        dead_letters: DeadLetters,
        *,
        stream: str = "WMS",
        consumer: str = "orderhub-wms",
        deliver_new: bool = False,
        batch: int = 500,
        ack_wait_s: float = 10.0,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._inventory = inventory
        self._dead = dead_letters
        self.stream = stream
        self.consumer = consumer
        self._deliver_new = deliver_new
        self._batch = batch
        self._ack_wait_s = ack_wait_s
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._progress = asyncio.Condition()
        self.counters = SyncCounters()

    async def start(self) -> None:
        """Find or create the stream and the durable consumer, then start consuming."""
        self.stream = await ensure_stream(self._js, self.stream, SUBJECTS)
        await self._ensure_consumer()
        self._sub = await self._js.pull_subscribe_bind(
            durable=self.consumer, stream=self.stream, name=self.consumer
        )
        self._task = asyncio.get_running_loop().create_task(self._run())
        log.info("consuming WMS events", extra={"stream": self.stream, "consumer": self.consumer})

    async def _ensure_consumer(self) -> None:
        """Create the durable consumer, or bring an existing one's delivery limits up to date.

        At most one batch is ever unacknowledged (``max_ack_pending``): after a crash the
        stream redelivers that batch before anything newer, so each SKU's events are
        still applied in the order they were published.
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
                filter_subject=SUBJECTS[0],
                max_deliver=-1,
                description="OrderHub: WMS stock events into the inventory",
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

    async def wait_until(
        self, predicate: Callable[[SyncCounters], bool], timeout_s: float = 10.0
    ) -> SyncCounters:
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
        """Consumer position and counters."""
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

    # ------------------------------------------------------------------ consuming

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                msgs = await self._sub.fetch(self._batch, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception as err:  # disconnected, or the server is restarting
                failures += 1
                log.warning("fetching WMS events failed (%d): %s", failures, err)
                await self._pause(min(0.1 * 2**failures, 2.0))
                continue
            failures = 0
            try:
                await self.handle(msgs)
                await self._tell_progress()
            except Exception:
                # Nothing unacked is lost: JetStream redelivers it after ack_wait.
                log.exception("a batch of WMS events failed; it will be redelivered")
                await self._pause(1.0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Apply one fetched batch; ack what is durable, keep and terminate poison."""
        self.counters.batches += 1
        batch = _Batch()
        pending: list[tuple[Msg, StockMovement]] = []
        for msg in msgs:
            try:
                pending.append((msg, decode(msg.subject, msg.headers, msg.data)))
            except PoisonEvent as poison:
                batch.poison.append((msg, poison))
        attempt = 0
        while pending:
            answers = await self._inventory.apply_movements([m for _, m in pending])
            retry: list[tuple[Msg, StockMovement]] = []
            for (msg, movement), answer in zip(pending, answers, strict=True):
                if isinstance(answer, MovementResult):
                    self._count(answer)
                    batch.ok.append(msg)
                elif isinstance(answer, InventoryError):
                    refused = PoisonEvent(poison_code(answer), str(answer), movement.event_id)
                    batch.poison.append((msg, refused))
                else:
                    retry.append((msg, movement))
            # What is durable is acked now, whatever happens to the rest.
            for m in batch.ok:  # plain awaits: an ack is a publish, no task per ack needed
                await m.ack()
            batch.ok = []
            if retry:
                attempt += 1
                log.warning(
                    "%d WMS events wait for a restarting shard (attempt %d)", len(retry), attempt
                )
                if self._stopping.is_set():
                    break  # unacked: redelivered to whoever consumes next
                await asyncio.gather(*(m.in_progress() for m, _ in retry))
                await self._pause(min(0.05 * 2**attempt, 2.0))
            pending = retry
        if batch.poison:
            await self._keep(batch.poison)

    def _count(self, result: MovementResult) -> None:
        if result.duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.applied += 1
            self.counters.last_applied_at = datetime.now(UTC)

    async def _keep(self, poison: list[tuple[Msg, PoisonEvent]]) -> None:
        """Store poison messages as dead letters, then terminate them."""
        letters = [
            NewLetter(
                source=SOURCE,
                subject=msg.subject,
                stream=msg.metadata.stream,
                stream_seq=msg.metadata.sequence.stream,
                event_id=p.event_id,
                headers=dict(msg.headers or {}),
                payload=msg.data,
                error=p.code.value,
                reason=p.reason,
            )
            for msg, p in poison
        ]
        await asyncio.to_thread(self._dead.keep, letters)
        for msg, p in poison:
            log.warning(
                "WMS event kept as a dead letter",
                extra={"subject": msg.subject, "error": p.code.value, "reason": p.reason},
            )
            await msg.term()
        self.counters.dead_lettered += len(poison)

    # ------------------------------------------------------------------ replaying

    async def replay(self, letters: Sequence[Letter]) -> list[ReplayOutcome]:
        """Apply dead letters again; each ends replayed or stays open with the new reason."""
        outcomes: dict[int, ReplayOutcome] = {}
        decoded: list[tuple[Letter, StockMovement]] = []
        for letter in letters:
            if letter.status is not LetterStatus.OPEN:
                outcomes[letter.letter_id] = ReplayOutcome(
                    letter.letter_id, letter.status, reason="not open"
                )
                continue
            try:
                decoded.append((letter, decode(letter.subject, letter.headers, letter.payload)))
            except PoisonEvent as poison:
                outcomes[letter.letter_id] = ReplayOutcome(
                    letter.letter_id, LetterStatus.OPEN, False, poison.code.value, poison.reason
                )
        answers = await self._inventory.apply_movements([m for _, m in decoded])
        for (letter, _), answer in zip(decoded, answers, strict=True):
            if isinstance(answer, MovementResult):
                outcomes[letter.letter_id] = ReplayOutcome(
                    letter.letter_id, LetterStatus.REPLAYED, answer.duplicate
                )
                self._count(answer)
            elif isinstance(answer, InventoryError):
                outcomes[letter.letter_id] = ReplayOutcome(
                    letter.letter_id, LetterStatus.OPEN, False, poison_code(answer), str(answer)
                )
            else:
                outcomes[letter.letter_id] = ReplayOutcome(
                    letter.letter_id,
                    LetterStatus.OPEN,
                    False,
                    letter.error,
                    f"{letter.reason} (replay could not reach the inventory: {answer})",
                )
        await self._tell_progress()
        results = [outcomes[letter.letter_id] for letter in letters]
        for outcome in results:
            if outcome.reason == "not open":
                continue
            await asyncio.to_thread(
                self._dead.resolve,
                outcome.letter_id,
                outcome.status,
                error=outcome.error,
                reason=outcome.reason,
            )
        return results
