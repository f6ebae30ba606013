"""Taking orders in: note tags, queues, and updates that never move an order back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.intake import (
    AFTER_SALES,
    PRIORITY,
    REVIEW,
    NoteRules,
    Placement,
    holds_stock,
    merge,
    place,
    releases_stock,
    tags_from_note,
)
from hub.domain.orders import AfterSaleType, OrderLine, OrderStatus, PlatformOrder, Recipient

AT = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)


def order(
    status: OrderStatus = OrderStatus.PAID, *, at: datetime = AT, note: str = ""
) -> PlatformOrder:
    return PlatformOrder(
        platform="taobao",
        shop_id="tmall-1",
        platform_order_id="500001084",
        platform_status=status.value,
        status=status,
        after_sale_type=AfterSaleType.NONE,
        buyer_note=note,
        seller_note="",
        recipient=Recipient(name="张三", province="浙江省", city="杭州市"),
        lines=(OrderLine("1", "TEE-01", "T恤", 1, 9900, 9900),),
        shipping_fee_fen=0,
        total_paid_fen=9900,
        currency="CNY",
        created_at=at,
        paid_at=at,
        updated_at=at,
    )


@pytest.mark.parametrize(
    ("note", "tags"),
    [
        ("请加急，明天要用", ["urgent"]),
        ("换货：换成L码", ["exchange"]),
        ("帮忙写张贺卡：生日快乐", ["gift_message"]),
        ("需要开发票，抬头：杭州某某有限公司", ["invoice"]),
        ("加急！顺便开发票", ["urgent", "invoice"]),
        ("Please ship ASAP, it's a gift", ["urgent", "gift_message"]),
        ("周末配送", []),
        ("不用加急，周一前到就行", []),
        ("No need to rush, not urgent", []),
        ("别加急。要开发票", ["invoice"]),
        ("地址写错了，改地址到西湖区文三路 1 号", ["address_change"]),
        ("Wrong address, please change my address", ["address_change"]),
        ("不用改地址", []),
        ("", []),
    ],
)
def test_buyer_notes_become_tags(note: str, tags: list[str]) -> None:
    assert tags_from_note(note) == tags


def test_unknown_skus_and_gift_messages_wait_for_a_person() -> None:
    placed = place(order(), ["gift_message"], ["TB-SKU-9", "TB-SKU-3"])
    assert placed.queue == REVIEW
    assert placed.reasons == (
        "UNKNOWN_SKU: no internal SKU for TB-SKU-3, TB-SKU-9",
        "GIFT_MESSAGE: a custom message to print",
    )


def test_exchanges_and_after_sales_go_to_after_sales_and_rushes_to_priority() -> None:
    assert place(order(), ["exchange", "urgent"], []).queue == AFTER_SALES
    refund = replace(order(), after_sale_type=AfterSaleType.REFUND_ONLY)
    assert place(refund, [], []).queue == AFTER_SALES
    assert place(order(), ["urgent", "invoice"], []).queue == PRIORITY
    assert place(order(), ["invoice"], []).queue == ""


def test_a_newer_copy_moves_the_order_forward() -> None:
    shipped = order(OrderStatus.SHIPPED, at=AT + timedelta(hours=1))
    update = merge(order(), shipped)
    assert update.changed and update.order.status is OrderStatus.SHIPPED


def test_an_older_or_same_copy_is_a_repeat() -> None:
    stored = order(OrderStatus.SHIPPED, at=AT + timedelta(hours=1))
    assert not merge(stored, order()).changed
    assert not merge(stored, stored).changed


def test_a_newer_copy_never_moves_the_status_back_but_keeps_the_rest() -> None:
    stored = order(OrderStatus.SHIPPED, at=AT + timedelta(hours=1))
    late = order(OrderStatus.PAID, at=AT + timedelta(hours=2), note="放门口")
    update = merge(stored, late)
    assert update.changed
    assert (update.order.status, update.order.buyer_note) == (OrderStatus.SHIPPED, "放门口")
    assert "kept" in update.reason


def test_which_statuses_hold_and_release_stock() -> None:
    assert holds_stock(OrderStatus.PAID) and holds_stock(OrderStatus.ON_HOLD)
    assert not holds_stock(OrderStatus.PENDING_PAYMENT)
    assert releases_stock(OrderStatus.CANCELLED) and releases_stock(OrderStatus.CLOSED)
    assert not releases_stock(OrderStatus.SHIPPED)


def test_an_address_change_waits_for_a_person() -> None:
    placed = place(order(), tags_from_note("麻烦改地址，寄到公司"), [])
    assert placed == Placement(REVIEW, ("ADDRESS_CHANGE: the buyer asks for another address",))


def test_note_rules_are_data_a_deployment_can_change() -> None:
    rules = NoteRules.parse(
        """
negation = "(不要)$"
[[tag]]
name = "fragile"
words = ["易碎", "fragile"]
review = "FRAGILE: pack by hand"
"""
    )
    assert rules.tags_of("易碎品，轻拿轻放") == ["fragile"]
    assert rules.tags_of("不要易碎包装") == []
    assert place(order(), ["fragile"], [], rules) == Placement(REVIEW, ("FRAGILE: pack by hand",))
