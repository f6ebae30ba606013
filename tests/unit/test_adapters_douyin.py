"""Douyin 抖店 orders and after-sales → the unified order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import douyin, registry
from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderStatus,
    TranslationError,
    apply_after_sale,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"


def load(name: str) -> Any:
    return registry.parse_payload((FIXTURES / name).read_bytes())


def sample() -> Any:
    return load("douyin_order_detail_sample.json")


def detail(payload: Any) -> Any:
    return payload["data"]["shop_order_detail"]


def test_douyin_refund_only_is_not_a_cancellation() -> None:
    got = douyin.translate(load("douyin_refund_only_closed.json"), "dy-1")
    # order_status 4 (已取消) with main_status 21 (发货前退款完结): the money went back.
    assert got.platform_status == "order_status=4;main_status=21"
    assert got.status is not OrderStatus.CANCELLED
    assert got.status is OrderStatus.CLOSED
    assert got.after_sale_type is AfterSaleType.REFUND_ONLY
    line = got.lines[0]
    assert (line.after_sale_type, line.after_sale_state) == (
        AfterSaleType.REFUND_ONLY,
        AfterSaleState.DONE,
    )
    assert (got.total_paid_fen, line.paid_fen) == (5990, 5990)


def test_douyin_refund_only_after_shipment_keeps_the_order_shipped() -> None:
    payload = sample()
    order = detail(payload)
    order["order_status"] = order["main_status"] = 3
    order["sku_order_list"][1]["after_sale_info"] = {
        "after_sale_status": 6,
        "after_sale_type": 1,
        "refund_status": 1,
    }
    got = douyin.translate(payload, "dy-1")
    assert got.status is OrderStatus.SHIPPED
    assert got.after_sale_type is AfterSaleType.REFUND_ONLY


def test_douyin_cancel_type_after_sale_is_not_a_refund_only() -> None:
    payload = load("douyin_refund_only_closed.json")
    order = detail(payload)
    order["main_status"] = 4
    order["sku_order_list"][0]["after_sale_info"] = {
        "after_sale_status": 51,
        "after_sale_type": 5,
        "refund_status": 3,
    }
    got = douyin.translate(payload, "dy-1")
    assert got.status is OrderStatus.CANCELLED
    assert got.lines[0].after_sale_type is AfterSaleType.OTHER
    assert got.after_sale_type is not AfterSaleType.REFUND_ONLY


def test_douyin_zero_after_sale_info_means_no_after_sale() -> None:
    tee = douyin.translate(sample(), "dy-1").lines[0]
    # after_sale_type 0 means 退货退款, but with status 0 and refund 0 nothing was asked.
    assert (tee.after_sale_type, tee.after_sale_state) == (AfterSaleType.NONE, AfterSaleState.NONE)


def test_douyin_after_sale_is_per_line() -> None:
    got = douyin.translate(sample(), "dy-1")
    tee, cap = got.lines
    assert tee.after_sale_type is AfterSaleType.NONE
    assert (cap.after_sale_type, cap.after_sale_state) == (
        AfterSaleType.REFUND_ONLY,
        AfterSaleState.OPEN,
    )
    assert got.after_sale_type is AfterSaleType.REFUND_ONLY
    assert got.status is OrderStatus.PAID


def test_douyin_fen_amounts_and_unix_times() -> None:
    got = douyin.translate(sample(), "dy-1")
    assert (got.platform_order_id, got.currency) == ("6936476692437472563", "CNY")
    assert (got.total_paid_fen, got.shipping_fee_fen) == (24800, 1000)  # already fen
    tee, cap = got.lines
    assert (tee.platform_line_id, cap.platform_line_id) == (
        "6936476692437472563",
        "6936476692437472564",
    )
    assert (tee.platform_sku_id, tee.native_sku_id) == ("TEE-01-BLK-L", "3410716076201730")
    assert (tee.quantity, tee.unit_price_fen, tee.paid_fen) == (2, 9900, 18265)
    assert (cap.quantity, cap.unit_price_fen, cap.paid_fen) == (1, 6000, 5535)
    assert got.created_at == datetime(2024, 5, 18, 2, 41, 7, tzinfo=UTC)  # 1716000067
    assert got.paid_at == datetime(2024, 5, 18, 2, 41, 30, tzinfo=UTC)
    assert (got.buyer_note, got.seller_note) == ("请发顺丰，谢谢", "已备赠品")


def test_douyin_ciphertext_is_kept_and_flagged() -> None:
    r = douyin.translate(sample(), "dy-1").recipient
    assert r.name == "##qIOpbLPevlQwA6f+yNJ7HgOqMdCc==*CgYIASAHKAESPgo8AezTm/PH44dQ==#1##"
    assert r.phone == "$$KlqdO3S6/9vQsJesewp8R2oBlX+I2/UABg==*CgYIASAHKAESPgo85MWGCFPB==$1$$"
    assert r.address == "##i688Hg7Kf5y7JCzTAYaUWxswmAx8Q==*CgYIASAHKAESPgo8VOu2w0Yb==#1##"
    assert (r.province, r.city, r.district, r.street) == ("福建省", "厦门市", "思明区", "莲前街道")
    assert r.pii_protected


def test_douyin_paid_under_risk_control_is_on_hold() -> None:
    got = douyin.translate(load("douyin_search_list_risk_hold.json"), "dy-1")
    assert (got.status, got.platform_status) == (
        OrderStatus.ON_HOLD,
        "order_status=105;main_status=105",
    )
    r = got.recipient
    assert (r.name, r.phone, r.address) == ("钱*", "138****3333", "玉林北路**号")  # masks only
    assert (r.province, r.city, r.district, r.street) == ("四川省", "成都市", "武侯区", "玉林街道")
    assert r.pii_protected
    line = got.lines[0]
    assert (line.platform_sku_id, line.after_sale_type) == (
        "PB-04-20K",
        AfterSaleType.NONE,
    )  # out_sku_id
    assert (got.total_paid_fen, got.shipping_fee_fen, line.paid_fen) == (20600, 800, 19800)
    assert got.buyer_note == "送人的，帮忙写贺卡：生日快乐"


def test_douyin_envelope_and_bare_order_translate_alike() -> None:
    payload = sample()
    assert douyin.translate(payload, "dy-1") == douyin.translate(detail(payload), "dy-1")


def test_douyin_error_answer_names_the_code() -> None:
    with pytest.raises(TranslationError) as caught:
        douyin.translate(
            {"code": 50002, "msg": "参数错误", "sub_msg": "店铺未授权", "data": {}}, "dy-1"
        )
    assert caught.value.field == "code"
    assert "店铺未授权" in caught.value.reason


def test_douyin_after_sale_detail_names_kind_line_and_refund() -> None:
    record = douyin.after_sale(load("douyin_after_sale_detail.json"))
    assert (record.type, record.state, record.platform_type) == (
        AfterSaleType.REFUND_ONLY,
        AfterSaleState.OPEN,
        "1",
    )
    assert (record.platform_order_id, record.platform_line_id) == (
        "6936476692437472563",
        "6936476692437472564",
    )
    assert record.refund_fen == 5535
    updated = apply_after_sale(douyin.translate(sample(), "dy-1"), record)
    assert [line.after_sale_type for line in updated.lines] == [
        AfterSaleType.NONE,
        AfterSaleType.REFUND_ONLY,
    ]


def test_douyin_push_message_spells_it_aftersale() -> None:
    message = {
        "tag": "200",
        "msg_id": "7157483939402662002",
        "data": json.dumps(
            {
                "aftersale_id": 7157483939402662002,
                "aftersale_type": 0,
                "aftersale_status": 6,
                "p_id": 6936476692437472563,
                "s_id": 6936476692437472564,
                "refund_amount": 5535,
            }
        ),
    }
    record = douyin.after_sale(message)
    assert (record.type, record.state) == (AfterSaleType.RETURN_REFUND, AfterSaleState.OPEN)
    assert (record.platform_order_id, record.platform_line_id) == (
        "6936476692437472563",
        "6936476692437472564",
    )
