"""End to end: a real hub (``orderhub up``) in its own process, driven over gRPC.

The hub runs exactly as deployed on one machine: its own local Ray, embedded NATS,
PostgreSQL. Master data and stock go in through the StockService API. ``Reserve`` is
driven by client processes (each a grpc.aio channel with many calls in flight);
``ReserveBatch`` sends a few large batches at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.drive import Outcome, drive, open_loop
from bench.procs import Start, run_clients
from bench.workload import WAREHOUSE_ID, Order, Result, Tally, Workload
from hub.embedded import EmbeddedNats, EmbeddedRay, free_port
from orderhub.client import auth_metadata, authorized_aio_channel
from orderhub.v1 import stock_pb2, stock_pb2_grpc

RPC_TIMEOUT_S = 60.0
_FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]


# --------------------------------------------------------------------------- the hub


@dataclass(slots=True)
class HubProcess:
    """A running ``orderhub up`` and where it listens."""

    proc: subprocess.Popen[bytes]
    target: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        """The hub's combined stdout and stderr."""
        return self.data_dir / "hub.log"

    def log_tail(self, lines: int = 40) -> str:
        """The end of the hub's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def hub_command() -> list[str]:
    """``orderhub up`` from this interpreter's environment."""
    script = Path(sys.executable).parent / "orderhub"
    if script.exists():
        return [str(script), "up"]
    return [sys.executable, "-m", "hub.cli", "up"]


def spawn_hub(url: str, shards: int, extra_env: Mapping[str, str] | None = None) -> HubProcess:
    """Start ``orderhub up`` on a free port against ``url`` (not yet serving).

    ``extra_env`` adds settings (e.g. ``ORDERHUB_NATS_URL``) to the hub's environment.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="orderhub-bench-"))
    port = free_port()
    env = dict(os.environ)
    env.pop("ORDERHUB_RAY_ADDRESS", None)  # the hub starts its own local Ray head
    env.pop("RAY_ADDRESS", None)
    env.update(
        ORDERHUB_DATABASE_URL=url,
        ORDERHUB_GRPC_ADDR=f"127.0.0.1:{port}",
        ORDERHUB_HTTP_ADDR="127.0.0.1:0",
        ORDERHUB_DATA_DIR=str(data_dir),
        ORDERHUB_INVENTORY_SHARDS=str(shards),
        ORDERHUB_LOG_FORMAT="text",
    )
    env.update(extra_env or {})
    with (data_dir / "hub.log").open("wb") as log:
        proc = subprocess.Popen(
            hub_command(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return HubProcess(proc, f"127.0.0.1:{port}", data_dir, env)


#: The roles the benchmarks call with: set-up as admin, load as the systems that send it
#: (a storefront or marketplace connector is an ``integration``, a warehouse a ``wms``).
BENCH_ROLES = ("admin", "integration", "wms")


def _token_env(role: str) -> str:
    return f"ORDERHUB_BENCH_TOKEN_{role.upper()}"


def issue_tokens(hub: HubProcess) -> None:
    """Issue a token per role with ``orderhub token create`` on the hub's own settings, and
    keep them in this process's environment, which client processes inherit."""
    script = Path(sys.executable).parent / "orderhub"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hub.cli"]
    for role in BENCH_ROLES:
        made = subprocess.run(
            [*command, "token", "create", "--role", role, "--subject", f"bench-{role}"],
            env=hub.env,
            capture_output=True,
            check=True,
            text=True,
        )
        os.environ[_token_env(role)] = made.stdout.strip()


def channel(target: str, role: str = "integration") -> grpc.aio.Channel:
    """A channel to a benchmark hub carrying the token of ``role`` (see :func:`issue_tokens`)."""
    return authorized_aio_channel(target, os.environ[_token_env(role)])


def token_metadata(role: str = "integration") -> tuple[tuple[str, str], ...]:
    """The token of ``role`` as call metadata: the load sends it with each call on a plain
    channel, as a busy storefront would (a client interceptor costs the client CPU that the
    hub, on the same two cores, would otherwise have)."""
    return auth_metadata(os.environ[_token_env(role)])


async def start_hub(
    url: str, shards: int, timeout_s: float = 180.0, extra_env: Mapping[str, str] | None = None
) -> HubProcess:
    """Start a hub and wait until its health service answers SERVING."""
    hub = spawn_hub(url, shards, extra_env)
    proc = hub.proc
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(hub.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {proc.returncode}:\n{hub.log_tail()}")
            if time.monotonic() > deadline:
                stop_hub(hub)
                raise RuntimeError(f"the hub was not SERVING after {timeout_s:.0f}s")
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    await asyncio.to_thread(issue_tokens, hub)
                    return hub
            await asyncio.sleep(0.5)


def stop_hub(hub: HubProcess, grace_s: float = 60.0) -> None:
    """Ask the hub to shut down (SIGTERM); kill its process group if it does not."""
    if hub.proc.poll() is None:
        hub.proc.send_signal(signal.SIGTERM)
        try:
            hub.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(hub.proc.pid, signal.SIGKILL)
            hub.proc.wait(10)
    shutil.rmtree(hub.data_dir, ignore_errors=True)


@dataclass(slots=True)
class Hubs:
    """One or more hubs serving the same shards; ``target`` reaches all of them.

    With several, a Ray head and a NATS server run on their own and every hub joins
    them with the same database, namespace and token key, as replicas behind a load
    balancer do; the storefronts' channels spread their calls over the hubs
    (gRPC's client-side ``round_robin``).
    """

    hubs: list[HubProcess]
    ray: EmbeddedRay | None = None
    nats: EmbeddedNats | None = None
    scratch: Path | None = None

    @property
    def target(self) -> str:
        """A gRPC target naming every hub."""
        if len(self.hubs) == 1:
            return self.hubs[0].target
        return "ipv4:" + ",".join(h.target for h in self.hubs)


#: Channel options of the load: spread calls over every address of the target.
SPREAD = (("grpc.lb_policy_name", "round_robin"),)


async def start_hubs(url: str, shards: int, count: int) -> Hubs:
    """Start ``count`` hubs on one database and one set of shard actors."""
    if count == 1:
        return Hubs([await start_hub(url, shards)])
    scratch = Path(tempfile.mkdtemp(prefix="orderhub-bench-cluster-"))
    ray_head = EmbeddedRay(scratch / "ray", num_cpus=os.cpu_count() or 2)
    nats = EmbeddedNats(scratch / "nats")
    hubs = Hubs([], ray_head, nats, scratch)
    try:
        shared = {
            "ORDERHUB_RAY_ADDRESS": ray_head.start(),
            "ORDERHUB_NATS_URL": nats.start(),
            "ORDERHUB_RAY_NAMESPACE": f"bench-{secrets.token_hex(4)}",
            "ORDERHUB_TOKEN_SECRET": secrets.token_urlsafe(48),
            **EmbeddedRay.environment(),
        }
        for _ in range(count):  # one at a time: the first creates the detached actors
            hubs.hubs.append(await start_hub(url, shards, extra_env=shared))
    except BaseException:
        stop_hubs(hubs)
        raise
    return hubs


def stop_hubs(hubs: Hubs) -> None:
    """Stop every hub, then the Ray head and NATS server they shared."""
    for hub in hubs.hubs:
        stop_hub(hub)
    if hubs.ray is not None:
        hubs.ray.stop()
    if hubs.nats is not None:
        hubs.nats.stop()
    if hubs.scratch is not None:
        shutil.rmtree(hubs.scratch, ignore_errors=True)


async def load_master_data(target: str, workloads: list[Workload]) -> None:
    """Create the warehouse, the SKUs and their stock through the StockService API."""
    async with channel(target, "admin") as admin:
        stub = stock_pb2_grpc.StockServiceStub(admin)
        await stub.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id=WAREHOUSE_ID,
                name="Flash-sale warehouse",
                province="上海市",
                city="上海市",
                district="青浦区",
                daily_capacity=100_000,
            ),
            timeout=RPC_TIMEOUT_S,
        )
        gate = asyncio.Semaphore(32)

        async def one(sku: str, on_hand: int) -> None:
            async with gate:
                await stub.UpsertSku(
                    stock_pb2.UpsertSkuRequest(
                        sku=sku, name=sku, category="flash-sale", weight_grams=250
                    ),
                    timeout=RPC_TIMEOUT_S,
                )
                await stub.SetStock(
                    stock_pb2.SetStockRequest(
                        warehouse_id=WAREHOUSE_ID,
                        sku=sku,
                        on_hand=on_hand,
                        reason="flash-sale benchmark",
                    ),
                    timeout=RPC_TIMEOUT_S,
                )

        await asyncio.gather(*(one(sku, n) for w in workloads for sku, n in w.stock.items()))


def reserve_request(order: Order) -> stock_pb2.ReserveRequest:
    """The Reserve request for an order: one unit per SKU, the hub picks the warehouse."""
    return stock_pb2.ReserveRequest(
        order_id=order.order_id,
        lines=[stock_pb2.ReserveLine(sku=sku, quantity=1) for sku in order.skus],
    )


# --------------------------------------------------------------------------- Reserve


class RpcFailed(Exception):
    """An RPC failed with a status other than a refusal for lack of stock."""


async def reserve_client(
    orders: list[Order], concurrency: int, start: Start, setup: tuple[str, float | None]
) -> tuple[Tally, float, float]:
    """One client process: ``concurrency`` Reserve calls in flight on one channel."""
    target, rate = setup
    requests = {o.order_id: reserve_request(o) for o in orders}
    auth = token_metadata()
    async with grpc.aio.insecure_channel(target, options=SPREAD) as storefront:
        await storefront.channel_ready()
        health = health_pb2_grpc.HealthStub(storefront)
        for _ in range(20):  # warm the connection, not the stock
            await health.Check(health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT_S)
        stub = stock_pb2_grpc.StockServiceStub(storefront)

        async def attempt(order: Order) -> Outcome:
            try:
                response = await stub.Reserve(
                    requests[order.order_id], timeout=RPC_TIMEOUT_S, metadata=auth
                )
            except grpc.aio.AioRpcError as err:
                if err.code() is grpc.StatusCode.FAILED_PRECONDITION:
                    return None
                raise RpcFailed(err.code().name) from err
            return sum(line.quantity for line in response.lines)

        await start()
        return await drive(orders, concurrency, attempt, rate)


async def run_reserve(
    target: str, workload: Workload, clients: int, procs: int, rate: float | None = None
) -> Result:
    """Drive ``Reserve`` with ``clients`` calls in flight, spread over ``procs`` processes."""
    setup = (target, rate / procs if rate else None)
    tally, elapsed, cpu_s = await run_clients(
        reserve_client, workload.orders, clients, procs, setup
    )
    note = (
        f"{clients} calls in flight from {procs} client process(es) (grpc.aio)"
        f"{open_loop(rate)}, client CPU {cpu_s:.1f}s"
    )
    return Result("gRPC Reserve (end to end)", workload, elapsed, tally, note)


# --------------------------------------------------------------------------- ReserveBatch


async def run_batch(target: str, workload: Workload, batch_size: int, concurrency: int) -> Result:
    """Drive ``ReserveBatch``: batches of ``batch_size``, ``concurrency`` in flight.

    Every request in a batch waits for the whole batch, so each one is counted with
    its batch's round-trip time.
    """
    orders = workload.orders
    batches = [
        stock_pb2.ReserveBatchRequest(
            requests=[reserve_request(o) for o in orders[i : i + batch_size]]
        )
        for i in range(0, len(orders), batch_size)
    ]
    tally = Tally()
    source = iter(batches)
    auth = token_metadata()
    async with grpc.aio.insecure_channel(target, options=SPREAD) as storefront:
        await storefront.channel_ready()
        stub = stock_pb2_grpc.StockServiceStub(storefront)

        async def sender() -> None:
            for batch in source:
                t0 = time.perf_counter()
                response = await stub.ReserveBatch(batch, timeout=RPC_TIMEOUT_S, metadata=auth)
                elapsed_ms = (time.perf_counter() - t0) * 1000
                tally.latencies_ms += [elapsed_ms] * len(batch.requests)
                for result in response.results:
                    if result.code == 0:
                        tally.reserved += 1
                        tally.granted_units += sum(ln.quantity for ln in result.reservation.lines)
                    elif result.code == _FAILED_PRECONDITION:
                        tally.insufficient += 1
                    else:
                        tally.errors[f"code {result.code}"] += 1

        start = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        end = time.monotonic()
    note = f"batches of {batch_size}, {concurrency} in flight; latency is the batch's"
    return Result("gRPC ReserveBatch", workload, end - start, tally, note)
