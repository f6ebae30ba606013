"""The `orderhub` process itself: start, serve, stop cleanly, and survive kill -9.

These tests run the real command in a child process with its own Ray and (for the
embedded case) its own NATS and SQLite, exactly as a user would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, select

from hub.embedded import free_port
from hub.store import schema
from orderhub.client import authorized_aio_channel, authorized_channel
from orderhub.v1 import stock_pb2, stock_pb2_grpc
from tests.conftest import NATS_URL, need_service
from tests.integration.test_inventory_shards import assert_books_balance

ORDERHUB = str(Path(sys.executable).parent / "orderhub")

pytestmark = pytest.mark.slow


class HubProcess:
    """`orderhub up` in its own session, so everything it starts can be found."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "ORDERHUB_DATA_DIR": str(data_dir),
            "ORDERHUB_GRPC_ADDR": f"127.0.0.1:{self.port}",
            "ORDERHUB_HTTP_ADDR": "127.0.0.1:0",
            "ORDERHUB_INVENTORY_SHARDS": "2",
            "ORDERHUB_LOG_FORMAT": "json",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        """The admin token `orderhub up` left in its data directory, else a new one."""
        path = self.data_dir / "admin.token"
        if path.exists():
            return path.read_text().strip()
        made = subprocess.run(
            [ORDERHUB, "token", "create", "--role", "admin", "--subject", "tests"],
            env=self.env,
            capture_output=True,
            check=True,
            text=True,
        )
        return made.stdout.strip()

    def channel(self) -> grpc.Channel:
        """A channel to the hub carrying an admin token."""
        return authorized_channel(self.address, self.token)

    def start(self, *args: str) -> float:
        """Start the hub and return how long it took to answer SERVING."""
        began = time.monotonic()
        log = open(self.data_dir.parent / f"hub-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [ORDERHUB, "up", *args],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.process.poll() is None, "orderhub up exited; see its log"
                assert time.monotonic() - began < 120, "orderhub up did not become SERVING"
                try:
                    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.monotonic() - began
                except grpc.RpcError:
                    time.sleep(0.1)  # not listening yet

    def signal(self, sig: int) -> int:
        """Send a signal and wait for the hub to exit; return its exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(60)
        return code

    def leftovers(self, wait_s: float = 15.0) -> list[str]:
        """Processes of the hub's session still alive (waiting a little for them to go)."""
        assert self.process is not None
        sid = self.process.pid
        deadline = time.monotonic() + wait_s
        while True:
            alive = []
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    alive.append(stat.split(")")[0] + ")")
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], HubProcess]]:
    started: list[HubProcess] = []

    def make(env: dict[str, str]) -> HubProcess:
        hub = HubProcess(tmp_path / f"data-{len(started)}", env)
        started.append(hub)
        return hub

    yield make
    for hub in started:
        if hub.process is not None and hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait()


def test_orderhub_up_with_embedded_services_serves_and_stops_cleanly(
    hub_process: Callable[[dict[str, str]], HubProcess],
) -> None:
    hub = hub_process(
        {"ORDERHUB_DATABASE_URL": "", "ORDERHUB_NATS_URL": "", "ORDERHUB_RAY_ADDRESS": ""}
    )
    hub.start("--demo")
    with hub.channel() as channel:
        stock = stock_pb2_grpc.StockServiceStub(channel)
        level = stock.GetAvailability(
            stock_pb2.GetAvailabilityRequest(sku="TEE-01-BLK-L"), timeout=10
        )
        assert len(level.levels) == 5 and level.total_available > 0
        warehouses = stock.ListWarehouses(stock_pb2.ListWarehousesRequest(), timeout=10)
        assert len(warehouses.warehouses) == 5
        carriers = stock.ListCarriers(stock_pb2.ListCarriersRequest(), timeout=10)
        assert {c.carrier_id for c in carriers.carriers} == {
            "sf",
            "jd",
            "zto",
            "yto",
            "sto",
            "yunda",
            "ems",
            "instant",
        }
    assert (hub.data_dir / "orderhub.db").exists()
    assert (hub.data_dir / "nats" / "jetstream").exists()
    assert hub.signal(signal.SIGTERM) == 0
    assert hub.leftovers() == []


def test_a_signal_to_the_hubs_whole_group_still_stops_it_in_order(
    hub_process: Callable[[dict[str, str]], HubProcess],
) -> None:
    """Ctrl-C in a terminal, or `timeout`, signals the hub's whole process group."""
    hub = hub_process(
        {"ORDERHUB_DATABASE_URL": "", "ORDERHUB_NATS_URL": "", "ORDERHUB_RAY_ADDRESS": ""}
    )
    hub.start()
    assert hub.process is not None
    os.killpg(hub.process.pid, signal.SIGTERM)  # the hub leads its own group (new session)
    assert hub.process.wait(60) == 0
    assert hub.leftovers() == []
    log = (hub.data_dir.parent / f"hub-{hub.port}.log").read_text()
    # The children heard nothing but the hub: NATS outlived the hub's connection to it.
    assert "nats: encountered error" not in log
    assert '"msg": "hub stopped"' in log


async def _reserve_all(
    address: str,
    token: str,
    orders: list[str],
    sku: str,
    acked: dict[str, str],
    enough: asyncio.Event,
) -> None:
    """Reserve one unit per order, 50 at a time; remember every acknowledged reservation."""
    async with authorized_aio_channel(address, token) as channel:
        stock = stock_pb2_grpc.StockServiceStub(channel)
        gate = asyncio.Semaphore(50)

        async def one(order_id: str) -> None:
            async with gate:
                try:
                    answer = await stock.Reserve(
                        stock_pb2.ReserveRequest(
                            order_id=order_id,
                            lines=[stock_pb2.ReserveLine(sku=sku, quantity=1)],
                            ttl_seconds=20,
                        ),
                        timeout=10,
                    )
                except grpc.aio.AioRpcError:
                    return
                acked[order_id] = answer.reservation_id
                if len(acked) >= 300:
                    enough.set()

        await asyncio.gather(*(one(o) for o in orders))


def test_kill_9_of_the_hub_loses_no_acknowledged_reservation(
    hub_process: Callable[[dict[str, str]], HubProcess], new_database: Callable[[str], str]
) -> None:
    need_service("NATS", NATS_URL, 4222)
    url = new_database("postgresql")
    hub = hub_process(
        {
            "ORDERHUB_DATABASE_URL": url,
            "ORDERHUB_NATS_URL": NATS_URL,
            "ORDERHUB_RAY_ADDRESS": "",
            "ORDERHUB_WMS_CONSUMER": f"test-{uuid.uuid4().hex[:10]}",
            "ORDERHUB_WMS_DELIVER": "new",
        }
    )
    hub.start()
    with hub.channel() as channel:
        stock = stock_pb2_grpc.StockServiceStub(channel)
        stock.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id="WH-S",
                name="South",
                province="广东省",
                city="广州市",
                daily_capacity=10,
            )
        )
        stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku="HOT", name="hot", weight_grams=100))
        stock.SetStock(stock_pb2.SetStockRequest(warehouse_id="WH-S", sku="HOT", on_hand=1500))

    acked: dict[str, str] = {}
    orders = [f"o{n}" for n in range(4000)]

    async def load_then_kill() -> None:
        enough = asyncio.Event()
        load = asyncio.ensure_future(
            _reserve_all(hub.address, hub.token, orders, "HOT", acked, enough)
        )
        await enough.wait()  # kill -9 mid-stream, with reservations in flight
        assert hub.process is not None
        os.kill(hub.process.pid, signal.SIGKILL)
        await load

    asyncio.run(load_then_kill())
    assert hub.process is not None and hub.process.wait(60) == -signal.SIGKILL
    assert hub.leftovers() == []
    assert 300 <= len(acked) < len(orders)

    hub.start()
    with hub.channel() as channel:
        stock = stock_pb2_grpc.StockServiceStub(channel)
        for order_id, reservation_id in acked.items():
            found = stock.GetReservation(
                stock_pb2.GetReservationRequest(order_id=order_id), timeout=10
            )
            assert found.reservation.reservation_id == reservation_id
            assert found.reservation.status == stock_pb2.RESERVATION_STATUS_HELD
        level = stock.GetAvailability(stock_pb2.GetAvailabilityRequest(sku="HOT"), timeout=10)
        held_after_restart = level.levels[0].reserved
        # Every acknowledged hold survived; unacknowledged ones may have landed too,
        # but never twice and never beyond the stock.
        assert len(acked) <= held_after_restart <= 1500
        engine = create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(select(schema.reservations.c.order_id)).all()
        assert len(rows) == len({r.order_id for r in rows}) == held_after_restart
        assert_books_balance(engine)

        # Holds made before the crash still expire on their own after the restart.
        stream = stock.WatchAvailability(
            stock_pb2.WatchAvailabilityRequest(skus=["HOT"]), timeout=60
        )
        for change in stream:
            if change.level.reserved == 0:
                assert change.level.available == 1500
                break
        stream.cancel()
    with engine.connect() as conn:
        statuses = {r.status for r in conn.execute(select(schema.reservations.c.status))}
    assert statuses == {"EXPIRED"}
    assert_books_balance(engine)
    engine.dispose()
    assert hub.signal(signal.SIGTERM) == 0
    assert hub.leftovers() == []
