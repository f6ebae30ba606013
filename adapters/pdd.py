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

from decimal import Decimal
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
#: ``platform_status`` when every status field is there: ``order_status=1;confirm_status=1;…``
_ALL_CODES = ";".join(f"{name}={{}}" for name in _STATUS_FIELDS)
_PLACES = money.exponent(CURRENCY)

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
    if root.get("error_response") is not None:
        f.platform_error(root)
    order, at = _unwrap(root)
    get = order.get
    # Each value is read once, the common shapes inline; anything else goes through the
    # field readers, which give the same value or the error naming the field.
    codes = []
    for name in _STATUS_FIELDS:
        code = get(name)
        if code is not None and type(code) is not int:
            code = f.integer(order, name, at, required=False)
        codes.append(code)
    order_status, confirm, group, risk, _, after_sales = codes
    paid_at = f.beijing_time(order, "pay_time", at)
    status = _status(order_status, confirm, group, risk, paid_at is not None, at)
    kind, state = _order_after_sale(after_sales, order_status)
    total = _yuan(get("pay_amount"))
    if total is None:
        total = f.major(order, "pay_amount", at, CURRENCY)
    shipping = _yuan(get("postage"))
    if shipping is None:
        shipping = f.major(order, "postage", at, CURRENCY, required=False)
    fees = 0
    if get("service_fee_detail") is not None:
        fees_at = f.path(at, "service_fee_detail")
        for i, fee in enumerate(f.objects(order, "service_fee_detail", at)):
            fees += f.major(fee, "service_fee", f.path(fees_at, i), CURRENCY, required=False)
    items = f.objects(order, "item_list", at, required=True)
    if not items:
        f.fail(at, "item_list", "an order without items")
    drafts = [_line(item, at, i) for i, item in enumerate(items)]
    goods = max(total - shipping - fees, 0)
    paid = money.allocate(goods, [d[3] * d[4] for d in drafts])
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
    order_sn = get("order_sn")
    if type(order_sn) is str and order_sn.strip():
        order_sn = order_sn.strip()
    else:
        order_sn = f.ident(order, "order_sn", at)
    if None in codes:
        platform_status = ";".join(
            f"{k}={v}" for k, v in zip(_STATUS_FIELDS, codes, strict=True) if v is not None
        )
    else:
        platform_status = _ALL_CODES.format(*codes)
    buyer_note = _text(order, "buyer_memo", at)
    seller_note = _text(order, "remark", at)
    return PlatformOrder(
        platform=PLATFORM,
        shop_id=shop_id,
        platform_order_id=order_sn,
        platform_status=platform_status,
        status=status,
        after_sale_type=kind,
        buyer_note=buyer_note,
        seller_note=seller_note,
        recipient=_recipient(order, at),
        lines=tuple(lines),
        shipping_fee_fen=shipping,
        total_paid_fen=total,
        currency=CURRENCY,
        created_at=f.beijing_time(order, "created_time", at),
        paid_at=paid_at,
        updated_at=f.beijing_time(order, "updated_at", at),
    )


def _unwrap(root: f.Obj) -> tuple[f.Obj, str]:
    """The order and its path: ``order_info.get``'s envelope at once, else every envelope."""
    response = root.get("order_info_get_response")
    if type(response) is dict:
        order = response.get("order_info")
        if type(order) is dict:
            return order, "order_info_get_response.order_info"
    return f.unwrap(root, _ENVELOPES)


def _yuan(value: object) -> int | None:
    """Yuan (a JSON number or a plain decimal string) → fen; None for anything else.

    ``None`` sends the caller to :func:`adapters.fields.major`, which reads absent and
    unusual values and names the field in its error.
    """
    kind = type(value)
    if kind is Decimal or kind is int or kind is str:
        try:
            return money.major_in_places(value, _PLACES)
        except money.MoneyError:
            return None
    return None


def _status(
    shipping: int | None,
    confirm: int | None,
    group: int | None,
    risk: int | None,
    paid: bool,
    at: str,
) -> OrderStatus:
    """The lifecycle status; paid and ready means 成交, 成团 and not under risk review."""
    if confirm == 2 or group == 2:  # 已取消, or 团失败 (the platform voids and refunds)
        return OrderStatus.CANCELLED
    if confirm not in (None, 0, 1):
        f.fail(at, "confirm_status", f"unknown PDD confirm status {confirm}")
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
    if group == 0 or risk == 1:
        return OrderStatus.ON_HOLD
    return OrderStatus.PAID


def _order_after_sale(
    status: int | None, shipping: int | None
) -> tuple[AfterSaleType, AfterSaleState]:
    if status is None:
        return AfterSaleType.NONE, AfterSaleState.NONE
    # An unknown status is read as an after-sale of unknown kind still open: hold, don't guess.
    kind, state = AFTER_SALES_STATUS.get(status, (AfterSaleType.OTHER, AfterSaleState.OPEN))
    if kind is AfterSaleType.OTHER and shipping == 1 and status in (4, 5, 10):
        # A refund on an order that never shipped cannot take goods back.
        kind = AfterSaleType.REFUND_ONLY
    return kind, state


def _line(item: f.Obj, order_at: str, i: int) -> tuple[str, str, str, int, int]:
    """One item: (SKU id, SKU code, title, quantity, list price in fen).

    The item's path (for an error) is only worked out when a value is not the usual shape.
    """
    get = item.get
    native = get("sku_id")
    if type(native) is str and native.strip():
        native = native.strip()
    elif type(native) is int:
        native = str(native)
    else:
        native = f.ident(item, "sku_id", _item_at(order_at, i))
    code = get("outer_id")
    if type(code) is str:
        code = code.strip()
    elif code is not None:
        code = f.text(item, "outer_id", _item_at(order_at, i))
    title = get("goods_name")
    if type(title) is str:
        title = title.strip()
    else:
        title = "" if title is None else f.text(item, "goods_name", _item_at(order_at, i))
    qty = get("goods_count")
    if type(qty) is not int or qty <= 0:
        qty = f.quantity(item, "goods_count", _item_at(order_at, i))
    price = _yuan(get("goods_price"))
    if price is None:
        price = f.major(item, "goods_price", _item_at(order_at, i), CURRENCY)
    return native, code or native, title, qty, price


def _item_at(order_at: str, i: int) -> str:
    return f.path(f.path(order_at, "item_list"), i)


def _text(m: f.Obj, key: str, at: str) -> str:
    """:func:`adapters.fields.text` with a plain string read inline."""
    value = m.get(key)
    if type(value) is str:
        return value.strip()
    return "" if value is None else f.text(m, key, at)


def _first(order: f.Obj, keys: tuple[str, ...], at: str) -> str:
    """:func:`adapters.fields.first_text` with plain strings read inline."""
    for key in keys:
        value = _text(order, key, at)
        if value:
            return value
    return ""


_NAMES = ("receiver_name", "receiver_name_mask")
_PHONES = ("receiver_phone", "receiver_phone_mask")
_ADDRESSES = ("receiver_address", "address", "receiver_address_mask", "address_mask")
_MASKS = ("receiver_name_mask", "receiver_phone_mask", "receiver_address_mask", "address_mask")


def _recipient(order: f.Obj, at: str) -> Recipient:
    name = _first(order, _NAMES, at)
    phone = _first(order, _PHONES, at)
    address = _first(order, _ADDRESSES, at)
    protected = any(_text(order, key, at) for key in _MASKS) or any(
        f.looks_protected(v) for v in (name, phone, address)
    )
    return Recipient(
        name=name,
        phone=phone,
        province=_text(order, "province", at),
        city=_text(order, "city", at),
        district=_text(order, "town", at),
        address=address,
        country=_text(order, "country", at),
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
