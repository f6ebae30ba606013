"""Pinduoduo orders and after-sales → the unified order."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters import pdd, registry
from hub.domain.orders import AfterSaleState, AfterSaleType, OrderStatus, TranslationError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"


def load(name: str) -> Any:
    return registry.parse_payload((FIXTURES / name).read_bytes())


def listed() -> Any:
    return load("pdd_order_list_get_29_9.json")


def first(payload: Any) -> Any:
    return payload["order_list_get_response"]["order_list"][0]


def test_pdd_yuan_number_29_9_is_2990_fen() -> None:
    payload = listed()
    assert first(payload)["pay_amount"] == Decimal("29.9")  # the digits, not a float
    got = pdd.translate(payload, "pdd-1")
    assert got.total_paid_fen == 2990
    line = got.lines[0]
    assert (line.unit_price_fen, line.paid_fen, line.quantity) == (2990, 2990, 1)


def test_pdd_list_response_and_bare_order_translate_alike() -> None:
    payload = listed()
    assert pdd.translate(payload, "pdd-1") == pdd.translate(first(payload), "pdd-1")
    information = {"order_info_get_response": {"order_info": first(payload)}}
    assert pdd.translate(information, "pdd-1") == pdd.translate(payload, "pdd-1")


def test_pdd_sample_fields() -> None:
    got = pdd.translate(load("pdd_order_information_get_sample.json"), "pdd-1")
    assert (got.platform_order_id, got.status) == ("240518-123456789012345", OrderStatus.PAID)
    assert got.platform_status == (
        "order_status=1;confirm_status=1;group_status=1;risk_control_status=0;refund_status=1;after_sales_status=0"
    )
    assert (got.total_paid_fen, got.shipping_fee_fen) == (24800, 1000)
    assert (got.buyer_note, got.seller_note) == ("请发顺丰，谢谢", "已备赠品")
    assert got.paid_at == datetime(2024, 5, 18, 2, 21, 30, tzinfo=UTC)
    tee, cap = got.lines
    assert (tee.platform_line_id, tee.platform_sku_id, tee.native_sku_id) == (
        "1000000001",
        "TEE-01-BLK-L",
        "1000000001",
    )
    # No per-line paid amount: the 238.00 of goods is split by list price.
    assert (tee.unit_price_fen, tee.paid_fen, cap.paid_fen) == (9900, 18265, 5535)


def test_pdd_ciphertext_is_kept_and_flagged() -> None:
    r = pdd.translate(listed(), "pdd-1").recipient
    assert r.name == "~AgAAAAE8mM0BbLNpYwCsEk1m4mPZ~0~"
    assert r.address == "~AgAAAAE8mM0DbLNpYwCsEk1m4mPZ~0~"
    assert (r.province, r.city, r.district, r.country) == ("江苏省", "南京市", "玄武区", "中国")
    assert r.pii_protected


def test_pdd_after_shipment_the_masks_are_what_is_left() -> None:
    payload = listed()
    order = first(payload)
    order["order_status"] = 2
    order["receiver_name"] = order["receiver_phone"] = order["receiver_address"] = ""
    got = pdd.translate(payload, "pdd-1")
    assert (got.recipient.name, got.recipient.phone, got.recipient.address) == (
        "孙*",
        "188****1111",
        "中山路**号",
    )
    assert got.recipient.pii_protected
    assert got.status is OrderStatus.SHIPPED


@pytest.mark.parametrize(
    ("codes", "status"),
    [
        ({}, OrderStatus.PAID),
        ({"risk_control_status": 1}, OrderStatus.ON_HOLD),
        ({"group_status": 0}, OrderStatus.ON_HOLD),  # paid, group buy still forming
        ({"group_status": 2}, OrderStatus.CANCELLED),  # group failed: voided and refunded
        ({"confirm_status": 2}, OrderStatus.CANCELLED),
        ({"confirm_status": 0, "group_status": 0}, OrderStatus.ON_HOLD),
        ({"confirm_status": 0, "group_status": 0, "pay_time": ""}, OrderStatus.PENDING_PAYMENT),
        ({"order_status": 2}, OrderStatus.SHIPPED),
        ({"order_status": 3}, OrderStatus.DELIVERED),
    ],
)
def test_pdd_paid_means_confirmed_grouped_and_not_under_review(
    codes: dict[str, Any], status: OrderStatus
) -> None:
    payload = listed()
    first(payload).update(codes)
    assert pdd.translate(payload, "pdd-1").status is status


def test_pdd_two_after_sale_tables_read_code_2_differently() -> None:
    listed_record = pdd.after_sale(load("pdd_refund_increment_get.json"))
    information = pdd.after_sale(load("pdd_refund_information_get.json"))
    assert listed_record.platform_type == "list:2" and information.platform_type == "information:2"
    assert (listed_record.type, listed_record.state) == (
        AfterSaleType.REFUND_ONLY,
        AfterSaleState.DONE,
    )
    assert (information.type, information.state) == (
        AfterSaleType.RETURN_REFUND,
        AfterSaleState.OPEN,
    )
    # The list endpoint writes yuan strings, the information endpoint fen integers.
    assert listed_record.refund_fen == information.refund_fen == 2990
    assert listed_record.platform_sku_id == information.platform_sku_id == "1000000003"


def test_pdd_after_sale_table_must_be_known() -> None:
    record = load("pdd_refund_information_get.json")
    del record["refund_amount"]
    with pytest.raises(TranslationError) as caught:
        pdd.after_sale(record)
    assert caught.value.field == "after_sales_type"
    assert pdd.after_sale(record, table="list").type is AfterSaleType.REFUND_ONLY
    assert pdd.after_sale(record, table="information").type is AfterSaleType.RETURN_REFUND


@pytest.mark.parametrize(
    ("after_sales_status", "order_status", "kind", "state"),
    [
        (2, 1, AfterSaleType.REFUND_ONLY, AfterSaleState.OPEN),
        (10, 1, AfterSaleType.REFUND_ONLY, AfterSaleState.DONE),  # refunded before shipping
        (10, 2, AfterSaleType.OTHER, AfterSaleState.DONE),  # kind not in the order: see record
        (3, 2, AfterSaleType.RETURN_REFUND, AfterSaleState.OPEN),
        (11, 2, AfterSaleType.NONE, AfterSaleState.NONE),  # the buyer withdrew
    ],
)
def test_pdd_order_after_sales_status(
    after_sales_status: int, order_status: int, kind: AfterSaleType, state: AfterSaleState
) -> None:
    payload = listed()
    first(payload).update(after_sales_status=after_sales_status, order_status=order_status)
    got = pdd.translate(payload, "pdd-1")
    assert got.after_sale_type is kind
    assert (got.lines[0].after_sale_type, got.lines[0].after_sale_state) == (kind, state)
    assert got.status is not OrderStatus.CANCELLED


def test_pdd_doc_placeholders_are_refused_naming_the_field() -> None:
    payload = listed()
    first(payload)["pay_time"] = "1"  # the official doc example's placeholder
    with pytest.raises(TranslationError) as caught:
        pdd.translate(payload, "pdd-1")
    assert caught.value.field == "order_list_get_response.order_list[0].pay_time"


def test_pdd_list_with_two_orders_is_refused() -> None:
    payload = listed()
    orders = payload["order_list_get_response"]["order_list"]
    orders.append(orders[0])
    with pytest.raises(TranslationError) as caught:
        pdd.translate(payload, "pdd-1")
    assert caught.value.field == "order_list_get_response.order_list"
    assert "exactly one" in caught.value.reason


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("goods_price", "9,90", "not an amount"),
        ("goods_price", None, "missing"),
        ("goods_count", 0, "quantity must be positive"),
        ("goods_count", "two", "expected a whole number"),
        ("sku_id", 12.5, "floating-point"),
        ("sku_id", " ", "missing"),
        ("outer_id", ["x"], "expected text"),
        ("goods_name", {"zh": "帽子"}, "expected text"),
    ],
)
def test_pdd_a_bad_item_field_names_its_item(key: str, value: Any, reason: str) -> None:
    payload = load("pdd_order_information_get_sample.json")
    payload["order_info_get_response"]["order_info"]["item_list"][1][key] = value
    with pytest.raises(TranslationError) as caught:
        pdd.translate(payload, "pdd-1")
    assert caught.value.field == f"order_info_get_response.order_info.item_list[1].{key}"
    assert reason in caught.value.reason


def test_pdd_values_in_other_shapes_read_as_before() -> None:
    payload = load("pdd_order_information_get_sample.json")
    order = payload["order_info_get_response"]["order_info"]
    order.update(pay_amount="248.00", postage=10, order_status="1", order_sn=240518123)
    order["item_list"][0].update(sku_id=1000000001, goods_count="2", goods_price="99", outer_id=7)
    del order["item_list"][1]["outer_id"]
    got = pdd.translate(payload, "pdd-1")
    assert (got.platform_order_id, got.total_paid_fen, got.shipping_fee_fen) == (
        "240518123",
        24800,
        1000,
    )
    assert got.platform_status.startswith("order_status=1;confirm_status=1;")
    tee, cap = got.lines
    assert (tee.platform_line_id, tee.platform_sku_id, tee.quantity, tee.unit_price_fen) == (
        "1000000001",
        "7",
        2,
        9900,
    )
    assert cap.platform_sku_id == cap.native_sku_id == "1000000002"  # no outer_id: the SKU id


def test_pdd_missing_status_fields_are_left_out_of_platform_status() -> None:
    payload = listed()
    del first(payload)["refund_status"]
    first(payload)["risk_control_status"] = None
    got = pdd.translate(payload, "pdd-1")
    assert "refund_status" not in got.platform_status
    assert "risk_control_status" not in got.platform_status


def test_pdd_service_fees_come_off_the_goods_total() -> None:
    payload = load("pdd_order_information_get_sample.json")
    order = payload["order_info_get_response"]["order_info"]
    order["service_fee_detail"] = [{"service_fee": Decimal("8.00")}, {"service_fee": None}]
    got = pdd.translate(payload, "pdd-1")
    assert sum(line.paid_fen for line in got.lines) == 24800 - 1000 - 800
    order["service_fee_detail"][1]["service_fee"] = "eight"
    with pytest.raises(TranslationError) as caught:
        pdd.translate(payload, "pdd-1")
    assert caught.value.field == (
        "order_info_get_response.order_info.service_fee_detail[1].service_fee"
    )
