"""Rate cards: billed weight, first and additional weight, zones served, strict loading."""

from __future__ import annotations

import importlib.resources
import itertools
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.quotes import CARRIERS, Parcel, Quote, QuoteProvider, Zone
from hub.domain.rate_cards import (
    RateCardError,
    RateCardProvider,
    ServiceLevel,
    load_rate_cards,
)

# A small card whose prices the tests below work out by hand.
CARD = """
[carriers.sf]
name = "test express"
service = "express"
first_kg = 1
volumetric_divisor = 6000
max_kg = 30
zones.same_city = { first_fen = 1000, additional_kg_fen = 200, hours = 24 }
zones.national = { first_fen = 2000, additional_kg_fen = 800, hours = 48 }

[carriers.zto]
name = "test standard"
service = "standard"
first_kg = 1
volumetric_divisor = 8000
max_kg = 10
zones.national = { first_fen = 600, additional_kg_fen = 250, hours = 72 }
zones.remote = { first_fen = 1400, additional_kg_fen = 900, hours = 120 }

[carriers.instant]
name = "test rider"
service = "same_day"
first_kg = 5
volumetric_divisor = 0
max_kg = 20
zones.same_city = { first_fen = 1500, additional_kg_fen = 200, hours = 2 }
"""

NATIONAL = ("上海", "上海", "北京", "")
SAME_CITY = ("广东", "广州", "广东省", "广州市")
REMOTE = ("浙江", "杭州", "新疆", "乌鲁木齐")
SAME_PROVINCE = ("广东", "广州", "广东", "深圳")


@pytest.fixture(scope="module")
def card() -> RateCardProvider:
    return load_rate_cards(CARD)


@pytest.fixture(scope="module")
def packaged() -> RateCardProvider:
    return load_rate_cards()


def parcel(route: tuple[str, str, str, str], grams: int, volume_cm3: int = 0) -> Parcel:
    return Parcel(*route, weight_grams=grams, volume_cm3=volume_cm3)


def by_carrier(quotes: list[Quote]) -> dict[str, Quote]:
    return {q.carrier: q for q in quotes}


# --------------------------------------------------------------------------- pricing


def test_provider_is_a_quote_provider_named_rate_card(card: RateCardProvider) -> None:
    provider: QuoteProvider = card
    assert provider.name == "rate_card"
    assert {q.provider for q in card.quote(parcel(NATIONAL, 800))} == {"rate_card"}


@pytest.mark.parametrize(
    ("grams", "sf_fen", "zto_fen"),
    [
        (0, 2000, 600),
        (1, 2000, 600),
        (1000, 2000, 600),
        (1001, 2800, 850),
        (2500, 3600, 1100),
        (10_000, 9200, 2850),
    ],
)
def test_each_started_kilogram_after_the_first_adds_the_additional_price(
    card: RateCardProvider, grams: int, sf_fen: int, zto_fen: int
) -> None:
    quotes = by_carrier(card.quote(parcel(NATIONAL, grams)))
    assert quotes["sf"].cost_fen == sf_fen
    assert quotes["zto"].cost_fen == zto_fen
    assert quotes["sf"].billed_grams == grams
    assert quotes["sf"].zone is Zone.NATIONAL


def test_volumetric_weight_bills_light_bulky_parcel(card: RateCardProvider) -> None:
    # 40 x 30 x 30 cm = 36,000 cm³: 6 kg at SF's 6000, 4.5 kg at 8000, for a 500 g pillow.
    quotes = by_carrier(card.quote(parcel(NATIONAL, 500, 36_000)))
    assert quotes["sf"].billed_grams == 6_000
    assert quotes["sf"].cost_fen == 2000 + 5 * 800
    assert quotes["zto"].billed_grams == 4_500
    assert quotes["zto"].cost_fen == 600 + 4 * 250


def test_volumetric_grams_round_up(card: RateCardProvider) -> None:
    # 6,001 cm³ at 6000 cm³/kg is 1,000.17 g: billed as 1,001 g, so a second kilogram.
    sf = by_carrier(card.quote(parcel(NATIONAL, 100, 6_001)))["sf"]
    assert sf.billed_grams == 1_001
    assert sf.cost_fen == 2800


def test_dense_parcel_is_billed_on_actual_weight(card: RateCardProvider) -> None:
    sf = by_carrier(card.quote(parcel(NATIONAL, 3_000, 6_000)))["sf"]
    assert sf.billed_grams == 3_000
    assert sf.cost_fen == 2000 + 2 * 800


def test_weight_only_carrier_ignores_volume(card: RateCardProvider) -> None:
    instant = by_carrier(card.quote(parcel(SAME_CITY, 1_000, 500_000)))["instant"]
    assert instant.billed_grams == 1_000
    assert instant.cost_fen == 1500


@pytest.mark.parametrize(("grams", "fen"), [(5_000, 1500), (5_001, 1700), (7_500, 2100)])
def test_instant_first_weight_covers_five_kilograms(
    card: RateCardProvider, grams: int, fen: int
) -> None:
    assert by_carrier(card.quote(parcel(SAME_CITY, grams)))["instant"].cost_fen == fen


def test_instant_serves_same_city_only(card: RateCardProvider) -> None:
    assert "instant" in by_carrier(card.quote(parcel(SAME_CITY, 1_000)))
    for route in (SAME_PROVINCE, NATIONAL, REMOTE):
        assert "instant" not in by_carrier(card.quote(parcel(route, 1_000)))


def test_carrier_without_service_in_the_zone_is_left_out(card: RateCardProvider) -> None:
    assert [q.carrier for q in card.quote(parcel(SAME_CITY, 1_000))] == ["sf", "instant"]
    assert [q.carrier for q in card.quote(parcel(REMOTE, 1_000))] == ["zto"]
    assert card.quote(parcel(SAME_PROVINCE, 1_000)) == []


def test_parcel_over_a_carriers_limit_drops_only_that_carrier(card: RateCardProvider) -> None:
    assert set(by_carrier(card.quote(parcel(NATIONAL, 10_000)))) == {"sf", "zto"}
    assert set(by_carrier(card.quote(parcel(NATIONAL, 10_001)))) == {"sf"}
    assert card.quote(parcel(NATIONAL, 30_001)) == []


def test_weight_limit_is_on_actual_weight_not_volume(card: RateCardProvider) -> None:
    # 120,000 cm³ is 15 kg by volume at 8000, over zto's 10 kg; the box itself weighs 2 kg.
    zto = by_carrier(card.quote(parcel(NATIONAL, 2_000, 120_000)))["zto"]
    assert zto.billed_grams == 15_000
    assert zto.cost_fen == 600 + 14 * 250


def test_remote_zone_uses_the_remote_price_and_promise(card: RateCardProvider) -> None:
    zto = by_carrier(card.quote(parcel(REMOTE, 1_500)))["zto"]
    assert (zto.zone, zto.cost_fen, zto.promised_hours) == (Zone.REMOTE, 1400 + 900, 120)


def test_named_carriers_come_back_in_card_order(card: RateCardProvider) -> None:
    assert [q.carrier for q in card.quote(parcel(NATIONAL, 500), ["zto", "sf"])] == ["sf", "zto"]
    assert [q.carrier for q in card.quote(parcel(NATIONAL, 500), ("zto",))] == ["zto"]


def test_a_single_carrier_name_is_not_split_into_letters(card: RateCardProvider) -> None:
    assert [q.carrier for q in card.quote(parcel(NATIONAL, 500), "sf")] == ["sf"]


def test_known_carrier_missing_from_the_card_is_left_out(card: RateCardProvider) -> None:
    assert card.quote(parcel(NATIONAL, 500), ["jd", "ems"]) == []


def test_unknown_carrier_is_an_error(card: RateCardProvider) -> None:
    with pytest.raises(ValueError, match="dhl"):
        card.quote(parcel(NATIONAL, 500), ["sf", "dhl"])


def test_negative_weight_is_an_error(card: RateCardProvider) -> None:
    with pytest.raises(ValueError, match="negative"):
        card.quote(parcel(NATIONAL, -1))
    with pytest.raises(ValueError, match="negative"):
        card.quote(parcel(NATIONAL, 1, -5))


def test_unknown_province_is_an_error_that_names_the_side(card: RateCardProvider) -> None:
    with pytest.raises(ValueError, match="destination province"):
        card.quote(parcel(("上海", "上海", "火星", ""), 500))


def test_parcel_outside_the_mainland_is_refused(card: RateCardProvider) -> None:
    with pytest.raises(ValueError, match="outside mainland China"):
        card.quote(parcel(("广东", "深圳", "香港", ""), 500))


def test_quotes_are_deterministic(packaged: RateCardProvider) -> None:
    p = parcel(NATIONAL, 2_345, 9_999)
    assert packaged.quote(p) == packaged.quote(p) == load_rate_cards().quote(p)


# --------------------------------------------------------------------------- loading


def test_loaded_card_keeps_what_the_file_says(card: RateCardProvider) -> None:
    assert card.carriers == ("sf", "zto", "instant")
    sf = card.card("sf")
    assert sf is not None
    assert (sf.service, sf.first_kg, sf.volumetric_divisor, sf.max_kg) == (
        ServiceLevel.EXPRESS,
        1,
        6000,
        30,
    )
    assert set(sf.zones) == {Zone.SAME_CITY, Zone.NATIONAL}
    assert sf.zones[Zone.NATIONAL].additional_kg_fen == 800
    assert card.card("jd") is None


def edited(old: str, new: str) -> str:
    assert old in CARD, old
    return CARD.replace(old, new, 1)


NATIONAL_SF = "zones.national = { first_fen = 2000, additional_kg_fen = 800, hours = 48 }"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (edited("[carriers.sf]", "[carriers.dhl]"), "carriers.dhl", "unknown carrier"),
        (
            edited("zones.national = { first_fen = 2000", "zones.moon = { first_fen = 2000"),
            "carriers.sf.zones.moon",
            "unknown zone",
        ),
        (
            edited(NATIONAL_SF, NATIONAL_SF.replace("2000", "-1")),
            "carriers.sf.zones.national.first_fen",
            "at least 0",
        ),
        (
            edited(NATIONAL_SF, NATIONAL_SF.replace("2000", "20.5")),
            "carriers.sf.zones.national.first_fen",
            "whole fen",
        ),
        (
            edited(NATIONAL_SF, NATIONAL_SF.replace("800", '"8"')),
            "carriers.sf.zones.national.additional_kg_fen",
            "whole fen",
        ),
        (
            edited(NATIONAL_SF, NATIONAL_SF.replace("2000", "true")),
            "carriers.sf.zones.national.first_fen",
            "whole fen",
        ),
        (
            edited(NATIONAL_SF, NATIONAL_SF.replace(", hours = 48", "")),
            "carriers.sf.zones.national.hours",
            "missing",
        ),
        (
            edited(NATIONAL_SF, NATIONAL_SF.replace("hours = 48", "hours = 0")),
            "carriers.sf.zones.national.hours",
            "at least 1",
        ),
        (
            edited(NATIONAL_SF, NATIONAL_SF.replace("first_fen", "frist_fen")),
            "carriers.sf.zones.national.frist_fen",
            "unknown field",
        ),
        (
            edited(NATIONAL_SF, "zones.national = 2000"),
            "carriers.sf.zones.national",
            "must be a table",
        ),
        (edited('service = "express"', 'service = "rocket"'), "carriers.sf.service", "rocket"),
        (edited('service = "express"\n', ""), "carriers.sf.service", "missing"),
        (edited('name = "test express"\n', ""), "carriers.sf.name", "missing"),
        (edited("max_kg = 30", "max_kg = 0"), "carriers.sf.max_kg", "at least 1"),
        (edited("first_kg = 5", "first_kg = 25"), "carriers.instant.max_kg", "below first_kg"),
        (
            edited("volumetric_divisor = 6000", "volumetric_divisor = -6000"),
            "carriers.sf.volumetric_divisor",
            "at least 0",
        ),
        (
            edited("volumetric_divisor = 6000", "volumetric_divisor = 6000\nweight_rule = 1"),
            "carriers.sf.weight_rule",
            "unknown field",
        ),
        (
            CARD + "zones.national = { first_fen = 1, additional_kg_fen = 1, hours = 1 }\n",
            "carriers.instant.zones.national",
            "same-city only",
        ),
        ("[carriers]\n", "carriers", "no carriers"),
        ("[sources]\nsf = 'x'\n", "carriers", "missing"),
        ("[sources]\nsf = 3\n" + CARD, "sources.sf", "must be text"),
        ("[prices]\n" + CARD, "prices", "unknown section"),
    ],
)
def test_rejected_card_names_the_field(text: str, field: str, reason: str) -> None:
    with pytest.raises(RateCardError) as caught:
        load_rate_cards(text)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value).startswith(field)


def test_carrier_without_zones_is_rejected() -> None:
    text = '[carriers.sf]\nname = "x"\nservice = "express"\nfirst_kg = 1\n'
    text += "volumetric_divisor = 6000\nmax_kg = 30\nzones = {}\n"
    with pytest.raises(RateCardError) as caught:
        load_rate_cards(text)
    assert (caught.value.field, caught.value.reason) == ("carriers.sf.zones", "serves no zone")


def test_text_that_is_not_toml_is_rejected() -> None:
    with pytest.raises(RateCardError, match="not valid TOML"):
        load_rate_cards("[carriers.sf\n")


def test_rate_card_error_is_a_value_error() -> None:
    assert issubclass(RateCardError, ValueError)


# --------------------------------------------------------------------------- the packaged card


def test_packaged_card_prices_every_carrier(packaged: RateCardProvider) -> None:
    assert packaged.carriers == CARRIERS


def test_packaged_card_says_where_each_figure_comes_from() -> None:
    text = (importlib.resources.files("hub.domain") / "rate_cards.toml").read_text("utf-8")
    sources = tomllib.loads(text)["sources"]
    assert set(CARRIERS) <= set(sources)
    assert "vary" in sources["general"]


def test_every_carrier_but_instant_serves_the_same_province(packaged: RateCardProvider) -> None:
    served = {q.carrier for q in packaged.quote(parcel(SAME_PROVINCE, 1_000))}
    assert served == set(CARRIERS) - {"instant"}


def test_packaged_instant_serves_same_city_only(packaged: RateCardProvider) -> None:
    instant = packaged.card("instant")
    assert instant is not None
    assert set(instant.zones) == {Zone.SAME_CITY}
    assert instant.service is ServiceLevel.SAME_DAY


def test_ems_serves_every_zone(packaged: RateCardProvider) -> None:
    ems = packaged.card("ems")
    assert ems is not None
    assert set(ems.zones) == set(Zone)
    assert "ems" in by_carrier(packaged.quote(parcel(REMOTE, 1_000)))


def test_sf_is_faster_than_zto_nationally(packaged: RateCardProvider) -> None:
    quotes = by_carrier(packaged.quote(parcel(NATIONAL, 1_000)))
    assert quotes["sf"].promised_hours < quotes["zto"].promised_hours
    assert quotes["sf"].cost_fen > quotes["zto"].cost_fen


def test_instant_is_the_fastest_same_city_offer(packaged: RateCardProvider) -> None:
    quotes = packaged.quote(parcel(SAME_CITY, 1_000))
    fastest = min(quotes, key=lambda q: q.promised_hours)
    assert fastest.carrier == "instant"
    assert fastest.promised_hours <= 3


@pytest.mark.parametrize(
    ("carriers", "low_yuan", "high_yuan"),
    [
        (("zto", "yto", "sto", "yunda"), 4, 8),
        (("sf",), 15, 23),
        (("jd",), 15, 23),
        (("ems",), 10, 20),
    ],
)
def test_packaged_first_kilogram_across_regions_is_a_realistic_merchant_price(
    packaged: RateCardProvider, carriers: tuple[str, ...], low_yuan: int, high_yuan: int
) -> None:
    for q in packaged.quote(parcel(NATIONAL, 1_000), carriers):
        assert low_yuan * 100 <= q.cost_fen <= high_yuan * 100, q


def test_remote_costs_more_and_takes_longer_than_national(packaged: RateCardProvider) -> None:
    for carrier in CARRIERS:
        c = packaged.card(carrier)
        assert c is not None
        if Zone.REMOTE in c.zones and Zone.NATIONAL in c.zones:
            remote, national = c.zones[Zone.REMOTE], c.zones[Zone.NATIONAL]
            assert remote.first_fen > national.first_fen, carrier
            assert remote.hours > national.hours, carrier


def test_farther_zones_never_cost_less_or_promise_sooner(packaged: RateCardProvider) -> None:
    order = (Zone.SAME_CITY, Zone.SAME_PROVINCE, Zone.REGIONAL, Zone.NATIONAL, Zone.REMOTE)
    for carrier in CARRIERS:
        c = packaged.card(carrier)
        assert c is not None
        served = [c.zones[z] for z in order if z in c.zones]
        for near, far in itertools.pairwise(served):
            assert near.first_fen <= far.first_fen, carrier
            assert near.additional_kg_fen <= far.additional_kg_fen, carrier
            assert near.hours <= far.hours, carrier


# --------------------------------------------------------------------------- properties

PACKAGED = load_rate_cards()
ROUTES = [NATIONAL, SAME_CITY, REMOTE, SAME_PROVINCE, ("浙江", "杭州", "江苏", "南京")]


@given(
    route=st.sampled_from(ROUTES),
    grams=st.integers(min_value=0, max_value=60_000),
    more=st.integers(min_value=0, max_value=60_000),
    volume=st.integers(min_value=0, max_value=400_000),
)
def test_cost_is_never_negative_and_never_falls_as_weight_grows(
    route: tuple[str, str, str, str], grams: int, more: int, volume: int
) -> None:
    provider = PACKAGED
    light = by_carrier(provider.quote(parcel(route, grams, volume)))
    heavy = by_carrier(provider.quote(parcel(route, grams + more, volume)))
    assert all(q.cost_fen >= 0 and q.promised_hours > 0 for q in light.values())
    # A heavier parcel may lose carriers to their weight limit, never gain them.
    assert set(heavy) <= set(light)
    for carrier, q in heavy.items():
        assert q.cost_fen >= light[carrier].cost_fen
        assert q.billed_grams >= grams + more
