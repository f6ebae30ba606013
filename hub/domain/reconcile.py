"""Reconciliation: what a platform says a shop took in a period, against the hub's records.

Pure rules. The platform's side is a list of :class:`PlatformRecord` (one per order, from an
uploaded statement or from pulled orders); the hub's side is its stored orders. Both sides
are totalled per currency (orders, paid, refunded, net = paid - refunded), and every order
whose two copies disagree becomes one or more :class:`Difference` naming it and what is
wrong. Each difference carries the part of each side's totals it accounts for, so the
differences add up to the gap between the totals exactly: nothing is left unexplained.

Which orders a period concerns: an order is in the period when either side places it there
(the platform by its record's time, the hub by when the order was paid, else created); both
sides' copies of it are then counted. A boundary shift (paid at 23:59 on the last day,
settled the next morning) is therefore not a difference. Hub orders that never took money
(unpaid, or cancelled before payment) are left out unless the platform lists them:
statements list money, not abandoned carts.

The hub keeps no refund amount, so what it *knows* was refunded is derived from what it
has: a CLOSED order, or one CANCELLED after payment, gave all its money back; otherwise
each line with a finished refund-only or return-and-refund after-sale gave back what was
paid for it. The article's failure — Douyin's refund-only read as a plain cancellation, 37
orders a month missing from reconciliation — shows up as REFUND_NOT_REFLECTED.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Protocol

from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderStatus,
    PlatformOrder,
    summarize_after_sale,
)

#: After-sale kinds that give money back.
REFUND_KINDS = frozenset({AfterSaleType.REFUND_ONLY, AfterSaleType.RETURN_REFUND})
_ZERO = timedelta(0)


class DifferenceKind(StrEnum):
    """Why an order's two copies disagree."""

    #: On the platform, not in the hub: an order the hub never took in.
    MISSING_IN_HUB = "MISSING_IN_HUB"
    #: In the hub, not on the platform's statement.
    MISSING_ON_PLATFORM = "MISSING_ON_PLATFORM"
    #: The platform shows a refund (refund only, return and refund) the hub does not have,
    #: or a refund-only the hub took for a plain cancellation (the article's case).
    REFUND_NOT_REFLECTED = "REFUND_NOT_REFLECTED"
    #: Paid or refunded amounts differ, and nothing above explains it.
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    #: Unpaid, live or ended on one side and not the other (e.g. cancelled on the platform,
    #: live in the hub).
    STATUS_MISMATCH = "STATUS_MISMATCH"
    #: The two copies are in different currencies; their amounts cannot be compared.
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"


class Phase(Enum):
    """What a status means for money: not paid yet, paid and going on, or ended."""

    UNPAID = "UNPAID"
    LIVE = "LIVE"
    ENDED = "ENDED"


def phase(status: OrderStatus) -> Phase:
    """The money phase of a status; shipping progress (PAID → DELIVERED) is not a difference."""
    if status is OrderStatus.PENDING_PAYMENT:
        return Phase.UNPAID
    if status in (OrderStatus.CANCELLED, OrderStatus.CLOSED):
        return Phase.ENDED
    return Phase.LIVE


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open span of time ``[start, end)``, zone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if getattr(self, name).utcoffset() is None:
                raise ValueError(f"period {name} must be zone-aware")
        if self.end <= self.start:
            raise ValueError("period end must be after its start")

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class PlatformRecord:
    """One order as the platform accounts for it, in minor units of ``currency``."""

    platform_order_id: str
    paid_fen: int
    refunded_fen: int = 0
    after_sale_type: AfterSaleType = AfterSaleType.NONE
    #: None when the platform's data does not say.
    status: OrderStatus | None = None
    #: When the order counts for the platform (paid, created or settled); None: no time.
    occurred_at: datetime | None = None
    currency: str = "CNY"

    def __post_init__(self) -> None:
        if not self.platform_order_id:
            raise ValueError("a platform record needs its platform_order_id")
        if self.paid_fen < 0 or self.refunded_fen < 0:
            raise ValueError(f"{self.platform_order_id}: amounts must not be negative")
        if self.occurred_at is not None and self.occurred_at.utcoffset() is None:
            raise ValueError(f"{self.platform_order_id}: occurred_at must be zone-aware")

    @property
    def net_fen(self) -> int:
        """What the order is worth after refunds."""
        return self.paid_fen - self.refunded_fen

    def amounts(self, orders: int = 1) -> Amounts:
        """The record as amounts on its side, counting as ``orders`` orders."""
        return Amounts(orders, self.paid_fen, self.refunded_fen)


@dataclass(frozen=True, slots=True)
class Amounts:
    """A number of orders and their money: a side's total, or the part a difference explains."""

    orders: int = 0
    paid_fen: int = 0
    refunded_fen: int = 0

    @property
    def net_fen(self) -> int:
        """Paid less refunded."""
        return self.paid_fen - self.refunded_fen

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.orders + other.orders,
            self.paid_fen + other.paid_fen,
            self.refunded_fen + other.refunded_fen,
        )

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.orders - other.orders,
            self.paid_fen - other.paid_fen,
            self.refunded_fen - other.refunded_fen,
        )


NOTHING = Amounts()


@dataclass(frozen=True, slots=True)
class Difference:
    """One reason the two sides disagree, naming the order.

    ``platform`` and ``hub`` are the parts of each side's totals this difference accounts
    for (in ``currency`` and ``hub_currency``); ``platform_net_fen`` and ``hub_net_fen``
    are the whole order's net on each side (0 where a side has no such order).
    """

    kind: DifferenceKind
    platform_order_id: str
    #: The hub's id; empty when the hub has no such order.
    order_id: str
    platform: Amounts
    hub: Amounts
    currency: str
    hub_currency: str
    platform_net_fen: int
    hub_net_fen: int
    detail: str

    def contribution(self, currency: str) -> Amounts:
        """What this difference adds to the gap (platform - hub) in ``currency``."""
        mine = self.platform if self.currency == currency else NOTHING
        theirs = self.hub if self.hub_currency == currency else NOTHING
        return mine - theirs


@dataclass(frozen=True, slots=True)
class Report:
    """Totals on both sides per currency, and the differences that explain the gap."""

    period: Period
    platform_totals: Mapping[str, Amounts]
    hub_totals: Mapping[str, Amounts]
    differences: tuple[Difference, ...]
    #: Platform records read (before records of the same order were combined).
    platform_records: int = 0
    #: Orders with differences, by kind.
    counts: Mapping[DifferenceKind, int] = field(default_factory=dict)

    @property
    def currencies(self) -> list[str]:
        """Every currency either side has, sorted."""
        return sorted({*self.platform_totals, *self.hub_totals})

    @property
    def balanced(self) -> bool:
        """True when the two sides agree order by order."""
        return not self.differences

    def gap(self, currency: str) -> Amounts:
        """Platform totals less hub totals in ``currency``."""
        return self.platform_totals.get(currency, NOTHING) - self.hub_totals.get(currency, NOTHING)

    def explained(self, currency: str) -> Amounts:
        """The sum of what the differences account for in ``currency``; equals ``gap``."""
        total = NOTHING
        for d in self.differences:
            total = total + d.contribution(currency)
        return total


class HubOrder(Protocol):
    """An order as the hub stores it: its own id and the unified order."""

    @property
    def order_id(self) -> str: ...

    @property
    def order(self) -> PlatformOrder: ...


def hub_amounts(order: PlatformOrder) -> tuple[int, int]:
    """What the hub knows an order paid and had refunded: ``(paid_fen, refunded_fen)``."""
    unpaid = order.status is OrderStatus.PENDING_PAYMENT
    if unpaid or (order.status is OrderStatus.CANCELLED and order.paid_at is None):
        return 0, 0
    paid = order.total_paid_fen
    if order.status in (OrderStatus.CANCELLED, OrderStatus.CLOSED):
        return paid, paid
    refunded = sum(
        line.paid_fen
        for line in order.lines
        if line.after_sale_type in REFUND_KINDS and line.after_sale_state is AfterSaleState.DONE
    )
    return paid, min(refunded, paid)


def record_of(order: PlatformOrder) -> PlatformRecord:
    """A translated order as a platform record (what the hub would expect a statement to say)."""
    paid, refunded = hub_amounts(order)
    return PlatformRecord(
        platform_order_id=order.platform_order_id,
        paid_fen=paid,
        refunded_fen=refunded,
        after_sale_type=order.after_sale_type,
        status=order.status,
        occurred_at=order.paid_at or order.created_at,
        currency=order.currency,
    )


def records_from_orders(orders: Iterable[PlatformOrder]) -> list[PlatformRecord]:
    """Platform records from translated orders, e.g. a pull of the platform's order API."""
    return [record_of(order) for order in orders]


def combine(records: Iterable[PlatformRecord]) -> dict[str, PlatformRecord]:
    """One record per order: the amounts of several records of one order add up.

    A statement may list an order once per line or once per refund. The status is the
    latest record's, the time the earliest, the after-sale kind their summary (OTHER when
    mixed). Records of one order in two currencies are refused (ValueError).
    """
    out: dict[str, PlatformRecord] = {}
    for r in records:
        seen = out.get(r.platform_order_id)
        if seen is None:
            out[r.platform_order_id] = r
            continue
        if seen.currency != r.currency:
            raise ValueError(
                f"order {r.platform_order_id} is listed in {seen.currency} and {r.currency}"
            )
        later = r if _at_or_after(r.occurred_at, seen.occurred_at) else seen
        times = [t for t in (seen.occurred_at, r.occurred_at) if t is not None]
        out[r.platform_order_id] = replace(
            seen,
            paid_fen=seen.paid_fen + r.paid_fen,
            refunded_fen=seen.refunded_fen + r.refunded_fen,
            after_sale_type=summarize_after_sale([seen.after_sale_type, r.after_sale_type]),
            status=later.status if later.status is not None else (seen.status or r.status),
            occurred_at=min(times) if times else None,
        )
    return out


def _at_or_after(a: datetime | None, b: datetime | None) -> bool:
    return a is None or b is None or a >= b


def reconcile(
    platform_records: Iterable[PlatformRecord], hub_orders: Iterable[HubOrder], period: Period
) -> Report:
    """Compare the platform's records with the hub's orders of one shop over ``period``.

    ``hub_orders`` may hold more than the period (all of the shop's orders): those outside
    it are used only to find the counterpart of a platform record in it.
    """
    listed = list(platform_records)
    platform = combine(listed)
    hub: dict[str, HubOrder] = {}
    for stored in hub_orders:
        key = stored.order.platform_order_id
        if key in hub:
            raise ValueError(f"the hub has two orders for platform order {key}")
        hub[key] = stored
    hub_records = {key: record_of(stored.order) for key, stored in hub.items()}

    scope = {k for k, r in platform.items() if r.occurred_at is None or r.occurred_at in period}
    scope |= {
        k
        for k, r in hub_records.items()
        if (r.paid_fen or r.refunded_fen) and r.occurred_at in period
    }

    platform_totals: dict[str, Amounts] = {}
    hub_totals: dict[str, Amounts] = {}
    differences: list[Difference] = []
    for key in sorted(scope):
        p, h = platform.get(key), hub_records.get(key)
        if p is not None:
            platform_totals[p.currency] = platform_totals.get(p.currency, NOTHING) + p.amounts()
        if h is not None:
            hub_totals[h.currency] = hub_totals.get(h.currency, NOTHING) + h.amounts()
        if p is None and h is not None:
            differences.append(_missing_on_platform(h, hub[key]))
        elif h is None and p is not None:
            differences.append(_missing_in_hub(p))
        elif p is not None and h is not None:
            differences.extend(compare(p, hub[key].order_id, hub[key].order))
    rank = {kind: i for i, kind in enumerate(DifferenceKind)}
    differences.sort(key=lambda d: (rank[d.kind], d.platform_order_id))
    counts: dict[DifferenceKind, int] = {}
    for d in differences:
        counts[d.kind] = counts.get(d.kind, 0) + 1
    return Report(
        period=period,
        platform_totals=dict(sorted(platform_totals.items())),
        hub_totals=dict(sorted(hub_totals.items())),
        differences=tuple(differences),
        platform_records=len(listed),
        counts=counts,
    )


def _missing_in_hub(p: PlatformRecord) -> Difference:
    said = [p.status.value] if p.status is not None else []
    if p.after_sale_type is not AfterSaleType.NONE:
        said.append(p.after_sale_type.value)
    known = f" ({', '.join(said)})" if said else ""
    return Difference(
        kind=DifferenceKind.MISSING_IN_HUB,
        platform_order_id=p.platform_order_id,
        order_id="",
        platform=p.amounts(),
        hub=NOTHING,
        currency=p.currency,
        hub_currency=p.currency,
        platform_net_fen=p.net_fen,
        hub_net_fen=0,
        detail=f"on the platform{known} but not in the hub",
    )


def _missing_on_platform(h: PlatformRecord, stored: HubOrder) -> Difference:
    status = h.status.value if h.status is not None else ""
    return Difference(
        kind=DifferenceKind.MISSING_ON_PLATFORM,
        platform_order_id=h.platform_order_id,
        order_id=stored.order_id,
        platform=NOTHING,
        hub=h.amounts(),
        currency=h.currency,
        hub_currency=h.currency,
        platform_net_fen=0,
        hub_net_fen=h.net_fen,
        detail=f"in the hub ({status}) but not on the platform",
    )


def compare(p: PlatformRecord, order_id: str, order: PlatformOrder) -> list[Difference]:
    """The differences between a platform record and the hub's copy of the same order.

    Each amount that differs is accounted for by exactly one difference: a refund the
    platform shows by REFUND_NOT_REFLECTED, a refund or payment that follows from a
    status the hub missed by STATUS_MISMATCH, anything else by AMOUNT_MISMATCH.
    """
    h = record_of(order)

    def difference(kind: DifferenceKind, mine: Amounts, theirs: Amounts, why: str) -> Difference:
        return Difference(
            kind=kind,
            platform_order_id=p.platform_order_id,
            order_id=order_id,
            platform=mine,
            hub=theirs,
            currency=p.currency,
            hub_currency=h.currency,
            platform_net_fen=p.net_fen,
            hub_net_fen=h.net_fen,
            detail=why,
        )

    if p.currency != h.currency:
        why = f"{p.currency} on the platform, {h.currency} in the hub"
        return [difference(DifferenceKind.CURRENCY_MISMATCH, p.amounts(), h.amounts(), why)]

    found: list[Difference] = []
    paid_open = p.paid_fen != h.paid_fen
    refund_open = p.refunded_fen != h.refunded_fen
    assert h.status is not None
    platform_phase = phase(p.status) if p.status is not None else None
    hub_phase = phase(h.status)
    status_differs = platform_phase is not None and platform_phase is not hub_phase
    hub_kinds = {order.after_sale_type, *(line.after_sale_type for line in order.lines)}
    refund_kind = p.after_sale_type in REFUND_KINDS
    # The article's failure: a refund-only the hub holds as a cancellation (or not at all).
    misread = p.after_sale_type is AfterSaleType.REFUND_ONLY and (
        AfterSaleType.REFUND_ONLY not in hub_kinds
    )
    # A cancellation the hub missed: its refund follows from the status, not an after-sale.
    cancelled_elsewhere = status_differs and platform_phase is Phase.ENDED and not refund_kind

    if misread or (p.refunded_fen > 0 and refund_open and not cancelled_elsewhere):
        why = _refund_detail(p, h, misread)
        refunds = (Amounts(refunded_fen=p.refunded_fen), Amounts(refunded_fen=h.refunded_fen))
        found.append(difference(DifferenceKind.REFUND_NOT_REFLECTED, *refunds, why))
        refund_open = False

    if status_differs:
        assert p.status is not None
        take_paid = paid_open and Phase.UNPAID in (platform_phase, hub_phase)
        mine = Amounts(
            paid_fen=p.paid_fen if take_paid else 0,
            refunded_fen=p.refunded_fen if refund_open else 0,
        )
        theirs = Amounts(
            paid_fen=h.paid_fen if take_paid else 0,
            refunded_fen=h.refunded_fen if refund_open else 0,
        )
        why = f"{p.status.value} on the platform, {h.status.value} in the hub"
        found.append(difference(DifferenceKind.STATUS_MISMATCH, mine, theirs, why))
        paid_open = paid_open and not take_paid
        refund_open = False

    if paid_open or refund_open:
        mine = Amounts(
            paid_fen=p.paid_fen if paid_open else 0,
            refunded_fen=p.refunded_fen if refund_open else 0,
        )
        theirs = Amounts(
            paid_fen=h.paid_fen if paid_open else 0,
            refunded_fen=h.refunded_fen if refund_open else 0,
        )
        what = " and ".join(
            name for name, differs in (("paid", paid_open), ("refunded", refund_open)) if differs
        )
        why = f"{what} differ{'s' if ' and ' not in what else ''} between the platform and the hub"
        found.append(difference(DifferenceKind.AMOUNT_MISMATCH, mine, theirs, why))
    return found


def _refund_detail(p: PlatformRecord, h: PlatformRecord, misread: bool) -> str:
    kind = p.after_sale_type.value if p.after_sale_type is not AfterSaleType.NONE else "a refund"
    if misread and h.status in (OrderStatus.CANCELLED, OrderStatus.CLOSED):
        return f"the platform shows {kind}; the hub has the order {h.status.value} instead"
    if h.refunded_fen == 0:
        return f"the platform shows {kind} the hub does not have"
    return f"the platform shows {kind}; the hub's refund is a different amount"
