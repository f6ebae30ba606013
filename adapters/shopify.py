"""Shopify Admin REST Order (``{"order": …}``) and ``orders/create`` webhook body → unified order.

Money is decimal strings in the shop's currency, which is kept (a JPY shop has no minor
unit, so ``"1000"`` is 1000). Ids are int64 and may exceed 2^53; they become strings.
The status combines ``financial_status``, ``fulfillment_status`` and ``cancelled_at``.
After-sales come from ``refunds[]``: a refunded line that is not restocked is refund-only,
one restocked as a return is return-and-refund.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters import fields as f
from adapters import money
from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
    summarize_after_sale,
)

PLATFORM = "shopify"

_ENVELOPES = (("order",), ("orders", "[]"))

_UNPAID = frozenset({"pending", "authorized", "partially_paid"})
_PAID = frozenset({"paid", "partially_refunded"})
_VOIDED = frozenset({"voided", "expired"})
_SETTLED = frozenset({"paid", "partially_refunded", "refunded", "partially_paid"})

#: ``refund_line_items[].restock_type``. ``cancel`` removes a line that never shipped (a
#: cancellation, not a refund-only); ``legacy_restock`` does not say whether goods came back.
RESTOCK_TYPE = {
    "no_restock": AfterSaleType.REFUND_ONLY,
    "return": AfterSaleType.RETURN_REFUND,
    "cancel": AfterSaleType.OTHER,
    "legacy_restock": AfterSaleType.OTHER,
}


def translate(payload: Any, shop_id: str) -> PlatformOrder:
    """A Shopify order (REST envelope or bare webhook body) → the unified order."""
    root = f.as_object(payload, "payload")
    order, at = f.unwrap(root, _ENVELOPES)
    currency = f.text(order, "currency", at, required=True).upper()
    try:
        money.exponent(currency)
    except money.MoneyError as exc:
        f.fail(at, "currency", str(exc))
    financial = f.text(order, "financial_status", at).lower()
    fulfillment = f.text(order, "fulfillment_status", at).lower()
    cancelled = bool(f.text(order, "cancelled_at", at))
    status = _status(order, at, financial, fulfillment, cancelled)
    line_kinds, order_kinds = _refunds(order, at)
    items_at = f.path(at, "line_items")
    items = f.objects(order, "line_items", at, required=True)
    if not items:
        f.fail(at, "line_items", "an order without line items")
    lines = tuple(
        _line(item, f.path(items_at, i), currency, line_kinds) for i, item in enumerate(items)
    )
    shipping_at = f.path(at, "shipping_lines")
    shipping = 0
    for i, ship in enumerate(f.objects(order, "shipping_lines", at)):
        key = "discounted_price" if ship.get("discounted_price") not in (None, "") else "price"
        shipping += f.major(ship, key, f.path(shipping_at, i), currency, required=False)
    platform_status = (
        f"financial_status={financial or 'null'};fulfillment_status={fulfillment or 'null'}"
    )
    if cancelled:
        platform_status += ";cancelled"
    return PlatformOrder(
        platform=PLATFORM,
        shop_id=shop_id,
        platform_order_id=f.ident(order, "id", at),
        platform_status=platform_status,
        status=status,
        after_sale_type=summarize_after_sale(
            [*(line.after_sale_type for line in lines), *order_kinds]
        ),
        buyer_note=_buyer_note(order, at),
        seller_note="",
        recipient=_recipient(order, at),
        lines=lines,
        shipping_fee_fen=shipping,
        total_paid_fen=f.major(order, "total_price", at, currency),
        currency=currency,
        created_at=f.iso_time(order, "created_at", at),
        paid_at=_paid_at(order, at, financial),
        updated_at=f.iso_time(order, "updated_at", at),
    )


def _status(
    order: f.Obj, at: str, financial: str, fulfillment: str, cancelled: bool
) -> OrderStatus:
    if cancelled or financial in _VOIDED:
        return OrderStatus.CANCELLED
    if financial == "refunded":
        return OrderStatus.CLOSED
    if fulfillment == "fulfilled":
        return OrderStatus.DELIVERED if _all_delivered(order, at) else OrderStatus.SHIPPED
    if financial in _PAID:
        # Unfulfilled or partly fulfilled: something is still to ship.
        return OrderStatus.PAID
    if financial in _UNPAID:
        return OrderStatus.PENDING_PAYMENT
    f.fail(at, "financial_status", f"unknown Shopify financial status {financial!r}")


def _all_delivered(order: f.Obj, at: str) -> bool:
    where = f.path(at, "fulfillments")
    shipments = [
        ship
        for i, ship in enumerate(f.objects(order, "fulfillments", at))
        if f.text(ship, "status", f.path(where, i)) == "success"
    ]
    return bool(shipments) and all(
        f.text(ship, "shipment_status", where) == "delivered" for ship in shipments
    )


def _refunds(order: f.Obj, at: str) -> tuple[dict[str, list[AfterSaleType]], list[AfterSaleType]]:
    """After-sale kinds per line id, and those of refunds that name no line (money only)."""
    per_line: dict[str, list[AfterSaleType]] = {}
    whole: list[AfterSaleType] = []
    refunds_at = f.path(at, "refunds")
    for i, refund in enumerate(f.objects(order, "refunds", at)):
        where = f.path(refunds_at, i)
        transactions = f.objects(refund, "transactions", where)
        if transactions and not any(
            f.text(t, "kind", where) == "refund" and f.text(t, "status", where) == "success"
            for t in transactions
        ):
            continue  # no money went back: not an after-sale (yet)
        items_at = f.path(where, "refund_line_items")
        items = f.objects(refund, "refund_line_items", where)
        if not items:
            whole.append(AfterSaleType.REFUND_ONLY)
            continue
        for j, item in enumerate(items):
            item_at = f.path(items_at, j)
            line_id = f.ident(item, "line_item_id", item_at)
            restock = f.text(item, "restock_type", item_at)
            if restock:
                kind = RESTOCK_TYPE.get(restock, AfterSaleType.OTHER)
            elif refund.get("restock") is True:
                kind = AfterSaleType.OTHER
            else:
                kind = AfterSaleType.REFUND_ONLY
            per_line.setdefault(line_id, []).append(kind)
    return per_line, whole


def _line(
    item: f.Obj, at: str, currency: str, refunds: dict[str, list[AfterSaleType]]
) -> OrderLine:
    line_id = f.ident(item, "id", at)
    native = f.ident(item, "variant_id", at, required=False)
    quantity = f.quantity(item, "quantity", at)
    price = f.major(item, "price", at, currency)
    allocations_at = f.path(at, "discount_allocations")
    allocations = f.objects(item, "discount_allocations", at)
    if allocations:
        discount = sum(
            f.major(a, "amount", f.path(allocations_at, i), currency)
            for i, a in enumerate(allocations)
        )
    else:
        discount = f.major(item, "total_discount", at, currency, required=False)
    kind = summarize_after_sale(refunds.get(line_id, ()))
    return OrderLine(
        platform_line_id=line_id,
        platform_sku_id=f.text(item, "sku", at) or native or f.ident(item, "product_id", at),
        title=f.first_text(item, ("name", "title"), at),
        quantity=quantity,
        unit_price_fen=price,
        paid_fen=price * quantity - discount,
        after_sale_type=kind,
        after_sale_state=AfterSaleState.NONE if kind is AfterSaleType.NONE else AfterSaleState.DONE,
        native_sku_id=native,
    )


def _buyer_note(order: f.Obj, at: str) -> str:
    """``note`` and the checkout's ``note_attributes`` (gift messages, engravings…)."""
    parts = [f.text(order, "note", at)]
    where = f.path(at, "note_attributes")
    for i, attribute in enumerate(f.objects(order, "note_attributes", at)):
        name = f.text(attribute, "name", f.path(where, i))
        value = f.text(attribute, "value", f.path(where, i))
        if value:
            parts.append(f"{name}: {value}" if name else value)
    return "\n".join(p for p in parts if p)


def _recipient(order: f.Obj, at: str) -> Recipient:
    address = f.child(order, "shipping_address", at)
    if address is None:
        return Recipient()
    where = f.path(at, "shipping_address")
    name = f.text(address, "name", where) or " ".join(
        p for p in (f.text(address, "first_name", where), f.text(address, "last_name", where)) if p
    )
    phone = f.text(address, "phone", where)
    street = ", ".join(
        p for p in (f.text(address, "address1", where), f.text(address, "address2", where)) if p
    )
    return Recipient(
        name=name,
        phone=phone,
        province=f.text(address, "province", where),
        city=f.text(address, "city", where),
        address=street,
        zip=f.text(address, "zip", where),
        country=f.text(address, "country_code", where) or f.text(address, "country", where),
        pii_protected=any(f.looks_protected(v) for v in (name, phone, street)),
    )


def _paid_at(order: f.Obj, at: str, financial: str) -> datetime | None:
    """When the money was taken: the last successful sale or capture, else ``processed_at``."""
    where = f.path(at, "transactions")
    captured = [
        moment
        for i, t in enumerate(f.objects(order, "transactions", at))
        if f.text(t, "kind", f.path(where, i)) in ("sale", "capture")
        and f.text(t, "status", f.path(where, i)) == "success"
        and (
            moment := f.iso_time(t, "processed_at", f.path(where, i))
            or f.iso_time(t, "created_at", f.path(where, i))
        )
        is not None
    ]
    if captured:
        return max(captured)
    if financial in _SETTLED:
        return f.iso_time(order, "processed_at", at)
    return None
