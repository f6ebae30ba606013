"""The hub's side of inventory: batching per shard and reservations across shards.

Concurrent requests for the same shard ride one actor call (up to ``max_batch``
commands, ``max_in_flight`` calls at a time per shard). A reservation whose SKUs live
in one shard is a single command; one spanning shards is prepared on the other shards
and decided by the primary shard (see :mod:`hub.domain.inventory`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Engine

from hub.domain.inventory import (
    InvalidRequest,
    InventoryError,
    LevelView,
    LineRequest,
    Reservation,
    ReservationClosed,
    ReservationConflict,
    ReservationNotFound,
    ReservationStatus,
    ReservedLine,
    StockUndecided,
    primary_sku_of,
)
from hub.domain.inventory_ops import (
    ApplyMovement,
    Availability,
    Commit,
    Follow,
    GetReservation,
    HeldLines,
    MoveHolds,
    Op,
    Prepare,
    Release,
    Reserve,
    SetStock,
    UpsertSku,
    UpsertWarehouse,
)
from hub.domain.movements import MovementResult, StockMovement
from hub.domain.sharding import shard_of
from hub.store.inventory_store import find_primary_sku

log = logging.getLogger("orderhub.inventory")

DEFAULT_TTL_SECONDS = 900
MAX_TTL_SECONDS = 7 * 24 * 3600
#: Before answering a refusal that undecided cross-shard holds could turn around
#: (StockUndecided), wait this long and ask again, each time; then refuse.
UNDECIDED_WAITS_S = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)
T = TypeVar("T")
C = TypeVar("C")


class ShardUnavailable(Exception):
    """A shard actor failed during a call (it restarts); the request may be retried."""


class ShardLink(Generic[C]):
    """Sends commands to one shard actor, many per call (``apply(list of commands)``)."""

    def __init__(self, handle: Any, *, max_batch: int = 1000, max_in_flight: int = 1) -> None:
        self.handle = handle
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[C, asyncio.Future[object]]] = []
        self._in_flight = 0
        self.calls = 0
        self.ops = 0

    async def call(self, op: C) -> object:
        """Send one command (batched with others) and return its answer or raise its error."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        self._kick()
        result = await future
        if isinstance(result, InventoryError):
            raise result
        return result

    async def call_many(self, ops: Sequence[C]) -> list[object]:
        """Send many commands at once; answers (or errors, as values) in order."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[object]] = [loop.create_future() for _ in ops]
        self._queue.extend(zip(ops, futures, strict=True))
        self._kick()
        results = await asyncio.gather(*futures, return_exceptions=True)
        return list(results)

    def _kick(self) -> None:
        """Send what is queued, as far as the in-flight limit allows."""
        while self._queue and self._in_flight < self._max_in_flight:
            self._send()

    def _send(self) -> None:
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        self._in_flight += 1
        self.calls += 1
        self.ops += len(batch)
        asyncio.get_running_loop().create_task(self._round_trip(batch))

    async def _round_trip(self, batch: list[tuple[C, asyncio.Future[object]]]) -> None:
        try:
            results = await self.handle.apply.remote([op for op, _ in batch])
        except Exception as err:  # the actor died or could not be reached
            log.warning("inventory shard call failed: %s", err)
            for _, future in batch:
                if not future.done():
                    future.set_exception(ShardUnavailable(str(err)))
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._kick()


class AvailabilityFeed:
    """Level changes from some shards, merged; iterate it, close it when done."""

    def __init__(self, skus: frozenset[str]) -> None:
        self._skus = skus
        self._queue: asyncio.Queue[LevelView] = asyncio.Queue(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []

    async def follow(self, links: Sequence[ShardLink[Op]]) -> None:
        """Start following each shard's feed from its current position."""
        starts = await asyncio.gather(
            *(ln.handle.changes_since.remote("", -1, 0.0) for ln in links)
        )
        for link, (incarnation, position, _) in zip(links, starts, strict=True):
            self._tasks.append(asyncio.create_task(self._pump(link, incarnation, position)))

    async def _pump(self, link: ShardLink[Op], incarnation: str, position: int) -> None:
        while True:
            try:
                incarnation, position, views = await link.handle.changes_since.remote(
                    incarnation, position, 5.0
                )
            except Exception as err:  # the shard is restarting; pick up its new feed
                log.info("availability feed interrupted: %s", err)
                await asyncio.sleep(0.2)
                continue
            for view in views:
                if not self._skus or view.sku in self._skus:
                    await self._queue.put(view)

    def __aiter__(self) -> AvailabilityFeed:
        return self

    async def __anext__(self) -> LevelView:
        return await self._queue.get()

    def close(self) -> None:
        """Stop following the shards."""
        for task in self._tasks:
            task.cancel()


@dataclass(frozen=True, slots=True)
class LineInput:
    """A line as a caller asks for it."""

    sku: str
    quantity: int
    warehouse_id: str = ""


@dataclass(frozen=True, slots=True)
class _Plan:
    """One reservation attempt: its id, deciding SKU, expiry and lines per shard."""

    reservation_id: str
    primary_sku: str
    primary_index: int
    expires_at: datetime
    by_shard: dict[int, tuple[LineRequest, ...]]

    def reserve_alone(self, order_id: str) -> Reserve:
        """The command for an attempt whose lines all live in the primary shard."""
        return Reserve(
            order_id,
            self.reservation_id,
            self.by_shard[self.primary_index],
            self.expires_at,
            self.primary_sku,
        )


class ReservationTally(Protocol):
    """Told how each reservation, release and commit answered (the hub's metrics)."""

    def reserved(self, new: bool) -> None: ...

    def refused(self, err: BaseException) -> None: ...

    def decided(self, decision: str) -> None: ...

    def asked_again(self) -> None: ...


class NoTally:
    """A tally that counts nothing (the default; subclass it to hear of some answers)."""

    def reserved(self, new: bool) -> None:
        pass

    def refused(self, err: BaseException) -> None:
        pass

    def decided(self, decision: str) -> None:
        pass

    def asked_again(self) -> None:
        pass


class Inventory:
    """Reservations, stock counts and availability over the shard actors."""

    def __init__(self, links: Sequence[ShardLink[Op]], engine: Engine) -> None:
        self.links = list(links)
        #: Counts every answer: new holds, repeats, refusals, releases and commits.
        self.tally: ReservationTally = NoTally()
        self._engine = engine
        self._primaries: OrderedDict[str, str] = OrderedDict()
        self._reserving: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def shard_count(self) -> int:
        """How many shards own the SKUs."""
        return len(self.links)

    def link_for(self, sku: str) -> ShardLink[Op]:
        """The link to the shard that owns ``sku``."""
        return self.links[shard_of(sku, len(self.links))]

    async def _call(self, link: ShardLink[Op], op: Op, kind: type[T]) -> T:
        result = await link.call(op)
        assert isinstance(result, kind), f"{type(op).__name__} answered {type(result).__name__}"
        return result

    # ------------------------------------------------------------------ master data

    async def register_sku(self, sku: str, safety_stock: int, low_stock_threshold: int = 0) -> None:
        """Tell the owning shard about a SKU (after it is stored)."""
        await self.link_for(sku).call(UpsertSku(sku, safety_stock, low_stock_threshold))

    async def register_warehouse(self, warehouse_id: str) -> None:
        """Tell every shard about a warehouse (after it is stored)."""
        await asyncio.gather(*(link.call(UpsertWarehouse(warehouse_id)) for link in self.links))

    # ------------------------------------------------------------------ stock

    async def set_stock(
        self,
        sku: str,
        warehouse_id: str,
        on_hand: int,
        *,
        safety_stock: int | None = None,
        reason: str = "",
    ) -> LevelView:
        """Set an absolute on-hand count."""
        op = SetStock(sku, warehouse_id, on_hand, safety_stock, reason)
        return await self._call(self.link_for(sku), op, LevelView)

    async def apply_movements(
        self, movements: Sequence[StockMovement]
    ) -> list[MovementResult | Exception]:
        """Apply warehouse movements, each exactly once, in order per SKU.

        Each answer is the movement's result, the refusal (an :class:`InventoryError`:
        unknown SKU or warehouse, bad quantity) or :class:`ShardUnavailable` (try again).
        """
        by_shard: dict[int, list[int]] = {}
        for i, m in enumerate(movements):
            by_shard.setdefault(shard_of(m.sku, self.shard_count), []).append(i)
        answers: list[MovementResult | Exception] = [RuntimeError("no answer")] * len(movements)

        async def to_shard(index: int, positions: list[int]) -> None:
            ops = [ApplyMovement(movements[i]) for i in positions]
            results = await self.links[index].call_many(ops)
            for i, result in zip(positions, results, strict=True):
                if isinstance(result, MovementResult | Exception):
                    answers[i] = result
                else:
                    answers[i] = RuntimeError(f"unexpected answer {result!r}")

        await asyncio.gather(*(to_shard(i, pos) for i, pos in by_shard.items()))
        return answers

    async def availability(self, sku: str, warehouse_ids: Sequence[str] = ()) -> list[LevelView]:
        """Levels of a SKU per warehouse."""
        result = await self.link_for(sku).call(Availability(sku, tuple(warehouse_ids)))
        assert isinstance(result, list)
        return result

    async def subscribe(self, skus: Sequence[str] = ()) -> AvailabilityFeed:
        """Subscribe to level changes as they become durable; changes after this returns count."""
        wanted = frozenset(skus)
        links = [self.link_for(s) for s in wanted] if wanted else self.links
        feed = AvailabilityFeed(wanted)
        await feed.follow(list({id(x): x for x in links}.values()))
        return feed

    # ------------------------------------------------------------------ reservations

    async def reserve(
        self, order_id: str, lines: Sequence[LineInput], ttl_seconds: int = 0
    ) -> Reservation:
        """Hold every line or none; the same order again gets the same reservation."""
        try:
            self._validate(order_id, lines, ttl_seconds)
        except InvalidRequest as err:
            self.tally.refused(err)
            raise
        # One attempt per order at a time in this process; duplicates wait, then get
        # the idempotent answer.
        while (pending := self._reserving.get(order_id)) is not None:
            await asyncio.shield(pending)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reserving[order_id] = done
        try:
            reservation, new = await self._reserve_settled(order_id, lines, ttl_seconds)
        except Exception as err:
            self.tally.refused(err)
            raise
        finally:
            del self._reserving[order_id]
            done.set_result(None)
        self.tally.reserved(new)
        return reservation

    async def _reserve_settled(
        self, order_id: str, lines: Sequence[LineInput], ttl_seconds: int
    ) -> tuple[Reservation, bool]:
        """:meth:`_reserve`, asked again while a refusal may be turned around by undecided
        holds (they are decided within milliseconds), so that a refusal means the stock is
        taken and not merely spoken for by an attempt that is about to fail."""
        for wait_s in UNDECIDED_WAITS_S:
            try:
                return await self._reserve(order_id, lines, ttl_seconds)
            except StockUndecided:
                self.tally.asked_again()
                await asyncio.sleep(wait_s)
        return await self._reserve(order_id, lines, ttl_seconds)

    async def reserve_many(
        self, requests: Sequence[tuple[str, Sequence[LineInput], int]]
    ) -> list[Reservation | Exception]:
        """Many independent reservations (order_id, lines, ttl): each answer or its error.

        Orders whose lines all live in one shard travel to it together, one command
        each, with no per-order coroutine; the rest take the cross-shard path.
        """
        answers: list[Reservation | Exception | None] = [None] * len(requests)
        by_link: dict[int, list[tuple[int, Reserve]]] = {}
        slow: list[int] = []
        seen: set[str] = set()
        now = datetime.now(UTC)
        for i, (order_id, lines, ttl) in enumerate(requests):
            try:
                self._validate(order_id, lines, ttl)
            except InvalidRequest as err:
                answers[i] = err
                self.tally.refused(err)
                continue
            plan = self._plan(lines, ttl, now)
            if (
                len(plan.by_shard) > 1
                or order_id in seen
                or order_id in self._reserving
                or self._reserved_otherwise(order_id, plan)
            ):
                slow.append(i)
                continue
            seen.add(order_id)
            by_link.setdefault(plan.primary_index, []).append((i, plan.reserve_alone(order_id)))

        async def to_shard(index: int, items: list[tuple[int, Reserve]]) -> None:
            results = await self.links[index].call_many([op for _, op in items])
            undecided: list[int] = []
            for (i, op), result in zip(items, results, strict=True):
                if isinstance(result, Reservation):
                    self._remember_primary(op.order_id, op.primary_sku)
                    answers[i] = result
                    self.tally.reserved(result.reservation_id == op.reservation_id)
                elif isinstance(result, StockUndecided):
                    undecided.append(i)
                else:
                    failed = result if isinstance(result, Exception) else RuntimeError(result)
                    answers[i] = failed
                    self.tally.refused(failed)
            if undecided:
                for _ in undecided:
                    self.tally.asked_again()
                await asyncio.sleep(UNDECIDED_WAITS_S[0])
                await asyncio.gather(*(one(i) for i in undecided))

        async def one(i: int) -> None:
            order_id, lines, ttl = requests[i]
            try:
                answers[i] = await self.reserve(order_id, lines, ttl)
            except (InventoryError, ShardUnavailable) as err:
                answers[i] = err

        await asyncio.gather(
            *(to_shard(index, items) for index, items in by_link.items()),
            *(one(i) for i in slow),
        )
        return [a if a is not None else RuntimeError("no answer") for a in answers]

    def _plan(self, lines: Sequence[LineInput], ttl_seconds: int, now: datetime) -> _Plan:
        """Number the lines, pick the deciding SKU, group the lines by owning shard."""
        by_shard: dict[int, list[LineRequest]] = {}
        for n, line in enumerate(lines, start=1):
            request = LineRequest(n, line.sku, line.quantity, line.warehouse_id)
            by_shard.setdefault(shard_of(line.sku, self.shard_count), []).append(request)
        primary_sku = primary_sku_of(line.sku for line in lines)
        return _Plan(
            reservation_id="rsv_" + uuid.uuid4().hex[:24],
            primary_sku=primary_sku,
            primary_index=shard_of(primary_sku, self.shard_count),
            expires_at=now + timedelta(seconds=ttl_seconds or DEFAULT_TTL_SECONDS),
            by_shard={i: tuple(reqs) for i, reqs in by_shard.items()},
        )

    def _reserved_otherwise(self, order_id: str, plan: _Plan) -> bool:
        """Whether this process saw the order reserved under a different deciding SKU."""
        known = self._primaries.get(order_id)
        return known is not None and known != plan.primary_sku

    @staticmethod
    def _validate(order_id: str, lines: Sequence[LineInput], ttl_seconds: int) -> None:
        if not order_id:
            raise InvalidRequest("order_id is required", field="order_id")
        if not lines:
            raise InvalidRequest("at least one line is required", field="lines")
        if ttl_seconds < 0 or ttl_seconds > MAX_TTL_SECONDS:
            raise InvalidRequest(
                f"ttl_seconds must be between 0 and {MAX_TTL_SECONDS}", field="ttl_seconds"
            )
        for line in lines:
            if not line.sku:
                raise InvalidRequest("every line needs a sku", field="lines.sku")
            if line.quantity <= 0:
                raise InvalidRequest(
                    f"quantity must be positive, got {line.quantity} for SKU {line.sku}",
                    field="lines.quantity",
                )

    async def _reserve(
        self, order_id: str, lines: Sequence[LineInput], ttl_seconds: int
    ) -> tuple[Reservation, bool]:
        """The order's reservation, and whether this attempt made it (not an earlier one)."""
        plan = self._plan(lines, ttl_seconds, datetime.now(UTC))
        if self._reserved_otherwise(order_id, plan):
            # The order was reserved with other SKUs: it keeps that reservation.
            return await self.get_reservation(order_id), False
        reservation_id = plan.reservation_id
        primary = self.links[plan.primary_index]
        if len(plan.by_shard) == 1:
            reservation = await self._call(primary, plan.reserve_alone(order_id), Reservation)
            self._remember_primary(order_id, plan.primary_sku)
            return reservation, reservation.reservation_id == reservation_id
        remote_lines = {i: reqs for i, reqs in plan.by_shard.items() if i != plan.primary_index}
        others = {index: self.links[index] for index in remote_lines}
        prepared = await asyncio.gather(
            *(
                self._call(
                    others[index],
                    Prepare(order_id, reservation_id, reqs, plan.expires_at, plan.primary_sku),
                    list,
                )
                for index, reqs in remote_lines.items()
            ),
            return_exceptions=True,
        )
        failure = next((p for p in prepared if isinstance(p, BaseException)), None)
        if isinstance(failure, ReservationConflict):
            # Another attempt holds these lines: maybe this order is reserved already.
            existing = await primary.call(GetReservation(order_id))
            if isinstance(existing, Reservation):
                await self._tell(others.values(), Follow(order_id, reservation_id, _ABORTED))
                return existing, False
        try:
            if failure is not None:
                raise failure
            remote: tuple[ReservedLine, ...] = tuple(
                line for part in prepared if isinstance(part, list) for line in part
            )
            decide = Reserve(
                order_id,
                reservation_id,
                plan.by_shard[plan.primary_index],
                plan.expires_at,
                plan.primary_sku,
                remote,
            )
            reservation = await self._call(primary, decide, Reservation)
        except BaseException:
            await self._tell(others.values(), Follow(order_id, reservation_id, _ABORTED))
            raise
        self._remember_primary(order_id, plan.primary_sku)
        # Another attempt for this order won the race: ours is void, its holds go back.
        outcome = _HELD if reservation.reservation_id == reservation_id else _ABORTED
        # The decision is durable in the primary; the others learn it in the background
        # (a shard that misses it asks the primary on its own sweep).
        self._background(self._tell(others.values(), Follow(order_id, reservation_id, outcome)))
        return reservation, outcome is _HELD

    async def release(self, order_id: str) -> Reservation:
        """Release an order's hold; the stock is available again at once."""
        return await self._decide(order_id, Release(order_id))

    async def commit(self, order_id: str) -> Reservation:
        """Commit an order's hold: on hand and reserved both drop."""
        return await self._decide(order_id, Commit(order_id))

    async def get_reservation(self, order_id: str) -> Reservation:
        """An order's reservation."""
        primary = await self._primary_link(order_id)
        result = await primary.call(GetReservation(order_id))
        if not isinstance(result, Reservation):
            raise ReservationNotFound(f"no reservation for order {order_id}", field="order_id")
        return await self._where_now(result)

    async def move_holds(
        self,
        order_id: str,
        moves: dict[int, str],
        *,
        why: str = "routing",
        hold: Reservation | None = None,
    ) -> Reservation:
        """Move whole held lines (line number → warehouse) and answer where the hold is now.

        Each shard moves its lines all or none, so a line is never half moved and its stock
        is never let go in between; lines of other shards may move or not on their own
        (the answer says where each line is). ``hold``, when the caller has just read it,
        saves reading it again.
        """
        reservation = hold if hold is not None else await self.get_reservation(order_id)
        if reservation.status is not ReservationStatus.HELD:
            raise ReservationClosed(
                f"order {order_id}'s hold is {reservation.status.value.lower()}",
                field="order_id",
            )
        by_shard: dict[int, list[tuple[int, str]]] = {}
        for line in reservation.lines:
            target = moves.get(line.line_no)
            if target and target != line.warehouse_id:
                by_shard.setdefault(shard_of(line.sku, self.shard_count), []).append(
                    (line.line_no, target)
                )
        if not by_shard:
            return reservation
        results = await asyncio.gather(
            *(
                self.links[i].call(MoveHolds(order_id, tuple(m), why))
                for i, m in sorted(by_shard.items())
            ),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures and len(failures) == len(results):
            raise failures[0]
        # Each shard that answered says where all of its lines of the order are now.
        return _placed(reservation, results)

    async def _where_now(self, reservation: Reservation) -> Reservation:
        """The reservation with each line's current warehouse.

        A line held by another shard than the primary may have moved since the primary
        recorded it (its warehouse ran short); the owning shard knows where it is now.
        """
        primary = shard_of(reservation.primary_sku, self.shard_count)
        others = sorted(
            {shard_of(ln.sku, self.shard_count) for ln in reservation.lines} - {primary}
        )
        if not others:
            return reservation
        parts = await asyncio.gather(
            *(
                self.links[i].call(HeldLines(reservation.order_id, reservation.reservation_id))
                for i in others
            ),
            return_exceptions=True,
        )
        return _placed(reservation, parts)

    async def _decide(self, order_id: str, op: Release | Commit) -> Reservation:
        if not order_id:
            raise InvalidRequest("order_id is required", field="order_id")
        primary = await self._primary_link(order_id)
        reservation = await self._call(primary, op, Reservation)
        self.tally.decided("released" if isinstance(op, Release) else "committed")
        others = {shard_of(ln.sku, self.shard_count) for ln in reservation.lines}
        others.discard(shard_of(reservation.primary_sku, self.shard_count))
        if others:
            follow = Follow(order_id, reservation.reservation_id, reservation.status)
            await self._tell([self.links[i] for i in sorted(others)], follow)
            return await self._where_now(reservation)
        return reservation

    async def _primary_link(self, order_id: str) -> ShardLink[Op]:
        primary_sku = self._primaries.get(order_id)
        if primary_sku is None:
            primary_sku = await asyncio.to_thread(find_primary_sku, self._engine, order_id)
        if primary_sku is None:
            raise ReservationNotFound(f"no reservation for order {order_id}", field="order_id")
        return self.link_for(primary_sku)

    def _remember_primary(self, order_id: str, primary_sku: str) -> None:
        self._primaries[order_id] = primary_sku
        if len(self._primaries) > 200_000:
            self._primaries.popitem(last=False)

    async def settle(self) -> None:
        """Wait for decisions still being passed to shards in the background."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell(self, links: Any, op: Op) -> None:
        """Send a decision to shards; one that misses it settles the line on its own sweep."""
        results = await asyncio.gather(*(link.call(op) for link in links), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("shard did not take %s: %s", type(op).__name__, result)


def _placed(reservation: Reservation, answers: Sequence[object]) -> Reservation:
    """The reservation with each line where the shards' answers (lists of lines) put it."""
    where = {
        ln.line_no: ln.warehouse_id
        for part in answers
        if isinstance(part, list)
        for ln in part
        if isinstance(ln, ReservedLine)
    }
    lines = tuple(
        replace(ln, warehouse_id=where.get(ln.line_no, ln.warehouse_id)) for ln in reservation.lines
    )
    return reservation if lines == reservation.lines else replace(reservation, lines=lines)


_HELD = ReservationStatus.HELD
_ABORTED = ReservationStatus.ABORTED
