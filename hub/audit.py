"""The audit log: every write made through the API, with who, when, what, before and after.

For each audited RPC the auditor names the target the request acts on and reads its state
before the handler runs and again after it; the entry (the request as JSON, both states,
the outcome) is appended before the caller gets the answer. Entries of concurrent calls
share one transaction (:class:`hub.batching.Batcher`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from hub.batching import Batcher
from hub.domain.access import method
from hub.domain.inventory import ReservationNotFound
from hub.store.access import AccessStore, AuditEntry

if TYPE_CHECKING:
    from hub.app import Hub

#: The longest request kept in an entry (a huge batch is cut, and says so).
MAX_REQUEST_CHARS = 64_000

State = dict[str, Any] | list[Any] | None
Reader = Callable[["Hub", Any], Awaitable[State]]


def _plain(value: object) -> Any:
    """A JSON-ready copy of a dataclass tree (datetimes as ISO text, enums by name)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def to_json(value: object) -> str:
    if value is None:
        return ""
    return json.dumps(_plain(value), ensure_ascii=False, sort_keys=True, default=str)


# ------------------------------------------------------------------ targets and their state


async def _stock(hub: Hub, r: Any) -> State:
    levels = await hub.inventory.availability(r.sku, [r.warehouse_id] if r.warehouse_id else [])
    return [_plain(v) for v in levels] or None


async def _reservation(hub: Hub, r: Any) -> State:
    try:
        state: State = _plain(await hub.inventory.get_reservation(r.order_id))
        return state
    except ReservationNotFound:
        return None


async def _order(hub: Hub, r: Any) -> State:
    stored = await asyncio.to_thread(hub.orders.store.get, r.order_id)
    if stored is None:
        return None
    shipments = await asyncio.to_thread(hub.router.store.routed, r.order_id)
    # The order's workflow state, without the buyer's personal data.
    return {
        "status": stored.order.status.name,
        "version": stored.version,
        "queue": stored.queue,
        "tags": list(stored.tags),
        "review_reasons": list(stored.review_reasons),
        "shipments": [
            {
                "warehouse_id": s.warehouse_id,
                "carrier": s.carrier,
                "lines": [list(line) for line in s.lines],
                "cost_fen": s.cost_fen,
            }
            for s in shipments
        ],
    }


async def _warehouse(hub: Hub, r: Any) -> State:
    rows = await asyncio.to_thread(hub.master_data.warehouses)
    return next((_plain(w) for w in rows if w.warehouse_id == r.warehouse_id), None)


async def _sku(hub: Hub, r: Any) -> State:
    found = await asyncio.to_thread(hub.master_data.sku, r.sku)
    return None if found is None else _plain(found)


async def _carrier(hub: Hub, r: Any) -> State:
    rows = await asyncio.to_thread(hub.master_data.carriers)
    return next((_plain(c) for c in rows if c.carrier_id == r.carrier.carrier_id), None)


async def _mapping(hub: Hub, r: Any) -> State:
    sku = await asyncio.to_thread(
        hub.master_data.resolve_platform_sku, r.platform, r.shop_id, r.platform_sku
    )
    return None if sku is None else {"sku": sku}


async def _rules(hub: Hub, r: Any) -> State:
    _, stored = await hub.router.rules_version()
    if stored is None:
        return {"version": 0, "document": "the packaged defaults"}
    return {"version": stored.version, "document": stored.document, "comment": stored.comment}


@dataclasses.dataclass(frozen=True, slots=True)
class Subject:
    """What an audited RPC acts on: a name for the log, and how to read its state."""

    target: Callable[[Any], str]
    read: Reader | None = None


def _ids(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in ids[:50])


def _order_subject() -> Subject:
    return Subject(lambda r: f"order:{r.order_id}", _order)


SUBJECTS: dict[str, Subject] = {
    method("StockService", "SetStock"): Subject(
        lambda r: f"stock:{r.sku}@{r.warehouse_id}", _stock
    ),
    method("StockService", "UpsertWarehouse"): Subject(
        lambda r: f"warehouse:{r.warehouse_id}", _warehouse
    ),
    method("StockService", "UpsertSku"): Subject(lambda r: f"sku:{r.sku}", _sku),
    method("StockService", "UpsertCarrier"): Subject(
        lambda r: f"carrier:{r.carrier.carrier_id}", _carrier
    ),
    method("StockService", "MapPlatformSku"): Subject(
        lambda r: f"platform_sku:{r.platform}/{r.shop_id}/{r.platform_sku}", _mapping
    ),
    method("StockService", "Reserve"): Subject(lambda r: f"reservation:{r.order_id}", _reservation),
    method("StockService", "Release"): Subject(lambda r: f"reservation:{r.order_id}", _reservation),
    method("StockService", "Commit"): Subject(lambda r: f"reservation:{r.order_id}", _reservation),
    method("StockService", "RequestShipment"): Subject(
        lambda r: f"reservation:{r.order_id}", _reservation
    ),
    method("StockService", "ReserveBatch"): Subject(
        lambda r: "reservations:" + ",".join(x.order_id for x in r.requests[:20])
    ),
    method("RoutingService", "UpdateRoutingRules"): Subject(lambda r: "routing_rules", _rules),
    method("RoutingService", "RouteOrder"): _order_subject(),
    method("RoutingService", "RecordLaneOutcome"): Subject(
        lambda r: f"lane:{r.warehouse_id}/{r.carrier}/{r.destination_province}"
    ),
    method("WmsService", "ReplayDeadLetters"): Subject(
        lambda r: "dead_letters:" + ("all_open" if r.all_open else _ids(r.letter_ids))
    ),
    method("WmsService", "DiscardDeadLetters"): Subject(
        lambda r: "dead_letters:" + _ids(r.letter_ids)
    ),
    **{
        method("OrderService", rpc): _order_subject()
        for rpc in (
            "CancelOrder",
            "HoldOrder",
            "ResumeOrder",
            "ShipOrder",
            "DeliverOrder",
            "ApproveOrder",
            "RejectOrder",
        )
    },
}


def request_json(request: Message) -> str:
    """The request as compact JSON (cut at :data:`MAX_REQUEST_CHARS`)."""
    text = json.dumps(
        MessageToDict(request, preserving_proto_field_name=True),
        ensure_ascii=False,
        sort_keys=True,
    )
    if len(text) > MAX_REQUEST_CHARS:
        return json.dumps({"truncated": True, "head": text[:MAX_REQUEST_CHARS]})
    return text


class Auditor:
    """Reads targets' states and appends entries, many calls to one transaction."""

    def __init__(self, hub: Hub, store: AccessStore) -> None:
        self._hub = hub
        self._store = store
        self._batcher: Batcher[AuditEntry, None] = Batcher(self._write, max_batch=500)

    def target(self, full_method: str, request: Any) -> str:
        subject = SUBJECTS.get(full_method)
        if subject is None:
            return ""
        try:
            return subject.target(request)
        except (AttributeError, TypeError):
            return ""

    async def state(self, full_method: str, request: Any) -> str:
        """The JSON of the request's target's state now ("" if unknown or absent)."""
        subject = SUBJECTS.get(full_method)
        if subject is None or subject.read is None:
            return ""
        try:
            return to_json(await subject.read(self._hub, request))
        except Exception as err:  # a failing read must not fail the write it describes
            return json.dumps({"unreadable": str(err)[:200]})

    async def record(self, entry: AuditEntry) -> None:
        """Append ``entry``; returns once it is stored."""
        await self._batcher.submit(entry)

    def _write(self, entries: Sequence[AuditEntry]) -> list[None]:
        self._store.append(entries)
        return [None] * len(entries)
