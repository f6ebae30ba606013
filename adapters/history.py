"""History import: rows of an old order export → the unified order, or every reason why not.

Pure rules, no I/O. A merchant moving onto OrderHub brings years of orders exported from
an ERP or a marketplace back office: CSV or JSON, one row per order or one row per order
line, Chinese or English headers. This module reads such rows into :class:`PlatformOrder`
values the order store keeps like any other, and reports every problem of a row as a
:class:`Problem` (row, column, reason) so the operator can fix the export and run again.

The steps, each a function:

- :func:`columns_of` finds which column holds which :class:`Field` (headers in Chinese or
  English, compared without case, spaces, underscores or hyphens);
- :func:`record_of_cells` / :func:`record_of_object` take one CSV row or JSON object;
- :func:`read_row` parses and checks one record's values on their own (money, times,
  phones, ids, quantities);
- :func:`orders_of` groups the parsed rows by (platform, shop, order id), drops rows
  repeated verbatim, rejects orders whose rows disagree, checks what an order as a whole
  needs (required fields, lines that add up) and builds the order.

An order is accepted whole or rejected whole: when one of its rows is bad, its other rows
are rejected with it (:attr:`Code.WITH_ORDER`), so nothing is ever half-imported.

Rules chosen for history (see ``docs/importing.md``):

- Only orders whose life ended are history: SHIPPED, DELIVERED, CANCELLED, CLOSED. An open
  one (unpaid, paid, on hold) is rejected, or with :attr:`OpenOrders.REVIEW` taken into the
  review queue, where it holds nothing until a person approves it.
- Money is exact: ``12.50``, ``¥12.50``, ``1,299.00`` (well-formed thousands groups only);
  a column whose name says fen (``total_paid_fen``) is read as minor units. Negative
  amounts and amounts finer than the currency's minor unit are refused.
- Totals: when the lines carry what was paid for them, lines + shipping = total paid,
  exactly. When they do not, the shipping fee ≤ total paid ≤ list price times quantity
  + shipping, and what was paid for the goods is split over the lines by list value (largest
  remainder), as the JD and PDD adapters do.
- Times with an offset keep it; times without one are in the import's zone (Beijing by
  default); Unix seconds or milliseconds are accepted; a time in the future is refused.
- Phones: mainland mobiles (``13912345678``, ``+86 139-1234-5678``) become 11 digits;
  landlines become ``area-number`` (``010-12345678``, ``0571-88886666-123``); foreign
  numbers with a ``+`` keep their digits; masked or encrypted values (``139****5678``)
  are kept as they are and the recipient is marked ``pii_protected``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from adapters import money, times
from adapters.fields import (
    header_key,
    looks_protected,
    rounded_by_spreadsheet,
    spreadsheet_text,
)
from hub.domain.geo import province_of
from hub.domain.intake import REVIEW, Placement, tags_from_note
from hub.domain.orders import AfterSaleType, OrderLine, OrderStatus, PlatformOrder, Recipient

#: The tag every imported order carries, so history can be told apart from live orders.
IMPORTED = "imported"
#: The review reason of an open order taken in with :attr:`OpenOrders.REVIEW`.
IMPORTED_OPEN = "IMPORTED_OPEN"
#: How far in the future a time may be (clock skew between the export and this machine).
FUTURE_SLACK = timedelta(days=1)
#: How far down a CSV file the header row may be (after a title line or two).
HEADER_SEARCH_ROWS = 10

# Column limits of the order store (hub/store/schema.py): longer values cannot be stored.
_MAX_ORDER_ID = 128
_MAX_PLATFORM = 32
_MAX_SHOP_ID = 64
_MAX_TAG = 64
_MAX_QUANTITY = 2**31 - 1
_LIMIT = 2**63


class Field(StrEnum):
    """What an export row may say; the value is the canonical column name."""

    ORDER_ID = "order_id"
    PLATFORM = "platform"
    SHOP_ID = "shop_id"
    STATUS = "status"
    PLATFORM_STATUS = "platform_status"
    CREATED_AT = "created_at"
    PAID_AT = "paid_at"
    UPDATED_AT = "updated_at"
    RECIPIENT_NAME = "recipient_name"
    PHONE = "phone"
    COUNTRY = "country"
    PROVINCE = "province"
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    ADDRESS = "address"
    ZIP = "zip"
    BUYER_NOTE = "buyer_note"
    SELLER_NOTE = "seller_note"
    SHIPPING_FEE = "shipping_fee"
    SHIPPING_FEE_FEN = "shipping_fee_fen"
    TOTAL_PAID = "total_paid"
    TOTAL_PAID_FEN = "total_paid_fen"
    CURRENCY = "currency"
    TAGS = "tags"
    # One order line.
    LINE_ID = "line_id"
    SKU = "sku"
    TITLE = "title"
    QUANTITY = "quantity"
    UNIT_PRICE = "unit_price"
    UNIT_PRICE_FEN = "unit_price_fen"
    LINE_PAID = "line_paid"
    LINE_PAID_FEN = "line_paid_fen"


LINE_FIELDS = frozenset(
    {
        Field.LINE_ID,
        Field.SKU,
        Field.TITLE,
        Field.QUANTITY,
        Field.UNIT_PRICE,
        Field.UNIT_PRICE_FEN,
        Field.LINE_PAID,
        Field.LINE_PAID_FEN,
    }
)

#: Header names each field is known by, best first. Compared without case, spaces,
#: underscores or hyphens, with full-width parentheses as ASCII ones.
HEADERS: Mapping[Field, tuple[str, ...]] = {
    Field.ORDER_ID: (
        "order_id", "platform_order_id", "订单号", "订单编号", "主订单编号", "主订单号",
        "平台订单号", "网店订单号", "原始单号", "order no", "order number", "order_sn", "tid",
    ),
    Field.PLATFORM: ("platform", "平台", "销售平台", "来源平台", "渠道", "channel"),
    Field.SHOP_ID: ("shop_id", "shop", "店铺", "店铺id", "店铺编号", "店铺名称", "store"),
    Field.STATUS: ("status", "订单状态", "交易状态", "状态", "order status"),
    Field.PLATFORM_STATUS: ("platform_status", "平台状态", "平台订单状态"),
    Field.CREATED_AT: (
        "created_at", "下单时间", "创建时间", "订单创建时间", "拍下时间", "order time", "created",
    ),
    Field.PAID_AT: (
        "paid_at", "支付时间", "付款时间", "订单付款时间", "paid time", "payment time", "pay_time",
    ),
    Field.UPDATED_AT: ("updated_at", "修改时间", "更新时间", "最后修改时间", "modified", "updated"),
    Field.RECIPIENT_NAME: (
        "recipient_name", "收货人", "收件人", "收货人姓名", "收件人姓名", "买家姓名", "buyer_name",
        "receiver_name", "consignee", "recipient",
    ),
    Field.PHONE: (
        "phone", "手机", "手机号", "手机号码", "联系电话", "联系手机", "收货人手机", "收货人电话",
        "收件人电话", "收件人手机", "电话", "mobile", "telephone", "receiver_mobile",
        "receiver_phone",
    ),
    Field.COUNTRY: ("country", "国家", "country_code"),
    Field.PROVINCE: ("province", "省", "省份", "收货省份", "receiver_state", "state"),
    Field.CITY: ("city", "市", "城市", "收货城市", "receiver_city"),
    Field.DISTRICT: ("district", "区", "区县", "区/县", "收货区县", "receiver_district"),
    Field.STREET: ("street", "街道", "乡镇", "街道/乡镇"),
    Field.ADDRESS: (
        "address", "详细地址", "收货地址", "地址", "街道地址", "receiver_address", "address1",
    ),
    Field.ZIP: ("zip", "邮编", "邮政编码", "postcode", "zip code", "receiver_zip"),
    Field.BUYER_NOTE: ("buyer_note", "买家留言", "买家备注", "buyer_message", "note"),
    Field.SELLER_NOTE: ("seller_note", "卖家备注", "商家备注", "seller_memo"),
    Field.SHIPPING_FEE: ("shipping_fee", "运费", "邮费", "shipping", "freight", "post_fee"),
    Field.SHIPPING_FEE_FEN: ("shipping_fee_fen", "运费(分)"),
    Field.TOTAL_PAID: (
        "total_paid", "实付金额", "实付金额(元)", "实付款", "买家实付", "买家实付金额",
        "订单实付金额", "实收金额", "paid amount", "amount paid", "pay_amount",
    ),
    Field.TOTAL_PAID_FEN: ("total_paid_fen", "实付金额(分)", "pay_amount_fen"),
    Field.CURRENCY: ("currency", "币种", "货币", "币别"),
    Field.TAGS: ("tags", "标签", "订单标签", "标记"),
    Field.LINE_ID: ("line_id", "platform_line_id", "子订单号", "子订单编号", "明细编号", "oid"),
    Field.SKU: (
        "sku", "platform_sku_id", "商家编码", "商品编码", "商家sku编码", "sku编码", "规格编码",
        "货号", "outer_sku_id", "outer_id", "sku code",
    ),
    Field.TITLE: ("title", "商品名称", "宝贝标题", "商品标题", "product name", "item name"),
    Field.QUANTITY: ("quantity", "数量", "购买数量", "商品数量", "qty", "num"),
    Field.UNIT_PRICE: ("unit_price", "单价", "商品单价", "单价(元)", "price"),
    Field.UNIT_PRICE_FEN: ("unit_price_fen", "单价(分)"),
    Field.LINE_PAID: (
        "line_paid", "子订单实付金额", "商品实付金额", "明细实付金额", "line paid", "line_total",
    ),
    Field.LINE_PAID_FEN: ("line_paid_fen", "paid_fen", "子订单实付金额(分)"),
}  # fmt: skip

#: For an amount in major units, the same amount in minor units (fen).
_IN_FEN = {
    Field.SHIPPING_FEE: Field.SHIPPING_FEE_FEN,
    Field.TOTAL_PAID: Field.TOTAL_PAID_FEN,
    Field.UNIT_PRICE: Field.UNIT_PRICE_FEN,
    Field.LINE_PAID: Field.LINE_PAID_FEN,
}

#: Status words of exports, Chinese and English, by the status they mean. Taobao's
#: TRADE_CLOSED is a refund after payment (CLOSED); TRADE_CLOSED_BY_TAOBAO a void (CANCELLED).
STATUS_VALUES: Mapping[OrderStatus, tuple[str, ...]] = {
    OrderStatus.PENDING_PAYMENT: (
        "待付款", "待支付", "未付款", "等待买家付款", "PENDING_PAYMENT", "WAIT_BUYER_PAY", "UNPAID",
    ),
    OrderStatus.PAID: (
        "已付款", "已支付", "待发货", "买家已付款", "等待卖家发货", "备货中", "部分发货", "PAID",
        "WAIT_SELLER_SEND_GOODS", "SELLER_CONSIGNED_PART",
    ),
    OrderStatus.ON_HOLD: ("暂停发货", "挂起", "锁定", "ON_HOLD", "PAID_FORBID_CONSIGN"),
    OrderStatus.ALLOCATED: ("ALLOCATED",),
    OrderStatus.SHIPPED: (
        "已发货", "卖家已发货", "待收货", "运输中", "等待买家确认收货", "SHIPPED",
        "WAIT_BUYER_CONFIRM_GOODS", "FULFILLED",
    ),
    OrderStatus.DELIVERED: (
        "已签收", "已收货", "交易成功", "交易完成", "已完成", "完成", "DELIVERED", "COMPLETED",
        "TRADE_FINISHED", "FINISHED",
    ),
    OrderStatus.CANCELLED: (
        "已取消", "取消", "交易取消", "订单取消", "CANCELLED", "CANCELED", "VOIDED",
        "TRADE_CLOSED_BY_TAOBAO",
    ),
    OrderStatus.CLOSED: (
        "已关闭", "交易关闭", "已退款", "退款成功", "全额退款", "CLOSED", "TRADE_CLOSED",
        "REFUNDED",
    ),
}  # fmt: skip

#: The statuses of orders whose life ended: what a history import takes.
FINISHED = frozenset(
    {OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.CLOSED}
)
#: Statuses that mean the order was paid for (a paid time is required).
_PAID = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CLOSED})
#: Statuses of orders that went out to a recipient (a recipient is required).
_SENT = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})

#: Platform names as exports write them, by the hub's platform id.
PLATFORM_NAMES: Mapping[str, str] = {
    "淘宝": "taobao", "天猫": "taobao", "tmall": "taobao", "京东": "jd", "抖音": "douyin",
    "抖店": "douyin", "拼多多": "pdd", "pinduoduo": "pdd",
}  # fmt: skip
_PLATFORM_ID = re.compile(r"[a-z][a-z0-9_.-]*")
_MAINLAND = frozenset({"", "CN", "CHN", "CHINA", "中国", "中国大陆", "中华人民共和国"})
_MUNICIPALITIES = frozenset({"北京", "上海", "天津", "重庆"})

_AMOUNT = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|[+-]?\.[0-9]+")
_SYMBOLS = re.compile(r"^(?:¥|￥|\$|RMB|CNY)\s*|\s*元$", re.I)
_EPOCH_DIGITS = re.compile(r"[0-9]{10}|[0-9]{13}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE = re.compile(
    r"(0[0-9]{2,3})?-?([0-9]{7,8})(?:(?:-|转|ext\.?|x|#)([0-9]{1,6}))?", re.I
)  # after spaces and brackets are gone
_MASKED_PHONE = re.compile(r"[0-9+*\- ]*\*[0-9+*\- ]*")
_PHONE_NOISE = re.compile(r"[\s()（）]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_TAG_SPLIT = re.compile(r"[,;|、，；\s]+")
_TAG = re.compile(r"[^\"\\\x00-\x1f]+")


#: What a required recipient field is called in a message.
_WHAT = {
    Field.RECIPIENT_NAME: "name",
    Field.PHONE: "phone",
    Field.PROVINCE: "province",
    Field.ADDRESS: "address",
}


class Code(StrEnum):
    """The kind of a problem, for the summary: what to fix."""

    MISSING = "missing"
    INVALID = "invalid"
    NEGATIVE = "negative"
    #: The lines, shipping fee and total paid do not add up.
    TOTALS = "totals"
    #: Rows of one order disagree (the same order twice with different content).
    CONFLICT = "conflict"
    #: Not finished (unpaid, paid, on hold): not history.
    OPEN_ORDER = "open_order"
    #: The row itself is fine, another row of its order is not.
    WITH_ORDER = "with_order"
    #: The order store refused it (reported by the importer, not by these rules).
    DATABASE = "database"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a row: its row number, the column, and why."""

    row: int
    #: The column as the file names it (the header cell or JSON key), or the canonical
    #: field name when the file has no such column.
    field: str
    reason: str
    code: Code = Code.INVALID

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.reason}"


class OpenOrders(StrEnum):
    """What to do with an order that is not finished."""

    REJECT = "reject"
    #: Take it into the review queue, holding nothing until a person approves it.
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class Options:
    """What the file does not say, and the policies of one import."""

    #: Platform and shop of rows that carry none.
    platform: str = ""
    shop_id: str = ""
    #: Currency of rows without a currency column.
    currency: str = "CNY"
    #: Zone of times written without an offset.
    zone: tzinfo = times.BEIJING
    open_orders: OpenOrders = OpenOrders.REJECT
    #: Now, for refusing times in the future; None checks nothing.
    now: datetime | None = None


# ---------------------------------------------------------------------- columns


_key = header_key


_ALIASES: dict[str, Field] = {}
for _known, _words in HEADERS.items():
    for _word in _words:
        _ALIASES.setdefault(_key(_word), _known)
_STATUS = {_key(word).upper(): s for s, words in STATUS_VALUES.items() for word in words}
_PLATFORMS = {_key(k): v for k, v in PLATFORM_NAMES.items()}


def field_of(name: str) -> Field | None:
    """The field a column name means, or None for a column the import does not read."""
    return _ALIASES.get(_key(name))


@dataclass(frozen=True, slots=True)
class Columns:
    """Which column of a CSV header holds each field, and the columns left unread."""

    positions: Mapping[Field, int]
    names: Mapping[Field, str]
    ignored: tuple[str, ...]


def columns_of(header: Sequence[str]) -> Columns:
    """Map a header row to fields; the first column of a field wins, later ones are ignored."""
    positions: dict[Field, int] = {}
    names: dict[Field, str] = {}
    ignored: list[str] = []
    for i, cell in enumerate(header):
        name = cell.replace("\ufeff", "").strip()
        found = field_of(name)
        if found is None or found in positions:
            if name:
                ignored.append(name)
            continue
        positions[found] = i
        names[found] = name
    return Columns(positions, names, tuple(ignored))


def missing_columns(columns: Iterable[Field], options: Options) -> list[str]:
    """Required fields a file's columns cannot give (so every row would be rejected)."""
    have = set(columns)
    wanted: list[tuple[Field, ...]] = [
        (Field.ORDER_ID,),
        (Field.STATUS,),
        (Field.SKU,),
        (Field.QUANTITY,),
        (Field.UNIT_PRICE, Field.UNIT_PRICE_FEN),
        (Field.TOTAL_PAID, Field.TOTAL_PAID_FEN),
    ]
    if not options.platform:
        wanted.append((Field.PLATFORM,))
    if not options.shop_id:
        wanted.append((Field.SHOP_ID,))
    return [
        " or ".join(f"{f.value} ({', '.join(HEADERS[f][1:4])}…)" for f in alternatives)
        for alternatives in wanted
        if not have.intersection(alternatives)
    ]


def is_header(cells: Sequence[str]) -> bool:
    """Whether a CSV row looks like the header: it names the order id column."""
    return len(cells) > 1 and any(field_of(c) is Field.ORDER_ID for c in cells)


# ---------------------------------------------------------------------- records

#: A field's value as the file has it: (column name, raw value).
Raw = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """One CSV row or JSON object as read: raw values by field, before any checking."""

    row: int
    values: Mapping[Field, Raw]
    #: The lines of a JSON object that nests them; None when the record is itself one
    #: line (a CSV row, a flat JSON object).
    lines: tuple[Mapping[Field, Raw], ...] | None = None
    #: What is wrong with the record as a whole (not JSON, more cells than the header).
    problems: tuple[Problem, ...] = ()
    #: The column name of each field, when every record of the file shares them (CSV).
    names: Mapping[Field, str] | None = None


def record_of_cells(row: int, cells: Sequence[str], columns: Columns) -> Record:
    """A CSV row as a record (cells beyond the row's end are empty)."""
    return Record(
        row,
        {
            f: (columns.names[f], cells[i] if i < len(cells) else "")
            for f, i in columns.positions.items()
        },
        names=columns.names,
    )


_LINE_LISTS = ("lines", "items", "line_items", "商品明细", "明细")
_RECIPIENT_OBJECTS = ("recipient", "receiver", "收货人信息")
_RECIPIENT_KEYS = {"name": Field.RECIPIENT_NAME}


def record_of_object(row: int, obj: Mapping[str, Any]) -> tuple[Record, list[str]]:
    """A JSON object as a record, and the keys it has that the import does not read.

    Lines may be nested (``lines``/``items``: a list of objects), and the recipient too
    (``recipient``: an object); the hub's own order documents read back this way.
    """
    values: dict[Field, Raw] = {}
    ignored: list[str] = []
    lines: tuple[Mapping[Field, Raw], ...] | None = None

    def take(target: dict[Field, Raw], key: str, value: Any, extra: Mapping[str, Field]) -> None:
        found = extra.get(key) or field_of(key)
        if found is None:
            ignored.append(key)
        else:
            target.setdefault(found, (key, value))

    for key, value in obj.items():
        if key in _LINE_LISTS and isinstance(value, list):
            nested: list[Mapping[Field, Raw]] = []
            for i, item in enumerate(value):
                line: dict[Field, Raw] = {}
                if isinstance(item, Mapping):
                    for k, v in item.items():
                        take(line, str(k), v, {"paid": Field.LINE_PAID})
                else:
                    line[Field.SKU] = (f"{key}[{i}]", item)  # reported as not a line
                nested.append(line)
            lines = tuple(nested)
        elif key in _RECIPIENT_OBJECTS and isinstance(value, Mapping):
            for k, v in value.items():
                take(values, str(k), v, _RECIPIENT_KEYS)
        else:
            take(values, str(key), value, {})
    return Record(row, values, lines), ignored


# ---------------------------------------------------------------------- one row


@dataclass(frozen=True, slots=True)
class Line:
    """One order line as a row gives it (amounts in minor units)."""

    line_id: str
    sku: str
    title: str
    quantity: int
    unit_price: int
    #: What was paid for the line; None when the export does not say.
    paid: int | None


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One record read and checked on its own: order-level values, lines, problems."""

    row: int
    platform: str
    shop_id: str
    order_id: str
    #: Order-level values the row gives (absent fields are left out), in field order.
    head: tuple[tuple[Field, Any], ...]
    lines: tuple[Line, ...]
    problems: tuple[Problem, ...]
    #: The column name of every field the record has (for problems found later).
    columns: Mapping[Field, str] = field(compare=False, hash=False, default_factory=dict)
    #: True when the record nests its lines (one record is the whole order).
    nested: bool = False
    #: The status as the file writes it (kept as the order's platform status).
    status_text: str = field(compare=False, default="")

    @property
    def key(self) -> tuple[str, str, str] | None:
        """(platform, shop, order id), or None when one of them is missing or bad."""
        if self.platform and self.shop_id and self.order_id:
            return (self.platform, self.shop_id, self.order_id)
        return None

    @property
    def content(self) -> tuple[Any, ...]:
        """Everything the row says, without its row number: equal rows repeat each other."""
        return (self.key, self.head, self.lines, self.nested)

    def column(self, f: Field) -> str:
        """The file's name for a field's column, or the field's own name."""
        return self.columns.get(f, f.value)


class _Bad(Exception):
    """A value that cannot be used, with the kind of problem."""

    def __init__(self, reason: str, code: Code = Code.INVALID) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def read_row(record: Record, options: Options) -> ParsedRow:
    """Parse and check one record's values; every problem is reported, not just the first."""
    problems: list[Problem] = list(record.problems)
    values = record.values
    if problems and not values and not record.lines:
        # Nothing could be read from it (not JSON, not an object): that is all to say.
        return ParsedRow(record.row, "", "", "", (), (), tuple(problems))
    head: dict[Field, Any] = {}

    def get(f: Field, parse: Any, *args: Any) -> Any:
        if f not in values:
            return None
        column, raw = values[f]
        try:
            return parse(raw, *args)
        except _Bad as bad:
            problems.append(Problem(record.row, column, bad.reason, bad.code))
            return None

    order_id = get(Field.ORDER_ID, _order_id) or ""
    if Field.ORDER_ID not in values:
        problems.append(Problem(record.row, Field.ORDER_ID.value, "no order id", Code.MISSING))
    platform = get(Field.PLATFORM, _platform) or options.platform
    if not platform and not _reported(problems, values, Field.PLATFORM):
        problems.append(
            Problem(record.row, _name(values, Field.PLATFORM), "no platform", Code.MISSING)
        )
    shop_id = get(Field.SHOP_ID, _shop_id) or options.shop_id
    if not shop_id and not _reported(problems, values, Field.SHOP_ID):
        problems.append(Problem(record.row, _name(values, Field.SHOP_ID), "no shop", Code.MISSING))
    currency = get(Field.CURRENCY, _currency)
    if currency is not None:
        head[Field.CURRENCY] = currency
    in_currency = currency or options.currency
    status = get(Field.STATUS, _status)
    status_text = ""
    if status is not None:
        head[Field.STATUS] = status
        status_text = str(values[Field.STATUS][1]).strip()
    for f in (Field.PLATFORM_STATUS, Field.RECIPIENT_NAME, Field.ADDRESS, Field.ZIP):
        text = get(f, _text)
        if text:
            head[f] = text
    for f in (Field.CREATED_AT, Field.PAID_AT, Field.UPDATED_AT):
        moment = get(f, _time, options)
        if moment is not None:
            head[f] = moment
    country = get(Field.COUNTRY, _text)
    if country:
        head[Field.COUNTRY] = country
    phone = get(Field.PHONE, _phone, (country or "").upper() not in _MAINLAND)
    if phone is not None:
        head[Field.PHONE] = phone
    province = get(Field.PROVINCE, _province, (country or "").upper() not in _MAINLAND)
    if province:
        head[Field.PROVINCE] = province
    for f in (Field.CITY, Field.DISTRICT, Field.STREET, Field.BUYER_NOTE, Field.SELLER_NOTE):
        text = get(f, _text)
        if text:
            head[f] = text
    for major in (Field.SHIPPING_FEE, Field.TOTAL_PAID):
        amount = _amount_of(record.row, values, major, in_currency, problems)
        if amount is not None:
            head[major] = amount
    tags = get(Field.TAGS, _tags)
    if tags:
        head[Field.TAGS] = tags
    if record.lines is None:
        line = _line(record.row, values, in_currency, problems, required=False)
        lines: tuple[Line, ...] = () if line is None else (line,)
    else:
        if not record.lines:
            problems.append(Problem(record.row, "lines", "the order has no lines", Code.MISSING))
        found = [_line(record.row, ln, in_currency, problems, required=True) for ln in record.lines]
        lines = tuple(ln for ln in found if ln is not None)
    columns: Mapping[Field, str]
    if record.names is not None:
        columns = record.names  # shared by every row of the file: kept once in memory
    else:
        own = {f: raw[0] for f, raw in values.items()}
        for nested in record.lines or ():
            for f, raw in nested.items():
                own.setdefault(f, raw[0])
        columns = own
    return ParsedRow(
        row=record.row,
        platform=platform,
        shop_id=shop_id,
        order_id=order_id,
        head=tuple(sorted(head.items(), key=lambda kv: _FIELD_ORDER[kv[0]])),
        lines=lines,
        problems=tuple(problems),
        columns=columns,
        nested=record.lines is not None,
        status_text=status_text,
    )


_FIELD_ORDER = {f: i for i, f in enumerate(Field)}


def _amount_of(
    row: int,
    values: Mapping[Field, Raw],
    major: Field,
    currency: str,
    problems: list[Problem],
) -> int | None:
    """An amount from its yuan column, else its fen column; None when neither has one."""
    minor = _IN_FEN[major]
    for f, in_minor in ((major, False), (minor, True)):
        if f not in values:
            continue
        column, raw = values[f]
        if _blank(raw):
            continue
        try:
            return _amount(raw, currency, in_minor=in_minor)
        except _Bad as bad:
            problems.append(Problem(row, column, bad.reason, bad.code))
            return None
    return None


def _line(
    row: int,
    values: Mapping[Field, Raw],
    currency: str,
    problems: list[Problem],
    *,
    required: bool,
) -> Line | None:
    """The line a row (or a nested line object) gives; None for an order-only row."""
    given = [f for f in LINE_FIELDS if f in values and not _blank(values[f][1])]
    if not given and not required:
        return None  # a row with the order's values only (its lines are on other rows)
    before = len(problems)

    def text(f: Field) -> str:
        if f not in values:
            return ""
        try:
            return _text(values[f][1])
        except _Bad as bad:
            problems.append(Problem(row, values[f][0], bad.reason, bad.code))
            return ""

    sku = text(Field.SKU)
    if not sku:
        problems.append(Problem(row, _name(values, Field.SKU), "no SKU on the line", Code.MISSING))
    quantity: int | None = None
    if Field.QUANTITY in values and not _blank(values[Field.QUANTITY][1]):
        try:
            quantity = _quantity(values[Field.QUANTITY][1])
        except _Bad as bad:
            problems.append(Problem(row, values[Field.QUANTITY][0], bad.reason, bad.code))
    else:
        problems.append(Problem(row, _name(values, Field.QUANTITY), "no quantity", Code.MISSING))
    price = _amount_of(row, values, Field.UNIT_PRICE, currency, problems)
    if not _given(values, Field.UNIT_PRICE):
        problems.append(
            Problem(row, _name(values, Field.UNIT_PRICE), "no unit price", Code.MISSING)
        )
    paid = _amount_of(row, values, Field.LINE_PAID, currency, problems)
    if len(problems) != before or quantity is None or price is None:
        return None
    return Line(text(Field.LINE_ID), sku, text(Field.TITLE), quantity, price, paid)


def _reported(problems: Sequence[Problem], values: Mapping[Field, Raw], f: Field) -> bool:
    """Whether a problem names the field's column already."""
    return f in values and any(p.field == values[f][0] for p in problems)


def _name(values: Mapping[Field, Raw], f: Field) -> str:
    if f in values:
        return str(values[f][0])
    fen = _IN_FEN.get(f)
    if fen is not None and fen in values:
        return str(values[fen][0])
    return f.value


def _given(values: Mapping[Field, Raw], f: Field) -> bool:
    """Whether an amount has a value in its yuan or its fen column."""
    return any(g in values and not _blank(values[g][1]) for g in (f, _IN_FEN[f]))


# ---------------------------------------------------------------------- values


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _text(raw: Any) -> str:
    """Trimmed text; numbers are written out; NUL and other control characters refused."""
    if raw is None:
        return ""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise _Bad(f"expected text, got {type(raw).__name__}")
    text = str(raw).strip()
    if _CONTROL.search(text):
        raise _Bad("contains control characters (a binary or corrupted export?)")
    return text


def _order_id(raw: Any) -> str:
    if isinstance(raw, float | Decimal):
        raise _Bad("the order id is a floating-point number; its digits may be lost")
    text = spreadsheet_text(_text(raw))
    if not text:
        raise _Bad("no order id", Code.MISSING)
    if rounded_by_spreadsheet(text):
        raise _Bad(
            f"order id {text!r} was rounded by a spreadsheet (scientific notation); "
            "export the column as text"
        )
    if len(text) > _MAX_ORDER_ID:
        raise _Bad(f"order id longer than {_MAX_ORDER_ID} characters")
    return text


def _platform(raw: Any) -> str:
    text = _text(raw)
    if not text:
        return ""
    name = _PLATFORMS.get(_key(text), text.lower())
    if not _PLATFORM_ID.fullmatch(name) or len(name) > _MAX_PLATFORM:
        raise _Bad(f"not a platform name: {text!r} (taobao, jd, douyin, pdd, shopify, …)")
    return name


def _shop_id(raw: Any) -> str:
    text = spreadsheet_text(_text(raw))
    if len(text) > _MAX_SHOP_ID:
        raise _Bad(f"shop id longer than {_MAX_SHOP_ID} characters")
    return text


def _currency(raw: Any) -> str | None:
    text = _text(raw)
    if not text:
        return None
    try:
        return money.currency_code(text)
    except money.MoneyError as exc:
        raise _Bad(str(exc)) from exc


def status_of(text: str) -> OrderStatus | None:
    """The status an export's status word means (``已发货``, ``TRADE_FINISHED``), or None."""
    return _STATUS.get(_key(text).upper())


def _status(raw: Any) -> OrderStatus | None:
    text = _text(raw)
    if not text:
        return None
    found = status_of(text)
    if found is None:
        raise _Bad(f"unknown status {text!r} (已发货, 交易成功, 已关闭, 已取消, SHIPPED, …)")
    return found


def amount(raw: Any, currency: str = "CNY", *, in_minor: bool = False) -> int:
    """An amount as an export writes it → minor units; ValueError saying why not.

    ``12.50``, ``¥12.50``, ``1,299.00``, ``12.50元`` and JSON numbers are read exactly;
    negative amounts, amounts finer than the currency's minor unit and anything else
    (``12,50``, ``1.299,00``, ``abc``) are refused.
    """
    try:
        return _amount(raw, currency, in_minor=in_minor)
    except _Bad as bad:
        raise ValueError(bad.reason) from bad


def _amount(raw: Any, currency: str, *, in_minor: bool) -> int:
    places = 0 if in_minor else money.exponent(currency)
    if isinstance(raw, bool) or raw is None:
        raise _Bad(f"not an amount: {raw!r}")
    if isinstance(raw, int):
        number = Decimal(raw)
    elif isinstance(raw, Decimal | float):
        number = Decimal(repr(raw)) if isinstance(raw, float) else raw
        if not number.is_finite():
            raise _Bad(f"not an amount: {raw!r}")
    elif isinstance(raw, str):
        text = _SYMBOLS.sub("", spreadsheet_text(raw.strip())).strip()
        if not _AMOUNT.fullmatch(text):
            raise _Bad(f"not an amount: {raw!r} (write 1299.00 or 1,299.00)")
        try:
            number = Decimal(text.replace(",", ""))
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
            raise _Bad(f"not an amount: {raw!r}") from exc
    else:
        raise _Bad(f"not an amount: {type(raw).__name__}")
    if number < 0:
        raise _Bad(f"negative amount: {raw!r}", Code.NEGATIVE)
    scaled = number.scaleb(places)
    if scaled != scaled.to_integral_value():
        unit = "fen" if in_minor else f"{currency}'s minor unit"
        raise _Bad(f"{raw!r} is finer than {unit}")
    minor = int(scaled)
    if minor >= _LIMIT:
        raise _Bad(f"amount out of range: {raw!r}")
    return minor


def _quantity(raw: Any) -> int:
    if isinstance(raw, bool):
        raise _Bad(f"not a quantity: {raw!r}")
    number: Decimal | None = None
    if isinstance(raw, int):
        number = Decimal(raw)
    elif isinstance(raw, Decimal):
        number = raw
    elif isinstance(raw, str) and re.fullmatch(r"[+-]?[0-9]+(\.0*)?", raw.strip()):
        number = Decimal(raw.strip())
    if number is None or not number.is_finite() or number != number.to_integral_value():
        raise _Bad(f"not a whole quantity: {raw!r}")
    if number <= 0:
        raise _Bad(f"quantity must be positive, got {raw!r}", Code.NEGATIVE)
    if number > _MAX_QUANTITY:
        raise _Bad(f"quantity out of range: {raw!r}")
    return int(number)


def moment(raw: Any, options: Options) -> datetime | None:
    """A time as an export writes it → UTC; None for none; ValueError saying why not."""
    try:
        return _time(raw, options)
    except _Bad as bad:
        raise ValueError(bad.reason) from bad


def _time(raw: Any, options: Options) -> datetime | None:
    try:
        if isinstance(raw, int) and not isinstance(raw, bool):
            found = times.unix_seconds(raw) if raw < 10**11 else times.unix_millis(raw)
        else:
            text = _text(raw)
            if not text:
                return None
            if _EPOCH_DIGITS.fullmatch(text):
                found = times.unix_seconds(text) if len(text) == 10 else times.unix_millis(text)
            else:
                found = times.loose_local_time(text, options.zone)
    except times.TimeFormatError as exc:
        # A date of the right shape that does not exist says why (day out of range …).
        why = f" ({exc.__cause__})" if isinstance(exc.__cause__, ValueError) else ""
        raise _Bad(
            f"not a time: {raw!r}{why}; write 2024-05-18 10:21:07 (an offset such as "
            "+08:00 may follow)"
        ) from exc
    if found is not None and options.now is not None and found > options.now + FUTURE_SLACK:
        raise _Bad(f"{raw!r} is in the future")
    return found


def phone(raw: Any, *, foreign: bool = False) -> tuple[str, bool]:
    """A phone as exports write it → (the number as kept, whether it is masked/encrypted).

    ValueError saying why when it is no phone number. ``foreign`` is for a recipient
    outside the mainland, whose number may lack the ``+`` and country code.
    """
    try:
        found = _phone(raw, foreign)
    except _Bad as bad:
        raise ValueError(bad.reason) from bad
    if found is None:
        raise ValueError("no phone number")
    return found


def _phone(raw: Any, foreign: bool) -> tuple[str, bool] | None:
    if isinstance(raw, float | Decimal):
        raise _Bad("the phone is a floating-point number; export the column as text")
    text = spreadsheet_text(_text(raw))
    if not text:
        return None
    if "*" in text:
        if not _MASKED_PHONE.fullmatch(text):
            raise _Bad(f"not a phone number: {raw!r}")
        return text, True  # masked by the platform: kept as delivered
    if looks_protected(text):
        return text, True  # ciphertext (##…##, $$…$$, ~…~, base64)
    plain = _PHONE_NOISE.sub("", unicodedata.normalize("NFKC", text))
    international = plain.startswith(("+", "00"))
    digits = plain[1:] if plain.startswith("+") else plain[2:] if international else plain
    if international:
        if digits.startswith("86"):
            national = digits[2:].lstrip("-")
            if _MOBILE.fullmatch(national.replace("-", "")):
                return national.replace("-", ""), False
            return _landline("0" + national, raw), False
        compact = digits.replace("-", "")
        if compact.isdigit() and 7 <= len(compact) <= 15:
            return "+" + compact, False
        raise _Bad(f"not a phone number: {raw!r}")
    compact = plain.replace("-", "")
    if _MOBILE.fullmatch(compact):
        return compact, False
    if len(compact) == 13 and compact.startswith("86") and _MOBILE.fullmatch(compact[2:]):
        return compact[2:], False
    if foreign:
        if compact.isdigit() and 6 <= len(compact) <= 15:
            return compact, False
        raise _Bad(f"not a phone number: {raw!r}")
    if plain.startswith("0"):
        return _landline(plain, raw), False
    raise _Bad(
        f"not a phone number: {raw!r} (a mobile is 11 digits starting with 1; "
        "a landline needs its area code, 010-12345678)"
    )


def _landline(plain: str, raw: Any) -> str:
    """``area-number[-extension]``: the area code is 3 digits for 010 and 02x, else 4."""
    found = _LANDLINE.fullmatch(plain)
    if found is None:
        raise _Bad(f"not a phone number: {raw!r}")
    area, number, extension = found.groups()
    if area is None or "-" not in plain[: len(area) + 1]:
        # No hyphen after the area code: split by the numbering plan.
        digits = (area or "") + number
        size = 3 if digits[1] in "12" else 4
        area, number = digits[:size], digits[size:]
    if not 7 <= len(number) <= 8 or not 3 <= len(area) <= 4:
        raise _Bad(f"not a phone number: {raw!r}")
    return f"{area}-{number}" + (f"-{extension}" if extension else "")


def _province(raw: Any, foreign: bool) -> str:
    text = _text(raw)
    if text and not foreign and province_of(text) is None:
        raise _Bad(f"unknown province {text!r}")
    return text


def _tags(raw: Any) -> tuple[str, ...]:
    words = [_text(w) for w in raw] if isinstance(raw, list) else _TAG_SPLIT.split(_text(raw))
    tags: list[str] = []
    for word in words:
        word = word.strip()
        if not word:
            continue
        if len(word) > _MAX_TAG or not _TAG.fullmatch(word):
            raise _Bad(f"not a tag: {word!r} (at most {_MAX_TAG} characters, no quotes)")
        if word not in tags:
            tags.append(word)
    return tuple(tags)


# ---------------------------------------------------------------------- whole orders


@dataclass(frozen=True, slots=True)
class Assembled:
    """What became of one order of the file (or of a row that names no order)."""

    key: tuple[str, str, str] | None
    #: The order to store; None when it is rejected.
    order: PlatformOrder | None
    tags: tuple[str, ...]
    placement: Placement
    #: The rows it was read from (its first row first), repeats left out.
    rows: tuple[int, ...]
    #: Rows that repeat an earlier row of the order verbatim (counted once).
    repeated: tuple[int, ...]
    #: Why it is rejected: at least one problem for each of its rows.
    problems: tuple[Problem, ...] = ()

    @property
    def rejected(self) -> bool:
        """Whether the order is rejected."""
        return self.order is None


def orders_of(rows: Iterable[ParsedRow], options: Options) -> Iterator[Assembled]:
    """Group rows into orders (in the order they first appear) and build or reject each."""
    groups: dict[tuple[str, str, str], list[ParsedRow]] = {}
    for row in rows:
        key = row.key
        if key is None:
            yield _rejected(None, [row], [], list(row.problems) or [_no_key(row, options)])
            continue
        groups.setdefault(key, []).append(row)
    for group in groups.values():
        yield assemble(group, options)


def _no_key(row: ParsedRow, options: Options) -> Problem:
    if not row.platform:
        return Problem(row.row, row.column(Field.PLATFORM), "no platform", Code.MISSING)
    return Problem(row.row, row.column(Field.SHOP_ID), "no shop", Code.MISSING)


def assemble(rows: Sequence[ParsedRow], options: Options) -> Assembled:
    """One order from its rows (all with the same key), or its rejection with every reason."""
    key = rows[0].key
    seen: set[tuple[Any, ...]] = set()
    distinct: list[ParsedRow] = []
    repeated: list[int] = []
    for r in rows:
        if r.content in seen:
            repeated.append(r.row)
            continue
        seen.add(r.content)
        distinct.append(r)
    problems = [p for r in distinct for p in r.problems]
    first = distinct[0]
    if len(distinct) > 1 and any(r.nested for r in distinct):
        again = distinct[1]
        problems.append(
            Problem(
                again.row,
                again.column(Field.ORDER_ID),
                f"order {first.order_id} appears again with different content "
                f"(first on row {first.row})",
                Code.CONFLICT,
            )
        )
    merged: dict[Field, tuple[Any, ParsedRow]] = {}
    currency = next(
        (v for r in distinct for f, v in r.head if f is Field.CURRENCY), options.currency
    )
    for r in distinct:
        for f, value in r.head:
            known = merged.get(f)
            if known is None:
                merged[f] = (value, r)
            elif known[0] != value:
                problems.append(
                    Problem(
                        r.row,
                        r.column(f),
                        f"{_show(f, value, currency)} here, but {_show(f, known[0], currency)} "
                        f"on row {known[1].row} "
                        f"of order {first.order_id}",
                        Code.CONFLICT,
                    )
                )
    lines: list[tuple[Line, ParsedRow]] = []
    by_id: dict[str, tuple[Line, ParsedRow]] = {}
    for r in distinct:
        for ln in r.lines:
            known_line = by_id.get(ln.line_id) if ln.line_id else None
            if known_line is None:
                lines.append((ln, r))
                if ln.line_id:
                    by_id[ln.line_id] = (ln, r)
            elif known_line[0] != ln:
                problems.append(
                    Problem(
                        r.row,
                        r.column(Field.LINE_ID),
                        f"line {ln.line_id} differs from the same line on row {known_line[1].row}",
                        Code.CONFLICT,
                    )
                )
            # else: the same line again on a row that adds order values only
    if problems:
        return _rejected(key, distinct, repeated, problems)
    built = _build(distinct, {f: v for f, (v, _) in merged.items()}, lines, options)
    if isinstance(built, Problem):
        return _rejected(key, distinct, repeated, [built])
    order, placement = built
    note_tags = tags_from_note(order.buyer_note)
    given_tags: tuple[str, ...] = merged[Field.TAGS][0] if Field.TAGS in merged else ()
    tags = tuple(dict.fromkeys([IMPORTED, *given_tags, *note_tags]))
    return Assembled(key, order, tags, placement, tuple(r.row for r in distinct), tuple(repeated))


def _show(f: Field, value: Any, currency: str) -> str:
    """A value as the operator would write it, for a message."""
    if isinstance(value, datetime):
        return value.isoformat()
    if f is Field.PHONE:
        return repr(value[0])
    if f in (Field.SHIPPING_FEE, Field.TOTAL_PAID):
        return _money(value, currency)
    if f is Field.TAGS:
        return repr(",".join(value))
    return repr(value.value if isinstance(value, StrEnum) else value)


def _money(minor: int, currency: str) -> str:
    """Minor units as the amount in the currency (``5990`` → ``59.90 CNY``)."""
    try:
        places = money.exponent(currency)
    except money.MoneyError:
        places = 2
    return f"{Decimal(minor).scaleb(-places):f} {currency}"


def _rejected(
    key: tuple[str, str, str] | None,
    rows: Sequence[ParsedRow],
    repeated: Sequence[int],
    problems: Sequence[Problem],
) -> Assembled:
    """An order rejected whole: its problem-free rows go with it, naming the first problem."""
    bad = sorted(problems, key=lambda p: p.row)
    first = bad[0]
    rows_with = {p.row for p in bad}
    order_id = key[2] if key else ""
    with_order = [
        Problem(
            r.row,
            "",
            f"rejected with its order {order_id} (row {first.row}: {first.field} {first.code})",
            Code.WITH_ORDER,
        )
        for r in rows
        if r.row not in rows_with
    ]
    return Assembled(
        key,
        None,
        (),
        Placement("", ()),
        tuple(r.row for r in rows),
        tuple(repeated),
        tuple(sorted([*bad, *with_order], key=lambda p: p.row)),
    )


def _build(
    rows: Sequence[ParsedRow],
    head: Mapping[Field, Any],
    lines: Sequence[tuple[Line, ParsedRow]],
    options: Options,
) -> tuple[PlatformOrder, Placement] | Problem:
    """The order from its merged values, or the first thing an order as a whole lacks."""
    first = rows[0]
    row = first.row

    def missing(f: Field, reason: str = "missing") -> Problem:
        return Problem(row, first.column(f), reason, Code.MISSING)

    status: OrderStatus | None = head.get(Field.STATUS)
    if status is None:
        return missing(Field.STATUS)
    placement = Placement("", ())
    if status not in FINISHED:
        if options.open_orders is OpenOrders.REJECT:
            return Problem(
                row,
                first.column(Field.STATUS),
                f"the order is still open ({status.value}); history takes finished orders "
                "(shipped, delivered, cancelled, closed); take it in through the platform's "
                "pull or IngestPlatformOrder, or import with --open-orders review",
                Code.OPEN_ORDER,
            )
        placement = Placement(
            REVIEW,
            (
                f"{IMPORTED_OPEN}: imported from history as {status.value}; approve it to "
                "hold its stock and ship it, or reject it",
            ),
        )
    if not lines:
        return missing(Field.SKU, "the order has no lines")
    created: datetime | None = head.get(Field.CREATED_AT)
    paid: datetime | None = head.get(Field.PAID_AT)
    updated: datetime | None = head.get(Field.UPDATED_AT)
    if status in _PAID and paid is None:
        return missing(Field.PAID_AT, f"a {status.value} order needs its paid time")
    if created is None and paid is None:
        return missing(Field.CREATED_AT, "the order needs its created or paid time")
    if created is not None and paid is not None and paid < created:
        return Problem(
            row,
            first.column(Field.PAID_AT),
            f"paid ({paid.isoformat()}) before it was created ({created.isoformat()})",
        )
    latest = max(t for t in (created, paid) if t is not None)
    if updated is None:
        updated = latest
    elif updated < latest:
        return Problem(
            row,
            first.column(Field.UPDATED_AT),
            f"updated ({updated.isoformat()}) before it was created or paid",
        )
    phone: tuple[str, bool] | None = head.get(Field.PHONE)
    name: str = head.get(Field.RECIPIENT_NAME, "")
    address: str = head.get(Field.ADDRESS, "")
    province: str = head.get(Field.PROVINCE, "")
    if status in _SENT:
        for f, value in (
            (Field.RECIPIENT_NAME, name),
            (Field.PHONE, phone),
            (Field.PROVINCE, province),
            (Field.ADDRESS, address),
        ):
            if not value:
                return missing(f, f"a {status.value} order needs the recipient's {_WHAT[f]}")
    total: int | None = head.get(Field.TOTAL_PAID)
    if total is None:
        return missing(Field.TOTAL_PAID)
    shipping: int = head.get(Field.SHIPPING_FEE, 0)
    currency: str = head.get(Field.CURRENCY, options.currency)
    line_paid = _line_paid(
        first, [ln for ln, _ in lines], total, shipping, currency, was_paid=paid is not None
    )
    if isinstance(line_paid, Problem):
        return line_paid
    city: str = head.get(Field.CITY, "")
    if not city and province.removesuffix("市") in _MUNICIPALITIES:
        city = province.removesuffix("市") + "市"
    protected = bool(phone and phone[1]) or any(looks_protected(v) for v in (name, address))
    recipient = Recipient(
        name=name,
        phone=phone[0] if phone else "",
        province=province,
        city=city,
        district=head.get(Field.DISTRICT, ""),
        street=head.get(Field.STREET, ""),
        address=address,
        zip=head.get(Field.ZIP, ""),
        country=head.get(Field.COUNTRY, ""),
        pii_protected=protected,
    )
    raw_status = head.get(Field.PLATFORM_STATUS) or next(
        (r.status_text for r in rows if r.status_text), status.value
    )
    order = PlatformOrder(
        platform=first.platform,
        shop_id=first.shop_id,
        platform_order_id=first.order_id,
        platform_status=raw_status,
        status=status,
        after_sale_type=AfterSaleType.NONE,
        buyer_note=head.get(Field.BUYER_NOTE, ""),
        seller_note=head.get(Field.SELLER_NOTE, ""),
        recipient=recipient,
        lines=tuple(
            OrderLine(
                platform_line_id=ln.line_id,
                platform_sku_id=ln.sku,
                title=ln.title,
                quantity=ln.quantity,
                unit_price_fen=ln.unit_price,
                paid_fen=p,
            )
            for (ln, _), p in zip(lines, line_paid, strict=True)
        ),
        shipping_fee_fen=shipping,
        total_paid_fen=total,
        currency=currency,
        created_at=created,
        paid_at=paid,
        updated_at=updated,
    )
    return order, placement


def _line_paid(
    first: ParsedRow,
    lines: Sequence[Line],
    total: int,
    shipping: int,
    currency: str,
    *,
    was_paid: bool,
) -> list[int] | Problem:
    """What was paid for each line, by the rule for totals (module docstring)."""
    column = first.column(Field.TOTAL_PAID)

    def _yuan(minor: int) -> str:
        return _money(minor, currency)

    given = [ln.paid for ln in lines]
    if all(p is not None for p in given):
        paid = [p for p in given if p is not None]
        if sum(paid) + shipping != total:
            return Problem(
                first.row,
                column,
                f"lines paid {_yuan(sum(paid))} + shipping {_yuan(shipping)} = "
                f"{_yuan(sum(paid) + shipping)}, but the total paid is {_yuan(total)}",
                Code.TOTALS,
            )
        return paid
    if any(p is not None for p in given):
        return Problem(
            first.row,
            first.column(Field.LINE_PAID),
            "some lines say what was paid for them and some do not; give it for all or none",
            Code.TOTALS,
        )
    listed = sum(ln.unit_price * ln.quantity for ln in lines)
    if total > listed + shipping:
        return Problem(
            first.row,
            column,
            f"total paid {_yuan(total)} is more than the lines' list price {_yuan(listed)} + "
            f"shipping {_yuan(shipping)} (an amount in fen in a yuan column?)",
            Code.TOTALS,
        )
    if total < shipping and (was_paid or total != 0):
        return Problem(
            first.row,
            column,
            f"total paid {_yuan(total)} is less than the shipping fee {_yuan(shipping)}",
            Code.TOTALS,
        )
    return money.allocate(max(total - shipping, 0), [ln.unit_price * ln.quantity for ln in lines])
