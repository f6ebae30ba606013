"""Webhook signatures and push bodies (adapters/webhooks.py): pure, no server.

Known answers come from published test vectors where one fits: RFC 4231 test case 2 for
HMAC-SHA256 (key "Jefe", data "what do ya want for nothing?") and the RFC 1321 test suite
for MD5 ("message digest"). The others were computed once with OpenSSL, an implementation
independent of Python's ``hmac``; the command is beside each value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters import webhooks as wh
from adapters.webhooks import Credentials, OrderEvent, Scheme

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"
NOW = 1_716_000_000.0

# RFC 4231, test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
RFC4231_KEY = "Jefe"
RFC4231_DATA = b"what do ya want for nothing?"
RFC4231_HEX = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
RFC4231_BASE64 = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="  # the same 32 bytes

SHOP = Credentials(webhook_secret="shpss_hush")
DOUYIN = Credentials(app_key="mykey", app_secret="SECRET")


def shopify_headers(body: bytes, secret: str = "shpss_hush", topic: str = "") -> dict[str, str]:
    headers = {"X-Shopify-Hmac-Sha256": wh.shopify_signature(secret, body)}
    if topic:
        headers["X-Shopify-Topic"] = topic
    return headers


# --------------------------------------------------------------------------- known answers


def test_shopify_signature_is_base64_hmac_sha256_of_the_body() -> None:
    assert wh.shopify_signature(RFC4231_KEY, RFC4231_DATA) == RFC4231_BASE64
    # printf '{"id":820982911946154508}' | openssl dgst -sha256 -hmac shpss_hush -binary | base64
    body = b'{"id":820982911946154508}'
    assert (
        wh.shopify_signature("shpss_hush", body) == "fwrOc50IL6AHaqeUkudUzchYke4FU2OvwIJsnO8jdgU="
    )


def test_woocommerce_signature_is_base64_hmac_sha256_of_the_body() -> None:
    assert wh.woocommerce_signature(RFC4231_KEY, RFC4231_DATA) == RFC4231_BASE64


def test_generic_signature_is_prefixed_hex_hmac_sha256() -> None:
    assert wh.generic_signature(RFC4231_KEY, RFC4231_DATA) == "sha256=" + RFC4231_HEX
    # printf '1716000000.{"id":727}' | openssl dgst -sha256 -hmac channel-secret
    assert (
        wh.generic_signature("channel-secret", b'{"id":727}', "1716000000")
        == "sha256=7dcbe68873959187bd2999167367329fde062ddfba741784ac6163fb6465b8ab"
    )


def test_douyin_event_sign_is_md5_of_app_key_body_app_secret() -> None:
    # "mess" + "age dig" + "est" = "message digest", whose MD5 is in RFC 1321's test suite.
    assert wh.douyin_signature("mess", "est", b"age dig") == "f96b697d7cb7938d525a2f31aaf161d0"


def test_douyin_hmac_sign_method_keys_the_same_text_with_the_app_secret() -> None:
    # printf 'mykeybodySECRET' | openssl dgst -sha256 -hmac SECRET
    assert (
        wh.douyin_signature("mykey", "SECRET", b"body", "hmac-sha256")
        == "9014c180b705df2f1dfe9be0f7e4d9e313df25db2766d0f4b678844fb87eb6d6"
    )


# --------------------------------------------------------------------------- Shopify


def test_a_signed_shopify_push_is_accepted() -> None:
    body = (FIXTURES / "shopify_orders_create_sample.json").read_bytes()
    wh.verify(Scheme.SHOPIFY, SHOP, shopify_headers(body), body, now=NOW)


def test_header_names_are_matched_whatever_their_case() -> None:
    body = b'{"id":1}'
    headers = {"x-shopify-hmac-sha256": wh.shopify_signature("shpss_hush", body)}
    wh.verify(Scheme.SHOPIFY, SHOP, headers, body, now=NOW)


def test_a_tampered_shopify_body_is_refused() -> None:
    body = (FIXTURES / "shopify_orders_create_sample.json").read_bytes()
    headers = shopify_headers(body)
    tampered = body.replace(b'"248.00"', b'"2.48"', 1)
    assert tampered != body
    with pytest.raises(wh.BadSignature, match="does not match"):
        wh.verify(Scheme.SHOPIFY, SHOP, headers, tampered, now=NOW)


def test_a_shopify_push_signed_with_another_secret_is_refused() -> None:
    body = b'{"id":1}'
    with pytest.raises(wh.BadSignature):
        wh.verify(Scheme.SHOPIFY, SHOP, shopify_headers(body, "other"), body, now=NOW)


def test_an_unsigned_shopify_push_is_refused() -> None:
    with pytest.raises(wh.BadSignature, match="missing"):
        wh.verify(Scheme.SHOPIFY, SHOP, {}, b'{"id":1}', now=NOW)


def test_a_shop_without_a_webhook_secret_cannot_be_verified() -> None:
    body = b'{"id":1}'
    with pytest.raises(wh.MissingSecret, match="webhook_secret"):
        wh.verify(Scheme.SHOPIFY, Credentials(), shopify_headers(body), body, now=NOW)


# --------------------------------------------------------------------------- Douyin


def douyin_headers(body: bytes, **extra: str) -> dict[str, str]:
    return {"event-sign": wh.douyin_signature("mykey", "SECRET", body), **extra}


def test_a_signed_douyin_push_is_accepted_and_hex_case_does_not_matter() -> None:
    body = b'[{"tag":"100","msg_id":"1","data":"{}"}]'
    wh.verify(Scheme.DOUYIN, DOUYIN, douyin_headers(body), body, now=NOW)
    upper = {"event-sign": wh.douyin_signature("mykey", "SECRET", body).upper()}
    wh.verify(Scheme.DOUYIN, DOUYIN, upper, body, now=NOW)


def test_a_douyin_push_for_another_app_is_refused() -> None:
    body = b"[]"
    wh.verify(Scheme.DOUYIN, DOUYIN, douyin_headers(body, **{"app-id": "mykey"}), body, now=NOW)
    with pytest.raises(wh.BadSignature, match="app-id"):
        wh.verify(Scheme.DOUYIN, DOUYIN, douyin_headers(body, **{"app-id": "x"}), body, now=NOW)


def test_a_tampered_douyin_push_is_refused() -> None:
    body = b'[{"tag":"101","msg_id":"1","data":"{\\"p_id\\":1}"}]'
    with pytest.raises(wh.BadSignature):
        wh.verify(Scheme.DOUYIN, DOUYIN, douyin_headers(body), body.replace(b"1}", b"2}"), now=NOW)


def test_douyin_hmac_sign_method_is_honoured_and_unknown_methods_refused() -> None:
    body = b"[]"
    sign = wh.douyin_signature("mykey", "SECRET", body, "hmac-sha256")
    headers = {"event-sign": sign, "sign-method": "HMAC-SHA256"}
    wh.verify(Scheme.DOUYIN, DOUYIN, headers, body, now=NOW)
    with pytest.raises(wh.BadSignature, match="does not match"):
        wh.verify(Scheme.DOUYIN, DOUYIN, {"event-sign": sign}, body, now=NOW)
    with pytest.raises(wh.BadSignature, match="sign-method"):
        wh.verify(Scheme.DOUYIN, DOUYIN, {**headers, "sign-method": "sha1"}, body, now=NOW)


def test_douyin_needs_the_app_key_and_secret() -> None:
    with pytest.raises(wh.MissingSecret, match="app_secret"):
        wh.verify(Scheme.DOUYIN, Credentials(app_key="mykey"), {"event-sign": "x"}, b"[]", now=NOW)


# ------------------------------------------------------------------ WooCommerce and generic


def test_woocommerce_accepts_its_own_header_or_the_generic_one() -> None:
    body = (FIXTURES / "woocommerce_order_created.json").read_bytes()
    creds = Credentials(webhook_secret="wc-secret")
    wc = {"X-WC-Webhook-Signature": wh.woocommerce_signature("wc-secret", body)}
    wh.verify(Scheme.WOOCOMMERCE, creds, wc, body, now=NOW)
    generic = {"X-OrderHub-Signature": wh.generic_signature("wc-secret", body)}
    wh.verify(Scheme.WOOCOMMERCE, creds, generic, body, now=NOW)
    with pytest.raises(wh.BadSignature, match="X-OrderHub-Signature"):
        wh.verify(Scheme.WOOCOMMERCE, creds, {}, body, now=NOW)


def test_woocommerce_ping_is_recognised_only_unsigned_and_only_for_woocommerce() -> None:
    assert wh.is_unsigned_ping(Scheme.WOOCOMMERCE, {}, b"webhook_id=42")
    assert not wh.is_unsigned_ping(
        Scheme.WOOCOMMERCE, {"X-WC-Webhook-Signature": "x"}, b"webhook_id=42"
    )
    assert not wh.is_unsigned_ping(Scheme.WOOCOMMERCE, {}, b'{"id":727}')
    assert not wh.is_unsigned_ping(Scheme.SHOPIFY, {}, b"webhook_id=42")


def test_generic_signature_accepts_upper_case_hex_and_refuses_a_bare_digest() -> None:
    creds = Credentials(webhook_secret=RFC4231_KEY)
    upper = {"X-OrderHub-Signature": "sha256=" + RFC4231_HEX.upper()}
    wh.verify(Scheme.GENERIC, creds, upper, RFC4231_DATA, now=NOW)
    with pytest.raises(wh.BadSignature, match="sha256="):
        wh.verify(
            Scheme.GENERIC, creds, {"X-OrderHub-Signature": RFC4231_HEX}, RFC4231_DATA, now=NOW
        )


def test_a_timestamped_generic_push_must_be_recent() -> None:
    creds = Credentials(webhook_secret="channel-secret")
    body = b'{"id":727}'
    ts = str(int(NOW))
    headers = {
        "X-OrderHub-Signature": wh.generic_signature("channel-secret", body, ts),
        "X-OrderHub-Timestamp": ts,
    }
    wh.verify(Scheme.GENERIC, creds, headers, body, now=NOW + wh.REPLAY_WINDOW_S)
    with pytest.raises(wh.StaleTimestamp):
        wh.verify(Scheme.GENERIC, creds, headers, body, now=NOW + wh.REPLAY_WINDOW_S + 1)
    with pytest.raises(wh.BadSignature, match="Unix seconds"):
        wh.verify(Scheme.GENERIC, creds, {**headers, "X-OrderHub-Timestamp": "soon"}, body, now=NOW)


def test_dropping_the_timestamp_does_not_make_a_replay_verify() -> None:
    creds = Credentials(webhook_secret="channel-secret")
    body = b'{"id":727}'
    signed_with_time = wh.generic_signature("channel-secret", body, str(int(NOW)))
    with pytest.raises(wh.BadSignature, match="does not match"):
        wh.verify(Scheme.GENERIC, creds, {"X-OrderHub-Signature": signed_with_time}, body, now=NOW)


def test_channels_without_their_own_scheme_use_the_generic_one() -> None:
    assert wh.scheme_for("shopify") is Scheme.SHOPIFY
    assert wh.scheme_for("douyin") is Scheme.DOUYIN
    assert wh.scheme_for("woocommerce") is Scheme.WOOCOMMERCE
    assert wh.scheme_for("taobao") is Scheme.GENERIC
    assert wh.scheme_for("acme") is Scheme.GENERIC


# --------------------------------------------------------------------------- push bodies

# The Douyin push: a JSON array of {tag, msg_id, data}, data a JSON string holding ids
# (p_id, s_ids, shop_id …). The shop order id is the one in douyin_order_detail_sample.json.
ORDER_ID = "6936476692437472563"  # above 2^53: must not pass through a float


def message(tag: str, msg_id: str, **data: object) -> dict[str, object]:
    return {"tag": tag, "msg_id": msg_id, "data": json.dumps(data)}


def push_body(*messages: object) -> bytes:
    return json.dumps(list(messages)).encode()


def test_a_douyin_push_names_each_order_once_with_what_happened() -> None:
    body = push_body(
        message("100", "m1", p_id=int(ORDER_ID), s_ids=[int(ORDER_ID)], shop_id=7784061),
        message("101", "m2", p_id=int(ORDER_ID), pay_amount=24800),
        message("206", "m3", p_id="6936476692437470001", aftersale_id=7001),
        message("400", "m4", product_id=3660207428038974464),
    )
    push = wh.parse_push(Scheme.DOUYIN, {}, body)
    assert [n.order_id for n in push.notices] == [ORDER_ID, "6936476692437470001"]
    first = push.notices[0]
    assert first.events == (OrderEvent.CREATED, OrderEvent.PAID)
    assert first.msg_ids == ("m1", "m2")
    assert [m["msg_id"] for m in json.loads(first.payload)] == ["m1", "m2"]
    assert push.notices[1].events == (OrderEvent.AFTER_SALE,)
    assert len(push.skipped) == 1 and "tag 400" in push.skipped[0]
    assert push.orders == () and push.unusable == ()


def test_a_douyin_message_with_data_as_an_object_or_msgId_is_read() -> None:
    body = push_body({"tag": 106, "msgId": "m9", "data": {"p_id": ORDER_ID}})
    push = wh.parse_douyin(body)
    assert push.notices[0].order_id == ORDER_ID
    assert push.notices[0].events == (OrderEvent.CANCELLED,)
    assert push.notices[0].msg_ids == ("m9",)


def test_a_douyin_test_push_without_an_order_needs_no_work() -> None:
    push = wh.parse_douyin(push_body(message("0", "test", msg="hello")))
    assert push.notices == () and push.unusable == () and len(push.skipped) == 1
    assert wh.parse_douyin(b"[]") == wh.Push()


def test_an_unreadable_douyin_message_is_kept_and_the_rest_still_read() -> None:
    body = push_body(
        {"tag": "101", "msg_id": "bad", "data": "{not json"},
        message("102", "float", p_id=6.936476692437473e18),
        message("102", "ok", p_id=int(ORDER_ID)),
    )
    push = wh.parse_douyin(body)
    assert [n.order_id for n in push.notices] == [ORDER_ID]
    assert [u.event_id for u in push.unusable] == ["bad", "float"]
    assert all(u.error == "UNREADABLE_MESSAGE" for u in push.unusable)
    assert "p_id" in push.unusable[1].reason


@pytest.mark.parametrize("body", [b'{"tag":"100"}', b"not json", b"\xff\xfe"])
def test_a_douyin_body_that_is_not_a_message_array_is_kept_whole(body: bytes) -> None:
    push = wh.parse_douyin(body)
    assert push.notices == ()
    assert [(u.error, u.payload) for u in push.unusable] == [("UNREADABLE_PUSH", body)]


def test_douyin_tags_are_classified() -> None:
    assert wh.douyin_event("100") is OrderEvent.CREATED
    assert wh.douyin_event("110") is OrderEvent.PAID
    assert wh.douyin_event("108") is OrderEvent.SHIPPED
    assert wh.douyin_event("106") is OrderEvent.CANCELLED
    assert wh.douyin_event("227") is OrderEvent.AFTER_SALE
    assert wh.douyin_event("400") is OrderEvent.OTHER
    assert wh.douyin_event("2") is OrderEvent.OTHER


@pytest.mark.parametrize("topic", ["", "orders/create", "orders/updated", "ORDERS/PAID"])
def test_a_shopify_order_topic_is_one_order_to_ingest(topic: str) -> None:
    body = (FIXTURES / "shopify_orders_create_sample.json").read_bytes()
    headers = {"X-Shopify-Topic": topic} if topic else {}
    assert wh.parse_push(Scheme.SHOPIFY, headers, body).orders == (body,)


def test_a_deleted_order_is_kept_not_ingested() -> None:
    shopify = wh.parse_push(Scheme.SHOPIFY, {"X-Shopify-Topic": "orders/delete"}, b'{"id":1}')
    woo = wh.parse_push(Scheme.WOOCOMMERCE, {"X-WC-Webhook-Topic": "order.deleted"}, b'{"id":7}')
    for push in (shopify, woo):
        assert push.orders == ()
        assert [u.error for u in push.unusable] == ["ORDER_DELETED"]


def test_a_topic_that_is_not_an_order_needs_no_work() -> None:
    push = wh.parse_push(Scheme.SHOPIFY, {"X-Shopify-Topic": "products/update"}, b"{}")
    assert push.orders == () and push.unusable == ()
    assert push.skipped == ("topic products/update is not an order",)
    woo = wh.parse_push(Scheme.WOOCOMMERCE, {"X-WC-Webhook-Topic": "order.updated"}, b"{}")
    assert woo.orders == (b"{}",)


def test_a_generic_push_is_always_one_order() -> None:
    assert wh.parse_push(Scheme.GENERIC, {"X-Shopify-Topic": "x"}, b"{}").orders == (b"{}",)
