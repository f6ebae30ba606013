"""What happens to stock besides reservations: warehouse movements, and what the hub tells.

A warehouse reports movements (goods in, out, moved, damaged, counted). The shard that owns
the SKU applies each one exactly once, and records what others must hear of: holds placed,
released, committed, expired or moved (for the warehouse that acts on them), alerts (stock
running low, a count that disagrees with the books, holds that no warehouse can cover) and
orders that need a person. These values are plain data; the shells turn them into rows and
messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class MovementType(StrEnum):
    """Kinds of warehouse movement; all but COUNT are deltas."""

    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"
    TRANSFER_IN = "TRANSFER_IN"
    TRANSFER_OUT = "TRANSFER_OUT"
    DAMAGE = "DAMAGE"
    COUNT = "COUNT"


#: The sign a delta movement's quantity takes on on-hand stock.
DELTA_SIGN = {
    MovementType.INBOUND: 1,
    MovementType.TRANSFER_IN: 1,
    MovementType.OUTBOUND: -1,
    MovementType.TRANSFER_OUT: -1,
    MovementType.DAMAGE: -1,
}


@dataclass(frozen=True, slots=True)
class StockMovement:
    """One movement as a warehouse reported it: a delta, or for COUNT the absolute on hand."""

    event_id: str
    warehouse_id: str
    sku: str
    type: MovementType
    quantity: int
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class HoldMove:
    """A held line moved to another warehouse because its own ran short."""

    order_id: str
    reservation_id: str
    line_no: int
    sku: str
    from_warehouse: str
    to_warehouse: str
    quantity: int
    event_id: str
    moved_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """An order a person must look at, and why."""

    order_id: str
    reason: str
    detail: str
    sku: str
    warehouse_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MovementResult:
    """What applying a movement did (a duplicate did nothing)."""

    event_id: str
    duplicate: bool
    on_hand_before: int = 0
    on_hand_after: int = 0
    #: For a COUNT: counted minus booked. For a delta that would go below zero: the
    #: units the books were missing (negative).
    drift: int = 0
    moved: tuple[HoldMove, ...] = ()
    review: tuple[ReviewItem, ...] = ()


class HoldEventKind(StrEnum):
    """What happened to a held line, as its warehouse hears it."""

    HELD = "HELD"
    RELEASED = "RELEASED"
    COMMITTED = "COMMITTED"
    EXPIRED = "EXPIRED"
    MOVED_OUT = "MOVED_OUT"
    MOVED_IN = "MOVED_IN"


@dataclass(frozen=True, slots=True)
class HoldEvent:
    """A held line changed; ``warehouse_id`` is the warehouse that must act."""

    kind: HoldEventKind
    order_id: str
    reservation_id: str
    line_no: int
    sku: str
    warehouse_id: str
    quantity: int
    at: datetime
    #: For MOVED_OUT the warehouse it went to; for MOVED_IN the one it came from.
    other_warehouse: str = ""
    #: Why a hold moved: the WMS event that left its warehouse short, or ``routing``.
    cause: str = ""


class AlertKind(StrEnum):
    """Stock alerts for the operations team."""

    LOW_STOCK = "LOW_STOCK"
    LOW_STOCK_CLEARED = "LOW_STOCK_CLEARED"
    COUNT_DRIFT = "COUNT_DRIFT"
    SHORTFALL = "SHORTFALL"


@dataclass(frozen=True, slots=True)
class StockAlert:
    """An alert about one SKU (and warehouse, where it is about one)."""

    kind: AlertKind
    sku: str
    warehouse_id: str
    at: datetime
    message: str
    available: int = 0
    threshold: int = 0
    drift: int = 0
    order_id: str = ""
    event_id: str = ""
