"""WmsService: dead letters from the WMS sync, and where the sync stands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from hub.api import convert
from hub.api.errors import abort, invalid
from hub.relay import OutboxRelay, backlog
from hub.store.dead_letters import DeadLetters, Letter, LetterStatus, ReplayOutcome
from hub.wms_sync import SOURCE as WMS_SOURCE
from hub.wms_sync import WmsSync
from orderhub.v1 import wms_pb2, wms_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
#: Replays kept platform payloads (``OrderIntake.replay``).
Replayer = Callable[[Sequence[Letter]], Awaitable[list[ReplayOutcome]]]

_STATUS_TO_PB = {
    LetterStatus.OPEN: wms_pb2.DEAD_LETTER_STATUS_OPEN,
    LetterStatus.REPLAYED: wms_pb2.DEAD_LETTER_STATUS_REPLAYED,
    LetterStatus.DISCARDED: wms_pb2.DEAD_LETTER_STATUS_DISCARDED,
}
_PB_TO_STATUS = {v: k for k, v in _STATUS_TO_PB.items()}
MAX_PAGE = 1000
MAX_REPLAY = 10_000


def dead_letter(letter: Letter) -> wms_pb2.DeadLetter:
    """A dead letter message."""
    return wms_pb2.DeadLetter(
        letter_id=letter.letter_id,
        subject=letter.subject,
        stream=letter.stream,
        stream_sequence=letter.stream_seq,
        event_id=letter.event_id,
        error=letter.error,
        reason=letter.reason,
        status=_STATUS_TO_PB[letter.status],
        attempts=letter.attempts,
        received_at=convert.timestamp(letter.received_at),
        updated_at=convert.timestamp(letter.updated_at),
        headers=letter.headers,
        payload=letter.payload,
        source=letter.source,
    )


class WmsServicer(wms_pb2_grpc.WmsServiceServicer):
    """Dead letters and sync status."""

    def __init__(
        self,
        sync: WmsSync,
        dead_letters: DeadLetters,
        relay: OutboxRelay,
        replay_orders: Replayer | None = None,
        replayers: dict[str, Replayer] | None = None,
    ) -> None:
        self._sync = sync
        self._replay_orders = replay_orders
        #: Replayers of other sources (``carrier`` …); orders replay the rest.
        self._replayers = dict(replayers or {})
        self._dead = dead_letters
        self._relay = relay

    async def ListDeadLetters(
        self, request: wms_pb2.ListDeadLettersRequest, context: Context
    ) -> wms_pb2.ListDeadLettersResponse:
        status = LetterStatus.OPEN
        if request.status != wms_pb2.DEAD_LETTER_STATUS_UNSPECIFIED:
            if request.status not in _PB_TO_STATUS:
                await abort(context, invalid("status", f"unknown status {request.status}"))
            status = _PB_TO_STATUS[request.status]
        if request.page_size < 0:
            await abort(context, invalid("page_size", "page_size must not be negative"))
        size = min(request.page_size or 100, MAX_PAGE)
        after = 0
        if request.page_token:
            try:
                after = int(request.page_token)
            except ValueError:
                await abort(context, invalid("page_token", "page_token is not one we gave out"))
        letters = await asyncio.to_thread(
            self._dead.listing,
            status,
            after=after,
            limit=size + 1,
            source=request.source.strip().lower(),
        )
        more = len(letters) > size
        letters = letters[:size]
        return wms_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter(x) for x in letters],
            next_page_token=str(letters[-1].letter_id) if more else "",
        )

    async def ReplayDeadLetters(
        self, request: wms_pb2.ReplayDeadLettersRequest, context: Context
    ) -> wms_pb2.ReplayDeadLettersResponse:
        if request.letter_ids and request.all_open:
            await abort(context, invalid("letter_ids", "give letter_ids or all_open, not both"))
        if request.all_open:
            letters = await asyncio.to_thread(self._dead.listing, limit=MAX_REPLAY)
        elif request.letter_ids:
            if len(request.letter_ids) > MAX_REPLAY:
                await abort(context, invalid("letter_ids", f"at most {MAX_REPLAY} at a time"))
            letters = await asyncio.to_thread(self._dead.get, list(request.letter_ids))
            missing = set(request.letter_ids) - {x.letter_id for x in letters}
            if missing:
                await abort(
                    context, invalid("letter_ids", f"no dead letters {sorted(missing)[:10]}")
                )
        else:
            await abort(context, invalid("letter_ids", "give letter_ids or set all_open"))
        outcomes = await self._replay(letters)
        return wms_pb2.ReplayDeadLettersResponse(
            results=[
                wms_pb2.ReplayResult(
                    letter_id=o.letter_id,
                    status=_STATUS_TO_PB[o.status],
                    duplicate=o.duplicate,
                    error=o.error,
                    reason=o.reason,
                )
                for o in outcomes
            ]
        )

    async def _replay(self, letters: Sequence[Letter]) -> list[ReplayOutcome]:
        """Each letter replayed by the part of the hub it came from, answers in order."""
        stock = [x for x in letters if x.source == WMS_SOURCE]
        orders = [x for x in letters if x.source != WMS_SOURCE and x.source not in self._replayers]
        done = {o.letter_id: o for o in await self._sync.replay(stock)} if stock else {}
        for source, replayer in self._replayers.items():
            mine = [x for x in letters if x.source == source]
            if mine:
                done.update({o.letter_id: o for o in await replayer(mine)})
        if orders:
            if self._replay_orders is None:
                for x in orders:
                    done[x.letter_id] = ReplayOutcome(
                        x.letter_id, x.status, reason="orders cannot be replayed here"
                    )
            else:
                done.update({o.letter_id: o for o in await self._replay_orders(orders)})
        return [done[x.letter_id] for x in letters]

    async def DiscardDeadLetters(
        self, request: wms_pb2.DiscardDeadLettersRequest, context: Context
    ) -> wms_pb2.DiscardDeadLettersResponse:
        if not request.letter_ids:
            await abort(context, invalid("letter_ids", "letter_ids is required"))
        count = await asyncio.to_thread(
            self._dead.discard, list(request.letter_ids), request.reason.strip()
        )
        return wms_pb2.DiscardDeadLettersResponse(discarded=count)

    async def GetSyncStatus(
        self, request: wms_pb2.GetSyncStatusRequest, context: Context
    ) -> wms_pb2.GetSyncStatusResponse:
        status = await self._sync.status()
        counters = self._sync.counters
        open_letters, outbox = await asyncio.gather(
            asyncio.to_thread(self._dead.count_open),
            asyncio.to_thread(backlog, self._relay.engine),
        )
        answer = wms_pb2.GetSyncStatusResponse(
            stream=status["stream"],
            consumer=status["consumer"],
            connected=status["connected"],
            pending=status["pending"],
            ack_pending=status["ack_pending"],
            applied=counters.applied,
            duplicates=counters.duplicates,
            dead_lettered=counters.dead_lettered,
            open_dead_letters=open_letters,
            outbox_backlog=outbox,
        )
        if counters.last_applied_at is not None:
            answer.last_applied_at.CopyFrom(convert.timestamp(counters.last_applied_at))
        return answer
