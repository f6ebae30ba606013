"""The adapters on real captured platform payloads, when a directory of them is given.

Captured payloads stay out of the repository (their sources and licences keep them out);
set ``ORDERHUB_PLATFORM_PAYLOADS`` to a directory holding them to run these tests.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import registry
from hub.domain.orders import AfterSaleType, OrderStatus, TranslationError

PAYLOADS = Path(os.environ.get("ORDERHUB_PLATFORM_PAYLOADS", "/nonexistent"))

pytestmark = pytest.mark.skipif(
    not PAYLOADS.is_dir(), reason="set ORDERHUB_PLATFORM_PAYLOADS to run on captured payloads"
)


def raw(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def test_real_taobao_trade_fullinfo() -> None:
    got = registry.translate("taobao", raw("platform_taobao_trade_fullinfo_get_response.json"), "t")
    assert (got.platform_order_id, got.status) == ("500001084", OrderStatus.PAID)
    assert (got.buyer_note, got.seller_note) == ("周末配送", "改为发顺丰")  # trailing space trimmed
    assert (got.total_paid_fen, got.shipping_fee_fen) == (32358, 0)
    assert [(ln.platform_line_id, ln.platform_sku_id, ln.paid_fen) for ln in got.lines] == [
        ("500001083", "B-C352-F301-356M", 8620),  # divide_order_fee, not payment
        ("500001084", "B-C352-F302-357M", 11777),
    ]
    r = got.recipient
    assert (r.address, r.zip, r.city, r.phone) == (
        "陕西省西安市新城区解放路100",
        "710000",
        "西安市",
        "13312343069",
    )
    assert not r.pii_protected
    assert got.paid_at == datetime(2017, 7, 28, 6, 18, 32, tzinfo=UTC)


def test_real_jd_order_info_with_encrypted_consignee() -> None:
    got = registry.translate("jd", raw("platform_jd_pop_order_orderinfo.json"), "jd")
    assert (got.platform_order_id, got.status, got.platform_status) == (
        "249786309732",
        OrderStatus.PAID,
        "WAIT_SELLER_STOCK_OUT",
    )
    r = got.recipient
    assert r.name.startswith("AAS/") and r.address.startswith("AAS/")
    assert (r.phone, r.province, r.city, r.district, r.street) == (
        "136*******5",
        "广东",
        "广州市",
        "海珠区",
        "赤岗街道",
    )
    assert r.pii_protected
    (line,) = got.lines
    assert (line.platform_line_id, line.platform_sku_id, line.native_sku_id) == (
        "228886533499",
        "testjd4206151136003",
        "10054887745652",
    )
    assert (line.quantity, line.unit_price_fen, line.paid_fen) == (1, 100, 100)
    assert got.paid_at == datetime(2022, 7, 16, 8, 38, 32, tzinfo=UTC)
    assert got.after_sale_type is AfterSaleType.NONE


def test_real_pdd_doc_example_placeholders_are_refused_naming_the_field() -> None:
    with pytest.raises(TranslationError) as caught:
        registry.translate("pdd", raw("platform_pdd_order_list_get_doc_example.json"), "p")
    assert caught.value.field == "order_list_get_response.order_list[0].pay_time"
    assert "'1'" in caught.value.reason


def test_real_pdd_doc_example_types_translate_once_times_are_real() -> None:
    payload: Any = registry.parse_payload(raw("platform_pdd_order_list_get_doc_example.json"))
    order = payload["order_list_get_response"]["order_list"][0]
    for key in ("pay_time", "created_time", "updated_at"):
        order[key] = "2024-05-18 10:21:30"
    got = registry.translate("pdd", payload, "p")
    assert (got.total_paid_fen, got.shipping_fee_fen) == (100, 100)
    assert got.lines[0].unit_price_fen == 100
    assert got.status is OrderStatus.PAID
    assert got.recipient.pii_protected  # the *_mask fields are filled


def test_real_shopify_rest_order_keeps_usd() -> None:
    got = registry.translate("shopify", raw("platform_shopify_order_rest_fixture.json"), "s")
    assert (got.platform_order_id, got.currency, got.total_paid_fen) == ("450789469", "USD", 40994)
    assert got.status is OrderStatus.PENDING_PAYMENT  # authorized, not captured
    assert got.buyer_note == "custom engraving: Happy Birthday\ncolour: green"
    assert [ln.platform_sku_id for ln in got.lines] == [
        "IPOD2008GREEN",
        "IPOD2008RED",
        "IPOD2008BLACK",
    ]
    assert got.created_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert got.paid_at is None
