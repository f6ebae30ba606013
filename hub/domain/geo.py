"""China's provinces as carriers see them: names, regions, remoteness and the zone of a route.

Pure data and rules. Marketplaces write the same province a dozen ways (``广东``, ``广东省``,
``Guangdong Province``, ``广西省`` for 广西壮族自治区), so every lookup goes through
:func:`province_of`. Hong Kong, Macao and Taiwan are known but not domestic: carriers price
them as international, so :func:`zone_between` refuses them by name instead of guessing.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from hub.domain.quotes import Zone


class Region(StrEnum):
    """The seven regions Chinese carriers group provinces into for pricing (七大区)."""

    EAST = "east"  # 华东
    SOUTH = "south"  # 华南
    NORTH = "north"  # 华北
    CENTRAL = "central"  # 华中
    SOUTHWEST = "southwest"  # 西南
    NORTHWEST = "northwest"  # 西北
    NORTHEAST = "northeast"  # 东北

    @property
    def chinese(self) -> str:
        """The region's Chinese name, as it appears on rate cards (``华东``)."""
        return _REGION_CHINESE[self]


_REGION_CHINESE = {
    Region.EAST: "华东",
    Region.SOUTH: "华南",
    Region.NORTH: "华北",
    Region.CENTRAL: "华中",
    Region.SOUTHWEST: "西南",
    Region.NORTHWEST: "西北",
    Region.NORTHEAST: "东北",
}


@dataclass(frozen=True, slots=True)
class Province:
    """One provincial-level division: how it is named, where it is, and how carriers treat it."""

    #: The name people and platforms use most (``广东``, ``内蒙古``).
    short: str
    #: The official name (``广东省``, ``内蒙古自治区``).
    full: str
    #: The romanised name of ISO 3166-2:CN (``Guangdong``, ``Nei Mongol``).
    pinyin: str
    region: Region
    capital: str
    #: Latitude and longitude of the capital, in degrees.
    lat: float
    lon: float
    #: Resident population at the 2020 census, in persons.
    population: int
    #: Carriers price it as remote (偏远): slower, dearer, some services not offered.
    remote: bool
    #: False for Hong Kong, Macao and Taiwan, which domestic rate cards do not cover.
    domestic: bool = True

    @property
    def municipality(self) -> bool:
        """True for a province that is a single city (北京, 上海, 天津, 重庆, 香港, 澳门)."""
        return self.short in _CITY_PROVINCES


_CITY_PROVINCES = frozenset({"北京", "上海", "天津", "重庆", "香港", "澳门"})

_E, _S, _N, _C = Region.EAST, Region.SOUTH, Region.NORTH, Region.CENTRAL
_SW, _NW, _NE = Region.SOUTHWEST, Region.NORTHWEST, Region.NORTHEAST

# Population: 国家统计局《第七次全国人口普查公报（第三号）——地区人口情况》(2021-05-11),
# resident population at 2020-11-01 00:00. The 31 mainland figures sum to 1,409,778,724; the
# national 1,411,778,724 adds 2,000,000 serving military, who belong to no province. Hong
# Kong, Macao and Taiwan: 公报（第二号）, which quotes each government's end-of-2020 figure.
#
# Remote (偏远): the six provinces that 中通/圆通/申通/韵达 price sheets and marketplace
# "包邮" terms (淘宝/天猫, 京东, 拼多多 shop templates: "新疆、西藏、青海、内蒙古、宁夏、甘肃
# 除外") single out as 偏远地区. Some shops also exclude 海南 for sea transit; carriers price
# it as an ordinary 华南 destination, so it is not remote here.
#
# Regions: the 七大地理分区 grouping that carriers' zone tables use; Hong Kong and Macao sit
# with 华南 and Taiwan with 华东, as in that grouping, though none of them is domestic.
PROVINCES: tuple[Province, ...] = (
    Province("北京", "北京市", "Beijing", _N, "北京", 39.9042, 116.4074, 21_893_095, False),
    Province("天津", "天津市", "Tianjin", _N, "天津", 39.0842, 117.2010, 13_866_009, False),
    Province("河北", "河北省", "Hebei", _N, "石家庄", 38.0428, 114.5149, 74_610_235, False),
    Province("山西", "山西省", "Shanxi", _N, "太原", 37.8706, 112.5489, 34_915_616, False),
    Province(
        "内蒙古", "内蒙古自治区", "Nei Mongol", _N, "呼和浩特", 40.8424, 111.7490, 24_049_155, True
    ),
    Province("辽宁", "辽宁省", "Liaoning", _NE, "沈阳", 41.8057, 123.4315, 42_591_407, False),
    Province("吉林", "吉林省", "Jilin", _NE, "长春", 43.8171, 125.3235, 24_073_453, False),
    Province(
        "黑龙江", "黑龙江省", "Heilongjiang", _NE, "哈尔滨", 45.8038, 126.5350, 31_850_088, False
    ),
    Province("上海", "上海市", "Shanghai", _E, "上海", 31.2304, 121.4737, 24_870_895, False),
    Province("江苏", "江苏省", "Jiangsu", _E, "南京", 32.0603, 118.7969, 84_748_016, False),
    Province("浙江", "浙江省", "Zhejiang", _E, "杭州", 30.2741, 120.1551, 64_567_588, False),
    Province("安徽", "安徽省", "Anhui", _E, "合肥", 31.8206, 117.2272, 61_027_171, False),
    Province("福建", "福建省", "Fujian", _E, "福州", 26.0745, 119.2965, 41_540_086, False),
    Province("江西", "江西省", "Jiangxi", _E, "南昌", 28.6820, 115.8579, 45_188_635, False),
    Province("山东", "山东省", "Shandong", _E, "济南", 36.6512, 117.1201, 101_527_453, False),
    Province("河南", "河南省", "Henan", _C, "郑州", 34.7466, 113.6254, 99_365_519, False),
    Province("湖北", "湖北省", "Hubei", _C, "武汉", 30.5928, 114.3055, 57_752_557, False),
    Province("湖南", "湖南省", "Hunan", _C, "长沙", 28.2282, 112.9388, 66_444_864, False),
    Province("广东", "广东省", "Guangdong", _S, "广州", 23.1291, 113.2644, 126_012_510, False),
    Province("广西", "广西壮族自治区", "Guangxi", _S, "南宁", 22.8170, 108.3665, 50_126_804, False),
    Province("海南", "海南省", "Hainan", _S, "海口", 20.0440, 110.1999, 10_081_232, False),
    Province("重庆", "重庆市", "Chongqing", _SW, "重庆", 29.5630, 106.5516, 32_054_159, False),
    Province("四川", "四川省", "Sichuan", _SW, "成都", 30.5728, 104.0668, 83_674_866, False),
    Province("贵州", "贵州省", "Guizhou", _SW, "贵阳", 26.6470, 106.6302, 38_562_148, False),
    Province("云南", "云南省", "Yunnan", _SW, "昆明", 25.0389, 102.7183, 47_209_277, False),
    Province("西藏", "西藏自治区", "Xizang", _SW, "拉萨", 29.6525, 91.1721, 3_648_100, True),
    Province("陕西", "陕西省", "Shaanxi", _NW, "西安", 34.3416, 108.9398, 39_528_999, False),
    Province("甘肃", "甘肃省", "Gansu", _NW, "兰州", 36.0611, 103.8343, 25_019_831, True),
    Province("青海", "青海省", "Qinghai", _NW, "西宁", 36.6171, 101.7782, 5_923_957, True),
    Province("宁夏", "宁夏回族自治区", "Ningxia", _NW, "银川", 38.4872, 106.2309, 7_202_654, True),
    Province(
        "新疆",
        "新疆维吾尔自治区",
        "Xinjiang",
        _NW,
        "乌鲁木齐",
        43.8256,
        87.6168,
        25_852_345,
        True,
    ),
    Province(
        "香港",
        "香港特别行政区",
        "Hong Kong",
        _S,
        "香港",
        22.3193,
        114.1694,
        7_474_200,
        False,
        domestic=False,
    ),
    Province(
        "澳门",
        "澳门特别行政区",
        "Macao",
        _S,
        "澳门",
        22.1987,
        113.5439,
        683_218,
        False,
        domestic=False,
    ),
    Province(
        "台湾", "台湾省", "Taiwan", _E, "台北", 25.0330, 121.5654, 23_561_236, False, domestic=False
    ),
)

# Names seen on real orders that are neither short, full nor pinyin.
_ALIASES: dict[str, str] = {
    "内蒙": "内蒙古",
    "neimenggu": "内蒙古",
    "innermongolia": "内蒙古",
    "tibet": "西藏",
    "xizang": "西藏",
    "xinjianguygur": "新疆",
    "xinjianguyghur": "新疆",
    "guangxizhuang": "广西",
    "ningxiahui": "宁夏",
    "shensi": "陕西",
    "peking": "北京",
    "hongkong": "香港",
    "xianggang": "香港",
    "macau": "澳门",
    "aomen": "澳门",
    "臺灣": "台湾",
    "臺湾": "台湾",
    "台灣": "台湾",
}

# Stripped (one of them) from the end of a name; a specific form precedes its tail, so
# 维吾尔自治区 goes before 自治区.
_PROVINCE_SUFFIXES = (
    "specialadministrativeregion",
    "autonomousregion",
    "municipality",
    "特别行政区",
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "province",
    "zizhiqu",
    "自治区",
    "sheng",
    "city",
    "sar",
    "shi",
    "省",
    "市",
)
_COUNTRY_PREFIXES = ("中华人民共和国", "中国", "china", "prc")


def _fold(text: str) -> str:
    # NFKC turns full-width letters and spaces into ASCII ones before we drop the spaces.
    return "".join(unicodedata.normalize("NFKC", text).split()).lower()


def _build_index() -> dict[str, Province]:
    by_short = {p.short: p for p in PROVINCES}
    index: dict[str, Province] = {}
    for p in PROVINCES:
        for key in (p.short, p.full, p.pinyin, p.short + "省", p.short + "市", p.short + "自治区"):
            index[_fold(key)] = p
    for alias, short in _ALIASES.items():
        index[_fold(alias)] = by_short[short]
    return index


_INDEX = _build_index()


@lru_cache(maxsize=4096)
def province_of(name: str) -> Province | None:
    """The province a name means, in any common spelling; None when it names none."""
    key = _fold(name)
    found = _INDEX.get(key)
    if found is not None:
        return found
    for prefix in _COUNTRY_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix) :]
            break
    found = _INDEX.get(key)
    if found is not None:
        return found
    for suffix in _PROVINCE_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return _INDEX.get(key[: -len(suffix)])
    return None


# Ethnic names in autonomous prefectures (红河哈尼族彝族自治州), dropped so the short form
# people write (红河州, 红河) compares equal to the official one.
_ETHNIC_NAMES = (
    "哈尼族",
    "傈僳族",
    "景颇族",
    "布依族",
    "土家族",
    "朝鲜族",
    "柯尔克孜",
    "蒙古族",
    "哈萨克",
    "蒙古",
    "苗族",
    "侗族",
    "藏族",
    "羌族",
    "彝族",
    "白族",
    "傣族",
    "壮族",
    "回族",
)
_CITY_SUFFIXES = ("自治州", "地区", "city", "盟", "市", "州")


@lru_cache(maxsize=8192)
def _city_key(city: str) -> str:
    key = _fold(city)
    # A stem shorter than two characters would turn 广州 into 广; only longer names lose suffixes.
    changed = True
    while changed:
        changed = False
        for suffix in (*_CITY_SUFFIXES, *_ETHNIC_NAMES):
            if key.endswith(suffix) and len(key) - len(suffix) >= 2:
                key = key[: -len(suffix)]
                changed = True
                break
    return key


def _known(name: str, side: str) -> Province:
    province = province_of(name)
    if province is None:
        raise ValueError(f"{side} province {name!r} is not a province of China")
    return province


def _same_city(a: Province, city_a: str, b: Province, city_b: str) -> bool:
    if a is not b:
        return False
    # A municipality is one city to carriers, whichever district the address names.
    if a.municipality:
        return True
    key_a, key_b = _city_key(city_a), _city_key(city_b)
    return bool(key_a) and key_a == key_b


def same_city(province_a: str, city_a: str, province_b: str, city_b: str) -> bool:
    """True when both addresses are in one city (a municipality counts as one city)."""
    return _same_city(_known(province_a, "first"), city_a, _known(province_b, "second"), city_b)


_EARTH_RADIUS_KM = 6371.0088


def distance_km(a: Province, b: Province) -> float:
    """Great-circle distance between two provinces' capitals, in kilometres."""
    lat_a, lat_b = math.radians(a.lat), math.radians(b.lat)
    d_lat = lat_b - lat_a
    d_lon = math.radians(b.lon - a.lon)
    h = math.sin(d_lat / 2) ** 2 + math.cos(lat_a) * math.cos(lat_b) * math.sin(d_lon / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@lru_cache(maxsize=16384)
def zone_between(
    origin_province: str, origin_city: str, dest_province: str, dest_city: str
) -> Zone:
    """The pricing zone of a route; ValueError names the side whose province is unknown."""
    origin = _known(origin_province, "origin")
    dest = _known(dest_province, "destination")
    for side, province in (("origin", origin), ("destination", dest)):
        if not province.domestic:
            raise ValueError(
                f"{side} province {province.full} is outside mainland China; "
                "domestic carriers do not price it"
            )
    if _same_city(origin, origin_city, dest, dest_city):
        return Zone.SAME_CITY
    if origin is dest:
        return Zone.SAME_PROVINCE
    # Carriers price a remote destination by where it goes, not where it comes from.
    if dest.remote:
        return Zone.REMOTE
    if origin.region is dest.region:
        return Zone.REGIONAL
    return Zone.NATIONAL
