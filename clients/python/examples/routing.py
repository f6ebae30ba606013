"""RoutingService: a what-if quote with its trace, the rules in force, lane health.

Run against a hub started with ``orderhub up --demo`` (its warehouses and SKUs): ``python
routing.py`` (see stock.py for the address and token).
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

from orderhub import OrderHubClient, read_token
from orderhub.v1 import routing_pb2


def main(address: str, token: str, sku: str = "TEE-01-BLK-L", warehouse: str = "WH-EAST") -> None:
    with OrderHubClient(address, token=token) as hub:
        quote = hub.quote_route("广东省", [(sku, 2)], destination_city="深圳市", tags=["urgent"])
        for parcel in quote.shipments:
            print(
                f"{parcel.warehouse_id} by {parcel.carrier}: {parcel.promised_hours} h, "
                f"{parcel.cost_fen / 100:.2f} yuan"
            )
        for step in quote.trace[:3]:
            print(f"  {step.step}: {step.detail}")

        rules = hub.routing_rules()
        document = json.loads(rules.rules_json)
        print(f"rules v{rules.version}: {len(document.get('rules', []))} rules")

        # A carrier feed reports a delivery; the lane's breaker counts it.
        lane = hub.record_lane_outcome(
            warehouse,
            "zto",
            "广东",
            late=False,
            occurred_at=datetime.now(UTC),
            outcome_id=f"ex-{uuid.uuid4().hex[:8]}",
        )
        state = routing_pb2.BreakerState.Name(lane.state)
        print(f"{lane.warehouse_id}/{lane.carrier}/{lane.destination_province}: {state}")


if __name__ == "__main__":
    main(os.environ.get("ORDERHUB_ADDR", "127.0.0.1:50051"), read_token() or "")
