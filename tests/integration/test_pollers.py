"""Per-shop pollers against a local stand-in of TOP, JOS, 抖店 and PDD, into a real database.

The stand-in (``openapi_stub``) checks every signature and refuses bad ones, pages, filters
by the modified-time window and can be told to fail. Time is a fake clock: backoff and
pacing waits are recorded, not slept.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from adapters.openapi import DouyinApi, JdApi, OpenApi, PddApi, TaobaoApi
from hub.orders import OrderIntake
from hub.pollers import Pollers, PullFailed, RunResult
from hub.shops import Shop
from hub.store import schema
from hub.store.db import make_engine
from hub.store.dead_letters import DeadLetters
from hub.store.master_data import MasterData
from hub.store.orders import OrderStore
from hub.store.poll_cursors import PollCursors
from tests.conftest import BACKENDS
from tests.integration.openapi_stub import (
    APP_KEY,
    PLATFORMS,
    RATE_LIMITED,
    SECRET,
    TOKEN,
    TRANSIENT,
    PlatformStub,
    order_ids,
)

NOW = datetime(2026, 3, 1, 4, 0, 0, tzinfo=UTC)
LIST = {
    "taobao": "taobao.trades.sold.increment.get",
    "jd": "jingdong.pop.order.search",
    "douyin": "order.searchList",
    "pdd": "pdd.order.number.list.increment.get",
}
DETAIL = {
    "taobao": "taobao.trade.fullinfo.get",
    "jd": "jingdong.pop.order.get",
    "douyin": "order.orderDetail",
    "pdd": "pdd.order.information.get",
}
#: Minutes before NOW at which the stand-in's orders last changed. -30 sits exactly on the
#: boundary of the first 30-minute window (TOP, PDD), so it is listed by two windows.
CHANGED_MINUTES_AGO = (55, 40, 30, 25, 10, 4)
PAGE_SIZE = 2


class FakeTime:
    """A clock that moves only when something sleeps on it."""

    def __init__(self, now: datetime) -> None:
        self.current = now
        self.mono = 0.0
        self.slept: list[float] = []
        #: Sleeping this long (the poll interval) parks the sleeper and sets ``idle``.
        self.park_on: float | None = None
        self.idle = asyncio.Event()

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.park_on is not None and seconds == self.park_on:
            self.idle.set()
            await asyncio.Event().wait()  # until the poller is cancelled
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
async def stub() -> AsyncIterator[PlatformStub]:
    platforms = PlatformStub()
    await platforms.start()
    for platform in PLATFORMS:
        for order_id, minutes in zip(order_ids(platform, 6), CHANGED_MINUTES_AGO, strict=True):
            platforms.put(platform, order_id, NOW - timedelta(minutes=minutes))
        # Changed before the first window (now - first_window_s): never pulled.
        platforms.put(platform, order_ids(platform, 1, first=99)[0], NOW - timedelta(hours=2))
    yield platforms
    await platforms.close()


@pytest.fixture
def engine(new_database: Callable[[str], str]) -> Iterator[Engine]:
    e = make_engine(new_database("sqlite"))
    yield e
    e.dispose()


def shop(stub: PlatformStub, platform: str, **changes: Any) -> Shop:
    values: dict[str, Any] = {
        "platform": platform,
        "shop_id": f"{platform}-1",
        "app_key": APP_KEY,
        "app_secret": SECRET,
        "access_token": TOKEN,
        "api_url": stub.url(platform),
        "poll": True,
        "poll_interval_s": 60.0,
        "rate_per_s": 20.0,
        "first_window_s": 3600.0,
    }
    values.update(changes)
    return Shop(**values)


def small_pages() -> dict[str, OpenApi]:
    """The real clients with two orders a page, so every window spans several pages."""
    apis: dict[str, OpenApi] = {
        "taobao": TaobaoApi(),
        "jd": JdApi(),
        "douyin": DouyinApi(),
        "pdd": PddApi(),
    }
    for api in apis.values():
        api.page_size = PAGE_SIZE
    return apis


def pollers(shops: list[Shop], engine: Engine, time: FakeTime) -> Pollers:
    intake = OrderIntake(OrderStore(engine), MasterData(engine), DeadLetters(engine))
    return Pollers(
        shops,
        intake,
        PollCursors(engine),
        apis=small_pages(),
        clock=time.now,
        sleep=time.sleep,
        monotonic=time.monotonic,
        jitter=lambda: 0.0,
    )


async def pull_all(running: Pollers, target: Shop) -> list[RunResult]:
    """Run the shop's poller until it has caught up with now - lag."""
    results = []
    for _ in range(10):
        result = await running.run_once(target)
        results.append(result)
        if result.caught_up:
            return results
    raise AssertionError("never caught up")


def stored(engine: Engine, platform: str) -> int:
    t = schema.orders
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(t.c.platform == platform)).scalar_one()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_orders_land_once_across_repeated_polls_and_a_restart(
    backend: str, stub: PlatformStub, new_database: Callable[[str], str]
) -> None:
    db = make_engine(new_database(backend))
    time = FakeTime(NOW)
    shops = [shop(stub, p) for p in PLATFORMS]
    first = pollers(shops, db, time)
    try:
        for target in shops:
            results = await pull_all(first, target)
            assert sum(r.orders for r in results) >= 6
            assert all(r.dead_letters == 0 and r.skipped == 0 for r in results)
        for platform in PLATFORMS:
            assert stored(db, platform) == 6, platform
        # Polling again with nothing new changes nothing and asks for nothing.
        calls = len(stub.calls)
        for target in shops:
            assert (await first.run_once(target)).window is None
        assert len(stub.calls) == calls
        cursors = {s.platform: s for s in first.status()}
        assert cursors["taobao"].window_end == NOW - timedelta(minutes=1)
        assert cursors["pdd"].window_end == NOW - timedelta(minutes=3)  # PDD's 3-minute lag
        assert all(s.failures == 0 and s.last_error == "" for s in cursors.values())
    finally:
        await first.stop()

    # A restart: new pollers on the same database resume from the stored cursors.
    time.advance(300)
    for platform in PLATFORMS:
        new_id = order_ids(platform, 1, first=50)[0]
        stub.put(platform, new_id, time.now() - timedelta(minutes=4))
        # An order pulled before changes again: it is updated, not stored twice.
        stub.put(platform, order_ids(platform, 1)[0], time.now() - timedelta(minutes=4))
    second = pollers(shops, db, time)
    stub.calls.clear()
    try:
        for target in shops:
            before = cursors[target.platform].window_end
            results = await pull_all(second, target)
            assert results[0].window is not None and results[0].window.start == before
            assert sum(r.orders for r in results) == 2
        for platform in PLATFORMS:
            assert stored(db, platform) == 7, platform
        order_store = OrderStore(db)
        changed = order_store.find("jd", "jd-1", order_ids("jd", 1)[0])
        assert changed is not None and changed.version == 2
    finally:
        await second.stop()
        db.dispose()


async def test_pages_are_read_backwards_and_details_fetched_once_per_order(
    stub: PlatformStub, engine: Engine
) -> None:
    time = FakeTime(NOW)
    target = shop(stub, "pdd")
    running = pollers([target], engine, time)
    try:
        results = await pull_all(running, target)
    finally:
        await running.stop()
    first_window = results[0].window
    assert first_window is not None and first_window.end - first_window.start == timedelta(
        minutes=30
    )
    pages = [c.page for c in stub.calls_of("pdd", LIST["pdd"])]
    # Window 1 (-60..-30 min: 3 orders, 2 pages): page 1, then 2, 1. Window 2 (4 orders).
    assert pages == [1, 2, 1, 1, 2, 1]
    details = [c.params["order_sn"] for c in stub.calls_of("pdd", DETAIL["pdd"])]
    # One detail per order per window; the boundary order is in both windows.
    assert len(details) == 7 and len(set(details)) == 6
    assert stored(engine, "pdd") == 6


async def test_a_rate_limit_is_backed_off_and_retried(stub: PlatformStub, engine: Engine) -> None:
    time = FakeTime(NOW)
    shops = [shop(stub, p) for p in PLATFORMS]
    for platform in PLATFORMS:
        stub.fail(platform, LIST[platform], RATE_LIMITED[platform], page=None)
    running = pollers(shops, engine, time)
    try:
        for target in shops:
            await pull_all(running, target)
        status = {s.platform: s for s in running.status()}
    finally:
        await running.stop()
    for platform in PLATFORMS:
        assert stored(engine, platform) == 6
        assert status[platform].failures == 0 and status[platform].last_error == ""
    # One backoff per platform: the first wait of Backoff() with no jitter is 0.5 s.
    assert time.slept.count(0.5) == 4
    # Each window reads page 1, then the last page back to page 1; plus the retried call.
    # TOP and PDD: two 30-minute windows of 3 and 4 orders (2 a page): 3 + 3 calls.
    # JD and 抖店: one window of 6 orders: 1 + 3 calls.
    expected = {"taobao": 3 + 3, "pdd": 3 + 3, "jd": 4, "douyin": 4}
    for platform in PLATFORMS:
        assert len(stub.calls_of(platform, LIST[platform])) == expected[platform] + 1


async def test_an_http_failure_is_transient(stub: PlatformStub, engine: Engine) -> None:
    time = FakeTime(NOW)
    target = shop(stub, "douyin")
    stub.fail("douyin", LIST["douyin"], 503, times=2)
    running = pollers([target], engine, time)
    try:
        await pull_all(running, target)
    finally:
        await running.stop()
    assert stored(engine, "douyin") == 6
    assert [s for s in time.slept if s >= 0.5][:2] == [0.5, 1.0]


async def test_a_failure_mid_window_keeps_the_cursor_and_the_window_is_pulled_again(
    stub: PlatformStub, engine: Engine
) -> None:
    time = FakeTime(NOW)
    target = shop(stub, "jd")
    stub.fail("jd", LIST["jd"], TRANSIENT["jd"], times=5, page=2)
    running = pollers([target], engine, time)
    cursors = PollCursors(engine)
    try:
        with pytest.raises(PullFailed) as caught:
            await running.run_once(target)
        assert not caught.value.stops_shop and caught.value.attempts == 5
        cursor = cursors.get("jd", "jd-1")
        assert cursor is not None
        assert cursor.window_end == NOW - timedelta(hours=1)  # where the window began
        assert cursor.failures == 5 and "系统繁忙" in cursor.last_error
        assert cursor.orders_seen == 0
        # Backoff between the five tries: 0.5, 1, 2, 4 s (no jitter).
        assert [s for s in time.slept if s >= 0.5] == [0.5, 1.0, 2.0, 4.0]
        partly = stored(engine, "jd")
        assert 0 < partly < 6  # some pages were in before the failure

        results = await pull_all(running, target)
        assert results[0].window is not None
        assert results[0].window.start == NOW - timedelta(hours=1)
    finally:
        await running.stop()
    assert stored(engine, "jd") == 6
    cursor = cursors.get("jd", "jd-1")
    assert cursor is not None and cursor.failures == 0 and cursor.last_error == ""
    assert cursor.window_end > NOW - timedelta(hours=1)


async def test_credential_errors_stop_the_shop_and_stay_in_its_cursor_row(
    stub: PlatformStub, engine: Engine
) -> None:
    time = FakeTime(NOW)
    expired = shop(stub, "taobao", access_token="expired-session")
    wrong_secret = shop(stub, "pdd", app_secret="not-the-secret")
    no_token = shop(stub, "douyin", access_token="")
    not_pullable = Shop(platform="shopify", shop_id="sf-1", app_key="k", poll=True)
    running = pollers([expired, wrong_secret, no_token, not_pullable], engine, time)
    try:
        await running.start()
        await asyncio.wait_for(running.join(), timeout=10)
        status = {s.platform: s for s in running.status()}
    finally:
        await running.stop()
    assert {s.state for s in status.values()} == {"stopped"}
    assert (
        "AUTH 27" in status["taobao"].last_error
        and "Invalid session" in status["taobao"].last_error
    )
    assert "AUTH" in status["pdd"].last_error and "签名" in status["pdd"].last_error
    assert "no access_token" in status["douyin"].last_error
    assert "no pull client" in status["shopify"].last_error
    # Not retried: one call each, no backoff, nothing stored.
    assert len(stub.calls_of("taobao", LIST["taobao"])) == 1
    assert len(stub.calls_of("pdd", LIST["pdd"])) == 1
    assert stub.calls_of("douyin", LIST["douyin"]) == []
    assert all(stored(engine, p) == 0 for p in PLATFORMS)
    assert not [s for s in time.slept if s >= 0.5]


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_wrong_secret_is_refused_by_the_platform_and_stops_the_shop(
    platform: str, stub: PlatformStub, engine: Engine
) -> None:
    target = shop(stub, platform, app_secret="not-the-secret")
    running = pollers([target], engine, FakeTime(NOW))
    try:
        with pytest.raises(PullFailed) as caught:
            await running.run_once(target)
    finally:
        await running.stop()
    assert caught.value.stops_shop and caught.value.attempts == 1
    assert caught.value.error.kind.value == "AUTH"
    assert len(stub.calls) == 1 and stored(engine, platform) == 0


async def test_the_other_sign_methods_are_accepted(stub: PlatformStub, engine: Engine) -> None:
    time = FakeTime(NOW)
    shops = [shop(stub, "taobao"), shop(stub, "douyin")]
    intake = OrderIntake(OrderStore(engine), MasterData(engine), DeadLetters(engine))
    apis: dict[str, OpenApi] = {
        "taobao": TaobaoApi(sign_method="hmac-sha256"),
        "douyin": DouyinApi(sign_method="md5"),
    }
    running = Pollers(
        shops,
        intake,
        PollCursors(engine),
        apis=apis,
        clock=time.now,
        sleep=time.sleep,
        monotonic=time.monotonic,
    )
    try:
        for target in shops:
            await pull_all(running, target)
    finally:
        await running.stop()
    assert stored(engine, "taobao") == 6 and stored(engine, "douyin") == 6
    assert {c.params.get("sign_method") for c in stub.calls if c.platform == "taobao"} == {
        "hmac-sha256"
    }


async def test_an_untranslatable_order_is_counted_and_the_window_goes_on(
    stub: PlatformStub, engine: Engine
) -> None:
    time = FakeTime(NOW)
    target = shop(stub, "douyin")
    broken = stub.put("douyin", "6936476692437479999", NOW - timedelta(minutes=20)).full
    broken["sku_order_list"] = []  # an order without lines cannot be translated
    running = pollers([target], engine, time)
    try:
        results = await pull_all(running, target)
    finally:
        await running.stop()
    assert sum(r.dead_letters for r in results) == 1
    assert sum(r.orders for r in results) == 7
    assert stored(engine, "douyin") == 6
    assert DeadLetters(engine).count_open() == 1
    cursor = PollCursors(engine).get("douyin", "douyin-1")
    assert cursor is not None and cursor.window_end == NOW - timedelta(minutes=1)


async def test_started_pollers_pull_then_wait_for_the_next_interval(
    stub: PlatformStub, engine: Engine
) -> None:
    time = FakeTime(NOW)
    time.park_on = 60.0  # the shop's poll interval
    target = shop(stub, "taobao")
    running = pollers([target], engine, time)
    try:
        await running.start()
        await asyncio.wait_for(time.idle.wait(), timeout=20)
        (status,) = running.status()
        assert status.state == "idle" and status.orders_seen >= 6
        assert stored(engine, "taobao") == 6
    finally:
        await running.stop()


async def test_fetch_order_returns_the_full_order_for_a_webhook(
    stub: PlatformStub, engine: Engine
) -> None:
    time = FakeTime(NOW)
    target = shop(stub, "douyin", poll=False)
    order_id = order_ids("douyin", 1)[0]
    running = pollers([target], engine, time)
    try:
        text = await running.fetch_order(target, order_id)
        intake = OrderIntake(OrderStore(engine), MasterData(engine), DeadLetters(engine))
        saved = await intake.ingest("douyin", "douyin-1", text)
    finally:
        await running.stop()
    order = json.loads(text)
    assert order["order_id"] == order_id and order["sku_order_list"]
    assert saved.stored.order.platform_order_id == order_id
    assert stub.calls_of("douyin", DETAIL["douyin"])[0].params == {"shop_order_id": order_id}


async def test_one_hub_pulls_a_shop_at_a_time(
    stub: PlatformStub, new_database: Callable[[str], str]
) -> None:
    """Hub replicas share the shops file; on PostgreSQL a shop's lease keeps them from
    pulling the same window twice (and spending the platform's rate limit twice)."""
    db = make_engine(new_database("postgresql"))
    time = FakeTime(NOW)
    target = shop(stub, "taobao")
    replica = pollers([target], db, time)
    other_hub = PollCursors(db).try_lease(target.platform, target.shop_id)
    assert other_hub is not None
    try:
        calls = len(stub.calls)
        skipped = await replica.run_once(target)
        assert skipped.window is None and skipped.orders == 0
        assert len(stub.calls) == calls  # it asked the platform nothing
        assert PollCursors(db).try_lease(target.platform, target.shop_id) is None
    finally:
        other_hub.release()
    try:
        results = await pull_all(replica, target)
        assert results[0].window is not None and stored(db, "taobao") == 6
        # Its lease went with the run: another process can take the shop now.
        again = PollCursors(db).try_lease(target.platform, target.shop_id)
        assert again is not None
        again.release()
    finally:
        await replica.stop()
        db.dispose()
