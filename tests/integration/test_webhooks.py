"""The webhook receiver through a real aiohttp server on a free port and a real database.

Payloads are the platform samples in tests/fixtures/platforms/; the Douyin push around
them uses the documented message fields (tag, msg_id, data with p_id).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine, func, select

from adapters import webhooks as wh
from hub.orders import OrderIntake
from hub.shops import Shop, Shops
from hub.store import schema
from hub.store.db import make_engine
from hub.store.dead_letters import DeadLetters, LetterStatus
from hub.store.master_data import MasterData
from hub.store.orders import OrderStore, Saved
from hub.webhooks import WebhookReceiver, split_addr
from tests.conftest import BACKENDS

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"
SHOPIFY_ORDER = (FIXTURES / "shopify_orders_create_sample.json").read_bytes()
DOUYIN_DETAIL = (FIXTURES / "douyin_order_detail_sample.json").read_text(encoding="utf-8")
WOO_ORDER = (FIXTURES / "woocommerce_order_created.json").read_bytes()
DOUYIN_ORDER_ID = "6936476692437472563"

SHOPS = Shops(
    [
        Shop("shopify", "sh-1", webhook_secret="shpss_hush"),
        Shop("shopify", "sh-nosecret"),
        Shop("douyin", "dy-1", app_key="7100000000000000001", app_secret="dy-secret"),
        Shop("woocommerce", "wc-1", webhook_secret="wc-secret"),
    ]
)


@dataclass
class Fetcher:
    """Stands in for the pull side: order JSON by platform order id, or a failure."""

    orders: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def __call__(self, shop: Shop, order_id: str) -> str:
        self.asked.append(order_id)
        if order_id not in self.orders:
            raise RuntimeError(f"douyin said no for {order_id}")
        return self.orders[order_id]


@dataclass
class Hub:
    engine: Engine
    receiver: WebhookReceiver
    http: aiohttp.ClientSession
    fetcher: Fetcher
    intake: OrderIntake

    def url(self, platform: str, shop_id: str) -> str:
        return f"http://127.0.0.1:{self.receiver.port}/webhooks/{platform}/{shop_id}"

    def count(self, table: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)

    def letters(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(schema.dead_letters).order_by("letter_id")))

    async def post(
        self, platform: str, shop_id: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.url(platform, shop_id), data=body, headers=headers) as r:
            return r.status, await r.json()


async def start_hub(url: str, **options: Any) -> Hub:
    engine = make_engine(url)
    intake = OrderIntake(OrderStore(engine), MasterData(engine), DeadLetters(engine))
    fetcher = Fetcher()
    receiver = WebhookReceiver(intake, SHOPS, DeadLetters(engine), fetcher, **options)
    port = await receiver.start("127.0.0.1:0")
    assert port > 0 and receiver.port == port
    return Hub(engine, receiver, aiohttp.ClientSession(), fetcher, intake)


async def close(hub: Hub) -> None:
    await hub.http.close()
    await hub.receiver.stop()
    hub.engine.dispose()


@pytest.fixture(params=BACKENDS)
async def hub(
    request: pytest.FixtureRequest, new_database: Callable[[str], str]
) -> AsyncIterator[Hub]:
    """A receiver on each database backend."""
    running = await start_hub(new_database(request.param))
    yield running
    await close(running)


@pytest.fixture
async def lite(new_database: Callable[[str], str]) -> AsyncIterator[Hub]:
    """A receiver on SQLite, for behaviour that does not depend on the database."""
    running = await start_hub(new_database("sqlite"))
    yield running
    await close(running)


def shopify_headers(body: bytes, topic: str = "orders/create") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": wh.shopify_signature("shpss_hush", body),
    }


def douyin_push(*messages: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(list(messages)).encode()
    sign = wh.douyin_signature("7100000000000000001", "dy-secret", body)
    return body, {"event-sign": sign, "app-id": "7100000000000000001"}


def tagged(tag: str, msg_id: str, **data: Any) -> dict[str, Any]:
    return {"tag": tag, "msg_id": msg_id, "data": json.dumps(data)}


# --------------------------------------------------------------------------- Shopify


async def test_a_signed_shopify_order_is_stored_and_a_repeat_is_a_duplicate(hub: Hub) -> None:
    status, first = await hub.post("shopify", "sh-1", SHOPIFY_ORDER, shopify_headers(SHOPIFY_ORDER))
    assert status == 200 and first["duplicate"] is False
    stored = hub.intake.store.find("shopify", "sh-1", "5940139491234")
    assert stored is not None and stored.order_id == first["order_id"]
    status, again = await hub.post("shopify", "sh-1", SHOPIFY_ORDER, shopify_headers(SHOPIFY_ORDER))
    assert status == 200 and again == {**again, "order_id": first["order_id"], "duplicate": True}
    assert hub.count(schema.orders) == 1 and hub.count(schema.dead_letters) == 0


async def test_a_bad_signature_is_refused_and_nothing_is_stored(hub: Hub) -> None:
    forged = {**shopify_headers(SHOPIFY_ORDER), "X-Shopify-Hmac-Sha256": "AAAA"}
    status, answer = await hub.post("shopify", "sh-1", SHOPIFY_ORDER, forged)
    assert (status, answer["error"]) == (401, "BAD_SIGNATURE")
    unsigned = {"X-Shopify-Topic": "orders/create"}
    status, _ = await hub.post("shopify", "sh-1", SHOPIFY_ORDER, unsigned)
    assert status == 401
    assert hub.count(schema.orders) == 0 and hub.count(schema.dead_letters) == 0


async def test_a_tampered_body_is_refused(lite: Hub) -> None:
    headers = shopify_headers(SHOPIFY_ORDER)
    tampered = SHOPIFY_ORDER.replace(b'"quantity": 2', b'"quantity": 20', 1)
    assert tampered != SHOPIFY_ORDER
    status, answer = await lite.post("shopify", "sh-1", tampered, headers)
    assert (status, answer["error"]) == (401, "BAD_SIGNATURE")
    assert lite.count(schema.orders) == 0 and lite.count(schema.dead_letters) == 0


async def test_unknown_platforms_and_shops_and_shops_without_a_secret(lite: Hub) -> None:
    headers = shopify_headers(SHOPIFY_ORDER)
    assert (await lite.post("ebay", "sh-1", SHOPIFY_ORDER, headers))[0] == 404
    status, answer = await lite.post("shopify", "nobody", SHOPIFY_ORDER, headers)
    assert (status, answer["error"]) == (404, "UNKNOWN_SHOP")
    status, answer = await lite.post("shopify", "sh-nosecret", SHOPIFY_ORDER, headers)
    assert (status, answer["error"]) == (401, "NO_SECRET")
    assert lite.count(schema.orders) == 0 and lite.count(schema.dead_letters) == 0


async def test_an_untranslatable_order_is_dead_lettered_and_the_reply_says_so(hub: Hub) -> None:
    body = json.dumps({"id": 5940139491299, "line_items": "none"}).encode()
    status, answer = await hub.post("shopify", "sh-1", body, shopify_headers(body))
    assert status == 202
    assert answer["dead_lettered"] is True and answer["error"] == "UNTRANSLATABLE"
    assert "dead letter" in answer["message"]
    [letter] = hub.letters()
    assert letter.source == "orders" and bytes(letter.payload) == body
    assert hub.count(schema.orders) == 0


async def test_a_deleted_shopify_order_is_kept_and_other_topics_need_no_work(lite: Hub) -> None:
    body = b'{"id":5940139491234}'
    status, answer = await lite.post(
        "shopify", "sh-1", body, shopify_headers(body, "orders/delete")
    )
    assert (status, answer["error"]) == (202, "ORDER_DELETED")
    [letter] = lite.letters()
    assert (letter.source, letter.subject) == ("webhook", "webhooks.shopify.sh-1")
    assert json.loads(letter.headers)["topic"] == "orders/delete"
    status, answer = await lite.post(
        "shopify", "sh-1", b"{}", shopify_headers(b"{}", "products/update")
    )
    assert status == 200 and answer["ignored"] == "products/update"
    assert lite.count(schema.orders) == 0 and lite.count(schema.dead_letters) == 1


# --------------------------------------------------------------------------- Douyin


async def test_a_douyin_push_fetches_the_named_order_and_stores_it(hub: Hub) -> None:
    hub.fetcher.orders[DOUYIN_ORDER_ID] = DOUYIN_DETAIL
    body, headers = douyin_push(
        tagged("100", "m1", p_id=int(DOUYIN_ORDER_ID), shop_id=7784061),
        tagged("101", "m2", p_id=int(DOUYIN_ORDER_ID), pay_amount=24800),
    )
    status, answer = await hub.post("douyin", "dy-1", body, headers)
    assert (status, answer) == (200, {"code": 0, "msg": "success"})
    assert hub.fetcher.asked == [DOUYIN_ORDER_ID]  # two messages, one fetch
    stored = hub.intake.store.find("douyin", "dy-1", DOUYIN_ORDER_ID)
    assert stored is not None and stored.order.total_paid_fen == 24800
    assert hub.count(schema.dead_letters) == 0


async def test_a_failed_fetch_keeps_the_push_as_a_dead_letter_and_answers_success(
    hub: Hub,
) -> None:
    body, headers = douyin_push(tagged("101", "m7", p_id=int(DOUYIN_ORDER_ID)))
    for _ in range(2):  # Douyin sending it again does not pile up copies
        status, answer = await hub.post("douyin", "dy-1", body, headers)
        assert (status, answer) == (200, {"code": 0, "msg": "success"})
    [letter] = hub.letters()
    assert (letter.source, letter.subject, letter.error) == (
        "webhook",
        "webhooks.douyin.dy-1",
        "FETCH_FAILED",
    )
    assert "douyin said no" in letter.reason and letter.event_id == "m7"
    assert [m["msg_id"] for m in json.loads(bytes(letter.payload))] == ["m7"]
    assert json.loads(letter.headers)["platform_order_id"] == DOUYIN_ORDER_ID
    assert hub.count(schema.orders) == 0


async def test_without_a_fetcher_a_douyin_push_is_kept(new_database: Callable[[str], str]) -> None:
    engine = make_engine(new_database("sqlite"))
    intake = OrderIntake(OrderStore(engine), MasterData(engine), DeadLetters(engine))
    receiver = WebhookReceiver(intake, SHOPS, DeadLetters(engine), None)
    await receiver.start("127.0.0.1:0")
    hub = Hub(engine, receiver, aiohttp.ClientSession(), Fetcher(), intake)
    try:
        body, headers = douyin_push(tagged("100", "m1", p_id=DOUYIN_ORDER_ID))
        assert (await hub.post("douyin", "dy-1", body, headers))[0] == 200
        assert [r.error for r in hub.letters()] == ["NO_FETCHER"]
    finally:
        await close(hub)


async def test_a_douyin_push_with_a_bad_event_sign_does_nothing(lite: Hub) -> None:
    lite.fetcher.orders[DOUYIN_ORDER_ID] = DOUYIN_DETAIL
    body, headers = douyin_push(tagged("100", "m1", p_id=int(DOUYIN_ORDER_ID)))
    status, answer = await lite.post("douyin", "dy-1", body, {**headers, "event-sign": "0" * 32})
    assert (status, answer["error"]) == (401, "BAD_SIGNATURE")
    assert lite.fetcher.asked == []
    assert lite.count(schema.orders) == 0 and lite.count(schema.dead_letters) == 0


async def test_a_douyin_push_naming_no_order_is_answered_success_without_work(lite: Hub) -> None:
    body, headers = douyin_push(tagged("0", "test-1", msg="push address check"))
    status, answer = await lite.post("douyin", "dy-1", body, headers)
    assert (status, answer) == (200, {"code": 0, "msg": "success"})
    assert lite.fetcher.asked == []
    assert lite.count(schema.orders) == 0 and lite.count(schema.dead_letters) == 0


# --------------------------------------------------------------------------- configured channel


async def test_a_woocommerce_order_is_stored_with_either_signature(hub: Hub) -> None:
    wc = {
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Signature": wh.woocommerce_signature("wc-secret", WOO_ORDER),
    }
    status, answer = await hub.post("woocommerce", "wc-1", WOO_ORDER, wc)
    assert status == 200 and answer["duplicate"] is False
    generic = {"X-OrderHub-Signature": wh.generic_signature("wc-secret", WOO_ORDER)}
    status, again = await hub.post("woocommerce", "wc-1", WOO_ORDER, generic)
    assert status == 200 and again["order_id"] == answer["order_id"] and again["duplicate"]
    assert hub.intake.store.find("woocommerce", "wc-1", "727") is not None


async def test_the_woocommerce_ping_is_answered_and_stores_nothing(lite: Hub) -> None:
    status, answer = await lite.post("woocommerce", "wc-1", b"webhook_id=12", {})
    assert (status, answer) == (200, {"ping": "ok"})
    assert lite.count(schema.orders) == 0 and lite.count(schema.dead_letters) == 0


async def test_a_woocommerce_push_with_a_wrong_secret_is_refused(lite: Hub) -> None:
    wrong = {"X-WC-Webhook-Signature": wh.woocommerce_signature("guess", WOO_ORDER)}
    assert (await lite.post("woocommerce", "wc-1", WOO_ORDER, wrong))[0] == 401
    assert lite.count(schema.orders) == 0 and lite.count(schema.dead_letters) == 0


# --------------------------------------------------------------------------- limits and failures


async def test_an_oversize_push_is_refused(new_database: Callable[[str], str]) -> None:
    hub = await start_hub(new_database("sqlite"), max_body=4096)
    try:
        big = b'{"id":1,"note":"' + b"x" * 5000 + b'"}'
        status, answer = await hub.post("shopify", "sh-1", big, shopify_headers(big))
        assert (status, answer["error"]) == (413, "TOO_LARGE")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
            for _ in range(5):
                yield b"y" * 1024

        async with hub.http.post(hub.url("shopify", "sh-1"), data=chunks()) as response:
            assert response.status == 413
        exact = b'{"id":1,"note":"' + b"x" * (4096 - 18) + b'"}'
        assert len(exact) == 4096
        status, answer = await hub.post("shopify", "sh-1", exact, shopify_headers(exact))
        assert status == 202  # read whole, then refused by the translator
        assert hub.count(schema.orders) == 0
    finally:
        await close(hub)


class BrokenIntake(OrderIntake):
    async def ingest(self, platform: str, shop_id: str, payload: str | bytes) -> Saved:
        raise RuntimeError("connection to postgres://hub:s3cret@db failed")


async def test_a_failure_inside_the_hub_is_a_500_without_details(
    new_database: Callable[[str], str],
) -> None:
    engine = make_engine(new_database("sqlite"))
    intake = BrokenIntake(OrderStore(engine), MasterData(engine), DeadLetters(engine))
    receiver = WebhookReceiver(intake, SHOPS, DeadLetters(engine))
    await receiver.start("127.0.0.1:0")
    hub = Hub(engine, receiver, aiohttp.ClientSession(), Fetcher(), intake)
    try:
        url = hub.url("shopify", "sh-1")
        headers = shopify_headers(SHOPIFY_ORDER)
        async with hub.http.post(url, data=SHOPIFY_ORDER, headers=headers) as response:
            text = await response.text()
        assert response.status == 500
        assert json.loads(text)["error"] == "INTERNAL"
        assert "s3cret" not in text and "Traceback" not in text
    finally:
        await close(hub)


async def test_health_and_listen_addresses(lite: Hub) -> None:
    async with lite.http.get(f"http://127.0.0.1:{lite.receiver.port}/healthz") as response:
        assert response.status == 200 and await response.json() == {"status": "ok"}
    assert split_addr("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert split_addr("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError):
        split_addr("localhost")


async def test_a_kept_douyin_push_is_replayed_by_fetching_the_order_again(hub: Hub) -> None:
    body, headers = douyin_push(tagged("101", "m9", p_id=int(DOUYIN_ORDER_ID)))
    await hub.post("douyin", "dy-1", body, headers)
    letters = DeadLetters(hub.engine).listing(source="webhook")
    assert [x.error for x in letters] == ["FETCH_FAILED"]

    async def fetch(platform: str, shop_id: str, order_id: str) -> str:
        return await hub.fetcher(SHOPS.get(platform, shop_id), order_id)  # type: ignore[arg-type]

    # Without a fetcher, or while the platform still says no, the letter stays open as a
    # failed fetch, not as an order that cannot be translated.
    [still] = await hub.intake.replay(letters)
    assert (still.status, still.error) == (LetterStatus.OPEN, "FETCH_FAILED")
    hub.intake.fetch_order = fetch
    [again] = await hub.intake.replay(DeadLetters(hub.engine).listing(source="webhook"))
    assert (again.status, again.error) == (LetterStatus.OPEN, "FETCH_FAILED")
    assert "douyin said no" in again.reason

    hub.fetcher.orders[DOUYIN_ORDER_ID] = DOUYIN_DETAIL
    [done] = await hub.intake.replay(DeadLetters(hub.engine).listing(source="webhook"))
    assert done.status is LetterStatus.REPLAYED
    assert hub.intake.store.find("douyin", "dy-1", DOUYIN_ORDER_ID) is not None
