"""Order ingestion benchmark: adapters alone, and end to end against a typical OMS.

Run ``python -m bench.ingest`` (``--quick`` for a smoke check). Two parts:

1. **Adapters**: for each platform (taobao, jd, douyin, pdd, shopify and the configured
   channel woocommerce), distinct payloads made from the fixtures are translated with
   ``registry.translate``, several times; median orders/s and µs per order.
2. **End to end on PostgreSQL**: a real hub (``orderhub up``) on a fresh benchmark
   database takes a mix of platform orders through ``IngestPlatformOrder`` (``--clients``
   calls in flight on a grpc.aio channel), then about a fifth of them again (each must be
   answered ``duplicate``). The same orders go through the baseline — one PostgreSQL
   transaction per order, the way a typical OMS ingests (:mod:`bench.ingest_baseline`) —
   in the same run, alternating with the hub round by round; medians over the rounds and
   the hub's ratio to the baseline are reported.

After every round the database is checked: one ``orders`` row per platform order, each
in the queue it must be in, ``stock_levels.reserved`` per SKU equal to the units of the
paid orders held, a ``stock_held`` event per held order, no dead letters (and the same
books for the baseline's tables). The report (markdown) goes to stdout, progress to
stderr; the exit status is 1 if any check failed. docs/benchmarks.md records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import grpc
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from bench import cpu, hub_engine, ingest_adapters, ingest_baseline
from bench.baseline import ConnectionPool
from bench.cpu import describe
from bench.database import bench_url, libpq_url, recreate
from bench.ingest_orders import (
    PLATFORMS,
    WAREHOUSE_ID,
    Generator,
    Ingest,
    catalogue,
    code_of,
    held_units,
    self_check,
    shop_of,
)
from hub.embedded import EmbeddedRay
from hub.store.db import make_engine
from orderhub.v1 import order_pb2, order_pb2_grpc, stock_pb2, stock_pb2_grpc

DATABASE = "orderhub_bench_ingest"
HUB = "hub (IngestPlatformOrder)"
HUB_BATCH = "hub (IngestPlatformOrders ≤ {})"
BASELINE = "baseline (PG txn per order)"
ENGINES = ("baseline", "hub")
ADAPTER_TARGET = 20_000.0
E2E_TARGET = 1_000.0
ON_HAND = 1_000_000
RPC_TIMEOUT_S = 60.0
#: Order numbers of each round start here times the round (round 0 is the warm-up).
ROUND_STRIDE = 10_000_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks the defaults, explicit flags win."""
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    p.add_argument("--orders", type=int, help="unique orders per round (5000; quick 1000)")
    p.add_argument("--clients", type=int, default=64, help="calls / transactions in flight (64)")
    p.add_argument("--rounds", type=int, help="rounds, engines alternating (3; quick 1)")
    p.add_argument(
        "--repeats", type=float, default=0.2, help="second pass: this share of the orders again"
    )
    p.add_argument(
        "--adapter-orders", type=int, help="adapters: orders per platform (20000; quick 2000)"
    )
    p.add_argument("--adapter-reps", type=int, default=3, help="adapters: repetitions (3)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke check (~30 s)")
    p.add_argument("--parts", default="adapters,e2e", help="comma-separated subset of adapters,e2e")
    p.add_argument(
        "--engines", default=",".join(ENGINES), help="end to end: subset of baseline,hub"
    )
    p.add_argument("--skus", type=int, default=200, help="catalogue SKUs (200)")
    p.add_argument("--warmup", type=int, help="unmeasured orders per engine first (300; quick 100)")
    p.add_argument("--pg-pool", type=int, default=32, help="baseline: psycopg connections (32)")
    p.add_argument(
        "--shards", type=int, default=os.cpu_count() or 2, help="the hub's inventory shards"
    )
    p.add_argument(
        "--profile",
        type=Path,
        help="record the hub (and its children) with py-spy during the last round's "
        "new-order pass, collapsed stacks to this file (perturbs that pass)",
    )
    p.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: sample only threads holding the GIL (Python CPU work)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=0,
        help="hub: send concurrent orders together in IngestPlatformOrders calls of at most "
        "this many (0: one IngestPlatformOrder per order)",
    )
    p.add_argument("--seed", type=int, default=20261125)
    args = p.parse_args(argv)
    args.orders = args.orders or (1000 if args.quick else 5000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.adapter_orders = args.adapter_orders or (2000 if args.quick else 20_000)
    if args.warmup is None:
        args.warmup = 100 if args.quick else 300
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not set(args.parts) <= {"adapters", "e2e"} or not set(args.engines) <= set(ENGINES):
        p.error(f"unknown part or engine: {args.parts} {args.engines}")
    if min(args.orders, args.clients, args.rounds, args.adapter_orders, args.skus) < 1:
        p.error("--orders, --clients, --rounds, --adapter-orders and --skus must be positive")
    if not 0 <= args.repeats <= 1 or args.adapter_reps < 1 or args.pg_pool < 1:
        p.error("--repeats must be in [0, 1]; --adapter-reps and --pg-pool positive")
    return args


def log(message: str) -> None:
    """Progress, on stderr so stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- a pass


@dataclass(slots=True)
class Pass:
    """One engine taking one list of orders: timings, answers, CPU."""

    engine: str
    round: int
    kind: str  # "new" or "repeat"
    orders: int
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    wrong_count: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Orders per second, first call to last answer."""
        return self.orders / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile (nearest rank), in ms."""
        values = sorted(self.latencies_ms)
        if not values:
            return math.nan
        return values[max(1, math.ceil(p / 100 * len(values))) - 1]

    def cpu_us(self, group: str) -> float:
        """CPU microseconds per order a process group used during the pass."""
        return self.cpu.get(group, 0.0) / self.orders * 1e6 if self.orders else 0.0


class CpuMeter(cpu.CpuMeter):
    """:class:`bench.cpu.CpuMeter`, without counting an exiting PostgreSQL backend twice.

    When a backend exits, the postmaster's children's time grows by the CPU of its whole
    life, which the base meter counts; the part it had used before the meter started was
    counted in an earlier run (or in none), so it is taken off here. The hub's connection
    pool closes and opens a few connections now and then: without this, a pass after a
    long one was charged seconds of PostgreSQL CPU it did not use. (A backend exiting in
    the instant between the two snapshots below would be undercounted by its earlier CPU.)
    """

    def stop(self) -> dict[str, float]:
        """CPU seconds per category, as the base meter, PostgreSQL corrected."""
        before = self._before
        used = super().stop()
        alive = cpu._snapshot()
        earlier = sum(
            seconds
            for pid, (_, seconds, category) in before.items()
            if category == "postgres" and pid not in alive
        )
        if earlier and "postgres" in used:
            used["postgres"] = max(0.0, used["postgres"] - earlier)
        return used


Call = Callable[[Ingest], Awaitable[tuple[bool, str]]]
"""Ingest one order: (answered duplicate, queue it waits in)."""


async def drive(run: Pass, orders: list[Ingest], clients: int, call: Call, repeat: bool) -> None:
    """``clients`` tasks take the orders in turn; each answer is checked as it comes."""
    source: Iterator[Ingest] = iter(orders)
    clock = time.perf_counter

    async def client() -> None:
        for order in source:
            t0 = clock()
            try:
                duplicate, queue = await call(order)
            except Exception as err:  # counted and reported; the pass goes on
                run.latencies_ms.append((clock() - t0) * 1000)
                name = err.code().name if isinstance(err, grpc.aio.AioRpcError) else ""
                run.errors[f"{type(err).__name__} {name}".strip()] += 1
                if sum(run.errors.values()) <= 3:
                    log(f"  {run.engine}: {order.platform} {order.platform_order_id}: {err!r}")
                continue
            run.latencies_ms.append((clock() - t0) * 1000)
            if duplicate != repeat or (not repeat and queue != order.queue):
                run.wrong_count += 1
                if len(run.wrong) < 3:
                    run.wrong.append(
                        f"{order.platform} {order.platform_order_id}: duplicate={duplicate} "
                        f"queue={queue!r}, expected duplicate={repeat} queue={order.queue!r}"
                    )

    meter = CpuMeter()
    started = clock()
    await asyncio.gather(*(client() for _ in range(clients)))
    run.elapsed_s = clock() - started
    run.cpu = meter.stop()


# --------------------------------------------------------------------------- engines


@dataclass(slots=True)
class Expected:
    """What every order ingested so far must have left in the books."""

    orders: list[Ingest] = field(default_factory=list)

    def per_platform(self) -> Counter[str]:
        """Stored orders per platform."""
        return Counter(o.platform for o in self.orders)

    def per_queue(self) -> Counter[str]:
        """Stored orders per queue."""
        return Counter(o.queue for o in self.orders)


class HubRig:
    """A running hub and a channel to it."""

    def __init__(self, hub: hub_engine.HubProcess, engine: Engine, batch: int = 0) -> None:
        self.hub = hub
        self.engine = engine
        # With batch > 0, concurrent calls travel together in IngestPlatformOrders calls of
        # at most ``batch`` orders (at most two calls in flight), as a bulk importer sends.
        self.batch = batch
        self._waiting: list[
            tuple[order_pb2.IngestPlatformOrderRequest, asyncio.Future[tuple[bool, str]]]
        ] = []
        self._in_flight = 0
        # Orders come in as a marketplace connector sends them (its token with each call);
        # set-up is an admin's.
        self.channel = grpc.aio.insecure_channel(hub.target)
        self._auth = hub_engine.token_metadata("integration")
        self.admin_channel = hub_engine.channel(hub.target, "admin")
        self.orders = order_pb2_grpc.OrderServiceStub(self.channel)
        self.stock = stock_pb2_grpc.StockServiceStub(self.admin_channel)
        self._requests: dict[tuple[str, str, str], order_pb2.IngestPlatformOrderRequest] = {}

    async def load_master_data(self, skus: list[str]) -> None:
        """The warehouse, every SKU with its stock, and each platform's SKU codes."""
        await self.stock.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id=WAREHOUSE_ID,
                name="Ingestion benchmark warehouse",
                province="上海市",
                city="上海市",
                district="青浦区",
                daily_capacity=100_000,
            ),
            timeout=RPC_TIMEOUT_S,
        )
        gate = asyncio.Semaphore(32)

        async def sku(name: str) -> None:
            async with gate:
                await self.stock.UpsertSku(
                    stock_pb2.UpsertSkuRequest(
                        sku=name, name=name, category="ingest", weight_grams=300
                    ),
                    timeout=RPC_TIMEOUT_S,
                )
                await self.stock.SetStock(
                    stock_pb2.SetStockRequest(
                        warehouse_id=WAREHOUSE_ID,
                        sku=name,
                        on_hand=ON_HAND,
                        reason="ingestion benchmark",
                    ),
                    timeout=RPC_TIMEOUT_S,
                )

        async def mapping(platform_name: str, name: str) -> None:
            async with gate:
                await self.stock.MapPlatformSku(
                    stock_pb2.MapPlatformSkuRequest(
                        platform=platform_name,
                        shop_id=shop_of(platform_name),
                        platform_sku=code_of(platform_name, name),
                        sku=name,
                    ),
                    timeout=RPC_TIMEOUT_S,
                )

        await asyncio.gather(*(sku(name) for name in skus))
        await asyncio.gather(*(mapping(p, name) for p in PLATFORMS for name in skus))

    def prepare(self, orders: list[Ingest]) -> None:
        """Build the requests before the clock starts."""
        for o in orders:
            self._requests[o.key] = order_pb2.IngestPlatformOrderRequest(
                platform=o.platform, shop_id=o.shop_id, payload=o.payload
            )

    async def call(self, order: Ingest) -> tuple[bool, str]:
        """One ``IngestPlatformOrder`` (or a place in the next ``IngestPlatformOrders``)."""
        if self.batch:
            future: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
            self._waiting.append((self._requests[order.key], future))
            self._send_batches()
            return await future
        answer = await self.orders.IngestPlatformOrder(
            self._requests[order.key], timeout=RPC_TIMEOUT_S, metadata=self._auth
        )
        return answer.duplicate, answer.order.queue

    def _send_batches(self) -> None:
        while self._waiting and self._in_flight < 2:
            batch = self._waiting[: self.batch]
            del self._waiting[: self.batch]
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(
        self,
        batch: list[tuple[order_pb2.IngestPlatformOrderRequest, asyncio.Future[tuple[bool, str]]]],
    ) -> None:
        try:
            answer = await self.orders.IngestPlatformOrders(
                order_pb2.IngestPlatformOrdersRequest(orders=[r for r, _ in batch]),
                timeout=RPC_TIMEOUT_S,
                metadata=self._auth,
            )
        except Exception as err:
            for _, future in batch:
                future.set_exception(err)
        else:
            for (_, future), result in zip(batch, answer.results, strict=True):
                if result.code:
                    future.set_exception(RuntimeError(f"code {result.code}: {result.message}"))
                else:
                    future.set_result((result.duplicate, result.order.queue))
        finally:
            self._in_flight -= 1
            self._send_batches()

    def check(self, expected: Expected, skus: list[str]) -> list[str]:
        """The hub's tables against what the orders so far must have left."""
        problems = []
        with self.engine.connect() as conn:
            per_platform = Counter(
                {
                    str(p): int(n)
                    for p, n in conn.execute(
                        text("SELECT platform, count(*) FROM orders GROUP BY platform")
                    )
                }
            )
            per_queue = Counter(
                {
                    str(q): int(n)
                    for q, n in conn.execute(
                        text("SELECT queue, count(*) FROM orders GROUP BY queue")
                    )
                }
            )
            reserved = {
                str(s): int(n)
                for s, n in conn.execute(
                    text("SELECT sku, reserved FROM stock_levels WHERE warehouse_id = :w"),
                    {"w": WAREHOUSE_ID},
                )
            }
            lines = int(
                conn.execute(
                    text(
                        "SELECT coalesce(sum(quantity), 0) FROM reservation_lines "
                        "WHERE status = 'HELD'"
                    )
                ).scalar_one()
            )
            held_events = int(
                conn.execute(
                    text("SELECT count(*) FROM order_events WHERE kind = 'stock_held'")
                ).scalar_one()
            )
            letters = int(conn.execute(text("SELECT count(*) FROM dead_letters")).scalar_one())
        problems += _compare_books(
            "hub", expected, skus, per_platform, reserved, lines, per_queue=per_queue
        )
        holds = sum(1 for o in expected.orders if o.holds)
        if held_events != holds:
            problems.append(f"hub: {held_events} stock_held events, {holds} orders held")
        if letters:
            problems.append(f"hub: {letters} dead letters")
        return problems

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close(None)
        await self.admin_channel.close(None)


class BaselineRig:
    """The typical-OMS baseline on a pool of psycopg connections."""

    def __init__(self, conninfo: str, pool_size: int) -> None:
        self.conninfo = conninfo
        self.pool = ConnectionPool(conninfo, pool_size)

    async def call(self, order: Ingest) -> tuple[bool, str]:
        """One order through the baseline."""
        answer = await ingest_baseline.ingest(
            self.pool, order.platform, order.shop_id, order.payload
        )
        return answer.duplicate, answer.queue

    async def check(self, expected: Expected, skus: list[str]) -> list[str]:
        """The baseline's tables against what the orders so far must have left."""
        books = await ingest_baseline.books(self.conninfo)
        return _compare_books(
            "baseline", expected, skus, books.orders, books.reserved, books.reserved_lines
        )


def _compare_books(
    name: str,
    expected: Expected,
    skus: list[str],
    per_platform: Counter[str],
    reserved: dict[str, int],
    held_line_units: int,
    *,
    per_queue: Counter[str] | None = None,
) -> list[str]:
    problems = []
    want_platform = expected.per_platform()
    if per_platform != want_platform:
        problems.append(f"{name}: orders per platform {dict(per_platform)}, want {want_platform}")
    if per_queue is not None and per_queue != expected.per_queue():
        problems.append(f"{name}: orders per queue {dict(per_queue)}, want {expected.per_queue()}")
    units = held_units(expected.orders)
    off = [s for s in skus if reserved.get(s, 0) != units.get(s, 0)]
    if off:
        s = off[0]
        problems.append(
            f"{name}: reserved differs on {len(off)} SKUs (e.g. {s}: {reserved.get(s, 0)}, "
            f"want {units.get(s, 0)}); total {sum(reserved.values())}, "
            f"want {sum(units.values())}"
        )
    if held_line_units != sum(units.values()):
        problems.append(
            f"{name}: {held_line_units} units in held reservation lines, want {sum(units.values())}"
        )
    return problems


# --------------------------------------------------------------------------- the run


@dataclass(slots=True)
class Bench:
    """Everything one invocation measured."""

    args: argparse.Namespace
    adapters: list[ingest_adapters.AdapterResult] = field(default_factory=list)
    passes: list[Pass] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    hub_pid: int = 0
    profile: str = ""

    def fail(self, problems: list[str]) -> None:
        """Note failed checks."""
        for problem in problems:
            log(f"CHECK FAILED: {problem}")
        self.failures += problems


def round_orders(gen: Generator, args: argparse.Namespace, number: int) -> list[Ingest]:
    """The unique orders of a round (0 is the unmeasured warm-up)."""
    count = args.warmup if number == 0 else args.orders
    return gen.mixed(count, ROUND_STRIDE * (number + 1))


def start_profile(pid: int, path: Path, gil: bool) -> subprocess.Popen[bytes] | None:
    """py-spy recording a process and its children (collapsed stacks), if installed."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        log("py-spy is not installed; no profile")
        return None
    command = [str(spy), "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
    command += ["--format", "raw", "--output", str(path), *(["--gil"] if gil else [])]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen[bytes] | None) -> None:
    """Stop py-spy so it writes its file."""
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(10)


async def run_pass(
    bench: Bench,
    engine: str,
    number: int,
    kind: str,
    orders: list[Ingest],
    call: Call,
    spy_pid: int = 0,
) -> Pass:
    """Drive one pass and keep its result (round 0, the warm-up, is not kept)."""
    run = Pass(engine, number, kind, len(orders))
    args = bench.args
    spy = (
        start_profile(spy_pid, args.profile, args.profile_gil) if spy_pid and args.profile else None
    )
    if spy is not None:
        await asyncio.sleep(1.0)  # py-spy attaches
    try:
        await drive(run, orders, args.clients, call, repeat=kind == "repeat")
    finally:
        stop_profile(spy)
    if spy is not None:
        bench.profile = f"py-spy: {engine} round {number} {kind} pass → {args.profile}"
    label = "warm-up" if number == 0 else f"round {number}"
    log(
        f"  {engine:<28} {label} {kind:<6} {run.orders:>6,} orders {run.rate:>7,.0f}/s  "
        f"p50 {run.percentile(50):6.1f} ms  p99 {run.percentile(99):6.1f} ms  "
        f"CPU {describe(run.cpu)}"
    )
    problems = []
    if run.errors:
        problems.append(f"{engine} round {number} {kind}: errors {dict(run.errors)}")
    if run.wrong_count:
        problems.append(
            f"{engine} round {number} {kind}: {run.wrong_count} wrong answers, e.g. "
            + "; ".join(run.wrong)
        )
    bench.fail(problems)
    if number > 0:
        bench.passes.append(run)
    return run


async def run_e2e(bench: Bench, url: str, gen: Generator, skus: list[str]) -> None:
    """Rounds of new orders then repeats, the engines alternating which goes first."""
    args = bench.args
    conninfo = libpq_url(url)
    rounds = [(n, round_orders(gen, args, n)) for n in range(args.rounds + 1)]
    log(
        f"generated {sum(len(o) for _, o in rounds):,} orders "
        f"({args.warmup} warm-up + {args.rounds} x {args.orders:,}); checking the generator"
    )
    await asyncio.to_thread(self_check, [o for _, orders in rounds for o in orders])
    repeats = {n: gen.rng.sample(orders, round(len(orders) * args.repeats)) for n, orders in rounds}
    baseline: BaselineRig | None = None
    rig: HubRig | None = None
    hub: hub_engine.HubProcess | None = None
    engine = make_engine(url, pool_size=2)
    try:
        if "baseline" in args.engines:
            log(f"baseline: tables, mappings and stock; {args.pg_pool} psycopg connections")
            await ingest_baseline.setup(conninfo, skus, ON_HAND)
            baseline = BaselineRig(conninfo, args.pg_pool)
            await baseline.pool.open()
        if "hub" in args.engines:
            log(f"hub: starting orderhub up ({args.shards} shards)")
            # Intake alone is measured here; routing has its own benchmark (bench.routing).
            hub = await hub_engine.start_hub(
                url, args.shards, extra_env={"ORDERHUB_AUTO_ROUTE": "0"}
            )
            bench.hub_pid = hub.proc.pid
            rig = HubRig(hub, engine, args.batch)
            started = time.monotonic()
            await rig.load_master_data(skus)
            log(
                f"hub SERVING on {hub.target} (pid {hub.proc.pid}); {len(skus)} SKUs and "
                f"{len(skus) * len(PLATFORMS):,} mappings in {time.monotonic() - started:.1f}s"
            )
            await asyncio.sleep(1.0)
        expected = Expected()
        for number, orders in rounds:
            expected.orders += orders
            turn: list[tuple[str, BaselineRig | HubRig | None]] = [
                ("baseline", baseline),
                ("hub", rig),
            ]
            if number % 2 == 0:
                turn.reverse()
            for name, engine_rig in turn:
                if engine_rig is None:
                    continue
                label = BASELINE
                if name == "hub":
                    label = HUB_BATCH.format(args.batch) if args.batch else HUB
                profile = (
                    bench.hub_pid if isinstance(engine_rig, HubRig) and number == args.rounds else 0
                )
                if isinstance(engine_rig, HubRig):
                    engine_rig.prepare(orders)
                    await run_pass(bench, label, number, "new", orders, engine_rig.call, profile)
                    await run_pass(bench, label, number, "repeat", repeats[number], engine_rig.call)
                    problems = await asyncio.to_thread(engine_rig.check, expected, skus)
                else:
                    await run_pass(bench, label, number, "new", orders, engine_rig.call)
                    await run_pass(bench, label, number, "repeat", repeats[number], engine_rig.call)
                    problems = await engine_rig.check(expected, skus)
                bench.fail(problems)
                if not problems:
                    bench.checks.append(f"{label}, after round {number}")
    except BaseException:
        if hub is not None:
            log(f"hub log tail:\n{hub.log_tail()}")
        raise
    finally:
        if rig is not None:
            await rig.close()
        if baseline is not None:
            await baseline.pool.close()
        if hub is not None:
            log("stopping the hub")
            await asyncio.to_thread(hub_engine.stop_hub, hub)
        engine.dispose()


# --------------------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def e2e_table(passes: list[Pass]) -> str:
    """Medians over the rounds per engine and pass, with the hub's ratio to the baseline."""
    rows = [
        "| engine | pass | orders/round | rounds | orders/s (median) | range orders/s "
        "| p50 ms | p99 ms | vs baseline (median of rounds) |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    base = {(p.round, p.kind): p.rate for p in passes if p.engine == BASELINE}
    engines = [BASELINE, *sorted({p.engine for p in passes} - {BASELINE})]
    for engine in engines:
        for kind in ("new", "repeat"):
            runs = [p for p in passes if p.engine == engine and p.kind == kind]
            if not runs:
                continue
            rates = [p.rate for p in runs]
            ratios = [p.rate / base[p.round, kind] for p in runs if base.get((p.round, kind))]
            ratio = f"{_median(ratios):.2f}x" if ratios else "-"
            if engine == BASELINE:
                ratio = "1x" if ratios else "-"
            elif len(ratios) > 1:
                ratio += f" ({min(ratios):.2f}-{max(ratios):.2f})"
            rows.append(
                f"| {engine} | {'new orders' if kind == 'new' else 'repeats'} "
                f"| {runs[0].orders:,} | {len(runs)} | {_median(rates):,.0f} "
                f"| {min(rates):,.0f}-{max(rates):,.0f} "
                f"| {_median([p.percentile(50) for p in runs]):.1f} "
                f"| {_median([p.percentile(99) for p in runs]):.1f} | {ratio} |"
            )
    return "\n".join(rows)


def rounds_table(passes: list[Pass]) -> str:
    """Every pass, with the CPU each process group spent per order."""
    rows = [
        "| round | engine | pass | orders/s | p50 ms | p99 ms | CPU µs/order |",
        "|---:|---|---|---:|---:|---:|---|",
    ]
    for p in sorted(passes, key=lambda p: (p.round, p.engine != BASELINE, p.kind)):
        cpu = ", ".join(
            f"{name} {p.cpu_us(name):,.0f}"
            for name, s in sorted(p.cpu.items(), key=lambda kv: -kv[1])
            if s / max(p.orders, 1) * 1e6 >= 10
        )
        rows.append(
            f"| {p.round} | {p.engine} | {p.kind} | {p.rate:,.0f} | {p.percentile(50):.1f} "
            f"| {p.percentile(99):.1f} | {cpu} |"
        )
    return "\n".join(rows)


def machine(engine: Engine) -> str:
    """A one-line description of where the benchmark ran."""
    with engine.connect() as conn:
        pg = str(conn.execute(text("SHOW server_version")).scalar_one())
    return (
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, PostgreSQL {pg}, {platform.system()}"
    )


def report(bench: Bench, about: str, started: float) -> str:
    """The markdown report printed at the end."""
    args = bench.args
    command = "python -m bench.ingest" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [
        f"Date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"Command: `{command}`",
        f"Machine: {about}",
        f"Wall time {time.monotonic() - started:.0f}s",
        "",
    ]
    if bench.adapters:
        lines += [
            f"Adapters: {args.adapter_orders:,} distinct orders per platform, translated "
            f"{args.adapter_reps} times (target {ADAPTER_TARGET:,.0f} orders/s):",
            "",
            ingest_adapters.markdown_table(bench.adapters, ADAPTER_TARGET),
            "",
        ]
    if bench.passes:
        hub_new = [p.rate for p in bench.passes if p.engine != BASELINE and p.kind == "new"]
        lines += [
            f"End to end: {args.rounds} round(s) of {args.orders:,} unique orders, then "
            f"{round(args.orders * args.repeats):,} of them again; {args.clients} in flight; "
            f"{args.skus} SKUs; hub {args.shards} shards; baseline {args.pg_pool} connections; "
            f"{args.warmup} unmeasured warm-up orders per engine first"
            + (
                f" (target {E2E_TARGET:,.0f} orders/s: "
                f"{'met' if _median(hub_new) >= E2E_TARGET else 'missed'})"
                if hub_new
                else ""
            )
            + ":",
            "",
            e2e_table(bench.passes),
            "",
            "Each pass (CPU per order by process group, from /proc):",
            "",
            rounds_table(bench.passes),
            "",
        ]
    if bench.checks:
        lines.append("Database checks passed: " + "; ".join(bench.checks))
    if bench.profile:
        lines.append(bench.profile)
    if bench.failures:
        lines += ["", "FAILURES:"] + [f"- {f}" for f in bench.failures]
    return "\n".join(lines)


async def amain(bench: Bench, url: str) -> None:
    """The parts asked for, adapters first."""
    args = bench.args
    gen = Generator(catalogue(args.skus), args.seed)
    if "adapters" in args.parts:
        log(f"adapters: {args.adapter_orders:,} orders per platform, {args.adapter_reps} reps")
        bench.adapters = await asyncio.to_thread(
            ingest_adapters.run, gen, PLATFORMS, args.adapter_orders, args.adapter_reps
        )
        for r in bench.adapters:
            log(f"  {r.platform:<12} {r.median_rate:>8,.0f}/s  {r.median_us:6.1f} µs/order")
            bench.fail(r.problems[:3])
    if "e2e" in args.parts:
        await run_e2e(bench, url, gen, catalogue(args.skus))


def main(argv: list[str] | None = None) -> int:
    """Recreate the database, run the parts, print the report."""
    args = parse_args(argv)
    started = time.monotonic()
    os.environ.update(EmbeddedRay.environment())
    url = bench_url(DATABASE)
    bench = Bench(args)
    if "e2e" in args.parts:
        log(f"recreating the benchmark database {make_url(url).database!r}")
        recreate(url)
    engine = make_engine(url if "e2e" in args.parts else bench_url("postgres"), pool_size=1)
    try:
        asyncio.run(amain(bench, url))
        print(report(bench, machine(engine), started))
    finally:
        engine.dispose()
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
