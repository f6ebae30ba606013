"""Services whose RPCs are defined but not built yet: each answers UNIMPLEMENTED clearly."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from orderhub.v1 import routing_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


async def _not_yet(context: Context, rpc: str, work: str) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{rpc} is not available yet ({work})")
    raise AssertionError("unreachable")


class PendingRoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    """RoutingService until dynamic routing lands."""

    async def RouteOrder(self, request: Any, context: Context) -> Any:
        await _not_yet(context, "RouteOrder", "dynamic routing")

    async def RecordLaneOutcome(self, request: Any, context: Context) -> Any:
        await _not_yet(context, "RecordLaneOutcome", "dynamic routing")

    async def GetLaneHealth(self, request: Any, context: Context) -> Any:
        await _not_yet(context, "GetLaneHealth", "dynamic routing")
