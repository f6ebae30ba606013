"""Decoding WMS events from NATS: protobuf, JSON in both spellings, and poison."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from adapters.wms import Codes, PoisonEvent, decode, is_json, warehouse_of
from hub.domain.movements import MovementType
from orderhub.v1 import wms_pb2

JSON = {"Content-Type": "application/json"}
AT = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)


def proto(**fields: object) -> bytes:
    ts = Timestamp()
    ts.FromDatetime(AT)
    event = wms_pb2.WmsEvent(occurred_at=ts, **fields)  # type: ignore[arg-type]
    return event.SerializeToString()


def test_protobuf_event() -> None:
    data = proto(
        event_id="e1",
        warehouse_id="WH-A",
        sku="TEE",
        type=wms_pb2.WMS_EVENT_TYPE_INBOUND,
        quantity=5,
    )
    m = decode("wms.events.WH-A", None, data)
    assert (m.event_id, m.warehouse_id, m.sku, m.type, m.quantity, m.occurred_at) == (
        "e1",
        "WH-A",
        "TEE",
        MovementType.INBOUND,
        5,
        AT,
    )


@pytest.mark.parametrize(
    "body",
    [
        {
            "event_id": "e1",
            "warehouse_id": "WH-A",
            "sku": "TEE",
            "type": "DAMAGE",
            "quantity": 2,
            "occurred_at": "2026-11-24T16:30:00+08:00",
        },
        {
            "eventId": "e1",
            "warehouseId": "WH-A",
            "sku": "TEE",
            "type": "WMS_EVENT_TYPE_DAMAGE",
            "quantity": "2",
            "occurredAt": "2026-11-24T08:30:00Z",
        },
        {
            "event_id": "e1",
            "sku": "TEE",
            "type": 5,
            "quantity": 2,
            "occurred_at": "2026-11-24T08:30:00Z",
        },
    ],
)
def test_json_event_in_either_spelling(body: dict[str, object]) -> None:
    m = decode("wms.events.WH-A", JSON, json.dumps(body).encode())
    assert (m.event_id, m.warehouse_id, m.type, m.quantity, m.occurred_at) == (
        "e1",
        "WH-A",
        MovementType.DAMAGE,
        2,
        AT,
    )


def test_a_count_may_be_zero() -> None:
    body = {"event_id": "c", "warehouse_id": "WH-A", "sku": "TEE", "type": "COUNT", "quantity": 0}
    assert decode("wms.events.WH-A", JSON, json.dumps(body).encode()).quantity == 0


@pytest.mark.parametrize(
    ("headers", "data", "code"),
    [
        (None, b"\xff\xff\xff", Codes.UNDECODABLE),
        (JSON, b"{not json", Codes.UNDECODABLE),
        (JSON, b"[1, 2]", Codes.UNDECODABLE),
        (
            JSON,
            b'{"event_id": "e", "sku": "TEE", "type": "TELEPORT", "quantity": 1}',
            Codes.UNKNOWN_TYPE,
        ),
        (
            JSON,
            b'{"event_id": "e", "sku": "TEE", "type": "INBOUND", "quantity": 1.5}',
            Codes.UNDECODABLE,
        ),
        (JSON, b'{"sku": "TEE", "type": "INBOUND", "quantity": 1}', Codes.MISSING_FIELD),
        (JSON, b'{"event_id": "e", "type": "INBOUND", "quantity": 1}', Codes.MISSING_FIELD),
        (JSON, b'{"event_id": "e", "sku": "TEE", "quantity": 1}', Codes.UNKNOWN_TYPE),
        (
            JSON,
            b'{"event_id": "e", "sku": "TEE", "type": "COUNT", "quantity": -4}',
            Codes.INVALID_QUANTITY,
        ),
        (
            JSON,
            b'{"event_id": "e", "sku": "TEE", "type": "INBOUND", "quantity": 0}',
            Codes.INVALID_QUANTITY,
        ),
        (
            JSON,
            b'{"event_id": "e", "warehouse_id": "WH-B", "sku": "TEE", "type": "INBOUND", '
            b'"quantity": 1}',
            Codes.WAREHOUSE_MISMATCH,
        ),
    ],
)
def test_poison_is_named(headers: dict[str, str] | None, data: bytes, code: Codes) -> None:
    with pytest.raises(PoisonEvent) as poison:
        decode("wms.events.WH-A", headers, data)
    assert poison.value.code is code
    assert poison.value.reason


def test_unknown_protobuf_enum_value_is_poison() -> None:
    data = proto(event_id="e9", warehouse_id="WH-A", sku="TEE", type=42, quantity=1)  # type: ignore[arg-type]
    with pytest.raises(PoisonEvent) as poison:
        decode("wms.events.WH-A", None, data)
    assert (poison.value.code, poison.value.event_id) == (Codes.UNKNOWN_TYPE, "e9")


def test_helpers() -> None:
    assert warehouse_of("wms.events.WH-A") == "WH-A"
    assert warehouse_of("other.WH-A") == ""
    assert is_json({"content-type": "application/json; charset=utf-8"})
    assert not is_json({"Content-Type": "application/protobuf"})
    assert not is_json(None)
