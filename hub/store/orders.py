"""Storing orders: one row per (platform, shop, platform order id), updated only forward.

Every write records what changed in ``order_events`` (who, when, why) and puts the same
events in the outbox, in one transaction with the order itself: an order never changes
without its history and its message, and a message never tells of a change that was
rolled back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, tuple_, update

from hub.domain.intake import REVIEW, Placement, carry_review, merge
from hub.domain.lifecycle import Change, changes
from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
)
from hub.events import order_events, rfc3339
from hub.store import schema
from hub.store.db import upsert_insert
from hub.store.inventory_store import write_outbox

#: Who changed an order when a platform sent a newer copy: ``platform:<name>``.
PLATFORM_ACTOR = "platform:{}"


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the hub keeps it: its own id, the order, where it waits and why."""

    order_id: str
    order: PlatformOrder
    queue: str
    tags: tuple[str, ...]
    review_reasons: tuple[str, ...]
    ingested_at: datetime
    changed_at: datetime
    version: int
    #: The key the order's stock is held under (see ``orders.hold_key``).
    hold_key: str = ""


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A new order to store: its hub id, the order, tags, placement, and a follow-up event."""

    order_id: str
    order: PlatformOrder
    tags: tuple[str, ...]
    placement: Placement
    #: An event written after the order's own, with its details: ``stock_held`` when its
    #: stock was held before storing, ``imported`` for an order from a history import.
    hold: tuple[Change, dict[str, Any]] | None = None
    #: Who made that event (an importer names its operator).
    hold_actor: str = "hub"


@dataclass(frozen=True, slots=True)
class OrderWrite:
    """One order's next version, as :meth:`OrderStore.change_many` writes it."""

    current: StoredOrder
    actor: str
    events: Sequence[Change]
    order: PlatformOrder | None = None
    details: dict[str, Any] | None = None
    queue: str | None = None
    review_reasons: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    hold_key: str | None = None

    def values(self) -> dict[str, Any]:
        """The columns this write changes (those given)."""
        values: dict[str, Any] = {}
        if self.order is not None:
            values["document"] = to_json(self.order)
            values["status"] = self.order.status.value
        if self.queue is not None:
            values["queue"] = self.queue
        if self.review_reasons is not None:
            values["review_reasons"] = json.dumps(list(self.review_reasons), ensure_ascii=False)
        if self.tags is not None:
            values["tags"] = json.dumps(list(self.tags))
        if self.hold_key is not None:
            values["hold_key"] = self.hold_key
        return values


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One recorded change of an order."""

    order_id: str
    version: int
    kind: str
    from_status: str
    to_status: str
    actor: str
    reason: str
    details: dict[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class Saved:
    """What storing an incoming order did."""

    stored: StoredOrder
    duplicate: bool
    note: str = ""
    #: The stored copy this one replaced (None for a new order or an unchanged repeat).
    before: StoredOrder | None = None


class OrderStore:
    """Reads and writes orders."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(
        self,
        order: PlatformOrder,
        tags: Sequence[str],
        placement: Placement,
        known: StoredOrder | None = None,
    ) -> Saved:
        """Store a new order, or apply a newer copy of a stored one (never backwards).

        ``known`` is the stored copy when the caller has just read it (saves a read).
        """
        for _ in range(3):  # two first copies racing: the loser reads the winner's row
            existing = known or self.find(order.platform, order.shop_id, order.platform_order_id)
            known = None
            if existing is None:
                inserted = self.insert_new(new_order_id(), order, tags, placement)
                if inserted is not None:
                    return Saved(inserted, duplicate=False)
                continue
            kept_tags, kept_placement = carry_review(existing.tags, tags, placement, order)
            result = merge(existing.order, order)
            if not result.changed:
                return Saved(existing, duplicate=True, note=result.reason)
            changed = self._update(existing, result.order, kept_tags, kept_placement)
            if changed is not None:
                return Saved(changed, True, result.reason or "updated", before=existing)
        raise RuntimeError(f"order {order.platform_order_id} kept changing while being saved")

    def insert_new(
        self,
        order_id: str,
        order: PlatformOrder,
        tags: Sequence[str],
        placement: Placement,
        hold: tuple[Change, dict[str, Any]] | None = None,
    ) -> StoredOrder | None:
        """Store a new order with its events (and its hold's), or None if it exists already."""
        return self.insert_many([NewOrder(order_id, order, tuple(tags), placement, hold)])[0]

    def insert_many(self, new: Sequence[NewOrder]) -> list[StoredOrder | None]:
        """Store new orders with their events in one transaction; None where one exists."""
        now = datetime.now(UTC)
        rows = [
            _row(n.order, n.tags, n.placement)
            | {
                "order_id": n.order_id,
                "ingested_at": now,
                "changed_at": now,
                "version": 1,
                "hold_key": n.order_id,
            }
            for n in new
        ]
        t = schema.orders
        with self._engine.begin() as conn:
            stmt = (
                upsert_insert(conn, t)
                .on_conflict_do_nothing(index_elements=["platform", "shop_id", "platform_order_id"])
                .returning(t.c.order_id)
            )
            # One multi-row insert; the ids it returns are the orders that were new.
            inserted = {row.order_id for row in conn.execute(stmt, rows)}
            out: list[StoredOrder | None] = []
            logged: list[_Logged] = []
            for n in new:
                if n.order_id not in inserted:
                    out.append(None)
                    continue
                stored = StoredOrder(
                    order_id=n.order_id,
                    order=n.order,
                    queue=n.placement.queue,
                    tags=n.tags,
                    review_reasons=n.placement.reasons,
                    ingested_at=now,
                    changed_at=now,
                    version=1,
                    hold_key=n.order_id,
                )
                events = changes(None, n.order, None, n.placement.queue)
                if n.placement.queue:
                    events.append(
                        Change("queued", "; ".join(n.placement.reasons) or n.placement.queue)
                    )
                logged.append(
                    _Logged(
                        stored, n.order, n.placement.queue, tuple(events), _platform(n.order), {}
                    )
                )
                if n.hold is not None:
                    logged.append(
                        _Logged(
                            stored,
                            n.order,
                            n.placement.queue,
                            (n.hold[0],),
                            n.hold_actor,
                            n.hold[1],
                        )
                    )
                out.append(stored)
            _write_events(conn, logged, now)
        return out

    def find_many(self, keys: Sequence[tuple[str, str, str]]) -> list[StoredOrder | None]:
        """Stored orders by (platform, shop_id, platform order id), in order; None if absent."""
        if not keys:
            return []
        t = schema.orders
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t).where(
                    tuple_(t.c.platform, t.c.shop_id, t.c.platform_order_id).in_(list(set(keys)))
                )
            )
            found = {(r.platform, r.shop_id, r.platform_order_id): _stored(r) for r in rows}
        return [found.get(k) for k in keys]

    def send_to_review(self, stored: StoredOrder, reason: str, actor: str = "hub") -> StoredOrder:
        """Put an order in the review queue with one more reason (once per reason)."""
        while True:
            current = self.get(stored.order_id)
            assert current is not None
            reasons = current.review_reasons
            if current.queue == REVIEW and reason in reasons:
                return current
            if reason not in reasons:
                reasons = (*reasons, reason)
            written = self._write(
                current,
                {
                    "queue": REVIEW,
                    "review_reasons": json.dumps(list(reasons), ensure_ascii=False),
                },
                [Change("queued", reason)],
                actor,
            )
            if written is not None:
                return written

    def change(
        self,
        current: StoredOrder,
        *,
        actor: str,
        events: Sequence[Change],
        order: PlatformOrder | None = None,
        queue: str | None = None,
        review_reasons: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        hold_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> StoredOrder | None:
        """Write the next version of an order with its events; None if it changed meanwhile."""
        write = OrderWrite(
            current, actor, events, order, details, queue, review_reasons, tags, hold_key
        )
        return self._write(current, write.values(), events, actor, details or {})

    def record(
        self, current: StoredOrder, events: Sequence[Change], actor: str, details: dict[str, Any]
    ) -> None:
        """Record (and publish) events that change nothing in the order itself."""
        with self._engine.begin() as conn:
            self._log(conn, current, current.order, current.queue, events, actor, details)

    def open_stock_reviews(self) -> list[tuple[str, str, str]]:
        """Unresolved stock problems of holds: (hold key, reason, detail), oldest first."""
        t = schema.review_items
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.c.order_id, t.c.reason, t.c.detail)
                .where(t.c.resolved_at.is_(None))
                .order_by(t.c.item_id)
            )
            return [(r.order_id, r.reason, r.detail) for r in rows]

    def resolve_stock_reviews(self, order_id: str) -> None:
        """Mark the stock problems of an order's holds (any key) resolved."""
        t = schema.review_items
        with self._engine.begin() as conn:
            conn.execute(
                update(t)
                .where(
                    (t.c.order_id == order_id) | t.c.order_id.like(f"{order_id}~%"),
                    t.c.resolved_at.is_(None),
                )
                .values(resolved_at=datetime.now(UTC))
            )

    def history(self, order_id: str) -> list[OrderEvent]:
        """An order's recorded events, oldest first."""
        t = schema.order_events
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.order_id == order_id).order_by(t.c.id))
            return [
                OrderEvent(
                    order_id=r.order_id,
                    version=r.version,
                    kind=r.kind,
                    from_status=r.from_status,
                    to_status=r.to_status,
                    actor=r.actor,
                    reason=r.reason,
                    details=json.loads(r.details),
                    at=r.at,
                )
                for r in rows
            ]

    def find(self, platform: str, shop_id: str, platform_order_id: str) -> StoredOrder | None:
        """The stored order with this platform identity, or None."""
        t = schema.orders
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t).where(
                    t.c.platform == platform,
                    t.c.shop_id == shop_id,
                    t.c.platform_order_id == platform_order_id,
                )
            ).first()
        return None if row is None else _stored(row)

    def get(self, order_id: str) -> StoredOrder | None:
        """An order by the hub's id, or None."""
        t = schema.orders
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.order_id == order_id)).first()
        return None if row is None else _stored(row)

    def get_many(self, order_ids: Sequence[str]) -> list[StoredOrder | None]:
        """Orders by the hub's ids, in order (None for an unknown id), in one query."""
        t = schema.orders
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.order_id.in_(list(set(order_ids)))))
            found = {r.order_id: _stored(r) for r in rows}
        return [found.get(order_id) for order_id in order_ids]

    def change_many(
        self,
        writes: Sequence[OrderWrite],
        *,
        then: Callable[[Connection, list[StoredOrder | None]], None] | None = None,
    ) -> list[StoredOrder | None]:
        """Write the next version of many orders in one transaction, with their events.

        Each answer is the written order, or None when that order changed meanwhile (it
        is left as it is; the others are written). ``then`` writes more in the same
        transaction, told which orders were written (e.g. their routing).
        """
        t = schema.orders
        now = datetime.now(UTC)
        written: list[StoredOrder | None] = []
        logged: list[_Logged] = []
        with self._engine.begin() as conn:
            done_ids: list[str] = []
            for w in writes:
                values = w.values()
                done = conn.execute(
                    update(t)
                    .where(t.c.order_id == w.current.order_id, t.c.version == w.current.version)
                    .values(**values, changed_at=now, version=w.current.version + 1)
                )
                if done.rowcount != 1:
                    done_ids.append("")
                    continue
                done_ids.append(w.current.order_id)
            ids = [i for i in done_ids if i]
            rows = {}
            if ids:
                rows = {
                    r.order_id: _stored(r)
                    for r in conn.execute(select(t).where(t.c.order_id.in_(ids)))
                }
            for w, order_id in zip(writes, done_ids, strict=True):
                if not order_id:
                    written.append(None)
                    continue
                stored = rows[order_id]
                written.append(stored)
                logged.append(
                    _Logged(
                        stored,
                        w.current.order,
                        w.current.queue,
                        tuple(w.events),
                        w.actor,
                        w.details or {},
                    )
                )
            _write_events(conn, logged, now)
            if then is not None:
                then(conn, written)
        return written

    def listing(
        self,
        *,
        status: OrderStatus | None = None,
        platform: str = "",
        shop_id: str = "",
        queue: str | None = None,
        tag: str = "",
        after: str = "",
        limit: int = 100,
    ) -> list[StoredOrder]:
        """Orders matching the filters, by order id, after a given id."""
        t = schema.orders
        query = select(t).where(t.c.order_id > after).order_by(t.c.order_id)
        if status is not None:
            query = query.where(t.c.status == status.value)
        if platform:
            query = query.where(t.c.platform == platform)
        if shop_id:
            query = query.where(t.c.shop_id == shop_id)
        if queue is not None:
            query = query.where(t.c.queue == queue)
        if tag:
            query = query.where(t.c.tags.like(f'%"{tag}"%'))
        with self._engine.connect() as conn:
            return [_stored(r) for r in conn.execute(query.limit(limit))]

    def _update(
        self,
        existing: StoredOrder,
        order: PlatformOrder,
        tags: Sequence[str],
        placement: Placement,
    ) -> StoredOrder | None:
        """Write a new copy unless someone else wrote one first (then None)."""
        events = changes(existing.order, order, existing.queue, placement.queue)
        return self._write(existing, _row(order, tags, placement), events, _platform(order))

    def _write(
        self,
        current: StoredOrder,
        values: dict[str, Any],
        events: Sequence[Change] = (),
        actor: str = "hub",
        details: dict[str, Any] | None = None,
    ) -> StoredOrder | None:
        """Write the next version of an order, unless it is no longer ``current`` (then None)."""
        t = schema.orders
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.order_id == current.order_id, t.c.version == current.version)
                .values(**values, changed_at=now, version=current.version + 1)
            )
            if done.rowcount != 1:
                return None
            row = conn.execute(select(t).where(t.c.order_id == current.order_id)).one()
            written = _stored(row)
            self._log(
                conn, written, current.order, current.queue, events, actor, details or {}, at=now
            )
        return written

    @staticmethod
    def _log(
        conn: Connection,
        stored: StoredOrder,
        before: PlatformOrder,
        queue_before: str,
        events: Sequence[Change],
        actor: str,
        details: dict[str, Any],
        *,
        at: datetime | None = None,
    ) -> None:
        """Record events of a write in ``order_events`` and the outbox, in its transaction."""
        _write_events(
            conn, [_Logged(stored, before, queue_before, tuple(events), actor, details)], at
        )


@dataclass(frozen=True, slots=True)
class _Logged:
    """Events of one order's write, waiting to be recorded."""

    stored: StoredOrder
    before: PlatformOrder
    queue_before: str
    events: tuple[Change, ...]
    actor: str
    details: dict[str, Any]


def _write_events(conn: Connection, logged: Sequence[_Logged], at: datetime | None) -> None:
    """Record the events of many writes: one insert of rows, one message per kind."""
    at = at or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    for x in logged:
        o = x.stored.order
        details_json = json.dumps(x.details, ensure_ascii=False, default=str)
        for e in x.events:
            rows.append(
                {
                    "order_id": x.stored.order_id,
                    "version": x.stored.version,
                    "kind": e.kind,
                    "from_status": x.before.status.value,
                    "to_status": o.status.value,
                    "actor": x.actor,
                    "reason": e.reason,
                    "details": details_json,
                    "at": at,
                }
            )
            bodies.append(
                {
                    "kind": e.kind,
                    "order_id": x.stored.order_id,
                    "platform": o.platform,
                    "shop_id": o.shop_id,
                    "platform_order_id": o.platform_order_id,
                    "status": o.status.value,
                    "from_status": x.before.status.value,
                    "queue": x.stored.queue,
                    "from_queue": x.queue_before,
                    "after_sale_type": o.after_sale_type.value,
                    "version": x.stored.version,
                    "actor": x.actor,
                    "reason": e.reason,
                    "details": x.details,
                    "at": rfc3339(at),
                }
            )
    if not rows:
        return
    conn.execute(insert(schema.order_events), rows)
    write_outbox(conn, order_events(bodies))


def new_order_id() -> str:
    """A fresh hub order id."""
    return "ord_" + uuid.uuid4().hex[:24]


def _platform(order: PlatformOrder) -> str:
    return PLATFORM_ACTOR.format(order.platform)


def _row(order: PlatformOrder, tags: Sequence[str], placement: Placement) -> dict[str, Any]:
    return {
        "platform": order.platform,
        "shop_id": order.shop_id,
        "platform_order_id": order.platform_order_id,
        "status": order.status.value,
        "queue": placement.queue,
        "tags": json.dumps(list(tags)),
        "review_reasons": json.dumps(list(placement.reasons), ensure_ascii=False),
        "document": to_json(order),
        "platform_updated_at": order.updated_at,
    }


def _fields(obj: Any) -> dict[str, Any]:
    """A flat dataclass's fields (no deep copy, unlike ``dataclasses.asdict``)."""
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def to_json(order: PlatformOrder) -> str:
    """An order as a JSON document (times as RFC 3339, enums by name)."""
    doc = _fields(order)
    doc["recipient"] = _fields(order.recipient)
    doc["lines"] = [_fields(line) for line in order.lines]
    for name in ("created_at", "paid_at", "updated_at"):
        doc[name] = _when(doc[name])
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def from_json(text: str) -> PlatformOrder:
    """The order a JSON document holds."""
    d = json.loads(text)

    def when(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    lines = tuple(
        OrderLine(
            **{
                **line,
                "after_sale_type": AfterSaleType(line["after_sale_type"]),
                "after_sale_state": AfterSaleState(line["after_sale_state"]),
            }
        )
        for line in d["lines"]
    )
    return PlatformOrder(
        **{
            **d,
            "status": OrderStatus(d["status"]),
            "after_sale_type": AfterSaleType(d["after_sale_type"]),
            "recipient": Recipient(**d["recipient"]),
            "lines": lines,
            "created_at": when(d["created_at"]),
            "paid_at": when(d["paid_at"]),
            "updated_at": when(d["updated_at"]),
        }
    )


def _stored(row: Any) -> StoredOrder:
    return StoredOrder(
        order_id=row.order_id,
        order=from_json(row.document),
        queue=row.queue,
        tags=tuple(json.loads(row.tags)),
        review_reasons=tuple(json.loads(row.review_reasons)),
        ingested_at=row.ingested_at,
        changed_at=row.changed_at,
        version=int(row.version),
        hold_key=row.hold_key or row.order_id,
    )
