"""The routing engine: warehouses by stock and capacity, carriers by rules, lanes and score."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.quotes import Parcel, Quote, Zone
from hub.domain.rate_cards import load_rate_cards
from hub.domain.routing import (
    Decision,
    LaneGate,
    LaneVerdict,
    NoRoute,
    NoStock,
    RouteLine,
    RouteRequest,
    WarehouseState,
    decide,
    quote_route,
)
from hub.domain.routing_rules import RuleSet, default_rules, parse_rules

CARDS = load_rate_cards()
RULES = default_rules()
NO_RULES = parse_rules({"rules": []})

#: The demo's five regional warehouses: (id, province, city, daily capacity).
SITES = (
    ("WH-EAST", "上海市", "上海市", 8000),
    ("WH-SOUTH", "广东省", "广州市", 6000),
    ("WH-NORTH", "北京市", "北京市", 6000),
    ("WH-SOUTHWEST", "四川省", "成都市", 4000),
    ("WH-CENTRAL", "湖北省", "武汉市", 4000),
)


def warehouses(
    *,
    stock: Mapping[str, Mapping[str, int]] | None = None,
    routed: Mapping[str, int] | None = None,
    only: Sequence[str] = (),
) -> list[WarehouseState]:
    """The demo warehouses; each holds 100 TEE and 100 MUG unless `stock` says otherwise."""
    return [
        WarehouseState(
            wid,
            province,
            city,
            capacity,
            (routed or {}).get(wid, 0),
            {"TEE": 100, "MUG": 100} if stock is None else stock.get(wid, {}),
        )
        for wid, province, city, capacity in SITES
        if not only or wid in only
    ]


def order(
    province: str = "浙江省",
    city: str = "杭州市",
    *lines: RouteLine,
    tags: frozenset[str] = frozenset(),
    amount_fen: int | None = 19_900,
    sla_hours: int | None = None,
    channel: str = "taobao",
) -> RouteRequest:
    return RouteRequest(
        "order-1",
        province,
        city,
        lines or (RouteLine("TEE", 2, 250),),
        tags,
        channel,
        amount_fen,
        sla_hours,
    )


def route(
    request: RouteRequest,
    stock: list[WarehouseState] | None = None,
    rules: RuleSet = RULES,
    **kw: Any,
) -> Decision:
    return decide(request, stock if stock is not None else warehouses(), rules, [CARDS], **kw)


def trace_text(decision: Decision) -> str:
    return "\n".join(f"[{t.step}] {t.detail}" for t in decision.trace)


def shipped(decision: Decision) -> list[tuple[str, str]]:
    return [(s.warehouse_id, s.carrier) for s in decision.shipments]


class Table:
    """A quote provider with fixed prices: (origin province, carrier) → (cost fen, hours)."""

    name = "table"

    def __init__(self, prices: Mapping[tuple[str, str], tuple[int, int]]) -> None:
        self.prices = prices

    def quote(self, parcel: Parcel, carriers: Sequence[str] = ()) -> list[Quote]:
        return [
            Quote(carrier, cost, hours, Zone.NATIONAL, parcel.weight_grams, self.name)
            for (origin, carrier), (cost, hours) in self.prices.items()
            if origin == parcel.origin_province
        ]


def one_warehouse() -> list[WarehouseState]:
    return [WarehouseState("WH-A", "江苏省", "南京市", 0, 0, {"TEE": 50})]


def gate(
    states: Mapping[tuple[str, str, str], str], probes: frozenset[str] = frozenset()
) -> LaneGate:
    """Lanes in the given breaker states; a HALF_OPEN lane admits the orders in `probes`."""

    def admits(warehouse_id: str, carrier: str, province: str, order_id: str) -> LaneVerdict:
        state = states.get((warehouse_id, carrier, province), "CLOSED")
        admitted = state == "CLOSED" or (state == "HALF_OPEN" and order_id in probes)
        return LaneVerdict(admitted, state)

    return admits


# --------------------------------------------------------------------------- the rules


def test_same_city_order_prefers_instant() -> None:
    decision = route(order("广东省", "广州市"))
    assert shipped(decision) == [("WH-SOUTH", "instant")]
    assert decision.shipments[0].zone is Zone.SAME_CITY
    assert "same-city-instant" in trace_text(decision)
    # Without the rule a next-day network parcel is cheaper and wins on score.
    assert shipped(route(order("广东省", "广州市"), rules=NO_RULES))[0][1] != "instant"


def test_same_city_preference_is_a_bonus_not_a_mandate() -> None:
    # 18 kg by a same-city rider costs far more than the bonus is worth.
    heavy = order("广东省", "广州市", RouteLine("RICE", 18, 1000))
    stock = warehouses(stock={"WH-SOUTH": {"RICE": 50}})
    assert shipped(route(heavy, stock))[0][1] != "instant"


def test_same_city_instant_is_preferred_up_to_its_price_cap_only() -> None:
    stock = warehouses(stock={"WH-SOUTH": {"BOX": 50}})
    # 7 kg: 20 yuan by instant, at the cap: instant.
    seven = route(order("广东省", "广州市", RouteLine("BOX", 7, 1000)), stock)
    assert shipped(seven) == [("WH-SOUTH", "instant")]
    # 8 kg: 22 yuan, over it; the bonus alone would still have carried it (the old rule).
    eight = route(order("广东省", "广州市", RouteLine("BOX", 8, 1000)), stock)
    assert shipped(eight)[0][1] != "instant"
    assert "WH-SOUTH/instant over the 2000 fen ceiling" in trace_text(eight)
    # An urgent order still gets instant when nothing else is as fast and it is under the cap.
    urgent = order("广东省", "广州市", RouteLine("BOX", 3, 1000), tags=frozenset({"urgent"}))
    assert shipped(route(urgent, stock)) == [("WH-SOUTH", "instant")]


def test_remote_destination_falls_back_to_ems() -> None:
    decision = route(order("新疆", "乌鲁木齐市"))
    assert [s.carrier for s in decision.shipments] == ["ems"]
    assert decision.shipments[0].zone is Zone.REMOTE
    assert "remote-prefers-ems" in trace_text(decision)
    # Remote pricing is the same from every warehouse; the nearest one ships.
    assert decision.shipments[0].warehouse_id == "WH-SOUTHWEST"
    assert "tie, broken by distance" in trace_text(decision)


def test_heavy_parcel_avoids_express() -> None:
    urgent = frozenset({"urgent"})
    light = route(order("浙江省", "杭州市", RouteLine("TEE", 2, 250), tags=urgent))
    assert light.shipments[0].carrier in ("sf", "jd")
    heavy = route(order("浙江省", "杭州市", RouteLine("TEE", 100, 250), tags=urgent))
    assert heavy.shipments[0].weight_grams == 25_000
    assert heavy.shipments[0].carrier not in ("sf", "jd")
    assert "avoided (heavy-avoids-express)" in trace_text(heavy)


def test_a_bulky_light_parcel_is_priced_on_its_size() -> None:
    """A 600 x 400 x 300 mm pillow of 500 g: carriers bill its volumetric weight."""
    small = route(order("广东省", "广州市", RouteLine("TEE", 1, 500)), rules=NO_RULES)
    bulky = route(
        order("广东省", "广州市", RouteLine("TEE", 1, 500, 600 * 400 * 300 // 1000)),
        rules=NO_RULES,
    )
    assert bulky.shipments[0].weight_grams == small.shipments[0].weight_grams == 500
    assert bulky.cost_fen > small.cost_fen
    assert "by size" in trace_text(bulky)
    assert "by size" not in trace_text(small)


def test_a_negative_volume_is_refused_naming_the_line() -> None:
    with pytest.raises(NoRoute) as refused:
        route(order("广东省", "广州市", RouteLine("TEE", 1, 500), RouteLine("MUG", 1, 450, -1)))
    assert refused.value.field == "lines[1].volume_cm3"


def test_avoided_carrier_is_used_when_nothing_else_is_left() -> None:
    rules = parse_rules({"rules": [{"name": "no-sf", "then": {"avoid": ["sf"]}}]})
    table = Table({("江苏省", "sf"): (900, 24)})
    decision = decide(order(), one_warehouse(), rules, [table])
    assert shipped(decision) == [("WH-A", "sf")]
    assert "avoid ignored, nothing else is left" in trace_text(decision)


def test_urgent_order_takes_fastest_carrier() -> None:
    plain = route(order("浙江省", "杭州市"))
    urgent = route(order("浙江省", "杭州市", tags=frozenset({"urgent"})))
    assert urgent.objective == "fastest"
    assert urgent.promised_hours < plain.promised_hours
    assert urgent.cost_fen > plain.cost_fen
    fastest = min(
        q.promised_hours for q in CARDS.quote(Parcel("上海市", "上海市", "浙江省", "杭州市", 500))
    )
    assert urgent.promised_hours == fastest
    assert "urgent-fastest (tagged urgent): objective fastest" in trace_text(urgent)


def test_earlier_rule_sets_the_objective() -> None:
    # A rush order of 9.90 yuan: both the urgent and the low-value rules hold.
    decision = route(order(tags=frozenset({"urgent"}), amount_fen=990))
    assert decision.objective == "fastest"
    assert "objective cheapest ignored: urgent-fastest set it first" in trace_text(decision)


def test_low_value_order_goes_the_cheapest_way() -> None:
    cheap = route(order(amount_fen=990))
    assert cheap.objective == "cheapest"
    costs = [q.cost_fen for q in CARDS.quote(Parcel("上海市", "上海市", "浙江省", "杭州市", 500))]
    assert cheap.cost_fen == min(costs)


def test_unknown_amount_does_not_count_as_low_value() -> None:
    assert route(order(amount_fen=None)).objective == "balanced"


def test_cost_ceiling_excludes_expensive_carrier() -> None:
    rules = parse_rules(
        {
            "weights": {"objective": "fastest"},
            "rules": [{"name": "ceiling", "then": {"max_cost_fen": 1000}}],
        }
    )
    table = Table({("江苏省", "sf"): (1500, 24), ("江苏省", "zto"): (800, 48)})
    decision = decide(order(), one_warehouse(), rules, [table])
    assert shipped(decision) == [("WH-A", "zto")]
    assert "WH-A/sf national 1500 fen 24 h: out, over the 1000 fen ceiling (ceiling)" in (
        trace_text(decision)
    )


def test_cost_ceiling_gives_way_when_nothing_is_under_it() -> None:
    rules = parse_rules({"rules": [{"name": "ceiling", "then": {"max_cost_fen": 500}}]})
    table = Table({("江苏省", "sf"): (1500, 24), ("江苏省", "zto"): (800, 48)})
    decision = decide(order(), one_warehouse(), rules, [table])
    assert len(decision.shipments) == 1
    assert "nothing is under 500 fen, ceiling not applied" in trace_text(decision)


def test_only_rule_restricts_carriers_and_is_skipped_when_none_can_serve() -> None:
    rules = parse_rules(
        {
            "rules": [
                {"name": "pdd-yunda", "when": {"channels": ["pdd"]}, "then": {"only": ["yunda"]}}
            ]
        }
    )
    table = Table({("江苏省", "zto"): (500, 48), ("江苏省", "yunda"): (900, 48)})
    assert shipped(decide(order(channel="pdd"), one_warehouse(), rules, [table])) == [
        ("WH-A", "yunda")
    ]
    assert shipped(decide(order(channel="jd"), one_warehouse(), rules, [table])) == [
        ("WH-A", "zto")
    ]
    no_yunda = Table({("江苏省", "zto"): (500, 48)})
    decision = decide(order(channel="pdd"), one_warehouse(), rules, [no_yunda])
    assert shipped(decision) == [("WH-A", "zto")]
    assert "only yunda skipped, none of them can serve" in trace_text(decision)


def test_fallback_carrier_is_used_only_when_nothing_else_serves() -> None:
    rules = parse_rules({"rules": [{"name": "ems-backup", "then": {"fallback": ["ems"]}}]})
    table = Table({("江苏省", "ems"): (300, 24), ("江苏省", "zto"): (800, 48)})
    normal = decide(order(), one_warehouse(), rules, [table])
    assert shipped(normal) == [("WH-A", "zto")]
    assert "held back as fallback (ems-backup)" in trace_text(normal)
    tripped = decide(
        order(), one_warehouse(), rules, [table], gate({("WH-A", "zto", "浙江"): "OPEN"})
    )
    assert shipped(tripped) == [("WH-A", "ems")]
    assert "fallback ems used, no other carrier serves" in trace_text(tripped)


def test_rule_scoped_to_carriers_and_warehouses_touches_only_those() -> None:
    rules = parse_rules(
        {
            "rules": [
                {
                    "name": "east-zto",
                    "when": {"warehouses": ["WH-A"], "carriers": ["zto"]},
                    "then": {"prefer": ["zto", "sf"], "bonus_fen": 400},
                }
            ]
        }
    )
    table = Table({("江苏省", "sf"): (700, 48), ("江苏省", "zto"): (800, 48)})
    decision = decide(order(), one_warehouse(), rules, [table])
    assert shipped(decision) == [("WH-A", "zto")]
    assert decision.shipments[0].score == 800 - 400 + 20 * 48
    assert "WH-A/sf bonus" not in trace_text(decision)


def test_score_is_cost_less_bonus_plus_hours_at_the_rule_set_rate() -> None:
    rules = parse_rules({"weights": {"fen_per_hour": 10}, "rules": []})
    table = Table({("江苏省", "sf"): (1500, 24), ("江苏省", "zto"): (800, 72)})
    decision = decide(order(), one_warehouse(), rules, [table])
    # sf: 1500 + 240 = 1740; zto: 800 + 720 = 1520.
    assert shipped(decision) == [("WH-A", "zto")]
    assert decision.shipments[0].score == 1520
    assert "margin" not in trace_text(decision)
    assert "better score: 1520 vs 1740" in trace_text(decision)


def test_rule_may_change_what_an_hour_is_worth() -> None:
    rules = parse_rules(
        {
            "weights": {"fen_per_hour": 10},
            "rules": [{"name": "vip", "when": {"tags_any": ["vip"]}, "then": {"fen_per_hour": 50}}],
        }
    )
    table = Table({("江苏省", "sf"): (1500, 24), ("江苏省", "zto"): (800, 72)})
    vip = decide(order(tags=frozenset({"VIP"})), one_warehouse(), rules, [table])
    # sf: 1500 + 1200 = 2700; zto: 800 + 3600 = 4400.
    assert shipped(vip) == [("WH-A", "sf")]


# --------------------------------------------------------------------------- the SLA


def test_candidate_meeting_the_sla_beats_a_cheaper_one_that_misses_it() -> None:
    table = Table({("江苏省", "sf"): (1500, 24), ("江苏省", "zto"): (800, 72)})
    decision = decide(order(sla_hours=48), one_warehouse(), NO_RULES, [table])
    assert shipped(decision) == [("WH-A", "sf")]
    assert "it meets SLA 48 h and the runner-up does not" in trace_text(decision)


def test_when_no_candidate_meets_the_sla_the_fastest_is_chosen() -> None:
    table = Table({("江苏省", "ems"): (500, 96), ("江苏省", "zto"): (800, 72)})
    decision = decide(order(sla_hours=24), one_warehouse(), NO_RULES, [table])
    assert shipped(decision) == [("WH-A", "zto")]
    assert "no candidate meets SLA 24 h; fastest chosen" in trace_text(decision)


# --------------------------------------------------------------------------- warehouses


def with_backlog(stock: list[WarehouseState], **backlog: int) -> list[WarehouseState]:
    """The warehouses with the given orders carried over from earlier days (id with _ for -)."""
    carried = {wid.replace("_", "-"): n for wid, n in backlog.items()}
    return [replace(w, backlog=carried.get(w.warehouse_id, 0)) for w in stock]


def test_dispatch_wait_is_a_day_for_each_full_day_of_work_ahead() -> None:
    def state(capacity: int, routed: int, backlog: int) -> WarehouseState:
        return WarehouseState("WH-A", "江苏省", "南京市", capacity, routed, {}, backlog)

    # The order being routed is number backlog + routed_today (from 0) in today's work.
    assert state(6000, 5999, 0).dispatch_wait_hours == 0
    assert state(6000, 6000, 0).dispatch_wait_hours == 24
    assert state(6000, 1000, 5000).dispatch_wait_hours == 24
    assert state(6000, 100, 7100).dispatch_wait_hours == 24
    assert state(6000, 100, 11_900).dispatch_wait_hours == 48
    assert state(6000, 100, 11_900).ahead == 12_000
    assert state(6000, 5999, 0).full is False
    assert state(6000, 0, 6000).full is True
    # No capacity recorded: no wait, whatever is queued.
    assert state(0, 10**6, 10**6).dispatch_wait_hours == 0


def test_full_warehouse_adds_a_dispatch_wait_to_its_promise() -> None:
    stock = with_backlog(warehouses(stock={"WH-SOUTH": {"TEE": 10}}), WH_SOUTH=7100)
    decision = route(order("广东省", "广州市"), stock)
    (parcel,) = decision.shipments
    assert parcel.warehouse_id == "WH-SOUTH"
    assert parcel.dispatch_wait_hours == 24
    # The carrier's 2 hours from the moment the parcel leaves, a day from now.
    assert (parcel.carrier, parcel.promised_hours) == ("instant", 26)
    assert decision.promised_hours == 26
    text = trace_text(decision)
    assert "today 0 + 7,100 carried over of 6,000/day: +24 h dispatch wait" in text
    assert "26 h (24 h dispatch wait + 2 h carrier)" in text
    assert "WH-SOUTH: +24 h dispatch wait, 7,100 ahead of 6,000/day: in its promise" in text


def test_the_wait_is_scored_so_a_warehouse_that_ships_today_can_win() -> None:
    table = Table({("江苏省", "zto"): (800, 24), ("浙江省", "zto"): (800, 36)})
    near = WarehouseState("WH-NEAR", "江苏省", "南京市", 100, 100, {"TEE": 50})
    far = WarehouseState("WH-FAR", "浙江省", "杭州市", 100, 0, {"TEE": 50})
    # The near warehouse is a day behind: 24 + 24 = 48 h against 36 h from the far one.
    decision = decide(order(), [near, far], NO_RULES, [table])
    assert shipped(decision) == [("WH-FAR", "zto")]
    assert "WH-NEAR: +24 h dispatch wait, 100 ahead of 100/day: in its promise" in trace_text(
        decision
    )
    # With today's capacity left the near one is sooner and wins.
    fresh = decide(order(), [replace(near, routed_today=99), far], NO_RULES, [table])
    assert shipped(fresh) == [("WH-NEAR", "zto")]


def test_a_day_behind_still_wins_when_it_delivers_sooner_anyway() -> None:
    table = Table({("江苏省", "zto"): (800, 24), ("浙江省", "zto"): (800, 72)})
    near = WarehouseState("WH-NEAR", "江苏省", "南京市", 100, 150, {"TEE": 50})
    far = WarehouseState("WH-FAR", "浙江省", "杭州市", 100, 0, {"TEE": 50})
    decision = decide(order(), [near, far], NO_RULES, [table])
    assert shipped(decision) == [("WH-NEAR", "zto")]
    assert decision.shipments[0].promised_hours == 48
    assert "in its promise, and it still won" in trace_text(decision)


def test_sla_prefers_a_warehouse_that_ships_today() -> None:
    # By the carriers alone the near warehouse meets SLA 48 h cheaply; a day's wait breaks it.
    table = Table({("江苏省", "zto"): (500, 36), ("浙江省", "sf"): (1500, 40)})
    near = WarehouseState("WH-NEAR", "江苏省", "南京市", 100, 120, {"TEE": 50})
    far = WarehouseState("WH-FAR", "浙江省", "杭州市", 100, 0, {"TEE": 50})
    decision = decide(order(sla_hours=48), [near, far], NO_RULES, [table])
    assert shipped(decision) == [("WH-FAR", "sf")]
    assert "it meets SLA 48 h and the runner-up does not" in trace_text(decision)
    assert "WH-NEAR/zto" in trace_text(decision) and "misses SLA 48 h" in trace_text(decision)
    # Without the wait the near one meets it and is cheaper.
    today = decide(order(sla_hours=48), [replace(near, routed_today=0), far], NO_RULES, [table])
    assert shipped(today) == [("WH-NEAR", "zto")]


def test_warehouse_past_the_wait_limit_is_skipped_while_another_can_serve() -> None:
    # Two days behind (12,000 ahead of 6,000/day) is past the default 24 h limit: even the
    # cheapest, nearest parcel does not join that queue while another warehouse ships.
    stock = with_backlog(warehouses(routed={"WH-SOUTH": 4000}), WH_SOUTH=8000)
    decision = route(order("广东省", "广州市"), stock)
    assert decision.shipments[0].warehouse_id != "WH-SOUTH"
    assert decision.shipments[0].dispatch_wait_hours == 0
    assert (
        "WH-SOUTH: +48 h dispatch wait, 12,000 ahead of 6,000/day, past the 24 h limit: "
        "skipped while another can serve"
    ) in trace_text(decision)


def test_warehouse_past_the_wait_limit_is_used_when_it_is_the_only_one() -> None:
    stock = warehouses(stock={"WH-SOUTH": {"TEE": 10}}, routed={"WH-SOUTH": 12_100})
    decision = route(order("广东省", "广州市"), stock)
    assert shipped(decision) == [("WH-SOUTH", "instant")]
    assert decision.shipments[0].promised_hours == 48 + 2
    assert (
        "WH-SOUTH: +48 h dispatch wait, 12,100 ahead of 6,000/day, past the 24 h limit: used, "
        "no warehouse within the limit can serve"
    ) in trace_text(decision)


def test_split_within_the_wait_limit_beats_one_parcel_from_past_it() -> None:
    stock = warehouses(
        stock={
            "WH-SOUTH": {"TEE": 10, "MUG": 10},
            "WH-EAST": {"TEE": 10},
            "WH-CENTRAL": {"MUG": 10},
        },
        routed={"WH-SOUTH": 12_000},
    )
    decision = route(
        order("广东省", "广州市", RouteLine("TEE", 1, 250), RouteLine("MUG", 1, 450)), stock
    )
    assert sorted(s.warehouse_id for s in decision.shipments) == ["WH-CENTRAL", "WH-EAST"]


def test_one_parcel_a_day_late_beats_a_split_that_ships_today() -> None:
    # Within the limit the wait is only part of the promise: fewer parcels still come first.
    stock = warehouses(
        stock={
            "WH-SOUTH": {"TEE": 10, "MUG": 10},
            "WH-EAST": {"TEE": 10},
            "WH-CENTRAL": {"MUG": 10},
        },
        routed={"WH-SOUTH": 6000},
    )
    decision = route(
        order("广东省", "广州市", RouteLine("TEE", 1, 250), RouteLine("MUG", 1, 450)), stock
    )
    assert shipped(decision) == [("WH-SOUTH", "instant")]
    assert decision.shipments[0].dispatch_wait_hours == 24


def test_the_wait_limit_is_a_weight_and_a_rule_may_change_it_per_order() -> None:
    strict = parse_rules({"weights": {"max_dispatch_wait_hours": 0}, "rules": []})
    stock = warehouses(routed={"WH-SOUTH": 6000})
    # With no wait allowed a full warehouse ships only what nobody else can (the old rule).
    assert route(order("广东省", "广州市"), stock, strict).shipments[0].warehouse_id != "WH-SOUTH"
    presale = parse_rules(
        {
            "weights": {"max_dispatch_wait_hours": 0},
            "rules": [
                {
                    "name": "presale-waits",
                    "when": {"tags_any": ["presale"]},
                    "then": {"max_dispatch_wait_hours": 240},
                }
            ],
        }
    )
    tagged = order("广东省", "广州市", tags=frozenset({"presale"}))
    decision = route(tagged, warehouses(routed={"WH-SOUTH": 12_000}), presale)
    assert decision.shipments[0].warehouse_id == "WH-SOUTH"
    assert "presale-waits (tagged presale): max_dispatch_wait_hours 240" in trace_text(decision)


def test_warehouse_without_a_daily_capacity_is_never_full() -> None:
    assert not WarehouseState("WH-A", "江苏省", "南京市", 0, 10**6, {}).full
    assert not WarehouseState("WH-A", "江苏省", "南京市", 0, 10**6, {}, 10**6).full
    assert WarehouseState("WH-A", "江苏省", "南京市", 10, 10, {}).full
    assert WarehouseState("WH-A", "江苏省", "南京市", 10, 4, {}, 6).full


def test_order_splits_only_when_no_single_warehouse_can_serve() -> None:
    lines = (RouteLine("TEE", 2, 250), RouteLine("MUG", 1, 450))
    split_stock = warehouses(stock={"WH-SOUTH": {"TEE": 5}, "WH-CENTRAL": {"MUG": 5}})
    split = route(order("广东省", "深圳市", *lines), split_stock)
    assert sorted((s.warehouse_id, s.lines) for s in split.shipments) == [
        ("WH-CENTRAL", (("MUG", 1),)),
        ("WH-SOUTH", (("TEE", 2),)),
    ]
    assert "2 parcels" in trace_text(split)
    # A farther warehouse holding both ships one parcel rather than splitting.
    whole_stock = warehouses(
        stock={"WH-SOUTH": {"TEE": 5}, "WH-CENTRAL": {"MUG": 5}, "WH-NORTH": {"TEE": 5, "MUG": 5}}
    )
    assert shipped(route(order("广东省", "深圳市", *lines), whole_stock))[0][0] == "WH-NORTH"


def test_line_is_split_by_quantity_only_when_no_warehouse_holds_it_all() -> None:
    stock = warehouses(stock={"WH-SOUTH": {"TEE": 6}, "WH-CENTRAL": {"TEE": 6}})
    decision = route(order("广东省", "深圳市", RouteLine("TEE", 10, 250)), stock)
    by_warehouse = {s.warehouse_id: dict(s.lines)["TEE"] for s in decision.shipments}
    assert by_warehouse == {"WH-SOUTH": 6, "WH-CENTRAL": 4}


def test_two_lines_of_one_sku_ship_as_one_quantity() -> None:
    lines = (RouteLine("TEE", 2, 250), RouteLine("TEE", 3, 250))
    stock = warehouses(stock={"WH-EAST": {"TEE": 5}})
    decision = route(order("浙江省", "杭州市", *lines), stock)
    assert [s.lines for s in decision.shipments] == [(("TEE", 5),)]
    assert decision.shipments[0].weight_grams == 1250


# --------------------------------------------------------------------------- lanes


def test_open_lane_is_excluded_and_backup_used() -> None:
    before = route(order("广东省", "广州市"))
    wid, carrier = shipped(before)[0]
    after = route(order("广东省", "广州市"), lanes=gate({(wid, carrier, "广东"): "OPEN"}))
    assert shipped(after)[0] != (wid, carrier)
    assert f"lane {wid}/{carrier}/广东 OPEN: skipped" in trace_text(after)


def test_half_open_lane_admits_only_its_probes() -> None:
    half_open = {("WH-SOUTH", "instant", "广东"): "HALF_OPEN"}
    skipped = route(order("广东省", "广州市"), lanes=gate(half_open))
    assert shipped(skipped) != [("WH-SOUTH", "instant")]
    assert "lane WH-SOUTH/instant/广东 HALF_OPEN, not a probe: skipped" in trace_text(skipped)
    probed = route(order("广东省", "广州市"), lanes=gate(half_open, frozenset({"order-1"})))
    assert shipped(probed) == [("WH-SOUTH", "instant")]


def test_every_lane_open_is_no_route() -> None:
    def all_open(warehouse_id: str, carrier: str, province: str, order_id: str) -> LaneVerdict:
        return LaneVerdict(False, "OPEN")

    with pytest.raises(NoRoute, match="no carrier can take the order") as refused:
        route(order(), lanes=all_open)
    assert refused.value.field == ""
    assert not isinstance(refused.value, NoStock)


def test_lane_gate_is_asked_with_the_destination_short_name_and_order() -> None:
    asked: list[tuple[str, str, str, str]] = []

    def spy(warehouse_id: str, carrier: str, province: str, order_id: str) -> LaneVerdict:
        asked.append((warehouse_id, carrier, province, order_id))
        return LaneVerdict(True, "CLOSED")

    route(order("广西壮族自治区", "南宁市"), lanes=spy)
    assert asked
    assert {(p, o) for _, _, p, o in asked} == {("广西", "order-1")}


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("province", ["火星", "", "香港"])
def test_unknown_destination_is_rejected_naming_field(province: str) -> None:
    with pytest.raises(NoRoute) as refused:
        route(order(province, "某市"))
    assert refused.value.field == "destination_province"


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ((), "lines"),
        ((RouteLine("TEE", 1, 250), RouteLine("MUG", 0, 450)), "lines[1].quantity"),
        ((RouteLine("TEE", -2, 250),), "lines[0].quantity"),
        ((RouteLine("", 1, 250),), "lines[0].sku"),
        ((RouteLine("TEE", 1, -5),), "lines[0].weight_grams"),
    ],
)
def test_malformed_lines_are_rejected_naming_the_line(
    lines: tuple[RouteLine, ...], field: str
) -> None:
    request = RouteRequest("order-1", "浙江", "杭州", lines)
    with pytest.raises(NoRoute) as refused:
        route(request)
    assert refused.value.field == field


def test_not_enough_stock_anywhere_names_the_line() -> None:
    request = order("浙江省", "杭州市", RouteLine("TEE", 1, 250), RouteLine("MUG", 501, 450))
    with pytest.raises(NoStock) as refused:
        route(request)
    assert refused.value.field == "lines[1].quantity"
    assert "501 ordered, 500 available" in refused.value.reason


def test_bad_sla_is_rejected() -> None:
    with pytest.raises(NoRoute) as refused:
        route(order(sla_hours=0))
    assert refused.value.field == "sla_hours"


def test_warehouse_in_an_unknown_province_is_left_out() -> None:
    stock = [
        WarehouseState("WH-X", "Atlantis", "Poseidonia", 0, 0, {"TEE": 9}),
        *warehouses(only=["WH-EAST"]),
    ]
    decision = route(order(), stock)
    assert shipped(decision)[0][0] == "WH-EAST"
    assert "WH-X: province 'Atlantis' unknown or abroad, skipped" in trace_text(decision)


# --------------------------------------------------------------------------- the trace


def test_trace_names_fired_rules_and_winner() -> None:
    decision = route(order("广东省", "广州市"))
    steps = [t.step for t in decision.trace]
    assert steps[0] == "destination"
    assert decision.trace[0].detail == "广东省 广州市 (华南)"
    assert steps[-1] == "winner" or steps[-1] == "capacity"
    text = trace_text(decision)
    assert (
        "[rule] same-city-instant (same city, carriers instant): WH-SOUTH/instant bonus 1000 fen"
        in text
    )
    # Every warehouse-carrier pair that quoted is listed with its score.
    candidates = [t for t in decision.trace if t.step == "candidate"]
    assert len(candidates) == 5 * 7 + 1  # seven carriers everywhere, instant only in the city
    assert any(
        "WH-SOUTH/instant same_city 1600 fen 2 h score 640 (bonus 1000)" in t.detail
        for t in candidates
    )
    winner = next(t.detail for t in decision.trace if t.step == "winner")
    assert winner.startswith(
        "WH-SOUTH/instant: 1600 fen, 2 h, score 640 (balanced); over runner-up"
    )
    # Rules that held nothing do not appear.
    assert "remote-prefers-ems" not in text
    assert decision.rules_version == RULES.version


def test_quote_route_is_the_same_decision_marked_what_if() -> None:
    request = order("广东省", "广州市")
    real = route(request)
    what_if = quote_route(request, warehouses(), RULES, [CARDS])
    assert what_if.shipments == real.shipments
    assert what_if.trace[0].step == "what-if"
    assert what_if.trace[1:] == real.trace


def test_decision_is_deterministic() -> None:
    request = order("河南省", "郑州市", RouteLine("TEE", 3, 250), RouteLine("MUG", 2, 450))
    assert route(request) == route(request)


def test_first_provider_to_quote_a_carrier_is_trusted() -> None:
    live = Table({("江苏省", "zto"): (300, 24)})
    decision = decide(order(), one_warehouse(), NO_RULES, [live, CARDS])
    assert shipped(decision) == [("WH-A", "zto")]
    assert decision.shipments[0].cost_fen == 300


# --------------------------------------------------------------------------- properties

SKUS = ("TEE", "MUG", "CAP", "PB")


@st.composite
def stock_and_order(draw: st.DrawFn) -> tuple[list[WarehouseState], RouteRequest]:
    stock = [
        WarehouseState(
            wid,
            province,
            city,
            10,
            draw(st.sampled_from([0, 3, 10])),
            {sku: draw(st.integers(0, 6)) for sku in SKUS},
            draw(st.sampled_from([0, 0, 7, 15])),
        )
        for wid, province, city, _ in SITES
    ]
    skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=4, unique=True))
    lines = tuple(
        RouteLine(sku, draw(st.integers(1, 8)), draw(st.integers(0, 1500))) for sku in skus
    )
    province = draw(st.sampled_from(["广东省", "浙江", "北京", "新疆", "四川省", "黑龙江"]))
    request = RouteRequest(
        "order-p",
        province,
        draw(st.sampled_from(["广州市", "杭州市", "北京市", "乌鲁木齐市", "成都市", "某县"])),
        lines,
        draw(st.sampled_from([frozenset(), frozenset({"urgent"})])),
        "taobao",
        draw(st.integers(0, 100_000)),
        draw(st.sampled_from([None, 24, 72])),
    )
    return stock, request


@settings(max_examples=300, deadline=None)
@given(stock_and_order())
def test_plan_ships_exactly_the_order_within_stock(
    case: tuple[list[WarehouseState], RouteRequest],
) -> None:
    stock, request = case
    wanted = Counter({line.sku: line.quantity for line in request.lines})
    try:
        decision = route(request, stock)
    except NoRoute as refused:
        # The only reason to refuse a well-formed order here is stock it cannot have.
        total = Counter[str]()
        for w in stock:
            total.update(w.atp)
        assert any(total[sku] < qty for sku, qty in wanted.items()), refused.reason
        return
    shipped_qty: Counter[str] = Counter()
    by_warehouse: dict[str, Counter[str]] = {}
    for s in decision.shipments:
        for sku, qty in s.lines:
            assert qty > 0
            shipped_qty[sku] += qty
            by_warehouse.setdefault(s.warehouse_id, Counter())[sku] += qty
    assert shipped_qty == wanted
    atp = {w.warehouse_id: w.atp for w in stock}
    for wid, taken in by_warehouse.items():
        assert all(qty <= atp[wid].get(sku, 0) for sku, qty in taken.items())
    # One parcel whenever a warehouse within the dispatch-wait limit holds everything; when
    # only ones past it do, either one parcel from one of those or a split that spares them.
    limit = RULES.weights.max_dispatch_wait_hours
    past = {w.warehouse_id for w in stock if w.dispatch_wait_hours > limit}
    whole = [w for w in stock if all(w.atp.get(sku, 0) >= q for sku, q in wanted.items())]
    if any(w.warehouse_id not in past for w in whole):
        assert len(decision.shipments) == 1
        assert decision.shipments[0].warehouse_id not in past
    elif whole:
        assert len(decision.shipments) == 1 or not past & set(by_warehouse)
    # Every parcel's promise includes its warehouse's wait.
    waits = {w.warehouse_id: w.dispatch_wait_hours for w in stock}
    for s in decision.shipments:
        assert s.dispatch_wait_hours == waits[s.warehouse_id]
        assert s.promised_hours >= s.dispatch_wait_hours
