"""The text table formatter and the `orderhub stock` rendering: pure functions, no hub."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub.cli import build_parser
from hub.cli_stock import render_json, render_table, request_for
from hub.tables import display_width, format_table, pad
from orderhub.v1 import stock_pb2


def test_wide_characters_take_two_columns() -> None:
    assert display_width("abc") == 3
    assert display_width("广东省") == 6
    assert display_width("\uff21\uff22") == 4  # full-width Latin A, B
    assert display_width("e\u0301") == 1  # e + combining acute accent
    assert pad("上海市", 8) == "上海市  "
    assert pad("42", 5, right=True) == "   42"
    assert pad("too long", 3) == "too long"


def test_columns_line_up_with_chinese_text() -> None:
    table = format_table(
        ["province", "available"],
        [["广东省", "1,234"], ["上海市", "5"], ["Tibet", "0"]],
        numeric=[1],
        footer=["TOTAL", "1,239"],
    )
    lines = table.splitlines()
    assert lines == [
        "province  available",
        "--------  ---------",
        "广东省        1,234",
        "上海市            5",
        "Tibet             0",
        "--------  ---------",
        "TOTAL         1,239",
    ]
    # Every line ends at the same display column: the numbers are right-aligned.
    assert {display_width(line) for line in lines} == {19}


def test_a_wide_cell_widens_its_column_and_no_line_has_trailing_spaces() -> None:
    table = format_table(["k", "city", "n"], [["a", "乌鲁木齐市", "1"], ["b", "", "22"]])
    lines = table.splitlines()
    assert lines[0] == "k  city        n"
    assert lines[2] == "a  乌鲁木齐市  1"
    assert lines[3] == "b              22"
    assert all(line == line.rstrip() for line in lines)


def test_rows_must_match_the_headers() -> None:
    with pytest.raises(ValueError, match="one cell per header"):
        format_table(["a", "b"], [["only one"]])


def response() -> stock_pb2.GetInventoryMapResponse:
    as_of = datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    answer = stock_pb2.GetInventoryMapResponse(
        rows=[
            stock_pb2.InventoryMapRow(
                province="上海市",
                category="apparel",
                on_hand=1200,
                reserved=30,
                safety_stock=20,
                available=1150,
                sku_count=12,
                warehouse_count=1,
                out_of_stock_skus=0,
            ),
            stock_pb2.InventoryMapRow(
                province="广东省",
                category="",
                on_hand=7,
                reserved=0,
                safety_stock=10,
                available=0,
                sku_count=1,
                warehouse_count=2,
                out_of_stock_skus=1,
            ),
        ],
        total=stock_pb2.InventoryMapRow(
            on_hand=1207,
            reserved=30,
            safety_stock=30,
            available=1150,
            sku_count=13,
            warehouse_count=3,
            out_of_stock_skus=1,
        ),
    )
    answer.as_of.FromDatetime(as_of)
    return answer


def test_the_stock_table_has_key_columns_numbers_and_a_total() -> None:
    text = render_table(response(), ["province", "category"])
    lines = text.splitlines()
    assert lines[0].split() == [
        "province",
        "category",
        "on_hand",
        "reserved",
        "safety",
        "available",
        "SKUs",
        "warehouses",
        "out-of-stock",
    ]
    assert lines[2].split() == ["上海市", "apparel", "1,200", "30", "20", "1,150", "12", "1", "0"]
    # An empty key shows as "-" so the columns still read.
    assert lines[3].split() == ["广东省", "-", "7", "0", "10", "0", "1", "2", "1"]
    assert lines[5].split() == ["TOTAL", "1,207", "30", "30", "1,150", "13", "3", "1"]
    assert lines[6] == "as of 2026-11-24 09:30:05 UTC; 2 rows"
    # Header, rows and total all end at the same column.
    assert len({display_width(line) for line in lines[:6]}) == 1


def test_a_truncated_map_says_so() -> None:
    answer = response()
    answer.truncated = True
    assert "raise --limit" in render_table(answer, ["province", "category"]).splitlines()[-1]


def test_the_json_output_keeps_numbers_and_only_the_grouping_keys() -> None:
    document = json.loads(render_json(response(), ["province", "category"]))
    assert document["as_of"] == "2026-11-24T09:30:05Z"
    assert document["group_by"] == ["province", "category"]
    assert document["rows"][0] == {
        "province": "上海市",
        "category": "apparel",
        "on_hand": 1200,
        "reserved": 30,
        "safety_stock": 20,
        "available": 1150,
        "sku_count": 12,
        "warehouse_count": 1,
        "out_of_stock_skus": 0,
    }
    assert "province" not in document["total"] and document["total"]["on_hand"] == 1207


def test_the_command_line_becomes_a_request() -> None:
    args = build_parser().parse_args(
        [
            "stock",
            "--by",
            "Province, sku",
            "--warehouse",
            "W1",
            "--warehouse",
            "W2",
            "--sku",
            "TEE",
            "--city",
            "广州市",
        ]
    )
    assert args.by == ["province", "sku"]
    request = request_for(args.by, city=args.city, warehouses=args.warehouse, skus=args.sku)
    assert list(request.group_by) == [
        stock_pb2.INVENTORY_MAP_DIMENSION_PROVINCE,
        stock_pb2.INVENTORY_MAP_DIMENSION_SKU,
    ]
    assert list(request.warehouse_ids) == ["W1", "W2"] and list(request.skus) == ["TEE"]
    assert request.city == "广州市" and request.province == ""


def test_an_unknown_dimension_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["stock", "--by", "province,planet"])
    assert exited.value.code == 2
    assert "choose from province,city,warehouse,category,sku" in capsys.readouterr().err
