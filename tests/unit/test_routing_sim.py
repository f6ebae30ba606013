"""The routing simulation (bench/routing_sim.py): a small world, checked, no timing asserted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import pytest

from bench.routing_sim import (
    CONTRACTS,
    Model,
    OrderHubRouting,
    Run,
    Shipment,
    StaticRouting,
    World,
    failures,
    make_orders,
    make_world,
    simulate,
)
from hub.domain.lanes import LaneBook
from hub.domain.rate_cards import load_rate_cards
from hub.domain.routing import Decision, RouteRequest, WarehouseState
from hub.domain.routing_rules import default_rules

SMALL = Model(days=7, orders_per_day=300, seed=7)


@pytest.fixture(scope="module")
def run() -> Run:
    """One small run: a week with the promotion, the headline contract, yunda and OrderHub."""
    return simulate(SMALL, ("regional+sf", "yunda"))


def ordered_units(world: World) -> Counter[str]:
    """Units of each SKU the world's orders ask for."""
    units: Counter[str] = Counter()
    for order in world.orders:
        for line in order.lines:
            units[line.sku] += line.quantity
    return units


def test_the_same_seed_makes_the_same_orders() -> None:
    assert make_orders(SMALL) == make_orders(SMALL)
    assert make_orders(SMALL) != make_orders(replace(SMALL, seed=8))


def test_every_check_passes(run: Run) -> None:
    assert failures(run) == []


def test_every_order_is_delivered_once_after_it_was_placed(run: Run) -> None:
    for result in (*run.statics.values(), run.orderhub):
        assert len(result.delivered) == len(run.world.orders)
        assert all(n >= 1 for n in result.parcels)
        assert all(d > p for d, p in zip(result.delivered, result.placed, strict=True))
        assert sum(result.carriers.values()) == sum(result.parcels)


def test_units_are_conserved(run: Run) -> None:
    wanted = ordered_units(run.world)
    for result in (*run.statics.values(), run.orderhub):
        shipped: Counter[str] = Counter()
        for wid, dock in result.docks.items():
            for sku, opening in run.world.stock[wid].items():
                assert 0 <= dock.atp[sku] <= opening
                shipped[sku] += opening - dock.atp[sku]
        assert shipped == wanted


def test_the_south_overflows_under_static_routing_only(run: Run) -> None:
    static = run.statics["regional+sf"]
    south = run.world.sites[1]
    assert south.warehouse_id == "WH-SOUTH"
    assert static.docks["WH-SOUTH"].max_queue > south.daily_capacity
    assert run.orderhub.docks["WH-SOUTH"].max_queue < static.docks["WH-SOUTH"].max_queue


def test_orderhub_delivers_sooner_than_static_routing_on_the_surge(run: Run) -> None:
    static = run.statics["regional+sf"]
    assert run.orderhub.days() < static.days()
    assert run.orderhub.late_share() < static.late_share()


def test_a_missing_sku_fails_the_checks() -> None:
    world = make_world(replace(SMALL, days=2))
    empty = {wid: {**stock, "KETTLE": 0} for wid, stock in world.stock.items()}
    result = OrderHubRouting(replace(world, stock=empty), load_rate_cards(), default_rules()).run()
    assert any("could not be routed" in f for f in result.failures)
    assert any("never delivered" in f for f in result.failures)


def test_a_contract_names_each_warehouses_carrier_and_the_urgent_one(run: Run) -> None:
    contract = CONTRACTS["regional+sf"]
    static = run.statics["regional+sf"]
    by_warehouse = dict(contract.by_warehouse)
    for order in run.world.orders:
        wid, carrier = static.routes[order.index]
        expected = "sf" if "urgent" in order.tags else by_warehouse[wid]
        assert carrier == expected, order.order_id
    jd = CONTRACTS["regional+sf+jd"]
    first = run.world.orders[0]
    assert jd.carrier("WH-SOUTH", replace(first, channel="jd", tags=frozenset())) == "jd"
    assert jd.carrier("WH-SOUTH", replace(first, channel="jd", tags=frozenset({"urgent"}))) == "sf"
    assert jd.carrier("WH-SOUTH", replace(first, channel="tmall", tags=frozenset())) == "yunda"


class Watched(OrderHubRouting):
    """OrderHub, keeping what it gave the engine and what the docks held at each midnight."""

    def __init__(self, world: World) -> None:
        super().__init__(world, load_rate_cards(), default_rules())
        self.seen: list[tuple[float, tuple[WarehouseState, ...]]] = []
        self.records: list[dict[str, object]] = []
        self.decisions: dict[str, Decision] = {}
        self.carrier_hours: dict[str, int] = {}
        book = self.book
        original = LaneBook.record

        def record(lane, late, occurred_at, now, **kw):  # type: ignore[no-untyped-def]
            self.records.append({"occurred_at": occurred_at, **kw})
            return original(book, lane, late, occurred_at, now, **kw)

        book.record = record  # type: ignore[method-assign]

    def _decide(self, request: RouteRequest, states: Sequence[WarehouseState]) -> Decision:
        decision = super()._decide(request, states)
        if len(states) > 1:
            self.seen.append((self.now.timestamp(), tuple(states)))
            self.decisions[request.order_id] = decision
        return decision

    def _ship(self, s: Shipment, now: float) -> None:
        super()._ship(s, now)
        if not s.reroutes and s.number == 0:
            self.carrier_hours[s.order.order_id] = s.promised_hours


def test_the_hub_gives_the_engine_its_backlog_and_the_lanes_their_handover_times() -> None:
    world = make_world(replace(SMALL, days=5))
    hub = Watched(world)
    result = hub.run()
    assert result.failures == []
    carried = [w.backlog for _, states in hub.seen for w in states]
    # The South carries orders over during the promotion; the engine is told.
    assert any(
        w.backlog > 0 for _, states in hub.seen for w in states if w.warehouse_id == "WH-SOUTH"
    )
    assert all(b >= 0 for b in carried)
    # Within a day the backlog does not change (it is what was unshipped at midnight).
    by_day: dict[tuple[int, str], set[int]] = {}
    start = hub.seen[0][0] - (hub.seen[0][0] % 86400)
    for at, states in hub.seen:
        for w in states:
            by_day.setdefault((int((at - start + 8 * 3600) // 86400), w.warehouse_id), set()).add(
                w.backlog
            )
    assert all(len(values) == 1 for values in by_day.values())
    # A warehouse behind promises its wait to the buyer; the parcel still travels, and is
    # judged late or not, on the carrier's own hours.
    waited = [
        (order_id, d) for order_id, d in hub.decisions.items() if d.shipments[0].dispatch_wait_hours
    ]
    assert waited
    placed = {o.order_id: o.placed for o in world.orders}
    index = {o.order_id: o.index for o in world.orders}
    checked = 0
    for order_id, decision in waited:
        parcel = decision.shipments[0]
        assert result.promise[index[order_id]] == placed[order_id] + 24 + parcel.promised_hours
        if order_id in hub.carrier_hours:
            checked += 1
            assert hub.carrier_hours[order_id] == (
                parcel.promised_hours - parcel.dispatch_wait_hours
            )
    assert checked
    # Every outcome reaches the breakers with its handover time, never after the delivery.
    assert hub.records
    for r in hub.records:
        shipped_at = r["shipped_at"]
        assert shipped_at is not None and shipped_at <= r["occurred_at"]  # type: ignore[operator]


def test_the_default_world_reproduces_the_article_old_model_roughly() -> None:
    world = make_world(replace(Model(), orders_per_day=600))
    static = StaticRouting(world, CONTRACTS["regional+sf"], load_rate_cards()).run()
    assert static.failures == []
    assert 2.9 <= static.days() <= 3.5
    assert 18.0 <= static.cost() <= 20.0
    held = static.held_over(48)
    assert held > 0.1 * len(world.orders)
    assert static.held_over(48, "WH-SOUTH") == held
