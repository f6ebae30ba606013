"""The access policy, phone masking and the descriptor-driven masker (pure, no server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.api.masking import Masker
from hub.domain.access import (
    ALL_RPCS,
    PERMISSIONS,
    REDACTED,
    ROLES,
    Sensitivity,
    allowed,
    audited,
    mask_name,
    mask_phone,
    method,
    visibility,
)
from orderhub.v1 import (
    admin_pb2,
    options_pb2,
    order_pb2,
    reconcile_pb2,
    routing_pb2,
    stock_pb2,
    wms_pb2,
)

MODULES = (stock_pb2, order_pb2, routing_pb2, wms_pb2, reconcile_pb2, admin_pb2)


def every_rpc() -> set[str]:
    """Every RPC the protos define, by full method name."""
    return {
        f"/{service.full_name}/{m.name}"
        for module in MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for m in service.methods
    }


def test_every_rpc_of_the_protos_is_in_the_policy_and_nothing_else_is() -> None:
    assert every_rpc() == set(ALL_RPCS)


def test_the_admin_may_call_everything_and_every_role_something() -> None:
    assert PERMISSIONS["admin"] == ALL_RPCS
    for role in ROLES:
        assert PERMISSIONS[role], role
        assert PERMISSIONS[role] <= ALL_RPCS


@pytest.mark.parametrize(
    ("role", "service", "rpc", "expected"),
    [
        # The article's rules.
        ("cs_lead", "RoutingService", "UpdateRoutingRules", False),
        ("cs_lead", "StockService", "UpsertCarrier", False),
        ("cs_lead", "StockService", "SetStock", False),
        ("cs_lead", "OrderService", "ApproveOrder", True),
        ("cs_agent", "OrderService", "ApproveOrder", False),
        ("cs_agent", "OrderService", "HoldOrder", True),
        ("finance", "ReconciliationService", "Reconcile", True),
        ("finance", "OrderService", "CancelOrder", False),
        # Systems reach only their own RPCs.
        ("wms", "StockService", "SetStock", True),
        ("wms", "OrderService", "ShipOrder", True),
        ("wms", "OrderService", "ListOrders", False),
        ("wms", "RoutingService", "UpdateRoutingRules", False),
        ("integration", "OrderService", "IngestPlatformOrders", True),
        ("integration", "StockService", "Reserve", True),
        ("integration", "StockService", "SetStock", False),
        ("integration", "AdminService", "ListAuditEvents", False),
        # Tokens are an admin's.
        ("ops", "AdminService", "CreateToken", False),
        ("ops", "AdminService", "ListAuditEvents", True),
        ("nobody", "StockService", "ListWarehouses", False),
    ],
)
def test_permissions(role: str, service: str, rpc: str, expected: bool) -> None:
    assert allowed(role, method(service, rpc)) is expected


def test_writes_are_audited_except_machine_traffic_and_reads() -> None:
    reserve = method("StockService", "Reserve")
    assert audited("ops", reserve) and audited("cs_lead", method("OrderService", "ApproveOrder"))
    assert not audited("integration", reserve) and not audited("wms", reserve)
    assert audited("wms", method("StockService", "SetStock"))  # counts always are
    assert not audited("admin", method("OrderService", "GetOrder"))
    # Token changes audit themselves in the transaction that makes them.
    assert not audited("admin", method("AdminService", "CreateToken"))


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13912345678", "139****5678"),
        ("+86 139 1234 5678", "139****5678"),
        ("8613912345678", "139****5678"),
        ("139-1234-5678", "139****5678"),
        ("010-12345678", "010****5678"),
        ("139****5678", "139****5678"),  # the platform masked it already
        ("12345", "*****"),
        ("", ""),
    ],
)
def test_phones_are_masked_as_the_article_shows(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


@given(st.text(alphabet="0123456789", min_size=8, max_size=15))
def test_a_masked_phone_never_shows_the_middle_digits(digits: str) -> None:
    masked = mask_phone(digits)
    body = digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
    assert len(masked) == len(body)
    assert masked[:3] == body[:3] and masked[-4:] == body[-4:]
    assert set(masked[3:-4]) <= {"*"}


def test_names_keep_only_their_first_character() -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_name("") == ""


def _order() -> order_pb2.Order:
    return order_pb2.Order(
        order_id="o-1",
        buyer_note="到了打 13912345678",
        seller_note="gift wrap",
        total_paid_fen=2990,
        recipient=order_pb2.Recipient(
            name="张三丰",
            phone="13912345678",
            province="浙江",
            city="杭州",
            district="西湖区",
            address="文一西路 100 号",
            street="文新街道",
        ),
    )


def test_the_masker_follows_the_field_options_for_each_role() -> None:
    masker = Masker()
    original = _order()
    admin = masker.apply(original, visibility("admin"))
    assert admin is original  # nothing to hide: not even copied
    agent = masker.apply(original, visibility("cs_agent"))
    assert agent.recipient.phone == "139****5678"
    assert (agent.recipient.name, agent.recipient.address) == ("张三丰", "文一西路 100 号")
    finance = masker.apply(original, visibility("finance"))
    r = finance.recipient
    assert (r.name, r.phone, r.address, r.street) == (REDACTED,) * 4
    assert finance.buyer_note == REDACTED
    assert (r.province, r.city, r.district) == ("浙江", "杭州", "西湖区")
    assert (finance.seller_note, finance.total_paid_fen) == ("gift wrap", 2990)
    # The handler's message is never changed (it may be cached and answered to others).
    assert original == _order()


def test_nested_and_repeated_messages_are_masked_and_safe_types_pass_untouched() -> None:
    masker = Masker()
    listed = order_pb2.ListOrdersResponse(orders=[_order(), _order()])
    seen = masker.apply(listed, visibility("cs_lead"))
    assert [o.recipient.phone for o in seen.orders] == ["139****5678"] * 2
    letters = wms_pb2.ListDeadLettersResponse(
        dead_letters=[wms_pb2.DeadLetter(letter_id=1, payload=b'{"phone": "13912345678"}')]
    )
    assert masker.apply(letters, visibility("cs_agent")).dead_letters[0].payload == b""
    assert (
        masker.apply(letters, visibility("wms")).dead_letters[0].payload
        == letters.dead_letters[0].payload
    )
    # A type that holds no personal data is answered as it is, whatever the role.
    level = stock_pb2.GetAvailabilityResponse()
    assert masker.apply(level, visibility("finance")) is level
    assert masker.plan(stock_pb2.ReserveResponse.DESCRIPTOR) is None


def test_only_the_documented_fields_are_marked() -> None:
    marked = {}
    for module in MODULES:
        for message in module.DESCRIPTOR.message_types_by_name.values():
            for field in message.fields:
                kind = field.GetOptions().Extensions[options_pb2.sensitivity]
                if kind:
                    marked[f"{message.name}.{field.name}"] = Sensitivity(kind).name
    assert marked == {
        "Recipient.name": "PERSON_NAME",
        "Recipient.phone": "PHONE",
        "Recipient.address": "ADDRESS",
        "Recipient.street": "ADDRESS",
        "Order.buyer_note": "FREE_TEXT",
        "DeadLetter.payload": "RAW_PAYLOAD",
    }
