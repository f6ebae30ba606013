"""Douyin 抖店 (``/order/orderDetail``, ``/order/searchList``) → unified order.

Money is integer fen, times Unix seconds, ids strings. Name, phone and detail address come
as ciphertext (``##…##``, ``$$…$$``) beside masked copies; the ciphertext is kept (it can be
decrypted later with ``order.batchDecrypt``) and the recipient flagged. Each line carries
its own ``after_sale_info``; a line with no after-sale reports zeros there, so type ``0``
(退货退款) only counts when the status says an after-sale exists. Status 105 (已支付) is a
paid order under risk control that must not ship yet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters import fields as f
from hub.domain.orders import (
    AfterSale,
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
    TranslationError,
    summarize_after_sale,
)

PLATFORM = "douyin"
CURRENCY = "CNY"
_SUCCESS_CODES = (0, 10000)

_ENVELOPES = (
    ("data", "shop_order_detail"),
    ("data", "shop_order_list", "[]"),
    ("shop_order_detail",),
    ("data",),
)

STATUS = {
    1: OrderStatus.PENDING_PAYMENT,
    103: OrderStatus.PENDING_PAYMENT,  # 部分支付
    105: OrderStatus.ON_HOLD,  # 已支付, held by risk control: do not ship yet
    2: OrderStatus.PAID,  # 备货中
    101: OrderStatus.PAID,  # 部分发货: the rest still has to ship
    3: OrderStatus.SHIPPED,
    5: OrderStatus.DELIVERED,
    4: OrderStatus.CANCELLED,
}
#: ``main_status`` values for a refund that completed (before shipment, after shipment,
#: after receipt): the order closed with its money returned, it was not cancelled.
REFUND_COMPLETED = frozenset({21, 22, 39})

#: ``after_sale_type`` in orderDetail (0-7) and afterSale/Detail (adds 8 维修).
AFTER_SALE_TYPE = {
    0: AfterSaleType.RETURN_REFUND,
    1: AfterSaleType.REFUND_ONLY,  # 已发货仅退款
    2: AfterSaleType.REFUND_ONLY,  # 未发货仅退款
    3: AfterSaleType.EXCHANGE,
    4: AfterSaleType.OTHER,  # 系统取消: a cancellation, not a refund-only
    5: AfterSaleType.OTHER,  # 用户取消: a cancellation, not a refund-only
    6: AfterSaleType.PRICE_PROTECT,
    7: AfterSaleType.RESEND,
    8: AfterSaleType.REPAIR,
}
_AFTER_SALE_DONE = frozenset({12, 51, 53})  # 售后成功, 订单取消成功, 逆向交易已完成
_AFTER_SALE_ENDED = frozenset({27, 28, 29})  # refused, failed, return refused
_REFUND_OPEN = frozenset({1, 2})  # 待退款, 退款中
_REFUND_DONE = frozenset({3, 5})  # 退款成功, 追缴成功


def translate(payload: Any, shop_id: str) -> PlatformOrder:
    """An orderDetail / searchList response (or the bare shop order) → the unified order."""
    root = f.as_object(payload, "payload")
    _check_code(root)
    order, at = f.unwrap(root, _ENVELOPES)
    order_status = f.integer(order, "order_status", at, required=False)
    main_status = f.integer(order, "main_status", at, required=False)
    status = _status(order_status, main_status, at)
    items_at = f.path(at, "sku_order_list")
    items = f.objects(order, "sku_order_list", at, required=True)
    if not items:
        f.fail(at, "sku_order_list", "an order without sku orders")
    lines = tuple(_line(item, f.path(items_at, i)) for i, item in enumerate(items))
    return PlatformOrder(
        platform=PLATFORM,
        shop_id=shop_id,
        platform_order_id=f.ident(order, "order_id", at),
        platform_status=";".join(
            f"{name}={value}"
            for name, value in (("order_status", order_status), ("main_status", main_status))
            if value is not None
        ),
        status=status,
        after_sale_type=summarize_after_sale(line.after_sale_type for line in lines),
        buyer_note=f.text(order, "buyer_words", at),
        seller_note=f.text(order, "seller_words", at),
        recipient=_recipient(order, at),
        lines=lines,
        shipping_fee_fen=f.minor(order, "post_amount", at, required=False),
        total_paid_fen=f.minor(order, "pay_amount", at),
        currency=CURRENCY,
        created_at=f.unix_time(order, "create_time", at),
        paid_at=f.unix_time(order, "pay_time", at),
        updated_at=f.unix_time(order, "update_time", at),
    )


def _check_code(root: f.Obj) -> None:
    code = root.get("code")
    if code is None or "order_id" in root:  # a bare order has no envelope code
        return
    if f.integer(root, "code") not in _SUCCESS_CODES:
        message = " ".join(f.text(root, k) for k in ("msg", "sub_code", "sub_msg") if root.get(k))
        raise TranslationError("code", f"the platform answered an error: {code} {message}".strip())


def _status(order_status: int | None, main_status: int | None, at: str) -> OrderStatus:
    if main_status in REFUND_COMPLETED:
        return OrderStatus.CLOSED
    if order_status is None:
        if main_status is None:
            f.fail(at, "order_status", "missing")
        key, order_status = "main_status", main_status
    else:
        key = "order_status"
    status = STATUS.get(order_status)
    if status is None:
        f.fail(at, key, f"unknown Douyin order status {order_status}")
    return status


def _line(item: f.Obj, at: str) -> OrderLine:
    native = f.ident(item, "sku_id", at, required=False)
    kind, state = _line_after_sale(item, at)
    return OrderLine(
        platform_line_id=f.ident(item, "order_id", at),
        platform_sku_id=f.first_text(item, ("code", "out_sku_id"), at) or native,
        title=f.text(item, "product_name", at),
        quantity=f.quantity(item, "item_num", at),
        unit_price_fen=f.minor(item, "origin_amount", at),
        paid_fen=f.minor(item, "pay_amount", at),
        after_sale_type=kind,
        after_sale_state=state,
        native_sku_id=native,
    )


def _line_after_sale(item: f.Obj, at: str) -> tuple[AfterSaleType, AfterSaleState]:
    info = f.child(item, "after_sale_info", at)
    if not info:
        return AfterSaleType.NONE, AfterSaleState.NONE
    where = f.path(at, "after_sale_info")
    state = after_sale_state(
        f.integer(info, "after_sale_status", where, required=False) or 0,
        f.integer(info, "refund_status", where, required=False) or 0,
    )
    if state is AfterSaleState.NONE:
        return AfterSaleType.NONE, state
    code = f.integer(info, "after_sale_type", where, required=False)
    if code is None:
        return AfterSaleType.OTHER, state
    return AFTER_SALE_TYPE.get(code, AfterSaleType.OTHER), state


def after_sale_state(after_sale_status: int, refund_status: int) -> AfterSaleState:
    """How far a Douyin after-sale got, from its after-sale and refund statuses."""
    if refund_status in _REFUND_DONE or after_sale_status in _AFTER_SALE_DONE:
        return AfterSaleState.DONE
    if after_sale_status in _AFTER_SALE_ENDED:
        return AfterSaleState.NONE
    if after_sale_status == 0:
        return AfterSaleState.OPEN if refund_status in _REFUND_OPEN else AfterSaleState.NONE
    return AfterSaleState.OPEN


def _place(parent: f.Obj | None, key: str, where: str) -> str:
    """A ``post_addr`` part: an object ``{name, id}`` or, in older payloads, plain text."""
    if parent is None:
        return ""
    value = parent.get(key)
    if isinstance(value, Mapping):
        return f.text(value, "name", f.path(where, key))
    return f.text(parent, key, where)


def _recipient(order: f.Obj, at: str) -> Recipient:
    name = f.first_text(order, ("encrypt_post_receiver", "post_receiver", "mask_post_receiver"), at)
    phone = f.first_text(order, ("encrypt_post_tel", "post_tel", "mask_post_tel"), at)
    addr_at = f.path(at, "post_addr")
    addr = f.child(order, "post_addr", at)
    masked = f.child(order, "mask_post_addr", at)
    address = ""
    if addr is not None:
        address = f.first_text(addr, ("encrypt_detail", "detail"), addr_at)
    if not address and masked is not None:
        address = f.text(masked, "detail", f.path(at, "mask_post_addr"))
    place = addr if addr is not None else masked
    place_at = addr_at if addr is not None else f.path(at, "mask_post_addr")
    return Recipient(
        name=name,
        phone=phone,
        province=_place(place, "province", place_at),
        city=_place(place, "city", place_at),
        district=_place(place, "town", place_at),
        address=address,
        pii_protected=any(f.looks_protected(v) for v in (name, phone, address)),
        street=_place(place, "street", place_at),
    )


def after_sale(payload: Any) -> AfterSale:
    """An ``afterSale/Detail`` response or an after-sale message (tags 200-2xx) → a record."""
    root = f.as_object(payload, "payload")
    _check_code(root)
    data = root.get("data", root)
    where = "data" if "data" in root else ""
    if isinstance(data, str):  # a push message: data is a JSON string
        try:
            data = json.loads(data, parse_float=Decimal)
        except (ValueError, RecursionError) as exc:
            raise TranslationError("data", f"not JSON: {exc}") from exc
    data = f.as_object(data, where)
    process = f.child(data, "process_info", where)
    if process is not None:
        return _after_sale_detail(data, process, where)
    return _after_sale_message(data, where)


def _after_sale_detail(data: f.Obj, process: f.Obj, where: str) -> AfterSale:
    info_at = f.path(f.path(where, "process_info"), "after_sale_info")
    info = f.child(process, "after_sale_info", f.path(where, "process_info"))
    if info is None:
        f.fail(f.path(where, "process_info"), "after_sale_info", "missing")
    order_at = f.path(where, "order_info")
    order = f.child(data, "order_info", where)
    if order is None:
        f.fail(where, "order_info", "missing")
    sku_orders = f.objects(order, "sku_order_infos", order_at)
    line_id = ""
    if len(sku_orders) == 1:
        line_id = f.ident(
            sku_orders[0], "sku_order_id", f.path(f.path(order_at, "sku_order_infos"), 0)
        )
    code = f.integer(info, "after_sale_type", info_at)
    assert code is not None
    return AfterSale(
        platform=PLATFORM,
        platform_order_id=f.ident(order, "shop_order_id", order_at),
        platform_after_sale_id=f.ident(info, "after_sale_id", info_at),
        type=AFTER_SALE_TYPE.get(code, AfterSaleType.OTHER),
        state=after_sale_state(
            f.integer(info, "after_sale_status", info_at, required=False) or 0,
            f.integer(info, "refund_status", info_at, required=False) or 0,
        ),
        platform_type=str(code),
        platform_line_id=line_id,
        refund_fen=f.minor(info, "refund_total_amount", info_at, required=False),
    )


def _after_sale_message(data: f.Obj, where: str) -> AfterSale:
    # Push messages spell it "aftersale_…" where the REST API says "after_sale_…".
    code = f.integer(data, "aftersale_type", where)
    assert code is not None
    status = f.integer(data, "aftersale_status", where, required=False) or 0
    return AfterSale(
        platform=PLATFORM,
        platform_order_id=f.ident(data, "p_id", where),
        platform_after_sale_id=f.ident(data, "aftersale_id", where),
        type=AFTER_SALE_TYPE.get(code, AfterSaleType.OTHER),
        state=after_sale_state(status, 0) if status else AfterSaleState.OPEN,
        platform_type=str(code),
        platform_line_id=f.ident(data, "s_id", where, required=False),
        refund_fen=f.minor(data, "refund_amount", where, required=False),
    )
