"""Routing rules as data: the shipped rules, strict validation, and documents that round-trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.domain.routing_rules import (
    Objective,
    RuleError,
    default_rules,
    parse_rules,
)

#: A rule set that uses every condition and action the format has.
EVERYTHING: dict[str, Any] = {
    "version": 7,
    "weights": {
        "fen_per_hour": 35,
        "split_penalty_fen": 1500,
        "objective": "cheapest",
        "max_dispatch_wait_hours": 48,
    },
    "rules": [
        {
            "name": "promo-west",
            "description": "a promotion to the west ships the cheap way",
            "when": {
                "destination_provinces": ["四川", "重庆"],
                "destination_regions": ["southwest"],
                "remote": False,
                "sla_hours_max": 96,
                "tags_any": ["promo"],
                "amount_fen_min": 100,
                "amount_fen_max": 50_000,
                "channels": ["pdd", "douyin"],
            },
            "then": {"objective": "cheapest", "fen_per_hour": 10, "max_dispatch_wait_hours": 72},
        },
        {
            "name": "light-east",
            "when": {
                "same_city": False,
                "weight_grams_min": 0,
                "weight_grams_max": 3000,
                "carriers": ["zto", "yto", "ems"],
                "warehouses": ["WH-EAST"],
            },
            "then": {
                "prefer": ["zto"],
                "bonus_fen": 200,
                "avoid": ["yto"],
                "only": ["zto", "ems"],
                "fallback": ["ems"],
                "max_cost_fen": 3000,
            },
        },
    ],
}


def rules_with(rule: dict[str, Any]) -> dict[str, Any]:
    return {"rules": [rule]}


def field_of(doc: dict[str, Any] | str) -> str:
    with pytest.raises(RuleError) as refused:
        parse_rules(doc)
    return refused.value.field


def test_default_rules_keep_the_product_promises() -> None:
    rules = default_rules()
    by_name = {rule.name: rule for rule in rules.rules}
    assert by_name["same-city-instant"].when.same_city is True
    assert by_name["same-city-instant"].then.prefer == ("instant",)
    # Instant when reasonably priced, not at any price.
    assert by_name["same-city-instant"].then.max_cost_fen == 2000
    assert by_name["same-city-instant"].when.carriers == ("instant",)
    # A warehouse a day behind still competes; two days behind breaks the usual 48 h ship-by.
    assert rules.weights.max_dispatch_wait_hours == 24
    assert by_name["remote-prefers-ems"].when.remote is True
    assert by_name["remote-prefers-ems"].then.prefer == ("ems",)
    assert by_name["heavy-avoids-express"].then.avoid == ("sf", "jd")
    assert by_name["heavy-avoids-express"].when.weight_grams_min == 20_000
    assert by_name["urgent-fastest"].then.objective is Objective.FASTEST
    assert by_name["cost-ceiling"].then.max_cost_fen == 6000
    # The rush rule must come before the low-value one: the earlier objective wins.
    names = [rule.name for rule in rules.rules]
    assert names.index("urgent-fastest") < names.index("low-value-cheapest")


def test_rules_round_trip() -> None:
    for rules in (default_rules(), parse_rules(EVERYTHING)):
        document = rules.to_document()
        assert parse_rules(document) == rules
        assert parse_rules(json.dumps(document, ensure_ascii=False)) == rules


def test_everything_parses_to_what_the_document_says() -> None:
    rules = parse_rules(EVERYTHING)
    assert rules.version == 7
    assert rules.weights.fen_per_hour == 35
    assert rules.weights.objective is Objective.CHEAPEST
    assert rules.weights.max_dispatch_wait_hours == 48
    promo, light = rules.rules
    assert promo.then.max_dispatch_wait_hours == 72
    assert promo.when.destination_provinces == ("四川", "重庆")
    assert promo.then.objective is Objective.CHEAPEST
    assert light.then.only == ("zto", "ems")
    assert light.then.bonus_fen == 200


def test_toml_text_parses_like_its_document() -> None:
    text = """
version = 3
[weights]
fen_per_hour = 25

[[rules]]
name = "same-city"
when.same_city = true
then.prefer = ["instant"]
then.bonus_fen = 900
"""
    rules = parse_rules(text)
    assert rules.version == 3
    assert rules.weights.fen_per_hour == 25
    assert rules.weights.split_penalty_fen == 1000
    assert rules.weights.max_dispatch_wait_hours == 24
    assert rules.rules[0].then.bonus_fen == 900


def test_a_document_without_version_is_version_zero() -> None:
    assert parse_rules({"rules": []}).version == 0


def test_province_names_are_normalised() -> None:
    rules = parse_rules(
        rules_with(
            {
                "name": "south",
                "when": {"destination_provinces": ["广东省", "Guangxi", "海南"]},
                "then": {"prefer": ["sf"], "bonus_fen": 100},
            }
        )
    )
    assert rules.rules[0].when.destination_provinces == ("广东", "广西", "海南")


def test_regions_may_be_named_in_chinese() -> None:
    rules = parse_rules(
        rules_with(
            {
                "name": "east",
                "when": {"destination_regions": ["华东", "north"]},
                "then": {"avoid": ["ems"]},
            }
        )
    )
    assert rules.rules[0].when.destination_regions == ("east", "north")


def test_carrier_names_are_case_insensitive() -> None:
    rules = parse_rules(rules_with({"name": "x", "then": {"avoid": ["SF", "Jd"]}}))
    assert rules.rules[0].then.avoid == ("sf", "jd")


def test_rule_typo_is_rejected_naming_the_path() -> None:
    doc = {
        "rules": [
            {"name": "urgent", "when": {"tags_any": ["urgent"]}, "then": {"objective": "fastest"}},
            {"name": "local", "when": {"same_ctiy": True}, "then": {"prefer": ["instant"]}},
        ]
    }
    with pytest.raises(RuleError) as refused:
        parse_rules(doc)
    assert refused.value.field == "rules[1].when.same_ctiy"
    assert "same_city" in str(refused.value)  # the message lists what was meant


def test_misspelt_section_is_rejected() -> None:
    # [[rule]] for [[rules]] would otherwise parse as an empty, harmless-looking rule set.
    assert field_of('[[rule]]\nname = "x"\nthen.avoid = ["sf"]\n') == "rule"


def test_unknown_carrier_is_rejected_naming_its_place() -> None:
    doc = rules_with({"name": "x", "then": {"prefer": ["instant", "dhl"], "bonus_fen": 100}})
    with pytest.raises(RuleError) as refused:
        parse_rules(doc)
    assert refused.value.field == "rules[0].then.prefer[1]"
    assert "dhl" in str(refused.value)


def test_unknown_carrier_in_a_condition_is_rejected() -> None:
    doc = rules_with({"name": "x", "when": {"carriers": ["ups"]}, "then": {"avoid": ["sf"]}})
    assert field_of(doc) == "rules[0].when.carriers[0]"


def test_unknown_province_is_rejected_naming_its_place() -> None:
    doc = rules_with(
        {
            "name": "x",
            "when": {"destination_provinces": ["广东", "火星"]},
            "then": {"avoid": ["sf"]},
        }
    )
    with pytest.raises(RuleError) as refused:
        parse_rules(doc)
    assert refused.value.field == "rules[0].when.destination_provinces[1]"
    assert "火星" in refused.value.reason


def test_unknown_region_is_rejected() -> None:
    doc = rules_with({"name": "x", "when": {"destination_regions": ["mars"]}, "then": {}})
    assert field_of(doc) == "rules[0].when.destination_regions[0]"


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"when": {}, "then": {"avoid": ["sf"]}}, "rules[0].name"),
        ({"name": "x", "when": {}}, "rules[0].then"),
        ({"name": "x", "then": {}}, "rules[0].then"),
        ({"name": "x", "then": {"prefer": ["sf"]}}, "rules[0].then.bonus_fen"),
        ({"name": "x", "then": {"bonus_fen": 100}}, "rules[0].then.bonus_fen"),
        ({"name": "x", "then": {"objective": "fast"}}, "rules[0].then.objective"),
        ({"name": "x", "then": {"max_cost_fen": -1}}, "rules[0].then.max_cost_fen"),
        ({"name": "x", "then": {"max_cost_fen": "60"}}, "rules[0].then.max_cost_fen"),
        ({"name": "x", "then": {"max_cost_fen": True}}, "rules[0].then.max_cost_fen"),
        ({"name": "x", "then": {"avoid": "sf"}}, "rules[0].then.avoid"),
        ({"name": "x", "then": {"avoid": []}}, "rules[0].then.avoid"),
        (
            {"name": "x", "when": {"remote": "yes"}, "then": {"avoid": ["sf"]}},
            "rules[0].when.remote",
        ),
        (
            {"name": "x", "when": {"tags_any": ["urgent", ""]}, "then": {"avoid": ["sf"]}},
            "rules[0].when.tags_any[1]",
        ),
        (
            {
                "name": "x",
                "when": {"weight_grams_min": 5000, "weight_grams_max": 1000},
                "then": {"avoid": ["sf"]},
            },
            "rules[0].when.weight_grams_max",
        ),
        (
            {"name": "x", "when": {"same_city": True}, "then": {"objective": "fastest"}},
            "rules[0].then.objective",
        ),
        (
            {"name": "x", "when": {"carriers": ["sf"]}, "then": {"fen_per_hour": 50}},
            "rules[0].then.fen_per_hour",
        ),
        (
            {"name": "x", "when": {"warehouses": ["W"]}, "then": {"max_dispatch_wait_hours": 0}},
            "rules[0].then.max_dispatch_wait_hours",
        ),
        (
            {"name": "x", "then": {"max_dispatch_wait_hours": -24}},
            "rules[0].then.max_dispatch_wait_hours",
        ),
        ({"name": "x", "then": {"avoid": ["sf"]}, "priority": 1}, "rules[0].priority"),
    ],
)
def test_invalid_rule_is_rejected_naming_the_field(rule: dict[str, Any], field: str) -> None:
    assert field_of(rules_with(rule)) == field


def test_duplicate_rule_names_are_rejected() -> None:
    doc = {
        "rules": [
            {"name": "ceiling", "then": {"max_cost_fen": 6000}},
            {"name": "ceiling", "then": {"max_cost_fen": 5000}},
        ]
    }
    with pytest.raises(RuleError) as refused:
        parse_rules(doc)
    assert refused.value.field == "rules[1].name"
    assert "rules[0]" in refused.value.reason


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"weights": {"fen_per_hour": True}}, "weights.fen_per_hour"),
        ({"weights": {"fen_per_hour": 1.5}}, "weights.fen_per_hour"),
        ({"weights": {"fen_per_houre": 20}}, "weights.fen_per_houre"),
        ({"weights": {"objective": "quickest"}}, "weights.objective"),
        ({"weights": {"max_dispatch_wait_hours": 1.5}}, "weights.max_dispatch_wait_hours"),
        ({"version": -1}, "version"),
        ({"rules": {"name": "x"}}, "rules"),
        ({"rules": ["x"]}, "rules[0]"),
    ],
)
def test_invalid_rule_set_is_rejected_naming_the_field(doc: dict[str, Any], field: str) -> None:
    assert field_of(doc) == field


def test_text_that_is_not_toml_or_json_is_rejected() -> None:
    with pytest.raises(RuleError, match="TOML"):
        parse_rules("[[rules]\nname =")
    with pytest.raises(RuleError, match="JSON"):
        parse_rules('{"rules": [}')
