"""StockService: master data, a stock count, a reservation held, committed and released.

Run against a hub: ``python stock.py`` (ORDERHUB_ADDR, default 127.0.0.1:50051; the token from
ORDERHUB_TOKEN or the admin token ``orderhub up`` keeps in .orderhub/admin.token).
"""

from __future__ import annotations

import os
import uuid

from orderhub import InsufficientStock, Line, OrderHubClient, read_token


def main(address: str, token: str) -> None:
    run = uuid.uuid4().hex[:6]
    warehouse, sku = f"EX-HZ-{run}", f"EX-KETTLE-{run}"
    with OrderHubClient(address, token=token) as hub:
        hub.wait_until_serving(timeout=30)
        hub.upsert_warehouse(warehouse, "杭州仓", "浙江省", "杭州市", daily_capacity=500)
        hub.upsert_sku(sku, "电水壶", category="home", weight_grams=1500, safety_stock=2)
        level = hub.set_stock(warehouse, sku, 10, reason="stock take")
        print(f"on hand {level.on_hand}, available {level.available}")  # 10, 8

        held = hub.reserve(f"ex-order-{run}-1", [Line(sku, 3)])
        print(f"held {held.reservation_id} from {held.lines[0].warehouse_id}")
        hub.commit(held.order_id)  # the parcel left: on hand and reserved drop by 3

        second = hub.reserve(f"ex-order-{run}-2", [Line(sku, 2)], ttl_seconds=600)
        hub.release(second.order_id)  # the buyer cancelled: the units are free again

        try:
            hub.reserve(f"ex-order-{run}-3", [Line(sku, 50)])
        except InsufficientStock as refused:
            print(f"not enough {refused.sku}")
        print(f"available now {hub.get_availability(sku).total_available}")  # 5


if __name__ == "__main__":
    main(os.environ.get("ORDERHUB_ADDR", "127.0.0.1:50051"), read_token() or "")
