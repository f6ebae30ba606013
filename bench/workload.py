"""Flash-sale workloads and what a run of one engine measured.

A workload is a list of orders (one unit per line) and the stock they compete for.
Every engine gets the same workload shape from the same seed; only the SKU names
carry an engine tag, so engines sharing a database or a hub never touch each
other's stock.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

WAREHOUSE_ID = "FS-WH-1"


@dataclass(frozen=True, slots=True)
class Order:
    """One reservation request: one unit of each SKU."""

    order_id: str
    skus: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Workload:
    """The orders of one scenario and the stock they compete for."""

    scenario: str
    title: str
    orders: list[Order]
    stock: dict[str, int]
    sku_prefix: str

    @property
    def total_stock(self) -> int:
        """Units on hand over every SKU: what a correct engine grants, no more, no less."""
        return sum(self.stock.values())

    @property
    def multi_sku_orders(self) -> int:
        """Orders with more than one SKU."""
        return sum(1 for o in self.orders if len(o.skus) > 1)


def hot_sku(tag: str, requests: int) -> Workload:
    """Scenario A: every request wants one unit of one SKU; stock for a quarter of them."""
    prefix = f"FS-{tag}-A-"
    sku = prefix + "HOT"
    orders = [Order(f"{prefix}{n:07d}", (sku,)) for n in range(requests)]
    return Workload("A", "hot SKU", orders, {sku: max(1, requests // 4)}, prefix)


def catalogue(
    tag: str,
    requests: int,
    sku_count: int = 1000,
    multi_share: float = 0.1,
    seed: int = 7,
) -> Workload:
    """Scenario B: requests spread (skewed) over many SKUs; stock for about a quarter.

    About ``multi_share`` of the orders ask for two different SKUs (which usually live
    on different shards), all in the first half. A cross-shard order holds a unit on one
    shard while another shard decides, so a request arriving meanwhile may be refused a
    unit that is released a moment later. So the last quarter of the orders are
    single-SKU orders, at least as many per SKU as it has units, coming a quarter of the
    requests after the last two-SKU order (more than are ever in flight): every SKU
    sells out whatever the interleaving, and the units granted must equal the stock.
    """
    rng = random.Random(seed)
    prefix = f"FS-{tag}-B-"
    sku_count = max(2, min(sku_count, requests // 8))
    names = [f"{prefix}{n:05d}" for n in range(sku_count)]
    multi = int(requests * multi_share)
    singles = requests - multi
    units_wanted = singles + 2 * multi
    # Stock of about a quarter of the units asked for, 1..(2*mean-1) per SKU.
    mean = max(1.0, units_wanted / 4 / sku_count)
    high = max(1, round(2 * mean) - 1)
    stock = {name: rng.randint(1, high) for name in names}
    # Scale to a quarter of the requests (a flash sale sells out fast).
    while sum(stock.values()) > requests // 4:
        name = rng.choice(names)
        if stock[name] > 1:
            stock[name] -= 1
    # Popularity is skewed (a few SKUs are wanted by many), as in a real sale.
    weights = [1.0 / (rank + 10) for rank in range(sku_count)]
    rng.shuffle(weights)
    tail: list[tuple[str, ...]] = [(name,) for name in names for _ in range(stock[name])]
    extra = singles - len(tail)
    if extra < 0:
        raise ValueError("too few requests for the stock of the catalogue")
    spread: list[tuple[str, ...]] = [(n,) for n in rng.choices(names, weights, k=extra)]
    middle_size = min(len(spread), max(0, requests - len(tail) - requests // 2))
    middle = spread[:middle_size]
    head = spread[middle_size:]
    for _ in range(multi):
        a, b = rng.choices(names, weights, k=2)
        while b == a:
            b = rng.choice(names)
        head.append((a, b))
    for part in (head, middle, tail):
        rng.shuffle(part)
    picks = head + middle + tail
    orders = [Order(f"{prefix}{n:07d}", skus) for n, skus in enumerate(picks)]
    return Workload("B", "catalogue", orders, stock, prefix)


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Tally:
    """Outcomes counted by a driver: granted units, refusals and unexpected errors."""

    latencies_ms: list[float] = field(default_factory=list)
    reserved: int = 0
    granted_units: int = 0
    insufficient: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Tally) -> None:
        """Add another driver's counts to these."""
        self.latencies_ms += other.latencies_ms
        self.reserved += other.reserved
        self.granted_units += other.granted_units
        self.insufficient += other.insufficient
        self.errors.update(other.errors)


@dataclass(slots=True)
class Result:
    """What one engine did with one workload."""

    engine: str
    workload: Workload
    elapsed_s: float
    tally: Tally
    note: str = ""
    checked: str = ""
    cpu: str = ""

    @property
    def requests(self) -> int:
        """Reservation requests attempted."""
        return len(self.workload.orders)

    @property
    def rate(self) -> float:
        """Reservations attempted per second."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile (nearest rank), in ms."""
        values = sorted(self.tally.latencies_ms)
        if not values:
            return math.nan
        rank = max(1, math.ceil(p / 100 * len(values)))
        return values[rank - 1]


def check_outcome(result: Result) -> None:
    """Every request answered, and exactly the stock granted: no oversell, no undersell."""
    t = result.tally
    w = result.workload
    answered = t.reserved + t.insufficient + sum(t.errors.values())
    if answered != len(w.orders):
        raise AssertionError(
            f"{result.engine}/{w.scenario}: {answered} of {len(w.orders)} answered"
        )
    if t.errors:
        raise AssertionError(f"{result.engine}/{w.scenario}: unexpected errors {dict(t.errors)}")
    if t.granted_units != w.total_stock:
        raise AssertionError(
            f"{result.engine}/{w.scenario}: granted {t.granted_units} units, stock was "
            f"{w.total_stock}"
        )


def markdown_table(results: list[Result], baseline: str) -> str:
    """The results as a markdown table, each row compared with the baseline's rate."""
    base = {r.workload.scenario: r.rate for r in results if r.engine == baseline}
    head = (
        "| engine | scenario | requests | requests/s | p50 ms | p99 ms | granted | vs baseline |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|"
    )
    rows = [head]
    for r in results:
        b = base.get(r.workload.scenario)
        ratio = f"{r.rate / b:.1f}x" if b else "-"
        rows.append(
            f"| {r.engine} | {r.workload.scenario} {r.workload.title} | {r.requests:,} "
            f"| {r.rate:,.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} "
            f"| {r.tally.granted_units:,} / {r.workload.total_stock:,} | {ratio} |"
        )
    return "\n".join(rows)
