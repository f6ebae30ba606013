"""Orders in and on: translate, map SKUs, tag, queue, store once, hold, ship, review.

A payload that cannot be translated is kept as a dead letter with the reason and the
caller is told which field is wrong; nothing is stored half. A paid order whose SKUs are
all known has its stock held at once (under the hub's order id); when there is not enough,
it waits in review saying so. A cancelled or closed order gives its hold back; a shipped
one commits it. People move orders on (``act``), and approve or reject what waits in
review; every change is recorded with who did it and why (``hub.store.orders``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from adapters import registry
from hub.batching import Batcher
from hub.domain.intake import (
    REVIEW,
    REVIEWED,
    Placement,
    holds_stock,
    place,
    queue_for,
    releases_stock,
    tags_from_note,
)
from hub.domain.inventory import (
    InsufficientStock,
    InvalidRequest,
    InventoryError,
    Reservation,
    ReservationClosed,
    ReservationNotFound,
    ReservationStatus,
)
from hub.domain.lifecycle import (
    AfterSalePlan,
    Change,
    IllegalTransition,
    OrderAction,
    OrderNotFound,
    after_sale_plan,
    follow_up_id,
    lines_to_hold,
    next_status,
    shipped,
)
from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    TranslationError,
)
from hub.inventory import Inventory, LineInput, ShardUnavailable
from hub.store.dead_letters import (
    DeadLetters,
    Letter,
    LetterStatus,
    NewLetter,
    ReplayOutcome,
    not_open,
)
from hub.store.master_data import MasterData
from hub.store.orders import (
    PLATFORM_ACTOR,
    NewOrder,
    OrderEvent,
    OrderStore,
    Saved,
    StoredOrder,
    new_order_id,
)

#: Fetches a platform order's full JSON: (platform, shop_id, platform order id) → JSON.
Fetcher = Callable[[str, str, str], Awaitable[str]]

#: The tag of an outbound order that replaces goods (an exchange or a resend).
REPLACEMENT = "replacement"

SOURCE = "orders"
UNTRANSLATABLE = "UNTRANSLATABLE"


class FetchFailed(Exception):
    """A platform order named by id could not be fetched."""


def untranslatable(platform: str, err: TranslationError) -> InvalidRequest:
    """The INVALID_ARGUMENT for a payload that cannot be translated, naming the field."""
    if err.field == "platform":
        field = "platform"
    elif err.field in ("", "payload") or err.field.startswith("payload."):
        field = err.field or "payload"  # the payload as a whole, or already a payload path
    else:
        field = f"payload.{err.field}"
    return InvalidRequest(
        f"the {platform} order cannot be translated ({err}); it is kept as a dead letter",
        field=field.rstrip("."),
    )


class OrderIntake:
    """Takes platform orders into the hub."""

    def __init__(
        self,
        store: OrderStore,
        master: MasterData,
        dead_letters: DeadLetters,
        inventory: Inventory | None = None,
    ) -> None:
        self.store = store
        self._master = master
        self._dead = dead_letters
        self._inventory = inventory
        #: Fetches a platform order's full JSON by id (platform, shop_id, order id); set
        #: when the hub can call the platforms' APIs. Replays pushes that named ids only.
        self.fetch_order: Fetcher | None = None
        #: Called when an order may now be ready to route (paid, held); set by the hub.
        self.on_ready: Callable[[], None] | None = None
        #: Called with an order's id when its hold was given back; set by the hub, so its
        #: routing (and its place in a warehouse's day) is let go too.
        self.on_released: Callable[[str], Awaitable[None]] | None = None
        # Concurrent orders share their database rounds: one look-up, one insert each.
        self._lookups: Batcher[PlatformOrder, tuple[dict[str, str], StoredOrder | None]] = Batcher(
            self._look_up_many
        )
        self._inserts: Batcher[NewOrder, StoredOrder | None] = Batcher(store.insert_many)

    async def ingest(self, platform: str, shop_id: str, payload: str | bytes) -> Saved:
        """Translate and store one platform order; a repeat answers ``duplicate``."""
        platform = platform.strip().lower()
        shop_id = shop_id.strip()
        if not platform:
            raise InvalidRequest("platform is required", field="platform")
        if not shop_id:
            raise InvalidRequest("shop_id is required", field="shop_id")
        if not payload:
            raise InvalidRequest("payload is required", field="payload")
        try:
            order = registry.translate(platform, payload, shop_id)
        except TranslationError as err:
            await asyncio.to_thread(self._keep, platform, shop_id, payload, err)
            raise untranslatable(platform, err) from err
        return await self._take(order)

    async def replay(self, letters: Sequence[Letter]) -> list[ReplayOutcome]:
        """Translate kept payloads again (after a fix); each ends replayed or stays open."""
        outcomes: list[ReplayOutcome] = []
        for letter in letters:
            if letter.status is not LetterStatus.OPEN:
                outcomes.append(not_open(letter))
                continue
            platform = letter.headers.get("platform", "")
            shop_id = letter.headers.get("shop_id", "")
            try:
                if not platform or not shop_id:
                    raise TranslationError("", "the letter does not say its platform and shop")
                payload: str | bytes = letter.payload
                named = letter.headers.get("platform_order_id", "")
                if named:  # a push that named the order by id only: fetch it now
                    if self.fetch_order is None:
                        raise FetchFailed(f"order {named}: no order fetcher is configured")
                    try:
                        payload = await self.fetch_order(platform, shop_id, named)
                    except Exception as err:  # the platform call failed: try again later
                        raise FetchFailed(f"fetching order {named} failed: {err!r}") from err
                order = registry.translate(platform, payload, shop_id)
                saved = await self._take(order)
            except TranslationError as err:
                outcome = ReplayOutcome(
                    letter.letter_id, LetterStatus.OPEN, False, UNTRANSLATABLE, str(err)
                )
            except FetchFailed as err:
                outcome = ReplayOutcome(
                    letter.letter_id, LetterStatus.OPEN, False, "FETCH_FAILED", str(err)
                )
            except (InventoryError, ShardUnavailable) as err:
                outcome = ReplayOutcome(
                    letter.letter_id, LetterStatus.OPEN, False, letter.error, str(err)
                )
            else:
                outcome = ReplayOutcome(letter.letter_id, LetterStatus.REPLAYED, saved.duplicate)
            await asyncio.to_thread(
                self._dead.resolve,
                letter.letter_id,
                outcome.status,
                error=outcome.error,
                reason=outcome.reason,
            )
            outcomes.append(outcome)
        return outcomes

    async def _take(self, order: PlatformOrder) -> Saved:
        """Map SKUs, tag, place, store and settle the stock of a translated order.

        A new order is held first and then stored with its events in one transaction; a
        known one is merged (never backwards) and its hold adjusted to what changed.
        """
        mapped, existing = await self._lookups.submit(order)
        lines = [replace(line, sku=mapped.get(line.platform_sku_id, "")) for line in order.lines]
        unknown = [
            line.platform_sku_id for line in order.lines if line.platform_sku_id not in mapped
        ]
        order = replace(order, lines=tuple(lines))
        tags = tags_from_note(order.buyer_note)
        placement = place(order, tags, unknown)
        if existing is None:
            new = await self._take_new(order, tags, placement)
            if new is not None:
                return self._ready(new)
        saved = await asyncio.to_thread(self.store.save, order, tags, placement, existing)
        return self._ready(await self._settle_stock(saved))

    def _ready(self, saved: Saved) -> Saved:
        """Tell routing when a paid order outside review was taken in."""
        stored = saved.stored
        if (
            self.on_ready is not None
            and stored.order.status is OrderStatus.PAID
            and stored.queue != REVIEW
        ):
            self.on_ready()
        return saved

    def _look_up_many(
        self, orders: Sequence[PlatformOrder]
    ) -> list[tuple[dict[str, str], StoredOrder | None]]:
        """The SKU mappings and stored copies of many incoming orders, in two queries."""
        mapped = self._master.resolve_many(
            [(o.platform, o.shop_id, [ln.platform_sku_id for ln in o.lines]) for o in orders]
        )
        found = self.store.find_many([(o.platform, o.shop_id, o.platform_order_id) for o in orders])
        return list(zip(mapped, found, strict=True))

    async def _take_new(
        self, order: PlatformOrder, tags: list[str], placement: Placement
    ) -> Saved | None:
        """Hold a new order's stock, then store it; None if another copy was stored first."""
        order_id = new_order_id()
        held: Reservation | None = None
        want = lines_to_hold(order)
        if (
            self._inventory is not None
            and placement.queue != REVIEW
            and holds_stock(order.status)
            and want
        ):
            try:
                held = await self._inventory.reserve(
                    order_id, [LineInput(sku, qty) for sku, qty in want]
                )
            except InsufficientStock as err:
                placement = Placement(REVIEW, (f"OUT_OF_STOCK: {err}",))
            except (InventoryError, ShardUnavailable) as err:
                # Stored anyway; its hold is retried on the next copy or by a person.
                placement = Placement(REVIEW, (f"NOT_HELD: {err}",))
        hold = _held_event(order_id, held) if held is not None else None
        stored = await self._inserts.submit(NewOrder(order_id, order, tuple(tags), placement, hold))
        if stored is None:
            if held is not None and self._inventory is not None:
                with contextlib.suppress(InventoryError, ShardUnavailable):
                    await self._inventory.release(order_id)
            return None
        plan = after_sale_plan(None, order)
        if plan:
            await self._follow_after_sale(stored, plan)
        return Saved(stored, False)

    async def _settle_stock(self, saved: Saved) -> Saved:
        """Make the stock held for an order match what it now needs.

        Paid and unshipped: hold its lines (less any being refunded); cancelled or closed:
        give the hold back; shipped: commit it. Returns to expect and replacements to send
        follow from after-sale requests new in this copy.
        """
        stored = saved.stored
        before = saved.before
        if self._inventory is not None:
            stored = await self._adjust_hold(stored, before, repeat=saved.duplicate and not before)
        plan = after_sale_plan(before.order if before else None, stored.order)
        if plan:
            await self._follow_after_sale(stored, plan)
        return Saved(stored, saved.duplicate, saved.note, before)

    async def _adjust_hold(
        self, stored: StoredOrder, before: StoredOrder | None, *, repeat: bool
    ) -> StoredOrder:
        assert self._inventory is not None
        order = stored.order
        actor = PLATFORM_ACTOR.format(order.platform)
        if repeat:
            return stored  # an unchanged copy: what it asked for was done the first time
        if releases_stock(order.status):
            await self._release(stored, actor, f"order {order.status.value.lower()}")
            return stored
        if shipped(order.status):
            # Commit only what the hub held: an order first seen shipped left without it.
            if before is not None and not shipped(before.order.status):
                return await self._commit(stored, actor)
            return stored
        if not holds_stock(order.status) or stored.queue == REVIEW:
            return stored
        want = lines_to_hold(order)
        had = (
            lines_to_hold(before.order)
            if before is not None and holds_stock(before.order.status) and before.queue != REVIEW
            else None
        )
        if not want:
            await self._release(stored, actor, "every line is being refunded")
            return stored
        if had is not None and had != want:
            # The lines to hold changed (a refund before shipment, or one withdrawn): the
            # old hold goes back whole and the rest is held anew under a new key.
            await self._release(stored, actor, "lines changed by an after-sale request")
            rekeyed = await asyncio.to_thread(
                self.store.change,
                stored,
                actor="hub",
                events=[],
                hold_key=f"{stored.order_id}~{stored.version}",
            )
            stored = rekeyed or await self._get(stored.order_id)
        return await self._hold(stored, want, record=had != want)

    async def _hold(
        self, stored: StoredOrder, want: Sequence[tuple[str, int]], *, record: bool
    ) -> StoredOrder:
        assert self._inventory is not None
        lines = [LineInput(sku, qty) for sku, qty in want]
        try:
            held = await self._inventory.reserve(stored.hold_key, lines)
        except InsufficientStock as err:
            return await asyncio.to_thread(
                self.store.send_to_review, stored, f"OUT_OF_STOCK: {err}"
            )
        except (InventoryError, ShardUnavailable) as err:
            # The order is stored; its hold is retried on the next copy or by a person.
            return await asyncio.to_thread(self.store.send_to_review, stored, f"NOT_HELD: {err}")
        if record and held.status is ReservationStatus.HELD:
            change, details = _held_event(stored.hold_key, held)
            await asyncio.to_thread(self.store.record, stored, [change], "hub", details)
        return stored

    async def _release(self, stored: StoredOrder, actor: str, why: str) -> None:
        assert self._inventory is not None
        try:
            held = await self._inventory.release(stored.hold_key)
        except (ReservationNotFound, ReservationClosed):
            return  # nothing held, or shipped already: nothing to give back
        if self.on_released is not None:
            await self.on_released(stored.order_id)
        if held.status is ReservationStatus.RELEASED and held.closed_at is not None:
            await asyncio.to_thread(
                self.store.record,
                stored,
                [Change("stock_released", why)],
                actor,
                {"hold_key": stored.hold_key, "lines": _held(held)},
            )

    async def _commit(self, stored: StoredOrder, actor: str) -> StoredOrder:
        """The goods left: the hold becomes a shipment (held anew first if it ran out)."""
        assert self._inventory is not None
        try:
            done = await self._inventory.commit(stored.hold_key)
        except (ReservationNotFound, ReservationClosed) as err:
            # The hold ran out or never was (the order shipped from review, say): hold its
            # lines under a shipping key and commit that, or let a person look.
            key = f"{stored.order_id}~ship"
            lines = [LineInput(sku, qty) for sku, qty in lines_to_hold(stored.order)]
            try:
                if not lines:
                    raise InvalidRequest("no lines to commit", field="lines") from err
                await self._inventory.reserve(key, lines)
                done = await self._inventory.commit(key)
            except (InventoryError, ShardUnavailable) as again:
                return await asyncio.to_thread(
                    self.store.send_to_review,
                    stored,
                    f"STOCK_NOT_COMMITTED: shipped, but its stock could not be taken ({again})",
                )
        await asyncio.to_thread(
            self.store.record,
            stored,
            [Change("stock_committed", "the goods left")],
            actor,
            {"hold_key": done.order_id, "lines": _held(done)},
        )
        return stored

    async def _follow_after_sale(self, stored: StoredOrder, plan: AfterSalePlan) -> None:
        """Tell the warehouses of returns; create the outbound orders for replacements."""
        order = stored.order
        actor = PLATFORM_ACTOR.format(order.platform)
        if plan.returns:
            await asyncio.to_thread(
                self.store.record,
                stored,
                [Change("return_expected", "goods are coming back")],
                actor,
                {"lines": [_line(ln) for ln in plan.returns]},
            )
        for index, line in enumerate(order.lines):
            if line not in plan.outbound:
                continue
            follow = replace(
                order,
                platform_order_id=follow_up_id(order, line, index),
                platform_status="",
                status=OrderStatus.PAID,
                after_sale_type=AfterSaleType.NONE,
                buyer_note="",
                seller_note=(
                    f"{line.after_sale_type.value.lower()} for {order.platform_order_id} "
                    f"line {line.platform_line_id or index + 1}"
                ),
                lines=(
                    replace(
                        line,
                        after_sale_type=AfterSaleType.NONE,
                        after_sale_state=AfterSaleState.NONE,
                        unit_price_fen=0,
                        paid_fen=0,
                    ),
                ),
                shipping_fee_fen=0,
                total_paid_fen=0,
            )
            saved = await asyncio.to_thread(
                self.store.save, follow, [REPLACEMENT], Placement("", ())
            )
            if not saved.duplicate:
                await asyncio.to_thread(
                    self.store.record,
                    stored,
                    [Change("outbound_created", f"replacement order {saved.stored.order_id}")],
                    actor,
                    {"order_id": saved.stored.order_id, "line": _line(line)},
                )
            await self._settle_stock(saved)

    # ------------------------------------------------------------------ actions

    async def act(
        self,
        order_id: str,
        action: OrderAction,
        *,
        actor: str,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> StoredOrder:
        """Move an order on (ship, deliver, hold, cancel …), recorded under ``actor``."""
        while True:
            current = await self._get(order_id)
            target = next_status(current.order, current.queue, action)
            if action is OrderAction.CANCEL and self._inventory is not None:
                await self._release(current, actor, reason or "cancelled")
            written = await asyncio.to_thread(
                self.store.change,
                current,
                actor=actor,
                events=[Change(target.value.lower(), reason)],
                order=replace(current.order, status=target),
                details=details,
            )
            if written is None:
                continue  # changed meanwhile: decide again on the newer copy
            if action is OrderAction.SHIP and self._inventory is not None:
                written = await self._commit(written, actor)
            return written

    async def approve(self, order_id: str, *, actor: str, note: str = "") -> StoredOrder:
        """Let an order out of review; unknown SKUs must be mapped first."""
        while True:
            current = await self._get(order_id)
            if current.queue != REVIEW:
                raise IllegalTransition(f"order {order_id} is not in review")
            order = current.order
            mapped = await asyncio.to_thread(
                self._master.resolve_platform_skus,
                order.platform,
                order.shop_id,
                [ln.platform_sku_id for ln in order.lines],
            )
            unknown = sorted({ln.platform_sku_id for ln in order.lines} - set(mapped))
            if unknown:
                raise IllegalTransition(
                    "map these platform SKUs with MapPlatformSku before approving: "
                    + ", ".join(unknown)
                )
            order = replace(
                order,
                lines=tuple(replace(ln, sku=mapped[ln.platform_sku_id]) for ln in order.lines),
            )
            tags = [*current.tags, REVIEWED] if REVIEWED not in current.tags else current.tags
            written = await asyncio.to_thread(
                self.store.change,
                current,
                actor=actor,
                events=[Change("approved", note or "; ".join(current.review_reasons))],
                order=order,
                queue=queue_for(order, tags),
                review_reasons=(),
                tags=tags,
            )
            if written is None:
                continue
            await asyncio.to_thread(self.store.resolve_stock_reviews, order_id)
            return self._ready(await self._settle_stock(Saved(written, False))).stored

    async def reject(self, order_id: str, *, actor: str, reason: str) -> StoredOrder:
        """Refuse an order in review: it is cancelled and its stock goes back."""
        if not reason.strip():
            raise InvalidRequest("a rejection needs a reason", field="reason")
        while True:
            current = await self._get(order_id)
            if current.queue != REVIEW:
                raise IllegalTransition(f"order {order_id} is not in review")
            target = next_status(current.order, "", OrderAction.CANCEL)
            if self._inventory is not None:
                await self._release(current, actor, "rejected in review")
            written = await asyncio.to_thread(
                self.store.change,
                current,
                actor=actor,
                events=[Change("rejected", reason), Change(target.value.lower(), reason)],
                order=replace(current.order, status=target),
                queue="",
            )
            if written is not None:
                return written

    async def review_stock_problems(self) -> int:
        """Send orders whose holds the warehouses could not keep to review; how many moved.

        A shard that finds a warehouse short and no other able to take a hold records a
        ``review_items`` row (``STOCK_SHORTFALL``) under the hold's key; the order it
        belongs to waits in review until a person approves it again.
        """
        moved = 0
        for key, reason, detail in await asyncio.to_thread(self.store.open_stock_reviews):
            stored = await asyncio.to_thread(self.store.get, key.split("~", 1)[0])
            if stored is None:
                continue  # a reservation made directly through Reserve, not an order
            text = f"{reason}: {detail}"
            if stored.queue == REVIEW and text in stored.review_reasons:
                continue
            await asyncio.to_thread(self.store.send_to_review, stored, text)
            moved += 1
        return moved

    async def history(self, order_id: str) -> list[OrderEvent]:
        """What happened to an order, oldest first."""
        await self._get(order_id)
        return await asyncio.to_thread(self.store.history, order_id)

    async def _get(self, order_id: str) -> StoredOrder:
        order_id = order_id.strip()
        if not order_id:
            raise InvalidRequest("order_id is required", field="order_id")
        stored = await asyncio.to_thread(self.store.get, order_id)
        if stored is None:
            raise OrderNotFound(f"no order {order_id!r}", field="order_id")
        return stored

    def _keep(
        self, platform: str, shop_id: str, payload: str | bytes, err: TranslationError
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self._dead.keep(
            [
                NewLetter(
                    source=SOURCE,
                    subject=f"ingest.{platform}.{shop_id}",
                    stream="ingest",
                    stream_seq=time.time_ns(),
                    event_id="",
                    headers={"platform": platform, "shop_id": shop_id},
                    payload=data,
                    error=UNTRANSLATABLE,
                    reason=str(err),
                )
            ]
        )


def _held_event(hold_key: str, held: Reservation) -> tuple[Change, dict[str, Any]]:
    """The ``stock_held`` event of a hold and its details."""
    change = Change("stock_held", f"until {held.expires_at.isoformat()}")
    return change, {"hold_key": hold_key, "lines": _held(held)}


def _held(reservation: Reservation) -> list[dict[str, Any]]:
    return [
        {"sku": ln.sku, "quantity": ln.quantity, "warehouse_id": ln.warehouse_id}
        for ln in reservation.lines
    ]


def _line(line: OrderLine) -> dict[str, Any]:
    return {
        "platform_line_id": line.platform_line_id,
        "sku": line.sku,
        "platform_sku_id": line.platform_sku_id,
        "quantity": line.quantity,
        "after_sale_type": line.after_sale_type.value,
    }
