"""Storing orders: one row per (platform, shop, platform order id), updated only forward."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.domain.intake import REVIEW, Placement, merge
from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
)
from hub.store import schema


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


@dataclass(frozen=True, slots=True)
class Saved:
    """What storing an incoming order did."""

    stored: StoredOrder
    duplicate: bool
    note: str = ""


class OrderStore:
    """Reads and writes orders."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(self, order: PlatformOrder, tags: Sequence[str], placement: Placement) -> Saved:
        """Store a new order, or apply a newer copy of a stored one (never backwards)."""
        for _ in range(3):  # two first copies racing: the loser reads the winner's row
            existing = self.find(order.platform, order.shop_id, order.platform_order_id)
            if existing is None:
                try:
                    return Saved(self._insert(order, tags, placement), duplicate=False)
                except IntegrityError:
                    continue
            result = merge(existing.order, order)
            if not result.changed:
                return Saved(existing, duplicate=True, note=result.reason)
            changed = self._update(existing, result.order, tags, placement)
            if changed is not None:
                return Saved(changed, duplicate=True, note=result.reason or "updated")
        raise RuntimeError(f"order {order.platform_order_id} kept changing while being saved")

    def send_to_review(self, stored: StoredOrder, reason: str) -> StoredOrder:
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
            )
            if written is not None:
                return written

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

    def _insert(
        self, order: PlatformOrder, tags: Sequence[str], placement: Placement
    ) -> StoredOrder:
        now = datetime.now(UTC)
        order_id = "ord_" + uuid.uuid4().hex[:24]
        row = _row(order, tags, placement) | {
            "order_id": order_id,
            "ingested_at": now,
            "changed_at": now,
            "version": 1,
        }
        with self._engine.begin() as conn:
            conn.execute(insert(schema.orders).values(**row))
        found = self.get(order_id)
        assert found is not None
        return found

    def _update(
        self,
        existing: StoredOrder,
        order: PlatformOrder,
        tags: Sequence[str],
        placement: Placement,
    ) -> StoredOrder | None:
        """Write a new copy unless someone else wrote one first (then None)."""
        return self._write(existing, _row(order, tags, placement))

    def _write(self, current: StoredOrder, values: dict[str, Any]) -> StoredOrder | None:
        """Write the next version of an order, unless it is no longer ``current`` (then None)."""
        t = schema.orders
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.order_id == current.order_id, t.c.version == current.version)
                .values(**values, changed_at=datetime.now(UTC), version=current.version + 1)
            )
        if done.rowcount != 1:
            return None
        return self.get(current.order_id)


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


def to_json(order: PlatformOrder) -> str:
    """An order as a JSON document (times as RFC 3339, enums by name)."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(asdict(order)), ensure_ascii=False, separators=(",", ":"))


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
    )
