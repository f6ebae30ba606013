"""`orderhub reconcile`: a platform statement against a running hub's orders (对账).

Prints the totals on both sides per currency, the gap, and every order that explains it.
Exit status as ``diff``'s: 0 when the two sides agree, 1 when there are differences, 2 when
the reconciliation could not be done (a bad argument or statement, the hub unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.money import MoneyError, exponent
from adapters.times import BEIJING
from hub.cli_token import hub_channel
from hub.tables import format_table

if TYPE_CHECKING:  # grpc and the generated code load only when a command runs
    import grpc

    from orderhub.v1 import reconcile_pb2

DEADLINE_S = 120.0
BALANCED, DIFFERENT, FAILED = 0, 1, 2
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_OFFSET = re.compile(r"([+-])([0-9]{2}):?([0-9]{2})")
_FORMATS = {"csv": "STATEMENT_FORMAT_CSV", "jsonl": "STATEMENT_FORMAT_JSONL"}
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's options."""
    parser.add_argument(
        "--addr",
        default=os.environ.get("ORDERHUB_GRPC_ADDR") or "127.0.0.1:50051",
        help="the hub's gRPC address (ORDERHUB_GRPC_ADDR, 127.0.0.1:50051)",
    )
    parser.add_argument("--platform", required=True, help="taobao, jd, douyin, pdd, shopify, …")
    parser.add_argument("--shop", required=True, help="the shop id as the hub knows it")
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="DATE",
        help="first day (YYYY-MM-DD) or an exact start time (ISO 8601)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="DATE",
        help="last day, inclusive (YYYY-MM-DD), or an exact end time, exclusive (ISO 8601)",
    )
    parser.add_argument(
        "--tz",
        default="+08:00",
        help="zone of days and of times without an offset: +08:00 (default) or a zone name",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--statement", type=Path, metavar="FILE", help="the platform's export")
    source.add_argument(
        "--pull",
        action="store_true",
        help="pull the period's orders from the platform's API instead (the shop needs "
        "credentials in the hub's shops file)",
    )
    parser.add_argument(
        "--format",
        dest="statement_format",
        choices=sorted(_FORMATS),
        help="csv or jsonl (default: by the file's suffix, else guessed from its content)",
    )
    parser.add_argument(
        "--currency", default="", help="currency of rows without a currency column (CNY)"
    )
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=HEADER",
        help="which header holds a field, e.g. paid=实收金额 (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


class UsageError(ValueError):
    """A command-line value that cannot be used."""


def zone(text: str) -> tzinfo:
    """``+08:00``, ``-0500``, ``UTC`` or an IANA zone name."""
    found = _OFFSET.fullmatch(text.strip())
    if found:
        sign, hours, minutes = found.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-offset if sign == "-" else offset)
    if text.strip() in ("+08:00", "Asia/Shanghai"):
        return BEIJING
    try:
        return ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"--tz: unknown zone {text!r}") from exc


def moment(text: str, tz: tzinfo, *, end: bool) -> datetime:
    """A day (the start of it, or of the next one for ``end``) or an exact time in ``tz``."""
    value = text.strip()
    option = "--to" if end else "--from"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{option}: not a date or time: {text!r}") from exc
    if _DATE.fullmatch(value):
        day = parsed.replace(tzinfo=tz)
        return day + timedelta(days=1) if end else day
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def columns(pairs: Sequence[str]) -> dict[str, str]:
    """``--column field=header`` values as a mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, header = pair.partition("=")
        if not sep or not name.strip() or not header.strip():
            raise UsageError(f"--column: expected FIELD=HEADER, got {pair!r}")
        out[name.strip()] = header.strip()
    return out


def request_for(args: argparse.Namespace) -> reconcile_pb2.ReconcileRequest:
    """The Reconcile request for the command line's choices (reads the statement file)."""
    from orderhub.v1 import reconcile_pb2

    tz = zone(args.tz)
    start, end = moment(args.start, tz, end=False), moment(args.end, tz, end=True)
    if args.pull:
        pulled = reconcile_pb2.ReconcileRequest(
            platform=args.platform, shop_id=args.shop, pull_from_platform=True
        )
        pulled.period_start.FromDatetime(start)
        pulled.period_end.FromDatetime(end)
        return pulled
    try:
        data = args.statement.read_bytes()
    except OSError as exc:
        raise UsageError(f"--statement: cannot read {args.statement}: {exc.strerror}") from exc
    kind = args.statement_format or _SUFFIXES.get(args.statement.suffix.lower(), "")
    request = reconcile_pb2.ReconcileRequest(
        platform=args.platform,
        shop_id=args.shop,
        statement=data,
        statement_format=reconcile_pb2.StatementFormat.Value(
            _FORMATS.get(kind, "STATEMENT_FORMAT_UNSPECIFIED")
        ),
        default_currency=args.currency,
        columns=columns(args.column),
    )
    request.period_start.FromDatetime(start)
    request.period_end.FromDatetime(end)
    return request


def money(minor: int, currency: str) -> str:
    """Minor units as the currency's major units with grouping: 1234550 CNY → 12,345.50."""
    try:
        places = exponent(currency)
    except MoneyError:
        places = 2
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**places)
    return f"{sign}{whole:,}" + (f".{part:0{places}d}" if places else "")


def kind_name(kind: reconcile_pb2.DifferenceKind.ValueType) -> str:
    """A difference kind without its enum prefix."""
    from orderhub.v1 import reconcile_pb2

    return reconcile_pb2.DifferenceKind.Name(kind).removeprefix("DIFFERENCE_KIND_")


def render_text(response: reconcile_pb2.ReconcileResponse) -> str:
    """Totals per currency (platform, hub, gap), then the differences."""
    from orderhub.v1 import reconcile_pb2

    missing_in_hub = reconcile_pb2.DIFFERENCE_KIND_MISSING_IN_HUB
    missing_on_platform = reconcile_pb2.DIFFERENCE_KIND_MISSING_ON_PLATFORM
    start = response.period_start.ToJsonString()
    end = response.period_end.ToJsonString()
    out = [
        f"{response.platform} shop {response.shop_id}, [{start}, {end}): "
        f"{response.statement_rows:,} statement rows"
    ]
    sides = {"platform": response.platform_totals, "hub": response.hub_totals}
    currencies = sorted({t.currency for side in sides.values() for t in side})
    rows = []
    for currency in currencies:
        found = {
            name: next((t for t in side if t.currency == currency), None)
            for name, side in sides.items()
        }
        numbers = {
            name: (t.orders, t.paid_fen, t.refunded_fen, t.net_fen) if t else (0, 0, 0, 0)
            for name, t in found.items()
        }
        gap = tuple(p - h for p, h in zip(numbers["platform"], numbers["hub"], strict=True))
        for name, values in (*numbers.items(), ("gap", gap)):
            orders, *amounts = values
            rows.append([currency, name, f"{orders:,}", *(money(a, currency) for a in amounts)])
    headers = ["currency", "side", "orders", "paid", "refunded", "net"]
    out += ["", format_table(headers, rows, numeric=range(2, 6))]
    if response.balanced:
        out += ["", "balanced: every order agrees"]
        return "\n".join(out)
    counts = ", ".join(f"{c.count} {kind_name(c.kind)}" for c in response.counts)
    out += ["", f"{len(response.differences)} differences: {counts}"]
    diff_rows = []
    for d in response.differences:
        # Amounts in two currencies side by side say which is which.
        mixed = d.currency != d.hub_currency
        unit, hub_unit = (f" {d.currency}", f" {d.hub_currency}") if mixed else ("", "")
        diff_rows.append(
            [
                kind_name(d.kind),
                d.platform_order_id,
                d.order_id or "-",
                "-" if d.kind == missing_on_platform else money(d.platform_fen, d.currency) + unit,
                "-" if d.kind == missing_in_hub else money(d.hub_fen, d.hub_currency) + hub_unit,
                d.detail,
            ]
        )
    diff_headers = ["kind", "platform order", "hub order", "platform net", "hub net", "detail"]
    out += ["", format_table(diff_headers, diff_rows, numeric=(3, 4))]
    return "\n".join(out)


def render_json(response: reconcile_pb2.ReconcileResponse) -> str:
    """The report as JSON: amounts as integers in minor units, kinds by short name."""

    def totals(side: Sequence[reconcile_pb2.ReconcileTotals]) -> list[dict[str, object]]:
        return [
            {
                "currency": t.currency,
                "orders": t.orders,
                "paid_fen": t.paid_fen,
                "refunded_fen": t.refunded_fen,
                "net_fen": t.net_fen,
            }
            for t in side
        ]

    document = {
        "platform": response.platform,
        "shop_id": response.shop_id,
        "period_start": response.period_start.ToJsonString(),
        "period_end": response.period_end.ToJsonString(),
        "statement_rows": response.statement_rows,
        "balanced": response.balanced,
        "platform_totals": totals(response.platform_totals),
        "hub_totals": totals(response.hub_totals),
        "counts": {kind_name(c.kind): c.count for c in response.counts},
        "differences": [
            {
                "kind": kind_name(d.kind),
                "platform_order_id": d.platform_order_id,
                "order_id": d.order_id,
                "platform_fen": d.platform_fen,
                "hub_fen": d.hub_fen,
                "currency": d.currency,
                "hub_currency": d.hub_currency,
                "detail": d.detail,
                "platform_part": {
                    "orders": d.platform_orders,
                    "paid_fen": d.platform_paid_fen,
                    "refunded_fen": d.platform_refunded_fen,
                },
                "hub_part": {
                    "orders": d.hub_orders,
                    "paid_fen": d.hub_paid_fen,
                    "refunded_fen": d.hub_refunded_fen,
                },
            }
            for d in response.differences
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def describe(err: grpc.RpcError, addr: str) -> str:
    """One line saying why the call failed."""
    import grpc

    if not isinstance(err, grpc.Call):
        return f"the call to the hub at {addr} failed: {err}"
    code, details = err.code(), " ".join((err.details() or "").split())
    if code is grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the hub at {addr}: {details}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the hub at {addr} did not answer within {DEADLINE_S:g} s"
    return f"the hub at {addr} refused: {code.name}: {details}"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Send the statement to the hub at ``args.addr`` and print the report."""
    import grpc

    from orderhub.v1 import reconcile_pb2_grpc

    out = out or sys.stdout
    try:
        request = request_for(args)
    except UsageError as err:
        print(f"orderhub reconcile: {err}", file=sys.stderr)
        return FAILED
    try:
        with hub_channel(args) as channel:
            response = reconcile_pb2_grpc.ReconciliationServiceStub(channel).Reconcile(
                request, timeout=DEADLINE_S
            )
    except grpc.RpcError as err:
        print(f"orderhub reconcile: {describe(err, args.addr)}", file=sys.stderr)
        return FAILED
    text = render_json(response) if args.json else render_text(response)
    try:
        print(text, file=out, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return BALANCED if response.balanced else DIFFERENT
