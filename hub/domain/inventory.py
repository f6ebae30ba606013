"""Stock of one inventory shard: levels, holds and reservations, in plain Python.

A shard is the single owner of the SKUs hashed to it. Every operation checks and
changes state synchronously, so the actor that wraps a shard never needs a lock:
there is no await between a check and the write it guards.

A reservation whose lines all belong to one shard is decided by that shard alone.
A reservation spanning shards is a two-phase commit: the other shards *prepare*
their lines (held, but undecided), then the *primary* shard — the owner of the
order's smallest SKU — records the decision. The primary owns the reservation
record, its expiry, commit and release; the other shards follow its decisions.

Every change is recorded for the persistence shell (:meth:`InventoryShard.drain_changes`);
the shard itself does no I/O.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from hub.domain.movements import (
    DELTA_SIGN,
    AlertKind,
    HoldEvent,
    HoldEventKind,
    HoldMove,
    MovementResult,
    MovementType,
    ReviewItem,
    StockAlert,
    StockMovement,
)
from hub.domain.pickling import by_fields


class LineStatus(StrEnum):
    """State of one held line."""

    PREPARED = "PREPARED"
    HELD = "HELD"
    RELEASED = "RELEASED"
    COMMITTED = "COMMITTED"
    EXPIRED = "EXPIRED"
    ABORTED = "ABORTED"


class ReservationStatus(StrEnum):
    """State of a reservation as decided by its primary shard."""

    HELD = "HELD"
    RELEASED = "RELEASED"
    COMMITTED = "COMMITTED"
    EXPIRED = "EXPIRED"
    ABORTED = "ABORTED"


ACTIVE_LINE = frozenset({LineStatus.PREPARED, LineStatus.HELD})
_DECISION_TO_LINE = {
    ReservationStatus.HELD: LineStatus.HELD,
    ReservationStatus.RELEASED: LineStatus.RELEASED,
    ReservationStatus.COMMITTED: LineStatus.COMMITTED,
    ReservationStatus.EXPIRED: LineStatus.EXPIRED,
    ReservationStatus.ABORTED: LineStatus.ABORTED,
}


class LedgerKind(StrEnum):
    """Why on-hand stock changed: a count set by hand, a commit, or a warehouse movement."""

    SET = "SET"
    COMMIT = "COMMIT"
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"
    TRANSFER_IN = "TRANSFER_IN"
    TRANSFER_OUT = "TRANSFER_OUT"
    DAMAGE = "DAMAGE"
    COUNT = "COUNT"


#: Holds whose terminal change the warehouse hears about (it was told of the hold).
_ANNOUNCED_END = {
    LineStatus.RELEASED: HoldEventKind.RELEASED,
    LineStatus.COMMITTED: HoldEventKind.COMMITTED,
    LineStatus.EXPIRED: HoldEventKind.EXPIRED,
}
#: How many applied movement ids a shard keeps in memory (older ones are in the ledger).
REMEMBERED_EVENTS = 200_000


# --------------------------------------------------------------------------- errors


class InventoryError(Exception):
    """A request the inventory refuses; carries the field or SKU at fault."""

    field: str = ""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (str(self),), {"field": self.field})


class InvalidRequest(InventoryError):
    """The request is malformed (empty id, non-positive quantity, negative count)."""


class UnknownSku(InventoryError):
    """The SKU is not in the master data."""


class UnknownWarehouse(InventoryError):
    """The warehouse is not in the master data."""


class InsufficientStock(InventoryError):
    """Not enough available stock for a line; nothing was held."""


class StockUndecided(InsufficientStock):
    """Not enough available stock now, but there would be if the undecided holds of
    reservations spanning shards (prepared, awaiting their primary's decision) were let go.

    Those decisions take milliseconds; asking again shortly may succeed, which is what the
    hub does before it answers a refusal, so a refused unit is one that is really taken.
    """


class ReservationNotFound(InventoryError):
    """No reservation for the order."""


class ReservationClosed(InventoryError):
    """The reservation can no longer change the way asked (e.g. commit after expiry)."""


class ReservationConflict(InventoryError):
    """Another attempt at the same order's reservation is under way; retry."""


# --------------------------------------------------------------------------- values


@by_fields
@dataclass(frozen=True, slots=True)
class LineRequest:
    """One line to hold: ``warehouse_id`` empty lets the shard choose."""

    line_no: int
    sku: str
    quantity: int
    warehouse_id: str = ""


@by_fields
@dataclass(frozen=True, slots=True)
class ReservedLine:
    """One line of a reservation, with the warehouse it is held in."""

    line_no: int
    sku: str
    warehouse_id: str
    quantity: int


@dataclass(slots=True)
class Level:
    """Stock of one SKU in one warehouse."""

    sku: str
    warehouse_id: str
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int | None = None  # per-warehouse override of the SKU's safety stock


@dataclass(slots=True)
class HoldLine:
    """A line held by this shard for an order."""

    order_id: str
    reservation_id: str
    line_no: int
    sku: str
    warehouse_id: str
    quantity: int
    status: LineStatus
    primary_sku: str
    expires_at: datetime
    created_at: datetime
    closed_at: datetime | None = None


@by_fields
@dataclass(slots=True)
class Reservation:
    """The decision record of a reservation, owned by its primary shard."""

    reservation_id: str
    order_id: str
    status: ReservationStatus
    primary_sku: str
    lines: tuple[ReservedLine, ...]
    expires_at: datetime
    created_at: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An append-only record of an on-hand change."""

    sku: str
    warehouse_id: str
    kind: LedgerKind
    on_hand_delta: int
    on_hand_after: int
    occurred_at: datetime
    order_id: str = ""
    reason: str = ""
    #: The warehouse movement this entry applied (unique), for movements.
    event_id: str = ""


@by_fields
@dataclass(frozen=True, slots=True)
class LevelView:
    """A level as answered to callers, with ATP computed."""

    sku: str
    warehouse_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int


@dataclass(slots=True)
class Changes:
    """Snapshots of what changed since the last drain, merged per key, and what to tell."""

    levels: dict[tuple[str, str], Level] = field(default_factory=dict)
    lines: dict[tuple[str, int], HoldLine] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    #: The changed levels as callers see them (ATP computed).
    views: list[LevelView] = field(default_factory=list)
    holds: list[HoldEvent] = field(default_factory=list)
    alerts: list[StockAlert] = field(default_factory=list)
    moves: list[HoldMove] = field(default_factory=list)
    reviews: list[ReviewItem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.levels
            or self.lines
            or self.reservations
            or self.ledger
            or self.holds
            or self.alerts
            or self.moves
            or self.reviews
        )


# --------------------------------------------------------------------------- the shard


class InventoryShard:
    """In-memory stock of the SKUs one shard owns."""

    def __init__(self) -> None:
        self.sku_safety: dict[str, int] = {}
        self.sku_low_threshold: dict[str, int] = {}
        self._low: set[str] = set()  # SKUs whose low-stock alert is raised
        self._threshold_changed: set[str] = set()
        self._applied_events: OrderedDict[str, None] = OrderedDict()
        self.warehouses: set[str] = set()
        self.levels: dict[tuple[str, str], Level] = {}
        self._levels_by_sku: dict[str, list[Level]] = {}
        self.lines: dict[str, list[HoldLine]] = {}
        # Units per (SKU, warehouse) in PREPARED lines: reserved, but undecided.
        self._undecided: dict[tuple[str, str], int] = {}
        self.reservations: dict[str, Reservation] = {}
        self._expiry_heap: list[tuple[datetime, str]] = []
        self._dirty_levels: set[tuple[str, str]] = set()
        self._dirty_lines: set[tuple[str, int]] = set()
        self._dirty_reservations: set[str] = set()
        self._ledger: list[LedgerEntry] = []
        self._holds_log: list[HoldEvent] = []
        self._alerts: list[StockAlert] = []
        self._moves: list[HoldMove] = []
        self._reviews: list[ReviewItem] = []

    # ----------------------------------------------------------------- master data

    def upsert_sku(self, sku: str, safety_stock: int, low_stock_threshold: int = 0) -> None:
        """Learn a SKU (or its new safety stock and alert threshold); ATP changes with it."""
        self.sku_safety[sku] = safety_stock
        self.sku_low_threshold[sku] = low_stock_threshold
        self._threshold_changed.add(sku)
        for level in self._levels_by_sku.get(sku, ()):
            self._dirty_levels.add((level.sku, level.warehouse_id))

    def upsert_warehouse(self, warehouse_id: str) -> None:
        """Learn a warehouse."""
        self.warehouses.add(warehouse_id)

    # ----------------------------------------------------------------- reading

    def view(self, level: Level) -> LevelView:
        """Return a level with its available-to-promise."""
        safety = self._safety(level)
        return LevelView(
            sku=level.sku,
            warehouse_id=level.warehouse_id,
            on_hand=level.on_hand,
            reserved=level.reserved,
            safety_stock=safety,
            available=max(0, level.on_hand - level.reserved - safety),
        )

    def availability(self, sku: str, warehouse_ids: Sequence[str] = ()) -> list[LevelView]:
        """Levels of a SKU, optionally restricted to some warehouses, by warehouse id."""
        self._require_sku(sku)
        wanted = set(warehouse_ids)
        levels = self._levels_by_sku.get(sku, [])
        return sorted(
            (self.view(lv) for lv in levels if not wanted or lv.warehouse_id in wanted),
            key=lambda v: v.warehouse_id,
        )

    def available(self, sku: str, warehouse_id: str) -> int:
        """Available-to-promise of one SKU in one warehouse."""
        level = self.levels.get((sku, warehouse_id))
        return 0 if level is None else max(0, self._atp(level))

    def undecided(self, sku: str, warehouse_id: str) -> int:
        """Units of a SKU in a warehouse held by prepared lines still awaiting a decision."""
        return self._undecided.get((sku, warehouse_id), 0)

    def reservation(self, order_id: str) -> Reservation | None:
        """The reservation this shard owns for an order, if any."""
        return self.reservations.get(order_id)

    def lines_of(self, order_id: str) -> list[HoldLine]:
        """The lines this shard holds (or held) for an order."""
        return list(self.lines.get(order_id, ()))

    # ----------------------------------------------------------------- stock counts

    def set_stock(
        self,
        sku: str,
        warehouse_id: str,
        on_hand: int,
        now: datetime,
        *,
        safety_stock: int | None = None,
        reason: str = "",
    ) -> LevelView:
        """Set the absolute on-hand count, as from a stock take; the delta is ledgered."""
        self._require_sku(sku)
        self._require_warehouse(warehouse_id)
        if on_hand < 0:
            raise InvalidRequest(f"on_hand must not be negative, got {on_hand}", field="on_hand")
        if safety_stock is not None and safety_stock < 0:
            raise InvalidRequest("safety_stock must not be negative", field="safety_stock")
        level = self._level(sku, warehouse_id)
        delta = on_hand - level.on_hand
        level.on_hand = on_hand
        if safety_stock is not None:
            level.safety_stock = safety_stock
        self._dirty_levels.add((sku, warehouse_id))
        if delta:
            self._ledger.append(
                LedgerEntry(sku, warehouse_id, LedgerKind.SET, delta, on_hand, now, reason=reason)
            )
        return self.view(level)

    # ----------------------------------------------------------------- warehouse movements

    def knows_event(self, event_id: str) -> bool:
        """Whether a movement with this id was applied (as far as memory reaches)."""
        return event_id in self._applied_events

    def remember_events(self, event_ids: Iterable[str]) -> None:
        """Note movement ids the database says were applied already."""
        for event_id in event_ids:
            self._note_event(event_id)

    def apply_movement(self, m: StockMovement, now: datetime) -> MovementResult:
        """Apply a warehouse movement once; a repeat of its ``event_id`` changes nothing.

        A movement that leaves a warehouse with fewer units on hand than it has held moves
        the newest holds to other warehouses that have the stock; holds no warehouse can
        take stay where they are and their orders are put up for review with an alert.
        """
        if not m.event_id:
            raise InvalidRequest("event_id is required", field="event_id")
        if m.event_id in self._applied_events:
            return MovementResult(m.event_id, duplicate=True)
        self._require_sku(m.sku)
        self._require_warehouse(m.warehouse_id)
        if m.type is MovementType.COUNT:
            if m.quantity < 0:
                raise InvalidRequest(
                    f"a count must not be negative, got {m.quantity}", field="quantity"
                )
        elif m.quantity <= 0:
            raise InvalidRequest(
                f"a {m.type.value} quantity must be positive, got {m.quantity}",
                field="quantity",
            )
        level = self._level(m.sku, m.warehouse_id)
        before = level.on_hand
        # What the books expect after the movement, and what the warehouse says there is.
        if m.type is MovementType.COUNT:
            expected, after = before, m.quantity
        else:
            expected = before + DELTA_SIGN[m.type] * m.quantity
            after = max(0, expected)  # it shipped more than the books had: books were short
        drift = after - expected
        level.on_hand = after
        self._dirty_levels.add((m.sku, m.warehouse_id))
        self._ledger.append(
            LedgerEntry(
                m.sku,
                m.warehouse_id,
                LedgerKind(m.type.value),
                after - before,
                after,
                m.occurred_at,
                reason=f"drift {drift:+d}" if drift else "",
                event_id=m.event_id,
            )
        )
        self._note_event(m.event_id)
        if drift:
            self._alerts.append(
                StockAlert(
                    AlertKind.COUNT_DRIFT,
                    m.sku,
                    m.warehouse_id,
                    now,
                    f"{m.type.value} {m.event_id}: {m.warehouse_id} has {after} of SKU {m.sku} "
                    f"where the books expected {expected} (drift {drift:+d})",
                    drift=drift,
                    event_id=m.event_id,
                )
            )
        moved, review = self._cover_shortfall(level, m.event_id, now)
        return MovementResult(m.event_id, False, before, after, drift, moved, review)

    def _cover_shortfall(
        self, level: Level, event_id: str, now: datetime
    ) -> tuple[tuple[HoldMove, ...], tuple[ReviewItem, ...]]:
        """Move the newest holds off a level holding more than it has on hand."""
        short = level.reserved - level.on_hand
        if short <= 0:
            return (), ()
        holds = sorted(
            (
                h
                for hs in self.lines.values()
                for h in hs
                if h.status in ACTIVE_LINE
                and h.sku == level.sku
                and h.warehouse_id == level.warehouse_id
            ),
            key=lambda h: (h.created_at, h.order_id, h.line_no),
            reverse=True,
        )
        moved: list[HoldMove] = []
        stuck: list[HoldLine] = []
        for hold in holds:
            if short <= 0:
                break
            target = self._other_warehouse(hold)
            if target is None:
                stuck.append(hold)
                continue
            moved.append(self._move_hold(hold, target, event_id, now))
            short -= hold.quantity
        review: list[ReviewItem] = []
        if short > 0:
            for hold in stuck:
                detail = (
                    f"{level.warehouse_id} has {level.on_hand} of SKU {level.sku} on hand but "
                    f"holds {level.reserved}; no other warehouse has {hold.quantity} available"
                )
                item = ReviewItem(
                    hold.order_id, "STOCK_SHORTFALL", detail, hold.sku, hold.warehouse_id, now
                )
                review.append(item)
                self._reviews.append(item)
                self._alerts.append(
                    StockAlert(
                        AlertKind.SHORTFALL,
                        hold.sku,
                        hold.warehouse_id,
                        now,
                        f"order {hold.order_id} needs review: {detail}",
                        order_id=hold.order_id,
                        event_id=event_id,
                    )
                )
        return tuple(moved), tuple(review)

    def _other_warehouse(self, hold: HoldLine) -> str | None:
        """The warehouse with the most available stock that can take a whole held line."""
        best: tuple[int, str] | None = None
        for level in self._levels_by_sku.get(hold.sku, ()):
            if level.warehouse_id == hold.warehouse_id:
                continue
            left = self._atp(level)
            if left >= hold.quantity and (best is None or (left, level.warehouse_id) > best):
                best = (left, level.warehouse_id)
        return None if best is None else best[1]

    def _move_hold(self, hold: HoldLine, target: str, event_id: str, now: datetime) -> HoldMove:
        source = hold.warehouse_id
        self._level(hold.sku, source).reserved -= hold.quantity
        self._level(hold.sku, target).reserved += hold.quantity
        self._dirty_levels.update({(hold.sku, source), (hold.sku, target)})
        self._dirty_lines.add((hold.order_id, hold.line_no))
        prepared = hold.status is LineStatus.PREPARED
        if prepared:
            self._count_undecided(hold, -1)
        hold.warehouse_id = target
        if prepared:
            self._count_undecided(hold, +1)
        if hold.status is LineStatus.HELD:
            self._announce(
                hold, HoldEventKind.MOVED_OUT, now, warehouse=source, other=target, cause=event_id
            )
            self._announce(hold, HoldEventKind.MOVED_IN, now, other=source, cause=event_id)
        reservation = self.reservations.get(hold.order_id)
        if reservation is not None and reservation.reservation_id == hold.reservation_id:
            reservation.lines = tuple(
                replace(ln, warehouse_id=target) if ln.line_no == hold.line_no else ln
                for ln in reservation.lines
            )
            self._dirty_reservations.add(hold.order_id)
        move = HoldMove(
            hold.order_id,
            hold.reservation_id,
            hold.line_no,
            hold.sku,
            source,
            target,
            hold.quantity,
            event_id,
            now,
        )
        self._moves.append(move)
        return move

    def move_holds(
        self, order_id: str, moves: Sequence[tuple[int, str]], why: str, now: datetime
    ) -> list[ReservedLine]:
        """Move whole held lines of an order to other warehouses: all of them, or none.

        Routing uses this to follow its decision without letting the stock go in between.
        Answers every active line of the order in this shard, where it is held now.
        """
        active = {h.line_no: h for h in self.lines.get(order_id, ()) if h.status in ACTIVE_LINE}
        wanted: dict[tuple[str, str], int] = {}
        chosen: list[tuple[HoldLine, str]] = []
        for line_no, target in moves:
            hold = active.get(line_no)
            if hold is None:
                raise ReservationNotFound(
                    f"order {order_id} holds no line {line_no} here", field="order_id"
                )
            self._require_warehouse(target)
            if target == hold.warehouse_id:
                continue
            key = (hold.sku, target)
            need = wanted.get(key, 0) + hold.quantity
            have = self.available(hold.sku, target)
            if need > have:
                raise InsufficientStock(
                    f"not enough stock of SKU {hold.sku} in warehouse {target} to move "
                    f"line {line_no} of order {order_id}: wanted {need}, available {have}",
                    field=hold.sku,
                )
            wanted[key] = need
            chosen.append((hold, target))
        # Every move fits: apply them all. Nothing above changed state.
        for hold, target in chosen:
            self._move_hold(hold, target, why, now)
        return [
            ReservedLine(h.line_no, h.sku, h.warehouse_id, h.quantity)
            for h in sorted(active.values(), key=lambda h: h.line_no)
        ]

    def _note_event(self, event_id: str) -> None:
        self._applied_events[event_id] = None
        if len(self._applied_events) > REMEMBERED_EVENTS:
            self._applied_events.popitem(last=False)

    def _announce(
        self,
        hold: HoldLine,
        kind: HoldEventKind,
        now: datetime,
        *,
        warehouse: str = "",
        other: str = "",
        cause: str = "",
    ) -> None:
        self._holds_log.append(
            HoldEvent(
                kind,
                hold.order_id,
                hold.reservation_id,
                hold.line_no,
                hold.sku,
                warehouse or hold.warehouse_id,
                hold.quantity,
                now,
                other,
                cause,
            )
        )

    # ----------------------------------------------------------------- reserving

    def reserve(
        self,
        *,
        order_id: str,
        reservation_id: str,
        lines: Sequence[LineRequest],
        expires_at: datetime,
        now: datetime,
        remote_lines: Sequence[ReservedLine] = (),
        primary_sku: str = "",
    ) -> Reservation:
        """Hold ``lines`` and record the reservation; the primary shard's decision.

        ``remote_lines`` are lines other shards have already prepared for this attempt.
        Idempotent: an order that already has a live or closed reservation gets it back.
        """
        existing = self.reservations.get(order_id)
        if existing is not None and existing.status is not ReservationStatus.ABORTED:
            return existing
        if existing is not None and existing.reservation_id == reservation_id:
            raise ReservationClosed(
                f"reservation attempt for order {order_id} was aborted", field="order_id"
            )
        primary_sku = primary_sku or _primary_sku(lines, remote_lines)
        held = self._hold(
            order_id=order_id,
            reservation_id=reservation_id,
            lines=lines,
            status=LineStatus.HELD,
            primary_sku=primary_sku,
            expires_at=expires_at,
            now=now,
        )
        all_lines = tuple(
            sorted(
                [ReservedLine(h.line_no, h.sku, h.warehouse_id, h.quantity) for h in held]
                + list(remote_lines),
                key=lambda rl: rl.line_no,
            )
        )
        reservation = Reservation(
            reservation_id=reservation_id,
            order_id=order_id,
            status=ReservationStatus.HELD,
            primary_sku=primary_sku,
            lines=all_lines,
            expires_at=expires_at,
            created_at=now,
        )
        self.reservations[order_id] = reservation
        self._dirty_reservations.add(order_id)
        heapq.heappush(self._expiry_heap, (expires_at, order_id))
        return reservation

    def prepare(
        self,
        *,
        order_id: str,
        reservation_id: str,
        lines: Sequence[LineRequest],
        primary_sku: str,
        expires_at: datetime,
        now: datetime,
    ) -> list[ReservedLine]:
        """Hold lines for a reservation another shard will decide (phase one)."""
        current = [h for h in self.lines.get(order_id, ()) if h.status in ACTIVE_LINE]
        if current:
            if current[0].reservation_id == reservation_id:
                return [_reserved(h) for h in current]
            raise ReservationConflict(
                f"another reservation attempt for order {order_id} is under way",
                field="order_id",
            )
        held = self._hold(
            order_id=order_id,
            reservation_id=reservation_id,
            lines=lines,
            status=LineStatus.PREPARED,
            primary_sku=primary_sku,
            expires_at=expires_at,
            now=now,
        )
        return [_reserved(h) for h in held]

    def _hold(
        self,
        *,
        order_id: str,
        reservation_id: str,
        lines: Sequence[LineRequest],
        status: LineStatus,
        primary_sku: str,
        expires_at: datetime,
        now: datetime,
    ) -> list[HoldLine]:
        """Check every line against ATP, then hold all of them, or raise and hold none."""
        if not lines:
            raise InvalidRequest("a reservation needs at least one line", field="lines")
        wanted: dict[tuple[str, str], int] = {}
        chosen: list[tuple[LineRequest, str]] = []
        for line in lines:
            if line.quantity <= 0:
                raise InvalidRequest(
                    f"quantity must be positive, got {line.quantity} for SKU {line.sku}",
                    field="lines.quantity",
                )
            self._require_sku(line.sku)
            if line.warehouse_id:
                self._require_warehouse(line.warehouse_id)
                warehouse_id = line.warehouse_id
            else:
                warehouse_id = self._choose_warehouse(line.sku, line.quantity, wanted)
            key = (line.sku, warehouse_id)
            need = wanted.get(key, 0) + line.quantity
            have = self.available(line.sku, warehouse_id)
            if need > have:
                undecided = self._undecided.get(key, 0)
                refusal = StockUndecided if need <= have + undecided else InsufficientStock
                raise refusal(
                    f"not enough stock of SKU {line.sku} in warehouse {warehouse_id}: "
                    f"wanted {need}, available {have}"
                    + (f" ({undecided} more held by undecided reservations)" if undecided else ""),
                    field=line.sku,
                )
            wanted[key] = need
            chosen.append((line, warehouse_id))
        # Every line fits: apply them all. Nothing above has changed state.
        previous = [h for h in self.lines.get(order_id, ()) if h.status not in ACTIVE_LINE]
        held: list[HoldLine] = []
        for line, warehouse_id in chosen:
            level = self._level(line.sku, warehouse_id)
            level.reserved += line.quantity
            self._dirty_levels.add((line.sku, warehouse_id))
            hold = HoldLine(
                order_id=order_id,
                reservation_id=reservation_id,
                line_no=line.line_no,
                sku=line.sku,
                warehouse_id=warehouse_id,
                quantity=line.quantity,
                status=status,
                primary_sku=primary_sku,
                expires_at=expires_at,
                created_at=now,
            )
            held.append(hold)
            self._dirty_lines.add((order_id, line.line_no))
            if status is LineStatus.HELD:
                self._announce(hold, HoldEventKind.HELD, now)
            else:
                self._count_undecided(hold, +1)
        replaced = {h.line_no for h in held}
        self.lines[order_id] = [h for h in previous if h.line_no not in replaced] + held
        return held

    def _choose_warehouse(self, sku: str, quantity: int, wanted: dict[tuple[str, str], int]) -> str:
        """The warehouse with the most stock left that can serve the whole line."""
        best: tuple[int, str] | None = None
        for level in self._levels_by_sku.get(sku, ()):
            left = self._atp(level) - wanted.get((sku, level.warehouse_id), 0)
            if left >= quantity and (
                best is None or (left, level.warehouse_id) > (best[0], best[1])
            ):
                best = (left, level.warehouse_id)
        if best is not None:
            return best[1]
        # A refusal (most answers in a flash sale): one pass for its message and its kind.
        total = 0
        once_decided = False
        undecided = self._undecided
        for level in self._levels_by_sku.get(sku, ()):
            atp = self._atp(level)
            total += atp
            if undecided and not once_decided:
                key = (sku, level.warehouse_id)
                held = undecided.get(key, 0)
                once_decided = held > 0 and atp - wanted.get(key, 0) + held >= quantity
        raise (StockUndecided if once_decided else InsufficientStock)(
            f"no warehouse has {quantity} of SKU {sku} available (total available {total})",
            field=sku,
        )

    def _count_undecided(self, hold: HoldLine, sign: int) -> None:
        """Add (+1) or remove (-1) a PREPARED line's units from the undecided count."""
        key = (hold.sku, hold.warehouse_id)
        left = self._undecided.get(key, 0) + sign * hold.quantity
        if left:
            self._undecided[key] = left
        else:
            self._undecided.pop(key, None)

    # ----------------------------------------------------------------- decisions

    def release(self, order_id: str, now: datetime) -> Reservation:
        """Release a held reservation (primary); stock is available at once."""
        reservation = self._owned(order_id)
        if reservation.status is ReservationStatus.COMMITTED:
            raise ReservationClosed(
                f"reservation for order {order_id} is already committed", field="order_id"
            )
        if reservation.status is ReservationStatus.HELD:
            self._decide(reservation, ReservationStatus.RELEASED, now)
        return reservation

    def commit(self, order_id: str, now: datetime) -> Reservation:
        """Commit a held reservation (primary): the goods left the warehouse."""
        reservation = self._owned(order_id)
        if reservation.status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
            raise ReservationClosed(
                f"reservation for order {order_id} is {reservation.status.value.lower()}; "
                "reserve again before committing",
                field="order_id",
            )
        if reservation.status is ReservationStatus.HELD:
            self._decide(reservation, ReservationStatus.COMMITTED, now)
        return reservation

    def expire_due(self, now: datetime) -> list[Reservation]:
        """Expire every held reservation (owned here) whose hold has run out."""
        expired: list[Reservation] = []
        while self._expiry_heap and self._expiry_heap[0][0] <= now:
            expires_at, order_id = heapq.heappop(self._expiry_heap)
            reservation = self.reservations.get(order_id)
            if (
                reservation is None
                or reservation.status is not ReservationStatus.HELD
                or reservation.expires_at != expires_at
            ):
                continue
            self._decide(reservation, ReservationStatus.EXPIRED, now)
            expired.append(reservation)
        return expired

    def next_expiry(self) -> datetime | None:
        """When the earliest live hold owned here runs out."""
        while self._expiry_heap:
            expires_at, order_id = self._expiry_heap[0]
            reservation = self.reservations.get(order_id)
            if reservation is not None and reservation.status is ReservationStatus.HELD:
                return expires_at
            heapq.heappop(self._expiry_heap)
        return None

    def resolve(self, order_id: str, reservation_id: str, now: datetime) -> ReservationStatus:
        """The decision on a prepared attempt (primary); undecided attempts are aborted.

        Presumed abort: an attempt with no decision by now will never get one, so
        a tombstone is recorded and a late decision for it is refused.
        """
        reservation = self.reservations.get(order_id)
        if reservation is not None and reservation.reservation_id == reservation_id:
            return reservation.status
        if reservation is None or reservation.status is ReservationStatus.ABORTED:
            self.reservations[order_id] = Reservation(
                reservation_id=reservation_id,
                order_id=order_id,
                status=ReservationStatus.ABORTED,
                primary_sku="",
                lines=(),
                expires_at=now,
                created_at=now,
                closed_at=now,
            )
            self._dirty_reservations.add(order_id)
        return ReservationStatus.ABORTED

    def follow(
        self, order_id: str, reservation_id: str, decision: ReservationStatus, now: datetime
    ) -> list[ReservedLine]:
        """Apply a primary's decision to the lines this shard holds for that attempt."""
        target = _DECISION_TO_LINE[decision]
        touched: list[ReservedLine] = []
        for hold in self.lines.get(order_id, ()):
            if hold.reservation_id != reservation_id:
                continue
            if self._move_line(hold, target, now):
                touched.append(_reserved(hold))
        return touched

    def stale_prepared(self, older_than: datetime) -> list[tuple[str, str, str]]:
        """Prepared attempts waiting for a decision since before ``older_than``.

        Returns (order_id, reservation_id, primary_sku) per attempt.
        """
        stale: dict[tuple[str, str], str] = {}
        for order_id, holds in self.lines.items():
            for hold in holds:
                if hold.status is LineStatus.PREPARED and hold.created_at < older_than:
                    stale[(order_id, hold.reservation_id)] = hold.primary_sku
        return [(o, r, p) for (o, r), p in stale.items()]

    def overdue_held(self, older_than: datetime) -> list[tuple[str, str, str]]:
        """Lines held for another shard's reservation well past their expiry."""
        overdue: dict[tuple[str, str], str] = {}
        for order_id, holds in self.lines.items():
            for hold in holds:
                if (
                    hold.status is LineStatus.HELD
                    and order_id not in self.reservations
                    and hold.expires_at < older_than
                ):
                    overdue[(order_id, hold.reservation_id)] = hold.primary_sku
        return [(o, r, p) for (o, r), p in overdue.items()]

    def prune(self, closed_before: datetime) -> int:
        """Forget reservations and lines closed before a time; the database keeps them."""
        gone = 0
        for order_id in [
            o
            for o, r in self.reservations.items()
            if r.closed_at is not None and r.closed_at < closed_before
        ]:
            del self.reservations[order_id]
            gone += 1
        for order_id in [
            o
            for o, hs in self.lines.items()
            if all(h.closed_at is not None and h.closed_at < closed_before for h in hs)
        ]:
            del self.lines[order_id]
        return gone

    def _decide(self, reservation: Reservation, decision: ReservationStatus, now: datetime) -> None:
        reservation.status = decision
        reservation.closed_at = None if decision is ReservationStatus.HELD else now
        self._dirty_reservations.add(reservation.order_id)
        self.follow(reservation.order_id, reservation.reservation_id, decision, now)

    def _move_line(self, hold: HoldLine, target: LineStatus, now: datetime) -> bool:
        if hold.status is target or hold.status not in ACTIVE_LINE:
            return False
        self._dirty_lines.add((hold.order_id, hold.line_no))
        if hold.status is LineStatus.PREPARED:
            self._count_undecided(hold, -1)
        if target is LineStatus.HELD:
            hold.status = target
            self._announce(hold, HoldEventKind.HELD, now)
            return True
        if hold.status is LineStatus.HELD and target in _ANNOUNCED_END:
            self._announce(hold, _ANNOUNCED_END[target], now)
        level = self._level(hold.sku, hold.warehouse_id)
        level.reserved -= hold.quantity
        if target is LineStatus.COMMITTED:
            level.on_hand -= hold.quantity
            self._ledger.append(
                LedgerEntry(
                    hold.sku,
                    hold.warehouse_id,
                    LedgerKind.COMMIT,
                    -hold.quantity,
                    level.on_hand,
                    now,
                    order_id=hold.order_id,
                )
            )
        self._dirty_levels.add((hold.sku, hold.warehouse_id))
        hold.status = target
        hold.closed_at = now
        return True

    # ----------------------------------------------------------------- persistence

    def has_changes(self) -> bool:
        """Whether anything changed since the last drain."""
        return bool(
            self._dirty_levels
            or self._dirty_lines
            or self._dirty_reservations
            or self._ledger
            or self._threshold_changed
            or self._alerts
        )

    def drain_changes(self, now: datetime) -> Changes:
        """Snapshots of everything changed since the last drain, for the shell to persist."""
        self._check_low_stock({sku for sku, _ in self._dirty_levels} | self._threshold_changed, now)
        changes = Changes(
            levels={k: replace(self.levels[k]) for k in self._dirty_levels},
            lines={k: replace(self._line(*k)) for k in self._dirty_lines},
            reservations={k: replace(self.reservations[k]) for k in self._dirty_reservations},
            ledger=self._ledger,
            views=[self.view(self.levels[k]) for k in sorted(self._dirty_levels)],
            holds=self._holds_log,
            alerts=self._alerts,
            moves=self._moves,
            reviews=self._reviews,
        )
        self._dirty_levels = set()
        self._dirty_lines = set()
        self._dirty_reservations = set()
        self._threshold_changed = set()
        self._ledger = []
        self._holds_log = []
        self._alerts = []
        self._moves = []
        self._reviews = []
        return changes

    def total_available(self, sku: str) -> int:
        """A SKU's available-to-promise summed over its warehouses."""
        return sum(max(0, self._atp(lv)) for lv in self._levels_by_sku.get(sku, ()))

    def low_on_stock(self) -> set[str]:
        """SKUs whose low-stock alert is raised."""
        return set(self._low)

    def _check_low_stock(self, skus: Iterable[str], now: datetime) -> None:
        """Raise a SKU's alert when its ATP crosses below its threshold; clear it on recovery."""
        for sku in skus:
            if sku not in self._levels_by_sku:
                continue  # no stock recorded anywhere yet: nothing has crossed anything
            threshold = self.sku_low_threshold.get(sku, 0)
            if threshold <= 0 and sku not in self._low:
                continue  # no alert for this SKU: skip the sum on every commit
            available = self.total_available(sku)
            low = threshold > 0 and available < threshold
            if low and sku not in self._low:
                self._low.add(sku)
                self._alerts.append(
                    StockAlert(
                        AlertKind.LOW_STOCK,
                        sku,
                        "",
                        now,
                        f"SKU {sku} is low on stock: {available} available, threshold {threshold}",
                        available=available,
                        threshold=threshold,
                    )
                )
            elif not low and sku in self._low:
                self._low.discard(sku)
                self._alerts.append(
                    StockAlert(
                        AlertKind.LOW_STOCK_CLEARED,
                        sku,
                        "",
                        now,
                        f"SKU {sku} recovered: {available} available, threshold {threshold}",
                        available=available,
                        threshold=threshold,
                    )
                )

    def restore(
        self,
        *,
        skus: Iterable[tuple[str, int, int]],
        warehouses: Iterable[str],
        levels: Iterable[Level],
        lines: Iterable[HoldLine],
        reservations: Iterable[Reservation],
    ) -> None:
        """Load persisted state (the database is the source of truth).

        ``skus`` are (sku, safety stock, low-stock threshold). A SKU below its threshold
        now had its alert raised when it got there, so it is not raised again.
        """
        for sku, safety, threshold in skus:
            self.sku_safety[sku] = safety
            self.sku_low_threshold[sku] = threshold
        self.warehouses.update(warehouses)
        for level in levels:
            self.levels[(level.sku, level.warehouse_id)] = level
            self._levels_by_sku.setdefault(level.sku, []).append(level)
        for hold in lines:
            self.lines.setdefault(hold.order_id, []).append(hold)
            if hold.status is LineStatus.PREPARED:
                self._count_undecided(hold, +1)
        for reservation in reservations:
            self.reservations[reservation.order_id] = reservation
            if reservation.status is ReservationStatus.HELD:
                heapq.heappush(self._expiry_heap, (reservation.expires_at, reservation.order_id))
        self._low = {
            sku
            for sku, threshold in self.sku_low_threshold.items()
            if threshold > 0
            and sku in self._levels_by_sku
            and self.total_available(sku) < threshold
        }

    def remember(self, reservations: Iterable[Reservation]) -> None:
        """Add reservation records read back from the database, keeping newer ones in memory."""
        for reservation in reservations:
            if reservation.order_id in self.reservations:
                continue
            self.reservations[reservation.order_id] = reservation
            if reservation.status is ReservationStatus.HELD:
                heapq.heappush(self._expiry_heap, (reservation.expires_at, reservation.order_id))

    # ----------------------------------------------------------------- helpers

    def _owned(self, order_id: str) -> Reservation:
        reservation = self.reservations.get(order_id)
        if reservation is None or reservation.status is ReservationStatus.ABORTED:
            raise ReservationNotFound(f"no reservation for order {order_id}", field="order_id")
        return reservation

    def _line(self, order_id: str, line_no: int) -> HoldLine:
        for hold in self.lines[order_id]:
            if hold.line_no == line_no:
                return hold
        raise KeyError((order_id, line_no))

    def _level(self, sku: str, warehouse_id: str) -> Level:
        level = self.levels.get((sku, warehouse_id))
        if level is None:
            level = Level(sku, warehouse_id)
            self.levels[(sku, warehouse_id)] = level
            self._levels_by_sku.setdefault(sku, []).append(level)
        return level

    def _safety(self, level: Level) -> int:
        if level.safety_stock is not None:
            return level.safety_stock
        return self.sku_safety.get(level.sku, 0)

    def _atp(self, level: Level) -> int:
        return level.on_hand - level.reserved - self._safety(level)

    def _require_sku(self, sku: str) -> None:
        if sku not in self.sku_safety:
            raise UnknownSku(f"unknown SKU {sku!r}", field="sku")

    def _require_warehouse(self, warehouse_id: str) -> None:
        if warehouse_id not in self.warehouses:
            raise UnknownWarehouse(f"unknown warehouse {warehouse_id!r}", field="warehouse_id")


def _reserved(hold: HoldLine) -> ReservedLine:
    return ReservedLine(hold.line_no, hold.sku, hold.warehouse_id, hold.quantity)


def _primary_sku(lines: Sequence[LineRequest], remote: Sequence[ReservedLine]) -> str:
    return min([line.sku for line in lines] + [line.sku for line in remote])


def primary_sku_of(skus: Iterable[str]) -> str:
    """The SKU whose shard owns a reservation: the order's smallest SKU."""
    return min(skus)
