"""JD POP orders → the unified order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import jd, registry
from hub.domain.orders import AfterSaleType, OrderStatus, TranslationError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"


def load(name: str) -> Any:
    return registry.parse_payload((FIXTURES / name).read_bytes())


def sample() -> Any:
    return load("jd_pop_order_get_sample.json")


def info(payload: Any) -> Any:
    return payload["jingdong_pop_order_get_responce"]["orderDetailInfo"]["orderInfo"]


def test_jd_0001_date_is_empty() -> None:
    payload = load("jd_order_info_cod_bare.json")
    assert payload["paymentConfirmTime"] == "0001-01-01 00:00:00"
    got = jd.translate(payload, "jd-1")
    assert got.paid_at is None
    assert got.created_at == datetime(2024, 5, 20, 15, 59, 59, tzinfo=UTC)
    assert got.updated_at == datetime(2024, 5, 20, 16, 0, 10, tzinfo=UTC)
    # Cash on delivery: not paid yet, but ready to ship, so it enters the paid stage.
    assert (got.status, got.platform_status) == (OrderStatus.PAID, "WAIT_SELLER_STOCK_OUT")


def test_jd_envelope_wrapper_and_bare_order_translate_alike() -> None:
    payload = sample()
    bare = info(payload)
    expected = jd.translate(payload, "jd-1")
    assert jd.translate(bare, "jd-1") == expected
    assert jd.translate({"orderInfo": bare}, "jd-1") == expected


def test_jd_sample_money_notes_and_lines() -> None:
    got = jd.translate(sample(), "jd-1")
    assert (got.platform_order_id, got.currency) == ("301234567890", "CNY")
    assert (got.total_paid_fen, got.shipping_fee_fen) == (24800, 1000)
    assert (got.buyer_note, got.seller_note) == ("请发顺丰", "已备赠品")
    assert got.paid_at == datetime(2024, 5, 18, 2, 21, 30, tzinfo=UTC)
    tee, cap = got.lines
    assert (tee.platform_sku_id, tee.native_sku_id, tee.title) == (
        "TEE-01-BLK-L",
        "10054887745652",
        "纯棉T恤 黑色 L",
    )
    assert (tee.quantity, tee.unit_price_fen) == (2, 9900)  # itemTotal "2", jdPrice "99.00"
    # No per-line paid amount at JD: the 238.00 of goods is split by list price.
    assert (tee.paid_fen, cap.paid_fen) == (18265, 5535)
    assert tee.paid_fen + cap.paid_fen == got.total_paid_fen - got.shipping_fee_fen


def test_jd_encrypted_consignee_is_kept_as_delivered_and_flagged() -> None:
    r = jd.translate(sample(), "jd-1").recipient
    assert r.name == "AAS/ZFJFpmfveSmeZ0P9i+iPiAVtOMmowMRtStdbSOA32r6wKNWTMeyV2CU1umLIhl0="
    assert r.address == "AAS/ZFJFpmfveSmeZ0P9i+iPFTw2VsdIkCtv0YhpKHQZAdj5ssES7b4bjL2KwIPn="
    assert r.phone == "138*******0"
    assert (r.province, r.city, r.district, r.street) == ("浙江", "杭州市", "西湖区", "文新街道")
    assert r.pii_protected


def test_jd_search_response_with_one_locked_order_is_on_hold() -> None:
    got = jd.translate(load("jd_pop_order_search_locked.json"), "jd-1")
    assert (got.platform_order_id, got.status, got.platform_status) == (
        "323456789012",
        OrderStatus.ON_HOLD,
        "LOCKED",
    )
    assert got.buyer_note == "不要了，申请取消"
    assert got.lines[0].paid_fen == 9900


def test_jd_line_without_outer_sku_falls_back_to_the_jd_sku() -> None:
    got = jd.translate(load("jd_order_info_cod_bare.json"), "jd-1")
    power_bank, mugs = got.lines
    assert (power_bank.platform_line_id, power_bank.platform_sku_id) == (
        "228886533501",
        "10054887745660",
    )
    assert (mugs.platform_sku_id, mugs.quantity, mugs.unit_price_fen) == ("MUG-03-WHT", 2, 5000)
    assert (power_bank.paid_fen, mugs.paid_fen) == (19900, 10000)
    assert got.seller_note == "货到付款，电话确认"
    assert got.recipient.street == "张江镇"


@pytest.mark.parametrize(
    ("code", "kind"),
    [("0", AfterSaleType.NONE), ("1", AfterSaleType.RESEND), ("2", AfterSaleType.EXCHANGE)],
)
def test_jd_return_order_marks_the_order_and_its_lines_still_ship(
    code: str, kind: AfterSaleType
) -> None:
    payload = sample()
    info(payload)["returnOrder"] = code
    got = jd.translate(payload, "jd-1")
    assert got.after_sale_type is kind
    assert {line.after_sale_type for line in got.lines} == {AfterSaleType.NONE}


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("WAIT_GOODS_RECEIVE_CONFIRM", OrderStatus.SHIPPED),
        ("FINISHED_L", OrderStatus.DELIVERED),
        ("TRADE_CANCELED", OrderStatus.CANCELLED),
        ("POP_ORDER_PAUSE", OrderStatus.ON_HOLD),
    ],
)
def test_jd_states_map_to_the_lifecycle(state: str, status: OrderStatus) -> None:
    payload = sample()
    info(payload)["orderState"] = state
    assert jd.translate(payload, "jd-1").status is status


def test_jd_unknown_state_and_bad_quantity_name_their_fields() -> None:
    payload = sample()
    info(payload)["orderState"] = "WAIT_SOMETHING_NEW"
    with pytest.raises(TranslationError) as caught:
        jd.translate(payload, "jd-1")
    assert (
        caught.value.field == "jingdong_pop_order_get_responce.orderDetailInfo.orderInfo.orderState"
    )
    payload = sample()
    info(payload)["itemInfoList"][1]["itemTotal"] = "one"
    with pytest.raises(TranslationError) as caught:
        jd.translate(payload, "jd-1")
    assert (
        caught.value.field
        == "jingdong_pop_order_get_responce.orderDetailInfo.orderInfo.itemInfoList[1].itemTotal"
    )
