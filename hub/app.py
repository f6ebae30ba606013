"""Wiring: the database, NATS, Ray and the inventory shards of one hub process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import nats
import ray
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from actors.inventory import ShardTimings, start_shards
from actors.lanes import start_lane_shards
from hub.auth import Tokens, Verifier, signing_key
from hub.carrier_events import CarrierEvents
from hub.embedded import EmbeddedNats, EmbeddedRay
from hub.events import ALERTS, HOLDS, moved_orders
from hub.inventory import Inventory, ShardLink
from hub.lanes import LaneHealthBoard, policy_from_settings
from hub.metrics import HubMetrics, hub_sources
from hub.ops import OpsListener, OpsPages
from hub.orders import OrderIntake
from hub.pollers import Pollers
from hub.relay import OutboxRelay
from hub.routing import Router
from hub.settings import Settings
from hub.shops import Shop, Shops
from hub.store.access import AccessStore
from hub.store.db import make_engine, upgrade
from hub.store.dead_letters import DeadLetters
from hub.store.master_data import MasterData
from hub.store.orders import OrderStore
from hub.store.poll_cursors import PollCursors
from hub.store.routing import RoutingStore
from hub.webhooks import WebhookReceiver
from hub.wms_sync import WmsSync

log = logging.getLogger("orderhub.hub")
#: Threads (and database connections) for the hub's blocking database calls.
DB_THREADS = 16


class Hub:
    """Everything one hub process runs, started and stopped in order."""

    def __init__(self, settings: Settings, *, timings: ShardTimings | None = None) -> None:
        self.settings = settings
        self._timings = timings
        self._embedded_nats: EmbeddedNats | None = None
        self._embedded_ray: EmbeddedRay | None = None
        self._started_ray = False
        self.shards: list[Any] = []
        self.nats: NatsClient | None = None
        self._inventory: Inventory | None = None
        self._master_data: MasterData | None = None
        self._wms: WmsSync | None = None
        self._relay: OutboxRelay | None = None
        self.dead_letters: DeadLetters | None = None
        self._orders: OrderIntake | None = None
        self.shops = Shops()
        self.webhooks: WebhookReceiver | None = None
        self.pollers: Pollers | None = None
        #: The port the webhook receiver listens on (after start; 0 when it is off).
        self.http_port = 0
        self._review_pass = asyncio.Event()
        self._review_task: asyncio.Task[None] | None = None
        self._shortfall_sub: Any = None
        self.lane_shards: list[Any] = []
        self._lanes: LaneHealthBoard | None = None
        self._router: Router | None = None
        self._carrier: CarrierEvents | None = None
        self._moves_sub: Any = None
        self._access: AccessStore | None = None
        self._tokens: Tokens | None = None
        self._verifier: Verifier | None = None
        #: This process's Prometheus registry (``/metrics``), and the listener of the metrics
        #: and the operator page when ORDERHUB_METRICS_ADDR gives them one of their own.
        self.metrics = HubMetrics()
        self.ops_listener: OpsListener | None = None
        self.metrics_port = 0

    @property
    def inventory(self) -> Inventory:
        """The inventory over the shard actors (after start)."""
        assert self._inventory is not None, "hub not started"
        return self._inventory

    @property
    def master_data(self) -> MasterData:
        """Master data in the database (after start)."""
        assert self._master_data is not None, "hub not started"
        return self._master_data

    @property
    def orders(self) -> OrderIntake:
        """Order intake (after start)."""
        assert self._orders is not None, "hub not started"
        return self._orders

    @property
    def wms(self) -> WmsSync:
        """The WMS event consumer (after start)."""
        assert self._wms is not None, "hub not started"
        return self._wms

    @property
    def lanes(self) -> LaneHealthBoard:
        """Lane health over the lane actors (after start)."""
        assert self._lanes is not None, "hub not started"
        return self._lanes

    @property
    def router(self) -> Router:
        """Order routing (after start)."""
        assert self._router is not None, "hub not started"
        return self._router

    @property
    def carrier_events(self) -> CarrierEvents:
        """The carrier tracking consumer (after start)."""
        assert self._carrier is not None, "hub not started"
        return self._carrier

    @property
    def shares_actors(self) -> bool:
        """Whether this hub joins a Ray cluster that other hub processes may share.

        Then its inventory and lane actors are detached: they outlive this process, every
        hub of the deployment finds the same ones by name, and stopping one hub leaves them
        to the others. A hub on its own local Ray stops its actors with it.
        """
        return bool(self.settings.ray_address)

    @property
    def access(self) -> AccessStore:
        """Token records and the audit log (after start)."""
        assert self._access is not None, "hub not started"
        return self._access

    @property
    def tokens(self) -> Tokens:
        """Issues and revokes bearer tokens (after start)."""
        assert self._tokens is not None, "hub not started"
        return self._tokens

    @property
    def verifier(self) -> Verifier:
        """Checks bearer tokens (after start)."""
        assert self._verifier is not None, "hub not started"
        return self._verifier

    @property
    def relay(self) -> OutboxRelay:
        """The outbox relay (after start)."""
        assert self._relay is not None, "hub not started"
        return self._relay

    async def start(self) -> None:
        """Migrate the database, start or join NATS and Ray, and load the shards."""
        s = self.settings
        if s.wms_deliver not in ("all", "new"):
            raise ValueError(f"ORDERHUB_WMS_DELIVER must be 'all' or 'new', not {s.wms_deliver!r}")
        if s.carrier_deliver not in ("all", "new"):
            raise ValueError(
                f"ORDERHUB_CARRIER_DELIVER must be 'all' or 'new', not {s.carrier_deliver!r}"
            )
        s.data_dir.mkdir(parents=True, exist_ok=True)
        # A wrong shops file stops the start here, before anything is running.
        self.shops = Shops.load(s.resolved_shops_file())
        url = s.resolved_database_url()
        await asyncio.to_thread(upgrade, url)
        # Database calls run in threads; with the default six, concurrent requests queue
        # for a thread rather than for the database.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="orderhub-db")
        )
        engine = make_engine(url, pool_size=DB_THREADS // 2)
        self._master_data = MasterData(engine)
        key = signing_key(s)
        self._access = AccessStore(engine)
        self._tokens = Tokens(self._access, key)
        self._verifier = Verifier(self._access, key)
        await self._verifier.start()

        nats_url = s.nats_url
        if not nats_url:
            self._embedded_nats = EmbeddedNats(s.data_dir / "nats")
            # Started from this thread on purpose: the child is tied to the thread that
            # spawned it (PDEATHSIG), so it must not be a short-lived worker thread.
            nats_url = self._embedded_nats.start()
        # A comma-separated list names several servers of one cluster.
        self.nats = await nats.connect(
            servers=[u.strip() for u in nats_url.split(",") if u.strip()],
            name="orderhub-hub",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )

        if not ray.is_initialized():
            # On this thread, like the NATS child: the Ray head is tied to its spawner.
            self._join_ray()
        self.shards = await asyncio.to_thread(
            start_shards,
            s.inventory_shards,
            url,
            namespace=s.ray_namespace,
            detached=self.shares_actors,
            resource=s.actor_resource,
            timings=self._timings,
        )
        self._inventory = Inventory([ShardLink(h) for h in self.shards], engine)
        self._inventory.tally = self.metrics.reservations
        self._relay = OutboxRelay(self.nats, engine, stream=s.oms_stream)
        self._relay.on_published = self.metrics.outbox.published
        await self._relay.start()
        self.dead_letters = DeadLetters(engine)
        self._orders = OrderIntake(
            OrderStore(engine), self._master_data, self.dead_letters, self._inventory
        )
        self._wms = WmsSync(
            self.nats,
            self._inventory,
            self.dead_letters,
            stream=s.wms_stream,
            consumer=s.wms_consumer,
            deliver_new=s.wms_deliver == "new",
            batch=s.wms_batch,
            ack_wait_s=s.wms_ack_wait_s,
        )
        await self._wms.start()
        await self._follow_shortfalls()
        await self._start_routing(url, engine)
        self.pollers = Pollers(self.shops, self._orders, PollCursors(engine))
        self._orders.fetch_order = self._fetch_order
        await self.pollers.start()
        self.metrics.watch(hub_sources(self))
        ops_routes = OpsPages(self).routes()
        if s.http_addr:
            self.webhooks = WebhookReceiver(
                self._orders,
                self.shops,
                self.dead_letters,
                fetch_order=self.pollers.fetch_order,
                routes=() if s.metrics_addr else ops_routes,
            )
            self.http_port = await self.webhooks.start(s.http_addr)
        if s.metrics_addr:
            self.ops_listener = OpsListener(ops_routes)
            self.metrics_port = await self.ops_listener.start(s.metrics_addr)
        log.info(
            "hub started",
            extra={
                "database": engine.url.render_as_string(hide_password=True),
                "nats": nats_url,
                "ray": s.ray_address or "local",
                "inventory_shards": s.inventory_shards,
                "shops": len(self.shops),
                "polled_shops": len(self.shops.polled()),
                "webhooks": f"{s.http_addr.rsplit(':', 1)[0]}:{self.http_port}"
                if self.webhooks
                else "off",
            },
        )

    async def _start_routing(self, url: str, engine: Any) -> None:
        """Lane actors, the router, carrier tracking, and re-routing when holds move."""
        s = self.settings
        assert self.nats is not None and self._orders is not None and self.dead_letters
        policy = policy_from_settings(s.lane_policy)
        self.lane_shards = await asyncio.to_thread(
            start_lane_shards,
            s.lane_shards,
            url,
            namespace=s.ray_namespace,
            policy=dataclasses.asdict(policy),
            detached=self.shares_actors,
            resource=s.actor_resource,
        )
        self._lanes = LaneHealthBoard([ShardLink(h) for h in self.lane_shards], policy)
        self._router = Router(
            RoutingStore(engine),
            self._orders.store,
            self.master_data,
            self.inventory,
            self._lanes,
            day_tz=s.routing_day_tz,
        )
        await self._lanes.start()
        await self._router.start(auto=s.auto_route)
        self._orders.on_ready = self._router.nudge
        self._orders.on_released = self._router.forget
        self._carrier = CarrierEvents(
            self.nats,
            self._lanes,
            self.dead_letters,
            stream=s.carrier_stream,
            consumer=s.carrier_consumer,
            deliver_new=s.carrier_deliver == "new",
        )
        await self._carrier.start()
        router = self._router

        async def on_holds(msg: Msg) -> None:
            moved = moved_orders(msg.data)
            if moved:
                await router.holds_moved(moved)

        self._moves_sub = await self.nats.subscribe(f"{HOLDS}.>", cb=on_holds)

    async def _fetch_order(self, platform: str, shop_id: str, platform_order_id: str) -> str:
        """A platform order's full JSON from the platform's API (for pushes that name ids)."""
        shop, pollers = self._api_shop(platform, shop_id, "is not configured in the shops file")
        return await pollers.fetch_order(shop, platform_order_id)

    async def pull_orders(
        self, platform: str, shop_id: str, since: datetime, until: datetime
    ) -> list[dict[str, Any]]:
        """A shop's orders modified in [since, until) from its platform (for reconciliation)."""
        shop, pollers = self._api_shop(
            platform, shop_id, "has no API credentials in the shops file", need_key=True
        )
        return await pollers.collect(shop, since, until)

    def _api_shop(
        self, platform: str, shop_id: str, missing: str, *, need_key: bool = False
    ) -> tuple[Shop, Pollers]:
        """A configured shop whose platform API the pollers can call; LookupError if none."""
        shop = self.shops.get(platform, shop_id)
        if shop is None or (need_key and not shop.app_key) or self.pollers is None:
            raise LookupError(f"shop {platform}/{shop_id} {missing}")
        return shop, self.pollers

    async def _follow_shortfalls(self) -> None:
        """Send orders to review when a warehouse cannot keep their holds (now and later)."""
        assert self.nats is not None and self._orders is not None
        orders = self._orders

        async def on_shortfall(_msg: Msg) -> None:
            self._review_pass.set()

        async def review() -> None:
            while True:
                await self._review_pass.wait()
                self._review_pass.clear()
                try:
                    await orders.review_stock_problems()
                except Exception:  # the database is away: the next alert tries again
                    log.exception("could not send short orders to review")

        self._review_pass.set()  # once at start: shortfalls while the hub was down
        self._review_task = asyncio.get_running_loop().create_task(review())
        self._shortfall_sub = await self.nats.subscribe(f"{ALERTS}.shortfall", cb=on_shortfall)

    def _join_ray(self) -> None:
        """Join the configured Ray cluster, or start a local one and join it."""
        s = self.settings
        address = s.ray_address
        if not address:
            os.environ.update(EmbeddedRay.environment())
            self._embedded_ray = EmbeddedRay(s.data_dir / "ray")
            address = self._embedded_ray.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                ray.init(
                    address=address,
                    namespace=s.ray_namespace,
                    log_to_driver=False,
                    _node_ip_address="127.0.0.1" if self._embedded_ray else None,
                )
                break
            except ConnectionError:
                if self._embedded_ray is not None:
                    self._embedded_ray.check()  # may start it again on another port
                    if self._embedded_ray.address != address:
                        address = self._embedded_ray.address
                        deadline = time.monotonic() + 60
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the head is still starting
        self._started_ray = True

    async def stop(self) -> None:
        """Stop what this hub started, in reverse order."""
        if self._verifier is not None:
            await self._verifier.stop()
        if self._moves_sub is not None:
            with contextlib.suppress(Exception):
                await self._moves_sub.unsubscribe()
        if self._carrier is not None:
            await self._carrier.stop()
        if self._router is not None:
            await self._router.stop()
        if self._lanes is not None:
            await self._lanes.stop()
        if self.pollers is not None:
            await self.pollers.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.ops_listener is not None:
            await self.ops_listener.stop()
        if self._shortfall_sub is not None:
            with contextlib.suppress(Exception):
                await self._shortfall_sub.unsubscribe()
        if self._review_task is not None:
            self._review_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._review_task
        if self._wms is not None:
            await self._wms.stop()
        if self._inventory is not None:
            await self._inventory.settle()
        if self._relay is not None:
            await self._relay.stop()
        if not self.shares_actors:
            for handle in [*self.shards, *self.lane_shards]:
                ray.kill(handle, no_restart=True)
        self.shards = []
        self.lane_shards = []
        if self._started_ray:
            ray.shutdown()
        if self._embedded_ray is not None:
            await asyncio.to_thread(self._embedded_ray.stop)
        if self.nats is not None:
            await self.nats.close()
        if self._embedded_nats is not None:
            await asyncio.to_thread(self._embedded_nats.stop)
        log.info("hub stopped")
