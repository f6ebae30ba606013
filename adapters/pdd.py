"""Pinduoduo (``pdd.order.information.get``, ``pdd.order.list.get``) → unified order.

Order money is yuan as JSON numbers (``29.9``), read from the exact digits, never through a
float. The status is spread over several fields: ``order_status`` (shipping),
``confirm_status`` (deal), ``group_status`` (group buy) and ``risk_control_status``; all of
them are kept in ``platform_status``. Receiver fields are ciphertext (masked copies beside
them). There is no per-line paid amount: the goods part of ``pay_amount`` is split over
the lines by list price. The order names an after-sale's progress
(``after_sales_status``) but not its kind; the after-sale APIs name the kind, with two
different code tables (:func:`after_sale`).
"""

from __future__ import annotations

from typing import Any, Literal

from adapters import fields as f
from adapters import money
from hub.domain.orders import (
    AfterSale,
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
    TranslationError,
)

PLATFORM = "pdd"
CURRENCY = "CNY"

_ENVELOPES = (
    ("order_info_get_response", "order_info"),
    ("order_list_get_response", "order_list", "[]"),
    ("order_sn_increment_get_response", "order_sn_list", "[]"),
    ("order_info",),
)
_STATUS_FIELDS = (
    "order_status",
    "confirm_status",
    "group_status",
    "risk_control_status",
    "refund_status",
    "after_sales_status",
)

#: ``after_sales_status`` (on the order and on after-sale records) → kind and progress.
#: The kind is only named where the status says it (退货退款, 维修, 补寄); a plain refund
#: application (2) is refund-only because 3 is the return-and-refund one.
AFTER_SALES_STATUS: dict[int, tuple[AfterSaleType, AfterSaleState]] = {
    0: (AfterSaleType.NONE, AfterSaleState.NONE),
    2: (AfterSaleType.REFUND_ONLY, AfterSaleState.OPEN),  # 买家申请退款 待商家处理
    3: (AfterSaleType.RETURN_REFUND, AfterSaleState.OPEN),  # 退货退款 待商家处理
    4: (AfterSaleType.OTHER, AfterSaleState.OPEN),  # 商家同意退款 退款中
    5: (AfterSaleType.OTHER, AfterSaleState.OPEN),  # 平台同意退款 退款中
    6: (AfterSaleType.OTHER, AfterSaleState.OPEN),  # 驳回退款 待买家处理
    7: (AfterSaleType.RETURN_REFUND, AfterSaleState.OPEN),  # 已同意退货退款 待用户发货
    8: (AfterSaleType.OTHER, AfterSaleState.OPEN),  # 平台处理中
    9: (AfterSaleType.NONE, AfterSaleState.NONE),  # 平台拒绝退款 退款关闭
    10: (AfterSaleType.OTHER, AfterSaleState.DONE),  # 退款成功
    11: (AfterSaleType.NONE, AfterSaleState.NONE),  # 买家撤销
    12: (AfterSaleType.NONE, AfterSaleState.NONE),  # 买家逾期未处理 退款失败
    13: (AfterSaleType.NONE, AfterSaleState.NONE),  # 买家逾期 超过有效期
    **dict.fromkeys(range(14, 19), (AfterSaleType.OTHER, AfterSaleState.OPEN)),  # 换货/补寄
    **dict.fromkeys(range(21, 28), (AfterSaleType.REPAIR, AfterSaleState.OPEN)),  # 维修
    31: (AfterSaleType.RETURN_REFUND, AfterSaleState.OPEN),  # 已同意拒收退款 待用户拒收
    32: (AfterSaleType.RESEND, AfterSaleState.OPEN),  # 补寄待商家发货
    33: (AfterSaleType.RETURN_REFUND, AfterSaleState.OPEN),  # 同意召回后退款 待商家召回
}

#: ``after_sales_type`` in ``pdd.refund.list.increment.get`` (its request also has 1 = all).
LIST_TYPES = {
    2: AfterSaleType.REFUND_ONLY,
    3: AfterSaleType.RETURN_REFUND,
    4: AfterSaleType.EXCHANGE,
    5: AfterSaleType.RESEND,  # 缺货补寄
    6: AfterSaleType.REPAIR,
}
#: ``after_sales_type`` in ``pdd.refund.information.get``: the same numbers, other meanings.
INFORMATION_TYPES = {
    1: AfterSaleType.REFUND_ONLY,
    2: AfterSaleType.RETURN_REFUND,
    3: AfterSaleType.EXCHANGE,
    4: AfterSaleType.RESEND,
    5: AfterSaleType.REPAIR,
}
Table = Literal["list", "information"]


def translate(payload: Any, shop_id: str) -> PlatformOrder:
    """An order information/list response (or the bare order_info) → the unified order."""
    root = f.as_object(payload, "payload")
    f.platform_error(root)
    order, at = f.unwrap(root, _ENVELOPES)
    codes = {name: f.integer(order, name, at, required=False) for name in _STATUS_FIELDS}
    paid_at = f.beijing_time(order, "pay_time", at)
    status = _status(codes, paid_at is not None, at)
    kind, state = _order_after_sale(codes, at)
    total = f.major(order, "pay_amount", at, CURRENCY)
    shipping = f.major(order, "postage", at, CURRENCY, required=False)
    fees_at = f.path(at, "service_fee_detail")
    fees = sum(
        f.major(fee, "service_fee", f.path(fees_at, i), CURRENCY, required=False)
        for i, fee in enumerate(f.objects(order, "service_fee_detail", at))
    )
    items_at = f.path(at, "item_list")
    items = f.objects(order, "item_list", at, required=True)
    if not items:
        f.fail(at, "item_list", "an order without items")
    drafts = [_line(item, f.path(items_at, i)) for i, item in enumerate(items)]
    paid = money.allocate(max(total - shipping - fees, 0), [d[3] * d[4] for d in drafts])
    seen: dict[str, int] = {}
    lines = []
    for (native, code, title, qty, price), part in zip(drafts, paid, strict=True):
        repeat = seen.get(native, 0)
        seen[native] = repeat + 1
        lines.append(
            OrderLine(
                # PDD lines have no id of their own: the SKU id is unique within an order.
                platform_line_id=native if not repeat else f"{native}#{repeat}",
                platform_sku_id=code,
                title=title,
                quantity=qty,
                unit_price_fen=price,
                paid_fen=part,
                after_sale_type=kind,
                after_sale_state=state,
                native_sku_id=native,
            )
        )
    return PlatformOrder(
        platform=PLATFORM,
        shop_id=shop_id,
        platform_order_id=f.ident(order, "order_sn", at),
        platform_status=";".join(f"{k}={v}" for k, v in codes.items() if v is not None),
        status=status,
        after_sale_type=kind,
        buyer_note=f.text(order, "buyer_memo", at),
        seller_note=f.text(order, "remark", at),
        recipient=_recipient(order, at),
        lines=tuple(lines),
        shipping_fee_fen=shipping,
        total_paid_fen=total,
        currency=CURRENCY,
        created_at=f.beijing_time(order, "created_time", at),
        paid_at=paid_at,
        updated_at=f.beijing_time(order, "updated_at", at),
    )


def _status(codes: dict[str, int | None], paid: bool, at: str) -> OrderStatus:
    """The lifecycle status; paid and ready means 成交, 成团 and not under risk review."""
    confirm = codes["confirm_status"]
    group = codes["group_status"]
    if confirm == 2 or group == 2:  # 已取消, or 团失败 (the platform voids and refunds)
        return OrderStatus.CANCELLED
    if confirm not in (None, 0, 1):
        f.fail(at, "confirm_status", f"unknown PDD confirm status {confirm}")
    shipping = codes["order_status"]
    if shipping is None:
        f.fail(at, "order_status", "missing")
    if shipping == 2:
        return OrderStatus.SHIPPED
    if shipping == 3:
        return OrderStatus.DELIVERED
    if shipping != 1:
        f.fail(at, "order_status", f"unknown PDD order status {shipping}")
    if confirm == 0:  # 未成交: unpaid, or paid while the group is still forming
        return OrderStatus.ON_HOLD if paid else OrderStatus.PENDING_PAYMENT
    if group == 0 or codes["risk_control_status"] == 1:
        return OrderStatus.ON_HOLD
    return OrderStatus.PAID


def _order_after_sale(
    codes: dict[str, int | None], at: str
) -> tuple[AfterSaleType, AfterSaleState]:
    status = codes["after_sales_status"]
    if status is None:
        return AfterSaleType.NONE, AfterSaleState.NONE
    # An unknown status is read as an after-sale of unknown kind still open: hold, don't guess.
    kind, state = AFTER_SALES_STATUS.get(status, (AfterSaleType.OTHER, AfterSaleState.OPEN))
    if kind is AfterSaleType.OTHER and codes["order_status"] == 1 and status in (4, 5, 10):
        # A refund on an order that never shipped cannot take goods back.
        kind = AfterSaleType.REFUND_ONLY
    return kind, state


def _line(item: f.Obj, at: str) -> tuple[str, str, str, int, int]:
    native = f.ident(item, "sku_id", at)
    return (
        native,
        f.text(item, "outer_id", at) or native,
        f.text(item, "goods_name", at),
        f.quantity(item, "goods_count", at),
        f.major(item, "goods_price", at, CURRENCY),
    )


def _recipient(order: f.Obj, at: str) -> Recipient:
    name = f.first_text(order, ("receiver_name", "receiver_name_mask"), at)
    phone = f.first_text(order, ("receiver_phone", "receiver_phone_mask"), at)
    address = f.first_text(
        order, ("receiver_address", "address", "receiver_address_mask", "address_mask"), at
    )
    masks = ("receiver_name_mask", "receiver_phone_mask", "receiver_address_mask", "address_mask")
    protected = any(f.text(order, key, at) for key in masks) or any(
        f.looks_protected(v) for v in (name, phone, address)
    )
    return Recipient(
        name=name,
        phone=phone,
        province=f.text(order, "province", at),
        city=f.text(order, "city", at),
        district=f.text(order, "town", at),
        address=address,
        country=f.text(order, "country", at),
        pii_protected=protected,
    )


def after_sale(payload: Any, table: Table | None = None) -> AfterSale:
    """One after-sale record → the unified after-sale, reading ``after_sales_type`` right.

    The code table comes from ``table`` when given, else from the envelope
    (``refund_increment_get_response`` → the list table, ``refund_information_get_response``
    → the information table), else from the record itself: the list endpoint writes
    amounts as yuan strings, the information endpoint as integer fen.
    """
    root = f.as_object(payload, "payload")
    f.platform_error(root)
    record, at = f.unwrap(
        root,
        (
            ("refund_increment_get_response", "refund_list", "[]"),
            ("refund_list_increment_get_response", "refund_list", "[]"),
            ("refund_information_get_response",),
        ),
    )
    if table is None:
        if at.startswith(("refund_increment", "refund_list_increment")):
            table = "list"
        elif at.startswith("refund_information"):
            table = "information"
        else:
            table = _table_of(record, at)
    code = f.integer(record, "after_sales_type", at)
    assert code is not None
    types = LIST_TYPES if table == "list" else INFORMATION_TYPES
    kind = types.get(code)
    if kind is None:
        f.fail(at, "after_sales_type", f"unknown code {code} in the PDD {table} table")
    status = f.integer(record, "after_sales_status", at, required=False)
    state = (
        AFTER_SALES_STATUS.get(status, (kind, AfterSaleState.OPEN))[1]
        if status is not None
        else AfterSaleState.OPEN
    )
    if table == "list":
        refund = f.major(record, "refund_amount", at, CURRENCY, required=False)
    else:
        refund = f.minor(record, "refund_amount", at, required=False)
    return AfterSale(
        platform=PLATFORM,
        platform_order_id=f.ident(record, "order_sn", at),
        platform_after_sale_id=f.ident(record, "id", at),
        type=kind,
        state=state,
        platform_type=f"{table}:{code}",
        platform_sku_id=f.ident(record, "sku_id", at, required=False),
        refund_fen=refund,
    )


def _table_of(record: f.Obj, at: str) -> Table:
    amount = record.get("refund_amount")
    if isinstance(amount, str):
        return "list"
    if isinstance(amount, int) and not isinstance(amount, bool):
        return "information"
    raise TranslationError(
        f.path(at, "after_sales_type"),
        "cannot tell which PDD code table applies (list or information); say which",
    )
