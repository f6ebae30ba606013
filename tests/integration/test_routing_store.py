"""Routing's tables on SQLite and PostgreSQL: rule versions, parcels, load and backlog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert

from hub.store import schema
from hub.store.db import make_engine
from hub.store.routing import RoutedShipment, RoutingStore, RulesVersionConflict, write_routing

TODAY = "2026-11-25"
MIDNIGHT = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # 00:00 in Shanghai
UNSHIPPED = ["PAID", "ON_HOLD", "ALLOCATED"]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> Engine:
    return make_engine(new_database(request.param))


def order(engine: Engine, order_id: str, status: str, shipped_at: datetime | None = None) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(schema.orders).values(
                order_id=order_id,
                platform="douyin",
                shop_id="s",
                platform_order_id=order_id,
                status=status,
                queue="",
                tags="[]",
                review_reasons="[]",
                document="{}",
                ingested_at=now,
                changed_at=now,
                version=1,
                hold_key=order_id,
            )
        )
        if shipped_at is not None:
            conn.execute(
                insert(schema.order_events).values(
                    order_id=order_id,
                    version=2,
                    kind="shipped",
                    from_status="ALLOCATED",
                    to_status=status,
                    actor="wms",
                    reason="",
                    details="{}",
                    at=shipped_at,
                )
            )


def route(engine: Engine, order_id: str, warehouse_id: str, day: str) -> None:
    parcel = RoutedShipment(
        order_id, 1, warehouse_id, "zto", "广东", (("TEE", 1),), 48, 600, 0, day, MIDNIGHT
    )
    with engine.begin() as conn:
        write_routing(conn, order_id, [parcel])


def test_backlog_counts_what_was_not_handed_over_by_midnight(engine: Engine) -> None:
    store = RoutingStore(engine)
    order(engine, "waiting", "ALLOCATED")
    order(engine, "left-this-morning", "SHIPPED", shipped_at=MIDNIGHT + timedelta(hours=9))
    order(engine, "left-yesterday", "SHIPPED", shipped_at=MIDNIGHT - timedelta(hours=3))
    order(engine, "cancelled", "CANCELLED")
    order(engine, "today", "ALLOCATED")
    order(engine, "long-ago", "ALLOCATED")
    for order_id in ("waiting", "left-this-morning", "left-yesterday", "cancelled"):
        route(engine, order_id, "WH-SOUTH", "2026-11-24")
    route(engine, "today", "WH-SOUTH", TODAY)
    route(engine, "long-ago", "WH-SOUTH", "2026-10-01")

    backlog = store.carried_over(TODAY, "2026-11-11", MIDNIGHT, UNSHIPPED)

    assert backlog == {"WH-SOUTH": 2}  # waiting, left-this-morning
    assert store.load(TODAY) == {"WH-SOUTH": 1}


def test_rerouting_moves_the_days_count_between_warehouses(engine: Engine) -> None:
    store = RoutingStore(engine)
    order(engine, "o1", "ALLOCATED")
    route(engine, "o1", "WH-SOUTH", TODAY)
    route(engine, "o1", "WH-EAST", TODAY)
    assert store.load(TODAY) == {"WH-SOUTH": 0, "WH-EAST": 1}
    store.forget("o1")
    assert store.load(TODAY) == {"WH-SOUTH": 0, "WH-EAST": 0}
    assert store.routed("o1") == []


def test_rule_versions_are_checked_against_the_newest(engine: Engine) -> None:
    store = RoutingStore(engine)
    first = store.save_rules({"rules": []}, actor="ops:wang")
    second = store.save_rules({"rules": []}, actor="ops:li", expected_version=first.version)
    with pytest.raises(RulesVersionConflict):
        store.save_rules({"rules": []}, actor="ops:wang", expected_version=first.version)
    current = store.current_rules()
    assert current is not None and current.version == second.version == first.version + 1
    assert [r.version for r in store.rule_versions()] == [second.version, first.version]
