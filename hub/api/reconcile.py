"""ReconciliationService: a platform statement in, totals and explained differences out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc

from adapters import registry
from adapters.money import MoneyError, exponent
from adapters.statements import Field, StatementError, StatementFormat, parse_statement
from hub.api.errors import abort, invalid
from hub.domain.orders import PlatformOrder, TranslationError
from hub.domain.reconcile import Amounts, Period, Report, reconcile, records_from_orders
from hub.store.orders import OrderStore, StoredOrder
from orderhub.v1 import reconcile_pb2, reconcile_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
#: Pulls a shop's orders modified in [since, until) from its platform: (platform, shop_id,
#: since, until) → raw orders. Raises LookupError for a shop it cannot reach.
Puller = Callable[[str, str, datetime, datetime], Awaitable[list[dict[str, Any]]]]
_PAGE = 1000

_FORMATS = {
    reconcile_pb2.STATEMENT_FORMAT_UNSPECIFIED: None,
    reconcile_pb2.STATEMENT_FORMAT_CSV: StatementFormat.CSV,
    reconcile_pb2.STATEMENT_FORMAT_JSONL: StatementFormat.JSONL,
}


def shop_orders(store: OrderStore, platform: str, shop_id: str) -> list[StoredOrder]:
    """Every order the hub holds for one shop (the period is chosen by the reconciliation)."""
    found: list[StoredOrder] = []
    after = ""
    while True:
        page = store.listing(platform=platform, shop_id=shop_id, after=after, limit=_PAGE)
        found.extend(page)
        if len(page) < _PAGE:
            return found
        after = page[-1].order_id


def totals_message(totals: Mapping[str, Amounts]) -> list[reconcile_pb2.ReconcileTotals]:
    """One totals message per currency."""
    return [
        reconcile_pb2.ReconcileTotals(
            currency=currency,
            orders=a.orders,
            paid_fen=a.paid_fen,
            refunded_fen=a.refunded_fen,
            net_fen=a.net_fen,
        )
        for currency, a in totals.items()
    ]


def report_message(
    report: Report, request: reconcile_pb2.ReconcileRequest, platform: str, shop_id: str
) -> reconcile_pb2.ReconcileResponse:
    """The response for a reconciliation report."""

    def kind(name: str) -> reconcile_pb2.DifferenceKind.ValueType:
        return reconcile_pb2.DifferenceKind.Value(f"DIFFERENCE_KIND_{name}")

    return reconcile_pb2.ReconcileResponse(
        platform=platform,
        shop_id=shop_id,
        period_start=request.period_start,
        period_end=request.period_end,
        platform_totals=totals_message(report.platform_totals),
        hub_totals=totals_message(report.hub_totals),
        differences=[
            reconcile_pb2.ReconcileDifference(
                kind=kind(d.kind.value),
                platform_order_id=d.platform_order_id,
                order_id=d.order_id,
                platform_fen=d.platform_net_fen,
                hub_fen=d.hub_net_fen,
                detail=d.detail,
                currency=d.currency,
                hub_currency=d.hub_currency,
                platform_orders=d.platform.orders,
                platform_paid_fen=d.platform.paid_fen,
                platform_refunded_fen=d.platform.refunded_fen,
                hub_orders=d.hub.orders,
                hub_paid_fen=d.hub.paid_fen,
                hub_refunded_fen=d.hub.refunded_fen,
            )
            for d in report.differences
        ],
        counts=[
            reconcile_pb2.DifferenceCount(kind=kind(k.value), count=n)
            for k, n in report.counts.items()
        ],
        statement_rows=report.platform_records,
        balanced=report.balanced,
    )


class ReconciliationServicer(reconcile_pb2_grpc.ReconciliationServiceServicer):
    """Reconciliation of one shop and period against an uploaded statement."""

    def __init__(self, store: OrderStore, pull: Puller | None = None) -> None:
        self._store = store
        self._pull = pull

    async def Reconcile(
        self, request: reconcile_pb2.ReconcileRequest, context: Context
    ) -> reconcile_pb2.ReconcileResponse:
        platform = request.platform.strip().lower()
        shop_id = request.shop_id.strip()
        if not platform:
            await abort(context, invalid("platform", "platform is required"))
        if not shop_id:
            await abort(context, invalid("shop_id", "shop_id is required"))
        for name in ("period_start", "period_end"):
            if not request.HasField(name):
                await abort(context, invalid(name, f"{name} is required"))
        start = request.period_start.ToDatetime(tzinfo=UTC)
        end = request.period_end.ToDatetime(tzinfo=UTC)
        if end <= start:
            await abort(context, invalid("period_end", "period_end must be after period_start"))
        if request.pull_from_platform:
            if request.statement:
                await abort(
                    context,
                    invalid("statement", "give a statement or pull_from_platform, not both"),
                )
            return await self._reconcile_pulled(request, context, platform, shop_id, start, end)
        if not request.statement:
            # The hub's own stored copies are what it reconciles against, so comparing them
            # with themselves would always agree: the platform's side is needed.
            await abort(
                context, invalid("statement", "statement is required (or pull_from_platform)")
            )
        if request.statement_format not in _FORMATS:
            await abort(
                context,
                invalid("statement_format", f"unknown format {request.statement_format}"),
            )
        unknown = sorted(set(request.columns) - {f.value for f in Field})
        if unknown:
            known = ", ".join(f.value for f in Field)
            await abort(context, invalid("columns", f"unknown field {unknown[0]!r} ({known})"))
        currency = request.default_currency.strip().upper() or "CNY"
        try:
            exponent(currency)
        except MoneyError as err:
            await abort(context, invalid("default_currency", str(err)))
        try:
            statement = await asyncio.to_thread(
                parse_statement,
                request.statement,
                _FORMATS[request.statement_format],
                currency=currency,
                columns=dict(request.columns),
            )
        except StatementError as err:
            await abort(context, invalid("statement", str(err)))
        orders = await asyncio.to_thread(shop_orders, self._store, platform, shop_id)
        try:
            report = await asyncio.to_thread(
                reconcile, statement.records, orders, Period(start, end)
            )
        except ValueError as err:  # e.g. one order listed in two currencies
            await abort(context, invalid("statement", str(err)))
        return report_message(report, request, platform, shop_id)

    async def _reconcile_pulled(
        self,
        request: reconcile_pb2.ReconcileRequest,
        context: Context,
        platform: str,
        shop_id: str,
        start: datetime,
        end: datetime,
    ) -> reconcile_pb2.ReconcileResponse:
        """The platform's fresh copies of the period's orders against the hub's."""
        if self._pull is None:
            await abort(context, invalid("pull_from_platform", "this hub cannot pull orders"))
        assert self._pull is not None
        try:
            raws = await self._pull(platform, shop_id, start, datetime.now(UTC))
        except LookupError as err:
            await abort(context, invalid("shop_id", str(err)))
        except Exception as err:  # the platform refused or could not be reached
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"pulling from {platform} failed: {err}"
            )
        orders: list[PlatformOrder] = []
        untranslatable = 0
        for raw in raws:
            try:
                orders.append(registry.translate(platform, raw, shop_id))
            except TranslationError:
                untranslatable += 1
        hub_orders = await asyncio.to_thread(shop_orders, self._store, platform, shop_id)
        report = await asyncio.to_thread(
            reconcile, records_from_orders(orders), hub_orders, Period(start, end)
        )
        answer = report_message(report, request, platform, shop_id)
        answer.statement_rows = len(raws)
        answer.untranslatable = untranslatable
        return answer
