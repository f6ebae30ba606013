"""WmsService end to end: events on the machine's NATS, dead letters over gRPC."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import nats
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hub.app import Hub
from orderhub.client import authorized_aio_channel
from orderhub.v1 import stock_pb2, stock_pb2_grpc, wms_pb2, wms_pb2_grpc
from tests.conftest import NATS_URL

JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def channel(grpc_address: str, admin_token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_aio_channel(grpc_address, admin_token) as ch:
        yield ch


async def test_events_apply_and_dead_letters_are_listed_replayed_and_discarded(
    hub: Hub, channel: grpc.aio.Channel, unique: str
) -> None:
    stock = stock_pb2_grpc.StockServiceStub(channel)
    wms = wms_pb2_grpc.WmsServiceStub(channel)
    wh, sku, late = f"{unique}-WH", f"{unique}-TEE", f"{unique}-LATE"
    await stock.UpsertWarehouse(
        stock_pb2.UpsertWarehouseRequest(
            warehouse_id=wh, name="W", province="上海市", city="上海市", daily_capacity=1
        )
    )
    await stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku=sku, name="T", weight_grams=1))
    before = await wms.GetSyncStatus(wms_pb2.GetSyncStatusRequest())
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for n, (s, kind, qty) in enumerate(
            [(sku, "INBOUND", 8), (late, "INBOUND", 2), (sku, "COUNT", -1), (sku, "DAMAGE", 1)]
        ):
            body = {"event_id": f"{unique}-{n}", "sku": s, "type": kind, "quantity": qty}
            await js.publish(f"wms.events.{wh}", json.dumps(body).encode(), headers=JSON)
    finally:
        await nc.close()
    await hub.wms.wait_until(
        lambda c: c.applied + c.dead_lettered >= before.applied + before.dead_lettered + 4
    )

    levels = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=sku))
    assert [(lv.warehouse_id, lv.on_hand) for lv in levels.levels] == [(wh, 7)]
    status = await wms.GetSyncStatus(wms_pb2.GetSyncStatusRequest())
    assert status.connected and status.consumer == hub.settings.wms_consumer
    assert status.applied - before.applied >= 2
    assert status.open_dead_letters - before.open_dead_letters == 2

    listed = await wms.ListDeadLetters(wms_pb2.ListDeadLettersRequest(page_size=1000))
    mine = {d.event_id: d for d in listed.dead_letters if d.event_id.startswith(unique)}
    assert {e: d.error for e, d in mine.items()} == {
        f"{unique}-1": "UNKNOWN_SKU",
        f"{unique}-2": "INVALID_QUANTITY",
    }
    kept = mine[f"{unique}-1"]
    assert json.loads(kept.payload)["sku"] == late and kept.subject == f"wms.events.{wh}"

    await stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku=late, name="L", weight_grams=1))
    replayed = await wms.ReplayDeadLetters(
        wms_pb2.ReplayDeadLettersRequest(letter_ids=[kept.letter_id])
    )
    assert [(r.letter_id, r.status) for r in replayed.results] == [
        (kept.letter_id, wms_pb2.DEAD_LETTER_STATUS_REPLAYED)
    ]
    late_levels = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=late))
    assert late_levels.levels[0].on_hand == 2

    bad = mine[f"{unique}-2"]
    discarded = await wms.DiscardDeadLetters(
        wms_pb2.DiscardDeadLettersRequest(letter_ids=[bad.letter_id], reason="WMS bug, recounted")
    )
    assert discarded.discarded == 1
    gone = await wms.ListDeadLetters(
        wms_pb2.ListDeadLettersRequest(status=wms_pb2.DEAD_LETTER_STATUS_DISCARDED, page_size=1000)
    )
    assert any(d.letter_id == bad.letter_id and "recounted" in d.reason for d in gone.dead_letters)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (wms_pb2.ReplayDeadLettersRequest(), "letter_ids"),
        (wms_pb2.ReplayDeadLettersRequest(letter_ids=[1], all_open=True), "letter_ids"),
        (wms_pb2.ReplayDeadLettersRequest(letter_ids=[10**12]), "letter_ids"),
    ],
)
async def test_bad_replay_requests_name_the_field(
    channel: grpc.aio.Channel, request_: wms_pb2.ReplayDeadLettersRequest, field: str
) -> None:
    wms = wms_pb2_grpc.WmsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await wms.ReplayDeadLetters(request_)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(refused.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    assert bad.field_violations[0].field == field


async def test_list_pages_through_letters(hub: Hub, channel: grpc.aio.Channel, unique: str) -> None:
    wms = wms_pb2_grpc.WmsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await wms.ListDeadLetters(wms_pb2.ListDeadLettersRequest(page_token="nope"))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    before = hub.wms.counters.dead_lettered
    nc = await nats.connect(NATS_URL)
    try:
        for n in range(3):  # no such warehouse: each is kept as a dead letter
            body = {"event_id": f"{unique}-p{n}", "sku": "S", "type": "INBOUND", "quantity": 1}
            await nc.jetstream().publish(
                f"wms.events.{unique}-NOWHERE", json.dumps(body).encode(), headers=JSON
            )
    finally:
        await nc.close()
    await hub.wms.wait_until(lambda c: c.dead_lettered >= before + 3)
    seen: list[int] = []
    mine: list[str] = []
    token = ""
    while True:
        page = await wms.ListDeadLetters(
            wms_pb2.ListDeadLettersRequest(page_size=1, page_token=token)
        )
        assert len(page.dead_letters) <= 1
        seen += [d.letter_id for d in page.dead_letters]
        mine += [d.event_id for d in page.dead_letters if d.event_id.startswith(unique)]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(set(seen))
    assert mine == [f"{unique}-p{n}" for n in range(3)]


async def test_warehouse_ids_must_be_usable_as_subjects(channel: grpc.aio.Channel) -> None:
    stock = stock_pb2_grpc.StockServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id="WH.EAST", name="E", province="p", city="c", daily_capacity=1
            )
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "warehouse_id" in (refused.value.details() or "")


async def test_shipment_requests_reach_each_warehouse_once(
    hub: Hub, channel: grpc.aio.Channel, unique: str
) -> None:
    stock = stock_pb2_grpc.StockServiceStub(channel)
    a, b, sku = f"{unique}-A", f"{unique}-B", f"{unique}-TEE"
    for wh in (a, b):
        await stock.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id=wh, name=wh, province="江苏省", city="南京市", daily_capacity=1
            )
        )
    await stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku=sku, name="T", weight_grams=1))
    await stock.UpsertCarrier(
        stock_pb2.UpsertCarrierRequest(
            carrier=stock_pb2.Carrier(
                carrier_id="sf", name="顺丰速运", service_level="express", active=True
            )
        )
    )
    for wh in (a, b):
        await stock.SetStock(stock_pb2.SetStockRequest(warehouse_id=wh, sku=sku, on_hand=5))
    order = f"{unique}-o1"
    await stock.Reserve(
        stock_pb2.ReserveRequest(
            order_id=order,
            lines=[
                stock_pb2.ReserveLine(sku=sku, quantity=2, warehouse_id=a),
                stock_pb2.ReserveLine(sku=sku, quantity=1, warehouse_id=b),
            ],
        )
    )
    nc = await nats.connect(NATS_URL)
    got: list[nats.aio.msg.Msg] = []
    arrived = asyncio.Event()

    async def take(msg: nats.aio.msg.Msg) -> None:
        got.append(msg)
        if len(got) >= 2:
            arrived.set()

    try:
        for wh in (a, b):
            await nc.subscribe(f"oms.shipments.requested.{wh}", cb=take)
        await nc.flush()
        answer = await stock.RequestShipment(
            stock_pb2.RequestShipmentRequest(order_id=order, carrier="SF")
        )
        again = await stock.RequestShipment(
            stock_pb2.RequestShipmentRequest(order_id=order, carrier="sf")
        )
        await asyncio.wait_for(arrived.wait(), 10)
        # Asked twice, stored once: the stream drops the repeat by its Nats-Msg-Id.
        js = nc.jetstream()
        for wh in (a, b):
            subject = f"oms.shipments.requested.{wh}"
            await hub.relay.drained()
            info = await js.stream_info(
                await js.find_stream_name_by_subject(subject), subjects_filter=subject
            )
            assert (info.state.subjects or {}).get(subject) == 1
    finally:
        await nc.close()
    assert [
        (s.warehouse_id, [(ln.sku, ln.quantity) for ln in s.lines]) for s in answer.shipments
    ] == [(a, [(sku, 2)]), (b, [(sku, 1)])]
    assert [s.msg_id for s in again.shipments] == [s.msg_id for s in answer.shipments]
    first = {}
    for m in got:
        body = json.loads(m.data)
        first.setdefault(body["warehouse_id"], body)
    assert sorted((x["warehouse_id"], x["carrier"], x["order_id"]) for x in first.values()) == [
        (a, "sf", order),
        (b, "sf", order),
    ]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.RequestShipment(stock_pb2.RequestShipmentRequest(order_id=order, carrier="ups"))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "carrier" in (refused.value.details() or "")
    await stock.Release(stock_pb2.ReleaseRequest(order_id=order))
    with pytest.raises(grpc.aio.AioRpcError) as closed:
        await stock.RequestShipment(stock_pb2.RequestShipmentRequest(order_id=order, carrier="sf"))
    assert closed.value.code() is grpc.StatusCode.FAILED_PRECONDITION
