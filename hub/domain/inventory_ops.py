"""Commands a shard understands, each a small value that knows how to apply itself.

The hub batches many commands for one shard into one actor call; the actor applies
them in order, synchronously, then persists their merged effects once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hub.domain.inventory import (
    InventoryError,
    InventoryShard,
    LevelView,
    LineRequest,
    Reservation,
    ReservationStatus,
    ReservedLine,
)
from hub.domain.movements import MovementResult, StockMovement
from hub.domain.pickling import by_fields


class Op(Protocol):
    """A command for one shard."""

    def apply(self, shard: InventoryShard, now: datetime) -> object:
        """Apply the command to the shard and return its answer."""
        ...


@by_fields
@dataclass(frozen=True, slots=True)
class Reserve:
    """Hold lines and record the reservation (the primary's decision)."""

    order_id: str
    reservation_id: str
    lines: tuple[LineRequest, ...]
    expires_at: datetime
    primary_sku: str
    remote_lines: tuple[ReservedLine, ...] = ()

    def apply(self, shard: InventoryShard, now: datetime) -> Reservation:
        """See :meth:`InventoryShard.reserve`."""
        return shard.reserve(
            order_id=self.order_id,
            reservation_id=self.reservation_id,
            lines=self.lines,
            expires_at=self.expires_at,
            now=now,
            remote_lines=self.remote_lines,
            primary_sku=self.primary_sku,
        )


@by_fields
@dataclass(frozen=True, slots=True)
class Prepare:
    """Hold lines for a reservation another shard decides."""

    order_id: str
    reservation_id: str
    lines: tuple[LineRequest, ...]
    expires_at: datetime
    primary_sku: str

    def apply(self, shard: InventoryShard, now: datetime) -> list[ReservedLine]:
        """See :meth:`InventoryShard.prepare`."""
        return shard.prepare(
            order_id=self.order_id,
            reservation_id=self.reservation_id,
            lines=self.lines,
            primary_sku=self.primary_sku,
            expires_at=self.expires_at,
            now=now,
        )


@by_fields
@dataclass(frozen=True, slots=True)
class Follow:
    """Apply a primary's decision to this shard's lines of that attempt."""

    order_id: str
    reservation_id: str
    decision: ReservationStatus

    def apply(self, shard: InventoryShard, now: datetime) -> list[ReservedLine]:
        """See :meth:`InventoryShard.follow`."""
        return shard.follow(self.order_id, self.reservation_id, self.decision, now)


@by_fields
@dataclass(frozen=True, slots=True)
class Release:
    """Release an order's reservation (primary)."""

    order_id: str

    def apply(self, shard: InventoryShard, now: datetime) -> Reservation:
        """See :meth:`InventoryShard.release`."""
        return shard.release(self.order_id, now)


@by_fields
@dataclass(frozen=True, slots=True)
class Commit:
    """Commit an order's reservation (primary)."""

    order_id: str

    def apply(self, shard: InventoryShard, now: datetime) -> Reservation:
        """See :meth:`InventoryShard.commit`."""
        return shard.commit(self.order_id, now)


@by_fields
@dataclass(frozen=True, slots=True)
class GetReservation:
    """Read an order's reservation (primary); None when there is none."""

    order_id: str

    def apply(self, shard: InventoryShard, now: datetime) -> Reservation | None:
        """The reservation, or None."""
        reservation = shard.reservation(self.order_id)
        if reservation is None or reservation.status is ReservationStatus.ABORTED:
            return None
        return reservation


@dataclass(frozen=True, slots=True)
class Resolve:
    """Ask the primary for the decision on a prepared attempt (presumed abort)."""

    order_id: str
    reservation_id: str

    def apply(self, shard: InventoryShard, now: datetime) -> ReservationStatus:
        """See :meth:`InventoryShard.resolve`."""
        return shard.resolve(self.order_id, self.reservation_id, now)


@dataclass(frozen=True, slots=True)
class SetStock:
    """Set an absolute on-hand count."""

    sku: str
    warehouse_id: str
    on_hand: int
    safety_stock: int | None = None
    reason: str = ""

    def apply(self, shard: InventoryShard, now: datetime) -> LevelView:
        """See :meth:`InventoryShard.set_stock`."""
        return shard.set_stock(
            self.sku,
            self.warehouse_id,
            self.on_hand,
            now,
            safety_stock=self.safety_stock,
            reason=self.reason,
        )


@dataclass(frozen=True, slots=True)
class Availability:
    """Read a SKU's levels."""

    sku: str
    warehouse_ids: tuple[str, ...] = ()

    def apply(self, shard: InventoryShard, now: datetime) -> list[LevelView]:
        """See :meth:`InventoryShard.availability`."""
        return shard.availability(self.sku, self.warehouse_ids)


@dataclass(frozen=True, slots=True)
class UpsertSku:
    """Tell the owner a SKU exists (or its safety stock changed)."""

    sku: str
    safety_stock: int
    low_stock_threshold: int = 0

    def apply(self, shard: InventoryShard, now: datetime) -> None:
        """See :meth:`InventoryShard.upsert_sku`."""
        shard.upsert_sku(self.sku, self.safety_stock, self.low_stock_threshold)


@dataclass(frozen=True, slots=True)
class UpsertWarehouse:
    """Tell a shard a warehouse exists."""

    warehouse_id: str

    def apply(self, shard: InventoryShard, now: datetime) -> None:
        """See :meth:`InventoryShard.upsert_warehouse`."""
        shard.upsert_warehouse(self.warehouse_id)


@dataclass(frozen=True, slots=True)
class ApplyMovement:
    """Apply a warehouse movement exactly once."""

    movement: StockMovement

    def apply(self, shard: InventoryShard, now: datetime) -> MovementResult:
        """See :meth:`InventoryShard.apply_movement`."""
        return shard.apply_movement(self.movement, now)


@dataclass(frozen=True, slots=True)
class HeldLines:
    """The lines this shard holds for one attempt at an order, where they are now."""

    order_id: str
    reservation_id: str

    def apply(self, shard: InventoryShard, now: datetime) -> list[ReservedLine]:
        """Lines of the attempt, whatever their state."""
        return [
            ReservedLine(h.line_no, h.sku, h.warehouse_id, h.quantity)
            for h in shard.lines_of(self.order_id)
            if h.reservation_id == self.reservation_id
        ]


@dataclass(frozen=True, slots=True)
class MoveHolds:
    """Move whole held lines of an order to other warehouses (a routing decision)."""

    order_id: str
    moves: tuple[tuple[int, str], ...]
    why: str = "routing"

    def apply(self, shard: InventoryShard, now: datetime) -> list[ReservedLine]:
        """See :meth:`InventoryShard.move_holds`."""
        return shard.move_holds(self.order_id, self.moves, self.why, now)


ORDER_OPS = (Reserve, Release, Commit, GetReservation, Resolve)


def apply_all(shard: InventoryShard, ops: Sequence[Op], now: datetime) -> list[object]:
    """Apply commands in order; a refused command answers its error, the rest go on."""
    results: list[object] = []
    for op in ops:
        try:
            results.append(op.apply(shard, now))
        except InventoryError as err:
            results.append(err)
    return results


def unknown_events(shard: InventoryShard, ops: Sequence[Op]) -> list[str]:
    """Movement ids in commands that this shard does not remember applying."""
    return sorted(
        {
            op.movement.event_id
            for op in ops
            if isinstance(op, ApplyMovement)
            and op.movement.event_id
            and not shard.knows_event(op.movement.event_id)
        }
    )


def unknown_orders(shard: InventoryShard, ops: Sequence[Op]) -> list[str]:
    """Orders named by commands whose reservation record is not in memory."""
    return sorted(
        {
            op.order_id
            for op in ops
            if isinstance(op, ORDER_OPS) and shard.reservation(op.order_id) is None
        }
    )
