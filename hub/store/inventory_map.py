"""The operators' inventory map: stock and ATP summed by place, warehouse and category.

One SQL statement over ``stock_levels`` joined with ``warehouses`` and ``skus``. The shards'
group commit writes a level before it answers, so the table is current. Per level,
ATP = max(0, on hand - reserved - safety stock), the safety stock being the level's own or
else the SKU's; a group sums that, so a level below its safety stock adds 0, not less.

The grouped rows and the total come from a single statement (a UNION ALL), so they are
read from one snapshot and always agree with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    case,
    distinct,
    func,
    literal_column,
    select,
    union_all,
)

from hub.store import schema


class Dimension(StrEnum):
    """A key the map groups by."""

    PROVINCE = "province"
    CITY = "city"
    WAREHOUSE = "warehouse"
    CATEGORY = "category"
    SKU = "sku"


DEFAULT_GROUPING = (Dimension.PROVINCE, Dimension.CITY)
DEFAULT_LIMIT = 5000
MAX_LIMIT = 50_000

# Every dimension in its row field's order; a row always carries all five keys.
_KEY_FIELDS = {
    Dimension.PROVINCE: "province",
    Dimension.CITY: "city",
    Dimension.WAREHOUSE: "warehouse_id",
    Dimension.CATEGORY: "category",
    Dimension.SKU: "sku",
}


@dataclass(frozen=True, slots=True)
class MapFilters:
    """Which levels count; empty values mean no restriction."""

    province: str = ""
    city: str = ""
    category: str = ""
    warehouse_ids: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MapRow:
    """One group (or the total): its keys, empty when not grouped by them, and its sums."""

    province: str = ""
    city: str = ""
    warehouse_id: str = ""
    category: str = ""
    sku: str = ""
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0
    available: int = 0
    sku_count: int = 0
    warehouse_count: int = 0
    out_of_stock_skus: int = 0

    def key(self, dimension: Dimension) -> str:
        """The row's value of one grouping key."""
        value = getattr(self, _KEY_FIELDS[dimension])
        assert isinstance(value, str)
        return value


@dataclass(frozen=True, slots=True)
class InventoryMap:
    """The groups, ordered by their keys, and the total over every matched level."""

    group_by: tuple[Dimension, ...]
    rows: list[MapRow]
    total: MapRow
    truncated: bool = False


def grouping(dimensions: Sequence[Dimension]) -> tuple[Dimension, ...]:
    """The dimensions to group by: duplicates dropped, order kept, empty means the default."""
    unique = tuple(dict.fromkeys(dimensions))
    return unique or DEFAULT_GROUPING


def inventory_map(
    engine: Engine,
    group_by: Sequence[Dimension] = DEFAULT_GROUPING,
    filters: MapFilters | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
) -> InventoryMap:
    """Aggregate the stock levels matching ``filters`` by ``group_by``; at most ``limit`` rows."""
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    dims = grouping(group_by)
    f = filters or MapFilters()
    lv, wh, sk = schema.stock_levels, schema.warehouses, schema.skus

    expressions: dict[Dimension, ColumnElement[Any]] = {
        Dimension.PROVINCE: wh.c.province,
        Dimension.CITY: wh.c.city,
        Dimension.WAREHOUSE: lv.c.warehouse_id,
        Dimension.CATEGORY: sk.c.category,
        Dimension.SKU: lv.c.sku,
    }
    grouped_by = [expressions[d] for d in dims]
    safety = func.coalesce(lv.c.safety_stock, sk.c.safety_stock)
    free = lv.c.on_hand - lv.c.reserved - safety
    atp = case((free > 0, free), else_=0)  # CASE, not GREATEST: SQLite has no GREATEST

    levels_q = (
        select(
            *(expressions[d].label(f"key_{d.value}") for d in dims),
            lv.c.sku.label("level_sku"),
            lv.c.warehouse_id.label("level_warehouse"),
            lv.c.on_hand,
            lv.c.reserved,
            safety.label("safety"),
            atp.label("atp"),
            # A SKU's ATP across the group's warehouses, and across every matched warehouse:
            # a SKU is out of stock in a group when nothing of it is available there.
            func.sum(atp).over(partition_by=[*grouped_by, lv.c.sku]).label("sku_group_atp"),
            func.sum(atp).over(partition_by=lv.c.sku).label("sku_total_atp"),
        )
        .select_from(
            lv.join(wh, wh.c.warehouse_id == lv.c.warehouse_id).join(sk, sk.c.sku == lv.c.sku)
        )
        .where(*_conditions(f))
    )
    levels = levels_q.cte("levels")
    c = levels.c

    def sums(sku_atp: ColumnElement[Any]) -> list[ColumnElement[Any]]:
        return [
            func.coalesce(func.sum(c.on_hand), 0).label("on_hand"),
            func.coalesce(func.sum(c.reserved), 0).label("reserved"),
            func.coalesce(func.sum(c.safety), 0).label("safety_stock"),
            func.coalesce(func.sum(c.atp), 0).label("available"),
            func.count(distinct(c.level_sku)).label("sku_count"),
            func.count(distinct(c.level_warehouse)).label("warehouse_count"),
            func.count(distinct(case((sku_atp == 0, c.level_sku)))).label("out_of_stock_skus"),
        ]

    def keys(grouped: bool) -> list[ColumnElement[Any]]:
        return [
            c[f"key_{d.value}"].label(d.value)
            if grouped and d in dims
            else literal_column("''").label(d.value)
            for d in Dimension
        ]

    key_columns = [c[f"key_{d.value}"] for d in dims]
    rows_q = select(literal_column("0").label("is_total"), *keys(True), *sums(c.sku_group_atp))
    rows_q = rows_q.group_by(*key_columns)
    total_q = select(literal_column("1").label("is_total"), *keys(False), *sums(c.sku_total_atp))
    # The total first, then one group more than the limit (to tell that rows were cut).
    statement = (
        union_all(rows_q, total_q)
        .order_by(literal_column("is_total").desc(), *(literal_column(d.value) for d in dims))
        .limit(limit + 2)
    )
    with engine.connect() as conn:
        result = conn.execute(statement).all()

    total = _row(result[0])
    rows = [_row(r) for r in result[1:]]
    truncated = len(rows) > limit
    rows = sorted(rows[:limit], key=lambda r: tuple(r.key(d) for d in dims))
    return InventoryMap(group_by=dims, rows=rows, total=total, truncated=truncated)


def _conditions(f: MapFilters) -> list[ColumnElement[bool]]:
    lv, wh, sk = schema.stock_levels, schema.warehouses, schema.skus
    conditions: list[ColumnElement[bool]] = []
    if f.province:
        conditions.append(wh.c.province == f.province)
    if f.city:
        conditions.append(wh.c.city == f.city)
    if f.category:
        conditions.append(sk.c.category == f.category)
    if f.warehouse_ids:
        conditions.append(lv.c.warehouse_id.in_(f.warehouse_ids))
    if f.skus:
        conditions.append(lv.c.sku.in_(f.skus))
    return conditions


def _row(r: Any) -> MapRow:
    return MapRow(
        province=r.province,
        city=r.city,
        warehouse_id=r.warehouse,
        category=r.category,
        sku=r.sku,
        on_hand=int(r.on_hand),
        reserved=int(r.reserved),
        safety_stock=int(r.safety_stock),
        available=int(r.available),
        sku_count=int(r.sku_count),
        warehouse_count=int(r.warehouse_count),
        out_of_stock_skus=int(r.out_of_stock_skus),
    )
