"""The gRPC server: OrderHub's services behind the access guard, health and reflection,
TLS or mutual TLS when configured, graceful shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import _async as reflection_aio  # what enable_server_reflection uses
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from hub.api.admin import AdminServicer
from hub.api.guard import Guard, GuardedServer
from hub.api.orders import OrderServicer
from hub.api.reconcile import ReconciliationServicer
from hub.api.routing import RoutingServicer
from hub.api.stock import StockServicer
from hub.api.wms import WmsServicer
from hub.app import Hub
from hub.audit import Auditor
from hub.carrier_events import SOURCE as CARRIER_SOURCE
from hub.settings import Settings
from orderhub.v1 import (
    admin_pb2,
    admin_pb2_grpc,
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
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
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


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the settings' PEM files; None for plaintext.

    With ``tls_client_ca`` set, a client must present a certificate that CA signed
    (mutual TLS); the bearer token is still required on top.
    """
    if not (settings.tls_cert or settings.tls_key or settings.tls_client_ca):
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ValueError("TLS needs both ORDERHUB_TLS_CERT and ORDERHUB_TLS_KEY")
    chain = Path(settings.tls_cert).read_bytes()
    key = Path(settings.tls_key).read_bytes()
    client_ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


async def start_server(
    hub: Hub, address: str, *, credentials: grpc.ServerCredentials | None = None
) -> HubServer:
    """Build and start the server on ``address`` (port 0 picks a free port).

    ``credentials`` default to the hub's TLS settings (plaintext when there are none).
    """
    credentials = credentials or server_credentials(hub.settings)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            # gRPC cancels calls that wait to be picked up once more than 1,000 are
            # pending (its default); a flash sale arrives as exactly such a burst.
            ("grpc.server.max_pending_requests", 100_000),
            ("grpc.server.max_pending_requests_hard_limit", 200_000),
        ],
    )
    # Every service is added through the guard: its handlers are wrapped once, here.
    guarded: Any = GuardedServer(
        server, Guard(hub.verifier, Auditor(hub, hub.access), metrics=hub.metrics.rpc)
    )
    stock_pb2_grpc.add_StockServiceServicer_to_server(
        StockServicer(hub.inventory, hub.master_data, hub.relay.wake), guarded
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
        guarded,
    )
    order_pb2_grpc.add_OrderServiceServicer_to_server(
        OrderServicer(hub.orders, hub.nats, hub.shops, hub.pollers, hub.router.store), guarded
    )
    routing_pb2_grpc.add_RoutingServiceServicer_to_server(
        RoutingServicer(hub.router, hub.lanes), guarded
    )
    reconcile_pb2_grpc.add_ReconciliationServiceServicer_to_server(
        ReconciliationServicer(hub.orders.store, hub.pull_orders), guarded
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminServicer(hub.tokens, hub.access, hub.verifier), guarded
    )
    # Load balancers probe health without a token; reflection needs one, of any role.
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection_aio.ReflectionServicer(
            (
                *SERVICES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            )
        ),
        guarded,
    )
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise RuntimeError(f"could not bind the gRPC server to {address}")
    await server.start()
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return HubServer(server, port, health_servicer)
