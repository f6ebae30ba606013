"""OrderHub's Prometheus metrics: one registry per hub, filled where each fact is known.

Three kinds of series, by where their numbers come from:

- **Counted as it happens**, on the event loop, cheaply: RPCs in the access guard
  (:class:`RpcMetrics`, the one place every call passes), reservations in the inventory
  facade (:class:`ReservationMetrics`), and what the outbox relay published
  (:class:`OutboxMetrics`: every hold event, expiries included, once).
- **Read at scrape time** from what the hub already keeps in memory: the WMS sync's
  counters (no I/O).
- **Refreshed before a scrape**, because they need I/O: ATP per warehouse (the inventory
  map's SQL), lane health (the lane actors), the WMS consumer's position (JetStream), the
  outbox backlog and open dead letters (SQL). :meth:`HubMetrics.refresh` runs those sources
  concurrently, each with a time limit, at most once per ``min_interval_s`` however many
  scrapers ask, and keeps a source's last good answer when it fails
  (``orderhub_metrics_source_up`` says so). The scrape itself never blocks the event loop:
  the sources' SQL runs in threads and the text is rendered in a thread.

Deployment-wide facts (ATP, lanes, the WMS consumer, the outbox) are the same from every
hub replica; aggregate them with ``max``, not ``sum``. Per-process facts (RPCs,
reservations, published events) add up across replicas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc
import msgspec
import prometheus_client
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from hub.api.errors import classify
from hub.consuming import Position
from hub.domain.lanes import BreakerState, LaneHealth
from hub.domain.movements import HoldEventKind
from hub.events import HOLDS

if TYPE_CHECKING:
    from hub.app import Hub
    from hub.relay import Pending
    from hub.store.inventory_map import MapRow

log = logging.getLogger("orderhub.metrics")

#: Prefix of every OrderHub series.
PREFIX = "orderhub_"
#: RPC latency buckets: a reservation answers in about a millisecond, a routing decision or
#: an inventory map in tens, an import or reconciliation in seconds.
RPC_BUCKETS = (
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: A lane's breaker state as a number, for graphs and alerts.
BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
#: Reservation outcomes counted by ``orderhub_reservations_total``.
RESERVE_OUTCOMES = ("held", "repeated", "insufficient_stock", "rejected", "unavailable")
DECISIONS = ("released", "committed")

# The ``_created`` series double every counter's series and no dashboard here uses them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


def method_label(full_method: str) -> str:
    """``/orderhub.v1.StockService/Reserve`` → ``StockService/Reserve`` (others: no slash)."""
    return full_method.lstrip("/").removeprefix("orderhub.v1.")


def status_name(context: Any, err: BaseException | None) -> str:
    """The status code the caller got: the one set on the call, else from how it ended."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if err is None:
        return "OK"
    if isinstance(err, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return "DEADLINE_EXCEEDED"
        return "CANCELLED"
    return "UNKNOWN"  # what gRPC answers for an exception a handler did not turn into a status


# ---------------------------------------------------------------------------------- RPCs


class MethodProbe:
    """One RPC method's series, resolved once: a call pays a dict lookup and two increments."""

    __slots__ = ("_codes", "_duration", "_messages", "_method", "_open", "_requests")

    def __init__(self, rpc: RpcMetrics, method: str, *, streaming: bool) -> None:
        self._method = method
        self._requests = rpc.requests
        self._codes: dict[str, Any] = {"OK": rpc.requests.labels(method, "OK")}
        self._duration = None if streaming else rpc.duration.labels(method)
        self._open = rpc.streams_open.labels(method) if streaming else None
        self._messages = rpc.stream_messages.labels(method) if streaming else None

    def done(self, context: Any, err: BaseException | None, seconds: float) -> None:
        """A unary call ended (answered, refused or failed) after ``seconds``."""
        code = status_name(context, err)
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self._requests.labels(self._method, code)
        child.inc()
        if self._duration is not None:
            self._duration.observe(seconds)

    def stream_opened(self) -> None:
        """A streaming call began."""
        if self._open is not None:
            self._open.inc()

    def stream_sent(self) -> None:
        """A streaming call sent one message."""
        if self._messages is not None:
            self._messages.inc()

    def stream_closed(self, context: Any, err: BaseException | None) -> None:
        """A streaming call ended, however it ended."""
        if self._open is not None:
            self._open.dec()
        self.done(context, err, 0.0)


class RpcMetrics:
    """Calls, their status codes and latency, recorded by the access guard."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "orderhub_rpc_requests",
            "RPCs finished, by method and gRPC status code (refusals by the guard included).",
            ["method", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "orderhub_rpc_duration_seconds",
            "Time from receiving a unary RPC to its answer, guard included; streams excluded.",
            ["method"],
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        self.streams_open = Gauge(
            "orderhub_rpc_streams_open",
            "Streaming RPCs (watches) now open.",
            ["method"],
            registry=registry,
        )
        self.stream_messages = Counter(
            "orderhub_rpc_stream_messages_sent",
            "Messages sent on streaming RPCs.",
            ["method"],
            registry=registry,
        )
        self._probes: dict[tuple[str, bool], MethodProbe] = {}

    def probe(self, full_method: str, *, streaming: bool = False) -> MethodProbe:
        """The series of one method (made on its first call, then reused)."""
        key = (full_method, streaming)
        found = self._probes.get(key)
        if found is None:
            found = self._probes[key] = MethodProbe(
                self, method_label(full_method), streaming=streaming
            )
        return found


# -------------------------------------------------------------------------- reservations


def reserve_outcome(err: BaseException) -> str:
    """How a refused reservation is counted, from the status its caller is answered with."""
    if not isinstance(err, Exception):
        return "unavailable"
    code, reason = classify(err)
    if reason == "INSUFFICIENT_STOCK":
        return "insufficient_stock"
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
        return "unavailable"
    return "rejected"


class ReservationMetrics:
    """Reservation requests and decisions answered by this hub's inventory facade."""

    def __init__(self, registry: CollectorRegistry) -> None:
        requests = Counter(
            "orderhub_reservations",
            "Reservation requests answered by this hub: held (a new hold), repeated (the order "
            "already held: same answer), insufficient_stock, rejected (invalid, unknown SKU or "
            "warehouse), unavailable (a shard restarting).",
            ["outcome"],
            registry=registry,
        )
        decisions = Counter(
            "orderhub_reservation_decisions",
            "Holds released or committed through this hub.",
            ["decision"],
            registry=registry,
        )
        self._asked_again = Counter(
            "orderhub_reservation_retries",
            "Reservation attempts asked again because the stock they lacked was held by "
            "undecided reservations spanning shards, which might still let it go.",
            registry=registry,
        )
        self._outcomes = {o: requests.labels(o) for o in RESERVE_OUTCOMES}
        self._decisions = {d: decisions.labels(d) for d in DECISIONS}

    def reserved(self, new: bool) -> None:
        """A reservation was answered with a hold (``new``: made by this request)."""
        self._outcomes["held" if new else "repeated"].inc()

    def refused(self, err: BaseException) -> None:
        """A reservation was refused, or failed."""
        self._outcomes[reserve_outcome(err)].inc()

    def decided(self, decision: str) -> None:
        """A hold was ``released`` or ``committed``."""
        self._decisions[decision].inc()

    def asked_again(self) -> None:
        """A refusal that undecided holds could turn around is being asked again."""
        self._asked_again.inc()


# ------------------------------------------------------------------------------- outbox


class _Kind(msgspec.Struct):
    kind: str = ""


class _Holds(msgspec.Struct):
    events: list[_Kind] = []


def topic_of(subject: str) -> str:
    """``oms.stock.holds.WH-1`` → ``stock.holds``: the subject without its variable part."""
    return ".".join(subject.split(".")[1:3])


class OutboxMetrics:
    """What the outbox relay of this process published, counted after the stream took it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._messages = Counter(
            "orderhub_outbox_published_messages",
            "Outbox messages published to JetStream and removed from the outbox, by topic.",
            ["topic"],
            registry=registry,
        )
        events = Counter(
            "orderhub_hold_events",
            "Hold events published on oms.stock.holds.* (one per reservation line): held, "
            "released, committed, expired (a hold whose time ran out, in its shard), "
            "moved_out, moved_in. Counted by the relay that published them, so exactly once.",
            ["kind"],
            registry=registry,
        )
        self._events = {k.value: events.labels(k.value.lower()) for k in HoldEventKind}
        self._topics: dict[str, Any] = {}
        self._decoder = msgspec.json.Decoder(_Holds)
        self._holds_prefix = HOLDS + "."

    def published(self, rows: Sequence[Pending]) -> None:
        """Count messages the relay has published and forgotten."""
        for row in rows:
            topic = topic_of(row.subject)
            child = self._topics.get(topic)
            if child is None:
                child = self._topics[topic] = self._messages.labels(topic)
            child.inc()
            if row.subject.startswith(self._holds_prefix):
                self._count_holds(row.payload)

    def _count_holds(self, payload: bytes) -> None:
        try:
            body = self._decoder.decode(payload)
        except msgspec.DecodeError:
            log.warning("a hold message could not be read for the metrics")
            return
        tally: dict[str, int] = {}
        for event in body.events:
            tally[event.kind] = tally.get(event.kind, 0) + 1
        for kind, n in tally.items():
            child = self._events.get(kind)
            if child is not None:
                child.inc(n)


# ------------------------------------------------------------------ refreshed at scrape


@dataclass(frozen=True, slots=True)
class Backlog:
    """The outbox and dead letters, from the database."""

    outbox_pending: int
    outbox_oldest_at: datetime | None
    open_dead_letters: int


@dataclass(frozen=True, slots=True)
class WmsCounters:
    """What this process's WMS sync has done (read at scrape time, no I/O)."""

    applied: int
    duplicates: int
    dead_lettered: int
    last_applied_at: datetime | None


@dataclass(slots=True)
class Sources:
    """Where the refreshed series come from; each may be left out."""

    #: The inventory map grouped by province, city and warehouse.
    warehouses: Callable[[], Awaitable[list[MapRow]]] | None = None
    lanes: Callable[[], Awaitable[list[LaneHealth]]] | None = None
    wms: Callable[[], Awaitable[Position]] | None = None
    backlog: Callable[[], Awaitable[Backlog]] | None = None
    #: Read at every scrape, without I/O.
    wms_counters: Callable[[], WmsCounters] | None = None


@dataclass(slots=True)
class _Views:
    """The last good answer of each refreshed source."""

    warehouses: list[MapRow] = field(default_factory=list)
    lanes: list[LaneHealth] = field(default_factory=list)
    wms: Position | None = None
    backlog: Backlog | None = None
    up: dict[str, bool] = field(default_factory=dict)
    refreshed_at: float = 0.0


def _ts(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


def age_seconds(now: float, moment: datetime | None) -> float:
    """Seconds since ``moment`` (0 for none)."""
    return max(0.0, now - moment.timestamp()) if moment is not None else 0.0


class _StateCollector:
    """Renders the refreshed views and the in-memory counters as metric families."""

    def __init__(self, metrics: HubMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families(_Views(), None, 0.0))

    def collect(self) -> Iterable[Metric]:
        m = self._metrics
        counters = m.sources.wms_counters() if m.sources.wms_counters else None
        return list(self._families(m.views, counters, m.clock()))

    def _families(self, v: _Views, counters: WmsCounters | None, now: float) -> Iterator[Metric]:
        place = ["warehouse_id", "province", "city"]
        stock = {
            name: GaugeMetricFamily(f"orderhub_{name}", text, labels=place)
            for name, text in (
                (
                    "available_units",
                    "ATP (on hand - reserved - safety stock, at least 0) summed "
                    "over the warehouse's SKUs.",
                ),
                ("on_hand_units", "Units on hand in the warehouse."),
                ("reserved_units", "Units held for orders in the warehouse."),
                ("safety_stock_units", "Safety stock of the warehouse's levels."),
                ("out_of_stock_skus", "SKUs stocked in the warehouse with nothing available."),
            )
        }
        for row in v.warehouses:
            key = [row.warehouse_id, row.province, row.city]
            stock["available_units"].add_metric(key, row.available)
            stock["on_hand_units"].add_metric(key, row.on_hand)
            stock["reserved_units"].add_metric(key, row.reserved)
            stock["safety_stock_units"].add_metric(key, row.safety_stock)
            stock["out_of_stock_skus"].add_metric(key, row.out_of_stock_skus)
        yield from stock.values()

        lane = ["warehouse_id", "carrier", "destination_province"]
        late = GaugeMetricFamily(
            "orderhub_lane_late_ratio",
            "Late share of the lane's last judged window (the one its breaker judged last).",
            labels=lane,
        )
        outcomes = GaugeMetricFamily(
            "orderhub_lane_window_outcomes",
            "Delivery outcomes in the lane's last judged window.",
            labels=lane,
        )
        state = GaugeMetricFamily(
            "orderhub_lane_breaker_state",
            "The lane's breaker: 0 CLOSED, 1 HALF_OPEN (probing), 2 OPEN (not used).",
            labels=lane,
        )
        since = GaugeMetricFamily(
            "orderhub_lane_state_since_timestamp_seconds",
            "When the lane entered its state (0: it never changed).",
            labels=lane,
        )
        per_state = dict.fromkeys(BreakerState, 0)
        for h in v.lanes:
            key = [h.lane.warehouse_id, h.lane.carrier, h.lane.destination_province]
            late.add_metric(key, h.delay_rate)
            outcomes.add_metric(key, h.outcomes)
            state.add_metric(key, BREAKER_VALUES[h.state])
            since.add_metric(key, _ts(h.since))
            per_state[h.state] += 1
        lanes = GaugeMetricFamily(
            "orderhub_lanes", "Lanes with outcomes, by breaker state.", labels=["state"]
        )
        for s, n in per_state.items():
            lanes.add_metric([s.value], n)
        yield from (late, outcomes, state, since, lanes)

        wms = v.wms
        yield _gauge(
            "orderhub_wms_pending_events",
            "WMS events in the stream not yet delivered to the hub's consumer.",
            wms.pending if wms else None,
        )
        yield _gauge(
            "orderhub_wms_ack_pending_events",
            "WMS events delivered and being applied (not yet acknowledged).",
            wms.ack_pending if wms else None,
        )
        yield _gauge(
            "orderhub_wms_lag_seconds",
            "Age of the oldest WMS event not yet applied (0 when none waits).",
            age_seconds(now, wms.oldest_waiting_at) if wms else None,
        )
        yield _gauge(
            "orderhub_wms_connected",
            "1 while the hub is connected to NATS.",
            (1 if wms.connected else 0) if wms else None,
        )
        events = CounterMetricFamily(
            "orderhub_wms_events",
            "WMS events this process handled: applied, duplicate (applied before), dead_lettered.",
            labels=["result"],
        )
        if counters is not None:
            events.add_metric(["applied"], counters.applied)
            events.add_metric(["duplicate"], counters.duplicates)
            events.add_metric(["dead_lettered"], counters.dead_lettered)
        yield events
        yield _gauge(
            "orderhub_wms_last_applied_timestamp_seconds",
            "When this process last applied a WMS event (0: not since it started).",
            _ts(counters.last_applied_at) if counters else None,
        )

        b = v.backlog
        yield _gauge(
            "orderhub_outbox_pending_messages",
            "Messages in the outbox waiting to be published.",
            b.outbox_pending if b else None,
        )
        yield _gauge(
            "orderhub_outbox_oldest_pending_age_seconds",
            "Age of the oldest message waiting in the outbox (0 when it is empty).",
            age_seconds(now, b.outbox_oldest_at) if b else None,
        )
        yield _gauge(
            "orderhub_dead_letters_open",
            "Dead letters (WMS, carrier, platform) waiting to be replayed or discarded.",
            b.open_dead_letters if b else None,
        )
        up = GaugeMetricFamily(
            "orderhub_metrics_source_up",
            "1 when the source's last refresh for a scrape succeeded; its series keep the last "
            "good values otherwise.",
            labels=["source"],
        )
        for source, ok in sorted(v.up.items()):
            up.add_metric([source], 1 if ok else 0)
        yield up
        yield _gauge(
            "orderhub_metrics_refreshed_timestamp_seconds",
            "When the refreshed series were last refreshed.",
            v.refreshed_at or None,
        )


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family


class HubMetrics:
    """The registry of one hub process and everything that fills it."""

    def __init__(
        self,
        *,
        process: bool = True,
        min_interval_s: float = 1.0,
        source_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        if process:
            # The standard process_*, python_info and python_gc_* series, on this registry.
            for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(standard)
        self.clock = clock
        self.rpc = RpcMetrics(self.registry)
        self.reservations = ReservationMetrics(self.registry)
        self.outbox = OutboxMetrics(self.registry)
        self.sources = Sources()
        self.views = _Views()
        self._min_interval_s = min_interval_s
        self._timeout_s = source_timeout_s
        self._refreshing: asyncio.Task[None] | None = None
        self.registry.register(_StateCollector(self))

    def watch(self, sources: Sources) -> None:
        """Take the refreshed series from ``sources`` from now on."""
        self.sources = sources

    async def refresh(self, max_age_s: float | None = None) -> None:
        """Bring the refreshed series up to date (one refresh at a time, shared by callers).

        Values younger than ``max_age_s`` (default ``min_interval_s``) are kept as they are.
        """
        limit = self._min_interval_s if max_age_s is None else max_age_s
        if self.clock() - self.views.refreshed_at < limit:
            return
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        await asyncio.shield(task)

    async def _refresh(self) -> None:
        s = self.sources
        wanted: dict[str, Callable[[], Awaitable[Any]]] = {
            name: source
            for name, source in (
                ("inventory", s.warehouses),
                ("lanes", s.lanes),
                ("wms", s.wms),
                ("database", s.backlog),
            )
            if source is not None
        }
        answers = await asyncio.gather(
            *(asyncio.wait_for(source(), self._timeout_s) for source in wanted.values()),
            return_exceptions=True,
        )
        views, up = self.views, dict(self.views.up)
        got: dict[str, Any] = {}
        for name, answer in zip(wanted, answers, strict=True):
            if isinstance(answer, BaseException):
                # Said once when a source goes down, not at every scrape while it stays down.
                level = logging.WARNING if up.get(name, True) else logging.DEBUG
                log.log(level, "metrics source %s failed: %r", name, answer)
                up[name] = False
            else:
                up[name] = True
                got[name] = answer
        self.views = _Views(
            warehouses=got.get("inventory", views.warehouses),
            lanes=got.get("lanes", views.lanes),
            wms=got.get("wms", views.wms),
            backlog=got.get("database", views.backlog),
            up=up,
            refreshed_at=self.clock(),
        )

    async def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """Refresh, then render the registry for a scraper (OpenMetrics when it asks)."""
        await self.refresh()
        encoder, content_type = choose_encoder(accept)
        body = await asyncio.to_thread(encoder, self.registry)
        return body, content_type

    def names(self) -> set[str]:
        """Every series name this registry can export (with _total, _bucket … suffixes)."""
        suffixes: Mapping[str, tuple[str, ...]] = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count"),
            "info": ("_info",),
        }
        found: set[str] = set()
        for family in self.registry.collect():
            found.add(family.name)
            found.update(family.name + s for s in suffixes.get(family.type, ()))
        return found


# ---------------------------------------------------------------- a hub's sources


def hub_sources(hub: Hub) -> Sources:
    """The refreshed series' sources of a started hub."""
    from hub.relay import backlog_age
    from hub.store.inventory_map import Dimension, inventory_map

    engine = hub.master_data.engine
    by_place = (Dimension.PROVINCE, Dimension.CITY, Dimension.WAREHOUSE)

    async def warehouses() -> list[MapRow]:
        found = await asyncio.to_thread(inventory_map, engine, by_place, limit=50_000)
        return found.rows

    async def wms() -> Position:
        return await hub.wms.position()

    async def backlog() -> Backlog:
        assert hub.dead_letters is not None
        (count, oldest), open_letters = await asyncio.gather(
            asyncio.to_thread(backlog_age, engine),
            asyncio.to_thread(hub.dead_letters.count_open),
        )
        return Backlog(count, oldest, open_letters)

    def wms_counters() -> WmsCounters:
        c = hub.wms.counters
        return WmsCounters(c.applied, c.duplicates, c.dead_lettered, c.last_applied_at)

    return Sources(
        warehouses=warehouses,
        lanes=lambda: hub.lanes.health(),
        wms=wms,
        backlog=backlog,
        wms_counters=wms_counters,
    )
