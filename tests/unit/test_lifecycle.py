"""The order lifecycle rules: what may happen next, what a change means, what to hold."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from hub.domain.intake import REVIEWED, Placement, carry_review, place, tags_from_note
from hub.domain.lifecycle import (
    AfterSalePlan,
    Change,
    IllegalTransition,
    OrderAction,
    after_sale_plan,
    changes,
    follow_up_id,
    lines_to_hold,
    next_status,
)
from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
)

AT = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)
S = OrderStatus


def order(status: OrderStatus = S.PAID, *lines: OrderLine, note: str = "") -> PlatformOrder:
    return PlatformOrder(
        platform="douyin",
        shop_id="dy-1",
        platform_order_id="6920000000000000001",
        platform_status="2",
        status=status,
        after_sale_type=AfterSaleType.NONE,
        buyer_note=note,
        seller_note="",
        recipient=Recipient(name="张三"),
        lines=lines
        or (
            OrderLine("1", "TEE", "T恤", 2, 5990, 11980, sku="TEE"),
            OrderLine("2", "CAP", "帽子", 1, 3900, 3900, sku="CAP"),
        ),
        shipping_fee_fen=0,
        total_paid_fen=15880,
        currency="CNY",
        created_at=AT,
        paid_at=AT,
        updated_at=AT,
    )


def with_after_sale(
    o: PlatformOrder, line_no: int, kind: AfterSaleType, state: AfterSaleState
) -> PlatformOrder:
    lines = list(o.lines)
    lines[line_no] = replace(lines[line_no], after_sale_type=kind, after_sale_state=state)
    return replace(o, lines=tuple(lines), after_sale_type=kind)


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        (S.PAID, OrderAction.SHIP, S.SHIPPED),
        (S.ALLOCATED, OrderAction.SHIP, S.SHIPPED),
        (S.SHIPPED, OrderAction.DELIVER, S.DELIVERED),
        (S.PENDING_PAYMENT, OrderAction.CANCEL, S.CANCELLED),
        (S.ON_HOLD, OrderAction.CANCEL, S.CANCELLED),
        (S.PAID, OrderAction.HOLD, S.ON_HOLD),
        (S.ON_HOLD, OrderAction.UNHOLD, S.PAID),
        (S.PAID, OrderAction.ALLOCATE, S.ALLOCATED),
    ],
)
def test_allowed_moves_lead_where_they_should(
    status: OrderStatus, action: OrderAction, target: OrderStatus
) -> None:
    assert next_status(order(status), "", action) is target


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (S.SHIPPED, OrderAction.CANCEL),  # after shipment it is an after-sale, not a cancel
        (S.DELIVERED, OrderAction.CANCEL),
        (S.PENDING_PAYMENT, OrderAction.SHIP),
        (S.ON_HOLD, OrderAction.SHIP),
        (S.CANCELLED, OrderAction.SHIP),
        (S.PAID, OrderAction.DELIVER),
        (S.CLOSED, OrderAction.HOLD),
    ],
)
def test_moves_the_state_does_not_allow_are_refused_saying_why(
    status: OrderStatus, action: OrderAction
) -> None:
    with pytest.raises(IllegalTransition, match=status.value):
        next_status(order(status), "", action)


def test_an_order_in_review_does_not_ship() -> None:
    with pytest.raises(IllegalTransition, match="review"):
        next_status(order(), "review", OrderAction.SHIP)


def test_a_line_with_an_open_refund_does_not_ship() -> None:
    o = with_after_sale(order(), 1, AfterSaleType.REFUND_ONLY, AfterSaleState.OPEN)
    with pytest.raises(IllegalTransition, match="settled: 2"):
        next_status(o, "", OrderAction.SHIP)


def test_refund_only_before_shipment_leaves_the_line_out_of_the_hold() -> None:
    o = order()
    assert lines_to_hold(o) == (("TEE", 2), ("CAP", 1))
    refunding = with_after_sale(o, 1, AfterSaleType.REFUND_ONLY, AfterSaleState.OPEN)
    assert lines_to_hold(refunding) == (("TEE", 2),)
    refunded = with_after_sale(o, 1, AfterSaleType.REFUND_ONLY, AfterSaleState.DONE)
    assert lines_to_hold(refunded) == (("TEE", 2),)
    # Refused or withdrawn (state NONE): the line is held again.
    refused = with_after_sale(o, 1, AfterSaleType.NONE, AfterSaleState.NONE)
    assert lines_to_hold(refused) == (("TEE", 2), ("CAP", 1))


def test_refund_only_is_not_a_cancellation() -> None:
    o = order()
    refunded = with_after_sale(o, 0, AfterSaleType.REFUND_ONLY, AfterSaleState.DONE)
    found = changes(o, refunded, "", "")
    assert [c.kind for c in found] == ["after_sale"]
    assert refunded.status is S.PAID


def test_a_new_order_is_received_and_a_newer_copy_says_what_changed() -> None:
    o = order(S.PENDING_PAYMENT)
    assert changes(None, o, None, "") == [Change("received", "PENDING_PAYMENT on douyin")]
    paid = replace(o, status=S.PAID)
    assert changes(o, paid, "", "priority") == [
        Change("paid", "PENDING_PAYMENT → PAID"),
        Change("queued", "auto → priority"),
    ]
    assert changes(paid, paid, "priority", "priority") == []


def test_a_return_after_shipment_is_expected_back_once() -> None:
    shipped = order(S.SHIPPED)
    returning = with_after_sale(shipped, 0, AfterSaleType.RETURN_REFUND, AfterSaleState.OPEN)
    plan = after_sale_plan(shipped, returning)
    assert [ln.platform_line_id for ln in plan.returns] == ["1"] and not plan.outbound
    assert not after_sale_plan(returning, returning)  # the same request again: nothing new
    done = with_after_sale(shipped, 0, AfterSaleType.RETURN_REFUND, AfterSaleState.DONE)
    assert not after_sale_plan(returning, done)


def test_an_exchange_after_shipment_expects_the_goods_and_sends_a_replacement() -> None:
    shipped = order(S.DELIVERED)
    exchange = with_after_sale(shipped, 1, AfterSaleType.EXCHANGE, AfterSaleState.OPEN)
    plan = after_sale_plan(shipped, exchange)
    assert [ln.platform_line_id for ln in plan.returns] == ["2"]
    assert [ln.platform_line_id for ln in plan.outbound] == ["2"]
    assert follow_up_id(exchange, plan.outbound[0], 1) == "6920000000000000001~exchange~2"


def test_a_resend_sends_without_expecting_anything_back() -> None:
    shipped = order(S.SHIPPED)
    resend = with_after_sale(shipped, 0, AfterSaleType.RESEND, AfterSaleState.OPEN)
    assert after_sale_plan(shipped, resend) == AfterSalePlan((), (resend.lines[0],))


def test_before_shipment_after_sales_plan_no_returns_or_replacements() -> None:
    o = order(S.PAID)
    refund = with_after_sale(o, 0, AfterSaleType.RETURN_REFUND, AfterSaleState.OPEN)
    assert not after_sale_plan(o, refund)
    assert after_sale_plan(None, order(S.SHIPPED)) == AfterSalePlan()


def test_an_approved_gift_message_does_not_send_a_newer_copy_back_to_review() -> None:
    o = order(note="请写上生日快乐，加急")
    tags = tags_from_note(o.buyer_note)
    placement = place(o, tags, [])
    assert placement.queue == "review"
    kept_tags, kept = carry_review([*tags, REVIEWED], tags, placement, o)
    assert kept == Placement("priority", ()) and REVIEWED in kept_tags
    # An unknown SKU still needs a person, approved or not.
    unknown = place(o, tags, ["CAP"])
    _, still = carry_review([REVIEWED], tags, unknown, o)
    assert still.queue == "review" and still.reasons[0].startswith("UNKNOWN_SKU")
    # An order nobody approved keeps its placement.
    assert carry_review(tags, tags, placement, o) == (tags, placement)


def test_a_line_refunded_before_shipment_stays_behind_and_the_rest_ships() -> None:
    o = with_after_sale(order(), 1, AfterSaleType.REFUND_ONLY, AfterSaleState.DONE)
    assert next_status(o, "", OrderAction.SHIP) is S.SHIPPED
    assert lines_to_hold(o) == (("TEE", 2),)
