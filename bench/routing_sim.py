"""The article's case study, simulated: static routing against OrderHub's routing engine.

Run ``python -m bench.routing_sim`` (``--quick`` for a smoke check, ``--worlds`` for the
sensitivity worlds, minutes). A mid-size home-appliance brand ships from five regional
warehouses through the 2025 618 promotion; at its peak the South China warehouse gets far
more orders than it can pack, the others fall a little behind, and one busy lane slows down.
The same orders, with the same luck in transit, are shipped by each routing model:

* **static**: the article's old model, calibrated to its numbers. The nearest warehouse
  (属地发货) and the carrier its contract names, decided when the order is created; capacity
  and lane health are ignored and nothing is ever re-routed. It runs once per carrier
  contract (``--contracts``, :data:`CONTRACTS`; the first is the headline, ``regional+sf``:
  each warehouse ships by its own 通达系 outlet, and 加急 orders by SF). It runs once more
  with no capacity limit at all, which bounds what any routing could win from backlogs.
* **OrderHub**: every order goes through :func:`hub.domain.routing.decide` with the
  shipped default rules and weights (:func:`hub.domain.routing_rules.default_rules`), the
  packaged rate card, and only what the hub itself knows: each warehouse's live ATP, its
  orders routed today and its backlog (its orders not handed over at midnight, as
  :class:`hub.domain.routing.WarehouseState` defines them), and a lane gate built from a
  :class:`hub.domain.lanes.LaneBook` with the default breaker policy, fed the delivery
  outcomes by event time, after a reporting delay, with each parcel's handover time
  (``shipped_at``). It never sees a parcel's transit luck, tomorrow's orders or the degraded
  lane's schedule.

The report (markdown, stdout) is the calibration against the article's old model, the
article's table, where OrderHub's cost and days differ, the warehouses, the breaker
transitions, the contract sensitivity, the sensitivity worlds (with ``--worlds``), the
decision latency and the targets; progress goes to stderr. The exit status is 1 if a
correctness check fails: every order delivered exactly once with exactly its units, no
warehouse shipping more than it holds, no parcel handed over twice, every order routable,
and no parcel routed or handed to a carrier on a lane its breaker does not admit (OPEN, or
HALF_OPEN and not a probe).

The model (every figure is a parameter of :class:`Model` or a constant below):

Time
    10 days from 2025-06-14 00:00 (UTC+8), the last week of the article's June promotion.
    Orders arrive through the day along ``HOURLY`` (quiet at night, peaks late morning and
    20-22 h), at a uniformly random moment within their hour.
The promotion (``surge``, ``--surge``)
    The 618 final sprint as multiples of a normal day's orders: 06-16 3x, 06-17 4x, 06-18
    (618 itself) 5x, 06-19 3x; the other days are normal. 15 normal days of orders in 4.
Orders
    ``orders_per_day`` on a normal day (3,000; 63,000 in the run). Destination province by
    2020 census population (``hub.domain.geo.PROVINCES``, the 31 mainland provinces); among
    promotion orders the South China provinces (广东, 广西, 海南) weigh ``south_boost``
    (2.5) times as much: the 2025 promotion met 龙舟水 rains and heat in 华南, which sell
    dehumidifiers and fans there (13% of normal orders, 27% of promotion orders). 20% of a
    province's orders go to its capital, the rest to its second city (a municipality is one
    city). An order has 1 (75%), 2 (20%) or 3 (5%) lines of the ``SKUS`` catalogue (small
    appliances of 0.9-14 kg, and a 23 kg water heater that ships alone); 10% of lines of an
    item up to 5 kg ask for 2 units; an order over 40 kg loses lines until it is not. The
    promotion sells more cooling products. 3% of orders carry the ``urgent`` tag (加急).
    Channels tmall/jd/douyin/pdd 40/30/20/10%. No order names SLA hours.
Warehouses (``capacity_plan``, ``--capacity-plan``)
    The demo's five (``hub/demo.py``): 华东 上海, 华南 广州, 华北 北京, 西南 成都, 华中 武汉.
    Each packs at most ``daily_capacity`` orders a day, first in first out, evenly over a
    08:00-24:00 shift; carriers collect at 10:00, 14:00, 18:00 and 22:00. Capacity is the
    warehouse's normal-day orders under nearest-warehouse routing times ``capacity_plan``
    (2.5: a warehouse staffed for a promotion runs at 40% of its peak on a normal day). The
    promotion's 3-5x is above that everywhere, so every warehouse falls behind at the 618
    peak and catches up after; the South, with its boost, falls more than a week behind.
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
The static model's contracts (``CONTRACTS``, ``--contracts``)
    The headline ``regional+sf``: each regional warehouse ships by the 通达系 outlet it has a
    contract with (WH-EAST and WH-CENTRAL zto, WH-SOUTH yunda, WH-NORTH yto, WH-SOUTHWEST
    sto), and orders tagged 加急 go by SF, as a brand that sells on Tmall and JD would do.
    Also run: the same without SF (``regional``), one national network carrier (``yunda``,
    ``zto``: the earlier run's headline), JD Logistics for JD's orders on top
    (``regional+sf+jd``), and JD or SF for everything.
Degraded lane
    WH-SOUTH/yunda to 广东: the nearest warehouse to the largest province with the cheapest
    carrier on the card, the busiest lane of the headline static model and of OrderHub's
    default rules alike. Parcels handed over from 06-17 00:00 to 06-19 12:00 take
    ``degraded_slowdown`` (1.5) times as long; about 70% of them arrive late.
Outcomes and breakers
    A carrier's outcome is late when the parcel arrives after handover + the carrier's
    promised hours (what tracking's ``promised_at`` says). It reaches the hub
    ``report_lag_minutes`` (10 to 90, uniform) after the delivery and is recorded with
    ``occurred_at`` = the delivery, ``now`` = its arrival and ``shipped_at`` = the handover
    (``--report-lag``). The breaker policy is the default (:class:`hub.domain.lanes.
    BreakerPolicy`). When a lane trips OPEN, OrderHub re-routes the parcels on it not yet
    handed over: ``decide`` again for the parcel from the same warehouse (it keeps its place
    in the queue; only the carrier changes). Orders in a backlog are not moved to another
    warehouse.
The hub's counts
    ``routed_today`` is the orders routed to a warehouse since midnight (the hub's routing
    day); ``backlog`` is its orders not handed over at that midnight, fixed for the day. The
    engine turns them into a dispatch wait (a day per full day of work ahead) that is part
    of every promise from the warehouse.
Delivery and lateness
    Delivery days = (last parcel delivered - order placed) / 24 h, around the clock (no
    last-mile delivery window), averaged over every order placed in the 10 days. The
    buyer's promise = placed + 24 h to ship + the promised hours of the route chosen at
    order time (static: its contracted carrier from the nearest warehouse; OrderHub: the
    decision's, which includes the dispatch wait it expects). An order is late when its
    last parcel arrives after that promise. OrderHub's orders are also judged against the
    static model's promise, one yardstick for both.
Complaints (a model, not data)
    An on-time order complains with probability 2%, an order up to 24 h late 30%, a later
    one 55% (``COMPLAINT``).
Latency
    Every ``decide`` call of the OrderHub run (re-routes included) is timed with
    ``perf_counter_ns``, the building of its inputs not; the static model's decision
    (nearest warehouse holding the order, its carrier's quote) is timed the same way in the
    same process. Maxima include the interpreter's garbage-collection pauses.

Calibration. The promotion's shape, the South's boost, the capacity plan and the headline
contract were chosen so that the static model reproduces the article's old model (3.2 days,
18.6 yuan, orders stuck in the South more than 48 h), before OrderHub was run on them; the
report's first table shows how near it comes. OrderHub's rules, weights and breaker policy
are the shipped defaults.
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
from hub.domain.quotes import ZONE_RANK, Parcel
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


@dataclass(frozen=True, slots=True)
class Contract:
    """The old model's carriers, fixed in advance: one per warehouse, maybe one for urgent."""

    name: str
    #: warehouse id -> its contracted carrier; ``default`` for a warehouse not named.
    by_warehouse: tuple[tuple[str, str], ...] = ()
    default: str = "yunda"
    #: The carrier for orders tagged ``urgent`` (加急), "" for the warehouse's own.
    urgent: str = ""
    #: channel -> carrier, for a platform whose orders go by its own logistics (京东 → jd).
    by_channel: tuple[tuple[str, str], ...] = ()
    description: str = ""

    def carrier(self, warehouse_id: str, order: Order) -> str:
        """The carrier this contract gives an order shipped from a warehouse."""
        if self.urgent and "urgent" in order.tags:
            return self.urgent
        for channel, carrier in self.by_channel:
            if channel == order.channel:
                return carrier
        for wid, carrier in self.by_warehouse:
            if wid == warehouse_id:
                return carrier
        return self.default

    def carriers(self) -> frozenset[str]:
        """Every carrier the contract can use."""
        named = {c for _, c in self.by_warehouse} | {c for _, c in self.by_channel}
        return frozenset({self.default, *named, *([self.urgent] if self.urgent else [])})


#: Each regional warehouse's contracted 通达系 outlet (the cheapest local deal where it sits).
REGIONAL_TONGDA: tuple[tuple[str, str], ...] = (
    ("WH-EAST", "zto"),
    ("WH-SOUTH", "yunda"),
    ("WH-NORTH", "yto"),
    ("WH-SOUTHWEST", "sto"),
    ("WH-CENTRAL", "zto"),
)
#: The static model's carrier contracts; the first is the headline (``--contracts``).
CONTRACTS: dict[str, Contract] = {
    c.name: c
    for c in (
        Contract(
            "regional+sf",
            REGIONAL_TONGDA,
            urgent="sf",
            description="each warehouse its own 通达系 outlet; 加急 orders by SF",
        ),
        Contract("regional", REGIONAL_TONGDA, description="each warehouse its own 通达系 outlet"),
        Contract("yunda", default="yunda", description="one national network carrier, yunda"),
        Contract("zto", default="zto", description="one national network carrier, zto"),
        Contract(
            "regional+sf+jd",
            REGIONAL_TONGDA,
            urgent="sf",
            by_channel=(("jd", "jd"),),
            description="as regional+sf, and JD's orders by JD Logistics",
        ),
        Contract("jd", default="jd", description="JD Logistics for everything"),
        Contract("sf", default="sf", description="SF Express for everything"),
    )
}
STATIC_CONTRACTS = tuple(CONTRACTS)
LATENCY_TARGET_US = 2000.0
DEFAULT_SEED = 618
DEFAULT_ORDERS_PER_DAY = 3000


@dataclass(frozen=True, slots=True)
class Model:
    """Every parameter of one simulated world; the same world for every routing model."""

    days: int = 10
    orders_per_day: int = DEFAULT_ORDERS_PER_DAY
    seed: int = DEFAULT_SEED
    #: The promotion: (day, that day's orders as a multiple of a normal day's).
    surge: tuple[tuple[int, float], ...] = ((2, 3.0), (3, 4.0), (4, 5.0), (5, 3.0))
    #: How much more the South China provinces weigh among surge orders.
    south_boost: float = 2.5
    #: Daily capacity = the warehouse's normal-day orders (nearest routing) x this.
    capacity_plan: float = 2.5
    #: Units on hand = what the static model ships from the warehouse x this.
    stock_cover: float = 1.5
    degraded_lane: tuple[str, str, str] = ("WH-SOUTH", "yunda", "广东")
    #: Handover hours (from START) between which the degraded lane is slow.
    degraded_from: float = 3 * 24.0
    degraded_until: float = 5 * 24.0 + 12
    degraded_slowdown: float = 1.5
    #: Minutes from a delivery to its outcome reaching the hub (uniform between the two).
    report_lag_minutes: tuple[float, float] = (10.0, 90.0)

    @property
    def surge_days(self) -> tuple[int, ...]:
        """The days of the promotion."""
        return tuple(day for day, _ in self.surge)

    def factor(self, day: int) -> float:
        """A day's orders as a multiple of a normal day's."""
        return dict(self.surge).get(day, 1.0)


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
    return round(model.orders_per_day * model.factor(day))


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
        return (ZONE_RANK[zone], distance_km(origin, dest), site.warehouse_id)

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
    #: Orders routed to it since midnight (the hub's routing day), and those it carried into
    #: the day unshipped (``WarehouseState.backlog``): both as the hub counts them.
    routed_today: int = 0
    backlog: int = 0
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
    #: Parcels handed to the degraded lane while it was slow, and how many of them were late.
    degraded: int = 0
    degraded_late: int = 0
    decide_ns: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    # ----------------------------------------------------------------- metrics

    def days(self) -> float:
        """Average delivery days: placed to last parcel delivered."""
        return (
            statistics.fmean(d - p for d, p in zip(self.delivered, self.placed, strict=True)) / 24
        )

    def late_share(self, promise: Sequence[float] | None = None, by: float = 0.0) -> float:
        """Share of orders delivered more than ``by`` hours after their promise (or after the
        one given)."""
        promise = self.promise if promise is None else promise
        late = sum(1 for d, p in zip(self.delivered, promise, strict=True) if d > p + by)
        return late / self.orders

    def complaint_rate(
        self, orders: Sequence[Order], promise: Sequence[float] | None = None
    ) -> float:
        """Share of orders that complain, by the COMPLAINT model, against their own promise
        (or against the one given)."""
        on_time, late, very_late = COMPLAINT
        promises = self.promise if promise is None else promise
        n = 0
        for order, done, due in zip(orders, self.delivered, promises, strict=True):
            p = on_time if done <= due else late if done - due <= 24 else very_late
            n += order.complaint < p
        return n / self.orders

    def cost(self) -> float:
        """Average logistics cost per order, in yuan."""
        return statistics.fmean(self.cost_fen) / 100

    def held_over(self, hours: float, warehouse_id: str = "") -> int:
        """Orders whose last parcel was handed over more than ``hours`` after placing (with
        their first parcel routed from ``warehouse_id``, when given)."""
        return sum(
            1
            for h, p, (wid, _) in zip(self.last_handover, self.placed, self.routes, strict=True)
            if h - p > hours and (not warehouse_id or wid == warehouse_id)
        )


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
                # The hub counts each warehouse's orders per routing day (Asia/Shanghai), and
                # what it carries into the day: its orders not yet handed over at midnight
                # (a warehouse gets at most one parcel of an order, so parcels are orders).
                for dock in self.docks.values():
                    dock.routed_today = 0
                    dock.backlog = len(dock.queue) + len(dock.packed)
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
            self.result.degraded += 1
            self.result.degraded_late += s.promised_hours * factor > s.promised_hours
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
    """The old model: nearest warehouse that holds the order, its contracted carrier."""

    def __init__(self, world: World, contract: Contract, cards: RateCardProvider) -> None:
        super().__init__(world, f"static ({contract.name})", cards)
        self.contract = contract
        self._nearest: dict[tuple[str, str], list[Site]] = {}
        self.fallbacks = 0

    def route(self, order: Order) -> None:
        """Nearest warehouse holding every line; the contracted carrier's price and promise."""
        started = time.perf_counter_ns()
        site, carrier, quote_hours, cost = self.decide(order)
        self.result.decide_ns.append(time.perf_counter_ns() - started)
        lines = tuple((x.sku, x.quantity) for x in order.lines)
        shipment = Shipment(order, 0, site.warehouse_id, carrier, lines, order.grams, cost, 0)
        shipment.promised_hours = quote_hours
        self._queue(order, [shipment], order.placed + SHIP_WITHIN_HOURS + quote_hours)

    def decide(self, order: Order) -> tuple[Site, str, int, int]:
        """The static decision: warehouse, carrier, promised hours and cost in fen."""
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
        carrier = self.contract.carrier(site.warehouse_id, order)
        parcel = Parcel(site.province, site.city, order.province, order.city, order.grams)
        quotes = self.cards.quote(parcel, (carrier,))
        if not quotes:
            raise RuntimeError(f"{carrier} cannot take {order.order_id}")
        return site, carrier, quotes[0].promised_hours, quotes[0].cost_fen


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
                lane,
                shipment.late,
                _moment(shipment.delivered_at),
                _moment(at),
                shipped_at=_moment(shipment.handed_at),
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
                d.backlog,
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
                    # The carrier's own promise: transit and lateness are the carrier's, the
                    # dispatch wait is the warehouse's (the buyer's promise has both).
                    planned.promised_hours - planned.dispatch_wait_hours,
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
    contracts: Sequence[str] = STATIC_CONTRACTS,
    progress: Callable[[str], None] = lambda _: None,
    *,
    orderhub: bool = True,
) -> Run:
    """Build the world, run the static model per carrier contract and OrderHub on it."""
    started = time.monotonic()
    cards = load_rate_cards()
    world = make_world(model)
    progress(
        f"{len(world.orders):,} orders over {model.days} days; capacity "
        + ", ".join(f"{s.warehouse_id} {s.daily_capacity:,}" for s in world.sites)
    )
    statics: dict[str, Result] = {}
    for name in contracts:
        statics[name] = StaticRouting(world, CONTRACTS[name], cards).run()
        s = statics[name]
        progress(
            f"static ({name}): {s.days():.2f} days, {s.cost():.2f} yuan, "
            f"{s.held_over(48):,} held > 48 h"
        )
    head = CONTRACTS[contracts[0]]
    uncapped = replace(world, sites=tuple(replace(s, daily_capacity=0) for s in world.sites))
    unlimited = StaticRouting(uncapped, head, cards).run()
    progress(f"static ({head.name}) without capacity limits: {unlimited.days():.2f} days")
    hub = OrderHubRouting(world, cards, default_rules()).run() if orderhub else unlimited
    progress(
        f"OrderHub: {hub.days():.2f} days, {hub.cost():.2f} yuan, "
        f"{len(hub.changes)} breaker transitions"
    )
    return Run(world, statics, hub, unlimited, time.monotonic() - started)


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


def surge_text(model: Model) -> str:
    """The promotion as days and multiples: ``06-16 3x, 06-17 4x``."""
    return ", ".join(f"{_moment(d * 24):%m-%d} {f:g}x" for d, f in model.surge)


def calibration_table(run: Run, name: str) -> list[str]:
    """The static model against the article's old model: what the calibration reproduces."""
    static, n = run.statics[name], len(run.world.orders)
    old_days, _ = ARTICLE["days"]
    old_cost, _ = ARTICLE["cost"]
    assert old_days and old_cost
    south = static.docks["WH-SOUTH"]
    others = max(d.max_wait for wid, d in static.docks.items() if wid != "WH-SOUTH")
    held = static.held_over(48)
    held_south = static.held_over(48, "WH-SOUTH")
    return [
        f"| the article's old model | article | static, {name} (this model) |",
        "| --- | ---: | ---: |",
        f"| average delivery days | {old_days} | {static.days():.2f} |",
        f"| cost per order (yuan) | {old_cost} | {static.cost():.2f} |",
        f"| orders handed over more than 48 h after placing | many (华南仓) | {held:,} "
        f"({_pct(held / n)}), {held_south:,} of them from WH-SOUTH |",
        f"| longest wait for a carrier, WH-SOUTH / the other four | — | {south.max_wait:.0f} h / "
        f"{others:.0f} h |",
    ]


def article_table(run: Run, name: str) -> list[str]:
    """The article's table with the static model on contract ``name`` beside OrderHub."""
    static, hub, orders = run.statics[name], run.orderhub, run.world.orders
    old_days, new_days = ARTICLE["days"]
    old_c, new_c = ARTICLE["complaints"]
    old_cost, new_cost = ARTICLE["cost"]
    assert old_days and new_days and old_c and new_c and old_cost and new_cost
    s_complaints, h_complaints = static.complaint_rate(orders), hub.complaint_rate(orders)
    h_same = hub.complaint_rate(orders, static.promise)
    return [
        "| metric | article old | article new | static, "
        f"{name} (this model) | OrderHub (this model) | change |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| average delivery days | {old_days} | {new_days} ({_change(new_days, old_days)}) | "
        f"{static.days():.2f} | {hub.days():.2f} | {_change(hub.days(), static.days())} |",
        f"| late share (each model's own promise) | — | — | {_pct(static.late_share())} | "
        f"{_pct(hub.late_share())} | {_change(hub.late_share(), static.late_share())} |",
        "| late share (the static model's promise for both) | — | — | "
        f"{_pct(static.late_share())} | {_pct(hub.late_share(static.promise))} | "
        f"{_change(hub.late_share(static.promise), static.late_share())} |",
        "| more than 24 h late (the static model's promise for both) | — | — | "
        f"{_pct(static.late_share(by=24))} | {_pct(hub.late_share(static.promise, 24))} | "
        f"{_change(hub.late_share(static.promise, 24), static.late_share(by=24))} |",
        "| complaint rate (model, each model's own promise) | — | — | "
        f"{_pct(s_complaints)} | {_pct(h_complaints)} | {_change(h_complaints, s_complaints)} |",
        f"| complaint rate (model, the static model's promise for both) | {_pct(old_c)} | "
        f"{_pct(new_c)} ({_change(new_c, old_c)}) | {_pct(s_complaints)} | {_pct(h_same)} | "
        f"{_change(h_same, s_complaints)} |",
        f"| cost per order (yuan) | {old_cost} | {new_cost} ({_change(new_cost, old_cost)}) | "
        f"{static.cost():.2f} | {hub.cost():.2f} | {_change(hub.cost(), static.cost())} |",
        "| orders handed over more than 48 h after placing | many | — | "
        f"{static.held_over(48):,} | {hub.held_over(48):,} | |",
    ]


def cost_breakdown(run: Run, name: str) -> list[str]:
    """Where OrderHub's cost per order parts from the static model's, by kind of decision."""
    static, hub = run.statics[name], run.orderhub
    kinds: dict[str, list[int]] = {}
    for order in run.world.orders:
        i = order.index
        here, theirs = static.routes[i]
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
            kind = "another warehouse (the nearest one behind)"
        elif used != theirs:
            kind = "same warehouse, another carrier"
        else:
            kind = "same warehouse and carrier"
        tally = kinds.setdefault(kind, [0, 0, 0])
        tally[0] += 1
        tally[1] += hub.cost_fen[i] - static.cost_fen[i]
        tally[2] += round((hub.delivered[i] - static.delivered[i]) * 60)
    n = len(run.world.orders)
    rows = [
        "| OrderHub's decision | orders | share | yuan per such order vs static | "
        "yuan per order overall | days per such order vs static |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, (count, delta, minutes) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        rows.append(
            f"| {kind} | {count:,} | {_pct(count / n)} | {delta / count / 100:+.2f} | "
            f"{delta / n / 100:+.2f} | {minutes / count / 60 / 24:+.2f} |"
        )
    return rows


def warehouse_table(run: Run, name: str) -> list[str]:
    """Per warehouse: capacity, and each model's parcels, longest queue and longest wait."""
    static, hub = run.statics[name], run.orderhub
    rows = [
        f"| warehouse | capacity/day | static ({name}): parcels | max backlog | "
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


def contracts_table(run: Run) -> list[str]:
    """Each static carrier contract against the one OrderHub run."""
    hub, orders = run.orderhub, run.world.orders
    rows = [
        "| static contract | what it is | days | late | complaints | yuan/order | held > 48 h | "
        "OrderHub days | OrderHub late (own / this promise) | OrderHub yuan/order |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in run.statics.items():
        rows.append(
            f"| {name} | {CONTRACTS[name].description} | {s.days():.2f} | "
            f"{_pct(s.late_share())} | {_pct(s.complaint_rate(orders))} | {s.cost():.2f} | "
            f"{s.held_over(48):,} | {hub.days():.2f} ({_change(hub.days(), s.days())}) | "
            f"{_pct(hub.late_share())} / {_pct(hub.late_share(s.promise))} | {hub.cost():.2f} "
            f"({_change(hub.cost(), s.cost())}) |"
        )
    return rows


def latency_rows(run: Run, name: str) -> tuple[list[str], float]:
    """Decision latency of OrderHub and of the static lookup; returns OrderHub's p99 in µs."""
    hub, static = run.orderhub.decide_ns, run.statics[name].decide_ns
    rows = [
        "| decision | calls | median µs | p99 µs | p99.9 µs | max µs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    shape = f"{len(run.world.sites)} warehouses x {len(load_rate_cards().carriers)} carriers"
    for label, values in (
        (f"OrderHub `decide` ({shape})", hub),
        (f"static: nearest warehouse + {name} carrier quote", static),
    ):
        rows.append(
            f"| {label} | {len(values):,} | {_percentile(values, 0.5):.1f} | "
            f"{_percentile(values, 0.99):.1f} | {_percentile(values, 0.999):.1f} | "
            f"{max(values) / 1000:.1f} |"
        )
    ratio = _percentile(hub, 0.5) / max(_percentile(static, 0.5), 1e-9)
    rows.append("")
    rows.append(f"OrderHub's median decision takes {ratio:.0f}x the static lookup's.")
    return rows, _percentile(hub, 0.99)


def _goals() -> tuple[float, float]:
    old_days, new_days = ARTICLE["days"]
    old_cost, new_cost = ARTICLE["cost"]
    assert old_days and new_days and old_cost and new_cost
    return (new_days - old_days) / old_days, (new_cost - old_cost) / old_cost


def targets(run: Run, name: str, p99_us: float) -> list[str]:
    """Met or missed, against the article's improvements and the latency target."""
    hub = run.orderhub
    days_goal, cost_goal = _goals()
    lines = []
    for c, s in run.statics.items():
        d = (hub.days() - s.days()) / s.days()
        k = (hub.cost() - s.cost()) / s.cost()
        lines.append(
            f"- against static ({c}){' (headline)' if c == name else ''}: days "
            f"{d * 100:+.1f}% (target {days_goal * 100:.0f}%: {_met(d <= days_goal)}), cost "
            f"{k * 100:+.1f}% (target {cost_goal * 100:.0f}%: {_met(k <= cost_goal)})"
        )
    lines.append(
        f"- decision latency p99 {p99_us:.0f} µs (target ≤ {LATENCY_TARGET_US:.0f} µs): "
        f"{_met(p99_us <= LATENCY_TARGET_US)}"
    )
    return lines


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def report(run: Run, command: str, worlds: Sequence[WorldRow] = ()) -> str:
    """The markdown report."""
    model, world = run.world.model, run.world
    name = next(iter(run.statics))
    hub, static = run.orderhub, run.statics[name]
    w, c, p = model.degraded_lane
    lines = [
        f"Date: {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"Command: `{command}`",
        f"World: {len(world.orders):,} orders over {model.days} days from "
        f"{START:%Y-%m-%d} (seed {model.seed}), {model.orders_per_day:,} on a normal day; "
        f"promotion {surge_text(model)} (South China x{model.south_boost:g} among its "
        f"orders); capacity {model.capacity_plan:g}x each warehouse's normal day ("
        + ", ".join(f"{s.warehouse_id} {s.daily_capacity:,}" for s in world.sites)
        + f"); degraded lane {w}/{c}/{p} for handovers {_when(model.degraded_from)}-"
        f"{_when(model.degraded_until)} (x{model.degraded_slowdown:g} transit). "
        f"Simulated in {run.seconds:.1f} s.",
        "",
        "### Calibration: the static model against the article's old model",
        "",
        *calibration_table(run, name),
        "",
        "### The article's table",
        "",
        *article_table(run, name),
        "",
        f"The static model ({name}) with no capacity limit at all averages "
        f"{run.unlimited.days():.2f} days: no routing can do better than "
        f"{_change(run.unlimited.days(), static.days())} on this model, and only by "
        "capacity that is not there. "
        f"OrderHub split {sum(1 for n in hub.parcels if n > 1):,} orders into several parcels "
        f"and re-routed {hub.rerouted:,} parcels off tripped lanes. Parcels handed to the "
        f"degraded lane while it was slow: static {static.degraded:,} "
        f"({static.degraded_late:,} late), OrderHub {hub.degraded:,} "
        f"({hub.degraded_late:,} late).",
        "",
        "### Where OrderHub's cost and days differ",
        "",
        *cost_breakdown(run, name),
        "",
        "### Warehouses",
        "",
        *warehouse_table(run, name),
        "",
        f"Carriers, static ({name}): {carrier_mix(static)}.",
        f"Carriers, OrderHub: {carrier_mix(hub)}.",
        "",
        "### Breaker transitions (OrderHub)",
        "",
        *transitions_table(hub),
        "",
        "### Sensitivity: the static model's carrier contract",
        "",
        *contracts_table(run),
        "",
    ]
    if worlds:
        lines += ["### Sensitivity: other worlds (headline contract)", "", *worlds_table(worlds)]
        lines.append("")
    lines += ["### Decision latency", ""]
    rows, p99 = latency_rows(run, name)
    lines += rows
    lines += ["", "### Against the targets", "", *targets(run, name, p99), ""]
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


# --------------------------------------------------------------------------- other worlds


@dataclass(frozen=True, slots=True)
class WorldRow:
    """One world of the sensitivity runs: the headline static model and OrderHub in it."""

    label: str
    static_days: float
    hub_days: float
    static_cost: float
    hub_cost: float
    held: int
    hub_held: int
    first_trip: str
    failures: tuple[str, ...]


def variants(model: Model) -> list[tuple[str, Model]]:
    """The worlds of ``--worlds``: the promotion, the South, capacity, seeds and reports."""

    def scaled(k: float) -> tuple[tuple[int, float], ...]:
        return tuple((d, round(1 + (f - 1) * k, 2)) for d, f in model.surge)

    return [
        ("the headline world", model),
        ("promotion 25% smaller", replace(model, surge=scaled(0.75))),
        ("promotion 25% larger", replace(model, surge=scaled(1.25))),
        ("South China x2 (not x2.5)", replace(model, south_boost=2.0)),
        ("no South China boost (x1)", replace(model, south_boost=1.0)),
        ("capacity 3x a normal day (not 2.5x)", replace(model, capacity_plan=3.0)),
        ("capacity 2x a normal day", replace(model, capacity_plan=2.0)),
        (
            "another reading of the article: only the South overflows (x4, capacity 3.3x)",
            replace(model, south_boost=4.0, capacity_plan=3.3),
        ),
        (
            "the earlier run's world (4 days at 3x, South x2, capacity 3.3x)",
            replace(
                model,
                surge=((2, 3.0), (3, 3.0), (4, 3.0), (5, 3.0)),
                south_boost=2.0,
                capacity_plan=3.3,
            ),
        ),
        ("seed 1", replace(model, seed=1)),
        ("seed 2", replace(model, seed=2)),
        ("outcomes reported at once (lag 0)", replace(model, report_lag_minutes=(0.0, 0.0))),
        ("1,000 orders a normal day", replace(model, orders_per_day=1000)),
    ]


def run_worlds(
    model: Model, contract: str, progress: Callable[[str], None] = lambda _: None
) -> list[WorldRow]:
    """The headline contract and OrderHub in every variant world."""
    cards = load_rate_cards()
    rows = []
    for label, m in variants(model):
        world = make_world(m)
        static = StaticRouting(world, CONTRACTS[contract], cards).run()
        hub = OrderHubRouting(world, cards, default_rules()).run()
        lane = Lane(*m.degraded_lane)
        trips = [x.at for x in hub.changes if x.lane == lane and x.to_state is BreakerState.OPEN]
        rows.append(
            WorldRow(
                label,
                static.days(),
                hub.days(),
                static.cost(),
                hub.cost(),
                static.held_over(48),
                hub.held_over(48),
                _when(trips[0]) if trips else "never",
                tuple(static.failures + hub.failures),
            )
        )
        progress(
            f"world {label}: static {static.days():.2f} d {static.cost():.2f} yuan, "
            f"OrderHub {hub.days():.2f} d {hub.cost():.2f} yuan"
        )
    return rows


def worlds_table(rows: Sequence[WorldRow]) -> list[str]:
    """The ``--worlds`` runs as a table."""
    days_goal, cost_goal = _goals()
    out = [
        "| world | static days | OrderHub days | change | static yuan | OrderHub yuan | change "
        "| held > 48 h (static / OrderHub) | first trip of the degraded lane | both targets |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        d = (r.hub_days - r.static_days) / r.static_days
        k = (r.hub_cost - r.static_cost) / r.static_cost
        out.append(
            f"| {r.label} | {r.static_days:.2f} | {r.hub_days:.2f} | {d * 100:+.1f}% | "
            f"{r.static_cost:.2f} | {r.hub_cost:.2f} | {k * 100:+.1f}% | {r.held:,} / "
            f"{r.hub_held:,} | {r.first_trip} | "
            f"{_met(d <= days_goal and k <= cost_goal)}{' FAILED' if r.failures else ''} |"
        )
    return out


# --------------------------------------------------------------------------- command line


def _surge_arg(text: str) -> tuple[tuple[int, float], ...]:
    """``2:3,3:4`` → ((2, 3.0), (3, 4.0))."""
    out = []
    for part in text.split(","):
        day, _, factor = part.partition(":")
        out.append((int(day), float(factor)))
    return tuple(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks the defaults, explicit flags win."""
    default = Model()
    p = argparse.ArgumentParser(prog="python -m bench.routing_sim", description=__doc__)
    p.add_argument("--days", type=int, help=f"simulated days ({default.days})")
    p.add_argument("--orders-per-day", type=int, help="orders on a normal day (3000; quick 600)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed ({DEFAULT_SEED})")
    p.add_argument(
        "--contracts",
        default=",".join(STATIC_CONTRACTS),
        help="the static model's carrier contracts, the headline first "
        f"({','.join(STATIC_CONTRACTS)})",
    )
    p.add_argument(
        "--surge",
        default=",".join(f"{d}:{f:g}" for d, f in default.surge),
        help="the promotion, DAY:MULTIPLE,... (day 0 is 06-14; "
        + ",".join(f"{d}:{f:g}" for d, f in default.surge)
        + ")",
    )
    p.add_argument(
        "--south-boost",
        type=float,
        default=default.south_boost,
        help=f"weight of South China among promotion orders ({default.south_boost:g})",
    )
    p.add_argument(
        "--capacity-plan",
        type=float,
        default=default.capacity_plan,
        help="each warehouse's daily capacity as a multiple of its normal day's orders "
        f"({default.capacity_plan:g})",
    )
    p.add_argument(
        "--report-lag",
        default="10,90",
        help="minutes from a delivery to its outcome reaching the hub, MIN,MAX (10,90)",
    )
    p.add_argument(
        "--worlds",
        action="store_true",
        help="also run the headline contract and OrderHub in the sensitivity worlds (minutes)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    args = p.parse_args(argv)
    args.days = args.days or default.days
    args.orders_per_day = args.orders_per_day or (600 if args.quick else DEFAULT_ORDERS_PER_DAY)
    args.contracts = [c.strip() for c in args.contracts.split(",") if c.strip()]
    unknown = [c for c in args.contracts if c not in CONTRACTS]
    if unknown or not args.contracts:
        p.error(f"unknown contract(s) {unknown}; known: {', '.join(CONTRACTS)}")
    if args.days < 1 or args.orders_per_day < 1:
        p.error("--days and --orders-per-day must be positive")
    try:
        args.surge = _surge_arg(args.surge)
    except ValueError:
        p.error("--surge is DAY:MULTIPLE,..., e.g. 2:3,3:4,4:5,5:3")
    if any(f <= 0 or d < 0 for d, f in args.surge):
        p.error("--surge needs days from 0 and positive multiples")
    if args.south_boost <= 0 or args.capacity_plan <= 0:
        p.error("--south-boost and --capacity-plan must be positive")
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
        surge=args.surge,
        south_boost=args.south_boost,
        capacity_plan=args.capacity_plan,
        report_lag_minutes=args.report_lag,
    )
    run = simulate(model, args.contracts, log)
    worlds = run_worlds(model, args.contracts[0], log) if args.worlds else []
    shown = sys.argv[1:] if argv is None else argv
    command = "python -m bench.routing_sim" + "".join(f" {shlex.quote(a)}" for a in shown)
    print(report(run, command, worlds))
    failed = failures(run) + [f"world {w.label}: {f}" for w in worlds for f in w.failures]
    for f in failed:
        log(f"FAILED: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
