"""Flash-sale benchmark: OrderHub's reservation engines against PostgreSQL row locks.

Run ``python -m bench.flash_sale`` (``--quick`` for a smoke check). Scenario A puts
every request on one hot SKU; scenario B spreads them over a catalogue, with some
two-SKU orders that span shards. Each engine runs in the same invocation, so they
are compared on the same (noisy) machine at the same time; docs/benchmarks.md
explains the engines and records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import sys
import time
from collections.abc import Awaitable
from datetime import datetime

from sqlalchemy import Engine, text

from bench import baseline, hub_engine
from bench.cpu import CpuMeter, describe
from bench.database import bench_url, check_books, insert_master_data, libpq_url, recreate, reset
from bench.workload import Result, Workload, catalogue, check_outcome, hot_sku, markdown_table
from hub.embedded import EmbeddedRay
from hub.store.db import make_engine

ENGINES = ("baseline", "actor", "grpc", "batch")
BASELINE = "baseline (PG row lock)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks the defaults, explicit flags win."""
    p = argparse.ArgumentParser(prog="python -m bench.flash_sale", description=__doc__)
    p.add_argument("--requests", type=int, help="requests per scenario (20000; quick 2000)")
    p.add_argument("--clients", type=int, help="concurrent clients (200; quick 50)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    p.add_argument("--skus", type=int, help="SKUs in scenario B (1000; quick 100)")
    p.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)}",
    )
    p.add_argument("--scenarios", default="A,B", help="comma-separated subset of A,B")
    p.add_argument(
        "--shards",
        type=int,
        default=os.cpu_count() or 2,
        help="inventory shard actors (one per core)",
    )
    p.add_argument(
        "--pg-pool", type=int, default=32, help="baseline connections in all processes (32)"
    )
    p.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="client processes driving the baseline and gRPC Reserve (1)",
    )
    p.add_argument(
        "--rate",
        type=float,
        help="open loop: offer this many requests/s (at most --clients in flight) to the "
        "baseline, the actor engine and gRPC Reserve, instead of a closed loop",
    )
    p.add_argument(
        "--hubs",
        type=int,
        default=1,
        help="hub processes serving gRPC, sharing one Ray cluster and one set of shards (1)",
    )
    p.add_argument("--batch-size", type=int, help="requests per ReserveBatch (500; quick 100)")
    p.add_argument("--batch-concurrency", type=int, default=4, help="ReserveBatch calls in flight")
    args = p.parse_args(argv)
    args.requests = args.requests or (2000 if args.quick else 20_000)
    args.clients = args.clients or (50 if args.quick else 200)
    args.skus = args.skus or (100 if args.quick else 1000)
    args.batch_size = args.batch_size or (100 if args.quick else 500)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    args.scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.engines) - set(ENGINES)
    if unknown or not set(args.scenarios) <= {"A", "B"}:
        p.error(f"unknown engine or scenario: {sorted(unknown) or args.scenarios}")
    return args


def workloads(tag: str, args: argparse.Namespace) -> list[Workload]:
    """The chosen scenarios, with SKU names private to one engine."""
    chosen = []
    if "A" in args.scenarios:
        chosen.append(hot_sku(tag, args.requests))
    if "B" in args.scenarios:
        chosen.append(catalogue(tag, args.requests, args.skus))
    return chosen


def log(message: str) -> None:
    """Progress, on stderr so stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Runner:
    """Runs engines one after the other and keeps their checked results."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.results: list[Result] = []
        self.failures: list[str] = []

    async def measure(self, run: Awaitable[Result]) -> None:
        """Run one engine on one workload, noting the CPU each process group used."""
        meter = CpuMeter()
        result = await run
        result.cpu = describe(meter.stop())
        self.record(result)

    def record(self, result: Result) -> None:
        """Check the outcome and the database's books, then keep the result."""
        try:
            check_outcome(result)
            check_books(self.engine, result)
        except AssertionError as err:
            self.failures.append(str(err))
            result.note = f"FAILED: {err}; {result.note}"
        self.results.append(result)
        w = result.workload
        log(
            f"{result.engine:<27} {w.scenario}: {result.rate:>9,.0f} req/s  "
            f"p50 {result.percentile(50):7.1f} ms  p99 {result.percentile(99):7.1f} ms  "
            f"granted {result.tally.granted_units}/{w.total_stock}  ({result.note})"
        )


async def run_all(args: argparse.Namespace, url: str, runner: Runner) -> None:
    """Every chosen engine on every chosen scenario."""
    engine = runner.engine
    if "baseline" in args.engines:
        chosen = workloads("PG", args)
        await asyncio.to_thread(insert_master_data, engine, chosen, with_stock=True)
        conninfo = libpq_url(url)
        for w in chosen:
            log(f"baseline, scenario {w.scenario} ({w.title})")
            await runner.measure(
                baseline.run(conninfo, w, args.clients, args.pg_pool, args.client_procs, args.rate)
            )
        await asyncio.to_thread(reset, engine)

    if "actor" in args.engines:
        from bench import actor_engine  # imports Ray: after main() set its environment

        chosen = workloads("ACTOR", args)
        log("actor engine: starting Ray and the shard actors")
        rig = await actor_engine.start(url, chosen, args.shards)
        try:
            for w in chosen:
                log(f"actor engine, scenario {w.scenario} ({w.title})")
                await runner.measure(actor_engine.run(rig, w, args.clients, args.rate))
        finally:
            actor_engine.stop(rig)
        await asyncio.to_thread(reset, engine)

    wants_grpc = "grpc" in args.engines
    wants_batch = "batch" in args.engines
    if wants_grpc or wants_batch:
        grpc_loads = workloads("GRPC", args) if wants_grpc else []
        batch_loads = workloads("BATCH", args) if wants_batch else []
        log(f"starting {args.hubs} hub(s) (orderhub up), each in a subprocess")
        hubs = await hub_engine.start_hubs(url, args.shards, args.hubs)
        target = hubs.target
        try:
            log(f"SERVING on {target}; loading master data over gRPC")
            await hub_engine.load_master_data(hubs.hubs[0].target, grpc_loads + batch_loads)
            await asyncio.sleep(1.0)
            for w in grpc_loads:
                log(f"gRPC Reserve, scenario {w.scenario} ({w.title})")
                await runner.measure(
                    hub_engine.run_reserve(target, w, args.clients, args.client_procs, args.rate)
                )
            for w in batch_loads:
                log(f"gRPC ReserveBatch, scenario {w.scenario} ({w.title})")
                await runner.measure(
                    hub_engine.run_batch(target, w, args.batch_size, args.batch_concurrency)
                )
        finally:
            await asyncio.to_thread(hub_engine.stop_hubs, hubs)


def machine(engine: Engine) -> str:
    """A one-line description of where the benchmark ran."""
    with engine.connect() as conn:
        pg = str(conn.execute(text("SHOW server_version")).scalar_one())
    return (
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, PostgreSQL {pg}, {platform.system()}"
    )


def report(args: argparse.Namespace, runner: Runner, about: str, started: float) -> str:
    """The markdown report printed at the end."""
    command = "python -m bench.flash_sale" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    lines = [
        f"Date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"Command: `{command}`",
        f"Machine: {about}",
        f"Requests per scenario: {args.requests:,}; concurrent clients: {args.clients}; "
        f"shards: {args.shards}; hub processes: {args.hubs}; "
        + (f"open loop at {args.rate:,.0f} requests/s offered; " if args.rate else "")
        + f"wall time {time.monotonic() - started:.0f}s",
        "",
        markdown_table(runner.results, BASELINE),
        "",
    ]
    lines += [
        f"- {r.engine}, {r.workload.scenario}: {r.note}"
        + (
            f"; {r.workload.multi_sku_orders:,} two-SKU orders"
            if r.workload.scenario == "B"
            else ""
        )
        + (f"; {r.checked}" if r.checked else "")
        + (f"; CPU: {r.cpu}" if r.cpu else "")
        for r in runner.results
    ]
    if runner.failures:
        lines += ["", "FAILURES:"] + [f"- {f}" for f in runner.failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Recreate the database, run every engine, print the report."""
    args = parse_args(argv)
    started = time.monotonic()
    # The same Ray settings as the hub's own head (read when Ray is imported).
    os.environ.update(EmbeddedRay.environment())
    url = bench_url()
    log(f"recreating the benchmark database {make_engine(url).url.database!r}")
    recreate(url)
    engine = make_engine(url, pool_size=2)
    runner = Runner(engine)
    try:
        asyncio.run(run_all(args, url, runner))
        print(report(args, runner, machine(engine), started))
    finally:
        engine.dispose()
    return 1 if runner.failures else 0


if __name__ == "__main__":
    sys.exit(main())
