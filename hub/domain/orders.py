"""The unified order: one shape for every channel, as plain values.

Adapters (``adapters/``) turn a platform's raw order into a :class:`PlatformOrder`; the
order service stores it, reserves stock and routes it. Money is integer minor units of the
order's currency (fen for CNY), times are zone-aware UTC, ids are strings. The names match
``orderhub.v1.Order`` in ``protos/orderhub/v1/order.proto``; the enum values are the proto
names without their prefix (``OrderStatus.PAID`` ↔ ``ORDER_STATUS_PAID``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

_ZERO = timedelta(0)


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    #: Paid, but must not ship yet (risk control, group buy not formed, platform lock).
    ON_HOLD = "ON_HOLD"
    #: The hub chose the warehouse(s); platforms never report this one.
    ALLOCATED = "ALLOCATED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    #: Voided: by the buyer, the seller or the platform, before it was fulfilled.
    CANCELLED = "CANCELLED"
    #: Ended after payment without completing: the money went back (refund completed).
    CLOSED = "CLOSED"


class AfterSaleType(StrEnum):
    """The kind of after-sale service on an order or a line."""

    NONE = "NONE"
    #: Money back, no goods come back. Never a cancellation.
    REFUND_ONLY = "REFUND_ONLY"
    RETURN_REFUND = "RETURN_REFUND"
    EXCHANGE = "EXCHANGE"
    RESEND = "RESEND"
    REPAIR = "REPAIR"
    PRICE_PROTECT = "PRICE_PROTECT"
    #: An after-sale none of the above names (a cancel-type request, a platform's "others",
    #: a refund whose kind the payload does not say, or several kinds on one order).
    OTHER = "OTHER"


class AfterSaleState(StrEnum):
    """How far an after-sale has got; refused, withdrawn or failed ones count as NONE."""

    NONE = "NONE"
    #: Requested and not finished: don't ship the line until it is settled.
    OPEN = "OPEN"
    #: Finished: the money went back, or the exchange/resend/repair was done.
    DONE = "DONE"


TERMINAL = frozenset({OrderStatus.CANCELLED, OrderStatus.CLOSED})

_RANK = {
    OrderStatus.PENDING_PAYMENT: 0,
    OrderStatus.PAID: 1,
    OrderStatus.ON_HOLD: 1,
    OrderStatus.ALLOCATED: 2,
    OrderStatus.SHIPPED: 3,
    OrderStatus.DELIVERED: 4,
    OrderStatus.CANCELLED: 5,
    OrderStatus.CLOSED: 6,
}


def status_rank(status: OrderStatus) -> int:
    """How far along the lifecycle a status is; PAID and ON_HOLD share a rank."""
    return _RANK[status]


def may_follow(old: OrderStatus, new: OrderStatus) -> bool:
    """Whether an order at ``old`` may move to ``new`` without going backwards.

    Forward moves are allowed, and so are moves into a hold from any state before shipment
    (a platform may lock an allocated order) and out of a hold back to PAID. Nothing leaves
    CLOSED; CANCELLED may only become CLOSED (the refund of a voided order completed).
    """
    if old == new:
        return True
    if old in TERMINAL:
        return old is OrderStatus.CANCELLED and new is OrderStatus.CLOSED
    if new is OrderStatus.ON_HOLD:
        return _RANK[old] <= _RANK[OrderStatus.ALLOCATED]
    return _RANK[new] >= _RANK[old]


def summarize_after_sale(types: Iterable[AfterSaleType]) -> AfterSaleType:
    """The order-level after-sale type of its lines: the one kind, NONE, or OTHER when mixed."""
    kinds = {t for t in types if t is not AfterSaleType.NONE}
    if not kinds:
        return AfterSaleType.NONE
    if len(kinds) == 1:
        return kinds.pop()
    return AfterSaleType.OTHER


class TranslationError(Exception):
    """A payload that cannot become an order; ``field`` names where, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who receives the parcel, as the platform delivered it (ciphertext stays ciphertext)."""

    name: str = ""
    phone: str = ""
    province: str = ""
    city: str = ""
    district: str = ""
    address: str = ""
    zip: str = ""
    country: str = ""
    #: True when the platform delivered name, phone or address encrypted or masked.
    pii_protected: bool = False
    #: Street or township (街道/乡镇) when the platform gives it apart from the address.
    street: str = ""


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of an order; ``sku`` (ours) is resolved later from ``platform_sku_id``."""

    platform_line_id: str
    #: The code a shop maps to our SKU (``MapPlatformSku``): the merchant's own SKU code
    #: when the platform carries one, otherwise the platform's SKU id.
    platform_sku_id: str
    title: str
    quantity: int
    unit_price_fen: int
    #: What the buyer paid for the line after discounts, in minor units.
    paid_fen: int
    after_sale_type: AfterSaleType = AfterSaleType.NONE
    sku: str = ""
    #: The platform's own SKU id (Taobao ``sku_id``, JD ``skuId``, Shopify ``variant_id`` …).
    native_sku_id: str = ""
    after_sale_state: AfterSaleState = AfterSaleState.NONE


@dataclass(frozen=True, slots=True)
class PlatformOrder:
    """An order as one platform reported it, in the hub's own terms."""

    platform: str
    shop_id: str
    platform_order_id: str
    #: The platform's own status value(s), kept beside the mapped ``status``.
    platform_status: str
    status: OrderStatus
    after_sale_type: AfterSaleType
    buyer_note: str
    seller_note: str
    recipient: Recipient
    lines: tuple[OrderLine, ...]
    shipping_fee_fen: int
    total_paid_fen: int
    #: ISO 4217; every ``*_fen`` field holds minor units of it.
    currency: str
    created_at: datetime | None
    paid_at: datetime | None
    updated_at: datetime | None

    def __post_init__(self) -> None:
        for name in ("created_at", "paid_at", "updated_at"):
            moment: datetime | None = getattr(self, name)
            if moment is not None and moment.utcoffset() != _ZERO:
                raise ValueError(f"{name} must be zone-aware UTC, got {moment!r}")


@dataclass(frozen=True, slots=True)
class AfterSale:
    """One after-sale record from a platform's after-sale API, for an order or one line."""

    platform: str
    platform_order_id: str
    platform_after_sale_id: str
    type: AfterSaleType
    state: AfterSaleState
    #: The platform's own type code or name, kept beside the mapped ``type``.
    platform_type: str
    #: Which line it concerns; both empty means the whole order.
    platform_line_id: str = ""
    platform_sku_id: str = ""
    refund_fen: int = 0


def apply_after_sale(order: PlatformOrder, sale: AfterSale) -> PlatformOrder:
    """The order with an after-sale record applied to the line(s) it concerns."""
    if sale.platform_order_id != order.platform_order_id:
        raise ValueError(
            f"after-sale {sale.platform_after_sale_id} is for order {sale.platform_order_id}, "
            f"not {order.platform_order_id}"
        )
    kind = sale.type if sale.state is not AfterSaleState.NONE else AfterSaleType.NONE

    def concerns(line: OrderLine) -> bool:
        if sale.platform_line_id:
            return line.platform_line_id == sale.platform_line_id
        if sale.platform_sku_id:
            return sale.platform_sku_id in (line.platform_sku_id, line.native_sku_id)
        return True

    lines = tuple(
        replace(line, after_sale_type=kind, after_sale_state=sale.state) if concerns(line) else line
        for line in order.lines
    )
    touched = any(concerns(line) for line in order.lines)
    summary = summarize_after_sale(line.after_sale_type for line in lines)
    if not touched:
        summary = summarize_after_sale([summary, kind])
    return replace(order, lines=lines, after_sale_type=summary)
