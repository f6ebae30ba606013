"""The default quote provider: published rate cards, priced by zone and billed weight.

Pure rules over a data file (``rate_cards.toml``). A card says, per carrier and zone, the
price of the first weight, the price of each started kilogram after it, and the promised
hours; the parcel is billed on the greater of its actual and volumetric weight. A card is
checked strictly when loaded, and every mistake names the field that holds it, so a merchant
who edits prices learns at start-up which line is wrong rather than at the first order.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from hub.domain.geo import zone_between
from hub.domain.quotes import CARRIERS, Parcel, Quote, Zone

PROVIDER_NAME = "rate_card"
_KNOWN_CARRIERS = frozenset(CARRIERS)


class ServiceLevel(StrEnum):
    """The kind of service a carrier's card sells."""

    EXPRESS = "express"
    STANDARD = "standard"
    POSTAL = "postal"
    SAME_DAY = "same_day"


class RateCardError(ValueError):
    """A rate card that cannot be used; ``field`` is the dotted path, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ZoneRate:
    """What one carrier charges and promises in one zone."""

    first_fen: int
    #: Charged for every started kilogram beyond the first weight.
    additional_kg_fen: int
    hours: int


@dataclass(frozen=True, slots=True)
class CarrierCard:
    """One carrier's card: its service, weight rules and the zones it serves.

    A parcel pays a zone's ``first_fen`` for its first ``first_kg`` kilograms of billed
    weight and ``additional_kg_fen`` for every started kilogram after them.
    """

    carrier: str
    name: str
    service: ServiceLevel
    #: Kilograms the first-weight price covers (1 for parcels, more for same-city riders).
    first_kg: int
    #: Cubic centimetres per billed kilogram; 0 when the carrier bills by weight only.
    volumetric_divisor: int
    #: The heaviest parcel (actual weight) the service accepts.
    max_kg: int
    zones: Mapping[Zone, ZoneRate]


# One carrier flattened for the hot path: carrier, divisor, max grams, first kg, and per zone
# (first fen, additional kg fen, hours). Tuples and a plain dict beat attribute lookups on
# frozen dataclasses when the engine asks for forty offers per order.
_Row = tuple[str, int, int, int, dict[Zone, tuple[int, int, int]]]


class RateCardProvider:
    """Quotes from rate cards: deterministic, no I/O, fast enough to ask per order."""

    name = PROVIDER_NAME

    def __init__(self, cards: Sequence[CarrierCard]) -> None:
        self._cards = {card.carrier: card for card in cards}
        if len(self._cards) != len(cards):
            raise ValueError("a carrier appears twice among the cards")
        self._rows: tuple[_Row, ...] = tuple(
            (
                card.carrier,
                card.volumetric_divisor,
                card.max_kg * 1000,
                card.first_kg,
                {z: (r.first_fen, r.additional_kg_fen, r.hours) for z, r in card.zones.items()},
            )
            for card in cards
        )

    @property
    def carriers(self) -> tuple[str, ...]:
        """The carriers this card prices, in card order."""
        return tuple(self._cards)

    def card(self, carrier: str) -> CarrierCard | None:
        """One carrier's card; None when this card does not price the carrier."""
        return self._cards.get(carrier)

    def quote(self, parcel: Parcel, carriers: Sequence[str] = ()) -> list[Quote]:
        """Offers for the parcel from the named carriers (every carrier on the card when empty).

        A carrier over its weight limit, without service in the parcel's zone, or not on
        this card is left out. ValueError for a carrier OrderHub does not know, a negative
        weight or volume, or a province outside mainland China or unknown.
        """
        wanted = _wanted(carriers) if carriers else None
        weight = parcel.weight_grams
        volume = parcel.volume_cm3
        if weight < 0 or volume < 0:
            raise ValueError(f"parcel weight and volume must not be negative: {parcel}")
        zone = zone_between(
            parcel.origin_province,
            parcel.origin_city,
            parcel.destination_province,
            parcel.destination_city,
        )
        offers: list[Quote] = []
        for carrier, divisor, max_grams, first_kg, rates in self._rows:
            if wanted is not None and carrier not in wanted:
                continue
            rate = rates.get(zone)
            if rate is None or weight > max_grams:
                continue
            billed = weight
            if divisor and volume:
                volumetric = -(-volume * 1000 // divisor)
                if volumetric > billed:
                    billed = volumetric
            extra_kg = -(-billed // 1000) - first_kg
            first_fen, additional_kg_fen, hours = rate
            cost = first_fen + extra_kg * additional_kg_fen if extra_kg > 0 else first_fen
            offers.append(Quote(carrier, cost, hours, zone, billed, PROVIDER_NAME))
        return offers


def _wanted(carriers: Sequence[str]) -> frozenset[str]:
    # A lone string is a carrier name, not a sequence of one-letter carriers.
    wanted = frozenset((carriers,) if isinstance(carriers, str) else carriers)
    unknown = wanted - _KNOWN_CARRIERS
    if unknown:
        raise ValueError(f"unknown carrier(s) {sorted(unknown)}; known: {', '.join(CARRIERS)}")
    return wanted


def load_rate_cards(text: str | None = None) -> RateCardProvider:
    """A provider from rate-card TOML text (the packaged ``rate_cards.toml`` when None)."""
    if text is None:
        text = (importlib.resources.files("hub.domain") / "rate_cards.toml").read_text(
            encoding="utf-8"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RateCardError("", f"not valid TOML: {err}") from err
    return RateCardProvider(parse_rate_cards(data))


# --------------------------------------------------------------------------- validation

_TOP_LEVEL = frozenset({"carriers", "sources"})
_CARRIER_FIELDS = frozenset(
    {"name", "service", "first_kg", "volumetric_divisor", "max_kg", "zones"}
)
_ZONE_FIELDS = ("first_fen", "additional_kg_fen", "hours")
_SERVICES = tuple(s.value for s in ServiceLevel)
_ZONES = tuple(z.value for z in Zone)
# The contract sells instant delivery as same-city only; a wider card is a mistake.
_INSTANT_ZONES = frozenset({Zone.SAME_CITY})


def parse_rate_cards(data: Mapping[str, Any]) -> tuple[CarrierCard, ...]:
    """Cards from parsed TOML, checked; RateCardError names the first wrong field."""
    for key in data:
        if key not in _TOP_LEVEL:
            raise RateCardError(key, f"unknown section; expected one of {sorted(_TOP_LEVEL)}")
    sources = data.get("sources", {})
    if not isinstance(sources, Mapping):
        raise RateCardError("sources", "must be a table of text")
    for key, value in sources.items():
        if not isinstance(value, str):
            raise RateCardError(f"sources.{key}", "must be text")
    carriers = _table(data, "carriers", "carriers")
    if not carriers:
        raise RateCardError("carriers", "no carriers on the card")
    return tuple(_carrier(carrier, body) for carrier, body in carriers.items())


def _carrier(carrier: str, body: Any) -> CarrierCard:
    path = f"carriers.{carrier}"
    if carrier not in _KNOWN_CARRIERS:
        raise RateCardError(path, f"unknown carrier; known: {', '.join(CARRIERS)}")
    if not isinstance(body, Mapping):
        raise RateCardError(path, "must be a table")
    for key in body:
        if key not in _CARRIER_FIELDS:
            raise RateCardError(f"{path}.{key}", "unknown field")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RateCardError(f"{path}.name", "missing" if name is None else "must be text")
    service_text = body.get("service")
    if service_text not in _SERVICES:
        raise RateCardError(
            f"{path}.service",
            "missing"
            if service_text is None
            else f"unknown service {service_text!r}; expected one of {', '.join(_SERVICES)}",
        )
    service = ServiceLevel(service_text)
    first_kg = _whole(body, "first_kg", path, minimum=1)
    divisor = _whole(body, "volumetric_divisor", path, minimum=0)
    max_kg = _whole(body, "max_kg", path, minimum=1)
    if max_kg < first_kg:
        raise RateCardError(f"{path}.max_kg", f"{max_kg} is below first_kg ({first_kg})")
    zones_body = _table(body, "zones", f"{path}.zones")
    if not zones_body:
        raise RateCardError(f"{path}.zones", "serves no zone")
    zones: dict[Zone, ZoneRate] = {}
    for zone_name, rate_body in zones_body.items():
        zone_path = f"{path}.zones.{zone_name}"
        if zone_name not in _ZONES:
            raise RateCardError(zone_path, f"unknown zone; expected one of {', '.join(_ZONES)}")
        zone = Zone(zone_name)
        if carrier == "instant" and zone not in _INSTANT_ZONES:
            raise RateCardError(zone_path, "instant delivery is same-city only")
        zones[zone] = _zone_rate(rate_body, zone_path)
    # Card order, not file order, so quotes come back in the same order whatever the editor.
    ordered = MappingProxyType({z: zones[z] for z in Zone if z in zones})
    return CarrierCard(carrier, name.strip(), service, first_kg, divisor, max_kg, ordered)


def _zone_rate(body: Any, path: str) -> ZoneRate:
    if not isinstance(body, Mapping):
        raise RateCardError(path, "must be a table")
    for key in body:
        if key not in _ZONE_FIELDS:
            raise RateCardError(f"{path}.{key}", "unknown field")
    return ZoneRate(
        first_fen=_whole(body, "first_fen", path, minimum=0),
        additional_kg_fen=_whole(body, "additional_kg_fen", path, minimum=0),
        hours=_whole(body, "hours", path, minimum=1),
    )


def _table(body: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = body.get(key)
    if value is None:
        raise RateCardError(path, "missing")
    if not isinstance(value, Mapping):
        raise RateCardError(path, "must be a table")
    return value


def _whole(body: Mapping[str, Any], key: str, path: str, *, minimum: int) -> int:
    value = body.get(key)
    field = f"{path}.{key}"
    if value is None:
        raise RateCardError(field, "missing")
    # TOML booleans are Python ints; true is not a price.
    if isinstance(value, bool) or not isinstance(value, int):
        unit = "fen" if key.endswith("_fen") else "number"
        raise RateCardError(field, f"must be a whole {unit}, not {value!r}")
    if value < minimum:
        raise RateCardError(field, f"must be at least {minimum}, not {value}")
    return value
