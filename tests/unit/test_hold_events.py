"""Reading the hub's own hold events: which orders a warehouse's shortfall moved."""

from __future__ import annotations

import json

from hub.events import moved_orders


def test_moved_holds_name_their_orders_but_not_routings_own_moves() -> None:
    body = {
        "warehouse_id": "WH-B",
        "events": [
            {"kind": "MOVED_IN", "order_id": "o1", "cause": "wms-count-7"},
            {"kind": "MOVED_IN", "order_id": "o2~3", "cause": "wms-count-7"},
            {"kind": "MOVED_IN", "order_id": "o3", "cause": "routing"},
            {"kind": "HELD", "order_id": "o4"},
        ],
    }
    assert moved_orders(json.dumps(body).encode()) == ["o1", "o2"]
    assert moved_orders(b"not json") == []
