"""WMS sync benchmark: stock events from JetStream into OrderHub, against a per-event consumer.

Run ``python -m bench.wms_sync`` (``--quick`` for a smoke check). A nats-server of its
own (JetStream, temporary store) carries the events; the benchmark database on the
PostgreSQL at 127.0.0.1 is dropped and recreated. Each engine gets the same events:

- ``max``: ``--events`` messages published as fast as JetStream acks them; events/s is
  measured from the first publish until the engine has applied the last one;
- ``open``: ``--rate`` events/s for ``--duration`` seconds (an open loop), to see the
  latency at a fixed load.

During both, a prober publishes ``INBOUND +1`` on dedicated probe levels every 20 ms and
polls (``GetAvailability`` for the hub, a ``SELECT`` for the baseline) until each shows:
the publish → visible latency. At the end of each phase every stock level must equal
what the benchmark computed from the events it published, and the ledger must have
exactly one row per distinct event id; the exit status is 1 otherwise.
docs/benchmarks.md explains the engines and records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import nats
import psycopg
from nats.js import JetStreamContext
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from bench import hub_engine, wms_baseline
from bench.cpu import CpuMeter, describe
from bench.database import bench_url, libpq_url, recreate
from bench.wms_load import (
    Book,
    Catalogue,
    EventSource,
    Key,
    Phase,
    Prober,
    Publisher,
    PublishReport,
    make_catalogue,
    percentile,
)
from hub.domain.sharding import shard_of
from hub.embedded import EmbeddedNats
from hub.store.db import make_engine
from hub.streams import ensure_stream
from orderhub.v1 import stock_pb2, stock_pb2_grpc, wms_pb2, wms_pb2_grpc

ENGINES = ("baseline", "hub")
DATABASE = "orderhub_bench_wms"
HUB = "hub (orderhub up)"
BASELINE = "baseline (PG txn per event)"
HUB_PREFIX = "wms.events"
RPC_TIMEOUT_S = 60.0
WAIT_TIMEOUT_S = 900.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks the defaults, explicit flags win."""
    p = argparse.ArgumentParser(prog="python -m bench.wms_sync", description=__doc__)
    p.add_argument("--events", type=int, help="messages in the max phase (50000; quick 5000)")
    p.add_argument(
        "--rate",
        type=float,
        help="open phase: events/s offered (5000); 0 skips the open phase",
    )
    p.add_argument("--duration", type=float, help="open phase: seconds (10; quick 2)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    p.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)}",
    )
    p.add_argument("--batch", type=int, default=500, help="the hub's ORDERHUB_WMS_BATCH (500)")
    p.add_argument("--warehouses", type=int, default=5, help="warehouses (5)")
    p.add_argument("--skus", type=int, help="SKUs, each in every warehouse (1000; quick 200)")
    p.add_argument(
        "--shards", type=int, default=os.cpu_count() or 2, help="the hub's inventory shards"
    )
    p.add_argument(
        "--baseline-workers",
        type=int,
        default=32,
        help="baseline: connections applying events in parallel, each SKU on one (32)",
    )
    p.add_argument("--baseline-fetch", type=int, default=100, help="baseline: fetch size (100)")
    p.add_argument("--probe-ms", type=float, default=20.0, help="a probe every N ms (20)")
    p.add_argument("--poll-ms", type=float, default=10.0, help="probe poll interval, ms (10)")
    p.add_argument("--seed", type=int, default=20261124)
    args = p.parse_args(argv)
    args.events = args.events or (5000 if args.quick else 50_000)
    args.rate = 5000.0 if args.rate is None else args.rate
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.skus = args.skus or (200 if args.quick else 1000)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        p.error(f"unknown engine: {sorted(unknown)}")
    if args.events < 100 or args.rate < 0 or args.duration <= 0:
        p.error("--events must be at least 100, --rate at least 0, --duration positive")
    if min(args.batch, args.warehouses, args.skus, args.shards, args.baseline_workers) < 1:
        p.error("--batch, --warehouses, --skus, --shards and --baseline-workers must be positive")
    if args.probe_ms <= 0 or args.poll_ms <= 0:
        p.error("--probe-ms and --poll-ms must be positive")
    return args


def log(message: str) -> None:
    """Progress, on stderr so stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- engines


@dataclass(frozen=True, slots=True)
class Counts:
    """An engine's running totals."""

    applied: int
    duplicates: int
    failed: int
    last_applied_wall: float


class Rig(Protocol):
    """One engine, ready to consume: where to publish, how to read and count."""

    name: str
    prefix: str

    async def counts(self) -> Counts:
        """Events applied, repeats skipped, events refused (dead letters) so far."""
        ...

    async def read(self, key: Key) -> int:
        """A level's on hand, as a user of the engine sees it."""
        ...

    def levels(self) -> dict[Key, int]:
        """Every level's on hand in the database."""
        ...

    def ledger(self) -> tuple[int, int]:
        """Ledger rows with an event id, and distinct event ids among them."""
        ...

    def cpu_of_helpers(self) -> dict[str, float]:
        """CPU seconds of the engine's own child processes that report it themselves."""
        ...


class HubRig:
    """A hub subprocess: counts from ``WmsService.GetSyncStatus``, reads ``GetAvailability``."""

    name = HUB
    prefix = HUB_PREFIX

    def __init__(self, target: str, engine: Engine, warehouses: list[str]) -> None:
        self._channel = hub_engine.channel(target, "wms")
        self._stock = stock_pb2_grpc.StockServiceStub(self._channel)
        self._wms = wms_pb2_grpc.WmsServiceStub(self._channel)
        self._engine = engine
        self._warehouses = warehouses

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close(None)

    async def status(self) -> wms_pb2.GetSyncStatusResponse:
        """The hub's own view of the sync."""
        return await self._wms.GetSyncStatus(wms_pb2.GetSyncStatusRequest(), timeout=RPC_TIMEOUT_S)

    async def counts(self) -> Counts:
        s = await self.status()
        at = s.last_applied_at
        last = at.seconds + at.nanos / 1e9 if s.HasField("last_applied_at") else 0.0
        return Counts(s.applied, s.duplicates, s.dead_lettered, last)

    async def read(self, key: Key) -> int:
        sku, warehouse_id = key
        answer = await self._stock.GetAvailability(
            stock_pb2.GetAvailabilityRequest(sku=sku, warehouse_ids=[warehouse_id]),
            timeout=RPC_TIMEOUT_S,
        )
        return sum(level.on_hand for level in answer.levels)

    def levels(self) -> dict[Key, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT sku, warehouse_id, on_hand FROM stock_levels "
                    "WHERE warehouse_id = ANY(:w)"
                ),
                {"w": self._warehouses},
            )
            return {(r[0], r[1]): int(r[2]) for r in rows}

    def ledger(self) -> tuple[int, int]:
        with self._engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT event_id) FROM stock_ledger "
                    "WHERE event_id IS NOT NULL"
                )
            ).one()
        return int(row[0]), int(row[1])

    def cpu_of_helpers(self) -> dict[str, float]:
        return {}


class BaselineRig:
    """The baseline consumer process: shared counters, reads with ``SELECT``."""

    name = BASELINE
    prefix = wms_baseline.SUBJECT_PREFIX

    def __init__(self, consumer: wms_baseline.BaselineConsumer, conninfo: str) -> None:
        self.consumer = consumer
        self._conninfo = conninfo
        self._readers: dict[Key, psycopg.AsyncConnection[tuple[int]]] = {}

    async def close(self) -> None:
        """Close the probe connections."""
        for conn in self._readers.values():
            await conn.close()

    async def counts(self) -> Counts:
        self.consumer.check()
        s = self.consumer.shared
        return Counts(
            s.applied.value, s.duplicates.value, s.errors.value, s.last_applied_wall.value
        )

    async def read(self, key: Key) -> int:
        conn = self._readers.get(key)
        if conn is None:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            self._readers[key] = conn
        cur = await conn.execute(
            "SELECT on_hand FROM wms_baseline_stock WHERE sku = %s AND warehouse_id = %s", key
        )
        row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    def levels(self) -> dict[Key, int]:
        with psycopg.connect(self._conninfo) as conn:
            rows = conn.execute("SELECT sku, warehouse_id, on_hand FROM wms_baseline_stock")
            return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}

    def ledger(self) -> tuple[int, int]:
        with psycopg.connect(self._conninfo) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT event_id) FROM wms_baseline_ledger"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def cpu_of_helpers(self) -> dict[str, float]:
        return {"baseline consumer": self.consumer.shared.cpu_s.value}


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Row:
    """What one engine did in one phase."""

    engine: str
    phase: str
    messages: int
    duplicates: int
    probes: int
    elapsed_s: float
    publish: PublishReport
    latencies_ms: list[float]
    drain_s: float
    dups_once: bool = False
    checked: bool = False
    problems: list[str] = field(default_factory=list)
    cpu: str = ""
    note: str = ""

    @property
    def events(self) -> int:
        """Messages consumed: the load (repeats included) and the probes."""
        return self.messages + self.probes

    @property
    def rate(self) -> float:
        """Events consumed per second, first publish to last applied."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def markdown_table(rows: list[Row]) -> str:
    """The results, each compared with the baseline's rate in the same phase."""
    base = {r.phase: r.rate for r in rows if r.engine == BASELINE}
    lines = [
        "| engine | phase | events | events/s | publish rate/s | drain s "
        "| latency p50 / p90 / p99 / max ms (probes) | duplicates applied once | check "
        "| vs baseline |",
        "|---|---|---:|---:|---:|---:|---|:-:|:-:|---:|",
    ]
    for r in rows:
        b = base.get(r.phase)
        ratio = f"{r.rate / b:.1f}x" if b else "-"
        lat = (
            " / ".join(f"{percentile(r.latencies_ms, p):,.0f}" for p in (50, 90, 99, 100))
            + f" ({len(r.latencies_ms)})"
        )
        lines.append(
            f"| {r.engine} | {r.phase} | {r.events:,} | {r.rate:,.0f} | {r.publish.rate:,.0f} "
            f"| {r.drain_s:.1f} | {lat} | {'✓' if r.dups_once else '✗'} ({r.duplicates}) "
            f"| {'✓' if r.checked else '✗'} | {ratio} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- running


@dataclass(slots=True)
class Bench:
    """Everything an engine's run needs, and what the runs found."""

    args: argparse.Namespace
    catalogue: Catalogue
    phases: list[tuple[Phase, float | None]]
    nats_url: str
    js: JetStreamContext
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def watch(rig: Rig, before: Counts, prober: Prober, stop: asyncio.Event) -> None:
    """Progress every 5 s until ``stop``."""
    last = time.monotonic()
    prev = before.applied + before.duplicates
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)
        if stop.is_set():
            return
        c = await rig.counts()
        now = time.monotonic()
        done = c.applied + c.duplicates
        log(
            f"  {rig.name}: {done - before.applied - before.duplicates:,} consumed "
            f"({(done - prev) / (now - last):,.0f}/s), {prober.outstanding} probes outstanding"
        )
        last, prev = now, done


async def wait_for_counts(
    rig: Rig, before: Counts, applied: int, duplicates: int, timeout_s: float
) -> Counts:
    """Wait until the engine has applied ``applied`` new events and skipped ``duplicates``."""
    deadline = time.monotonic() + timeout_s
    while True:
        c = await rig.counts()
        if c.failed > before.failed:
            raise RuntimeError(f"{rig.name}: {c.failed - before.failed} events were refused")
        if c.applied - before.applied >= applied and c.duplicates - before.duplicates >= duplicates:
            return c
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{rig.name}: after {timeout_s:.0f}s only {c.applied - before.applied:,} of "
                f"{applied:,} applied, {c.duplicates - before.duplicates} of {duplicates} repeats"
            )
        await asyncio.sleep(0.1)


def cpu_line(used: dict[str, float], helpers: dict[str, float], publisher_s: float) -> str:
    """CPU per process group; the publisher and helpers that report their own are named."""
    used = dict(used)
    named = {"publisher": publisher_s, **helpers}
    other = used.pop("other", 0.0) - sum(named.values())
    used.update(named)
    if other > 0.05:
        used["other"] = other
    return describe(used)


async def run_phase(bench: Bench, rig: Rig, book: Book, phase: Phase, rate: float | None) -> Row:
    """Publish one phase's events while probing; wait until all are applied; check."""
    args = bench.args
    label = "max" if rate is None else f"open {rate:,.0f}/s"
    messages = phase.messages(rig.prefix)
    publisher = Publisher(bench.nats_url, messages, rate)
    await publisher.start()
    before = await rig.counts()
    helpers_before = rig.cpu_of_helpers()
    probe_levels = {k: book.on_hand[k] for k in bench.catalogue.probes}
    tag = f"{'hub' if rig.name == HUB else 'base'}-{phase.name}-probe"
    prober = Prober(
        bench.js,
        rig.prefix,
        probe_levels,
        rig.read,
        tag,
        interval_s=args.probe_ms / 1000,
        poll_s=args.poll_ms / 1000,
    )
    stop = asyncio.Event()
    finished = asyncio.Event()
    meter = CpuMeter()
    probing = asyncio.create_task(prober.run(stop))
    progress = asyncio.create_task(watch(rig, before, prober, finished))
    try:
        publisher.go()
        log(f"{rig.name}, {label}: publishing {len(messages):,} events")
        report = await publisher.done(WAIT_TIMEOUT_S)
        stop.set()
        log(
            f"  published {report.count:,} in {report.last_wall - report.first_wall:.1f}s "
            f"({report.rate:,.0f}/s, publisher CPU {report.cpu_s:.1f}s)"
        )
        await asyncio.wait_for(probing, WAIT_TIMEOUT_S)
        after = await wait_for_counts(
            rig, before, phase.distinct + len(prober.events), phase.duplicates, WAIT_TIMEOUT_S
        )
    finally:
        finished.set()
        stop.set()
        await asyncio.gather(progress, return_exceptions=True)
        if not probing.done():
            probing.cancel()
    used = meter.stop()
    helpers = {k: v - helpers_before.get(k, 0.0) for k, v in rig.cpu_of_helpers().items()}
    for event in phase.events:
        book.apply(event)
    for event in prober.events:
        book.apply(event)
    row = Row(
        engine=rig.name,
        phase=label,
        messages=len(messages),
        duplicates=phase.duplicates,
        probes=len(prober.events),
        elapsed_s=after.last_applied_wall - report.first_wall,
        publish=report,
        latencies_ms=prober.latencies_ms,
        drain_s=after.last_applied_wall - report.last_wall,
        cpu=cpu_line(used, helpers, report.cpu_s),
        note=f"{prober.reads:,} probe reads",
    )
    await asyncio.to_thread(check, rig, book, before, after, phase, row)
    bench.rows.append(row)
    log(
        f"  {rig.name}, {label}: {row.rate:,.0f} events/s, latency p50 "
        f"{percentile(row.latencies_ms, 50):,.0f} ms p99 {percentile(row.latencies_ms, 99):,.0f} "
        f"ms, drain {row.drain_s:.1f}s after the last publish, "
        f"{'OK' if row.checked and row.dups_once else 'FAILED: ' + '; '.join(row.problems)}"
    )
    if row.problems:
        bench.failures += [f"{rig.name}, {label}: {p}" for p in row.problems]
    return row


def check(rig: Rig, book: Book, before: Counts, after: Counts, phase: Phase, row: Row) -> None:
    """Every level as the book says; one ledger row per event id; repeats skipped."""
    levels = rig.levels()
    wrong = [(k, v, levels.get(k)) for k, v in book.on_hand.items() if levels.get(k) != v]
    extra = set(levels) - set(book.on_hand)
    if wrong:
        sample = ", ".join(f"{k[0]}@{k[1]} {got} (expected {want})" for k, want, got in wrong[:5])
        row.problems.append(f"{len(wrong)} of {len(book.on_hand)} levels are off: {sample}")
    if extra:
        row.problems.append(f"{len(extra)} levels nobody stocked")
    rows, distinct = rig.ledger()
    if rows != distinct or distinct != len(book.seen):
        row.problems.append(
            f"ledger has {rows:,} rows with {distinct:,} distinct event ids; "
            f"{len(book.seen):,} distinct ids were published"
        )
    dups = after.duplicates - before.duplicates
    applied = after.applied - before.applied
    wanted = phase.distinct + row.probes
    row.dups_once = dups == phase.duplicates and applied == wanted and rows == distinct
    if not row.dups_once:
        row.problems.append(
            f"{applied:,} applied (expected {wanted:,}), {dups} repeats skipped "
            f"(expected {phase.duplicates})"
        )
    row.checked = not wrong and not extra and rows == distinct == len(book.seen)


async def run_baseline(bench: Bench, url: str) -> None:
    """The per-event-transaction consumer, in its own process."""
    args = bench.args
    conninfo = libpq_url(url)
    log(
        f"baseline: tables, stream {wms_baseline.STREAM}, consumer with {args.baseline_workers} "
        "workers"
    )
    await asyncio.to_thread(wms_baseline.create_tables, conninfo, bench.catalogue.stock)
    await ensure_stream(bench.js, wms_baseline.STREAM, [f"{wms_baseline.SUBJECT_PREFIX}.>"])
    consumer = wms_baseline.BaselineConsumer(
        bench.nats_url, conninfo, args.baseline_workers, args.baseline_fetch
    )
    await consumer.start()
    rig = BaselineRig(consumer, conninfo)
    book = Book(bench.catalogue.stock)
    try:
        for phase, rate in bench.phases:
            await run_phase(bench, rig, book, phase, rate)
    finally:
        await rig.close()
        await asyncio.to_thread(consumer.stop)


async def load_hub(target: str, catalogue: Catalogue) -> None:
    """Warehouses, SKUs and starting stock through the StockService API."""
    async with hub_engine.channel(target, "admin") as channel:
        stub = stock_pb2_grpc.StockServiceStub(channel)
        for wh in catalogue.warehouses:
            await stub.UpsertWarehouse(
                stock_pb2.UpsertWarehouseRequest(
                    warehouse_id=wh,
                    name=f"WMS benchmark {wh}",
                    province="浙江省",
                    city="杭州市",
                    district="余杭区",
                    daily_capacity=100_000,
                ),
                timeout=RPC_TIMEOUT_S,
            )
        gate = asyncio.Semaphore(32)

        async def sku(name: str) -> None:
            async with gate:
                await stub.UpsertSku(
                    stock_pb2.UpsertSkuRequest(
                        sku=name, name=name, category="wms-bench", weight_grams=500
                    ),
                    timeout=RPC_TIMEOUT_S,
                )

        async def stock(key: Key, on_hand: int) -> None:
            async with gate:
                await stub.SetStock(
                    stock_pb2.SetStockRequest(
                        sku=key[0], warehouse_id=key[1], on_hand=on_hand, reason="wms benchmark"
                    ),
                    timeout=RPC_TIMEOUT_S,
                )

        await asyncio.gather(*(sku(s) for s in catalogue.skus + catalogue.probe_skus))
        await asyncio.gather(*(stock(k, n) for k, n in catalogue.stock.items()))


async def run_hub(bench: Bench, url: str) -> None:
    """A real hub, ``orderhub up``, consuming ``wms.events.>`` from the benchmark's NATS."""
    args = bench.args
    log(f"hub: starting orderhub up ({args.shards} shards, ORDERHUB_WMS_BATCH={args.batch})")
    hub = await hub_engine.start_hub(
        url,
        args.shards,
        extra_env={"ORDERHUB_NATS_URL": bench.nats_url, "ORDERHUB_WMS_BATCH": str(args.batch)},
    )
    engine = make_engine(url, pool_size=2)
    rig = HubRig(hub.target, engine, bench.catalogue.warehouses)
    try:
        levels = len(bench.catalogue.stock)
        log(f"hub SERVING on {hub.target}; {levels:,} levels through UpsertSku and SetStock")
        started = time.monotonic()
        await load_hub(hub.target, bench.catalogue)
        log(f"  master data loaded in {time.monotonic() - started:.1f}s")
        await asyncio.sleep(1.0)
        book = Book(bench.catalogue.stock)
        for phase, rate in bench.phases:
            await run_phase(bench, rig, book, phase, rate)
        status = await rig.status()
        log(f"  hub sync status: {str(status).replace(chr(10), ' ')}")
    except BaseException:
        log(f"hub log tail:\n{hub.log_tail()}")
        raise
    finally:
        await rig.close()
        engine.dispose()
        log("stopping the hub")
        await asyncio.to_thread(hub_engine.stop_hub, hub)


def probe_skus(shards: int, per_shard: int = 1) -> list[str]:
    """Probe SKU names spread over the hub's shards, ``per_shard`` on each."""
    chosen: dict[int, list[str]] = {}
    n = 0
    while sum(len(v) for v in chosen.values()) < shards * per_shard:
        name = f"WB-PROBE-{n}"
        got = chosen.setdefault(shard_of(name, shards), [])
        if len(got) < per_shard:
            got.append(name)
        n += 1
    return sorted(s for v in chosen.values() for s in v)


async def run_all(bench: Bench, url: str) -> None:
    """Every chosen engine, one after the other."""
    runs: dict[str, Callable[[Bench, str], Awaitable[None]]] = {
        "baseline": run_baseline,
        "hub": run_hub,
    }
    for name in ENGINES:
        if name not in bench.args.engines:
            continue
        try:
            await runs[name](bench, url)
        except Exception as err:
            log(f"{name} FAILED: {type(err).__name__}: {err}")
            bench.failures.append(f"{name}: {type(err).__name__}: {err}")


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
    command = "python -m bench.wms_sync" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    first = bench.phases[0][0]
    lines = [
        f"Date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"Command: `{command}`",
        f"Machine: {about}",
        f"{args.warehouses} warehouses x {args.skus:,} SKUs; max phase {args.events:,} events; "
        + (
            f"open phase {args.rate:,.0f}/s for {args.duration:g}s; "
            if args.rate
            else "no open phase; "
        )
        + f"hub: {args.shards} shards, batch {args.batch}; baseline: {args.baseline_workers} "
        f"workers, fetch {args.baseline_fetch}; a probe every {args.probe_ms:g} ms, polled "
        f"every {args.poll_ms:g} ms; wall time {time.monotonic() - started:.0f}s",
        "Event mix (max phase, distinct events): "
        + ", ".join(f"{k} {v:,}" for k, v in first.kinds.most_common())
        + f"; {first.clamped:,} deltas found less on hand than they took (left at 0)",
        "",
        markdown_table(bench.rows),
        "",
    ]
    lines += [
        f"- {r.engine}, {r.phase}: publish {r.publish.last_wall - r.publish.first_wall:.1f}s, "
        f"drain {r.drain_s:.1f}s after the last publish; {r.note}; CPU: {r.cpu}"
        for r in bench.rows
    ]
    if bench.failures:
        lines += ["", "FAILURES:"] + [f"- {f}" for f in bench.failures]
    return "\n".join(lines)


async def amain(args: argparse.Namespace, url: str, started: float) -> Bench:
    """Start NATS, generate the events, run the engines."""
    rng = random.Random(args.seed)
    catalogue = make_catalogue(args.warehouses, args.skus, probe_skus(args.shards), rng)
    source = EventSource(catalogue, rng)
    phases: list[tuple[Phase, float | None]] = [(source.phase("max", args.events), None)]
    if args.rate:
        phases.append((source.phase("open", round(args.rate * args.duration)), args.rate))
    log(
        f"{len(catalogue.stock):,} levels; phases: "
        + ", ".join(
            f"{p.name} {len(p.events):,} events ({p.duplicates} repeats)" for p, _ in phases
        )
    )
    with tempfile.TemporaryDirectory(prefix="orderhub-wms-bench-") as tmp:
        server = EmbeddedNats(Path(tmp) / "nats")
        nats_url = await asyncio.to_thread(server.start)
        log(f"nats-server with JetStream on {nats_url}")
        try:
            nc = await nats.connect(nats_url, name="bench-wms-prober")
            try:
                bench = Bench(args, catalogue, phases, nats_url, nc.jetstream())
                await run_all(bench, url)
            finally:
                await nc.close()
        finally:
            await asyncio.to_thread(server.stop)
    return bench


def main(argv: list[str] | None = None) -> int:
    """Recreate the database, run every engine, print the report."""
    args = parse_args(argv)
    started = time.monotonic()
    url = bench_url(DATABASE)
    log(f"recreating the benchmark database {make_url(url).database!r}")
    recreate(url)
    engine = make_engine(url, pool_size=2)
    try:
        bench = asyncio.run(amain(args, url, started))
        print(report(bench, machine(engine), started))
    finally:
        engine.dispose()
    return 1 if bench.failures or not bench.rows else 0


if __name__ == "__main__":
    sys.exit(main())
