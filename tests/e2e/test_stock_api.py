"""StockService end to end: the generated client against the running hub (PostgreSQL, NATS, Ray)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from hub.app import Hub
from hub.domain.inventory import ReservationNotFound
from hub.server import start_server
from orderhub.client import authorized_aio_channel
from orderhub.v1 import (
    stock_pb2,
    stock_pb2_grpc,
)


@pytest.fixture
async def channel(grpc_address: str, admin_token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_aio_channel(grpc_address, admin_token) as ch:
        yield ch


@pytest.fixture
def stock(channel: grpc.aio.Channel) -> stock_pb2_grpc.StockServiceStub:
    return stock_pb2_grpc.StockServiceStub(channel)


async def catalogue(
    stock: stock_pb2_grpc.StockServiceStub, prefix: str, *levels: tuple[str, str, int]
) -> None:
    """Create warehouses, SKUs and on-hand counts named with a test's prefix."""
    for sku, warehouse_id, on_hand in levels:
        await stock.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id=f"{prefix}-{warehouse_id}",
                name=warehouse_id,
                province="广东省",
                city="广州市",
                daily_capacity=500,
            )
        )
        await stock.UpsertSku(
            stock_pb2.UpsertSkuRequest(
                sku=f"{prefix}-{sku}", name=sku, category="apparel", weight_grams=200
            )
        )
        await stock.SetStock(
            stock_pb2.SetStockRequest(
                warehouse_id=f"{prefix}-{warehouse_id}", sku=f"{prefix}-{sku}", on_hand=on_hand
            )
        )


def details(err: grpc.aio.AioRpcError) -> list[object]:
    """The rich error details carried by a failed call."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    found: list[object] = []
    for any_detail in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
            if any_detail.Is(kind.DESCRIPTOR):
                msg = kind()
                any_detail.Unpack(msg)
                found.append(msg)
    return found


async def test_health_and_reflection_list_the_services(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service="orderhub.v1.StockService"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    async for response in call:
        names = {s.name for s in response.list_services_response.service}
        break
    assert {
        "orderhub.v1.StockService",
        "orderhub.v1.OrderService",
        "orderhub.v1.RoutingService",
    } <= names


async def test_reserve_commit_release_through_grpc(
    stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    await catalogue(stock, unique, ("TEE", "GZ", 10), ("CAP", "GZ", 5))
    tee, cap, gz = f"{unique}-TEE", f"{unique}-CAP", f"{unique}-GZ"
    reserved = await stock.Reserve(
        stock_pb2.ReserveRequest(
            order_id=f"{unique}-o1",
            lines=[
                stock_pb2.ReserveLine(sku=tee, quantity=3),
                stock_pb2.ReserveLine(sku=cap, quantity=1, warehouse_id=gz),
            ],
        )
    )
    assert reserved.status == stock_pb2.RESERVATION_STATUS_HELD
    assert {(ln.sku, ln.quantity, ln.warehouse_id) for ln in reserved.lines} == {
        (tee, 3, gz),
        (cap, 1, gz),
    }
    ttl = reserved.expires_at.seconds - reserved.created_at.seconds
    assert 899 <= ttl <= 900
    availability = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=tee))
    assert availability.total_available == 7
    assert availability.levels[0].reserved == 3

    again = await stock.Reserve(
        stock_pb2.ReserveRequest(
            order_id=f"{unique}-o1", lines=[stock_pb2.ReserveLine(sku=tee, quantity=3)]
        )
    )
    assert again.reservation_id == reserved.reservation_id

    committed = await stock.Commit(stock_pb2.CommitRequest(order_id=f"{unique}-o1"))
    assert committed.status == stock_pb2.RESERVATION_STATUS_COMMITTED
    after = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=tee))
    assert (after.levels[0].on_hand, after.levels[0].reserved) == (7, 0)

    await stock.Reserve(
        stock_pb2.ReserveRequest(
            order_id=f"{unique}-o2", lines=[stock_pb2.ReserveLine(sku=cap, quantity=4)]
        )
    )
    released = await stock.Release(stock_pb2.ReleaseRequest(order_id=f"{unique}-o2"))
    assert released.status == stock_pb2.RESERVATION_STATUS_RELEASED
    cap_level = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=cap))
    assert cap_level.total_available == 4  # 5 on hand, 1 committed


async def test_out_of_stock_is_failed_precondition_naming_the_sku(
    stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    await catalogue(stock, unique, ("TEE", "GZ", 2))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.Reserve(
            stock_pb2.ReserveRequest(
                order_id=f"{unique}-o1",
                lines=[stock_pb2.ReserveLine(sku=f"{unique}-TEE", quantity=3)],
            )
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"{unique}-TEE" in (refused.value.details() or "")
    [info] = details(refused.value)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "INSUFFICIENT_STOCK" and info.metadata["sku"] == f"{unique}-TEE"
    level = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=f"{unique}-TEE"))
    assert level.levels[0].reserved == 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            stock_pb2.ReserveRequest(
                order_id="", lines=[stock_pb2.ReserveLine(sku="X", quantity=1)]
            ),
            "order_id",
        ),
        (stock_pb2.ReserveRequest(order_id="o", lines=[]), "lines"),
        (
            stock_pb2.ReserveRequest(
                order_id="o", lines=[stock_pb2.ReserveLine(sku="X", quantity=0)]
            ),
            "lines.quantity",
        ),
        (
            stock_pb2.ReserveRequest(
                order_id="o", lines=[stock_pb2.ReserveLine(sku="", quantity=1)]
            ),
            "lines.sku",
        ),
        (
            stock_pb2.ReserveRequest(
                order_id="o", lines=[stock_pb2.ReserveLine(sku="X", quantity=1)], ttl_seconds=-5
            ),
            "ttl_seconds",
        ),
    ],
)
async def test_bad_reserve_arguments_are_invalid_argument_naming_the_field(
    stock: stock_pb2_grpc.StockServiceStub, request_: stock_pb2.ReserveRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.Reserve(request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [bad] = details(refused.value)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert bad.field_violations[0].field == field


async def test_bad_master_data_and_counts_are_refused(
    stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    await catalogue(stock, unique, ("TEE", "GZ", 2))
    cases = [
        (
            stock.SetStock(
                stock_pb2.SetStockRequest(
                    warehouse_id=f"{unique}-GZ", sku=f"{unique}-TEE", on_hand=-1
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "on_hand",
        ),
        (
            stock.SetStock(
                stock_pb2.SetStockRequest(warehouse_id="NOWHERE", sku=f"{unique}-TEE", on_hand=1)
            ),
            grpc.StatusCode.NOT_FOUND,
            "warehouse",
        ),
        (
            stock.SetStock(
                stock_pb2.SetStockRequest(warehouse_id=f"{unique}-GZ", sku="NO-SUCH-SKU", on_hand=1)
            ),
            grpc.StatusCode.NOT_FOUND,
            "SKU",
        ),
        (
            stock.UpsertWarehouse(
                stock_pb2.UpsertWarehouseRequest(warehouse_id="", name="x", province="p", city="c")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "warehouse_id",
        ),
        (
            stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku="S", name="n", weight_grams=-1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "weight_grams",
        ),
        (
            stock.MapPlatformSku(
                stock_pb2.MapPlatformSkuRequest(
                    platform="taobao", shop_id="s", platform_sku="p", sku="NO-SUCH-SKU"
                )
            ),
            grpc.StatusCode.NOT_FOUND,
            "SKU",
        ),
        (
            stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku="")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "sku",
        ),
        (
            stock.Release(stock_pb2.ReleaseRequest(order_id=f"{unique}-never")),
            grpc.StatusCode.NOT_FOUND,
            "reservation",
        ),
    ]
    for call, code, mention in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == code
        assert mention in (refused.value.details() or "")
    level = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=f"{unique}-TEE"))
    assert level.levels[0].on_hand == 2


async def test_platform_sku_mapping_is_stored(
    stock: stock_pb2_grpc.StockServiceStub, hub: Hub, unique: str
) -> None:
    await catalogue(stock, unique, ("TEE", "GZ", 1))
    answer = await stock.MapPlatformSku(
        stock_pb2.MapPlatformSkuRequest(
            platform="Taobao",
            shop_id="shop-1",
            platform_sku=f"{unique}-5000000017",
            sku=f"{unique}-TEE",
        )
    )
    assert answer.mapping.platform == "taobao"
    found = await asyncio.to_thread(
        hub.master_data.resolve_platform_sku, "taobao", "shop-1", f"{unique}-5000000017"
    )
    assert found == f"{unique}-TEE"


async def test_reserve_batch_answers_each_request(
    stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    await catalogue(stock, unique, ("TEE", "GZ", 5))
    batch = stock_pb2.ReserveBatchRequest(
        requests=[
            stock_pb2.ReserveRequest(
                order_id=f"{unique}-b{n}",
                lines=[stock_pb2.ReserveLine(sku=f"{unique}-TEE", quantity=1)],
            )
            for n in range(8)
        ]
    )
    answer = await stock.ReserveBatch(batch)
    codes = [r.code for r in answer.results]
    assert codes.count(0) == 5
    assert codes.count(grpc.StatusCode.FAILED_PRECONDITION.value[0]) == 3
    assert all(r.reservation.reservation_id for r in answer.results if r.code == 0)


async def test_watch_availability_streams_changes(
    stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    await catalogue(stock, unique, ("TEE", "GZ", 5))
    sku = f"{unique}-TEE"
    stream = stock.WatchAvailability(stock_pb2.WatchAvailabilityRequest(skus=[sku]))
    await asyncio.wait_for(stream.initial_metadata(), 5)  # sent once the hub is subscribed
    await stock.Reserve(
        stock_pb2.ReserveRequest(
            order_id=f"{unique}-w", lines=[stock_pb2.ReserveLine(sku=sku, quantity=2)]
        )
    )
    change = await asyncio.wait_for(stream.read(), 10)
    assert change.level.sku == sku and change.level.reserved == 2 and change.level.available == 3
    stream.cancel()


async def test_a_deadline_ends_a_call_that_would_wait_longer(
    stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    # A watch of a SKU nobody touches would run for ever; the caller's deadline ends it.
    began = asyncio.get_running_loop().time()
    call = stock.WatchAvailability(
        stock_pb2.WatchAvailabilityRequest(skus=[f"{unique}-QUIET"]), timeout=0.5
    )
    with pytest.raises(grpc.aio.AioRpcError) as late:
        async for _ in call:
            pass
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert asyncio.get_running_loop().time() - began < 5


async def test_graceful_stop_finishes_in_flight_reservations(
    hub: Hub, admin_token: str, unique: str
) -> None:
    """A second server on the same hub is stopped mid-load: accepted calls all complete."""
    server = await start_server(hub, "127.0.0.1:0")
    async with authorized_aio_channel(f"127.0.0.1:{server.port}", admin_token) as ch:
        stub = stock_pb2_grpc.StockServiceStub(ch)
        await catalogue(stub, unique, ("TEE", "GZ", 1000))
        calls = [
            stub.Reserve(
                stock_pb2.ReserveRequest(
                    order_id=f"{unique}-g{n}",
                    lines=[stock_pb2.ReserveLine(sku=f"{unique}-TEE", quantity=1)],
                )
            )
            for n in range(300)
        ]
        await asyncio.sleep(0.05)
        stopping = asyncio.ensure_future(server.stop(grace_s=10))
        results = await asyncio.gather(*calls, return_exceptions=True)
        await stopping
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = {
        f"{unique}-g{n}": r for n, r in enumerate(results) if isinstance(r, grpc.aio.AioRpcError)
    }
    assert len(ok) + len(refused) == 300
    assert ok, "calls accepted before the stop must complete"
    # A refused call did no work: nothing is cut half-way (held, yet reported failed).
    for order_id, err in refused.items():
        assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        with pytest.raises(ReservationNotFound):
            await hub.inventory.get_reservation(order_id)


async def test_many_clients_on_a_hot_sku_get_exactly_the_stock(
    grpc_address: str,
    stock: stock_pb2_grpc.StockServiceStub,
    tokens: Callable[..., str],
    unique: str,
) -> None:
    """20 clients, each with its own connection, race 2,000 reservations for 250 units."""
    await catalogue(stock, unique, ("HOT", "GZ", 250))
    sku = f"{unique}-HOT"
    storefront = tokens("integration")

    async def client(n: int) -> list[bool]:
        async with authorized_aio_channel(
            grpc_address, storefront, options=[("grpc.use_local_subchannel_pool", 1)]
        ) as ch:
            stub = stock_pb2_grpc.StockServiceStub(ch)

            async def one(k: int) -> bool:
                try:
                    await stub.Reserve(
                        stock_pb2.ReserveRequest(
                            order_id=f"{unique}-c{n}-{k}",
                            lines=[stock_pb2.ReserveLine(sku=sku, quantity=1)],
                        )
                    )
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
                    return False
                return True

            return await asyncio.gather(*(one(k) for k in range(100)))

    outcomes = [
        ok for result in await asyncio.gather(*(client(n) for n in range(20))) for ok in result
    ]
    assert outcomes.count(True) == 250
    level = await stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=sku))
    assert (level.levels[0].reserved, level.total_available) == (250, 0)


async def test_carriers_are_master_data(stock: stock_pb2_grpc.StockServiceStub) -> None:
    answer = await stock.UpsertCarrier(
        stock_pb2.UpsertCarrierRequest(
            carrier=stock_pb2.Carrier(
                carrier_id=" ZTO ", name="中通快递", service_level="Standard", active=True
            )
        )
    )
    assert (answer.carrier.carrier_id, answer.carrier.service_level) == ("zto", "standard")
    listed = await stock.ListCarriers(stock_pb2.ListCarriersRequest())
    assert any(c.carrier_id == "zto" and c.active for c in listed.carriers)
    for bad, field in [
        (stock_pb2.Carrier(carrier_id="z.to", name="x", service_level="express"), "carrier_id"),
        (stock_pb2.Carrier(carrier_id="zto", name="", service_level="express"), "carrier.name"),
        (stock_pb2.Carrier(carrier_id="zto", name="x", service_level="rocket"), "service_level"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stock.UpsertCarrier(stock_pb2.UpsertCarrierRequest(carrier=bad))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in (refused.value.details() or "")
