"""Routing orders: live data in, :func:`hub.domain.routing.decide`, the hold follows, stored.

For an order the router gathers what is true now — each warehouse's ATP for the order's
SKUs (counting what the order itself holds there), how many orders each warehouse has
taken today, the lanes that are not CLOSED, the rules in force — and lets the pure engine
decide. Then the order's held stock moves to the chosen warehouses line by line (a shard
moves a line whole or not at all, and the stock is never let go in between), and the
parcels, the ``routed`` event and the order's move to ``ALLOCATED`` are written in one
transaction.

Routing runs on its own:

- for every paid order whose stock is held and that has no routing yet (``start`` wakes a
  background pass; intake nudges it, and it also sweeps on a timer, so an order taken
  while the hub was down is routed after the restart);
- again for unshipped orders on a lane whose breaker trips;
- again for unshipped orders whose hold a warehouse moved (a shortfall re-dispatch);
- again for the newest unshipped orders of a warehouse routed beyond its daily capacity
  (its capacity was lowered).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from hub.batching import Batcher
from hub.domain.geo import province_of
from hub.domain.intake import REVIEW
from hub.domain.inventory import (
    InsufficientStock,
    InventoryError,
    LevelView,
    Reservation,
    ReservationNotFound,
    ReservationStatus,
)
from hub.domain.lanes import BreakerState, Transition
from hub.domain.lifecycle import Change, OrderNotFound, lines_to_hold, shipped
from hub.domain.orders import OrderStatus
from hub.domain.quotes import Parcel, Quote, QuoteProvider
from hub.domain.rate_cards import load_rate_cards
from hub.domain.routing import (
    Decision,
    NoRoute,
    PlannedShipment,
    RouteLine,
    RouteRequest,
    WarehouseState,
    decide,
    quote_route,
)
from hub.domain.routing_rules import RuleSet, default_rules, parse_rules
from hub.events import ROUTING_CAUSE
from hub.inventory import Inventory, LineInput, ShardUnavailable
from hub.lanes import LaneHealthBoard
from hub.store.master_data import Carrier, MasterData, Warehouse
from hub.store.orders import OrderStore, OrderWrite, StoredOrder
from hub.store.routing import RoutedShipment, RoutingStore, StoredRules, write_routings

log = logging.getLogger("orderhub.routing")

K = TypeVar("K")
V = TypeVar("V")

#: Orders routed at the same time by one background pass (each mostly waits on the
#: database and the actors, so several in flight keep up with intake).
ROUTE_CONCURRENCY = 256
#: How long a read of today's orders per warehouse is used (this process's own routings
#: count at once; other processes' at the next read).
LOAD_TTL_S = 1.0
#: How long master data read for routing (warehouses, carriers) is used before reading again.
MASTER_TTL_S = 2.0
#: How long a read of the warehouses' backlog is used, and how many days back it looks.
BACKLOG_TTL_S = 10.0
BACKLOG_DAYS = 14
#: Statuses whose goods have not left and that may be routed (again).
ROUTABLE = frozenset({OrderStatus.PAID, OrderStatus.ON_HOLD, OrderStatus.ALLOCATED})


class RoutingRefused(Exception):
    """The order cannot be routed as it stands (not paid, shipped, in review …)."""

    def __init__(self, message: str, *, field: str = "order_id") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Routed:
    """What routing an order did."""

    order_id: str
    decision: Decision
    moved: bool
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A routing question without an order: where to, what, and how it should go."""

    destination_province: str
    destination_city: str
    lines: tuple[tuple[str, int], ...]
    tags: frozenset[str] = frozenset()
    channel: str = ""
    amount_fen: int | None = None
    sla_hours: int | None = None


class WithoutCarriers:
    """A quote provider that leaves out carriers switched off in master data."""

    def __init__(self, inner: QuoteProvider, off: frozenset[str]) -> None:
        self._inner = inner
        self._off = off
        self.name = inner.name

    def quote(self, parcel: Parcel, carriers: Sequence[str] = ()) -> list[Quote]:
        """The inner provider's quotes, without the carriers switched off."""
        return [q for q in self._inner.quote(parcel, carriers) if q.carrier not in self._off]


class Router:
    """Routes orders with the rules in force and keeps the decisions."""

    def __init__(
        self,
        store: RoutingStore,
        orders: OrderStore,
        master_data: MasterData,
        inventory: Inventory,
        lanes: LaneHealthBoard,
        *,
        day_tz: str = "Asia/Shanghai",
        providers: Sequence[QuoteProvider] | None = None,
        sweep_s: float = 5.0,
    ) -> None:
        self.store = store
        self._orders = orders
        self._md = master_data
        self._warehouses_read: _Recent[None, list[Warehouse]] = _Recent(MASTER_TTL_S)
        self._carriers_read: _Recent[None, list[Carrier]] = _Recent(MASTER_TTL_S)
        self._inventory = inventory
        self._lanes = lanes
        self._tz = ZoneInfo(day_tz)
        self._providers: list[QuoteProvider] = (
            list(providers) if providers is not None else [load_rate_cards()]
        )
        self._sweep_s = sweep_s
        self._rules = default_rules()
        self._rules_meta: StoredRules | None = None
        # SKU -> one unit's weight (g), volume (cm³) and when they were read.
        self._units: dict[str, tuple[int, int, float]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._backlog_read: _Recent[date, dict[str, int]] = _Recent(BACKLOG_TTL_S)
        self._load_read: _Recent[str, dict[str, int]] = _Recent(LOAD_TTL_S)
        # Concurrent routings share their database rounds: one read, one write each.
        self._gets: Batcher[str, StoredOrder | None] = Batcher(orders.get_many)
        self._saves: Batcher[_Save, StoredOrder | None] = Batcher(self._write_routed)
        lanes.on_transitions(self._lanes_changed)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, auto: bool = True) -> None:
        """Load the rules in force; with ``auto``, route held orders in the background."""
        await self._load_rules()
        if auto:
            self.start_background()

    def start_background(self) -> None:
        """Route paid, held orders (and re-balance capacity) in the background from now on."""
        if not self._tasks:
            self._tasks.append(asyncio.get_running_loop().create_task(self._route_forever()))

    async def settle(self) -> None:
        """Wait for re-routing started by lane transitions."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def stop(self) -> None:
        """Stop routing in the background."""
        await self.settle()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def nudge(self) -> None:
        """Look for orders to route now (new paid orders were taken in)."""
        self._wake.set()

    # ------------------------------------------------------------------ rules

    async def rules_version(self, version: int = 0) -> tuple[RuleSet, StoredRules | None]:
        """A version of the rules (0: in force); the packaged defaults are version 0."""
        if version == 0:
            await self._load_rules()
            return self._rules, self._rules_meta
        stored = await asyncio.to_thread(self.store.rules, version)
        if stored is None:
            raise OrderNotFound(f"no routing rules version {version}", field="version")
        return replace(parse_rules(stored.document), version=stored.version), stored

    async def update_rules(
        self,
        document: str,
        *,
        actor: str,
        comment: str = "",
        expected_version: int = 0,
        validate_only: bool = False,
    ) -> tuple[RuleSet, StoredRules | None]:
        """Validate rules (``RuleError`` names the field) and store them as the next version."""
        parsed = parse_rules(document)
        doc = parsed.to_document()
        doc.pop("version", None)
        if validate_only:
            return parsed, None
        stored = await asyncio.to_thread(
            self.store.save_rules,
            doc,
            actor=actor,
            comment=comment,
            expected_version=expected_version,
        )
        self._rules = replace(parsed, version=stored.version)
        self._rules_meta = stored
        log.info("routing rules version %d stored by %s", stored.version, actor)
        return self._rules, stored

    async def stored_versions(self, *, before: int = 0, limit: int = 50) -> list[StoredRules]:
        """Stored versions of the rules, newest first, older than ``before`` when given."""
        return await asyncio.to_thread(self.store.rule_versions, before=before, limit=limit)

    async def _load_rules(self) -> None:
        stored = await asyncio.to_thread(self.store.current_rules)
        if stored is None:
            self._rules, self._rules_meta = default_rules(), None
        elif self._rules_meta is None or stored.version != self._rules_meta.version:
            self._rules = replace(parse_rules(stored.document), version=stored.version)
            self._rules_meta = stored

    # ------------------------------------------------------------------ deciding

    async def quote(self, ask: WhatIf, rules: RuleSet | None = None) -> Decision:
        """What routing would decide for a destination and lines now; changes nothing."""
        lines = await self._route_lines(ask.lines)
        request = RouteRequest(
            order_id="what-if",
            destination_province=ask.destination_province,
            destination_city=ask.destination_city,
            lines=lines,
            tags=ask.tags,
            channel=ask.channel,
            amount_fen=ask.amount_fen,
            sla_hours=ask.sla_hours,
        )
        warehouses = await self._warehouses(sorted({s for s, _ in ask.lines}), None)
        return quote_route(
            request,
            warehouses,
            rules or self._rules,
            await self._active_providers(),
            self._lanes.verdict,
        )

    async def route_order(
        self, order_id: str, *, actor: str = "hub", why: str = "", sla_hours: int | None = None
    ) -> Routed:
        """Decide an order's warehouses and carriers, move its hold there and store it."""
        order_id = order_id.strip()
        if not order_id:
            raise RoutingRefused("order_id is required")
        pinned = False
        for attempt in range(4):
            stored = await self._gets.submit(order_id)
            if stored is None:
                raise OrderNotFound(f"no order {order_id!r}")
            self._check_routable(stored)
            try:
                return await self._route(stored, actor, why, sla_hours, pinned=pinned)
            except _Retry as again:
                log.info("routing %s again (%d): %s", order_id, attempt + 1, again)
                # Stock keeps moving under the decisions: choose carriers for the lines
                # where they are held now.
                pinned = again.pin or attempt >= 1
        raise RoutingRefused(
            f"order {order_id} kept changing while it was being routed; try again",
            field="order_id",
        )

    async def _route(
        self,
        stored: StoredOrder,
        actor: str,
        why: str,
        sla_hours: int | None,
        *,
        pinned: bool = False,
    ) -> Routed:
        order = stored.order
        want = lines_to_hold(order)
        if not want:
            raise RoutingRefused(f"order {stored.order_id} has no lines to ship")
        hold = await self._hold_of(stored)
        own: dict[tuple[str, str], int] = {}
        if hold is not None:
            for line in hold.lines:
                key = (line.sku, line.warehouse_id)
                own[key] = own.get(key, 0) + line.quantity
        request = RouteRequest(
            order_id=stored.order_id,
            destination_province=order.recipient.province,
            destination_city=order.recipient.city,
            lines=await self._route_lines(want),
            tags=frozenset(stored.tags),
            channel=order.platform,
            amount_fen=order.total_paid_fen,
            sla_hours=sla_hours,
        )
        warehouses = await self._warehouses(sorted({s for s, _ in want}), own, pinned=pinned)
        decision = decide(
            request, warehouses, self._rules, await self._active_providers(), self._lanes.verdict
        )
        moved = await self._follow(stored, hold, decision)
        decided_at = datetime.now(UTC)
        await self._save(stored, decision, decided_at, actor, why, moved)
        return Routed(stored.order_id, decision, moved, decided_at)

    def _check_routable(self, stored: StoredOrder) -> None:
        status = stored.order.status
        if status not in ROUTABLE:
            done = "has shipped" if shipped(status) else f"is {status.value}"
            raise RoutingRefused(
                f"order {stored.order_id} {done}; only paid, unshipped orders are routed"
            )
        if stored.queue == REVIEW:
            raise RoutingRefused(
                f"order {stored.order_id} waits in review ({'; '.join(stored.review_reasons)}); "
                "approve it first"
            )

    async def _hold_of(self, stored: StoredOrder) -> Reservation | None:
        """The order's live hold, or None when it holds nothing now."""
        try:
            held = await self._inventory.get_reservation(stored.hold_key or stored.order_id)
        except ReservationNotFound:
            return None
        return held if held.status is ReservationStatus.HELD else None

    async def _follow(
        self, stored: StoredOrder, hold: Reservation | None, decision: Decision
    ) -> bool:
        """Make the order's hold match the decision; whether stock moved or was held anew."""
        key = stored.hold_key or stored.order_id
        if hold is None:
            lines = [
                LineInput(sku, qty, s.warehouse_id)
                for s in decision.shipments
                for sku, qty in s.lines
            ]
            try:
                await self._inventory.reserve(key, lines)
            except InsufficientStock as err:
                raise _Retry(str(err)) from err
            return True
        moves = _moves(hold, decision.shipments)
        if moves is None:
            raise _Retry("the decision splits a held line", pin=True)
        if not moves:
            return False
        try:
            now = await self._inventory.move_holds(key, moves, why=ROUTING_CAUSE, hold=hold)
        except (InsufficientStock, ShardUnavailable) as err:
            raise _Retry(str(err)) from err
        placed = {line.line_no: line.warehouse_id for line in now.lines}
        if any(placed.get(n) != w for n, w in moves.items()):
            raise _Retry("some lines could not move; deciding again from where they are")
        return True

    async def _save(
        self,
        stored: StoredOrder,
        decision: Decision,
        decided_at: datetime,
        actor: str,
        why: str,
        moved: bool,
    ) -> None:
        province = province_of(stored.order.recipient.province)
        assert province is not None  # decide() refused unknown destinations
        day = decided_at.astimezone(self._tz).date().isoformat()
        rows = [
            RoutedShipment(
                stored.order_id,
                n,
                s.warehouse_id,
                s.carrier,
                province.short,
                s.lines,
                s.promised_hours,
                s.cost_fen,
                decision.rules_version,
                day,
                decided_at,
            )
            for n, s in enumerate(decision.shipments, start=1)
        ]
        status = stored.order.status
        target = OrderStatus.ALLOCATED if status is OrderStatus.PAID else status
        details: dict[str, Any] = {
            "shipments": [_shipment_json(s) for s in decision.shipments],
            "rules_version": decision.rules_version,
            "moved": moved,
            "trace": [f"[{t.step}] {t.detail}" for t in decision.trace],
        }
        summary = ", ".join(f"{s.warehouse_id}/{s.carrier}" for s in decision.shipments)
        written = await self._saves.submit(
            _Save(
                OrderWrite(
                    stored,
                    actor=actor,
                    events=[Change("routed", f"{summary}{'; ' + why if why else ''}")],
                    order=replace(stored.order, status=target) if target is not status else None,
                    details=details,
                ),
                rows,
            )
        )
        if written is None:
            raise _Retry("the order changed while it was being routed")
        self._count_routed(day, {s.warehouse_id for s in decision.shipments})

    def _write_routed(self, saves: Sequence[_Save]) -> list[StoredOrder | None]:
        """Many routed orders, their parcels and their warehouses' counts: one transaction."""

        def parcels(conn: Connection, written: list[StoredOrder | None]) -> None:
            write_routings(
                conn,
                [
                    (x.write.current.order_id, x.parcels)
                    for x, done in zip(saves, written, strict=True)
                    if done is not None
                ],
            )

        return self._orders.change_many([x.write for x in saves], then=parcels)

    async def _route_lines(self, lines: Sequence[tuple[str, int]]) -> tuple[RouteLine, ...]:
        units = await self._units_of(sorted({s for s, _ in lines}))
        return tuple(RouteLine(sku, qty, *units[sku]) for sku, qty in lines)

    async def _units_of(self, skus: Sequence[str]) -> dict[str, tuple[int, int]]:
        """One unit's weight and volume per SKU, read again after ``MASTER_TTL_S``."""
        now = time.monotonic()
        known = self._units
        for sku in skus:
            held = known.get(sku)
            if held is not None and now - held[2] <= MASTER_TTL_S:
                continue
            found = await asyncio.to_thread(self._md.sku, sku)
            if found is None:
                raise NoRoute(f"unknown SKU {sku!r}", field="lines.sku")
            known[sku] = (found.weight_grams, found.volume_cm3, now)
        if len(known) > 100_000:
            self._units = {s: known[s] for s in skus}
        return {s: known[s][:2] for s in skus}

    async def _load(self, day: str) -> dict[str, int]:
        """Orders routed to each warehouse on ``day``: read at most every ``LOAD_TTL_S``,
        counting this process's own routings since at once (others' show at the next read).
        """
        return await self._load_read.get(day, lambda: self.store.load(day))

    def _count_routed(self, day: str, warehouse_ids: set[str]) -> None:
        load = self._load_read.peek(day)
        if load is not None:
            for w in warehouse_ids:
                load[w] = load.get(w, 0) + 1

    async def _backlog(self, day: date) -> dict[str, int]:
        """Each warehouse's carry-over into ``day`` (see ``WarehouseState.backlog``).

        Read at most every ``BACKLOG_TTL_S``: it changes only as parcels are handed over.
        """
        midnight = datetime.combine(day, dtime(), self._tz)
        return await self._backlog_read.get(
            day,
            lambda: self.store.carried_over(
                day.isoformat(),
                (day - timedelta(days=BACKLOG_DAYS)).isoformat(),
                midnight,
                [s.value for s in ROUTABLE],
            ),
        )

    async def _master_warehouses(self, *, fresh: bool = False) -> list[Warehouse]:
        """Every warehouse, read at most every ``MASTER_TTL_S`` unless ``fresh``."""
        return await self._warehouses_read.get(None, self._md.warehouses, fresh=fresh)

    async def _warehouses(
        self,
        skus: Sequence[str],
        own: Mapping[tuple[str, str], int] | None,
        *,
        pinned: bool = False,
    ) -> list[WarehouseState]:
        """Warehouses with their ATP for ``skus`` plus what the order holds there (``own``).

        ``pinned`` offers only what the order holds, where it holds it: routing then
        chooses carriers for the lines as they are.
        """
        today = datetime.now(self._tz).date()
        warehouses, load, levels, backlog = await asyncio.gather(
            self._master_warehouses(),
            self._load(today.isoformat()),
            asyncio.gather(*(self._inventory.availability(s) for s in skus)),
            self._backlog(today),
        )
        known = {w.warehouse_id for w in warehouses}
        if any(v.warehouse_id not in known for views in levels for v in views):
            warehouses = await self._master_warehouses(fresh=True)  # one added since
        atp: dict[str, dict[str, int]] = {w.warehouse_id: {} for w in warehouses}
        if pinned:
            held = {w for _, w in (own or {})}
            warehouses = [w for w in warehouses if w.warehouse_id in held]
            levels = []
        for views in levels:
            for v in views:
                if isinstance(v, LevelView) and v.warehouse_id in atp:
                    atp[v.warehouse_id][v.sku] = max(v.available, 0)
        for (sku, warehouse_id), qty in (own or {}).items():
            if warehouse_id in atp:
                atp[warehouse_id][sku] = atp[warehouse_id].get(sku, 0) + qty
        return [
            WarehouseState(
                w.warehouse_id,
                w.province,
                w.city,
                w.daily_capacity,
                load.get(w.warehouse_id, 0),
                atp[w.warehouse_id],
                backlog.get(w.warehouse_id, 0),
            )
            for w in warehouses
        ]

    async def _active_providers(self) -> list[QuoteProvider]:
        """The providers, without carriers switched off in master data (``active`` false).

        A carrier master data does not list is still quoted: the rate cards name it.
        """
        carriers = await self._carriers_read.get(None, self._md.carriers)
        off = frozenset(c.carrier_id for c in carriers if not c.active)
        if not off:
            return self._providers
        return [WithoutCarriers(p, off) for p in self._providers]

    # ------------------------------------------------------------------ routing on its own

    async def reroute(
        self, order_ids: Sequence[str], why: str, *, review_failures: bool = False
    ) -> int:
        """Route unshipped orders (again), ``ROUTE_CONCURRENCY`` at a time; how many were routed.

        With ``review_failures`` an order that cannot be routed at all (its destination is
        unknown, no carrier serves it) goes to review saying why, so it is not tried again
        and again; otherwise it keeps the routing it has.
        """
        gate = asyncio.Semaphore(ROUTE_CONCURRENCY)

        async def one(order_id: str) -> bool:
            if order_id in self._busy:
                return False
            self._busy.add(order_id)
            try:
                async with gate:
                    await self.route_order(order_id, why=why)
                return True
            except (RoutingRefused, OrderNotFound):
                return False  # shipped, cancelled or in review meanwhile: nothing to do
            except NoRoute as err:
                log.warning("order %s could not be routed (%s): %s", order_id, why, err)
                if review_failures:
                    await self._send_to_review(order_id, f"NOT_ROUTED: {err}")
                return False
            except (InventoryError, ShardUnavailable) as err:
                log.warning("order %s could not be routed (%s): %s", order_id, why, err)
                return False
            finally:
                self._busy.discard(order_id)

        done = await asyncio.gather(*(one(o) for o in dict.fromkeys(order_ids)))
        return sum(done)

    async def _send_to_review(self, order_id: str, reason: str) -> None:
        stored = await asyncio.to_thread(self._orders.get, order_id)
        if stored is not None and stored.queue != REVIEW:
            await asyncio.to_thread(self._orders.send_to_review, stored, reason)

    async def _lanes_changed(self, changes: Sequence[Transition]) -> None:
        """A lane tripped: its unshipped orders are routed again, in the background."""
        tripped = [t for t in changes if t.to_state is BreakerState.OPEN]
        if tripped:
            task = asyncio.get_running_loop().create_task(self._reroute_lanes(tripped))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _reroute_lanes(self, tripped: Sequence[Transition]) -> None:
        for t in tripped:
            lane = t.lane
            orders = await asyncio.to_thread(
                self.store.orders_on_lane,
                lane.warehouse_id,
                lane.carrier,
                lane.destination_province,
                [s.value for s in ROUTABLE],
            )
            why = (
                f"lane {lane.warehouse_id}/{lane.carrier}/{lane.destination_province} tripped OPEN"
            )
            routed = await self.reroute(orders, why)
            log.info("%s: %d unshipped orders routed again", why, routed)

    async def forget(self, order_id: str) -> None:
        """Let an order's routing go (its hold was given back): its warehouse's day frees up.

        A paid or allocated order that is held again is routed again by the next sweep.
        """
        await asyncio.to_thread(self.store.forget, order_id)
        self._wake.set()

    async def holds_moved(self, order_ids: Sequence[str]) -> int:
        """Orders whose hold a warehouse moved (a shortfall): route them again."""
        return await self.reroute(order_ids, "their stock moved to another warehouse")

    async def rebalance_capacity(self) -> int:
        """Route the newest orders of warehouses beyond today's capacity elsewhere."""
        day = datetime.now(self._tz).date().isoformat()
        warehouses, load = await asyncio.gather(
            self._master_warehouses(), asyncio.to_thread(self.store.load, day)
        )
        done = 0
        for w in warehouses:
            over = load.get(w.warehouse_id, 0) - w.daily_capacity
            if w.daily_capacity <= 0 or over <= 0:
                continue
            routed = await asyncio.to_thread(self.store.orders_at, w.warehouse_id, day)
            newest = [order_id for order_id, _ in routed[-over:]]
            done += await self.reroute(
                newest, f"{w.warehouse_id} is beyond its daily capacity of {w.daily_capacity}"
            )
        return done

    async def route_waiting(self, limit: int = 200) -> int:
        """Route paid, held orders that have no routing yet; how many were routed."""
        waiting = await asyncio.to_thread(
            self.store.unrouted,
            [OrderStatus.PAID.value, OrderStatus.ALLOCATED.value],
            REVIEW,
            limit,
        )
        return await self.reroute(waiting, "paid and held", review_failures=True)

    async def _route_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sweep_s)
            self._wake.clear()
            try:
                await self._load_rules()
                while await self.route_waiting() > 0:
                    pass
                await self.rebalance_capacity()
            except Exception:  # the database is away: the next pass tries again
                log.exception("background routing pass failed")


@dataclass(frozen=True, slots=True)
class _Save:
    """A routed order waiting to be written with its parcels."""

    write: OrderWrite
    parcels: Sequence[RoutedShipment]


class _Recent(Generic[K, V]):
    """One value read for a key, used for ``ttl_s`` (or until the key changes)."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._held: tuple[K, float, V] | None = None

    async def get(self, key: K, read: Callable[[], V], *, fresh: bool = False) -> V:
        """The value for ``key``, read (in a thread) when it is missing, stale or ``fresh``."""
        now = time.monotonic()
        held = self._held
        if fresh or held is None or held[0] != key or now - held[1] > self._ttl_s:
            held = (key, now, await asyncio.to_thread(read))
            self._held = held
        return held[2]

    def peek(self, key: K) -> V | None:
        """The value held for ``key``, however old, without reading."""
        held = self._held
        return held[2] if held is not None and held[0] == key else None


class _Retry(Exception):
    """The world changed under a decision: decide again (``pin``: with the lines as held)."""

    def __init__(self, message: str, *, pin: bool = False) -> None:
        super().__init__(message)
        self.pin = pin


def _moves(hold: Reservation, shipments: Sequence[PlannedShipment]) -> dict[int, str] | None:
    """Which held lines go to which warehouse to match the shipments; None if a line splits."""
    left: dict[tuple[str, str], int] = {}
    for s in shipments:
        for sku, qty in s.lines:
            left[(sku, s.warehouse_id)] = left.get((sku, s.warehouse_id), 0) + qty
    moves: dict[int, str] = {}
    waiting = []
    for line in hold.lines:  # lines already where the decision wants them stay
        key = (line.sku, line.warehouse_id)
        if left.get(key, 0) >= line.quantity:
            left[key] -= line.quantity
        else:
            waiting.append(line)
    for line in waiting:
        fits = [(q, w) for (sku, w), q in left.items() if sku == line.sku and q >= line.quantity]
        targets = sorted(fits, reverse=True)
        if not targets:
            return None
        _, target = targets[0]
        left[(line.sku, target)] -= line.quantity
        moves[line.line_no] = target
    return moves


def _shipment_json(s: PlannedShipment) -> dict[str, Any]:
    return {
        "warehouse_id": s.warehouse_id,
        "carrier": s.carrier,
        "lines": [{"sku": sku, "quantity": qty} for sku, qty in s.lines],
        "promised_hours": s.promised_hours,
        "cost_fen": s.cost_fen,
    }


def rules_json(rules: RuleSet) -> str:
    """The rules as the JSON document the API carries."""
    doc = rules.to_document()
    doc.pop("version", None)
    return json.dumps(doc, ensure_ascii=False, indent=2)
