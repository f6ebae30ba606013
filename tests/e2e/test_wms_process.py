"""kill -9 of a running hub in the middle of a WMS event stream, then a restart.

Nothing acknowledged is lost, nothing is applied twice, and each SKU's events are applied
in the order they were published (counts sit between deltas, so order shows).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, create_engine, func, select

from hub.embedded import EmbeddedNats
from hub.store import schema
from orderhub.v1 import stock_pb2, stock_pb2_grpc, wms_pb2
from tests.e2e.test_process import HubProcess, hub_process  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

SKUS = [f"SKU-{n:02d}" for n in range(20)]
WH = "WH-K9"


def plan(count: int, seed: int = 7) -> tuple[list[bytes], dict[str, int], int]:
    """Events to publish (with repeats), the on-hand each SKU must end at, distinct ids."""
    rng = random.Random(seed)
    on_hand = dict.fromkeys(SKUS, 100)
    published: list[bytes] = []
    distinct: list[bytes] = []
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    for n in range(count):
        sku = rng.choice(SKUS)
        roll = rng.random()
        if roll < 0.05:
            kind, qty = wms_pb2.WMS_EVENT_TYPE_COUNT, rng.randint(50, 150)
            on_hand[sku] = qty
        elif roll < 0.55:
            kind, qty = wms_pb2.WMS_EVENT_TYPE_INBOUND, rng.randint(1, 5)
            on_hand[sku] += qty
        else:
            kind, qty = wms_pb2.WMS_EVENT_TYPE_OUTBOUND, rng.randint(1, 5)
            on_hand[sku] = max(0, on_hand[sku] - qty)
        data = wms_pb2.WmsEvent(
            event_id=f"k9-{n}", warehouse_id=WH, sku=sku, type=kind, quantity=qty, occurred_at=ts
        ).SerializeToString()
        distinct.append(data)
        published.append(data)
        if rng.random() < 0.03:  # a WMS that republishes (no Nats-Msg-Id)
            published.append(data)
    return published, on_hand, len(distinct)


async def publish_all(url: str, events: list[bytes]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for data in events:
        await js.publish(f"wms.events.{WH}", data)
    await nc.close()


def ledgered(engine: Engine) -> int:
    t = schema.stock_ledger
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(t.c.event_id.is_not(None))).scalar() or 0
        )


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll another process's progress (there is no event to await across processes)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_kill_9_mid_stream_then_restart_applies_every_event_exactly_once(
    hub_process: Callable[[dict[str, str]], HubProcess],  # noqa: F811
    new_database: Callable[[str], str],
    tmp_path: Path,
) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    url = new_database("postgresql")
    engine = create_engine(url)
    try:
        hub = hub_process(
            {
                "ORDERHUB_DATABASE_URL": url,
                "ORDERHUB_NATS_URL": server.url,
                "ORDERHUB_RAY_ADDRESS": "",
                "ORDERHUB_WMS_BATCH": "50",
                "ORDERHUB_WMS_ACK_WAIT_S": "2",
            }
        )
        hub.start()
        with hub.channel() as channel:
            stock = stock_pb2_grpc.StockServiceStub(channel)
            stock.UpsertWarehouse(
                stock_pb2.UpsertWarehouseRequest(
                    warehouse_id=WH, name="K9", province="浙江省", city="杭州市", daily_capacity=9
                )
            )
            for sku in SKUS:
                stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku=sku, name=sku, weight_grams=100))
                stock.SetStock(stock_pb2.SetStockRequest(warehouse_id=WH, sku=sku, on_hand=100))

        events, expected, distinct = plan(3000)
        half = len(events) // 2
        asyncio.run(publish_all(server.url, events[:half]))
        wait_for(lambda: ledgered(engine) >= 300, 60, "the hub to apply some events")
        assert hub.signal(signal.SIGKILL) == -signal.SIGKILL
        applied_at_kill = ledgered(engine)
        assert applied_at_kill < distinct  # it really died mid-stream
        asyncio.run(publish_all(server.url, events[half:]))  # the WMS goes on meanwhile

        hub.start()
        wait_for(lambda: ledgered(engine) >= distinct, 120, "every event to be applied")
        with engine.connect() as conn:
            levels = dict(
                conn.execute(
                    select(schema.stock_levels.c.sku, schema.stock_levels.c.on_hand).where(
                        schema.stock_levels.c.warehouse_id == WH
                    )
                ).all()
            )
            per_sku_ledger = dict(
                conn.execute(
                    select(schema.stock_ledger.c.sku, func.sum(schema.stock_ledger.c.on_hand_delta))
                    .where(schema.stock_ledger.c.warehouse_id == WH)
                    .group_by(schema.stock_ledger.c.sku)
                ).all()
            )
        assert ledgered(engine) == distinct  # nothing twice
        assert levels == expected  # nothing lost, and in order per SKU
        assert {sku: int(v) for sku, v in per_sku_ledger.items()} == expected
        with hub.channel() as channel:
            stock = stock_pb2_grpc.StockServiceStub(channel)
            answer = stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku=SKUS[0]))
            assert answer.levels[0].on_hand == expected[SKUS[0]]
        hub.signal(signal.SIGTERM)
    finally:
        engine.dispose()
        server.stop()
