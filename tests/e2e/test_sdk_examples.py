"""The client SDK's examples (clients/python/examples) run as written against a hub."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from orderhub import OrderHubClient

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"orderhub_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run(main: Callable[..., None], *args: Any) -> None:
    await asyncio.to_thread(main, *args)  # the examples are blocking; the hub runs on this loop


async def test_stock_example(
    grpc_address: str, admin_token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(example("stock").main, grpc_address, admin_token)
    out = capsys.readouterr().out
    assert "on hand 10, available 8" in out
    assert "not enough EX-KETTLE-" in out
    assert out.rstrip().endswith("available now 5")


async def test_orders_example(
    grpc_address: str, admin_token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(example("orders").main, grpc_address, admin_token)
    out = capsys.readouterr().out
    assert "shopify/1001" in out and "duplicate=True" in out
    assert "on_hold" in out and "by tests-admin" in out
    assert "1 order(s)" in out


async def test_routing_example(
    grpc_address: str, admin_token: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse, sku = f"{unique}-WH", f"{unique}-TEE"
    with OrderHubClient(grpc_address, token=admin_token) as hub:
        await asyncio.to_thread(
            hub.upsert_warehouse, warehouse, "广州仓", "广东省", "广州市", daily_capacity=100
        )
        await asyncio.to_thread(hub.upsert_sku, sku, "T-shirt", weight_grams=300)
        await asyncio.to_thread(hub.set_stock, warehouse, sku, 20)
    await run(example("routing").main, grpc_address, admin_token, sku, warehouse)
    out = capsys.readouterr().out
    assert f"{warehouse} by " in out and " yuan" in out
    assert "rules v" in out
    assert f"{warehouse}/zto/广东: BREAKER_STATE_CLOSED" in out


async def test_wms_example(
    grpc_address: str, admin_token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(example("wms").main, grpc_address, admin_token)
    assert capsys.readouterr().out.startswith("applied ")


async def test_admin_example(
    grpc_address: str, admin_token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(example("admin").main, grpc_address, admin_token)
    out = capsys.readouterr().out
    assert "role cs_agent" in out
    assert "customer service may not count stock: role cs_agent may not call SetStock" in out
    assert "audit: /orderhub.v1.AdminService/CreateToken by tests-admin" in out
    assert out.rstrip().endswith("still active: False")


async def test_reconcile_example(
    grpc_address: str, admin_token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await run(example("reconcile").main, grpc_address, admin_token)
    out = capsys.readouterr().out
    assert "2 statement rows, balanced: False" in out
    assert "1002: DIFFERENCE_KIND_" in out and "1003: DIFFERENCE_KIND_" in out
    assert "1001:" not in out
