"""The gRPC server: OrderHub's services, health and reflection, graceful shutdown."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hub.api.orders import OrderServicer
from hub.api.reconcile import ReconciliationServicer
from hub.api.routing import RoutingServicer
from hub.api.stock import StockServicer
from hub.api.wms import WmsServicer
from hub.app import Hub
from hub.carrier_events import SOURCE as CARRIER_SOURCE
from orderhub.v1 import (
    order_pb2,
    order_pb2_grpc,
    reconcile_pb2,
    reconcile_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    stock_pb2,
    stock_pb2_grpc,
    wms_pb2,
    wms_pb2_grpc,
)

SERVICES = (
    stock_pb2.DESCRIPTOR.services_by_name["StockService"].full_name,
    wms_pb2.DESCRIPTOR.services_by_name["WmsService"].full_name,
    order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
    routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name,
    reconcile_pb2.DESCRIPTOR.services_by_name["ReconciliationService"].full_name,
)


class HubServer:
    """A started gRPC server bound to a port, with its health service."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: Any) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking RPCs, let in-flight ones finish within ``grace_s``, then close."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_server(hub: Hub, address: str) -> HubServer:
    """Build and start the server on ``address`` (port 0 picks a free port)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            # gRPC cancels calls that wait to be picked up once more than 1,000 are
            # pending (its default); a flash sale arrives as exactly such a burst.
            ("grpc.server.max_pending_requests", 100_000),
            ("grpc.server.max_pending_requests_hard_limit", 200_000),
        ]
    )
    stock_pb2_grpc.add_StockServiceServicer_to_server(
        StockServicer(hub.inventory, hub.master_data, hub.relay.wake), server
    )
    assert hub.dead_letters is not None
    wms_pb2_grpc.add_WmsServiceServicer_to_server(
        WmsServicer(
            hub.wms,
            hub.dead_letters,
            hub.relay,
            hub.orders.replay,
            replayers={CARRIER_SOURCE: hub.carrier_events.replay},
        ),
        server,
    )
    order_pb2_grpc.add_OrderServiceServicer_to_server(
        OrderServicer(hub.orders, hub.nats, hub.shops, hub.pollers, hub.router.store), server
    )
    routing_pb2_grpc.add_RoutingServiceServicer_to_server(
        RoutingServicer(hub.router, hub.lanes), server
    )
    reconcile_pb2_grpc.add_ReconciliationServiceServicer_to_server(
        ReconciliationServicer(hub.orders.store, hub.pull_orders), server
    )
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            *SERVICES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind the gRPC server to {address}")
    await server.start()
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return HubServer(server, port, health_servicer)
