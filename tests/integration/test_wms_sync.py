"""WMS ↔ hub over JetStream against a real nats-server, PostgreSQL and Ray.

Each hub here has a nats-server of its own (started on a free port with a temporary
store), so what other runs publish on the machine's shared NATS cannot interfere, and a
test can restart the server under the hub.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
import ray
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import func, select

from hub.app import Hub
from hub.domain.movements import MovementType, StockMovement
from hub.embedded import EmbeddedNats
from hub.relay import OutboxRelay, pending
from hub.settings import Settings
from hub.store import schema
from hub.store.dead_letters import LetterStatus
from hub.store.master_data import Sku, Warehouse
from hub.wms_sync import SyncCounters
from orderhub.v1 import wms_pb2

pytestmark = pytest.mark.slow

TYPES = {
    MovementType.INBOUND: wms_pb2.WMS_EVENT_TYPE_INBOUND,
    MovementType.OUTBOUND: wms_pb2.WMS_EVENT_TYPE_OUTBOUND,
    MovementType.TRANSFER_IN: wms_pb2.WMS_EVENT_TYPE_TRANSFER_IN,
    MovementType.TRANSFER_OUT: wms_pb2.WMS_EVENT_TYPE_TRANSFER_OUT,
    MovementType.DAMAGE: wms_pb2.WMS_EVENT_TYPE_DAMAGE,
    MovementType.COUNT: wms_pb2.WMS_EVENT_TYPE_COUNT,
}


def settings_for(database_url: str, nats_url: str, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        grpc_addr="127.0.0.1:0",
        database_url=database_url,
        nats_url=nats_url,
        inventory_shards=2,
        ray_namespace=f"wms-{uuid.uuid4().hex[:10]}",
        wms_batch=200,
        http_addr="",  # no webhooks: several of these hubs run at once
    )


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def wms_hub(
    ray_session: None,
    new_database: Callable[[str], str],
    nats_server: EmbeddedNats,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Hub]:
    hub = Hub(
        settings_for(new_database("postgresql"), nats_server.url, tmp_path_factory.mktemp("hub"))
    )
    await hub.start()
    yield hub
    await hub.stop()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def catalogue(
    hub: Hub, *levels: tuple[str, str, int], threshold: int = 0, province: str = "广东省"
) -> None:
    """Warehouses, SKUs and on-hand counts, registered with the shards."""
    for sku, warehouse_id, on_hand in levels:
        w = Warehouse(warehouse_id, warehouse_id, province, "广州市", 1000)
        await asyncio.to_thread(hub.master_data.upsert_warehouse, w)
        await hub.inventory.register_warehouse(warehouse_id)
        s = Sku(sku, sku, "apparel", 200, 0, threshold)
        await asyncio.to_thread(hub.master_data.upsert_sku, s)
        await hub.inventory.register_sku(sku, 0, threshold)
        await hub.inventory.set_stock(sku, warehouse_id, on_hand)


def event(event_id: str, warehouse_id: str, sku: str, kind: MovementType, quantity: int) -> bytes:
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    return wms_pb2.WmsEvent(
        event_id=event_id,
        warehouse_id=warehouse_id,
        sku=sku,
        type=TYPES[kind],
        quantity=quantity,
        occurred_at=ts,
    ).SerializeToString()


async def publish(
    nc: NatsClient,
    warehouse_id: str,
    data: bytes,
    *,
    headers: dict[str, str] | None = None,
) -> None:
    await nc.jetstream().publish(f"wms.events.{warehouse_id}", data, headers=headers)


async def on_hand(hub: Hub, sku: str, warehouse_id: str) -> int:
    [level] = await hub.inventory.availability(sku, [warehouse_id])
    return level.on_hand


def ledgered(hub: Hub, event_id: str) -> int:
    t = schema.stock_ledger
    with hub.master_data.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(t.c.event_id == event_id)).scalar() or 0)


def seen(base: SyncCounters, more: int) -> Callable[[SyncCounters], bool]:
    """A predicate: ``more`` events handled (applied, duplicate or dead) since ``base``."""
    start = base.applied + base.duplicates + base.dead_lettered

    def check(c: SyncCounters) -> bool:
        return c.applied + c.duplicates + c.dead_lettered >= start + more

    return check


def snapshot(c: SyncCounters) -> SyncCounters:
    return SyncCounters(c.applied, c.duplicates, c.dead_lettered)


class Inbox:
    """Messages on a subject, collected as they arrive; await the ones you need."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []
        self._arrived = asyncio.Condition()

    async def take(self, msg: Msg) -> None:
        async with self._arrived:
            self.messages.append(msg)
            self._arrived.notify_all()

    async def wait_for(self, check: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: check(self.bodies())), 10)
        return self.bodies()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(m.data) for m in self.messages]


async def listen(nc: NatsClient, subject: str) -> Inbox:
    inbox = Inbox()
    await nc.subscribe(subject, cb=inbox.take)
    await nc.flush()
    return inbox


# --------------------------------------------------------------------------- WMS → hub


async def test_protobuf_and_json_events_reach_the_owning_shard(
    wms_hub: Hub, nc: NatsClient
) -> None:
    p = uuid.uuid4().hex[:6]
    await catalogue(wms_hub, (f"{p}-TEE", f"{p}-WH", 10))
    base = snapshot(wms_hub.wms.counters)
    await publish(nc, f"{p}-WH", event(f"{p}-1", f"{p}-WH", f"{p}-TEE", MovementType.INBOUND, 5))
    body = {
        "eventId": f"{p}-2",
        "sku": f"{p}-TEE",
        "type": "OUTBOUND",
        "quantity": 3,
        "occurredAt": "2026-11-24T08:00:00Z",
    }
    await publish(
        nc, f"{p}-WH", json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    await wms_hub.wms.wait_until(seen(base, 2))
    assert await on_hand(wms_hub, f"{p}-TEE", f"{p}-WH") == 12


async def test_a_repeated_event_is_applied_once(wms_hub: Hub, nc: NatsClient) -> None:
    p = uuid.uuid4().hex[:6]
    await catalogue(wms_hub, (f"{p}-TEE", f"{p}-WH", 0))
    data = event(f"{p}-in", f"{p}-WH", f"{p}-TEE", MovementType.INBOUND, 7)
    base = snapshot(wms_hub.wms.counters)
    # Twice with the same Nats-Msg-Id (the stream drops the second), once without.
    await publish(nc, f"{p}-WH", data, headers={"Nats-Msg-Id": f"{p}-in"})
    await publish(nc, f"{p}-WH", data, headers={"Nats-Msg-Id": f"{p}-in"})
    await publish(nc, f"{p}-WH", data)
    await wms_hub.wms.wait_until(seen(base, 2))
    assert wms_hub.wms.counters.duplicates - base.duplicates == 1
    assert await on_hand(wms_hub, f"{p}-TEE", f"{p}-WH") == 7
    assert await asyncio.to_thread(ledgered, wms_hub, f"{p}-in") == 1


async def test_applied_then_redelivered_after_a_shard_restart_is_not_applied_again(
    wms_hub: Hub, nc: NatsClient
) -> None:
    """The crash between apply and ack: the event is durable but comes again."""
    p = uuid.uuid4().hex[:6]
    sku, wh = f"{p}-TEE", f"{p}-WH"
    await catalogue(wms_hub, (sku, wh, 1))
    movement = StockMovement(f"{p}-e", wh, sku, MovementType.INBOUND, 4, datetime.now(UTC))
    [result] = await wms_hub.inventory.apply_movements([movement])
    assert not getattr(result, "duplicate", True)
    # The owner restarts and forgets what it applied in memory; the ledger remembers.
    owner = wms_hub.inventory.link_for(sku).handle
    before = await owner.status.remote()
    ray.kill(owner, no_restart=False)
    base = snapshot(wms_hub.wms.counters)
    await publish(nc, wh, event(f"{p}-e", wh, sku, MovementType.INBOUND, 4))
    await wms_hub.wms.wait_until(seen(base, 1), 60)
    assert (await _status(owner))["incarnation"] != before["incarnation"]
    assert wms_hub.wms.counters.duplicates - base.duplicates == 1
    assert await on_hand(wms_hub, sku, wh) == 5


async def _status(handle: Any) -> dict[str, Any]:
    """A shard's status once it answers (calls racing its restart are refused)."""
    for _ in range(50):
        try:
            return dict(await handle.status.remote())
        except ray.exceptions.ActorUnavailableError:
            continue
    raise AssertionError("the shard did not come back")


async def test_per_sku_order_holds_when_skus_interleave(wms_hub: Hub, nc: NatsClient) -> None:
    p = uuid.uuid4().hex[:6]
    wh = f"{p}-WH"
    a, b, c = f"{p}-A", f"{p}-B", f"{p}-C"
    await catalogue(wms_hub, (a, wh, 0), (b, wh, 0), (c, wh, 50))
    # Per SKU a count sits between deltas, so only the published order gives these sums.
    per_sku = {
        a: [(MovementType.INBOUND, 5), (MovementType.COUNT, 2), (MovementType.INBOUND, 1)],
        b: [(MovementType.COUNT, 10), (MovementType.OUTBOUND, 3), (MovementType.INBOUND, 1)],
        c: [(MovementType.DAMAGE, 20), (MovementType.COUNT, 4), (MovementType.TRANSFER_IN, 6)],
    }
    expected = {a: 3, b: 8, c: 10}
    interleaved = []
    for step in range(3):
        for sku in (c, a, b) if step % 2 else (b, c, a):
            kind, qty = per_sku[sku][step]
            interleaved.append(event(f"{sku}-{step}", wh, sku, kind, qty))
    base = snapshot(wms_hub.wms.counters)
    for data in interleaved:
        await publish(nc, wh, data)
    await wms_hub.wms.wait_until(seen(base, len(interleaved)))
    for sku, count in expected.items():
        assert await on_hand(wms_hub, sku, wh) == count, sku


async def test_poison_is_kept_with_its_reason_and_never_blocks_the_stream(
    wms_hub: Hub, nc: NatsClient
) -> None:
    p = uuid.uuid4().hex[:6]
    sku, wh, late = f"{p}-TEE", f"{p}-WH", f"{p}-LATE"
    await catalogue(wms_hub, (sku, wh, 10))
    poison = [
        (wh, b"\x0a\xff\xff", None),
        (wh, b'{"event_id": "x", "sku": "S", "type": "TELEPORT", "quantity": 1}', "json"),
        (f"{p}-NOWHERE", event(f"{p}-nw", f"{p}-NOWHERE", sku, MovementType.INBOUND, 1), None),
        (wh, event(f"{p}-late", wh, late, MovementType.INBOUND, 9), None),
        (wh, b'{"event_id": "n", "sku": "S", "type": "COUNT", "quantity": -3}', "json"),
    ]
    base = snapshot(wms_hub.wms.counters)
    for subject_wh, data, kind in poison:
        headers = {"Content-Type": "application/json"} if kind == "json" else None
        await publish(nc, subject_wh, data, headers=headers)
    await publish(nc, wh, event(f"{p}-good", wh, sku, MovementType.INBOUND, 1))
    await wms_hub.wms.wait_until(seen(base, len(poison) + 1))
    assert wms_hub.wms.counters.dead_lettered - base.dead_lettered == len(poison)
    assert await on_hand(wms_hub, sku, wh) == 11  # the good event behind them went through

    assert wms_hub.dead_letters is not None
    dead = wms_hub.dead_letters
    letters = [
        x
        for x in await asyncio.to_thread(dead.listing, LetterStatus.OPEN, limit=1000)
        if x.stream_seq > 0 and (p in x.subject or p in x.event_id or x.event_id in ("x", "n"))
    ]
    by_error = {x.error: x for x in letters}
    assert {
        "UNDECODABLE",
        "UNKNOWN_TYPE",
        "UNKNOWN_WAREHOUSE",
        "UNKNOWN_SKU",
        "INVALID_QUANTITY",
    } <= set(by_error)
    assert "TELEPORT" in by_error["UNKNOWN_TYPE"].reason
    assert late in by_error["UNKNOWN_SKU"].reason

    # The SKU is added; the kept event now applies, once.
    await catalogue(wms_hub, (late, wh, 0))
    letter = by_error["UNKNOWN_SKU"]
    [outcome] = await wms_hub.wms.replay([letter])
    assert (outcome.status, outcome.duplicate) == (LetterStatus.REPLAYED, False)
    assert await on_hand(wms_hub, late, wh) == 9
    [again] = await wms_hub.wms.replay(await asyncio.to_thread(dead.get, [letter.letter_id]))
    assert again.status is LetterStatus.REPLAYED and again.reason == "not open"
    assert await on_hand(wms_hub, late, wh) == 9
    # Still broken: stays open, with the reason of this attempt.
    [still] = await wms_hub.wms.replay([by_error["UNKNOWN_WAREHOUSE"]])
    assert still.status is LetterStatus.OPEN and still.error == "UNKNOWN_WAREHOUSE"
    [stored] = await asyncio.to_thread(dead.get, [by_error["UNKNOWN_WAREHOUSE"].letter_id])
    assert stored.attempts == 2


# --------------------------------------------------------------------------- hub → listeners


async def test_holds_and_atp_changes_are_published_with_stable_ids(
    wms_hub: Hub, nc: NatsClient
) -> None:
    p = uuid.uuid4().hex[:6]
    sku, wh = f"{p}-TEE", f"{p}-WH"
    await catalogue(wms_hub, (sku, wh, 10))
    holds = await listen(nc, f"oms.stock.holds.{wh}")
    atp = await listen(nc, f"oms.stock.atp.{wh}")
    await wms_hub.inventory.reserve(f"{p}-o1", [_line(sku, 2)])
    await wms_hub.inventory.release(f"{p}-o1")
    bodies = await holds.wait_for(lambda b: len([e for m in b for e in m["events"]]) >= 2)
    assert [(e["kind"], e["order_id"], e["quantity"]) for m in bodies for e in m["events"]] == [
        ("HELD", f"{p}-o1", 2),
        ("RELEASED", f"{p}-o1", 2),
    ]
    for msg in holds.messages:
        assert msg.headers is not None
        assert msg.headers["Nats-Msg-Id"] == json.loads(msg.data)["msg_id"]

    def seen_levels(bodies: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
        return [(lv["sku"], lv["reserved"], lv["available"]) for m in bodies for lv in m["levels"]]

    # (The catalogue's own stock count may arrive first: the relay runs on its own.)
    bodies = await atp.wait_for(lambda b: (sku, 0, 10) in seen_levels(b)[1:])
    assert seen_levels(bodies)[-2:] == [(sku, 2, 8), (sku, 0, 10)]


async def test_low_stock_alert_fires_once_and_clears(wms_hub: Hub, nc: NatsClient) -> None:
    p = uuid.uuid4().hex[:6]
    sku, wh = f"{p}-TEE", f"{p}-WH"
    await catalogue(wms_hub, (sku, wh, 10), threshold=5)
    alerts = await listen(nc, "oms.alerts.stock.>")
    base = snapshot(wms_hub.wms.counters)
    for n, kind, qty in [
        (1, MovementType.OUTBOUND, 6),
        (2, MovementType.OUTBOUND, 1),
        (3, MovementType.DAMAGE, 1),
        (4, MovementType.INBOUND, 10),
    ]:
        # One at a time: alerts are judged per commit, and a dip that one commit both makes
        # and mends is no news to anyone.
        await publish(nc, wh, event(f"{p}-{n}", wh, sku, kind, qty))
        await wms_hub.wms.wait_until(seen(base, n))
    mine = await alerts.wait_for(
        lambda b: any(a["sku"] == sku and a["kind"] == "LOW_STOCK_CLEARED" for a in b)
    )
    assert [(a["kind"], a["available"]) for a in mine if a["sku"] == sku] == [
        ("LOW_STOCK", 4),
        ("LOW_STOCK_CLEARED", 12),
    ]


async def test_a_short_warehouse_moves_its_holds_or_sends_orders_to_review(
    wms_hub: Hub, nc: NatsClient
) -> None:
    p = uuid.uuid4().hex[:6]
    sku, a, b = f"{p}-TEE", f"{p}-A", f"{p}-B"
    await catalogue(wms_hub, (sku, a, 3), (sku, b, 10))
    for n in range(3):
        await wms_hub.inventory.reserve(f"{p}-o{n}", [_line(sku, 1, a)])
    moved_out = await listen(nc, f"oms.stock.holds.{a}")
    shortfall = await listen(nc, "oms.alerts.stock.shortfall")
    base = snapshot(wms_hub.wms.counters)
    await publish(nc, a, event(f"{p}-dmg", a, sku, MovementType.DAMAGE, 2))
    await wms_hub.wms.wait_until(seen(base, 1))
    where = [
        (await wms_hub.inventory.get_reservation(f"{p}-o{n}")).lines[0].warehouse_id
        for n in range(3)
    ]
    assert where == [a, b, b]  # the newest two moved
    bodies = await moved_out.wait_for(
        lambda bs: len([e for m in bs for e in m["events"] if e["kind"] == "MOVED_OUT"]) >= 2
    )
    moved = {
        (e["order_id"], e["other_warehouse"])
        for m in bodies
        for e in m["events"]
        if e["kind"] == "MOVED_OUT"
    }
    assert moved == {(f"{p}-o1", b), (f"{p}-o2", b)}
    with wms_hub.master_data.engine.connect() as conn:
        moves = conn.execute(
            select(schema.hold_moves.c.order_id, schema.hold_moves.c.to_warehouse).where(
                schema.hold_moves.c.sku == sku
            )
        ).all()
    assert sorted(moves) == [(f"{p}-o1", b), (f"{p}-o2", b)]

    # Counts find both warehouses empty: nothing can move, the orders go to review.
    base = snapshot(wms_hub.wms.counters)
    await publish(nc, b, event(f"{p}-count", b, sku, MovementType.COUNT, 0))
    await publish(nc, a, event(f"{p}-count-a", a, sku, MovementType.COUNT, 0))
    await wms_hub.wms.wait_until(seen(base, 2))
    alerts = await shortfall.wait_for(lambda bs: len([x for x in bs if x["sku"] == sku]) >= 3)
    assert {x["order_id"] for x in alerts if x["sku"] == sku} == {f"{p}-o{n}" for n in range(3)}
    with wms_hub.master_data.engine.connect() as conn:
        review = conn.execute(
            select(schema.review_items.c.order_id, schema.review_items.c.reason).where(
                schema.review_items.c.sku == sku
            )
        ).all()
    assert sorted(review) == [(f"{p}-o{n}", "STOCK_SHORTFALL") for n in range(3)]


async def test_a_moved_line_of_a_cross_shard_order_reads_where_it_is(
    wms_hub: Hub, nc: NatsClient
) -> None:
    p = uuid.uuid4().hex[:6]
    a, b = f"{p}-A", f"{p}-B"
    skus = [f"{p}-S{n}" for n in range(12)]
    shard = wms_hub.inventory.link_for
    one = skus[0]
    other = next(s for s in skus if shard(s) is not shard(one))
    await catalogue(wms_hub, (one, a, 5), (other, a, 1), (other, b, 5))
    order = f"{p}-x"
    await wms_hub.inventory.reserve(order, [_line(one, 1, a), _line(other, 1, a)])
    await wms_hub.inventory.settle()
    base = snapshot(wms_hub.wms.counters)
    await publish(nc, a, event(f"{p}-d", a, other, MovementType.DAMAGE, 1))
    await wms_hub.wms.wait_until(seen(base, 1))
    reservation = await wms_hub.inventory.get_reservation(order)
    assert {ln.sku: ln.warehouse_id for ln in reservation.lines} == {one: a, other: b}


# --------------------------------------------------------------------------- outbox relay


async def test_outbox_rows_written_while_the_relay_was_down_go_out_once(
    wms_hub: Hub, nc: NatsClient
) -> None:
    p = uuid.uuid4().hex[:6]
    sku, wh = f"{p}-TEE", f"{p}-WH"
    subject = f"oms.stock.holds.{wh}"
    await catalogue(wms_hub, (sku, wh, 10))
    engine = wms_hub.master_data.engine
    js = nc.jetstream()

    def mine() -> list[Any]:
        return [r for r in pending(engine, 100_000) if r.subject.endswith(f".{wh}")]

    await wms_hub.relay.stop()  # the relay is gone, as after a crash
    relay = OutboxRelay(wms_hub.nats, engine)  # type: ignore[arg-type]
    try:
        await wms_hub.inventory.reserve(f"{p}-o1", [_line(sku, 1)])
        waiting = await asyncio.to_thread(mine)
        assert {r.subject for r in waiting} == {subject, f"oms.stock.atp.{wh}"}
        assert await _stored(js, subject) == 0
        # A relay published them and crashed before deleting the rows.
        for row in waiting:
            await js.publish(row.subject, row.payload, headers={"Nats-Msg-Id": row.msg_id})
        assert await _stored(js, subject) == 1
        # The next relay publishes them again; the stream drops the repeats.
        while await relay.relay_once():
            pass
        assert await asyncio.to_thread(mine) == []
        assert await _stored(js, subject) == 1
    finally:
        await relay.start()
        wms_hub._relay = relay


async def _stored(js: Any, subject: str) -> int:
    info = await js.stream_info("OMS", subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


# --------------------------------------------------------------------------- failures


async def test_the_hub_uses_existing_streams_and_rides_out_a_nats_restart(
    ray_session: None,
    new_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = EmbeddedNats(tmp_path_factory.mktemp("nats-restart"))
    server.start()
    client = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    # The WMS team made the streams already, with names of their own.
    js = client.jetstream()
    await js.add_stream(name="WAREHOUSE_FEED", subjects=["wms.events.>"])
    await js.add_stream(name="HUB_OUT", subjects=["oms.>"])
    hub = Hub(settings_for(new_database("postgresql"), server.url, tmp_path_factory.mktemp("h")))
    await hub.start()
    try:
        assert (hub.wms.stream, hub.relay.stream) == ("WAREHOUSE_FEED", "HUB_OUT")
        await catalogue(hub, ("TEE", "WH", 0))
        base = snapshot(hub.wms.counters)
        await publish(client, "WH", event("before", "WH", "TEE", MovementType.INBOUND, 1))
        await hub.wms.wait_until(seen(base, 1))
        server.stop()
        server.start()  # same port, same JetStream store
        for n in range(20):
            data = event(f"after-{n}", "WH", "TEE", MovementType.INBOUND, 1)
            # Like any publisher, retry until the restarted server takes it.
            for _ in range(100):
                try:
                    await publish(client, "WH", data)
                    break
                except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                    continue
        await hub.wms.wait_until(seen(base, 21), 30)
        assert await on_hand(hub, "TEE", "WH") == 21
    finally:
        await client.close()
        await hub.stop()
        server.stop()


def _line(sku: str, quantity: int, warehouse_id: str = "") -> Any:
    from hub.inventory import LineInput

    return LineInput(sku, quantity, warehouse_id)
