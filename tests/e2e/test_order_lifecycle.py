"""An order's life through gRPC: holds follow after-sales, shipping commits, review decides.

Every change is recorded (who, when, why), listed by ``ListOrderEvents`` and streamed by
``WatchOrders`` from the events the hub publishes under ``oms.orders.>``.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest

from orderhub.client import auth_metadata, authorized_aio_channel
from orderhub.v1 import order_pb2, order_pb2_grpc, stock_pb2, stock_pb2_grpc
from tests.conftest import NATS_URL

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platforms"
DOUYIN = json.loads((FIXTURES / "douyin_order_detail_sample.json").read_text())
CODES = ("TEE-01-BLK-L", "CAP-02-RED")
NO_REFUND = {"after_sale_status": 0, "after_sale_type": 0, "refund_status": 0}


@pytest.fixture(scope="module")
def as_lin(tokens: Callable[..., str]) -> tuple[tuple[str, str], ...]:
    """Call metadata acting as agent Lin (an ops token held by "agent:lin")."""
    return auth_metadata(tokens("ops", "agent:lin"))


@pytest.fixture
async def channel(grpc_address: str, admin_token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_aio_channel(grpc_address, admin_token) as ch:
        yield ch


@pytest.fixture
def orders(channel: grpc.aio.Channel) -> order_pb2_grpc.OrderServiceStub:
    return order_pb2_grpc.OrderServiceStub(channel)


@pytest.fixture
def stock(channel: grpc.aio.Channel) -> stock_pb2_grpc.StockServiceStub:
    return stock_pb2_grpc.StockServiceStub(channel)


async def setup_shop(
    stock: stock_pb2_grpc.StockServiceStub, unique: str, shop: str, *, map_skus: bool = True
) -> str:
    """A warehouse with 10 of each SKU of the Douyin sample; returns the warehouse id."""
    wh = f"{unique}-WH"
    await stock.UpsertWarehouse(
        stock_pb2.UpsertWarehouseRequest(
            warehouse_id=wh, name="W", province="浙江省", city="杭州市", daily_capacity=99
        )
    )
    for code in CODES:
        sku = f"{unique}-{code}"
        await stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku=sku, name=code))
        await stock.SetStock(stock_pb2.SetStockRequest(warehouse_id=wh, sku=sku, on_hand=10))
        if map_skus:
            await map_sku(stock, shop, code, sku)
    return wh


async def map_sku(stock: stock_pb2_grpc.StockServiceStub, shop: str, code: str, sku: str) -> None:
    await stock.MapPlatformSku(
        stock_pb2.MapPlatformSkuRequest(platform="douyin", shop_id=shop, platform_sku=code, sku=sku)
    )


def douyin(update_time: int, **changes: Any) -> dict[str, Any]:
    """The Douyin sample (line 2 has an open refund-only), with changes to the order."""
    payload = copy.deepcopy(DOUYIN)
    detail = payload["data"]["shop_order_detail"]
    detail["update_time"] = update_time
    lines = changes.pop("lines", {})
    detail.update(changes)
    for index, info in lines.items():
        detail["sku_order_list"][index]["after_sale_info"] = info
    return payload


async def ingest(
    orders: order_pb2_grpc.OrderServiceStub, shop: str, payload: dict[str, Any]
) -> order_pb2.Order:
    answer = await orders.IngestPlatformOrder(
        order_pb2.IngestPlatformOrderRequest(
            platform="douyin", shop_id=shop, payload=json.dumps(payload, ensure_ascii=False)
        )
    )
    return answer.order


async def held(stock: stock_pb2_grpc.StockServiceStub, key: str) -> stock_pb2.Reservation:
    got = await stock.GetReservation(stock_pb2.GetReservationRequest(order_id=key))
    return got.reservation


async def levels(stock: stock_pb2_grpc.StockServiceStub, sku: str) -> tuple[int, int]:
    got = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=sku))
    return got.levels[0].on_hand, got.levels[0].reserved


async def events(orders: order_pb2_grpc.OrderServiceStub, order_id: str) -> list[Any]:
    got = await orders.ListOrderEvents(order_pb2.ListOrderEventsRequest(order_id=order_id))
    return list(got.events)


async def test_holds_follow_refunds_and_shipping_commits(
    orders: order_pb2_grpc.OrderServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    unique: str,
    as_lin: tuple[tuple[str, str], ...],
) -> None:
    shop = f"{unique}-dy"
    await setup_shop(stock, unique, shop)
    tee, cap = (f"{unique}-{c}" for c in CODES)

    # Paid, with a refund-only request open on the cap: only the T-shirts are held.
    order = await ingest(orders, shop, douyin(1716000302))
    assert order.status == order_pb2.ORDER_STATUS_PAID
    assert order.after_sale_type == order_pb2.AFTER_SALE_TYPE_REFUND_ONLY
    hold = await held(stock, order.order_id)
    assert [(ln.sku, ln.quantity) for ln in hold.lines] == [(tee, 2)]
    assert await levels(stock, cap) == (10, 0)

    # It must not ship while the refund is open.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await orders.ShipOrder(
            order_pb2.ShipOrderRequest(order_id=order.order_id, carrier="sf", tracking_number="1")
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "settled" in (refused.value.details() or "")

    # The seller refuses the refund: the cap is held again, under a new key.
    refused_refund = {"after_sale_status": 27, "after_sale_type": 2, "refund_status": 0}
    again = await ingest(orders, shop, douyin(1716000400, lines={1: refused_refund}))
    assert again.after_sale_type == order_pb2.AFTER_SALE_TYPE_NONE
    assert (await held(stock, order.order_id)).status == stock_pb2.RESERVATION_STATUS_RELEASED
    history = await events(orders, order.order_id)
    rekeyed = [e for e in history if e.kind == "stock_held"][-1]
    key = json.loads(rekeyed.details_json)["hold_key"]
    assert key != order.order_id
    assert sorted((ln.sku, ln.quantity) for ln in (await held(stock, key)).lines) == [
        (cap, 1),
        (tee, 2),
    ]
    assert await levels(stock, tee) == (10, 2)

    # A person without a carrier is told which field is missing.
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await orders.ShipOrder(order_pb2.ShipOrderRequest(order_id=order.order_id))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "carrier" in (bad.value.details() or "")

    shipped = await orders.ShipOrder(
        order_pb2.ShipOrderRequest(
            order_id=order.order_id, carrier="sf", tracking_number="SF1234567890"
        ),
        metadata=as_lin,
    )
    assert shipped.order.status == order_pb2.ORDER_STATUS_SHIPPED
    assert (await held(stock, key)).status == stock_pb2.RESERVATION_STATUS_COMMITTED
    assert await levels(stock, tee) == (8, 0)
    assert await levels(stock, cap) == (9, 0)

    # After shipment it cannot be cancelled, only delivered.
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await orders.CancelOrder(order_pb2.CancelOrderRequest(order_id=order.order_id))
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    delivered = await orders.DeliverOrder(
        order_pb2.DeliverOrderRequest(order_id=order.order_id), metadata=as_lin
    )
    assert delivered.order.status == order_pb2.ORDER_STATUS_DELIVERED

    history = await events(orders, order.order_id)
    kinds = [e.kind for e in history]
    assert kinds == [
        "received",
        "queued",  # an open after-sale: the after-sales queue
        "stock_held",
        "after_sale",
        "queued",  # settled: back to the automatic flow
        "stock_released",
        "stock_held",
        "shipped",
        "stock_committed",
        "delivered",
    ]
    ship = history[kinds.index("shipped")]
    assert ship.actor == "agent:lin"
    assert ship.from_status == order_pb2.ORDER_STATUS_PAID
    assert ship.to_status == order_pb2.ORDER_STATUS_SHIPPED
    assert json.loads(ship.details_json) == {"carrier": "sf", "tracking_number": "SF1234567890"}
    assert history[0].actor == "platform:douyin"


async def test_a_cancelled_order_gives_its_stock_back_and_is_watched(
    orders: order_pb2_grpc.OrderServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    unique: str,
    as_lin: tuple[tuple[str, str], ...],
) -> None:
    shop = f"{unique}-dy"
    await setup_shop(stock, unique, shop)
    tee = f"{unique}-{CODES[0]}"
    order = await ingest(orders, shop, douyin(1716000302))
    assert await levels(stock, tee) == (10, 2)

    watch = orders.WatchOrders(order_pb2.WatchOrdersRequest(shop_id=shop, kinds=["cancelled"]))
    await watch.initial_metadata()  # subscribed: nothing from here on is missed
    await orders.HoldOrder(order_pb2.HoldOrderRequest(order_id=order.order_id, reason="风控"))
    cancelled = await orders.CancelOrder(
        order_pb2.CancelOrderRequest(order_id=order.order_id, reason="buyer asked by phone"),
        metadata=as_lin,
    )
    assert cancelled.order.status == order_pb2.ORDER_STATUS_CANCELLED
    assert await levels(stock, tee) == (10, 0)

    seen = await asyncio.wait_for(watch.read(), 10)
    watch.cancel()
    assert seen.event.kind == "cancelled" and seen.event.order_id == order.order_id
    assert seen.event.actor == "agent:lin" and seen.event.reason == "buyer asked by phone"
    assert seen.event.from_status == order_pb2.ORDER_STATUS_ON_HOLD
    assert seen.order.status == order_pb2.ORDER_STATUS_CANCELLED

    # A later platform copy that still says "paid" does not bring it back.
    stale = await ingest(orders, shop, douyin(1716000900))
    assert stale.status == order_pb2.ORDER_STATUS_CANCELLED
    assert await levels(stock, tee) == (10, 0)


async def test_review_approve_needs_mapped_skus_and_reject_cancels(
    orders: order_pb2_grpc.OrderServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    unique: str,
    as_lin: tuple[tuple[str, str], ...],
) -> None:
    shop = f"{unique}-dy"
    await setup_shop(stock, unique, shop, map_skus=False)
    tee, cap = (f"{unique}-{c}" for c in CODES)
    await map_sku(stock, shop, CODES[0], tee)
    gift = douyin(1716000302, buyer_words="贺卡上写：生日快乐", lines={1: NO_REFUND})
    order = await ingest(orders, shop, gift)
    assert order.queue == "review"
    assert [r.split(":")[0] for r in order.review_reasons] == ["UNKNOWN_SKU", "GIFT_MESSAGE"]

    with pytest.raises(grpc.aio.AioRpcError) as unmapped:
        await orders.ApproveOrder(order_pb2.ApproveOrderRequest(order_id=order.order_id))
    assert unmapped.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert CODES[1] in (unmapped.value.details() or "")

    await map_sku(stock, shop, CODES[1], cap)
    approved = await orders.ApproveOrder(
        order_pb2.ApproveOrderRequest(order_id=order.order_id, note="card text checked"),
        metadata=as_lin,
    )
    assert approved.order.queue == "" and not approved.order.review_reasons
    assert [ln.sku for ln in approved.order.lines] == [tee, cap]
    assert await levels(stock, tee) == (10, 2)
    assert await levels(stock, cap) == (10, 1)
    # The same gift message in a newer copy does not send it back to review.
    newer = await ingest(
        orders, shop, douyin(1716000500, buyer_words="贺卡上写：生日快乐", lines={1: NO_REFUND})
    )
    assert newer.queue == ""

    with pytest.raises(grpc.aio.AioRpcError) as not_in_review:
        await orders.RejectOrder(order_pb2.RejectOrderRequest(order_id=order.order_id, reason="x"))
    assert not_in_review.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # Another order in review is rejected: cancelled, nothing held.
    other = douyin(1716000302, buyer_words="贺卡：新年快乐", order_id="6936476692437400001")
    second = await ingest(orders, shop, other)
    assert second.queue == "review"
    with pytest.raises(grpc.aio.AioRpcError) as no_reason:
        await orders.RejectOrder(order_pb2.RejectOrderRequest(order_id=second.order_id))
    assert no_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    rejected = await orders.RejectOrder(
        order_pb2.RejectOrderRequest(order_id=second.order_id, reason="suspected fraud")
    )
    assert rejected.order.status == order_pb2.ORDER_STATUS_CANCELLED
    kinds = [e.kind for e in await events(orders, second.order_id)]
    assert kinds == ["received", "queued", "rejected", "cancelled"]

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await orders.ApproveOrder(order_pb2.ApproveOrderRequest(order_id="ord_nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_exchange_after_delivery_expects_the_goods_back_and_sends_a_replacement(
    orders: order_pb2_grpc.OrderServiceStub, stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    shop = f"{unique}-dy"
    await setup_shop(stock, unique, shop)
    tee = f"{unique}-{CODES[0]}"
    no_refund = NO_REFUND
    order = await ingest(orders, shop, douyin(1716000302, lines={1: no_refund}))
    await orders.ShipOrder(
        order_pb2.ShipOrderRequest(order_id=order.order_id, carrier="zto", tracking_number="7")
    )
    assert await levels(stock, tee) == (8, 0)

    exchange = {"after_sale_status": 6, "after_sale_type": 3, "refund_status": 0}
    after = await ingest(
        orders, shop, douyin(1716090000, order_status=5, lines={0: exchange, 1: no_refund})
    )
    assert after.status == order_pb2.ORDER_STATUS_DELIVERED  # an exchange is not a cancel
    assert after.after_sale_type == order_pb2.AFTER_SALE_TYPE_EXCHANGE
    history = await events(orders, order.order_id)
    kinds = [e.kind for e in history]
    assert "return_expected" in kinds and "outbound_created" in kinds
    created = json.loads(history[kinds.index("outbound_created")].details_json)
    replacement = (
        await orders.GetOrder(order_pb2.GetOrderRequest(order_id=created["order_id"]))
    ).order
    assert replacement.status == order_pb2.ORDER_STATUS_PAID
    assert replacement.platform_order_id.endswith("~exchange~" + order.lines[0].platform_line_id)
    assert [(ln.sku, ln.quantity, ln.paid_fen) for ln in replacement.lines] == [(tee, 2, 0)]
    assert "replacement" in replacement.tags
    assert await levels(stock, tee) == (8, 2)  # the replacement's stock is held

    # The same copy again creates nothing more.
    await ingest(orders, shop, douyin(1716090000, order_status=5, lines={0: exchange}))
    listed = await orders.ListOrders(order_pb2.ListOrdersRequest(shop_id=shop, tag="replacement"))
    assert [o.order_id for o in listed.orders] == [replacement.order_id]


async def test_an_order_whose_warehouse_comes_up_short_waits_in_review(
    orders: order_pb2_grpc.OrderServiceStub, stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    shop = f"{unique}-dy"
    wh = await setup_shop(stock, unique, shop)
    order = await ingest(orders, shop, douyin(1716000302, lines={1: NO_REFUND}))
    assert order.queue == "" and await levels(stock, f"{unique}-{CODES[0]}") == (10, 2)

    watch = orders.WatchOrders(order_pb2.WatchOrdersRequest(shop_id=shop, kinds=["queued"]))
    await watch.initial_metadata()
    # The warehouse counts the T-shirts and finds none: no other warehouse can take the hold.
    nc = await nats.connect(NATS_URL)
    try:
        body = {"event_id": f"{unique}-count", "sku": f"{unique}-{CODES[0]}", "type": "COUNT"}
        await nc.jetstream().publish(
            f"wms.events.{wh}",
            json.dumps(body | {"quantity": 0}).encode(),
            headers={"Content-Type": "application/json"},
        )
    finally:
        await nc.close()
    seen = await asyncio.wait_for(watch.read(), 20)
    watch.cancel()
    assert seen.event.order_id == order.order_id and seen.order.queue == "review"
    assert seen.order.review_reasons[-1].startswith("STOCK_SHORTFALL")

    # Stock arrives; a person approves it again and it is held again.
    await stock.SetStock(
        stock_pb2.SetStockRequest(warehouse_id=wh, sku=f"{unique}-{CODES[0]}", on_hand=5)
    )
    approved = await orders.ApproveOrder(order_pb2.ApproveOrderRequest(order_id=order.order_id))
    assert approved.order.queue == "" and not approved.order.review_reasons
