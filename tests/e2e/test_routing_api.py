"""RoutingService end to end: what-ifs, routing orders with their holds, rules, lane health.

The shared hub has automatic routing off, so each test routes when it means to; one test
turns the background pass on to show a paid order routed on its own.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hub.app import Hub
from orderhub.client import auth_metadata, authorized_aio_channel
from orderhub.v1 import (
    order_pb2,
    order_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    stock_pb2,
    stock_pb2_grpc,
)
from tests.conftest import NATS_URL

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platforms"
#: A Douyin order to 福建省 厦门市: two T-shirts (and a cap, whose refund we withdraw).
DOUYIN = json.loads((FIXTURES / "douyin_order_detail_sample.json").read_text())
CODES = ("TEE-01-BLK-L", "CAP-02-RED")
NO_REFUND = {"after_sale_status": 0, "after_sale_type": 0, "refund_status": 0}


@pytest.fixture
async def channel(grpc_address: str, admin_token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_aio_channel(grpc_address, admin_token) as ch:
        yield ch


@pytest.fixture
def routing(channel: grpc.aio.Channel) -> routing_pb2_grpc.RoutingServiceStub:
    return routing_pb2_grpc.RoutingServiceStub(channel)


@pytest.fixture
def stock(channel: grpc.aio.Channel) -> stock_pb2_grpc.StockServiceStub:
    return stock_pb2_grpc.StockServiceStub(channel)


@pytest.fixture
def orders(channel: grpc.aio.Channel) -> order_pb2_grpc.OrderServiceStub:
    return order_pb2_grpc.OrderServiceStub(channel)


async def two_warehouses(
    stock: stock_pb2_grpc.StockServiceStub,
    unique: str,
    *,
    near_stock: int = 5,
    far_stock: int = 50,
    near_capacity: int = 100,
) -> tuple[str, str]:
    """A warehouse in 厦门 (the sample's city) and a bigger one in 上海, both stocking the SKUs."""
    near, far = f"{unique}-XM", f"{unique}-SH"
    for wh, province, city, capacity in (
        (near, "福建省", "厦门市", near_capacity),
        (far, "上海市", "上海市", 10_000),
    ):
        await stock.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id=wh,
                name=wh,
                province=province,
                city=city,
                daily_capacity=capacity,
            )
        )
    for code in CODES:
        sku = f"{unique}-{code}"
        await stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku=sku, name=code, weight_grams=300))
        await stock.SetStock(
            stock_pb2.SetStockRequest(warehouse_id=near, sku=sku, on_hand=near_stock)
        )
        await stock.SetStock(
            stock_pb2.SetStockRequest(warehouse_id=far, sku=sku, on_hand=far_stock)
        )
    return near, far


async def paid_order(
    stock: stock_pb2_grpc.StockServiceStub,
    orders: order_pb2_grpc.OrderServiceStub,
    unique: str,
    shop: str,
    order_id: str = "",
) -> order_pb2.Order:
    """The Douyin sample, paid with nothing refunded, its SKUs mapped for ``shop``."""
    for code in CODES:
        await stock.MapPlatformSku(
            stock_pb2.MapPlatformSkuRequest(
                platform="douyin", shop_id=shop, platform_sku=code, sku=f"{unique}-{code}"
            )
        )
    payload = copy.deepcopy(DOUYIN)
    detail = payload["data"]["shop_order_detail"]
    if order_id:
        detail["order_id"] = order_id
        for n, line in enumerate(detail["sku_order_list"]):
            line["order_id"] = f"{order_id}{n}"
    for line in detail["sku_order_list"]:
        line["after_sale_info"] = NO_REFUND
    answer = await orders.IngestPlatformOrder(
        order_pb2.IngestPlatformOrderRequest(
            platform="douyin", shop_id=shop, payload=json.dumps(payload, ensure_ascii=False)
        )
    )
    assert answer.order.status == order_pb2.ORDER_STATUS_PAID
    assert answer.order.queue != "review", answer.order.review_reasons
    return answer.order


async def hold_of(stock: stock_pb2_grpc.StockServiceStub, order_id: str) -> set[tuple[str, str]]:
    got = await stock.GetReservation(stock_pb2.GetReservationRequest(order_id=order_id))
    return {(ln.sku, ln.warehouse_id) for ln in got.reservation.lines}


def field_of(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    return bad.field_violations[0].field


async def test_route_moves_the_hold_to_the_nearest_warehouse_and_allocates(
    routing: routing_pb2_grpc.RoutingServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    orders: order_pb2_grpc.OrderServiceStub,
    unique: str,
) -> None:
    near, far = await two_warehouses(stock, unique)
    order = await paid_order(stock, orders, unique, f"{unique}-dy")
    # Intake held the lines where the most stock is; routing knows better.
    assert {w for _, w in await hold_of(stock, order.order_id)} == {far}

    routed = await routing.RouteOrder(routing_pb2.RouteOrderRequest(order_id=order.order_id))

    assert [s.warehouse_id for s in routed.shipments] == [near]
    assert routed.shipments[0].carrier == "instant"  # same city: the default rules prefer it
    assert routed.moved is True
    assert routed.shipments[0].cost_fen > 0 and routed.shipments[0].promised_hours > 0
    steps = [t.step for t in routed.trace]
    assert "winner" in steps and "candidate" in steps
    assert {w for _, w in await hold_of(stock, order.order_id)} == {near}
    levels = await stock.GetAvailability(
        stock_pb2.GetAvailabilityRequest(sku=f"{unique}-{CODES[0]}", warehouse_ids=[near, far])
    )
    reserved = {lv.warehouse_id: lv.reserved for lv in levels.levels}
    assert reserved == {near: 2, far: 0}

    got = await orders.GetOrder(order_pb2.GetOrderRequest(order_id=order.order_id))
    assert got.order.status == order_pb2.ORDER_STATUS_ALLOCATED
    assert [(s.warehouse_id, s.carrier) for s in got.order.shipments] == [(near, "instant")]
    history = await orders.ListOrderEvents(
        order_pb2.ListOrderEventsRequest(order_id=order.order_id)
    )
    assert "routed" in [e.kind for e in history.events]

    # Routing again changes nothing that is already right.
    again = await routing.RouteOrder(routing_pb2.RouteOrderRequest(order_id=order.order_id))
    assert again.moved is False
    assert [s.warehouse_id for s in again.shipments] == [near]


async def test_a_busy_warehouse_promises_later_and_a_full_one_is_passed_over(
    routing: routing_pb2_grpc.RoutingServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    orders: order_pb2_grpc.OrderServiceStub,
    unique: str,
) -> None:
    # The nearby warehouse ships one order a day: the second waits a day (still the
    # fastest way), the third would wait two, past what the rules accept.
    near, far = await two_warehouses(stock, unique, near_stock=20, near_capacity=1)
    routed = []
    for n in range(3):
        order = await paid_order(stock, orders, unique, f"{unique}-{n}", order_id=f"{unique}{n}")
        routed.append(
            await routing.RouteOrder(routing_pb2.RouteOrderRequest(order_id=order.order_id))
        )
    first, second, third = routed

    assert [s.warehouse_id for s in first.shipments] == [near]
    assert [s.warehouse_id for s in second.shipments] == [near]
    assert second.shipments[0].promised_hours >= first.shipments[0].promised_hours + 24
    assert [s.warehouse_id for s in third.shipments] == [far]
    assert any(near in t.detail and "wait" in t.detail for t in third.trace)


async def test_cancelled_order_gives_its_place_in_the_warehouse_day_back(
    routing: routing_pb2_grpc.RoutingServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    orders: order_pb2_grpc.OrderServiceStub,
    unique: str,
) -> None:
    near, _ = await two_warehouses(stock, unique, near_capacity=1)
    first = await paid_order(stock, orders, unique, f"{unique}-a", order_id=f"{unique}1")
    second = await paid_order(stock, orders, unique, f"{unique}-b", order_id=f"{unique}2")
    a = await routing.RouteOrder(routing_pb2.RouteOrderRequest(order_id=first.order_id))
    assert [s.warehouse_id for s in a.shipments] == [near]

    await orders.CancelOrder(order_pb2.CancelOrderRequest(order_id=first.order_id, reason="buyer"))
    cancelled = await orders.GetOrder(order_pb2.GetOrderRequest(order_id=first.order_id))
    assert list(cancelled.order.shipments) == []

    b = await routing.RouteOrder(routing_pb2.RouteOrderRequest(order_id=second.order_id))
    assert [s.warehouse_id for s in b.shipments] == [near]


async def test_quote_route_answers_without_changing_anything(
    routing: routing_pb2_grpc.RoutingServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    unique: str,
) -> None:
    near, _ = await two_warehouses(stock, unique)
    tee = f"{unique}-{CODES[0]}"
    quote = await routing.QuoteRoute(
        routing_pb2.QuoteRouteRequest(
            destination_province="Fujian",
            destination_city="厦门",
            lines=[routing_pb2.QuoteLine(sku=tee, quantity=3)],
        )
    )
    assert [s.warehouse_id for s in quote.shipments] == [near]
    urgent = await routing.QuoteRoute(
        routing_pb2.QuoteRouteRequest(
            destination_province="新疆",
            lines=[routing_pb2.QuoteLine(sku=tee, quantity=1)],
        )
    )
    assert urgent.shipments[0].carrier == "ems"  # remote: the default rules prefer EMS
    levels = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=tee))
    assert sum(lv.reserved for lv in levels.levels) == 0


async def test_a_sku_size_prices_a_bulky_parcel_by_volume(
    routing: routing_pb2_grpc.RoutingServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    unique: str,
) -> None:
    """Two 500 g SKUs, one boxed 600 x 400 x 300 mm: the bulky one costs more to ship."""
    near, _ = await two_warehouses(stock, unique)
    small, bulky = f"{unique}-SMALL", f"{unique}-PILLOW"
    for sku, size in ((small, (0, 0, 0)), (bulky, (600, 400, 300))):
        answer = await stock.UpsertSku(
            stock_pb2.UpsertSkuRequest(
                sku=sku,
                name=sku,
                weight_grams=500,
                length_mm=size[0],
                width_mm=size[1],
                height_mm=size[2],
            )
        )
        assert (answer.sku.length_mm, answer.sku.width_mm, answer.sku.height_mm) == size
        await stock.SetStock(stock_pb2.SetStockRequest(warehouse_id=near, sku=sku, on_hand=5))
    quotes = {}
    for sku in (small, bulky):
        quotes[sku] = await routing.QuoteRoute(
            routing_pb2.QuoteRouteRequest(
                destination_province="上海市",
                lines=[routing_pb2.QuoteLine(sku=sku, quantity=1)],
            )
        )
    assert quotes[bulky].shipments[0].cost_fen > quotes[small].shipments[0].cost_fen
    assert any("by size" in t.detail for t in quotes[bulky].trace)


@pytest.mark.parametrize(
    ("size", "field"),
    [((600, 0, 300), "width_mm"), ((600, 400, -1), "height_mm"), ((20_000, 1, 1), "length_mm")],
)
async def test_a_partial_or_impossible_sku_size_is_refused_naming_the_side(
    stock: stock_pb2_grpc.StockServiceStub, unique: str, size: tuple[int, int, int], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.UpsertSku(
            stock_pb2.UpsertSkuRequest(
                sku=f"{unique}-ODD",
                name="odd",
                length_mm=size[0],
                width_mm=size[1],
                height_mm=size[2],
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(refused.value) == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"destination_province": "Atlantis"}, "destination_province"),
        ({"lines": [routing_pb2.QuoteLine(sku="X", quantity=0)]}, "lines[0].quantity"),
        ({"lines": []}, "lines"),
        (
            {"draft_rules_json": '{"rules": [{"name": "x", "wen": {}}]}'},
            "draft_rules_json.rules[0]",
        ),
    ],
)
async def test_bad_quote_is_refused_naming_the_field(
    routing: routing_pb2_grpc.RoutingServiceStub, change: dict[str, Any], field: str
) -> None:
    request: dict[str, Any] = {
        "destination_province": "广东",
        "lines": [routing_pb2.QuoteLine(sku="X", quantity=1)],
        **change,
    }
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await routing.QuoteRoute(routing_pb2.QuoteRouteRequest(**request))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(refused.value).startswith(field)


async def test_routing_an_unknown_order_is_not_found(
    routing: routing_pb2_grpc.RoutingServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await routing.RouteOrder(routing_pb2.RouteOrderRequest(order_id="no-such-order"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


async def test_rules_update_is_versioned_and_a_bad_one_changes_nothing(
    routing: routing_pb2_grpc.RoutingServiceStub, tokens: Callable[..., str]
) -> None:
    before = (await routing.GetRoutingRules(routing_pb2.GetRoutingRulesRequest())).rules
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await routing.UpdateRoutingRules(
            routing_pb2.UpdateRoutingRulesRequest(
                rules_json=json.dumps({"rules": [{"name": "x", "then": {"prefer": ["dhl"]}}]})
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(refused.value).startswith("rules_json.rules[0]")
    unchanged = (await routing.GetRoutingRules(routing_pb2.GetRoutingRulesRequest())).rules
    assert unchanged.version == before.version

    doc = json.loads(before.rules_json)
    doc["weights"]["fen_per_hour"] = doc["weights"]["fen_per_hour"] + 1
    stored = await routing.UpdateRoutingRules(
        routing_pb2.UpdateRoutingRulesRequest(
            rules_json=json.dumps(doc, ensure_ascii=False),
            expected_version=before.version,
            comment="an hour is worth a little more",
        ),
        metadata=auth_metadata(tokens("ops", "ops:wang")),
    )
    assert stored.rules.version > before.version
    assert stored.rules.updated_by == "ops:wang"
    newer = await routing.UpdateRoutingRules(
        routing_pb2.UpdateRoutingRulesRequest(
            rules_json=stored.rules.rules_json, expected_version=stored.rules.version
        )
    )
    assert newer.rules.version == stored.rules.version + 1
    # Written against a version that is no longer the newest: refused, nothing stored.
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await routing.UpdateRoutingRules(
            routing_pb2.UpdateRoutingRulesRequest(
                rules_json=before.rules_json, expected_version=stored.rules.version
            )
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    versions = await routing.ListRoutingRuleVersions(routing_pb2.ListRoutingRuleVersionsRequest())
    assert versions.versions[0].version == newer.rules.version
    old = await routing.GetRoutingRules(
        routing_pb2.GetRoutingRulesRequest(version=stored.rules.version)
    )
    assert (
        json.loads(old.rules.rules_json)["weights"]["fen_per_hour"]
        == doc["weights"]["fen_per_hour"]
    )
    # Put the rules back as they were, for the other tests.
    await routing.UpdateRoutingRules(
        routing_pb2.UpdateRoutingRulesRequest(rules_json=before.rules_json)
    )


def _ts(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


async def test_tripped_lane_alerts_and_its_orders_are_routed_again(
    hub: Hub,
    routing: routing_pb2_grpc.RoutingServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    orders: order_pb2_grpc.OrderServiceStub,
    unique: str,
) -> None:
    near, _ = await two_warehouses(stock, unique)
    order = await paid_order(stock, orders, unique, f"{unique}-dy")
    first = await routing.RouteOrder(routing_pb2.RouteOrderRequest(order_id=order.order_id))
    carrier = first.shipments[0].carrier
    assert first.shipments[0].warehouse_id == near

    nc = await nats.connect(NATS_URL)
    alerts: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    rerouted: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_alert(msg: Any) -> None:
        body = json.loads(msg.data)
        if body["warehouse_id"] == near:
            await alerts.put(body)

    async def on_routed(msg: Any) -> None:
        for event in json.loads(msg.data)["events"]:
            if event["order_id"] == order.order_id and "tripped" in event["reason"]:
                await rerouted.put(event)

    await nc.subscribe("oms.alerts.lanes.>", cb=on_alert)
    await nc.subscribe("oms.orders.routed", cb=on_routed)
    # Three hours of deliveries on the lane, two in five late, played in seconds with the
    # lane board's clock following the deliveries' own times. They start now: a lane actor
    # judges no window older than what it loaded when it started.
    real_clock: Callable[[], datetime] = hub.lanes.clock
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    try:
        for n in range(90):
            at = start + timedelta(minutes=2 * n)
            hub.lanes.clock = lambda at=at: at  # type: ignore[misc]
            await routing.RecordLaneOutcome(
                routing_pb2.RecordLaneOutcomeRequest(
                    warehouse_id=near,
                    carrier=carrier,
                    destination_province="福建省",
                    late=n % 5 in (1, 3),
                    occurred_at=_ts(at),
                    outcome_id=f"{unique}-{n}",
                )
            )
        # Each boundary is judged once its late reports have had time to come in.
        settled = at + timedelta(seconds=hub.lanes.policy.settle_seconds)
        await hub.lanes.evaluate(settled)
        hub.lanes.clock = lambda: settled
        [health] = (
            await routing.GetLaneHealth(
                routing_pb2.GetLaneHealthRequest(warehouse_id=near, carrier=carrier)
            )
        ).lanes
    finally:
        hub.lanes.clock = real_clock
    assert health.state == routing_pb2.BREAKER_STATE_OPEN
    assert 0.3 < health.delay_rate < 0.5

    alert = await asyncio.wait_for(alerts.get(), 10)
    assert (alert["carrier"], alert["destination_province"], alert["to_state"]) == (
        carrier,
        "福建",
        "OPEN",
    )
    event = await asyncio.wait_for(rerouted.get(), 10)
    assert event["details"]["shipments"][0]["carrier"] != carrier
    got = await orders.GetOrder(order_pb2.GetOrderRequest(order_id=order.order_id))
    assert (got.order.shipments[0].warehouse_id, got.order.shipments[0].carrier) != (
        near,
        carrier,
    )
    lanes = await routing.GetLaneHealth(
        routing_pb2.GetLaneHealthRequest(warehouse_id=near, carrier=carrier)
    )
    assert [lane.state for lane in lanes.lanes] == [routing_pb2.BREAKER_STATE_OPEN]
    # A repeat of an outcome already counted counts nothing.
    again = await routing.RecordLaneOutcome(
        routing_pb2.RecordLaneOutcomeRequest(
            warehouse_id=near,
            carrier=carrier,
            destination_province="福建",
            late=True,
            occurred_at=_ts(start),
            outcome_id=f"{unique}-0",
        )
    )
    assert again.lane.outcomes == lanes.lanes[0].outcomes
    await nc.close()


async def test_paid_order_is_routed_on_its_own_when_routing_runs_in_the_background(
    hub: Hub,
    stock: stock_pb2_grpc.StockServiceStub,
    orders: order_pb2_grpc.OrderServiceStub,
    unique: str,
) -> None:
    near, _ = await two_warehouses(stock, unique)
    nc = await nats.connect(NATS_URL)
    routed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_routed(msg: Any) -> None:
        for event in json.loads(msg.data)["events"]:
            await routed.put(event)

    await nc.subscribe("oms.orders.routed", cb=on_routed)
    hub.router.start_background()
    try:
        order = await paid_order(stock, orders, unique, f"{unique}-dy")
        while True:
            event = await asyncio.wait_for(routed.get(), 60)
            if event["order_id"] == order.order_id:
                break
    finally:
        await hub.router.stop()
        await nc.close()
    assert event["details"]["shipments"][0]["warehouse_id"] == near
    got = await orders.GetOrder(order_pb2.GetOrderRequest(order_id=order.order_id))
    assert got.order.status == order_pb2.ORDER_STATUS_ALLOCATED


async def test_order_is_routed_again_when_a_count_finds_its_warehouse_short(
    routing: routing_pb2_grpc.RoutingServiceStub,
    stock: stock_pb2_grpc.StockServiceStub,
    orders: order_pb2_grpc.OrderServiceStub,
    unique: str,
) -> None:
    near, far = await two_warehouses(stock, unique)
    order = await paid_order(stock, orders, unique, f"{unique}-dy")
    first = await routing.RouteOrder(routing_pb2.RouteOrderRequest(order_id=order.order_id))
    assert [s.warehouse_id for s in first.shipments] == [near]

    nc = await nats.connect(NATS_URL)
    rerouted: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_routed(msg: Any) -> None:
        for event in json.loads(msg.data)["events"]:
            if event["order_id"] == order.order_id and "moved" in event["reason"]:
                await rerouted.put(event)

    await nc.subscribe("oms.orders.routed", cb=on_routed)
    try:
        # The nearby warehouse counts its T-shirts and finds none: their hold moves to the
        # other warehouse, and routing follows with the whole order.
        count = {
            "event_id": f"{unique}-count",
            "sku": f"{unique}-{CODES[0]}",
            "type": "COUNT",
            "quantity": 0,
        }
        await nc.jetstream().publish(
            f"wms.events.{near}",
            json.dumps(count).encode(),
            headers={"Content-Type": "application/json"},
        )
        event = await asyncio.wait_for(rerouted.get(), 30)
    finally:
        await nc.close()
    assert [s["warehouse_id"] for s in event["details"]["shipments"]] == [far]
    assert {w for _, w in await hold_of(stock, order.order_id)} == {far}
