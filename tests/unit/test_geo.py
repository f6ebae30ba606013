"""China geography: province names in every spelling, regions, remoteness, zones of a route."""

from __future__ import annotations

import pytest

from hub.domain.geo import (
    PROVINCES,
    Province,
    Region,
    distance_km,
    province_of,
    same_city,
    zone_between,
)
from hub.domain.quotes import Zone


def province(name: str) -> Province:
    found = province_of(name)
    assert found is not None, name
    return found


# --------------------------------------------------------------------------- the table


def test_every_mainland_province_is_listed_once() -> None:
    domestic = [p for p in PROVINCES if p.domestic]
    assert len(domestic) == 31
    assert len({p.short for p in PROVINCES}) == len(PROVINCES) == 34
    assert len({p.full for p in PROVINCES}) == 34
    assert len({p.pinyin.lower() for p in PROVINCES}) == 34


def test_census_populations_add_up_to_the_mainland_total() -> None:
    # 2020 census: 1,411,778,724 including 2,000,000 serving military counted in no province.
    assert sum(p.population for p in PROVINCES if p.domestic) == 1_411_778_724 - 2_000_000
    assert province("广东").population == 126_012_510
    assert province("西藏").population == 3_648_100


def test_hong_kong_macao_and_taiwan_are_known_but_not_domestic() -> None:
    assert {p.short for p in PROVINCES if not p.domestic} == {"香港", "澳门", "台湾"}


def test_remote_provinces_are_the_six_carriers_surcharge() -> None:
    assert {p.short for p in PROVINCES if p.remote} == {
        "新疆",
        "西藏",
        "青海",
        "内蒙古",
        "宁夏",
        "甘肃",
    }


@pytest.mark.parametrize(
    ("region", "members"),
    [
        (Region.EAST, {"上海", "江苏", "浙江", "安徽", "福建", "江西", "山东"}),
        (Region.SOUTH, {"广东", "广西", "海南"}),
        (Region.NORTH, {"北京", "天津", "河北", "山西", "内蒙古"}),
        (Region.CENTRAL, {"河南", "湖北", "湖南"}),
        (Region.SOUTHWEST, {"重庆", "四川", "贵州", "云南", "西藏"}),
        (Region.NORTHWEST, {"陕西", "甘肃", "青海", "宁夏", "新疆"}),
        (Region.NORTHEAST, {"辽宁", "吉林", "黑龙江"}),
    ],
)
def test_mainland_provinces_fall_in_the_seven_carrier_regions(
    region: Region, members: set[str]
) -> None:
    assert {p.short for p in PROVINCES if p.domestic and p.region is region} == members


def test_region_has_its_chinese_name() -> None:
    assert Region.EAST.chinese == "华东"
    assert Region.NORTHWEST.chinese == "西北"
    assert Region.EAST.value == "east"


def test_capitals_lie_inside_china() -> None:
    for p in PROVINCES:
        assert 18 < p.lat < 54 and 73 < p.lon < 136, p.short


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("广东", "广东"),
        ("广东省", "广东"),
        ("Guangdong", "广东"),
        ("guangdong", "广东"),
        ("Guang Dong", "广东"),
        ("Guangdong Province", "广东"),
        ("  广东省 ", "广东"),
        ("北京市", "北京"),
        ("Beijing Shi", "北京"),
        ("广西", "广西"),
        ("广西省", "广西"),
        ("广西壮族自治区", "广西"),
        ("内蒙", "内蒙古"),
        ("内蒙古自治区", "内蒙古"),
        ("Inner Mongolia", "内蒙古"),
        ("Nei Mongol Zizhiqu", "内蒙古"),
        ("新疆自治区", "新疆"),
        ("新疆维吾尔自治区", "新疆"),
        ("Xinjiang Uygur Autonomous Region", "新疆"),
        ("宁夏回族自治区", "宁夏"),
        ("Tibet", "西藏"),
        ("西藏自治区", "西藏"),
        ("Shaanxi", "陕西"),
        ("Shanxi", "山西"),
        ("香港特别行政区", "香港"),
        ("中国香港", "香港"),
        ("Hong Kong SAR", "香港"),
        ("Macau", "澳门"),
        ("臺灣", "台湾"),
    ],
)
def test_province_of_accepts_every_common_spelling(name: str, short: str) -> None:
    assert province(name).short == short


def test_full_width_letters_read_as_ascii() -> None:
    # Some Chinese input methods type Latin letters full-width (U+FF21 and on).
    full_width = "Guangdong Province".translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    assert full_width != "Guangdong Province"
    assert province(full_width).short == "广东"


@pytest.mark.parametrize("name", ["", "省", "自治区", "火星", "Atlantis", "广", "Guangdongg"])
def test_province_of_returns_none_for_a_name_that_is_no_province(name: str) -> None:
    assert province_of(name) is None


# --------------------------------------------------------------------------- same city


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("广东", "深圳"), ("广东省", "深圳市")),
        (("云南", "红河州"), ("云南省", "红河哈尼族彝族自治州")),
        (("吉林", "延边"), ("吉林省", "延边朝鲜族自治州")),
        (("西藏", "阿里"), ("西藏自治区", "阿里地区")),
        (("内蒙古", "兴安盟"), ("内蒙", "兴安")),
        (("北京", ""), ("北京市", "北京市")),
        (("上海", "上海"), ("上海市", "浦东新区")),
        (("重庆", "市辖区"), ("重庆市", "")),
    ],
)
def test_same_city_sees_through_suffixes_and_municipalities(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    assert same_city(a[0], a[1], b[0], b[1])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("广东", "广州"), ("广东", "深圳")),
        (("辽宁", "朝阳"), ("北京", "朝阳")),
        (("广东", ""), ("广东", "")),
        (("江苏", "苏州"), ("浙江", "苏州")),
    ],
)
def test_different_cities_or_provinces_are_not_the_same_city(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    assert not same_city(a[0], a[1], b[0], b[1])


def test_same_city_refuses_an_unknown_province() -> None:
    with pytest.raises(ValueError, match="second province"):
        same_city("广东", "广州", "火星", "广州")


# --------------------------------------------------------------------------- distance


def test_distance_between_capitals_matches_the_map() -> None:
    beijing, shanghai = province("北京"), province("上海")
    # 北京 to 上海 is about 1,070 km as the crow flies.
    assert 1_050 < distance_km(beijing, shanghai) < 1_090
    assert distance_km(beijing, shanghai) == pytest.approx(distance_km(shanghai, beijing))
    assert distance_km(beijing, beijing) == 0


def test_remote_capitals_are_far_from_the_coast() -> None:
    assert distance_km(province("上海"), province("新疆")) > 3_000


# --------------------------------------------------------------------------- zones


@pytest.mark.parametrize(
    ("origin", "destination", "zone"),
    [
        (("广东", "广州"), ("广东省", "广州市"), Zone.SAME_CITY),
        (("上海", ""), ("上海市", "闵行区"), Zone.SAME_CITY),
        (("广东", "广州"), ("广东", "深圳"), Zone.SAME_PROVINCE),
        (("浙江", "杭州"), ("江苏", "南京"), Zone.REGIONAL),
        (("广东", "广州"), ("广西", "南宁"), Zone.REGIONAL),
        (("广东", "广州"), ("北京", ""), Zone.NATIONAL),
        (("上海", "上海"), ("四川", "成都"), Zone.NATIONAL),
        (("浙江", "杭州"), ("新疆", "乌鲁木齐"), Zone.REMOTE),
        (("新疆", "乌鲁木齐"), ("新疆", "喀什地区"), Zone.SAME_PROVINCE),
        (("新疆", "乌鲁木齐"), ("广东", "广州"), Zone.NATIONAL),
    ],
)
def test_zone_between_classifies_routes(
    origin: tuple[str, str], destination: tuple[str, str], zone: Zone
) -> None:
    assert zone_between(origin[0], origin[1], destination[0], destination[1]) is zone


def test_remote_destination_is_remote_zone_even_within_its_region() -> None:
    # 陕西 and 甘肃 are both 西北, but carriers surcharge by destination.
    assert province("陕西").region is province("甘肃").region
    assert zone_between("陕西", "西安", "甘肃", "兰州") is Zone.REMOTE


def test_unknown_origin_is_named() -> None:
    with pytest.raises(ValueError, match="origin province '火星'"):
        zone_between("火星", "", "广东", "广州")


def test_unknown_destination_is_named() -> None:
    with pytest.raises(ValueError, match="destination province 'Narnia'"):
        zone_between("广东", "广州", "Narnia", "")


def test_route_outside_the_mainland_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="destination province 香港特别行政区 is outside"):
        zone_between("广东", "深圳", "香港", "")
    with pytest.raises(ValueError, match="origin province 台湾省 is outside"):
        zone_between("台湾", "台北", "福建", "厦门")
