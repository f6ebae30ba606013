"""The hub's side of lane health: outcomes to the lane actors, and a local gate for routing.

Routing asks about dozens of lanes per order, so it does not ask the actors: each hub
process keeps the lanes that are not CLOSED (a handful at most) in memory, refreshed from
the actors every ``refresh_s`` and at once after any transition this process saw. A
HALF_OPEN lane admits the same orders in every process (a stable hash of the order id).
Time passing alone moves lanes (OPEN → HALF_OPEN after the cool-down), so the hub asks the
actors to judge due lanes every ``refresh_s`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actors.lanes import Evaluate, Gates, Health, LaneOp, Recorded, RecordOutcome, lane_shard
from hub.domain.inventory import InvalidRequest
from hub.domain.lanes import BreakerPolicy, BreakerState, Lane, LaneHealth, Transition, probe_point
from hub.domain.routing import LaneVerdict
from hub.inventory import ShardLink

log = logging.getLogger("orderhub.lanes")

OnTransitions = Callable[[Sequence[Transition]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One parcel's delivery on a lane: late or not, when, and when it was handed over."""

    lane: Lane
    late: bool
    occurred_at: datetime
    #: Counts the outcome once: a repeat with the same id changes nothing.
    outcome_id: str = ""
    shipped_at: datetime | None = None


class LaneHealthBoard:
    """Lane outcomes in, breaker states out, over the lane shard actors."""

    def __init__(
        self,
        links: Sequence[ShardLink[LaneOp]],
        policy: BreakerPolicy,
        *,
        refresh_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.links = list(links)
        #: Where "now" comes from; tests move it to play hours of outcomes in seconds.
        self.clock = clock
        self.policy = policy
        self._refresh_s = refresh_s
        self._gates: dict[tuple[str, str, str], BreakerState] = {}
        self._listeners: list[OnTransitions] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def on_transitions(self, listener: OnTransitions) -> None:
        """Call ``listener`` with the transitions this process sees."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Read the gates now, then keep them fresh."""
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._keep_fresh())

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def record(
        self,
        outcomes: Sequence[Outcome],
        now: datetime | None = None,
    ) -> list[Recorded]:
        """Count delivery outcomes; answers in order."""
        now = now or self.clock()
        calls = [
            self._link(o.lane).call(
                RecordOutcome(o.lane, o.late, o.occurred_at, o.outcome_id, now, o.shipped_at)
            )
            for o in outcomes
        ]
        answers = await asyncio.gather(*calls)
        for answer in answers:
            if isinstance(answer, ValueError):
                raise InvalidRequest(str(answer), field="occurred_at")
        recorded = [a for a in answers if isinstance(a, Recorded)]
        changes = [t for r in recorded for t in r.transitions]
        if changes:
            await self._tell(changes)
        return recorded

    async def evaluate(self, now: datetime | None = None) -> list[Transition]:
        """Let every lane actor judge its due lanes; the transitions that happened."""
        now = now or self.clock()
        answers = await asyncio.gather(*(link.call(Evaluate(now)) for link in self.links))
        changes = [t for part in answers if isinstance(part, list) for t in part]
        if changes:
            await self._tell(changes)
        return changes

    async def health(
        self,
        warehouse_id: str = "",
        carrier: str = "",
        destination_province: str = "",
        now: datetime | None = None,
    ) -> list[LaneHealth]:
        """Health of the lanes matching every filter given, by lane."""
        now = now or self.clock()
        query = Health(warehouse_id, carrier, destination_province, now)
        answers = await asyncio.gather(*(link.call(query) for link in self.links))
        found = [h for part in answers if isinstance(part, list) for h in part]
        return sorted(found, key=lambda h: h.lane)

    async def refresh(self, now: datetime | None = None) -> None:
        """Read the lanes that are not CLOSED from every actor."""
        now = now or self.clock()
        answers = await asyncio.gather(*(link.call(Gates(now)) for link in self.links))
        gates: dict[tuple[str, str, str], BreakerState] = {}
        for part in answers:
            if isinstance(part, list):
                for lane, state in part:
                    gates[(lane.warehouse_id, lane.carrier, lane.destination_province)] = state
        self._gates = gates

    def verdict(self, warehouse_id: str, carrier: str, province: str, order_id: str) -> LaneVerdict:
        """Whether a lane takes an order now, from this process's copy of the gates."""
        state = self._gates.get((warehouse_id, carrier, province))
        if state is None:
            return LaneVerdict(True, BreakerState.CLOSED.value)
        if state is BreakerState.OPEN:
            return LaneVerdict(False, state.value)
        return LaneVerdict(probe_point(order_id) < self.policy.probe_share, state.value)

    def not_closed(self) -> dict[tuple[str, str, str], BreakerState]:
        """The lanes this process currently treats as OPEN or HALF_OPEN."""
        return dict(self._gates)

    def _link(self, lane: Lane) -> ShardLink[LaneOp]:
        return self.links[lane_shard(lane, len(self.links))]

    async def _tell(self, changes: Sequence[Transition]) -> None:
        for t in changes:
            log.warning(
                "lane %s/%s/%s %s → %s: %s",
                t.lane.warehouse_id,
                t.lane.carrier,
                t.lane.destination_province,
                t.from_state.value,
                t.to_state.value,
                t.reason,
            )
        await self.refresh()
        for listener in self._listeners:
            try:
                await listener(changes)
            except Exception:
                log.exception("a lane transition listener failed")

    async def _keep_fresh(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._refresh_s)
            self._wake.clear()
            try:
                await self.evaluate()
                await self.refresh()
            except Exception as err:  # an actor restarting: the next pass tries again
                log.info("lane refresh failed: %s", err)


def policy_from_settings(text: str) -> BreakerPolicy:
    """The breaker policy from ``ORDERHUB_LANE_POLICY`` (JSON of its fields; empty: defaults)."""
    if not text.strip():
        return BreakerPolicy()
    fields: Any = json.loads(text)
    if not isinstance(fields, dict):
        raise ValueError("ORDERHUB_LANE_POLICY must be a JSON object of BreakerPolicy fields")
    return BreakerPolicy(**fields)
