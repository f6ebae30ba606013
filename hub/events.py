"""The messages OrderHub publishes under ``oms.>``: subjects and JSON bodies.

Each group commit of an inventory shard becomes a handful of messages, not one per
reservation: one per warehouse for hold changes, one per warehouse for ATP changes, one
per alert. A flash sale of thousands of reservations a second therefore costs the relay
tens of messages a second. Every message gets an id when it is written to the outbox;
it is published with that id as ``Nats-Msg-Id``, so a republish after a crash is
dropped by the stream as a duplicate.

Subjects (``<warehouse>`` is the warehouse id):

- ``oms.stock.holds.<warehouse>``: holds placed, released, committed, expired, moved in or
  out; the warehouse that must act subscribes to its own.
- ``oms.stock.atp.<warehouse>``: levels whose available-to-promise changed, for channels.
- ``oms.alerts.stock.<kind>``: ``low_stock``, ``low_stock_cleared``, ``count_drift``,
  ``shortfall``.
- ``oms.shipments.requested.<warehouse>``: a shipment the warehouse must send.
- ``oms.alerts.lanes.<state>``: a lane's breaker changed state (``open``, ``half_open``,
  ``closed``), for the operations team.
- ``oms.orders.<kind>``: an order was received, changed status (``paid``, ``shipped``,
  ``cancelled`` …), got an after-sale request, moved queue, was approved or rejected in
  review, had its stock held, released or committed; ``oms.orders.return_expected`` tells
  the warehouses that goods are coming back.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.domain.inventory import Changes, LevelView
from hub.domain.lanes import Transition
from hub.domain.movements import HoldEvent, StockAlert

HOLDS = "oms.stock.holds"
ATP = "oms.stock.atp"
ALERTS = "oms.alerts.stock"
SHIPMENTS = "oms.shipments.requested"
ORDERS = "oms.orders"
LANE_ALERTS = "oms.alerts.lanes"
#: Why routing moved a hold, as the hold events say (``cause``).
ROUTING_CAUSE = "routing"
#: Items in one message at most; a busier tick is split.
MAX_ITEMS = 1000

_UNSAFE = re.compile(r"[\s.*>]")


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message waiting in the outbox: subject, stable id, JSON body."""

    subject: str
    msg_id: str
    payload: bytes


def token(value: str) -> str:
    """A value made safe as one NATS subject token."""
    return _UNSAFE.sub("_", value) or "_"


def is_subject_token(value: str) -> bool:
    """Whether a value can be one NATS subject token as it is."""
    return bool(value) and not _UNSAFE.search(value)


def rfc3339(value: datetime) -> str:
    """A UTC timestamp as RFC 3339 with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _message(subject: str, body: dict[str, Any], msg_id: str = "") -> OutboxMessage:
    """A message with ``msg_id`` (a fresh one when not given) first in its JSON body."""
    msg_id = msg_id or uuid.uuid4().hex
    body = {"msg_id": msg_id, **body}
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return OutboxMessage(subject, msg_id, data)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), MAX_ITEMS):
        yield items[start : start + MAX_ITEMS]


def _hold(e: HoldEvent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": e.kind.value,
        "order_id": e.order_id,
        "reservation_id": e.reservation_id,
        "line_no": e.line_no,
        "sku": e.sku,
        "quantity": e.quantity,
        "at": rfc3339(e.at),
    }
    if e.other_warehouse:
        item["other_warehouse"] = e.other_warehouse
    if e.cause:
        item["cause"] = e.cause
    return item


def _level(v: LevelView) -> dict[str, Any]:
    return {
        "sku": v.sku,
        "on_hand": v.on_hand,
        "reserved": v.reserved,
        "safety_stock": v.safety_stock,
        "available": v.available,
    }


def alert_message(a: StockAlert) -> OutboxMessage:
    """One stock alert."""
    body: dict[str, Any] = {
        "kind": a.kind.value,
        "sku": a.sku,
        "warehouse_id": a.warehouse_id,
        "message": a.message,
        "at": rfc3339(a.at),
        "available": a.available,
        "threshold": a.threshold,
    }
    for name in ("drift", "order_id", "event_id"):
        value = getattr(a, name)
        if value:
            body[name] = value
    return _message(f"{ALERTS}.{a.kind.value.lower()}", body)


def lane_alert(t: Transition) -> OutboxMessage:
    """One lane breaker transition; its id is the transition's, so it is published once."""
    lane = t.lane
    digest = hashlib.blake2b(t.key.encode(), digest_size=16).hexdigest()
    return _message(
        f"{LANE_ALERTS}.{t.to_state.value.lower()}",
        {
            "warehouse_id": lane.warehouse_id,
            "carrier": lane.carrier,
            "destination_province": lane.destination_province,
            "from_state": t.from_state.value,
            "to_state": t.to_state.value,
            "at": rfc3339(t.at),
            "reason": t.reason,
            "delay_rate": round(t.delay_rate, 4),
            "outcomes": t.outcomes,
        },
        msg_id="lane-" + digest,
    )


def shipment_request(
    reservation_id: str,
    order_id: str,
    warehouse_id: str,
    carrier: str,
    lines: Sequence[tuple[int, str, int]],
    at: datetime,
) -> OutboxMessage:
    """Ask a warehouse to pick, pack and send an order's lines (line_no, sku, quantity).

    The id is derived from the reservation and warehouse, so asking twice is one message
    to the stream (within its duplicate window).
    """
    digest = hashlib.blake2b(f"{reservation_id}|{warehouse_id}".encode(), digest_size=16)
    return _message(
        f"{SHIPMENTS}.{token(warehouse_id)}",
        {
            "warehouse_id": warehouse_id,
            "order_id": order_id,
            "reservation_id": reservation_id,
            "carrier": carrier,
            "lines": [{"line_no": n, "sku": sku, "quantity": qty} for n, sku, qty in lines],
            "at": rfc3339(at),
        },
        msg_id="ship-" + digest.hexdigest(),
    )


def messages_for(changes: Changes, now: datetime) -> list[OutboxMessage]:
    """The messages telling of one group commit's changes."""
    out: list[OutboxMessage] = []
    holds: dict[str, list[HoldEvent]] = {}
    for event in changes.holds:
        holds.setdefault(event.warehouse_id, []).append(event)
    for warehouse_id, events in sorted(holds.items()):
        for part in _chunks(events):
            out.append(
                _message(
                    f"{HOLDS}.{token(warehouse_id)}",
                    {"warehouse_id": warehouse_id, "events": [_hold(e) for e in part]},
                )
            )
    levels: dict[str, list[LevelView]] = {}
    for view in changes.views:
        levels.setdefault(view.warehouse_id, []).append(view)
    for warehouse_id, views in sorted(levels.items()):
        for part in _chunks(views):
            out.append(
                _message(
                    f"{ATP}.{token(warehouse_id)}",
                    {
                        "warehouse_id": warehouse_id,
                        "at": rfc3339(now),
                        "levels": [_level(v) for v in part],
                    },
                )
            )
    out.extend(alert_message(a) for a in changes.alerts)
    return out


def order_events(bodies: Sequence[dict[str, Any]]) -> list[OutboxMessage]:
    """Order events of one commit: one message per kind (``oms.orders.<kind>``).

    Each message is ``{"msg_id", "kind", "events": [...]}``; an event names its order, the
    status before and after, the queue, who, why, details and when.
    """
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        by_kind.setdefault(str(body["kind"]), []).append(body)
    return [
        _message(f"{ORDERS}.{token(kind)}", {"kind": kind, "events": list(part)})
        for kind, events in by_kind.items()
        for part in _chunks(events)
    ]


def moved_orders(data: bytes) -> list[str]:
    """Orders whose hold a warehouse moved, from one hold-events message.

    Routing's own moves (cause ``routing``) are left out: those orders were just routed.
    """
    try:
        body = json.loads(data)
    except ValueError:
        return []
    items = body.get("events", []) if isinstance(body, dict) else []
    orders = {
        str(item.get("order_id", "")).split("~", 1)[0]
        for item in items
        if isinstance(item, dict)
        and item.get("kind") == "MOVED_IN"
        and not str(item.get("cause", "")).startswith(ROUTING_CAUSE)
    }
    orders.discard("")
    return sorted(orders)
