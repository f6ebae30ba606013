"""OrderService: platform orders in, unified orders out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from hub.api import convert
from hub.api.errors import abort, classify, invalid, refuse
from hub.api.guard import principal
from hub.domain.inventory import InventoryError
from hub.domain.lifecycle import IllegalTransition, OrderAction, OrderNotFound
from hub.domain.orders import OrderStatus
from hub.events import ORDERS
from hub.orders import OrderIntake
from hub.pollers import Pollers, PollStatus
from hub.shops import Shop, Shops
from hub.store.orders import OrderEvent, StoredOrder
from hub.store.routing import RoutedShipment, RoutingStore
from orderhub.v1 import order_pb2, order_pb2_grpc, routing_pb2

log = logging.getLogger("orderhub.orders")
Context = grpc.aio.ServicerContext[Any, Any]
MAX_PAGE = 500
MAX_INGEST_BATCH = 1000

_STATUS_FROM_PB = {order_pb2.OrderStatus.Value(f"ORDER_STATUS_{s.value}"): s for s in OrderStatus}


def shipment_of(p: RoutedShipment) -> routing_pb2.Shipment:
    """A routed parcel as the API shows it."""
    return convert.shipment(p.warehouse_id, p.carrier, p.lines, p.promised_hours, p.cost_fen)


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


def status_message(status: str) -> order_pb2.OrderStatus.ValueType:
    """The proto enum value of a status name ('' → unspecified)."""
    if not status:
        return order_pb2.ORDER_STATUS_UNSPECIFIED
    return order_pb2.OrderStatus.Value(f"ORDER_STATUS_{status}")


def event_message(e: OrderEvent) -> order_pb2.OrderEvent:
    """The proto of a recorded order event."""
    return order_pb2.OrderEvent(
        order_id=e.order_id,
        version=e.version,
        kind=e.kind,
        from_status=status_message(e.from_status),
        to_status=status_message(e.to_status),
        actor=e.actor,
        reason=e.reason,
        details_json=json.dumps(e.details, ensure_ascii=False),
        at=convert.timestamp(e.at),
    )


def shop_message(shop: Shop, status: PollStatus | None) -> order_pb2.Shop:
    """A configured shop and, when it has one, its poller's state."""
    msg = order_pb2.Shop(
        platform=shop.platform,
        shop_id=shop.shop_id,
        polled=shop.poll,
        poll_state="not_polled",
        webhooks_verifiable=bool(
            shop.webhook_secret or (shop.platform == "douyin" and shop.app_secret)
        ),
        api_credentials=bool(shop.app_key and shop.app_secret and shop.access_token),
    )
    if status is not None:
        msg.poll_state = status.state if shop.poll else "not_polled"
        msg.failures = status.failures
        msg.last_error = status.last_error
        msg.orders_seen = status.orders_seen
        if status.window_end is not None:
            msg.window_end.CopyFrom(convert.timestamp(status.window_end))
        if status.last_run_at is not None:
            msg.last_run_at.CopyFrom(convert.timestamp(status.last_run_at))
    return msg


def actor_of(context: Context) -> str:
    """Who is acting: the subject of the caller's token (``api`` outside the guard)."""
    who = principal()
    return who.subject if who is not None else "api"


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    """Ingestion, reading, lifecycle and review of unified orders."""

    def __init__(
        self,
        intake: OrderIntake,
        nc: NatsClient | None = None,
        shops: Shops | None = None,
        pollers: Pollers | None = None,
        routing: RoutingStore | None = None,
    ) -> None:
        self._intake = intake
        self._nc = nc
        self._shops = shops or Shops()
        self._pollers = pollers
        self._routing = routing

    async def _answer(
        self, context: Context, work: Callable[[], Awaitable[StoredOrder]]
    ) -> order_pb2.Order | None:
        """Run an action; refusals become their status (then None)."""
        try:
            return order_message(await work())
        except (InventoryError, IllegalTransition, OrderNotFound) as err:
            refuse(context, err)
            return None

    async def _act(
        self, request: Any, context: Context, action: OrderAction, details: dict[str, Any]
    ) -> order_pb2.Order | None:
        reason = str(getattr(request, "reason", ""))
        return await self._answer(
            context,
            lambda: self._intake.act(
                request.order_id,
                action,
                actor=actor_of(context),
                reason=reason,
                details={k: v for k, v in details.items() if v},
            ),
        )

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Context
    ) -> order_pb2.CancelOrderResponse:
        order = await self._act(request, context, OrderAction.CANCEL, {})
        return order_pb2.CancelOrderResponse(order=order)

    async def HoldOrder(
        self, request: order_pb2.HoldOrderRequest, context: Context
    ) -> order_pb2.HoldOrderResponse:
        order = await self._act(request, context, OrderAction.HOLD, {})
        return order_pb2.HoldOrderResponse(order=order)

    async def ResumeOrder(
        self, request: order_pb2.ResumeOrderRequest, context: Context
    ) -> order_pb2.ResumeOrderResponse:
        order = await self._act(request, context, OrderAction.UNHOLD, {})
        return order_pb2.ResumeOrderResponse(order=order)

    async def ShipOrder(
        self, request: order_pb2.ShipOrderRequest, context: Context
    ) -> order_pb2.ShipOrderResponse:
        if not request.carrier.strip():
            await abort(context, invalid("carrier", "carrier is required"))
        if not request.tracking_number.strip():
            await abort(context, invalid("tracking_number", "tracking_number is required"))
        details = {
            "carrier": request.carrier.strip(),
            "tracking_number": request.tracking_number.strip(),
            "warehouse_id": request.warehouse_id.strip(),
            "shipped_at": (
                convert.rfc3339(request.shipped_at) if request.HasField("shipped_at") else ""
            ),
        }
        order = await self._act(request, context, OrderAction.SHIP, details)
        return order_pb2.ShipOrderResponse(order=order)

    async def DeliverOrder(
        self, request: order_pb2.DeliverOrderRequest, context: Context
    ) -> order_pb2.DeliverOrderResponse:
        details = {
            "delivered_at": (
                convert.rfc3339(request.delivered_at) if request.HasField("delivered_at") else ""
            )
        }
        order = await self._act(request, context, OrderAction.DELIVER, details)
        return order_pb2.DeliverOrderResponse(order=order)

    async def ApproveOrder(
        self, request: order_pb2.ApproveOrderRequest, context: Context
    ) -> order_pb2.ApproveOrderResponse:
        order = await self._answer(
            context,
            lambda: self._intake.approve(
                request.order_id, actor=actor_of(context), note=request.note.strip()
            ),
        )
        return order_pb2.ApproveOrderResponse(order=order)

    async def RejectOrder(
        self, request: order_pb2.RejectOrderRequest, context: Context
    ) -> order_pb2.RejectOrderResponse:
        order = await self._answer(
            context,
            lambda: self._intake.reject(
                request.order_id, actor=actor_of(context), reason=request.reason.strip()
            ),
        )
        return order_pb2.RejectOrderResponse(order=order)

    async def ListOrderEvents(
        self, request: order_pb2.ListOrderEventsRequest, context: Context
    ) -> order_pb2.ListOrderEventsResponse:
        try:
            events = await self._intake.history(request.order_id)
        except (InventoryError, OrderNotFound) as err:
            await abort(context, err)
        return order_pb2.ListOrderEventsResponse(events=[event_message(e) for e in events])

    async def ListShops(
        self, request: order_pb2.ListShopsRequest, context: Context
    ) -> order_pb2.ListShopsResponse:
        statuses = await asyncio.to_thread(self._pollers.status) if self._pollers else []
        polled = {(p.platform, p.shop_id): p for p in statuses}
        shops = sorted(self._shops, key=lambda shop: shop.key)
        return order_pb2.ListShopsResponse(
            shops=[shop_message(shop, polled.get(shop.key)) for shop in shops]
        )

    async def WatchOrders(
        self, request: order_pb2.WatchOrdersRequest, context: Context
    ) -> AsyncIterator[order_pb2.WatchOrdersResponse]:
        if self._nc is None:
            await abort(context, RuntimeError("order events are not available"))
        assert self._nc is not None
        platform = request.platform.strip().lower()
        shop_id = request.shop_id.strip()
        queue = request.queue.strip()
        kinds = {k.strip().lower() for k in request.kinds if k.strip()}
        inbox: asyncio.Queue[Msg] = asyncio.Queue(maxsize=10_000)

        async def deliver(msg: Msg) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                inbox.put_nowait(msg)  # a watcher this far behind loses the oldest news

        sub = await self._nc.subscribe(f"{ORDERS}.>", cb=deliver)
        try:
            # Headers go out once subscribed: a client that sees them misses no change.
            await context.send_initial_metadata(())
            while True:
                msg = await inbox.get()
                try:
                    events = json.loads(msg.data).get("events", [])
                except (ValueError, AttributeError):
                    continue
                for body in events:
                    if (
                        (platform and body.get("platform") != platform)
                        or (shop_id and body.get("shop_id") != shop_id)
                        or (queue and body.get("queue") != queue)
                        or (kinds and body.get("kind") not in kinds)
                    ):
                        continue
                    stored = await asyncio.to_thread(self._intake.store.get, body["order_id"])
                    if stored is None:
                        continue
                    event = OrderEvent(
                        order_id=body["order_id"],
                        version=int(body.get("version", 0)),
                        kind=body.get("kind", ""),
                        from_status=body.get("from_status", ""),
                        to_status=body.get("status", ""),
                        actor=body.get("actor", ""),
                        reason=body.get("reason", ""),
                        details=body.get("details", {}),
                        at=convert.parse_rfc3339(body["at"]),
                    )
                    yield order_pb2.WatchOrdersResponse(
                        event=event_message(event), order=order_message(stored)
                    )
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

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

    async def IngestPlatformOrders(
        self, request: order_pb2.IngestPlatformOrdersRequest, context: Context
    ) -> order_pb2.IngestPlatformOrdersResponse:
        if len(request.orders) > MAX_INGEST_BATCH:
            await abort(context, invalid("orders", f"at most {MAX_INGEST_BATCH} orders per call"))

        async def one(
            req: order_pb2.IngestPlatformOrderRequest,
        ) -> order_pb2.IngestPlatformOrderResult:
            try:
                saved = await self._intake.ingest(req.platform, req.shop_id, req.payload)
            except (InventoryError, IllegalTransition, OrderNotFound) as err:
                code, _ = classify(err)
                return order_pb2.IngestPlatformOrderResult(
                    code=code.value[0], message=str(err), field=str(getattr(err, "field", ""))
                )
            return order_pb2.IngestPlatformOrderResult(
                order=order_message(saved.stored), duplicate=saved.duplicate
            )

        results = await asyncio.gather(*(one(req) for req in request.orders))
        return order_pb2.IngestPlatformOrdersResponse(results=results)

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
        message = order_message(stored)
        if self._routing is not None:
            parcels = await asyncio.to_thread(self._routing.routed, order_id)
            message.shipments.extend(shipment_of(p) for p in parcels)
        return order_pb2.GetOrderResponse(order=message)

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
        messages = [order_message(s) for s in found]
        if self._routing is not None and found:
            routed = await asyncio.to_thread(self._routing.routed_many, [s.order_id for s in found])
            for message in messages:
                message.shipments.extend(shipment_of(p) for p in routed[message.order_id])
        return order_pb2.ListOrdersResponse(
            orders=messages,
            next_page_token=found[-1].order_id if more else "",
        )
