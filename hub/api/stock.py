"""StockService: proto in, domain call, proto out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from hub.api import convert
from hub.api.errors import abort, classify, invalid, refuse
from hub.domain.inventory import InventoryError, Reservation, UnknownSku
from hub.events import is_subject_token
from hub.inventory import Inventory, LineInput, ShardUnavailable
from hub.shipments import request_shipment
from hub.store.inventory_map import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Dimension,
    MapFilters,
    grouping,
    inventory_map,
)
from hub.store.master_data import Carrier, MasterData, PlatformSku, Sku, Warehouse
from orderhub.v1 import stock_pb2, stock_pb2_grpc

Context = grpc.aio.ServicerContext[object, object]
T = TypeVar("T")

_REFUSALS = (InventoryError, ShardUnavailable)
SERVICE_LEVELS = ("express", "standard", "economy", "postal", "same_day")


def _require(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise invalid(field, f"{field} is required")
    return value


def _subject_token(value: str, field: str) -> str:
    """An id that also names NATS subjects (wms.events.<warehouse_id>)."""
    value = _require(value, field)
    if not is_subject_token(value):
        raise invalid(field, f"{field} must not contain spaces, '.', '*' or '>', got {value!r}")
    return value


def _non_negative(value: int, field: str) -> int:
    if value < 0:
        raise invalid(field, f"{field} must not be negative, got {value}")
    return value


#: A unit larger than this on any side (10 m) is a typo, not a parcel.
_MAX_SIDE_MM = 10_000


def _size(request: stock_pb2.UpsertSkuRequest) -> dict[str, int]:
    """A SKU's packed size: all three sides positive, or all three 0 (unknown)."""
    sides = {
        "length_mm": request.length_mm,
        "width_mm": request.width_mm,
        "height_mm": request.height_mm,
    }
    for field, value in sides.items():
        _non_negative(value, field)
        if value > _MAX_SIDE_MM:
            raise invalid(field, f"{field} must be at most {_MAX_SIDE_MM} (10 m), got {value}")
    given = [field for field, value in sides.items() if value]
    if given and len(given) < 3:
        missing = next(field for field, value in sides.items() if not value)
        raise invalid(
            missing, f"{missing} is missing: give length_mm, width_mm and height_mm, or none"
        )
    return sides


_MAX_FILTER_IDS = 1000


def _dimensions(
    values: Sequence[stock_pb2.InventoryMapDimension.ValueType],
) -> tuple[Dimension, ...]:
    """The map's grouping; UNSPECIFIED or an unknown enum value is refused."""
    dims = []
    for value in values:
        dim = convert.DIMENSIONS.get(value)
        if dim is None:
            known = ", ".join(d.name for d in Dimension)
            raise invalid("group_by", f"group_by: {value} is not a dimension ({known})")
        dims.append(dim)
    return grouping(dims)


def _ids(values: Sequence[str], field: str) -> tuple[str, ...]:
    """A filter's ids, stripped, blanks dropped; at most 1000."""
    ids = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    if len(ids) > _MAX_FILTER_IDS:
        raise invalid(field, f"at most {_MAX_FILTER_IDS} {field} per request, got {len(ids)}")
    return ids


def _reservation_request(request: stock_pb2.ReserveRequest) -> tuple[str, list[LineInput], int]:
    """A Reserve request as the inventory takes it (the inventory validates it)."""
    lines = [
        LineInput(ln.sku.strip(), ln.quantity, ln.warehouse_id.strip()) for ln in request.lines
    ]
    return request.order_id.strip(), lines, request.ttl_seconds


async def _guard(context: Context, work: Callable[[], Awaitable[T]], empty: type[T]) -> T:
    """Run one RPC's work; domain refusals become precise statuses."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline already passed")
    try:
        return await work()
    except _REFUSALS as err:
        refuse(context, err)
        return empty()


M = TypeVar("M", stock_pb2.ReserveResponse, stock_pb2.ReleaseResponse, stock_pb2.CommitResponse)


def _answer(message: M, reservation: Reservation) -> M:
    """A Reserve/Release/Commit answer: the reservation's fields at the top level."""
    convert.fill_reservation(message, reservation)
    return message


class StockServicer(stock_pb2_grpc.StockServiceServicer):
    """Master data, stock levels and reservations."""

    def __init__(
        self,
        inventory: Inventory,
        master_data: MasterData,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self._inventory = inventory
        self._master = master_data
        self._on_outbox = on_outbox  # wakes the outbox relay

    async def UpsertWarehouse(
        self, request: stock_pb2.UpsertWarehouseRequest, context: Context
    ) -> stock_pb2.UpsertWarehouseResponse:
        async def work() -> stock_pb2.UpsertWarehouseResponse:
            w = Warehouse(
                warehouse_id=_subject_token(request.warehouse_id, "warehouse_id"),
                name=_require(request.name, "name"),
                province=_require(request.province, "province"),
                city=_require(request.city, "city"),
                district=request.district.strip(),
                daily_capacity=_non_negative(request.daily_capacity, "daily_capacity"),
            )
            await asyncio.to_thread(self._master.upsert_warehouse, w)
            await self._inventory.register_warehouse(w.warehouse_id)
            return stock_pb2.UpsertWarehouseResponse(warehouse=convert.warehouse(w))

        return await _guard(context, work, stock_pb2.UpsertWarehouseResponse)

    async def ListWarehouses(
        self, request: stock_pb2.ListWarehousesRequest, context: Context
    ) -> stock_pb2.ListWarehousesResponse:
        warehouses = await asyncio.to_thread(self._master.warehouses)
        return stock_pb2.ListWarehousesResponse(
            warehouses=[convert.warehouse(w) for w in warehouses]
        )

    async def UpsertSku(
        self, request: stock_pb2.UpsertSkuRequest, context: Context
    ) -> stock_pb2.UpsertSkuResponse:
        async def work() -> stock_pb2.UpsertSkuResponse:
            s = Sku(
                sku=_require(request.sku, "sku"),
                name=_require(request.name, "name"),
                category=request.category.strip(),
                weight_grams=_non_negative(request.weight_grams, "weight_grams"),
                safety_stock=_non_negative(request.safety_stock, "safety_stock"),
                low_stock_threshold=_non_negative(
                    request.low_stock_threshold, "low_stock_threshold"
                ),
                **_size(request),
            )
            await asyncio.to_thread(self._master.upsert_sku, s)
            await self._inventory.register_sku(s.sku, s.safety_stock, s.low_stock_threshold)
            return stock_pb2.UpsertSkuResponse(sku=convert.sku(s))

        return await _guard(context, work, stock_pb2.UpsertSkuResponse)

    async def UpsertCarrier(
        self, request: stock_pb2.UpsertCarrierRequest, context: Context
    ) -> stock_pb2.UpsertCarrierResponse:
        async def work() -> stock_pb2.UpsertCarrierResponse:
            c = request.carrier
            level = c.service_level.strip().lower()
            if level not in SERVICE_LEVELS:
                raise invalid(
                    "carrier.service_level",
                    f"service_level must be one of {', '.join(SERVICE_LEVELS)}, got {level!r}",
                )
            carrier = Carrier(
                carrier_id=_subject_token(c.carrier_id.strip().lower(), "carrier.carrier_id"),
                name=_require(c.name, "carrier.name"),
                service_level=level,
                active=c.active,
            )
            await asyncio.to_thread(self._master.upsert_carrier, carrier)
            return stock_pb2.UpsertCarrierResponse(carrier=convert.carrier(carrier))

        return await _guard(context, work, stock_pb2.UpsertCarrierResponse)

    async def ListCarriers(
        self, request: stock_pb2.ListCarriersRequest, context: Context
    ) -> stock_pb2.ListCarriersResponse:
        carriers = await asyncio.to_thread(self._master.carriers)
        return stock_pb2.ListCarriersResponse(carriers=[convert.carrier(c) for c in carriers])

    async def MapPlatformSku(
        self, request: stock_pb2.MapPlatformSkuRequest, context: Context
    ) -> stock_pb2.MapPlatformSkuResponse:
        async def work() -> stock_pb2.MapPlatformSkuResponse:
            m = PlatformSku(
                platform=_require(request.platform, "platform").lower(),
                shop_id=_require(request.shop_id, "shop_id"),
                platform_sku=_require(request.platform_sku, "platform_sku"),
                sku=_require(request.sku, "sku"),
            )
            if await asyncio.to_thread(self._master.sku, m.sku) is None:
                raise UnknownSku(f"unknown SKU {m.sku!r}", field="sku")
            await asyncio.to_thread(self._master.map_platform_sku, m)
            return stock_pb2.MapPlatformSkuResponse(
                mapping=stock_pb2.PlatformSkuMapping(
                    platform=m.platform, shop_id=m.shop_id, platform_sku=m.platform_sku, sku=m.sku
                )
            )

        return await _guard(context, work, stock_pb2.MapPlatformSkuResponse)

    async def SetStock(
        self, request: stock_pb2.SetStockRequest, context: Context
    ) -> stock_pb2.SetStockResponse:
        async def work() -> stock_pb2.SetStockResponse:
            view = await self._inventory.set_stock(
                _require(request.sku, "sku"),
                _require(request.warehouse_id, "warehouse_id"),
                _non_negative(request.on_hand, "on_hand"),
                safety_stock=(
                    _non_negative(request.safety_stock, "safety_stock")
                    if request.HasField("safety_stock")
                    else None
                ),
                reason=request.reason,
            )
            return stock_pb2.SetStockResponse(level=convert.level(view))

        return await _guard(context, work, stock_pb2.SetStockResponse)

    async def GetAvailability(
        self, request: stock_pb2.GetAvailabilityRequest, context: Context
    ) -> stock_pb2.GetAvailabilityResponse:
        async def work() -> stock_pb2.GetAvailabilityResponse:
            sku = _require(request.sku, "sku")
            views = await self._inventory.availability(sku, list(request.warehouse_ids))
            return stock_pb2.GetAvailabilityResponse(
                sku=sku,
                levels=[convert.level(v) for v in views],
                total_available=sum(v.available for v in views),
            )

        return await _guard(context, work, stock_pb2.GetAvailabilityResponse)

    async def GetInventoryMap(
        self, request: stock_pb2.GetInventoryMapRequest, context: Context
    ) -> stock_pb2.GetInventoryMapResponse:
        async def work() -> stock_pb2.GetInventoryMapResponse:
            group_by = _dimensions(request.group_by)
            filters = MapFilters(
                province=request.province.strip(),
                city=request.city.strip(),
                category=request.category.strip(),
                warehouse_ids=_ids(request.warehouse_ids, "warehouse_ids"),
                skus=_ids(request.skus, "skus"),
            )
            limit = min(_non_negative(request.limit, "limit") or DEFAULT_LIMIT, MAX_LIMIT)
            as_of = convert.utcnow()
            found = await asyncio.to_thread(
                inventory_map, self._master.engine, group_by, filters, limit=limit
            )
            return stock_pb2.GetInventoryMapResponse(
                rows=[convert.map_row(r) for r in found.rows],
                total=convert.map_row(found.total),
                as_of=convert.timestamp(as_of),
                truncated=found.truncated,
            )

        return await _guard(context, work, stock_pb2.GetInventoryMapResponse)

    async def Reserve(
        self, request: stock_pb2.ReserveRequest, context: Context
    ) -> stock_pb2.ReserveResponse:
        async def work() -> stock_pb2.ReserveResponse:
            return _answer(stock_pb2.ReserveResponse(), await self._reserve(request))

        return await _guard(context, work, stock_pb2.ReserveResponse)

    async def _reserve(self, request: stock_pb2.ReserveRequest) -> Reservation:
        return await self._inventory.reserve(*_reservation_request(request))

    async def ReserveBatch(
        self, request: stock_pb2.ReserveBatchRequest, context: Context
    ) -> stock_pb2.ReserveBatchResponse:
        if len(request.requests) > 10_000:
            await abort(context, invalid("requests", "at most 10000 reservations per batch"))

        answers = await self._inventory.reserve_many(
            [_reservation_request(req) for req in request.requests]
        )
        results = []
        for req, answer in zip(request.requests, answers, strict=True):
            if isinstance(answer, Reservation):
                results.append(
                    stock_pb2.ReserveBatchResult(
                        order_id=req.order_id, reservation=convert.reservation(answer)
                    )
                )
            else:
                code, _ = classify(answer)
                results.append(
                    stock_pb2.ReserveBatchResult(
                        order_id=req.order_id, code=code.value[0], message=str(answer)
                    )
                )
        return stock_pb2.ReserveBatchResponse(results=results)

    async def GetReservation(
        self, request: stock_pb2.GetReservationRequest, context: Context
    ) -> stock_pb2.GetReservationResponse:
        async def work() -> stock_pb2.GetReservationResponse:
            r = await self._inventory.get_reservation(_require(request.order_id, "order_id"))
            return stock_pb2.GetReservationResponse(reservation=convert.reservation(r))

        return await _guard(context, work, stock_pb2.GetReservationResponse)

    async def Release(
        self, request: stock_pb2.ReleaseRequest, context: Context
    ) -> stock_pb2.ReleaseResponse:
        async def work() -> stock_pb2.ReleaseResponse:
            r = await self._inventory.release(_require(request.order_id, "order_id"))
            return _answer(stock_pb2.ReleaseResponse(), r)

        return await _guard(context, work, stock_pb2.ReleaseResponse)

    async def Commit(
        self, request: stock_pb2.CommitRequest, context: Context
    ) -> stock_pb2.CommitResponse:
        async def work() -> stock_pb2.CommitResponse:
            r = await self._inventory.commit(_require(request.order_id, "order_id"))
            return _answer(stock_pb2.CommitResponse(), r)

        return await _guard(context, work, stock_pb2.CommitResponse)

    async def RequestShipment(
        self, request: stock_pb2.RequestShipmentRequest, context: Context
    ) -> stock_pb2.RequestShipmentResponse:
        async def work() -> stock_pb2.RequestShipmentResponse:
            carriers = await asyncio.to_thread(self._master.carriers)
            reservation, shipments = await request_shipment(
                self._inventory,
                self._master.engine,
                _require(request.order_id, "order_id"),
                request.carrier.strip().lower(),
                {c.carrier_id for c in carriers if c.active},
            )
            if self._on_outbox is not None:
                self._on_outbox()
            return stock_pb2.RequestShipmentResponse(
                order_id=reservation.order_id,
                reservation_id=reservation.reservation_id,
                shipments=[
                    stock_pb2.ShipmentRequest(
                        warehouse_id=s.warehouse_id,
                        carrier=s.carrier,
                        msg_id=s.msg_id,
                        lines=[
                            stock_pb2.ReservedLine(
                                sku=sku, quantity=qty, warehouse_id=s.warehouse_id
                            )
                            for _, sku, qty in s.lines
                        ],
                    )
                    for s in shipments
                ],
            )

        return await _guard(context, work, stock_pb2.RequestShipmentResponse)

    async def WatchAvailability(
        self, request: stock_pb2.WatchAvailabilityRequest, context: Context
    ) -> AsyncIterator[stock_pb2.WatchAvailabilityResponse]:
        feed = await self._inventory.subscribe(list(request.skus))
        try:
            # Headers go out once subscribed: a client that sees them misses no change.
            await context.send_initial_metadata(())
            async for view in feed:
                yield stock_pb2.WatchAvailabilityResponse(
                    level=convert.level(view), changed_at=convert.timestamp(convert.utcnow())
                )
        finally:
            feed.close()
