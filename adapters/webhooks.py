"""Platform webhooks, pure: whether a push is genuine, and what it asks the hub to do.

No I/O. The HTTP shell (:mod:`hub.webhooks`) hands in the raw body and the request headers;
this module checks the platform's signature over those exact bytes (a body parsed and
re-serialised would not match) and turns a genuine push into a plan (:class:`Push`): whole
orders to ingest, orders named only by id to fetch first, parts that need no work, and
parts that cannot be used and are kept as dead letters.

How each platform signs (compared in constant time):

- **Shopify**: ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(shop secret, raw body)).
- **WooCommerce**: ``X-WC-Webhook-Signature`` = base64(HMAC-SHA256(webhook secret, raw
  body)); the unsigned ping WooCommerce sends when a webhook is saved is recognised.
- **Douyin 抖店**: ``event-sign`` = hex MD5(app_key + raw body + app_secret); with a
  ``sign-method: hmac-sha256`` header, hex HMAC-SHA256(app_secret, the same text). An
  ``app-id`` header, when sent, must be the shop's app key.
- **Every other channel**: ``X-OrderHub-Signature: sha256=<hex HMAC-SHA256(webhook secret,
  raw body)>``. With ``X-OrderHub-Timestamp: <unix seconds>`` the signed text is
  ``<timestamp>.<raw body>`` and the timestamp must be within :data:`REPLAY_WINDOW_S` of
  now, so a captured push cannot be replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SHOPIFY_HMAC = "x-shopify-hmac-sha256"
SHOPIFY_TOPIC = "x-shopify-topic"
WOOCOMMERCE_SIGNATURE = "x-wc-webhook-signature"
WOOCOMMERCE_TOPIC = "x-wc-webhook-topic"
DOUYIN_SIGN = "event-sign"
DOUYIN_APP_ID = "app-id"
DOUYIN_SIGN_METHOD = "sign-method"
ORDERHUB_SIGNATURE = "x-orderhub-signature"
ORDERHUB_TIMESTAMP = "x-orderhub-timestamp"

#: How far an ``X-OrderHub-Timestamp`` may be from now, either way, in seconds.
REPLAY_WINDOW_S = 300

#: What Douyin expects back from a push it should not send again.
DOUYIN_SUCCESS: Mapping[str, Any] = {"code": 0, "msg": "success"}


class Scheme(StrEnum):
    """How a platform signs its pushes and shapes their bodies."""

    SHOPIFY = "shopify"
    DOUYIN = "douyin"
    WOOCOMMERCE = "woocommerce"
    GENERIC = "generic"


def scheme_for(platform: str) -> Scheme:
    """The signing scheme of a platform; channels without their own use the generic one."""
    try:
        return Scheme(platform)
    except ValueError:
        return Scheme.GENERIC


@dataclass(frozen=True, slots=True)
class Credentials:
    """A shop's secrets, as far as checking its pushes needs them."""

    webhook_secret: str = field(default="", repr=False)
    app_key: str = ""
    app_secret: str = field(default="", repr=False)


# --------------------------------------------------------------------------- errors


class WebhookError(Exception):
    """A push refused; ``code`` names the reason for the reply."""

    code = "WEBHOOK_ERROR"


class MissingSecret(WebhookError):
    """The shop has no secret to check this platform's signature with."""

    code = "NO_SECRET"


class BadSignature(WebhookError):
    """The signature is missing, malformed, or does not match the body."""

    code = "BAD_SIGNATURE"


class StaleTimestamp(BadSignature):
    """The signed timestamp is outside the replay window."""

    code = "STALE_TIMESTAMP"


class PushFormatError(WebhookError):
    """A genuine push whose body is not in the platform's push format."""

    code = "UNREADABLE_PUSH"


# --------------------------------------------------------------------------- signatures


def _hmac_sha256(key: str, message: bytes) -> bytes:
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()


def shopify_signature(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value for a body."""
    return base64.b64encode(_hmac_sha256(secret, body)).decode("ascii")


def woocommerce_signature(secret: str, body: bytes) -> str:
    """The ``X-WC-Webhook-Signature`` value for a body."""
    return base64.b64encode(_hmac_sha256(secret, body)).decode("ascii")


def douyin_signature(app_key: str, app_secret: str, body: bytes, method: str = "md5") -> str:
    """The ``event-sign`` value for a body (``method``: ``md5`` or ``hmac-sha256``)."""
    text = app_key.encode("utf-8") + body + app_secret.encode("utf-8")
    method = method.strip().lower() or "md5"
    if method == "md5":
        return hashlib.md5(text).hexdigest()
    if method == "hmac-sha256":
        return _hmac_sha256(app_secret, text).hex()
    raise BadSignature(f"sign-method {method!r} is not supported (md5, hmac-sha256)")


def generic_signature(secret: str, body: bytes, timestamp: str = "") -> str:
    """The ``X-OrderHub-Signature`` value for a body (and its timestamp, when sent)."""
    message = f"{timestamp}.".encode("ascii") + body if timestamp else body
    return "sha256=" + _hmac_sha256(secret, message).hex()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _require(value: str, what: str) -> str:
    if not value:
        raise MissingSecret(f"no {what} is configured for this shop")
    return value


def verify(
    scheme: Scheme,
    credentials: Credentials,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
) -> None:
    """Accept a genuine push or raise :class:`MissingSecret` / :class:`BadSignature`."""
    h = _lower_keys(headers)
    if scheme is Scheme.SHOPIFY:
        secret = _require(credentials.webhook_secret, "webhook_secret")
        _check(shopify_signature(secret, body), h.get(SHOPIFY_HMAC, ""), "X-Shopify-Hmac-Sha256")
    elif scheme is Scheme.DOUYIN:
        _verify_douyin(credentials, h, body)
    elif scheme is Scheme.WOOCOMMERCE and WOOCOMMERCE_SIGNATURE in h:
        secret = _require(credentials.webhook_secret, "webhook_secret")
        _check(
            woocommerce_signature(secret, body), h[WOOCOMMERCE_SIGNATURE], "X-WC-Webhook-Signature"
        )
    else:
        _verify_generic(credentials, h, body, now)


def _check(expected: str, given: str, header: str) -> None:
    given = given.strip()
    if not given:
        raise BadSignature(f"the {header} header is missing")
    if not _same(expected, given):
        raise BadSignature(f"{header} does not match the body")


def _verify_douyin(credentials: Credentials, h: Mapping[str, str], body: bytes) -> None:
    app_key = _require(credentials.app_key, "app_key")
    app_secret = _require(credentials.app_secret, "app_secret")
    app_id = h.get(DOUYIN_APP_ID, "").strip()
    if app_id and not _same(app_key, app_id):
        raise BadSignature("the app-id header is not this shop's app_key")
    given = h.get(DOUYIN_SIGN, "").strip().lower()
    if not given:
        raise BadSignature("the event-sign header is missing")
    expected = douyin_signature(app_key, app_secret, body, h.get(DOUYIN_SIGN_METHOD, ""))
    if not _same(expected, given):
        raise BadSignature("event-sign does not match the body")


def _verify_generic(
    credentials: Credentials, h: Mapping[str, str], body: bytes, now: float
) -> None:
    secret = _require(credentials.webhook_secret, "webhook_secret")
    given = h.get(ORDERHUB_SIGNATURE, "").strip()
    if not given:
        raise BadSignature("the X-OrderHub-Signature header is missing")
    if not given.lower().startswith("sha256="):
        raise BadSignature("X-OrderHub-Signature must be sha256=<hex>")
    timestamp = h.get(ORDERHUB_TIMESTAMP, "").strip()
    if timestamp:
        if not timestamp.isascii() or not timestamp.isdigit():
            raise BadSignature("X-OrderHub-Timestamp must be Unix seconds")
        if abs(now - int(timestamp)) > REPLAY_WINDOW_S:
            raise StaleTimestamp(f"X-OrderHub-Timestamp is more than {REPLAY_WINDOW_S} s from now")
    expected = generic_signature(secret, body, timestamp)
    if not _same(expected, "sha256=" + given[len("sha256=") :].lower()):
        raise BadSignature("X-OrderHub-Signature does not match the body")


_PING = re.compile(rb"webhook_id=\d+")


def is_unsigned_ping(scheme: Scheme, headers: Mapping[str, str], body: bytes) -> bool:
    """WooCommerce's test delivery on saving a webhook: unsigned, ``webhook_id=<n>``.

    It must be answered 200 or WooCommerce refuses to save the webhook; it carries nothing,
    so answering it without a signature does no work and stores nothing.
    """
    if scheme is not Scheme.WOOCOMMERCE:
        return False
    h = _lower_keys(headers)
    return WOOCOMMERCE_SIGNATURE not in h and _PING.fullmatch(body.strip()) is not None


# --------------------------------------------------------------------------- what a push asks


class OrderEvent(StrEnum):
    """What happened to an order, as a push names it."""

    CREATED = "CREATED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    CHANGED = "CHANGED"
    AFTER_SALE = "AFTER_SALE"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class OrderNotice:
    """An order a push names by id only (Douyin): fetch its detail, then ingest it."""

    order_id: str
    events: tuple[OrderEvent, ...]
    msg_ids: tuple[str, ...]
    #: The messages that named it (a JSON array), kept if the detail cannot be fetched.
    payload: bytes


@dataclass(frozen=True, slots=True)
class Unusable:
    """A genuine push, or one message of it, the hub cannot act on: kept as a dead letter."""

    error: str
    reason: str
    payload: bytes
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class Push:
    """What a genuine push asks the hub to do."""

    topic: str = ""
    #: Whole orders, raw, for the platform's translator.
    orders: tuple[bytes, ...] = ()
    notices: tuple[OrderNotice, ...] = ()
    unusable: tuple[Unusable, ...] = ()
    #: Parts that need no work, each with why (a test push, a product change, …).
    skipped: tuple[str, ...] = ()


#: Topics whose body is the whole order. Shopify: the bare Order object; WooCommerce: the
#: REST v3 order. A push without a topic header is taken as an order too.
ORDER_TOPICS: Mapping[Scheme, frozenset[str]] = {
    Scheme.SHOPIFY: frozenset(
        {
            "orders/create",
            "orders/updated",
            "orders/paid",
            "orders/cancelled",
            "orders/fulfilled",
            "orders/partially_fulfilled",
        }
    ),
    Scheme.WOOCOMMERCE: frozenset({"order.created", "order.updated", "order.restored"}),
}
#: Topics that say an order was deleted; their body carries only its id.
DELETE_TOPICS: Mapping[Scheme, str] = {
    Scheme.SHOPIFY: "orders/delete",
    Scheme.WOOCOMMERCE: "order.deleted",
}
_TOPIC_HEADER: Mapping[Scheme, str] = {
    Scheme.SHOPIFY: SHOPIFY_TOPIC,
    Scheme.WOOCOMMERCE: WOOCOMMERCE_TOPIC,
}


def parse_push(scheme: Scheme, headers: Mapping[str, str], body: bytes) -> Push:
    """The plan for a genuine push; never raises (what cannot be read is :class:`Unusable`)."""
    if scheme is Scheme.DOUYIN:
        return parse_douyin(body)
    header = _TOPIC_HEADER.get(scheme)
    topic = _lower_keys(headers).get(header, "").strip().lower() if header else ""
    if not topic or topic in ORDER_TOPICS.get(scheme, frozenset()):
        return Push(topic=topic, orders=(body,))
    if topic == DELETE_TOPICS.get(scheme):
        reason = f"{scheme.value} deleted the order ({topic}); the push carries only its id"
        return Push(topic=topic, unusable=(Unusable("ORDER_DELETED", reason, body),))
    return Push(topic=topic, skipped=(f"topic {topic} is not an order",))


# --------------------------------------------------------------------------- Douyin 抖店

#: ``tag`` of Douyin 抖店 push messages that name a shop order (``p_id``). After-sale
#: messages (2xx) are covered by :func:`douyin_event` without a table.
DOUYIN_TAGS: Mapping[str, tuple[OrderEvent, str]] = {
    "100": (OrderEvent.CREATED, "订单创建"),
    "101": (OrderEvent.PAID, "订单支付/确认"),
    "102": (OrderEvent.SHIPPED, "卖家发货"),
    "103": (OrderEvent.COMPLETED, "交易完成"),
    "104": (OrderEvent.CHANGED, "发货物流信息变更"),
    "105": (OrderEvent.CHANGED, "买家收货信息变更"),
    "106": (OrderEvent.CANCELLED, "订单取消"),
    "108": (OrderEvent.SHIPPED, "卖家部分发货"),
    "109": (OrderEvent.CHANGED, "订单金额修改"),
    "110": (OrderEvent.PAID, "订单已支付待处理"),
    "111": (OrderEvent.CHANGED, "买家收货信息变更申请"),
    "113": (OrderEvent.CHANGED, "卖家添加备注"),
    "126": (OrderEvent.CHANGED, "订单发货时效变更"),
}


def douyin_event(tag: str) -> OrderEvent:
    """What a Douyin message tag says happened (2xx are after-sale messages)."""
    known = DOUYIN_TAGS.get(tag)
    if known is not None:
        return known[0]
    if len(tag) == 3 and tag.startswith("2") and tag.isdigit():
        return OrderEvent.AFTER_SALE
    return OrderEvent.OTHER


@dataclass(frozen=True, slots=True)
class DouyinMessage:
    """One message of a Douyin push: its tag, id and decoded ``data``."""

    tag: str
    msg_id: str
    data: Mapping[str, Any]
    raw: Mapping[str, Any]


def douyin_messages(body: bytes) -> list[DouyinMessage | Unusable]:
    """The messages of a Douyin push body: a JSON array of ``{tag, msg_id, data}``.

    ``data`` is a JSON string (an object is accepted too). A message that cannot be read is
    returned as :class:`Unusable`; a body that is not such an array raises
    :class:`PushFormatError`.
    """
    try:
        items = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise PushFormatError(f"the push is not UTF-8: {err.reason}") from err
    except (ValueError, RecursionError) as err:
        raise PushFormatError(f"the push is not JSON: {err}") from err
    if not isinstance(items, list):
        raise PushFormatError("a Douyin push is a JSON array of messages")
    return [_douyin_message(i, item) for i, item in enumerate(items)]


def _douyin_message(index: int, item: Any) -> DouyinMessage | Unusable:
    where = f"message [{index}]"
    if not isinstance(item, dict):
        return Unusable("UNREADABLE_MESSAGE", f"{where} is not an object", _dump(item))
    msg_id = _text(item.get("msg_id", item.get("msgId", "")))
    tag = _text(item.get("tag", ""))
    if not tag:
        return Unusable("UNREADABLE_MESSAGE", f"{where} has no tag", _dump(item), msg_id)
    data: Any = item.get("data", {})
    if isinstance(data, str):
        try:
            data = json.loads(data) if data.strip() else {}
        except (ValueError, RecursionError) as err:
            reason = f"{where} (tag {tag}): data is not JSON: {err}"
            return Unusable("UNREADABLE_MESSAGE", reason, _dump(item), msg_id)
    if not isinstance(data, dict):
        reason = f"{where} (tag {tag}): data is not an object"
        return Unusable("UNREADABLE_MESSAGE", reason, _dump(item), msg_id)
    return DouyinMessage(tag=tag, msg_id=msg_id, data=data, raw=item)


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | str):
        return str(value).strip()
    return ""


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def douyin_order_id(data: Mapping[str, Any]) -> str:
    """The shop order id (``p_id``) a message names; empty when it names none.

    ``p_id`` is an int64 (often above 2^53) or a string; a float has lost digits and raises
    :class:`PushFormatError`.
    """
    value = data.get("p_id")
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PushFormatError(f"p_id must be an integer or a string, not {value!r}")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit():
        raise PushFormatError(f"p_id {text!r} is not an order id")
    return text


def parse_douyin(body: bytes) -> Push:
    """The plan for a Douyin push: each named shop order fetched once, the rest skipped."""
    try:
        messages = douyin_messages(body)
    except PushFormatError as err:
        return Push(unusable=(Unusable(err.code, str(err), body),))
    unusable: list[Unusable] = []
    skipped: list[str] = []
    named: dict[str, list[DouyinMessage]] = {}
    for message in messages:
        if isinstance(message, Unusable):
            unusable.append(message)
            continue
        try:
            order_id = douyin_order_id(message.data)
        except PushFormatError as err:
            reason = f"tag {message.tag}: {err}"
            unusable.append(
                Unusable("UNREADABLE_MESSAGE", reason, _dump(message.raw), message.msg_id)
            )
            continue
        if not order_id:
            # The push-address test and product or material messages name no order.
            skipped.append(f"tag {message.tag} (msg_id {message.msg_id or '-'}) names no order")
            continue
        named.setdefault(order_id, []).append(message)
    notices = tuple(
        OrderNotice(
            order_id=order_id,
            events=tuple(douyin_event(m.tag) for m in group),
            msg_ids=tuple(m.msg_id for m in group),
            payload=_dump([m.raw for m in group]),
        )
        for order_id, group in named.items()
    )
    return Push(notices=notices, unusable=tuple(unusable), skipped=tuple(skipped))
