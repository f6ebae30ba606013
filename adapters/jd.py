"""JD POP (JOS ``jingdong.pop.order.get`` / ``.search`` / ``.enSearch``) → unified order.

Money is yuan strings, times Beijing time without a zone with ``0001-01-01 00:00:00`` for
"not yet", quantities strings. The consignee's name and full address come back as
ciphertext and the phones masked: they are kept as delivered and flagged. JD's own
envelope key really is spelled ``…_responce``. JD has no per-line paid amount: the goods
part of ``orderPayment`` is split over the lines in proportion to their list price.
"""

from __future__ import annotations

from typing import Any

from adapters import fields as f
from adapters import money
from hub.domain.orders import (
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
)

PLATFORM = "jd"
CURRENCY = "CNY"

_RESPONSES = tuple(
    f"jingdong_pop_order_{method}_{suffix}"
    for method in ("get", "search", "enSearch", "enGet")
    # JD's own key really is spelled "responce"; the right spelling is accepted too.
    for suffix in ("responce", "response")
)
_ENVELOPES = (
    *(
        (key, *inner)
        for key in _RESPONSES
        for inner in (
            ("orderDetailInfo", "orderInfo"),
            ("searchorderinfo_result", "orderInfoList", "[]"),
        )
    ),
    ("orderDetailInfo", "orderInfo"),
    ("orderInfo",),
)

STATUS = {
    "WAIT_SELLER_STOCK_OUT": OrderStatus.PAID,
    # Cross-border (海外购) orders waiting for domestic shipping; LOC orders waiting for a code.
    "WAIT_SELLER_DELIVERY": OrderStatus.PAID,
    "WAIT_SEND_CODE": OrderStatus.PAID,
    "POP_ORDER_PAUSE": OrderStatus.ON_HOLD,
    "PAUSE": OrderStatus.ON_HOLD,
    # Locked while a cancellation or refund request is decided: don't ship.
    "LOCKED": OrderStatus.ON_HOLD,
    "WAIT_GOODS_RECEIVE_CONFIRM": OrderStatus.SHIPPED,
    "SEND_TO_DISTRIBUTION_CENER": OrderStatus.SHIPPED,
    "DISTRIBUTION_CENTER_RECEIVED": OrderStatus.SHIPPED,
    "RECEIPTS_CONFIRM": OrderStatus.DELIVERED,
    "FINISHED_L": OrderStatus.DELIVERED,
    "TRADE_CANCELED": OrderStatus.CANCELLED,
}

#: ``returnOrder``: 0 an ordinary order; 1 a repair return, direct compensation or a
#: customer-service resend; 2 an after-sale exchange shipment. Such an order *is* the
#: after-sale shipment: the order carries the kind, its lines ship as usual (NONE).
RETURN_ORDER = {
    "0": AfterSaleType.NONE,
    "1": AfterSaleType.RESEND,
    "2": AfterSaleType.EXCHANGE,
}


def translate(payload: Any, shop_id: str) -> PlatformOrder:
    """A JOS orderInfo (response envelope, ``{"orderInfo": …}`` or bare) → the unified order."""
    root = f.as_object(payload, "payload")
    f.platform_error(root)
    order, at = f.unwrap(root, _ENVELOPES)
    status_text = f.text(order, "orderState", at, required=True)
    status = STATUS.get(status_text)
    if status is None:
        f.fail(at, "orderState", f"unknown JD order state {status_text!r}")
    return_order = f.text(order, "returnOrder", at) or "0"
    kind = RETURN_ORDER.get(return_order, AfterSaleType.OTHER)
    total = f.major(order, "orderPayment", at, CURRENCY)
    shipping = f.major(order, "freightPrice", at, CURRENCY, required=False)
    items_at = f.path(at, "itemInfoList")
    items = f.objects(order, "itemInfoList", at, required=True)
    if not items:
        f.fail(at, "itemInfoList", "an order without items")
    drafts = [_line(item, f.path(items_at, i)) for i, item in enumerate(items)]
    paid = money.allocate(max(total - shipping, 0), [d[3] * d[4] for d in drafts])
    lines = tuple(
        OrderLine(
            platform_line_id=line_id,
            platform_sku_id=code,
            title=title,
            quantity=qty,
            unit_price_fen=price,
            paid_fen=part,
            native_sku_id=native,
        )
        for (line_id, code, title, qty, price, native), part in zip(drafts, paid, strict=True)
    )
    return PlatformOrder(
        platform=PLATFORM,
        shop_id=shop_id,
        platform_order_id=f.ident(order, "orderId", at),
        platform_status=status_text,
        status=status,
        after_sale_type=kind,
        buyer_note=f.text(order, "orderRemark", at),
        seller_note=f.text(order, "venderRemark", at),
        recipient=_recipient(order, at),
        lines=lines,
        shipping_fee_fen=shipping,
        total_paid_fen=total,
        currency=CURRENCY,
        created_at=f.beijing_time(order, "orderStartTime", at),
        paid_at=f.beijing_time(order, "paymentConfirmTime", at),
        updated_at=f.beijing_time(order, "modified", at),
    )


def _line(item: f.Obj, at: str) -> tuple[str, str, str, int, int, str]:
    native = f.ident(item, "skuId", at)
    return (
        f.ident(item, "id", at, required=False) or native,
        f.text(item, "outerSkuId", at) or native,
        f.text(item, "skuName", at),
        f.quantity(item, "itemTotal", at),
        f.major(item, "jdPrice", at, CURRENCY),
        native,
    )


def _recipient(order: f.Obj, at: str) -> Recipient:
    consignee = f.child(order, "consigneeInfo", at)
    if consignee is None:
        return Recipient()
    where = f.path(at, "consigneeInfo")
    name = f.first_text(consignee, ("fullname", "encrypt_fullname"), where)
    phone = f.first_text(
        consignee, ("mobile", "telephone", "encrypt_mobile", "encrypt_telephone"), where
    )
    address = f.first_text(consignee, ("fullAddress", "encrypt_fullAddress"), where)
    return Recipient(
        name=name,
        phone=phone,
        province=f.text(consignee, "province", where),
        city=f.text(consignee, "city", where),
        district=f.text(consignee, "county", where),
        address=address,
        pii_protected=any(f.looks_protected(v) for v in (name, phone, address)),
        street=f.text(consignee, "town", where),
    )
