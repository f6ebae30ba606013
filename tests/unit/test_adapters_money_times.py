"""Exact money and platform times: pure conversions, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from adapters import money, times


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("200.07", "CNY", 20007),
        ("29.9", "CNY", 2990),
        (Decimal("29.9"), "CNY", 2990),
        (29.9, "CNY", 2990),  # a float that slipped through is read by its shortest repr
        (0.07, "CNY", 7),
        (248, "CNY", 24800),
        ("  10.00 ", "CNY", 1000),
        ("0.005", "CNY", 1),  # ROUND_HALF_UP
        ("0.0049", "CNY", 0),
        ("-0.005", "CNY", -1),
        ("1000", "JPY", 1000),
        ("1000.5", "JPY", 1001),
        ("1.2345", "KWD", 1235),
        ("409.94", "USD", 40994),
    ],
)
def test_major_amounts_become_exact_minor_units(value: object, currency: str, minor: int) -> None:
    assert money.major_to_minor(value, currency) == minor


def test_json_yuan_numbers_parsed_as_decimal_stay_exact() -> None:
    # The float 29.9 is really 29.899999999999998578…, so Decimal(29.9) * 100 truncates to
    # 2989; and 19.99 * 100 is 1998.9999999999998 in float math.
    assert int(Decimal(29.9) * 100) == 2989  # noqa: RUF032 - the float trap, on purpose
    assert int(19.99 * 100) == 1998
    amounts = json.loads('{"a": 29.9, "b": 19.99, "c": 1.15}', parse_float=Decimal)
    assert [money.major_to_minor(v) for v in amounts.values()] == [2990, 1999, 115]


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "abc",
        "12,50",
        "1e5",
        "¥29.90",
        "29.90元",
        "١٢",
        "NaN",
        True,
        None,
        [],
        {},
        Decimal("Infinity"),
    ],
)
def test_garbage_amounts_are_refused_with_a_reason(garbage: object) -> None:
    with pytest.raises(money.MoneyError, match="amount"):
        money.major_to_minor(garbage)


def test_amounts_beyond_int64_are_refused() -> None:
    with pytest.raises(money.MoneyError, match="out of range"):
        money.major_to_minor("9" * 40)
    with pytest.raises(money.MoneyError, match="out of range"):
        money.minor_units(2**63)


def test_minor_units_take_integers_and_integer_strings_only() -> None:
    assert money.minor_units(5990) == 5990
    assert money.minor_units("5990") == 5990
    assert money.minor_units(Decimal("5990")) == 5990
    with pytest.raises(money.MoneyError, match="whole amount"):
        money.minor_units(Decimal("59.9"))
    with pytest.raises(money.MoneyError, match="whole amount"):
        money.minor_units("59.90")


def test_currency_exponents_follow_iso_4217() -> None:
    assert [money.exponent(c) for c in ("CNY", "USD", "JPY", "KRW", "KWD", "CLF")] == [
        2,
        2,
        0,
        0,
        3,
        4,
    ]
    for bad in ("cny", "RMB¥", "", "US"):
        with pytest.raises(money.MoneyError, match="ISO 4217"):
            money.exponent(bad)


def test_allocation_sums_to_the_total_exactly() -> None:
    assert money.allocate(23800, [19800, 6000]) == [18265, 5535]
    assert money.allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert money.allocate(5, [0, 0]) == [3, 2]
    assert money.allocate(0, [10, 20]) == [0, 0]
    assert money.allocate(7, []) == []
    parts = money.allocate(99_999, [3, 7, 11, 13])
    assert sum(parts) == 99_999


def test_zoneless_platform_times_are_beijing_time() -> None:
    assert times.local_time("2024-05-18 10:21:07") == datetime(2024, 5, 18, 2, 21, 7, tzinfo=UTC)
    # Midnight in Beijing is still the previous day in UTC.
    assert times.local_time("2024-11-11 00:00:05") == datetime(2024, 11, 10, 16, 0, 5, tzinfo=UTC)


def test_a_time_with_its_own_offset_keeps_it() -> None:
    got = times.local_time("2021-05-07 09:20:39.683+0800")
    assert got == datetime(2021, 5, 7, 1, 20, 39, 683000, tzinfo=UTC)


@pytest.mark.parametrize(
    "placeholder", ["", "   ", "0001-01-01 00:00:00", "1970-01-01 00:00:00", "1970-01-01 08:00:00"]
)
def test_placeholder_times_mean_no_time(placeholder: str) -> None:
    assert times.local_time(placeholder) is None


def test_unix_seconds_become_utc_and_zero_is_no_time() -> None:
    assert times.unix_seconds(1716000090) == datetime(2024, 5, 18, 2, 41, 30, tzinfo=UTC)
    assert times.unix_seconds("1731254500") == datetime(2024, 11, 10, 16, 1, 40, tzinfo=UTC)
    assert times.unix_seconds(0) is None
    with pytest.raises(times.TimeFormatError, match="milliseconds"):
        times.unix_seconds(1716000090000)
    with pytest.raises(times.TimeFormatError, match="Unix seconds"):
        times.unix_seconds("yesterday")


def test_iso8601_needs_an_offset_unless_a_zone_is_given() -> None:
    assert times.iso8601("2019-06-04T13:53:06-04:00") == datetime(2019, 6, 4, 17, 53, 6, tzinfo=UTC)
    assert times.iso8601("2024-05-18T02:21:30", UTC) == datetime(2024, 5, 18, 2, 21, 30, tzinfo=UTC)
    with pytest.raises(times.TimeFormatError, match="without a UTC offset"):
        times.iso8601("2024-05-18T02:21:30")


def test_strptime_patterns_and_milliseconds() -> None:
    got = times.formatted("18/05/2024 10:21", "%d/%m/%Y %H:%M")
    assert got == datetime(2024, 5, 18, 2, 21, tzinfo=UTC)
    assert times.unix_millis(1716000090123) == datetime(2024, 5, 18, 2, 41, 30, 123000, tzinfo=UTC)


@pytest.mark.parametrize("garbage", ["1", "str", "2024-13-01 00:00:00", "tomorrow"])
def test_unreadable_times_are_refused(garbage: str) -> None:
    with pytest.raises(times.TimeFormatError, match=repr(garbage)):
        times.local_time(garbage)


@pytest.mark.parametrize(
    ("value", "places", "minor"),
    [
        ("29.90", 2, 2990),  # as many decimals as the currency: the digits are the fen
        ("-0.50", 2, -50),
        ("29.9", 2, 2990),
        ("29.", 2, 2900),
        ("1.500", 2, 150),  # trailing zeros beyond the currency's decimals
        (Decimal("29.9"), 2, 2990),
        (Decimal("10.0"), 2, 1000),
        (Decimal("-0.0"), 2, 0),
        (Decimal("1E+2"), 2, 10000),  # exponent notation: read through Decimal
        (29, 2, 2900),
        (1000, 0, 1000),
        ("1.2345", 3, 1235),  # more decimals than the currency: rounded half up
    ],
)
def test_major_in_places_is_exact(value: object, places: int, minor: int) -> None:
    assert money.major_in_places(value, places) == minor


def test_major_in_places_refuses_what_major_to_minor_refuses() -> None:
    for bad in ("+5x", "١٢", " ", "1e5", "29.9.0"):
        with pytest.raises(money.MoneyError, match="not an amount"):
            money.major_in_places(bad, 2)
    with pytest.raises(money.MoneyError, match="out of range"):
        money.major_in_places(2**62, 2)


def test_allocation_of_one_line_is_the_total() -> None:
    assert money.allocate(2990, [0]) == [2990]
    assert money.allocate(2990, [-5]) == [2990]
    with pytest.raises(money.MoneyError, match="negative"):
        money.allocate(-1, [1])


@pytest.mark.parametrize(
    "zone",
    [UTC, times.BEIJING, timezone(timedelta(hours=-12)), ZoneInfo("America/New_York")],
)
def test_zoned_times_agree_with_astimezone(zone: tzinfo) -> None:
    for text in ("2024-05-18 10:21:07.250", "2024-03-10 02:30:00", "2024-11-03 01:30:00"):
        naive = datetime.fromisoformat(text)
        assert times.local_time(text, zone) == naive.replace(tzinfo=zone).astimezone(UTC)
        assert times.local_time(text, zone).tzinfo is UTC  # type: ignore[union-attr]
    offset = "2021-05-07 09:20:39.683-0930"
    assert times.local_time(offset, zone) == datetime.fromisoformat(offset).astimezone(UTC)


def test_times_beyond_the_calendar_in_utc_are_refused() -> None:
    with pytest.raises(times.TimeFormatError, match="out of range"):
        times.local_time("9999-12-31 23:00:00", timezone(timedelta(hours=-12)))
    with pytest.raises(times.TimeFormatError, match="out of range"):
        times.iso8601("9999-12-31T23:00:00-05:00")
