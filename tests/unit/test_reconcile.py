"""Reconciliation rules: totals on both sides, and differences that explain every gap."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
)
from hub.domain.reconcile import (
    Amounts,
    DifferenceKind,
    Period,
    PlatformRecord,
    Report,
    combine,
    hub_amounts,
    reconcile,
    records_from_orders,
)

MAY = Period(datetime(2024, 4, 30, 16, tzinfo=UTC), datetime(2024, 5, 31, 16, tzinfo=UTC))
PAID_AT = datetime(2024, 5, 10, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Stored:
    """A hub order as the store hands it out (order id and the unified order)."""

    order_id: str
    order: PlatformOrder


def line(
    paid: int,
    kind: AfterSaleType = AfterSaleType.NONE,
    state: AfterSaleState = AfterSaleState.NONE,
    n: int = 1,
) -> OrderLine:
    return OrderLine(
        platform_line_id=f"L{n}",
        platform_sku_id=f"SKU{n}",
        title="T-shirt",
        quantity=1,
        unit_price_fen=paid,
        paid_fen=paid,
        after_sale_type=kind,
        after_sale_state=state,
    )


def order(
    pid: str,
    paid: int = 9900,
    *,
    status: OrderStatus = OrderStatus.DELIVERED,
    lines: tuple[OrderLine, ...] | None = None,
    currency: str = "CNY",
    paid_at: datetime | None = PAID_AT,
    after_sale: AfterSaleType = AfterSaleType.NONE,
) -> PlatformOrder:
    return PlatformOrder(
        platform="douyin",
        shop_id="shop-1",
        platform_order_id=pid,
        platform_status="",
        status=status,
        after_sale_type=after_sale,
        buyer_note="",
        seller_note="",
        recipient=Recipient(),
        lines=lines if lines is not None else (line(paid),),
        shipping_fee_fen=0,
        total_paid_fen=paid,
        currency=currency,
        created_at=paid_at,
        paid_at=paid_at,
        updated_at=paid_at,
    )


def stored(*orders: PlatformOrder) -> list[Stored]:
    return [Stored(f"ord_{o.platform_order_id}", o) for o in orders]


def record(pid: str, paid: int = 9900, refunded: int = 0, **kw: object) -> PlatformRecord:
    kw.setdefault("occurred_at", PAID_AT)
    return PlatformRecord(pid, paid, refunded, **kw)  # type: ignore[arg-type]


def kinds(report: Report) -> list[tuple[DifferenceKind, str]]:
    return [(d.kind, d.platform_order_id) for d in report.differences]


def assert_explained(report: Report) -> None:
    for currency in report.currencies:
        assert report.explained(currency) == report.gap(currency), currency


# ---------------------------------------------------------------- the article's case


def test_37_refund_only_orders_the_hub_does_not_have_are_reported_and_explain_the_gap() -> None:
    orders = [order(f"69{n:016d}", 5000 + 37 * n) for n in range(200)]
    refunded = {o.platform_order_id: 990 + 13 * i for i, o in enumerate(orders[10:47])}
    statement = [
        record(
            o.platform_order_id,
            o.total_paid_fen,
            refunded.get(o.platform_order_id, 0),
            after_sale_type=AfterSaleType.REFUND_ONLY
            if o.platform_order_id in refunded
            else AfterSaleType.NONE,
            status=OrderStatus.DELIVERED,
        )
        for o in orders
    ]

    report = reconcile(statement, stored(*orders), MAY)

    assert len(refunded) == 37
    assert kinds(report) == [(DifferenceKind.REFUND_NOT_REFLECTED, k) for k in sorted(refunded)]
    assert report.counts == {DifferenceKind.REFUND_NOT_REFLECTED: 37}
    gap = report.gap("CNY")
    assert gap == Amounts(orders=0, paid_fen=0, refunded_fen=sum(refunded.values()))
    assert gap.net_fen == -sum(refunded.values())
    assert_explained(report)
    first = report.differences[0]
    assert first.order_id == f"ord_{first.platform_order_id}"
    assert first.platform.refunded_fen == refunded[first.platform_order_id]
    assert first.hub.refunded_fen == 0


def test_a_refund_only_the_hub_took_for_a_cancellation_is_not_reflected() -> None:
    hub = order("A1", 9900, status=OrderStatus.CANCELLED)  # the misread: a plain cancellation
    statement = [
        record(
            "A1",
            9900,
            1990,
            after_sale_type=AfterSaleType.REFUND_ONLY,
            status=OrderStatus.DELIVERED,
        )
    ]

    report = reconcile(statement, stored(hub), MAY)

    assert kinds(report) == [
        (DifferenceKind.REFUND_NOT_REFLECTED, "A1"),
        (DifferenceKind.STATUS_MISMATCH, "A1"),
    ]
    refund, status = report.differences
    assert "CANCELLED" in refund.detail
    assert (refund.platform.refunded_fen, refund.hub.refunded_fen) == (1990, 9900)
    assert status.platform == status.hub == Amounts()  # the refund already explains the money
    assert_explained(report)


def test_a_finished_refund_only_line_in_the_hub_reflects_the_platforms_refund() -> None:
    lines = (line(7000), line(2900, AfterSaleType.REFUND_ONLY, AfterSaleState.DONE, n=2))
    hub = order("B1", 9900, lines=lines, after_sale=AfterSaleType.REFUND_ONLY)
    statement = [record("B1", 9900, 2900, after_sale_type=AfterSaleType.REFUND_ONLY)]

    report = reconcile(statement, stored(hub), MAY)

    assert report.balanced
    assert report.platform_totals == report.hub_totals == {"CNY": Amounts(1, 9900, 2900)}


def test_a_refund_only_still_open_in_the_hub_is_not_yet_a_refund() -> None:
    lines = (line(9900, AfterSaleType.REFUND_ONLY, AfterSaleState.OPEN),)
    hub = order("B2", 9900, lines=lines, after_sale=AfterSaleType.REFUND_ONLY)
    statement = [record("B2", 9900, 9900, after_sale_type=AfterSaleType.REFUND_ONLY)]

    report = reconcile(statement, stored(hub), MAY)

    assert kinds(report) == [(DifferenceKind.REFUND_NOT_REFLECTED, "B2")]
    assert report.gap("CNY").refunded_fen == 9900


# ---------------------------------------------------------------- the other kinds


def test_an_order_only_the_platform_has_is_missing_in_the_hub() -> None:
    report = reconcile([record("C1", 4500), record("C2", 100)], stored(order("C2", 100)), MAY)

    assert kinds(report) == [(DifferenceKind.MISSING_IN_HUB, "C1")]
    missing = report.differences[0]
    assert missing.order_id == "" and missing.platform == Amounts(1, 4500, 0)
    assert report.gap("CNY") == Amounts(1, 4500, 0)
    assert_explained(report)


def test_an_order_only_the_hub_has_is_missing_on_the_platform() -> None:
    report = reconcile([], stored(order("D1", 3300)), MAY)

    assert kinds(report) == [(DifferenceKind.MISSING_ON_PLATFORM, "D1")]
    assert report.differences[0].order_id == "ord_D1"
    assert report.gap("CNY") == Amounts(-1, -3300, 0)
    assert_explained(report)


def test_hub_orders_that_never_took_money_are_not_missing_on_the_platform() -> None:
    unpaid = order("E1", 3300, status=OrderStatus.PENDING_PAYMENT, paid_at=None)
    abandoned = order("E2", 3300, status=OrderStatus.CANCELLED, paid_at=None)

    report = reconcile([], stored(unpaid, abandoned), MAY)

    assert report.balanced and report.hub_totals == {}


def test_a_cancellation_the_hub_missed_is_a_status_mismatch_carrying_the_refund() -> None:
    statement = [record("F1", 5000, 5000, status=OrderStatus.CANCELLED)]

    report = reconcile(statement, stored(order("F1", 5000, status=OrderStatus.PAID)), MAY)

    assert kinds(report) == [(DifferenceKind.STATUS_MISMATCH, "F1")]
    status = report.differences[0]
    assert status.detail == "CANCELLED on the platform, PAID in the hub"
    assert (status.platform.refunded_fen, status.hub.refunded_fen) == (5000, 0)
    assert_explained(report)


def test_shipping_progress_is_not_a_status_mismatch() -> None:
    statement = [record("F2", 5000, status=OrderStatus.DELIVERED)]

    report = reconcile(statement, stored(order("F2", 5000, status=OrderStatus.ALLOCATED)), MAY)

    assert report.balanced


def test_a_different_paid_amount_is_an_amount_mismatch() -> None:
    report = reconcile([record("G1", 10000)], stored(order("G1", 9900)), MAY)

    assert kinds(report) == [(DifferenceKind.AMOUNT_MISMATCH, "G1")]
    mismatch = report.differences[0]
    assert (mismatch.platform_net_fen, mismatch.hub_net_fen) == (10000, 9900)
    assert mismatch.detail == "paid differs between the platform and the hub"
    assert report.gap("CNY") == Amounts(0, 100, 0)


def test_a_refund_the_platform_does_not_show_is_an_amount_mismatch() -> None:
    lines = (line(9900, AfterSaleType.RETURN_REFUND, AfterSaleState.DONE),)
    hub = order("G2", 9900, lines=lines, after_sale=AfterSaleType.RETURN_REFUND)

    report = reconcile([record("G2", 9900, 0)], stored(hub), MAY)

    assert kinds(report) == [(DifferenceKind.AMOUNT_MISMATCH, "G2")]
    assert report.gap("CNY") == Amounts(0, 0, -9900)
    assert_explained(report)


def test_copies_in_two_currencies_are_a_currency_mismatch_counted_in_each() -> None:
    statement = [record("H1", 1500, currency="USD")]

    report = reconcile(statement, stored(order("H1", 9900, currency="CNY")), MAY)

    assert kinds(report) == [(DifferenceKind.CURRENCY_MISMATCH, "H1")]
    assert report.currencies == ["CNY", "USD"]
    assert report.gap("USD") == Amounts(1, 1500, 0)
    assert report.gap("CNY") == Amounts(-1, -9900, 0)
    assert_explained(report)


# ---------------------------------------------------------------- the period


def test_an_order_paid_before_the_end_and_settled_after_it_is_not_missing() -> None:
    paid_late = MAY.end - timedelta(minutes=1)
    settled = MAY.end + timedelta(hours=9)
    statement = [record("I1", 2000, occurred_at=settled)]

    report = reconcile(statement, stored(order("I1", 2000, paid_at=paid_late)), MAY)

    assert report.balanced
    assert report.platform_totals == {"CNY": Amounts(1, 2000, 0)}


def test_orders_outside_the_period_on_both_sides_are_left_out() -> None:
    april = datetime(2024, 4, 20, tzinfo=UTC)
    statement = [record("J1", 2000, occurred_at=april), record("J2", 700)]
    hub = stored(order("J1", 2000, paid_at=april), order("J3", 500, paid_at=april))

    report = reconcile(statement, hub, MAY)

    assert kinds(report) == [(DifferenceKind.MISSING_IN_HUB, "J2")]
    assert report.platform_totals == {"CNY": Amounts(1, 700, 0)}
    assert report.hub_totals == {}


def test_a_period_must_end_after_it_starts_and_know_its_zone() -> None:
    with pytest.raises(ValueError, match="after its start"):
        Period(MAY.end, MAY.start)
    with pytest.raises(ValueError, match="zone-aware"):
        Period(datetime(2024, 5, 1), datetime(2024, 6, 1))


# ---------------------------------------------------------------- records


def test_records_of_one_order_add_up() -> None:
    later = PAID_AT + timedelta(days=3)
    combined = combine(
        [
            record("K1", 5000, status=OrderStatus.PAID),
            record(
                "K1",
                0,
                1200,
                after_sale_type=AfterSaleType.REFUND_ONLY,
                status=OrderStatus.DELIVERED,
                occurred_at=later,
            ),
            record("K1", 3000),
        ]
    )

    assert combined["K1"] == PlatformRecord(
        "K1",
        8000,
        1200,
        AfterSaleType.REFUND_ONLY,
        OrderStatus.DELIVERED,
        occurred_at=PAID_AT,
        currency="CNY",
    )


def test_records_of_one_order_in_two_currencies_are_refused() -> None:
    with pytest.raises(ValueError, match="CNY and USD"):
        combine([record("K2"), record("K2", currency="USD")])


def test_the_hub_counts_a_closed_order_as_refunded_in_full() -> None:
    assert hub_amounts(order("L1", 4200, status=OrderStatus.CLOSED)) == (4200, 4200)
    assert hub_amounts(order("L2", 4200, status=OrderStatus.CANCELLED)) == (4200, 4200)
    assert hub_amounts(order("L3", 4200, status=OrderStatus.PENDING_PAYMENT)) == (0, 0)


def test_pulled_orders_as_records_keep_their_status_kind_and_time() -> None:
    pulled = order("M1", 4200, status=OrderStatus.SHIPPED, after_sale=AfterSaleType.EXCHANGE)

    (got,) = records_from_orders([pulled])

    assert got == PlatformRecord(
        "M1", 4200, 0, AfterSaleType.EXCHANGE, OrderStatus.SHIPPED, PAID_AT, "CNY"
    )


# ---------------------------------------------------------------- properties

_IDS = [f"P{n}" for n in range(8)]
_TIMES = st.one_of(
    st.none(),
    st.sampled_from(
        [MAY.start - timedelta(days=2), MAY.start, PAID_AT, MAY.end - timedelta(seconds=1)]
    ),
    st.just(MAY.end),
)
_KINDS = st.sampled_from(list(AfterSaleType))
_CURRENCIES = st.sampled_from(["CNY", "CNY", "USD"])


@st.composite
def platform_records(draw: st.DrawFn) -> list[PlatformRecord]:
    out = []
    for pid in draw(st.lists(st.sampled_from(_IDS), max_size=10)):
        paid = draw(st.integers(0, 20000))
        out.append(
            PlatformRecord(
                pid,
                paid,
                draw(st.integers(0, paid)),
                draw(_KINDS),
                draw(st.none() | st.sampled_from(list(OrderStatus))),
                draw(_TIMES),
                draw(_CURRENCIES) if pid != "P0" else "CNY",
            )
        )
    # One currency per order, as a statement's parser guarantees.
    first = {r.platform_order_id: r.currency for r in reversed(out)}
    return [replace(r, currency=first[r.platform_order_id]) for r in out]


@st.composite
def hub_orders(draw: st.DrawFn) -> list[Stored]:
    out = []
    for pid in draw(st.lists(st.sampled_from(_IDS), unique=True, max_size=8)):
        parts = draw(st.lists(st.integers(0, 8000), min_size=1, max_size=3))
        lines = tuple(
            line(p, draw(_KINDS), draw(st.sampled_from(list(AfterSaleState))), n=i)
            for i, p in enumerate(parts)
        )
        status = draw(st.sampled_from(list(OrderStatus)))
        o = order(
            pid,
            sum(parts) + draw(st.integers(0, 1000)),
            status=status,
            lines=lines,
            currency=draw(_CURRENCIES),
            paid_at=draw(_TIMES),
            after_sale=draw(_KINDS),
        )
        out.append(Stored(f"ord_{pid}", o))
    return out


@settings(max_examples=300, deadline=None)
@given(platform_records(), hub_orders())
def test_the_differences_always_add_up_to_the_gap(
    records: list[PlatformRecord], hub: list[Stored]
) -> None:
    report = reconcile(records, hub, MAY)

    for currency in report.currencies:
        assert report.explained(currency) == report.gap(currency)
    seen = {c for d in report.differences for c in (d.currency, d.hub_currency)}
    assert seen <= set(report.currencies)
    if report.balanced:
        assert all(report.gap(c) == Amounts() for c in report.currencies)
    assert sum(report.counts.values()) == len(report.differences)


@settings(max_examples=200, deadline=None)
@given(hub_orders())
def test_the_hubs_own_orders_as_records_always_balance(hub: list[Stored]) -> None:
    records = records_from_orders(s.order for s in hub)

    report = reconcile(records, hub, MAY)

    assert report.balanced, report.differences
    assert report.platform_totals == report.hub_totals
