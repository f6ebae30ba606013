"""Routing throughput: can background routing keep up with order intake?

Every paid order is routed once its stock is held: the router reads ATP from the inventory
actors, today's load and backlog from the database, decides, moves the hold and writes the
parcels, the ``routed`` event and ``ALLOCATED`` in one transaction. Intake takes about
1,000 orders a second on this machine (see "Benchmarks: order ingestion"), so routing must
do at least as many, or paid orders pile up unrouted.

The run: a hub in this process (PostgreSQL, the local NATS, a local Ray; background routing
off), the five demo warehouses, ``--skus`` SKUs stocked in every warehouse, and ``--orders``
paid Douyin orders to provinces drawn by population, each held by intake where the most
stock is. Then the same number of orders is routed twice:

- **one at a time**: ``Router.route_order`` for each order in turn (the baseline);
- **concurrently**: ``Router.reroute``, the background pass, ``ROUTE_CONCURRENCY`` in flight.

It prints orders/s, per-order latency (p50/p99) and how many holds moved, and checks that
every order ends ``ALLOCATED`` with its hold where its parcels say.

    python -m bench.routing_throughput            # 2,000 orders per pass
    python -m bench.routing_throughput --quick    # 300 per pass

It drops and recreates the database ``orderhub_bench_routing`` (or the one named by
``ORDERHUB_BENCH_DATABASE_URL``) and needs NATS at ``ORDERHUB_NATS_URL`` (default
``nats://127.0.0.1:4222``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.database import bench_url, recreate
from hub.app import Hub
from hub.demo import WAREHOUSES
from hub.domain.geo import PROVINCES
from hub.domain.orders import OrderStatus
from hub.routing import ROUTE_CONCURRENCY
from hub.settings import Settings
from hub.store.master_data import PlatformSku, Sku

SHOP = "bench-routing"
NATS_DEFAULT = "nats://127.0.0.1:4222"
INTAKE_RATE = 1000.0  # orders/s intake must keep up with (issue 4's target)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--orders", type=int, default=0, help="orders per pass (default 2000)")
    p.add_argument("--skus", type=int, default=50, help="SKUs in the catalogue")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--quick", action="store_true", help="300 orders per pass")
    args = p.parse_args(argv)
    if not args.orders:
        args.orders = 300 if args.quick else 2000
    return args


def log(message: str) -> None:
    """Progress, to stderr."""
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Pass:
    """One way of routing the same number of orders."""

    name: str
    orders: int
    seconds: float
    latencies_ms: list[float]
    moved: int

    @property
    def rate(self) -> float:
        """Orders routed per second."""
        return self.orders / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """A latency percentile in ms."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def douyin(order_id: str, province: str, lines: Sequence[tuple[str, int]], at: int) -> str:
    """A paid Douyin order (the shape ``adapters/douyin.py`` reads) to ``province``."""
    return json.dumps(
        {
            "order_id": order_id,
            "order_status": 2,
            "create_time": at,
            "pay_time": at,
            "update_time": at,
            "pay_amount": 5900 * len(lines),
            "post_amount": 0,
            "buyer_words": "",
            "seller_words": "",
            "post_addr": {
                "province": {"name": province},
                "city": {"name": ""},
                "town": {"name": ""},
                "encrypt_detail": "#enc#",
            },
            "sku_order_list": [
                {
                    "order_id": f"{order_id}-{n}",
                    "code": sku,
                    "item_num": qty,
                    "origin_amount": 5900 * qty,
                    "pay_amount": 5900 * qty,
                    "product_name": sku,
                    "after_sale_info": {
                        "after_sale_status": 0,
                        "after_sale_type": 0,
                        "refund_status": 0,
                    },
                }
                for n, (sku, qty) in enumerate(lines)
            ],
        },
        ensure_ascii=False,
    )


async def setup(hub: Hub, skus: list[str], orders: int) -> None:
    """Warehouses, SKUs stocked everywhere, and their Douyin mappings."""
    md = hub.master_data
    for w in WAREHOUSES:
        await asyncio.to_thread(md.upsert_warehouse, w)
        await hub.inventory.register_warehouse(w.warehouse_id)
    for n, sku in enumerate(skus):
        await asyncio.to_thread(md.upsert_sku, Sku(sku, sku, "home", 300 + 150 * (n % 20), 0))
        await hub.inventory.register_sku(sku, 0)
        await asyncio.to_thread(md.map_platform_sku, PlatformSku("douyin", SHOP, sku, sku))
        for w in WAREHOUSES:
            await hub.inventory.set_stock(sku, w.warehouse_id, orders * 2, reason="bench")


async def take_orders(hub: Hub, skus: list[str], count: int, rng: random.Random) -> list[str]:
    """Paid orders taken in through intake (each held); the hub's order ids."""
    provinces = [p for p in PROVINCES if p.domestic]
    weights = [p.population for p in provinces]
    at = int(time.time())
    payloads = []
    for _ in range(count):
        province = rng.choices(provinces, weights)[0]
        lines = [(sku, rng.randint(1, 2)) for sku in rng.sample(skus, rng.choice((1, 1, 2)))]
        payloads.append(douyin(uuid.uuid4().hex[:16], province.full, lines, at))
    saved = await asyncio.gather(*(hub.orders.ingest("douyin", SHOP, p) for p in payloads))
    return [
        s.stored.order_id
        for s in saved
        if s.stored.order.status is OrderStatus.PAID and s.stored.queue != "review"
    ]


async def route_one_at_a_time(hub: Hub, ids: list[str]) -> Pass:
    """The baseline: each order routed after the one before it."""
    latencies: list[float] = []
    moved = 0
    began = time.perf_counter()
    for order_id in ids:
        t0 = time.perf_counter()
        routed = await hub.router.route_order(order_id, why="bench")
        latencies.append((time.perf_counter() - t0) * 1000)
        moved += routed.moved
    return Pass("one at a time", len(ids), time.perf_counter() - began, latencies, moved)


async def route_concurrently(hub: Hub, ids: list[str]) -> Pass:
    """The background pass: ``ROUTE_CONCURRENCY`` orders in flight."""
    latencies: list[float] = []
    router = hub.router
    original = router.route_order

    async def timed(order_id: str, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return await original(order_id, **kwargs)  # type: ignore[arg-type]
        finally:
            latencies.append((time.perf_counter() - t0) * 1000)

    router.route_order = timed  # type: ignore[method-assign,assignment]
    try:
        began = time.perf_counter()
        done = await router.reroute(ids, "bench")
        seconds = time.perf_counter() - began
    finally:
        router.route_order = original  # type: ignore[method-assign]
    return Pass(f"concurrently ({ROUTE_CONCURRENCY} in flight)", done, seconds, latencies, -1)


async def check(hub: Hub, ids: list[str]) -> list[str]:
    """Every order ALLOCATED, with its hold where its parcels say."""
    problems = []
    for order_id in ids:
        stored = await asyncio.to_thread(hub.orders.store.get, order_id)
        parcels = await asyncio.to_thread(hub.router.store.routed, order_id)
        if stored is None or stored.order.status is not OrderStatus.ALLOCATED or not parcels:
            problems.append(f"{order_id}: not allocated with parcels")
            continue
        hold = await hub.inventory.get_reservation(stored.hold_key or order_id)
        held = sorted((ln.sku, ln.warehouse_id, ln.quantity) for ln in hold.lines)
        planned = sorted((sku, p.warehouse_id, q) for p in parcels for sku, q in p.lines)
        if held != planned:
            problems.append(f"{order_id}: hold {held} but parcels {planned}")
    return problems


def report(passes: Sequence[Pass], args: argparse.Namespace, when: datetime) -> str:
    """The markdown table."""
    base = passes[0].rate
    rows = [
        f"Run on {when:%Y-%m-%d at %H:%M} UTC with `python -m bench.routing_throughput"
        f"{' --quick' if args.quick else ''}` ({args.orders} orders per pass, {args.skus} SKUs, "
        f"5 warehouses x 8 carriers, PostgreSQL).",
        "",
        "| pass | orders | orders/s | p50 ms | p99 ms | vs one at a time "
        "| keeps up with 1,000/s intake |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in passes:
        rows.append(
            f"| {p.name} | {p.orders:,} | {p.rate:,.0f} | {p.percentile(50):.1f} | "
            f"{p.percentile(99):.1f} | {p.rate / base if base else 0:.1f}x | "
            f"{'yes' if p.rate >= INTAKE_RATE else 'no'} |"
        )
    return "\n".join(rows)


async def main(argv: list[str] | None = None) -> int:
    """Run both passes and print the report; 1 when a check failed."""
    args = parse_args(argv)
    rng = random.Random(args.seed)
    url = bench_url("orderhub_bench_routing")
    recreate(url)
    skus = [f"RT-{n:03d}" for n in range(args.skus)]
    with tempfile.TemporaryDirectory(prefix="orderhub-routing-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            grpc_addr="127.0.0.1:0",
            database_url=url,
            nats_url=os.environ.get("ORDERHUB_NATS_URL", NATS_DEFAULT),
            ray_namespace=f"bench-{uuid.uuid4().hex[:8]}",
            wms_consumer=f"bench-{uuid.uuid4().hex[:8]}",
            wms_deliver="new",
            carrier_consumer=f"bench-{uuid.uuid4().hex[:8]}",
            carrier_deliver="new",
            http_addr="",
            auto_route=False,
        )
        hub = Hub(settings)
        log("starting a hub (PostgreSQL, local Ray)")
        await hub.start()
        try:
            await setup(hub, skus, args.orders * 2)
            passes = []
            problems: list[str] = []
            for route in (route_one_at_a_time, route_concurrently):
                log(f"taking {args.orders} paid orders in")
                ids = await take_orders(hub, skus, args.orders, rng)
                log(f"routing {len(ids)} orders {route.__name__.replace('_', ' ')}")
                result = await route(hub, ids)
                passes.append(result)
                log(f"{result.name}: {result.rate:,.0f} orders/s")
                problems += await check(hub, ids)
            when = datetime.now(UTC)
        finally:
            await hub.stop()
    print(report(passes, args, when))
    if problems:
        print("\nCHECK FAILED:\n" + "\n".join(problems[:20]))
        return 1
    print("\nEvery order ended ALLOCATED with its hold where its parcels say.")
    median = statistics.median(passes[1].latencies_ms) if passes[1].latencies_ms else 0.0
    log(f"done; concurrent median latency {median:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
