"""Carrier tracking → lane health: ``carrier.events.>`` off JetStream into the lane actors.

A durable pull consumer fetches tracking events in batches; each event that settles a
parcel (delivered, lost, returned) becomes an outcome on its lane, counted once by its
``event_id``, and the batch is acked after the lane actors stored the outcomes. Events
that settle nothing (in transit, out for delivery …) are acked and skipped. An event that
can never be read is kept as a dead letter (source ``carrier``) with the reason; replaying
it after a fix counts it then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from adapters.carrier_events import BadTrackingEvent, TrackedOutcome, decode
from hub.consuming import DurableConsumer, Poison
from hub.domain.lanes import Lane
from hub.lanes import LaneHealthBoard, Outcome
from hub.store.dead_letters import DeadLetters, Letter, LetterStatus, ReplayOutcome, not_open

log = logging.getLogger("orderhub.carrier")

SUBJECTS = ["carrier.events.>"]
SOURCE = "carrier"


@dataclass(slots=True)
class TrackingCounters:
    """What this process has done since it started."""

    outcomes: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    batches: int = 0


class CarrierEvents(DurableConsumer[TrackingCounters]):
    """Consumes carrier tracking events into lane health."""

    source = SOURCE
    description = "OrderHub: carrier tracking events into lane health"

    def __init__(
        self,
        nc: NatsClient,
        lanes: LaneHealthBoard,
        dead_letters: DeadLetters,
        *,
        stream: str = "CARRIER",
        consumer: str = "orderhub-carrier",
        deliver_new: bool = False,
        batch: int = 500,
    ) -> None:
        super().__init__(
            nc,
            dead_letters,
            TrackingCounters(),
            stream=stream,
            subjects=SUBJECTS,
            consumer=consumer,
            deliver_new=deliver_new,
            batch=batch,
        )
        self._lanes = lanes

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Count a batch's outcomes; ack once stored, keep what cannot be read."""
        self.counters.batches += 1
        outcomes: list[TrackedOutcome] = []
        poison: list[tuple[Msg, Poison]] = []
        settled: list[Msg] = []
        for msg in msgs:
            try:
                outcome = decode(msg.subject, msg.data)
            except BadTrackingEvent as bad:
                poison.append((msg, Poison(bad.code, bad.reason, bad.event_id)))
                continue
            if outcome is None:
                self.counters.skipped += 1
            else:
                outcomes.append(outcome)
            settled.append(msg)
        if outcomes:
            await self._count(outcomes)
        for msg in settled:
            await msg.ack()
        if poison:
            await self.keep(poison)
            self.counters.dead_lettered += len(poison)

    async def _count(self, outcomes: Sequence[TrackedOutcome]) -> None:
        recorded = await self._lanes.record(
            [
                Outcome(
                    Lane(o.warehouse_id, o.carrier, o.destination_province),
                    o.late,
                    o.occurred_at,
                    f"{o.carrier}:{o.event_id}",
                    o.shipped_at,
                )
                for o in outcomes
            ]
        )
        duplicates = sum(1 for r in recorded if r.duplicate)
        self.counters.duplicates += duplicates
        self.counters.outcomes += len(recorded) - duplicates

    async def replay(self, letters: Sequence[Letter]) -> list[ReplayOutcome]:
        """Read kept events again; each ends replayed or stays open with the new reason."""
        results: list[ReplayOutcome] = []
        for letter in letters:
            if letter.status is not LetterStatus.OPEN:
                results.append(not_open(letter))
                continue
            try:
                outcome = decode(letter.subject, letter.payload)
            except BadTrackingEvent as bad:
                results.append(
                    ReplayOutcome(letter.letter_id, LetterStatus.OPEN, False, bad.code, bad.reason)
                )
                continue
            if outcome is not None:
                await self._count([outcome])
            results.append(ReplayOutcome(letter.letter_id, LetterStatus.REPLAYED, False))
        await asyncio.to_thread(self._dead.record_replays, results)
        return results
