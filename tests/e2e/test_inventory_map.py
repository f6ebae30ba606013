"""The inventory map end to end: gRPC and `orderhub stock` against the running hub.

The shared hub holds other tests' data, so every call filters by this test's warehouses
or SKUs (named with its unique prefix).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hub.cli import main
from orderhub.client import authorized_aio_channel
from orderhub.v1 import stock_pb2, stock_pb2_grpc

# A value no version of the proto defines; proto3 enums are open, so it can be sent.
UNKNOWN_DIMENSION = stock_pb2.InventoryMapDimension.ValueType(42)


@pytest.fixture
async def stock(
    grpc_address: str, admin_token: str
) -> AsyncIterator[stock_pb2_grpc.StockServiceStub]:
    async with authorized_aio_channel(grpc_address, admin_token) as ch:
        yield stock_pb2_grpc.StockServiceStub(ch)


@dataclass(frozen=True)
class Catalogue:
    """One test's warehouses and SKUs."""

    gz: str
    sz: str
    sh: str
    tee: str
    mug: str
    apparel: str
    home: str

    @property
    def warehouses(self) -> list[str]:
        return [self.gz, self.sz, self.sh]


async def catalogue(stock: stock_pb2_grpc.StockServiceStub, u: str) -> Catalogue:
    """Guangzhou and Shenzhen (广东省) and Shanghai; a T-shirt and a mug, with stock."""
    c = Catalogue(
        gz=f"{u}-GZ",
        sz=f"{u}-SZ",
        sh=f"{u}-SH",
        tee=f"{u}-TEE",
        mug=f"{u}-MUG",
        apparel=f"apparel-{u}",
        home=f"home-{u}",
    )
    for warehouse_id, province, city in [
        (c.gz, "广东省", "广州市"),
        (c.sz, "广东省", "深圳市"),
        (c.sh, "上海市", "上海市"),
    ]:
        await stock.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id=warehouse_id,
                name=warehouse_id,
                province=province,
                city=city,
                daily_capacity=500,
            )
        )
    for sku, category, safety in [(c.tee, c.apparel, 1), (c.mug, c.home, 0)]:
        await stock.UpsertSku(
            stock_pb2.UpsertSkuRequest(
                sku=sku, name=sku, category=category, weight_grams=300, safety_stock=safety
            )
        )
    for warehouse_id, sku, on_hand, override in [
        (c.gz, c.tee, 10, None),
        (c.sh, c.tee, 3, 5),  # below its own safety stock: adds 0 to ATP
        (c.sz, c.mug, 6, None),
        (c.sh, c.mug, 4, None),
    ]:
        await stock.SetStock(
            stock_pb2.SetStockRequest(
                warehouse_id=warehouse_id, sku=sku, on_hand=on_hand, safety_stock=override
            )
        )
    return c


def numbers(row: stock_pb2.InventoryMapRow) -> tuple[int, ...]:
    """on hand, reserved, safety, available, SKUs, warehouses, out of stock."""
    return (
        row.on_hand,
        row.reserved,
        row.safety_stock,
        row.available,
        row.sku_count,
        row.warehouse_count,
        row.out_of_stock_skus,
    )


async def test_the_map_follows_stock_and_reservations(
    stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    c = await catalogue(stock, unique)
    await stock.Reserve(
        stock_pb2.ReserveRequest(
            order_id=f"{unique}-o1",
            lines=[
                stock_pb2.ReserveLine(sku=c.tee, quantity=4, warehouse_id=c.gz),
                stock_pb2.ReserveLine(sku=c.mug, quantity=2, warehouse_id=c.sz),
            ],
        )
    )
    request = stock_pb2.GetInventoryMapRequest(warehouse_ids=c.warehouses)
    held = await stock.GetInventoryMap(request)  # empty group_by: province, city
    assert [(r.province, r.city, numbers(r)) for r in held.rows] == [
        # The T-shirt is below its safety stock in Shanghai: out of stock there.
        ("上海市", "上海市", (7, 0, 5, 4, 2, 1, 1)),
        ("广东省", "广州市", (10, 4, 1, 5, 1, 1, 0)),
        ("广东省", "深圳市", (6, 2, 0, 4, 1, 1, 0)),
    ]
    assert numbers(held.total) == (23, 6, 6, 13, 2, 3, 0)
    assert held.as_of.seconds > 0 and not held.truncated

    await stock.Release(stock_pb2.ReleaseRequest(order_id=f"{unique}-o1"))
    released = await stock.GetInventoryMap(
        stock_pb2.GetInventoryMapRequest(
            group_by=[stock_pb2.INVENTORY_MAP_DIMENSION_PROVINCE], warehouse_ids=c.warehouses
        )
    )
    assert [(r.province, r.city, r.reserved, r.available) for r in released.rows] == [
        ("上海市", "", 0, 4),
        ("广东省", "", 0, 15),
    ]
    assert released.total.available == 19


async def test_category_and_sku_filters(
    stock: stock_pb2_grpc.StockServiceStub, unique: str
) -> None:
    c = await catalogue(stock, unique)
    by_category = await stock.GetInventoryMap(
        stock_pb2.GetInventoryMapRequest(
            group_by=[
                stock_pb2.INVENTORY_MAP_DIMENSION_CATEGORY,
                stock_pb2.INVENTORY_MAP_DIMENSION_WAREHOUSE,
            ],
            skus=[c.tee, c.mug],
        )
    )
    assert [(r.category, r.warehouse_id, r.available) for r in by_category.rows] == [
        (c.apparel, c.gz, 9),
        (c.apparel, c.sh, 0),
        (c.home, c.sh, 4),
        (c.home, c.sz, 6),
    ]
    only_home = await stock.GetInventoryMap(
        stock_pb2.GetInventoryMapRequest(
            group_by=[stock_pb2.INVENTORY_MAP_DIMENSION_SKU],
            category=c.home,
            province="广东省",
        )
    )
    assert [(r.sku, numbers(r)) for r in only_home.rows] == [(c.mug, (6, 0, 0, 6, 1, 1, 0))]


def violations(err: grpc.aio.AioRpcError) -> list[str]:
    """The fields a BadRequest detail of a failed call names."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    fields = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields += [v.field for v in bad.field_violations]
    return fields


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            stock_pb2.GetInventoryMapRequest(
                group_by=[stock_pb2.INVENTORY_MAP_DIMENSION_UNSPECIFIED]
            ),
            "group_by",
        ),
        (
            stock_pb2.GetInventoryMapRequest(
                group_by=[stock_pb2.INVENTORY_MAP_DIMENSION_CITY, UNKNOWN_DIMENSION]
            ),
            "group_by",
        ),
        (stock_pb2.GetInventoryMapRequest(limit=-1), "limit"),
        (stock_pb2.GetInventoryMapRequest(skus=[f"S{n}" for n in range(1001)]), "skus"),
    ],
)
async def test_bad_map_requests_are_invalid_argument_naming_the_field(
    stock: stock_pb2_grpc.StockServiceStub, request_: stock_pb2.GetInventoryMapRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.GetInventoryMap(request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(refused.value) == [field]


async def test_orderhub_stock_prints_the_map(
    stock: stock_pb2_grpc.StockServiceStub,
    grpc_address: str,
    admin_token: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c = await catalogue(stock, unique)
    await stock.Reserve(
        stock_pb2.ReserveRequest(
            order_id=f"{unique}-o1",
            lines=[stock_pb2.ReserveLine(sku=c.tee, quantity=4, warehouse_id=c.gz)],
        )
    )
    where = [arg for w in c.warehouses for arg in ("--warehouse", w)]
    # The command is synchronous and the hub serves on this loop: run it in a thread.
    code = await asyncio.to_thread(
        main,
        [
            "stock",
            "--addr",
            grpc_address,
            "--token",
            admin_token,
            "--by",
            "province,category",
            *where,
        ],
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "province",
        "category",
        "on_hand",
        "reserved",
        "safety",
        "available",
        "SKUs",
        "warehouses",
        "out-of-stock",
    ]
    assert [line.split() for line in lines[2:5]] == [
        ["上海市", c.apparel, "3", "0", "5", "0", "1", "1", "1"],
        ["上海市", c.home, "4", "0", "0", "4", "1", "1", "0"],
        ["广东省", c.apparel, "10", "4", "1", "5", "1", "1", "0"],
    ]
    assert lines[5].split() == ["广东省", c.home, "6", "0", "0", "6", "1", "1", "0"]
    assert lines[7].split() == ["TOTAL", "23", "4", "6", "15", "2", "3", "0"]
    assert lines[8].startswith("as of ")

    code = await asyncio.to_thread(
        main,
        [
            "stock",
            "--addr",
            grpc_address,
            "--token",
            admin_token,
            "--sku",
            c.mug,
            "--by",
            "city",
            "--format",
            "json",
        ],
    )
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert [(r["city"], r["available"]) for r in document["rows"]] == [
        ("上海市", 4),
        ("深圳市", 6),
    ]
    assert document["total"]["on_hand"] == 10


async def test_orderhub_stock_reports_an_unreachable_hub(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = await asyncio.to_thread(main, ["stock", "--addr", f"127.0.0.1:{port}"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"orderhub stock: cannot reach the hub at 127.0.0.1:{port}")
