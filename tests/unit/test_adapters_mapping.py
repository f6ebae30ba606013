"""A new channel by configuration: mapping files, their validation, WooCommerce."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from adapters.mapping import MappingError, load_mapping, parse_mapping
from hub.domain.orders import AfterSaleState, AfterSaleType, OrderStatus, TranslationError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"
WOOCOMMERCE = Path(registry.__file__).parent / "channels" / "woocommerce.toml"

# A made-up channel shaped like a Chinese platform: an envelope, fen, Beijing time, Unix
# seconds, a numeric status, per-line after-sale codes.
YOUZAN_LIKE = """
name = "youzan-like"
envelopes = ["response.full_order_info", ""]

[order]
id = "order_info.tid"
default_currency = "CNY"
unit = "fen"
total_paid = "pay_info.payment"
shipping_fee = "pay_info.post_fee"
buyer_note = ["remark_info.buyer_message"]
seller_note = ["remark_info.trade_memo"]

[times]
zone = "Asia/Shanghai"
format = "%Y-%m-%d %H:%M:%S"
created_at = "order_info.created"
paid_at = { path = "order_info.pay_time_unix", format = "unix_seconds" }

[status]
path = "order_info.status"

[status.map]
"10" = "PENDING_PAYMENT"
"20" = "PAID"
"30" = "SHIPPED"
"100" = "DELIVERED"
"99" = "CLOSED"

[recipient]
name = "address_info.receiver_name"
phone = "address_info.receiver_tel"
province = "address_info.delivery_province"
city = "address_info.delivery_city"
district = "address_info.delivery_district"
address = "address_info.delivery_address"

[lines]
path = "orders[]"
id = "oid"
sku = ["outer_sku_id", "sku_id"]
native_sku_id = "sku_id"
title = "title"
quantity = "num"
unit_price = "price"
paid = "payment"

[lines.after_sale]
path = "refund_type"
map = { REFUND_ONLY = "REFUND_ONLY", REFUND_AND_RETURN = "RETURN_REFUND" }
state = "OPEN"
"""

YOUZAN_ORDER: dict[str, Any] = {
    "response": {
        "full_order_info": {
            "order_info": {
                "tid": "E20240518102107012345",
                "status": 20,
                "created": "2024-05-18 10:21:07",
                "pay_time_unix": 1716000090,
            },
            "pay_info": {"payment": 24800, "post_fee": 1000},
            "remark_info": {"buyer_message": "加急", "trade_memo": "VIP"},
            "address_info": {
                "receiver_name": "张*",
                "receiver_tel": "138****0000",
                "delivery_province": "浙江省",
                "delivery_city": "杭州市",
                "delivery_district": "西湖区",
                "delivery_address": "文一西路**号",
            },
            "orders": [
                {
                    "oid": 1,
                    "outer_sku_id": "TEE-01-BLK-L",
                    "sku_id": 501,
                    "title": "T恤",
                    "num": 2,
                    "price": 9900,
                    "payment": 18265,
                },
                {
                    "oid": 2,
                    "outer_sku_id": "",
                    "sku_id": 502,
                    "title": "帽子",
                    "num": 1,
                    "price": 6000,
                    "payment": 5535,
                    "refund_type": "REFUND_ONLY",
                },
            ],
        }
    }
}


def load(name: str) -> Any:
    return registry.parse_payload((FIXTURES / name).read_bytes())


def woo() -> Any:
    return load("woocommerce_order_created.json")


def test_woocommerce_order_translates_with_only_its_mapping_file() -> None:
    mapping = load_mapping(WOOCOMMERCE)
    got = mapping.translate(woo(), "woo-1")
    assert (got.platform, got.shop_id, got.platform_order_id) == ("woocommerce", "woo-1", "727")
    assert (got.status, got.platform_status) == (OrderStatus.PAID, "processing")
    assert (got.currency, got.total_paid_fen, got.shipping_fee_fen) == ("USD", 6980, 1000)
    assert (got.buyer_note, got.seller_note) == ("Gift wrap please - it's a birthday present", "")
    assert got.after_sale_type is AfterSaleType.NONE
    r = got.recipient
    assert (r.name, r.phone, r.city, r.zip, r.country) == (
        "Ada Lovelace",
        "+44 20 7946 0000",
        "London",
        "SW1Y 4JH",
        "GB",
    )
    assert r.address == "12 St James's Square Flat 3"
    assert not r.pii_protected
    (line,) = got.lines
    assert (line.platform_line_id, line.platform_sku_id, line.native_sku_id) == (
        "315",
        "MUG-03-WHT",
        "93:101",
    )
    assert (line.title, line.quantity, line.unit_price_fen, line.paid_fen) == (
        "Mug - White",
        2,
        2990,
        5980,
    )


def test_woocommerce_gmt_times_without_suffix_are_utc() -> None:
    got = load_mapping(WOOCOMMERCE).translate(woo(), "woo-1")
    assert got.created_at == datetime(2024, 5, 18, 2, 21, 7, tzinfo=UTC)
    assert got.paid_at == datetime(2024, 5, 18, 2, 21, 30, tzinfo=UTC)
    assert got.updated_at == datetime(2024, 5, 18, 2, 25, 2, tzinfo=UTC)


def test_woocommerce_is_a_registered_channel_out_of_the_box() -> None:
    assert "woocommerce" in registry.platforms()
    text = (FIXTURES / "woocommerce_order_created.json").read_text()
    got = registry.translate("woocommerce", text, "woo-1")
    assert got.lines[0].unit_price_fen == 2990  # "price": 29.9, a JSON number


def test_woocommerce_refunded_order_is_closed_with_an_after_sale() -> None:
    payload = woo()
    payload.update(status="refunded", refunds=[{"id": 726, "reason": "", "total": "-69.80"}])
    got = load_mapping(WOOCOMMERCE).translate(payload, "woo-1")
    assert (got.status, got.after_sale_type) == (OrderStatus.CLOSED, AfterSaleType.OTHER)


def test_woocommerce_unknown_status_names_the_field() -> None:
    payload = woo()
    payload["status"] = "shipped-by-plugin"
    with pytest.raises(TranslationError) as caught:
        load_mapping(WOOCOMMERCE).translate(payload, "woo-1")
    assert caught.value.field == "status"
    assert "shipped-by-plugin" in caught.value.reason


def test_woocommerce_bad_line_amount_names_the_line() -> None:
    payload = woo()
    payload["line_items"][0]["total"] = "fifty"
    with pytest.raises(TranslationError) as caught:
        load_mapping(WOOCOMMERCE).translate(payload, "woo-1")
    assert caught.value.field == "line_items[0].total"


def test_a_mapping_reads_envelopes_fen_beijing_time_and_line_after_sales() -> None:
    mapping = parse_mapping(tomllib.loads(YOUZAN_LIKE))
    got = mapping.translate(YOUZAN_ORDER, "yz-1")
    assert (got.platform_order_id, got.status, got.platform_status) == (
        "E20240518102107012345",
        OrderStatus.PAID,
        "20",
    )
    assert (got.total_paid_fen, got.shipping_fee_fen, got.currency) == (24800, 1000, "CNY")
    assert got.created_at == datetime(2024, 5, 18, 2, 21, 7, tzinfo=UTC)
    assert got.paid_at == datetime(2024, 5, 18, 2, 41, 30, tzinfo=UTC)
    tee, cap = got.lines
    assert (tee.platform_sku_id, cap.platform_sku_id, cap.native_sku_id) == (
        "TEE-01-BLK-L",
        "502",
        "502",
    )
    assert (tee.after_sale_type, cap.after_sale_type) == (
        AfterSaleType.NONE,
        AfterSaleType.REFUND_ONLY,
    )
    assert cap.after_sale_state is AfterSaleState.OPEN
    assert got.after_sale_type is AfterSaleType.REFUND_ONLY
    assert got.recipient.pii_protected  # masked values, detected
    assert (got.buyer_note, got.seller_note) == ("加急", "VIP")
    # The bare order (no envelope) works as well.
    assert mapping.translate(YOUZAN_ORDER["response"]["full_order_info"], "yz-1") == got


def test_a_mapping_without_line_paid_splits_the_goods_total() -> None:
    data = tomllib.loads(YOUZAN_LIKE)
    del data["lines"]["paid"]
    got = parse_mapping(data).translate(YOUZAN_ORDER, "yz-1")
    assert [line.paid_fen for line in got.lines] == [18265, 5535]


def test_json_mapping_files_work_like_toml(tmp_path: Path) -> None:
    file = tmp_path / "woocommerce.json"
    file.write_text(json.dumps(tomllib.loads(WOOCOMMERCE.read_text())))
    assert load_mapping(file).translate(woo(), "w") == load_mapping(WOOCOMMERCE).translate(
        woo(), "w"
    )


Edit = Callable[[dict[str, Any]], object]


@pytest.mark.parametrize(
    ("edit", "where", "reason"),
    [
        (lambda d: d.pop("name"), "name", "required"),
        (lambda d: d.update(name="Woo Commerce"), "name", "not a platform name"),
        (
            lambda d: d["lines"].update(unit_price={"path": "price", "unit": "cents"}),
            "lines.unit_price.unit",
            "not a money unit",
        ),
        (lambda d: d["status"]["map"].update({"30": "SHIPPING"}), "status.map.30", "not one of"),
        (lambda d: d["order"].update(totl_paid="x"), "order.totl_paid", "unknown key"),
        (lambda d: d["times"].update(zone="Mars/Olympus"), "times.zone", "unknown time zone"),
        (lambda d: d["times"].update(format="dd/mm/yyyy"), "times.format", "strptime"),
        (lambda d: d["lines"].update(path="orders[x]"), "lines.path", "malformed path"),
        (
            lambda d: d["lines"].update(after_sale={"map": {"1": "REFUND_ONLY"}}),
            "lines.after_sale.path",
            "required",
        ),
        (lambda d: d["order"].pop("default_currency"), "order.currency", "default_currency"),
        (
            lambda d: d["recipient"].update(name="{address_info.receiver_name"),
            "recipient.name",
            "unbalanced",
        ),
        (lambda d: d["lines"].pop("quantity"), "lines.quantity", "required"),
        (lambda d: d.update(status="order_info.status"), "status", "expected a table"),
        (
            lambda d: d.update(after_sale={"path": "x", "state": "NONE"}),
            "after_sale.state",
            "OPEN or DONE",
        ),
    ],
)
def test_mapping_validation_names_the_key(edit: Edit, where: str, reason: str) -> None:
    data = tomllib.loads(YOUZAN_LIKE)
    edit(data)
    with pytest.raises(MappingError) as caught:
        parse_mapping(data)
    assert caught.value.where == where
    assert reason in caught.value.reason


def test_load_mapping_reports_bad_toml_with_the_file_name(tmp_path: Path) -> None:
    file = tmp_path / "youzan.toml"
    file.write_text('name = "youzan"\n[order\nid = "tid"\n')
    with pytest.raises(MappingError, match=r"youzan\.toml: not valid TOML"):
        load_mapping(file)
    with pytest.raises(MappingError, match=r"ends in \.toml or \.json"):
        load_mapping(tmp_path / "youzan.yaml")
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "missing.toml")


def test_a_mapping_cannot_replace_a_builtin_platform() -> None:
    data = tomllib.loads(YOUZAN_LIKE)
    data["name"] = "taobao"
    with pytest.raises(ValueError, match="built-in"):
        registry.register_channel("taobao", parse_mapping(data))


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        (lambda p: p.update(shipping="London"), "shipping", "expected an object, got a string"),
        (lambda p: p.update(billing=[]), "billing", "expected an object, got a list"),
        (lambda p: p["line_items"][0].update(quantity="two"), "line_items[0].quantity", "whole"),
        (lambda p: p["line_items"][0].update(quantity=0), "line_items[0].quantity", "positive"),
        (lambda p: p["line_items"][0].pop("quantity"), "line_items[0].quantity", "missing"),
        (lambda p: p["line_items"][0].update(id=3.5), "line_items[0].id", "floating-point"),
        (lambda p: p["line_items"][0].update(sku=["MUG"]), "line_items[0].sku", "expected text"),
        (lambda p: p.update(line_items={"id": 1}), "line_items", "expected a list"),
        (lambda p: p.update(line_items=[]), "line_items[]", "without lines"),
        (lambda p: p.update(total=""), "total", "missing"),
        (lambda p: p.update(currency="US"), "currency", "ISO 4217"),
        (lambda p: p.update(date_paid_gmt="soon"), "date_paid_gmt", "ISO 8601"),
        (lambda p: p.update(date_paid_gmt=20240518), "date_paid_gmt", "expected a time"),
        (lambda p: p.update(customer_note=["a"]), "customer_note", "expected text"),
        (lambda p: p.update(status=None), "status", "missing"),
        (lambda p: p.update(refunds={"id": 1}), "refunds", "expected a list"),
    ],
)
def test_woocommerce_errors_name_the_field(edit: Edit, field: str, reason: str) -> None:
    payload = woo()
    edit(payload)
    with pytest.raises(TranslationError) as caught:
        load_mapping(WOOCOMMERCE).translate(payload, "woo-1")
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_woocommerce_inside_its_envelope_names_fields_below_it() -> None:
    payload = woo()
    payload["shipping"]["city"] = {"name": "London"}
    with pytest.raises(TranslationError) as caught:
        load_mapping(WOOCOMMERCE).translate({"order": payload}, "woo-1")
    assert caught.value.field == "order.shipping.city"
    assert load_mapping(WOOCOMMERCE).translate({"order": woo()}, "w") == load_mapping(
        WOOCOMMERCE
    ).translate(woo(), "w")


def test_a_mapping_compiles_list_paths_templates_and_alternatives() -> None:
    data = tomllib.loads(YOUZAN_LIKE)
    data["order"].update(
        id=["order_info.no_such_id", "order_info.tid"],
        total_paid="orders[].payment",  # summed over the lines
        buyer_note=["remark_info.none", "orders[].title", "{order_info.tid}"],
    )
    data["times"]["updated_at"] = {"path": "order_info.stamps[0]", "format": "unix_ms"}
    data["lines"]["title"] = "{sku_id} · {title} x{num}"
    data["lines"]["quantity"] = "nums[0]"
    order = json.loads(json.dumps(YOUZAN_ORDER))
    info = order["response"]["full_order_info"]
    info["order_info"]["stamps"] = [1716000090123]
    for line in info["orders"]:
        line["nums"] = [line["num"]]
    got = parse_mapping(data).translate(order, "yz-1")
    assert (got.platform_order_id, got.total_paid_fen) == ("E20240518102107012345", 18265 + 5535)
    assert got.buyer_note == "T恤\n帽子"  # a list path's texts, one per line
    assert got.updated_at == datetime(2024, 5, 18, 2, 41, 30, 123000, tzinfo=UTC)
    assert [(line.title, line.quantity) for line in got.lines] == [
        ("501 · T恤 x2", 2),
        ("502 · 帽子 x1", 1),
    ]
    info["orders"][1]["nums"] = ["1.5"]
    with pytest.raises(TranslationError) as caught:
        parse_mapping(data).translate(order, "yz-1")
    assert caught.value.field == "response.full_order_info.orders[1].nums[0]"
    info["orders"][1].update(nums=[1], sku_id=None, outer_sku_id=None)
    with pytest.raises(TranslationError) as caught:
        parse_mapping(data).translate(order, "yz-1")
    assert caught.value.field == "response.full_order_info.orders[1]"
    assert "no SKU code" in caught.value.reason


def test_compiled_mappings_compare_by_their_fields() -> None:
    data = tomllib.loads(YOUZAN_LIKE)
    assert parse_mapping(data) == parse_mapping(tomllib.loads(YOUZAN_LIKE))
    data["status"]["default"] = "ON_HOLD"
    assert parse_mapping(data) != parse_mapping(tomllib.loads(YOUZAN_LIKE))
