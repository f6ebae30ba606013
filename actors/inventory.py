"""The inventory shard actor: a thin Ray shell around :class:`InventoryShard`.

Each actor is the single owner of the SKUs hashed to it. It applies a batch of
commands synchronously (no await between a check and its write, so no locks), then
answers only once the batch's merged effects are committed to the database (group
commit: whatever arrives while one transaction runs goes into the next).

The database is the source of truth. The actor loads its state when it starts; if a
write fails, the actor exits and Ray restarts it, reloading exactly what was committed,
so memory is never ahead of what was acknowledged.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import ray

from actors.layout import check_count, check_statuses, database_fingerprint, when_reachable
from hub.domain.inventory import Changes, InventoryShard, LevelView, ReservationStatus
from hub.domain.inventory_ops import (
    Follow,
    Op,
    Resolve,
    apply_all,
    unknown_events,
    unknown_orders,
)
from hub.domain.sharding import shard_of
from hub.events import messages_for
from hub.store.db import make_engine
from hub.store.inventory_store import (
    applied_event_ids,
    find_reservations,
    known_order_ids,
    load_shard,
    write_changes,
)

log = logging.getLogger("orderhub.inventory")

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, zone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ShardTimings:
    """How often a shard checks expiries and undecided holds."""

    expiry_tick_s: float = 0.2
    sweep_interval_s: float = 2.0
    prepare_timeout_s: float = 10.0
    overdue_grace_s: float = 5.0
    keep_closed_s: float = 900.0


class InventoryShardActor:
    """Owns the stock of one shard of SKUs."""

    def __init__(
        self,
        index: int,
        count: int,
        database_url: str,
        peer_names: list[str],
        namespace: str,
        timings: ShardTimings | None = None,
    ) -> None:
        self.index = index
        self.count = count
        self.database = database_fingerprint(database_url)
        self._peer_names = peer_names
        self._namespace = namespace
        self._timings = timings or ShardTimings()
        # No pre-ping: a failed write restarts the shard anyway, and a ping per
        # transaction would add a round trip to every group commit.
        self._engine = make_engine(database_url, pool_size=2, pre_ping=False)
        self.shard = InventoryShard()
        state, known = when_reachable(
            lambda: (load_shard(self._engine, index, count), known_order_ids(self._engine)),
            f"inventory shard {index}/{count}",
        )
        self.shard.restore(
            skus=state.skus,
            warehouses=state.warehouses,
            levels=state.levels,
            lines=state.lines,
            reservations=state.reservations,
        )
        # The loaded state is long-lived: keep it out of the collector's full passes, which
        # would otherwise pause every call of this shard (222 to 249 ms a pass with 300,000
        # live holds loaded; see docs/benchmarks.md). Holds let go later are still freed.
        gc.freeze()
        # Orders with a reservation record anywhere: only those may need reading back.
        self._known_orders = known
        self._applied = 0  # generation of the changes applied in memory
        self._committed = 0  # generation of the changes committed to the database
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._feed: deque[tuple[int, LevelView]] = deque(maxlen=50_000)
        self._feed_seq = 0
        self._feed_changed: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._peers: dict[int, Any] = {}
        self.loaded_at = utcnow()
        self.incarnation = uuid.uuid4().hex
        log.info(
            "shard %d/%d loaded %d levels, %d live holds",
            index,
            count,
            len(state.levels),
            len(state.lines),
        )

    # ------------------------------------------------------------------ calls

    async def apply(self, ops: list[Op]) -> list[object]:
        """Apply a batch of commands; answer once their effects are durable."""
        self._start()
        forgotten = [o for o in unknown_orders(self.shard, ops) if o in self._known_orders]
        if forgotten:
            found = await asyncio.to_thread(find_reservations, self._engine, forgotten)
            self.shard.remember(found)
        events = unknown_events(self.shard, ops)
        if events:
            # Movements applied before this incarnation are in the ledger, not in memory.
            applied = await asyncio.to_thread(applied_event_ids, self._engine, events)
            self.shard.remember_events(applied)
        results = apply_all(self.shard, ops, utcnow())
        await self._durable()
        return results

    async def changes_since(
        self, incarnation: str, after: int, timeout_s: float
    ) -> tuple[str, int, list[LevelView]]:
        """Levels changed (durably) after feed position ``after``; waits up to ``timeout_s``.

        Positions belong to one incarnation of the actor: a caller holding a position of
        an earlier one (the actor restarted) gets the whole feed of this one. A negative
        ``after`` asks only for the current position, to watch from now on.
        """
        self._start()
        assert self._feed_changed is not None
        if after < 0:
            return self.incarnation, self._feed_seq, []
        if incarnation != self.incarnation:
            after = 0
        async with self._feed_changed:
            if self._feed_seq <= after:
                try:
                    await asyncio.wait_for(
                        self._feed_changed.wait_for(lambda: self._feed_seq > after), timeout_s
                    )
                except TimeoutError:
                    return self.incarnation, after, []
            views = [view for seq, view in self._feed if seq > after]
            return self.incarnation, self._feed_seq, views

    async def status(self) -> dict[str, Any]:
        """Health and size of this shard."""
        self._start()
        return {
            "index": self.index,
            "count": self.count,
            "database": self.database,
            "pid": os.getpid(),
            "levels": len(self.shard.levels),
            "reservations": len(self.shard.reservations),
            "loaded_at": self.loaded_at.isoformat(),
            "incarnation": self.incarnation,
        }

    # ------------------------------------------------------------------ durability

    def _start(self) -> None:
        if self._tasks:
            return
        self._wake = asyncio.Event()
        self._feed_changed = asyncio.Condition()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._flush_forever()),
            loop.create_task(self._expire_forever()),
            loop.create_task(self._sweep_forever()),
        ]

    async def _durable(self) -> None:
        """Wait until every change made so far (and so every state seen) is committed.

        A batch that changed nothing and saw only committed state answers at once.
        """
        assert self._wake is not None
        if self.shard.has_changes():
            self._applied += 1
        target = self._applied
        if self._committed >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._wake.set()
        await waiter

    async def _flush_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            generation = self._applied
            changes = self.shard.drain_changes(utcnow())
            if changes:
                try:
                    await asyncio.to_thread(self._persist, changes)
                except Exception:
                    # Memory is now ahead of the database. Exit so Ray restarts this
                    # shard from what was committed; nothing unwritten was acknowledged.
                    log.exception("shard %d could not persist a batch; restarting", self.index)
                    os._exit(70)
                self._known_orders.update(changes.reservations)
                await self._publish(changes.views)
            self._committed = generation
            pending = []
            for target, waiter in self._waiters:
                if target > generation:
                    pending.append((target, waiter))
                elif not waiter.done():
                    waiter.set_result(None)
            self._waiters = pending
            if pending:
                self._wake.set()

    def _persist(self, changes: Changes) -> None:
        """Write a tick's changes and the messages telling of them in one transaction."""
        write_changes(self._engine, changes, messages_for(changes, utcnow()))

    async def _publish(self, views: list[LevelView]) -> None:
        assert self._feed_changed is not None
        if not views:
            return
        async with self._feed_changed:
            for view in views:
                self._feed_seq += 1
                self._feed.append((self._feed_seq, view))
            self._feed_changed.notify_all()

    # ------------------------------------------------------------------ timers

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(self._timings.expiry_tick_s)
            try:
                expired = self.shard.expire_due(utcnow())
                if not expired:
                    continue
                await self._durable()
                log.info("shard %d expired %d holds", self.index, len(expired))
                for reservation in expired:
                    others = {shard_of(ln.sku, self.count) for ln in reservation.lines}
                    others.discard(self.index)
                    for other in others:
                        follow = Follow(
                            reservation.order_id,
                            reservation.reservation_id,
                            ReservationStatus.EXPIRED,
                        )
                        # Best effort: a shard that misses it resolves the line itself.
                        self._peer(other).apply.remote([follow])
            except Exception:
                log.exception("shard %d expiry pass failed", self.index)

    async def _sweep_forever(self) -> None:
        first = True
        while True:
            await asyncio.sleep(0.5 if first else self._timings.sweep_interval_s)
            try:
                await self._sweep(first)
                first = False
            except Exception:
                log.exception("shard %d sweep failed", self.index)

    async def _sweep(self, first: bool) -> None:
        """Settle lines waiting on another shard's decision; forget long-closed records."""
        t = self._timings
        now = utcnow()
        waiting = self.shard.stale_prepared(now - timedelta(seconds=t.prepare_timeout_s))
        waiting += self.shard.overdue_held(
            FAR_FUTURE if first else now - timedelta(seconds=t.overdue_grace_s)
        )
        settled = 0
        for order_id, reservation_id, primary_sku in waiting:
            primary = shard_of(primary_sku, self.count)
            resolve = Resolve(order_id, reservation_id)
            if primary == self.index:
                answer = (await self.apply([resolve]))[0]
            else:
                answer = (await self._peer(primary).apply.remote([resolve]))[0]
            if not isinstance(answer, ReservationStatus):
                continue
            if self.shard.follow(order_id, reservation_id, answer, utcnow()):
                settled += 1
        if settled:
            await self._durable()
            log.info("shard %d settled %d undecided holds", self.index, settled)
        self.shard.prune(now - timedelta(seconds=t.keep_closed_s))

    def _peer(self, index: int) -> Any:
        handle = self._peers.get(index)
        if handle is None:
            handle = ray.get_actor(self._peer_names[index], namespace=self._namespace)
            self._peers[index] = handle
        return handle


def shard_names(count: int, prefix: str = "orderhub-inventory") -> list[str]:
    """The Ray actor names of a deployment's inventory shards."""
    return [f"{prefix}-{i}-of-{count}" for i in range(count)]


def start_shards(
    count: int,
    database_url: str,
    *,
    namespace: str,
    detached: bool = False,
    resource: str = "",
    timings: ShardTimings | None = None,
) -> list[Any]:
    """Create (or find) the inventory shard actors and wait until each has loaded.

    ``detached`` actors outlive the hub process that created them, for a deployment whose
    hub processes share one Ray cluster; a hub refuses actors of another shard count or
    another database (:mod:`actors.layout`).
    """
    check_count("orderhub-inventory", count, namespace, "ORDERHUB_INVENTORY_SHARDS")
    names = shard_names(count)
    remote_cls = ray.remote(InventoryShardActor)
    handles = []
    for index, name in enumerate(names):
        options: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "num_cpus": 0,
            "max_restarts": -1,
            "max_concurrency": 10_000,
            "get_if_exists": True,
        }
        if detached:
            options["lifetime"] = "detached"
        if resource:
            # Only nodes that offer this custom resource (the Ray workers meant for the
            # hub's actors) take them: not the head, not a hub's own Ray node.
            options["resources"] = {resource: 0.001}
        handles.append(
            remote_cls.options(**options).remote(
                index, count, database_url, names, namespace, timings
            )
        )
    check_statuses(ray.get([h.status.remote() for h in handles]), database_url, "inventory")
    return handles
