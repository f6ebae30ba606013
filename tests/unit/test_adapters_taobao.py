"""Taobao / Tmall trades → the unified order."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import registry, taobao
from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderStatus,
    TranslationError,
    apply_after_sale,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"
TRADE = ("trade_fullinfo_get_response", "trade")


def load(name: str) -> Any:
    return registry.parse_payload((FIXTURES / name).read_bytes())


def sample() -> Any:
    return load("taobao_trade_fullinfo_get_sample.json")


def test_taobao_reads_tid_str_not_the_float() -> None:
    payload = load("taobao_trades_sold_get_municipality.json")
    trade = payload["trades_sold_get_response"]["trades"]["trade"][0]
    assert str(trade["tid"]) != trade["tid_str"]  # the number went through a float upstream
    got = taobao.translate(payload, "tmall-1")
    assert got.platform_order_id == "3341958349012345678"
    assert got.lines[0].platform_line_id == "3341958349012345679"


def test_taobao_refuses_a_tid_that_arrived_as_a_float() -> None:
    bare = copy.deepcopy(sample()[TRADE[0]][TRADE[1]])
    del bare["tid_str"]
    bare["tid"] = registry.parse_payload("2.231958349012345678e18")
    with pytest.raises(TranslationError) as caught:
        taobao.translate(bare, "tmall-1")
    assert caught.value.field == "tid"
    assert "floating-point" in caught.value.reason


def test_taobao_envelope_and_bare_trade_translate_alike() -> None:
    payload = sample()
    bare = payload[TRADE[0]][TRADE[1]]
    assert taobao.translate(payload, "tmall-1") == taobao.translate(bare, "tmall-1")


def test_taobao_sample_money_notes_and_times() -> None:
    got = taobao.translate(sample(), "tmall-1")
    assert (got.platform, got.shop_id, got.currency) == ("taobao", "tmall-1", "CNY")
    assert got.platform_order_id == "2231958349012345678"
    assert (got.status, got.platform_status) == (OrderStatus.PAID, "WAIT_SELLER_SEND_GOODS")
    assert (got.total_paid_fen, got.shipping_fee_fen) == (24800, 1000)
    assert (got.buyer_note, got.seller_note) == ("请发顺丰，谢谢", "已备赠品")
    assert got.created_at == datetime(2024, 5, 18, 2, 21, 7, tzinfo=UTC)
    assert got.paid_at == datetime(2024, 5, 18, 2, 21, 30, tzinfo=UTC)
    assert got.updated_at == datetime(2024, 5, 18, 2, 25, 2, tzinfo=UTC)
    tee, cap = got.lines
    assert (tee.platform_sku_id, tee.native_sku_id, tee.title) == (
        "TEE-01-BLK-L",
        "5000000017",
        "纯棉T恤",
    )
    assert (tee.quantity, tee.unit_price_fen, tee.paid_fen) == (2, 9900, 18265)  # divide_order_fee
    assert (cap.quantity, cap.unit_price_fen, cap.paid_fen) == (1, 6000, 5535)
    assert tee.sku == ""  # resolved later through MapPlatformSku
    r = got.recipient
    assert (r.name, r.phone, r.province, r.city, r.district) == (
        "张三",
        "138****0000",
        "浙江省",
        "杭州市",
        "西湖区",
    )
    assert (r.street, r.address, r.zip) == ("文新街道", "文一西路100号", "310012")
    assert r.pii_protected  # the mobile is masked


def test_taobao_refund_before_shipment_is_refund_only_on_its_line() -> None:
    got = taobao.translate(sample(), "tmall-1")
    tee, cap = got.lines
    assert (tee.after_sale_type, tee.after_sale_state) == (AfterSaleType.NONE, AfterSaleState.NONE)
    assert (cap.after_sale_type, cap.after_sale_state) == (
        AfterSaleType.REFUND_ONLY,
        AfterSaleState.OPEN,
    )
    assert got.after_sale_type is AfterSaleType.REFUND_ONLY
    assert got.status is OrderStatus.PAID  # a refund request is not a cancellation


def test_taobao_municipality_with_an_empty_city_uses_the_province() -> None:
    got = taobao.translate(load("taobao_trades_sold_get_municipality.json"), "tmall-1")
    r = got.recipient
    assert (r.province, r.city, r.district, r.street) == ("北京", "北京市", "朝阳区", "望京街道")
    assert (r.address, r.zip) == ("望京西路50号", "100102")  # trailing spaces trimmed
    assert not r.pii_protected
    assert got.buyer_note == "加急，周末也可以送"
    assert got.created_at == datetime(2024, 11, 10, 16, 0, 5, tzinfo=UTC)


def test_taobao_city_under_a_province_with_an_empty_city_uses_the_district() -> None:
    got = taobao.translate(load("taobao_trade_county_city_refunds.json"), "tmall-1")
    r = got.recipient
    assert (r.province, r.city, r.district) == ("河南省", "济源市", "济源市")
    assert r.pii_protected  # masked name, phone and address, and an oaid


def test_taobao_line_without_codes_is_mapped_by_its_item_id() -> None:
    line = taobao.translate(load("taobao_trades_sold_get_municipality.json"), "tmall-1").lines[0]
    assert (line.platform_sku_id, line.native_sku_id) == ("600000000003", "")
    assert (line.unit_price_fen, line.paid_fen) == (2990, 2990)  # "29.90", no float


def test_taobao_after_sales_of_shipped_lines() -> None:
    got = taobao.translate(load("taobao_trade_county_city_refunds.json"), "tmall-1")
    power_bank, tee = got.lines
    # Goods on the way back: return and refund.
    assert power_bank.after_sale_type is AfterSaleType.RETURN_REFUND
    assert power_bank.after_sale_state is AfterSaleState.OPEN
    # Refunded after shipment: the order alone does not say whether goods came back.
    assert (tee.after_sale_type, tee.after_sale_state) == (AfterSaleType.OTHER, AfterSaleState.DONE)
    assert got.after_sale_type is AfterSaleType.OTHER
    assert got.status is OrderStatus.SHIPPED
    assert (got.shipping_fee_fen, got.total_paid_fen, got.seller_note) == (800, 26800, "退货已寄回")


def test_taobao_refund_record_names_the_kind_of_its_line() -> None:
    record = taobao.after_sale(load("taobao_refund_get.json"))
    assert (record.type, record.state, record.platform_type) == (
        AfterSaleType.REFUND_ONLY,
        AfterSaleState.DONE,
        "REFUND",
    )
    assert (record.platform_order_id, record.platform_line_id) == (
        "4451958349012345001",
        "4451958349012345003",
    )
    assert record.refund_fen == 10000
    order = taobao.translate(load("taobao_trade_county_city_refunds.json"), "tmall-1")
    updated = apply_after_sale(order, record)
    assert [line.after_sale_type for line in updated.lines] == [
        AfterSaleType.RETURN_REFUND,
        AfterSaleType.REFUND_ONLY,
    ]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("WAIT_BUYER_PAY", OrderStatus.PENDING_PAYMENT),
        ("PAID_FORBID_CONSIGN", OrderStatus.ON_HOLD),
        ("SELLER_CONSIGNED_PART", OrderStatus.PAID),
        ("WAIT_BUYER_CONFIRM_GOODS", OrderStatus.SHIPPED),
        ("TRADE_FINISHED", OrderStatus.DELIVERED),
        ("TRADE_CLOSED", OrderStatus.CLOSED),
        ("TRADE_CLOSED_BY_TAOBAO", OrderStatus.CANCELLED),
    ],
)
def test_taobao_statuses_map_to_the_lifecycle(raw: str, status: OrderStatus) -> None:
    payload = sample()
    payload[TRADE[0]][TRADE[1]]["status"] = raw
    got = taobao.translate(payload, "tmall-1")
    assert (got.status, got.platform_status) == (status, raw)


def test_taobao_unknown_status_names_the_field() -> None:
    payload = sample()
    payload[TRADE[0]][TRADE[1]]["status"] = "ALL_WAIT_PAY"  # a query aggregate, never a trade's
    with pytest.raises(TranslationError) as caught:
        taobao.translate(payload, "tmall-1")
    assert caught.value.field == "trade_fullinfo_get_response.trade.status"


def test_taobao_bad_line_price_names_the_line_field() -> None:
    payload = sample()
    payload[TRADE[0]][TRADE[1]]["orders"]["order"][1]["price"] = "sixty"
    with pytest.raises(TranslationError) as caught:
        taobao.translate(payload, "tmall-1")
    assert caught.value.field == "trade_fullinfo_get_response.trade.orders.order[1].price"
    assert "sixty" in caught.value.reason


def test_taobao_error_response_is_a_translation_error() -> None:
    with pytest.raises(TranslationError) as caught:
        taobao.translate({"error_response": {"code": 27, "msg": "Invalid session"}}, "tmall-1")
    assert caught.value.field == "error_response"
    assert "Invalid session" in caught.value.reason
