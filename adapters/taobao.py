"""Taobao / Tmall (TOP ``taobao.trade.fullinfo.get``, ``taobao.trades.sold.get``) → unified order.

Money is yuan strings, times Beijing time without a zone, ids int64 with a string twin
(``tid_str``/``oid_str``) that is read first. Lists come wrapped one level deeper
(``orders.order[]``). The order payload carries each line's ``refund_status`` but not the
refund's kind (``dispute_type`` lives on the Refund struct): see :func:`after_sale` for the
refund record, and ``_line_after_sale`` for what can be told from the order alone.
"""

from __future__ import annotations

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

PLATFORM = "taobao"
CURRENCY = "CNY"

_ENVELOPES = (
    ("trade_fullinfo_get_response", "trade"),
    ("trade_get_response", "trade"),
    ("trades_sold_get_response", "trades", "trade", "[]"),
    ("trades_sold_increment_get_response", "trades", "trade", "[]"),
)

STATUS = {
    "TRADE_NO_CREATE_PAY": OrderStatus.PENDING_PAYMENT,
    "WAIT_BUYER_PAY": OrderStatus.PENDING_PAYMENT,
    "PAY_PENDING": OrderStatus.PENDING_PAYMENT,
    "WAIT_PRE_AUTH_CONFIRM": OrderStatus.PENDING_PAYMENT,
    "WAIT_SELLER_SEND_GOODS": OrderStatus.PAID,
    # Paid, but group buying or shipping control forbids sending it yet.
    "PAID_FORBID_CONSIGN": OrderStatus.ON_HOLD,
    # Part of it left; the rest still has to ship, so it stays in the paid stage.
    "SELLER_CONSIGNED_PART": OrderStatus.PAID,
    "WAIT_BUYER_CONFIRM_GOODS": OrderStatus.SHIPPED,
    "TRADE_BUYER_SIGNED": OrderStatus.DELIVERED,
    "TRADE_FINISHED": OrderStatus.DELIVERED,
    # Closed after payment because the refund succeeded.
    "TRADE_CLOSED": OrderStatus.CLOSED,
    # Closed before payment by the buyer or the seller.
    "TRADE_CLOSED_BY_TAOBAO": OrderStatus.CANCELLED,
}

DISPUTE_TYPE = {
    "REFUND": AfterSaleType.REFUND_ONLY,
    "REFUND_AND_RETURN": AfterSaleType.RETURN_REFUND,
    "TMALL_EXCHANGE": AfterSaleType.EXCHANGE,
    "TAOBAO_EXCHANGE": AfterSaleType.EXCHANGE,
    "REPAIR": AfterSaleType.REPAIR,
    "RESHIPPING": AfterSaleType.RESEND,
    "OTHERS": AfterSaleType.OTHER,
}

#: Refund statuses (``refund_status`` on a line, ``status`` on a Refund) → how far it got.
REFUND_STATE = {
    "NO_REFUND": AfterSaleState.NONE,
    "WAIT_SELLER_AGREE": AfterSaleState.OPEN,
    "WAIT_BUYER_RETURN_GOODS": AfterSaleState.OPEN,
    "WAIT_SELLER_CONFIRM_GOODS": AfterSaleState.OPEN,
    "SELLER_REFUSE_BUYER": AfterSaleState.NONE,
    "CLOSED": AfterSaleState.NONE,
    "SUCCESS": AfterSaleState.DONE,
}
_GOODS_COMING_BACK = frozenset({"WAIT_BUYER_RETURN_GOODS", "WAIT_SELLER_CONFIRM_GOODS"})
_NOT_SHIPPED = frozenset({"WAIT_SELLER_SEND_GOODS", "PAID_FORBID_CONSIGN"})
_MUNICIPALITIES = frozenset({"北京", "上海", "天津", "重庆"})


def translate(payload: Any, shop_id: str) -> PlatformOrder:
    """A TOP trade (response envelope or bare Trade object) → the unified order."""
    root = f.as_object(payload, "payload")
    f.platform_error(root)
    trade, at = f.unwrap(root, _ENVELOPES)
    order_id = f.ident(trade, "tid_str", at, required=False) or f.ident(trade, "tid", at)
    status_text = f.text(trade, "status", at, required=True)
    status = STATUS.get(status_text)
    if status is None:
        f.fail(at, "status", f"unknown Taobao trade status {status_text!r}")
    orders = f.child(trade, "orders", at)
    lines_at = f.path(at, "orders")
    raw_lines = f.objects(orders, "order", lines_at, required=True) if orders else []
    if not raw_lines:
        f.fail(at, "orders", "a trade without sub-orders")
    shipped_at = f.text(trade, "consign_time", at)
    lines = tuple(
        _line(line, f.path(f.path(lines_at, "order"), i), shipped_at)
        for i, line in enumerate(raw_lines)
    )
    return PlatformOrder(
        platform=PLATFORM,
        shop_id=shop_id,
        platform_order_id=order_id,
        platform_status=status_text,
        status=status,
        after_sale_type=summarize_after_sale(line.after_sale_type for line in lines),
        buyer_note=f.text(trade, "buyer_message", at),
        seller_note=f.text(trade, "seller_memo", at),
        recipient=_recipient(trade, at),
        lines=lines,
        shipping_fee_fen=f.major(trade, "post_fee", at, CURRENCY, required=False),
        total_paid_fen=f.major(trade, "payment", at, CURRENCY),
        currency=CURRENCY,
        created_at=f.beijing_time(trade, "created", at),
        paid_at=f.beijing_time(trade, "pay_time", at),
        updated_at=f.beijing_time(trade, "modified", at),
    )


def _line(line: f.Obj, at: str, trade_shipped_at: str) -> OrderLine:
    native = f.ident(line, "sku_id", at, required=False)
    code = f.text(line, "outer_sku_id", at) or native or f.ident(line, "num_iid", at)
    paid_key = "divide_order_fee" if line.get("divide_order_fee") not in (None, "") else "payment"
    kind, state = _line_after_sale(line, at, trade_shipped_at)
    return OrderLine(
        platform_line_id=f.ident(line, "oid_str", at, required=False) or f.ident(line, "oid", at),
        platform_sku_id=code,
        title=f.text(line, "title", at),
        quantity=f.quantity(line, "num", at),
        unit_price_fen=f.major(line, "price", at, CURRENCY),
        paid_fen=f.major(line, paid_key, at, CURRENCY),
        after_sale_type=kind,
        after_sale_state=state,
        native_sku_id=native,
    )


def _line_after_sale(
    line: f.Obj, at: str, trade_shipped_at: str
) -> tuple[AfterSaleType, AfterSaleState]:
    """A line's after-sale from its refund status; the kind only where the payload shows it.

    ``dispute_type`` or ``has_good_return`` (when a caller merged the Refund into the line)
    decide the kind. Otherwise goods on their way back mean RETURN_REFUND, a refund on a
    line that has not shipped can only be REFUND_ONLY, and a refund on a shipped line is
    OTHER until the refund record says which kind it is.
    """
    refund_status = f.text(line, "refund_status", at) or "NO_REFUND"
    state = REFUND_STATE.get(refund_status)
    if state is None:
        f.fail(at, "refund_status", f"unknown Taobao refund status {refund_status!r}")
    if state is AfterSaleState.NONE:
        return AfterSaleType.NONE, state
    dispute = f.text(line, "dispute_type", at)
    if dispute:
        return DISPUTE_TYPE.get(dispute, AfterSaleType.OTHER), state
    goods_return = line.get("has_good_return")
    if isinstance(goods_return, bool):
        return (AfterSaleType.RETURN_REFUND if goods_return else AfterSaleType.REFUND_ONLY), state
    if refund_status in _GOODS_COMING_BACK:
        return AfterSaleType.RETURN_REFUND, state
    shipped = bool(f.text(line, "consign_time", at) or trade_shipped_at)
    if not shipped and f.text(line, "status", at) in _NOT_SHIPPED:
        return AfterSaleType.REFUND_ONLY, state
    return AfterSaleType.OTHER, state


def _recipient(trade: f.Obj, at: str) -> Recipient:
    name = f.text(trade, "receiver_name", at)
    phone = f.first_text(trade, ("receiver_mobile", "receiver_phone"), at)
    address = f.text(trade, "receiver_address", at)
    province = f.text(trade, "receiver_state", at)
    city = f.text(trade, "receiver_city", at)
    district = f.text(trade, "receiver_district", at)
    if not city:
        city = _city_when_missing(province, district)
    protected = "oaid" in trade or any(f.looks_protected(v) for v in (name, phone, address))
    return Recipient(
        name=name,
        phone=phone,
        province=province,
        city=city,
        district=district,
        address=address,
        zip=f.text(trade, "receiver_zip", at),
        country=f.text(trade, "receiver_country", at),
        pii_protected=protected,
        street=f.text(trade, "receiver_town", at),
    )


def _city_when_missing(province: str, district: str) -> str:
    """The city of an address whose ``receiver_city`` is empty.

    In the four municipalities the province is the city (北京 → 北京市); elsewhere the
    city directly under a province (河南 济源) comes back as the district.
    """
    bare = province.removesuffix("市")
    if bare in _MUNICIPALITIES:
        return f"{bare}市"
    return district


def after_sale(payload: Any) -> AfterSale:
    """A TOP Refund (``taobao.refund.get`` envelope or bare Refund) → an after-sale record."""
    root = f.as_object(payload, "payload")
    f.platform_error(root)
    refund, at = f.unwrap(
        root,
        (
            ("refund_get_response", "refund"),
            ("refunds_receive_get_response", "refunds", "refund", "[]"),
        ),
    )
    status = f.text(refund, "status", at, required=True)
    state = REFUND_STATE.get(status)
    if state is None:
        f.fail(at, "status", f"unknown Taobao refund status {status!r}")
    dispute = f.text(refund, "dispute_type", at)
    special = f.text(refund, "special_refund_type", at)
    goods_return = refund.get("has_good_return")
    if special == "priceProtect":
        kind = AfterSaleType.PRICE_PROTECT
    elif dispute:
        kind = DISPUTE_TYPE.get(dispute, AfterSaleType.OTHER)
    elif isinstance(goods_return, bool):
        kind = AfterSaleType.RETURN_REFUND if goods_return else AfterSaleType.REFUND_ONLY
    else:
        raise TranslationError(
            f.path(at, "dispute_type"), "neither dispute_type nor has_good_return"
        )
    return AfterSale(
        platform=PLATFORM,
        platform_order_id=f.ident(refund, "tid_str", at, required=False)
        or f.ident(refund, "tid", at),
        platform_after_sale_id=f.ident(refund, "refund_id", at),
        type=kind,
        state=state,
        platform_type=special or dispute or f"has_good_return={goods_return}",
        platform_line_id=f.ident(refund, "oid_str", at, required=False)
        or f.ident(refund, "oid", at, required=False),
        refund_fen=f.major(refund, "refund_fee", at, CURRENCY, required=False),
    )
