"""Platform pushes through the running hub: a signed webhook becomes an order over gRPC."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hub.app import Hub
from hub.cli import main as orderhub
from orderhub.client import authorized_aio_channel
from orderhub.v1 import order_pb2, order_pb2_grpc
from tests.conftest import E2E_SHOPIFY_SHOP, E2E_WEBHOOK_SECRET

SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "platforms"
    / "shopify_orders_create_sample.json"
)


@pytest.fixture
async def orders(
    grpc_address: str, admin_token: str
) -> AsyncIterator[order_pb2_grpc.OrderServiceStub]:
    async with authorized_aio_channel(grpc_address, admin_token) as ch:
        yield order_pb2_grpc.OrderServiceStub(ch)


def signed(body: bytes, secret: str = E2E_WEBHOOK_SECRET) -> dict[str, str]:
    # Computed here from Shopify's documented rule, independently of the hub's code.
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": "orders/create",
        "Content-Type": "application/json",
    }


async def test_a_signed_shopify_push_is_an_order_and_a_forged_one_is_refused(
    hub: Hub, orders: order_pb2_grpc.OrderServiceStub, hub_server: object, unique: str
) -> None:
    assert hub.http_port
    order = json.loads(SAMPLE.read_text())
    order = order.get("order", order)
    order["id"] = int(f"9{int(unique, 16) % 10**15:015d}")
    body = json.dumps(order).encode()
    url = f"http://127.0.0.1:{hub.http_port}/webhooks/shopify/{E2E_SHOPIFY_SHOP}"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers=signed(body, "wrong")) as forged:
            assert forged.status == 401
        listed = await orders.ListOrders(
            order_pb2.ListOrdersRequest(platform="shopify", shop_id=E2E_SHOPIFY_SHOP)
        )
        assert str(order["id"]) not in {o.platform_order_id for o in listed.orders}

        async with http.post(url, data=body, headers=signed(body)) as taken:
            assert taken.status == 200
            answer = await taken.json()
        async with http.post(url, data=body, headers=signed(body)) as again:
            assert (await again.json())["duplicate"] is True
    got = await orders.GetOrder(order_pb2.GetOrderRequest(order_id=answer["order_id"]))
    assert got.order.platform_order_id == str(order["id"])
    assert got.order.shop_id == E2E_SHOPIFY_SHOP


async def test_the_hub_lists_its_shops_and_their_pulling(
    orders: order_pb2_grpc.OrderServiceStub,
    grpc_address: str,
    capsys: pytest.CaptureFixture[str],
    admin_token: str,
) -> None:
    listed = await orders.ListShops(order_pb2.ListShopsRequest())
    (shop,) = [s for s in listed.shops if s.shop_id == E2E_SHOPIFY_SHOP]
    assert (shop.platform, shop.polled, shop.poll_state) == ("shopify", False, "not_polled")
    assert shop.webhooks_verifiable and not shop.api_credentials
    assert (
        await asyncio.to_thread(orderhub, ["shops", "--addr", grpc_address, "--token", admin_token])
        == 0
    )
    table = capsys.readouterr().out
    assert E2E_SHOPIFY_SHOP in table and "not_polled" in table
