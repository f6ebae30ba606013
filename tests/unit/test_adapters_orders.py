"""The unified order's own rules: status ranks, no regression, after-sale summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub.domain.orders import (
    AfterSale,
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
    TranslationError,
    apply_after_sale,
    may_follow,
    status_rank,
    summarize_after_sale,
)

S = OrderStatus


def order(*lines: OrderLine, paid_at: datetime | None = None) -> PlatformOrder:
    return PlatformOrder(
        platform="pdd",
        shop_id="shop-1",
        platform_order_id="241111-029900000000001",
        platform_status="order_status=1",
        status=S.PAID,
        after_sale_type=AfterSaleType.NONE,
        buyer_note="",
        seller_note="",
        recipient=Recipient(),
        lines=lines,
        shipping_fee_fen=0,
        total_paid_fen=sum(line.paid_fen for line in lines),
        currency="CNY",
        created_at=None,
        paid_at=paid_at,
        updated_at=None,
    )


def line(line_id: str, sku: str, native: str = "") -> OrderLine:
    return OrderLine(line_id, sku, "mug", 1, 2990, 2990, native_sku_id=native)


def test_the_lifecycle_ranks_in_order() -> None:
    ladder = [S.PENDING_PAYMENT, S.PAID, S.ALLOCATED, S.SHIPPED, S.DELIVERED, S.CANCELLED, S.CLOSED]
    assert [status_rank(s) for s in ladder] == sorted(status_rank(s) for s in ladder)
    assert status_rank(S.ON_HOLD) == status_rank(S.PAID)


def test_a_status_never_goes_backwards() -> None:
    assert may_follow(S.PENDING_PAYMENT, S.PAID)
    assert may_follow(S.PAID, S.SHIPPED)
    assert may_follow(S.SHIPPED, S.DELIVERED)
    assert not may_follow(S.SHIPPED, S.PAID)
    assert not may_follow(S.DELIVERED, S.SHIPPED)
    assert not may_follow(S.ALLOCATED, S.PAID)
    assert may_follow(S.PAID, S.PAID)


def test_a_hold_can_come_before_shipment_and_be_released() -> None:
    assert may_follow(S.PAID, S.ON_HOLD)
    assert may_follow(S.ALLOCATED, S.ON_HOLD)  # a platform may lock an allocated order
    assert may_follow(S.ON_HOLD, S.PAID)
    assert not may_follow(S.SHIPPED, S.ON_HOLD)


def test_closed_is_final_and_cancelled_may_only_close() -> None:
    assert may_follow(S.SHIPPED, S.CANCELLED)
    assert may_follow(S.DELIVERED, S.CLOSED)
    assert may_follow(S.CANCELLED, S.CLOSED)
    assert not may_follow(S.CLOSED, S.CANCELLED)
    assert not may_follow(S.CANCELLED, S.PAID)
    assert not may_follow(S.CLOSED, S.PAID)


def test_order_after_sale_is_the_one_kind_or_other_when_mixed() -> None:
    t = AfterSaleType
    assert summarize_after_sale([]) is t.NONE
    assert summarize_after_sale([t.NONE, t.REFUND_ONLY, t.NONE]) is t.REFUND_ONLY
    assert summarize_after_sale([t.REFUND_ONLY, t.RETURN_REFUND]) is t.OTHER


def test_an_order_refuses_times_that_are_not_utc() -> None:
    naive = datetime(2024, 5, 18, 10, 21, 7)
    with pytest.raises(ValueError, match="paid_at"):
        order(line("1", "MUG"), paid_at=naive)
    beijing = datetime(2024, 5, 18, 10, 21, 7, tzinfo=timezone(timedelta(hours=8)))
    with pytest.raises(ValueError, match="UTC"):
        order(line("1", "MUG"), paid_at=beijing)
    assert order(line("1", "MUG"), paid_at=beijing.astimezone(UTC)).paid_at == beijing


def test_an_after_sale_record_marks_the_line_it_names_by_sku() -> None:
    placed = order(line("1000000003", "MUG-03-WHT", "1000000003"), line("1000000004", "CAP-02"))
    sale = AfterSale(
        platform="pdd",
        platform_order_id="241111-029900000000001",
        platform_after_sale_id="9001001",
        type=AfterSaleType.REFUND_ONLY,
        state=AfterSaleState.DONE,
        platform_type="list:2",
        platform_sku_id="1000000003",
        refund_fen=2990,
    )
    updated = apply_after_sale(placed, sale)
    assert [ln.after_sale_type for ln in updated.lines] == [
        AfterSaleType.REFUND_ONLY,
        AfterSaleType.NONE,
    ]
    assert updated.lines[0].after_sale_state is AfterSaleState.DONE
    assert updated.after_sale_type is AfterSaleType.REFUND_ONLY


def test_an_after_sale_record_for_another_order_is_refused() -> None:
    sale = AfterSale(
        "pdd", "other-order", "1", AfterSaleType.REFUND_ONLY, AfterSaleState.OPEN, "list:2"
    )
    with pytest.raises(ValueError, match="other-order"):
        apply_after_sale(order(line("1", "MUG")), sale)


def test_translation_errors_name_the_field() -> None:
    error = TranslationError("orders.order[1].price", "not an amount: 'abc'")
    assert (error.field, error.reason) == ("orders.order[1].price", "not an amount: 'abc'")
    assert str(error) == "orders.order[1].price: not an amount: 'abc'"
