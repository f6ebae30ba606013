"""Orders in: translate, map SKUs, tag, place in a queue, store once.

A payload that cannot be translated is kept as a dead letter with the reason and the
caller is told which field is wrong; nothing is stored half.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from adapters import registry
from hub.domain.intake import place, tags_from_note
from hub.domain.inventory import InvalidRequest
from hub.domain.orders import TranslationError
from hub.store.dead_letters import DeadLetters, NewLetter
from hub.store.master_data import MasterData
from hub.store.orders import OrderStore, Saved

SOURCE = "orders"


class OrderIntake:
    """Takes platform orders into the hub."""

    def __init__(self, store: OrderStore, master: MasterData, dead_letters: DeadLetters) -> None:
        self.store = store
        self._master = master
        self._dead = dead_letters

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
        lines = []
        unknown: list[str] = []
        for line in order.lines:
            sku = await asyncio.to_thread(
                self._master.resolve_platform_sku, platform, shop_id, line.platform_sku_id
            )
            if sku is None:
                unknown.append(line.platform_sku_id)
            lines.append(replace(line, sku=sku or ""))
        order = replace(order, lines=tuple(lines))
        tags = tags_from_note(order.buyer_note)
        placement = place(order, tags, unknown)
        return await asyncio.to_thread(self.store.save, order, tags, placement)

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
