"""RoutingService: proto in, router or lane board call, proto out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from hub.api import convert
from hub.api.errors import abort, invalid
from hub.api.orders import actor_of
from hub.domain.geo import province_of
from hub.domain.lanes import Lane, LaneHealth
from hub.domain.lifecycle import IllegalTransition
from hub.domain.quotes import CARRIERS
from hub.domain.routing import Decision, NoRoute, NoStock, PlannedShipment
from hub.domain.routing_rules import RuleError, RuleSet, parse_rules
from hub.lanes import LaneHealthBoard, Outcome
from hub.routing import Router, RoutingRefused, WhatIf, rules_json
from hub.store.routing import RulesVersionConflict, StoredRules
from orderhub.v1 import routing_pb2, routing_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

_STATES = {
    "CLOSED": routing_pb2.BREAKER_STATE_CLOSED,
    "OPEN": routing_pb2.BREAKER_STATE_OPEN,
    "HALF_OPEN": routing_pb2.BREAKER_STATE_HALF_OPEN,
}
MAX_LINES = 200
MAX_PAGE = 100


def _timestamp(value: Any) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def shipment_message(s: PlannedShipment) -> routing_pb2.Shipment:
    """A planned parcel as the API shows it."""
    return convert.shipment(s.warehouse_id, s.carrier, s.lines, s.promised_hours, s.cost_fen)


def _trace(decision: Decision) -> list[routing_pb2.TraceEntry]:
    return [routing_pb2.TraceEntry(step=t.step, detail=t.detail) for t in decision.trace]


def lane_message(h: LaneHealth) -> routing_pb2.LaneHealth:
    """One lane's health as the API shows it."""
    msg = routing_pb2.LaneHealth(
        warehouse_id=h.lane.warehouse_id,
        carrier=h.lane.carrier,
        destination_province=h.lane.destination_province,
        delay_rate=h.delay_rate,
        state=_STATES[h.state.value],
        outcomes=h.outcomes,
        late=h.late,
        reason=h.reason,
    )
    if h.since is not None:
        msg.since.CopyFrom(_timestamp(h.since))
    return msg


def _rules_message(rules: RuleSet, stored: StoredRules | None) -> routing_pb2.RoutingRules:
    msg = routing_pb2.RoutingRules(version=rules.version, rules_json=rules_json(rules))
    if stored is not None:
        msg.comment = stored.comment
        msg.updated_by = stored.updated_by
        msg.updated_at.CopyFrom(_timestamp(stored.updated_at))
    else:
        msg.comment = "the packaged default rules"
        msg.updated_by = "orderhub"
    return msg


def _province(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise invalid(field, f"{field} is required")
    found = province_of(value)
    if found is None or not found.domestic:
        raise invalid(field, f"{field} {value!r} is not a mainland province")
    return found.short


def _carrier(value: str, field: str = "carrier") -> str:
    value = value.strip()
    if value not in CARRIERS:
        raise invalid(field, f"{field} must be one of {', '.join(CARRIERS)}, got {value!r}")
    return value


def _quote_lines(lines: Sequence[routing_pb2.QuoteLine]) -> tuple[tuple[str, int], ...]:
    if not lines:
        raise invalid("lines", "at least one line is required")
    if len(lines) > MAX_LINES:
        raise invalid("lines", f"at most {MAX_LINES} lines, got {len(lines)}")
    out = []
    for i, line in enumerate(lines):
        sku = line.sku.strip()
        if not sku:
            raise invalid(f"lines[{i}].sku", f"lines[{i}].sku is required")
        if line.quantity <= 0:
            raise invalid(
                f"lines[{i}].quantity", f"lines[{i}].quantity must be positive, got {line.quantity}"
            )
        out.append((sku, int(line.quantity)))
    return tuple(out)


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    """Routing decisions, what-ifs, rules and lane health."""

    def __init__(self, router: Router, lanes: LaneHealthBoard) -> None:
        self._router = router
        self._lanes = lanes

    async def RouteOrder(
        self, request: routing_pb2.RouteOrderRequest, context: Context
    ) -> routing_pb2.RouteOrderResponse:
        """Route an order now and answer the parcels with the trace."""
        try:
            if request.sla_hours < 0:
                raise invalid(
                    "sla_hours", f"sla_hours must not be negative, got {request.sla_hours}"
                )
            routed = await self._router.route_order(
                request.order_id,
                actor=actor_of(context),
                why="asked by RouteOrder",
                sla_hours=request.sla_hours or None,
            )
        except NoRoute as err:
            # The order's own data (its address, its SKUs) cannot be routed: a precondition,
            # not a bad argument of this call.
            await abort(context, _failed(err))
        except RoutingRefused as err:
            await abort(context, _failed(err))
        except Exception as err:
            await abort(context, err)
        response = routing_pb2.RouteOrderResponse(
            order_id=routed.order_id,
            shipments=[shipment_message(s) for s in routed.decision.shipments],
            trace=_trace(routed.decision),
            rules_version=routed.decision.rules_version,
            moved=routed.moved,
        )
        response.decided_at.CopyFrom(_timestamp(routed.decided_at))
        return response

    async def QuoteRoute(
        self, request: routing_pb2.QuoteRouteRequest, context: Context
    ) -> routing_pb2.QuoteRouteResponse:
        """What routing would decide, with the rules in force or a draft; changes nothing."""
        try:
            ask = WhatIf(
                destination_province=_province(
                    request.destination_province, "destination_province"
                ),
                destination_city=request.destination_city.strip(),
                lines=_quote_lines(request.lines),
                tags=frozenset(t.strip() for t in request.tags if t.strip()),
                channel=request.channel.strip(),
                amount_fen=request.amount_fen or None,
                sla_hours=request.sla_hours or None,
            )
            if request.amount_fen < 0:
                raise invalid("amount_fen", "amount_fen must not be negative")
            if request.sla_hours < 0:
                raise invalid("sla_hours", "sla_hours must not be negative")
            draft = None
            if request.draft_rules_json.strip():
                draft = _parse(request.draft_rules_json, "draft_rules_json")
            decision = await self._router.quote(ask, draft)
        except NoStock as err:
            await abort(context, _failed(err))
        except NoRoute as err:
            if err.field:
                await abort(context, invalid(err.field, str(err)))
            await abort(context, _failed(err))
        except Exception as err:
            await abort(context, err)
        return routing_pb2.QuoteRouteResponse(
            shipments=[shipment_message(s) for s in decision.shipments],
            trace=_trace(decision),
            rules_version=decision.rules_version,
        )

    async def RecordLaneOutcome(
        self, request: routing_pb2.RecordLaneOutcomeRequest, context: Context
    ) -> routing_pb2.RecordLaneOutcomeResponse:
        """Count one delivery outcome on a lane and answer the lane's health after it."""
        try:
            warehouse_id = request.warehouse_id.strip()
            if not warehouse_id:
                raise invalid("warehouse_id", "warehouse_id is required")
            lane = Lane(
                warehouse_id,
                _carrier(request.carrier),
                _province(request.destination_province, "destination_province"),
            )
            if not request.HasField("occurred_at"):
                raise invalid("occurred_at", "occurred_at is required")
            occurred_at = request.occurred_at.ToDatetime(tzinfo=UTC)
            shipped_at = None
            if request.HasField("shipped_at"):
                shipped_at = request.shipped_at.ToDatetime(tzinfo=UTC)
                if shipped_at > occurred_at:
                    raise invalid("shipped_at", "shipped_at must not be after occurred_at")
            recorded = await self._lanes.record(
                [Outcome(lane, request.late, occurred_at, request.outcome_id.strip(), shipped_at)]
            )
        except Exception as err:
            await abort(context, err)
        return routing_pb2.RecordLaneOutcomeResponse(lane=lane_message(recorded[0].health))

    async def GetLaneHealth(
        self, request: routing_pb2.GetLaneHealthRequest, context: Context
    ) -> routing_pb2.GetLaneHealthResponse:
        """Lanes matching the filters given, with delay rates and breaker states."""
        try:
            carrier = _carrier(request.carrier) if request.carrier.strip() else ""
            province = (
                _province(request.destination_province, "destination_province")
                if request.destination_province.strip()
                else ""
            )
            lanes = await self._lanes.health(request.warehouse_id.strip(), carrier, province)
        except Exception as err:
            await abort(context, err)
        return routing_pb2.GetLaneHealthResponse(lanes=[lane_message(h) for h in lanes])

    async def GetRoutingRules(
        self, request: routing_pb2.GetRoutingRulesRequest, context: Context
    ) -> routing_pb2.GetRoutingRulesResponse:
        """The rules in force, or a stored version."""
        try:
            if request.version < 0:
                raise invalid("version", "version must not be negative")
            rules, stored = await self._router.rules_version(request.version)
        except Exception as err:
            await abort(context, err)
        return routing_pb2.GetRoutingRulesResponse(rules=_rules_message(rules, stored))

    async def UpdateRoutingRules(
        self, request: routing_pb2.UpdateRoutingRulesRequest, context: Context
    ) -> routing_pb2.UpdateRoutingRulesResponse:
        """Validate and store the next version of the rules; a rejected update changes nothing."""
        try:
            if not request.rules_json.strip():
                raise invalid("rules_json", "rules_json is required")
            _parse(request.rules_json, "rules_json")  # names the field before anything else
            rules, stored = await self._router.update_rules(
                request.rules_json,
                actor=actor_of(context),
                comment=request.comment,
                expected_version=request.expected_version,
                validate_only=request.validate_only,
            )
        except RulesVersionConflict as err:
            await context.abort(grpc.StatusCode.ABORTED, str(err))
        except Exception as err:
            await abort(context, err)
        return routing_pb2.UpdateRoutingRulesResponse(rules=_rules_message(rules, stored))

    async def ListRoutingRuleVersions(
        self, request: routing_pb2.ListRoutingRuleVersionsRequest, context: Context
    ) -> routing_pb2.ListRoutingRuleVersionsResponse:
        """Stored versions, newest first, without their documents."""
        try:
            size = request.page_size or 20
            if size < 0 or size > MAX_PAGE:
                raise invalid("page_size", f"page_size must be 1..{MAX_PAGE}, got {size}")
            before = 0
            if request.page_token:
                try:
                    before = int(request.page_token)
                except ValueError:
                    raise invalid("page_token", "page_token is not one this API gave") from None
            found = await self._router.stored_versions(before=before, limit=size + 1)
        except Exception as err:
            await abort(context, err)
        page = found[:size]
        versions = []
        for s in page:
            msg = routing_pb2.RoutingRules(
                version=s.version, comment=s.comment, updated_by=s.updated_by
            )
            msg.updated_at.CopyFrom(_timestamp(s.updated_at))
            versions.append(msg)
        token = str(page[-1].version) if len(found) > size else ""
        return routing_pb2.ListRoutingRuleVersionsResponse(versions=versions, next_page_token=token)


def _parse(text: str, field: str) -> RuleSet:
    try:
        return parse_rules(text)
    except RuleError as err:
        path = f"{field}.{err.field}" if err.field else field
        raise invalid(path, f"{path}: {err.reason}") from None
    except (ValueError, json.JSONDecodeError) as err:
        raise invalid(field, f"{field}: {err}") from None


def _failed(err: Exception) -> Exception:
    """A refusal about the state of things: FAILED_PRECONDITION with the reason."""
    return IllegalTransition(str(err))
