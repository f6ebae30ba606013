"""Reading and writing inventory state: what a shard loads, and its group commits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from hub.domain.inventory import (
    ACTIVE_LINE,
    Changes,
    HoldLine,
    Level,
    LineStatus,
    Reservation,
    ReservationStatus,
    ReservedLine,
)
from hub.domain.sharding import shard_of
from hub.events import OutboxMessage
from hub.store import schema
from hub.store.db import upsert, upsert_insert


@dataclass(slots=True)
class ShardState:
    """Everything a shard needs to rebuild itself after a start or a crash."""

    skus: list[tuple[str, int, int]]  # sku, safety stock, low-stock threshold
    warehouses: list[str]
    levels: list[Level]
    lines: list[HoldLine]
    reservations: list[Reservation]


def load_shard(engine: Engine, index: int, count: int) -> ShardState:
    """Load the SKUs, levels and live holds owned by shard ``index`` of ``count``."""

    def mine(sku: str) -> bool:
        return shard_of(sku, count) == index

    with engine.connect() as conn:
        t = schema.skus
        skus = [
            (r.sku, int(r.safety_stock), int(r.low_stock_threshold))
            for r in conn.execute(select(t.c.sku, t.c.safety_stock, t.c.low_stock_threshold))
            if mine(r.sku)
        ]
        warehouses = [r[0] for r in conn.execute(select(schema.warehouses.c.warehouse_id))]
        levels = [
            Level(r.sku, r.warehouse_id, int(r.on_hand), int(r.reserved), r.safety_stock)
            for r in conn.execute(select(schema.stock_levels))
            if mine(r.sku)
        ]
        active = [s.value for s in ACTIVE_LINE]
        lines = [
            _hold_line(r)
            for r in conn.execute(
                select(schema.reservation_lines).where(
                    schema.reservation_lines.c.status.in_(active)
                )
            )
            if mine(r.sku)
        ]
        reservations = [
            _reservation(r)
            for r in conn.execute(
                select(schema.reservations).where(
                    schema.reservations.c.status == ReservationStatus.HELD.value
                )
            )
            if mine(r.primary_sku)
        ]
    # A held line whose reservation was decided while its shard was down follows the
    # decision on the next resolve; its reserved units stay counted until then.
    return ShardState(skus, warehouses, levels, lines, reservations)


def find_reservations(engine: Engine, order_ids: Sequence[str]) -> list[Reservation]:
    """Reservation records (any status) for these orders."""
    if not order_ids:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.reservations).where(schema.reservations.c.order_id.in_(order_ids))
        )
        return [_reservation(r) for r in rows]


def applied_event_ids(engine: Engine, event_ids: Sequence[str]) -> list[str]:
    """Which of these warehouse movements the ledger has applied already."""
    if not event_ids:
        return []
    t = schema.stock_ledger
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(t.c.event_id).where(t.c.event_id.in_(event_ids)))]


def known_order_ids(engine: Engine) -> set[str]:
    """Every order that has a reservation record, whichever shard decided it."""
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(select(schema.reservations.c.order_id))}


def find_primary_sku(engine: Engine, order_id: str) -> str | None:
    """The primary SKU of an order's reservation, i.e. which shard decides it."""
    with engine.connect() as conn:
        value = conn.execute(
            select(schema.reservations.c.primary_sku).where(
                schema.reservations.c.order_id == order_id,
                schema.reservations.c.status != ReservationStatus.ABORTED.value,
            )
        ).scalar()
    return None if value is None else str(value)


def write_changes(engine: Engine, changes: Changes, messages: Sequence[OutboxMessage] = ()) -> None:
    """Persist one shard tick's merged changes, and the messages telling of them, at once."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            _write_postgresql(conn, changes)
        else:
            _write_portable(conn, changes)
        _write_rare(conn, changes)
        if messages:
            write_outbox(conn, messages)


def write_outbox(conn: Connection, messages: Sequence[OutboxMessage]) -> None:
    """Add messages to the outbox inside the caller's transaction."""
    conn.execute(schema.outbox.insert(), _outbox_rows(messages))


def _outbox_rows(messages: Sequence[OutboxMessage]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {"subject": m.subject, "msg_id": m.msg_id, "payload": m.payload, "created_at": now}
        for m in messages
    ]


def enqueue(engine: Engine, messages: Sequence[OutboxMessage]) -> None:
    """Add messages to the outbox on their own; one whose id is still waiting is kept once."""
    if not messages:
        return
    with engine.begin() as conn:
        stmt = upsert_insert(conn, schema.outbox).on_conflict_do_nothing(index_elements=["msg_id"])
        conn.execute(stmt, _outbox_rows(messages))


def _write_rare(conn: Connection, changes: Changes) -> None:
    """Hold moves and review items: rare, so one portable statement each."""
    if changes.moves:
        conn.execute(
            schema.hold_moves.insert(),
            [
                {
                    "order_id": m.order_id,
                    "reservation_id": m.reservation_id,
                    "line_no": m.line_no,
                    "sku": m.sku,
                    "from_warehouse": m.from_warehouse,
                    "to_warehouse": m.to_warehouse,
                    "quantity": m.quantity,
                    "event_id": m.event_id,
                    "moved_at": m.moved_at,
                }
                for m in changes.moves
            ],
        )
    if changes.reviews:
        conn.execute(
            schema.review_items.insert(),
            [
                {
                    "order_id": r.order_id,
                    "reason": r.reason,
                    "detail": r.detail,
                    "sku": r.sku,
                    "warehouse_id": r.warehouse_id,
                    "created_at": r.created_at,
                }
                for r in changes.reviews
            ],
        )


# Array upserts: one statement per table however many rows, and far less Python work
# per row than a generic multi-row insert.
_PG_LEVELS = """
INSERT INTO stock_levels (sku, warehouse_id, on_hand, reserved, safety_stock)
SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::bigint[], %s::bigint[], %s::bigint[])
ON CONFLICT (sku, warehouse_id) DO UPDATE SET on_hand = EXCLUDED.on_hand,
    reserved = EXCLUDED.reserved, safety_stock = EXCLUDED.safety_stock
"""
_PG_RESERVATIONS = """
INSERT INTO reservations (order_id, reservation_id, status, primary_sku, lines,
    expires_at, created_at, closed_at)
SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[], %s::text[],
    %s::timestamp[], %s::timestamp[], %s::timestamp[])
ON CONFLICT (order_id) DO UPDATE SET reservation_id = EXCLUDED.reservation_id,
    status = EXCLUDED.status, primary_sku = EXCLUDED.primary_sku, lines = EXCLUDED.lines,
    expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at,
    closed_at = EXCLUDED.closed_at
"""
_PG_LINES = """
INSERT INTO reservation_lines (order_id, line_no, reservation_id, sku, warehouse_id, quantity,
    status, primary_sku, expires_at, created_at, closed_at)
SELECT * FROM unnest(%s::varchar[], %s::int[], %s::varchar[], %s::varchar[], %s::varchar[],
    %s::bigint[], %s::varchar[], %s::varchar[], %s::timestamp[], %s::timestamp[],
    %s::timestamp[])
ON CONFLICT (order_id, line_no) DO UPDATE SET reservation_id = EXCLUDED.reservation_id,
    sku = EXCLUDED.sku, warehouse_id = EXCLUDED.warehouse_id, quantity = EXCLUDED.quantity,
    status = EXCLUDED.status, primary_sku = EXCLUDED.primary_sku,
    expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at,
    closed_at = EXCLUDED.closed_at
"""
_PG_LEDGER = """
INSERT INTO stock_ledger (sku, warehouse_id, kind, on_hand_delta, on_hand_after, order_id,
    reason, occurred_at, event_id)
SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::bigint[], %s::bigint[],
    %s::varchar[], %s::text[], %s::timestamp[], %s::varchar[])
"""


def _naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def _columns(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*rows, strict=True))


def _write_postgresql(conn: Connection, changes: Changes) -> None:
    rows: list[tuple[Any, ...]]
    if changes.levels:
        rows = [
            (lv.sku, lv.warehouse_id, lv.on_hand, lv.reserved, lv.safety_stock)
            for lv in changes.levels.values()
        ]
        conn.exec_driver_sql(_PG_LEVELS, _columns(rows))
    if changes.reservations:
        rows = [
            (
                r["order_id"],
                r["reservation_id"],
                r["status"],
                r["primary_sku"],
                r["lines"],
                _naive(r["expires_at"]),
                _naive(r["created_at"]),
                _naive(r["closed_at"]),
            )
            for r in map(_reservation_row, changes.reservations.values())
        ]
        conn.exec_driver_sql(_PG_RESERVATIONS, _columns(rows))
    if changes.lines:
        rows = [
            (
                h.order_id,
                h.line_no,
                h.reservation_id,
                h.sku,
                h.warehouse_id,
                h.quantity,
                h.status.value,
                h.primary_sku,
                _naive(h.expires_at),
                _naive(h.created_at),
                _naive(h.closed_at),
            )
            for h in changes.lines.values()
        ]
        conn.exec_driver_sql(_PG_LINES, _columns(rows))
    if changes.ledger:
        rows = [
            (
                e.sku,
                e.warehouse_id,
                e.kind.value,
                e.on_hand_delta,
                e.on_hand_after,
                e.order_id,
                e.reason,
                _naive(e.occurred_at),
                e.event_id or None,
            )
            for e in changes.ledger
        ]
        conn.exec_driver_sql(_PG_LEDGER, _columns(rows))


def _write_portable(conn: Connection, changes: Changes) -> None:
    if changes.levels:
        upsert(
            conn,
            schema.stock_levels,
            [
                {
                    "sku": lv.sku,
                    "warehouse_id": lv.warehouse_id,
                    "on_hand": lv.on_hand,
                    "reserved": lv.reserved,
                    "safety_stock": lv.safety_stock,
                }
                for lv in changes.levels.values()
            ],
            keys=("sku", "warehouse_id"),
        )
    if changes.reservations:
        upsert(
            conn,
            schema.reservations,
            [_reservation_row(r) for r in changes.reservations.values()],
            keys=("order_id",),
        )
    if changes.lines:
        upsert(
            conn,
            schema.reservation_lines,
            [_line_row(h) for h in changes.lines.values()],
            keys=("order_id", "line_no"),
        )
    if changes.ledger:
        conn.execute(
            schema.stock_ledger.insert(),
            [
                {
                    "sku": e.sku,
                    "warehouse_id": e.warehouse_id,
                    "kind": e.kind.value,
                    "on_hand_delta": e.on_hand_delta,
                    "on_hand_after": e.on_hand_after,
                    "order_id": e.order_id,
                    "reason": e.reason,
                    "occurred_at": e.occurred_at,
                    "event_id": e.event_id or None,
                }
                for e in changes.ledger
            ],
        )


def _reservation_row(r: Reservation) -> dict[str, Any]:
    return {
        "order_id": r.order_id,
        "reservation_id": r.reservation_id,
        "status": r.status.value,
        "primary_sku": r.primary_sku,
        "lines": json.dumps(
            [[ln.line_no, ln.sku, ln.warehouse_id, ln.quantity] for ln in r.lines],
            separators=(",", ":"),
        ),
        "expires_at": r.expires_at,
        "created_at": r.created_at,
        "closed_at": r.closed_at,
    }


def _line_row(h: HoldLine) -> dict[str, Any]:
    return {
        "order_id": h.order_id,
        "line_no": h.line_no,
        "reservation_id": h.reservation_id,
        "sku": h.sku,
        "warehouse_id": h.warehouse_id,
        "quantity": h.quantity,
        "status": h.status.value,
        "primary_sku": h.primary_sku,
        "expires_at": h.expires_at,
        "created_at": h.created_at,
        "closed_at": h.closed_at,
    }


def _reservation(r: Any) -> Reservation:
    return Reservation(
        reservation_id=r.reservation_id,
        order_id=r.order_id,
        status=ReservationStatus(r.status),
        primary_sku=r.primary_sku,
        lines=tuple(ReservedLine(int(a), b, c, int(d)) for a, b, c, d in json.loads(r.lines)),
        expires_at=r.expires_at,
        created_at=r.created_at,
        closed_at=r.closed_at,
    )


def _hold_line(r: Any) -> HoldLine:
    return HoldLine(
        order_id=r.order_id,
        reservation_id=r.reservation_id,
        line_no=int(r.line_no),
        sku=r.sku,
        warehouse_id=r.warehouse_id,
        quantity=int(r.quantity),
        status=LineStatus(r.status),
        primary_sku=r.primary_sku,
        expires_at=r.expires_at,
        created_at=r.created_at,
        closed_at=r.closed_at,
    )
