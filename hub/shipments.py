"""Shipment requests: the hub asks the warehouses holding an order's stock to send it."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from hub.domain.inventory import InvalidRequest, Reservation, ReservationClosed, ReservationStatus
from hub.events import shipment_request
from hub.inventory import Inventory
from hub.store.inventory_store import enqueue


@dataclass(frozen=True, slots=True)
class Shipment:
    """What one warehouse was asked to send."""

    warehouse_id: str
    carrier: str
    lines: tuple[tuple[int, str, int], ...]  # line_no, sku, quantity
    msg_id: str


async def request_shipment(
    inventory: Inventory,
    engine: Engine,
    order_id: str,
    carrier: str,
    active_carriers: Collection[str],
) -> tuple[Reservation, list[Shipment]]:
    """Publish (through the outbox) one shipment request per warehouse of a live hold."""
    if not order_id:
        raise InvalidRequest("order_id is required", field="order_id")
    if carrier not in active_carriers:
        known = ", ".join(sorted(active_carriers)) or "none yet (UpsertCarrier)"
        raise InvalidRequest(
            f"carrier {carrier!r} is not an active carrier; active: {known}", field="carrier"
        )
    reservation = await inventory.get_reservation(order_id)
    if reservation.status is not ReservationStatus.HELD:
        raise ReservationClosed(
            f"reservation for order {order_id} is {reservation.status.value.lower()}; "
            "only a live hold can be shipped",
            field="order_id",
        )
    by_warehouse: dict[str, list[tuple[int, str, int]]] = {}
    for line in reservation.lines:
        by_warehouse.setdefault(line.warehouse_id, []).append(
            (line.line_no, line.sku, line.quantity)
        )
    now = datetime.now(UTC)
    messages = {
        wh: shipment_request(reservation.reservation_id, order_id, wh, carrier, lines, now)
        for wh, lines in sorted(by_warehouse.items())
    }
    await asyncio.to_thread(enqueue, engine, list(messages.values()))
    shipments = [
        Shipment(wh, carrier, tuple(by_warehouse[wh]), m.msg_id) for wh, m in messages.items()
    ]
    return reservation, shipments
