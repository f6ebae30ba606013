"""Domain values to protobuf messages and back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from hub import events
from hub.domain.inventory import LevelView, Reservation, ReservationStatus
from hub.store.inventory_map import Dimension, MapRow
from hub.store.master_data import Carrier, Sku, Warehouse
from orderhub.v1 import routing_pb2, stock_pb2

_STATUS = {
    ReservationStatus.HELD: stock_pb2.RESERVATION_STATUS_HELD,
    ReservationStatus.RELEASED: stock_pb2.RESERVATION_STATUS_RELEASED,
    ReservationStatus.COMMITTED: stock_pb2.RESERVATION_STATUS_COMMITTED,
    ReservationStatus.EXPIRED: stock_pb2.RESERVATION_STATUS_EXPIRED,
}

# Inventory map dimensions; UNSPECIFIED and unknown values have no entry.
DIMENSIONS = {
    stock_pb2.INVENTORY_MAP_DIMENSION_PROVINCE: Dimension.PROVINCE,
    stock_pb2.INVENTORY_MAP_DIMENSION_CITY: Dimension.CITY,
    stock_pb2.INVENTORY_MAP_DIMENSION_WAREHOUSE: Dimension.WAREHOUSE,
    stock_pb2.INVENTORY_MAP_DIMENSION_CATEGORY: Dimension.CATEGORY,
    stock_pb2.INVENTORY_MAP_DIMENSION_SKU: Dimension.SKU,
}


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp for an aware datetime."""
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def level(view: LevelView) -> stock_pb2.StockLevel:
    """A stock level message."""
    return stock_pb2.StockLevel(
        sku=view.sku,
        warehouse_id=view.warehouse_id,
        on_hand=view.on_hand,
        reserved=view.reserved,
        available=view.available,
        safety_stock=view.safety_stock,
    )


def warehouse(w: Warehouse) -> stock_pb2.Warehouse:
    """A warehouse message."""
    return stock_pb2.Warehouse(
        warehouse_id=w.warehouse_id,
        name=w.name,
        province=w.province,
        city=w.city,
        district=w.district,
        daily_capacity=w.daily_capacity,
    )


def carrier(c: Carrier) -> stock_pb2.Carrier:
    """A carrier message."""
    return stock_pb2.Carrier(
        carrier_id=c.carrier_id, name=c.name, service_level=c.service_level, active=c.active
    )


def sku(s: Sku) -> stock_pb2.Sku:
    """A SKU message."""
    return stock_pb2.Sku(
        sku=s.sku,
        name=s.name,
        category=s.category,
        weight_grams=s.weight_grams,
        safety_stock=s.safety_stock,
        low_stock_threshold=s.low_stock_threshold,
        length_mm=s.length_mm,
        width_mm=s.width_mm,
        height_mm=s.height_mm,
    )


def map_row(r: MapRow) -> stock_pb2.InventoryMapRow:
    """An inventory map row message."""
    return stock_pb2.InventoryMapRow(
        province=r.province,
        city=r.city,
        warehouse_id=r.warehouse_id,
        category=r.category,
        sku=r.sku,
        on_hand=r.on_hand,
        reserved=r.reserved,
        safety_stock=r.safety_stock,
        available=r.available,
        sku_count=r.sku_count,
        warehouse_count=r.warehouse_count,
        out_of_stock_skus=r.out_of_stock_skus,
    )


class ReservationMessage(Protocol):
    """Any message with a reservation's fields (Reservation, ReserveResponse, …)."""

    reservation_id: str
    order_id: str
    status: stock_pb2.ReservationStatus.ValueType

    @property
    def lines(self) -> object: ...
    @property
    def expires_at(self) -> Timestamp: ...
    @property
    def created_at(self) -> Timestamp: ...


def fill_reservation(msg: ReservationMessage, r: Reservation) -> None:
    """Copy a reservation into a message that has the reservation fields."""
    msg.reservation_id = r.reservation_id
    msg.order_id = r.order_id
    msg.status = _STATUS[r.status]
    msg.expires_at.CopyFrom(timestamp(r.expires_at))
    msg.created_at.CopyFrom(timestamp(r.created_at))
    lines = msg.lines
    assert hasattr(lines, "add")
    for ln in r.lines:
        lines.add(sku=ln.sku, quantity=ln.quantity, warehouse_id=ln.warehouse_id)


def reservation(r: Reservation) -> stock_pb2.Reservation:
    """A Reservation message."""
    msg = stock_pb2.Reservation()
    fill_reservation(msg, r)
    return msg


def utcnow() -> datetime:
    """The current time, zone-aware UTC."""
    return datetime.now(UTC)


def rfc3339(ts: Timestamp) -> str:
    """A protobuf Timestamp as RFC 3339 UTC."""
    return events.rfc3339(ts.ToDatetime(tzinfo=UTC))


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 time (``Z`` or an offset) as aware UTC."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def shipment(
    warehouse_id: str,
    carrier: str,
    lines: Iterable[tuple[str, int]],
    promised_hours: int,
    cost_fen: int,
) -> routing_pb2.Shipment:
    """One parcel as the API shows it: what leaves which warehouse with which carrier."""
    return routing_pb2.Shipment(
        warehouse_id=warehouse_id,
        carrier=carrier,
        lines=[
            stock_pb2.ReservedLine(sku=sku, quantity=qty, warehouse_id=warehouse_id)
            for sku, qty in lines
        ],
        promised_hours=promised_hours,
        cost_fen=cost_fen,
    )
