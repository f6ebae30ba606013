"""Master data: warehouses, SKUs and platform SKU mappings, the same on every path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select, tuple_

from hub.store import schema
from hub.store.db import upsert


@dataclass(frozen=True, slots=True)
class Warehouse:
    """A warehouse as stored."""

    warehouse_id: str
    name: str
    province: str
    city: str
    daily_capacity: int
    district: str = ""


@dataclass(frozen=True, slots=True)
class Sku:
    """A SKU as stored."""

    sku: str
    name: str
    category: str
    weight_grams: int
    safety_stock: int
    low_stock_threshold: int = 0
    #: One unit's packed size in millimetres; all 0 when unknown.
    length_mm: int = 0
    width_mm: int = 0
    height_mm: int = 0

    @property
    def volume_cm3(self) -> int:
        """One unit's volume in cubic centimetres, rounded up; 0 when the size is unknown."""
        return -(-self.length_mm * self.width_mm * self.height_mm // 1000)


@dataclass(frozen=True, slots=True)
class Carrier:
    """A carrier as stored."""

    carrier_id: str
    name: str
    service_level: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class PlatformSku:
    """A platform SKU code of one shop, mapped to an internal SKU."""

    platform: str
    shop_id: str
    platform_sku: str
    sku: str


class MasterData:
    """Reads and writes master data in the database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The database engine, for read-only reports such as the inventory map."""
        return self._engine

    def upsert_warehouse(self, w: Warehouse) -> Warehouse:
        """Create or update a warehouse."""
        row = {
            "warehouse_id": w.warehouse_id,
            "name": w.name,
            "province": w.province,
            "city": w.city,
            "district": w.district,
            "daily_capacity": w.daily_capacity,
            "updated_at": datetime.now(UTC),
        }
        self._upsert(schema.warehouses, row, ("warehouse_id",))
        return w

    def upsert_sku(self, s: Sku) -> Sku:
        """Create or update a SKU."""
        row = {
            "sku": s.sku,
            "name": s.name,
            "category": s.category,
            "weight_grams": s.weight_grams,
            "safety_stock": s.safety_stock,
            "low_stock_threshold": s.low_stock_threshold,
            "length_mm": s.length_mm,
            "width_mm": s.width_mm,
            "height_mm": s.height_mm,
            "updated_at": datetime.now(UTC),
        }
        self._upsert(schema.skus, row, ("sku",))
        return s

    def upsert_carrier(self, c: Carrier) -> Carrier:
        """Create or update a carrier."""
        row = {
            "carrier_id": c.carrier_id,
            "name": c.name,
            "service_level": c.service_level,
            "active": 1 if c.active else 0,
            "updated_at": datetime.now(UTC),
        }
        self._upsert(schema.carriers, row, ("carrier_id",))
        return c

    def carriers(self) -> list[Carrier]:
        """Every carrier, by id."""
        t = schema.carriers
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.carrier_id))
            return [Carrier(r.carrier_id, r.name, r.service_level, bool(r.active)) for r in rows]

    def map_platform_sku(self, m: PlatformSku) -> PlatformSku:
        """Map a platform SKU code to an internal SKU (replacing an older mapping)."""
        row = {
            "platform": m.platform,
            "shop_id": m.shop_id,
            "platform_sku": m.platform_sku,
            "sku": m.sku,
            "updated_at": datetime.now(UTC),
        }
        self._upsert(schema.platform_skus, row, ("platform", "shop_id", "platform_sku"))
        return m

    def warehouses(self) -> list[Warehouse]:
        """Every warehouse, by id."""
        t = schema.warehouses
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.warehouse_id))
            return [
                Warehouse(
                    r.warehouse_id, r.name, r.province, r.city, int(r.daily_capacity), r.district
                )
                for r in rows
            ]

    def sku(self, sku: str) -> Sku | None:
        """One SKU, or None."""
        t = schema.skus
        with self._engine.connect() as conn:
            r = conn.execute(select(t).where(t.c.sku == sku)).first()
        if r is None:
            return None
        return Sku(
            r.sku,
            r.name,
            r.category,
            int(r.weight_grams),
            int(r.safety_stock),
            int(r.low_stock_threshold),
            int(r.length_mm),
            int(r.width_mm),
            int(r.height_mm),
        )

    def resolve_platform_sku(self, platform: str, shop_id: str, platform_sku: str) -> str | None:
        """The internal SKU a platform SKU code maps to, or None."""
        return self.resolve_platform_skus(platform, shop_id, [platform_sku]).get(platform_sku)

    def resolve_platform_skus(
        self, platform: str, shop_id: str, platform_skus: Iterable[str]
    ) -> dict[str, str]:
        """The internal SKUs that a shop's platform SKU codes map to (unmapped codes absent)."""
        codes = sorted(set(platform_skus))
        if not codes:
            return {}
        t = schema.platform_skus
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.c.platform_sku, t.c.sku).where(
                    t.c.platform == platform,
                    t.c.shop_id == shop_id,
                    t.c.platform_sku.in_(codes),
                )
            )
            return {str(code): str(sku) for code, sku in rows}

    def resolve_many(
        self, requests: Sequence[tuple[str, str, Iterable[str]]]
    ) -> list[dict[str, str]]:
        """``resolve_platform_skus`` for many (platform, shop_id, codes) in one query."""
        wanted = {(p, shop, str(code)) for p, shop, codes in requests for code in codes}
        found: dict[tuple[str, str], dict[str, str]] = {}
        if wanted:
            t = schema.platform_skus
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(t.c.platform, t.c.shop_id, t.c.platform_sku, t.c.sku).where(
                        tuple_(t.c.platform, t.c.shop_id, t.c.platform_sku).in_(sorted(wanted))
                    )
                )
                for r in rows:
                    found.setdefault((r.platform, r.shop_id), {})[str(r.platform_sku)] = str(r.sku)
        return [dict(found.get((p, shop), {})) for p, shop, _ in requests]

    def _upsert(self, table: Table, row: dict[str, Any], keys: tuple[str, ...]) -> None:
        with self._engine.begin() as conn:
            upsert(conn, table, [row], keys)
