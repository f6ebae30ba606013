"""OrderService: platform orders in, unified orders out."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from hub.api import convert
from hub.api.errors import abort, invalid, refuse
from hub.domain.inventory import InventoryError
from hub.domain.orders import OrderStatus
from hub.orders import OrderIntake
from hub.store.orders import StoredOrder
from orderhub.v1 import order_pb2, order_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
MAX_PAGE = 500

_STATUS_FROM_PB = {order_pb2.OrderStatus.Value(f"ORDER_STATUS_{s.value}"): s for s in OrderStatus}


def order_message(s: StoredOrder) -> order_pb2.Order:
    """The unified order message of a stored order."""
    o = s.order
    r = o.recipient
    msg = order_pb2.Order(
        order_id=s.order_id,
        platform=o.platform,
        shop_id=o.shop_id,
        platform_order_id=o.platform_order_id,
        status=order_pb2.OrderStatus.Value(f"ORDER_STATUS_{o.status.value}"),
        after_sale_type=order_pb2.AfterSaleType.Value(f"AFTER_SALE_TYPE_{o.after_sale_type.value}"),
        buyer_note=o.buyer_note,
        seller_note=o.seller_note,
        recipient=order_pb2.Recipient(
            name=r.name,
            phone=r.phone,
            province=r.province,
            city=r.city,
            district=r.district,
            address=r.address,
            pii_protected=r.pii_protected,
            zip=r.zip,
            country=r.country,
            street=r.street,
        ),
        lines=[
            order_pb2.OrderLine(
                sku=ln.sku,
                platform_sku_id=ln.platform_sku_id,
                quantity=ln.quantity,
                unit_price_fen=ln.unit_price_fen,
                paid_fen=ln.paid_fen,
                after_sale_type=order_pb2.AfterSaleType.Value(
                    f"AFTER_SALE_TYPE_{ln.after_sale_type.value}"
                ),
                title=ln.title,
                platform_line_id=ln.platform_line_id,
                native_sku_id=ln.native_sku_id,
            )
            for ln in o.lines
        ],
        shipping_fee_fen=o.shipping_fee_fen,
        total_paid_fen=o.total_paid_fen,
        currency=o.currency,
        tags=list(s.tags),
        queue=s.queue,
        platform_status=o.platform_status,
        review_reasons=list(s.review_reasons),
    )
    for name in ("paid_at", "created_at", "updated_at"):
        moment = getattr(o, name)
        if moment is not None:
            getattr(msg, name).CopyFrom(convert.timestamp(moment))
    return msg


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    """Ingestion and reading of unified orders."""

    def __init__(self, intake: OrderIntake) -> None:
        self._intake = intake

    async def IngestPlatformOrder(
        self, request: order_pb2.IngestPlatformOrderRequest, context: Context
    ) -> order_pb2.IngestPlatformOrderResponse:
        try:
            saved = await self._intake.ingest(request.platform, request.shop_id, request.payload)
        except InventoryError as err:
            refuse(context, err)
            return order_pb2.IngestPlatformOrderResponse()
        return order_pb2.IngestPlatformOrderResponse(
            order=order_message(saved.stored), duplicate=saved.duplicate
        )

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Context
    ) -> order_pb2.GetOrderResponse:
        order_id = request.order_id.strip()
        if not order_id:
            await abort(context, invalid("order_id", "order_id is required"))
        stored = await asyncio.to_thread(self._intake.store.get, order_id)
        if stored is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no order {order_id!r}")
        assert stored is not None
        return order_pb2.GetOrderResponse(order=order_message(stored))

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Context
    ) -> order_pb2.ListOrdersResponse:
        status = None
        if request.status != order_pb2.ORDER_STATUS_UNSPECIFIED:
            if request.status not in _STATUS_FROM_PB:
                await abort(context, invalid("status", f"unknown status {request.status}"))
            status = _STATUS_FROM_PB[request.status]
        if request.page_size < 0:
            await abort(context, invalid("page_size", "page_size must not be negative"))
        size = min(request.page_size or 100, MAX_PAGE)
        found = await asyncio.to_thread(
            self._intake.store.listing,
            status=status,
            platform=request.platform.strip().lower(),
            shop_id=request.shop_id.strip(),
            queue=request.queue.strip() or None,
            tag=request.tag.strip(),
            after=request.page_token,
            limit=size + 1,
        )
        more = len(found) > size
        found = found[:size]
        return order_pb2.ListOrdersResponse(
            orders=[order_message(s) for s in found],
            next_page_token=found[-1].order_id if more else "",
        )
