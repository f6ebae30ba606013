"""WMS stock events off NATS (``wms.events.<warehouse_id>``) → :class:`StockMovement`.

A WMS publishes ``orderhub.v1.WmsEvent`` as protobuf, or as its JSON mapping when the
message carries ``Content-Type: application/json``. In JSON, ``type`` is the short name
(``"INBOUND"``; the full enum name and its number are accepted too), ``quantity`` an
integer, ``occurred_at`` RFC 3339, and field names snake_case or lowerCamelCase.

Anything that cannot become a movement raises :class:`PoisonEvent` with a code and a
reason; the consumer keeps such messages as dead letters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from hub.domain.movements import MovementType, StockMovement
from orderhub.v1 import wms_pb2

SUBJECT_PREFIX = "wms.events."
JSON_TYPES = ("application/json", "text/json")

_TYPES = {
    wms_pb2.WMS_EVENT_TYPE_INBOUND: MovementType.INBOUND,
    wms_pb2.WMS_EVENT_TYPE_OUTBOUND: MovementType.OUTBOUND,
    wms_pb2.WMS_EVENT_TYPE_TRANSFER_IN: MovementType.TRANSFER_IN,
    wms_pb2.WMS_EVENT_TYPE_TRANSFER_OUT: MovementType.TRANSFER_OUT,
    wms_pb2.WMS_EVENT_TYPE_DAMAGE: MovementType.DAMAGE,
    wms_pb2.WMS_EVENT_TYPE_COUNT: MovementType.COUNT,
}
_ENUM_PREFIX = "WMS_EVENT_TYPE_"


class PoisonEvent(Exception):
    """A message that can never be applied as it is; ``code`` says which kind of fault."""

    def __init__(self, code: Codes, reason: str, event_id: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.event_id = event_id


class Codes(StrEnum):
    """The fault codes a dead letter can carry."""

    UNDECODABLE = "UNDECODABLE"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    MISSING_FIELD = "MISSING_FIELD"
    WAREHOUSE_MISMATCH = "WAREHOUSE_MISMATCH"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    UNKNOWN_WAREHOUSE = "UNKNOWN_WAREHOUSE"
    UNKNOWN_SKU = "UNKNOWN_SKU"
    REJECTED = "REJECTED"


def warehouse_of(subject: str) -> str:
    """The warehouse id a subject names (``wms.events.<warehouse_id>``), or ``""``."""
    if subject.startswith(SUBJECT_PREFIX):
        return subject[len(SUBJECT_PREFIX) :]
    return ""


def is_json(headers: Mapping[str, str] | None) -> bool:
    """Whether the headers say the body is JSON."""
    if not headers:
        return False
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.split(";")[0].strip().lower() in JSON_TYPES
    return False


def decode(subject: str, headers: Mapping[str, str] | None, data: bytes) -> StockMovement:
    """Turn one message into a movement, or raise :class:`PoisonEvent`."""
    event = _parse_json(data) if is_json(headers) else _parse_protobuf(data)
    event_id = event.event_id.strip()
    if not event_id:
        raise PoisonEvent(Codes.MISSING_FIELD, "event_id is required")
    movement_type = _TYPES.get(event.type)
    if movement_type is None:
        raise PoisonEvent(
            Codes.UNKNOWN_TYPE, f"event type {event.type} is not a known movement", event_id
        )
    sku = event.sku.strip()
    if not sku:
        raise PoisonEvent(Codes.MISSING_FIELD, "sku is required", event_id)
    from_subject = warehouse_of(subject)
    warehouse_id = event.warehouse_id.strip() or from_subject
    if not warehouse_id:
        raise PoisonEvent(Codes.MISSING_FIELD, "warehouse_id is required", event_id)
    if from_subject and warehouse_id != from_subject:
        raise PoisonEvent(
            Codes.WAREHOUSE_MISMATCH,
            f"published on {subject} but names warehouse {warehouse_id!r}",
            event_id,
        )
    if movement_type is MovementType.COUNT and event.quantity < 0:
        raise PoisonEvent(
            Codes.INVALID_QUANTITY, f"a count must not be negative, got {event.quantity}", event_id
        )
    if movement_type is not MovementType.COUNT and event.quantity <= 0:
        raise PoisonEvent(
            Codes.INVALID_QUANTITY,
            f"a {movement_type.value} quantity must be positive, got {event.quantity}",
            event_id,
        )
    if event.HasField("occurred_at"):
        occurred_at = event.occurred_at.ToDatetime(tzinfo=UTC)
    else:
        occurred_at = datetime.now(UTC)
    return StockMovement(
        event_id=event_id,
        warehouse_id=warehouse_id,
        sku=sku,
        type=movement_type,
        quantity=int(event.quantity),
        occurred_at=occurred_at,
    )


def _parse_protobuf(data: bytes) -> wms_pb2.WmsEvent:
    try:
        return wms_pb2.WmsEvent.FromString(data)
    except DecodeError as err:
        raise PoisonEvent(Codes.UNDECODABLE, f"not a protobuf WmsEvent: {err}") from err


def _parse_json(data: bytes) -> wms_pb2.WmsEvent:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PoisonEvent(Codes.UNDECODABLE, f"not JSON: {err}") from err
    if not isinstance(body, dict):
        raise PoisonEvent(Codes.UNDECODABLE, "a WMS event in JSON must be an object")
    event_id = str(body.get("event_id") or body.get("eventId") or "")
    kind = body.get("type")
    if isinstance(kind, str):
        name = kind.strip().upper()
        full = name if name.startswith(_ENUM_PREFIX) else _ENUM_PREFIX + name
        if full not in set(wms_pb2.WmsEventType.keys()):
            raise PoisonEvent(Codes.UNKNOWN_TYPE, f"unknown event type {kind!r}", event_id)
        body["type"] = full
    try:
        return json_format.ParseDict(body, wms_pb2.WmsEvent(), ignore_unknown_fields=True)
    except json_format.ParseError as err:
        raise PoisonEvent(Codes.UNDECODABLE, f"not a WmsEvent: {err}", event_id) from err
