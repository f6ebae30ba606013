"""The blocking client against grpcio-testing's channel: the test plays the hub, in-process."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import grpc_testing

from orderhub import Backoff, Line, OrderHubClient
from orderhub.v1 import stock_pb2

STOCK = stock_pb2.DESCRIPTOR.services_by_name["StockService"]
RESERVE = STOCK.methods_by_name["Reserve"]


def test_reserve_sends_the_token_and_retries_unavailable() -> None:
    channel = grpc_testing.channel([STOCK], grpc_testing.strict_real_time())
    client = OrderHubClient(
        token="secret-token",
        timeout=5.0,
        retries=2,
        backoff=Backoff(initial=0.001, maximum=0.002, jitter=0.0),
        channel=channel,
    )
    outcome: dict[str, Any] = {}

    def call() -> None:
        outcome["reservation"] = client.reserve("o-1", [Line("TEE", 2)], ttl_seconds=60)

    caller = threading.Thread(target=call)
    caller.start()
    # First attempt: the hub is restarting a shard.
    metadata, request, rpc = channel.take_unary_unary(RESERVE)
    assert ("authorization", "Bearer secret-token") in metadata
    assert request.order_id == "o-1" and request.ttl_seconds == 60
    assert request.lines[0].sku == "TEE" and request.lines[0].quantity == 2
    rpc.terminate(stock_pb2.ReserveResponse(), (), grpc.StatusCode.UNAVAILABLE, "shard restarting")
    # The retry carries the same request and succeeds.
    _, again, rpc = channel.take_unary_unary(RESERVE)
    assert again == request
    rpc.terminate(
        stock_pb2.ReserveResponse(reservation_id="rsv-1", order_id="o-1"),
        (),
        grpc.StatusCode.OK,
        "",
    )
    caller.join(5)
    assert outcome["reservation"].reservation_id == "rsv-1"
