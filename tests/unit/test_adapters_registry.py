"""The registry: one entry point, JSON with exact decimals, configured channels, and no
payload — however malformed — crashing an adapter."""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import douyin, jd, pdd, registry, shopify, taobao
from adapters.mapping import load_mapping, parse_mapping
from hub.domain.orders import PlatformOrder, TranslationError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"
WOOCOMMERCE = Path(registry.__file__).parent / "channels" / "woocommerce.toml"

CASES = [
    ("taobao", "taobao_trade_fullinfo_get_sample.json"),
    ("taobao", "taobao_trades_sold_get_municipality.json"),
    ("taobao", "taobao_trade_county_city_refunds.json"),
    ("jd", "jd_pop_order_get_sample.json"),
    ("jd", "jd_order_info_cod_bare.json"),
    ("jd", "jd_pop_order_search_locked.json"),
    ("douyin", "douyin_order_detail_sample.json"),
    ("douyin", "douyin_refund_only_closed.json"),
    ("douyin", "douyin_search_list_risk_hold.json"),
    ("pdd", "pdd_order_information_get_sample.json"),
    ("pdd", "pdd_order_list_get_29_9.json"),
    ("shopify", "shopify_orders_create_sample.json"),
    ("shopify", "shopify_order_jpy_refunds.json"),
    ("woocommerce", "woocommerce_order_created.json"),
]


def load(name: str) -> Any:
    return registry.parse_payload((FIXTURES / name).read_bytes())


@pytest.mark.parametrize(("platform", "name"), CASES)
def test_registry_translates_every_fixture_by_platform_name(platform: str, name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    from_bytes = registry.translate(platform, raw, "shop-1")
    assert from_bytes.platform == platform
    assert from_bytes.lines and from_bytes.total_paid_fen > 0
    assert registry.translate(platform, raw.decode(), "shop-1") == from_bytes
    assert registry.translate(platform, load(name), "shop-1") == from_bytes


def test_registry_parses_json_numbers_as_decimals() -> None:
    raw = (FIXTURES / "pdd_order_list_get_29_9.json").read_text()
    assert registry.parse_payload(raw)["order_list_get_response"]["order_list"][0][
        "pay_amount"
    ] == Decimal("29.9")
    assert registry.translate("pdd", raw, "pdd-1").total_paid_fen == 2990


def test_unknown_platform_names_the_platform_field() -> None:
    with pytest.raises(TranslationError) as caught:
        registry.translate("aliexpress", "{}", "shop-1")
    assert caught.value.field == "platform"
    assert "taobao" in caught.value.reason and "woocommerce" in caught.value.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "not JSON"),
        ("{'tid': 1}", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"pay_amount": NaN}', "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ],
)
def test_payloads_that_are_not_json_are_translation_errors(raw: str | bytes, reason: str) -> None:
    with pytest.raises(TranslationError) as caught:
        registry.translate("pdd", raw, "pdd-1")
    assert caught.value.field == "payload"
    assert reason in caught.value.reason


@pytest.mark.parametrize("platform", ["taobao", "jd", "douyin", "pdd", "shopify", "woocommerce"])
@pytest.mark.parametrize("payload", ["[]", "null", "42", '"order"', "{}"])
def test_payloads_that_are_no_order_name_a_field(platform: str, payload: str) -> None:
    with pytest.raises(TranslationError) as caught:
        registry.translate(platform, payload, "shop-1")
    assert caught.value.field


def test_a_configured_channel_is_translatable_once_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_channels", {})
    data = tomllib.loads(WOOCOMMERCE.read_text())
    data["name"] = "my-woo-shop"
    with pytest.raises(TranslationError):
        registry.translate("my-woo-shop", "{}", "w")
    registry.register_channel("my-woo-shop", parse_mapping(data))
    assert "my-woo-shop" in registry.platforms()
    got = registry.translate(
        "my-woo-shop", (FIXTURES / "woocommerce_order_created.json").read_bytes(), "w"
    )
    assert (got.platform, got.total_paid_fen) == ("my-woo-shop", 6980)


def test_channels_load_from_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_channels", {})
    (tmp_path / "woocommerce.toml").write_text(WOOCOMMERCE.read_text())
    assert registry.load_channels(tmp_path) == ["woocommerce"]
    with pytest.raises(ValueError, match="not 'other'"):
        registry.register_channel("other", load_mapping(WOOCOMMERCE))


# --------------------------------------------------------------------------- fuzzing

TRANSLATORS: dict[str, Callable[[Any, str], PlatformOrder]] = {
    "taobao": taobao.translate,
    "jd": jd.translate,
    "douyin": douyin.translate,
    "pdd": pdd.translate,
    "shopify": shopify.translate,
    "woocommerce": load_mapping(WOOCOMMERCE).translate,
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.decimals(allow_nan=False, allow_infinity=False, places=4)
    | st.text(max_size=12)
    | st.sampled_from(["", "0001-01-01 00:00:00", "29.9", "1", "-1", "NaN", "2024-13-40 25:61:61"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_paths(value, (*prefix, i)))
    return found


def _replace(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = root
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return root


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_no_mutated_payload_crashes_an_adapter(case: tuple[str, str], data: st.DataObject) -> None:
    platform, name = case
    payload = copy.deepcopy(load(name))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(payload)))
        if path and data.draw(st.booleans()):
            parent = payload
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
        else:
            payload = _replace(payload, path, data.draw(json_values))
    try:
        got = TRANSLATORS[platform](payload, "shop-1")
    except TranslationError as error:
        assert error.field
        assert "Traceback" not in str(error)
    else:
        assert isinstance(got, PlatformOrder)
        assert all(isinstance(line.paid_fen, int) for line in got.lines)


@settings(max_examples=200, deadline=None)
@given(platform=st.sampled_from(sorted(TRANSLATORS)), payload=json_values)
def test_no_arbitrary_json_crashes_an_adapter(platform: str, payload: Any) -> None:
    try:
        TRANSLATORS[platform](payload, "shop-1")
    except TranslationError as error:
        assert error.field


def test_fuzz_cases_cover_every_fixture() -> None:
    names = {name for _, name in CASES}
    orders = {
        p.name
        for p in FIXTURES.glob("*.json")
        if not p.name.startswith(("taobao_refund", "douyin_after_sale", "pdd_refund"))
    }
    assert names == orders
    assert json.loads((FIXTURES / "woocommerce_order_created.json").read_text())["id"] == 727
