"""Pull ingestion: one poller per shop pulls its orders from the platform's open API.

Each run asks for the orders modified in the window ``[cursor, min(now - lag, cursor +
max window)]``, page by page, fetches full orders where the list holds only part of them,
and hands each one to intake. An order intake cannot translate is already a dead letter:
it is counted and the window goes on. The cursor (table ``poll_cursors``) moves only when
the whole window is done, so a crash pulls the window again; intake is idempotent.

Calls are paced by a token bucket per shop (``rate_per_s``). A rate-limited or transient
failure is retried with capped exponential backoff and jitter, each failure counted in the
cursor row with its error; a window that still fails is tried again on a later run. A
credentials error (bad session or token) stops that shop's poller, with a log line and the
error kept in its cursor row, until a person fixes the shop and restarts the hub.

The platform specifics (signing, parameters, pages, error codes) live in
:mod:`adapters.openapi`; this module only sends, waits and counts.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx

from adapters import openapi
from adapters.openapi import ApiError, Credentials, ErrorKind, HttpRequest, OpenApi, Window
from adapters.openapi.base import ListPage, RawOrder
from adapters.openapi.windows import caught_up, next_window, pages_backwards, whole_second
from hub.domain.inventory import InvalidRequest
from hub.orders import OrderIntake
from hub.shops import Shop
from hub.store.poll_cursors import PollCursor, PollCursors

log = logging.getLogger("orderhub.pollers")

T = TypeVar("T")
Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
#: Called with each failed call's error (to record it) before any retry.
OnFailure = Callable[[ApiError], Awaitable[None]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait after failures: exponential, capped, with jitter."""

    #: First wait after a failed call, in seconds; each further failure doubles it.
    base_s: float = 1.0
    #: Longest wait between two tries of the same call.
    cap_s: float = 60.0
    #: Tries of one call before the run gives the window up (it is retried later).
    attempts: int = 5
    #: Longest wait between two failed runs.
    run_cap_s: float = 900.0

    def delay(self, failures: int, jitter: float) -> float:
        """The wait after the ``failures``-th failed try of a call (``jitter`` in [0, 1))."""
        return _jittered(min(self.cap_s, self.base_s * 2 ** (failures - 1)), jitter)

    def run_delay(self, failures: int, interval_s: float, jitter: float) -> float:
        """The wait after the ``failures``-th run in a row that failed."""
        step = max(interval_s, self.base_s)
        return _jittered(min(self.run_cap_s, step * 2 ** (failures - 1)), jitter)


def _jittered(ceiling: float, jitter: float) -> float:
    # Half fixed, half random: never a thundering herd, never an immediate retry.
    return ceiling / 2 + ceiling / 2 * jitter


class TokenBucket:
    """Paces one shop's calls at ``rate_per_s``, allowing a burst of one second's worth."""

    def __init__(self, rate_per_s: float, *, monotonic: Callable[[], float], sleep: Sleep) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.rate = rate_per_s
        self.capacity = max(1.0, rate_per_s)
        self._tokens = self.capacity
        self._monotonic = monotonic
        self._sleep = sleep
        self._at = monotonic()

    async def take(self) -> float:
        """Wait for a token and take it; returns the seconds waited."""
        waited = 0.0
        while True:
            now = self._monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return waited
            wait = (1 - self._tokens) / self.rate
            await self._sleep(wait)
            waited += wait


class PullFailed(Exception):
    """A call that did not succeed within its tries; the window's cursor did not move."""

    def __init__(self, shop: Shop, error: ApiError, attempts: int = 1) -> None:
        super().__init__(f"{shop.platform}/{shop.shop_id}: {error} (after {attempts} tries)")
        self.shop = shop
        self.error = error
        self.attempts = attempts

    @property
    def stops_shop(self) -> bool:
        """Whether polling this shop must stop until a person acts (not retryable)."""
        return not self.error.kind.retryable


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one run of a shop's poller did."""

    platform: str
    shop_id: str
    #: The window pulled; None when there was nothing to ask for yet.
    window: Window | None
    #: Distinct orders pulled in the window (dead letters included).
    orders: int = 0
    #: Of those, the ones intake could not translate (kept as dead letters).
    dead_letters: int = 0
    #: Orders listed whose full copy the platform refused to give (logged, not ingested).
    skipped: int = 0
    #: Whether the cursor has reached ``now - lag`` (else the next run follows at once).
    caught_up: bool = True


@dataclass(frozen=True, slots=True)
class PollStatus:
    """One polled shop as an operator sees it."""

    platform: str
    shop_id: str
    #: ``not_started``; ``pulling``; ``idle`` (caught up, waiting for the next interval);
    #: ``backing_off`` (a run failed, it is tried again later); ``stopped`` (by an error
    #: retrying cannot fix: see ``last_error``); ``off`` (the pollers were stopped).
    state: str
    window_end: datetime | None
    last_run_at: datetime | None
    failures: int
    last_error: str
    orders_seen: int


#: Takes one pulled order: (shop, order id, order) → False when it could not be used.
Sink = Callable[[Shop, str, RawOrder], Awaitable[bool]]


@dataclass(slots=True)
class _Tally:
    """What a window's pull has handled so far, by order id."""

    seen: set[str]
    refused: set[str]
    #: Where each new order goes: intake (the poller) or a collection (reconciliation).
    sink: Sink
    dead_letters: int = 0


class Pollers:
    """The per-shop order pollers of a hub."""

    def __init__(
        self,
        shops: Iterable[Shop],
        intake: OrderIntake,
        cursors: PollCursors,
        *,
        client: httpx.AsyncClient | None = None,
        apis: Mapping[str, OpenApi] | None = None,
        lag_s: float = 60.0,
        backoff: Backoff | None = None,
        timeout_s: float = 30.0,
        clock: Clock = _utcnow,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._shops = {shop.key: shop for shop in shops}
        self._intake = intake
        self._cursors = cursors
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._apis = dict(apis) if apis is not None else {}
        self._lag = timedelta(seconds=lag_s)
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._jitter = jitter
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._states: dict[tuple[str, str], str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start one poller task per shop with ``poll = true``."""
        for shop in self._shops.values():
            if shop.poll and shop.key not in self._tasks:
                self._states[shop.key] = "pulling"
                self._tasks[shop.key] = asyncio.create_task(
                    self._run(shop), name=f"poller:{shop.platform}:{shop.shop_id}"
                )
        if self._tasks:
            log.info("pollers started", extra={"shops": [f"{p}/{s}" for p, s in self._tasks]})

    async def stop(self) -> None:
        """Stop every poller (a window in flight is pulled again next time) and the client."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in self._tasks:
            if self._states.get(key) != "stopped":
                self._states[key] = "off"
        self._tasks.clear()
        if self._own_client:
            await self._client.aclose()

    async def join(self) -> None:
        """Wait until every started poller has ended (stopped by an error, or by ``stop``)."""
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def status(self) -> list[PollStatus]:
        """Each polled shop's cursor, failures and last error (reads the database)."""
        cursors = {(c.platform, c.shop_id): c for c in self._cursors.all()}
        keys = [k for k, s in self._shops.items() if s.poll or k in cursors]
        return [self._status(key, cursors.get(key)) for key in sorted(keys)]

    def _status(self, key: tuple[str, str], cursor: PollCursor | None) -> PollStatus:
        state = self._states.get(key, "not_started")
        if cursor is None:
            return PollStatus(*key, state, None, None, 0, "", 0)
        return PollStatus(
            *key,
            state,
            cursor.window_end,
            cursor.last_run_at,
            cursor.failures,
            cursor.last_error,
            cursor.orders_seen,
        )

    # -- one run ---------------------------------------------------------------------------

    async def run_once(self, shop: Shop) -> RunResult:
        """Pull the shop's next window and move its cursor; :class:`PullFailed` if it fails.

        When another hub process is pulling the shop (its lease is taken), this run pulls
        nothing and says so with no window, like a run that found nothing new.
        """
        lease = await asyncio.to_thread(self._cursors.try_lease, shop.platform, shop.shop_id)
        if lease is None:
            return RunResult(shop.platform, shop.shop_id, None)
        try:
            return await self._run_leased(shop)
        finally:
            await asyncio.to_thread(lease.release)

    async def _run_leased(self, shop: Shop) -> RunResult:
        api = self._api(shop)
        creds = _credentials(shop)
        now = self._clock()
        cursor = await asyncio.to_thread(self._cursors.get, shop.platform, shop.shop_id)
        if cursor is not None:
            start = cursor.window_end
        else:
            start = whole_second(now - timedelta(seconds=shop.first_window_s))
        lag = max(self._lag, api.min_lag)
        window = next_window(start, now, api.max_window, lag)
        if window is None:
            return RunResult(shop.platform, shop.shop_id, None)

        async def record(error: ApiError) -> None:
            await asyncio.to_thread(
                self._cursors.record_failure,
                shop.platform,
                shop.shop_id,
                str(error),
                start=start,
                at=self._clock(),
            )

        try:
            tally = await self._pull(shop, api, creds, window, record)
        except PullFailed:
            raise
        except Exception as exc:  # intake or the database: keep it visible, retry later
            await record(ApiError(ErrorKind.TRANSIENT, type(exc).__name__, str(exc)))
            raise
        await asyncio.to_thread(
            self._cursors.advance,
            shop.platform,
            shop.shop_id,
            window.end,
            orders=len(tally.seen),
            at=self._clock(),
        )
        result = RunResult(
            shop.platform,
            shop.shop_id,
            window,
            orders=len(tally.seen),
            dead_letters=tally.dead_letters,
            skipped=len(tally.refused),
            # Against the run's own "now": a slow run must not make the next one start at once.
            caught_up=caught_up(window.end, now, lag),
        )
        log.info(
            "window pulled",
            extra={
                "platform": shop.platform,
                "shop_id": shop.shop_id,
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "orders": result.orders,
                "dead_letters": result.dead_letters,
                "skipped": result.skipped,
            },
        )
        return result

    async def fetch_order(self, shop: Shop, platform_order_id: str) -> str:
        """The full order from the platform's detail API, as JSON (the bare order object).

        For webhooks that carry ids only (Douyin's messages). Paced and retried like the
        pollers' calls; :class:`PullFailed` when it cannot be had.
        """
        api = self._api(shop)
        creds = _credentials(shop)
        order = await self._call(
            shop,
            lambda now: api.detail_request(creds, platform_order_id, now),
            api.parse_detail,
            None,
        )
        return json.dumps(order, ensure_ascii=False)

    async def _pull(
        self,
        shop: Shop,
        api: OpenApi,
        creds: Credentials,
        window: Window,
        record: OnFailure,
        sink: Sink | None = None,
    ) -> _Tally:
        """Every page of the window, each order handed to ``sink`` (intake) once."""
        tally = _Tally(seen=set(), refused=set(), sink=sink or self._ingest)

        async def page(number: int) -> ListPage:
            return await self._call(
                shop,
                lambda now: api.list_request(creds, window, number, now),
                api.parse_list,
                record,
            )

        first = await page(api.first_page)
        await self._take(shop, api, creds, first, tally, record)
        if first.total is not None:
            for number in pages_backwards(first.total, api.page_size, api.first_page):
                await self._take(shop, api, creds, await page(number), tally, record)
        else:
            current, number = first, api.first_page
            while current.has_next:
                number += 1
                current = await page(number)
                await self._take(shop, api, creds, current, tally, record)
        return tally

    async def _take(
        self,
        shop: Shop,
        api: OpenApi,
        creds: Credentials,
        page: ListPage,
        tally: _Tally,
        record: OnFailure,
    ) -> None:
        """Ingest the orders of one page that this window has not seen yet."""
        for listed, order_id in zip(page.orders, page.order_ids, strict=True):
            if order_id in tally.seen or order_id in tally.refused:
                continue  # read again because the pages moved; intake would say "duplicate"
            order: RawOrder = listed
            if api.needs_detail:
                try:
                    order = await self._call(
                        shop,
                        functools.partial(api.detail_request, creds, order_id),
                        api.parse_detail,
                        record,
                    )
                except PullFailed as err:
                    if err.error.kind is not ErrorKind.REJECTED:
                        raise
                    # The platform will not give this one order (gone, not this shop's):
                    # the rest of the window must not wait on it.
                    tally.refused.add(order_id)
                    log.warning(
                        "order skipped: its detail was refused",
                        extra={**_where(shop), "order_id": order_id, "error": str(err.error)},
                    )
                    continue
            tally.seen.add(order_id)
            if not await tally.sink(shop, order_id, order):
                tally.dead_letters += 1

    async def _ingest(self, shop: Shop, order_id: str, order: RawOrder) -> bool:
        """Hand one pulled order to intake; False when it was kept as a dead letter."""
        try:
            await self._intake.ingest(
                shop.platform, shop.shop_id, json.dumps(order, ensure_ascii=False)
            )
        except InvalidRequest as err:
            log.info(
                "order kept as a dead letter",
                extra={**_where(shop), "order_id": order_id, "error": str(err)},
            )
            return False
        return True

    async def collect(self, shop: Shop, since: datetime, until: datetime) -> list[RawOrder]:
        """Every order of the shop modified in ``[since, until)``, newest copy of each.

        For reconciliation: nothing is ingested and no cursor moves. The period is pulled
        window by window as the poller would; a failure raises :class:`PullFailed`.
        """
        api = self._api(shop)
        creds = _credentials(shop)
        found: dict[str, RawOrder] = {}

        async def keep(_shop: Shop, order_id: str, order: RawOrder) -> bool:
            found[order_id] = order
            return True

        async def ignore(_error: ApiError) -> None:
            return None

        start = since
        while (window := next_window(start, until, api.max_window, timedelta(0))) is not None:
            await self._pull(shop, api, creds, window, ignore, keep)
            start = window.end
        return list(found.values())

    # -- calls -----------------------------------------------------------------------------

    async def _call(
        self,
        shop: Shop,
        build: Callable[[datetime], HttpRequest],
        parse: Callable[[bytes], T],
        on_failure: OnFailure | None,
    ) -> T:
        """One platform call, paced, retried with backoff while the failure is retryable."""
        bucket = self._bucket(shop)
        attempt = 0
        while True:
            attempt += 1
            await bucket.take()
            try:
                return await self._send(build(self._clock()), parse)
            except ApiError as err:
                error = err
            if on_failure is not None:
                await on_failure(error)
            if not error.kind.retryable or attempt >= self._backoff.attempts:
                raise PullFailed(shop, error, attempt)
            delay = self._backoff.delay(attempt, self._jitter())
            log.warning(
                "platform call failed; backing off",
                extra={**_where(shop), "error": str(error), "attempt": attempt, "wait_s": delay},
            )
            await self._sleep(delay)

    async def _send(self, request: HttpRequest, parse: Callable[[bytes], T]) -> T:
        """Send one request and read its body; transport failures are transient."""
        try:
            response = await self._client.request(
                request.method,
                request.url,
                params=dict(request.params) or None,
                data=dict(request.form) if request.form is not None else None,
                content=request.body,
                headers=dict(request.headers) or None,
            )
        except httpx.HTTPError as exc:
            raise ApiError(ErrorKind.TRANSIENT, "http", f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429:
            raise ApiError(ErrorKind.RATE_LIMITED, "http 429", "too many requests")
        if status >= 500:
            raise ApiError(ErrorKind.TRANSIENT, f"http {status}", response.reason_phrase)
        parsed = parse(response.content)  # a platform error in the body raises here
        if not 200 <= status < 300:
            raise ApiError(ErrorKind.TRANSIENT, f"http {status}", response.reason_phrase)
        return parsed

    def _bucket(self, shop: Shop) -> TokenBucket:
        bucket = self._buckets.get(shop.key)
        if bucket is None:
            bucket = TokenBucket(shop.rate_per_s, monotonic=self._monotonic, sleep=self._sleep)
            self._buckets[shop.key] = bucket
        return bucket

    def _api(self, shop: Shop) -> OpenApi:
        api = self._apis.get(shop.platform)
        if api is not None:
            return api
        try:
            return openapi.api_for(shop.platform)
        except KeyError as err:
            error = ApiError(ErrorKind.REJECTED, "config", str(err.args[0]))
            raise PullFailed(shop, error) from err

    # -- the loop --------------------------------------------------------------------------

    async def _run(self, shop: Shop) -> None:
        """Pull window after window until stopped; sleep between runs once caught up."""
        failures = 0
        while True:
            self._states[shop.key] = "pulling"
            try:
                result = await self.run_once(shop)
            except PullFailed as err:
                if err.stops_shop:
                    self._states[shop.key] = "stopped"
                    log.error(
                        "poller stopped: fix the shop's settings and restart",
                        extra={**_where(shop), "error": str(err.error)},
                    )
                    if err.error.code == "config":  # no call was made: nothing recorded yet
                        await self._record_stop(shop, err.error)
                    return
                failures += 1
            except Exception:
                log.exception("poller run failed", extra=_where(shop))
                failures += 1
            else:
                failures = 0
                if not result.caught_up:
                    continue
                self._states[shop.key] = "idle"
                await self._sleep(shop.poll_interval_s)
                continue
            self._states[shop.key] = "backing_off"
            await self._sleep(
                self._backoff.run_delay(failures, shop.poll_interval_s, self._jitter())
            )

    async def _record_stop(self, shop: Shop, error: ApiError) -> None:
        """Keep a configuration error that stopped a shop before any call in its row."""
        start = whole_second(self._clock() - timedelta(seconds=shop.first_window_s))
        await asyncio.to_thread(
            self._cursors.record_failure,
            shop.platform,
            shop.shop_id,
            str(error),
            start=start,
            at=self._clock(),
        )


def _credentials(shop: Shop) -> Credentials:
    missing = [n for n in ("app_key", "app_secret", "access_token") if not getattr(shop, n)]
    if missing:
        error = ApiError(ErrorKind.AUTH, "config", f"the shop has no {', '.join(missing)}")
        raise PullFailed(shop, error)
    return Credentials(shop.app_key, shop.app_secret, shop.access_token, shop.api_url)


def _where(shop: Shop) -> dict[str, str]:
    return {"platform": shop.platform, "shop_id": shop.shop_id}
