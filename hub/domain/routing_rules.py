"""Routing rules as data: what the engine prefers, avoids and caps, and why.

A rule set is a document (TOML on disk, JSON over the API): a ``version``, the default
``weights`` of the objective, and an ordered list of rules. Each rule has a ``when`` (every
condition must hold) and a ``then`` (what to do with the candidates it covers). The shipped
rules are ``routing_rules.toml``; :func:`parse_rules` validates a document strictly, because a
typo that silently disables a rule would route orders wrongly for days before anyone
noticed. Every problem is a :class:`RuleError` naming the path of the field at fault.

Conditions come in two kinds. *Order* conditions (destination, SLA, tags, amount, channel)
hold or not for the whole order. *Candidate* conditions (``same_city``, the parcel's weight,
``carriers``, ``warehouses``) are checked for each warehouse-carrier pair the engine weighs, so
a rule can cover some candidates of an order and not others. Actions that change how the
whole order is judged (``objective``, ``fen_per_hour``, ``max_dispatch_wait_hours``) may only
use order conditions.
"""

from __future__ import annotations

import importlib.resources
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hub.domain.geo import Region, province_of
from hub.domain.quotes import CARRIERS


class RuleError(ValueError):
    """A rule document that does not validate; ``field`` is the path of the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (self.__class__, (self.field, self.reason))


class Objective(StrEnum):
    """How candidates are ranked: by one number, or by speed or cost first."""

    #: ``cost + fen_per_hour * promised hours`` (less rule bonuses), lowest wins.
    BALANCED = "balanced"
    #: Fewest promised hours first, the balanced score among equals.
    FASTEST = "fastest"
    #: Lowest cost (less rule bonuses) first, fewer hours among equals.
    CHEAPEST = "cheapest"


@dataclass(frozen=True, slots=True)
class Weights:
    """The default objective: what an hour is worth, what another parcel costs, how long a
    warehouse may keep an order waiting."""

    #: How many fen one hour less of promised delivery time is worth.
    fen_per_hour: int = 20
    #: Added to a plan's score for each parcel beyond the first.
    split_penalty_fen: int = 1000
    objective: Objective = Objective.BALANCED
    #: A warehouse whose dispatch wait (its backlog beyond today's capacity, in whole days of
    #: 24 h) is longer than this ships the order only when no warehouse within it can; within
    #: it, the wait is simply part of the promise and the score weighs it.
    max_dispatch_wait_hours: int = 24


@dataclass(frozen=True, slots=True)
class When:
    """Conditions of a rule; all that are set must hold, none set means always."""

    destination_provinces: tuple[str, ...] = ()
    destination_regions: tuple[str, ...] = ()
    remote: bool | None = None
    same_city: bool | None = None
    weight_grams_min: int | None = None
    weight_grams_max: int | None = None
    sla_hours_max: int | None = None
    tags_any: tuple[str, ...] = ()
    amount_fen_min: int | None = None
    amount_fen_max: int | None = None
    channels: tuple[str, ...] = ()
    carriers: tuple[str, ...] = ()
    warehouses: tuple[str, ...] = ()

    @property
    def per_candidate(self) -> bool:
        """Whether the rule must be checked for each warehouse-carrier pair, not once."""
        return bool(
            self.same_city is not None
            or self.weight_grams_min is not None
            or self.weight_grams_max is not None
            or self.carriers
            or self.warehouses
        )


@dataclass(frozen=True, slots=True)
class Then:
    """What a rule does to the candidates it covers."""

    #: Candidates with these carriers have ``bonus_fen`` taken off their cost when scored.
    prefer: tuple[str, ...] = ()
    bonus_fen: int = 0
    #: Excluded, unless nothing else is left for the parcel.
    avoid: tuple[str, ...] = ()
    #: Only these carriers; when none of them can serve, the rule is skipped.
    only: tuple[str, ...] = ()
    #: Used only when no other carrier serves the parcel.
    fallback: tuple[str, ...] = ()
    #: Candidates costing more are excluded, unless none costs less.
    max_cost_fen: int | None = None
    objective: Objective | None = None
    fen_per_hour: int | None = None
    #: The order's own dispatch-wait limit (see :attr:`Weights.max_dispatch_wait_hours`).
    max_dispatch_wait_hours: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One named rule: when it holds, what it does."""

    name: str
    when: When
    then: Then
    description: str = ""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A versioned, validated set of routing rules, applied in order."""

    version: int
    weights: Weights
    rules: tuple[Rule, ...]

    def to_document(self) -> dict[str, Any]:
        """The rule set as a plain document (JSON- and TOML-shaped) that parses back equal."""
        return {
            "version": self.version,
            "weights": {
                "fen_per_hour": self.weights.fen_per_hour,
                "split_penalty_fen": self.weights.split_penalty_fen,
                "objective": self.weights.objective.value,
                "max_dispatch_wait_hours": self.weights.max_dispatch_wait_hours,
            },
            "rules": [_rule_document(rule) for rule in self.rules],
        }


def _rule_document(rule: Rule) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": rule.name}
    if rule.description:
        doc["description"] = rule.description
    doc["when"] = _set_fields(rule.when, _WHEN_FIELDS)
    doc["then"] = _set_fields(rule.then, _THEN_FIELDS)
    return doc


def _set_fields(part: When | Then, fields: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        if name == "bonus_fen":
            continue
        value = getattr(part, name)
        if value is None or value == ():
            continue
        if isinstance(value, tuple):
            out[name] = list(value)
        elif isinstance(value, Objective):
            out[name] = value.value
        else:
            out[name] = value
    if isinstance(part, Then) and part.prefer:
        out["bonus_fen"] = part.bonus_fen
    return out


# --------------------------------------------------------------------------- parsing

#: Field → kind, for every key a ``when`` may hold.
_WHEN_FIELDS: dict[str, str] = {
    "destination_provinces": "provinces",
    "destination_regions": "regions",
    "remote": "bool",
    "same_city": "bool",
    "weight_grams_min": "count",
    "weight_grams_max": "count",
    "sla_hours_max": "count",
    "tags_any": "names",
    "amount_fen_min": "count",
    "amount_fen_max": "count",
    "channels": "names",
    "carriers": "carriers",
    "warehouses": "ids",
}
_THEN_FIELDS: dict[str, str] = {
    "prefer": "carriers",
    "bonus_fen": "count",
    "avoid": "carriers",
    "only": "carriers",
    "fallback": "carriers",
    "max_cost_fen": "count",
    "objective": "objective",
    "fen_per_hour": "count",
    "max_dispatch_wait_hours": "count",
}
_WEIGHT_FIELDS = ("fen_per_hour", "split_penalty_fen", "objective", "max_dispatch_wait_hours")
_RULE_FIELDS = ("name", "description", "when", "then")
_TOP_FIELDS = ("version", "weights", "rules")
#: Actions that change how the whole order is judged, not single candidates.
_ORDER_ACTIONS = ("objective", "fen_per_hour", "max_dispatch_wait_hours")
#: Region names a rule may use: the carriers' English key or its Chinese name (华东).
_REGIONS: dict[str, Region] = {
    **{r.value: r for r in Region},
    **{r.chinese: r for r in Region},
}


def parse_rules(doc: Mapping[str, Any] | str) -> RuleSet:
    """A validated rule set from a document: TOML or JSON text, or the parsed mapping."""
    if isinstance(doc, str):
        doc = _load_text(doc)
    if not isinstance(doc, Mapping):
        raise RuleError("", f"a rule set is a table of {', '.join(_TOP_FIELDS)}")
    _no_unknown_keys(doc, _TOP_FIELDS, "")
    version = _count(doc.get("version", 0), "version")
    weights = _weights(doc.get("weights", {}))
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, Sequence) or isinstance(raw_rules, str):
        raise RuleError("rules", "must be a list of rules")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_rules):
        rule = _rule(raw, f"rules[{i}]")
        if rule.name in seen:
            raise RuleError(
                f"rules[{i}].name",
                f"duplicate rule name {rule.name!r} (also rules[{seen[rule.name]}])",
            )
        seen[rule.name] = i
        rules.append(rule)
    return RuleSet(version, weights, tuple(rules))


def _load_text(text: str) -> Mapping[str, Any]:
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as bad:
            raise RuleError("", f"not valid JSON: {bad}") from None
        if not isinstance(loaded, Mapping):
            raise RuleError("", "a rule set is a JSON object")
        return loaded
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise RuleError("", f"not valid TOML: {bad}") from None


def _no_unknown_keys(table: Mapping[str, Any], known: Sequence[str], path: str) -> None:
    for key in table:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            raise RuleError(where, f"unknown key (known: {', '.join(known)})")


def _table(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RuleError(path, "must be a table")
    return value


def _weights(value: object) -> Weights:
    table = _table(value, "weights")
    _no_unknown_keys(table, _WEIGHT_FIELDS, "weights")
    default = Weights()
    return Weights(
        fen_per_hour=_count(
            table.get("fen_per_hour", default.fen_per_hour), "weights.fen_per_hour"
        ),
        split_penalty_fen=_count(
            table.get("split_penalty_fen", default.split_penalty_fen), "weights.split_penalty_fen"
        ),
        objective=_objective(table.get("objective", default.objective.value), "weights.objective"),
        max_dispatch_wait_hours=_count(
            table.get("max_dispatch_wait_hours", default.max_dispatch_wait_hours),
            "weights.max_dispatch_wait_hours",
        ),
    )


def _rule(value: object, path: str) -> Rule:
    table = _table(value, path)
    _no_unknown_keys(table, _RULE_FIELDS, path)
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleError(f"{path}.name", "every rule needs a name")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise RuleError(f"{path}.description", "must be text")
    when = _when(table.get("when", {}), f"{path}.when")
    then = _then(table.get("then"), f"{path}.then")
    if when.per_candidate:
        for action in _ORDER_ACTIONS:
            if getattr(then, action) is not None:
                raise RuleError(
                    f"{path}.then.{action}",
                    "applies to the whole order, so `when` may not use same_city, "
                    "weight_grams_min/max, carriers or warehouses (they differ per candidate)",
                )
    return Rule(name.strip(), when, then, description)


def _when(value: object, path: str) -> When:
    table = _table(value, path)
    _no_unknown_keys(table, tuple(_WHEN_FIELDS), path)
    values = {
        key: _field(table[key], kind, f"{path}.{key}")
        for key, kind in _WHEN_FIELDS.items()
        if key in table
    }
    when = When(**values)
    for low, high in (
        ("weight_grams_min", "weight_grams_max"),
        ("amount_fen_min", "amount_fen_max"),
    ):
        lo, hi = getattr(when, low), getattr(when, high)
        if lo is not None and hi is not None and lo > hi:
            raise RuleError(f"{path}.{high}", f"is below {low} ({hi} < {lo}): nothing could match")
    return when


def _then(value: object, path: str) -> Then:
    if value is None:
        raise RuleError(path, "every rule needs a `then` with at least one action")
    table = _table(value, path)
    _no_unknown_keys(table, tuple(_THEN_FIELDS), path)
    if not table:
        raise RuleError(path, "no action: give at least one of " + ", ".join(_THEN_FIELDS))
    values = {
        key: _field(table[key], kind, f"{path}.{key}")
        for key, kind in _THEN_FIELDS.items()
        if key in table
    }
    then = Then(**values)
    if then.prefer and "bonus_fen" not in table:
        raise RuleError(f"{path}.bonus_fen", "prefer needs the bonus (in fen) it is worth")
    if "bonus_fen" in table and not then.prefer:
        raise RuleError(f"{path}.bonus_fen", "a bonus without `prefer` rewards nothing")
    return then


def _field(value: object, kind: str, path: str) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise RuleError(path, "must be true or false")
        return value
    if kind == "count":
        return _count(value, path)
    if kind == "objective":
        return _objective(value, path)
    items = _names(value, path)
    if kind == "carriers":
        lowered = tuple(name.lower() for name in items)
        for i, carrier in enumerate(lowered):
            if carrier not in CARRIERS:
                raise RuleError(
                    f"{path}[{i}]", f"unknown carrier {carrier!r} (known: {', '.join(CARRIERS)})"
                )
        return lowered
    if kind == "provinces":
        shorts: list[str] = []
        for i, name in enumerate(items):
            province = province_of(name)
            if province is None:
                raise RuleError(f"{path}[{i}]", f"unknown province {name!r}")
            shorts.append(province.short)
        return tuple(shorts)
    if kind == "regions":
        regions: list[str] = []
        for i, name in enumerate(items):
            region = _REGIONS.get(name.lower())
            if region is None:
                known = ", ".join(f"{r.value} ({r.chinese})" for r in Region)
                raise RuleError(f"{path}[{i}]", f"unknown region {name!r} (known: {known})")
            regions.append(region.value)
        return tuple(regions)
    if kind == "names":
        return tuple(name.lower() for name in items)
    return items


def _names(value: object, path: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise RuleError(path, "must be a list of names")
    if not value:
        raise RuleError(path, "an empty list matches nothing; leave the key out instead")
    names: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise RuleError(f"{path}[{i}]", "must be a non-empty name")
        names.append(item.strip())
    return tuple(names)


def _count(value: object, path: str) -> int:
    # bool is an int in Python; `true` where a number belongs is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(path, "must be a whole number")
    if value < 0:
        raise RuleError(path, "must not be negative")
    return value


def _objective(value: object, path: str) -> Objective:
    if isinstance(value, str) and value in _OBJECTIVES:
        return Objective(value)
    known = ", ".join(o.value for o in Objective)
    raise RuleError(path, f"unknown objective {value!r} (known: {known})")


_OBJECTIVES = frozenset(o.value for o in Objective)


def default_rules() -> RuleSet:
    """The rules shipped with the hub (``hub/domain/routing_rules.toml``)."""
    return _DEFAULT


_DEFAULT = parse_rules(
    (importlib.resources.files("hub.domain") / "routing_rules.toml").read_text(encoding="utf-8")
)
