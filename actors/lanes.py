"""The lane health actor: a thin Ray shell around :class:`LaneBook`.

Lanes are hashed into a fixed set of these actors, each the single owner of its lanes'
breakers. An actor applies a batch of commands one after another with no await anywhere
(it is a plain, single-threaded actor), so no lock guards a breaker. It writes the batch's
new outcomes, the transitions they caused and the alerts telling of them in one
transaction before it answers, so what it acknowledged is stored.

The database is the source of truth: on start the actor replays the stored outcomes of the
breakers' retention span at their own event times and resumes each lane from its last
stored transition (:meth:`LaneBook.rebuild`); transitions found while replaying that were
never stored (the actor died between deciding and writing) are stored and alerted then.
If a write fails the actor exits and Ray restarts it from what was committed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import ray

from actors.layout import check_count, check_statuses, database_fingerprint, when_reachable
from hub.domain.lanes import BreakerPolicy, BreakerState, Lane, LaneBook, LaneHealth, Transition
from hub.domain.sharding import shard_of
from hub.events import lane_alert
from hub.store.db import make_engine
from hub.store.routing import (
    OutcomeRow,
    TransitionRow,
    known_outcome_ids,
    last_transitions,
    load_outcomes,
    write_outcomes,
)

log = logging.getLogger("orderhub.lanes")


def utcnow() -> datetime:
    """The current time, zone-aware UTC."""
    return datetime.now(UTC)


def lane_shard(lane: Lane, count: int) -> int:
    """The index of the actor that owns a lane."""
    return shard_of(f"{lane.warehouse_id}|{lane.carrier}|{lane.destination_province}", count)


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """Count one delivery outcome; ``outcome_id`` makes a repeat count once."""

    lane: Lane
    late: bool
    occurred_at: datetime
    outcome_id: str = ""
    now: datetime | None = None
    #: When the parcel was handed to the carrier, when known.
    shipped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording an outcome did: the lane's health after it and any transitions."""

    health: LaneHealth
    transitions: tuple[Transition, ...]
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Evaluate:
    """Let time pass: judge every lane whose next boundary or cool-down is due."""

    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """Read the health of this actor's lanes matching the filters (empty matches all)."""

    warehouse_id: str = ""
    carrier: str = ""
    destination_province: str = ""
    now: datetime | None = None


@dataclass(frozen=True, slots=True)
class Gates:
    """Read the lanes that are not CLOSED, for the routers' local gate."""

    now: datetime | None = None


LaneOp = RecordOutcome | Evaluate | Health | Gates


class LaneShardActor:
    """Owns the breakers of the lanes hashed to it."""

    def __init__(
        self, index: int, count: int, database_url: str, policy: dict[str, Any] | None = None
    ) -> None:
        self.index = index
        self.count = count
        self.database = database_fingerprint(database_url)
        self.policy = BreakerPolicy(**(policy or {}))
        self._engine = make_engine(database_url, pool_size=2, pre_ping=False)
        now = utcnow()
        since = now - timedelta(seconds=self.policy.retention_seconds)
        outcomes, transitions = when_reachable(
            lambda: (load_outcomes(self._engine, since), last_transitions(self._engine)),
            f"lane shard {index}/{count}",
        )
        mine = [o for o in outcomes if lane_shard(_lane(o), count) == index]
        stored = {
            key: _transition(row)
            for key, row in transitions.items()
            if lane_shard(Lane(*key), count) == index
        }
        self.book = LaneBook.rebuild(
            ((_lane(o), o.late, o.occurred_at, o.shipped_at) for o in mine),
            now,
            policy=self.policy,
            resume_from=stored.values(),
            history_from=since,
        )
        unsaid = [
            t
            for t in self.book.replayed
            if _key(t.lane) not in stored or t.at > stored[_key(t.lane)].at
        ]
        if unsaid:
            self._write([], unsaid)
            log.info("lane shard %d raised %d transitions found on restart", index, len(unsaid))
        log.info(
            "lane shard %d/%d loaded %d outcomes of %d lanes",
            index,
            count,
            len(mine),
            len(self.book.states()),
        )

    def apply(self, ops: Sequence[LaneOp]) -> list[object]:
        """Apply a batch of commands; answer once their outcomes and alerts are stored."""
        seen = known_outcome_ids(
            self._engine, [op.outcome_id for op in ops if isinstance(op, RecordOutcome)]
        )
        fresh: list[OutcomeRow] = []
        transitions: list[Transition] = []
        results: list[object] = []
        for op in ops:
            now = op.now or utcnow()
            if isinstance(op, RecordOutcome):
                duplicate = bool(op.outcome_id) and op.outcome_id in seen
                changes: list[Transition] = []
                if not duplicate:
                    try:
                        changes = self.book.record(
                            op.lane, op.late, op.occurred_at, now, shipped_at=op.shipped_at
                        )
                    except ValueError as err:  # refused as given; the batch goes on
                        results.append(err)
                        continue
                    seen.add(op.outcome_id)
                    fresh.append(
                        OutcomeRow(
                            *_key(op.lane), op.late, op.occurred_at, op.outcome_id, op.shipped_at
                        )
                    )
                    transitions.extend(changes)
                health = self.book.health(
                    now,
                    warehouse_id=op.lane.warehouse_id,
                    carrier=op.lane.carrier,
                    destination_province=op.lane.destination_province,
                )
                results.append(Recorded(health[0], tuple(changes), duplicate))
            elif isinstance(op, Evaluate):
                changes = self.book.evaluate(now)
                transitions.extend(changes)
                results.append(changes)
            elif isinstance(op, Health):
                results.append(
                    self.book.health(
                        now,
                        warehouse_id=op.warehouse_id,
                        carrier=op.carrier,
                        destination_province=op.destination_province,
                    )
                )
            else:
                results.append(
                    [
                        (lane, state)
                        for lane, state in self.book.states().items()
                        if state is not BreakerState.CLOSED
                    ]
                )
        if fresh or transitions:
            self._write(fresh, transitions)
        return results

    def status(self) -> dict[str, Any]:
        """Size and policy of this shard."""
        states = self.book.states()
        return {
            "index": self.index,
            "count": self.count,
            "database": self.database,
            "pid": os.getpid(),
            "lanes": len(states),
            "open": sum(1 for s in states.values() if s is BreakerState.OPEN),
            "policy": asdict(self.policy),
        }

    def _write(self, outcomes: list[OutcomeRow], transitions: list[Transition]) -> None:
        rows = [
            TransitionRow(
                *_key(t.lane),
                t.from_state.value,
                t.to_state.value,
                t.at,
                t.reason,
                t.delay_rate,
                t.outcomes,
            )
            for t in transitions
        ]
        alerts = [lane_alert(t) for t in transitions]
        try:
            write_outcomes(self._engine, outcomes, rows, alerts)
        except Exception:
            # Memory is now ahead of the database: restart from what was committed.
            log.exception("lane shard %d could not store a batch; restarting", self.index)
            os._exit(70)


def _key(lane: Lane) -> tuple[str, str, str]:
    return (lane.warehouse_id, lane.carrier, lane.destination_province)


def _lane(o: OutcomeRow) -> Lane:
    return Lane(o.warehouse_id, o.carrier, o.destination_province)


def _transition(row: TransitionRow) -> Transition:
    return Transition(
        Lane(row.warehouse_id, row.carrier, row.destination_province),
        BreakerState(row.from_state),
        BreakerState(row.to_state),
        row.at,
        row.reason,
        row.delay_rate,
        row.outcomes,
    )


def lane_shard_names(count: int, prefix: str = "orderhub-lanes") -> list[str]:
    """The Ray actor names of a deployment's lane shards."""
    return [f"{prefix}-{i}-of-{count}" for i in range(count)]


def start_lane_shards(
    count: int,
    database_url: str,
    *,
    namespace: str,
    policy: dict[str, Any] | None = None,
    detached: bool = False,
    resource: str = "",
) -> list[Any]:
    """Create (or find) the lane shard actors and wait until each has loaded (see
    :func:`actors.inventory.start_shards` for ``detached`` and the checks)."""
    check_count("orderhub-lanes", count, namespace, "ORDERHUB_LANE_SHARDS")
    remote_cls = ray.remote(LaneShardActor)
    handles = []
    for index, name in enumerate(lane_shard_names(count)):
        options: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "num_cpus": 0,
            "max_restarts": -1,
            "get_if_exists": True,
        }
        if detached:
            options["lifetime"] = "detached"
        if resource:
            # Only nodes that offer this custom resource (the Ray workers meant for the
            # hub's actors) take them: not the head, not a hub's own Ray node.
            options["resources"] = {resource: 0.001}
        handles.append(remote_cls.options(**options).remote(index, count, database_url, policy))
    check_statuses(ray.get([h.status.remote() for h in handles]), database_url, "lane")
    return handles
