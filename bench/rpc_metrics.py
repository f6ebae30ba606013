"""What the RPC metrics add to a call: the access guard with and without them.

Runs the guard's unary wrapper (the path of every ``Reserve``) around a handler that does
nothing, many times, on one event loop, with a token check that answers at once; the
difference between the two timings is what the metrics cost a call (a counter increment,
a histogram observation, two clock reads and the status lookup). Run:

    python -m bench.rpc_metrics [--calls 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, NoReturn

import grpc

from hub.api.guard import Guard
from hub.auth import Principal
from hub.metrics import HubMetrics
from orderhub.v1 import stock_pb2

METHOD = "/orderhub.v1.StockService/Reserve"


class _Context:
    """The parts of a servicer context the guard reads."""

    def __init__(self) -> None:
        self._metadata = (("authorization", "Bearer integration"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise RuntimeError(code, details)

    def code(self) -> Any:
        return 0

    def time_remaining(self) -> float | None:
        return None


class _Verifier:
    def __init__(self) -> None:
        self._who = Principal(subject="bench", role="integration", token_id="bench")

    async def check(self, _authorization: str | None) -> Principal:
        return self._who


async def _answer(_request: Any, _context: Any) -> stock_pb2.ReserveResponse:
    return stock_pb2.ReserveResponse()


async def _per_call(guard: Guard, calls: int) -> float:
    """Seconds per call through the guard's unary wrapper."""
    handler = guard.wrap(METHOD, grpc.unary_unary_rpc_method_handler(_answer))
    behaviour = handler.unary_unary
    context, request = _Context(), stock_pb2.ReserveRequest()
    for _ in range(1000):  # warm up (the first call resolves the method's series)
        await behaviour(request, context)
    started = time.perf_counter()
    for _ in range(calls):
        await behaviour(request, context)
    return (time.perf_counter() - started) / calls


async def measure(calls: int, rounds: int = 5) -> dict[str, float]:
    """Median microseconds per call without and with metrics, over ``rounds`` rounds."""
    verifier: Any = _Verifier()
    auditor: Any = None  # integration reservations are ledgered, not audited
    plain = Guard(verifier, auditor)
    counted = Guard(verifier, auditor, metrics=HubMetrics(process=False).rpc)
    without, with_metrics = [], []
    for _ in range(rounds):  # interleaved, so drift in the machine's speed hits both
        without.append(await _per_call(plain, calls))
        with_metrics.append(await _per_call(counted, calls))
    a, b = statistics.median(without) * 1e6, statistics.median(with_metrics) * 1e6
    return {"without_us": a, "with_us": b, "added_us": b - a}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(measure(args.calls, args.rounds))
    print(
        f"guard alone {result['without_us']:.2f} µs/call, with metrics "
        f"{result['with_us']:.2f} µs/call: the metrics add {result['added_us']:.2f} µs/call"
    )


if __name__ == "__main__":
    main()
