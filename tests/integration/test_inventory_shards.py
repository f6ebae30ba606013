"""Inventory shard actors on real Ray, against SQLite and PostgreSQL.

Concurrency, crash recovery, expiry and the cross-shard protocol, checked against the
database's books: reserved equals the live holds, on hand equals the ledger.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import ray
from sqlalchemy import Engine, func, select

from actors.inventory import ShardTimings, start_shards
from hub.domain.inventory import (
    InsufficientStock,
    InvalidRequest,
    LevelView,
    LineRequest,
    Reservation,
    ReservationConflict,
    ReservationStatus,
)
from hub.domain.inventory_ops import Commit, Follow, Prepare
from hub.domain.sharding import shard_of
from hub.inventory import (
    AvailabilityFeed,
    Inventory,
    LineInput,
    NoTally,
    ShardLink,
    ShardUnavailable,
)
from hub.store import schema
from hub.store.db import make_engine
from hub.store.master_data import MasterData, Sku, Warehouse
from tests.conftest import crash_and_wait

FAST = ShardTimings(
    expiry_tick_s=0.05, sweep_interval_s=0.2, prepare_timeout_s=0.5, overdue_grace_s=0.3
)
SHARDS = 3


@dataclass
class Rig:
    """Shard actors over a fresh database, with the hub-side inventory in front."""

    inventory: Inventory
    handles: list[Any]
    engine: Engine

    def sku_in_shard(self, index: int, prefix: str = "SKU") -> str:
        """A SKU name owned by shard ``index``."""
        n = 0
        while shard_of(f"{prefix}-{n}", SHARDS) != index:
            n += 1
        return f"{prefix}-{n}"

    def link(self, sku: str) -> ShardLink:
        """The link to the owner of ``sku``."""
        return self.inventory.link_for(sku)


@pytest.fixture(params=["sqlite", "postgresql"])
async def rig(
    request: pytest.FixtureRequest, ray_session: None, new_database: Callable[[str], str]
) -> AsyncIterator[Rig]:
    url = new_database(request.param)
    engine = make_engine(url)
    md = MasterData(engine)
    for wh in ("WH-A", "WH-B"):
        md.upsert_warehouse(Warehouse(wh, wh, "浙江省", "杭州市", 1000))
    handles = await asyncio.to_thread(
        start_shards, SHARDS, url, namespace=f"it-{uuid.uuid4().hex[:8]}", timings=FAST
    )
    yield Rig(Inventory([ShardLink(h) for h in handles], engine), handles, engine)
    for h in handles:
        ray.kill(h, no_restart=True)
    engine.dispose()


async def stock(rig: Rig, sku: str, warehouse_id: str, on_hand: int) -> None:
    """Create a SKU (if new) and set its on-hand count."""
    await asyncio.to_thread(MasterData(rig.engine).upsert_sku, Sku(sku, sku, "test", 100, 0))
    await rig.inventory.register_sku(sku, 0)
    await rig.inventory.set_stock(sku, warehouse_id, on_hand)


def assert_books_balance(engine: Engine) -> None:
    """Reserved equals the live holds and on hand equals the ledger, for every level."""
    lines, levels, ledger = schema.reservation_lines, schema.stock_levels, schema.stock_ledger
    with engine.connect() as conn:
        live = {
            (sku, wh): int(total)
            for sku, wh, total in conn.execute(
                select(lines.c.sku, lines.c.warehouse_id, func.sum(lines.c.quantity))
                .where(lines.c.status.in_(["PREPARED", "HELD"]))
                .group_by(lines.c.sku, lines.c.warehouse_id)
            )
        }
        moved = {
            (sku, wh): int(total)
            for sku, wh, total in conn.execute(
                select(
                    ledger.c.sku, ledger.c.warehouse_id, func.sum(ledger.c.on_hand_delta)
                ).group_by(ledger.c.sku, ledger.c.warehouse_id)
            )
        }
        rows = conn.execute(select(levels)).all()
    assert rows, "no stock levels were written"
    for row in rows:
        key = (row.sku, row.warehouse_id)
        assert row.reserved == live.get(key, 0), key
        assert row.on_hand == moved.get(key, 0), key
        assert row.on_hand >= 0 and row.reserved >= 0


async def next_level(
    feed: AvailabilityFeed, accept: Callable[[LevelView], bool], timeout_s: float = 10.0
) -> LevelView:
    """Await the first level change from ``feed`` that ``accept`` likes."""

    async def scan() -> LevelView:
        async for view in feed:
            if accept(view):
                return view
        raise AssertionError("feed ended")

    return await asyncio.wait_for(scan(), timeout_s)


async def test_hot_sku_grants_exactly_the_stock(rig: Rig) -> None:
    await stock(rig, "HOT", "WH-A", 300)
    results = await asyncio.gather(
        *(rig.inventory.reserve(f"o{n}", [LineInput("HOT", 1)]) for n in range(2000)),
        return_exceptions=True,
    )
    granted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(granted) == 300
    assert all(isinstance(e, InsufficientStock) for e in refused)
    [level] = await rig.inventory.availability("HOT")
    assert (level.on_hand, level.reserved, level.available) == (300, 300, 0)
    assert_books_balance(rig.engine)


async def test_orders_spanning_shards_are_never_half_held(rig: Rig) -> None:
    a, b = rig.sku_in_shard(0, "A"), rig.sku_in_shard(1, "B")
    await stock(rig, a, "WH-A", 150)
    await stock(rig, b, "WH-A", 100)
    jobs = [
        rig.inventory.reserve(f"pair{n}", [LineInput(a, 1), LineInput(b, 1)]) for n in range(400)
    ]
    jobs += [rig.inventory.reserve(f"solo{n}", [LineInput(b, 1)]) for n in range(60)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, InsufficientStock)
    ]
    assert unexpected == []
    pairs = [r for r in results[:400] if not isinstance(r, BaseException)]
    solos = [r for r in results[400:] if not isinstance(r, BaseException)]
    assert len(pairs) + len(solos) == 100  # B is the scarce SKU: every unit went out
    [level_a] = await rig.inventory.availability(a)
    assert level_a.reserved == len(pairs)
    await rig.inventory.settle()  # the other shards have heard every decision
    with rig.engine.connect() as conn:
        headers = {r.order_id: r.status for r in conn.execute(select(schema.reservations))}
        for line in conn.execute(select(schema.reservation_lines)):
            if line.status in ("PREPARED", "HELD"):
                assert headers.get(line.order_id) == "HELD", line.order_id
            if headers.get(line.order_id) == "HELD":
                assert line.status == "HELD", line.order_id
    assert_books_balance(rig.engine)


async def test_reservation_survives_a_shard_crash(rig: Rig) -> None:
    await stock(rig, "TEE", "WH-A", 10)
    first = await rig.inventory.reserve("o1", [LineInput("TEE", 4)])
    owner = rig.link("TEE").handle
    await crash_and_wait(owner)
    [level] = await rig.inventory.availability("TEE")
    assert (level.reserved, level.available) == (4, 6)
    again = await rig.inventory.reserve("o1", [LineInput("TEE", 4)])
    assert again.reservation_id == first.reservation_id
    released = await rig.inventory.release("o1")
    assert released.status is ReservationStatus.RELEASED
    assert_books_balance(rig.engine)


async def test_expired_hold_returns_stock_without_asking(rig: Rig) -> None:
    await stock(rig, "TEE", "WH-A", 10)
    feed = await rig.inventory.subscribe(["TEE"])
    watching = asyncio.ensure_future(
        next_level(feed, lambda v: v.reserved == 0 and v.on_hand == 10)
    )
    await rig.inventory.reserve("o1", [LineInput("TEE", 3)], ttl_seconds=1)
    level = await watching
    assert level.available == 10
    reservation = await rig.inventory.get_reservation("o1")
    assert reservation.status is ReservationStatus.EXPIRED
    with rig.engine.connect() as conn:
        line = conn.execute(select(schema.reservation_lines)).one()
    assert line.status == "EXPIRED" and line.closed_at is not None
    assert_books_balance(rig.engine)


async def test_pending_expiry_fires_after_a_crash(rig: Rig) -> None:
    await stock(rig, "TEE", "WH-A", 10)
    await rig.inventory.reserve("o1", [LineInput("TEE", 3)], ttl_seconds=5)
    feed = await rig.inventory.subscribe(["TEE"])
    await crash_and_wait(rig.link("TEE").handle)
    level = await next_level(feed, lambda v: v.reserved == 0)
    assert level.available == 10
    assert (await rig.inventory.get_reservation("o1")).status is ReservationStatus.EXPIRED


class _Watch(NoTally):
    """A tally that tells when a reservation is asked again."""

    def __init__(self) -> None:
        self.asked_again_event = asyncio.Event()

    def asked_again(self) -> None:
        self.asked_again_event.set()


@pytest.mark.parametrize("batched", [False, True], ids=["reserve", "reserve_many"])
async def test_a_unit_spoken_for_by_a_failing_attempt_still_goes_out(
    rig: Rig, batched: bool
) -> None:
    """An order spanning shards holds its other lines before its primary decides. A request
    that finds the last unit so held is not refused at once: it is asked again, and gets the
    unit when the attempt holding it fails (no undersell)."""
    primary_sku, scarce = rig.sku_in_shard(0, "P"), rig.sku_in_shard(1, "S")
    await stock(rig, scarce, "WH-A", 1)
    await rig.link(scarce).call(
        Prepare(
            "o-pair",
            "rsv-pair",
            (LineRequest(2, scarce, 1, "WH-A"),),
            datetime.now(UTC) + timedelta(minutes=15),
            primary_sku,
        )
    )
    watch = _Watch()
    rig.inventory.tally = watch
    if batched:
        asking = asyncio.ensure_future(
            rig.inventory.reserve_many([("o-solo", [LineInput(scarce, 1)], 0)])
        )
    else:
        asking = asyncio.ensure_future(rig.inventory.reserve("o-solo", [LineInput(scarce, 1)]))
    await asyncio.wait_for(watch.asked_again_event.wait(), 10)
    assert not asking.done()
    # The pair's primary refuses it: its held unit goes back, and to the waiting request.
    await rig.link(scarce).call(Follow("o-pair", "rsv-pair", ReservationStatus.ABORTED))
    answer = await asyncio.wait_for(asking, 10)
    reservation = answer[0] if isinstance(answer, list) else answer
    assert isinstance(reservation, Reservation)
    assert [(ln.sku, ln.quantity) for ln in reservation.lines] == [(scarce, 1)]
    assert_books_balance(rig.engine)


async def test_undecided_prepared_lines_are_aborted(rig: Rig) -> None:
    """A hub that dies between prepare and decision leaves nothing held for long."""
    primary_sku, other = rig.sku_in_shard(0, "P"), rig.sku_in_shard(2, "Q")
    await stock(rig, other, "WH-A", 5)
    feed = await rig.inventory.subscribe([other])
    watching = asyncio.ensure_future(next_level(feed, lambda v: v.reserved == 0))
    prepared = await rig.link(other).call(
        Prepare(
            "o-orphan",
            "rsv-orphan",
            (LineRequest(2, other, 2, "WH-A"),),
            datetime.now(UTC) + timedelta(minutes=15),
            primary_sku,
        )
    )
    assert prepared
    level = await watching
    assert level.available == 5
    with rig.engine.connect() as conn:
        status = conn.execute(
            select(schema.reservation_lines.c.status).where(
                schema.reservation_lines.c.order_id == "o-orphan"
            )
        ).scalar()
        tombstone = conn.execute(
            select(schema.reservations.c.status).where(schema.reservations.c.order_id == "o-orphan")
        ).scalar()
    assert (status, tombstone) == ("ABORTED", "ABORTED")
    assert_books_balance(rig.engine)


async def test_missed_decision_is_settled_when_the_shard_restarts(rig: Rig) -> None:
    a, b = rig.sku_in_shard(0, "A"), rig.sku_in_shard(1, "B")
    await stock(rig, a, "WH-A", 10)
    await stock(rig, b, "WH-A", 10)
    reservation = await rig.inventory.reserve("o1", [LineInput(a, 1), LineInput(b, 2)])
    assert reservation.primary_sku == a
    # The primary decides; the other shard never hears of it (as if the hub died).
    await rig.link(a).call(Commit("o1"))
    [level_b] = await rig.inventory.availability(b)
    assert level_b.reserved == 2
    feed = await rig.inventory.subscribe([b])
    await crash_and_wait(rig.link(b).handle)
    level = await next_level(feed, lambda v: v.reserved == 0)
    assert level.on_hand == 8
    assert_books_balance(rig.engine)


async def test_calls_to_a_dead_shard_fail_as_unavailable(rig: Rig) -> None:
    await stock(rig, "TEE", "WH-A", 10)
    link = rig.link("TEE")
    ray.kill(link.handle, no_restart=True)
    with pytest.raises(ShardUnavailable):
        await rig.inventory.reserve("o1", [LineInput("TEE", 1)])


async def test_shard_crash_under_load_loses_no_acknowledged_reservation(rig: Rig) -> None:
    a, b = rig.sku_in_shard(0, "A"), rig.sku_in_shard(1, "B")
    await stock(rig, a, "WH-A", 2000)
    await stock(rig, b, "WH-A", 2000)
    acked: dict[str, str] = {}
    crashed = asyncio.Event()
    enough = asyncio.Event()

    async def one(n: int) -> None:
        lines = [LineInput(a, 1), LineInput(b, 1)] if n % 3 == 0 else [LineInput(b, 1)]
        for _ in range(20):  # a client retries what was not acknowledged
            try:
                r = await rig.inventory.reserve(f"o{n}", lines)
            except ShardUnavailable:
                await crashed.wait()
                continue
            except ReservationConflict:
                # An attempt cut by the crash is still prepared on a shard; it is aborted
                # by that shard's sweep, then a new attempt goes through.
                await asyncio.sleep(0.2)
                continue
            acked[f"o{n}"] = r.reservation_id
            if len(acked) >= 200:
                enough.set()
            return

    load = [asyncio.ensure_future(one(n)) for n in range(1500)]
    await enough.wait()  # crash the shard with reservations in flight
    await crash_and_wait(rig.link(b).handle)
    crashed.set()
    await asyncio.gather(*load)

    assert len(acked) == 1500  # stock covers every order once the retries are in
    for order_id, reservation_id in acked.items():
        found = await rig.inventory.get_reservation(order_id)
        assert found.reservation_id == reservation_id
        assert found.status is ReservationStatus.HELD
    [level_b] = await rig.inventory.availability(b)
    assert level_b.reserved == 1500
    [level_a] = await rig.inventory.availability(a)
    assert level_a.reserved == 500
    assert_books_balance(rig.engine)


async def test_reserve_many_answers_each_order_on_its_own(rig: Rig) -> None:
    a, b = rig.sku_in_shard(0, "A"), rig.sku_in_shard(1, "B")
    await stock(rig, a, "WH-A", 3)
    await stock(rig, b, "WH-A", 3)
    answers = await rig.inventory.reserve_many(
        [
            ("o1", [LineInput(a, 2)], 0),
            ("o2", [LineInput(a, 2)], 0),  # only 1 left
            ("o3", [LineInput(a, 1), LineInput(b, 1)], 0),  # spans shards
            ("o1", [LineInput(a, 2)], 0),  # a repeat gets the same reservation
            ("", [LineInput(b, 1)], 0),
            ("o4", [LineInput(b, 0)], 0),
        ]
    )
    first, short, spanning, repeat, no_id, no_qty = answers
    assert isinstance(first, Reservation) and isinstance(repeat, Reservation)
    assert repeat.reservation_id == first.reservation_id
    assert isinstance(short, InsufficientStock)
    assert isinstance(spanning, Reservation) and len(spanning.lines) == 2
    assert isinstance(no_id, InvalidRequest) and no_id.field == "order_id"
    assert isinstance(no_qty, InvalidRequest) and no_qty.field == "lines.quantity"
    [level_a] = await rig.inventory.availability(a)
    assert (level_a.reserved, level_a.available) == (3, 0)
    await rig.inventory.settle()
    assert_books_balance(rig.engine)
