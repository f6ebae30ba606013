"""Taking a translated order in: tags from notes, the queue it waits in, and updates.

Pure rules. A buyer's note says what a person would read in it: an exchange (换货), a rush
(加急), a gift message, an invoice request. Tags route the order to a queue; anything a
machine must not decide alone (an unknown SKU, a custom gift message) goes to review.
An update from the platform applies only if it is newer and does not move the order back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from hub.domain.orders import AfterSaleType, OrderStatus, PlatformOrder, may_follow

URGENT = "urgent"
EXCHANGE = "exchange"
GIFT_MESSAGE = "gift_message"
INVOICE = "invoice"
#: Set when a person approved the order out of review: what they approved stays approved.
REVIEWED = "reviewed"

#: Words in a buyer's note and the tag each means (Chinese and English, as buyers write).
_NOTE_TAGS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (URGENT, re.compile(r"加急|急用|尽快|越快越好|马上发|今天发|当天发|urgent|asap|rush", re.I)),
    (EXCHANGE, re.compile(r"换货|换一[个件双]|换成|调换|换尺码|换颜色|exchange", re.I)),
    (
        GIFT_MESSAGE,
        re.compile(r"贺卡|礼物|送人|祝福语|卡片上写|写上|生日快乐|gift|card message", re.I),
    ),
    (INVOICE, re.compile(r"发票|开票|抬头|税号|invoice|fapiao", re.I)),
)

# Queues an order can wait in; "" is the automatic flow.
REVIEW = "review"
AFTER_SALES = "after_sales"
PRIORITY = "priority"


#: Words that, just before a keyword, say the buyer does not want it ("不用加急").
_NEGATION = re.compile(r"(不用|不要|不需要|无需|不必|别|no|not|don'?t|no need to)\s*$", re.I)


def tags_from_note(note: str) -> list[str]:
    """The tags a buyer's note carries, in a fixed order; "不用加急" is not a rush."""
    return [
        tag
        for tag, pattern in _NOTE_TAGS
        if any(
            not _NEGATION.search(note[max(0, m.start() - 12) : m.start()])
            for m in pattern.finditer(note)
        )
    ]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an order waits and why."""

    queue: str
    reasons: tuple[str, ...]


def place(order: PlatformOrder, tags: Iterable[str], unknown_skus: Iterable[str]) -> Placement:
    """The queue for an order: review when a person must decide, else by its tags."""
    tags = set(tags)
    reasons: list[str] = []
    unknown = sorted(set(unknown_skus))
    if unknown:
        reasons.append("UNKNOWN_SKU: no internal SKU for " + ", ".join(unknown))
    if GIFT_MESSAGE in tags:
        reasons.append("GIFT_MESSAGE: a custom message to print")
    if not order.lines:
        reasons.append("NO_LINES: the order has no lines")
    if reasons:
        return Placement(REVIEW, tuple(reasons))
    return Placement(queue_for(order, tags), ())


def queue_for(order: PlatformOrder, tags: Iterable[str]) -> str:
    """The queue of an order no person needs to look at (again): by its tags."""
    tags = set(tags)
    if EXCHANGE in tags or order.after_sale_type is not AfterSaleType.NONE:
        return AFTER_SALES
    if URGENT in tags:
        return PRIORITY
    return ""


def carry_review(
    stored_tags: Iterable[str], tags: Iterable[str], placement: Placement, order: PlatformOrder
) -> tuple[list[str], Placement]:
    """Tags and placement of a newer copy of an order a person already approved.

    What the person judged (a gift message) does not send it back to review; what a
    machine must still fix (an unknown SKU, no lines) does.
    """
    tags = list(tags)
    if REVIEWED not in stored_tags:
        return tags, placement
    tags.append(REVIEWED)
    reasons = tuple(r for r in placement.reasons if not r.startswith("GIFT_MESSAGE"))
    if reasons:
        return tags, Placement(REVIEW, reasons)
    return tags, Placement(queue_for(order, tags), ())


@dataclass(frozen=True, slots=True)
class Update:
    """What to keep when an order arrives again."""

    order: PlatformOrder
    changed: bool
    reason: str = ""


def merge(stored: PlatformOrder, incoming: PlatformOrder) -> Update:
    """Apply an incoming copy of a stored order if it is newer and moves it forward.

    A copy with the same or an older ``updated_at`` is a repeat. A newer copy whose status
    would move the order back (PAID after SHIPPED, say) keeps the stored status but takes
    the rest (notes, after-sale, address corrections).
    """
    if (
        incoming.updated_at is not None
        and stored.updated_at is not None
        and incoming.updated_at <= stored.updated_at
    ):
        return Update(stored, False, "not newer than the stored copy")
    if incoming == stored:
        return Update(stored, False, "identical")
    if not may_follow(stored.status, incoming.status):
        kept = replace(incoming, status=stored.status, platform_status=stored.platform_status)
        return Update(
            kept,
            kept != stored,
            f"status {incoming.status.value} would move {stored.status.value} back; kept",
        )
    return Update(incoming, True)


def holds_stock(status: OrderStatus) -> bool:
    """Whether an order in this status should have its stock held."""
    return status in (OrderStatus.PAID, OrderStatus.ON_HOLD, OrderStatus.ALLOCATED)


def releases_stock(status: OrderStatus) -> bool:
    """Whether an order in this status gives its held stock back."""
    return status in (OrderStatus.CANCELLED, OrderStatus.CLOSED)
