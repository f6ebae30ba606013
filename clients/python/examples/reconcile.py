"""ReconciliationService: a platform's statement compared with the hub's orders (对账).

Two orders reach the hub; the platform's statement for the day lists one of them and one
the hub never heard of. Run: ``python reconcile.py`` (see stock.py for address and token).
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

from orderhub import OrderHubClient, read_token
from orderhub.v1 import reconcile_pb2


def paid_order(number: int, total: str) -> str:
    """A paid Shopify order as the platform sends it (the fields reconciliation needs)."""
    return json.dumps(
        {
            "id": number,
            "created_at": "2026-11-24T10:00:00+08:00",
            "processed_at": "2026-11-24T10:00:05+08:00",
            "currency": "CNY",
            "financial_status": "paid",
            "total_price": total,
            "shipping_lines": [],
            "shipping_address": {"province": "浙江省", "city": "杭州市", "country_code": "CN"},
            "line_items": [{"id": 1, "sku": "EX-MUG", "quantity": 1, "price": total}],
        }
    )


STATEMENT = """order id,paid,refunded,status,paid at
1001,59.00,0,paid,2026-11-24 10:00:05
1003,88.00,0,paid,2026-11-24 11:30:00
"""


def main(address: str, token: str) -> None:
    shop = f"ex-recon-{uuid.uuid4().hex[:6]}"
    with OrderHubClient(address, token=token) as hub:
        for number in (1001, 1002):
            hub.ingest_order("shopify", shop, paid_order(number, "59.00"))
        report = hub.reconcile(
            "shopify",
            shop,
            datetime(2026, 11, 24, tzinfo=UTC),
            datetime(2026, 11, 25, tzinfo=UTC),
            STATEMENT.encode(),
            statement_format="csv",
            default_currency="CNY",
        )
        print(f"{report.statement_rows} statement rows, balanced: {report.balanced}")
        for difference in report.differences:
            kind = reconcile_pb2.DifferenceKind.Name(difference.kind)
            print(f"  {difference.platform_order_id}: {kind}")


if __name__ == "__main__":
    main(os.environ.get("ORDERHUB_ADDR", "127.0.0.1:50051"), read_token() or "")
