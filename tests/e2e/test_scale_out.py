"""Two `orderhub up` processes on one Ray cluster: one owner per SKU, zero oversell.

A Ray head runs on its own; two hubs join it with the same database, NATS, namespace and
token key, so they find the same named, detached inventory and lane actors. Storefronts
reserve a hot SKU through both at once (and send some orders to both): exactly the stock
is granted. A third hub set to another shard count is refused, and the actors outlive a
hub that stops.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, func, select

from hub.embedded import EmbeddedRay
from hub.store import schema
from orderhub.client import authorized_aio_channel
from orderhub.v1 import stock_pb2, stock_pb2_grpc
from tests.conftest import NATS_URL, need_service
from tests.e2e.test_process import HubProcess, hub_process  # noqa: F401 - the fixture
from tests.integration.test_inventory_shards import assert_books_balance

pytestmark = pytest.mark.slow

STOCK = 1000
ORDERS = 2400


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[str]:
    """A Ray head of its own, as a cluster's would be; its address."""
    head = EmbeddedRay(tmp_path / "ray-head", num_cpus=2)
    address = head.start()
    yield address
    head.stop()


async def _storefront(
    address: str, token: str, orders: list[str], granted: dict[str, str], refused: list[str]
) -> None:
    async with authorized_aio_channel(address, token) as channel:
        stock = stock_pb2_grpc.StockServiceStub(channel)
        gate = asyncio.Semaphore(40)

        async def one(order_id: str) -> None:
            async with gate:
                try:
                    answer = await stock.Reserve(
                        stock_pb2.ReserveRequest(
                            order_id=order_id, lines=[stock_pb2.ReserveLine(sku="HOT", quantity=1)]
                        ),
                        timeout=60,
                    )
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
                    refused.append(order_id)
                    return
                previous = granted.setdefault(order_id, answer.reservation_id)
                # An order sent to both hubs is one reservation, whichever answers first.
                assert previous == answer.reservation_id

        await asyncio.gather(*(one(o) for o in orders))


def test_two_hubs_on_one_ray_cluster_never_oversell(
    hub_process: Callable[[dict[str, str]], HubProcess],  # noqa: F811
    new_database: Callable[[str], str],
    ray_head: str,
) -> None:
    need_service("NATS", NATS_URL, 4222)
    url = new_database("postgresql")
    deployment = f"so-{uuid.uuid4().hex[:8]}"
    shared = {
        "ORDERHUB_DATABASE_URL": url,
        "ORDERHUB_NATS_URL": NATS_URL,
        "ORDERHUB_RAY_ADDRESS": ray_head,
        "ORDERHUB_RAY_NAMESPACE": deployment,
        "ORDERHUB_TOKEN_SECRET": secrets.token_urlsafe(48),
        "ORDERHUB_WMS_CONSUMER": deployment,
        "ORDERHUB_WMS_DELIVER": "new",
        "ORDERHUB_CARRIER_CONSUMER": deployment,
        "ORDERHUB_CARRIER_DELIVER": "new",
        "ORDERHUB_AUTO_ROUTE": "0",
        **EmbeddedRay.environment(),
    }
    first, second = hub_process(shared), hub_process(shared)
    first.start()
    second.start()
    token = first.token  # issued by one replica, valid on both (one key, one database)

    async def scenario() -> tuple[dict[str, str], list[str]]:
        async with authorized_aio_channel(first.address, token) as channel:
            stock = stock_pb2_grpc.StockServiceStub(channel)
            await stock.UpsertWarehouse(
                stock_pb2.UpsertWarehouseRequest(
                    warehouse_id="WH-S", name="South", province="广东省", city="广州市"
                )
            )
            await stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku="HOT", name="hot"))
            await stock.SetStock(
                stock_pb2.SetStockRequest(warehouse_id="WH-S", sku="HOT", on_hand=STOCK)
            )
        orders = [f"o{n}" for n in range(ORDERS)]
        both = orders[:200]  # these go to both hubs at once
        granted: dict[str, str] = {}
        refused: list[str] = []
        await asyncio.gather(
            _storefront(first.address, token, orders[0::2] + both, granted, refused),
            _storefront(second.address, token, orders[1::2] + both, granted, refused),
        )
        return granted, refused

    granted, refused = asyncio.run(scenario())
    assert len(granted) == STOCK  # exactly the stock, though two hubs took the orders
    assert set(granted).isdisjoint(refused)  # an order is held once or refused, never both
    assert set(granted) | set(refused) == {f"o{n}" for n in range(ORDERS)}

    async def levels() -> list[stock_pb2.StockLevel]:
        seen = []
        for hub in (first, second):
            async with authorized_aio_channel(hub.address, token) as channel:
                answer = await stock_pb2_grpc.StockServiceStub(channel).GetAvailability(
                    stock_pb2.GetAvailabilityRequest(sku="HOT"), timeout=30
                )
                seen.append(answer.levels[0])
        return seen

    for level in asyncio.run(levels()):  # both hubs read the one owner
        assert (level.on_hand, level.reserved, level.available) == (STOCK, STOCK, 0)
    engine = create_engine(url)
    with engine.connect() as conn:
        held = conn.execute(select(func.count()).select_from(schema.reservations)).scalar_one()
    assert held == STOCK
    assert_books_balance(engine)

    # A hub set to another shard count would add a second owner per SKU: it is refused.
    wrong = hub_process({**shared, "ORDERHUB_INVENTORY_SHARDS": "3"})
    with pytest.raises(AssertionError, match="exited"):
        wrong.start()
    log = (wrong.data_dir.parent / f"hub-{wrong.port}.log").read_text()
    assert "already runs 2 orderhub-inventory shard(s)" in log

    # One hub stops; the actors are the deployment's, so the other keeps every hold.
    assert first.process is not None
    first.process.terminate()
    assert first.process.wait(60) == 0

    async def after() -> stock_pb2.Reservation:
        async with authorized_aio_channel(second.address, token) as channel:
            stock = stock_pb2_grpc.StockServiceStub(channel)
            some = next(iter(granted))
            found = await stock.GetReservation(
                stock_pb2.GetReservationRequest(order_id=some), timeout=30
            )
            with pytest.raises(grpc.aio.AioRpcError) as sold_out:
                await stock.Reserve(
                    stock_pb2.ReserveRequest(
                        order_id="late", lines=[stock_pb2.ReserveLine(sku="HOT", quantity=1)]
                    ),
                    timeout=30,
                )
            assert sold_out.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            return found.reservation

    reservation = asyncio.run(after())
    assert reservation.status == stock_pb2.RESERVATION_STATUS_HELD
