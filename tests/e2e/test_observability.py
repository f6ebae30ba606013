"""Observability end to end: /metrics scraped from the running hub, the operator page in
headless Chromium, and the page's data refused without an ops or admin token.

The shared hub holds other tests' data, so counters are compared before and after this
test's own calls, and the page is opened filtered to this test's warehouses.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import nats
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client.parser import text_string_to_metric_families

from hub.app import Hub
from hub.consuming import DurableConsumer
from hub.ops import OpsListener, OpsPages
from orderhub.client import authorized_aio_channel
from orderhub.v1 import routing_pb2, routing_pb2_grpc, stock_pb2, stock_pb2_grpc
from tests.conftest import NATS_URL, REQUIRE_SERVICES

JSON = {"Content-Type": "application/json"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SCREEN = (1280, 900)


@pytest.fixture
async def channel(grpc_address: str, admin_token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_aio_channel(grpc_address, admin_token) as ch:
        yield ch


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def base_url(hub: Hub) -> str:
    return f"http://127.0.0.1:{hub.http_port}"


async def scrape(hub: Hub, http: aiohttp.ClientSession) -> Samples:
    """Every sample /metrics shows now, refreshed series included."""
    await hub.metrics.refresh(max_age_s=0)
    async with http.get(base_url(hub) + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def has(samples: Samples, name: str) -> bool:
    return any(n == name for n, _ in samples)


async def shop(stock: stock_pb2_grpc.StockServiceStub, unique: str) -> tuple[str, str, str]:
    """Two warehouses in 广东省 and a SKU stocked in both: (Guangzhou, Shenzhen, SKU)."""
    gz, sz, sku = f"{unique}-GZ", f"{unique}-SZ", f"{unique}-TEE"
    for wh, city in ((gz, "广州市"), (sz, "深圳市")):
        await stock.UpsertWarehouse(
            stock_pb2.UpsertWarehouseRequest(
                warehouse_id=wh, name=wh, province="广东省", city=city, daily_capacity=100
            )
        )
    await stock.UpsertSku(
        stock_pb2.UpsertSkuRequest(sku=sku, name="T-shirt", weight_grams=300, safety_stock=2)
    )
    await stock.SetStock(stock_pb2.SetStockRequest(warehouse_id=gz, sku=sku, on_hand=40))
    await stock.SetStock(stock_pb2.SetStockRequest(warehouse_id=sz, sku=sku, on_hand=7))
    return gz, sz, sku


def line(sku: str, quantity: int, warehouse_id: str) -> stock_pb2.ReserveLine:
    return stock_pb2.ReserveLine(sku=sku, quantity=quantity, warehouse_id=warehouse_id)


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    return ts


async def test_metrics_count_calls_reservations_expiries_and_show_stock_lanes_and_sync(
    hub: Hub,
    channel: grpc.aio.Channel,
    grpc_address: str,
    http: aiohttp.ClientSession,
    tokens: Callable[..., str],
    unique: str,
) -> None:
    stock = stock_pb2_grpc.StockServiceStub(channel)
    routing = routing_pb2_grpc.RoutingServiceStub(channel)
    gz, sz, sku = await shop(stock, unique)
    reserve = "StockService/Reserve"

    nc = await nats.connect(NATS_URL)
    expired: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def on_holds(msg: Any) -> None:
        for event in json.loads(msg.data)["events"]:
            mine = event["kind"] == "EXPIRED" and event["order_id"] == f"{unique}-short"
            if mine and not expired.done():
                expired.set_result(event)

    await nc.subscribe(f"oms.stock.holds.{gz}", cb=on_holds)
    before = await scrape(hub, http)

    await stock.Reserve(stock_pb2.ReserveRequest(order_id=f"{unique}-1", lines=[line(sku, 3, gz)]))
    await stock.Reserve(stock_pb2.ReserveRequest(order_id=f"{unique}-1", lines=[line(sku, 3, gz)]))
    with pytest.raises(grpc.aio.AioRpcError) as short:
        await stock.Reserve(
            stock_pb2.ReserveRequest(order_id=f"{unique}-2", lines=[line(sku, 1000, gz)])
        )
    assert short.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    await stock.Release(stock_pb2.ReleaseRequest(order_id=f"{unique}-1"))
    await stock.Reserve(
        stock_pb2.ReserveRequest(
            order_id=f"{unique}-short", lines=[line(sku, 2, gz)], ttl_seconds=1
        )
    )
    await stock.Reserve(stock_pb2.ReserveRequest(order_id=f"{unique}-4", lines=[line(sku, 5, sz)]))
    # Refused by the guard: no token, and a role that may not reserve.
    async with grpc.aio.insecure_channel(grpc_address) as bare:
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await stock_pb2_grpc.StockServiceStub(bare).Reserve(
                stock_pb2.ReserveRequest(order_id=f"{unique}-5", lines=[line(sku, 1, gz)])
            )
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
    async with authorized_aio_channel(grpc_address, tokens("finance")) as finance:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stock_pb2_grpc.StockServiceStub(finance).Reserve(
                stock_pb2.ReserveRequest(order_id=f"{unique}-5", lines=[line(sku, 1, gz)])
            )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    # A delivery outcome makes a lane the board reports.
    await routing.RecordLaneOutcome(
        routing_pb2.RecordLaneOutcomeRequest(
            warehouse_id=gz,
            carrier="zto",
            destination_province="广东",
            late=True,
            occurred_at=now_ts(),
            outcome_id=f"{unique}-lane",
        )
    )
    # A WMS event, applied by the sync.
    applied_before = hub.wms.counters.applied
    js = nc.jetstream()
    body = {"event_id": f"{unique}-in", "sku": sku, "type": "INBOUND", "quantity": 10}
    await js.publish(f"wms.events.{sz}", json.dumps(body).encode(), headers=JSON)
    await hub.wms.wait_until(lambda c: c.applied >= applied_before + 1)
    # The short hold expires in its shard; the relay counts the event once it published it.
    await asyncio.wait_for(expired, 30)
    await hub.relay.drained()
    await nc.close()

    after = await scrape(hub, http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # RPCs: every call counted with the status its caller got, refusals included.
    assert delta("orderhub_rpc_requests_total", method=reserve, code="OK") == 4
    assert delta("orderhub_rpc_requests_total", method=reserve, code="FAILED_PRECONDITION") == 1
    assert delta("orderhub_rpc_requests_total", method=reserve, code="UNAUTHENTICATED") == 1
    assert delta("orderhub_rpc_requests_total", method=reserve, code="PERMISSION_DENIED") == 1
    assert delta("orderhub_rpc_requests_total", method="StockService/Release", code="OK") == 1
    assert delta("orderhub_rpc_duration_seconds_count", method=reserve) == 7
    assert delta("orderhub_rpc_duration_seconds_bucket", method=reserve, le="+Inf") == 7
    assert delta("orderhub_rpc_duration_seconds_sum", method=reserve) > 0
    # Reservations as the inventory answered them.
    assert delta("orderhub_reservations_total", outcome="held") == 3
    assert delta("orderhub_reservations_total", outcome="repeated") == 1
    assert delta("orderhub_reservations_total", outcome="insufficient_stock") == 1
    assert delta("orderhub_reservation_decisions_total", decision="released") == 1
    # Hold events as published (other tests' holds may expire or move meanwhile).
    assert delta("orderhub_hold_events_total", kind="expired") >= 1
    assert delta("orderhub_hold_events_total", kind="held") >= 3
    assert delta("orderhub_hold_events_total", kind="released") >= 1
    assert delta("orderhub_outbox_published_messages_total", topic="stock.holds") >= 1

    # ATP by warehouse: the same numbers as the inventory map.
    found = await stock.GetInventoryMap(
        stock_pb2.GetInventoryMapRequest(
            group_by=[stock_pb2.INVENTORY_MAP_DIMENSION_WAREHOUSE], warehouse_ids=[gz, sz]
        )
    )
    by_wh = {r.warehouse_id: r for r in found.rows}
    for wh, city in ((gz, "广州市"), (sz, "深圳市")):
        place = {"warehouse_id": wh, "province": "广东省", "city": city}
        assert value(after, "orderhub_available_units", **place) == by_wh[wh].available
        assert value(after, "orderhub_on_hand_units", **place) == by_wh[wh].on_hand
        assert value(after, "orderhub_reserved_units", **place) == by_wh[wh].reserved
    assert (
        value(after, "orderhub_on_hand_units", warehouse_id=sz, province="广东省", city="深圳市")
        == 17
    )
    assert (
        value(after, "orderhub_reserved_units", warehouse_id=sz, province="广东省", city="深圳市")
        == 5
    )

    # Lanes: only those the board reports, with its state and late share.
    [health] = (
        await routing.GetLaneHealth(routing_pb2.GetLaneHealthRequest(warehouse_id=gz))
    ).lanes
    lane = {"warehouse_id": gz, "carrier": "zto", "destination_province": "广东"}
    assert value(after, "orderhub_lane_breaker_state", **lane) == 0
    assert value(after, "orderhub_lane_late_ratio", **lane) == pytest.approx(health.delay_rate)
    assert (("orderhub_lane_breaker_state", tuple(sorted(lane.items())))) in after
    assert value(after, "orderhub_lanes", state="CLOSED") >= 1

    # The WMS sync and the outbox.
    assert delta("orderhub_wms_events_total", result="applied") >= 1
    last = value(after, "orderhub_wms_last_applied_timestamp_seconds")
    assert abs(last - datetime.now(UTC).timestamp()) < 60
    assert value(after, "orderhub_wms_lag_seconds") == 0
    assert value(after, "orderhub_wms_pending_events") == 0
    assert value(after, "orderhub_wms_connected") == 1
    assert has(after, "orderhub_outbox_pending_messages")
    assert has(after, "orderhub_outbox_oldest_pending_age_seconds")
    assert has(after, "orderhub_dead_letters_open")
    for source in ("inventory", "lanes", "wms", "database"):
        assert value(after, "orderhub_metrics_source_up", source=source) == 1
    # Process basics from prometheus-client's collectors, on the hub's registry.
    assert has(after, "process_cpu_seconds_total")
    assert has(after, "python_info")


async def test_the_consumer_position_shows_the_oldest_event_waiting(unique: str) -> None:
    """The WMS lag is the age of the oldest message not yet acknowledged, from JetStream."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    stream, subject = f"OBS_{unique}", f"obs-{unique}.events"
    release = asyncio.Event()
    handled = asyncio.Event()
    acked: list[bytes] = []
    all_acked = asyncio.Event()

    class Held(DurableConsumer[None]):
        async def handle(self, msgs: Any) -> None:
            handled.set()
            await release.wait()
            for msg in msgs:
                await msg.ack_sync()
                acked.append(msg.data)
            if len(acked) == 3:
                all_acked.set()

    consumer = Held(
        nc,
        None,  # type: ignore[arg-type]  # no poison here, so no dead letters
        None,
        stream=stream,
        subjects=[f"obs-{unique}.>"],
        consumer=f"obs-{unique}",
    )
    try:
        await consumer.start()
        idle = await consumer.position()
        assert (idle.pending, idle.ack_pending, idle.oldest_waiting_at) == (0, 0, None)
        first = datetime.now(UTC)
        for n in range(3):
            await js.publish(subject, str(n).encode())
        await asyncio.wait_for(handled.wait(), 10)
        waiting = await consumer.position()
        assert waiting.pending + waiting.ack_pending == 3
        assert waiting.oldest_waiting_at is not None
        assert abs((waiting.oldest_waiting_at - first).total_seconds()) < 5
        release.set()
        await asyncio.wait_for(all_acked.wait(), 10)
        done = await consumer.position()
        assert (done.pending, done.ack_pending, done.oldest_waiting_at) == (0, 0, None)
    finally:
        release.set()
        await consumer.stop()
        await js.delete_stream(stream)
        await nc.close()


async def test_the_page_data_needs_an_ops_or_admin_token(
    hub: Hub, http: aiohttp.ClientSession, tokens: Callable[..., str], admin_token: str
) -> None:
    url = base_url(hub)
    endpoints = ("/ops/api/inventory", "/ops/api/lanes", "/ops/api/status")
    for path in endpoints:
        async with http.get(url + path) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"] == "UNAUTHENTICATED"
        async with http.get(url + path, headers={"Authorization": "Bearer forged"}) as response:
            assert response.status == 401
        for role in ("finance", "wms", "cs_lead", "integration"):
            auth = {"Authorization": f"Bearer {tokens(role)}"}
            async with http.get(url + path, headers=auth) as response:
                assert response.status == 403, role
                assert (await response.json())["error"] == "PERMISSION_DENIED"
        for token in (tokens("ops"), admin_token):
            async with http.get(url + path, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
                assert r.headers["Cache-Control"] == "no-store"
    # The page itself holds no data and runs only its own script.
    async with http.get(url + "/ops") as response:
        assert response.status == 200
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "/ops/static/ops.js" in await response.text()
    async with http.get(url + "/ops/static/../app.py") as response:
        assert response.status == 404
    async with http.get(
        url + "/ops/api/inventory?by=postcode", headers={"Authorization": f"Bearer {admin_token}"}
    ) as response:
        assert response.status == 400
        assert (await response.json())["field"] == "by"


async def test_the_metrics_and_page_can_have_a_listener_of_their_own(
    hub: Hub, http: aiohttp.ClientSession
) -> None:
    listener = OpsListener(OpsPages(hub).routes())
    port = await listener.start("127.0.0.1:0")
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert "orderhub_rpc_requests_total" in await response.text()
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        async with http.get(f"http://127.0.0.1:{port}/webhooks/shopify/x") as response:
            assert response.status in (404, 405)  # no webhooks on this listener
    finally:
        await listener.stop()


# ------------------------------------------------------------------------ the page


def chromium() -> str:
    """Chromium's path; skips (or fails, when services are required) without one."""
    candidates = [
        os.environ.get("ORDERHUB_TEST_CHROMIUM", ""),
        "/usr/bin/chromium",
        shutil.which("chromium") or "",
        shutil.which("chromium-browser") or "",
    ]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    message = "no Chromium found (apt-get install chromium, or set ORDERHUB_TEST_CHROMIUM)"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """A non-interlaced 8-bit RGB or RGBA PNG's width, height and unfiltered rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    at = 0
    for _ in range(height):
        kind, cur = raw[at], bytearray(raw[at + 1 : at + 1 + stride])
        at += 1 + stride
        for x in range(stride):
            left = cur[x - bpp] if x >= bpp else 0
            if kind == 1:
                cur[x] = (cur[x] + left) & 0xFF
            elif kind == 2:
                cur[x] = (cur[x] + prev[x]) & 0xFF
            elif kind == 3:
                cur[x] = (cur[x] + ((left + prev[x]) >> 1)) & 0xFF
            elif kind == 4:
                up, corner = prev[x], prev[x - bpp] if x >= bpp else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                cur[x] = (cur[x] + pred) & 0xFF
        rows.append(bytes(cur))
        prev = cur
    return width, height, rows


def looks_rendered(png: bytes) -> tuple[int, float]:
    """Distinct colours and the share of pixels that are not (nearly) white."""
    width, _, rows = png_pixels(png)
    bpp = len(rows[0]) // width
    colours: set[bytes] = set()
    inked = 0
    for row in rows[::2]:  # every other row is plenty for a census
        for x in range(0, len(row), bpp * 2):
            pixel = row[x : x + 3]
            colours.add(pixel)
            if min(pixel) < 235:
                inked += 1
    sampled = len(rows[::2]) * len(range(0, width * bpp, bpp * 2))
    return len(colours), inked / sampled


async def test_the_operator_page_shows_the_map_and_lanes_as_the_api_does(
    hub: Hub,
    channel: grpc.aio.Channel,
    tokens: Callable[..., str],
    unique: str,
    tmp_path: Path,
) -> None:
    path = chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        if REQUIRE_SERVICES:
            raise
        pytest.skip("playwright is not installed (pip install -e '.[test]')")

    stock = stock_pb2_grpc.StockServiceStub(channel)
    routing = routing_pb2_grpc.RoutingServiceStub(channel)
    gz, sz, sku = await shop(stock, unique)
    await stock.Reserve(stock_pb2.ReserveRequest(order_id=f"{unique}-o", lines=[line(sku, 4, gz)]))
    for n, late in enumerate((True, False, False)):
        await routing.RecordLaneOutcome(
            routing_pb2.RecordLaneOutcomeRequest(
                warehouse_id=sz,
                carrier="sf",
                destination_province="广东",
                late=late,
                occurred_at=now_ts(),
                outcome_id=f"{unique}-lane-{n}",
            )
        )
    expected = await stock.GetInventoryMap(
        stock_pb2.GetInventoryMapRequest(
            group_by=[
                stock_pb2.INVENTORY_MAP_DIMENSION_PROVINCE,
                stock_pb2.INVENTORY_MAP_DIMENSION_CITY,
                stock_pb2.INVENTORY_MAP_DIMENSION_WAREHOUSE,
            ],
            warehouse_ids=[gz, sz],
        )
    )
    [lane] = (await routing.GetLaneHealth(routing_pb2.GetLaneHealthRequest(warehouse_id=sz))).lanes
    url = f"{base_url(hub)}/ops?by=province,city,warehouse&warehouse={gz},{sz}"
    columns = ("on_hand", "reserved", "safety_stock", "available", "sku_count", "out_of_stock_skus")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=path, args=["--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            page = await browser.new_page(
                viewport={"width": SCREEN[0], "height": SCREEN[1]}, locale="en-US"
            )
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            await page.goto(url)
            # A wrong role is refused and asked again.
            await page.fill("#token", tokens("finance"))
            await page.click("#signin-form button[type=submit]")
            await page.locator("#signin-error", has_text="needs").wait_for()
            assert await page.locator("#board").is_hidden()

            await page.fill("#token", tokens("ops"))
            await page.click("#signin-form button[type=submit]")
            for row in expected.rows:
                key = f"{row.province}|{row.city}|{row.warehouse_id}"
                shown = page.locator(f'#inventory tbody tr[data-key="{key}"]')
                await shown.wait_for()
                for column in columns:
                    cell = shown.locator(f'td[data-col="{column}"]')
                    assert await cell.get_attribute("data-value") == str(getattr(row, column))
                text = await shown.locator('td[data-col="available"]').inner_text()
                assert text.strip() == f"{row.available:,}"
            assert await page.locator("#inventory tbody tr").count() == len(expected.rows)
            total = page.locator('#inventory tfoot tr[data-key="TOTAL"]')
            for column in columns:
                cell = total.locator(f'td[data-col="{column}"]')
                assert await cell.get_attribute("data-value") == str(
                    getattr(expected.total, column)
                )

            shown_lane = page.locator(f'#lanes tbody tr[data-lane="{sz}|sf|广东"]')
            await shown_lane.wait_for()
            assert await shown_lane.locator('td[data-col="state"]').inner_text() == "CLOSED"
            late = await shown_lane.locator('td[data-col="late_ratio"]').get_attribute("data-value")
            assert float(late or "nan") == pytest.approx(lane.delay_rate)
            outcomes = shown_lane.locator('td[data-col="outcomes"]')
            assert await outcomes.get_attribute("data-value") == str(lane.outcomes)
            await page.locator("#tile-lanes .value", has_text="/").wait_for()

            # The token stays in this tab's session, never in the address or local storage.
            assert await page.evaluate("window.localStorage.length") == 0
            assert await page.evaluate("sessionStorage.getItem('orderhub.ops.token')")
            assert "token" not in page.url
            assert errors == []

            shot = tmp_path / "ops-page.png"
            png = await page.screenshot(path=str(shot))
        finally:
            await browser.close()

    assert shot.exists() and shot.read_bytes() == png
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == SCREEN
    colours, inked = looks_rendered(png)
    assert colours >= 20, f"only {colours} colours: the page did not render"
    assert 0.05 < inked < 0.95, f"{inked:.0%} of the screenshot is not white"
