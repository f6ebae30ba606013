"""Taking a translated order in: tags from notes, the queue it waits in, and updates.

Pure rules. A buyer's note says what a person would read in it: an exchange (换货), a rush
(加急), a gift message, an invoice request, another address. The words are data
(``note_rules.toml``). Tags route the order to a queue; anything a machine must not decide
alone (an unknown SKU, a custom gift message, an address change) goes to review.
An update from the platform applies only if it is newer and does not move the order back.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, replace

from hub.domain.orders import AfterSaleType, OrderStatus, PlatformOrder, may_follow

URGENT = "urgent"
EXCHANGE = "exchange"
GIFT_MESSAGE = "gift_message"
INVOICE = "invoice"
ADDRESS_CHANGE = "address_change"
#: Set when a person approved the order out of review: what they approved stays approved.
REVIEWED = "reviewed"

# Queues an order can wait in; "" is the automatic flow.
REVIEW = "review"
AFTER_SALES = "after_sales"
PRIORITY = "priority"


@dataclass(frozen=True, slots=True)
class NoteTag:
    """One tag a buyer's note can carry: the words that mean it, and whether to review."""

    name: str
    pattern: re.Pattern[str]
    #: The review reason when a person must read the note first; "" when not.
    review: str = ""


@dataclass(frozen=True, slots=True)
class NoteRules:
    """Tags and the negation that cancels a word, as read from a rules file."""

    tags: tuple[NoteTag, ...]
    negation: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> NoteRules:
        """Rules from the text of a rules file (``note_rules.toml``)."""
        data = tomllib.loads(text)
        tags = tuple(
            NoteTag(
                name=str(t["name"]),
                pattern=re.compile("|".join(str(w) for w in t["words"]), re.I),
                review=str(t.get("review", "")),
            )
            for t in data.get("tag", [])
        )
        return cls(tags, re.compile(str(data["negation"]), re.I))

    def tags_of(self, note: str) -> list[str]:
        """The tags a note carries, in the rules' order; a negated word does not count."""
        return [
            tag.name
            for tag in self.tags
            if any(
                not self.negation.search(note[max(0, m.start() - 12) : m.start()])
                for m in tag.pattern.finditer(note)
            )
        ]

    def review_reasons(self, tags: Iterable[str]) -> list[str]:
        """Why a person must read the note first, for the tags that ask it."""
        present = set(tags)
        return [t.review for t in self.tags if t.review and t.name in present]


#: The rules shipped with the hub (``hub/domain/note_rules.toml``).
RULES = NoteRules.parse(
    (importlib.resources.files("hub.domain") / "note_rules.toml").read_text(encoding="utf-8")
)


def tags_from_note(note: str, rules: NoteRules = RULES) -> list[str]:
    """The tags a buyer's note carries, in a fixed order; "不用加急" is not a rush."""
    return rules.tags_of(note)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an order waits and why."""

    queue: str
    reasons: tuple[str, ...]


def place(
    order: PlatformOrder,
    tags: Iterable[str],
    unknown_skus: Iterable[str],
    rules: NoteRules = RULES,
) -> Placement:
    """The queue for an order: review when a person must decide, else by its tags."""
    tags = set(tags)
    reasons: list[str] = []
    unknown = sorted(set(unknown_skus))
    if unknown:
        reasons.append("UNKNOWN_SKU: no internal SKU for " + ", ".join(unknown))
    reasons.extend(rules.review_reasons(tags))
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
    stored_tags: Iterable[str],
    tags: Iterable[str],
    placement: Placement,
    order: PlatformOrder,
    rules: NoteRules = RULES,
) -> tuple[list[str], Placement]:
    """Tags and placement of a newer copy of an order a person already approved.

    What the person judged (a gift message, an address change in the note) does not send
    it back to review; what a machine must still fix (an unknown SKU, no lines) does.
    """
    tags = list(tags)
    if REVIEWED not in stored_tags:
        return tags, placement
    tags.append(REVIEWED)
    judged = set(rules.review_reasons(tags))
    reasons = tuple(r for r in placement.reasons if r not in judged)
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
