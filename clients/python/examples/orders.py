"""OrderService: a platform order taken in, read back, held and resumed, with its history.

Run against a hub: ``python orders.py`` (see stock.py for the address and token).
"""

from __future__ import annotations

import json
import os
import uuid

from orderhub import OrderHubClient, read_token


def shopify_order(order_number: int) -> str:
    """A small Shopify ``orders/create`` body, as a webhook or an import would send it."""
    return json.dumps(
        {
            "id": order_number,
            "name": f"#{order_number}",
            "created_at": "2026-11-24T10:00:00+08:00",
            "processed_at": "2026-11-24T10:00:05+08:00",
            "currency": "CNY",
            "financial_status": "paid",
            "total_price": "59.00",
            "note": "请工作日送达",
            "shipping_lines": [{"price": "0.00"}],
            "shipping_address": {
                "name": "李雷",
                "phone": "13912345678",
                "address1": "文一西路 100 号",
                "city": "杭州市",
                "province": "浙江省",
                "country_code": "CN",
                "zip": "310012",
            },
            "line_items": [
                {"id": 1, "sku": "EX-MUG", "title": "Mug", "quantity": 1, "price": "59.00"}
            ],
        },
        ensure_ascii=False,
    )


def main(address: str, token: str) -> None:
    shop = f"ex-shop-{uuid.uuid4().hex[:6]}"
    with OrderHubClient(address, token=token) as hub:
        taken = hub.ingest_order("shopify", shop, shopify_order(1001))
        order = taken.order
        print(f"{order.order_id}: {order.platform}/{order.platform_order_id}, queue {order.queue}")
        again = hub.ingest_order("shopify", shop, shopify_order(1001))
        print(f"sent twice, stored once: duplicate={again.duplicate}")

        hub.hold_order(order.order_id, reason="buyer asked to wait")
        hub.resume_order(order.order_id, reason="buyer confirmed")
        for event in hub.order_events(order.order_id):
            print(f"  {event.kind:<12} by {event.actor}")
        page = hub.list_orders(platform="shopify", shop_id=shop)
        print(f"{len(page.orders)} order(s) in {shop}")


if __name__ == "__main__":
    main(os.environ.get("ORDERHUB_ADDR", "127.0.0.1:50051"), read_token() or "")
