"""History import rules: one export row → the unified order, or every reason why not."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import history as h
from adapters.history import Code, Field, OpenOrders, Options
from hub.domain.intake import REVIEW
from hub.domain.orders import AfterSaleType, OrderLine, OrderStatus, PlatformOrder, Recipient
from hub.store.orders import to_json

NOW = datetime(2026, 11, 25, tzinfo=UTC)
OPTIONS = Options(now=NOW)
BEIJING = timezone(timedelta(hours=8))

HEADER = (
    "订单号,平台,店铺,订单状态,下单时间,付款时间,收货人,手机,省,市,区,详细地址,"
    "商家编码,商品名称,数量,单价,运费,实付金额,买家留言"
)


def row(**changes: str) -> str:
    """One data row of HEADER: a delivered Taobao order with one T-shirt line."""
    values = {
        "订单号": "T1",
        "平台": "淘宝",
        "店铺": "tb-1",
        "订单状态": "交易成功",
        "下单时间": "2023-05-01 10:00:00",
        "付款时间": "2023-05-01 10:01:02",
        "收货人": "张伟",
        "手机": "13912345678",
        "省": "广东省",
        "市": "深圳市",
        "区": "南山区",
        "详细地址": "科技园南区深南大道9988号",
        "商家编码": "TEE-01",
        "商品名称": "纯棉T恤",
        "数量": "2",
        "单价": "59.90",
        "运费": "0",
        "实付金额": "119.80",
        "买家留言": "",
    }
    values.update(changes)
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([values[c] for c in HEADER.split(",")])
    return out.getvalue()


def read(text: str, options: Options = OPTIONS) -> list[h.Assembled]:
    """Every order of a CSV text, as the import reads it (the header is row 1)."""
    lines = list(csv.reader(io.StringIO(text)))
    columns = h.columns_of(lines[0])
    rows = [
        h.read_row(h.record_of_cells(n, cells, columns), options)
        for n, cells in enumerate(lines[1:], start=2)
    ]
    return list(h.orders_of(rows, options))


def csv_of(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def only(outcomes: Sequence[h.Assembled]) -> PlatformOrder:
    assert len(outcomes) == 1, outcomes
    order = outcomes[0].order
    assert order is not None, outcomes[0].problems
    return order


def problems(outcomes: Sequence[h.Assembled]) -> set[tuple[int, str, Code]]:
    return {(p.row, p.field, p.code) for a in outcomes for p in a.problems}


# ---------------------------------------------------------------------- columns


def test_chinese_and_english_headers_find_the_same_fields() -> None:
    chinese = h.columns_of(["订单编号", "交易状态", "收件人手机", "商家编码", "实付金额(元)"])
    english = h.columns_of(["Order No", "STATUS", "mobile", "sku", "total_paid"])

    wanted = {Field.ORDER_ID, Field.STATUS, Field.PHONE, Field.SKU, Field.TOTAL_PAID}
    assert set(chinese.positions) == set(english.positions) == wanted
    assert chinese.names[Field.PHONE] == "收件人手机"


def test_unknown_and_second_columns_of_a_field_are_ignored() -> None:
    columns = h.columns_of(["订单号", "买家旺旺", "订单编号", "\ufeff物流单号"])

    assert columns.positions == {Field.ORDER_ID: 0}
    assert columns.ignored == ("买家旺旺", "订单编号", "物流单号")


def test_a_header_without_required_columns_is_refused_before_any_row() -> None:
    columns = h.columns_of(["订单号", "订单状态", "商家编码"])

    missing = h.missing_columns(columns.positions, Options(platform="jd"))

    assert [m.split(" ")[0] for m in missing] == ["quantity", "unit_price", "total_paid", "shop_id"]


# ---------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("raw", "fen"),
    [
        ("12.50", 1250),
        ("¥12.50", 1250),
        ("￥ 1,299.00", 129900),
        ("1,299", 129900),
        ("12.5元", 1250),
        ("RMB 8", 800),
        ('="12.50"', 1250),
        (Decimal("29.9"), 2990),
        (35, 3500),
        ("0", 0),
    ],
)
def test_amounts_are_read_exactly_in_their_common_spellings(raw: object, fen: int) -> None:
    assert h.amount(raw) == fen


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("12,50", "not an amount"),
        ("1.299,00", "not an amount"),
        ("1,29", "not an amount"),
        ("abc", "not an amount"),
        ("-5.00", "negative"),
        ("12.505", "finer than CNY's minor unit"),
        (True, "not an amount"),
        ("NaN", "not an amount"),
    ],
)
def test_amounts_that_are_not_exact_money_are_refused(raw: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        h.amount(raw)


def test_amounts_follow_the_currency_minor_unit() -> None:
    assert h.amount("1200", "JPY") == 1200
    assert h.amount("2.125", "KWD") == 2125
    assert h.amount("1250", "CNY", in_minor=True) == 1250
    with pytest.raises(ValueError, match="finer"):
        h.amount("1200.5", "JPY")


@given(
    fen=st.integers(min_value=0, max_value=10**13),
    symbol=st.sampled_from(["", "¥", "￥", "RMB "]),
    grouped=st.booleans(),
)
def test_any_amount_written_as_an_export_writes_it_reads_back(
    fen: int, symbol: str, grouped: bool
) -> None:
    yuan = Decimal(fen).scaleb(-2)
    text = f"{yuan:,.2f}" if grouped else f"{yuan:.2f}"

    assert h.amount(symbol + text) == fen


@pytest.mark.parametrize(
    ("raw", "kept", "masked"),
    [
        ("13912345678", "13912345678", False),
        ("+86 139-1234-5678", "13912345678", False),
        ("0086 13912345678", "13912345678", False),
        ("8613912345678", "13912345678", False),
        ("139 1234 5678", "13912345678", False),
        (13912345678, "13912345678", False),
        ("010-12345678", "010-12345678", False),
        ("01012345678", "010-12345678", False),
        ("(021) 5432 1098", "021-54321098", False),
        ("0571 8888 6666", "0571-88886666", False),
        ("0571-88886666-123", "0571-88886666-123", False),
        ("010-12345678转8001", "010-12345678-8001", False),
        ("+86 10 12345678", "010-12345678", False),
        ("+1 (415) 555-2671", "+14155552671", False),
        ("139****5678", "139****5678", True),
        ("*******5678", "*******5678", True),
        ("$$F3kQ9mZx2Lw8$$", "$$F3kQ9mZx2Lw8$$", True),
    ],
)
def test_phones_in_the_ways_people_write_them(raw: object, kept: str, masked: bool) -> None:
    assert h.phone(raw) == (kept, masked)


@pytest.mark.parametrize(
    "raw",
    ["1391234567", "139123456789", "12345678", "23912345678", "400-820-8820", "abc", "139*abc"],
)
def test_what_is_not_a_phone_number_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        h.phone(raw)


def test_a_foreign_recipient_may_write_a_national_number() -> None:
    assert h.phone("415-555-2672", foreign=True) == ("4155552672", False)
    with pytest.raises(ValueError):
        h.phone("415-555-2672")


@given(
    number=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    prefix=st.sampled_from(["", "+86 ", "+86", "0086 ", "86"]),
    separator=st.sampled_from(["", " ", "-"]),
)
def test_any_mainland_mobile_becomes_its_11_digits(
    number: str, prefix: str, separator: str
) -> None:
    written = prefix + separator.join([number[:3], number[3:7], number[7:]])

    assert h.phone(written) == (number, False)


@pytest.mark.parametrize(
    ("raw", "utc"),
    [
        ("2024-05-18 10:21:07", datetime(2024, 5, 18, 2, 21, 7, tzinfo=UTC)),
        ("2024/5/18 10:21", datetime(2024, 5, 18, 2, 21, tzinfo=UTC)),
        ("2024年5月18日 10:21:07", datetime(2024, 5, 18, 2, 21, 7, tzinfo=UTC)),
        ("2024-05-18T10:21:07-05:00", datetime(2024, 5, 18, 15, 21, 7, tzinfo=UTC)),
        ("2024-05-18T02:21:07Z", datetime(2024, 5, 18, 2, 21, 7, tzinfo=UTC)),
        ("2024-05-18", datetime(2024, 5, 17, 16, 0, tzinfo=UTC)),
        (1716000000, datetime(2024, 5, 18, 2, 40, tzinfo=UTC)),
        ("1716000000000", datetime(2024, 5, 18, 2, 40, tzinfo=UTC)),
        ("", None),
        ("0001-01-01 00:00:00", None),
    ],
)
def test_times_with_an_offset_keep_it_and_naive_ones_are_beijing(
    raw: object, utc: datetime | None
) -> None:
    assert h.moment(raw, OPTIONS) == utc


def test_naive_times_follow_the_import_zone() -> None:
    options = Options(zone=ZoneInfo("America/New_York"))

    assert h.moment("2024-07-01 12:00:00", options) == datetime(2024, 7, 1, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("2023-02-30 11:02:00", "day is out of range"),
        ("2024-13-01 00:00:00", "month must be in 1..12"),
        ("18/05/2024", "not a time"),
        ("昨天", "not a time"),
        ("2099-01-01 00:00:00", "in the future"),
    ],
)
def test_bad_dates_are_refused_saying_why(raw: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        h.moment(raw, OPTIONS)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("交易成功", OrderStatus.DELIVERED),
        ("已签收", OrderStatus.DELIVERED),
        ("已发货", OrderStatus.SHIPPED),
        ("WAIT_BUYER_CONFIRM_GOODS", OrderStatus.SHIPPED),
        ("trade_closed", OrderStatus.CLOSED),
        ("TRADE_CLOSED_BY_TAOBAO", OrderStatus.CANCELLED),
        ("已取消", OrderStatus.CANCELLED),
        ("等待卖家发货", OrderStatus.PAID),
        ("fulfilled", OrderStatus.SHIPPED),
        ("火星", None),
    ],
)
def test_export_status_words(word: str, status: OrderStatus | None) -> None:
    assert h.status_of(word) is status


# ---------------------------------------------------------------------- rows and orders


def test_a_delivered_order_reads_into_the_unified_order() -> None:
    order = only(read(csv_of(row(手机="+86 139-1234-5678", 单价="¥59.90"))))

    assert order == PlatformOrder(
        platform="taobao",
        shop_id="tb-1",
        platform_order_id="T1",
        platform_status="交易成功",
        status=OrderStatus.DELIVERED,
        after_sale_type=AfterSaleType.NONE,
        buyer_note="",
        seller_note="",
        recipient=Recipient(
            name="张伟",
            phone="13912345678",
            province="广东省",
            city="深圳市",
            district="南山区",
            address="科技园南区深南大道9988号",
        ),
        lines=(OrderLine("", "TEE-01", "纯棉T恤", 2, 5990, 11980),),
        shipping_fee_fen=0,
        total_paid_fen=11980,
        currency="CNY",
        created_at=datetime(2023, 5, 1, 2, 0, tzinfo=UTC),
        paid_at=datetime(2023, 5, 1, 2, 1, 2, tzinfo=UTC),
        updated_at=datetime(2023, 5, 1, 2, 1, 2, tzinfo=UTC),
    )


def test_every_problem_of_a_row_is_reported_with_its_row_and_column() -> None:
    outcomes = read(
        csv_of(row(), row(订单号="T2", 手机="1391234567", 付款时间="2023-02-30 11:00", 单价="abc"))
    )

    assert outcomes[0].order is not None
    assert outcomes[1].order is None
    assert problems(outcomes[1:]) == {
        (3, "手机", Code.INVALID),
        (3, "付款时间", Code.INVALID),
        (3, "单价", Code.INVALID),
    }


def test_missing_required_fields_are_reported() -> None:
    outcomes = read(
        csv_of(
            row(订单号=""),
            row(订单号="T2", 收货人=""),
            row(订单号="T3", 付款时间=""),
            row(订单号="T4", 实付金额=""),
            row(订单号="T5", 商家编码=""),
            row(订单号="T6", 平台=""),
        )
    )

    assert all(a.rejected for a in outcomes)
    assert problems(outcomes) == {
        (2, "订单号", Code.MISSING),
        (3, "收货人", Code.MISSING),
        (4, "付款时间", Code.MISSING),
        (5, "实付金额", Code.MISSING),
        (6, "商家编码", Code.MISSING),
        (7, "平台", Code.MISSING),
    }


def test_a_platform_and_shop_of_the_command_line_fill_rows_without_them() -> None:
    text = "订单号,订单状态,付款时间,商家编码,数量,单价,实付金额\n"
    text += "JD1,已取消,2023-05-01 10:00,X,1,5,5\n"

    order = only(read(text, Options(platform="jd", shop_id="jd-1", now=NOW)))

    assert (order.platform, order.shop_id, order.status) == ("jd", "jd-1", OrderStatus.CANCELLED)


def test_rows_of_one_order_are_grouped_wherever_they_are_in_the_file() -> None:
    outcomes = read(
        csv_of(
            row(商家编码="MUG-03", 数量="1", 单价="1,299.00", 运费="10", 实付金额="1,329.00"),
            row(订单号="T2"),
            row(商家编码="TEE-01", 数量="1", 单价="20", 运费="10", 实付金额="1,329.00"),
        )
    )

    first = outcomes[0]
    assert first.rows == (2, 4)
    assert first.order is not None
    assert [(ln.platform_sku_id, ln.paid_fen) for ln in first.order.lines] == [
        ("MUG-03", 129900),
        ("TEE-01", 2000),
    ]
    assert first.order.total_paid_fen == 132900


def test_order_values_given_once_apply_to_its_other_rows() -> None:
    outcomes = read(
        csv_of(
            row(商家编码="", 数量="", 单价="", 商品名称="", 实付金额="80.00"),
            row(收货人="", 手机="", 实付金额="", 商家编码="A", 数量="1", 单价="50"),
            row(收货人="", 手机="", 实付金额="", 商家编码="B", 数量="1", 单价="30"),
        )
    )

    order = only(outcomes)
    assert [ln.platform_sku_id for ln in order.lines] == ["A", "B"]
    assert order.recipient.name == "张伟"


def test_the_same_order_twice_identical_is_counted_once() -> None:
    outcomes = read(csv_of(row(), row(订单号="T2"), row()))

    assert [a.rows for a in outcomes] == [(2,), (3,)]
    assert outcomes[0].repeated == (4,)
    assert len(only(outcomes[:1]).lines) == 1


def test_the_same_order_twice_with_different_content_is_rejected_whole() -> None:
    outcomes = read(csv_of(row(), row(订单状态="已关闭")))

    assert outcomes[0].rejected
    assert problems(outcomes) == {(2, "", Code.WITH_ORDER), (3, "订单状态", Code.CONFLICT)}
    reason = next(p.reason for p in outcomes[0].problems if p.code is Code.CONFLICT)
    assert "'CLOSED' here, but 'DELIVERED' on row 2" in reason


def test_one_bad_line_rejects_the_whole_order() -> None:
    outcomes = read(
        csv_of(
            row(商家编码="A", 数量="1", 单价="50", 实付金额="80"),
            row(商家编码="B", 数量="0", 单价="30", 实付金额="80"),
        )
    )

    assert outcomes[0].rejected
    assert problems(outcomes) == {(2, "", Code.WITH_ORDER), (3, "数量", Code.NEGATIVE)}


def test_a_line_given_twice_under_one_line_id_must_agree() -> None:
    text = (
        "订单号,平台,店铺,订单状态,付款时间,子订单号,商家编码,数量,单价,实付金额\n"
        "T1,jd,s,已取消,2023-05-01 10:00,L1,A,1,5,10\n"
        "T1,jd,s,已取消,2023-05-01 10:00,L2,B,1,5,10\n"
        "T1,jd,s,已取消,2023-05-01 10:00,L1,A,2,5,10\n"
    )

    outcomes = read(text)

    assert (4, "子订单号", Code.CONFLICT) in problems(outcomes)


# ---------------------------------------------------------------------- totals


def test_lines_that_say_what_was_paid_must_add_up_to_the_total() -> None:
    header = "订单号,平台,店铺,订单状态,付款时间,商家编码,数量,单价,子订单实付金额,运费,实付金额\n"
    good = "T1,jd,s,已取消,2023-05-01 10:00,A,1,50,45,5,50\n"
    bad = "T2,jd,s,已取消,2023-05-01 10:00,A,1,50,45,5,55\n"
    mixed = "T3,jd,s,已取消,2023-05-01 10:00,A,1,50,45,0,50\n"
    mixed += "T3,jd,s,已取消,2023-05-01 10:00,B,1,5,,0,50\n"

    outcomes = read(header + good + bad + mixed)

    assert [ln.paid_fen for ln in only(outcomes[:1]).lines] == [4500]
    assert problems(outcomes[1:]) == {
        (3, "实付金额", Code.TOTALS),
        (4, "子订单实付金额", Code.TOTALS),
        (5, "", Code.WITH_ORDER),
    }


def test_without_line_amounts_the_goods_paid_are_split_by_list_value() -> None:
    outcomes = read(
        csv_of(
            row(商家编码="A", 数量="3", 单价="35", 运费="8", 实付金额="100"),
            row(商家编码="B", 数量="1", 单价="10", 运费="8", 实付金额="100"),
        )
    )

    order = only(outcomes)
    assert [ln.paid_fen for ln in order.lines] == [8400, 800]  # 92.00 split 105:10
    assert sum(ln.paid_fen for ln in order.lines) + order.shipping_fee_fen == 10000


def test_a_total_beyond_the_list_price_is_refused_as_likely_fen() -> None:
    outcomes = read(csv_of(row(数量="1", 单价="59.90", 实付金额="5990")))

    assert problems(outcomes) == {(2, "实付金额", Code.TOTALS)}
    assert "an amount in fen in a yuan column?" in outcomes[0].problems[0].reason


def test_a_cancelled_order_that_was_never_paid_may_show_nothing_paid() -> None:
    cancelled = row(订单状态="已取消", 付款时间="", 运费="10", 实付金额="0", 手机="")

    order = only(read(csv_of(cancelled)))

    assert (order.total_paid_fen, order.paid_at, order.lines[0].paid_fen) == (0, None, 0)


@given(
    prices=st.lists(st.integers(0, 10**7), min_size=1, max_size=6),
    quantities=st.lists(st.integers(1, 50), min_size=6, max_size=6),
    shipping=st.integers(0, 5000),
    discount=st.integers(0, 10**6),
)
def test_split_lines_always_add_up_to_what_was_paid(
    prices: list[int], quantities: list[int], shipping: int, discount: int
) -> None:
    listed = sum(p * q for p, q in zip(prices, quantities, strict=False))
    total = max(listed + shipping - discount, shipping)
    rows = [
        row(
            商家编码=f"S{i}",
            数量=str(quantities[i]),
            单价=f"{Decimal(p).scaleb(-2):.2f}",
            运费=f"{Decimal(shipping).scaleb(-2):.2f}",
            实付金额=f"{Decimal(total).scaleb(-2):.2f}",
        )
        for i, p in enumerate(prices)
    ]

    order = only(read(csv_of(*rows)))

    assert sum(ln.paid_fen for ln in order.lines) + order.shipping_fee_fen == total
    assert all(ln.paid_fen >= 0 for ln in order.lines)


# ---------------------------------------------------------------------- order rules


def test_open_orders_are_rejected_or_taken_to_review_holding_nothing() -> None:
    open_row = row(订单状态="等待卖家发货")

    rejected = read(csv_of(open_row))
    review = read(csv_of(open_row), Options(open_orders=OpenOrders.REVIEW, now=NOW))

    assert problems(rejected) == {(2, "订单状态", Code.OPEN_ORDER)}
    assert only(review).status is OrderStatus.PAID
    assert review[0].placement.queue == REVIEW
    assert review[0].placement.reasons[0].startswith(h.IMPORTED_OPEN)


def test_finished_orders_wait_in_no_queue_and_carry_the_imported_tag() -> None:
    text = "订单号,平台,店铺,订单状态,付款时间,收货人,手机,省,详细地址,"
    text += "商家编码,数量,单价,实付金额,标签,买家留言\n"
    text += "T1,jd,s,已发货,2023-05-01 10:00,李娜,010-62345678,北京,建国路88号,"
    text += "A,1,5,5,vip、老客户,加急\n"

    outcome = read(text)[0]

    assert outcome.placement.queue == ""
    assert outcome.tags == ("imported", "vip", "老客户", "urgent")
    assert outcome.order is not None and outcome.order.recipient.city == "北京市"


def test_masked_recipients_are_kept_and_marked_protected() -> None:
    order = only(read(csv_of(row(手机="138****0000", 收货人="张**"))))

    assert order.recipient.phone == "138****0000"
    assert order.recipient.name == "张**"
    assert order.recipient.pii_protected


def test_an_unknown_province_and_paid_before_created_are_refused() -> None:
    outcomes = read(
        csv_of(
            row(省="火星省"),
            row(订单号="T2", 下单时间="2023-05-02 10:00:00", 付款时间="2023-05-01 10:00:00"),
        )
    )

    assert problems(outcomes) == {(2, "省", Code.INVALID), (3, "付款时间", Code.INVALID)}


def test_a_spreadsheet_rounded_order_id_is_refused() -> None:
    outcomes = read(csv_of(row(订单号="2.40518E+17")))

    assert problems(outcomes) == {(2, "订单号", Code.INVALID)}


def test_nested_json_orders_and_the_hubs_own_documents_read_back() -> None:
    stored = PlatformOrder(
        platform="douyin",
        shop_id="dy-1",
        platform_order_id="6920000000000000001",
        platform_status="已完成",
        status=OrderStatus.DELIVERED,
        after_sale_type=AfterSaleType.NONE,
        buyer_note="",
        seller_note="",
        recipient=Recipient(
            name="张**",
            phone="$$ENC$$",
            province="广东省",
            city="深圳市",
            address="##Yt6ZzM1c2R8p##",
            pii_protected=True,
            street="粤海街道",
        ),
        lines=(OrderLine("1", "TEE-01", "T恤", 2, 5990, 11000),),
        shipping_fee_fen=500,
        total_paid_fen=11500,
        currency="CNY",
        created_at=datetime(2024, 3, 1, 2, tzinfo=UTC),
        paid_at=datetime(2024, 3, 1, 2, 1, tzinfo=UTC),
        updated_at=datetime(2024, 3, 2, tzinfo=UTC),
    )
    document = json.loads(to_json(stored), parse_float=Decimal)
    record, ignored = h.record_of_object(1, document)

    outcomes = list(h.orders_of([h.read_row(record, OPTIONS)], OPTIONS))

    assert only(outcomes) == stored
    assert "after_sale_type" in ignored


def test_a_json_element_that_is_not_an_order_is_reported_alone() -> None:
    bad = h.Record(3, {}, problems=(h.Problem(3, "", "not a JSON object"),))

    outcomes = list(h.orders_of([h.read_row(bad, OPTIONS)], OPTIONS))

    assert [(p.row, p.reason) for p in outcomes[0].problems] == [(3, "not a JSON object")]


# ---------------------------------------------------------------------- round trip

ENGLISH = (
    "order_id,platform,shop_id,status,created_at,paid_at,recipient_name,phone,province,"
    "city,address,line_id,sku,title,quantity,unit_price,line_paid,shipping_fee,total_paid"
)

finished = st.sampled_from(
    [OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CLOSED, OrderStatus.CANCELLED]
)
lines = st.lists(
    st.tuples(
        st.from_regex(r"[A-Z]{2,4}-[0-9]{2}", fullmatch=True),
        st.text(alphabet="纯棉T恤杯子充电宝 黑白", min_size=1, max_size=8).map(str.strip),
        st.integers(1, 20),
        st.integers(0, 10**7),
        st.integers(0, 100),  # discount in percent
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60)
@given(
    orders=st.lists(
        st.tuples(finished, lines, st.integers(0, 2000), st.integers(0, 10**6)),
        min_size=1,
        max_size=6,
    ),
    shuffle=st.randoms(use_true_random=False),
)
def test_any_export_of_valid_orders_reads_back_exactly(
    orders: list[tuple[OrderStatus, list[tuple[str, str, int, int, int]], int, int]],
    shuffle: object,
) -> None:
    """Orders written one row per line, rows shuffled, read back to the same orders."""
    expected: dict[str, PlatformOrder] = {}
    rows: list[list[str]] = []
    for n, (status, items, shipping, offset) in enumerate(orders):
        order_id = f"HX{n:04}"
        paid = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
        order_lines = tuple(
            OrderLine(str(i + 1), sku, title, qty, price, price * qty * (100 - off) // 100)
            for i, (sku, title, qty, price, off) in enumerate(items)
        )
        total = sum(ln.paid_fen for ln in order_lines) + shipping
        expected[order_id] = PlatformOrder(
            platform="pdd",
            shop_id="pdd-1",
            platform_order_id=order_id,
            platform_status=status.value,
            status=status,
            after_sale_type=AfterSaleType.NONE,
            buyer_note="",
            seller_note="",
            recipient=Recipient("王芳", "13912345678", "浙江省", "杭州市", "", "文三路478号"),
            lines=order_lines,
            shipping_fee_fen=shipping,
            total_paid_fen=total,
            currency="CNY",
            created_at=paid,
            paid_at=paid,
            updated_at=paid,
        )
        local = paid.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        for ln in order_lines:
            rows.append(
                [
                    order_id, "pdd", "pdd-1", status.value, local, local, "王芳", "13912345678",
                    "浙江省", "杭州市", "文三路478号", ln.platform_line_id, ln.platform_sku_id,
                    ln.title, str(ln.quantity), f"{Decimal(ln.unit_price_fen).scaleb(-2):,.2f}",
                    f"{Decimal(ln.paid_fen).scaleb(-2):.2f}",
                    f"{Decimal(shipping).scaleb(-2):.2f}", f"¥{Decimal(total).scaleb(-2):.2f}",
                ]
            )  # fmt: skip
    shuffle.shuffle(rows)  # type: ignore[attr-defined]
    out = io.StringIO()
    csv.writer(out).writerows([ENGLISH.split(","), *rows])

    outcomes = read(out.getvalue())

    assert all(not a.rejected for a in outcomes), [a.problems for a in outcomes]
    got = {a.order.platform_order_id: a.order for a in outcomes if a.order is not None}
    assert got.keys() == expected.keys()
    for order_id, order in got.items():
        want = expected[order_id]
        by_line = sorted(order.lines, key=lambda ln: ln.platform_line_id)
        assert order == PlatformOrder(
            **{**{f: getattr(want, f) for f in want.__dataclass_fields__}, "lines": order.lines}
        )
        assert tuple(by_line) == want.lines
