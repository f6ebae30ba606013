"""An order's life in the hub: what may happen next, what a change means, what to hold.

Pure rules. States run ``PENDING_PAYMENT → PAID → (ON_HOLD) → ALLOCATED → SHIPPED →
DELIVERED``, with ``CANCELLED`` and ``CLOSED`` as ends. People and systems act on an order
(ship it, cancel it, approve it out of review); platforms send newer copies. Every change is
described as events (who, when, why) that the store records and publishes under
``oms.orders.<kind>``.

After-sale requests change what must be held or sent:

- refund only, or return and refund, before shipment: the goods will not leave, so the
  line's stock goes back (and is held again if the request is refused or withdrawn);
- return and refund (or an exchange) after shipment: the goods come back, so the
  warehouse is told to expect them;
- an exchange or a resend after shipment: a new outbound order carries the replacement.

Refund only never cancels an order: the order keeps its status, the platform closes it
when it means to.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hub.domain.intake import REVIEW
from hub.domain.orders import AfterSaleState, AfterSaleType, OrderLine, OrderStatus, PlatformOrder


class OrderAction(StrEnum):
    """What a person or a system may do to an order."""

    CANCEL = "CANCEL"
    HOLD = "HOLD"
    UNHOLD = "UNHOLD"
    ALLOCATE = "ALLOCATE"
    SHIP = "SHIP"
    DELIVER = "DELIVER"


class IllegalTransition(Exception):
    """An action the order's state does not allow; the message says why."""


class OrderNotFound(LookupError):
    """No order with this id."""

    def __init__(self, message: str, *, field: str = "order_id") -> None:
        super().__init__(message)
        self.field = field


#: The statuses each action may start from, and where it leads.
_MOVES: dict[OrderAction, tuple[frozenset[OrderStatus], OrderStatus]] = {
    OrderAction.CANCEL: (
        frozenset(
            {
                OrderStatus.PENDING_PAYMENT,
                OrderStatus.PAID,
                OrderStatus.ON_HOLD,
                OrderStatus.ALLOCATED,
            }
        ),
        OrderStatus.CANCELLED,
    ),
    OrderAction.HOLD: (frozenset({OrderStatus.PAID, OrderStatus.ALLOCATED}), OrderStatus.ON_HOLD),
    OrderAction.UNHOLD: (frozenset({OrderStatus.ON_HOLD}), OrderStatus.PAID),
    OrderAction.ALLOCATE: (frozenset({OrderStatus.PAID}), OrderStatus.ALLOCATED),
    OrderAction.SHIP: (frozenset({OrderStatus.PAID, OrderStatus.ALLOCATED}), OrderStatus.SHIPPED),
    OrderAction.DELIVER: (frozenset({OrderStatus.SHIPPED}), OrderStatus.DELIVERED),
}


def next_status(order: PlatformOrder, queue: str, action: OrderAction) -> OrderStatus:
    """The status an action leads to, or :class:`IllegalTransition` saying why not."""
    allowed, target = _MOVES[action]
    if order.status not in allowed:
        froms = ", ".join(sorted(s.value for s in allowed))
        raise IllegalTransition(
            f"cannot {action.value.lower()} an order that is {order.status.value} "
            f"(only from {froms})"
        )
    if action is OrderAction.SHIP:
        if queue == REVIEW:
            raise IllegalTransition("the order waits in review; approve it before shipping")
        # A settled refund just leaves its line out of the shipment; an open one must be
        # decided first, or the goods may leave and the money too.
        open_lines = [
            ln.platform_line_id or ln.platform_sku_id
            for ln in order.lines
            if ln.after_sale_state is AfterSaleState.OPEN
        ]
        if open_lines:
            raise IllegalTransition(
                "lines with an after-sale request must not ship until it is settled: "
                + ", ".join(open_lines)
            )
    return target


def shipped(status: OrderStatus) -> bool:
    """Whether the goods have left (or the order ended after they did)."""
    return status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED)


#: After-sale kinds that, before shipment, mean the line's goods never go out.
_GOODS_STAY = frozenset({AfterSaleType.REFUND_ONLY, AfterSaleType.RETURN_REFUND})


def lines_to_hold(order: PlatformOrder) -> tuple[tuple[str, int], ...]:
    """The (sku, quantity) an unshipped order must hold: lines being refunded are left out."""
    return tuple(
        (ln.sku, ln.quantity)
        for ln in order.lines
        if not (
            ln.after_sale_type in _GOODS_STAY and ln.after_sale_state is not AfterSaleState.NONE
        )
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One thing that happened to an order, to be recorded and published."""

    #: ``received``, a status in lower case (``paid``, ``shipped`` …), ``after_sale``,
    #: ``queued``, ``return_expected``, ``outbound_created``, ``stock_released``,
    #: ``stock_held``, ``stock_committed``, ``approved``, ``rejected``.
    kind: str
    reason: str = ""


def changes(
    before: PlatformOrder | None,
    after: PlatformOrder,
    queue_before: str | None,
    queue_after: str,
) -> list[Change]:
    """What a write of ``after`` over ``before`` changed, as events (none when nothing did)."""
    if before is None:
        return [Change("received", f"{after.status.value} on {after.platform}")]
    out: list[Change] = []
    if after.status is not before.status:
        out.append(
            Change(after.status.value.lower(), f"{before.status.value} → {after.status.value}")
        )
    if after.after_sale_type is not before.after_sale_type or _line_sales(after) != _line_sales(
        before
    ):
        out.append(Change("after_sale", _after_sale_summary(after)))
    if queue_before is not None and queue_after != queue_before:
        out.append(Change("queued", f"{queue_before or 'auto'} → {queue_after or 'auto'}"))
    return out


def _line_sales(order: PlatformOrder) -> tuple[tuple[str, str], ...]:
    return tuple((ln.after_sale_type.value, ln.after_sale_state.value) for ln in order.lines)


def _after_sale_summary(order: PlatformOrder) -> str:
    parts = [
        f"{ln.platform_line_id or ln.platform_sku_id}: {ln.after_sale_type.value} "
        f"{ln.after_sale_state.value}"
        for ln in order.lines
        if ln.after_sale_type is not AfterSaleType.NONE
    ]
    return "; ".join(parts) or f"order {order.after_sale_type.value}"


@dataclass(frozen=True, slots=True)
class AfterSalePlan:
    """What a platform's newer copy asks of the warehouse beyond the hold."""

    #: Lines whose goods come back: the warehouse should expect them.
    returns: tuple[OrderLine, ...] = ()
    #: Lines to send again (exchange, resend): a new outbound order carries them.
    outbound: tuple[OrderLine, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.returns or self.outbound)


def after_sale_plan(before: PlatformOrder | None, after: PlatformOrder) -> AfterSalePlan:
    """Returns to expect and replacements to send, for after-sales new in ``after``.

    Only requests that are new (a line's type or state changed from ``before``) count, so
    a repeated copy plans nothing twice. Before shipment nothing comes back or goes out
    again: the hold is adjusted instead (:func:`lines_to_hold`).
    """
    if not shipped(after.status):
        return AfterSalePlan()
    old = {_line_key(ln, i): ln for i, ln in enumerate(before.lines)} if before else {}
    returns: list[OrderLine] = []
    outbound: list[OrderLine] = []
    for i, ln in enumerate(after.lines):
        if ln.after_sale_state is AfterSaleState.NONE:
            continue
        prev = old.get(_line_key(ln, i))
        if (
            prev is not None
            and prev.after_sale_type is ln.after_sale_type
            and prev.after_sale_state is not AfterSaleState.NONE
        ):
            continue  # known already
        if ln.after_sale_type in (AfterSaleType.RETURN_REFUND, AfterSaleType.EXCHANGE):
            returns.append(ln)
        if ln.after_sale_type in (AfterSaleType.EXCHANGE, AfterSaleType.RESEND):
            outbound.append(ln)
    return AfterSalePlan(tuple(returns), tuple(outbound))


def _line_key(line: OrderLine, index: int) -> str:
    return line.platform_line_id or f"#{index}"


def follow_up_id(order: PlatformOrder, line: OrderLine, index: int) -> str:
    """The platform order id of the outbound order that replaces one line's goods."""
    kind = line.after_sale_type.value.lower()
    return f"{order.platform_order_id}~{kind}~{_line_key(line, index).lstrip('#')}"
