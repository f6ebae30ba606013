"""The actor engine alone: ``Inventory`` over the Ray shard actors, in this process.

No gRPC: concurrent asyncio tasks call ``Inventory.reserve`` directly, so this
measures the shard actors, the hub-side batching and the group commit to PostgreSQL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import ray
from sqlalchemy import Engine

from actors.inventory import start_shards
from bench.database import insert_master_data
from bench.drive import Outcome, drive, open_loop
from bench.workload import WAREHOUSE_ID, Order, Result, Workload
from hub.domain.inventory import InsufficientStock
from hub.inventory import Inventory, LineInput, ShardLink
from hub.store.db import make_engine

NAMESPACE = "orderhub-bench"


@dataclass(slots=True)
class ActorRig:
    """Shard actors and the inventory in front of them."""

    inventory: Inventory
    handles: list[Any]
    engine: Engine


async def start(url: str, workloads: list[Workload], shards: int) -> ActorRig:
    """Store the workloads' master data, start Ray and the shards, set the stock."""
    engine = make_engine(url)
    await asyncio.to_thread(insert_master_data, engine, workloads, with_stock=False)
    if not ray.is_initialized():
        # "local": a fresh instance, never a cluster some `ray start` left recorded.
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            namespace=NAMESPACE,
            log_to_driver=False,
        )
    handles = await asyncio.to_thread(start_shards, shards, url, namespace=NAMESPACE)
    inventory = Inventory([ShardLink(h) for h in handles], engine)
    await asyncio.gather(
        *(
            inventory.set_stock(sku, WAREHOUSE_ID, on_hand, reason="flash-sale benchmark")
            for w in workloads
            for sku, on_hand in w.stock.items()
        )
    )
    return ActorRig(inventory, handles, engine)


async def run(rig: ActorRig, workload: Workload, clients: int, rate: float | None = None) -> Result:
    """Run one workload with ``clients`` concurrent tasks calling ``Inventory.reserve``."""
    inventory = rig.inventory
    calls_before = sum(link.calls for link in inventory.links)
    ops_before = sum(link.ops for link in inventory.links)

    async def attempt(order: Order) -> Outcome:
        try:
            reservation = await inventory.reserve(
                order.order_id, [LineInput(sku, 1) for sku in order.skus]
            )
        except InsufficientStock:
            return None
        return sum(line.quantity for line in reservation.lines)

    tally, start_s, end_s = await drive(workload.orders, clients, attempt, rate)
    calls = sum(link.calls for link in inventory.links) - calls_before
    ops = sum(link.ops for link in inventory.links) - ops_before
    note = (
        f"{len(inventory.links)} shard actors, {clients} asyncio tasks{open_loop(rate)}; "
        f"{calls:,} actor calls, {ops / max(calls, 1):.0f} commands per call"
    )
    return Result("actor engine (Inventory)", workload, end_s - start_s, tally, note)


def stop(rig: ActorRig) -> None:
    """Kill the shards, stop Ray and close the database pool."""
    for handle in rig.handles:
        ray.kill(handle, no_restart=True)
    ray.shutdown()
    rig.engine.dispose()
