"""Access through the gRPC server: tokens, roles, masking in every answer and stream, audit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hub.app import Hub
from hub.auth import Principal, Tokens, signing_key
from hub.server import start_server
from orderhub.client import auth_metadata, authorized_aio_channel
from orderhub.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    order_pb2,
    order_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    stock_pb2,
    stock_pb2_grpc,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platforms"
Token = Callable[..., str]


@pytest.fixture
async def channel(grpc_address: str) -> AsyncIterator[grpc.aio.Channel]:
    """A channel with no token of its own: each call says who it is."""
    async with grpc.aio.insecure_channel(grpc_address) as ch:
        yield ch


def as_(token: str) -> tuple[tuple[str, str], ...]:
    return auth_metadata(token)


def code_of(err: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> grpc.StatusCode:
    return err.value.code()


# ------------------------------------------------------------------------ authentication


async def test_a_call_without_a_token_is_unauthenticated_but_health_is_open(
    channel: grpc.aio.Channel,
) -> None:
    stock = stock_pb2_grpc.StockServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.ListWarehouses(stock_pb2.ListWarehousesRequest())
    assert code_of(refused) == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in (refused.value.details() or "")
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-token", "Bearer a.b.c"],
)
async def test_malformed_or_forged_tokens_are_unauthenticated(
    channel: grpc.aio.Channel, authorization: str
) -> None:
    stock = stock_pb2_grpc.StockServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.ListWarehouses(
            stock_pb2.ListWarehousesRequest(), metadata=(("authorization", authorization),)
        )
    assert code_of(refused) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_signed_with_another_key_or_expired_is_refused(
    channel: grpc.aio.Channel, hub: Hub
) -> None:
    stock = stock_pb2_grpc.StockServiceStub(channel)
    admin = Principal("tests", "admin", "")
    foreign, _ = Tokens(hub.access, b"k" * 48).issue("admin", "mallory", by=admin, action="t")
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    old, _ = Tokens(hub.access, signing_key(hub.settings), clock=lambda: two_days_ago).issue(
        "admin", "old-timer", by=admin, action="t", ttl=timedelta(days=1)
    )
    for token, why in ((foreign, "Signature"), (old, "expired")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stock.ListWarehouses(stock_pb2.ListWarehousesRequest(), metadata=as_(token))
        assert code_of(refused) == grpc.StatusCode.UNAUTHENTICATED
        assert why in (refused.value.details() or "")


async def test_a_revoked_token_is_refused_from_the_next_call(
    channel: grpc.aio.Channel, admin_token: str, tokens: Token
) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    stock = stock_pb2_grpc.StockServiceStub(channel)
    made = await admin.CreateToken(
        admin_pb2.CreateTokenRequest(role="ops", subject="ops:temp", note="for one job"),
        metadata=as_(admin_token),
    )
    assert made.info.role == "ops" and made.info.issued_by == "tests-admin"
    await stock.ListWarehouses(stock_pb2.ListWarehousesRequest(), metadata=as_(made.token))

    revoked = await admin.RevokeToken(
        admin_pb2.RevokeTokenRequest(token_id=made.info.token_id, reason="job done"),
        metadata=as_(admin_token),
    )
    assert revoked.info.HasField("revoked_at") and revoked.info.revoked_by == "tests-admin"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stock.ListWarehouses(stock_pb2.ListWarehousesRequest(), metadata=as_(made.token))
    assert code_of(refused) == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (refused.value.details() or "")

    listed = await admin.ListTokens(
        admin_pb2.ListTokensRequest(role="ops", include_inactive=True), metadata=as_(admin_token)
    )
    assert made.info.token_id in {t.token_id for t in listed.tokens}
    active = await admin.ListTokens(
        admin_pb2.ListTokensRequest(role="ops"), metadata=as_(admin_token)
    )
    assert made.info.token_id not in {t.token_id for t in active.tokens}


async def test_token_requests_that_do_not_validate_name_the_field(
    channel: grpc.aio.Channel, admin_token: str
) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    for request, field in (
        (admin_pb2.CreateTokenRequest(role="root", subject="x"), "role"),
        (admin_pb2.CreateTokenRequest(role="ops", subject=" "), "subject"),
        (admin_pb2.CreateTokenRequest(role="ops", subject="x", ttl_seconds=-1), "ttl_seconds"),
        (
            admin_pb2.CreateTokenRequest(role="ops", subject="x", ttl_seconds=400 * 86400),
            "ttl_seconds",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin.CreateToken(request, metadata=as_(admin_token))
        assert code_of(refused) == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (refused.value.details() or "") or field in str(
            refused.value.trailing_metadata()
        )
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await admin.RevokeToken(
            admin_pb2.RevokeTokenRequest(token_id="no-such-token"), metadata=as_(admin_token)
        )
    assert code_of(missing) == grpc.StatusCode.NOT_FOUND


# --------------------------------------------------------------------------------- roles


async def test_roles_are_refused_what_they_may_not_do_before_the_request_is_validated(
    channel: grpc.aio.Channel, tokens: Token
) -> None:
    routing = routing_pb2_grpc.RoutingServiceStub(channel)
    stock = stock_pb2_grpc.StockServiceStub(channel)
    orders = order_pb2_grpc.OrderServiceStub(channel)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    lead, finance, wms, integration, ops = (
        tokens(r) for r in ("cs_lead", "finance", "wms", "integration", "ops")
    )
    refused_calls: list[tuple[str, Any]] = [
        # A customer-service lead may not change routing rules, even with a broken document.
        (
            "cs_lead UpdateRoutingRules",
            routing.UpdateRoutingRules(
                routing_pb2.UpdateRoutingRulesRequest(rules_json="not json"), metadata=as_(lead)
            ),
        ),
        (
            "cs_lead SetStock",
            stock.SetStock(
                stock_pb2.SetStockRequest(warehouse_id="", sku="", on_hand=-1), metadata=as_(lead)
            ),
        ),
        (
            "cs_lead UpsertCarrier",
            stock.UpsertCarrier(stock_pb2.UpsertCarrierRequest(), metadata=as_(lead)),
        ),
        (
            "finance SetStock",
            stock.SetStock(stock_pb2.SetStockRequest(on_hand=-5), metadata=as_(finance)),
        ),
        (
            "finance CancelOrder",
            orders.CancelOrder(order_pb2.CancelOrderRequest(), metadata=as_(finance)),
        ),
        (
            "wms UpdateRoutingRules",
            routing.UpdateRoutingRules(routing_pb2.UpdateRoutingRulesRequest(), metadata=as_(wms)),
        ),
        ("wms ListOrders", orders.ListOrders(order_pb2.ListOrdersRequest(), metadata=as_(wms))),
        (
            "integration ListOrders",
            orders.ListOrders(order_pb2.ListOrdersRequest(), metadata=as_(integration)),
        ),
        (
            "integration SetStock",
            stock.SetStock(stock_pb2.SetStockRequest(), metadata=as_(integration)),
        ),
        (
            "ops CreateToken",
            admin.CreateToken(admin_pb2.CreateTokenRequest(role="admin"), metadata=as_(ops)),
        ),
    ]
    for name, call in refused_calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert code_of(refused) == grpc.StatusCode.PERMISSION_DENIED, name
        assert "may not call" in (refused.value.details() or ""), name

    # What they may do gets through to validation (and is answered on its merits).
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await stock.SetStock(stock_pb2.SetStockRequest(on_hand=-1), metadata=as_(wms))
    assert code_of(invalid) == grpc.StatusCode.INVALID_ARGUMENT
    rules = await routing.GetRoutingRules(routing_pb2.GetRoutingRulesRequest(), metadata=as_(lead))
    assert rules.rules.rules_json


# ------------------------------------------------------------------------------- masking


@pytest.fixture
async def buyer_order(channel: grpc.aio.Channel, admin_token: str, unique: str) -> str:
    """An order whose buyer gave a clear name, mobile number, address and note."""
    payload = json.loads((FIXTURES / "shopify_orders_create_sample.json").read_text())
    payload["id"] = int(unique, 16)
    payload["note"] = "请放门口，电话 13912345678"
    payload["shipping_address"] |= {
        "name": "张三丰",
        "phone": "+86 139 1234 5678",
        "address1": "文一西路 100 号",
    }
    orders = order_pb2_grpc.OrderServiceStub(channel)
    answer = await orders.IngestPlatformOrder(
        order_pb2.IngestPlatformOrderRequest(
            platform="shopify",
            shop_id=f"{unique}-shop",
            payload=json.dumps(payload, ensure_ascii=False),
        ),
        metadata=as_(admin_token),
    )
    recipient = answer.order.recipient
    assert (recipient.name, recipient.address) == ("张三丰", "文一西路 100 号")
    assert recipient.phone.replace(" ", "").endswith("13912345678")
    return answer.order.order_id


async def test_each_role_sees_buyers_personal_data_as_its_role_allows(
    channel: grpc.aio.Channel, buyer_order: str, tokens: Token
) -> None:
    orders = order_pb2_grpc.OrderServiceStub(channel)

    async def seen_by(role: str) -> order_pb2.Order:
        got = await orders.GetOrder(
            order_pb2.GetOrderRequest(order_id=buyer_order), metadata=as_(tokens(role))
        )
        return got.order

    full, ops, wms, agent, lead, finance = [
        await seen_by(role) for role in ("admin", "ops", "wms", "cs_agent", "cs_lead", "finance")
    ]
    assert full.recipient.name == "张三丰" and "1234" in full.recipient.phone
    assert ops.recipient == full.recipient and wms.recipient == full.recipient
    for cs in (agent, lead):
        # Customer service: the phone masked, the rest as it is (they confirm addresses).
        assert cs.recipient.phone == "139****5678"
        assert cs.recipient.name == "张三丰"
        assert cs.recipient.address == full.recipient.address
        assert cs.buyer_note == full.buyer_note
    # Finance never sees who the buyer is or where they live; the money and the region stay.
    assert finance.recipient.name == "***"
    assert finance.recipient.phone == "***"
    assert finance.recipient.address == "***"
    assert finance.buyer_note == "***"
    assert "13912345678" not in finance.SerializeToString().decode("utf-8", "replace")
    assert finance.recipient.province == full.recipient.province
    assert finance.total_paid_fen == full.total_paid_fen
    # The same masking applies to lists …
    listed = await orders.ListOrders(
        order_pb2.ListOrdersRequest(platform="shopify", shop_id=full.shop_id),
        metadata=as_(tokens("finance")),
    )
    assert [o.recipient.phone for o in listed.orders] == ["***"]
    # … and to answers of writes: an integration sees none of it in its ingest answer.
    again = await orders.IngestPlatformOrder(
        order_pb2.IngestPlatformOrderRequest(
            platform="shopify", shop_id=full.shop_id, payload=_payload_of(full)
        ),
        metadata=as_(tokens("integration")),
    )
    assert again.duplicate
    assert again.order.recipient.phone == "***" and again.order.recipient.name == "***"


def _payload_of(order: order_pb2.Order) -> str:
    payload = json.loads((FIXTURES / "shopify_orders_create_sample.json").read_text())
    payload["id"] = int(order.platform_order_id)
    return json.dumps(payload, ensure_ascii=False)


async def test_streams_are_masked_message_by_message(
    channel: grpc.aio.Channel, admin_token: str, tokens: Token, unique: str
) -> None:
    orders = order_pb2_grpc.OrderServiceStub(channel)
    watch = orders.WatchOrders(order_pb2.WatchOrdersRequest(), metadata=as_(tokens("cs_agent")))
    await watch.wait_for_connection()
    await watch.initial_metadata()
    payload = json.loads((FIXTURES / "shopify_orders_create_sample.json").read_text())
    payload["id"] = int(unique, 16) + 1
    payload["shipping_address"] |= {"phone": "13800001111"}
    ingested = await orders.IngestPlatformOrder(
        order_pb2.IngestPlatformOrderRequest(
            platform="shopify", shop_id=f"{unique}-watched", payload=json.dumps(payload)
        ),
        metadata=as_(admin_token),
    )
    async with asyncio.timeout(20):
        async for change in watch:
            if change.order.order_id == ingested.order.order_id:
                assert change.order.recipient.phone == "138****1111"
                break
    watch.cancel()


# --------------------------------------------------------------------------------- audit


async def test_writes_are_audited_with_who_what_and_before_and_after(
    channel: grpc.aio.Channel, admin_token: str, tokens: Token, unique: str
) -> None:
    stock = stock_pb2_grpc.StockServiceStub(channel)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    ops = tokens("ops", "ops:li")
    wh, sku = f"{unique}-WH", f"{unique}-SKU"
    await stock.UpsertWarehouse(
        stock_pb2.UpsertWarehouseRequest(
            warehouse_id=wh, name="W", province="浙江省", city="杭州市", daily_capacity=9
        ),
        metadata=as_(ops),
    )
    await stock.UpsertSku(stock_pb2.UpsertSkuRequest(sku=sku, name="x"), metadata=as_(ops))
    await stock.SetStock(
        stock_pb2.SetStockRequest(warehouse_id=wh, sku=sku, on_hand=5, reason="count"),
        metadata=as_(ops),
    )
    await stock.SetStock(
        stock_pb2.SetStockRequest(warehouse_id=wh, sku=sku, on_hand=7, reason="recount"),
        metadata=as_(ops),
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stock.SetStock(
            stock_pb2.SetStockRequest(warehouse_id=wh, sku=sku, on_hand=-1), metadata=as_(ops)
        )
    # A storefront's reservations are the stock ledger's business, a person's are audited.
    integration = tokens("integration")
    line = [stock_pb2.ReserveLine(sku=sku, quantity=1)]
    await stock.Reserve(
        stock_pb2.ReserveRequest(order_id=f"{unique}-shop", lines=line), metadata=as_(integration)
    )
    await stock.Reserve(
        stock_pb2.ReserveRequest(order_id=f"{unique}-hand", lines=line), metadata=as_(ops)
    )

    found = await admin.ListAuditEvents(
        admin_pb2.ListAuditEventsRequest(target_prefix=f"stock:{sku}"),
        metadata=as_(admin_token),
    )
    newest, middle, oldest = found.events
    assert [e.outcome for e in (oldest, middle, newest)] == ["OK", "OK", "INVALID_ARGUMENT"]
    assert {e.actor for e in found.events} == {"ops:li"}
    assert {e.role for e in found.events} == {"ops"}
    assert oldest.action == "/orderhub.v1.StockService/SetStock"
    assert json.loads(oldest.request_json)["reason"] == "count"
    assert oldest.before_json == "" or json.loads(oldest.before_json)[0]["on_hand"] == 0
    assert json.loads(oldest.after_json)[0]["on_hand"] == 5
    assert json.loads(middle.before_json)[0]["on_hand"] == 5
    assert json.loads(middle.after_json)[0]["on_hand"] == 7
    # The refused write is recorded too, and changed nothing.
    assert newest.before_json == newest.after_json and newest.error
    assert newest.request_id and newest.token_id

    reservations = await admin.ListAuditEvents(
        admin_pb2.ListAuditEventsRequest(target_prefix=f"reservation:{unique}"),
        metadata=as_(admin_token),
    )
    [hand] = reservations.events
    assert hand.target == f"reservation:{unique}-hand" and hand.before_json == ""
    assert json.loads(hand.after_json)["status"] == "HELD"

    by_actor = await admin.ListAuditEvents(
        admin_pb2.ListAuditEventsRequest(actor="ops:li", action="UpsertSku"),
        metadata=as_(admin_token),
    )
    [upsert] = by_actor.events
    assert upsert.target == f"sku:{sku}" and json.loads(upsert.after_json)["sku"] == sku


async def test_rule_changes_and_token_issues_are_audited_and_pages_follow(
    channel: grpc.aio.Channel, admin_token: str, tokens: Token, unique: str
) -> None:
    routing = routing_pb2_grpc.RoutingServiceStub(channel)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    ops = tokens("ops", f"ops:{unique}")
    before = (
        await routing.GetRoutingRules(routing_pb2.GetRoutingRulesRequest(), metadata=as_(ops))
    ).rules
    doc = json.loads(before.rules_json)
    doc["weights"]["fen_per_hour"] += 1
    await routing.UpdateRoutingRules(
        routing_pb2.UpdateRoutingRulesRequest(
            rules_json=json.dumps(doc), expected_version=before.version, comment=unique
        ),
        metadata=as_(ops),
    )
    made = await admin.CreateToken(
        admin_pb2.CreateTokenRequest(role="finance", subject=f"fin:{unique}"),
        metadata=as_(admin_token),
    )
    events = (
        await admin.ListAuditEvents(
            admin_pb2.ListAuditEventsRequest(actor=f"ops:{unique}"), metadata=as_(admin_token)
        )
    ).events
    [change] = events
    assert change.target == "routing_rules"
    assert json.loads(change.after_json)["version"] == json.loads(change.before_json)["version"] + 1
    issued = (
        await admin.ListAuditEvents(
            admin_pb2.ListAuditEventsRequest(target_prefix=f"token:{made.info.token_id}"),
            metadata=as_(admin_token),
        )
    ).events
    [issue] = issued
    assert issue.action.endswith("CreateToken") and issue.actor == "tests-admin"
    assert made.token not in issue.after_json + issue.request_json  # the secret is never kept

    # Pages: three at a time, newest first, no event twice, until the end.
    seen: list[int] = []
    token = ""
    for _ in range(3):
        page = await admin.ListAuditEvents(
            admin_pb2.ListAuditEventsRequest(page_size=3, page_token=token),
            metadata=as_(admin_token),
        )
        seen += [e.audit_id for e in page.events]
        token = page.next_page_token
        assert token
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 9
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await admin.ListAuditEvents(
            admin_pb2.ListAuditEventsRequest(page_token="garbage"), metadata=as_(admin_token)
        )
    assert code_of(bad) == grpc.StatusCode.INVALID_ARGUMENT


async def test_only_admins_and_ops_read_the_audit_log(
    channel: grpc.aio.Channel, tokens: Token
) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    await admin.ListAuditEvents(admin_pb2.ListAuditEventsRequest(), metadata=as_(tokens("ops")))
    for role in ("cs_agent", "cs_lead", "finance", "wms", "integration"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin.ListAuditEvents(
                admin_pb2.ListAuditEventsRequest(), metadata=as_(tokens(role))
            )
        assert code_of(refused) == grpc.StatusCode.PERMISSION_DENIED, role


# --------------------------------------------------------------------------- TLS and mTLS


def _certificates(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("OrderHub test CA"))
        .issuer_name(name("OrderHub test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, server: bool) -> tuple[bytes, bytes]:
        k = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return (
            cert.public_bytes(serialization.Encoding.PEM),
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    files = {"ca": ca.public_bytes(serialization.Encoding.PEM)}
    files["server_cert"], files["server_key"] = leaf("orderhub", True)
    files["client_cert"], files["client_key"] = leaf("wms-1", False)
    paths = {}
    for label, data in files.items():
        paths[label] = tmp / f"{label}.pem"
        paths[label].write_bytes(data)
    return paths


async def test_mutual_tls_requires_a_client_certificate_and_still_a_token(
    hub: Hub, admin_token: str, tmp_path: Path
) -> None:
    pem = _certificates(tmp_path)
    credentials = grpc.ssl_server_credentials(
        [(pem["server_key"].read_bytes(), pem["server_cert"].read_bytes())],
        root_certificates=pem["ca"].read_bytes(),
        require_client_auth=True,
    )
    server = await start_server(hub, "127.0.0.1:0", credentials=credentials)
    address = f"127.0.0.1:{server.port}"
    request = stock_pb2.ListWarehousesRequest()
    try:
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=pem["ca"].read_bytes(),
            private_key=pem["client_key"].read_bytes(),
            certificate_chain=pem["client_cert"].read_bytes(),
        )
        async with authorized_aio_channel(address, admin_token, credentials=with_cert) as ch:
            await stock_pb2_grpc.StockServiceStub(ch).ListWarehouses(request, timeout=10)
        async with grpc.aio.secure_channel(address, with_cert) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as no_token:
                await stock_pb2_grpc.StockServiceStub(ch).ListWarehouses(request, timeout=10)
            assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
        without_cert = grpc.ssl_channel_credentials(root_certificates=pem["ca"].read_bytes())
        async with authorized_aio_channel(address, admin_token, credentials=without_cert) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as no_cert:
                await stock_pb2_grpc.StockServiceStub(ch).ListWarehouses(request, timeout=10)
            assert no_cert.value.code() == grpc.StatusCode.UNAVAILABLE
        async with authorized_aio_channel(address, admin_token) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stock_pb2_grpc.StockServiceStub(plaintext).ListWarehouses(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(1.0)


async def test_reflection_needs_a_token_of_any_role(
    channel: grpc.aio.Channel, tokens: Token
) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    ask = reflection_pb2.ServerReflectionRequest(list_services="")

    async def services(metadata: tuple[tuple[str, str], ...]) -> list[str]:
        call = stub.ServerReflectionInfo(iter([ask]), metadata=metadata)
        async for answer in call:
            return [s.name for s in answer.list_services_response.service]
        return []

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await services(())
    assert code_of(refused) == grpc.StatusCode.UNAUTHENTICATED
    listed = await services(as_(tokens("finance")))
    assert "orderhub.v1.StockService" in listed and "orderhub.v1.AdminService" in listed
