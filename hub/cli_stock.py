"""`orderhub stock`: the live inventory map of a running hub, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

import grpc

from hub.cli_token import hub_channel
from hub.tables import format_table
from orderhub.v1 import stock_pb2, stock_pb2_grpc

DEADLINE_S = 10.0

# name on the command line → (proto value, column header, row field)
DIMENSIONS: dict[str, tuple[stock_pb2.InventoryMapDimension.ValueType, str, str]] = {
    "province": (stock_pb2.INVENTORY_MAP_DIMENSION_PROVINCE, "province", "province"),
    "city": (stock_pb2.INVENTORY_MAP_DIMENSION_CITY, "city", "city"),
    "warehouse": (stock_pb2.INVENTORY_MAP_DIMENSION_WAREHOUSE, "warehouse", "warehouse_id"),
    "category": (stock_pb2.INVENTORY_MAP_DIMENSION_CATEGORY, "category", "category"),
    "sku": (stock_pb2.INVENTORY_MAP_DIMENSION_SKU, "sku", "sku"),
}
DEFAULT_BY = ("province", "city")  # what the hub groups by when asked for nothing
NUMBERS = (
    ("on_hand", "on_hand"),
    ("reserved", "reserved"),
    ("safety", "safety_stock"),
    ("available", "available"),
    ("SKUs", "sku_count"),
    ("warehouses", "warehouse_count"),
    ("out-of-stock", "out_of_stock_skus"),
)


def request_for(
    by: Sequence[str],
    *,
    province: str = "",
    city: str = "",
    category: str = "",
    warehouses: Sequence[str] = (),
    skus: Sequence[str] = (),
    limit: int = 0,
) -> stock_pb2.GetInventoryMapRequest:
    """The GetInventoryMap request for the command line's choices."""
    return stock_pb2.GetInventoryMapRequest(
        group_by=[DIMENSIONS[name][0] for name in by],
        province=province,
        city=city,
        category=category,
        warehouse_ids=list(warehouses),
        skus=list(skus),
        limit=limit,
    )


def render_table(response: stock_pb2.GetInventoryMapResponse, by: Sequence[str]) -> str:
    """The map as an aligned table: the grouping keys, the numbers, a TOTAL line, the time."""
    names = list(dict.fromkeys(by)) or list(DEFAULT_BY)
    keys = [DIMENSIONS[n] for n in names]
    headers = [header for _, header, _ in keys] + [header for header, _ in NUMBERS]

    def numbers(row: stock_pb2.InventoryMapRow) -> list[str]:
        return [f"{getattr(row, field):,}" for _, field in NUMBERS]

    rows = [
        [getattr(row, field) or "-" for _, _, field in keys] + numbers(row) for row in response.rows
    ]
    footer = ["TOTAL"] + [""] * (len(keys) - 1) + numbers(response.total)
    table = format_table(headers, rows, numeric=range(len(keys), len(headers)), footer=footer)
    as_of = response.as_of.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
    note = f"as of {as_of}; {len(response.rows)} rows"
    if response.truncated:
        note += " (more groups matched: narrow the filters or raise --limit)"
    return f"{table}\n{note}"


def render_json(response: stock_pb2.GetInventoryMapResponse, by: Sequence[str]) -> str:
    """The map as JSON: numbers as numbers, only the grouping keys on each row."""
    names = list(dict.fromkeys(by)) or list(DEFAULT_BY)

    def row(r: stock_pb2.InventoryMapRow, keyed: bool) -> dict[str, object]:
        out: dict[str, object] = {}
        if keyed:
            out.update({DIMENSIONS[n][2]: getattr(r, DIMENSIONS[n][2]) for n in names})
        out.update({field: getattr(r, field) for _, field in NUMBERS})
        return out

    document = {
        "as_of": response.as_of.ToJsonString(),
        "group_by": names,
        "rows": [row(r, True) for r in response.rows],
        "total": row(response.total, False),
        "truncated": response.truncated,
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def describe(err: grpc.RpcError, addr: str) -> str:
    """One line saying why a call to the hub failed."""
    if not isinstance(err, grpc.Call):
        return f"the call to the hub at {addr} failed: {err}"
    code, details = err.code(), " ".join((err.details() or "").split())
    if code is grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the hub at {addr}: {details}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the hub at {addr} did not answer within {DEADLINE_S:g} s"
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"the hub at {addr} wants a valid token: {details} (pass --token, set "
            "ORDERHUB_TOKEN, or run where orderhub up keeps its data directory)"
        )
    return f"the hub at {addr} refused: {code.name}: {details}"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Ask the hub at ``args.addr`` for the map and print it; 1 when the call fails."""
    out = out or sys.stdout
    by = list(args.by or ())
    request = request_for(
        by,
        province=args.province or "",
        city=args.city or "",
        category=args.category or "",
        warehouses=args.warehouse or (),
        skus=args.sku or (),
        limit=args.limit or 0,
    )
    try:
        with hub_channel(args) as channel:
            response = stock_pb2_grpc.StockServiceStub(channel).GetInventoryMap(
                request, timeout=DEADLINE_S
            )
    except grpc.RpcError as err:
        print(f"orderhub stock: {describe(err, args.addr)}", file=sys.stderr)
        return 1
    render = render_json if args.format == "json" else render_table
    try:
        print(render(response, by), file=out, flush=True)
    except BrokenPipeError:
        # `orderhub stock | head`: the reader has gone, which is no error; keep the
        # interpreter's final flush from complaining about it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return 0
