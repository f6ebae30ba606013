"""ReconciliationService end to end: orders in through gRPC, a statement up, differences out."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hub.cli import main as orderhub
from orderhub import InvalidArgument, OrderHubClient
from orderhub.client import authorized_aio_channel
from orderhub.v1 import order_pb2, order_pb2_grpc, reconcile_pb2, reconcile_pb2_grpc

SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "platforms"
    / "douyin_order_detail_sample.json"
)
# May 2024 in Beijing time, as a Chinese shop's finance team means it.
MAY_START = datetime(2024, 4, 30, 16, tzinfo=UTC)
MAY_END = datetime(2024, 5, 31, 16, tzinfo=UTC)
HEADER = "主订单编号,实付金额(元),退款金额(元),售后类型,订单状态,支付时间\n"


def douyin_order(order_id: str, pay_fen: int) -> dict[str, Any]:
    """The Douyin sample order as a one-line order of ``pay_fen``, paid on 2024-05-18."""
    payload: dict[str, Any] = copy.deepcopy(json.loads(SAMPLE.read_text()))
    detail = payload["data"]["shop_order_detail"]
    detail.update(
        order_id=order_id,
        order_amount=pay_fen,
        pay_amount=pay_fen,
        post_amount=0,
        promotion_amount=0,
        promotion_shop_amount=0,
    )
    line = detail["sku_order_list"][0]
    line.update(
        order_id=order_id,
        parent_order_id=order_id,
        item_num=1,
        origin_amount=pay_fen,
        sum_amount=pay_fen,
        order_amount=pay_fen,
        promotion_amount=0,
        pay_amount=pay_fen,
    )
    detail["sku_order_list"] = [line]
    return payload


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def statement_row(order_id: str, pay_fen: int, refund_fen: int = 0) -> str:
    kind = "仅退款" if refund_fen else ""
    refund = yuan(refund_fen) if refund_fen else ""
    return f"{order_id},{yuan(pay_fen)},{refund},{kind},备货中,2024-05-18 10:41:30\n"


def request(shop: str, statement: bytes) -> reconcile_pb2.ReconcileRequest:
    req = reconcile_pb2.ReconcileRequest(
        platform="douyin",
        shop_id=shop,
        statement=statement,
        statement_format=reconcile_pb2.STATEMENT_FORMAT_CSV,
    )
    req.period_start.FromDatetime(MAY_START)
    req.period_end.FromDatetime(MAY_END)
    return req


@pytest.fixture
async def channel(grpc_address: str, admin_token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_aio_channel(grpc_address, admin_token) as ch:
        yield ch


@pytest.fixture
def reconciliation(channel: grpc.aio.Channel) -> reconcile_pb2_grpc.ReconciliationServiceAsyncStub:
    return reconcile_pb2_grpc.ReconciliationServiceStub(channel)


async def ingest(channel: grpc.aio.Channel, shop: str, orders: dict[str, int]) -> dict[str, str]:
    """Ingest one Douyin order per (platform order id, paid fen); their hub order ids."""
    stub = order_pb2_grpc.OrderServiceStub(channel)
    answers = await asyncio.gather(
        *(
            stub.IngestPlatformOrder(
                order_pb2.IngestPlatformOrderRequest(
                    platform="douyin",
                    shop_id=shop,
                    payload=json.dumps(douyin_order(pid, fen), ensure_ascii=False),
                )
            )
            for pid, fen in orders.items()
        )
    )
    return {a.order.platform_order_id: a.order.order_id for a in answers}


async def test_37_refund_only_orders_the_hub_missed_are_found_and_explain_the_gap(
    channel: grpc.aio.Channel,
    reconciliation: reconcile_pb2_grpc.ReconciliationServiceAsyncStub,
    unique: str,
) -> None:
    shop = f"{unique}-douyin"
    orders = {f"69{unique_digits(unique)}{n:06d}": 3000 + 100 * n for n in range(40)}
    order_ids = await ingest(channel, shop, orders)
    refunded = {pid: 990 + n for n, pid in enumerate(list(orders)[:37])}
    never_ingested = f"69{unique_digits(unique)}999999"
    rows = [statement_row(pid, fen, refunded.get(pid, 0)) for pid, fen in orders.items()]
    rows.append(statement_row(never_ingested, 4500))
    statement = (HEADER + "".join(rows)).encode("gb18030")  # as Chinese exports often are

    answer = await reconciliation.Reconcile(request(shop, statement))

    assert not answer.balanced
    assert answer.statement_rows == 41
    assert {reconcile_pb2.DifferenceKind.Name(c.kind): c.count for c in answer.counts} == {
        "DIFFERENCE_KIND_MISSING_IN_HUB": 1,
        "DIFFERENCE_KIND_REFUND_NOT_REFLECTED": 37,
    }
    refunds = [
        d
        for d in answer.differences
        if d.kind == reconcile_pb2.DIFFERENCE_KIND_REFUND_NOT_REFLECTED
    ]
    assert {d.platform_order_id for d in refunds} == set(refunded)
    assert all(d.order_id == order_ids[d.platform_order_id] for d in refunds)
    assert all(
        (d.platform_refunded_fen, d.hub_refunded_fen) == (refunded[d.platform_order_id], 0)
        for d in refunds
    )
    (missing,) = [
        d for d in answer.differences if d.kind == reconcile_pb2.DIFFERENCE_KIND_MISSING_IN_HUB
    ]
    assert (missing.platform_order_id, missing.order_id, missing.platform_fen) == (
        never_ingested,
        "",
        4500,
    )
    (platform,) = answer.platform_totals
    (hub,) = answer.hub_totals
    assert (platform.currency, platform.orders, hub.orders) == ("CNY", 41, 40)
    assert platform.refunded_fen - hub.refunded_fen == sum(refunded.values())
    assert platform.net_fen - hub.net_fen == 4500 - sum(refunded.values())
    explained = sum(
        (d.platform_paid_fen - d.platform_refunded_fen) - (d.hub_paid_fen - d.hub_refunded_fen)
        for d in answer.differences
    )
    assert explained == platform.net_fen - hub.net_fen


def unique_digits(unique: str) -> str:
    """The unique test prefix as 10 digits, so platform order ids look like Douyin's."""
    return f"{int(unique, 16) % 10**10:010d}"


async def test_bad_arguments_are_refused_naming_the_field(
    reconciliation: reconcile_pb2_grpc.ReconciliationServiceAsyncStub, unique: str
) -> None:
    shop = f"{unique}-douyin"
    bad_row = (HEADER + statement_row("1", 100) + "2,ten,,,备货中,\n").encode()
    cases = {
        "statement": request(shop, bad_row),
        "shop_id": request("", b"x"),
        "period_end": request(shop, b"x"),
    }
    cases["period_end"].period_end.FromDatetime(MAY_START)
    cases["columns"] = request(shop, bad_row)
    cases["columns"].columns["amount"] = "实付金额(元)"
    for field, req in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reconciliation.Reconcile(req)
        err = caught.value
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        status = rpc_status.from_call(cast(grpc.Call, err))
        assert status is not None
        violation = error_details_pb2.BadRequest()
        status.details[0].Unpack(violation)
        assert violation.field_violations[0].field == field
    assert "row 3, column '实付金额(元)'" in (await _details(reconciliation, cases["statement"]))


async def _details(
    stub: reconcile_pb2_grpc.ReconciliationServiceAsyncStub, req: reconcile_pb2.ReconcileRequest
) -> str:
    try:
        await stub.Reconcile(req)
    except grpc.aio.AioRpcError as err:
        return err.details() or ""
    raise AssertionError("the call succeeded")


async def test_the_cli_and_the_sdk_report_the_same_differences(
    channel: grpc.aio.Channel,
    grpc_address: str,
    admin_token: str,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shop = f"{unique}-douyin"
    base = unique_digits(unique)
    order_ids = await ingest(channel, shop, {f"69{base}000001": 5000, f"69{base}000002": 2500})
    statement = tmp_path / "抖店订单.csv"
    statement.write_bytes(
        (
            HEADER
            + statement_row(f"69{base}000001", 5000, 1990)
            + statement_row(f"69{base}000002", 2500)
        ).encode("utf-8-sig")
    )
    argv = [
        "reconcile",
        "--addr",
        grpc_address,
        "--token",
        admin_token,
        "--platform",
        "douyin",
        "--shop",
        shop,
    ]
    argv += ["--from", "2024-05-01", "--to", "2024-05-31", "--statement", str(statement)]

    code = await asyncio.to_thread(orderhub, [*argv, "--json"])

    assert code == 1  # differences found, as diff(1) says
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"REFUND_NOT_REFLECTED": 1}
    (difference,) = report["differences"]
    assert difference["order_id"] == order_ids[f"69{base}000001"]
    assert (difference["platform_fen"], difference["hub_fen"]) == (5000 - 1990, 5000)

    assert await asyncio.to_thread(orderhub, argv) == 1
    table = capsys.readouterr().out
    assert "REFUND_NOT_REFLECTED" in table and "30.10" in table and "-19.90" in table

    def sdk() -> reconcile_pb2.ReconcileResponse:
        with OrderHubClient(grpc_address, token=admin_token) as client:
            return client.reconcile("douyin", shop, MAY_START, MAY_END, statement)

    answer = await asyncio.to_thread(sdk)
    assert [d.platform_order_id for d in answer.differences] == [f"69{base}000001"]

    def sdk_bad() -> None:
        with OrderHubClient(grpc_address, token=admin_token) as client:
            client.reconcile("douyin", shop, MAY_START, MAY_END, b"order id,paid\nA,x\n")

    with pytest.raises(InvalidArgument) as refused:
        await asyncio.to_thread(sdk_bad)
    assert refused.value.field == "statement" and "row 2" in refused.value.message


async def test_pulling_needs_the_shops_credentials(
    grpc_address: str,
    unique: str,
    capsys: pytest.CaptureFixture[str],
    admin_token: str,
) -> None:
    argv = [
        "reconcile",
        "--addr",
        grpc_address,
        "--token",
        admin_token,
        "--platform",
        "douyin",
        "--shop",
        unique,
    ]
    argv += ["--from", "2024-05-01", "--to", "2024-05-31", "--pull"]
    assert await asyncio.to_thread(orderhub, argv) == 2
    assert "no API credentials" in capsys.readouterr().err
