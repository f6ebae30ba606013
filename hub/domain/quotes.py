"""Carrier quotes: what a shipment costs with each carrier and how long it is promised to take.

The routing engine asks every :class:`QuoteProvider` it was given; the default one reads
published rate cards from a data file (``hub/domain/rate_cards.py``), and a carrier's live
API can be another provider without touching the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

#: The carriers OrderHub can hand parcels to (CONTRACT.md).
CARRIERS: tuple[str, ...] = ("sf", "jd", "zto", "yto", "sto", "yunda", "ems", "instant")


class Zone(StrEnum):
    """How far a parcel travels, the unit every carrier prices and promises by."""

    #: Origin and destination in the same city.
    SAME_CITY = "same_city"
    #: Same province, another city (省内).
    SAME_PROVINCE = "same_province"
    #: Another province in the same region (e.g. 华东 → 华东).
    REGIONAL = "regional"
    #: Another region (跨区).
    NATIONAL = "national"
    #: Destination in a remote province (新疆, 西藏, 青海, …), from anywhere else.
    REMOTE = "remote"


#: Zones from nearest to farthest, for "the nearest warehouse" comparisons.
ZONE_RANK: dict[Zone, int] = {zone: rank for rank, zone in enumerate(Zone)}


@dataclass(frozen=True, slots=True)
class Parcel:
    """One parcel to quote: where it goes from and to, and what it weighs."""

    origin_province: str
    origin_city: str
    destination_province: str
    destination_city: str
    weight_grams: int
    #: Length x width x height in cubic centimetres; 0 when unknown (weight alone counts).
    volume_cm3: int = 0


@dataclass(frozen=True, slots=True)
class Quote:
    """One carrier's offer for one parcel."""

    carrier: str
    cost_fen: int
    promised_hours: int
    zone: Zone
    #: The weight the price was computed on (the greater of actual and volumetric).
    billed_grams: int
    #: Which provider answered (``rate_card``, or a live API's name).
    provider: str


class QuoteProvider(Protocol):
    """Anything that can price parcels: a rate card, a carrier's live API, a test table."""

    #: A short name shown in routing traces.
    name: str

    def quote(self, parcel: Parcel, carriers: Sequence[str] = ()) -> list[Quote]:
        """Offers for the parcel from the named carriers (all it knows when empty).

        A carrier that cannot take the parcel (over its weight limit, no service on the
        route) is left out; it is not an error.
        """
        ...
