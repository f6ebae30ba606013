"""The typed client (orderhub.client): its retry policy, metadata and errors, then end to end."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from hub.embedded import free_port
from orderhub import (
    AsyncOrderHubClient,
    Backoff,
    FailedPrecondition,
    InsufficientStock,
    InvalidArgument,
    Line,
    NotFound,
    OrderHubClient,
    OrderHubError,
    ReservationClosed,
    RetryPolicy,
    Unavailable,
    auth_metadata,
)
from orderhub.v1 import order_pb2, routing_pb2, stock_pb2

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platforms"
DOUYIN_SAMPLE = FIXTURES / "douyin_order_detail_sample.json"

# Waits short enough that retry tests cost milliseconds, not seconds.
FAST = Backoff(initial=0.001, maximum=0.004, jitter=0.0)
HELD = stock_pb2.RESERVATION_STATUS_HELD
STOCK_SERVICE = stock_pb2.DESCRIPTOR.services_by_name["StockService"].full_name


class FakeRpcError(grpc.RpcError):
    """A failed call as grpc raises it: a code, details and trailing metadata."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        super().__init__(details)
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    # grpc-stubs declares _Metadatum objects here; grpc really returns (key, value) pairs.
    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:  # type: ignore[override]
        return self._trailing


def failing(codes: list[grpc.StatusCode]) -> tuple[Callable[[], str], list[int]]:
    """A callable that fails with each of ``codes`` in turn, then answers "ok"."""
    calls: list[int] = []

    def attempt() -> str:
        calls.append(len(calls))
        if len(calls) <= len(codes):
            raise FakeRpcError(codes[len(calls) - 1], "boom")
        return "ok"

    return attempt, calls


# --------------------------------------------------------------------------- retry policy


def test_retry_policy_retries_unavailable_with_growing_backoff() -> None:
    attempt, calls = failing([grpc.StatusCode.UNAVAILABLE] * 2)
    slept: list[float] = []
    policy = RetryPolicy(retries=3, backoff=Backoff(initial=0.1, maximum=2.0, jitter=0.0))

    assert policy.run(attempt, idempotent=False, sleep=slept.append) == "ok"
    assert len(calls) == 3
    assert slept == pytest.approx([0.1, 0.2])


def test_retry_policy_gives_up_after_its_retries() -> None:
    attempt, calls = failing([grpc.StatusCode.UNAVAILABLE] * 10)
    slept: list[float] = []

    with pytest.raises(FakeRpcError) as caught:
        RetryPolicy(retries=2, backoff=FAST).run(attempt, idempotent=True, sleep=slept.append)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert len(calls) == 3 and len(slept) == 2


def test_deadline_exceeded_is_retried_only_for_idempotent_calls() -> None:
    policy = RetryPolicy(retries=3, backoff=FAST)

    attempt, calls = failing([grpc.StatusCode.DEADLINE_EXCEEDED])
    assert policy.run(attempt, idempotent=True, sleep=lambda _: None) == "ok"
    assert len(calls) == 2

    attempt, calls = failing([grpc.StatusCode.DEADLINE_EXCEEDED])
    with pytest.raises(FakeRpcError):
        policy.run(attempt, idempotent=False, sleep=lambda _: None)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_other_codes_are_never_retried(code: grpc.StatusCode) -> None:
    attempt, calls = failing([code])
    with pytest.raises(FakeRpcError):
        RetryPolicy(retries=5, backoff=FAST).run(attempt, idempotent=True, sleep=lambda _: None)
    assert len(calls) == 1


async def test_async_retry_policy_retries_unavailable() -> None:
    attempt, calls = failing([grpc.StatusCode.UNAVAILABLE] * 2)
    slept: list[float] = []

    async def attempt_async() -> str:
        return attempt()

    async def sleep(delay: float) -> None:
        slept.append(delay)

    policy = RetryPolicy(retries=3, backoff=FAST)
    assert await policy.run_async(attempt_async, idempotent=False, sleep=sleep) == "ok"
    assert len(calls) == 3 and slept == pytest.approx([0.001, 0.002])


def test_backoff_is_capped_and_jittered_within_bounds() -> None:
    backoff = Backoff(initial=0.1, maximum=0.5, multiplier=2.0, jitter=0.5)
    caps = [0.1, 0.2, 0.4, 0.5, 0.5]
    for retry, cap in enumerate(caps):
        assert backoff.delay(retry, rand=lambda: 0.0) == pytest.approx(cap / 2)
        assert backoff.delay(retry, rand=lambda: 1.0) == pytest.approx(cap)
        assert cap / 2 <= backoff.delay(retry) <= cap
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


# --------------------------------------------------------------------------- metadata and errors


def test_auth_metadata_carries_the_bearer_token() -> None:
    assert auth_metadata("s3cret") == (("authorization", "Bearer s3cret"),)
    assert auth_metadata(None) == ()
    assert auth_metadata("") == ()


def test_client_metadata_asks_a_token_callable_every_time() -> None:
    tokens = iter(["one", "two"])
    with OrderHubClient("127.0.0.1:1", token=lambda: next(tokens)) as hub:
        assert hub.metadata() == (("authorization", "Bearer one"),)
        assert hub.metadata() == (("authorization", "Bearer two"),)
    with OrderHubClient("127.0.0.1:1") as hub:
        assert hub.metadata() == ()


def _rich_error(code: grpc.StatusCode, message: str, detail: Any) -> FakeRpcError:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = rpc_status.to_status(
        status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=[packed])
    )
    return FakeRpcError(status.code, status.details, tuple(status.trailing_metadata))


def test_errors_are_parsed_from_rich_status_details() -> None:
    short = OrderHubError.from_rpc_error(
        _rich_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            "not enough stock of SKU TEE",
            error_details_pb2.ErrorInfo(
                reason="INSUFFICIENT_STOCK", domain="orderhub.v1", metadata={"sku": "TEE"}
            ),
        )
    )
    assert isinstance(short, InsufficientStock) and isinstance(short, FailedPrecondition)
    assert short.sku == "TEE" and short.reason == "INSUFFICIENT_STOCK"
    assert str(short) == "FAILED_PRECONDITION: not enough stock of SKU TEE [INSUFFICIENT_STOCK]"

    bad = OrderHubError.from_rpc_error(
        _rich_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "order_id is required",
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="order_id", description="order_id is required"
                    )
                ]
            ),
        )
    )
    assert isinstance(bad, InvalidArgument)
    assert bad.field == "order_id"
    assert bad.violations == (("order_id", "order_id is required"),)

    again = pickle.loads(pickle.dumps(short))
    assert type(again) is InsufficientStock and again.sku == "TEE"


def test_errors_without_details_keep_code_and_message() -> None:
    plain = OrderHubError.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down"))
    assert isinstance(plain, Unavailable)
    assert (plain.code, plain.message, plain.field, plain.reason) == (
        grpc.StatusCode.UNAVAILABLE,
        "down",
        "",
        "",
    )
    unknown = OrderHubError.from_rpc_error(grpc.RpcError("no call behind this"))
    assert type(unknown) is OrderHubError and unknown.code is grpc.StatusCode.UNKNOWN


# --------------------------------------------------------------------------- over a real channel


class ScriptedStock:
    """A StockService Reserve that fails ``failures`` times, recording what calls carry."""

    def __init__(self) -> None:
        self.failures = 0
        self.code = grpc.StatusCode.UNAVAILABLE
        self.seen: list[tuple[dict[str, str], float | None]] = []

    async def reserve(
        self, request: stock_pb2.ReserveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> stock_pb2.ReserveResponse:
        metadata = {k: str(v) for k, v in (context.invocation_metadata() or ())}
        self.seen.append((metadata, context.time_remaining()))
        if len(self.seen) <= self.failures:
            await context.abort(self.code, "shard restarting")
        return stock_pb2.ReserveResponse(
            reservation_id="rsv-1", order_id=request.order_id, lines=[], status=HELD
        )


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, ScriptedStock]]:
    """A local server with a scripted StockService, and its address."""
    servicer = ScriptedStock()
    reserve = grpc.unary_unary_rpc_method_handler(
        servicer.reserve,
        request_deserializer=stock_pb2.ReserveRequest.FromString,
        response_serializer=stock_pb2.ReserveResponse.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(STOCK_SERVICE, {"Reserve": reserve})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", servicer
    await server.stop(None)


async def test_calls_send_the_bearer_token_and_the_deadline(
    scripted: tuple[str, ScriptedStock],
) -> None:
    address, servicer = scripted
    async with AsyncOrderHubClient(address, token="s3cret", timeout=5.0) as hub:
        reservation = await hub.reserve("o-1", [Line("TEE", 1)])
    assert reservation.order_id == "o-1" and reservation.status == HELD
    [(metadata, remaining)] = servicer.seen
    assert metadata["authorization"] == "Bearer s3cret"
    # The deadline travels rounded to the wire's timeout units, hence the slack above 5 s.
    assert remaining is not None and 0 < remaining <= 5.5


async def test_sync_client_retries_unavailable_until_it_succeeds(
    scripted: tuple[str, ScriptedStock],
) -> None:
    address, servicer = scripted
    servicer.failures = 2
    tokens = iter(["t1", "t2", "t3"])

    def reserve() -> stock_pb2.Reservation:
        with OrderHubClient(address, token=lambda: next(tokens), backoff=FAST) as hub:
            return hub.reserve("o-2", [("TEE", 1)])

    reservation = await asyncio.to_thread(reserve)
    assert reservation.reservation_id == "rsv-1"
    # Each attempt asked for the token again, so a refreshed token is picked up.
    assert [m["authorization"] for m, _ in servicer.seen] == [
        "Bearer t1",
        "Bearer t2",
        "Bearer t3",
    ]


async def test_async_client_gives_up_after_its_retries(
    scripted: tuple[str, ScriptedStock],
) -> None:
    address, servicer = scripted
    servicer.failures = 100
    async with AsyncOrderHubClient(address, retries=2, backoff=FAST) as hub:
        with pytest.raises(Unavailable, match="shard restarting"):
            await hub.reserve("o-3", [("TEE", 1)])
    assert len(servicer.seen) == 3


async def test_refusals_are_not_retried(scripted: tuple[str, ScriptedStock]) -> None:
    address, servicer = scripted
    servicer.failures, servicer.code = 100, grpc.StatusCode.INVALID_ARGUMENT
    async with AsyncOrderHubClient(address, backoff=FAST) as hub:
        with pytest.raises(InvalidArgument):
            await hub.reserve("o-4", [("TEE", 1)])
    assert len(servicer.seen) == 1


@pytest.fixture
def unimplemented_address() -> Iterator[str]:
    """A server with no services at all: every RPC answers UNIMPLEMENTED."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_stream_errors_are_typed_too(unimplemented_address: str) -> None:
    with OrderHubClient(unimplemented_address) as hub:
        changes = hub.watch_availability(["TEE"], timeout=5.0)
        with pytest.raises(OrderHubError) as caught:
            next(changes)
    assert caught.value.code is grpc.StatusCode.UNIMPLEMENTED


async def test_wait_until_serving_times_out_when_nothing_listens() -> None:
    async with AsyncOrderHubClient(f"127.0.0.1:{free_port()}") as hub:
        with pytest.raises(TimeoutError):
            await hub.wait_until_serving(timeout=0.3)


# --------------------------------------------------------------------------- against the hub


@pytest.fixture
async def client(grpc_address: str, admin_token: str) -> AsyncIterator[AsyncOrderHubClient]:
    """An asyncio client of the shared hub with an admin token."""
    async with AsyncOrderHubClient(grpc_address, token=admin_token, timeout=20.0) as hub:
        await hub.wait_until_serving(timeout=30)
        yield hub


async def stocked(hub: AsyncOrderHubClient, prefix: str, on_hand: int) -> tuple[str, str]:
    """A warehouse and a SKU named with ``prefix``, with ``on_hand`` units; their ids."""
    warehouse_id, sku = f"{prefix}-GZ", f"{prefix}-TEE"
    await hub.upsert_warehouse(warehouse_id, "Guangzhou DC", "广东省", "广州市", daily_capacity=500)
    await hub.upsert_sku(sku, "T-shirt", category="apparel", weight_grams=200)
    level = await hub.set_stock(warehouse_id, sku, on_hand, reason="test stock take")
    assert (level.on_hand, level.available) == (on_hand, on_hand)
    return warehouse_id, sku


async def test_reserve_lowers_availability_and_release_restores_it(
    client: AsyncOrderHubClient, unique: str
) -> None:
    warehouse_id, sku = await stocked(client, unique, 10)

    held = await client.reserve(f"{unique}-o1", [Line(sku, 3)], ttl_seconds=600)
    assert held.status == HELD and held.order_id == f"{unique}-o1"
    assert [(ln.sku, ln.quantity, ln.warehouse_id) for ln in held.lines] == [(sku, 3, warehouse_id)]
    assert held.HasField("expires_at") and held.HasField("created_at")

    availability = await client.get_availability(sku)
    assert availability.total_available == 7
    [level] = availability.levels
    assert (level.on_hand, level.reserved, level.available) == (10, 3, 7)

    again = await client.reserve(f"{unique}-o1", [Line(sku, 3)])
    assert again.reservation_id == held.reservation_id
    assert (await client.get_availability(sku)).total_available == 7

    released = await client.release(f"{unique}-o1")
    assert released.status == stock_pb2.RESERVATION_STATUS_RELEASED
    assert (await client.get_availability(sku, [warehouse_id])).total_available == 10
    with pytest.raises(ReservationClosed):
        await client.commit(f"{unique}-o1")


async def test_commit_takes_the_goods_out(client: AsyncOrderHubClient, unique: str) -> None:
    _, sku = await stocked(client, unique, 5)
    await client.reserve(f"{unique}-o1", [(sku, 2)])

    committed = await client.commit(f"{unique}-o1")
    assert committed.status == stock_pb2.RESERVATION_STATUS_COMMITTED
    assert (await client.commit(f"{unique}-o1")).reservation_id == committed.reservation_id
    assert (await client.get_reservation(f"{unique}-o1")).status == committed.status
    [level] = (await client.get_availability(sku)).levels
    assert (level.on_hand, level.reserved, level.available) == (3, 0, 3)


async def test_out_of_stock_raises_insufficient_stock_naming_the_sku(
    grpc_address: str, admin_token: str, unique: str
) -> None:
    async with AsyncOrderHubClient(grpc_address, token=admin_token) as setup:
        _, sku = await stocked(setup, unique, 4)

    def scenario() -> InsufficientStock:
        with OrderHubClient(grpc_address, token=admin_token, timeout=20.0) as hub:
            with pytest.raises(InsufficientStock) as caught:
                hub.reserve(f"{unique}-o1", [Line(sku, 5)])
            assert hub.get_availability(sku).total_available == 4
            return caught.value

    err = await asyncio.to_thread(scenario)
    assert err.code is grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "INSUFFICIENT_STOCK"
    assert err.sku == sku and err.metadata == {"sku": sku}


async def test_empty_order_id_raises_invalid_argument_naming_order_id(
    grpc_address: str, admin_token: str, unique: str
) -> None:
    def scenario() -> InvalidArgument:
        with OrderHubClient(grpc_address, token=admin_token, timeout=20.0) as hub:
            with pytest.raises(InvalidArgument) as caught:
                hub.reserve("", [Line(f"{unique}-TEE", 1)])
            return caught.value

    err = await asyncio.to_thread(scenario)
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.field == "order_id"
    assert "order_id" in str(err)


async def test_unknown_things_raise_not_found_with_the_reason(
    client: AsyncOrderHubClient, unique: str
) -> None:
    with pytest.raises(NotFound) as missing_reservation:
        await client.get_reservation(f"{unique}-nothing")
    assert missing_reservation.value.reason == "RESERVATION_NOT_FOUND"
    assert missing_reservation.value.field == "order_id"

    with pytest.raises(NotFound) as missing_sku:
        await client.reserve(f"{unique}-o1", [Line(f"{unique}-NOPE", 1)])
    assert missing_sku.value.reason == "UNKNOWN_SKU"


async def test_reserve_batch_answers_each_order(client: AsyncOrderHubClient, unique: str) -> None:
    _, sku = await stocked(client, unique, 3)
    results = await client.reserve_batch(
        {f"{unique}-b1": [Line(sku, 2)], f"{unique}-b2": [Line(sku, 2)]}
    )
    assert {r.order_id for r in results} == {f"{unique}-b1", f"{unique}-b2"}
    assert sorted(r.code for r in results) == [code_pb2.OK, code_pb2.FAILED_PRECONDITION]
    winner = next(r for r in results if r.code == code_pb2.OK)
    assert winner.reservation.status == HELD
    assert (await client.get_availability(sku)).total_available == 1


async def test_master_data_round_trips(grpc_address: str, admin_token: str, unique: str) -> None:
    def scenario() -> None:
        with OrderHubClient(grpc_address, token=admin_token, timeout=20.0) as hub:
            hub.wait_until_serving(timeout=30, service="orderhub.v1.StockService")
            warehouse = hub.upsert_warehouse(
                f"{unique}-SZ", "Shenzhen DC", "广东省", "深圳市", district="南山区"
            )
            assert warehouse.district == "南山区"
            assert f"{unique}-SZ" in {w.warehouse_id for w in hub.list_warehouses()}
            sku = hub.upsert_sku(f"{unique}-CAP", "Cap", safety_stock=2, size_mm=(250, 200, 120))
            assert sku.safety_stock == 2
            assert (sku.length_mm, sku.width_mm, sku.height_mm) == (250, 200, 120)
            mapping = hub.map_platform_sku("Taobao", f"{unique}-shop", "tb-1", f"{unique}-CAP")
            assert (mapping.platform, mapping.sku) == ("taobao", f"{unique}-CAP")
            level = hub.set_stock(f"{unique}-SZ", f"{unique}-CAP", 10)
            assert (level.on_hand, level.safety_stock, level.available) == (10, 2, 8)
            listed = hub.call(
                hub.stock.ListWarehouses, stock_pb2.ListWarehousesRequest(), idempotent=True
            )
            assert f"{unique}-SZ" in {w.warehouse_id for w in listed.warehouses}
            with pytest.raises(InvalidArgument) as caught:
                hub.upsert_sku(f"{unique}-BAD", "")
            assert caught.value.field == "name"
            carrier = hub.upsert_carrier("yunda", "韵达快递", "standard")
            assert carrier.carrier_id in {c.carrier_id for c in hub.list_carriers()}
            mapped = hub.inventory_map(["warehouse"], warehouse_ids=[f"{unique}-SZ"])
            assert [(r.warehouse_id, r.on_hand, r.available) for r in mapped.rows] == [
                (f"{unique}-SZ", 10, 8)
            ]
            hub.reserve(f"{unique}-o1", [(f"{unique}-CAP", 1, f"{unique}-SZ")])
            shipped = hub.request_shipment(f"{unique}-o1", "yunda")
            assert [s.warehouse_id for s in shipped.shipments] == [f"{unique}-SZ"]
            assert hub.sync_status().connected

    await asyncio.to_thread(scenario)


async def test_watch_availability_yields_changes(client: AsyncOrderHubClient, unique: str) -> None:
    warehouse_id, sku = await stocked(client, unique, 5)

    async def first_change() -> stock_pb2.WatchAvailabilityResponse:
        async with contextlib.aclosing(client.watch_availability([sku])) as changes:
            async for change in changes:
                return change
        raise AssertionError("the watch ended without a change")

    watching = asyncio.create_task(first_change())
    # The hub follows the shard feed only once the stream is open, and a watch starts
    # from now: keep changing the stock until the watch reports one of the changes.
    counts: list[int] = []
    async with asyncio.timeout(20):
        while not watching.done():
            counts.append(6 + len(counts))
            await client.set_stock(warehouse_id, sku, counts[-1])
            await asyncio.wait({watching}, timeout=0.3)
    change = watching.result()
    assert change.level.sku == sku and change.level.warehouse_id == warehouse_id
    assert change.level.on_hand in counts
    assert change.HasField("changed_at")


async def test_orders_through_the_client(client: AsyncOrderHubClient, unique: str) -> None:
    payload = DOUYIN_SAMPLE.read_text()
    taken = await client.ingest_order("douyin", f"{unique}-dy", payload)
    order = taken.order
    assert not taken.duplicate and order.queue == "review"  # its SKUs are not mapped
    assert (await client.get_order(order.order_id)).order_id == order.order_id
    listed = await client.list_orders(shop_id=f"{unique}-dy", queue="review")
    assert [o.order_id for o in listed.orders] == [order.order_id]
    with pytest.raises(FailedPrecondition):
        await client.approve_order(order.order_id)
    with pytest.raises(InvalidArgument):
        await client.ship_order(order.order_id, "", "")
    with pytest.raises(NotFound):
        await client.cancel_order("ord_missing")
    rejected = await client.reject_order(order.order_id, "test order")
    assert rejected.status == order_pb2.ORDER_STATUS_CANCELLED
    kinds = [e.kind for e in await client.order_events(order.order_id)]
    assert kinds == ["received", "queued", "rejected", "cancelled"]
    results = await client.ingest_orders(
        [("douyin", f"{unique}-dy", payload), ("douyin", f"{unique}-dy", "{not json")]
    )
    assert results[0].duplicate and results[0].order.order_id == order.order_id
    assert results[1].code == 3 and results[1].field == "payload"  # INVALID_ARGUMENT


async def test_routing_through_the_sdk(client: AsyncOrderHubClient, unique: str) -> None:
    warehouse_id, sku = await stocked(client, unique, 10)

    quote = await client.quote_route("广东省", [(sku, 2)], destination_city="广州市")
    assert [(s.warehouse_id, s.carrier) for s in quote.shipments] == [(warehouse_id, "instant")]
    assert quote.trace and quote.rules_version >= 0

    lane = await client.record_lane_outcome(
        warehouse_id,
        "zto",
        "广东",
        late=False,
        occurred_at=datetime.now(UTC),
        outcome_id=f"{unique}-1",
    )
    assert (lane.warehouse_id, lane.destination_province) == (warehouse_id, "广东")
    assert lane.state == routing_pb2.BREAKER_STATE_CLOSED
    [same] = await client.lane_health(warehouse_id=warehouse_id)
    assert same.carrier == "zto"

    rules = await client.routing_rules()
    checked = await client.update_routing_rules(rules.rules_json, validate_only=True)
    assert checked.rules_json == rules.rules_json
    with pytest.raises(InvalidArgument) as bad:
        await client.update_routing_rules('{"rules": [{"name": "x"}]}', validate_only=True)
    assert bad.value.field.startswith("rules_json.rules[0]")


async def test_async_admin_methods_issue_audit_page_and_revoke(
    client: AsyncOrderHubClient, unique: str
) -> None:
    issued = await client.create_token("finance", f"fin:{unique}", note="month end")
    assert issued.token and issued.info.role == "finance"
    assert issued.info.token_id in {t.token_id for t in await client.list_tokens(role="finance")}
    for n in range(3):
        await client.upsert_sku(f"{unique}-S{n}", "audited")
    events = [e async for e in client.audit_events(target_prefix=f"sku:{unique}", page_size=2)]
    assert [e.target for e in events] == [f"sku:{unique}-S{n}" for n in (2, 1, 0)]
    revoked = await client.revoke_token(issued.info.token_id, reason="done")
    assert revoked.HasField("revoked_at")
    assert issued.info.token_id not in {t.token_id for t in await client.list_tokens()}


async def test_raw_stubs_and_streams_carry_the_token_unless_a_call_names_its_own(
    client: AsyncOrderHubClient,
    grpc_address: str,
    admin_token: str,
    tokens: Callable[..., str],
) -> None:
    listed = await client.stock.ListWarehouses(stock_pb2.ListWarehousesRequest())
    assert listed is not None
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.stock.SetStock(
            stock_pb2.SetStockRequest(), metadata=auth_metadata(tokens("finance"))
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    watch = client.stock.WatchAvailability(stock_pb2.WatchAvailabilityRequest(skus=["none"]))
    await watch.initial_metadata()  # accepted: the stream carried the token
    watch.cancel()

    def blocking() -> int:
        with OrderHubClient(grpc_address, token=admin_token) as hub:
            answer, call = hub.stock.ListWarehouses.with_call(stock_pb2.ListWarehousesRequest())
            assert call.code() == grpc.StatusCode.OK
            return len(answer.warehouses)

    assert await asyncio.to_thread(blocking) == len(listed.warehouses)
