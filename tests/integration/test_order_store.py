"""Order storage on SQLite and PostgreSQL: one row per platform order, updated forward."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from hub.domain.intake import Placement
from hub.domain.lifecycle import Change
from hub.domain.orders import AfterSaleType, OrderLine, OrderStatus, PlatformOrder, Recipient
from hub.store import schema
from hub.store.db import make_engine
from hub.store.orders import OrderStore, from_json, to_json
from tests.conftest import BACKENDS

AT = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)


def order(status: OrderStatus = OrderStatus.PAID, at: datetime = AT) -> PlatformOrder:
    return PlatformOrder(
        platform="douyin",
        shop_id="dy-1",
        platform_order_id="6920000000000000001",
        platform_status="2",
        status=status,
        after_sale_type=AfterSaleType.NONE,
        buyer_note="加急",
        seller_note="",
        recipient=Recipient(name="##ENC##", phone="$$ENC$$", pii_protected=True),
        lines=(OrderLine("1", "TEE-01", "T恤", 2, 5990, 11980, sku="TEE-01"),),
        shipping_fee_fen=0,
        total_paid_fen=11980,
        currency="CNY",
        created_at=at,
        paid_at=at,
        updated_at=at,
    )


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> OrderStore:
    return OrderStore(make_engine(new_database(request.param)))


def test_the_document_round_trips() -> None:
    o = replace(order(), after_sale_type=AfterSaleType.REFUND_ONLY)
    assert from_json(to_json(o)) == o


def test_new_repeat_newer_and_backwards(store: OrderStore) -> None:
    placed = Placement("priority", ())
    first = store.save(order(), ["urgent"], placed)
    assert not first.duplicate and first.stored.version == 1
    assert first.stored.tags == ("urgent",) and first.stored.queue == "priority"
    repeat = store.save(order(), ["urgent"], placed)
    assert repeat.duplicate and repeat.stored.version == 1
    shipped = store.save(order(OrderStatus.SHIPPED, AT + timedelta(hours=1)), [], placed)
    assert shipped.stored.order.status is OrderStatus.SHIPPED and shipped.stored.version == 2
    late = store.save(order(OrderStatus.PAID, AT + timedelta(hours=2)), [], placed)
    assert late.stored.order.status is OrderStatus.SHIPPED
    assert store.get(first.stored.order_id) == late.stored


def test_two_first_copies_at_once_make_one_order(store: OrderStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        saved = list(pool.map(lambda _: store.save(order(), [], Placement("", ())), range(8)))
    assert len({s.stored.order_id for s in saved}) == 1
    assert sum(not s.duplicate for s in saved) == 1
    with store._engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.orders)).scalar() == 1


def test_a_new_order_is_stored_once_with_its_events(store: OrderStore) -> None:
    placed = Placement("priority", ())
    hold = (Change("stock_held", "until later"), {"hold_key": "ord_a", "lines": []})
    first = store.insert_new("ord_a", order(), ["urgent"], placed, hold)
    assert first is not None and store.get("ord_a") == first
    assert [e.kind for e in store.history("ord_a")] == ["received", "queued", "stock_held"]
    # Another copy racing in under another id finds it there and writes nothing.
    assert store.insert_new("ord_b", order(), ["urgent"], placed) is None
    assert store.get("ord_b") is None and store.history("ord_b") == []
