"""Uploaded platform statements → platform records for reconciliation.

A statement is what a shop's back office exports for a period: CSV (UTF-8 with or without
a BOM, GB18030 as Chinese exports often are, or UTF-16 with a BOM as Excel's "Unicode
text" is; comma, tab or semicolon separated) or JSON lines (one object per line). Columns
are found by their header, Chinese or English (订单号 / order id, 实付金额 / paid, 退款金额 /
refund, 售后类型 / after-sale type, 订单状态 / status, 支付时间 / paid at, 币种 / currency),
or named by the caller. Amounts in yuan are read as exact decimals (never floats); a
header that says fen (``paid_fen``, ``实付金额(分)``) is read as minor units.

Spreadsheet habits are undone: ``="2405181234"``, a leading ``'`` or tab around an order
number, ``¥1,299.00``, refunds written as negative outflows (``-19.90``), preamble lines
before the header, ``#`` comment lines, blank lines and a 合计/total line. An order number
in scientific notation (``2.40518E+17``, a spreadsheet rounded it) is refused.

A bad row is an error naming its row (the file's line number) and column; nothing is
half-parsed: every problem (up to :data:`MAX_PROBLEMS`) is reported and no record returned.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from adapters import money, times
from adapters.fields import header_key, rounded_by_spreadsheet, spreadsheet_text
from hub.domain.orders import AfterSaleType, OrderStatus
from hub.domain.reconcile import PlatformRecord

T = TypeVar("T")

MAX_PROBLEMS = 20
#: How far down the file the header row may be (after a preamble).
HEADER_SEARCH_ROWS = 30
_DELIMITERS = ("\t", ",", ";")


class StatementFormat(StrEnum):
    """How a statement is written."""

    CSV = "csv"
    JSONL = "jsonl"


class Field(StrEnum):
    """What the reconciliation reads from a statement; ``*_FEN`` are in minor units."""

    ORDER_ID = "platform_order_id"
    PAID = "paid"
    PAID_FEN = "paid_fen"
    REFUNDED = "refunded"
    REFUNDED_FEN = "refunded_fen"
    AFTER_SALE_TYPE = "after_sale_type"
    STATUS = "status"
    OCCURRED_AT = "occurred_at"
    CURRENCY = "currency"


#: Header names each field is known by, best first (compared without case, spaces,
#: underscores, hyphens or the kind of parentheses).
HEADERS: Mapping[Field, tuple[str, ...]] = {
    Field.ORDER_ID: (
        "platform_order_id", "订单号", "订单编号", "主订单编号", "主订单号", "订单ID",
        "平台订单号", "店铺订单号", "order id", "order no", "order number", "order_sn",
        "shop_order_id", "tid",
    ),
    Field.PAID: (
        "实付金额", "实付金额(元)", "实付款", "实付款(元)", "买家实付", "买家实付金额",
        "买家实际支付金额", "订单实付金额", "实际支付金额", "支付金额", "实收金额", "实收款",
        "paid", "paid amount", "amount paid", "total paid", "pay_amount",
    ),
    Field.PAID_FEN: ("paid_fen", "total_paid_fen", "实付金额(分)", "pay_amount_fen"),
    Field.REFUNDED: (
        "退款金额", "退款金额(元)", "已退款金额", "实退金额", "售后退款金额", "退款",
        "refunded", "refund", "refund amount", "refunded amount",
    ),
    Field.REFUNDED_FEN: ("refunded_fen", "refund_fen", "退款金额(分)", "refund_amount_fen"),
    Field.AFTER_SALE_TYPE: (
        "after_sale_type", "售后类型", "退款类型", "售后方式", "after-sale type",
        "aftersale type", "refund type",
    ),
    Field.STATUS: ("订单状态", "交易状态", "状态", "order status", "status"),
    Field.OCCURRED_AT: (
        "occurred_at", "支付时间", "付款时间", "订单付款时间", "下单时间", "创建时间",
        "订单创建时间", "成交时间", "结算时间", "入账时间", "时间", "paid at", "payment time",
        "created at", "order time", "time", "date",
    ),
    Field.CURRENCY: ("currency", "币种", "货币", "币别"),
}  # fmt: skip

AFTER_SALE_VALUES: Mapping[str, AfterSaleType] = {
    **dict.fromkeys(("", "-", "无", "无售后", "NONE", "NO_REFUND"), AfterSaleType.NONE),
    **dict.fromkeys(
        ("仅退款", "未发货仅退款", "已发货仅退款", "发货前退款", "售后仅退款", "REFUND_ONLY",
         "ONLY_REFUND", "REFUND"),
        AfterSaleType.REFUND_ONLY,
    ),
    **dict.fromkeys(
        ("退货退款", "售后退货退款", "退款退货", "RETURN_REFUND", "REFUND_AND_RETURN",
         "RETURN_AND_REFUND"),
        AfterSaleType.RETURN_REFUND,
    ),
    **dict.fromkeys(
        ("换货", "天猫换货", "淘宝换货", "EXCHANGE", "TMALL_EXCHANGE", "TAOBAO_EXCHANGE"),
        AfterSaleType.EXCHANGE,
    ),
    **dict.fromkeys(("补寄", "补发", "缺货补寄", "RESEND", "RESHIP", "RESHIPPING"),
                    AfterSaleType.RESEND),
    **dict.fromkeys(("维修", "REPAIR"), AfterSaleType.REPAIR),
    **dict.fromkeys(("价保", "价格保护", "PRICE_PROTECT"), AfterSaleType.PRICE_PROTECT),
    **dict.fromkeys(("其他", "其它", "系统取消", "用户取消", "OTHER", "OTHERS"),
                    AfterSaleType.OTHER),
}  # fmt: skip

STATUS_VALUES: Mapping[str, OrderStatus] = {
    **dict.fromkeys(
        ("待付款", "待支付", "未付款", "等待买家付款", "PENDING_PAYMENT", "WAIT_BUYER_PAY",
         "UNPAID", "PENDING"),
        OrderStatus.PENDING_PAYMENT,
    ),
    **dict.fromkeys(
        ("已付款", "已支付", "待发货", "买家已付款", "等待卖家发货", "备货中", "PAID",
         "WAIT_SELLER_SEND_GOODS"),
        OrderStatus.PAID,
    ),
    **dict.fromkeys(("暂停", "挂起", "锁定", "ON_HOLD"), OrderStatus.ON_HOLD),
    **dict.fromkeys(
        ("已发货", "部分发货", "待收货", "卖家已发货", "等待买家确认收货", "运输中", "SHIPPED",
         "WAIT_BUYER_CONFIRM_GOODS", "FULFILLED"),
        OrderStatus.SHIPPED,
    ),
    **dict.fromkeys(
        ("已完成", "完成", "交易成功", "交易完成", "已签收", "已收货", "DELIVERED", "COMPLETED",
         "TRADE_FINISHED", "FINISHED"),
        OrderStatus.DELIVERED,
    ),
    **dict.fromkeys(
        ("已取消", "取消", "交易取消", "订单取消", "CANCELLED", "CANCELED", "VOIDED",
         "TRADE_CLOSED_BY_TAOBAO"),
        OrderStatus.CANCELLED,
    ),
    **dict.fromkeys(
        ("已关闭", "关闭", "交易关闭", "已退款", "退款成功", "CLOSED", "TRADE_CLOSED",
         "REFUNDED"),
        OrderStatus.CLOSED,
    ),
}  # fmt: skip

_TOTAL_ROW = re.compile(r"合计|总计|小计|汇总|total|subtotal", re.I)
_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a statement: where (row = the file's line number) and why."""

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row else "the statement"
        if self.column:
            where += f", column {self.column!r}"
        return f"{where}: {self.reason}"


class StatementError(ValueError):
    """A statement that cannot be read; ``problems`` lists every one found, first first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        assert problems
        self.problems = tuple(problems)
        first = self.problems[0]
        self.row, self.column, self.reason = first.row, first.column, first.reason
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(f"{first}{suffix}")


@dataclass(frozen=True, slots=True)
class Statement:
    """A parsed statement: one record per data row, and the header used for each field."""

    records: tuple[PlatformRecord, ...]
    columns: Mapping[Field, str]
    format: StatementFormat


_key = header_key


_ALIASES: dict[str, Field] = {}
for _field, _names in HEADERS.items():
    for _name in _names:
        _ALIASES.setdefault(_key(_name), _field)
_AFTER_SALE = {_key(k).upper(): v for k, v in AFTER_SALE_VALUES.items()}
_STATUS = {_key(k).upper(): v for k, v in STATUS_VALUES.items()}


def guess_format(data: bytes) -> StatementFormat:
    """JSON lines when the first visible character is ``{``, CSV otherwise."""
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return StatementFormat.JSONL if head.startswith(b"{") else StatementFormat.CSV


def parse_statement(
    data: bytes,
    format: StatementFormat | str | None = None,
    *,
    currency: str = "CNY",
    columns: Mapping[str, str] | None = None,
    zone: tzinfo = times.BEIJING,
) -> Statement:
    """Read a statement; ``columns`` maps a field name (:class:`Field`) to this file's header.

    ``currency`` is for rows without a currency column; times without an offset are in
    ``zone`` (Beijing). Raises :class:`StatementError` naming every bad row and column.
    """
    chosen = _chosen_columns(columns)
    money.exponent(currency)  # refuse a bad default before reading anything
    kind = StatementFormat(format) if format else guess_format(data)
    text = _decode(data)
    reader = _Rows(currency, zone)
    if kind is StatementFormat.JSONL:
        used = reader.json_lines(text, chosen)
    else:
        used = reader.csv(text, chosen)
    reader.check_currencies()
    if reader.problems:
        raise StatementError(reader.problems)
    return Statement(tuple(reader.records), used, kind)


def _chosen_columns(columns: Mapping[str, str] | None) -> dict[Field, str]:
    chosen: dict[Field, str] = {}
    for name, header in (columns or {}).items():
        try:
            chosen[Field(name)] = header
        except ValueError:
            known = ", ".join(f.value for f in Field)
            raise StatementError(
                [Problem(0, name, f"unknown field {name!r} in the column mapping (known: {known})")]
            ) from None
    return chosen


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "gb18030")
    failure: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            failure = failure or exc
    assert failure is not None
    line = data[: failure.start].count(b"\n") + 1
    tried = " or ".join(e.upper() for e in encodings)
    raise StatementError([Problem(line, "", f"not {tried} text (byte {failure.start})")])


class _Rows:
    """Collects records and problems row by row."""

    def __init__(self, currency: str, zone: tzinfo) -> None:
        self.currency = currency
        self.zone = zone
        self.records: list[PlatformRecord] = []
        self.rows: list[int] = []
        self.problems: list[Problem] = []

    def problem(self, row: int, column: str, reason: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(row, column, reason))

    # ------------------------------------------------------------------ CSV

    def csv(self, text: str, chosen: Mapping[Field, str]) -> dict[Field, str]:
        found = _find_header(text, chosen)
        if found is None:
            wanted = chosen.get(Field.ORDER_ID) or "订单号, order id, …"
            self.problem(
                1,
                "",
                f"no header row with an order number column ({wanted}) "
                f"in the first {HEADER_SEARCH_ROWS} rows",
            )
            return {}
        delimiter, header_line, header = found
        positions = _positions(header, chosen)
        used = {f: header[i] for f, i in positions.items()}
        if not self._has_required(positions, header_line, chosen):
            return used
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for cells in reader:
            line = reader.line_num
            if line <= header_line or _skippable(cells):
                continue
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                self.problem(line, "", f"{len(cells)} cells but the header has {len(header)}")
                continue
            values = {
                f: (header[i], cells[i] if i < len(cells) else "") for f, i in positions.items()
            }
            self.row(line, values)
        return used

    def _has_required(
        self, positions: Mapping[Field, int], line: int, chosen: Mapping[Field, str]
    ) -> bool:
        ok = True
        for wanted in chosen:
            if wanted not in positions:
                self.problem(line, chosen[wanted], f"no such column for {wanted.value}")
                ok = False
        if Field.PAID not in positions and Field.PAID_FEN not in positions:
            names = ", ".join(HEADERS[Field.PAID][:4])
            self.problem(line, "", f"no paid amount column ({names}, paid, paid_fen, …)")
            ok = False
        return ok

    # ------------------------------------------------------------------ JSON lines

    def json_lines(self, text: str, chosen: Mapping[Field, str]) -> dict[Field, str]:
        used: dict[Field, str] = {}
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
            except ValueError as exc:
                self.problem(line, "", f"not JSON: {exc}")
                continue
            if not isinstance(obj, dict):
                self.problem(line, "", "not a JSON object")
                continue
            keys = [str(k) for k in obj]
            positions = _positions(keys, chosen)
            missing = [f for f in (Field.ORDER_ID,) if f not in positions]
            if Field.PAID not in positions and Field.PAID_FEN not in positions:
                missing.append(Field.PAID)
            if missing:
                for f in missing:
                    self.problem(line, chosen.get(f, f.value), "missing")
                continue
            values = {f: (keys[i], obj[keys[i]]) for f, i in positions.items()}
            for f, (name, _) in values.items():
                used.setdefault(f, name)
            self.row(line, values)
        return used

    # ------------------------------------------------------------------ one row

    def row(self, line: int, values: Mapping[Field, tuple[str, Any]]) -> None:
        """Read one row's values (field → (column, raw value)) into a record or problems."""
        before = len(self.problems)
        column, raw = values[Field.ORDER_ID]
        order_id = self._order_id(line, column, raw)
        if order_id is None:
            return
        currency = self.currency
        if Field.CURRENCY in values:
            currency = self._currency(line, *values[Field.CURRENCY]) or currency
        paid = self._amount(line, values, Field.PAID, Field.PAID_FEN, currency, required=True)
        refunded = self._amount(
            line, values, Field.REFUNDED, Field.REFUNDED_FEN, currency, required=False
        )
        after_sale: AfterSaleType | None = None
        if Field.AFTER_SALE_TYPE in values:
            column, raw = values[Field.AFTER_SALE_TYPE]
            after_sale = self._lookup(line, column, raw, _AFTER_SALE, "after-sale type")
        status = None
        if Field.STATUS in values:
            status = self._lookup(line, *values[Field.STATUS], _STATUS, "order status")
        occurred_at = None
        if Field.OCCURRED_AT in values:
            occurred_at = self._time(line, *values[Field.OCCURRED_AT])
        if len(self.problems) != before or paid is None or refunded is None:
            return
        self.records.append(
            PlatformRecord(
                platform_order_id=order_id,
                paid_fen=paid,
                refunded_fen=refunded,
                after_sale_type=after_sale or AfterSaleType.NONE,
                status=status,
                occurred_at=occurred_at,
                currency=currency,
            )
        )
        self.rows.append(line)

    def _order_id(self, line: int, column: str, raw: Any) -> str | None:
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            self.problem(line, column, f"not an order number: {raw!r}")
            return None
        text = spreadsheet_text(str(raw).strip())
        if not text:
            self.problem(line, column, "no order number")
            return None
        if rounded_by_spreadsheet(text):
            self.problem(
                line,
                column,
                f"order number {text!r} was rounded by a spreadsheet "
                "(scientific notation); export it as text",
            )
            return None
        return text

    def _currency(self, line: int, column: str, raw: Any) -> str | None:
        text = str(raw).strip() if raw is not None else ""
        if not text:
            return None
        try:
            return money.currency_code(text)
        except money.MoneyError as exc:
            self.problem(line, column, str(exc))
            return None

    def _amount(
        self,
        line: int,
        values: Mapping[Field, tuple[str, Any]],
        major: Field,
        minor: Field,
        currency: str,
        *,
        required: bool,
    ) -> int | None:
        in_minor = major not in values and minor in values
        if major not in values and minor not in values:
            return 0
        column, raw = values[minor if in_minor else major]
        if isinstance(raw, str):
            raw = raw.strip().replace("¥", "").replace("￥", "").replace("$", "").strip()
            if _GROUPED.fullmatch(raw.lstrip("+-")):
                raw = raw.replace(",", "")
        if raw is None or raw in ("", "-", "--"):
            if required:
                self.problem(line, column, "no amount")
                return None
            return 0
        try:
            amount = money.minor_units(raw) if in_minor else money.major_to_minor(raw, currency)
        except money.MoneyError as exc:
            self.problem(line, column, str(exc))
            return None
        if amount < 0:
            if major is Field.REFUNDED:
                return -amount  # a refund written as money going out
            self.problem(line, column, f"negative amount: {raw!r}")
            return None
        return amount

    def _lookup(
        self, line: int, column: str, raw: Any, table: Mapping[str, T], what: str
    ) -> T | None:
        text = "" if raw is None else str(raw)
        key = _key(text).upper()
        if not key:
            return None
        found = table.get(key)
        if found is None:
            self.problem(line, column, f"unknown {what} {text.strip()!r}")
        return found

    def _time(self, line: int, column: str, raw: Any) -> datetime | None:
        try:
            if isinstance(raw, int) and not isinstance(raw, bool):
                return times.unix_seconds(raw) if raw < 10**11 else times.unix_millis(raw)
            text = "" if raw is None else str(raw).strip()
            if not text:
                return None
            return times.loose_local_time(text, self.zone)
        except (times.TimeFormatError, ValueError) as exc:
            self.problem(line, column, f"not a time: {raw!r} ({exc})")
            return None

    def check_currencies(self) -> None:
        """Rows of one order must agree on its currency."""
        first: dict[str, str] = {}
        for line, r in zip(self.rows, self.records, strict=True):
            seen = first.setdefault(r.platform_order_id, r.currency)
            if seen != r.currency:
                self.problem(
                    line, "currency", f"order {r.platform_order_id} is {seen} on an earlier row"
                )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _find_header(text: str, chosen: Mapping[Field, str]) -> tuple[str, int, list[str]] | None:
    """The delimiter, line number and cells of the header row, or None."""
    wanted = _key(chosen[Field.ORDER_ID]) if Field.ORDER_ID in chosen else None
    for delimiter in _DELIMITERS:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for cells in _first(reader, HEADER_SEARCH_ROWS):
            keys = [_key(c) for c in cells]
            hit = wanted in keys if wanted else any(_ALIASES.get(k) is Field.ORDER_ID for k in keys)
            if hit and len(cells) > 1:
                return delimiter, reader.line_num, [c.replace("\ufeff", "").strip() for c in cells]
    return None


def _first(reader: Iterator[list[str]], n: int) -> Iterator[list[str]]:
    for i, cells in enumerate(reader):
        if i >= n:
            return
        yield cells


def _positions(header: Sequence[str], chosen: Mapping[Field, str]) -> dict[Field, int]:
    """Which column each field is in: the caller's choice, else the best-known header."""
    keys = [_key(h) for h in header]
    positions: dict[Field, int] = {}
    for f, name in chosen.items():
        if _key(name) in keys:
            positions[f] = keys.index(_key(name))
    for f, names in HEADERS.items():
        if f in positions or f in chosen:
            continue
        for name in names:
            if _key(name) in keys:
                positions[f] = keys.index(_key(name))
                break
    taken = set(chosen)
    # A yuan column and a fen column for the same amount: the caller's, else the yuan one.
    for major, minor in ((Field.PAID, Field.PAID_FEN), (Field.REFUNDED, Field.REFUNDED_FEN)):
        if major in positions and minor in positions:
            positions.pop(major if minor in taken and major not in taken else minor)
    return positions


def _skippable(cells: Sequence[str]) -> bool:
    """Blank rows, ``#`` comments and a 合计/total row carry no order."""
    filled = [c.strip() for c in cells if c.strip()]
    if not filled:
        return True
    if filled[0].startswith("#") and len(filled) == 1:
        return True
    return bool(_TOTAL_ROW.fullmatch(filled[0].strip(":：")))
