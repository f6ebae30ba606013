"""The inventory map query on SQLite and PostgreSQL: sums, safety stock, the ATP floor at 0."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert

from hub.store import schema
from hub.store.db import make_engine
from hub.store.inventory_map import (
    DEFAULT_GROUPING,
    Dimension,
    MapFilters,
    MapRow,
    grouping,
    inventory_map,
)
from tests.conftest import BACKENDS

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)

WAREHOUSES = [
    ("GZ1", "广东省", "广州市"),
    ("GZ2", "广东省", "广州市"),
    ("SZ1", "广东省", "深圳市"),
    ("SH1", "上海市", "上海市"),
]
SKUS = [("TEE", "apparel", 2), ("CAP", "apparel", 0), ("MUG", "home", 5)]
# (sku, warehouse, on hand, reserved, per-warehouse safety stock or None) → ATP
LEVELS = [
    ("TEE", "GZ1", 10, 3, None),  # 10 - 3 - 2 = 5
    ("TEE", "GZ2", 4, 0, 0),  # override 0: 4
    ("TEE", "SZ1", 1, 0, None),  # 1 - 2 < 0: 0
    ("CAP", "GZ1", 0, 0, None),  # 0
    ("CAP", "SH1", 7, 2, None),  # 5
    ("MUG", "SH1", 8, 1, None),  # 8 - 1 - 5 = 2
    ("MUG", "SZ1", 6, 0, 10),  # override 10: 6 - 10 < 0: 0
]


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> Iterator[Engine]:
    """A fresh database per backend with the master data and levels above."""
    eng = make_engine(new_database(request.param))
    with eng.begin() as conn:
        conn.execute(
            insert(schema.warehouses),
            [
                {
                    "warehouse_id": w,
                    "name": w,
                    "province": p,
                    "city": c,
                    "district": "",
                    "daily_capacity": 100,
                    "updated_at": NOW,
                }
                for w, p, c in WAREHOUSES
            ],
        )
        conn.execute(
            insert(schema.skus),
            [
                {
                    "sku": s,
                    "name": s,
                    "category": cat,
                    "weight_grams": 100,
                    "safety_stock": safety,
                    "updated_at": NOW,
                }
                for s, cat, safety in SKUS
            ],
        )
        conn.execute(
            insert(schema.stock_levels),
            [
                {"sku": s, "warehouse_id": w, "on_hand": oh, "reserved": r, "safety_stock": ss}
                for s, w, oh, r, ss in LEVELS
            ],
        )
    yield eng
    eng.dispose()


def numbers(row: MapRow) -> tuple[int, ...]:
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


def test_default_grouping_is_province_and_city(engine: Engine) -> None:
    found = inventory_map(engine)
    assert found.group_by == DEFAULT_GROUPING
    assert [(r.province, r.city, numbers(r)) for r in found.rows] == [
        ("上海市", "上海市", (15, 3, 5, 7, 2, 1, 0)),
        # CAP has nothing in Guangzhou: out of stock there.
        ("广东省", "广州市", (14, 3, 2, 9, 2, 2, 1)),
        # Both levels are below their safety stock: each adds 0, not a negative number.
        ("广东省", "深圳市", (7, 0, 12, 0, 2, 1, 2)),
    ]
    assert all(r.warehouse_id == r.category == r.sku == "" for r in found.rows)
    # Every SKU has something somewhere: none is out of stock overall.
    assert numbers(found.total) == (36, 6, 19, 16, 3, 4, 0)
    assert found.total.province == found.total.city == ""
    assert not found.truncated


def test_province_counts_a_sku_out_of_stock_only_when_no_warehouse_has_it(engine: Engine) -> None:
    found = inventory_map(engine, [Dimension.PROVINCE])
    by_province = {r.province: numbers(r) for r in found.rows}
    # Guangdong: TEE has 9, CAP 0 and MUG 0 across its three warehouses.
    assert by_province == {"上海市": (15, 3, 5, 7, 2, 1, 0), "广东省": (21, 3, 14, 9, 3, 3, 2)}


def test_category_and_sku_groupings(engine: Engine) -> None:
    by_category = inventory_map(engine, [Dimension.CATEGORY])
    assert [(r.category, numbers(r)) for r in by_category.rows] == [
        ("apparel", (22, 5, 4, 14, 2, 4, 0)),
        ("home", (14, 1, 15, 2, 1, 2, 0)),
    ]
    by_sku = inventory_map(engine, [Dimension.CATEGORY, Dimension.SKU])
    assert [(r.category, r.sku, r.available, r.warehouse_count) for r in by_sku.rows] == [
        ("apparel", "CAP", 5, 2),
        ("apparel", "TEE", 9, 3),
        ("home", "MUG", 2, 2),
    ]
    assert numbers(by_sku.total) == numbers(by_category.total) == (36, 6, 19, 16, 3, 4, 0)


def test_warehouse_by_sku_shows_each_level(engine: Engine) -> None:
    found = inventory_map(engine, [Dimension.WAREHOUSE, Dimension.SKU])
    assert [(r.warehouse_id, r.sku, r.available, r.safety_stock) for r in found.rows] == [
        ("GZ1", "CAP", 0, 0),
        ("GZ1", "TEE", 5, 2),
        ("GZ2", "TEE", 4, 0),
        ("SH1", "CAP", 5, 0),
        ("SH1", "MUG", 2, 5),
        ("SZ1", "MUG", 0, 10),
        ("SZ1", "TEE", 0, 2),
    ]
    assert [r.out_of_stock_skus for r in found.rows] == [1, 0, 0, 0, 0, 1, 1]


def test_filters_narrow_the_levels_and_the_total(engine: Engine) -> None:
    found = inventory_map(
        engine, DEFAULT_GROUPING, MapFilters(province="广东省", category="apparel")
    )
    assert [(r.city, numbers(r)) for r in found.rows] == [
        ("广州市", (14, 3, 2, 9, 2, 2, 1)),
        ("深圳市", (1, 0, 2, 0, 1, 1, 1)),
    ]
    # CAP's only level in scope has 0 available: out of stock in the total too.
    assert numbers(found.total) == (15, 3, 4, 9, 2, 3, 1)

    picked = inventory_map(
        engine, [Dimension.SKU], MapFilters(warehouse_ids=("GZ2", "SH1"), skus=("TEE", "MUG"))
    )
    assert [(r.sku, r.on_hand, r.available) for r in picked.rows] == [
        ("MUG", 8, 2),
        ("TEE", 4, 4),
    ]
    city = inventory_map(engine, [Dimension.WAREHOUSE], MapFilters(city="深圳市"))
    assert [(r.warehouse_id, r.available) for r in city.rows] == [("SZ1", 0)]


def test_nothing_matched_is_no_rows_and_a_zero_total(engine: Engine) -> None:
    found = inventory_map(engine, filters=MapFilters(province="西藏自治区"))
    assert found.rows == []
    assert numbers(found.total) == (0, 0, 0, 0, 0, 0, 0)


def test_limit_cuts_rows_but_not_the_total(engine: Engine) -> None:
    found = inventory_map(engine, [Dimension.WAREHOUSE, Dimension.SKU], limit=3)
    assert found.truncated
    assert len(found.rows) == 3
    assert numbers(found.total) == (36, 6, 19, 16, 3, 4, 0)
    exact = inventory_map(engine, [Dimension.WAREHOUSE, Dimension.SKU], limit=7)
    assert not exact.truncated and len(exact.rows) == 7


def test_grouping_drops_repeats_and_defaults_when_empty() -> None:
    assert grouping([]) == DEFAULT_GROUPING
    assert grouping([Dimension.SKU, Dimension.CITY, Dimension.SKU]) == (
        Dimension.SKU,
        Dimension.CITY,
    )
