"""Where an order ships from and with whom: warehouses and carriers, scored, with the reasons.

Pure rules. The caller brings what is true right now — each warehouse's ATP for the order's
SKUs, how many orders it has taken today and how many it carried over unshipped, the lanes'
breaker states (as a gate), the routing rules and the quote providers — and :func:`decide`
returns the parcels to send and a trace a person can read: the destination as understood,
the rules that fired and on what, every candidate with its score or why it was left out, and
why the winner won.

**Dispatch wait.** A warehouse packs ``daily_capacity`` orders a day, first come first
served. The order being routed would be number ``backlog + routed_today`` (counting from 0)
in the work the warehouse has had since today began, so it leaves
``24 * ((backlog + routed_today) // daily_capacity)`` hours later than an order the
warehouse can still ship today (:attr:`WarehouseState.dispatch_wait_hours`). That wait is
added to every candidate's promised hours from that warehouse: the SLA check, the score and
the trace all see when the parcel will really arrive, not the carrier's hours from today.

The order of preference:

1. one parcel from a warehouse whose dispatch wait is within the rules'
   ``max_dispatch_wait_hours`` (24 h by default: a day late still ships inside the
   marketplaces' usual 48-hour ship-by);
2. a split across such warehouses, in as few parcels as possible (a line is split by
   quantity only when no warehouse holds all of it);
3. one parcel from a warehouse past the limit, then a split that may use such warehouses —
   past the limit, every order added makes the backlog longer for every order after it, so
   such a warehouse ships only what nobody else can.

Within a step every plan is scored per parcel (``cost - rule bonuses + fen_per_hour *
promised hours``, the dispatch wait included, or speed or cost first when a rule asks) and
plans that miss the order's SLA lose to any that meet it. So within the limit a nearby
warehouse a day behind still wins when it delivers sooner or enough cheaper than a far one
that ships today, and loses when it does not. A step whose every plan has no carrier left
(lanes open, nothing quotes) gives way to the next.

:func:`decide` changes nothing and reads no clock, so it serves both ``RouteOrder`` and the
what-if ``QuoteRoute`` (:func:`quote_route` marks the trace as such).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from hub.domain.geo import Province, distance_km, province_of, same_city, zone_between
from hub.domain.quotes import ZONE_RANK, Parcel, Quote, QuoteProvider, Zone
from hub.domain.routing_rules import Objective, Rule, RuleSet, When

# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class RouteLine:
    """One line to ship: how many of a SKU, what one unit weighs and how much room it takes."""

    sku: str
    quantity: int
    weight_grams: int
    #: One unit's packed volume in cubic centimetres; 0 when unknown (priced by weight).
    volume_cm3: int = 0


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """An order (or a what-if) as routing sees it."""

    order_id: str
    destination_province: str
    destination_city: str
    lines: tuple[RouteLine, ...]
    tags: frozenset[str] = frozenset()
    #: The platform the order came from (``taobao``, ``jd``, …).
    channel: str = ""
    #: What the buyer paid; None when unknown (a what-if), and amount conditions do not hold.
    amount_fen: int | None = None
    #: Hours within which the order must be delivered; None when it names none.
    sla_hours: int | None = None


@dataclass(frozen=True, slots=True)
class WarehouseState:
    """A warehouse as it stands: where it is, how busy, and what it can promise.

    Counts are of orders (an order with several parcels from one warehouse counts once),
    and "today" is the hub's routing day (midnight to midnight in its time zone).
    """

    warehouse_id: str
    province: str
    city: str
    #: Orders it can ship a day; 0 means no limit is recorded.
    daily_capacity: int
    #: Orders routed to it today (its routing day), shipped or not, less those routed away
    #: again. Today's capacity is spent on ``backlog`` first, then on these.
    routed_today: int
    #: Available-to-promise per SKU, counting what this order itself holds here.
    atp: Mapping[str, int]
    #: Orders routed to it on an earlier routing day that it had not handed over to a carrier
    #: when today's routing day began (midnight): the carry-over today's capacity serves
    #: first. It does not fall during the day as those orders ship (they use today's
    #: capacity like today's own orders), and it leaves out orders routed away since. The
    #: hub counts it from the routed parcels of earlier days whose order had not shipped by
    #: midnight; 0 when the warehouse started the day with nothing waiting.
    backlog: int = 0

    @property
    def ahead(self) -> int:
        """Orders ahead of the one being routed in the work since today began."""
        return max(0, self.backlog) + max(0, self.routed_today)

    @property
    def dispatch_wait_hours(self) -> int:
        """How much later than today the order would leave: 24 h per full day of work ahead."""
        if self.daily_capacity <= 0:
            return 0
        return 24 * (self.ahead // self.daily_capacity)

    @property
    def full(self) -> bool:
        """Whether today's capacity is used up (an order routed now ships tomorrow or later)."""
        return 0 < self.daily_capacity <= self.ahead


class LaneVerdict(NamedTuple):
    """Whether a lane takes this order, and the breaker state that decided it."""

    admitted: bool
    #: ``CLOSED``, ``OPEN`` or ``HALF_OPEN`` (or any word the trace should show).
    state: str


#: (warehouse_id, carrier, destination province short name, order_id) → verdict. The breaker
#: book (``hub/domain/lanes.py``) decides; a HALF_OPEN lane admits only the orders it probes
#: with, the same order always alike, so a retried RouteOrder meets the same lanes.
LaneGate = Callable[[str, str, str, str], LaneVerdict]

ADMITTED = LaneVerdict(True, "CLOSED")


def every_lane_closed(warehouse_id: str, carrier: str, province: str, order_id: str) -> LaneVerdict:
    """The gate when no breaker has tripped: every lane takes every order."""
    return ADMITTED


@dataclass(frozen=True, slots=True)
class PlannedShipment:
    """One parcel of the plan: from where, with whom, what, and what it was promised."""

    warehouse_id: str
    carrier: str
    lines: tuple[tuple[str, int], ...]
    #: Hours from now to delivery: the warehouse's dispatch wait plus the carrier's promise.
    promised_hours: int
    cost_fen: int
    #: The parcel's balanced score (cost - bonuses + fen_per_hour * hours); a split's penalty
    #: is in the trace, not here.
    score: int
    zone: Zone
    weight_grams: int
    #: The part of ``promised_hours`` the parcel waits at the warehouse before it leaves
    #: (the carrier's own promise is ``promised_hours - dispatch_wait_hours``).
    dispatch_wait_hours: int = 0


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One step of the reasoning, for people: ``step`` groups, ``detail`` says."""

    step: str
    detail: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The parcels to send and why."""

    shipments: tuple[PlannedShipment, ...]
    trace: tuple[TraceEntry, ...]
    rules_version: int
    objective: Objective

    @property
    def cost_fen(self) -> int:
        """What all parcels cost together."""
        return sum(s.cost_fen for s in self.shipments)

    @property
    def promised_hours(self) -> int:
        """When the last parcel is promised to arrive."""
        return max(s.promised_hours for s in self.shipments)


class NoRoute(Exception):
    """The order cannot be routed; ``field`` names the request field at fault, if one is."""

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.reason, self.field))


class NoStock(NoRoute):
    """The warehouses together hold less of a line than ordered; ``field`` names the line."""


# --------------------------------------------------------------------------- the decision


def decide(
    request: RouteRequest,
    warehouses: Sequence[WarehouseState],
    rules: RuleSet,
    providers: Sequence[QuoteProvider],
    lanes: LaneGate = every_lane_closed,
    *,
    what_if: bool = False,
) -> Decision:
    """The plan for an order, with its trace; :class:`NoRoute` when there is none."""
    trace: list[TraceEntry] = []
    if what_if:
        trace.append(TraceEntry("what-if", "a quote: nothing is held or routed"))
    dest = _destination(request)
    demand, unit_grams, unit_cm3, line_of = _demand(request)
    place = dest.full if dest.municipality else f"{dest.full} {request.destination_city}"
    trace.append(
        TraceEntry(
            "destination",
            f"{place} ({dest.region.chinese}{', remote' if dest.remote else ''})",
        )
    )
    job = _Job(request, dest, rules, providers, lanes, unit_grams, unit_cm3, trace)
    usable = [w for w in warehouses if job.knows(w)]
    if not usable:
        raise NoRoute("no warehouse to ship from")
    short = _shortfall(demand, usable, line_of)
    if short is not None:
        raise short
    limit = job.max_wait
    within = [w for w in usable if w.dispatch_wait_hours <= limit]
    singles = [w for w in usable if _serves_all(w, demand)]
    job.note_stock(usable, demand, singles)
    steps: list[tuple[str, list[WarehouseState], bool]] = [
        ("one parcel", [w for w in singles if w.dispatch_wait_hours <= limit], False),
        ("a split among warehouses within the dispatch-wait limit", within, True),
        (
            "one parcel from a warehouse past the dispatch-wait limit",
            [w for w in singles if w.dispatch_wait_hours > limit],
            False,
        ),
        ("a split using warehouses past the dispatch-wait limit", usable, True),
    ]
    tried: list[str] = []
    for label, pool, split in steps:
        if not pool:
            continue
        groups = _split_plans(demand, pool, job) if split else [[((w, demand),) for w in pool]]
        for plans in groups:
            decision = job.choose(plans, label)
            if decision is not None:
                for earlier in tried:
                    trace.append(TraceEntry("plan", f"{earlier}: no carrier can take it"))
                job.note_capacity(usable, demand, chosen=decision)
                return Decision(decision, tuple(trace), rules.version, job.objective)
            tried.append(f"{label}, {len(plans[0])} parcels" if split else label)
    raise NoRoute(
        "no carrier can take the order from any warehouse that holds it "
        "(every lane closed to it, or nothing quotes the route)"
    )


def quote_route(
    request: RouteRequest,
    warehouses: Sequence[WarehouseState],
    rules: RuleSet,
    providers: Sequence[QuoteProvider],
    lanes: LaneGate = every_lane_closed,
) -> Decision:
    """What routing would decide for a hypothetical order; the same as :func:`decide`."""
    return decide(request, warehouses, rules, providers, lanes, what_if=True)


# --------------------------------------------------------------------------- request checks


def _destination(request: RouteRequest) -> Province:
    dest = province_of(request.destination_province)
    if dest is None:
        raise NoRoute(
            f"unknown destination province {request.destination_province!r}",
            "destination_province",
        )
    if not dest.domestic:
        raise NoRoute(
            f"destination {dest.full} is outside mainland China; domestic carriers do not serve it",
            "destination_province",
        )
    if request.sla_hours is not None and request.sla_hours <= 0:
        raise NoRoute("sla_hours must be positive when given", "sla_hours")
    if request.amount_fen is not None and request.amount_fen < 0:
        raise NoRoute("amount_fen must not be negative", "amount_fen")
    return dest


def _demand(
    request: RouteRequest,
) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
    """Units per SKU, one unit's weight and volume per SKU, and each SKU's first line."""
    if not request.lines:
        raise NoRoute("the order has no lines", "lines")
    demand: dict[str, int] = {}
    unit_grams: dict[str, int] = {}
    unit_cm3: dict[str, int] = {}
    line_of: dict[str, int] = {}
    for i, line in enumerate(request.lines):
        if not line.sku:
            raise NoRoute("every line needs a SKU", f"lines[{i}].sku")
        if line.quantity <= 0:
            raise NoRoute(f"quantity of {line.sku} must be positive", f"lines[{i}].quantity")
        if line.weight_grams < 0:
            raise NoRoute(f"weight of {line.sku} must not be negative", f"lines[{i}].weight_grams")
        if line.volume_cm3 < 0:
            raise NoRoute(f"volume of {line.sku} must not be negative", f"lines[{i}].volume_cm3")
        # Two lines of one SKU (a gift line, a platform's split) ship as one quantity.
        demand[line.sku] = demand.get(line.sku, 0) + line.quantity
        unit_grams[line.sku] = max(unit_grams.get(line.sku, 0), line.weight_grams)
        unit_cm3[line.sku] = max(unit_cm3.get(line.sku, 0), line.volume_cm3)
        line_of.setdefault(line.sku, i)
    return demand, unit_grams, unit_cm3, line_of


def _serves_all(w: WarehouseState, demand: Mapping[str, int]) -> bool:
    atp = w.atp
    return all(atp.get(sku, 0) >= qty for sku, qty in demand.items())


def _shortfall(
    demand: Mapping[str, int], usable: Sequence[WarehouseState], line_of: Mapping[str, int]
) -> NoStock | None:
    for sku, qty in demand.items():
        total = sum(max(0, w.atp.get(sku, 0)) for w in usable)
        if total < qty:
            return NoStock(
                f"not enough {sku} in any warehouse: {qty} ordered, {total} available",
                f"lines[{line_of[sku]}].quantity",
            )
    return None


# --------------------------------------------------------------------------- splitting

_Plan = tuple[tuple[WarehouseState, Mapping[str, int]], ...]


def _split_plans(
    demand: Mapping[str, int], pool: Sequence[WarehouseState], job: _Job
) -> list[list[_Plan]]:
    """Covers of the order by the pool (greedy search), grouped by parcel count, fewest first."""
    nearest = sorted(pool, key=job.nearness)
    covers: dict[tuple[tuple[str, tuple[tuple[str, int], ...]], ...], _Plan] = {}
    # The plain greedy cover, then one forced to start from each warehouse that holds a whole
    # line: greedy set cover is not optimal, and the cheapest plan may start elsewhere.
    for first in (None, *nearest):
        plan = _cover(demand, nearest, first)
        if plan is None:
            continue
        key = tuple(sorted((w.warehouse_id, tuple(sorted(lines.items()))) for w, lines in plan))
        covers.setdefault(key, plan)
    by_size: dict[int, list[_Plan]] = {}
    for plan in covers.values():
        by_size.setdefault(len(plan), []).append(plan)
    return [by_size[size] for size in sorted(by_size)]


def _cover(
    demand: Mapping[str, int], nearest: Sequence[WarehouseState], first: WarehouseState | None
) -> _Plan | None:
    left = dict(demand)
    taken: dict[str, dict[str, int]] = {}
    by_id = {w.warehouse_id: w for w in nearest}
    free = {w.warehouse_id: {sku: w.atp.get(sku, 0) for sku in demand} for w in nearest}
    while left:
        best: WarehouseState | None = None
        best_lines: list[str] = []
        for w in nearest if first is None else (first,):
            if w.warehouse_id in taken:
                continue
            whole = [sku for sku, qty in left.items() if free[w.warehouse_id].get(sku, 0) >= qty]
            # Ties go to the nearer warehouse: `nearest` is sorted that way.
            if len(whole) > len(best_lines):
                best, best_lines = w, whole
        if best is None:
            if first is not None:
                return None
            break
        first = None
        taken[best.warehouse_id] = {sku: left.pop(sku) for sku in best_lines}
        for sku in best_lines:
            free[best.warehouse_id][sku] -= taken[best.warehouse_id][sku]
    # What is left, no single warehouse holds in full: split it by quantity, first among
    # warehouses already sending a parcel, then those holding the most.
    for sku, qty in sorted(left.items()):
        order = sorted(
            nearest,
            key=lambda w: (w.warehouse_id not in taken, -free[w.warehouse_id].get(sku, 0)),
        )
        for w in order:
            have = free[w.warehouse_id].get(sku, 0)
            if have <= 0:
                continue
            take = min(have, qty)
            taken.setdefault(w.warehouse_id, {})[sku] = (
                taken.get(w.warehouse_id, {}).get(sku, 0) + take
            )
            free[w.warehouse_id][sku] = have - take
            qty -= take
            if qty == 0:
                break
        if qty:
            return None
    return tuple((by_id[wid], lines) for wid, lines in taken.items())


# --------------------------------------------------------------------------- scoring


class _Candidate:
    """One warehouse-carrier pair for one parcel, as the rules leave it."""

    __slots__ = ("bonus", "hours", "km", "out", "quote", "wait", "warehouse_id")

    def __init__(self, warehouse_id: str, quote: Quote, km: float, wait: int) -> None:
        self.warehouse_id = warehouse_id
        self.quote = quote
        #: How far the warehouse is from the destination: among equals, the nearer ships.
        self.km = km
        #: The warehouse's dispatch wait, and the promise with it: what the engine judges.
        self.wait = wait
        self.hours = quote.promised_hours + wait
        self.bonus = 0
        #: Why it was left out; "" while it is in.
        self.out = ""


class _Parcel:
    """One parcel of a plan: every carrier that quoted it, and those lanes and rules left."""

    __slots__ = ("candidates", "lines", "live", "warehouse", "weight")

    def __init__(
        self,
        warehouse: WarehouseState,
        lines: Mapping[str, int],
        weight: int,
        candidates: list[_Candidate],
        live: list[_Candidate],
    ) -> None:
        self.warehouse = warehouse
        self.lines = lines
        self.weight = weight
        self.candidates = candidates
        self.live = live


def _score(c: _Candidate, fen_per_hour: int) -> int:
    return c.quote.cost_fen - c.bonus + fen_per_hour * c.hours


class _Job:
    """The state of one decision: the order's facts, its rules, and quotes already asked."""

    def __init__(
        self,
        request: RouteRequest,
        dest: Province,
        rules: RuleSet,
        providers: Sequence[QuoteProvider],
        lanes: LaneGate,
        unit_grams: Mapping[str, int],
        unit_cm3: Mapping[str, int],
        trace: list[TraceEntry],
    ) -> None:
        self.request = request
        self.dest = dest
        self.providers = providers
        self.lanes = lanes
        #: One unit's weight (g) and volume (cm³) per SKU.
        self.unit_grams = unit_grams
        self.unit_cm3 = unit_cm3
        self.trace = trace
        self.split_penalty = rules.weights.split_penalty_fen
        self.objective = rules.weights.objective
        self.fen_per_hour = rules.weights.fen_per_hour
        self.max_wait = rules.weights.max_dispatch_wait_hours
        self.sla = request.sla_hours
        self.parcels: dict[tuple[str, tuple[tuple[str, int], ...]], _Parcel] = {}
        self.same_city: dict[str, bool] = {}
        #: Parcels whose candidates are already in the trace.
        self.traced: set[int] = set()
        #: rule name → what it did, in the order it happened.
        self.effects: dict[str, list[str]] = {}
        tags = frozenset(t.lower() for t in request.tags)
        channel = request.channel.lower()
        self.rules: list[Rule] = []
        objective_by = fen_by = wait_by = ""
        for rule in rules.rules:
            if not _order_holds(rule.when, request, dest, tags, channel):
                continue
            self.rules.append(rule)
            then = rule.then
            if then.objective is not None:
                if not objective_by:
                    self.objective, objective_by = then.objective, rule.name
                    self._effect(rule, f"objective {then.objective.value}")
                else:
                    self._effect(
                        rule,
                        f"objective {then.objective.value} ignored: {objective_by} set it first",
                    )
            if then.fen_per_hour is not None:
                if not fen_by:
                    self.fen_per_hour, fen_by = then.fen_per_hour, rule.name
                    self._effect(rule, f"fen_per_hour {then.fen_per_hour}")
                else:
                    self._effect(rule, f"fen_per_hour ignored: {fen_by} set it first")
            if then.max_dispatch_wait_hours is not None:
                if not wait_by:
                    self.max_wait, wait_by = then.max_dispatch_wait_hours, rule.name
                    self._effect(rule, f"max_dispatch_wait_hours {then.max_dispatch_wait_hours}")
                else:
                    self._effect(rule, f"max_dispatch_wait_hours ignored: {wait_by} set it first")
        self.candidate_rules = [r for r in self.rules if _acts_on_candidates(r)]

    def _effect(self, rule: Rule, what: str) -> None:
        self.effects.setdefault(rule.name, []).append(what)

    # ----------------------------------------------------------------- warehouses

    def knows(self, w: WarehouseState) -> bool:
        """Whether the warehouse's place is known (and domestic); trace it when not."""
        origin = province_of(w.province)
        if origin is None or not origin.domestic:
            self.trace.append(
                TraceEntry(
                    "warehouse",
                    f"{w.warehouse_id}: province {w.province!r} unknown or abroad, skipped",
                )
            )
            return False
        self.same_city[w.warehouse_id] = same_city(
            w.province, w.city, self.dest.short, self.request.destination_city
        )
        return True

    def nearness(self, w: WarehouseState) -> tuple[int, float, str]:
        """How near a warehouse is to the destination, for ordering a split's search."""
        request = self.request
        zone, km = _nearness(
            w.province, w.city, request.destination_province, request.destination_city
        )
        return (zone, km, w.warehouse_id)

    def note_stock(
        self,
        usable: Sequence[WarehouseState],
        demand: Mapping[str, int],
        singles: Sequence[WarehouseState],
    ) -> None:
        """Trace which warehouses can ship the whole order and what the others lack."""
        whole = {w.warehouse_id for w in singles}
        for w in usable:
            load = _load_text(w, self.max_wait)
            if w.warehouse_id in whole:
                self.trace.append(
                    TraceEntry("warehouse", f"{w.warehouse_id}: holds every line ({load})")
                )
                continue
            lacks = ", ".join(
                f"{sku} {max(0, w.atp.get(sku, 0))}/{qty}"
                for sku, qty in demand.items()
                if w.atp.get(sku, 0) < qty
            )
            self.trace.append(
                TraceEntry("warehouse", f"{w.warehouse_id}: short of {lacks} ({load})")
            )

    def note_capacity(
        self,
        usable: Sequence[WarehouseState],
        demand: Mapping[str, int],
        chosen: Sequence[PlannedShipment],
    ) -> None:
        """Trace what its dispatch wait did to each warehouse that has one and holds any of
        the order: weighed in its promise, or (past the limit) kept for what nobody else can
        ship."""
        used = {s.warehouse_id for s in chosen}
        limit = self.max_wait
        for w in usable:
            wait = w.dispatch_wait_hours
            if not wait or not any(w.atp.get(sku, 0) > 0 for sku in demand):
                continue
            head = (
                f"{w.warehouse_id}: +{wait} h dispatch wait, {w.ahead:,} ahead of "
                f"{w.daily_capacity:,}/day"
            )
            if wait > limit:
                past = f"past the {limit} h limit"
                if w.warehouse_id in used:
                    why = f"{head}, {past}: used, no warehouse within the limit can serve"
                else:
                    why = f"{head}, {past}: skipped while another can serve"
            elif w.warehouse_id in used:
                why = f"{head}: in its promise, and it still won"
            else:
                why = f"{head}: in its promise, and another warehouse won"
            self.trace.append(TraceEntry("capacity", why))

    # ----------------------------------------------------------------- parcels

    def parcel(self, w: WarehouseState, lines: Mapping[str, int]) -> _Parcel:
        """The parcel's candidates after lanes and rules (asked once per decision)."""
        key = (w.warehouse_id, tuple(sorted(lines.items())))
        known = self.parcels.get(key)
        if known is not None:
            return known
        unit = self.unit_grams
        weight = sum(unit[sku] * qty for sku, qty in lines.items())
        # The units' own volumes added up: a parcel at least that big (its carton is more).
        room = self.unit_cm3
        volume = sum(room[sku] * qty for sku, qty in lines.items())
        parcel = Parcel(
            w.province,
            w.city,
            self.request.destination_province,
            self.request.destination_city,
            weight,
            volume,
        )
        quotes: dict[str, Quote] = {}
        for provider in self.providers:
            for q in provider.quote(parcel):
                # The first provider to quote a carrier is the one trusted (a live API before
                # the rate card).
                quotes.setdefault(q.carrier, q)
        candidates: list[_Candidate] = []
        live: list[_Candidate] = []
        wid = w.warehouse_id
        short = self.dest.short
        order_id = self.request.order_id
        km = self.nearness(w)[1]
        wait = w.dispatch_wait_hours
        for carrier in sorted(quotes):
            c = _Candidate(wid, quotes[carrier], km, wait)
            candidates.append(c)
            verdict = self.lanes(wid, carrier, short, order_id)
            if verdict.admitted:
                live.append(c)
            elif verdict.state == "HALF_OPEN":
                c.out = f"lane {wid}/{carrier}/{short} HALF_OPEN, not a probe: skipped"
            else:
                c.out = f"lane {wid}/{carrier}/{short} {verdict.state}: skipped"
        if live:
            live = self._apply_rules(w, weight, live)
        result = _Parcel(w, lines, weight, candidates, live)
        self.parcels[key] = result
        return result

    def _apply_rules(
        self, w: WarehouseState, weight: int, live: list[_Candidate]
    ) -> list[_Candidate]:
        wid = w.warehouse_id
        same = self.same_city[wid]
        for rule in self.candidate_rules:
            when = rule.when
            if when.same_city is not None and when.same_city != same:
                continue
            if when.weight_grams_min is not None and weight < when.weight_grams_min:
                continue
            if when.weight_grams_max is not None and weight > when.weight_grams_max:
                continue
            if when.warehouses and wid not in when.warehouses:
                continue
            scope = when.carriers
            covered = [c for c in live if c.quote.carrier in scope] if scope else live
            if not covered:
                continue
            then = rule.then
            name = rule.name
            if then.only:
                keep = [c for c in covered if c.quote.carrier in then.only]
                if keep:
                    gone = [c for c in covered if c.quote.carrier not in then.only]
                    live = self._drop(live, gone, name, "not in only")
                    covered = keep
                else:
                    self._effect(
                        rule, f"{wid}: only {'/'.join(then.only)} skipped, none of them can serve"
                    )
            if then.fallback:
                held = [c for c in covered if c.quote.carrier in then.fallback]
                if held and len(held) < len(live):
                    live = self._drop(live, held, name, "held back as fallback")
                    covered = [c for c in covered if c.out == ""]
                elif held:
                    used = "/".join(c.quote.carrier for c in held)
                    self._effect(rule, f"{wid}: fallback {used} used, no other carrier serves")
            if then.avoid:
                avoided = [c for c in covered if c.quote.carrier in then.avoid]
                if avoided and len(avoided) < len(live):
                    live = self._drop(live, avoided, name, "avoided")
                    covered = [c for c in covered if c.out == ""]
                elif avoided:
                    self._effect(rule, f"{wid}: avoid ignored, nothing else is left")
            if then.max_cost_fen is not None:
                ceiling = then.max_cost_fen
                dear = [c for c in covered if c.quote.cost_fen > ceiling]
                if dear and len(dear) < len(live):
                    live = self._drop(live, dear, name, f"over the {ceiling} fen ceiling")
                    covered = [c for c in covered if c.out == ""]
                elif dear:
                    self._effect(
                        rule, f"{wid}: nothing is under {ceiling} fen, ceiling not applied"
                    )
            if then.prefer:
                for c in covered:
                    if c.quote.carrier in then.prefer:
                        c.bonus += then.bonus_fen
                        self._effect(rule, f"{wid}/{c.quote.carrier} bonus {then.bonus_fen} fen")
        return live

    def _drop(
        self, live: list[_Candidate], gone: list[_Candidate], rule: str, why: str
    ) -> list[_Candidate]:
        for c in gone:
            c.out = f"{why} ({rule})"
            self.effects.setdefault(rule, []).append(f"{c.warehouse_id}/{c.quote.carrier} {why}")
        ids = {id(c) for c in gone}
        return [c for c in live if id(c) not in ids]

    # ----------------------------------------------------------------- choosing

    def key(self, c: _Candidate) -> tuple[int, int, int, int, float, str, str]:
        """How a candidate ranks (lowest first): SLA met, the objective, nearness, names."""
        q = c.quote
        hours = c.hours
        score = _score(c, self.fen_per_hour)
        if self.sla is not None and hours > self.sla:
            # Nobody can keep the promise: the sooner it arrives, the less it is broken.
            return (1, hours, score, 0, c.km, c.warehouse_id, q.carrier)
        if self.objective is Objective.FASTEST:
            return (0, hours, score, 0, c.km, c.warehouse_id, q.carrier)
        if self.objective is Objective.CHEAPEST:
            return (0, q.cost_fen - c.bonus, hours, 0, c.km, c.warehouse_id, q.carrier)
        return (0, score, hours, 0, c.km, c.warehouse_id, q.carrier)

    def _labels(self, missed: bool) -> tuple[str, ...]:
        """What each place of :meth:`key` measures, for saying why one candidate won."""
        if missed:
            return ("SLA", "hours", "score", "", "distance", "warehouse", "carrier")
        if self.objective is Objective.FASTEST:
            return ("SLA", "hours", "score", "", "distance", "warehouse", "carrier")
        if self.objective is Objective.CHEAPEST:
            return ("SLA", "cost after bonuses", "hours", "", "distance", "warehouse", "carrier")
        return ("SLA", "score", "hours", "", "distance", "warehouse", "carrier")

    def choose(self, plans: Sequence[_Plan], label: str) -> tuple[PlannedShipment, ...] | None:
        """The best plan among plans of one kind; None when none has a carrier left."""
        routable: list[tuple[tuple[Any, ...], list[_Parcel], list[_Candidate]]] = []
        for plan in plans:
            parcels = [self.parcel(w, lines) for w, lines in plan]
            if any(not p.live for p in parcels):
                continue
            picks = [min(p.live, key=self.key) for p in parcels]
            routable.append((self._plan_key(picks), parcels, picks))
        self._trace_rules()
        self._trace_candidates(plans)
        if not routable:
            return None
        routable.sort(key=lambda r: r[0])
        _, parcels, picks = routable[0]
        if len(parcels) == 1:
            # The runner-up is the next candidate anywhere, the winner's own warehouse included.
            rivals = [c for _, ps, _ in routable for c in ps[0].live if c is not picks[0]]
            self._trace_single_winner(picks[0], rivals)
        else:
            self._trace_split_winner(parcels, picks, label)
        return tuple(
            PlannedShipment(
                p.warehouse.warehouse_id,
                c.quote.carrier,
                tuple(sorted(p.lines.items())),
                c.hours,
                c.quote.cost_fen,
                _score(c, self.fen_per_hour),
                c.quote.zone,
                p.weight,
                c.wait,
            )
            for p, c in zip(parcels, picks, strict=True)
        )

    def _plan_key(self, picks: Sequence[_Candidate]) -> tuple[Any, ...]:
        if len(picks) == 1:
            return self.key(picks[0])
        hours = max(c.hours for c in picks)
        score = sum(_score(c, self.fen_per_hour) for c in picks) + self.split_penalty * (
            len(picks) - 1
        )
        cost = sum(c.quote.cost_fen - c.bonus for c in picks)
        names = tuple((c.warehouse_id, c.quote.carrier) for c in picks)
        miss = self.sla is not None and hours > self.sla
        if miss:
            return (1, hours, score, names)
        if self.objective is Objective.FASTEST:
            return (0, hours, score, names)
        if self.objective is Objective.CHEAPEST:
            return (0, cost, hours, names)
        return (0, score, hours, names)

    # ----------------------------------------------------------------- trace

    def _trace_candidates(self, plans: Sequence[_Plan]) -> None:
        add = self.trace.append
        fph = self.fen_per_hour
        sla = self.sla
        seen = self.traced
        for plan in plans:
            for w, lines in plan:
                p = self.parcel(w, lines)
                if id(p) in seen:
                    continue
                seen.add(id(p))
                if not p.candidates:
                    add(
                        TraceEntry(
                            "candidate",
                            f"{w.warehouse_id}: no carrier quotes {p.weight} g "
                            f"to {self.dest.short}",
                        )
                    )
                for c in p.candidates:
                    q = c.quote
                    size = (
                        f" (billed on {q.billed_grams} g by size)"
                        if q.billed_grams > p.weight
                        else ""
                    )
                    head = (
                        f"{c.warehouse_id}/{q.carrier} {q.zone.value} "
                        f"{q.cost_fen} fen{size} {_hours_text(c)}"
                    )
                    if c.out:
                        add(TraceEntry("candidate", f"{head}: out, {c.out}"))
                        continue
                    tail = f" (bonus {c.bonus})" if c.bonus else ""
                    if sla is not None and c.hours > sla:
                        tail += f" misses SLA {sla} h"
                    add(TraceEntry("candidate", f"{head} score {_score(c, fph)}{tail}"))

    def _trace_rules(self) -> None:
        for rule in self.rules:
            done = self.effects.pop(rule.name, None)
            if done:
                self.trace.append(
                    TraceEntry("rule", f"{rule.name} ({_when_text(rule.when)}): {'; '.join(done)}")
                )

    def _trace_single_winner(self, best: _Candidate, rivals: Sequence[_Candidate]) -> None:
        runner = min(rivals, key=self.key) if rivals else None
        self._trace_sla(best)
        self.trace.append(TraceEntry("winner", self._why(best, runner)))

    def _trace_split_winner(
        self, parcels: Sequence[_Parcel], picks: Sequence[_Candidate], label: str
    ) -> None:
        self.trace.append(
            TraceEntry(
                "plan",
                f"{label}: {len(parcels)} parcels (+{self.split_penalty} fen for each "
                "parcel past the first)",
            )
        )
        for p, best in zip(parcels, picks, strict=True):
            rivals = [c for c in p.live if c is not best]
            runner = min(rivals, key=self.key) if rivals else None
            self._trace_sla(best)
            lines = ", ".join(f"{sku} x{qty}" for sku, qty in sorted(p.lines.items()))
            self.trace.append(TraceEntry("winner", f"{lines}: {self._why(best, runner)}"))

    def _trace_sla(self, best: _Candidate) -> None:
        if self.sla is not None and best.hours > self.sla:
            self.trace.append(
                TraceEntry("sla", f"no candidate meets SLA {self.sla} h; fastest chosen")
            )

    def _why(self, best: _Candidate, runner: _Candidate | None) -> str:
        q = best.quote
        fph = self.fen_per_hour
        said = (
            f"{best.warehouse_id}/{q.carrier}: {q.cost_fen} fen, {_hours_text(best)}, "
            f"score {_score(best, fph)} ({self.objective.value})"
        )
        if runner is None:
            return f"{said}; the only candidate left"
        r = runner.quote
        mine, theirs = self.key(best), self.key(runner)
        place = next(
            (i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b),
            len(mine) - 1,
        )
        label = self._labels(bool(mine[0]))[place]
        if place == 0:
            edge = f"it meets SLA {self.sla} h and the runner-up does not"
        elif label == "distance":
            edge = f"a tie, broken by distance ({mine[place]:.0f} vs {theirs[place]:.0f} km)"
        elif label in ("warehouse", "carrier"):
            edge = f"a tie, broken by {label} name"
        else:
            edge = f"better {label}: {mine[place]} vs {theirs[place]}"
        return (
            f"{said}; over runner-up {runner.warehouse_id}/{r.carrier} ({r.cost_fen} fen, "
            f"{_hours_text(runner)}, score {_score(runner, fph)}): {edge}"
        )


def _hours_text(c: _Candidate) -> str:
    """The promise as the trace says it: the carrier's hours, and the wait when there is one."""
    if not c.wait:
        return f"{c.hours} h"
    return f"{c.hours} h ({c.wait} h dispatch wait + {c.quote.promised_hours} h carrier)"


def _load_text(w: WarehouseState, limit: int) -> str:
    """How busy a warehouse is, for the trace."""
    if not w.daily_capacity:
        return f"today {w.routed_today:,}, no capacity limit"
    carried = f" + {w.backlog:,} carried over" if w.backlog else ""
    load = f"today {w.routed_today:,}{carried} of {w.daily_capacity:,}/day"
    wait = w.dispatch_wait_hours
    if not wait:
        return f"{load}, ships today"
    past = f", past the {limit} h limit" if wait > limit else ""
    return f"{load}: +{wait} h dispatch wait{past}"


def _order_holds(
    when: When, request: RouteRequest, dest: Province, tags: frozenset[str], channel: str
) -> bool:
    if when.destination_provinces and dest.short not in when.destination_provinces:
        return False
    if when.destination_regions and dest.region.value not in when.destination_regions:
        return False
    if when.remote is not None and when.remote != dest.remote:
        return False
    if when.sla_hours_max is not None and (
        request.sla_hours is None or request.sla_hours > when.sla_hours_max
    ):
        return False
    if when.tags_any and tags.isdisjoint(when.tags_any):
        return False
    amount = request.amount_fen
    if when.amount_fen_min is not None and (amount is None or amount < when.amount_fen_min):
        return False
    if when.amount_fen_max is not None and (amount is None or amount > when.amount_fen_max):
        return False
    return not (when.channels and channel not in when.channels)


def _acts_on_candidates(rule: Rule) -> bool:
    then = rule.then
    return bool(
        then.prefer or then.avoid or then.only or then.fallback or then.max_cost_fen is not None
    )


@lru_cache(maxsize=1024)
def _nearness(op: str, oc: str, dp: str, dc: str) -> tuple[int, float]:
    zone = zone_between(op, oc, dp, dc)
    origin, dest = province_of(op), province_of(dp)
    km = distance_km(origin, dest) if origin is not None and dest is not None else 0.0
    return (ZONE_RANK[zone], km)


@lru_cache(maxsize=1024)
def _when_text(when: When) -> str:
    parts: list[str] = []
    if when.destination_provinces:
        parts.append("to " + "/".join(when.destination_provinces))
    if when.destination_regions:
        parts.append("region " + "/".join(when.destination_regions))
    if when.remote is not None:
        parts.append("remote" if when.remote else "not remote")
    if when.same_city is not None:
        parts.append("same city" if when.same_city else "not same city")
    if when.weight_grams_min is not None:
        parts.append(f"≥ {when.weight_grams_min} g")
    if when.weight_grams_max is not None:
        parts.append(f"≤ {when.weight_grams_max} g")
    if when.sla_hours_max is not None:
        parts.append(f"SLA ≤ {when.sla_hours_max} h")
    if when.tags_any:
        parts.append("tagged " + "/".join(when.tags_any))
    if when.amount_fen_min is not None:
        parts.append(f"amount ≥ {when.amount_fen_min} fen")
    if when.amount_fen_max is not None:
        parts.append(f"amount ≤ {when.amount_fen_max} fen")
    if when.channels:
        parts.append("from " + "/".join(when.channels))
    if when.carriers:
        parts.append("carriers " + "/".join(when.carriers))
    if when.warehouses:
        parts.append("from " + "/".join(when.warehouses))
    return ", ".join(parts) or "always"
