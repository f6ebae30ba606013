"""Shopify orders → the unified order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import registry, shopify
from hub.domain.orders import AfterSaleState, AfterSaleType, OrderStatus, TranslationError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"


def load(name: str) -> Any:
    return registry.parse_payload((FIXTURES / name).read_bytes())


def jpy() -> Any:
    return load("shopify_order_jpy_refunds.json")


def test_shopify_keeps_the_shop_currency() -> None:
    got = shopify.translate(jpy(), "jp-store")
    assert got.currency == "JPY"
    # JPY has no minor unit: "1000" yen is 1000, not 100000.
    mug, cap = got.lines
    assert (mug.unit_price_fen, mug.quantity, mug.paid_fen) == (1000, 2, 1800)  # 200 discount
    assert (cap.unit_price_fen, cap.paid_fen) == (1500, 1500)
    assert (got.total_paid_fen, got.shipping_fee_fen) == (3800, 500)
    usd = shopify.translate(load("shopify_orders_create_sample.json"), "cn-store")
    assert (usd.currency, usd.total_paid_fen) == ("CNY", 24800)


def test_shopify_ids_beyond_2_53_stay_exact() -> None:
    got = shopify.translate(jpy(), "jp-store")
    assert got.platform_order_id == "9007199254740993123"
    assert str(int(float(9007199254740993123))) != got.platform_order_id  # what a float would do


def test_shopify_refunds_set_the_after_sale_per_line() -> None:
    got = shopify.translate(jpy(), "jp-store")
    mug, cap = got.lines
    assert (mug.after_sale_type, mug.after_sale_state) == (
        AfterSaleType.REFUND_ONLY,
        AfterSaleState.DONE,
    )
    assert (cap.after_sale_type, cap.after_sale_state) == (
        AfterSaleType.RETURN_REFUND,
        AfterSaleState.DONE,
    )
    assert got.after_sale_type is AfterSaleType.OTHER  # two kinds on one order
    assert got.status is OrderStatus.DELIVERED  # fulfilled, and the shipment was delivered
    assert got.platform_status == "financial_status=partially_refunded;fulfillment_status=fulfilled"


def test_shopify_money_only_refund_is_refund_only_on_the_order() -> None:
    payload = load("shopify_orders_create_sample.json")
    payload["refunds"] = [
        {
            "id": 1,
            "refund_line_items": [],
            "transactions": [{"kind": "refund", "status": "success", "amount": "10.00"}],
        }
    ]
    got = shopify.translate(payload, "cn-store")
    assert got.after_sale_type is AfterSaleType.REFUND_ONLY
    assert {line.after_sale_type for line in got.lines} == {AfterSaleType.NONE}


def test_shopify_cancel_restock_is_not_refund_only() -> None:
    payload = jpy()
    payload["order"]["refunds"][0]["refund_line_items"][0]["restock_type"] = "cancel"
    assert shopify.translate(payload, "jp-store").lines[0].after_sale_type is AfterSaleType.OTHER


def test_shopify_line_without_sku_is_mapped_by_variant() -> None:
    cap = shopify.translate(jpy(), "jp-store").lines[1]
    assert (cap.platform_line_id, cap.platform_sku_id, cap.native_sku_id) == (
        "13688971499002",
        "45012345670002",
        "45012345670002",
    )
    assert cap.title == "Cap - Red"


def test_shopify_webhook_body_and_rest_envelope_translate_alike() -> None:
    body = load("shopify_orders_create_sample.json")
    assert shopify.translate(body, "s") == shopify.translate({"order": body}, "s")


def test_shopify_note_attributes_join_the_buyer_note() -> None:
    got = shopify.translate(load("shopify_orders_create_sample.json"), "cn-store")
    assert got.buyer_note == "Please ship with SF Express\ngift_wrap: yes"
    assert got.seller_note == ""


def test_shopify_times_are_utc_and_paid_at_is_the_capture() -> None:
    got = shopify.translate(jpy(), "jp-store")
    assert got.created_at == datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
    assert got.paid_at == datetime(2024, 6, 1, 0, 0, 7, tzinfo=UTC)  # the sale transaction
    assert got.updated_at == datetime(2024, 6, 5, 9, 30, tzinfo=UTC)
    sample = shopify.translate(load("shopify_orders_create_sample.json"), "cn-store")
    assert sample.paid_at == datetime(2024, 5, 18, 2, 21, 30, tzinfo=UTC)  # processed_at


def test_shopify_recipient() -> None:
    r = shopify.translate(jpy(), "jp-store").recipient
    assert (r.name, r.phone, r.city, r.province) == (
        "Taro Yamada",
        "+81 90-0000-0000",
        "Shibuya-ku",
        "Tokyo",
    )
    assert (r.address, r.zip, r.country) == ("1-2-3 Jingumae, Apt 4", "150-0001", "JP")
    assert not r.pii_protected


@pytest.mark.parametrize(
    ("financial", "fulfillment", "cancelled_at", "status"),
    [
        ("pending", None, None, OrderStatus.PENDING_PAYMENT),
        ("authorized", None, None, OrderStatus.PENDING_PAYMENT),
        ("paid", None, None, OrderStatus.PAID),
        ("paid", "partial", None, OrderStatus.PAID),
        ("paid", "fulfilled", None, OrderStatus.SHIPPED),
        ("refunded", None, None, OrderStatus.CLOSED),
        ("voided", None, None, OrderStatus.CANCELLED),
        ("refunded", None, "2024-05-19T10:00:00+08:00", OrderStatus.CANCELLED),
    ],
)
def test_shopify_statuses(
    financial: str, fulfillment: str | None, cancelled_at: str | None, status: OrderStatus
) -> None:
    payload = load("shopify_orders_create_sample.json")
    payload.update(
        financial_status=financial, fulfillment_status=fulfillment, cancelled_at=cancelled_at
    )
    assert shopify.translate(payload, "s").status is status


def test_shopify_bad_payloads_name_the_field() -> None:
    payload = jpy()
    del payload["order"]["currency"]
    with pytest.raises(TranslationError) as caught:
        shopify.translate(payload, "s")
    assert caught.value.field == "order.currency"
    payload = jpy()
    payload["order"]["id"] = registry.parse_payload("9.007199254740993e18")
    with pytest.raises(TranslationError) as caught:
        shopify.translate(payload, "s")
    assert caught.value.field == "order.id"
    payload = jpy()
    payload["order"]["line_items"][0]["quantity"] = 0
    with pytest.raises(TranslationError) as caught:
        shopify.translate(payload, "s")
    assert caught.value.field == "order.line_items[0].quantity"
