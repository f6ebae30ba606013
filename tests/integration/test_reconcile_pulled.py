"""Reconciliation against the platform's own fresh copies, pulled from its open API.

The stand-in platform (``openapi_stub``) serves Douyin orders; the hub pulls them once,
then the platform records refunds the hub never hears of, and an order the hub never got.
Reconciling by pulling the period again must name exactly those orders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from hub.api.reconcile import ReconciliationServicer
from hub.store.db import make_engine
from hub.store.orders import OrderStore
from orderhub.v1 import reconcile_pb2, reconcile_pb2_grpc
from tests.integration.openapi_stub import PlatformStub, StubOrder, order_ids
from tests.integration.test_pollers import NOW, FakeTime, pollers, pull_all, shop

REFUND_ONLY_DONE = {"after_sale_status": 12, "after_sale_type": 1, "refund_status": 3}


def ts(moment: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(moment)
    return t


def put(stub: PlatformStub, order_id: str, modified: datetime) -> StubOrder:
    """A Douyin order created and paid an hour before NOW, last changed at ``modified``."""
    order = stub.put("douyin", order_id, modified)
    paid = int((NOW - timedelta(hours=1)).timestamp())
    order.full.update(create_time=paid, pay_time=paid)
    return order


@pytest.fixture
async def stub() -> AsyncIterator[PlatformStub]:
    platforms = PlatformStub()
    await platforms.start()
    yield platforms
    await platforms.close()


async def test_refunds_the_hub_missed_and_orders_it_never_got_are_named(
    stub: PlatformStub, new_database: Callable[[str], str]
) -> None:
    engine = make_engine(new_database("postgresql"))
    ids = order_ids("douyin", 7)
    for n, order_id in enumerate(ids[:6]):
        put(stub, order_id, NOW - timedelta(minutes=50 - n))
    time = FakeTime(NOW)
    target = shop(stub, "douyin")
    running = pollers([target], engine, time)
    await pull_all(running, target)  # the hub has all six as they were

    # Later the platform refunds three of them (refund only, done) and takes a seventh order
    # the hub never hears of (its pushes and polls are off, say).
    time.advance(600)
    refunded = ids[:3]
    for order_id in refunded:
        changed = put(stub, order_id, NOW + timedelta(minutes=5))
        for line in changed.full["sku_order_list"]:
            line["after_sale_info"] = dict(REFUND_ONLY_DONE)
    put(stub, ids[6], NOW + timedelta(minutes=6))

    async def pull(platform: str, shop_id: str, since: datetime, until: datetime) -> Any:
        assert (platform, shop_id) == target.key
        return await running.collect(target, since, time.now())

    server = grpc.aio.server()
    reconcile_pb2_grpc.add_ReconciliationServiceServicer_to_server(
        ReconciliationServicer(OrderStore(engine), pull), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = reconcile_pb2_grpc.ReconciliationServiceStub(channel)
            report = await service.Reconcile(
                reconcile_pb2.ReconcileRequest(
                    platform="douyin",
                    shop_id=target.shop_id,
                    period_start=ts(NOW - timedelta(hours=2)),
                    period_end=ts(NOW + timedelta(hours=1)),
                    pull_from_platform=True,
                )
            )
            with pytest.raises(grpc.aio.AioRpcError) as both:
                await service.Reconcile(
                    reconcile_pb2.ReconcileRequest(
                        platform="douyin",
                        shop_id=target.shop_id,
                        period_start=ts(NOW - timedelta(hours=2)),
                        period_end=ts(NOW + timedelta(hours=1)),
                        pull_from_platform=True,
                        statement=b"order_id,paid\n1,1.00\n",
                    )
                )
    finally:
        await server.stop(None)
    assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    assert report.statement_rows == 7 and report.untranslatable == 0
    kinds = {
        (reconcile_pb2.DifferenceKind.Name(d.kind), d.platform_order_id) for d in report.differences
    }
    assert kinds == {
        *(("DIFFERENCE_KIND_REFUND_NOT_REFLECTED", i) for i in refunded),
        ("DIFFERENCE_KIND_MISSING_IN_HUB", ids[6]),
    }
    assert not report.balanced
    engine.dispose()
