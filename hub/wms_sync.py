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
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from adapters.wms import Codes, PoisonEvent, decode
from hub.consuming import DurableConsumer, Poison
from hub.domain.inventory import InvalidRequest, InventoryError, UnknownSku, UnknownWarehouse
from hub.domain.movements import MovementResult, StockMovement
from hub.inventory import Inventory
from hub.store.dead_letters import DeadLetters, Letter, LetterStatus, ReplayOutcome, not_open

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


class WmsSync(DurableConsumer[SyncCounters]):
    """Consumes ``wms.events.>`` into the inventory."""

    source = SOURCE
    description = "OrderHub: WMS stock events into the inventory"

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
        super().__init__(
            nc,
            dead_letters,
            SyncCounters(),
            stream=stream,
            subjects=SUBJECTS,
            consumer=consumer,
            deliver_new=deliver_new,
            batch=batch,
            ack_wait_s=ack_wait_s,
        )
        self._inventory = inventory

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
                if self.stopping:
                    break  # unacked: redelivered to whoever consumes next
                await asyncio.gather(*(m.in_progress() for m, _ in retry))
                await self.pause(min(0.05 * 2**attempt, 2.0))
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
        await self.keep([(msg, Poison(p.code.value, p.reason, p.event_id)) for msg, p in poison])
        self.counters.dead_lettered += len(poison)

    # ------------------------------------------------------------------ replaying

    async def replay(self, letters: Sequence[Letter]) -> list[ReplayOutcome]:
        """Apply dead letters again; each ends replayed or stays open with the new reason."""
        outcomes: dict[int, ReplayOutcome] = {}
        decoded: list[tuple[Letter, StockMovement]] = []
        for letter in letters:
            if letter.status is not LetterStatus.OPEN:
                outcomes[letter.letter_id] = not_open(letter)
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
        await asyncio.to_thread(self._dead.record_replays, results)
        return results
