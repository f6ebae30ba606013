"""Orders in: translate, map SKUs, tag, place in a queue, store once, hold the stock.

A payload that cannot be translated is kept as a dead letter with the reason and the
caller is told which field is wrong; nothing is stored half. A paid order whose SKUs are
all known has its stock held at once (under the hub's order id); when there is not enough,
it waits in review saying so. A cancelled or closed order gives its hold back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

from adapters import registry
from hub.domain.intake import REVIEW, holds_stock, place, releases_stock, tags_from_note
from hub.domain.inventory import (
    InsufficientStock,
    InvalidRequest,
    InventoryError,
    ReservationClosed,
    ReservationNotFound,
)
from hub.domain.orders import TranslationError
from hub.inventory import Inventory, LineInput, ShardUnavailable
from hub.store.dead_letters import DeadLetters, NewLetter
from hub.store.master_data import MasterData
from hub.store.orders import OrderStore, Saved

SOURCE = "orders"


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
            field = "platform" if err.field == "platform" else f"payload.{err.field or ''}"
            raise InvalidRequest(
                f"the {platform} order cannot be translated ({err}); it is kept as a dead letter",
                field=field.rstrip("."),
            ) from err
        mapped = await asyncio.to_thread(
            self._master.resolve_platform_skus,
            platform,
            shop_id,
            [line.platform_sku_id for line in order.lines],
        )
        lines = [replace(line, sku=mapped.get(line.platform_sku_id, "")) for line in order.lines]
        unknown = [
            line.platform_sku_id for line in order.lines if line.platform_sku_id not in mapped
        ]
        order = replace(order, lines=tuple(lines))
        tags = tags_from_note(order.buyer_note)
        placement = place(order, tags, unknown)
        saved = await asyncio.to_thread(self.store.save, order, tags, placement)
        return await self._settle_stock(saved)

    async def _settle_stock(self, saved: Saved) -> Saved:
        """Hold a paid order's stock, or give a cancelled one's back."""
        if self._inventory is None:
            return saved
        stored = saved.stored
        order = stored.order
        if releases_stock(order.status):
            # Nothing held, or already shipped: nothing to give back.
            with contextlib.suppress(ReservationNotFound, ReservationClosed):
                await self._inventory.release(stored.order_id)
            return saved
        if not holds_stock(order.status) or stored.queue == REVIEW:
            return saved
        lines = [LineInput(ln.sku, ln.quantity) for ln in order.lines]
        try:
            await self._inventory.reserve(stored.order_id, lines)
        except InsufficientStock as err:
            reason = f"OUT_OF_STOCK: {err}"
            held = await asyncio.to_thread(self.store.send_to_review, stored, reason)
            return Saved(held, saved.duplicate, reason)
        except (InventoryError, ShardUnavailable) as err:
            # The order is stored; its hold is retried on the next copy or by a person.
            reason = f"NOT_HELD: {err}"
            held = await asyncio.to_thread(self.store.send_to_review, stored, reason)
            return Saved(held, saved.duplicate, reason)
        return saved

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
                    error="UNTRANSLATABLE",
                    reason=str(err),
                )
            ]
        )
