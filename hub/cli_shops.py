"""`orderhub shops`: the shops a running hub knows, and where pulling their orders stands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from hub.cli_stock import DEADLINE_S, describe
from hub.cli_token import hub_channel
from hub.tables import format_table
from orderhub.v1 import order_pb2, order_pb2_grpc


def _when(ts: Timestamp) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if ts.seconds else "-"


def render_table(response: order_pb2.ListShopsResponse) -> str:
    """One line per shop: polling, cursor, failures, the last error."""
    headers = ["platform", "shop", "polled", "state", "pulled up to (UTC)", "last run (UTC)"]
    headers += ["orders", "failures", "webhooks", "api", "last error"]
    rows = [
        [
            s.platform,
            s.shop_id,
            "yes" if s.polled else "no",
            s.poll_state,
            _when(s.window_end),
            _when(s.last_run_at),
            f"{s.orders_seen:,}",
            str(s.failures),
            "yes" if s.webhooks_verifiable else "no",
            "yes" if s.api_credentials else "no",
            s.last_error[:80] or "-",
        ]
        for s in response.shops
    ]
    if not rows:
        return "no shops configured (the hub's shops file lists none)"
    return format_table(headers, rows, numeric=(6, 7))


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Ask the hub at ``args.addr`` for its shops and print them; 1 when the call fails."""
    out = out or sys.stdout
    try:
        with hub_channel(args) as channel:
            response = order_pb2_grpc.OrderServiceStub(channel).ListShops(
                order_pb2.ListShopsRequest(), timeout=DEADLINE_S
            )
    except grpc.RpcError as err:
        print(describe(err, args.addr), file=sys.stderr)
        return 1
    if args.format == "json":
        shops = [MessageToDict(s, preserving_proto_field_name=True) for s in response.shops]
        print(json.dumps({"shops": shops}, ensure_ascii=False, indent=2), file=out)
    else:
        print(render_table(response), file=out)
    return 0
