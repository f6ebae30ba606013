"""The article's case study, simulated: static routing against OrderHub's routing engine.

Run ``python -m bench.routing_sim`` (``--quick`` for a smoke check). A mid-size home-appliance
brand ships from five regional warehouses through a June promotion; in the surge the South
China warehouse gets more orders than it can pack and one busy lane slows down. The same
orders, with the same luck in transit, are shipped by each routing model:

* **static**: the old model. The nearest warehouse (属地发货), one fixed carrier for
  everything, decided when the order is created; capacity and lane health are ignored and
  nothing is ever re-routed. It runs once per fixed carrier (``--carriers``; the first is
  the headline, yunda by default: the degraded lane is its lane, and its cost per order on
  this model is the nearest of the four to the article's old 18.6 yuan). It runs once more
  with no capacity limit at all, which bounds what avoiding backlogs can win.
* **OrderHub**: every order goes through :func:`hub.domain.routing.decide` with the
  default rules (:func:`hub.domain.routing_rules.default_rules`, unchanged), the packaged
  rate card, each warehouse's live ATP and today's routed count, and a lane gate built from
  a :class:`hub.domain.lanes.LaneBook` fed the simulated delivery outcomes by event time, so
  the degraded lane trips, half-opens and closes as the product's breakers would.

The report (markdown, stdout) is the article's table, where the cost differs, the
warehouses, the breaker transitions, the fixed-carrier sensitivity, the decision latency and
the targets; progress goes to stderr. The exit status is 1 if a correctness check fails:
every order delivered exactly once with exactly its units, no warehouse shipping more than
it holds, no parcel handed over twice, every order routable, and no parcel routed or handed
to a carrier on a lane its breaker does not admit (OPEN, or HALF_OPEN and not a probe).

The model (every figure is a parameter of :class:`Model` or a constant below):

Time
    10 days from 2025-06-14 00:00 (UTC+8), the article's June promotion. Days 2-5
    (06-16 to 06-19) are the surge at 3x the normal day's orders. Orders arrive through the
    day along ``HOURLY`` (quiet at night, peaks late morning and 20-22 h), at a uniformly
    random moment within their hour.
Orders
    ``orders_per_day`` on a normal day (3,000). Destination province by 2020 census
    population (``hub.domain.geo.PROVINCES``, the 31 mainland provinces); among surge orders
    the South China provinces (广东, 广西, 海南) weigh ``south_boost`` times as much (2: a heat
    wave during the promotion sells fans and dehumidifiers there). The boost is calibrated to
    the article's symptom, orders held in the South for more than 48 hours under the old
    model; at 1.6 there are none (``--south-boost``). 20% of a province's orders go to its
    capital, the rest to its second city (a municipality is one city). An order has 1 (75%),
    2 (20%) or 3 (5%) lines of the ``SKUS`` catalogue (small appliances of 0.9-14 kg, and a
    23 kg water heater that ships alone); 10% of lines of an item up to 5 kg ask for 2 units;
    an order over 40 kg loses lines until it is not. The surge sells more cooling products.
    3% of orders carry the ``urgent`` tag (加急). Channels tmall/jd/douyin/pdd 40/30/20/10%
    (no default rule looks at the channel). No order names SLA hours.
Warehouses
    The demo's five (``hub/demo.py``): 华东 上海, 华南 广州, 华北 北京, 西南 成都, 华中 武汉.
    Each packs at most ``daily_capacity`` parcels a day, first in first out, evenly over a
    08:00-24:00 shift; carriers collect at 10:00, 14:00, 18:00 and 22:00. Capacity is planned
    for the promotion: the warehouse's normal-day orders under nearest-warehouse routing
    times ``capacity_plan`` (3.3: the surge's 3x plus 10%). The South's surge share is above
    that plan, so it overflows; the others keep some headroom. The hub's count of a
    warehouse's orders restarts at midnight (its routing day); a backlog does not.
Stock
    Each warehouse holds ``stock_cover`` (1.5) times the units the static model ships from
    it over the run (a perfect regional forecast plus 50%), with no replenishment: the
    static model never runs short, and OrderHub, which moves the South's overflow elsewhere,
    must live within the same stock (checked).
Carriers
    The packaged rate card (``hub/domain/rate_cards.toml``) prices every parcel on both sides
    and gives its promised hours; parcels are billed on actual weight (routing lines carry
    no dimensions). Actual transit = promised hours times a log-normal factor drawn per
    parcel (``TRANSIT``, median and sigma of the factor: express 0.70/0.15, about 1% late;
    network carriers 0.75/0.20, 7.5%; EMS 0.78/0.20, 11%; same-city instant 0.60/0.30,
    4.5%). The draw comes from the order's own random numbers, so every model meets the
    same luck.
Degraded lane
    WH-SOUTH/yunda to 广东: the nearest warehouse to the largest province with the cheapest
    carrier on the card, the busiest lane of the static model on yunda and of OrderHub's
    default rules alike. Parcels handed over from 06-17 00:00 to 06-19 12:00 take
    ``degraded_slowdown`` (1.5) times as long; about 70% of them arrive late.
Outcomes and breakers
    A carrier's outcome is late when the parcel arrives after handover + its promised hours
    (what tracking's ``promised_at`` says). It reaches the hub ``report_lag_minutes`` (10 to
    90, uniform) after the delivery and is recorded with ``occurred_at`` = the delivery and
    ``now`` = its arrival (``--report-lag``). The breaker policy is the default
    (:class:`hub.domain.lanes.BreakerPolicy`: above 15% late for 2 hours, 20 outcomes a
    window, 30 min cool-down, 10% probes). When a lane trips OPEN, OrderHub re-routes the
    parcels on it not yet handed over: ``decide`` again for the parcel from the same
    warehouse (it keeps its place in the queue; only the carrier changes). Orders in a
    backlog are not moved to another warehouse.
Delivery and lateness
    Delivery days = (last parcel delivered - order placed) / 24 h, around the clock (no
    last-mile delivery window). The buyer's promise = placed + 24 h to ship + the promised
    hours of the route chosen at order time (static: its fixed carrier from the nearest
    warehouse; OrderHub: the decision's). An order is late when its last parcel arrives
    after that promise. OrderHub's orders are also judged against the static model's
    promise, one yardstick for both.
Complaints (a model, not data)
    An on-time order complains with probability 2%, an order up to 24 h late 30%, a later
    one 55% (``COMPLAINT``).
Latency
    Every ``decide`` call of the OrderHub run (re-routes included) is timed with
    ``perf_counter_ns``, the building of its inputs not; the static model's decision
    (nearest warehouse holding the order, its carrier's quote) is timed the same way in the
    same process. Maxima include the interpreter's garbage-collection pauses.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import shlex
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from hub.domain.geo import PROVINCES, Region, distance_km, province_of, zone_between
from hub.domain.lanes import BreakerState, Lane, LaneBook, Transition
from hub.domain.quotes import Parcel, Zone
from hub.domain.rate_cards import RateCardProvider, ServiceLevel, load_rate_cards
from hub.domain.routing import (
    Decision,
    LaneVerdict,
    NoRoute,
    RouteLine,
    RouteRequest,
    WarehouseState,
    decide,
)
from hub.domain.routing_rules import RuleSet, default_rules

# --------------------------------------------------------------------------- parameters

#: China Standard Time; the simulation's wall clock.
CST = timezone(timedelta(hours=8), "CST")
#: Hour 0 of the simulation: the Saturday before the article's June 2025 promotion.
START = datetime(2025, 6, 14, tzinfo=CST)

#: The demo's warehouses (hub/demo.py): id, province, city.
SITES: tuple[tuple[str, str, str], ...] = (
    ("WH-EAST", "上海", "上海"),
    ("WH-SOUTH", "广东", "广州"),
    ("WH-NORTH", "北京", "北京"),
    ("WH-SOUTHWEST", "四川", "成都"),
    ("WH-CENTRAL", "湖北", "武汉"),
)

#: Orders per hour of the day, relative (an e-commerce day: quiet at night, evening peak).
HOURLY: tuple[float, ...] = (
    2.0, 1.2, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4.0, 5.0, 5.0,
    4.5, 4.5, 5.0, 5.0, 4.8, 4.5, 4.5, 5.5, 6.5, 7.0, 6.5, 4.5,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sku:
    """One product: its weight, price, and how often it sells outside and in the surge."""

    sku: str
    name: str
    grams: int
    price_fen: int
    normal: float
    surge: float


#: A home-appliance brand's parcel-sized range; the water heater is the heavy one.
SKUS: tuple[Sku, ...] = (
    Sku("FAN-STAND", "落地扇", 6500, 29900, 8, 22),
    Sku("FAN-DESK", "台扇", 3200, 15900, 6, 14),
    Sku("DEHUMIDIFIER", "除湿机", 14000, 129900, 3, 8),
    Sku("PURIFIER", "空气净化器", 8500, 159900, 4, 4),
    Sku("RICE-COOKER", "电饭煲", 4200, 39900, 10, 8),
    Sku("KETTLE", "电水壶", 1500, 12900, 12, 9),
    Sku("AIR-FRYER", "空气炸锅", 5200, 45900, 8, 8),
    Sku("BLENDER", "破壁机", 5600, 69900, 6, 5),
    Sku("HAIR-DRYER", "吹风机", 900, 19900, 10, 8),
    Sku("VACUUM", "无线吸尘器", 3800, 199900, 6, 6),
    Sku("MICROWAVE", "微波炉", 12500, 59900, 4, 3),
    Sku("WATER-HEATER", "电热水器 60L", 23000, 149900, 2, 2),
)
#: Ships alone: a 23 kg box is its own parcel.
ALONE = frozenset({"WATER-HEATER"})
#: Units of an item are doubled only up to this weight.
DOUBLE_MAX_GRAMS = 5000
MAX_ORDER_GRAMS = 40_000

#: Each province's second city (the first is its capital).
SECOND_CITY: dict[str, str] = {
    "河北": "唐山", "山西": "大同", "内蒙古": "包头", "辽宁": "大连", "吉林": "吉林",
    "黑龙江": "大庆", "江苏": "苏州", "浙江": "宁波", "安徽": "芜湖", "福建": "厦门",
    "江西": "赣州", "山东": "青岛", "河南": "洛阳", "湖北": "宜昌", "湖南": "株洲",
    "广东": "深圳", "广西": "柳州", "海南": "三亚", "四川": "绵阳", "贵州": "遵义",
    "云南": "曲靖", "西藏": "日喀则", "陕西": "宝鸡", "甘肃": "天水", "青海": "海东",
    "宁夏": "石嘴山", "新疆": "喀什",
}  # fmt: skip
CAPITAL_SHARE = 0.2
URGENT_SHARE = 0.03
CHANNELS: tuple[tuple[str, float], ...] = (
    ("tmall", 0.4),
    ("jd", 0.3),
    ("douyin", 0.2),
    ("pdd", 0.1),
)

#: Working hours of the packing shift [start, end) and the carriers' collection hours.
SHIFT = (8, 24)
PICKUPS = frozenset({10, 14, 18, 22})
#: Hours a warehouse has to hand an order over, in the buyer's promise.
SHIP_WITHIN_HOURS = 24

#: Actual transit = promised hours x exp(N(ln median, sigma)), per service level.
TRANSIT: dict[ServiceLevel, tuple[float, float]] = {
    ServiceLevel.EXPRESS: (0.70, 0.15),
    ServiceLevel.STANDARD: (0.75, 0.20),
    ServiceLevel.POSTAL: (0.78, 0.20),
    ServiceLevel.SAME_DAY: (0.60, 0.30),
}
#: Probability of a complaint: on time, late by up to 24 h, later.
COMPLAINT = (0.02, 0.30, 0.55)

#: The article's table: metric → (old model, new model).
ARTICLE: dict[str, tuple[float | None, float | None]] = {
    "days": (3.2, 2.1),
    "late": (None, None),
    "complaints": (0.097, 0.041),
    "cost": (18.6, 16.3),
}
#: Fixed carriers the static model is run with; the first is the headline.
STATIC_CARRIERS = ("yunda", "zto", "jd", "sf")
LATENCY_TARGET_US = 2000.0
DEFAULT_SEED = 618
DEFAULT_ORDERS_PER_DAY = 3000

_ZONE_RANK = {
    Zone.SAME_CITY: 0,
    Zone.SAME_PROVINCE: 1,
    Zone.REGIONAL: 2,
    Zone.NATIONAL: 3,
    Zone.REMOTE: 4,
}


@dataclass(frozen=True, slots=True)
class Model:
    """Every parameter of one simulated world; the same world for every routing model."""

    days: int = 10
    orders_per_day: int = DEFAULT_ORDERS_PER_DAY
    seed: int = DEFAULT_SEED
    surge_days: tuple[int, ...] = (2, 3, 4, 5)
    surge_factor: float = 3.0
    #: How much more the South China provinces weigh among surge orders.
    south_boost: float = 2.0
    #: Daily capacity = the warehouse's normal-day orders (nearest routing) x this.
    capacity_plan: float = 3.3
    #: Units on hand = what the static model ships from the warehouse x this.
    stock_cover: float = 1.5
    degraded_lane: tuple[str, str, str] = ("WH-SOUTH", "yunda", "广东")
    #: Handover hours (from START) between which the degraded lane is slow.
    degraded_from: float = 3 * 24.0
    degraded_until: float = 5 * 24.0 + 12
    degraded_slowdown: float = 1.5
    #: Minutes from a delivery to its outcome reaching the hub (uniform between the two).
    report_lag_minutes: tuple[float, float] = (10.0, 90.0)


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True, slots=True)
class Order:
    """One order as the simulation knows it, with its own random numbers."""

    index: int
    order_id: str
    #: Hours since START.
    placed: float
    province: str
    city: str
    lines: tuple[RouteLine, ...]
    tags: frozenset[str]
    channel: str
    amount_fen: int
    #: Transit luck of the first, second and third parcel, uniform in (0, 1).
    luck: tuple[float, float, float]
    #: Where in the report lag the outcomes arrive, and the complaint draw.
    lag: float
    complaint: float

    @property
    def grams(self) -> int:
        """What the whole order weighs."""
        return sum(line.weight_grams * line.quantity for line in self.lines)


@dataclass(frozen=True, slots=True)
class Site:
    """A warehouse: where it is and what it packs a day."""

    warehouse_id: str
    province: str
    city: str
    daily_capacity: int


@dataclass(frozen=True, slots=True)
class World:
    """The orders, warehouses and opening stock both models start from."""

    model: Model
    orders: tuple[Order, ...]
    sites: tuple[Site, ...]
    stock: dict[str, dict[str, int]]


def _pick(rng: random.Random, items: Sequence[str], weights: Sequence[float]) -> str:
    return rng.choices(items, weights)[0]


def _day_volume(model: Model, day: int) -> int:
    factor = model.surge_factor if day in model.surge_days else 1.0
    return round(model.orders_per_day * factor)


def _hour_counts(total: int) -> list[int]:
    """``total`` split over the day's hours along HOURLY, by largest remainder."""
    whole = sum(HOURLY)
    exact = [total * w / whole for w in HOURLY]
    counts = [math.floor(x) for x in exact]
    short = total - sum(counts)
    for i in sorted(range(24), key=lambda i: counts[i] - exact[i])[:short]:
        counts[i] += 1
    return counts


_MAINLAND = tuple(p for p in PROVINCES if p.domestic)


def _lines(rng: random.Random, surge: bool) -> tuple[RouteLine, ...]:
    names = [s.sku for s in SKUS]
    weights = [s.surge if surge else s.normal for s in SKUS]
    by_name = {s.sku: s for s in SKUS}
    wanted = rng.choices((1, 2, 3), (75, 20, 5))[0]
    chosen: list[str] = []
    while len(chosen) < wanted:
        name = _pick(rng, names, weights)
        if name in chosen:
            continue
        if name in ALONE and chosen:
            continue
        chosen.append(name)
        if name in ALONE:
            break
    lines = []
    for name in chosen:
        sku = by_name[name]
        qty = 2 if sku.grams <= DOUBLE_MAX_GRAMS and rng.random() < 0.1 else 1
        lines.append(RouteLine(sku.sku, qty, sku.grams))
    while len(lines) > 1 and sum(x.weight_grams * x.quantity for x in lines) > MAX_ORDER_GRAMS:
        lines.pop()
    return tuple(lines)


def make_orders(model: Model) -> tuple[Order, ...]:
    """The run's orders, in the order they are placed; the same for a seed."""
    rng = random.Random(model.seed)
    provinces = [p.short for p in _MAINLAND]
    normal_w = [float(p.population) for p in _MAINLAND]
    surge_w = [
        p.population * (model.south_boost if p.region is Region.SOUTH else 1.0) for p in _MAINLAND
    ]
    capital = {p.short: p.capital for p in _MAINLAND}
    municipal = {p.short for p in _MAINLAND if p.municipality}
    channels = [c for c, _ in CHANNELS]
    channel_w = [w for _, w in CHANNELS]
    price = {s.sku: s.price_fen for s in SKUS}
    orders: list[Order] = []
    for day in range(model.days):
        surge = day in model.surge_days
        for hour, count in enumerate(_hour_counts(_day_volume(model, day))):
            minutes = sorted(rng.random() for _ in range(count))
            for minute in minutes:
                province = _pick(rng, provinces, surge_w if surge else normal_w)
                if province in municipal or rng.random() < CAPITAL_SHARE:
                    city = capital[province]
                else:
                    city = SECOND_CITY[province]
                lines = _lines(rng, surge)
                i = len(orders)
                orders.append(
                    Order(
                        index=i,
                        order_id=f"SIM-{i:06d}",
                        placed=day * 24 + hour + minute,
                        province=province,
                        city=city,
                        lines=lines,
                        tags=frozenset({"urgent"}) if rng.random() < URGENT_SHARE else frozenset(),
                        channel=_pick(rng, channels, channel_w),
                        amount_fen=sum(price[x.sku] * x.quantity for x in lines),
                        luck=(_unit(rng), _unit(rng), _unit(rng)),
                        lag=rng.random(),
                        complaint=rng.random(),
                    )
                )
    return tuple(orders)


def _unit(rng: random.Random) -> float:
    # Open interval: the inverse normal of 0 or 1 is infinite.
    return min(max(rng.random(), 1e-9), 1 - 1e-9)


def nearest(sites: Sequence[Site], province: str, city: str) -> list[Site]:
    """Warehouses from nearest to farthest: by pricing zone, then kilometres (属地发货)."""
    dest = province_of(province)
    assert dest is not None

    def rank(site: Site) -> tuple[int, float, str]:
        origin = province_of(site.province)
        assert origin is not None
        zone = zone_between(site.province, site.city, province, city)
        return (_ZONE_RANK[zone], distance_km(origin, dest), site.warehouse_id)

    return sorted(sites, key=rank)


def make_world(model: Model) -> World:
    """Orders, then capacity and stock planned from them (see the module docstring)."""
    orders = make_orders(model)
    placeholder = tuple(Site(w, p, c, 0) for w, p, c in SITES)
    first = {}
    normal_days = [d for d in range(model.days) if d not in model.surge_days] or [0]
    normal_orders: Counter[str] = Counter()
    shipped: dict[str, Counter[str]] = {w: Counter() for w, _, _ in SITES}
    for order in orders:
        key = (order.province, order.city)
        if key not in first:
            first[key] = nearest(placeholder, order.province, order.city)[0].warehouse_id
        wid = first[key]
        if int(order.placed // 24) in normal_days:
            normal_orders[wid] += 1
        for line in order.lines:
            shipped[wid][line.sku] += line.quantity
    sites = tuple(
        Site(
            w,
            p,
            c,
            max(1, math.ceil(normal_orders[w] / len(normal_days) * model.capacity_plan)),
        )
        for w, p, c in SITES
    )
    stock = {
        w: {s.sku: math.ceil(shipped[w][s.sku] * model.stock_cover) for s in SKUS}
        for w, _, _ in SITES
    }
    return World(model, orders, sites, stock)


# --------------------------------------------------------------------------- simulation


@dataclass(slots=True)
class Shipment:
    """One parcel on its way: where from, with whom, and what happened to it."""

    order: Order
    number: int
    warehouse_id: str
    carrier: str
    lines: tuple[tuple[str, int], ...]
    grams: int
    cost_fen: int
    promised_hours: int
    handed_at: float = -1.0
    delivered_at: float = -1.0
    late: bool = False
    reroutes: int = 0


@dataclass(slots=True)
class Dock:
    """A warehouse at work: its stock, today's count, the packing queue and packed parcels."""

    site: Site
    atp: dict[str, int]
    routed_today: int = 0
    queue: deque[Shipment] = field(default_factory=deque)
    packed: list[Shipment] = field(default_factory=list)
    credit: float = 0.0
    shipped: int = 0
    max_queue: int = 0
    max_wait: float = 0.0


@dataclass(slots=True)
class Change:
    """A breaker transition as the report shows it."""

    lane: Lane
    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str
    rerouted: int


@dataclass(slots=True)
class Result:
    """What one routing model did with the world's orders."""

    name: str
    orders: int = 0
    #: Per order index (hours since START): placed, promised, last delivered, last handed over.
    placed: list[float] = field(default_factory=list)
    promise: list[float] = field(default_factory=list)
    delivered: list[float] = field(default_factory=list)
    last_handover: list[float] = field(default_factory=list)
    #: Per order index: cost in fen (after any re-route) and parcels.
    cost_fen: list[int] = field(default_factory=list)
    parcels: list[int] = field(default_factory=list)
    #: Per order index: warehouse and carrier of its first parcel as routed.
    routes: list[tuple[str, str]] = field(default_factory=list)
    carriers: Counter[str] = field(default_factory=Counter)
    docks: dict[str, Dock] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    rerouted: int = 0
    decide_ns: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    # ----------------------------------------------------------------- metrics

    def days(self) -> float:
        """Average delivery days: placed to last parcel delivered."""
        return (
            statistics.fmean(d - p for d, p in zip(self.delivered, self.placed, strict=True)) / 24
        )

    def late_share(self, promise: Sequence[float] | None = None) -> float:
        """Share of orders delivered after their promise (or after the one given)."""
        promise = self.promise if promise is None else promise
        late = sum(1 for d, p in zip(self.delivered, promise, strict=True) if d > p)
        return late / self.orders

    def complaint_rate(self, orders: Sequence[Order]) -> float:
        """Share of orders that complain, by the COMPLAINT model."""
        on_time, late, very_late = COMPLAINT
        n = 0
        for order, done, promise in zip(orders, self.delivered, self.promise, strict=True):
            p = on_time if done <= promise else late if done - promise <= 24 else very_late
            n += order.complaint < p
        return n / self.orders

    def cost(self) -> float:
        """Average logistics cost per order, in yuan."""
        return statistics.fmean(self.cost_fen) / 100

    def held_over(self, hours: float) -> int:
        """Orders whose last parcel was handed over more than ``hours`` after placing."""
        return sum(1 for h, p in zip(self.last_handover, self.placed, strict=True) if h - p > hours)


class Simulation:
    """The world's clock, warehouses and carriers; a router decides where orders go."""

    def __init__(self, world: World, name: str, cards: RateCardProvider) -> None:
        self.world = world
        self.cards = cards
        self.result = Result(name, orders=len(world.orders))
        n = len(world.orders)
        self.result.promise = [0.0] * n
        self.result.delivered = [-1.0] * n
        self.result.last_handover = [-1.0] * n
        self.result.cost_fen = [0] * n
        self.result.parcels = [0] * n
        self.result.routes = [("", "")] * n
        self.result.placed = [o.placed for o in world.orders]
        self.docks = {
            s.warehouse_id: Dock(s, dict(world.stock[s.warehouse_id])) for s in world.sites
        }
        self.result.docks = self.docks
        self.shipped_units: Counter[tuple[str, str]] = Counter()
        self.order_units: list[Counter[str]] = [Counter() for _ in range(n)]
        self.outstanding = [0] * n
        self.deliveries = [0] * n
        self.reports: list[tuple[float, int, Shipment]] = []
        self._seq = 0
        self._service = {c: cards.card(c) for c in cards.carriers}
        self._inverse = statistics.NormalDist().inv_cdf

    # ----------------------------------------------------------------- the loop

    def run(self) -> Result:
        """Every order placed, packed, handed over and delivered; then the checks."""
        orders = self.world.orders
        i, n = 0, len(orders)
        hour = 0
        last_order_hour = self.world.model.days * 24
        while True:
            end = float(hour + 1)
            if hour % 24 == 0:
                # The hub counts each warehouse's orders per routing day (Asia/Shanghai).
                for dock in self.docks.values():
                    dock.routed_today = 0
            while i < n and orders[i].placed < end:
                order = orders[i]
                self.advance(order.placed)
                self.route(order)
                i += 1
            self.advance(end)
            self._pack(hour)
            if (hour + 1) % 24 in PICKUPS:
                self._hand_over(end)
            hour += 1
            idle = all(not d.queue and not d.packed for d in self.docks.values())
            if hour >= last_order_hour and idle:
                break
        self.advance(math.inf)
        self._check()
        return self.result

    def advance(self, now: float) -> None:
        """Let every outcome that reached the hub by ``now`` in (and the clock move on)."""
        reports = self.reports
        while reports and reports[0][0] <= now:
            _, _, shipment = heapq.heappop(reports)
            self._delivered(shipment)

    def _delivered(self, shipment: Shipment) -> None:
        i = shipment.order.index
        self.deliveries[i] += 1
        self.outstanding[i] -= 1
        if shipment.delivered_at > self.result.delivered[i]:
            self.result.delivered[i] = shipment.delivered_at

    # ----------------------------------------------------------------- routing

    def route(self, order: Order) -> None:
        """Decide the order's parcels and queue them at their warehouses."""
        raise NotImplementedError

    def _queue(self, order: Order, shipments: Sequence[Shipment], promise: float) -> None:
        i = order.index
        self.result.promise[i] = promise
        self.result.parcels[i] = len(shipments)
        self.result.routes[i] = (shipments[0].warehouse_id, shipments[0].carrier)
        self.result.cost_fen[i] = sum(s.cost_fen for s in shipments)
        self.outstanding[i] = len(shipments)
        for s in shipments:
            dock = self.docks[s.warehouse_id]
            for sku, qty in s.lines:
                dock.atp[sku] -= qty
                self.shipped_units[(s.warehouse_id, sku)] += qty
                self.order_units[i][sku] += qty
            dock.routed_today += 1
            dock.queue.append(s)

    # ----------------------------------------------------------------- warehouses

    def _pack(self, hour: int) -> None:
        start, stop = SHIFT
        if not start <= hour % 24 < stop:
            for dock in self.docks.values():
                dock.max_queue = max(dock.max_queue, len(dock.queue))
            return
        per_hour = 1.0 / (stop - start)
        for dock in self.docks.values():
            capacity = dock.site.daily_capacity
            # 0 means no limit, as in WarehouseState: everything queued is packed.
            dock.credit += capacity * per_hour if capacity else len(dock.queue)
            take = min(len(dock.queue), int(dock.credit))
            dock.credit -= take
            for _ in range(take):
                dock.packed.append(dock.queue.popleft())
            if not dock.queue:
                # Unused hours are not saved up: a shift cannot pack yesterday's idle time.
                dock.credit -= int(dock.credit)
            dock.max_queue = max(dock.max_queue, len(dock.queue))

    def _hand_over(self, now: float) -> None:
        for dock in self.docks.values():
            for s in dock.packed:
                self._ship(s, now)
                dock.shipped += 1
                wait = now - s.order.placed
                dock.max_wait = max(dock.max_wait, wait)
                i = s.order.index
                self.result.last_handover[i] = max(self.result.last_handover[i], now)
            dock.packed.clear()

    def _ship(self, s: Shipment, now: float) -> None:
        """Hand a parcel to its carrier: draw its transit and schedule its outcome."""
        if s.handed_at >= 0:
            self.result.failures.append(f"{s.order.order_id} parcel {s.number} handed over twice")
        self.check_lane(s, now)
        card = self._service[s.carrier]
        assert card is not None
        median, sigma = TRANSIT[card.service]
        factor = median * math.exp(sigma * self._inverse(s.order.luck[s.number]))
        model = self.world.model
        w, carrier, province = model.degraded_lane
        if (
            s.warehouse_id == w
            and s.carrier == carrier
            and s.order.province == province
            and model.degraded_from <= now < model.degraded_until
        ):
            factor *= model.degraded_slowdown
        transit = max(1.0, s.promised_hours * factor)
        s.handed_at = now
        s.delivered_at = now + transit
        s.late = transit > s.promised_hours
        low, high = model.report_lag_minutes
        reported = s.delivered_at + (low + (high - low) * s.order.lag) / 60
        self.result.carriers[s.carrier] += 1
        self._seq += 1
        heapq.heappush(self.reports, (reported, self._seq, s))

    def check_lane(self, s: Shipment, now: float) -> None:
        """A hook for routers that keep lane state: refuse a handover on a closed lane."""

    # ----------------------------------------------------------------- checks

    def _check(self) -> None:
        failures = self.result.failures
        world = self.world
        undelivered = [o.order_id for o in world.orders if self.deliveries[o.index] == 0]
        if undelivered:
            failures.append(f"{len(undelivered)} orders never delivered, e.g. {undelivered[:3]}")
        extra = [
            o.order_id
            for o in world.orders
            if self.deliveries[o.index] != self.result.parcels[o.index]
            or self.outstanding[o.index] != 0
        ]
        if extra:
            failures.append(f"{len(extra)} orders delivered not exactly once, e.g. {extra[:3]}")
        for order in world.orders:
            wanted: Counter[str] = Counter()
            for line in order.lines:
                wanted[line.sku] += line.quantity
            if self.order_units[order.index] != wanted:
                failures.append(f"{order.order_id} shipped {dict(self.order_units[order.index])}")
                break
        for wid, dock in self.docks.items():
            for sku, opening in world.stock[wid].items():
                out = self.shipped_units[(wid, sku)]
                if out > opening or dock.atp[sku] != opening - out or dock.atp[sku] < 0:
                    failures.append(
                        f"{wid} {sku}: opening {opening}, shipped {out}, left {dock.atp[sku]}"
                    )


class StaticRouting(Simulation):
    """The old model: nearest warehouse that holds the order, one fixed carrier."""

    def __init__(self, world: World, carrier: str, cards: RateCardProvider) -> None:
        super().__init__(world, f"static ({carrier})", cards)
        self.carrier = carrier
        self._nearest: dict[tuple[str, str], list[Site]] = {}
        self.fallbacks = 0

    def route(self, order: Order) -> None:
        """Nearest warehouse holding every line; the fixed carrier's price and promise."""
        started = time.perf_counter_ns()
        site, quote_hours, cost = self.decide(order)
        self.result.decide_ns.append(time.perf_counter_ns() - started)
        lines = tuple((x.sku, x.quantity) for x in order.lines)
        shipment = Shipment(order, 0, site.warehouse_id, self.carrier, lines, order.grams, cost, 0)
        shipment.promised_hours = quote_hours
        self._queue(order, [shipment], order.placed + SHIP_WITHIN_HOURS + quote_hours)

    def decide(self, order: Order) -> tuple[Site, int, int]:
        """The static decision: warehouse, promised hours and cost in fen."""
        key = (order.province, order.city)
        ranked = self._nearest.get(key)
        if ranked is None:
            ranked = self._nearest[key] = nearest(self.world.sites, order.province, order.city)
        site = ranked[0]
        atp = self.docks[site.warehouse_id].atp
        if any(atp[x.sku] < x.quantity for x in order.lines):
            # Stock is sized so this does not happen; an OMS would not ship what is not there.
            self.fallbacks += 1
            site = next(
                s
                for s in ranked
                if all(self.docks[s.warehouse_id].atp[x.sku] >= x.quantity for x in order.lines)
            )
        parcel = Parcel(site.province, site.city, order.province, order.city, order.grams)
        quotes = self.cards.quote(parcel, (self.carrier,))
        if not quotes:
            raise RuntimeError(f"{self.carrier} cannot take {order.order_id}")
        return site, quotes[0].promised_hours, quotes[0].cost_fen


class OrderHubRouting(Simulation):
    """OrderHub: ``decide`` per order with live ATP, today's counts and the lane breakers."""

    def __init__(self, world: World, cards: RateCardProvider, rules: RuleSet) -> None:
        super().__init__(world, "OrderHub", cards)
        self.rules = rules
        self.providers = [cards]
        self.book = LaneBook()
        #: Lane state as the transitions left it (the trace's word for the gate).
        self.state: dict[tuple[str, str, str], BreakerState] = {}
        self.now = START
        self.unroutable: list[str] = []
        self.lane_violations: list[str] = []

    # ----------------------------------------------------------------- the gate

    def gate(self, warehouse_id: str, carrier: str, province: str, order_id: str) -> LaneVerdict:
        """The engine's lane gate: the breaker book decides, at the simulated now."""
        state = self.state.get((warehouse_id, carrier, province), BreakerState.CLOSED)
        admitted = self.book.admits(Lane(warehouse_id, carrier, province), order_id, self.now)
        return LaneVerdict(admitted, state.value)

    # ----------------------------------------------------------------- outcomes

    def advance(self, now: float) -> None:
        """Outcomes in by event time, then the breakers judged up to ``now``."""
        reports = self.reports
        while reports and reports[0][0] <= now:
            at, _, shipment = heapq.heappop(reports)
            self._delivered(shipment)
            lane = Lane(shipment.warehouse_id, shipment.carrier, shipment.order.province)
            changes = self.book.record(
                lane, shipment.late, _moment(shipment.delivered_at), _moment(at)
            )
            self._apply(changes, at)
        if now != math.inf:
            self.now = _moment(now)
            self._apply(self.book.evaluate(self.now), now)

    def _apply(self, changes: Iterable[Transition], now: float) -> None:
        for change in changes:
            lane = change.lane
            key = (lane.warehouse_id, lane.carrier, lane.destination_province)
            self.state[key] = change.to_state
            moved = 0
            if change.to_state is BreakerState.OPEN:
                self.now = _moment(now)
                moved = self._reroute(lane)
            at = (change.at - START).total_seconds() / 3600
            self.result.changes.append(
                Change(lane, change.from_state, change.to_state, at, change.reason, moved)
            )

    def _reroute(self, lane: Lane) -> int:
        """Parcels on a tripped lane not yet handed over: the engine picks another carrier."""
        dock = self.docks[lane.warehouse_id]
        moved = 0
        for s in [*dock.queue, *dock.packed]:
            if s.carrier != lane.carrier or s.order.province != lane.destination_province:
                continue
            order = s.order
            grams = {x.sku: x.weight_grams for x in order.lines}
            request = RouteRequest(
                order.order_id,
                order.province,
                order.city,
                tuple(RouteLine(sku, qty, grams[sku]) for sku, qty in s.lines),
                order.tags,
                order.channel,
                order.amount_fen,
            )
            site = dock.site
            # The parcel's own units are held here: its ATP is what it holds.
            here = WarehouseState(site.warehouse_id, site.province, site.city, 0, 0, dict(s.lines))
            try:
                decision = self._decide(request, [here])
            except NoRoute:
                continue
            new = decision.shipments[0]
            if new.carrier == s.carrier:
                continue
            self.result.cost_fen[order.index] += new.cost_fen - s.cost_fen
            s.carrier, s.promised_hours, s.cost_fen = new.carrier, new.promised_hours, new.cost_fen
            s.reroutes += 1
            moved += 1
        self.result.rerouted += moved
        return moved

    # ----------------------------------------------------------------- routing

    def _decide(self, request: RouteRequest, states: Sequence[WarehouseState]) -> Decision:
        started = time.perf_counter_ns()
        try:
            return decide(request, states, self.rules, self.providers, self.gate)
        finally:
            self.result.decide_ns.append(time.perf_counter_ns() - started)

    def route(self, order: Order) -> None:
        """The order through the engine: live ATP, today's counts, the lane gate."""
        skus = [x.sku for x in order.lines]
        states = [
            WarehouseState(
                d.site.warehouse_id,
                d.site.province,
                d.site.city,
                d.site.daily_capacity,
                d.routed_today,
                {sku: d.atp[sku] for sku in skus},
            )
            for d in self.docks.values()
        ]
        request = RouteRequest(
            order.order_id,
            order.province,
            order.city,
            order.lines,
            order.tags,
            order.channel,
            order.amount_fen,
        )
        try:
            decision = self._decide(request, states)
        except NoRoute as err:
            self.unroutable.append(f"{order.order_id}: {err.reason}")
            return
        shipments = []
        for number, planned in enumerate(decision.shipments):
            verdict = self.gate(
                planned.warehouse_id, planned.carrier, order.province, order.order_id
            )
            if not verdict.admitted:
                self.lane_violations.append(
                    f"{order.order_id} routed on {planned.warehouse_id}/{planned.carrier}/"
                    f"{order.province} ({verdict.state})"
                )
            shipments.append(
                Shipment(
                    order,
                    number,
                    planned.warehouse_id,
                    planned.carrier,
                    planned.lines,
                    planned.weight_grams,
                    planned.cost_fen,
                    planned.promised_hours,
                )
            )
        self._queue(order, shipments, order.placed + SHIP_WITHIN_HOURS + decision.promised_hours)

    def check_lane(self, s: Shipment, now: float) -> None:
        """No parcel leaves on an OPEN lane, nor on a HALF_OPEN one unless it is a probe."""
        lane = Lane(s.warehouse_id, s.carrier, s.order.province)
        if not self.book.admits(lane, s.order.order_id, _moment(now)):
            state = self.state.get(
                (s.warehouse_id, s.carrier, s.order.province), BreakerState.CLOSED
            )
            self.lane_violations.append(
                f"{s.order.order_id} handed over on {s.warehouse_id}/{s.carrier}/"
                f"{s.order.province} while {state}"
            )

    def _check(self) -> None:
        super()._check()
        if self.unroutable:
            self.result.failures.append(
                f"{len(self.unroutable)} orders could not be routed, e.g. {self.unroutable[:3]}"
            )
        if self.lane_violations:
            self.result.failures.append(
                f"{len(self.lane_violations)} parcels on a lane that did not admit them, "
                f"e.g. {self.lane_violations[:3]}"
            )


def _moment(hours: float) -> datetime:
    return START + timedelta(hours=hours)


# --------------------------------------------------------------------------- running


@dataclass(slots=True)
class Run:
    """One world and what every routing model did with it."""

    world: World
    statics: dict[str, Result]
    orderhub: Result
    #: The headline static model with no capacity limit: what avoiding backlogs can win.
    unlimited: Result
    seconds: float


def simulate(
    model: Model,
    carriers: Sequence[str] = STATIC_CARRIERS,
    progress: Callable[[str], None] = lambda _: None,
) -> Run:
    """Build the world, run the static model per fixed carrier and OrderHub on it."""
    started = time.monotonic()
    cards = load_rate_cards()
    world = make_world(model)
    progress(
        f"{len(world.orders):,} orders over {model.days} days; capacity "
        + ", ".join(f"{s.warehouse_id} {s.daily_capacity:,}" for s in world.sites)
    )
    statics: dict[str, Result] = {}
    for carrier in carriers:
        statics[carrier] = StaticRouting(world, carrier, cards).run()
        progress(f"static ({carrier}): {statics[carrier].days():.2f} days")
    uncapped = replace(world, sites=tuple(replace(s, daily_capacity=0) for s in world.sites))
    unlimited = StaticRouting(uncapped, carriers[0], cards).run()
    progress(f"static ({carriers[0]}) without capacity limits: {unlimited.days():.2f} days")
    orderhub = OrderHubRouting(world, cards, default_rules()).run()
    progress(f"OrderHub: {orderhub.days():.2f} days, {len(orderhub.changes)} breaker transitions")
    return Run(world, statics, orderhub, unlimited, time.monotonic() - started)


def failures(run: Run) -> list[str]:
    """Every correctness check that failed, named by model."""
    out = [f"{r.name}: {f}" for r in run.statics.values() for f in r.failures]
    return out + [f"OrderHub: {f}" for f in run.orderhub.failures]


# --------------------------------------------------------------------------- the report


def _when(hours: float) -> str:
    return _moment(hours).strftime("%m-%d %H:%M")


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _change(new: float, old: float) -> str:
    return f"{(new - old) / old * 100:+.1f}%" if old else "n/a"


def _percentile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] / 1000


def article_table(run: Run, carrier: str) -> list[str]:
    """The article's table with the static model on ``carrier`` beside OrderHub."""
    static, hub, orders = run.statics[carrier], run.orderhub, run.world.orders
    old_days, new_days = ARTICLE["days"]
    old_c, new_c = ARTICLE["complaints"]
    old_cost, new_cost = ARTICLE["cost"]
    assert old_days and new_days and old_c and new_c and old_cost and new_cost
    s_complaints, h_complaints = static.complaint_rate(orders), hub.complaint_rate(orders)
    rows = [
        "| metric | article old | article new | static, "
        f"{carrier} (this model) | OrderHub (this model) | change |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| average delivery days | {old_days} | {new_days} ({_change(new_days, old_days)}) | "
        f"{static.days():.2f} | {hub.days():.2f} | {_change(hub.days(), static.days())} |",
        f"| late share (each model's own promise) | — | — | {_pct(static.late_share())} | "
        f"{_pct(hub.late_share())} | {_change(hub.late_share(), static.late_share())} |",
        "| late share (the static model's promise for both) | — | — | "
        f"{_pct(static.late_share())} | {_pct(hub.late_share(static.promise))} | "
        f"{_change(hub.late_share(static.promise), static.late_share())} |",
        f"| complaint rate (model) | {_pct(old_c)} | {_pct(new_c)} ({_change(new_c, old_c)}) | "
        f"{_pct(s_complaints)} | {_pct(h_complaints)} | {_change(h_complaints, s_complaints)} |",
        f"| cost per order (yuan) | {old_cost} | {new_cost} ({_change(new_cost, old_cost)}) | "
        f"{static.cost():.2f} | {hub.cost():.2f} | {_change(hub.cost(), static.cost())} |",
        "| orders handed over more than 48 h after placing | many | — | "
        f"{static.held_over(48):,} | {hub.held_over(48):,} | |",
    ]
    return rows


def cost_breakdown(run: Run, carrier: str) -> list[str]:
    """Where OrderHub's cost per order parts from the static model's, by kind of decision."""
    static, hub = run.statics[carrier], run.orderhub
    kinds: dict[str, list[int]] = {}
    for order in run.world.orders:
        i = order.index
        here, _ = static.routes[i]
        wid, used = hub.routes[i]
        if hub.parcels[i] > 1:
            kind = "split into several parcels"
        elif "urgent" in order.tags:
            kind = "urgent: fastest carrier (rule urgent-fastest)"
        elif used == "instant":
            kind = "same city: instant courier (rule same-city-instant)"
        elif used == "ems":
            kind = "remote: EMS (rule remote-prefers-ems)"
        elif wid != here:
            kind = "another warehouse (the static one full)"
        elif used != carrier:
            kind = "same warehouse, another carrier"
        else:
            kind = "same warehouse and carrier"
        tally = kinds.setdefault(kind, [0, 0])
        tally[0] += 1
        tally[1] += hub.cost_fen[i] - static.cost_fen[i]
    n = len(run.world.orders)
    rows = [
        "| OrderHub's decision | orders | share | yuan per such order vs static | "
        "yuan per order overall |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, (count, delta) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        rows.append(
            f"| {kind} | {count:,} | {_pct(count / n)} | {delta / count / 100:+.2f} | "
            f"{delta / n / 100:+.2f} |"
        )
    return rows


def warehouse_table(run: Run, carrier: str) -> list[str]:
    """Per warehouse: capacity, and each model's parcels, longest queue and longest wait."""
    static, hub = run.statics[carrier], run.orderhub
    rows = [
        f"| warehouse | capacity/day | static ({carrier}): parcels | max backlog | "
        "longest wait (h) | OrderHub: parcels | max backlog | longest wait (h) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for site in run.world.sites:
        a, b = static.docks[site.warehouse_id], hub.docks[site.warehouse_id]
        rows.append(
            f"| {site.warehouse_id} {site.city} | {site.daily_capacity:,} | {a.shipped:,} | "
            f"{a.max_queue:,} | {a.max_wait:.0f} | {b.shipped:,} | {b.max_queue:,} | "
            f"{b.max_wait:.0f} |"
        )
    return rows


def carrier_mix(result: Result) -> str:
    """Parcels per carrier, largest first."""
    total = sum(result.carriers.values())
    return ", ".join(f"{c} {n / total * 100:.1f}%" for c, n in result.carriers.most_common())


def transitions_table(result: Result) -> list[str]:
    """Every breaker transition of the OrderHub run."""
    if not result.changes:
        return ["No lane changed state."]
    rows = [
        "| lane | from → to | sim time (UTC+8) | parcels re-routed | reason |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for c in result.changes:
        lane = c.lane
        rows.append(
            f"| {lane.warehouse_id}/{lane.carrier}/{lane.destination_province} | "
            f"{c.from_state} → {c.to_state} | {_when(c.at)} | {c.rerouted} | {c.reason} |"
        )
    return rows


def sensitivity_table(run: Run) -> list[str]:
    """Each fixed carrier's static run against the one OrderHub run."""
    hub, orders = run.orderhub, run.world.orders
    rows = [
        "| static fixed carrier | days | late | complaints | yuan/order | OrderHub days | "
        "OrderHub late (own / this promise) | OrderHub yuan/order |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for carrier, s in run.statics.items():
        rows.append(
            f"| {carrier} | {s.days():.2f} | {_pct(s.late_share())} | "
            f"{_pct(s.complaint_rate(orders))} | {s.cost():.2f} | {hub.days():.2f} "
            f"({_change(hub.days(), s.days())}) | {_pct(hub.late_share())} / "
            f"{_pct(hub.late_share(s.promise))} | {hub.cost():.2f} "
            f"({_change(hub.cost(), s.cost())}) |"
        )
    return rows


def latency_rows(run: Run, carrier: str) -> tuple[list[str], float]:
    """Decision latency of OrderHub and of the static lookup; returns OrderHub's p99 in µs."""
    hub, static = run.orderhub.decide_ns, run.statics[carrier].decide_ns
    rows = [
        "| decision | calls | median µs | p99 µs | p99.9 µs | max µs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    shape = f"{len(run.world.sites)} warehouses x {len(load_rate_cards().carriers)} carriers"
    for name, values in (
        (f"OrderHub `decide` ({shape})", hub),
        (f"static: nearest warehouse + {carrier} quote", static),
    ):
        rows.append(
            f"| {name} | {len(values):,} | {_percentile(values, 0.5):.1f} | "
            f"{_percentile(values, 0.99):.1f} | {_percentile(values, 0.999):.1f} | "
            f"{max(values) / 1000:.1f} |"
        )
    ratio = _percentile(hub, 0.5) / max(_percentile(static, 0.5), 1e-9)
    rows.append("")
    rows.append(f"OrderHub's median decision takes {ratio:.0f}x the static lookup's.")
    return rows, _percentile(hub, 0.99)


def targets(run: Run, carrier: str, p99_us: float) -> list[str]:
    """Met or missed, against the article's improvements and the latency target."""
    hub = run.orderhub
    old_days, new_days = ARTICLE["days"]
    old_cost, new_cost = ARTICLE["cost"]
    assert old_days and new_days and old_cost and new_cost
    days_goal = (new_days - old_days) / old_days
    cost_goal = (new_cost - old_cost) / old_cost
    lines = []
    for c, s in run.statics.items():
        d = (hub.days() - s.days()) / s.days()
        k = (hub.cost() - s.cost()) / s.cost()
        own = hub.late_share() < s.late_share()
        same = hub.late_share(s.promise) < s.late_share()
        lines.append(
            f"- against static ({c}){' (headline)' if c == carrier else ''}: days "
            f"{d * 100:+.1f}% (target {days_goal * 100:.0f}%: {_met(d <= days_goal)}), cost "
            f"{k * 100:+.1f}% (target {cost_goal * 100:.0f}%: {_met(k <= cost_goal)}), late "
            f"share lower by its own promise: {_met(own)}, by this static promise: {_met(same)}"
        )
    lines.append(
        f"- decision latency p99 {p99_us:.0f} µs (target ≤ {LATENCY_TARGET_US:.0f} µs): "
        f"{_met(p99_us <= LATENCY_TARGET_US)}"
    )
    return lines


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def report(run: Run, command: str) -> str:
    """The markdown report."""
    model, world = run.world.model, run.world
    carrier = next(iter(run.statics))
    hub = run.orderhub
    surge = ", ".join(_moment(d * 24).strftime("%m-%d") for d in model.surge_days)
    w, c, p = model.degraded_lane
    lines = [
        f"Date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"Command: `{command}`",
        f"World: {len(world.orders):,} orders over {model.days} days from "
        f"{START:%Y-%m-%d} (seed {model.seed}), {model.orders_per_day:,} on a normal day, "
        f"{model.surge_factor:g}x on surge days {surge} (South China x{model.south_boost:g}); "
        f"degraded lane {w}/{c}/{p} for handovers {_when(model.degraded_from)}-"
        f"{_when(model.degraded_until)} (x{model.degraded_slowdown:g} transit). "
        f"Simulated in {run.seconds:.1f} s.",
        "",
        "### The article's table",
        "",
        *article_table(run, carrier),
        "",
        f"The static model ({carrier}) with no capacity limit at all averages "
        f"{run.unlimited.days():.2f} days: avoiding backlogs can win at most "
        f"{_change(run.unlimited.days(), run.statics[carrier].days())} on this model. "
        f"OrderHub split {sum(1 for n in hub.parcels if n > 1):,} orders into several parcels "
        f"and re-routed {hub.rerouted:,} parcels off tripped lanes.",
        "",
        "### Where the cost per order differs",
        "",
        *cost_breakdown(run, carrier),
        "",
        "### Warehouses",
        "",
        *warehouse_table(run, carrier),
        "",
        f"Carriers, static ({carrier}): {carrier_mix(run.statics[carrier])}.",
        f"Carriers, OrderHub: {carrier_mix(hub)}.",
        "",
        "### Breaker transitions (OrderHub)",
        "",
        *transitions_table(hub),
        "",
        "### Sensitivity: the static model's fixed carrier",
        "",
        *sensitivity_table(run),
        "",
        "### Decision latency",
        "",
    ]
    rows, p99 = latency_rows(run, carrier)
    lines += rows
    lines += ["", "### Against the targets", "", *targets(run, carrier, p99), ""]
    failed = failures(run)
    if failed:
        lines += ["FAILURES:", *[f"- {f}" for f in failed]]
    else:
        lines.append(
            "Checks: every order routed and delivered exactly once with exactly its units, no "
            "warehouse shipped more than it held, no parcel routed or handed over on a lane "
            "that did not admit it: ok."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks the defaults, explicit flags win."""
    p = argparse.ArgumentParser(prog="python -m bench.routing_sim", description=__doc__)
    p.add_argument("--days", type=int, help="simulated days (10)")
    p.add_argument("--orders-per-day", type=int, help="orders on a normal day (3000; quick 600)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed ({DEFAULT_SEED})")
    p.add_argument(
        "--carriers",
        default=",".join(STATIC_CARRIERS),
        help=f"the static model's fixed carriers, the headline first ({','.join(STATIC_CARRIERS)})",
    )
    p.add_argument(
        "--south-boost",
        type=float,
        default=Model().south_boost,
        help=f"weight of South China among surge orders ({Model().south_boost:g})",
    )
    p.add_argument(
        "--report-lag",
        default="10,90",
        help="minutes from a delivery to its outcome reaching the hub, MIN,MAX (10,90)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    args = p.parse_args(argv)
    args.days = args.days or 10
    args.orders_per_day = args.orders_per_day or (600 if args.quick else DEFAULT_ORDERS_PER_DAY)
    args.carriers = [c.strip() for c in args.carriers.split(",") if c.strip()]
    known = load_rate_cards().carriers
    unknown = [c for c in args.carriers if c not in known]
    if unknown or not args.carriers:
        p.error(f"unknown carrier(s) {unknown}; known: {', '.join(known)}")
    if args.days < 1 or args.orders_per_day < 1:
        p.error("--days and --orders-per-day must be positive")
    try:
        low, high = (float(x) for x in args.report_lag.split(","))
    except ValueError:
        p.error("--report-lag is MIN,MAX in minutes, e.g. 10,90")
    if not 0 <= low <= high:
        p.error("--report-lag needs 0 <= MIN <= MAX")
    args.report_lag = (low, high)
    return args


def log(message: str) -> None:
    """Progress, on stderr so stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Simulate, print the report, exit 1 if a check failed."""
    args = parse_args(argv)
    model = Model(
        days=args.days,
        orders_per_day=args.orders_per_day,
        seed=args.seed,
        south_boost=args.south_boost,
        report_lag_minutes=args.report_lag,
    )
    run = simulate(model, args.carriers, log)
    shown = sys.argv[1:] if argv is None else argv
    command = "python -m bench.routing_sim" + "".join(f" {shlex.quote(a)}" for a in shown)
    print(report(run, command))
    failed = failures(run)
    for f in failed:
        log(f"FAILED: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
