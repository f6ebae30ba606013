"""Demo master data and stock for `orderhub up --demo`: five regional warehouses."""

from __future__ import annotations

import asyncio

from hub.app import Hub
from hub.store.master_data import Carrier, PlatformSku, Sku, Warehouse

WAREHOUSES = [
    Warehouse("WH-EAST", "华东仓 East China", "上海市", "上海市", 8000, "青浦区"),
    Warehouse("WH-SOUTH", "华南仓 South China", "广东省", "广州市", 6000, "白云区"),
    Warehouse("WH-NORTH", "华北仓 North China", "北京市", "北京市", 6000, "大兴区"),
    Warehouse("WH-SOUTHWEST", "西南仓 Southwest", "四川省", "成都市", 4000, "双流区"),
    Warehouse("WH-CENTRAL", "华中仓 Central China", "湖北省", "武汉市", 4000, "东西湖区"),
]

SKUS = [
    Sku("TEE-01-BLK-L", "纯棉T恤 黑色 L", "apparel", 250, 5, low_stock_threshold=100),
    Sku("CAP-02-RED", "棒球帽 红色", "apparel", 120, 5),
    Sku("MUG-03-WHT", "陶瓷马克杯 白色", "home", 450, 10),
    Sku("PB-04-20K", "充电宝 20000mAh", "electronics", 420, 10, low_stock_threshold=50),
    Sku("RICE-05-5KG", "东北大米 5kg", "grocery", 5100, 20),
]

STOCK = {
    "WH-EAST": [300, 200, 150, 500, 800],
    "WH-SOUTH": [250, 100, 120, 400, 600],
    "WH-NORTH": [200, 150, 100, 300, 700],
    "WH-SOUTHWEST": [120, 80, 60, 150, 400],
    "WH-CENTRAL": [150, 90, 80, 200, 500],
}

CARRIERS = [
    Carrier("sf", "顺丰速运 SF Express", "express"),
    Carrier("jd", "京东快递 JD Logistics", "express"),
    Carrier("zto", "中通快递 ZTO", "standard"),
    Carrier("yto", "圆通速递 YTO", "standard"),
    Carrier("sto", "申通快递 STO", "standard"),
    Carrier("yunda", "韵达快递 Yunda", "standard"),
    Carrier("ems", "中国邮政 EMS", "postal"),
    Carrier("instant", "同城即时配送 Same-city courier", "same_day"),
]

MAPPINGS = [
    PlatformSku("taobao", "demo-tmall", "TEE-01-BLK-L", "TEE-01-BLK-L"),
    PlatformSku("taobao", "demo-tmall", "CAP-02-RED", "CAP-02-RED"),
    PlatformSku("shopify", "demo-store", "TEE-01-BLK-L", "TEE-01-BLK-L"),
]


async def load_demo(hub: Hub) -> None:
    """Load the demo warehouses, SKUs, carriers, platform mappings and stock (idempotent)."""
    md = hub.master_data
    for w in WAREHOUSES:
        await asyncio.to_thread(md.upsert_warehouse, w)
        await hub.inventory.register_warehouse(w.warehouse_id)
    for s in SKUS:
        await asyncio.to_thread(md.upsert_sku, s)
        await hub.inventory.register_sku(s.sku, s.safety_stock, s.low_stock_threshold)
    for c in CARRIERS:
        await asyncio.to_thread(md.upsert_carrier, c)
    for m in MAPPINGS:
        await asyncio.to_thread(md.map_platform_sku, m)
    for warehouse_id, counts in STOCK.items():
        for s, on_hand in zip(SKUS, counts, strict=True):
            await hub.inventory.set_stock(s.sku, warehouse_id, on_hand, reason="demo data")
