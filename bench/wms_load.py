"""WMS event load for ``bench.wms_sync``: the events, what they must leave, publishing, probing.

The events are ``orderhub.v1.WmsEvent`` protobufs on ``<prefix>.<warehouse_id>``: mostly
inbound and outbound deltas, some transfers (an out of one warehouse and an in to
another), damage and a few stock counts, with about 1% of them published a second time
(the same bytes, the same ``event_id``). :class:`Book` applies them the way the hub does
(each ``event_id`` once, deltas clamped at 0, a count sets the absolute on hand), so after
a run every stock level must equal its entry in the book.

The load is published from a child process (:class:`Publisher`), so the benchmark
process stays free to probe: :class:`Prober` publishes an ``INBOUND +1`` on a few
dedicated probe levels every 20 ms and polls until the new on-hand shows, which gives
the publish → visible latency under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent

import nats
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from orderhub.v1 import wms_pb2

Key = tuple[str, str]
"""A stock level: (sku, warehouse_id)."""

INBOUND = wms_pb2.WMS_EVENT_TYPE_INBOUND
OUTBOUND = wms_pb2.WMS_EVENT_TYPE_OUTBOUND
TRANSFER_IN = wms_pb2.WMS_EVENT_TYPE_TRANSFER_IN
TRANSFER_OUT = wms_pb2.WMS_EVENT_TYPE_TRANSFER_OUT
DAMAGE = wms_pb2.WMS_EVENT_TYPE_DAMAGE
COUNT = wms_pb2.WMS_EVENT_TYPE_COUNT

KIND: dict[int, str] = {
    INBOUND: "INBOUND",
    OUTBOUND: "OUTBOUND",
    TRANSFER_IN: "TRANSFER_IN",
    TRANSFER_OUT: "TRANSFER_OUT",
    DAMAGE: "DAMAGE",
    COUNT: "COUNT",
}
SIGN: dict[int, int] = {INBOUND: 1, TRANSFER_IN: 1, OUTBOUND: -1, TRANSFER_OUT: -1, DAMAGE: -1}

START_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    """One WMS stock movement."""

    event_id: str
    warehouse_id: str
    sku: str
    type: int
    quantity: int

    @property
    def key(self) -> Key:
        """The stock level it moves."""
        return (self.sku, self.warehouse_id)

    def encode(self) -> bytes:
        """The ``WmsEvent`` protobuf a WMS would publish."""
        occurred = Timestamp()
        occurred.GetCurrentTime()
        return wms_pb2.WmsEvent(
            event_id=self.event_id,
            warehouse_id=self.warehouse_id,
            sku=self.sku,
            type=self.type,  # type: ignore[arg-type]
            quantity=self.quantity,
            occurred_at=occurred,
        ).SerializeToString()


def apply_delta(on_hand: int, kind: int, quantity: int) -> int:
    """On hand after a movement, as the hub computes it (clamped at 0; a count is absolute)."""
    if kind == COUNT:
        return quantity
    return max(0, on_hand + SIGN[kind] * quantity)


class Book:
    """What every stock level must show: each ``event_id`` applied once, in stream order."""

    def __init__(self, stock: dict[Key, int]) -> None:
        self.on_hand = dict(stock)
        self.seen: set[str] = set()

    def apply(self, event: Event) -> bool:
        """Apply an event; False (and no change) when its id was applied before."""
        if event.event_id in self.seen:
            return False
        self.seen.add(event.event_id)
        key = event.key
        self.on_hand[key] = apply_delta(self.on_hand[key], event.type, event.quantity)
        return True


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Warehouses, SKUs, their starting stock, and the levels the prober moves."""

    warehouses: list[str]
    skus: list[str]
    stock: dict[Key, int]
    probes: list[Key]

    @property
    def probe_skus(self) -> list[str]:
        """The probe SKUs (one per probe level)."""
        return sorted({sku for sku, _ in self.probes})


def make_catalogue(
    warehouses: int, skus: int, probe_skus: list[str], rng: random.Random
) -> Catalogue:
    """``warehouses`` x ``skus`` levels with 0 to 200 units each; probe levels start at 0."""
    whs = [f"WMSB-{n}" for n in range(1, warehouses + 1)]
    names = [f"WB-{n:06d}" for n in range(skus)]
    stock = {(sku, wh): rng.randint(0, 200) for sku in names for wh in whs}
    probes = [(sku, whs[n % len(whs)]) for n, sku in enumerate(probe_skus)]
    stock.update(dict.fromkeys(probes, 0))
    return Catalogue(whs, names, stock, probes)


@dataclass(slots=True)
class Phase:
    """The events one phase publishes, in order, and what they are."""

    name: str
    events: list[Event]
    duplicates: int
    kinds: Counter[str] = field(default_factory=Counter)
    #: Deltas that would take a level below 0 (it stays at 0).
    clamped: int = 0

    @property
    def distinct(self) -> int:
        """Events with an id not published before in this phase."""
        return len(self.events) - self.duplicates

    def messages(self, prefix: str) -> list[tuple[str, bytes]]:
        """(subject, payload) per event; a duplicate is the very same message again."""
        encoded: dict[str, bytes] = {}
        out = []
        for e in self.events:
            data = encoded.get(e.event_id)
            if data is None:
                data = encoded[e.event_id] = e.encode()
            out.append((f"{prefix}.{e.warehouse_id}", data))
        return out


class EventSource:
    """Generates realistic movements against a model of the stock (same seed, same events)."""

    def __init__(self, catalogue: Catalogue, rng: random.Random, dup_share: float = 0.01) -> None:
        self.catalogue = catalogue
        self.rng = rng
        self.dup_share = dup_share
        self.model = dict(catalogue.stock)
        self.clamped = 0

    def _sku(self) -> str:
        # Skewed: a few SKUs move far more than the rest.
        skus = self.catalogue.skus
        return skus[int(len(skus) * self.rng.random() ** 2)]

    def _one(self, event_id: str, room: int) -> list[Event]:
        rng, model = self.rng, self.model
        sku = self._sku()
        wh = rng.choice(self.catalogue.warehouses)
        key = (sku, wh)
        draw = rng.random()
        # Per event about 40% inbound, 40% outbound, 12% transfers (out and in), 5% damage,
        # 3% counts.
        # A transfer moves stock that is there; where there is none it is an inbound.
        is_transfer = 0.85 <= draw < 0.914
        can_transfer = model[key] > 0 and len(self.catalogue.warehouses) > 1 and room >= 2
        if draw < 0.425 or (is_transfer and not can_transfer):
            kind, qty = INBOUND, rng.randint(1, 12)
        elif draw < 0.85:
            kind, qty = OUTBOUND, rng.randint(1, 8)
        elif is_transfer:
            to = rng.choice([w for w in self.catalogue.warehouses if w != wh])
            qty = rng.randint(1, min(10, model[key]))
            moves = [
                Event(f"{event_id}o", wh, sku, TRANSFER_OUT, qty),
                Event(f"{event_id}i", to, sku, TRANSFER_IN, qty),
            ]
            for m in moves:
                model[m.key] = apply_delta(model[m.key], m.type, m.quantity)
            return moves
        elif draw < 0.968:
            kind, qty = DAMAGE, rng.randint(1, 3)
        else:
            kind, qty = COUNT, max(0, model[key] + rng.randint(-3, 3))
        if kind != COUNT and model[key] + SIGN[kind] * qty < 0:
            self.clamped += 1  # more left than the books had: on hand stays at 0
        model[key] = apply_delta(model[key], kind, qty)
        return [Event(event_id, wh, sku, kind, qty)]

    def phase(self, name: str, count: int) -> Phase:
        """``count`` messages, about ``dup_share`` of them repeats of earlier ones."""
        dups = round(count * self.dup_share)
        clamped_before = self.clamped
        unique: list[Event] = []
        n = 0
        while len(unique) < count - dups:
            unique += self._one(f"{name}-{n:07d}", room=count - dups - len(unique))
            n += 1
        # A repeat follows its original, soon after (same fetch) or long after.
        at = set(self.rng.sample(range(1, len(unique)), dups)) if dups else set()
        events: list[Event] = []
        for i, e in enumerate(unique):
            if i in at:
                if self.rng.random() < 0.5:
                    j = i - self.rng.randint(1, min(200, i))
                else:
                    j = self.rng.randrange(i)
                events.append(unique[j])
            events.append(e)
        kinds = Counter(KIND[e.type] for e in unique)
        return Phase(name, events, dups, kinds, self.clamped - clamped_before)


# --------------------------------------------------------------------------- publishing


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What the publisher did: wall-clock first publish and last ack, and its CPU time."""

    count: int
    first_wall: float
    last_wall: float
    cpu_s: float

    @property
    def rate(self) -> float:
        """Messages acked by JetStream per second."""
        span = self.last_wall - self.first_wall
        return self.count / span if span > 0 else math.inf


async def _publish_all(
    url: str,
    messages: list[tuple[str, bytes]],
    rate: float | None,
    window: int,
    ready: MpEvent,
    go: MpEvent,
) -> PublishReport:
    nc = await nats.connect(url, name="bench-wms-publisher")
    try:
        js = nc.jetstream(publish_async_max_pending=window)
        ready.set()
        if not await asyncio.to_thread(go.wait, START_TIMEOUT_S):
            raise RuntimeError("no signal to start publishing")
        cpu0 = time.process_time()
        first = time.time()
        start = time.monotonic()
        futures = []
        for n, (subject, data) in enumerate(messages):
            if rate:
                delay = start + n / rate - time.monotonic()
                if delay > 0.002:
                    await asyncio.sleep(delay)
            futures.append(await js.publish_async(subject, data))
        acks = await asyncio.gather(*futures)
        last = time.time()
        bad = [a for a in acks if not a.stream]
        if bad:
            raise RuntimeError(f"{len(bad)} publishes were not stored")
        return PublishReport(len(messages), first, last, time.process_time() - cpu0)
    finally:
        await nc.close()


def _publisher_main(
    url: str,
    messages: list[tuple[str, bytes]],
    rate: float | None,
    window: int,
    ready: MpEvent,
    go: MpEvent,
    results: mp.Queue[PublishReport | str],
) -> None:
    try:
        results.put(asyncio.run(_publish_all(url, messages, rate, window, ready, go)))
    except BaseException as err:
        results.put(f"{type(err).__name__}: {err}")
        raise


class Publisher:
    """A child process that publishes messages to JetStream, pipelined, on a signal."""

    def __init__(
        self, url: str, messages: list[tuple[str, bytes]], rate: float | None, window: int = 2000
    ) -> None:
        ctx = mp.get_context("spawn")
        self._ready = ctx.Event()
        self._go = ctx.Event()
        self._results: mp.Queue[PublishReport | str] = ctx.Queue()
        self._proc = ctx.Process(
            target=_publisher_main,
            args=(url, messages, rate, window, self._ready, self._go, self._results),
            daemon=True,
            name="bench-wms-publisher",
        )

    async def start(self) -> None:
        """Start the process and wait until it is connected."""
        self._proc.start()
        if not await asyncio.to_thread(self._ready.wait, START_TIMEOUT_S):
            self._proc.kill()
            raise RuntimeError("the publisher process did not connect")

    def go(self) -> None:
        """Start publishing."""
        self._go.set()

    async def done(self, timeout_s: float) -> PublishReport:
        """Wait for the publisher's report."""
        try:
            item = await asyncio.to_thread(self._results.get, True, timeout_s)
        finally:
            await asyncio.to_thread(self._proc.join, 30.0)
            if self._proc.is_alive():
                self._proc.kill()
        if isinstance(item, str):
            raise RuntimeError(f"the publisher failed: {item}")
        return item


# --------------------------------------------------------------------------- probing

Reader = Callable[[Key], Awaitable[int]]
"""Reads a level's on hand the way a user sees it (GetAvailability, or a SELECT)."""


@dataclass(slots=True)
class _Probe:
    target: int
    published: float


class Prober:
    """Publishes ``INBOUND +1`` on probe levels on a schedule and times until each shows.

    Each probe level has one poller that reads it every ``poll_s`` while a probe on it
    is outstanding; a probe counts as visible when a read that returned shows its target
    on hand (the time the answer arrived, so the read's own round trip is included).
    """

    def __init__(
        self,
        js: JetStreamContext,
        prefix: str,
        levels: dict[Key, int],
        read: Reader,
        tag: str,
        interval_s: float = 0.02,
        poll_s: float = 0.01,
    ) -> None:
        self._js = js
        self._prefix = prefix
        self._on_hand = dict(levels)
        self._read = read
        self._tag = tag
        self._interval_s = interval_s
        self._poll_s = poll_s
        self._pending: dict[Key, deque[_Probe]] = {k: deque() for k in levels}
        self.events: list[Event] = []
        self.latencies_ms: list[float] = []
        self.reads = 0
        self._publishing: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []

    @property
    def outstanding(self) -> int:
        """Probes published (or being published) but not yet seen."""
        return sum(len(q) for q in self._pending.values())

    async def _publish(self, event: Event) -> None:
        try:
            await self._js.publish(
                f"{self._prefix}.{event.warehouse_id}", event.encode(), timeout=30.0
            )
        except BaseException as err:
            self._errors.append(err)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish a probe every ``interval_s`` until ``stop`` is set."""
        keys = list(self._pending)
        pollers = [asyncio.create_task(self._poll(k, stop)) for k in keys]
        start = time.monotonic()
        n = 0
        try:
            while not stop.is_set():
                key = keys[n % len(keys)]
                self._on_hand[key] += 1
                event = Event(f"{self._tag}-{n:06d}", key[1], key[0], INBOUND, 1)
                self.events.append(event)
                self._pending[key].append(_Probe(self._on_hand[key], time.perf_counter()))
                task = asyncio.create_task(self._publish(event))
                self._publishing.add(task)
                task.add_done_callback(self._publishing.discard)
                n += 1
                delay = start + n * self._interval_s - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, delay))
            await asyncio.gather(*self._publishing)
            if self._errors:
                raise RuntimeError(f"{len(self._errors)} probes failed: {self._errors[0]!r}")
            await asyncio.gather(*pollers)
        finally:
            for p in pollers:
                p.cancel()

    async def _poll(self, key: Key, stop: asyncio.Event) -> None:
        pending = self._pending[key]
        while not (stop.is_set() and not pending and not self._publishing):
            if not pending:
                await asyncio.sleep(self._poll_s)
                continue
            value = await self._read(key)
            seen = time.perf_counter()
            self.reads += 1
            while pending and pending[0].target <= value:
                self.latencies_ms.append((seen - pending.popleft().published) * 1000)
            await asyncio.sleep(self._poll_s)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; NaN when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]
