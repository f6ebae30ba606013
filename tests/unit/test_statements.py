"""Reading uploaded platform statements: encodings, headers, spreadsheet habits, bad rows."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime

import pytest

from adapters.statements import (
    Field,
    StatementError,
    StatementFormat,
    guess_format,
    parse_statement,
)
from hub.domain.orders import AfterSaleType, OrderStatus
from hub.domain.reconcile import PlatformRecord

DOUYIN_EXPORT = (
    "主订单编号,实付金额(元),退款金额(元),售后类型,订单状态,支付时间\n"
    "6920000000000000001,99.00,19.90,仅退款,已完成,2024-05-08 09:05:07\n"
    "6920000000000000002,129.50,,,已发货,2024-05-09 10:00:00\n"
)


def test_a_utf8_statement_with_a_bom_is_read() -> None:
    statement = parse_statement(codecs.BOM_UTF8 + DOUYIN_EXPORT.encode())

    first, second = statement.records
    assert first == PlatformRecord(
        "6920000000000000001",
        9900,
        1990,
        AfterSaleType.REFUND_ONLY,
        OrderStatus.DELIVERED,
        datetime(2024, 5, 8, 1, 5, 7, tzinfo=UTC),  # Beijing time
        "CNY",
    )
    assert (second.paid_fen, second.refunded_fen, second.status) == (
        12950,
        0,
        OrderStatus.SHIPPED,
    )
    assert statement.columns[Field.ORDER_ID] == "主订单编号"
    assert statement.format is StatementFormat.CSV


def test_a_gb18030_statement_reads_the_same_as_utf8() -> None:
    plain = parse_statement(DOUYIN_EXPORT.encode())

    assert parse_statement(DOUYIN_EXPORT.encode("gb18030")).records == plain.records


def test_an_excel_unicode_text_export_is_read() -> None:
    text = DOUYIN_EXPORT.replace(",", "\t")

    statement = parse_statement(text.encode("utf-16"))

    assert [r.paid_fen for r in statement.records] == [9900, 12950]


def test_spreadsheet_habits_are_undone() -> None:
    text = (
        "店铺:旗舰店\n"
        "导出时间:2024-06-01 08:00\n"
        "\n"
        "订单号,实付金额,退款金额,付款时间\n"
        '="240518000000000001","¥1,299.00",-19.90,2024/5/8 9:05\n'
        "'240518000000000002,29.9,--,2024-05-09\n"
        "# 以下为汇总\n"
        "合计,1328.90,19.90,\n"
    )

    records = parse_statement(text.encode()).records

    assert [(r.platform_order_id, r.paid_fen, r.refunded_fen) for r in records] == [
        ("240518000000000001", 129900, 1990),
        ("240518000000000002", 2990, 0),
    ]
    assert records[0].occurred_at == datetime(2024, 5, 8, 1, 5, tzinfo=UTC)
    assert records[1].occurred_at == datetime(2024, 5, 8, 16, 0, tzinfo=UTC)


def test_english_headers_and_fen_columns_are_read() -> None:
    text = (
        "Order ID,Paid_Fen,Refund,After-sale type,Status,Currency\n1001,2990,1.00,REFUND,paid,usd\n"
    )

    (got,) = parse_statement(text.encode()).records

    assert (got.paid_fen, got.refunded_fen, got.after_sale_type, got.status, got.currency) == (
        2990,
        100,
        AfterSaleType.REFUND_ONLY,
        OrderStatus.PAID,
        "USD",
    )


def test_a_column_mapping_picks_the_header_to_read() -> None:
    text = "单号,应付,实收\nA1,100.00,88.00\n"

    (got,) = parse_statement(
        text.encode(), columns={"platform_order_id": "单号", "paid": "实收"}
    ).records

    assert (got.platform_order_id, got.paid_fen) == ("A1", 8800)


def test_a_bad_row_names_its_row_and_column_and_nothing_is_returned() -> None:
    text = (
        "订单号,实付金额,售后类型\n"
        "A1,10.00,仅退款\n"
        "A2,ten yuan,无\n"
        "A3,5.00,退一半\n"
        "A4,,无\n"
    )  # fmt: skip

    with pytest.raises(StatementError) as caught:
        parse_statement(text.encode())

    err = caught.value
    assert (err.row, err.column) == (3, "实付金额")
    assert str(err).startswith("row 3, column '实付金额': not an amount: 'ten yuan'")
    assert [(p.row, p.column) for p in err.problems] == [
        (3, "实付金额"),
        (4, "售后类型"),
        (5, "实付金额"),
    ]
    assert "and 2 more problems" in str(err)


def test_a_statement_without_a_paid_column_is_refused() -> None:
    with pytest.raises(StatementError, match="no paid amount column"):
        parse_statement("订单号,商品名称\nA1,T恤\n".encode())


def test_a_statement_without_an_order_number_column_is_refused() -> None:
    with pytest.raises(StatementError, match="no header row with an order number column"):
        parse_statement("商品名称,实付金额\nT恤,1.00\n".encode())


def test_an_order_number_a_spreadsheet_rounded_is_refused() -> None:
    with pytest.raises(StatementError, match="scientific notation") as caught:
        parse_statement("订单号,实付金额\n6.92E+18,1.00\n".encode())

    assert (caught.value.row, caught.value.column) == (2, "订单号")


def test_an_amount_with_a_decimal_comma_is_refused_not_guessed() -> None:
    with pytest.raises(StatementError, match="not an amount"):
        parse_statement('订单号,实付金额\nA1,"29,90"\n'.encode())


def test_rows_of_one_order_in_two_currencies_are_refused() -> None:
    text = "订单号,实付金额,币种\nA1,1.00,CNY\nA1,2.00,USD\n"

    with pytest.raises(StatementError) as caught:
        parse_statement(text.encode())

    assert (caught.value.row, caught.value.column) == (3, "currency")


def test_json_lines_are_read_with_exact_decimals() -> None:
    data = (
        b'{"order_id": "J1", "paid": 29.9, "refund_amount_fen": 990, '
        b'"after_sale_type": "REFUND_ONLY", "status": "DELIVERED", "paid_at": 1715130307}\n'
        b"\n"
        b'{"order_id": 42, "paid": "0.10"}\n'
    )

    statement = parse_statement(data)

    assert statement.format is StatementFormat.JSONL
    first, second = statement.records
    assert (first.paid_fen, first.refunded_fen, first.after_sale_type) == (
        2990,
        990,
        AfterSaleType.REFUND_ONLY,
    )
    assert first.occurred_at == datetime(2024, 5, 8, 1, 5, 7, tzinfo=UTC)
    assert (second.platform_order_id, second.paid_fen) == ("42", 10)


def test_a_bad_json_line_names_its_line() -> None:
    data = b'{"order_id": "J1", "paid": 1}\n{"order_id": "J2", "paid": 1,}\n["J3"]\n'

    with pytest.raises(StatementError) as caught:
        parse_statement(data, StatementFormat.JSONL)

    assert [p.row for p in caught.value.problems] == [2, 3]


def test_the_format_is_guessed_from_the_first_character() -> None:
    assert guess_format(codecs.BOM_UTF8 + b'  {"a": 1}') is StatementFormat.JSONL
    assert guess_format("订单号,实付金额".encode()) is StatementFormat.CSV


def test_an_unknown_field_in_the_column_mapping_is_refused() -> None:
    with pytest.raises(StatementError, match="unknown field 'amount'"):
        parse_statement(DOUYIN_EXPORT.encode(), columns={"amount": "实付金额(元)"})
