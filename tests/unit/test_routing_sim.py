"""The routing simulation (bench/routing_sim.py): a small world, checked, no timing asserted."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from bench.routing_sim import (
    Model,
    OrderHubRouting,
    Run,
    World,
    failures,
    make_orders,
    make_world,
    simulate,
)
from hub.domain.rate_cards import load_rate_cards
from hub.domain.routing_rules import default_rules

SMALL = Model(days=7, orders_per_day=300, seed=7)


@pytest.fixture(scope="module")
def run() -> Run:
    """One small run: a week with the surge, the static model on yunda and OrderHub."""
    return simulate(SMALL, ("yunda",))


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
    static = run.statics["yunda"]
    south = run.world.sites[1]
    assert south.warehouse_id == "WH-SOUTH"
    assert static.docks["WH-SOUTH"].max_queue > south.daily_capacity
    assert run.orderhub.docks["WH-SOUTH"].max_queue < static.docks["WH-SOUTH"].max_queue


def test_orderhub_delivers_sooner_than_static_routing_on_the_surge(run: Run) -> None:
    static = run.statics["yunda"]
    assert run.orderhub.days() < static.days()
    assert run.orderhub.late_share() < static.late_share()


def test_a_missing_sku_fails_the_checks() -> None:
    world = make_world(replace(SMALL, days=2))
    empty = {wid: {**stock, "KETTLE": 0} for wid, stock in world.stock.items()}
    result = OrderHubRouting(replace(world, stock=empty), load_rate_cards(), default_rules()).run()
    assert any("could not be routed" in f for f in result.failures)
    assert any("never delivered" in f for f in result.failures)
