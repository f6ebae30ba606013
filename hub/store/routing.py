"""Routing's tables: rule versions, each order's routed parcels, warehouse load, lane outcomes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, or_, select, update

from hub.events import OutboxMessage
from hub.store import schema
from hub.store.db import upsert_insert
from hub.store.inventory_store import write_outbox


class RulesVersionConflict(Exception):
    """The rules changed since the version an update was written against."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"the rules are at version {current}, not {expected}; read them again and retry"
        )
        self.expected = expected
        self.current = current


@dataclass(frozen=True, slots=True)
class StoredRules:
    """One stored version of the routing rules."""

    version: int
    document: dict[str, Any]
    comment: str
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RoutedShipment:
    """One parcel of an order's current routing, as stored."""

    order_id: str
    shipment_no: int
    warehouse_id: str
    carrier: str
    destination_province: str
    lines: tuple[tuple[str, int], ...]
    promised_hours: int
    cost_fen: int
    rules_version: int
    day: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One recorded delivery outcome of a lane."""

    warehouse_id: str
    carrier: str
    destination_province: str
    late: bool
    occurred_at: datetime
    outcome_id: str = ""
    shipped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One breaker transition of a lane."""

    warehouse_id: str
    carrier: str
    destination_province: str
    from_state: str
    to_state: str
    at: datetime
    reason: str
    delay_rate: float
    outcomes: int


class RoutingStore:
    """Reads and writes routing rules and decisions."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------ rules

    def current_rules(self) -> StoredRules | None:
        """The rules in force (the newest version), or None when none were ever stored."""
        t = schema.routing_rules
        with self._engine.connect() as conn:
            row = conn.execute(select(t).order_by(t.c.version.desc()).limit(1)).first()
        return None if row is None else _rules(row)

    def rules(self, version: int) -> StoredRules | None:
        """One stored version of the rules."""
        t = schema.routing_rules
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.version == version)).first()
        return None if row is None else _rules(row)

    def save_rules(
        self,
        document: dict[str, Any],
        *,
        actor: str,
        comment: str = "",
        expected_version: int = 0,
    ) -> StoredRules:
        """Store the next version of the rules; the check and the write share a transaction."""
        t = schema.routing_rules
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            current = conn.execute(select(func.max(t.c.version))).scalar() or 0
            if expected_version and expected_version != current:
                raise RulesVersionConflict(expected_version, current)
            row = {
                "version": current + 1,
                "document": json.dumps(document, ensure_ascii=False, sort_keys=True),
                "comment": comment,
                "updated_by": actor,
                "updated_at": now,
            }
            # Two writers racing for the same version: the primary key refuses the second.
            conn.execute(t.insert(), [row])
        return StoredRules(current + 1, document, comment, actor, now)

    def rule_versions(self, *, before: int = 0, limit: int = 50) -> list[StoredRules]:
        """Stored versions, newest first, older than ``before`` when it is given."""
        t = schema.routing_rules
        query = select(t).order_by(t.c.version.desc()).limit(limit)
        if before:
            query = query.where(t.c.version < before)
        with self._engine.connect() as conn:
            return [_rules(r) for r in conn.execute(query)]

    # ------------------------------------------------------------------ decisions

    def routed(self, order_id: str) -> list[RoutedShipment]:
        """An order's current parcels, in order."""
        t = schema.routed_shipments
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.order_id == order_id).order_by(t.c.shipment_no))
            return [_shipment(r) for r in rows]

    def routed_many(self, order_ids: Sequence[str]) -> dict[str, list[RoutedShipment]]:
        """Current parcels of many orders."""
        t = schema.routed_shipments
        found: dict[str, list[RoutedShipment]] = {o: [] for o in order_ids}
        if not order_ids:
            return found
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t).where(t.c.order_id.in_(list(order_ids))).order_by(t.c.shipment_no)
            )
            for r in rows:
                found[r.order_id].append(_shipment(r))
        return found

    def orders_on_lane(
        self, warehouse_id: str, carrier: str, province: str, statuses: Sequence[str]
    ) -> list[str]:
        """Orders in one of ``statuses`` with a parcel routed on the lane."""
        t = schema.routed_shipments
        o = schema.orders
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.c.order_id)
                .join(o, o.c.order_id == t.c.order_id)
                .where(
                    t.c.warehouse_id == warehouse_id,
                    t.c.carrier == carrier,
                    t.c.destination_province == province,
                    o.c.status.in_(list(statuses)),
                )
                .distinct()
            )
            return sorted(r.order_id for r in rows)

    def unrouted(self, statuses: Sequence[str], skip_queue: str, limit: int) -> list[str]:
        """Orders in ``statuses`` with no routing, outside ``skip_queue``, oldest first."""
        t = schema.routed_shipments
        o = schema.orders
        routed = select(t.c.order_id).where(t.c.order_id == o.c.order_id).exists()
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(o.c.order_id)
                .where(o.c.status.in_(list(statuses)), o.c.queue != skip_queue, ~routed)
                .order_by(o.c.ingested_at)
                .limit(limit)
            )
            return [r.order_id for r in rows]

    def orders_at(self, warehouse_id: str, day: str) -> list[tuple[str, datetime]]:
        """Orders routed to a warehouse on a routing day, with when, oldest first."""
        t = schema.routed_shipments
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.c.order_id, func.max(t.c.decided_at).label("at"))
                .where(t.c.warehouse_id == warehouse_id, t.c.day == day)
                .group_by(t.c.order_id)
            )
            return sorted(((r.order_id, _utc(r.at)) for r in rows), key=lambda x: (x[1], x[0]))

    def carried_over(
        self,
        day: str,
        since_day: str,
        midnight: datetime,
        unshipped: Sequence[str],
        shipped_kind: str = "shipped",
    ) -> dict[str, int]:
        """Each warehouse's backlog: orders routed on days ``since_day`` ≤ d < ``day`` that
        had not been handed over by ``midnight`` (the start of ``day``).

        An order counts when it is still in one of the ``unshipped`` statuses, or when its
        ``shipped`` event came at or after midnight. Orders routed away since are not
        counted (their parcels moved with them).
        """
        t = schema.routed_shipments
        o = schema.orders
        e = schema.order_events
        shipped_today = (
            select(e.c.id)
            .where(e.c.order_id == t.c.order_id, e.c.kind == shipped_kind, e.c.at >= midnight)
            .exists()
        )
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.c.warehouse_id, func.count(func.distinct(t.c.order_id)).label("n"))
                .join(o, o.c.order_id == t.c.order_id)
                .where(
                    t.c.day < day,
                    t.c.day >= since_day,
                    or_(o.c.status.in_(list(unshipped)), shipped_today),
                )
                .group_by(t.c.warehouse_id)
            )
            return {r.warehouse_id: int(r.n) for r in rows}

    def forget(self, order_id: str) -> None:
        """Drop an order's routing and give its place in its warehouses' day back."""
        with self._engine.begin() as conn:
            write_routing(conn, order_id, [])

    def load(self, day: str) -> dict[str, int]:
        """Orders routed to each warehouse on a routing day."""
        t = schema.warehouse_load
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.c.warehouse_id, t.c.orders).where(t.c.day == day))
            return {r.warehouse_id: r.orders for r in rows}


def write_routing(conn: Connection, order_id: str, shipments: Sequence[RoutedShipment]) -> None:
    """Replace an order's parcels and move its count between warehouses, in the caller's txn."""
    write_routings(conn, [(order_id, shipments)])


def write_routings(
    conn: Connection, routings: Sequence[tuple[str, Sequence[RoutedShipment]]]
) -> None:
    """Replace many orders' parcels and move their counts between warehouses.

    The warehouses' day counts change last, in key order, so concurrent writers lock
    those rows in the same order and cannot deadlock.
    """
    if not routings:
        return
    t = schema.routed_shipments
    order_ids = [order_id for order_id, _ in routings]
    old: dict[str, set[tuple[str, str]]] = {order_id: set() for order_id in order_ids}
    for r in conn.execute(
        select(t.c.order_id, t.c.day, t.c.warehouse_id).where(t.c.order_id.in_(order_ids))
    ):
        old[r.order_id].add((r.day, r.warehouse_id))
    conn.execute(delete(t).where(t.c.order_id.in_(order_ids)))
    rows = [_shipment_row(s) for _, shipments in routings for s in shipments]
    if rows:
        conn.execute(t.insert(), rows)
    delta: dict[tuple[str, str], int] = {}
    for order_id, shipments in routings:
        after = {(s.day, s.warehouse_id) for s in shipments}
        for key in old[order_id] - after:
            delta[key] = delta.get(key, 0) - 1
        for key in after - old[order_id]:
            delta[key] = delta.get(key, 0) + 1
    load = schema.warehouse_load
    for (day, warehouse_id), change in sorted(delta.items()):
        if change < 0:
            conn.execute(
                update(load)
                .where(load.c.day == day, load.c.warehouse_id == warehouse_id)
                .values(orders=case((load.c.orders + change < 0, 0), else_=load.c.orders + change))
            )
        elif change > 0:
            stmt = upsert_insert(conn, load)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["day", "warehouse_id"],
                    set_={"orders": load.c.orders + stmt.excluded.orders},
                ),
                [{"day": day, "warehouse_id": warehouse_id, "orders": change}],
            )


def known_outcome_ids(engine: Engine, outcome_ids: Sequence[str]) -> set[str]:
    """Which of these outcome ids are stored already."""
    ids = sorted({i for i in outcome_ids if i})
    if not ids:
        return set()
    t = schema.lane_outcomes
    with engine.connect() as conn:
        return set(conn.execute(select(t.c.outcome_id).where(t.c.outcome_id.in_(ids))).scalars())


def write_outcomes(
    engine: Engine,
    outcomes: Sequence[OutcomeRow],
    transitions: Sequence[TransitionRow],
    messages: Sequence[OutboxMessage],
) -> None:
    """Store outcomes, transitions and their alerts in one transaction."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if outcomes:
            conn.execute(
                schema.lane_outcomes.insert(),
                [
                    {
                        "warehouse_id": o.warehouse_id,
                        "carrier": o.carrier,
                        "destination_province": o.destination_province,
                        "late": int(o.late),
                        "occurred_at": o.occurred_at,
                        "shipped_at": o.shipped_at,
                        "recorded_at": now,
                        "outcome_id": o.outcome_id or None,
                    }
                    for o in outcomes
                ],
            )
        if transitions:
            conn.execute(
                schema.lane_transitions.insert(),
                [
                    {
                        "warehouse_id": x.warehouse_id,
                        "carrier": x.carrier,
                        "destination_province": x.destination_province,
                        "from_state": x.from_state,
                        "to_state": x.to_state,
                        "at": x.at,
                        "reason": x.reason,
                        "delay_rate": x.delay_rate,
                        "outcomes": x.outcomes,
                    }
                    for x in transitions
                ],
            )
        if messages:
            write_outbox(conn, messages)


def load_outcomes(
    engine: Engine, since: datetime, lanes: Iterable[tuple[str, str, str]] | None = None
) -> list[OutcomeRow]:
    """Outcomes that occurred at or after ``since``, oldest first (optionally some lanes)."""
    t = schema.lane_outcomes
    query = select(t).where(t.c.occurred_at >= since).order_by(t.c.occurred_at, t.c.id)
    wanted = set(lanes) if lanes is not None else None
    with engine.connect() as conn:
        found = []
        for r in conn.execute(query):
            key = (r.warehouse_id, r.carrier, r.destination_province)
            if wanted is not None and key not in wanted:
                continue
            found.append(
                OutcomeRow(
                    r.warehouse_id,
                    r.carrier,
                    r.destination_province,
                    bool(r.late),
                    _utc(r.occurred_at),
                    r.outcome_id or "",
                    _utc(r.shipped_at) if r.shipped_at is not None else None,
                )
            )
        return found


def last_transitions(engine: Engine) -> dict[tuple[str, str, str], TransitionRow]:
    """Each lane's newest recorded transition."""
    t = schema.lane_transitions
    newest = (
        select(func.max(t.c.id).label("id"))
        .group_by(t.c.warehouse_id, t.c.carrier, t.c.destination_province)
        .subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(select(t).join(newest, t.c.id == newest.c.id))
        return {
            (r.warehouse_id, r.carrier, r.destination_province): TransitionRow(
                r.warehouse_id,
                r.carrier,
                r.destination_province,
                r.from_state,
                r.to_state,
                _utc(r.at),
                r.reason,
                r.delay_rate,
                r.outcomes,
            )
            for r in rows
        }


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _rules(row: Any) -> StoredRules:
    return StoredRules(
        row.version, json.loads(row.document), row.comment, row.updated_by, _utc(row.updated_at)
    )


def _shipment(row: Any) -> RoutedShipment:
    return RoutedShipment(
        row.order_id,
        row.shipment_no,
        row.warehouse_id,
        row.carrier,
        row.destination_province,
        tuple((str(s), int(q)) for s, q in json.loads(row.lines)),
        row.promised_hours,
        row.cost_fen,
        row.rules_version,
        row.day,
        _utc(row.decided_at),
    )


def _shipment_row(s: RoutedShipment) -> dict[str, Any]:
    return {
        "order_id": s.order_id,
        "shipment_no": s.shipment_no,
        "warehouse_id": s.warehouse_id,
        "carrier": s.carrier,
        "destination_province": s.destination_province,
        "lines": json.dumps([list(x) for x in s.lines], ensure_ascii=False),
        "promised_hours": s.promised_hours,
        "cost_fen": s.cost_fen,
        "rules_version": s.rules_version,
        "day": s.day,
        "decided_at": s.decided_at,
    }
