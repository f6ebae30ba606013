"""Lane health actors on real Ray, against SQLite and PostgreSQL.

A lane trips, its alert is written once with the trip, a repeat outcome counts once, and a
lane actor killed the hard way comes back from the stored outcomes in the same state
without raising its alerts again.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import ray
from sqlalchemy import Engine, select

from actors.lanes import lane_shard, start_lane_shards
from hub.domain.lanes import BreakerPolicy, BreakerState, Lane
from hub.inventory import ShardLink
from hub.lanes import LaneHealthBoard, Outcome
from hub.store import schema
from hub.store.db import make_engine
from tests.conftest import crash_and_wait

# The default thresholds, with a long memory (so hours of the past can still be judged
# by a fresh actor) and a long cool-down (so the lane stays OPEN across the restart).
POLICY = BreakerPolicy(retention_seconds=8 * 3600, cooldown_seconds=4 * 3600)
LANES = 2


@dataclass
class Rig:
    board: LaneHealthBoard
    handles: list[Any]
    engine: Engine


@pytest.fixture(params=["sqlite", "postgresql"])
async def rig(
    request: pytest.FixtureRequest, ray_session: None, new_database: Callable[[str], str]
) -> AsyncIterator[Rig]:
    url = new_database(request.param)
    handles = await asyncio.to_thread(
        start_lane_shards,
        LANES,
        url,
        namespace=f"it-{uuid.uuid4().hex[:8]}",
        policy=asdict(POLICY),
    )
    board = LaneHealthBoard([ShardLink(h) for h in handles], POLICY)
    engine = make_engine(url)
    yield Rig(board, handles, engine)
    for h in handles:
        ray.kill(h, no_restart=True)
    engine.dispose()


def transitions(engine: Engine) -> list[tuple[str, str]]:
    t = schema.lane_transitions
    with engine.connect() as conn:
        return [(r.from_state, r.to_state) for r in conn.execute(select(t).order_by(t.c.id))]


def lane_alerts(engine: Engine) -> list[dict[str, Any]]:
    t = schema.outbox
    with engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.subject.like("oms.alerts.lanes.%")))
        return [json.loads(r.payload) for r in rows]


async def play_bad_hours(board: LaneHealthBoard, lane: Lane, start: datetime) -> datetime:
    """Three hours of deliveries, two in five late, each counted at its own time."""
    at = start
    for n in range(90):
        at = start + timedelta(minutes=2 * n)
        await board.record([Outcome(lane, n % 5 in (1, 3), at, f"{lane.warehouse_id}-{n}")], now=at)
    return at


async def test_lane_trips_once_and_comes_back_open_after_a_crash(rig: Rig) -> None:
    lane = Lane("WH-SOUTH", "zto", "广东")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=4, minutes=30)
    start -= timedelta(minutes=start.minute % 10)
    seen: list[Any] = []

    async def listen(changes: Any) -> None:
        seen.extend(changes)

    rig.board.on_transitions(listen)
    last = await play_bad_hours(rig.board, lane, start)
    # Boundaries are judged once their late reports have had time to come in.
    await rig.board.evaluate(last + timedelta(seconds=POLICY.settle_seconds))

    assert [(t.from_state, t.to_state) for t in seen] == [(BreakerState.CLOSED, BreakerState.OPEN)]
    trip = seen[0].at
    assert start + timedelta(hours=2) <= trip <= last + timedelta(seconds=POLICY.settle_seconds)
    assert transitions(rig.engine) == [("CLOSED", "OPEN")]
    alerts = lane_alerts(rig.engine)
    assert [(a["warehouse_id"], a["carrier"], a["to_state"]) for a in alerts] == [
        ("WH-SOUTH", "zto", "OPEN")
    ]
    assert rig.board.verdict("WH-SOUTH", "zto", "广东", "any-order").admitted is False

    # A repeat of a stored outcome counts nothing.
    before = (await rig.board.health("WH-SOUTH", "zto", "广东"))[0]
    again = await rig.board.record([Outcome(lane, True, start, "WH-SOUTH-0")])
    assert again[0].duplicate is True
    assert again[0].health.outcomes == before.outcomes

    owner = rig.handles[lane_shard(lane, LANES)]
    await crash_and_wait(owner)

    after = (await rig.board.health("WH-SOUTH", "zto", "广东"))[0]
    assert after.state is BreakerState.OPEN
    assert after.since == trip
    assert transitions(rig.engine) == [("CLOSED", "OPEN")]  # no alert raised twice
    assert len(lane_alerts(rig.engine)) == 1

    # Time passing alone half-opens it after the cool-down.
    later = await rig.board.evaluate(trip + timedelta(seconds=POLICY.cooldown_seconds + 1))
    assert [(t.from_state, t.to_state) for t in later] == [
        (BreakerState.OPEN, BreakerState.HALF_OPEN)
    ]
    assert transitions(rig.engine) == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN")]


async def test_healthy_lane_stays_closed(rig: Rig) -> None:
    lane = Lane("WH-EAST", "sf", "浙江")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=4)
    for n in range(90):
        at = start + timedelta(minutes=2 * n)
        await rig.board.record([Outcome(lane, n % 10 == 0, at, f"ok-{n}")], now=at)
    await rig.board.evaluate(at + timedelta(seconds=POLICY.settle_seconds))
    health = (await rig.board.health("WH-EAST"))[0]
    assert health.state is BreakerState.CLOSED
    assert health.outcomes > 0 and health.delay_rate <= POLICY.late_threshold
    assert transitions(rig.engine) == []
